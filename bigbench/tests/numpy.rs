//! labrun's port of numpy's legacy `RandomState` against values numpy produced
//! (`scripts/bigbench/numpy_fixtures.py`). One stream per seed: every draw must agree,
//! in order, for the later ones to.

use lab_bigbench::rng::RandomState;
use serde_json::Value;

#[test]
fn every_draw_matches_numpy() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/numpy_random_state.json"))
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let ints =
        |v: &Value| -> Vec<usize> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect() };
    let mut draws = 0;
    for c in v["cases"].as_array().unwrap() {
        let mut r = RandomState::new(c["seed"].as_u64().unwrap() as u32);
        for n in [1, 2, 3, 7, 10, 100, 1000] {
            assert_eq!(
                r.permutation(n),
                ints(&c["permutations"][n.to_string()]),
                "seed {}, permutation({n})",
                c["seed"]
            );
            draws += n;
        }
        for n in [1usize, 2, 3, 5, 7, 100, 1000, (1 << 31) + 5] {
            let got: Vec<usize> = (0..20).map(|_| r.choice_one(n)).collect();
            assert_eq!(got, ints(&c["choice_one"][n.to_string()]), "seed {}, choice({n})", c["seed"]);
            draws += 20;
        }
        for d in c["choice_distinct"].as_array().unwrap() {
            let (n, k) = (d["n"].as_u64().unwrap() as usize, d["k"].as_u64().unwrap() as usize);
            assert_eq!(r.choice_distinct(n, k), ints(&d["idx"]), "seed {}, choice({n}, {k}, replace=False)", c["seed"]);
            draws += n;
        }
    }
    assert!(draws > 5000);
}
