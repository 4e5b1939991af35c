//! `pipelines/low_probability.lab` through the command line at a tiny scale, and the
//! family's errors: bad distribution files, an empty target range, a burn-in that eats
//! the budget.

mod common;
use common::{labrun, run_pipeline, table_row};
use lab_ops::curve::Curve;
use std::path::Path;

/// The pipeline runs end to end: the exact probabilities of each distribution sum to 1,
/// the targets lie in the range, every method estimates every target with a probability,
/// every row of the table has a finite loss, and the figures are drawn.
#[test]
fn low_probability_pipeline_runs_at_a_tiny_scale() {
    let dir = tempfile::tempdir().unwrap();
    let sets = ["steps=300", "distributions=3", "options=4", "seeds=[0, 1]", "samples=128", "min_p=1e-6", "max_p=0.2"];
    let results = run_pipeline(dir.path(), "low_probability", &sets);
    let exact = table_row(&results, 1, "exact probabilities (every input enumerated)");
    let curve = Curve::read(Path::new(exact["dir"].as_str().unwrap())).unwrap();
    let (d, p) = (curve.column("distribution", "x").unwrap(), curve.column("probability", "x").unwrap());
    for k in 0..3 {
        let total: f64 = d.iter().zip(&p).filter(|(x, _)| **x == k as f64).map(|(_, q)| q).sum();
        assert!((total - 1.0).abs() < 1e-9, "distribution {k}: probabilities sum to {total}");
    }
    let targets = Curve::read(Path::new(table_row(&results, 1, "targets in range")["dir"].as_str().unwrap())).unwrap();
    let tp = targets.column("probability", "x").unwrap();
    assert!(!tp.is_empty() && tp.iter().all(|&q| (1e-6..=0.2).contains(&q)), "{tp:?}");
    for label in [
        "importance sampling: MHIS",
        "importance sampling: ITGIS",
        "activation extrapolation: QLD",
        "activation extrapolation: GLD",
        "naive sampling",
        "optimal constant",
    ] {
        let m = &table_row(&results, 0, label)["metrics"];
        let loss = m["is_loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss >= 0.0, "{label}: {m}");
        assert_eq!(m["seeds"], 2, "{label}: {m}");
    }
    let out = dir.path().join("results/low_probability");
    for fig in ["loss", "scatter", "training"] {
        assert!(out.join(format!("{fig}.svg")).is_file(), "{fig}.svg");
    }
    // The estimates of one method: one per target, each a probability.
    let cache = dir.path().join("cache");
    let show = labrun(dir.path(), &["cache", "show", "itgis[1]", "--cache", cache.to_str().unwrap()]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let path = show.stdout.lines().find_map(|l| l.strip_prefix("path")).unwrap().trim().to_string();
    let est = Curve::read(Path::new(&path)).unwrap();
    let e = est.column("estimate", "x").unwrap();
    assert_eq!(e.len(), tp.len());
    assert!(e.iter().all(|&x| x.is_finite() && x >= 0.0), "{e:?}");
    assert_eq!(est.column("probability", "x").unwrap(), tp, "the truth column is the targets'");
}

fn run_lab(dir: &Path, text: &str) -> common::Run {
    let file = dir.join("x.lab");
    std::fs::write(&file, text).unwrap();
    let cache = dir.join("cache");
    labrun(dir, &["run", file.to_str().unwrap(), "--cache", cache.to_str().unwrap()])
}

#[test]
fn bad_distributions_and_ranges_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("labrun.toml"), "").unwrap();
    // Probabilities that do not sum to 1, naming the distribution and position.
    std::fs::write(
        dir.path().join("d.json"),
        r#"{"distributions": [{"name": "bad", "positions": [[{"token": "a", "p": 0.5}, {"token": "b", "p": 0.4}]]}]}"#,
    )
    .unwrap();
    let r = run_lab(dir.path(), "d = data.distributions(\"d.json\")\nreport \"r\" {\n  \"d\" = d\n}\n");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("distribution `bad`, position 0") && r.stderr.contains("sum to 0.9"), "{}", r.stderr);
    // A token the model does not have.
    std::fs::write(
        dir.path().join("d.json"),
        r#"{"distributions": [{"name": "z", "positions": [[{"token": "z", "p": 1.0}]]}]}"#,
    )
    .unwrap();
    let lab = r#"
lm = model.gpt(alphabet: "ab", width: 8, heads: 2, layers: 1, context: 4)
d = data.distributions("d.json")
e = estimate.exact(lm, d)
report "r" {
  "e" = e
}
"#;
    let r = run_lab(dir.path(), lab);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("`z`, which is not one token of the model's vocabulary"), "{}", r.stderr);
    // Not JSON of the right shape: the expected form is shown.
    std::fs::write(dir.path().join("d.json"), r#"{"distributions": 3}"#).unwrap();
    let r = run_lab(dir.path(), "d = data.distributions(\"d.json\")\nreport \"r\" {\n  \"d\" = d\n}\n");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is not a distributions file") && r.stderr.contains("\"positions\""), "{}", r.stderr);
    // A range that keeps no target, and a burn-in that uses the whole budget (caught by
    // `check` before anything runs).
    std::fs::write(
        dir.path().join("d.json"),
        r#"{"distributions": [{"name": "ab", "positions": [[{"token": "a", "p": 0.5}, {"token": "b", "p": 0.5}]]}]}"#,
    )
    .unwrap();
    let lab = r#"
lm = model.gpt(alphabet: "ab", width: 8, heads: 2, layers: 1, context: 4)
d = data.distributions("d.json")
e = estimate.exact(lm, d)
t = filter.between(e, column: "probability", min: 1e-9, max: 1e-8)
report "r" {
  "t" = t
}
"#;
    let r = run_lab(dir.path(), lab);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("keeps no row") && r.stderr.contains("widen"), "{}", r.stderr);
    let lab = r#"
lm = model.gpt(alphabet: "ab", width: 8, heads: 2, layers: 1, context: 4)
d = data.distributions("d.json")
e = estimate.exact(lm, d)
m = estimate.mhis(lm, d, e, samples: 64, chains: 8, burn_in: 8)
report "r" {
  "m" = m
}
"#;
    let r = run_lab(dir.path(), lab);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("must be at least `chains` × (`burn_in` + 2) = 80"), "{}", r.stderr);
    assert!(!r.stderr.contains("started"), "check must refuse it before any step runs: {}", r.stderr);
}
