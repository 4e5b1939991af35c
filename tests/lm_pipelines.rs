//! Language models through the command line: the real `pipelines/tiny_lm.lab` at reduced
//! scale, an imported GPT-2 matched against transformers' own outputs, and the errors a
//! user gets for text a model cannot read or a tokenizer that does not fit.

mod common;
use common::{labrun, root, table_row};
use serde_json::Value;

#[test]
fn tiny_lm_learns_to_count_and_reports_samples_and_its_loss_curve() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = root().join("pipelines/tiny_lm.lab");
    let args = ["run", file.to_str().unwrap(), "--cache", cache.to_str().unwrap(), "--set", "steps=400"];
    let r = labrun(dir.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The run ends with its headline rows and where the report is; `labrun show` prints it.
    let headline = r.stdout.lines().find(|l| l.starts_with("  counting, trained: ")).unwrap_or_default();
    assert!(headline.contains("exact_match "), "headlines are printed:\n{}", r.stdout);
    assert!(r.stdout.contains("results: results/tiny_lm/results.md"), "{}", r.stdout);
    assert!(!r.stdout.contains("counting (greedy)"), "not the whole report:\n{}", r.stdout);
    let shown = labrun(dir.path(), &["show", file.to_str().unwrap()]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("counting (greedy)"), "samples are in the report:\n{}", shown.stdout);
    let out = dir.path().join("results/tiny_lm");
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let m = |label: &str| table_row(&results, 0, label)["metrics"]["exact_match"].as_f64().unwrap();
    let (trained, untrained) = (m("counting, trained"), m("counting, untrained"));
    assert!(trained > 0.5 && untrained < 0.05, "counting: trained {trained}, untrained {untrained}");
    let lp = |label: &str| table_row(&results, 1, label)["metrics"]["logprob_per_token"].as_f64().unwrap();
    assert!(lp("counting, trained") > lp("counting, untrained") + 1.0);
    // The loss curve is a real chart and the training log went down.
    let svg = std::fs::read_to_string(out.join("loss.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("tiny LM (train)") && svg.contains("tiny LM (validation)"));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| prompt | completion | target |"), "{md}");
    // A second run computes nothing.
    let r = labrun(dir.path(), &args);
    assert!(r.stderr.contains("nothing to run"), "{}", r.stderr);
}

#[test]
fn imported_gpt2_generates_exactly_what_transformers_generated() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = root().join("tests/pipelines/lm/import.lab");
    let r = labrun(dir.path(), &["run", file.to_str().unwrap(), "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results/import/results.json")).unwrap())
            .unwrap();
    for label in ["one prompt, 12 tokens", "two prompts of different lengths, 8 tokens"] {
        let m = &table_row(&results, 0, label)["metrics"];
        assert_eq!(m["exact_match"].as_f64(), Some(1.0), "{label}: {m}");
    }
    let lp = &table_row(&results, 0, "log P(the robot | In the evening)")["metrics"];
    assert!(lp["logprob"].as_f64().unwrap() < 0.0 && lp["rank"].as_i64().is_some(), "{lp}");
}

#[test]
fn text_outside_the_alphabet_is_an_error_naming_the_character_and_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let file = root().join("tests/pipelines/lm/bad_alphabet.lab");
    let r = labrun(dir.path(), &["run", file.to_str().unwrap(), "--cache", dir.path().join("c").to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let flat = r.stderr.replace('│', " ").split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("' ' (U+0020) at character 3") && flat.contains("(record 1)"), "{flat}");
    assert!(flat.contains("add it to `alphabet`"), "{flat}");
    assert!(r.stderr.contains("bad_alphabet.lab:3:6"), "the error points at the step's line:\n{}", r.stderr);
}

#[test]
fn a_tokenizer_that_does_not_fit_the_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = root().join("tests/pipelines/lm/mismatched_tokenizer.lab");
    let r = labrun(dir.path(), &["run", file.to_str().unwrap(), "--cache", dir.path().join("c").to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("has 500 tokens but the model's logits cover 384"), "{}", r.stderr);
}
