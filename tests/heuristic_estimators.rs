//! `pipelines/heuristic_estimators.lab` through the command line.

mod common;
use common::{labrun, root, table_row};
use serde_json::Value;

/// `pipelines/heuristic_estimators.lab` at a reduced scale: both propagation estimators
/// are biased in the same direction, well beyond their standard errors, and a rerun is
/// instant.
#[test]
fn heuristic_estimators_run_and_show_the_propagation_bias() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = root().join("pipelines/heuristic_estimators.lab");
    let args = [
        "run",
        file.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
        "--set",
        "networks=40",
        "--set",
        "depth_networks=10",
        "--set",
        "reference_samples=50_000",
    ];
    let r = labrun(dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("results/heuristic_estimators/results.json")).unwrap(),
    )
    .unwrap();
    for label in ["mean propagation (independent units)", "covariance propagation (Gaussian)"] {
        let m = &table_row(&results, 0, label)["metrics"];
        let (e, se) = (m["mean_signed_error"].as_f64().unwrap(), m["stderr"].as_f64().unwrap());
        assert!(e > 3.0 * se, "{label}: {e} ± {se}");
    }
    assert!(dir.path().join("results/heuristic_estimators/depth.svg").is_file());
    let r = labrun(dir.path(), &args);
    assert!(r.stderr.contains("nothing to run"), "{}", r.stderr);
}
