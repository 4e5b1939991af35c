//! How long each phase of a command took, for profiling labrun itself: with
//! `LABRUN_TIMINGS=1` in the environment the CLI prints the phases to stderr when it ends.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The phases timed so far, by name.
type Log = Mutex<Vec<(&'static str, Duration)>>;

fn log() -> Option<&'static Log> {
    static LOG: OnceLock<Option<Log>> = OnceLock::new();
    LOG.get_or_init(|| std::env::var_os("LABRUN_TIMINGS").filter(|v| v != "0").map(|_| Mutex::new(Vec::new()))).as_ref()
}

/// Times a phase from now until the guard drops.
pub fn phase(name: &'static str) -> Phase {
    Phase { name, start: log().map(|_| Instant::now()) }
}

pub struct Phase {
    name: &'static str,
    start: Option<Instant>,
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let (Some(start), Some(log)) = (self.start, log()) {
            log.lock().unwrap_or_else(|p| p.into_inner()).push((self.name, start.elapsed()));
        }
    }
}

/// The phases timed so far, one line each (empty unless `LABRUN_TIMINGS` is set).
pub fn summary() -> String {
    let Some(log) = log() else { return String::new() };
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.iter().map(|(name, d)| format!("labrun: timing {name:<10} {:8.2} ms\n", d.as_secs_f64() * 1e3)).collect()
}
