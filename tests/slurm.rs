//! `--executor slurm` against a real single-node Slurm cluster (slurmctld, slurmd and munge,
//! started by `scripts/slurm-cluster start`, which `.ci/run` calls and which exports
//! `SLURM_CONF`). CI sets `LABRUN_REQUIRE_SLURM=1`, so there a missing cluster fails the
//! tests; elsewhere they are reported ignored, with the reason.

mod common;
use common::{labrun, root};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a cluster answers.
fn cluster() -> Result<(), String> {
    let ok = Command::new("sinfo").args(["-h", "-o", "%a"]).output().is_ok_and(|o| o.status.success());
    if ok {
        Ok(())
    } else {
        Err("no Slurm cluster answers (start one: `eval \"$(scripts/slurm-cluster start)\"`)".into())
    }
}

fn main() -> std::process::ExitCode {
    common::run_service_tests(
        common::Service { available: cluster, required_by: "LABRUN_REQUIRE_SLURM" },
        &[
            ("a_pipeline_run_through_slurm_matches_a_local_run", a_pipeline_run_through_slurm_matches_a_local_run),
            ("a_failing_step_reports_its_error_at_its_line", a_failing_step_reports_its_error_at_its_line),
            (
                "a_job_cancelled_under_the_driver_is_submitted_again",
                a_job_cancelled_under_the_driver_is_submitted_again,
            ),
            (
                "a_killed_driver_restarts_without_submitting_work_again",
                a_killed_driver_restarts_without_submitting_work_again,
            ),
            ("two_drivers_at_once_compute_each_action_once", two_drivers_at_once_compute_each_action_once),
            ("ctrl_c_cancels_the_jobs_the_driver_submitted", ctrl_c_cancels_the_jobs_the_driver_submitted),
            (
                "labrun_toml_configures_the_executor_and_retries_run_out",
                labrun_toml_configures_the_executor_and_retries_run_out,
            ),
            ("a_failure_stops_what_is_not_yet_submitted", a_failure_stops_what_is_not_yet_submitted),
        ],
    )
}

fn pipeline(name: &str) -> String {
    root().join("tests/pipelines/slurm").join(name).to_string_lossy().into_owned()
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_labrun"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("LABRUN_CACHE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("labrun starts")
}

/// Waits for a child to exit; returns its code and stderr.
fn finish(mut child: Child, limit: Duration) -> (i32, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("labrun did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The jobs a cache's drivers submitted: (job id, steps).
fn submitted(cache: &Path) -> Vec<(u64, Vec<String>)> {
    let text = std::fs::read_to_string(cache.join("slurm/submitted.log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].parse().unwrap(), f[3].split(' ').map(str::to_string).collect())
        })
        .collect()
}

fn state(job: u64) -> String {
    let out = Command::new("squeue").args(["-h", "-t", "all", "-o", "%T", "-j", &job.to_string()]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until `step` has a job in the RUNNING state, and returns the job.
fn running_job(cache: &Path, step: &str) -> u64 {
    let started = Instant::now();
    loop {
        let job = submitted(cache).iter().rev().find(|(_, s)| s.iter().any(|x| x == step)).map(|(id, _)| *id);
        if let Some(id) = job
            && state(id) == "RUNNING"
        {
            return id;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "`{step}` never ran: {:?}", submitted(cache));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig}");
}

fn executed(stderr: &str) -> usize {
    // `labrun: 18 steps: 10 executed, 8 cached (1.2s)` or `labrun: all 18 steps cached, …`
    if stderr.lines().last().is_some_and(|l| l.contains("nothing to run")) {
        return 0;
    }
    let line = stderr.lines().rev().find(|l| l.contains(" executed,")).unwrap_or_else(|| panic!("{stderr}"));
    let before = line.split(" executed").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

fn a_pipeline_run_through_slurm_matches_a_local_run() {
    let dir = tempfile::tempdir().unwrap();
    let (local, slurm) = (dir.path().join("local"), dir.path().join("slurm"));
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&slurm).unwrap();
    let file = pipeline("sweep.lab");
    let r = labrun(&local, &["run", &file, "--cache", local.join("cache").to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cache = slurm.join("cache");
    let args = ["run", &file, "--cache", cache.to_str().unwrap(), "--executor", "slurm"];
    let r = labrun(&slurm, &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Each row names its artifact's folder, which differs between the two caches.
    let read = |d: &Path| common::results_without_dirs(&d.join("results/sweep/results.json"));
    assert_eq!(read(&local), read(&slurm), "the same numbers either way");
    // 18 steps, in few jobs: small steps share one.
    let jobs = submitted(&cache);
    let steps: usize = jobs.iter().map(|(_, s)| s.len()).sum();
    assert_eq!(steps, 18);
    assert!(jobs.len() <= 8, "{jobs:?}");
    // Each result records the job that computed it.
    let actions = walk(&cache.join("actions"));
    assert_eq!(actions.len(), 18);
    for a in &actions {
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a).unwrap()).unwrap();
        let job: u64 = r["meta"]["slurm_job"].as_str().unwrap().parse().unwrap();
        assert!(jobs.iter().any(|(id, _)| *id == job));
    }
    // A rerun finds everything in the cache and submits nothing.
    let r = labrun(&slurm, &args);
    assert!(r.stderr.contains("nothing to run"), "{}", r.stderr);
    assert_eq!(submitted(&cache).len(), jobs.len());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

fn a_failing_step_reports_its_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = pipeline("failing.lab");
    let r = labrun(dir.path(), &["run", &file, "--cache", cache.to_str().unwrap(), "--executor", "slurm"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("step `too_many` (filter.head) failed"), "{}", r.stderr);
    assert!(r.stderr.contains("has only 10 rows"), "{}", r.stderr);
    assert!(r.stderr.contains("failing.lab:4"), "{}", r.stderr);
    // What succeeded is cached.
    assert!(r.stderr.contains("1 executed"), "{}", r.stderr);
}

fn a_job_cancelled_under_the_driver_is_submitted_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = pipeline("slow.lab");
    let child = spawn(dir.path(), &["run", &file, "--cache", cache.to_str().unwrap(), "--executor", "slurm"]);
    let job = running_job(&cache, "slow");
    // Slurm reports a job RUNNING a moment before its processes exist, and a cancel in that
    // moment reaches none of them: wait for the worker's first progress line.
    let started = Instant::now();
    while std::fs::read_dir(cache.join("slurm/progress")).map_or(true, |mut d| d.next().is_none()) {
        assert!(started.elapsed() < Duration::from_secs(90), "the worker of job {job} never reported progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(Command::new("scancel").arg(job.to_string()).status().unwrap().success());
    let (code, err) = finish(child, Duration::from_secs(180));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("Slurm job {job} ended CANCELLED")), "{err}");
    assert!(err.contains("submitting it again (attempt 2 of 3)"), "{err}");
    let slow_jobs = submitted(&cache).iter().filter(|(_, s)| s.contains(&"slow".to_string())).count();
    assert_eq!(slow_jobs, 2);
}

fn a_killed_driver_restarts_without_submitting_work_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = pipeline("slow.lab");
    let args = ["run", &file, "--cache", cache.to_str().unwrap(), "--executor", "slurm"];
    let child = spawn(dir.path(), &args);
    let job = running_job(&cache, "slow");
    signal(&child, "-KILL");
    let _ = finish(child, Duration::from_secs(10));
    // The job goes on without its driver; a new driver adopts it and submits only `after`.
    assert_eq!(state(job), "RUNNING");
    let r = labrun(dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let jobs = submitted(&cache);
    for step in ["base", "reward", "slow", "after"] {
        let n = jobs.iter().filter(|(_, s)| s.contains(&step.to_string())).count();
        assert_eq!(n, 1, "`{step}` submitted {n} times: {jobs:?}");
    }
    // `slow` was computed by the first driver's job: not this run's work.
    assert!(r.stderr.contains("1 executed, 3 cached"), "{}", r.stderr);
}

fn two_drivers_at_once_compute_each_action_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = pipeline("sweep.lab");
    let args = ["run", &file, "--cache", cache.to_str().unwrap(), "--executor", "slurm", "--set", "seeds=[10, 11, 12]"];
    let (a, b) = (spawn(dir.path(), &args), spawn(dir.path(), &args));
    let (ca, ea) = finish(a, Duration::from_secs(180));
    let (cb, eb) = finish(b, Duration::from_secs(180));
    assert_eq!((ca, cb), (0, 0), "{ea}\n{eb}");
    // 2 + 3 × 4 steps, each executed by exactly one of the two.
    assert_eq!(executed(&ea) + executed(&eb), 14, "{ea}\n{eb}");
    let actions = walk(&cache.join("actions"));
    assert_eq!(actions.len(), 14);
}

fn ctrl_c_cancels_the_jobs_the_driver_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = pipeline("slow.lab");
    let child = spawn(
        dir.path(),
        &["run", &file, "--cache", cache.to_str().unwrap(), "--executor", "slurm", "--set", "steps=20000"],
    );
    let job = running_job(&cache, "slow");
    signal(&child, "-INT");
    let (code, err) = finish(child, Duration::from_secs(30));
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("cancelling the Slurm jobs"), "{err}");
    let started = Instant::now();
    while state(job) != "CANCELLED" {
        assert!(started.elapsed() < Duration::from_secs(30), "job {job} is {}", state(job));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing of the run is left in the queue.
    for (id, _) in submitted(&cache) {
        let s = state(id);
        assert!(!matches!(s.as_str(), "PENDING" | "RUNNING"), "job {id} is {s}");
    }
}

/// The project's `labrun.toml` picks the executor and its settings; with no retries left, a
/// cancelled job fails its step with Slurm's reason and the job's log.
fn labrun_toml_configures_the_executor_and_retries_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = dir.path().join("slow.lab");
    std::fs::copy(pipeline("slow.lab"), &file).unwrap();
    std::fs::write(
        dir.path().join("labrun.toml"),
        "[run]\nexecutor = \"slurm\"\n\n[slurm]\nretries = 0\nmax_jobs = 2\n",
    )
    .unwrap();
    // A long `slow` (it is cancelled anyway): on a loaded machine a short one could end
    // before the cancel reaches it.
    let child =
        spawn(dir.path(), &["run", file.to_str().unwrap(), "--cache", cache.to_str().unwrap(), "--set", "steps=20000"]);
    let job = running_job(&cache, "slow");
    assert!(Command::new("scancel").arg(job.to_string()).status().unwrap().success());
    let (code, err) = finish(child, Duration::from_secs(120));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("Slurm job {job} ended CANCELLED")) && err.contains("no retries are left"), "{err}");
    assert!(err.contains("the job's log ends"), "{err}");
    // A typo in the file is an error that names it.
    std::fs::write(dir.path().join("labrun.toml"), "[slurm]\npartitoin = \"gpu\"\n").unwrap();
    let r = labrun(dir.path(), &["run", file.to_str().unwrap(), "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unknown field `partitoin`") && r.stderr.contains("labrun.toml"), "{}", r.stderr);
}

/// After a failure (without `--keep-going`), what the driver still held back for a free
/// slot is never submitted.
fn a_failure_stops_what_is_not_yet_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::write(dir.path().join("bad.jsonl"), "{\"text\": \"fine\"}\nnot json\n").unwrap();
    // Different memory requests: one job each; one job in flight at a time.
    let mut lab = String::from("broken = data.jsonl(path: \"bad.jsonl\")\n");
    for i in 1..=3 {
        lab.push_str(&format!(
            "n{i} = generate.noise(shape: [4], count: 10, seed: {i}, resources: {{mem: \"{}M\"}})\n",
            100 + i
        ));
    }
    std::fs::write(dir.path().join("stop.lab"), lab).unwrap();
    std::fs::write(dir.path().join("labrun.toml"), "[run]\nexecutor = \"slurm\"\n[slurm]\nmax_jobs = 1\n").unwrap();
    let r = labrun(dir.path(), &["run", "stop.lab", "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("step `broken` (data.jsonl) failed") && r.stderr.contains("1 failed, 3 skipped"),
        "{}",
        r.stderr
    );
    assert_eq!(submitted(&cache).len(), 1, "{:?}", submitted(&cache));
}
