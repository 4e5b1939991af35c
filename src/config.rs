//! `labrun.toml`: settings of a project (found beside the `.lab` file or in a folder above
//! it) over those of the user (`$XDG_CONFIG_HOME/labrun/config.toml`, else
//! `~/.config/labrun/config.toml`).
//!
//! ```toml
//! [run]
//! executor = "slurm"        # or "local" (the default)
//!
//! [slurm]
//! partition = "gpu"
//! account = "my-lab"
//! time_limit = "04:00:00"   # every job's --time (default: from the steps' expected times)
//! sbatch_args = ["--qos=normal"]
//! max_jobs = 100            # jobs in flight
//! retries = 2               # resubmissions of a job Slurm killed
//! batch_minutes = 10        # small ready steps share a job up to this expected time
//! labrun = "/shared/bin/labrun"
//! ```

use lab_engine::slurm::SlurmConfig;
use std::path::{Path, PathBuf};

pub const FILE: &str = "labrun.toml";

/// Settings merged from the user's and the project's files.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `local` or `slurm`, if a file says.
    pub executor: Option<String>,
    pub slurm: SlurmConfig,
}

fn user_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("labrun").join("config.toml"))
}

/// The nearest `labrun.toml` in the `.lab` file's folder or above.
fn project_file(lab_file: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(lab_file).ok()?;
    abs.ancestors().skip(1).map(|d| d.join(FILE)).find(|p| p.is_file())
}

fn read(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?;
    if let Some(k) = table.keys().find(|k| *k != "run" && *k != "slurm") {
        return Err(format!("{}: unknown section `[{k}]`; labrun reads `[run]` and `[slurm]`", path.display()));
    }
    Ok(table)
}

/// Reads the user's and the project's settings; the project's win, key by key.
pub fn load(lab_file: &Path) -> Result<Config, String> {
    let mut run = toml::Table::new();
    let mut slurm = toml::Table::new();
    let files: Vec<PathBuf> = user_file().into_iter().filter(|p| p.is_file()).chain(project_file(lab_file)).collect();
    for path in &files {
        let t = read(path)?;
        for (section, into) in [("run", &mut run), ("slurm", &mut slurm)] {
            match t.get(section) {
                None => {}
                Some(toml::Value::Table(s)) => into.extend(s.clone()),
                Some(_) => return Err(format!("{}: `{section}` must be a table (`[{section}]`)", path.display())),
            }
        }
    }
    let executor = match run.remove("executor") {
        None => None,
        Some(toml::Value::String(s)) if s == "local" || s == "slurm" => Some(s),
        Some(v) => return Err(format!("`[run] executor = {v}` in {}: use \"local\" or \"slurm\"", names(&files))),
    };
    if let Some(k) = run.keys().next() {
        return Err(format!("unknown setting `[run] {k}` in {}; `[run]` has `executor`", names(&files)));
    }
    let slurm: SlurmConfig =
        toml::Value::Table(slurm).try_into().map_err(|e| format!("`[slurm]` in {}: {e}", names(&files)))?;
    Ok(Config { executor, slurm })
}

fn names(files: &[PathBuf]) -> String {
    files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or ")
}
