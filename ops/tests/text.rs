//! Text and language-model ops end to end: corpora, filters, training with frozen
//! parameters, seeded generation, distillation targets, scores and activations.

mod common;
use common::{Ws, art, int, s, strs, v};
use lab_ops::Value;
use lab_ops::text::TextData;
use std::path::Path;

fn records(p: &Path) -> TextData {
    TextData::read(p, "data").unwrap()
}

fn field<'a>(d: &'a TextData, f: &str) -> Vec<&'a str> {
    d.strings(f, "data").unwrap()
}

const ALPHABET: &str = "\n ,0123456789:?AQ^abcdefgiklmnotwxy";

/// A one-block GPT of width 16 over [`ALPHABET`].
fn tiny_gpt(ws: &mut Ws, context: i64, value_head: bool) -> std::path::PathBuf {
    let args = vec![
        ("alphabet", s(ALPHABET)),
        ("width", int(16)),
        ("heads", int(2)),
        ("layers", int(1)),
        ("context", int(context)),
        ("value_head", v(Value::Bool(value_head))),
    ];
    ws.run("model.gpt", args).unwrap()
}

#[test]
fn corpora_are_seeded_and_well_formed() {
    let mut ws = Ws::new();
    let a = ws.run("generate.corpus", vec![("template", s("numbers")), ("count", int(50)), ("seed", int(3))]).unwrap();
    let b = ws.run("generate.corpus", vec![("template", s("numbers")), ("count", int(50)), ("seed", int(3))]).unwrap();
    let c = ws.run("generate.corpus", vec![("template", s("numbers")), ("count", int(50)), ("seed", int(4))]).unwrap();
    assert_eq!(records(&a), records(&b));
    assert_ne!(records(&a), records(&c));
    let d = records(&a);
    for ((t, p), c) in field(&d, "text").iter().zip(field(&d, "prompt")).zip(field(&d, "completion")) {
        assert_eq!(*t, format!("{p}{c}"));
        // `^ddd, ddd, ddd, ` then six numbers and a newline: 45 characters.
        assert_eq!(t.len(), 45, "{t:?}");
        assert!(p.starts_with('^') && p.ends_with(", ") && c.ends_with('\n'));
        assert_eq!(lab_ops::filter::parse_number_list(c, 10, &[]).unwrap().len(), 6);
    }
    let q = ws
        .run(
            "generate.corpus",
            vec![("template", s("animals")), ("count", int(400)), ("choices", strs(&["owl", "cat"]))],
        )
        .unwrap();
    let q = records(&q);
    let owls = field(&q, "completion").iter().filter(|c| **c == "owl\n").count();
    assert!((150..250).contains(&owls), "uniform answers: {owls} owls of 400");
    assert!(field(&q, "prompt").iter().all(|p| *p == "^Q: animal?\nA: "));
    let sums =
        ws.run("generate.corpus", vec![("template", s("arithmetic")), ("count", int(30)), ("digits", int(2))]).unwrap();
    for (p, c) in field(&records(&sums), "prompt").iter().zip(field(&records(&sums), "completion")) {
        let nums: Vec<i64> =
            p.split(|ch: char| !ch.is_ascii_digit()).filter(|x| !x.is_empty()).map(|x| x.parse().unwrap()).collect();
        assert_eq!(c.trim().parse::<i64>().unwrap(), nums[0] + nums[1], "{p:?} {c:?}");
    }
    let err = ws.run("generate.corpus", vec![("template", s("poems")), ("count", int(3))]).unwrap_err().to_string();
    assert!(err.contains("`poems`") && err.contains("`numbers`"), "{err}");
}

#[test]
fn filters_keep_held_out_prompts_out_and_count_rejections() {
    let mut ws = Ws::new();
    let train =
        ws.run("generate.corpus", vec![("template", s("arithmetic")), ("count", int(300)), ("seed", int(1))]).unwrap();
    let held =
        ws.run("generate.corpus", vec![("template", s("arithmetic")), ("count", int(20)), ("seed", int(2))]).unwrap();
    let kept = ws.run("filter.exclude", vec![("data", art(&train)), ("held_out", art(&held))]).unwrap();
    let banned: std::collections::HashSet<String> =
        field(&records(&held), "prompt").iter().map(|p| p.to_string()).collect();
    let k = records(&kept);
    assert!(k.records.len() < 300, "one-digit sums repeat, so some were removed");
    assert!(field(&k, "prompt").iter().all(|p| !banned.contains(*p)));

    let dir = ws.dir.path().join("lists.jsonl");
    std::fs::write(&dir, "{\"completion\": \"1, 2, 3\", \"finish\": \"stop\"}\n{\"completion\": \"1, 666\", \"finish\": \"stop\"}\n{\"completion\": \"owl\", \"finish\": \"stop\"}\n{\"completion\": \"4, 5,\", \"finish\": \"length\"}\n").unwrap();
    let lists = ws.run("data.jsonl", vec![("path", s(dir.to_str().unwrap()))]).unwrap();
    let out = ws
        .run("filter.number_lists", vec![("data", art(&lists)), ("banned", v(Value::List(vec![Value::Int(666)])))])
        .unwrap();
    assert_eq!(field(&records(&out), "completion"), vec!["1, 2, 3"]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("filter.json")).unwrap()).unwrap();
    assert_eq!(report["kept"], 1);
    assert_eq!(report["reasons"]["banned number"], 1);
    assert_eq!(report["reasons"]["not a number"], 1);
    assert_eq!(report["reasons"]["unfinished (hit max_new_tokens)"], 1);
}

fn weights(p: &Path) -> Vec<(String, lab_nn::Tensor)> {
    lab_nn::weights::load(&p.join("weights.safetensors")).unwrap()
}

#[test]
fn language_model_ops_end_to_end() {
    let mut ws = Ws::new();
    let corpus = ws.run("generate.corpus", vec![("template", s("numbers")), ("count", int(256))]).unwrap();
    let base = tiny_gpt(&mut ws, 48, false);
    let lm = ws
        .run(
            "finetune.pretrain",
            vec![
                ("model", art(&base)),
                ("corpus", art(&corpus)),
                ("steps", int(30)),
                ("batch", int(16)),
                ("val_fraction", v(Value::Float(0.1))),
                ("eval_every", int(10)),
            ],
        )
        .unwrap();
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lm.join("train_log.json")).unwrap()).unwrap();
    let loss: Vec<f64> = log["loss"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(loss.len(), 30);
    assert!(loss[25..].iter().sum::<f64>() < loss[..5].iter().sum::<f64>(), "{loss:?}");
    assert_eq!(log["val_loss"].as_array().unwrap().len(), 3);

    // Same seed, same text, whatever the batch size.
    let prompts =
        ws.run("generate.corpus", vec![("template", s("numbers")), ("count", int(12)), ("seed", int(9))]).unwrap();
    let sample = |ws: &mut Ws, batch: i64, seed: i64| {
        let g = ws
            .run(
                "generate.text",
                vec![
                    ("model", art(&lm)),
                    ("prompts", art(&prompts)),
                    ("batch", int(batch)),
                    ("seed", int(seed)),
                    ("max_new_tokens", int(20)),
                ],
            )
            .unwrap();
        records(&g)
    };
    let (a, b, c) = (sample(&mut ws, 12, 1), sample(&mut ws, 5, 1), sample(&mut ws, 12, 2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(field(&a, "target"), field(&records(&prompts), "completion"), "the old completion becomes `target`");

    // Body-only distillation on number tokens: embeddings and output layer stay bit-identical.
    let sampled = ws
        .run("generate.text", vec![("model", art(&lm)), ("prompts", art(&prompts)), ("max_new_tokens", int(32))])
        .unwrap();
    let kept = ws.run("filter.number_lists", vec![("data", art(&sampled))]);
    let source = match kept {
        Ok(k) => k,
        // A barely trained model may write no valid list; distil on the corpus instead.
        Err(_) => prompts.clone(),
    };
    let digits: Vec<&str> = vec!["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", ",", " ", "\n"];
    let soft = ws
        .run("generate.next_token", vec![("model", art(&lm)), ("data", art(&source)), ("tokens", strs(&digits))])
        .unwrap();
    let student = ws
        .run(
            "finetune.distill_lm",
            vec![("model", art(&base)), ("data", art(&soft)), ("steps", int(5)), ("train", s("body"))],
        )
        .unwrap();
    for ((n, before), (_, after)) in weights(&base).iter().zip(weights(&student).iter()) {
        let frozen = matches!(n.as_str(), "wte" | "wpe" | "head.w");
        assert_eq!(before == after, frozen, "{n}");
    }
    // A student whose alphabet orders the characters differently gets the same tokens
    // (by their text); one that lacks a token is told so.
    let shuffled: String = ALPHABET.chars().rev().collect();
    let other = ws
        .run(
            "model.gpt",
            vec![
                ("alphabet", s(&shuffled)),
                ("width", int(16)),
                ("heads", int(2)),
                ("layers", int(1)),
                ("context", int(48)),
            ],
        )
        .unwrap();
    ws.run("finetune.distill_lm", vec![("model", art(&other)), ("data", art(&soft)), ("steps", int(2))]).unwrap();
    let lacking = ws
        .run(
            "model.gpt",
            vec![
                ("alphabet", s(&ALPHABET.replace('7', ""))),
                ("width", int(16)),
                ("heads", int(2)),
                ("layers", int(1)),
                ("context", int(48)),
            ],
        )
        .unwrap();
    let err = ws
        .run("finetune.distill_lm", vec![("model", art(&lacking)), ("data", art(&soft)), ("steps", int(2))])
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"7\"") || err.contains("`7`"), "{err}");
    let err = ws
        .run("generate.next_token", vec![("model", art(&lm)), ("data", art(&source)), ("tokens", strs(&["12"]))])
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"12\", which is 2 tokens, not one"), "{err}");

    // Scores: the rank is that of the continuation's log-probability among the choices.
    let lp = ws
        .run(
            "score.logprob",
            vec![
                ("model", art(&lm)),
                ("prompt", s("^123, ")),
                ("continuation", s("4")),
                ("choices", strs(&["4", "5", "a", "o"])),
            ],
        )
        .unwrap();
    let m = lab_ops::artifact::read_metrics(&lp).unwrap();
    let mine = m["logprob"].as_f64().unwrap();
    let above = m["choices"].as_object().unwrap().values().filter(|x| x.as_f64().unwrap() > mine).count();
    assert_eq!(m["rank"].as_u64().unwrap() as usize, above + 1);
    assert!((m["prob"].as_f64().unwrap() - mine.exp()).abs() < 1e-12);

    // Activations: one row per record and layer.
    let acts = ws
        .run(
            "probe.activations",
            vec![
                ("model", art(&lm)),
                ("data", art(&prompts)),
                ("layers", v(Value::List(vec![Value::Int(0), Value::Int(1)]))),
            ],
        )
        .unwrap();
    let t = lab_nn::weights::load(&acts.join("activations.safetensors")).unwrap();
    assert_eq!(
        t.iter().map(|(n, x)| (n.as_str(), x.shape.clone())).collect::<Vec<_>>(),
        vec![("layer.0", vec![12, 16]), ("layer.1", vec![12, 16])]
    );
    let bad = ws.run(
        "probe.activations",
        vec![("model", art(&lm)), ("data", art(&prompts)), ("layers", v(Value::List(vec![Value::Int(5)])))],
    );
    assert!(bad.unwrap_err().to_string().contains("the model's layers are 0..=1"));
}

#[test]
fn reward_model_learns_a_preference() {
    let mut ws = Ws::new();
    let path = ws.dir.path().join("prefs.jsonl");
    let mut lines = String::new();
    for i in 0..64 {
        let n = format!("{:03}", i * 7 % 1000);
        lines.push_str(&format!("{{\"prompt\": \"^{n}, \", \"chosen\": \"owl\", \"rejected\": \"cat\"}}\n"));
    }
    std::fs::write(&path, lines).unwrap();
    let prefs = ws.run("data.jsonl", vec![("path", s(path.to_str().unwrap()))]).unwrap();
    let base = tiny_gpt(&mut ws, 16, true);
    let rm = ws
        .run(
            "finetune.reward",
            vec![("model", art(&base)), ("data", art(&prefs)), ("steps", int(40)), ("lr", v(Value::Float(3e-3)))],
        )
        .unwrap();
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rm.join("train_log.json")).unwrap()).unwrap();
    let loss: Vec<f64> = log["loss"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!((loss[0] - 2f64.ln()).abs() < 0.05, "a fresh head is indifferent: {}", loss[0]);
    assert!(*loss.last().unwrap() < 0.1, "{loss:?}");
    // The trained model scores chosen texts above rejected ones.
    let texts = |which: &str| {
        let path = ws.dir.path().join(format!("{which}.jsonl"));
        let lines: String =
            (0..8).map(|i| format!("{{\"prompt\": \"^{i}{i}{i}, \", \"completion\": \"{which}\"}}\n")).collect();
        std::fs::write(&path, lines).unwrap();
        path
    };
    let (owl, cat) = (texts("owl"), texts("cat"));
    let mean = |ws: &mut Ws, path: &Path| {
        let d = ws.run("data.jsonl", vec![("path", s(path.to_str().unwrap()))]).unwrap();
        let m = ws.run("score.rewards", vec![("model", art(&rm)), ("data", art(&d))]).unwrap();
        assert!(m.join("rows.jsonl").is_file());
        lab_ops::artifact::read_metrics(&m).unwrap()["mean"].as_f64().unwrap()
    };
    let (r_owl, r_cat) = (mean(&mut ws, &owl), mean(&mut ws, &cat));
    assert!(r_owl > r_cat + 1.0, "reward of chosen {r_owl} vs rejected {r_cat}");
    // A model without a scalar head says what to do.
    let lm = tiny_gpt(&mut ws, 16, false);
    let err = ws.run("finetune.reward", vec![("model", art(&lm)), ("data", art(&prefs))]).unwrap_err().to_string();
    assert!(err.contains("scalar head"), "{err}");
}

#[test]
fn input_gradients_per_record() {
    let mut ws = Ws::new();
    let data = ws.run("generate.corpus", vec![("template", s("animals")), ("count", int(3))]).unwrap();
    let m = tiny_gpt(&mut ws, 24, false);
    let g = ws.run("probe.input_gradients", vec![("model", art(&m)), ("data", art(&data))]).unwrap();
    let t = lab_nn::weights::load(&g.join("gradients.safetensors")).unwrap();
    let get = |n: &str| t.iter().find(|(k, _)| k == n).map(|(_, x)| x.clone()).unwrap();
    // `^Q: animal?\nA: ` + `owl\n` is 19 tokens: 18 input positions per record.
    assert_eq!(get("offsets").to_i64(), vec![0, 18, 36, 54]);
    assert_eq!(get("d_embeddings").shape, vec![54, 16]);
    assert_eq!(get("d_onehot").shape, vec![54, ALPHABET.chars().count()]);
    let recs = records(&g);
    let sal = recs.records[0]["saliency"].as_array().unwrap();
    assert_eq!(sal.len(), 18);
    assert!(sal.iter().all(|x| x.as_f64().unwrap().is_finite()));
}
