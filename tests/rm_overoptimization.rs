//! `pipelines/rm_overoptimization.lab` through the command line, at its defaults (15 s of
//! a release build on 2 cores): what the pipeline measures is what its README section
//! claims.

mod common;
use common::{labrun, root, table_row};
use serde_json::Value;

#[test]
fn reward_model_overoptimization_shows_the_papers_effects() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = root().join("pipelines/rm_overoptimization.lab");
    let args = ["run", file.to_str().unwrap(), "--cache", cache.to_str().unwrap()];
    let r = labrun(dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = dir.path().join("results/rm_overoptimization");
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let metric = |table: usize, label: &str, name: &str| -> f64 {
        table_row(&results, table, label)["metrics"][name].as_f64().unwrap_or_else(|| panic!("{label}: no {name}"))
    };
    let (widths, sizes) = ([4, 16, 64], [250, 1000, 4000, 16000]);
    let mut falls = 0;
    for w in widths {
        let mut peaks = Vec::new();
        for n in sizes {
            let label = format!("width {w}, {n} pairs");
            // Proxies learn: held-out accuracy well above chance, growing with data.
            assert!(metric(0, &label, "mean") > 0.6, "{label}");
            // Best-of-n: the proxy rises all the way, the form fits, the gold peaks.
            assert_eq!(metric(1, &label, "proxy_rises"), 1.0, "{label}");
            let r2 = metric(1, &label, "r2");
            assert!(r2 >= 0.95, "{label}: R² {r2}");
            falls += (metric(1, &label, "fall") > 0.0) as usize;
            peaks.push(metric(1, &label, "gold_star"));
            // RL optimises the proxy it is given.
            assert_eq!(metric(2, &label, "proxy_rises"), 1.0, "{label}");
        }
        assert!(peaks.windows(2).all(|p| p[1] > p[0]), "width {w}: peak gold {peaks:?}");
        assert_eq!(metric(3, &format!("peak gold, width {w}"), "increasing"), 1.0);
        assert!(
            metric(0, &format!("width {w}, 16000 pairs"), "mean") > metric(0, &format!("width {w}, 250 pairs"), "mean")
        );
    }
    assert!(falls >= 10, "gold fell after its peak for {falls} of 12 proxies");
    // RL with a proxy from 1,000 pairs overoptimises: gold ends well below its peak.
    for w in [16, 64] {
        let label = format!("width {w}, 1000 pairs");
        assert!(metric(2, &label, "fall") > 0.5, "{label}: {}", metric(2, &label, "fall"));
    }
    for fig in ["bon_gold", "rl_gold", "bon_curves", "rl_curves", "peaks"] {
        assert!(out.join(format!("{fig}.svg")).is_file(), "{fig}");
    }
    let r = labrun(dir.path(), &args);
    assert!(r.stderr.contains("nothing to run"), "{}", r.stderr);
}
