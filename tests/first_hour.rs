//! What a new user meets in the first hour: output that suits where it goes (pipes that
//! close early, logs), the run's short summary and `labrun show`, the cache found by step
//! names, the ONNX Runtime install announced, and the messages for the usual slips. (That
//! tests needing a missing service are reported ignored is checked by each such test
//! binary itself: `tests/common/mod.rs`, `run_service_tests`.)

mod common;
use common::{labrun, labrun_env, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn chains() -> String {
    root().join("tests/pipelines/chains.lab").to_string_lossy().into_owned()
}

/// A small run of `chains.lab` in `dir` with its own cache; returns the cache.
fn small_run(dir: &Path) -> PathBuf {
    let cache = dir.join("cache");
    let r = labrun(dir, &["run", &chains(), "--cache", cache.to_str().unwrap(), "--set", "rows=2000"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    cache
}

/// Runs labrun with standard output (and, if `close_stderr`, standard error) a pipe whose
/// reader has already gone, as in `labrun … | head` once `head` has read enough.
/// Returns (exit code or None if killed by a signal, the signal, stderr).
fn with_closed_stdout(dir: &Path, args: &[&str], close_stderr: bool) -> (Option<i32>, Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_labrun"));
    cmd.current_dir(dir).args(args).env("NO_COLOR", "1").env_remove("LABRUN_CACHE").stdout(writer);
    if close_stderr {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        cmd.stderr(writer);
    } else {
        cmd.stderr(Stdio::piped());
    }
    let out = cmd.output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    (out.status.code(), out.status.signal(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn listing_commands_end_quietly_when_the_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let cache = small_run(dir.path());
    let c = cache.to_str().unwrap();
    let file = chains();
    let listings: Vec<Vec<&str>> = vec![
        vec!["ops"],
        vec!["ops", "filter"],
        vec!["ops", "filter.take"],
        vec!["cache", "ls", "--cache", c],
        vec!["cache", "ls", "--names", "--cache", c],
        vec!["cache", "show", "stats[0]", "--cache", c],
        vec!["cache", "verify", "--cache", c],
        vec!["log", "--cache", c],
        vec!["log", "1", "--cache", c],
        vec!["plan", &file, "--cache", c],
        vec!["graph", &file],
        vec!["check", &file],
        vec!["why", &file, "stats[0]", "--cache", c],
        vec!["show", &file],
        vec!["doctor", "--cache", c],
        vec!["--help"],
    ];
    for args in &listings {
        let (code, signal, stderr) = with_closed_stdout(dir.path(), args, false);
        // As `ls | head` does: ended by SIGPIPE (13), silently.
        assert!(
            code == Some(0) || signal == Some(13),
            "`labrun {}` ended with {code:?}/{signal:?}:\n{stderr}",
            args.join(" ")
        );
        assert!(
            !stderr.contains("internal error") && !stderr.contains("Broken pipe"),
            "`labrun {}`:\n{stderr}",
            args.join(" ")
        );
    }
}

#[test]
fn a_run_whose_readers_go_away_still_computes_and_records_everything() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let file = chains();
    let (code, signal, _) = with_closed_stdout(dir.path(), &["run", &file, "--cache", c, "--set", "rows=2000"], true);
    assert_eq!((code, signal), (Some(0), None));
    assert!(dir.path().join("results/chains/results.md").is_file());
    let again = labrun(dir.path(), &["run", &file, "--cache", c, "--set", "rows=2000"]);
    assert!(again.stderr.contains("all 18 steps cached"), "{}", again.stderr);
    let log = labrun(dir.path(), &["log", "--cache", c]);
    assert_eq!(log.stdout.lines().count(), 3, "both runs are in the index:\n{}", log.stdout);
}

#[test]
fn logs_get_timestamped_lines_with_training_progress() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = root().join("pipelines/subliminal_mlp.lab");
    let r = labrun_env(
        dir.path(),
        &[
            "run",
            file.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--set",
            "seeds=[0]",
            "--set",
            "noise_rows=2000",
            "--set",
            "student_epochs=1",
            "-j",
            "1",
        ],
        &[("LABRUN_PROGRESS_SECS", "0")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stamped = |l: &&str| {
        let b = l.as_bytes();
        b.len() > 11 && b[0] == b'[' && b[3] == b':' && b[6] == b':' && b[9] == b']'
    };
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(!r.stderr.contains('\r') && !r.stderr.contains("\x1b["), "no terminal drawing in a log:\n{}", r.stderr);
    let started = lines.iter().filter(|l| stamped(l) && l.contains("] started  ")).count();
    let finished = lines.iter().filter(|l| stamped(l) && l.contains("] finished ")).count();
    assert!(started >= 20 && started == finished, "{started} started, {finished} finished:\n{}", r.stderr);
    assert!(
        lines.iter().any(|l| stamped(l) && l.contains("] progress teacher[0]: ") && l.contains("loss")),
        "training progress with its loss:\n{}",
        r.stderr
    );
    // At a slow pace, one progress line per step: its first.
    let r = labrun_env(
        dir.path(),
        &[
            "run",
            file.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--set",
            "seeds=[1]",
            "--set",
            "noise_rows=2000",
            "--set",
            "student_epochs=1",
            "-j",
            "1",
        ],
        &[("LABRUN_PROGRESS_SECS", "3600")],
    );
    let per_teacher = r.stderr.lines().filter(|l| l.contains("] progress teacher[1]: ")).count();
    assert_eq!(per_teacher, 1, "{}", r.stderr);
    // `--quiet`: nothing but the summary.
    let q = labrun(
        dir.path(),
        &[
            "run",
            file.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--set",
            "seeds=[0]",
            "--set",
            "noise_rows=2000",
            "--set",
            "student_epochs=1",
            "--quiet",
        ],
    );
    assert_eq!(q.code, 0, "{}", q.stderr);
    assert_eq!(q.stderr.trim().lines().count(), 1, "{}", q.stderr);
}

#[test]
fn a_run_ends_with_its_headlines_and_show_prints_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = root().join("pipelines/subliminal_mlp.lab");
    let file = file.to_str().unwrap();
    let args = [
        "run",
        file,
        "--cache",
        cache.to_str().unwrap(),
        "--set",
        "seeds=[0]",
        "--set",
        "noise_rows=2000",
        "--set",
        "student_epochs=1",
    ];
    let r = labrun(dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = "Subliminal learning in an MLP (digits): Test accuracy on digits over seeds (chance is 10%)\n  student, same init, aux logits only: mean ± std ";
    assert!(r.stdout.starts_with(expected), "{}", r.stdout);
    assert!(r.stdout.contains("\n  student, different init, aux logits only: mean ± std "), "{}", r.stdout);
    assert!(!r.stdout.contains("teacher:") && !r.stdout.contains("| "), "only the headline rows:\n{}", r.stdout);
    assert!(
        r.stdout
            .trim_end()
            .ends_with(&format!("results: results/subliminal_mlp/results.md (`labrun show {file}` prints them)")),
        "{}",
        r.stdout
    );
    // The JSON marks the headline rows too.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results/subliminal_mlp/results.json")).unwrap())
            .unwrap();
    let rows = json["reports"][0]["tables"][0]["rows"].as_array().unwrap();
    let marked: Vec<&str> =
        rows.iter().filter(|r| r["headline"] == true).map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(marked, ["student, same init, aux logits only", "student, different init, aux logits only"]);
    // A cached rerun says the same; with `--json`, as numbers.
    let again = labrun(dir.path(), &args);
    assert_eq!(again.stdout, r.stdout);
    let j = labrun(dir.path(), &[&args[..], &["--json"]].concat());
    let summary: serde_json::Value = serde_json::from_str(j.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["results"], "results/subliminal_mlp/results.md");
    let first = &summary["headlines"][0];
    assert_eq!(first["label"], "student, same init, aux logits only");
    assert_eq!(first["metrics"]["n"], 1.0);
    assert!(first["metrics"]["mean"].as_f64().is_some_and(|m| (0.0..=1.0).contains(&m)), "{summary}");
    // `show` by file, by name, by folder.
    let md = std::fs::read_to_string(dir.path().join("results/subliminal_mlp/results.md")).unwrap();
    for what in [file, "subliminal_mlp", "results/subliminal_mlp"] {
        let s = labrun(dir.path(), &["show", what]);
        assert_eq!((s.code, &s.stdout), (0, &md), "{what}: {}", s.stderr);
    }
    // Results written elsewhere: the hint names their folder, which `show` takes.
    let moved = labrun(dir.path(), &[&args[..], &["--results", "elsewhere"]].concat());
    assert!(
        moved.stdout.trim_end().ends_with("results: elsewhere/results.md (`labrun show elsewhere` prints them)"),
        "{}",
        moved.stdout
    );
    assert_eq!(labrun(dir.path(), &["show", "elsewhere"]).stdout, md);
    let none = labrun(dir.path(), &["show", "tiny_lm"]);
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("no results at results/tiny_lm/results.md (no such file)"), "{}", none.stderr);
}

#[test]
fn the_cache_is_found_by_step_names() {
    let dir = tempfile::tempdir().unwrap();
    let cache = small_run(dir.path());
    let c = cache.to_str().unwrap();
    let show = labrun(dir.path(), &["cache", "show", "stats[1]", "--cache", c]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(show.stdout.starts_with("step     stats[1] (run 1, chains; score.stats)\nartifact "), "{}", show.stdout);
    assert!(show.stdout.contains("metrics.json"), "{}", show.stdout);
    // The same artifact by its id.
    let id = show.stdout.lines().nth(1).unwrap().trim_start_matches("artifact ").to_string();
    let by_id = labrun(dir.path(), &["cache", "show", &id[..10], "--cache", c]);
    assert!(by_id.stdout.starts_with(&format!("artifact {id}")), "{}", by_id.stdout);
    // `--run N`, a name that is not there, a run that is not there.
    assert_eq!(labrun(dir.path(), &["cache", "show", "stats[1]", "--run", "1", "--cache", c]).code, 0);
    let typo = labrun(dir.path(), &["cache", "show", "stat[1]", "--cache", c]);
    assert_eq!(typo.code, 1);
    assert!(
        typo.stderr.contains("run 1 (chains) has no step of that name; did you mean `stats[1]`?"),
        "{}",
        typo.stderr
    );
    let gone = labrun(dir.path(), &["cache", "show", "stats[1]", "--run", "7", "--cache", c]);
    assert!(gone.code == 1 && gone.stderr.contains("no run 7 in the index"), "{}", gone.stderr);
    // A step whose name looks like an id prefix (`bad`) is found as a step.
    let broken = root().join("tests/pipelines/broken_chain.lab");
    let r = labrun(dir.path(), &["run", broken.to_str().unwrap(), "--keep-going", "--cache", c]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let bad = labrun(dir.path(), &["cache", "show", "bad", "--cache", c]);
    assert!(
        bad.code == 1 && bad.stderr.contains("step `bad` of run 2 (broken_chain) has no artifact: it failed"),
        "{}",
        bad.stderr
    );
    let source = labrun(dir.path(), &["cache", "show", "source", "--cache", c]);
    assert!(source.stdout.starts_with("step     source (run 2, broken_chain; generate.noise)"), "{}", source.stdout);
    // `ls --names`: every artifact of the run with its step.
    let ls = labrun(dir.path(), &["cache", "ls", "--names", "--cache", c]);
    for step in ["noise[0]", "kept[1]", "stats[0]", "stats[1]"] {
        assert!(ls.stdout.contains(&format!("  chains: {step} ")), "{step}:\n{}", ls.stdout);
    }
}

#[test]
fn the_op_listing_has_one_line_per_op_and_names_give_the_full_text() {
    let dir = tempfile::tempdir().unwrap();
    let list = labrun_env(dir.path(), &["ops"], &[("COLUMNS", "100")]);
    assert_eq!(list.code, 0);
    let ops: Vec<&str> = list.stdout.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(ops.len() > 40, "{}", list.stdout);
    for l in &ops {
        assert!(l.chars().count() <= 100, "{} characters: {l}", l.chars().count());
    }
    let take = ops.iter().find(|l| l.trim_start().starts_with("filter.take ")).unwrap();
    let full = labrun(dir.path(), &["ops", "filter.take"]);
    let doc: String = full.stdout.lines().nth(2).unwrap().chars().take(20).collect();
    assert!(doc.chars().count() == 20 && take.contains(&doc), "{take}\n{doc}");
    let kind = labrun(dir.path(), &["ops", "filter"]);
    assert!(
        kind.stdout.lines().filter(|l| l.starts_with("  ")).all(|l| l.trim_start().starts_with("filter.")),
        "{}",
        kind.stdout
    );
}

#[test]
fn the_usual_slips_get_messages_that_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // The `.lab` left off.
    let file = root().join("pipelines/subliminal_mlp");
    let r = labrun(dir.path(), &["check", file.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no such file"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("did you mean `{}.lab`?", file.display())), "{}", r.stderr);
    // A list param given a number: the default is shown as it is written.
    let r = labrun(dir.path(), &["check", &format!("{}.lab", file.display()), "--set", "seeds=3"]);
    assert!(r.stderr.contains("like the default: `seeds=[0, 1, 2, 3, 4]`"), "{}", r.stderr);
    // `run --help` says what FILE is and which devices there are.
    let h = labrun(dir.path(), &["run", "--help"]);
    assert!(h.stdout.contains("The pipeline to run: a `.lab` file"), "{}", h.stdout);
    assert!(h.stdout.contains("[possible values: cpu, cuda]"), "{}", h.stdout);
    let bad = labrun(dir.path(), &["run", "x.lab", "--device", "tpu"]);
    assert!(bad.code == 1 && bad.stderr.contains("[possible values: cpu, cuda]"), "{}", bad.stderr);
    // `doctor` without Slurm's tools says so in a line, not sbatch's own output.
    let empty = tempfile::tempdir().unwrap();
    let d = labrun_env(dir.path(), &["doctor"], &[("PATH", empty.path().to_str().unwrap())]);
    let slurm = d.stdout.lines().find(|l| l.starts_with("slurm")).unwrap_or_default();
    assert!(slurm.contains("`sbatch` is not installed here; install Slurm's client tools"), "{}", d.stdout);
}

/// The real ONNX Runtime library this machine uses, as `labrun doctor` finds it.
fn real_library(dir: &Path) -> PathBuf {
    let d = labrun(dir, &["doctor"]);
    let line =
        d.stdout.lines().find(|l| l.starts_with("library")).unwrap_or_else(|| panic!("{}{}", d.stdout, d.stderr));
    PathBuf::from(line.trim_start_matches("library").trim())
}

#[test]
fn installing_onnx_runtime_is_announced_with_what_where_and_how_big() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A wheel made from the library this machine has (so that no download is needed), and
    // a `python3` that finds no onnxruntime package.
    let lib = real_library(d);
    let version = lab_nn::runtime::PINNED_VERSION;
    let wheel = d.join(format!("onnxruntime-{version}-py3-none-any.whl"));
    let make = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, zipfile\n\
             lib, out, v = sys.argv[1], sys.argv[2], sys.argv[3]\n\
             info = 'onnxruntime-' + v + '.dist-info/'\n\
             with zipfile.ZipFile(out, 'w') as z:\n\
             \x20   z.write(lib, 'onnxruntime/capi/libonnxruntime.so.' + v)\n\
             \x20   z.writestr(info + 'METADATA', 'Metadata-Version: 2.1\\nName: onnxruntime\\nVersion: ' + v + '\\n')\n\
             \x20   z.writestr(info + 'WHEEL', 'Wheel-Version: 1.0\\nGenerator: labrun-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
             \x20   z.writestr(info + 'RECORD', '')\n",
        )
        .arg(&lib)
        .arg(&wheel)
        .arg(version)
        .output()
        .unwrap();
    assert!(make.status.success(), "{}", String::from_utf8_lossy(&make.stderr));
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let python =
        String::from_utf8(Command::new("sh").args(["-c", "command -v python3"]).output().unwrap().stdout).unwrap();
    let shim = bin.join("python3");
    std::fs::write(
        &shim,
        format!("#!/bin/sh\ncase \"$2\" in *find_spec*) echo; exit 0;; esac\nexec {} \"$@\"\n", python.trim()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let home = d.join("fresh-data");
    let env = [
        ("LABRUN_HOME", home.to_str().unwrap()),
        ("LABRUN_ORT_WHEEL", wheel.to_str().unwrap()),
        ("PATH", path.as_str()),
        ("ORT_DYLIB_PATH", ""),
    ];
    let file = root().join("pipelines/subliminal_mlp.lab");
    let cache = d.join("cache");
    let r = labrun_env(
        d,
        &[
            "run",
            file.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--set",
            "seeds=[0]",
            "--set",
            "noise_rows=1000",
            "--set",
            "student_epochs=1",
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let target = home.join(format!("onnxruntime-{version}"));
    let first = format!(
        "] ONNX Runtime not found; installing it from {} ({:.1} MB) into {}",
        wheel.display(),
        wheel.metadata().unwrap().len() as f64 / 1e6,
        target.display()
    );
    assert!(r.stderr.contains(&first), "{first}\n{}", r.stderr);
    let done =
        r.stderr.lines().find(|l| l.contains("] installed ONNX Runtime in ")).unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(done.contains(&format!("in {} (", target.display())) && done.contains(" MB on disk, "), "{done}");
    let installed = target.join(format!("onnxruntime/capi/libonnxruntime.so.{version}"));
    assert!(installed.is_file());
    // Once installed, it is used without a word.
    let again = labrun_env(
        d,
        &[
            "run",
            file.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--force-all",
            "--set",
            "seeds=[0]",
            "--set",
            "noise_rows=1000",
            "--set",
            "student_epochs=1",
        ],
        &env,
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stderr.contains("ONNX Runtime not found"), "{}", again.stderr);
    let d2 = labrun_env(d, &["doctor"], &env);
    assert!(d2.stdout.contains(&format!("library     {}", installed.display())), "{}", d2.stdout);
}
