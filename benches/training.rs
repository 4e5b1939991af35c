//! MLP training throughput: labrun's training loop (forward, backward and Adam as one ONNX
//! graph, one session run per step) against PyTorch eager on the same model, batch and
//! optimizer, both on one CPU thread. The PyTorch side runs when `python3 -c "import
//! torch"` works (set PYTHONPATH to point at it); otherwise it is skipped and said so.
//!
//! `cargo bench --bench training`

use lab_nn::mlp::{Activation, Mlp, MlpSpec};
use lab_nn::mlp_train::{Data, Objective, Targets, train};
use lab_nn::optim::{OptimConfig, Optimizer, Schedule};
use lab_nn::runtime::SessionOptions;
use lab_nn::train::TrainConfig;
use std::time::Instant;

const BATCH: usize = 32;

fn time_steps(steps: usize, x: &[f32], y: &[i64]) -> f64 {
    let spec = MlpSpec { inputs: 64, hidden: vec![128], outputs: 10, activation: Activation::Relu };
    let mut model = Mlp::init(spec, 0);
    let rows = steps * BATCH;
    let data = Data { x: &x[..rows * 64], width: 64, targets: Targets::Labels(&y[..rows]) };
    let cfg = TrainConfig {
        epochs: 1,
        steps: None,
        batch: BATCH,
        lr: 1e-3,
        seed: 0,
        optim: OptimConfig { optimizer: Optimizer::Adam, ..OptimConfig::default() },
        schedule: Schedule::Constant,
        session: SessionOptions { threads: 1, device: lab_nn::Device::Cpu },
        eval_every: usize::MAX,
        patience: None,
    };
    let t = Instant::now();
    train(&mut model, &data, None, &Objective::CrossEntropy { logits: 0..10 }, &cfg, &mut |_| true)
        .expect("training runs");
    t.elapsed().as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let steps = if quick { 50 } else { 3000 };
    let mut s: u64 = 42;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let rows = (steps + 10) * BATCH;
    let x: Vec<f32> = (0..rows * 64).map(|_| (rnd() % 2000) as f32 / 1000.0 - 1.0).collect();
    let y: Vec<i64> = (0..rows).map(|_| (rnd() % 10) as i64).collect();
    lab_nn::runtime::init().expect("ONNX Runtime");
    // Setup (graph building, session creation) is measured with 10 steps and subtracted.
    let mut best = 0.0f64;
    for _ in 0..3 {
        let small = time_steps(10, &x, &y);
        let big = time_steps(steps + 10, &x, &y);
        best = best.max(steps as f64 / (big - small).max(1e-9));
    }
    println!("labrun  MLP 64-128-10, batch {BATCH}, Adam, 1 thread: {best:.0} steps/s");
    if quick {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_mlp.py");
    match std::process::Command::new("python3").arg(script).arg("1").output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let torch = text
                .lines()
                .find_map(|l| l.strip_prefix("steps_per_second "))
                .and_then(|v| v.trim().parse::<f64>().ok());
            let version = text.lines().next().unwrap_or("");
            match torch {
                Some(t) => {
                    println!("pytorch eager ({version}): {t:.0} steps/s");
                    println!("ratio: labrun is {:.2}x PyTorch eager", best / t);
                }
                None => println!("pytorch: unexpected output: {text}"),
            }
        }
        Ok(out) if out.status.code() == Some(3) => println!("pytorch not installed: comparison skipped"),
        Ok(out) => println!("pytorch run failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => println!("python3 not runnable ({e}): comparison skipped"),
    }
}
