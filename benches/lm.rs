//! Language-model throughput: training tokens per second (forward, backward and AdamW as
//! one ONNX Runtime call per step) and generation tokens per second with the KV cache,
//! with the process's peak memory for each, side by side with PyTorch eager (training)
//! and Hugging Face `generate` (generation) on the same architecture and weights, the
//! same batch and the same thread count — when `LABRUN_BENCH_PYTHON` (default `python3`)
//! can import torch and transformers.
//!
//! `cargo bench --bench lm`; `cargo test --benches` runs a quick smoke version.

use lab_nn::decode::{self, Decoder, Sampling};
use lab_nn::gpt::{Gpt, GptSpec, Trainable};
use lab_nn::lm::{self, LmObjective, Row};
use lab_nn::runtime::SessionOptions;
use lab_nn::tokenizer::Tokenizer;
use lab_nn::train::TrainConfig;
use std::time::Instant;

struct Config {
    name: &'static str,
    width: usize,
    layers: usize,
    heads: usize,
    context: usize,
    batch: usize,
}

const ALPHABET: &str = "^0123456789 \nQ:Whatisplu?A";

/// Resets the process's peak resident memory (Linux), so each phase is measured alone.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Rand(u64);
impl Rand {
    fn next(&mut self, n: usize) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i64
    }
}

fn train_seconds(model: &Gpt, rows: &[Row], steps: usize, batch: usize) -> f64 {
    let mut m = model.clone();
    let cfg = TrainConfig {
        steps: Some(steps),
        batch,
        lr: 1e-3,
        optim: lab_nn::optim::OptimConfig {
            optimizer: lab_nn::optim::Optimizer::AdamW,
            clip: Some(1.0),
            ..Default::default()
        },
        session: SessionOptions { threads: 1, ..Default::default() },
        ..TrainConfig::default()
    };
    let t = Instant::now();
    lm::train_lm(&mut m, &LmObjective::NextToken, rows, &[], None, Trainable::All, &cfg, &mut |_| true)
        .expect("trains");
    t.elapsed().as_secs_f64()
}

/// Runs the Python side three times and keeps its fastest run; `None` when it cannot.
fn python(args: &[String]) -> Option<serde_json::Value> {
    let runs: Vec<serde_json::Value> = (0..3).map_while(|_| python_once(args)).collect();
    runs.into_iter().max_by(|a, b| {
        a["tokens_per_second"].as_f64().unwrap_or(0.0).total_cmp(&b["tokens_per_second"].as_f64().unwrap_or(0.0))
    })
}

fn python_once(args: &[String]) -> Option<serde_json::Value> {
    let py = std::env::var("LABRUN_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_gpt.py");
    match std::process::Command::new(&py).arg(script).args(args).output() {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) if o.status.code() == Some(3) => {
            println!("  (torch/transformers not importable by {py}: comparison skipped)");
            None
        }
        Ok(o) => {
            println!("  python side failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""));
            None
        }
        Err(e) => {
            println!("  {py} not runnable ({e}): comparison skipped");
            None
        }
    }
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    lab_nn::runtime::init().expect("ONNX Runtime");
    let configs = [
        Config { name: "tiny_lm (2x64, ctx 32)", width: 64, layers: 2, heads: 4, context: 32, batch: 64 },
        Config { name: "small (4x128, ctx 64)", width: 128, layers: 4, heads: 4, context: 64, batch: 32 },
    ];
    let (steps, reps) = if quick { (3, 1) } else { (60, 5) };
    for c in configs.iter().take(if quick { 1 } else { 2 }) {
        let tok = Tokenizer::chars(ALPHABET).expect("alphabet");
        let spec = GptSpec {
            vocab: tok.vocab(),
            width: c.width,
            heads: c.heads,
            layers: c.layers,
            context: c.context,
            tied: false,
            value_head: false,
        };
        let model = Gpt::init(spec.clone(), tok.clone(), 0).expect("model");
        let dir = tempfile::tempdir().expect("temp dir");
        model.save(dir.path()).expect("save");
        // Logits of a fixed input, for the Python side to check it runs the same network.
        let mut r = Rand(7);
        let check_ids: Vec<i64> = (0..c.context.min(16)).map(|_| r.next(spec.vocab)).collect();
        let mut dec =
            Decoder::new(&model.decoder_graph(false).to_onnx_bytes(""), Some(c.context), SessionOptions::default())
                .expect("decoder");
        let (out, _) = dec.full(std::slice::from_ref(&check_ids), false).expect("forward");
        std::fs::write(
            dir.path().join("check.json"),
            serde_json::json!({"ids": check_ids, "logits": out.logits}).to_string(),
        )
        .expect("write");
        let spec_json = serde_json::json!({"vocab": spec.vocab, "width": c.width, "layers": c.layers, "heads": c.heads, "context": c.context});
        std::fs::write(dir.path().join("model.json"), spec_json.to_string()).expect("write");

        println!("{} — {} parameters, batch {}, 1 thread", c.name, spec.n_params(), c.batch);
        // Training: full-context rows of random tokens; setup measured with 3 steps and
        // subtracted.
        let seq = c.context;
        let rows: Vec<Row> = (0..c.batch * 4)
            .map(|_| Row { ids: (0..=seq).map(|_| r.next(spec.vocab)).collect(), from: 1, ..Row::default() })
            .collect();
        reset_peak();
        // Best of three, as for the Python side below.
        let ours = (0..if quick { 1 } else { 3 })
            .map(|_| {
                let small = train_seconds(&model, &rows, 3, c.batch);
                let big = train_seconds(&model, &rows, 3 + steps, c.batch);
                (c.batch * seq * steps) as f64 / (big - small).max(1e-9)
            })
            .fold(0.0, f64::max);
        let ours_mem = peak_mib();
        println!("  training:   labrun {ours:>9.0} tokens/s   peak {ours_mem:.0} MiB");
        let dir_s = dir.path().display().to_string();
        if !quick
            && let Some(t) = python(&[
                dir_s.clone(),
                "train".into(),
                c.batch.to_string(),
                seq.to_string(),
                steps.to_string(),
                "1".into(),
            ])
        {
            let tps = t["tokens_per_second"].as_f64().unwrap_or(f64::NAN);
            println!(
                "              PyTorch {} eager {tps:>9.0} tokens/s   peak {:.0} MiB   (same logits within {:.1e})",
                t["torch"].as_str().unwrap_or("?"),
                t["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
                t["max_abs_logit_diff"].as_f64().unwrap_or(f64::NAN)
            );
            println!("              ratio: labrun = {:.2}x PyTorch", ours / tps);
        }
        // Generation: greedy, a batch of 1 and of 16, prompt of 8, the rest of the context.
        for gb in [1usize, 16] {
            let prompt = 8;
            let new = c.context - prompt;
            let prompts: Vec<Vec<i64>> =
                (0..gb).map(|_| (0..prompt).map(|_| 1 + r.next(spec.vocab - 1)).collect()).collect();
            let cfg = Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, max_new_tokens: new, stop: vec![], seed: 0 };
            reset_peak();
            decode::generate(&mut dec, &tok, &prompts, 0, &cfg, &mut || true).expect("generates");
            let mut ours = 0.0f64;
            for _ in 0..3 {
                let t = Instant::now();
                for _ in 0..reps {
                    decode::generate(&mut dec, &tok, &prompts, 0, &cfg, &mut || true).expect("generates");
                }
                ours = ours.max((gb * new * reps) as f64 / t.elapsed().as_secs_f64());
            }
            let mem = peak_mib();
            println!("  generation, batch {gb:>2}: labrun {ours:>9.0} tokens/s   peak {mem:.0} MiB");
            if !quick
                && let Some(h) = python(&[
                    dir_s.clone(),
                    "generate".into(),
                    gb.to_string(),
                    prompt.to_string(),
                    new.to_string(),
                    reps.to_string(),
                    "1".into(),
                ])
            {
                let tps = h["tokens_per_second"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "                         HF generate {tps:>9.0} tokens/s   peak {:.0} MiB",
                    h["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
                );
                println!("                         ratio: labrun = {:.2}x Hugging Face generate", ours / tps);
            }
        }
    }
}
