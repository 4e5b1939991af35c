//! The Bradley–Terry loss shared by language-model and MLP reward models: its value and
//! gradient against a hand computation, and training on separable comparisons.

use lab_nn::Tensor;
use lab_nn::autodiff::grad;
use lab_nn::exec::run_graph;
use lab_nn::mlp::{Activation, Mlp, MlpSpec};
use lab_nn::reward::{Pairs, mlp_loss_graph, train_mlp};
use lab_nn::runtime::SessionOptions;
use lab_nn::train::TrainConfig;

fn linear(w: [f32; 2], b: f32) -> Mlp {
    let spec = MlpSpec { inputs: 2, hidden: vec![], outputs: 1, activation: Activation::Relu };
    let mut m = Mlp::init(spec, 0);
    m.params =
        vec![("l0.w".into(), Tensor::f32(vec![2, 1], w.to_vec())), ("l0.b".into(), Tensor::f32(vec![1], vec![b]))];
    m
}

/// r(x) = w·x + b with w = (0.5, −1), two pairs:
///   pair 1: better (1, 0), worse (0, 1): d = 0.5 − (−1) = 1.5
///   pair 2: better (0, 0), worse (2, 0): d = 0 − 1 = −1
/// loss = ½(softplus(−1.5) + softplus(1)) = ½(0.201413 + 1.313262) = 0.757337
/// ∂loss/∂w = ½ Σ −σ(−d)(better − worse) = ½(−0.182426·(1, −1) − 0.731059·(−2, 0))
///          = (0.639846, 0.091213); ∂loss/∂b = 0 (b cancels in every difference).
#[test]
fn bradley_terry_loss_and_gradient_match_a_hand_computation() {
    lab_nn::runtime::init().unwrap();
    let model = linear([0.5, -1.0], 0.3);
    let (mut g, loss) = mlp_loss_graph(&model).unwrap();
    let params: Vec<_> =
        ["l0.w", "l0.b"].iter().map(|n| g.inputs.iter().copied().find(|&v| g.info(v).name == *n).unwrap()).collect();
    let grads = grad(&mut g, loss, &params).unwrap();
    g.output(loss, "loss");
    g.output(grads[0], "gw");
    g.output(grads[1], "gb");
    let better = Tensor::f32(vec![2, 2], vec![1.0, 0.0, 0.0, 0.0]);
    let worse = Tensor::f32(vec![2, 2], vec![0.0, 1.0, 2.0, 0.0]);
    let weights = Tensor::f32(vec![2], vec![0.5, 0.5]);
    let out = run_graph(
        &g,
        &[
            ("l0.w", &model.params[0].1),
            ("l0.b", &model.params[1].1),
            ("better", &better),
            ("worse", &worse),
            ("weights", &weights),
        ],
        SessionOptions::default(),
    )
    .unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-5;
    assert!(close(out[0].to_f64()[0], 0.757337), "loss {:?}", out[0].to_f64());
    let gw = out[1].to_f64();
    assert!(close(gw[0], 0.639846) && close(gw[1], 0.091213), "∂w {gw:?}");
    assert!(out[2].to_f64()[0].abs() < 1e-7, "∂b {:?}", out[2].to_f64());
}

/// Comparisons ordered by a hidden linear score are learnt: the trained model agrees with
/// the labels on pairs it never saw, and validation stops training early.
#[test]
fn an_mlp_reward_model_learns_separable_comparisons() {
    lab_nn::runtime::init().unwrap();
    let truth = |x: &[f32]| 2.0 * x[0] - x[1] + 0.5 * x[2] * x[3];
    let mut state = 12345u64;
    let mut rnd = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 10_000) as f32 / 5_000.0 - 1.0
    };
    let mut make = |n: usize| {
        let (mut better, mut worse) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let a: Vec<f32> = (0..4).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..4).map(|_| rnd()).collect();
            let (hi, lo) = if truth(&a) >= truth(&b) { (a, b) } else { (b, a) };
            better.extend(hi);
            worse.extend(lo);
        }
        (better, worse)
    };
    let (tb, tw) = make(2000);
    let (vb, vw) = make(400);
    let spec = MlpSpec { inputs: 4, hidden: vec![16], outputs: 1, activation: Activation::Relu };
    let mut model = Mlp::init(spec, 3);
    let cfg = TrainConfig {
        steps: Some(3000),
        batch: 64,
        lr: 3e-3,
        eval_every: 50,
        patience: Some(3),
        ..TrainConfig::default()
    };
    let report = train_mlp(
        &mut model,
        &Pairs { better: &tb, worse: &tw, width: 4 },
        Some(&Pairs { better: &vb, worse: &vw, width: 4 }),
        &cfg,
        &mut |_| true,
    )
    .unwrap();
    assert!(!report.val_loss.is_empty());
    let rb = lab_nn::mlp_train::predict(&model, &vb, SessionOptions::default()).unwrap();
    let rw = lab_nn::mlp_train::predict(&model, &vw, SessionOptions::default()).unwrap();
    let acc = rb.iter().zip(&rw).filter(|(a, b)| a > b).count() as f64 / rb.len() as f64;
    assert!(acc > 0.9, "held-out accuracy {acc}");
    // Mismatched widths are an error, not a panic.
    let bad = train_mlp(&mut model, &Pairs { better: &tb, worse: &tw, width: 2 }, None, &cfg, &mut |_| true);
    assert!(bad.unwrap_err().to_string().contains("width 2"));
}
