//! The real `pipelines/subliminal.lab` at reduced scale: the subliminal effect appears
//! (same-init students far above cross-init ones), a rerun computes nothing, and the
//! ablation takes its teachers from the cache.

mod common;
use common::{labrun, root};
use serde_json::Value;

fn mean_of(results: &Value, label: &str) -> f64 {
    let rows = results["reports"][0]["tables"][0]["rows"].as_array().expect("a table");
    let row = rows.iter().find(|r| r["label"] == label).unwrap_or_else(|| panic!("no row `{label}` in {rows:?}"));
    row["metrics"]["mean"].as_f64().expect("a mean")
}

#[test]
fn subliminal_learning_shows_at_small_scale() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let file = root().join("pipelines/subliminal.lab");
    let f = file.to_str().unwrap();
    // Three seeds instead of five for the MLP, everything else as in the paper's
    // miniature; the language-model half at a token scale (it runs, it reports).
    let mlp_scale = ["--set", "seeds=[0, 1, 2]"];
    let lm_scale =
        ["--set", "lm_seeds=1", "--set", "base_steps=150", "--set", "student_steps=5", "--set", "teacher_samples=64"];
    let mut args = vec!["run", f, "--cache", c];
    args.extend(mlp_scale);
    args.extend(lm_scale);
    let r = labrun(dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("student, same init, aux logits only"), "the table is printed:\n{}", r.stdout);
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results/subliminal/results.json")).unwrap())
            .unwrap();
    let teacher = mean_of(&results, "teacher");
    let same = mean_of(&results, "student, same init, aux logits only");
    let cross = mean_of(&results, "student, different init, aux logits only");
    let untrained = mean_of(&results, "untrained reference");
    assert!(teacher > 0.9, "teacher accuracy {teacher}");
    assert!(cross < 0.2, "cross-init students should stay near chance, got {cross}");
    assert!(same > cross + 0.2, "same-init {same} is not clearly above cross-init {cross}");
    assert!(same > untrained + 0.2, "same-init {same} vs untrained {untrained}");
    assert!(dir.path().join("results/subliminal/accuracy.svg").is_file());
    // The language-model report: P(owl) over seeds, owl's rank, the specificity control,
    // the bar chart, and the teacher's filtered number lists.
    let lm = &results["reports"][1];
    assert_eq!(lm["title"], "Subliminal learning through number lists (language models)");
    assert_eq!(lm["tables"].as_array().map(Vec::len), Some(3));
    let teacher_p = lm["tables"][0]["rows"][1]["metrics"]["mean"].as_f64().unwrap();
    assert!(teacher_p > 0.0 && teacher_p <= 1.0, "{teacher_p}");
    assert!(dir.path().join("results/subliminal/owl.svg").is_file());
    let md = std::fs::read_to_string(dir.path().join("results/subliminal/results.md")).unwrap();
    assert!(md.contains("**teacher_lists**"), "{md}");

    // A second run computes nothing.
    let r = labrun(dir.path(), &args);
    assert!(r.stderr.contains("nothing to run"), "{}", r.stderr);

    // The ablation imports the pipeline: its teachers come from the cache.
    let ablation = root().join("pipelines/subliminal_ablation.lab");
    let mut a = vec![
        "run",
        ablation.to_str().unwrap(),
        "--cache",
        c,
        "--json",
        "--set",
        "aux_counts=[2, 3]",
        "--set",
        "ablation_epochs=[2]",
    ];
    a.extend(mlp_scale);
    let plan = labrun(
        dir.path(),
        &[
            "plan",
            ablation.to_str().unwrap(),
            "--cache",
            c,
            "--set",
            "seeds=[0, 1, 2]",
            "--set",
            "aux_counts=[2, 3]",
            "--set",
            "ablation_epochs=[2]",
        ],
    );
    let teacher_line = plan.stdout.lines().find(|l| l.contains(" teacher[0] ")).expect("teacher[0] is planned");
    assert!(teacher_line.contains("cached (subliminal)"), "{teacher_line}");
    let r = labrun(dir.path(), &a);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let executed: Vec<Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &Value| e["event"] == "executed")
        .collect();
    assert!(
        executed.iter().all(|e| !e["step"].as_str().unwrap().starts_with("teacher")),
        "a teacher was retrained: {executed:?}"
    );
    let summary: Value = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|e: &Value| e["event"] == "summary")
        .unwrap();
    assert!(summary["reused_from_other_pipelines"].as_u64().unwrap() > 10, "{summary}");
}
