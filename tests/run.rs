//! `labrun run` against real cache directories: reuse, crash safety, concurrency,
//! corruption and failures.

mod common;
use common::{Run, labrun, root};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn pipeline(name: &str) -> String {
    root().join("tests/pipelines").join(name).display().to_string()
}

fn run_json(dir: &Path, cache: &Path, file: &str, extra: &[&str]) -> (Run, Vec<Value>) {
    let mut args = vec!["run", file, "--json", "--cache", cache.to_str().unwrap()];
    args.extend_from_slice(extra);
    let r = labrun(dir, &args);
    let events = r.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (r, events)
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

fn summary(events: &[Value]) -> &Value {
    events.iter().find(|e| e["event"] == "summary").expect("a summary event")
}

fn actions(cache: &Path) -> usize {
    walk(&cache.join("actions")).len()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn second_run_executes_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = pipeline("chains.lab");
    let (r, ev) = run_json(dir.path(), &cache, &file, &["--set", "rows=2_000"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(summary(&ev)["executed"], 18);
    let r2 = labrun(dir.path(), &["run", &file, "--cache", cache.to_str().unwrap(), "--set", "rows=2_000"]);
    assert_eq!(r2.code, 0);
    assert!(r2.stderr.contains("all 18 steps cached, nothing to run"), "{}", r2.stderr);
    // The report is written again from the cache.
    let results = std::fs::read_to_string(dir.path().join("results/chains/results.json")).unwrap();
    assert!(results.contains("\"rows\""));
    assert!(dir.path().join("results/chains/results.md").is_file());
}

#[test]
fn two_pipelines_share_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::write(
        dir.path().join("first.lab"),
        "n = generate.noise(shape: [8], count: 1_000, seed: 7)\ns = score.stats(n)\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("second.lab"),
        "# Same noise, written differently, used differently.\nshared = generate.noise(count: 1000, shape: [8], seed: 7, low: -1)\nkept = filter.take(shared, count: 10)\n",
    )
    .unwrap();
    let c = cache.to_str().unwrap();
    assert_eq!(labrun(dir.path(), &["run", "first.lab", "--cache", c]).code, 0);
    let plan = labrun(dir.path(), &["plan", "second.lab", "--cache", c]);
    assert!(plan.stdout.contains("1 cached, 1 to run"), "{}", plan.stdout);
    assert!(plan.stdout.contains("cached (first)"), "{}", plan.stdout);
    let (r, ev) = run_json(dir.path(), &cache, "second.lab", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(summary(&ev)["executed"], 1);
    assert_eq!(summary(&ev)["reused_from_other_pipelines"], 1);
    let human = labrun(dir.path(), &["run", "second.lab", "--cache", c, "--force", "kept"]);
    assert!(human.stderr.contains("1 reused from other pipelines"), "{}", human.stderr);
}

#[test]
fn why_explains_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let file = pipeline("chains.lab");
    assert_eq!(labrun(dir.path(), &["run", &file, "--cache", c, "--set", "rows=2_000"]).code, 0);
    let w = labrun(dir.path(), &["why", &file, "kept[1]", "--cache", c, "--set", "rows=2_000"]);
    assert!(w.stdout.contains("`kept[1]` is cached"), "{}", w.stdout);
    let w = labrun(dir.path(), &["why", &file, "noise[1]", "--cache", c, "--set", "rows=3_000"]);
    assert!(w.stdout.contains("params.count 2000 → 3000"), "{}", w.stdout);
    let w = labrun(dir.path(), &["why", &file, "stats[1]", "--cache", c, "--set", "rows=3_000"]);
    assert!(
        w.stdout.contains("its input `kept[1]` is not cached") || w.stdout.contains("input `noise[1]`"),
        "{}",
        w.stdout
    );
}

#[test]
fn killed_runs_resume_without_recomputing_or_corrupting() {
    let dir = tempfile::tempdir().unwrap();
    let file = pipeline("chains.lab");
    // The reference: one uninterrupted run in its own cache.
    let ref_cache = dir.path().join("ref");
    let ref_dir = dir.path().join("ref_out");
    std::fs::create_dir(&ref_dir).unwrap();
    let (r, _) = run_json(&ref_dir, &ref_cache, &file, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Results name their artifacts' folders, which differ between caches: compare the rest.
    let results = common::results_without_dirs;
    let reference = results(&ref_dir.join("results/chains/results.json"));

    let cache = dir.path().join("cache");
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut kills = 0;
    for _ in 0..8 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = 20 + rng % 900;
        let mut child = Command::new(env!("CARGO_BIN_EXE_labrun"))
            .current_dir(dir.path())
            .args(["run", &file, "--json", "--cache", cache.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // Whatever was committed is whole: verify finds nothing corrupt.
        let v = labrun(dir.path(), &["cache", "verify", "--cache", cache.to_str().unwrap()]);
        assert_eq!(v.code, 0, "corrupt entry after a kill: {}", v.stdout);
        // Resuming computes exactly the steps that had not finished.
        let done_before = actions(&cache);
        let (r, ev) = run_json(dir.path(), &cache, &file, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(count(&ev, "executed"), 18 - done_before, "finished steps were recomputed");
        let out = results(&dir.path().join("results/chains/results.json"));
        assert_eq!(out, reference, "a resumed run differs from an uninterrupted one");
        // Start the next round from scratch.
        std::fs::remove_dir_all(&cache).unwrap();
    }
    assert!(kills >= 3, "only {kills} runs were killed mid-way; the test proved little");
}

#[test]
fn concurrent_runs_share_one_cache_and_run_each_action_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = pipeline("chains.lab");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_labrun"))
            .current_dir(dir.path())
            .args([
                "run",
                &file,
                "--json",
                "--cache",
                cache.to_str().unwrap(),
                "--results",
                "unused",
                "--set",
                "rows=60_000",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let executed = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains("\"event\":\"executed\"")).count()
    };
    assert_eq!(executed(&a) + executed(&b), 18, "an action ran twice (or never)");
    assert_eq!(actions(&cache), 18);
}

#[test]
fn a_flipped_byte_is_caught_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let file = pipeline("chains.lab");
    assert_eq!(run_json(dir.path(), &cache, &file, &["--set", "rows=2_000"]).0.code, 0);
    // Corrupt one dataset file in the middle of the store.
    let victim = walk(&cache.join("artifacts")).into_iter().find(|p| p.ends_with("data.safetensors")).unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() - 7;
    bytes[at] ^= 0x40;
    std::fs::write(&victim, bytes).unwrap();
    let v = labrun(dir.path(), &["cache", "verify", "--cache", c]);
    assert_eq!(v.code, 1);
    assert!(v.stdout.contains("1 corrupt"), "{}", v.stdout);
    // The next run recomputes that one step; its identical output keeps the rest cached.
    let (r, ev) = run_json(dir.path(), &cache, &file, &["--set", "rows=2_000"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(summary(&ev)["executed"], 1);
    assert_eq!(labrun(dir.path(), &["cache", "verify", "--cache", c]).code, 0);
}

#[test]
fn a_failing_step_is_not_cached_and_its_dependents_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = pipeline("broken_chain.lab");
    let (r, ev) = run_json(dir.path(), &cache, &file, &["--keep-going"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("step `bad` (filter.take) failed: argument `count` is 5000 but the dataset has only 100 rows"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("broken_chain.lab:6:7"), "the failure should point at its line:\n{}", r.stderr);
    let skipped: Vec<&Value> = ev.iter().filter(|e| e["event"] == "skipped").collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["step"], "bad_stats");
    assert_eq!(skipped[0]["because"], "bad");
    assert_eq!(summary(&ev)["executed"], 3, "good, good_stats and source ran");
    assert_eq!(actions(&cache), 3, "the failure left a cache entry");
    // Without --keep-going the run stops starting steps; the failure still is not cached.
    let (r, ev) = run_json(dir.path(), &cache, &file, &["--force-all", "-j", "1"]);
    assert_eq!(r.code, 1);
    assert_eq!(count(&ev, "failed"), 1);
    assert_eq!(actions(&cache), 3);
}

#[test]
fn failures_are_typed_and_an_input_deleted_by_hand_points_at_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let file = pipeline("broken_chain.lab");
    let (r, ev) = run_json(dir.path(), &cache, &file, &["--keep-going"]);
    assert_eq!(r.code, 1, "the op refused its arguments: the user's fault");
    let failed = ev.iter().find(|e| e["event"] == "failed").expect("a failed event");
    assert_eq!((&failed["step"], &failed["failure"]), (&Value::from("bad"), &Value::from("op")));
    // Delete `good`'s artifact behind labrun's back, then make its dependent run again.
    let record = walk(&cache.join("runs")).into_iter().find(|p| p.extension().is_some_and(|e| e == "json")).unwrap();
    let record: Value = serde_json::from_str(&std::fs::read_to_string(record).unwrap()).unwrap();
    let id = record["steps"]["good"][2].as_str().unwrap().to_string();
    std::fs::remove_dir_all(cache.join("artifacts").join(&id[..2]).join(&id)).unwrap();
    let (r, ev) = run_json(dir.path(), &cache, &file, &["--keep-going", "--force", "good_stats"]);
    assert_eq!(r.code, 2, "a cache that lost a file is the machine's problem:\n{}", r.stderr);
    let failed: Vec<&Value> = ev.iter().filter(|e| e["event"] == "failed").collect();
    let missing = failed.iter().find(|e| e["step"] == "good_stats").expect("good_stats failed");
    assert_eq!(missing["failure"], "missing_input");
    assert!(r.stderr.contains("missing from the cache") && r.stderr.contains("labrun cache verify"), "{}", r.stderr);
    // `verify` forgets the result whose artifact is gone; the next run computes it again.
    let v = labrun(dir.path(), &["cache", "verify", "--cache", c]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    let (r, ev) = run_json(dir.path(), &cache, &file, &["--keep-going"]);
    assert_eq!(r.code, 1, "only `bad` fails now:\n{}", r.stderr);
    let steps =
        |kind: &str| -> Vec<Value> { ev.iter().filter(|e| e["event"] == kind).map(|e| e["step"].clone()).collect() };
    assert!(steps("executed").contains(&Value::from("good")), "{ev:?}");
    // The same bytes again: `good_stats` keeps its cached result (early cutoff).
    assert!(steps("cached").contains(&Value::from("good_stats")), "{ev:?}");
}

#[test]
fn imported_files_are_keyed_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    // Train and export a tiny model, then import its ONNX file in a second pipeline.
    std::fs::write(
        dir.path().join("make.lab"),
        "d = data.digits()\nm = model.mlp(inputs: 64, hidden: [8], outputs: 10)\nt = finetune.supervised(m, d, epochs: 1)\n",
    )
    .unwrap();
    let (r, _) = run_json(dir.path(), &cache, "make.lab", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let onnx = walk(&cache.join("artifacts")).into_iter().filter(|p| p.ends_with("model.onnx")).collect::<Vec<_>>();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::fs::copy(&onnx[0], dir.path().join("models/net.onnx")).unwrap();
    std::fs::write(
        dir.path().join("use.lab"),
        "test = data.digits(split: \"test\")\nnet = model.onnx(path: \"models/net.onnx\")\nacc = score.accuracy(net, test)\n",
    )
    .unwrap();
    let (r, _) = run_json(dir.path(), &cache, "use.lab", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(labrun(dir.path(), &["run", "use.lab", "--cache", c]).stderr.contains("nothing to run"));
    // Same name, other content: the import and its score are recomputed.
    std::fs::copy(&onnx[1], dir.path().join("models/net.onnx")).unwrap();
    let plan = labrun(dir.path(), &["plan", "use.lab", "--cache", c]);
    assert!(plan.stdout.contains("1 cached, 2 to run"), "{}", plan.stdout);
    // A missing file is reported where it is named, before anything runs.
    std::fs::remove_file(dir.path().join("models/net.onnx")).unwrap();
    let r = labrun(dir.path(), &["check", "use.lab"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot read `models/net.onnx`") && r.stderr.contains("use.lab:2:"), "{}", r.stderr);
}

#[test]
fn ctrl_c_stops_cleanly_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = pipeline("chains.lab");
    let child = Command::new(env!("CARGO_BIN_EXE_labrun"))
        .current_dir(dir.path())
        .args(["run", &file, "--cache", cache.to_str().unwrap(), "--set", "rows=400_000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopping after the running steps"), "{stderr}");
    assert_eq!(labrun(dir.path(), &["cache", "verify", "--cache", cache.to_str().unwrap()]).code, 0);
    let (r, ev) = run_json(dir.path(), &cache, &file, &["--set", "rows=400_000"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(summary(&ev)["executed"].as_u64().unwrap() + summary(&ev)["cached"].as_u64().unwrap(), 18);
}

#[test]
fn a_value_only_the_op_can_judge_fails_at_run_time_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    // The digits' training split has 1,438 rows: only the data can say 5,000 is too many.
    std::fs::write(dir.path().join("h.lab"), "h = filter.head(data.digits(), count: 5000)\n").unwrap();
    assert_eq!(labrun(dir.path(), &["check", "h.lab"]).code, 0, "checking needs only the signature");
    let r = labrun(dir.path(), &["run", "h.lab", "--cache", dir.path().join("c").to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is 5000 but the dataset has only 1438 rows"), "{}", r.stderr);
    assert!(r.stderr.contains("h.lab:1:5"), "{}", r.stderr);
}

#[test]
fn a_rule_between_parameters_fails_at_check_time_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lm.lab"), "base = model.gpt(alphabet: \"ab\", width: 10, heads: 4)\n").unwrap();
    let r = labrun(dir.path(), &["check", "lm.lab"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("`width` 10 is not a multiple of `heads` 4"), "{}", r.stderr);
    assert!(r.stderr.contains("lm.lab:1:"), "{}", r.stderr);
}

#[test]
fn gc_keeps_the_latest_run_and_pins() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let file = pipeline("chains.lab");
    let count = |ls: &Run| ls.stdout.lines().last().unwrap().split(' ').next().unwrap().parse::<usize>().unwrap();
    assert_eq!(run_json(dir.path(), &cache, &file, &["--set", "rows=2_000"]).0.code, 0);
    let first = labrun(dir.path(), &["cache", "ls", "--cache", c]);
    assert_eq!(count(&first), 18);
    // Pin one artifact of the first run, then run with other params: the first run's
    // artifacts are no longer the latest run's, and gc removes all but the pinned one.
    let pinned = first.stdout.lines().next().unwrap().split_whitespace().next().unwrap().to_string();
    assert_eq!(labrun(dir.path(), &["cache", "pin", &pinned, "--cache", c]).code, 0);
    assert_eq!(run_json(dir.path(), &cache, &file, &["--set", "rows=3_000"]).0.code, 0);
    assert_eq!(count(&labrun(dir.path(), &["cache", "ls", "--cache", c])), 36);
    let dry = labrun(dir.path(), &["cache", "gc", "--dry-run", "--cache", c]);
    assert!(dry.stdout.starts_with("would remove 17 artifacts"), "{}", dry.stdout);
    assert_eq!(count(&labrun(dir.path(), &["cache", "ls", "--cache", c])), 36, "a dry run removes nothing");
    let gc = labrun(dir.path(), &["cache", "gc", "--cache", c]);
    assert!(gc.stdout.starts_with("removed 17 artifacts"), "{}", gc.stdout);
    assert_eq!(count(&labrun(dir.path(), &["cache", "ls", "--cache", c])), 19);
    // The latest run is intact.
    assert!(labrun(dir.path(), &["run", &file, "--cache", c, "--set", "rows=3_000"]).stderr.contains("nothing to run"));
    let show = labrun(dir.path(), &["cache", "show", &pinned, "--cache", c]);
    assert!(show.stdout.contains("artifact ") && show.stdout.contains("size"), "{}", show.stdout);
    assert_eq!(labrun(dir.path(), &["cache", "rm", &pinned, "--cache", c]).code, 0);
    assert_eq!(labrun(dir.path(), &["cache", "show", &pinned, "--cache", c]).code, 1);
}
