//! The run index (`labrun log`): every run recorded with what its steps did, concurrent
//! runs both recorded, a deleted or corrupt index rebuilt, `cache gc --keep-runs`.

mod common;
use common::{labrun, root};
use std::process::{Command, Stdio};

fn sweep() -> String {
    root().join("tests/pipelines/slurm/sweep.lab").to_string_lossy().into_owned()
}

#[test]
fn runs_are_logged_with_their_steps() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let file = sweep();
    assert_eq!(labrun(dir.path(), &["run", &file, "--cache", c]).code, 0);
    assert_eq!(labrun(dir.path(), &["run", &file, "--cache", c, "--set", "seeds=[9]"]).code, 0);
    let log = labrun(dir.path(), &["log", "--cache", c]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let rows: Vec<&str> = log.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", log.stdout);
    // Newest first: 6 steps, 2 of them (the data) reused; then the first run's 18.
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let (second, first) = (cols(rows[0]), cols(rows[1]));
    assert_eq!(&second[3..8], &["sweep", "6", "4", "2", "0"], "{}", log.stdout);
    assert_eq!(&first[3..8], &["sweep", "18", "18", "0", "0"], "{}", log.stdout);
    let one = labrun(dir.path(), &["log", &second[0], "--cache", c]);
    assert!(one.stdout.contains("--set [\"seeds=[9]\"]") && one.stdout.contains("fit[9]"), "{}", one.stdout);
    assert!(one.stdout.lines().any(|l| l.starts_with("train ") && l.contains("cached")), "{}", one.stdout);
    let missing = labrun(dir.path(), &["log", "99", "--cache", c]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no run 99"), "{}", missing.stderr);
    // `gc` keeps what the pipeline's runs used; `--keep-runs 1` only what the last run used
    // (its 6 artifacts): the first run's 16 others go.
    let plain = labrun(dir.path(), &["cache", "gc", "--dry-run", "--cache", c]);
    assert!(plain.stdout.starts_with("would remove 0 artifacts"), "{}", plain.stdout);
    let both = labrun(dir.path(), &["cache", "gc", "--dry-run", "--keep-runs", "2", "--cache", c]);
    assert!(both.stdout.starts_with("would remove 0 artifacts"), "{}", both.stdout);
    let last = labrun(dir.path(), &["cache", "gc", "--keep-runs", "1", "--cache", c]);
    assert!(last.stdout.starts_with("removed 16 artifacts"), "{}", last.stdout);
    let again = labrun(dir.path(), &["run", &file, "--cache", c, "--set", "seeds=[9]"]);
    assert!(again.stderr.contains("nothing to run"), "{}", again.stderr);
}

#[test]
fn concurrent_runs_are_both_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let file = sweep();
    let spawn = |seeds: &str| {
        Command::new(env!("CARGO_BIN_EXE_labrun"))
            .current_dir(dir.path())
            .args(["run", &file, "--cache", c, "--set", seeds, "--results", seeds])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("seeds=[1, 2]"), spawn("seeds=[3, 4]"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("warning"), "{err}");
    }
    let log = labrun(dir.path(), &["log", "--cache", c]);
    assert_eq!(log.stdout.lines().count(), 3, "{}", log.stdout);
}

#[test]
fn a_deleted_or_corrupt_index_is_rebuilt_never_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let file = sweep();
    assert_eq!(labrun(dir.path(), &["run", &file, "--cache", c]).code, 0);
    std::fs::write(cache.join("runs.sqlite"), b"not a database at all, just bytes").unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(cache.join(format!("runs.sqlite{ext}")));
    }
    let r = labrun(dir.path(), &["run", &file, "--cache", c]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("the run index was unreadable") && r.stderr.contains("rebuilt 1 runs"), "{}", r.stderr);
    let log = labrun(dir.path(), &["log", "--cache", c]);
    assert_eq!(log.stdout.lines().count(), 3, "the rebuilt run and this one:\n{}", log.stdout);
    assert!(log.stdout.contains("rebuilt from the cache"), "{}", log.stdout);
    for e in std::fs::read_dir(&cache).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("runs.sqlite")
            && !e.file_name().to_string_lossy().contains("corrupt")
        {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let log = labrun(dir.path(), &["log", "--cache", c]);
    assert_eq!(log.code, 0);
    assert!(log.stderr.contains("the run index was missing; rebuilt 1 runs"), "{}", log.stderr);
}
