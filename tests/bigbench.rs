//! BIG-bench through the command line: `data.bigbench` and `score.bigbench` on real
//! models and the shared task files, checked against the official code's prompts
//! (`bigbench/tests/fixtures/official.json`) and against the metrics recomputed by hand
//! from the per-query records; the held-out rule; and `pipelines/bigbench.lab` at a tiny
//! scale.

mod common;
use common::{labrun, root, table_row};
use serde_json::Value;
use std::path::Path;

fn run_lab(dir: &Path, file: &str, sets: &[&str]) -> common::Run {
    let cache = dir.join("cache");
    let file = root().join(file);
    let mut args = vec!["run", file.to_str().unwrap(), "--cache", cache.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    labrun(dir, &args)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The artifact directory of a report row, from the run's results.json.
fn artifact(results: &Value, table: usize, label: &str) -> std::path::PathBuf {
    let row = table_row(results, table, label);
    Path::new(row["dir"].as_str().unwrap_or_else(|| panic!("{label}: no artifact in {row}"))).to_path_buf()
}

#[test]
fn scores_real_models_with_the_official_prompts_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_lab(dir.path(), "tests/pipelines/bigbench/scoring.lab", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let results = read_json(&dir.path().join("results/scoring/results.json"));
    let official = read_json(&root().join("bigbench/tests/fixtures/official.json"));
    let case = |task: &str| {
        official["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["task"] == task && c["max_examples"].is_null())
            .unwrap()
            .clone()
    };

    // The composite task: three subtasks, each at 0, 1 and 2 shots, then the aggregates.
    let dir_c = artifact(&results, 0, "composite");
    let scores = read_json(&dir_c.join("scores.json"));
    let entries = scores.as_array().unwrap();
    assert_eq!(entries.len(), 3 * 3 + 3);
    let c = case("simple_arithmetic_json_subtasks");
    for run in c["runs"].as_array().unwrap() {
        let sub = run["subtask"].as_str().unwrap();
        let shots = run["shots"].as_u64().unwrap();
        let file = dir_c.join("records").join(format!("{}_{shots}shot.jsonl", sub.replace(':', "_")));
        let rows = jsonl(&file);
        let prompts: Vec<&str> = rows.iter().map(|r| r["prompt"].as_str().unwrap()).collect();
        let want: Vec<&str> = run["prompts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert_eq!(prompts, want, "{sub}, {shots} shots: the prompts the model saw are the official ones");
        // exact_str_match recomputed from the records: the response must equal a target.
        let hits = rows.iter().filter(|r| r["targets"].as_array().unwrap().iter().any(|t| t == &r["response"])).count();
        let entry = entries.iter().find(|e| e["subtask"] == sub && e["shots"] == shots).unwrap();
        let score = entry["scores"]["exact_str_match"].as_f64().unwrap();
        assert!((score - hits as f64 / rows.len() as f64).abs() < 1e-12, "{sub}");
        assert_eq!(entry["normalized"].as_f64().unwrap(), 100.0 * score);
        for r in &rows {
            assert!(r["text"].is_string(), "the raw generation is kept");
        }
    }
    for (shots, e) in entries[9..].iter().enumerate() {
        assert_eq!(e["subtask"], "simple_arithmetic_json_subtasks");
        assert_eq!(e["shots"], shots as u64);
        assert_eq!(e["preferred"], "normalized_aggregate_score");
        let subs: Vec<f64> = entries[..9]
            .iter()
            .filter(|s| s["shots"] == shots as u64)
            .map(|s| s["normalized"].as_f64().unwrap())
            .collect();
        let mean = subs.iter().sum::<f64>() / 3.0;
        assert!((e["normalized"].as_f64().unwrap() - mean).abs() < 1e-9, "the aggregate is the mean over subtasks");
    }
    let m = read_json(&dir_c.join("metrics.json"));
    assert!(m["parameters"].as_u64().unwrap() > 1000);
    assert!(m.get("normalized_2shot").is_some());

    // Multiple choice: the grade, Brier score and calibration error from the choices'
    // log-probabilities, recomputed here from the records.
    let dir_m = artifact(&results, 0, "multiple choice");
    let c = case("simple_arithmetic_json_multiple_choice");
    let task: Value = read_json(&root().join("data/bigbench/simple_arithmetic_json_multiple_choice/task.json"));
    for run in c["runs"].as_array().unwrap() {
        let shots = run["shots"].as_u64().unwrap();
        let rows =
            jsonl(&dir_m.join("records").join(format!("simple_arithmetic_json_multiple_choice_{shots}shot.jsonl")));
        let prompts: Vec<&str> = rows.iter().map(|r| r["prompt"].as_str().unwrap()).collect();
        let want: Vec<&str> = run["prompts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert_eq!(prompts, want);
        let (mut grade, mut brier, mut pairs) = (0.0, 0.0, 0.0);
        for r in &rows {
            let ex = &task["examples"][r["example"].as_u64().unwrap() as usize]["target_scores"];
            let lp = r["logprobs"].as_object().unwrap();
            let max = lp.values().map(|v| v.as_f64().unwrap()).fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = lp.values().map(|v| (v.as_f64().unwrap() - max).exp()).sum();
            let best = lp.iter().max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap())).unwrap().0;
            grade += ex[best].as_f64().unwrap();
            for (choice, v) in lp {
                let p = (v.as_f64().unwrap() - max).exp() / z;
                let t = ex[choice].as_f64().unwrap();
                brier += t * (p - 1.0).powi(2) + (1.0 - t) * p * p;
                pairs += 1.0;
            }
        }
        let scores = read_json(&dir_m.join("scores.json"));
        let e = scores.as_array().unwrap().iter().find(|e| e["shots"] == shots).unwrap();
        assert!((e["scores"]["multiple_choice_grade"].as_f64().unwrap() - grade / rows.len() as f64).abs() < 1e-12);
        assert!(
            (e["scores"]["calibration_multiple_choice_brier_score"].as_f64().unwrap() - brier / pairs).abs() < 1e-9
        );
        assert_eq!(e["low"].as_f64().unwrap(), 0.25, "random guessing among four choices");
        assert!(e["scores"]["expected_calibration_error"].is_number());
    }

    // Several targets: BLEU is computed, and only the shot counts asked for.
    let dir_t = artifact(&results, 0, "several targets");
    let scores = read_json(&dir_t.join("scores.json"));
    let shots: Vec<u64> = scores.as_array().unwrap().iter().map(|e| e["shots"].as_u64().unwrap()).collect();
    assert_eq!(shots, [0, 2]);
    assert!(scores[0]["scores"]["bleu"].is_number());

    // An imported decoder (GPT-2's interface, a BPE tokenizer, 64 positions) is scored the
    // same way: the official prompts, a log-probability for every choice.
    let dir_i = artifact(&results, 0, "imported GPT-2");
    let rows = jsonl(&dir_i.join("records/simple_arithmetic_json_multiple_choice_0shot.jsonl"));
    let want: Vec<&str> = c["runs"].as_array().unwrap().iter().find(|r| r["shots"] == 0).unwrap()["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(rows.iter().map(|r| r["prompt"].as_str().unwrap()).collect::<Vec<_>>(), want);
    for r in &rows {
        let lp = r["logprobs"].as_object().unwrap();
        assert_eq!(lp.len(), 4);
        assert!(lp.values().all(|v| v.as_f64().unwrap() < 0.0));
    }
    let m = read_json(&dir_i.join("metrics.json"));
    assert!(m.get("parameters").is_none(), "an imported model's size is not known to labrun");
}

#[test]
fn training_text_holding_evaluated_questions_is_refused_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_lab(dir.path(), "tests/pipelines/bigbench/contaminated.lab", &[]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("containing evaluated examples of 1_digit_addition"), "{}", r.stderr);
    assert!(r.stderr.contains("filter.decontaminate"), "{}", r.stderr);
    assert!(r.stderr.contains("contaminated.lab:"), "the error points at the step: {}", r.stderr);

    let r = run_lab(dir.path(), "tests/pipelines/bigbench/clean.lab", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let results = read_json(&dir.path().join("results/clean/results.json"));
    let f = read_json(&artifact(&results, 0, "filter").join("filter.json"));
    let removed = f["rejected"].as_u64().unwrap();
    // 2-digit operands: about 1 in 200 problems is an evaluated 1-digit addition.
    assert!(removed > 0 && removed < 10, "{f}");
    for ex in f["examples"].as_array().unwrap() {
        let (text, key) = (ex["text"].as_str().unwrap(), ex["contains"].as_str().unwrap());
        assert!(text.contains(&format!("Q: {key}\n")), "{text:?} {key:?}");
    }
}

#[test]
fn the_bigbench_pipeline_runs_at_a_tiny_scale() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_lab(dir.path(), "pipelines/bigbench.lab", &["steps=4", "batch=2", "widths=[8, 16, 24]", "count=300"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = dir.path().join("results/bigbench");
    let results = read_json(&out.join("results.json"));
    let mut params = Vec::new();
    for label in ["small", "medium", "large"] {
        let m = &table_row(&results, 0, label)["metrics"];
        let c = &table_row(&results, 2, label)["metrics"];
        for k in 0..3 {
            assert!(m[format!("normalized_{k}shot")].is_number(), "{label}: {m}");
            assert!(c[format!("brier_{k}shot")].is_number(), "{label}: {c}");
            assert!(c[format!("multiple_choice_grade_{k}shot")].is_number(), "{label}: {c}");
        }
        params.push(m["parameters"].as_u64().unwrap());
    }
    assert!(params.windows(2).all(|p| p[1] > p[0]), "{params:?}");
    let trend = &table_row(&results, 4, "Brier score, 0-shot")["metrics"];
    assert!(trend["slope"].is_number() && trend["decreasing"].is_number(), "{trend}");
    for fig in ["scores", "brier", "loss"] {
        assert!(out.join(format!("{fig}.svg")).is_file(), "{fig}");
    }
}

/// Copies a folder tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_task_folder_is_keyed_by_every_file_in_it() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&root().join("data/bigbench/simple_arithmetic_json_subtasks"), &dir.path().join("task"));
    let lab = dir.path().join("t.lab");
    std::fs::write(&lab, "t = data.bigbench(path: \"task\")\nreport \"t\" {\n  \"task\" = t\n}\n").unwrap();
    let cache = dir.path().join("cache");
    let args = ["run", lab.to_str().unwrap(), "--cache", cache.to_str().unwrap()];
    let r = labrun(dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = labrun(dir.path(), &args);
    assert!(r.stderr.contains("nothing to run"), "{}", r.stderr);
    // An edit to one subtask's file, not to the folder's own task.json, is a new task.
    let sub = dir.path().join("task/two_digit/task.json");
    let text = std::fs::read_to_string(&sub).unwrap();
    std::fs::write(&sub, text.replace("\"47 + 8 =\"", "\"48 + 8 =\"").replace("\"55\"", "\"56\"")).unwrap();
    let r = labrun(dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("1 executed"), "{}", r.stderr);
    // A broken subtask names its file and field.
    std::fs::write(&sub, text.replace("\"metrics\"", "\"metric\"")).unwrap();
    let r = labrun(dir.path(), &args);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("two_digit/task.json") && r.stderr.contains("`metric`"), "{}", r.stderr);
}
