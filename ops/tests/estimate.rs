//! The estimators end to end: exact where the assumptions hold (one hidden layer), against
//! a sampled reference; iterated estimation; arguments; bad models.

mod common;
use common::{Ws, art, int, s, v};
use lab_ops::Value;

fn mean(p: &std::path::Path) -> (f64, f64) {
    lab_ops::estimate::read(p).unwrap()
}

fn net(ws: &mut Ws, hidden: Vec<i64>, seed: i64) -> std::path::PathBuf {
    let args = vec![
        ("inputs", int(4)),
        ("hidden", v(Value::List(hidden.into_iter().map(Value::Int).collect()))),
        ("outputs", int(1)),
        ("init", s("he")),
        ("bias_std", v(Value::Float(0.5))),
        ("positive_readout", v(Value::Bool(true))),
        ("seed", int(seed)),
    ];
    ws.run("model.mlp", args).unwrap()
}

#[test]
fn propagation_is_exact_with_one_hidden_layer_and_close_with_more() {
    let mut ws = Ws::new();
    for (hidden, exact) in [(vec![16], true), (vec![16, 16], false)] {
        let m = net(&mut ws, hidden, 3);
        let truth = mean(
            &ws.run("estimate.sampling", vec![("model", art(&m)), ("samples", int(400_000)), ("seed", int(99))])
                .unwrap(),
        );
        for op in ["estimate.mean_prop", "estimate.cov_prop"] {
            let e = mean(&ws.run(op, vec![("model", art(&m))]).unwrap()).0;
            let err = (e - truth.0).abs();
            if exact {
                assert!(err < 4.0 * truth.1, "{op}: {e} vs {} ± {}", truth.0, truth.1);
            } else {
                assert!(err < 0.2 * truth.0.abs(), "{op}: {e} vs {}", truth.0);
            }
        }
        // Monte Carlo is within a few standard errors of the reference.
        let mc = mean(
            &ws.run("estimate.sampling", vec![("model", art(&m)), ("samples", int(4096)), ("seed", int(7))]).unwrap(),
        );
        assert!((mc.0 - truth.0).abs() < 4.0 * (mc.1 + truth.1), "{mc:?} vs {truth:?}");
    }
}

#[test]
fn arguments_and_iterated_estimation() {
    let mut ws = Ws::new();
    let m = net(&mut ws, vec![8], 1);
    // With one hidden layer, averaging over the argument x₀ = v gives back the estimate.
    let g = mean(&ws.run("estimate.mean_prop", vec![("model", art(&m))]).unwrap()).0;
    let it = mean(&ws.run("estimate.iterated", vec![("model", art(&m)), ("method", s("mean_prop"))]).unwrap()).0;
    assert!((g - it).abs() < 1e-6, "{g} vs {it}");
    // A fixed coordinate: propagation and sampling agree on the conditional mean.
    let fixed = v(Value::List(vec![Value::Float(1.5)]));
    let e = mean(&ws.run("estimate.cov_prop", vec![("model", art(&m)), ("fixed", fixed.clone())]).unwrap()).0;
    let t = mean(
        &ws.run("estimate.sampling", vec![("model", art(&m)), ("fixed", fixed), ("samples", int(200_000))]).unwrap(),
    );
    assert!((e - t.0).abs() < 4.0 * t.1, "{e} vs {t:?}");
    let err = ws.run("estimate.iterated", vec![("model", art(&m)), ("method", s("magic"))]).unwrap_err().to_string();
    assert!(err.contains("it takes `mean_prop`, `cov_prop`"), "{err}");
    let two = ws
        .run(
            "model.mlp",
            vec![("inputs", int(4)), ("hidden", v(Value::List(vec![Value::Int(4)]))), ("outputs", int(2))],
        )
        .unwrap();
    let err = ws.run("estimate.mean_prop", vec![("model", art(&two))]).unwrap_err().to_string();
    assert!(err.contains("has 2 outputs"), "{err}");
}
