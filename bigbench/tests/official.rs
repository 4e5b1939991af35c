//! labrun's BIG-bench scorer against the official code. `fixtures/official.json` was made
//! by `scripts/bigbench/official_fixtures.py` with the official `bigbench` 1.0.0 package:
//! for every shared task (some also with `max_examples`) and 0, 1 and 2 shots, the exact
//! prompts it built, the fake model's raw generations and log-probabilities, the official
//! score list, and every official metric applied to the same outputs.

use lab_bigbench::eval::{self, Model, Settings};
use lab_bigbench::metrics::{self, Choice};
use lab_bigbench::post;
use lab_bigbench::task::Task;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/bigbench")
}

fn fixture() -> Value {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/official.json"))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The fake model's recorded outputs.
struct Recorded {
    raw: HashMap<String, String>,
    lp: HashMap<String, HashMap<String, f64>>,
}

impl Recorded {
    fn new(case: &Value) -> Recorded {
        let raw = case["raw"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let lp = case["log_probs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(p, m)| {
                (p.clone(), m.as_object().unwrap().iter().map(|(t, v)| (t.clone(), v.as_f64().unwrap())).collect())
            })
            .collect();
        Recorded { raw, lp }
    }
}

impl Model for Recorded {
    fn log_probs(&mut self, prompts: &[&str], targets: &[&[String]]) -> Result<Vec<Vec<f64>>, String> {
        prompts
            .iter()
            .zip(targets)
            .map(|(p, ts)| {
                let m = self.lp.get(*p).ok_or_else(|| format!("the official code never scored the prompt {p:?}"))?;
                ts.iter().map(|t| m.get(t).copied().ok_or_else(|| format!("no log-probability of {t:?}"))).collect()
            })
            .collect()
    }

    fn generate(&mut self, prompts: &[&str], _stop: Option<&str>) -> Result<Vec<String>, String> {
        prompts.iter().map(|p| self.raw.get(*p).cloned().ok_or_else(|| format!("no generation for {p:?}"))).collect()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

const SHOTS: [usize; 3] = [0, 1, 2];

#[test]
fn prompts_are_the_official_ones_character_for_character() {
    for case in fixture()["cases"].as_array().unwrap() {
        let name = case["task"].as_str().unwrap();
        let max = case["max_examples"].as_u64().map(|m| m as usize);
        let task = Task::load(&shared().join(name), 2, 42).unwrap();
        let per_leaf = task.per_leaf_max(max).unwrap();
        let leaves = task.leaves();
        let runs = case["runs"].as_array().unwrap();
        assert_eq!(runs.len(), leaves.len() * SHOTS.len(), "{name}");
        for run in runs {
            let sub = run["subtask"].as_str().unwrap();
            let shots = run["shots"].as_u64().unwrap() as usize;
            let (_, leaf) =
                leaves.iter().find(|(n, _)| *n == sub).unwrap_or_else(|| panic!("{name}: no subtask {sub}"));
            let got: Vec<String> = leaf.queries(shots, per_leaf, 42).unwrap().into_iter().map(|q| q.prompt).collect();
            let want: Vec<&str> = run["prompts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
            assert_eq!(got, want, "{sub}, {shots} shots");
        }
    }
}

#[test]
fn scores_and_aggregates_are_the_official_ones() {
    let mut compared = 0;
    for case in fixture()["cases"].as_array().unwrap() {
        let name = case["task"].as_str().unwrap();
        let max = case["max_examples"].as_u64().map(|m| m as usize);
        let task = Task::load(&shared().join(name), 2, 42).unwrap();
        let settings = Settings { shots: &SHOTS, max_examples: max, seed: 42, max_length: None };
        let (scores, records) = eval::evaluate(&task, &settings, &mut Recorded::new(case)).unwrap();
        let want = case["scores"].as_array().unwrap();
        assert_eq!(scores.len(), want.len(), "{name}");
        for (g, w) in scores.iter().zip(want) {
            assert_eq!(g.subtask, w["subtask"].as_str().unwrap(), "{name}");
            assert_eq!(g.shots as u64, w["shots"].as_u64().unwrap());
            assert_eq!(g.preferred, w["preferred"].as_str().unwrap(), "{name} {}", g.subtask);
            assert!(close(g.low, w["low"].as_f64().unwrap()) && close(g.high, w["high"].as_f64().unwrap()), "{name}");
            let ws = w["scores"].as_object().unwrap();
            let keys: Vec<&String> = g.scores.keys().collect();
            let mut wkeys: Vec<&String> = ws.keys().collect();
            wkeys.sort();
            assert_eq!(keys, wkeys, "{name} {} {}", g.subtask, g.shots);
            for (k, v) in ws {
                assert!(
                    close(g.scores[k], v.as_f64().unwrap()),
                    "{name} {} {}-shot {k}: {} vs official {v}",
                    g.subtask,
                    g.shots,
                    g.scores[k]
                );
                compared += 1;
            }
        }
        assert!(!records.is_empty());
    }
    assert!(compared > 100, "{compared}");
}

#[test]
fn every_metric_matches_the_official_functions() {
    let mut seen = std::collections::BTreeSet::new();
    for case in fixture()["cases"].as_array().unwrap() {
        let name = case["task"].as_str().unwrap();
        let max = case["max_examples"].as_u64().map(|m| m as usize);
        let task = Task::load(&shared().join(name), 2, 42).unwrap();
        let per_leaf = task.per_leaf_max(max).unwrap();
        let mut model = Recorded::new(case);
        for run in case["runs"].as_array().unwrap() {
            let sub = run["subtask"].as_str().unwrap();
            let shots = run["shots"].as_u64().unwrap() as usize;
            let (_, leaf) = task.leaves().into_iter().find(|(n, _)| *n == sub).unwrap();
            let qs = leaf.queries(shots, per_leaf, 42).unwrap();
            let prompts: Vec<&str> = qs.iter().map(|q| q.prompt.as_str()).collect();
            let targets: Vec<&[String]> = qs.iter().map(|q| leaf.examples[q.example].target.as_slice()).collect();
            let re = leaf.output_regex.as_deref().map(|r| post::compile(r).unwrap());
            let responses: Vec<String> = model
                .generate(&prompts, None)
                .unwrap()
                .iter()
                .map(|t| post::postprocess(t, None, leaf.stop_string.as_deref(), re.as_ref()))
                .collect();
            let want = run["every_metric"].as_object().unwrap();
            let mut got = metrics::Scores::new();
            let mut gen_names: Vec<String> = metrics::GENERATIVE.iter().map(|s| s.to_string()).collect();
            if targets.iter().any(|t| t.len() != 1) {
                gen_names.retain(|m| m != "numeric_match_with_0_1_relative_error");
            }
            got.extend(metrics::generative(&gen_names, &targets, &responses).unwrap().0);
            got.extend(metrics::log_likelihood(&model.log_probs(&prompts, &targets).unwrap(), &targets));
            if qs.iter().all(|q| !leaf.examples[q.example].choices.is_empty()) {
                let choices: Vec<&[String]> = qs.iter().map(|q| leaf.examples[q.example].choices.as_slice()).collect();
                let absolute = model.log_probs(&prompts, &choices).unwrap();
                let norm: Vec<Vec<f64>> = absolute.iter().map(|a| metrics::normalize(a)).collect();
                let ranked = if leaf.absolute_normalization { &absolute } else { &norm };
                for m in metrics::MULTIPLE_CHOICE {
                    let cs: Vec<Choice> = qs
                        .iter()
                        .enumerate()
                        .map(|(i, q)| {
                            let e = &leaf.examples[q.example];
                            Choice {
                                choices: &e.choices,
                                scores: &e.scores,
                                log_prob: &ranked[i],
                                absolute: &absolute[i],
                            }
                        })
                        .collect();
                    match metrics::multiple_choice(&[m.to_string()], &cs) {
                        Ok(s) => got.extend(s),
                        Err(e) => {
                            let key = format!("{m}:error");
                            assert_eq!(want.get(&key).and_then(Value::as_str), Some(e.as_str()), "{sub}: {m}");
                            seen.insert(key);
                        }
                    }
                }
            }
            for (k, v) in &got {
                let w = want.get(k).unwrap_or_else(|| panic!("{sub}: the official code gave no {k}")).as_f64().unwrap();
                assert!(close(*v, w), "{sub} {shots}-shot {k}: labrun {v}, official {w}");
                seen.insert(k.clone());
            }
            assert_eq!(
                got.len() + want.keys().filter(|k| k.ends_with(":error")).count(),
                want.len(),
                "{sub}: {:?}",
                want.keys()
            );
        }
    }
    for m in [
        "bleu",
        "rouge1",
        "rouge2",
        "rougeLsum",
        "sequence_f1",
        "exact_str_match",
        "case_insensitive_str_match",
        "numeric_match_with_0_1_relative_error",
        "log_likelihood",
        "multiple_choice_grade",
        "calibration_multiple_choice_brier_score",
        "expected_calibration_error",
        "macro_f1",
        "weighted_log_probabilities",
        "weighted_probabilities",
    ] {
        assert!(seen.contains(m), "never compared {m}");
    }
}

#[test]
fn ties_break_as_the_official_argmax() {
    let cases = fixture()["argmax_cases"].as_array().unwrap().clone();
    let mut ties = 0;
    for c in &cases {
        let x: Vec<f64> = c["x"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        ties += usize::from(x.iter().filter(|&&v| v == max).count() > 1);
        assert_eq!(metrics::argmax(&x) as u64, c["argmax"].as_u64().unwrap(), "{x:?}");
    }
    assert!(ties > 200, "only {ties} of the cases have ties");
}
