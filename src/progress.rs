//! What a run shows while it runs, suited to where standard error goes: progress bars with
//! an estimate of the time left on a terminal; plain timestamped lines in a file or a pipe
//! (steps started and finished, training progress at a steady pace); JSON events on
//! standard output with `--json`; nothing but problems with `--quiet`.

use crate::shared::{clock, say};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lab_engine::Plan;
use lab_engine::execute::Event;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on a terminal.
    Bars,
    /// Timestamped lines, for logs and pipes.
    Lines,
    /// JSON lines on standard output.
    Json,
    /// Nothing but failures, warnings and announcements.
    Quiet,
}

impl Mode {
    pub fn choose(json: bool, quiet: bool) -> Mode {
        if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// How often a step's training progress is written as a line (`LABRUN_PROGRESS_SECS`,
/// default 10 s).
fn line_pace() -> Duration {
    let secs = std::env::var("LABRUN_PROGRESS_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(10.0);
    // `inf` (never) or a huge value: as long as can be.
    Duration::try_from_secs_f64(if secs.is_nan() { 10.0 } else { secs.max(0.0) }).unwrap_or(Duration::MAX)
}

/// Counts for the estimate of the time left.
#[derive(Default)]
struct Tally {
    total: usize,
    /// Steps finished, failed, skipped or found cached.
    settled: usize,
    /// Steps computed by this run, and when the first started.
    computed: usize,
    first_start: Option<Instant>,
    /// When each running step last wrote a progress line.
    last_line: BTreeMap<usize, Instant>,
}

impl Tally {
    /// The time left at the pace of the steps computed so far: `None` before one has.
    fn left(&self) -> Option<Duration> {
        let since = self.first_start?.elapsed();
        if self.computed == 0 {
            return None;
        }
        let per = since.as_secs_f64() / self.computed as f64;
        Some(Duration::from_secs_f64(per * self.total.saturating_sub(self.settled) as f64))
    }
}

/// `1h02m`, `4m05s`, `12s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

pub struct Display {
    mode: Mode,
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    bars: Mutex<BTreeMap<usize, ProgressBar>>,
    tally: Mutex<Tally>,
    pace: Duration,
}

impl Display {
    pub fn new(mode: Mode, total: usize) -> Display {
        let tally = Mutex::new(Tally { total, ..Tally::default() });
        let (multi, overall) = if mode == Mode::Bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} steps  {elapsed}  {msg}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            overall.set_prefix("labrun");
            (Some(multi), Some(overall))
        } else {
            (None, None)
        };
        Display { mode, multi, overall, bars: Mutex::new(BTreeMap::new()), tally, pace: line_pace() }
    }

    /// A message for the user in the middle of a run (an install, a retry), written where
    /// it does not break the display.
    pub fn note(&self, message: &str) {
        match self.mode {
            Mode::Json => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", json!({"event": "note", "message": message}));
            }
            Mode::Lines => say(&format!("[{}] {message}", clock())),
            Mode::Bars | Mode::Quiet => match &self.multi {
                Some(m) => {
                    let _ = m.println(format!("labrun: {message}"));
                }
                None => say(&format!("labrun: {message}")),
            },
        }
    }

    pub fn event(&self, plan: &Plan, e: &Event) {
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Started { .. } if tally.first_start.is_none() => tally.first_start = Some(Instant::now()),
            Event::Cached { .. } | Event::Skipped { .. } | Event::Failed { .. } => tally.settled += 1,
            Event::Finished { by_other, .. } => {
                tally.settled += 1;
                if !by_other {
                    tally.computed += 1;
                }
            }
            _ => {}
        }
        match (self.mode, e) {
            (Mode::Json, _) => json_event(plan, e),
            (Mode::Lines, _) => self.line(plan, e, &mut tally),
            // A retry is news even to a quiet run.
            (Mode::Bars | Mode::Quiet, Event::Retry { node, reason }) => {
                self.note(&format!("step `{}`: {reason}", plan.nodes[*node].name))
            }
            (Mode::Bars, _) => self.bar(plan, e, &tally),
            (Mode::Quiet, _) => {}
        }
    }

    fn line(&self, plan: &Plan, e: &Event, tally: &mut Tally) {
        let step = |n: &usize| format!("{} ({})", plan.nodes[*n].name, plan.nodes[*n].op.name());
        let left = |t: &Tally| {
            t.left().filter(|d| d.as_secs() > 0).map(|d| format!(", about {} left", duration(d))).unwrap_or_default()
        };
        let text = match e {
            Event::Start { total } => format!("{total} steps; those the cache holds are not computed again"),
            Event::Cached { .. } => return,
            Event::Started { node } => format!("started  {}", step(node)),
            Event::Progress { node, progress } => {
                let now = Instant::now();
                let due = tally.last_line.get(node).is_none_or(|t| now.duration_since(*t) >= self.pace);
                if !due || progress.total == 0 {
                    return;
                }
                tally.last_line.insert(*node, now);
                let msg = if progress.message.is_empty() { String::new() } else { format!("  {}", progress.message) };
                format!("progress {}: {}/{}{msg}", plan.nodes[*node].name, progress.done, progress.total)
            }
            Event::Finished { node, secs, by_other } => {
                tally.last_line.remove(node);
                let how =
                    if *by_other { "computed meanwhile by another run".to_string() } else { format!("in {secs:.1}s") };
                format!("finished {} {how} ({}/{} steps{})", step(node), tally.settled, tally.total, left(tally))
            }
            Event::Failed { node, error } => {
                tally.last_line.remove(node);
                format!("FAILED   {}: {}", step(node), error.message.lines().next().unwrap_or_default())
            }
            Event::Skipped { node, because } => match because {
                Some(b) => format!("skipped  {}: `{}` failed", step(node), plan.nodes[*b].name),
                None => format!("skipped  {}: the run stopped", step(node)),
            },
            Event::Retry { node, reason } => format!("retry    {}: {reason}", step(node)),
        };
        say(&format!("[{}] {text}", clock()));
    }

    fn bar(&self, plan: &Plan, e: &Event, tally: &Tally) {
        let (Some(multi), Some(overall)) = (&self.multi, &self.overall) else { return };
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Start { .. } | Event::Retry { .. } => {}
            Event::Cached { .. } | Event::Skipped { .. } => overall.inc(1),
            Event::Started { node } => {
                // Until a step reports progress, only its time so far.
                let b = multi.add(ProgressBar::new(0));
                b.set_style(ProgressStyle::with_template("  {prefix:44!} {elapsed}").expect("template"));
                b.set_prefix(format!("{} ({})", plan.nodes[*node].name, plan.nodes[*node].op.name()));
                bars.insert(*node, b);
            }
            Event::Progress { node, progress } => {
                if let Some(b) = bars.get(node) {
                    if b.length() == Some(0) && progress.total > 0 {
                        b.set_style(
                            ProgressStyle::with_template("  {prefix:44!} {bar:20} {pos}/{len} {msg} ({eta} left)")
                                .expect("template")
                                .progress_chars("=> "),
                        );
                    }
                    b.set_length(progress.total);
                    b.set_position(progress.done);
                    b.set_message(progress.message.clone());
                }
            }
            Event::Finished { node, .. } | Event::Failed { node, .. } => {
                if let Some(b) = bars.remove(node) {
                    b.finish_and_clear();
                    multi.remove(&b);
                }
                overall.inc(1);
                if let Some(d) = tally.left().filter(|d| d.as_secs() > 0) {
                    overall.set_message(format!("about {} left", duration(d)));
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(o) = &self.overall {
            o.finish_and_clear();
        }
    }
}

fn json_event(plan: &Plan, e: &Event) {
    let line = match e {
        Event::Start { total } => json!({"event": "start", "steps": total}),
        Event::Cached { node } => json!({"event": "cached", "step": plan.nodes[*node].name}),
        Event::Started { node } => {
            json!({"event": "started", "step": plan.nodes[*node].name, "op": plan.nodes[*node].op.name()})
        }
        Event::Progress { node, progress } => {
            json!({"event": "progress", "step": plan.nodes[*node].name, "done": progress.done, "total": progress.total, "message": progress.message})
        }
        Event::Finished { node, secs, by_other } => {
            json!({"event": if *by_other { "cached" } else { "executed" }, "step": plan.nodes[*node].name, "seconds": secs})
        }
        Event::Failed { node, error } => {
            json!({"event": "failed", "step": plan.nodes[*node].name, "error": error.message, "failure": error.failure})
        }
        Event::Skipped { node, because } => {
            json!({"event": "skipped", "step": plan.nodes[*node].name, "because": because.map(|b| plan.nodes[b].name.clone())})
        }
        Event::Retry { node, reason } => {
            json!({"event": "retry", "step": plan.nodes[*node].name, "reason": reason})
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration(Duration::from_secs(12)), "12s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn the_time_left_follows_the_pace_of_computed_steps() {
        let mut t = Tally { total: 10, ..Tally::default() };
        assert_eq!(t.left(), None, "no estimate before a step is computed");
        t.first_start = Some(Instant::now() - Duration::from_secs(20));
        t.computed = 2;
        t.settled = 5; // three came from the cache
        let left = t.left().unwrap().as_secs_f64();
        // 10 s a step, 5 steps to go.
        assert!((left - 50.0).abs() < 1.0, "{left}");
    }
}
