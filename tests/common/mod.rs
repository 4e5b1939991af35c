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
    cmd.current_dir(dir).args(args).env("NO_COLOR", "1");
    // The test says what it needs; nothing of the developer's settings leaks in.
    for v in ["LABRUN_CACHE", "LABRUN_PROGRESS_SECS", "LABRUN_TIMINGS", "LABRUN_ORT_WHEEL"] {
        cmd.env_remove(v);
    }
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

/// Runs `pipelines/NAME.lab` in `dir` with a cache there and `--set` each of `sets`;
/// asserts it succeeds and returns its `results.json`.
pub fn run_pipeline(dir: &Path, name: &str, sets: &[&str]) -> serde_json::Value {
    let cache = dir.join("cache");
    let file = root().join(format!("pipelines/{name}.lab"));
    let mut args = vec!["run", file.to_str().unwrap(), "--cache", cache.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    let r = labrun(dir, &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let path = dir.join(format!("results/{name}/results.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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

/// A service some tests need (a Slurm cluster, a tmpfs mount).
pub struct Service {
    /// Whether it is here: `Err(why not, and how to get it)`.
    pub available: fn() -> Result<(), String>,
    /// The variable (`LABRUN_REQUIRE_SLURM=1`) with which CI makes its absence a failure.
    pub required_by: &'static str,
}

/// The check that a missing service is reported, not silently passed: it runs this test
/// binary again on a machine without the service (an empty PATH: no `sinfo`, no `mount`).
const SELF_CHECK: &str = "without_the_service_these_tests_are_ignored_with_the_reason_or_fail_where_required";

/// Runs `tests` as a test binary (`harness = false`): where the service is missing they
/// are reported ignored, with the reason, unless `required_by` is set to 1, where they
/// fail. Accepts libtest's arguments (filters, `--list`, `--include-ignored`…). One more
/// test runs the binary itself without the service and checks that it says so.
pub fn run_service_tests(service: Service, tests: &[(&'static str, fn())]) -> std::process::ExitCode {
    use libtest_mimic::{Arguments, Completion, Failed, Trial};
    let args = Arguments::from_args();
    let missing = if args.list { None } else { (service.available)().err() };
    let required = std::env::var_os(service.required_by).is_some_and(|v| v == "1");
    let names: Vec<&'static str> = tests.iter().map(|(n, _)| *n).collect();
    let required_by = service.required_by;
    let self_check = Trial::test(SELF_CHECK, move || {
        let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
        let run = |require: bool| -> Result<(Option<i32>, String), Failed> {
            let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            cmd.args(["--skip", SELF_CHECK, "--test-threads", "1"]).env("PATH", empty.path()).env_remove(required_by);
            if require {
                cmd.env(required_by, "1");
            }
            let out = cmd.output().map_err(|e| e.to_string())?;
            Ok((out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned()))
        };
        let (code, out) = run(false)?;
        let ignored = |n: &&str| {
            out.lines()
                .any(|l| l.starts_with(&format!("test {n} ")) && l.contains(" ... ignored (") && l.ends_with(')'))
        };
        if code != Some(0) || !names.iter().all(|n| ignored(n)) {
            return Err(format!("without the service, every test should be ignored with a reason:\n{out}").into());
        }
        let (code, out) = run(true)?;
        if code != Some(101)
            || !out.contains(&format!("{required_by}=1, but "))
            || !out.contains(&format!("{} failed", names.len()))
        {
            return Err(format!("with {required_by}=1 and no service, every test should fail:\n{out}").into());
        }
        Ok(())
    });
    let trials = std::iter::once(self_check)
        .chain(tests.iter().map(|&(name, test)| {
            let missing = missing.clone();
            let required_by = service.required_by;
            Trial::ignorable_test(name, move || match missing {
                None => {
                    test();
                    Ok(Completion::Completed)
                }
                Some(why) if required => Err(Failed::from(format!("{required_by}=1, but {why}"))),
                Some(why) => Ok(Completion::ignored_with(why)),
            })
        }))
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
