//! Optimizer steps against hand-computed updates, and the training loop's behaviours:
//! learning, clipping, early stopping, NaN detection.

use lab_nn::autodiff::grad;
use lab_nn::exec::run_session;
use lab_nn::mlp::{Activation, Mlp, MlpSpec};
use lab_nn::mlp_train::{Data, Objective, Targets, train};
use lab_nn::optim::{OptimConfig, Optimizer, Schedule, step};
use lab_nn::runtime::{SessionOptions, session};
use lab_nn::train::TrainConfig;
use lab_nn::{DType, Graph, NnError, Tensor};

/// loss = sum(w * c) for constant c: the gradient is c, so updates are easy to compute.
fn one_step(cfg: OptimConfig, w0: &[f64], c: &[f64], lr: f64, t: f64, m0: &[f64], v0: &[f64]) -> Vec<Vec<f64>> {
    let mut g = Graph::new(DType::F64);
    let w = g.input("w", DType::F64, &[w0.len() as i64]);
    let cv = g.constant(Tensor::f64(vec![c.len()], c.to_vec()));
    let p = g.mul(w, cv);
    let loss = g.reduce_sum(p, &[0], false);
    let gr = grad(&mut g, loss, &[w]).unwrap();
    let s = step(&mut g, &[w], &gr, &cfg);
    g.output(s.updated[0], "new_w");
    for (j, &o) in s.state_out.iter().enumerate() {
        g.output(o, &format!("state{j}"));
    }
    g.output(s.grad_norm, "norm");
    let mut sess = session(&g.to_onnx_bytes(""), SessionOptions::default()).unwrap();
    let n = w0.len();
    let (wt, lrt, tt) =
        (Tensor::f64(vec![n], w0.to_vec()), Tensor::f64(vec![], vec![lr]), Tensor::f64(vec![], vec![t]));
    let state =
        |v: &[f64]| if v.is_empty() { Tensor::f64(vec![n], vec![0.0; n]) } else { Tensor::f64(vec![n], v.to_vec()) };
    let (mt, vt) = (state(m0), state(v0));
    let mut feeds = vec![("w", &wt), ("lr", &lrt), ("t", &tt)];
    if cfg.optimizer != Optimizer::Sgd {
        feeds.push(("m", &mt));
        feeds.push(("v", &vt));
    }
    run_session(&mut sess, &feeds).unwrap().iter().map(|t| t.to_f64()).collect()
}

fn close(a: &[f64], b: &[f64]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
    }
}

#[test]
fn sgd_step_with_weight_decay() {
    let cfg = OptimConfig { optimizer: Optimizer::Sgd, weight_decay: 0.1, ..OptimConfig::default() };
    let out = one_step(cfg, &[1.0, -2.0], &[0.5, 3.0], 0.1, 1.0, &[], &[]);
    // w − lr·(c + wd·w)
    close(&out[0], &[1.0 - 0.1 * (0.5 + 0.1), -2.0 - 0.1 * (3.0 - 0.2)]);
}

#[test]
fn adam_and_adamw_steps_match_the_formulas() {
    let (w, c, m, v, t, lr) = ([1.0, -2.0], [0.5, 3.0], [0.1, -0.2], [0.01, 0.04], 3.0f64, 0.01);
    for (opt, wd) in [(Optimizer::Adam, 0.0), (Optimizer::Adam, 0.1), (Optimizer::AdamW, 0.1)] {
        let cfg = OptimConfig { optimizer: opt, weight_decay: wd, ..OptimConfig::default() };
        let out = one_step(cfg, &w, &c, lr, t, &m, &v);
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let mut want_w = Vec::new();
        let mut want_m = Vec::new();
        let mut want_v = Vec::new();
        for i in 0..2 {
            let g = if opt == Optimizer::Adam { c[i] + wd * w[i] } else { c[i] };
            let m1 = b1 * m[i] + (1.0 - b1) * g;
            let v1 = b2 * v[i] + (1.0 - b2) * g * g;
            let mhat = m1 / (1.0 - b1.powf(t));
            let vhat = v1 / (1.0 - b2.powf(t));
            let mut upd = mhat / (vhat.sqrt() + eps);
            if opt == Optimizer::AdamW {
                upd += wd * w[i];
            }
            want_w.push(w[i] - lr * upd);
            want_m.push(m1);
            want_v.push(v1);
        }
        close(&out[0], &want_w);
        close(&out[1], &want_m);
        close(&out[2], &want_v);
    }
}

#[test]
fn clipping_scales_the_global_norm() {
    // Gradient (3, 4) has norm 5; clipped to 1 it becomes (0.6, 0.8).
    let cfg = OptimConfig { optimizer: Optimizer::Sgd, clip: Some(1.0), ..OptimConfig::default() };
    let out = one_step(cfg, &[0.0, 0.0], &[3.0, 4.0], 1.0, 1.0, &[], &[]);
    let scale = 1.0 / (5.0 + 1e-6);
    close(&out[0], &[-3.0 * scale, -4.0 * scale]);
    close(&out[1], &[5.0]);
    // Below the threshold nothing changes.
    let cfg = OptimConfig { optimizer: Optimizer::Sgd, clip: Some(10.0), ..OptimConfig::default() };
    close(&one_step(cfg, &[0.0, 0.0], &[3.0, 4.0], 1.0, 1.0, &[], &[])[0], &[-3.0, -4.0]);
}

/// Two Gaussian blobs: a problem any MLP learns.
fn blobs(n: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut s = seed | 1;
    let mut r = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 10_000) as f32 / 10_000.0 - 0.5
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = (i % 2) as i64;
        let centre = if c == 0 { -1.0 } else { 1.0 };
        x.extend([centre + r(), centre + r()]);
        y.push(c);
    }
    (x, y)
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 16,
        lr: 0.05,
        schedule: Schedule::WarmupCosine { warmup: 5 },
        ..TrainConfig::default()
    }
}

#[test]
fn training_lowers_the_loss() {
    let (x, y) = blobs(256, 3);
    let mut m = Mlp::init(MlpSpec { inputs: 2, hidden: vec![8], outputs: 2, activation: Activation::Tanh }, 1);
    let data = Data { x: &x, width: 2, targets: Targets::Labels(&y) };
    let report =
        train(&mut m, &data, None, &Objective::CrossEntropy { logits: 0..2 }, &cfg(10), &mut |_| true).unwrap();
    assert_eq!(report.steps, 160);
    assert!(report.epoch_loss[9] < 0.2 * report.epoch_loss[0], "{:?}", report.epoch_loss);
}

#[test]
fn early_stopping_keeps_the_best_weights() {
    // Validation labels are the opposite of training labels: validation loss rises as
    // training succeeds, so training stops after `patience` evaluations and keeps the
    // weights of the best (first) evaluation.
    let (x, y) = blobs(256, 5);
    let flipped: Vec<i64> = y.iter().map(|c| 1 - c).collect();
    let mut m = Mlp::init(MlpSpec { inputs: 2, hidden: vec![8], outputs: 2, activation: Activation::Relu }, 2);
    let data = Data { x: &x, width: 2, targets: Targets::Labels(&y) };
    let val = Data { x: &x, width: 2, targets: Targets::Labels(&flipped) };
    let config = TrainConfig { eval_every: 4, patience: Some(3), ..cfg(50) };
    let report =
        train(&mut m, &data, Some(&val), &Objective::CrossEntropy { logits: 0..2 }, &config, &mut |_| true).unwrap();
    assert!(report.stopped_early, "{:?}", report.val_loss);
    assert!(report.steps < 50 * 16);
    let best = report.val_loss.iter().map(|(_, l)| *l).fold(f32::INFINITY, f32::min);
    assert_eq!(best, report.val_loss[0].1);
}

#[test]
fn a_nan_loss_names_its_step() {
    let (mut x, y) = blobs(64, 7);
    x[40] = f32::NAN; // row 20: with batch 64 the first step sees it.
    let mut m = Mlp::init(MlpSpec { inputs: 2, hidden: vec![4], outputs: 2, activation: Activation::Relu }, 0);
    let data = Data { x: &x, width: 2, targets: Targets::Labels(&y) };
    let config = TrainConfig { batch: 64, ..cfg(2) };
    let err =
        train(&mut m, &data, None, &Objective::CrossEntropy { logits: 0..2 }, &config, &mut |_| true).unwrap_err();
    assert!(matches!(err, NnError::NonFinite { step: 1, .. }), "{err}");
}

/// Several parameters of different shapes share one flat update: each must get exactly its
/// own Adam step, in its own shape.
#[test]
fn adam_over_several_parameters_updates_each_in_its_shape() {
    let mut g = Graph::new(DType::F64);
    let a = g.input("a", DType::F64, &[2, 3]);
    let b = g.input("b", DType::F64, &[2]);
    let (ca, cb) = (
        g.constant(Tensor::f64(vec![2, 3], vec![1., 2., 3., 4., 5., 6.])),
        g.constant(Tensor::f64(vec![2], vec![-7., 8.])),
    );
    let pa = g.mul(a, ca);
    let pb = g.mul(b, cb);
    let sa = g.reduce_sum(pa, &[0, 1], false);
    let sb = g.reduce_sum(pb, &[0], false);
    let loss = g.add(sa, sb);
    let gr = grad(&mut g, loss, &[a, b]).unwrap();
    let s = step(&mut g, &[a, b], &gr, &OptimConfig::default());
    g.output(s.updated[0], "new_a");
    g.output(s.updated[1], "new_b");
    g.output(s.state_out[0], "new_m");
    assert_eq!(g.shape(s.updated[0]), &[2, 3]);
    let mut sess = session(&g.to_onnx_bytes(""), SessionOptions::default()).unwrap();
    let (at, bt) = (Tensor::f64(vec![2, 3], vec![0.0; 6]), Tensor::f64(vec![2], vec![1.0, 1.0]));
    let (lr, t, z) =
        (Tensor::f64(vec![], vec![0.1]), Tensor::f64(vec![], vec![1.0]), Tensor::f64(vec![8], vec![0.0; 8]));
    let out = run_session(&mut sess, &[("a", &at), ("b", &bt), ("lr", &lr), ("t", &t), ("m", &z), ("v", &z)]).unwrap();
    // The first Adam step moves every coordinate by lr·|g|/(|g| + ε) against its gradient.
    let step1 = |g: f64| -0.1 * g / (g.abs() + 1e-8);
    close(&out[0].to_f64(), &[1., 2., 3., 4., 5., 6.].map(step1));
    close(&out[1].to_f64(), &[1.0 + step1(-7.0), 1.0 + step1(8.0)]);
    // The flat first moment is (1 − β1)·g, parameters in order.
    close(&out[2].to_f64(), &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, -0.7, 0.8]);
}
