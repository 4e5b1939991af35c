//! The reward-model overoptimization ops: the best-of-n estimator against brute force, the
//! exact KL recursion against Monte Carlo, the policy gradient against finite differences,
//! the gold reward's ONNX graph against its definition, proxies, RL, fits, and bad input.

mod common;
use common::{Ws, art, int, s, v};
use lab_ops::Value;
use lab_ops::best_of_n::{best_of_n, kl_best_of_n, log_factorials};
use lab_ops::curve::Curve;
use lab_ops::markov::{self, Markov};
use rand::Rng;
use std::path::{Path, PathBuf};

fn metrics(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p.join("metrics.json")).unwrap()).unwrap()
}

fn f(x: f64) -> lab_ops::ArgIn {
    v(Value::Float(x))
}

/// Every n-subset of a pool, the member with the highest proxy score picked: the mean gold
/// of the picks is what the unbiased estimator must give exactly.
#[test]
fn best_of_n_estimator_equals_brute_force_enumeration() {
    let mut rng = markov::rng(5, 0);
    for big in [1usize, 2, 5, 9, 12] {
        let proxy: Vec<f64> = (0..big).map(|_| rng.random()).collect();
        let gold: Vec<f64> = (0..big).map(|_| rng.random::<f64>() * 4.0 - 2.0).collect();
        let mut order: Vec<usize> = (0..big).collect();
        order.sort_by(|&a, &b| proxy[a].total_cmp(&proxy[b]));
        let sorted: Vec<f64> = order.iter().map(|&i| gold[i]).collect();
        let lf = log_factorials(big);
        for n in 1..=big {
            let (mut sum, mut count) = (0.0, 0usize);
            for mask in 0u32..(1 << big) {
                if mask.count_ones() as usize != n {
                    continue;
                }
                let best = (0..big).filter(|i| mask >> i & 1 == 1).max_by(|&a, &b| proxy[a].total_cmp(&proxy[b]));
                sum += gold[best.unwrap()];
                count += 1;
            }
            let brute = sum / count as f64;
            let est = best_of_n(&sorted, n, &lf);
            assert!((est - brute).abs() < 1e-12, "N {big}, n {n}: {est} vs {brute}");
        }
    }
    // In log space the weights stay finite and sum to one for pools far beyond f64's
    // binomials.
    let lf = log_factorials(100_000);
    let ones = vec![1.0; 100_000];
    for n in [1, 7, 5_000, 99_999, 100_000] {
        assert!((best_of_n(&ones, n, &lf) - 1.0).abs() < 1e-9, "n {n}");
    }
    assert_eq!(kl_best_of_n(1), 0.0);
    assert!((kl_best_of_n(4) - (4f64.ln() - 0.75)).abs() < 1e-15);
}

#[test]
fn exact_kl_matches_monte_carlo_and_log_prob_gradients_match_finite_differences() {
    let p0 = Markov::init(5, 6, 0.8, 3).unwrap();
    let mut rng = markov::rng(8, 0);
    let bias: Vec<f32> = (0..30).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let (t0, t1) = (p0.table(&p0.bias), p0.table(&bias));
    let exact = t1.kl(&t0);
    assert!(exact > 0.1, "{exact}");
    assert!(t0.kl(&t0).abs() < 1e-15);
    // KL(π‖π₀) = E_π[log π(x) − log π₀(x)].
    let seqs = t1.sample(200_000, &mut markov::rng(9, 0));
    let diffs: Vec<f64> = t1.log_prob(&seqs).iter().zip(t0.log_prob(&seqs)).map(|(a, b)| a - b).collect();
    let (m, sd) = markov::mean_std(&diffs);
    let se = sd / (diffs.len() as f64).sqrt();
    assert!((m - exact).abs() < 4.0 * se, "Monte Carlo {m} ± {se}, exact {exact}");

    // ∂ log π(x) / ∂ bias, closed form against central differences.
    let few = t1.sample(3, &mut markov::rng(10, 0));
    let w = [1.0, -0.5, 2.0];
    let g = t1.bias_gradient(&few, &w);
    let objective = |b: &[f32]| -> f64 { p0.table(b).log_prob(&few).iter().zip(w).map(|(l, w)| l * w).sum() };
    for i in [0, 7, 13, 29] {
        let h = 1e-2f32;
        let (mut up, mut down) = (bias.clone(), bias.clone());
        up[i] += h;
        down[i] -= h;
        let fd = (objective(&up) - objective(&down)) / (2.0 * h as f64);
        assert!((fd - g[i]).abs() < 1e-3 * (1.0 + g[i].abs()), "bias {i}: {fd} vs {}", g[i]);
    }
}

fn policy(ws: &mut Ws, length: i64, vocab: i64) -> PathBuf {
    ws.run("model.markov", vec![("length", int(length)), ("vocab", int(vocab)), ("seed", int(1))]).unwrap()
}

/// Scores of a reward model on sequences, through ONNX Runtime.
fn scores(model: &Path, seqs: &markov::Seqs, vocab: usize) -> Vec<f32> {
    let bytes = std::fs::read(model.join("model.onnx")).unwrap();
    lab_nn::runtime::init().unwrap();
    let mut sess = lab_nn::runtime::session(&bytes, Default::default()).unwrap();
    let x = seqs.one_hot(vocab);
    lab_nn::exec::predict_rows(&mut sess, "x", "logits", seqs.length * vocab, &x).unwrap().0
}

#[test]
fn gold_reward_is_standardised_under_the_policy_and_penalises_the_attribute() {
    let mut ws = Ws::new();
    let base = policy(&mut ws, 8, 16);
    let gold =
        ws.run("model.gold_reward", vec![("policy", art(&base)), ("samples", int(4096)), ("seed", int(4))]).unwrap();
    // The op standardised on these very samples (same seed and stream): mean 0, std 1.
    let p = Markov::load(&base, "policy").unwrap();
    let seqs = p.table(&p.bias).sample(4096, &mut markov::rng(4, 1));
    let g: Vec<f64> = scores(&gold, &seqs, 16).iter().map(|&x| x as f64).collect();
    let (m, sd) = markov::mean_std(&g);
    assert!(m.abs() < 1e-4 && (sd - 1.0).abs() < 1e-4, "mean {m}, std {sd}");
    // Without the penalty the gold is the quality itself, which the penalty lowers exactly
    // where the attribute passes the threshold: never raised, lowered somewhere.
    let plain = ws
        .run(
            "model.gold_reward",
            vec![("policy", art(&base)), ("samples", int(4096)), ("seed", int(4)), ("penalty", f(0.0))],
        )
        .unwrap();
    let q: Vec<f64> = scores(&plain, &seqs, 16).iter().map(|&x| x as f64).collect();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gold.join("model.json")).unwrap()).unwrap();
    let (gm, gs) = (meta["standardization"][2][0].as_f64().unwrap(), meta["standardization"][2][1].as_f64().unwrap());
    let raw: Vec<f64> = g.iter().map(|x| x * gs + gm).collect();
    assert!(raw.iter().zip(&q).all(|(r, q)| r <= &(q + 1e-4)));
    assert!(raw.iter().zip(&q).filter(|(r, q)| *r < &(*q - 0.01)).count() > 100);
}

/// A small world: policy, gold, comparisons and a proxy trained on them.
fn world(ws: &mut Ws, pairs: i64) -> (PathBuf, PathBuf, PathBuf) {
    let base = policy(ws, 8, 16);
    let gold = ws.run("model.gold_reward", vec![("policy", art(&base)), ("seed", int(2))]).unwrap();
    let cmp = ws
        .run("generate.comparisons", vec![("policy", art(&base)), ("gold", art(&gold)), ("pairs", int(pairs))])
        .unwrap();
    (base, gold, cmp)
}

fn mlp(ws: &mut Ws, inputs: i64, width: i64) -> PathBuf {
    ws.run(
        "model.mlp",
        vec![
            ("inputs", int(inputs)),
            ("hidden", v(Value::List(vec![Value::Int(width)]))),
            ("outputs", int(1)),
            ("init", s("he")),
        ],
    )
    .unwrap()
}

#[test]
fn proxies_learn_the_comparisons_and_best_of_n_and_rl_optimise_them() {
    let mut ws = Ws::new();
    let (base, gold, cmp) = world(&mut ws, 3000);
    let test = ws
        .run(
            "generate.comparisons",
            vec![("policy", art(&base)), ("gold", art(&gold)), ("pairs", int(2000)), ("seed", int(7))],
        )
        .unwrap();
    // Rows hold the preferred sequence first: the gold agrees with every one.
    let gold_acc = metrics(&ws.run("score.preferences", vec![("model", art(&gold)), ("data", art(&test))]).unwrap());
    assert_eq!(gold_acc["accuracy"].as_f64().unwrap(), 1.0);

    let init = mlp(&mut ws, 128, 16);
    let untrained = metrics(&ws.run("score.preferences", vec![("model", art(&init)), ("data", art(&test))]).unwrap());
    let train = |ws: &mut Ws, data: &Path| {
        ws.run(
            "finetune.reward",
            vec![
                ("model", art(&init)),
                ("data", art(data)),
                ("steps", int(1500)),
                ("lr", f(3e-3)),
                ("batch", int(64)),
                ("clip", f(0.0)),
                ("val_fraction", f(0.2)),
                ("patience", int(4)),
            ],
        )
        .unwrap()
    };
    let proxy = train(&mut ws, &cmp);
    let acc = metrics(&ws.run("score.preferences", vec![("model", art(&proxy)), ("data", art(&test))]).unwrap());
    let (a0, a1) = (untrained["accuracy"].as_f64().unwrap(), acc["accuracy"].as_f64().unwrap());
    assert!(a1 > 0.75 && a1 > a0 + 0.15, "held-out accuracy {a0} → {a1}");
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(proxy.join("train_log.json")).unwrap()).unwrap();
    assert!(!log["val_loss"].as_array().unwrap().is_empty());
    assert!(metrics(&proxy)["val_accuracy"].as_f64().unwrap() > 0.7);

    // Best-of-n against the gold itself: its score only rises; KL is log n − (n−1)/n.
    let bon = ws
        .run(
            "estimate.best_of_n",
            vec![
                ("policy", art(&base)),
                ("gold", art(&gold)),
                ("proxy", art(&proxy)),
                ("pool", int(2048)),
                ("pools", int(2)),
            ],
        )
        .unwrap();
    let c = Curve::read(&bon).unwrap();
    let (n, kl, proxy_gain) = (c.column("n", "").unwrap(), c.column("kl", "").unwrap(), c.column("proxy", "").unwrap());
    assert_eq!((n[0], *n.last().unwrap()), (1.0, 2048.0));
    for (n, kl) in n.iter().zip(&kl) {
        assert!((kl - kl_best_of_n(*n as usize)).abs() < 1e-12);
    }
    assert!(proxy_gain.windows(2).all(|w| w[1] >= w[0]) && *proxy_gain.last().unwrap() > 1.0);
    assert!(
        std::fs::read_to_string(bon.join("curve.csv")).unwrap().starts_with("n,kl,d,gold,proxy,gold_se,proxy_se\n")
    );

    // RL against the proxy: checkpoints at increasing exact KL, the proxy score rising.
    let rl = ws
        .run(
            "finetune.rl",
            vec![
                ("policy", art(&base)),
                ("reward", art(&proxy)),
                ("max_kl", f(4.0)),
                ("checkpoints", int(6)),
                ("batch", int(256)),
            ],
        )
        .unwrap();
    let trained = Markov::load(&rl, "policy").unwrap();
    let kls: Vec<f64> = trained.checkpoints.iter().map(|c| c.kl).collect();
    assert_eq!(kls[0], 0.0);
    assert!(kls.windows(2).all(|w| w[1] > w[0]) && *kls.last().unwrap() >= 4.0, "{kls:?}");
    let curve = ws
        .run(
            "estimate.rewards",
            vec![("policy", art(&rl)), ("gold", art(&gold)), ("proxy", art(&proxy)), ("samples", int(2048))],
        )
        .unwrap();
    let c = Curve::read(&curve).unwrap();
    // The KL is recomputed exactly from the saved checkpoints.
    for (a, b) in c.column("kl", "").unwrap().iter().zip(&kls) {
        assert!((a - b).abs() < 1e-6 * (1.0 + b), "{a} vs {b}");
    }
    let p = c.column("proxy", "").unwrap();
    assert!(p[p.len() - 1] > p[1] && p[1] > 0.0, "{p:?}");

    // Fits of the measured curves run and say what they found.
    let fit = ws.run("fit.bon", vec![("curves", lab_ops::ArgIn::Artifacts(vec![bon.clone()]))]).unwrap();
    let m = metrics(&fit);
    assert!(m["r2"].as_f64().unwrap().is_finite() && fit.join("figure.svg").is_file());
}

/// Curves made from known α and β, with noise that cancels between two seeds.
#[test]
fn fit_ops_recover_known_coefficients() {
    let mut ws = Ws::new();
    for (op, form) in [("fit.bon", lab_ops::fit::Form::Bon), ("fit.rl", lab_ops::fit::Form::Rl)] {
        let mut dirs = Vec::new();
        for sign in [1.0, -1.0] {
            let mut c = Curve::new(&["d", "gold", "proxy"]);
            for i in 0..25 {
                let d = 0.15 * i as f64;
                let noise = if i % 2 == 0 { 0.05 } else { -0.05 } * sign;
                c.push(vec![d, form.eval(1.2, 0.35, d) + noise, d]);
            }
            let dir = ws.dir.path().join(format!("{op}{sign}"));
            std::fs::create_dir(&dir).unwrap();
            c.write(&dir, &Default::default()).unwrap();
            dirs.push(dir);
        }
        let m = metrics(&ws.run(op, vec![("curves", lab_ops::ArgIn::Artifacts(dirs))]).unwrap());
        let (a, b) = (m["alpha"].as_f64().unwrap(), m["beta"].as_f64().unwrap());
        assert!((a - 1.2).abs() < 1e-9 && (b - 0.35).abs() < 1e-9, "{op}: α {a}, β {b}");
        assert!((m["r2"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        let (ds, gs) = form.peak(1.2, 0.35).unwrap();
        assert!(
            (m["d_star"].as_f64().unwrap() - ds).abs() < 1e-9 && (m["gold_star"].as_f64().unwrap() - gs).abs() < 1e-9
        );
        assert_eq!(m["proxy_rises"], 1);
    }
    // A trend through known points: y = 0.5 + 0.25·log10(x).
    let mut dirs = Vec::new();
    for (i, x) in [100.0f64, 1000.0, 10000.0].iter().enumerate() {
        let dir = ws.dir.path().join(format!("t{i}"));
        std::fs::create_dir(&dir).unwrap();
        let mut m = lab_ops::artifact::Metrics::new();
        m.insert("alpha".into(), serde_json::json!(0.5 + 0.25 * x.log10()));
        lab_ops::artifact::write_metrics(&dir, &m).unwrap();
        dirs.push(dir);
    }
    let xs = v(Value::List(vec![Value::Int(100), Value::Int(1000), Value::Int(10000)]));
    let m = metrics(
        &ws.run("fit.trend", vec![("values", lab_ops::ArgIn::Artifacts(dirs)), ("x", xs), ("metric", s("alpha"))])
            .unwrap(),
    );
    assert!(
        (m["slope"].as_f64().unwrap() - 0.25).abs() < 1e-12 && (m["intercept"].as_f64().unwrap() - 0.5).abs() < 1e-12
    );
    assert_eq!(m["increasing"], 1);
}

#[test]
fn bad_input_is_a_clear_error() {
    let mut ws = Ws::new();
    let base = policy(&mut ws, 8, 16);
    let gold = ws.run("model.gold_reward", vec![("policy", art(&base))]).unwrap();
    // A reward model of the wrong width names both sizes.
    let narrow = mlp(&mut ws, 64, 4);
    let e = ws
        .run("generate.comparisons", vec![("policy", art(&base)), ("gold", art(&narrow)), ("pairs", int(10))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("64 inputs") && e.contains("128 one-hot features"), "{e}");
    // An MLP is not a policy.
    let e = ws.run("finetune.rl", vec![("policy", art(&narrow)), ("reward", art(&gold))]).unwrap_err().to_string();
    assert!(e.contains("model.markov"), "{e}");
    // Comparisons of the wrong width for the proxy.
    let cmp =
        ws.run("generate.comparisons", vec![("policy", art(&base)), ("gold", art(&gold)), ("pairs", int(50))]).unwrap();
    let e = ws.run("finetune.reward", vec![("model", art(&narrow)), ("data", art(&cmp))]).unwrap_err().to_string();
    assert!(e.contains("width 256") && e.contains("128"), "{e}");
    // A policy with few distinct sequences: best-of-n's KL would be wrong.
    let tiny = policy(&mut ws, 2, 3);
    let tiny_gold = ws.run("model.gold_reward", vec![("policy", art(&tiny))]).unwrap();
    let e = ws
        .run("estimate.best_of_n", vec![("policy", art(&tiny)), ("gold", art(&tiny_gold)), ("proxy", art(&tiny_gold))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate sequences"), "{e}");
    // A fit needs points.
    let dir = ws.dir.path().join("one");
    std::fs::create_dir(&dir).unwrap();
    let mut c = Curve::new(&["d", "gold"]);
    c.push(vec![0.0, 0.0]);
    c.write(&dir, &Default::default()).unwrap();
    let e = ws.run("fit.bon", vec![("curves", lab_ops::ArgIn::Artifacts(vec![dir]))]).unwrap_err().to_string();
    assert!(e.contains("fewer than two points"), "{e}");
    // Out-of-range settings.
    let e = ws.run("model.gold_reward", vec![("policy", art(&base)), ("correlation", f(1.5))]).unwrap_err().to_string();
    assert!(e.contains("`correlation` of `model.gold_reward` must be ≤ 1"), "{e}");
    let e = ws.run("model.markov", vec![("vocab", int(5000))]).unwrap_err().to_string();
    assert!(e.contains("more than"), "{e}");
}
