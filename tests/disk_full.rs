//! A full disk under the cache: the failing step says so, with exit code 2 and what to
//! do; nothing already computed is lost or left corrupt. The cache lives on a small tmpfs,
//! which needs root to mount: where it cannot be mounted the test is reported ignored, with
//! the reason, and CI sets LABRUN_REQUIRE_TMPFS=1 so that there it fails instead.

mod common;
use common::{labrun, root};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A 3 MB tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

/// Whether a tmpfs can be mounted here.
fn tmpfs() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    match SmallDisk::mount(&dir.path().join("probe")) {
        Some(_) => Ok(()),
        None => Err("cannot mount a tmpfs for the cache (`mount -t tmpfs` needs root)".into()),
    }
}

fn main() -> std::process::ExitCode {
    common::run_service_tests(
        common::Service { available: tmpfs, required_by: "LABRUN_REQUIRE_TMPFS" },
        &[(
            "a_full_disk_is_reported_as_the_machines_and_loses_nothing",
            a_full_disk_is_reported_as_the_machines_and_loses_nothing,
        )],
    )
}

fn a_full_disk_is_reported_as_the_machines_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let _disk = SmallDisk::mount(&cache).expect("a tmpfs mounts (one did a moment ago)");
    let file = root().join("tests/pipelines/disk_full.lab");
    let c = cache.to_str().unwrap();
    let run = || {
        let r = labrun(dir.path(), &["run", file.to_str().unwrap(), "--json", "--keep-going", "-j", "1", "--cache", c]);
        let events: Vec<Value> = r.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (r, events)
    };
    let (r, ev) = run();
    assert_eq!(r.code, 2, "a full disk is the machine's problem:\n{}", r.stderr);
    let failed: Vec<&Value> = ev.iter().filter(|e| e["event"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((&failed[0]["step"], &failed[0]["failure"]), (&Value::from("big"), &Value::from("disk_full")));
    assert!(r.stderr.contains("the disk holding the cache is full"), "{}", r.stderr);
    assert!(r.stderr.contains("disk_full.lab:4:7"), "the failure points at its step:\n{}", r.stderr);
    // What was computed is whole, and is not computed again.
    let v = labrun(dir.path(), &["cache", "verify", "--cache", c]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("no corruption found"), "{}", v.stdout);
    let (r, ev) = run();
    assert_eq!(r.code, 2, "{}", r.stderr);
    let cached: Vec<&Value> = ev.iter().filter(|e| e["event"] == "cached").map(|e| &e["step"]).collect();
    assert!(cached.contains(&&Value::from("small")) && cached.contains(&&Value::from("small_stats")), "{ev:?}");
}
