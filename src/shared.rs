//! What the commands share: compiling a file and printing its diagnostics, the terminal's
//! colour and width, and the cache's location. Every command module uses this one; none
//! uses another.

use lab_cache::Cache;
use lab_engine::{Compiled, Diag, Exit, Plan, Sources, render};
use lab_ops::Registry;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100)
}

pub fn print_diags(diags: &[Diag], sources: &Sources) {
    let text = render(diags, sources, color(), width());
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let n = diags.len();
    let _ = writeln!(err, "labrun: {n} error{}", if n == 1 { "" } else { "s" });
}

/// Compiles or prints the diagnostics and returns the exit code.
pub fn compiled(file: &Path, set: &crate::cli::SetArgs, registry: &Registry) -> Result<(Sources, Plan), ExitCode> {
    compiled_kept(file, set, registry, None)
}

/// [`compiled`], keeping large files' syntax trees in `parsed` (a folder of the cache) so
/// that the next run of the same text skips parsing.
pub fn compiled_kept(
    file: &Path,
    set: &crate::cli::SetArgs,
    registry: &Registry,
    parsed: Option<&Path>,
) -> Result<(Sources, Plan), ExitCode> {
    let Compiled { sources, plan, diags } =
        lab_engine::compile_kept(file, set.import_root.as_deref(), &set.set, registry, parsed);
    if !diags.is_empty() {
        print_diags(&diags, &sources);
        return Err(Exit::User.into());
    }
    match plan {
        Some(p) => Ok((sources, p)),
        None => Err(Exit::User.into()),
    }
}

/// The cache directory: `--cache`/`LABRUN_CACHE`, else the per-user cache directory.
pub fn cache_dir(arg: Option<&Path>) -> PathBuf {
    if let Some(p) = arg {
        return p.to_path_buf();
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("labrun");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/labrun")
}

pub fn open_cache(arg: Option<&Path>) -> Result<Cache, ExitCode> {
    let dir = cache_dir(arg);
    Cache::open(&dir).map_err(|e| cache_error(&dir, &e))
}

pub fn cache_error(dir: &Path, e: &lab_cache::CacheError) -> ExitCode {
    say(&format!(
        "labrun: cannot use the cache at {}: {e}\n  help: pass `--cache DIR` or set LABRUN_CACHE to a writable directory",
        dir.display()
    ));
    Exit::Environment.into()
}

/// A stable id for a pipeline file's run records: its name and a hash of its path.
pub fn pipeline_id(file: &Path) -> String {
    let canon = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    let h = lab_cache::Key::of(canon.to_string_lossy().as_bytes()).to_string();
    format!("{}-{}", stem(file), &h[..12])
}

/// Writes a line to standard error; a closed or full stderr loses the line, never the run.
pub fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// The local time of day now, `HH:MM:SS`, for progress lines (as `date` and file times
/// show it; UTC where the local zone is unknown).
pub fn clock() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let t = now as libc::time_t;
    // SAFETY: `localtime_r` fills the `tm` it is given and keeps no pointer to it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return utc(now as f64)[11..].to_string();
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time.
pub fn utc(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub fn stem(file: &Path) -> String {
    file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "pipeline".into())
}
