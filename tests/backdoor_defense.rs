//! `pipelines/backdoor_defense.lab` through the command line, and the game's errors.

mod common;
use common::{labrun, run_pipeline, table_row};
use serde_json::Value;

fn mean(results: &Value, table: usize, label: &str) -> f64 {
    table_row(results, table, label)["metrics"]["mean"].as_f64().unwrap_or_else(|| panic!("{label}: no mean"))
}

/// The pipeline at a reduced scale: on trees the depth defence catches every backdoor at
/// a tiny ε and loses its power at a large one, the attacker's exact budget stays within
/// ε, learn-and-compare beats chance; on MLPs distil-and-compare beats chance by a clear
/// margin; the figures are drawn.
#[test]
fn backdoor_defense_runs_and_shows_the_game() {
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        "seeds=[0]",
        "mlp_seeds=[0]",
        "rounds=80",
        "tree_eps=[0.0000153, 0.25]",
        "samples=[100, 1000]",
        "widths=[16]",
        "mlp_eps=[0]",
        "mlp_rounds=12",
    ];
    let results = run_pipeline(dir.path(), "backdoor_defense", &sets);
    let out = dir.path().join("results/backdoor_defense");
    let tiny = mean(&results, 0, "depth defence, random tree, ε = 0.0000153");
    let large = mean(&results, 0, "depth defence, random tree, ε = 0.25");
    assert!(tiny > 0.95, "depth defence at ε = 2^-16: AUROC {tiny}");
    assert!(large < 0.75 && large < tiny - 0.2, "depth defence at ε = 1/4: AUROC {large}");
    let learn = mean(&results, 0, "learn-and-compare, random tree, ε = 0.0000153");
    assert!(learn > 0.7, "learn-and-compare at ε = 2^-16: AUROC {learn}");
    for (e, label) in [(0.0000153, "budget, ε = 0.0000153"), (0.25, "budget, ε = 0.25")] {
        let b = table_row(&results, 1, label)["metrics"]["max"].as_f64().unwrap();
        assert!(b > 0.0 && b <= e, "{label}: {b}");
    }
    let distil = mean(&results, 3, "distil-and-compare, width 16, ε = 0.0");
    assert!(distil > 0.75, "distil-and-compare on MLPs: AUROC {distil}");
    for fig in ["trees", "learner", "mahalanobis", "distillation", "gradient"] {
        assert!(out.join(format!("{fig}.svg")).is_file(), "{fig}.svg");
    }
}

/// A defence for trees given a game on MLPs, and tree ops given numbers that are not
/// bits, fail with what is wrong and what to use instead; a tree with more leaves than
/// its inputs allow is refused by `check`.
#[test]
fn backdoor_ops_refuse_what_they_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let run =
        |p: &std::path::Path| labrun(dir.path(), &["run", p.to_str().unwrap(), "--cache", cache.to_str().unwrap()]);

    let p = write(
        "mismatch.lab",
        "train = data.digits(split: \"train\")\n\
         f = model.mlp(inputs: 64, hidden: [8], outputs: 10)\n\
         game = attack.finetune(f, train, data.digits(split: \"test\"), epsilon: 0, rounds: 2, epochs: 1)\n\
         d = defend.depth(game)\n",
    );
    let r = run(&p);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is a game on `mlp` models; `defend.depth` defends tree models"), "{}", r.stderr);

    let p = write("not_bits.lab", "t = fit.tree(generate.labels(model.tree(bits: 64, leaves: 4), data.digits()))\n");
    let r = run(&p);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("decision trees read bits (0 or 1)"), "{}", r.stderr);

    let p = write("too_many.lab", "t = model.tree(bits: 3, leaves: 9)\n");
    let r = labrun(dir.path(), &["check", p.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("`leaves` 9 is more than a tree over 3 bits has: at most 8"), "{}", r.stderr);
    assert!(r.stderr.contains("too_many.lab:1:33"), "at `leaves`: {}", r.stderr);
}
