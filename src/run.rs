//! `labrun run`: progress display, events, summary, reports.

use crate::cli::{ExecutorKind, RunArgs};
use crate::progress::{Display, Mode};
use crate::shared::{cache_dir, cache_error, color, compiled_kept, pipeline_id, print_diags, say, stem, width};
use lab_cache::Cache;
use lab_engine::Exit;
use lab_engine::execute::{Event, Failure, RunOptions, RunReport};
use lab_engine::run::ExecutorConfig as Executor;
use lab_engine::{Diag, Plan};

use lab_ops::{Blame, Registry};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub fn run(args: RunArgs, registry: &Registry) -> ExitCode {
    let started = Instant::now();
    let dir = cache_dir(args.cache.cache.as_deref());
    // The cache and its action index are read on the other core while the file is checked.
    let opening = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let cache = Cache::open(&dir);
            if let Ok(c) = &cache {
                c.load_index();
            }
            cache
        })
    };
    let (sources, plan) = match compiled_kept(&args.file, &args.set, registry, Some(&dir.join(lab_cache::PARSED))) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let full = args.targets.is_empty();
    let plan = if full {
        plan
    } else {
        match plan.prune(&args.targets) {
            Ok(p) => p,
            Err(d) => {
                print_diags(&d, &sources);
                return Exit::User.into();
            }
        }
    };
    let force = if args.force_all {
        (0..plan.nodes.len()).collect()
    } else {
        match plan.resolve(&args.force) {
            Ok(f) => f,
            Err(d) => {
                print_diags(&d, &sources);
                return Exit::User.into();
            }
        }
    };
    let t = lab_engine::timing::phase("join cache");
    let cache = match opening.join() {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return cache_error(&dir, &e),
        Err(_) => return Exit::Internal.into(),
    };
    drop(t);
    // Opened before the run: a missing index is rebuilt from earlier runs' records only.
    let t = lab_engine::timing::phase("open index");
    let index = match lab_cache::index::RunIndex::open(cache.root()) {
        Ok((ix, note)) => {
            if let Some(n) = note {
                say(&format!("labrun: {n}"));
            }
            Some(ix)
        }
        Err(e) => {
            say(&format!("labrun: warning: cannot open the run index ({e}); this run will not be in `labrun log`"));
            None
        }
    };
    drop(t);
    let config = match crate::config::load(&args.file) {
        Ok(c) => c,
        Err(e) => {
            say(&format!("labrun: {e}"));
            return Exit::User.into();
        }
    };
    let executor = match args.executor {
        Some(ExecutorKind::Slurm) => Executor::Slurm(config.slurm.clone()),
        Some(ExecutorKind::Local) => Executor::Local,
        None if config.executor.as_deref() == Some("slurm") => Executor::Slurm(config.slurm.clone()),
        None => Executor::Local,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        let slurm = matches!(executor, Executor::Slurm(_));
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                say("\nlabrun: stopping now");
                std::process::exit(i32::from(Exit::Interrupted.code()));
            }
            if slurm {
                say("\nlabrun: cancelling the Slurm jobs this run submitted");
            } else {
                say("\nlabrun: stopping after the running steps (Ctrl-C again to stop at once)");
            }
        });
    }
    let display = Arc::new(Display::new(Mode::choose(args.json, args.quiet), plan.nodes.len()));
    {
        // An install of ONNX Runtime during a step is announced through the display.
        let display = display.clone();
        lab_nn::runtime::set_announcer(move |m| display.note(m));
    }
    // How long each step took, for the run index.
    let seconds: Mutex<BTreeMap<usize, f64>> = Mutex::new(BTreeMap::new());
    let on_event = |e: &Event| {
        if let Event::Finished { node, secs, .. } = e {
            seconds.lock().unwrap_or_else(|p| p.into_inner()).insert(*node, *secs);
        }
        display.event(&plan, e)
    };
    let started_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let name = stem(&args.file);
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let opts = RunOptions {
        jobs,
        threads: args.threads,
        device: args.device,
        keep_going: args.keep_going,
        force,
        cancel: &cancel,
        on_event: &on_event,
        pipeline: &name,
    };
    let t = lab_engine::timing::phase("schedule");
    let report = lab_engine::run::run(&plan, &cache, registry, &opts, &executor);
    drop(t);
    display.finish();
    let t = lab_engine::timing::phase("record");
    record(&cache, &args.file, &plan, &report);
    drop(t);
    let t = lab_engine::timing::phase("finish");
    let code = finish(&args, &plan, &report, &cache, &sources, &name, started);
    drop(t);
    let seconds = seconds.into_inner().unwrap_or_else(|p| p.into_inner());
    let executor = match executor {
        Executor::Local => "local",
        Executor::Slurm(_) => "slurm",
    };
    let run = IndexedRun {
        file: &args.file,
        name: &name,
        plan: &plan,
        report: &report,
        seconds: &seconds,
        started_unix,
        elapsed: started.elapsed().as_secs_f64(),
        executor,
        overrides: &args.set.set,
        code,
    };
    if let Some(ix) = &index {
        let _t = lab_engine::timing::phase("index");
        index_run(ix, &run);
    }
    let timing = lab_engine::timing::summary();
    if !timing.is_empty() {
        let _ = std::io::stderr().write_all(timing.as_bytes());
    }
    // The process ends next: freeing a plan of thousands of steps piece by piece would only
    // delay the exit. (The cache is dropped: that writes its index.)
    drop(cache);
    std::mem::forget((plan, report, sources));
    code.into()
}

/// Reports a finished run: failures at their lines, the summary, the results files.
/// Returns the exit code.
fn finish(
    args: &RunArgs,
    plan: &Plan,
    report: &RunReport,
    cache: &Cache,
    sources: &lab_engine::Sources,
    name: &str,
    started: Instant,
) -> Exit {
    // Failures, each at its step's line.
    let diags: Vec<Diag> = report
        .failed
        .iter()
        .filter(|(_, e)| e.failure != Failure::Cancelled)
        .map(|(i, e)| {
            let n = &plan.nodes[*i];
            let help = match e.blame {
                _ if e.failure == Failure::DiskFull => "the disk holding the cache is full: free space, run `labrun cache gc`, or point `--cache` at a larger disk; finished steps stay cached",
                _ if e.failure == Failure::MissingInput => "run `labrun cache verify`, then run again; finished steps stay cached",
                Blame::User => "fix the step's arguments or inputs and run again; finished steps stay cached",
                Blame::Environment => {
                    "this is a problem of the machine (a library, the disk); finished steps stay cached"
                }
                Blame::Internal => "this is a bug in labrun; please report it with this message",
            };
            Diag::new("lab::step_failed", format!("step `{}` ({}) failed: {e}", n.name, n.op.name()))
                .at(n.span, "this step")
                .help(help)
        })
        .collect();
    if !diags.is_empty() {
        let text = lab_engine::render(&diags, sources, color(), width());
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
    if let Some(e) = &report.not_recorded {
        say(&format!(
            "labrun: warning: the last results of this run could not be recorded in the cache ({e}); those steps run again next time"
        ));
    }
    let reused = report.cached.iter().filter(|&&i| report.computed_by[i].as_ref().is_some_and(|p| *p != name)).count();
    let summary = summary_line(report, plan.nodes.len(), reused, started.elapsed().as_secs_f64());
    if !args.json {
        say(&summary);
    }
    let code = if report.cancelled {
        Exit::Interrupted
    } else {
        // The machine's fault first (nothing the user changes helps), then labrun's.
        [Blame::Environment, Blame::Internal, Blame::User]
            .into_iter()
            .find(|b| report.failed.iter().any(|(_, e)| e.blame == *b))
            .map_or(Exit::Success, Exit::from)
    };
    let (mut code, mut results, mut results_error) = (code, None, None);
    if code == Exit::Success && args.targets.is_empty() && !plan.reports.is_empty() {
        let rendered = lab_engine::report::render(plan, &report.outputs, cache);
        let dir = args.results.clone().unwrap_or_else(|| PathBuf::from("results").join(name));
        match lab_engine::report::write(&dir, &rendered, name) {
            Ok(()) => results = Some((dir, rendered)),
            Err(e) => {
                let message = format!("cannot write results to {}: {e}", dir.display());
                say(&format!("labrun: {message}"));
                results_error = Some(message);
                code = Exit::Environment;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut summary = json!({"event": "summary", "steps": plan.nodes.len(), "executed": report.executed.len(), "cached": report.cached.len(),
               "reused_from_other_pipelines": reused, "failed": report.failed.len(), "skipped": report.skipped.len(),
               "cancelled": report.cancelled, "seconds": started.elapsed().as_secs_f64()});
        if let Some(e) = &results_error {
            summary["results_error"] = json!(e);
        }
        if let Some((dir, rendered)) = &results {
            summary["results"] = json!(dir.join("results.md").to_string_lossy());
            summary["headlines"] = rendered
                .headlines
                .iter()
                .map(|h| {
                    let mut row = json!({"report": h.report, "table": h.table, "label": h.label});
                    for key in ["metrics", "value"] {
                        if let Some(v) = h.json.get(key) {
                            row[key] = v.clone();
                        }
                    }
                    row
                })
                .collect();
        }
        let _ = writeln!(out, "{summary}");
    } else if let Some((dir, rendered)) = &results {
        let _ = out.write_all(headlines_text(&rendered.headlines).as_bytes());
        // `show` finds a run's results by its file, or by their folder when `--results` moved them.
        let shown = if args.results.is_some() { dir.display().to_string() } else { args.file.display().to_string() };
        let quoted = if shown.contains(char::is_whitespace) { format!("'{shown}'") } else { shown };
        let _ = writeln!(out, "results: {} (`labrun show {quoted}` prints them)", dir.join("results.md").display());
    }
    code
}

/// The rows a pipeline marks `headline`, under their report and table.
pub fn headlines_text(headlines: &[lab_engine::report::Headline]) -> String {
    let mut s = String::new();
    let mut at: Option<(&str, Option<&str>)> = None;
    for h in headlines {
        let here = (h.report.as_str(), h.table.as_deref());
        if at != Some(here) {
            match here.1 {
                Some(t) => s.push_str(&format!("{}: {t}\n", here.0)),
                None => s.push_str(&format!("{}\n", here.0)),
            }
            at = Some(here);
        }
        let cells: Vec<String> = h.cells().iter().map(|(c, v)| format!("{c} {v}")).collect();
        s.push_str(&format!("  {}: {}\n", h.label, cells.join(", ")));
    }
    s
}

fn summary_line(r: &RunReport, total: usize, reused: usize, secs: f64) -> String {
    if r.executed.is_empty() && r.failed.is_empty() && r.skipped.is_empty() {
        return format!("labrun: all {total} steps cached, nothing to run ({secs:.2}s)");
    }
    let mut parts = vec![format!("{} executed", r.executed.len()), format!("{} cached", r.cached.len())];
    if reused > 0 {
        parts.push(format!("{reused} reused from other pipelines"));
    }
    if !r.failed.is_empty() {
        parts.push(format!("{} failed", r.failed.len()));
    }
    if !r.skipped.is_empty() {
        parts.push(format!("{} skipped", r.skipped.len()));
    }
    format!("labrun: {total} steps: {} ({secs:.1}s)", parts.join(", "))
}

/// Remembers what this run used, merged into the previous record, for `gc` and `why`.
fn record(cache: &Cache, file: &Path, plan: &Plan, report: &RunReport) {
    let id = pipeline_id(file);
    // A rerun that used exactly what the record already holds changes nothing: a digest
    // of its steps, kept beside the record, saves reading and rewriting it.
    let mut h = lab_cache::Key::of(file.display().to_string().as_bytes()).0.to_vec();
    for n in &plan.nodes {
        if let Some(key) = report.keys[n.id] {
            h.extend_from_slice(n.name.as_bytes());
            h.extend_from_slice(&key.0);
            h.extend_from_slice(&report.outputs[n.id].map_or([0; 32], |a| a.0));
        }
    }
    let digest = lab_cache::Key::of(&h).to_string();
    let digest_path = cache.root().join("runs").join(format!("{id}.digest"));
    // The digest names the record file it describes (size and modification time), so a
    // record another run rewrote since, or a digest left by a killed run, never matches.
    let stamp = || {
        let m = std::fs::metadata(cache.root().join("runs").join(format!("{id}.json"))).ok()?;
        let t = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
        Some(format!("{digest} {} {t}", m.len()))
    };
    if let Some(now) = stamp()
        && std::fs::read_to_string(&digest_path).is_ok_and(|d| d == now)
    {
        return;
    }
    let mut rec = cache.last_run(&id).unwrap_or_default();
    rec.pipeline = file.display().to_string();
    for n in &plan.nodes {
        // The readable preimage, rebuilt from the outputs (the run built it only for the
        // steps it ran).
        if let (Some(key), Some((_, pre))) =
            (report.keys[n.id], lab_engine::execute::preimage(plan, n, &report.outputs))
        {
            rec.steps.insert(n.name.clone(), (key, pre, report.outputs[n.id]));
        }
    }
    if cache.record_run(&id, &rec).is_ok()
        && let Some(now) = stamp()
    {
        let _ = std::fs::write(&digest_path, now);
    }
}

/// What the run index records of a run.
struct IndexedRun<'a> {
    file: &'a Path,
    name: &'a str,
    plan: &'a Plan,
    report: &'a RunReport,
    seconds: &'a BTreeMap<usize, f64>,
    started_unix: f64,
    elapsed: f64,
    executor: &'static str,
    overrides: &'a [lab_engine::Override],
    code: Exit,
}

/// Adds the run to the cache's run index (`labrun log`); a failure is a warning.
fn index_run(ix: &lab_cache::index::RunIndex, r: &IndexedRun) {
    use lab_cache::index::{RunSummary, StepRow};
    let mut status = vec!["skipped"; r.plan.nodes.len()];
    for &i in &r.report.executed {
        status[i] = "executed";
    }
    for &i in &r.report.cached {
        status[i] = "cached";
    }
    let mut errors: BTreeMap<usize, &String> = BTreeMap::new();
    for (i, e) in &r.report.failed {
        status[*i] = "failed";
        errors.entry(*i).or_insert(&e.message);
    }
    // What the steps did, digested from the plan: a rerun that did the same adds no rows.
    let mut h = lab_cache::Hasher::new();
    for n in &r.plan.nodes {
        for part in [n.name.as_bytes(), n.op.kind.as_bytes(), b".", n.op.method.as_bytes(), status[n.id].as_bytes()] {
            h.update(part);
            h.update(b"\x1f");
        }
        h.update(r.report.keys[n.id].as_ref().map_or(&[0; 32], |k| &k.0));
        h.update(r.report.outputs[n.id].as_ref().map_or(&[0; 32], |a| &a.0));
        h.update(&r.seconds.get(&n.id).map_or(u64::MAX, |s| s.to_bits()).to_le_bytes());
        h.update(errors.get(&n.id).map_or(&b"\0"[..], |e| e.as_bytes()));
    }
    let digest = h.finalize().to_hex();
    let steps = || -> Vec<StepRow> {
        r.plan
            .nodes
            .iter()
            .map(|n| StepRow {
                step: n.name.clone(),
                op: n.op.name(),
                key: r.report.keys[n.id].map(|k| k.to_string()),
                artifact: r.report.outputs[n.id],
                status: status[n.id].into(),
                seconds: r.seconds.get(&n.id).copied(),
                error: errors.get(&n.id).map(|e| e.to_string()),
            })
            .collect()
    };
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let overrides: Vec<String> = r.overrides.iter().map(|o| format!("{}={}", o.name, o.value)).collect();
    let summary = RunSummary {
        id: 0,
        started_unix: r.started_unix,
        seconds: r.elapsed,
        pipeline: r.name.to_string(),
        file: r.file.canonicalize().unwrap_or_else(|_| r.file.to_path_buf()).display().to_string(),
        host,
        executor: r.executor.into(),
        exit_code: Some(i64::from(r.code.code())),
        params: serde_json::to_string(&r.plan.params).unwrap_or_else(|_| "{}".into()),
        overrides: serde_json::to_string(&overrides).unwrap_or_else(|_| "[]".into()),
        steps: r.plan.nodes.len() as i64,
        executed: r.report.executed.len() as i64,
        cached: r.report.cached.len() as i64,
        failed: r.report.failed.len() as i64,
        skipped: r.report.skipped.len() as i64,
    };
    if let Err(e) = ix.record_lazy(&summary, &digest, steps) {
        say(&format!("labrun: warning: cannot add this run to the run index: {e}"));
    }
}
