//! Helpers shared by the CLI tests: run the real `labrun` binary in a temp directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn labrun(dir: &Path, args: &[&str]) -> Run {
    labrun_env(dir, args, &[])
}

pub fn labrun_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_labrun"));
    cmd.current_dir(dir).args(args).env("NO_COLOR", "1").env_remove("LABRUN_CACHE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().expect("labrun runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The repository root (where `pipelines/` lives).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The row labelled `label` of table `table` of the first report in a `results.json`.
pub fn table_row<'a>(results: &'a serde_json::Value, table: usize, label: &str) -> &'a serde_json::Value {
    let rows = results["reports"][0]["tables"][table]["rows"].as_array().expect("a table");
    rows.iter().find(|r| r["label"] == label).unwrap_or_else(|| panic!("no row `{label}` in {rows:?}"))
}

/// A run's `results.json` without the `dir` fields (each artifact's folder, which differs
/// between caches), for comparing runs made in different caches.
pub fn results_without_dirs(path: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("dir");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v = serde_json::from_str(&text).unwrap();
    strip(&mut v);
    v
}
