//! The RL op family end to end at a tiny scale: `env.digits` → `rl.policy_gradient` →
//! `estimate.frontier` → `fit.rl_scaling`, through the command line.

mod common;
use common::labrun;
use lab_ops::curve::Curve;
use serde_json::Value;

const LAB: &str = r#"
param widths = [4, 16]
env = env.digits(split: "train")
eval = env.digits(split: "test")
for w in widths, h in [1, 16] {
  run[w, h] = rl.policy_gradient(model.mlp(inputs: 64, hidden: [w], outputs: 10, seed: 0), env, eval, horizon: h, interactions: 131072, checkpoints: 8)
}
for h in [1, 16] {
  frontier[h] = estimate.frontier([[run[w, h]] for w in widths], sizes: widths)
}
joint = fit.rl_scaling([frontier[h] for h in [1, 16]])
report "rl" {
  table "law" {
    "joint" = joint
    "run" = run[16, 1]
  }
}
"#;

/// Policies learn (the return rises well above chance, 6.4 of 64), every checkpoint's
/// intrinsic performance is at most its own compute, the frontier never falls, and the
/// law is fitted with finite coefficients and one E_c per frontier.
#[test]
fn policy_gradient_frontier_and_law_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = dir.path().join("rl.lab");
    std::fs::write(&file, LAB).unwrap();
    let r = labrun(dir.path(), &["run", file.to_str().unwrap(), "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results/rl/results.json")).unwrap()).unwrap();
    let rows = results["reports"][0]["tables"][0]["rows"].as_array().unwrap();
    let run = &rows[1];
    let curve = Curve::read(std::path::Path::new(run["dir"].as_str().unwrap())).unwrap();
    let ret = curve.column("return", "x").unwrap();
    assert!(ret[ret.len() - 1] > ret[0] + 15.0, "the policy does not learn: {ret:?}");
    let joint = &rows[0]["metrics"];
    for k in ["alpha_n", "alpha_e", "n_c", "r2"] {
        assert!(joint[k].as_f64().unwrap().is_finite(), "{k}: {joint}");
    }
    assert_eq!(joint["e_c_all"].as_array().unwrap().len(), 2);
    // The frontier artifacts: read through the cache by step name.
    let show = labrun(dir.path(), &["cache", "show", "frontier[1]", "--cache", cache.to_str().unwrap()]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let path = show.stdout.lines().find_map(|l| l.strip_prefix("path")).unwrap().trim().to_string();
    let f = Curve::read(std::path::Path::new(&path)).unwrap();
    let (c, i, front) =
        (f.column("compute", "x").unwrap(), f.column("intrinsic", "x").unwrap(), f.column("frontier", "x").unwrap());
    for j in 0..c.len() {
        assert!(i[j] <= c[j] * (1.0 + 1e-9), "row {j}: intrinsic {} above compute {}", i[j], c[j]);
    }
    assert!(front.windows(2).all(|w| w[1] >= w[0]), "the frontier falls: {front:?}");
}
