//! Evaluating a model on a task as `JsonTask.evaluate_model` does: for each leaf and shot
//! count, the official queries; the choices' log-probabilities for multiple-choice
//! metrics, a generation post-processed the official way for generative ones, and the
//! targets' log-probabilities for `log_likelihood`; then the scores and their aggregation
//! over subtasks (`results.add_aggregate_scores`).

use crate::metrics::{self, Choice, Scores};
use crate::post;
use crate::task::{Body, Leaf, Query, Task};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// What the scorer asks of a language model.
pub trait Model {
    /// log P(target | prompt) for every target of every prompt (the text is the prompt
    /// followed directly by the target).
    fn log_probs(&mut self, prompts: &[&str], targets: &[&[String]]) -> Result<Vec<Vec<f64>>, String>;
    /// The raw continuation of each prompt, before post-processing; generation may stop at
    /// `stop` (the returned text then ends with it).
    fn generate(&mut self, prompts: &[&str], stop: Option<&str>) -> Result<Vec<String>, String>;
}

/// The official `ScoreData`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScoreData {
    pub subtask: String,
    pub shots: usize,
    pub preferred: String,
    pub scores: Scores,
    pub low: f64,
    pub high: f64,
    /// 100 · (preferred − low) / (high − low).
    pub normalized: f64,
}

impl ScoreData {
    fn new(subtask: &str, shots: usize, preferred: &str, scores: Scores, low: f64, high: f64) -> ScoreData {
        let normalized = 100.0 * (scores.get(preferred).copied().unwrap_or(f64::NAN) - low) / (high - low);
        ScoreData {
            subtask: subtask.to_string(),
            shots,
            preferred: preferred.to_string(),
            scores,
            low,
            high,
            normalized,
        }
    }
}

/// The per-query records of one leaf at one shot count.
pub struct Records {
    pub subtask: String,
    pub shots: usize,
    pub rows: Vec<Map<String, Value>>,
}

/// Settings of an evaluation.
pub struct Settings<'a> {
    pub shots: &'a [usize],
    pub max_examples: Option<usize>,
    pub seed: u32,
    /// Generations are cut to this many characters first (the official `max_length`).
    pub max_length: Option<usize>,
}

/// Scores `model` on `task`: the score list as the official code returns it (subtasks in
/// order, each shot count, then the aggregates), and the per-query records.
pub fn evaluate(task: &Task, s: &Settings, model: &mut dyn Model) -> Result<(Vec<ScoreData>, Vec<Records>), String> {
    let per_leaf = task.per_leaf_max(s.max_examples)?;
    let mut scores = Vec::new();
    let mut records = Vec::new();
    for (name, leaf) in task.leaves() {
        let mut leaf_scores = Vec::new();
        for &shots in s.shots {
            let queries = leaf.queries(shots, per_leaf, s.seed).map_err(|e| format!("{name}: {e}"))?;
            let (sc, rows) =
                score_queries(leaf, &queries, s.max_length, model).map_err(|e| format!("{name}, {shots}-shot: {e}"))?;
            leaf_scores.push(ScoreData::new(name, shots, &leaf.preferred, sc, leaf.low, leaf.high));
            records.push(Records { subtask: name.to_string(), shots, rows });
        }
        scores.extend(aggregate(name, leaf_scores));
    }
    if matches!(task.body, Body::Composite(_)) {
        scores = aggregate(&task.name, scores);
    }
    Ok((scores, records))
}

/// Runs the model on one set of queries and scores them.
pub fn score_queries(
    leaf: &Leaf,
    queries: &[Query],
    max_length: Option<usize>,
    model: &mut dyn Model,
) -> Result<(Scores, Vec<Map<String, Value>>), String> {
    let prompts: Vec<&str> = queries.iter().map(|q| q.prompt.as_str()).collect();
    let examples: Vec<_> = queries.iter().map(|q| &leaf.examples[q.example]).collect();
    let targets: Vec<&[String]> = examples.iter().map(|e| e.target.as_slice()).collect();
    let mut rows: Vec<Map<String, Value>> = queries
        .iter()
        .zip(&examples)
        .map(|(q, e)| {
            let mut r = Map::new();
            r.insert("example".into(), json!(q.example));
            r.insert("shots".into(), json!(q.shots));
            r.insert("prompt".into(), json!(q.prompt));
            r.insert("targets".into(), json!(e.target));
            r
        })
        .collect();
    let mut scores = Scores::new();
    if !leaf.multiple_choice.is_empty() {
        let choices: Vec<&[String]> = examples.iter().map(|e| e.choices.as_slice()).collect();
        let absolute = model.log_probs(&prompts, &choices)?;
        check_shape(&absolute, &choices, "choice")?;
        let normalized: Vec<Vec<f64>> = absolute.iter().map(|x| metrics::normalize(x)).collect();
        let ranked = if leaf.absolute_normalization { &absolute } else { &normalized };
        let qs: Vec<Choice> = examples
            .iter()
            .enumerate()
            .map(|(i, e)| Choice {
                choices: &e.choices,
                scores: &e.scores,
                log_prob: &ranked[i],
                absolute: &absolute[i],
            })
            .collect();
        scores.extend(metrics::multiple_choice(&leaf.multiple_choice, &qs)?);
        let grades = metrics::grades(&qs);
        let briers = metrics::briers(&qs);
        for (i, r) in rows.iter_mut().enumerate() {
            let lp: Map<String, Value> =
                examples[i].choices.iter().cloned().zip(absolute[i].iter().map(|v| json!(v))).collect();
            r.insert("logprobs".into(), Value::Object(lp));
            r.insert("choice".into(), json!(examples[i].choices[metrics::argmax(&ranked[i])]));
            r.insert("multiple_choice_grade".into(), json!(grades[i]));
            r.insert(
                "calibration_multiple_choice_brier_score".into(),
                json!(briers[i] / examples[i].choices.len() as f64),
            );
        }
    }
    if !leaf.generative.is_empty() {
        let raw = model.generate(&prompts, leaf.stop_string.as_deref())?;
        if raw.len() != prompts.len() {
            return Err(format!("the model returned {} generations for {} prompts", raw.len(), prompts.len()));
        }
        let re = leaf.output_regex.as_deref().map(post::compile).transpose()?;
        let responses: Vec<String> =
            raw.iter().map(|t| post::postprocess(t, max_length, leaf.stop_string.as_deref(), re.as_ref())).collect();
        let (sc, per) = metrics::generative(&leaf.generative, &targets, &responses)?;
        scores.extend(sc);
        for (i, r) in rows.iter_mut().enumerate() {
            r.insert("text".into(), json!(raw[i]));
            r.insert("response".into(), json!(responses[i]));
            for (m, v) in &per {
                r.insert(m.clone(), json!(v[i]));
            }
        }
    }
    if !leaf.scoring.is_empty() {
        let lp = model.log_probs(&prompts, &targets)?;
        check_shape(&lp, &targets, "target")?;
        if targets.iter().any(|t| t.len() == 1 && (t[0].is_empty() || t[0].split_whitespace().next().is_none())) {
            return Err("log_likelihood divides by a target's length in characters and words; a target is empty".into());
        }
        scores.extend(metrics::log_likelihood(&lp, &targets));
        for (i, r) in rows.iter_mut().enumerate() {
            let m = r.entry("logprobs").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = m {
                for (t, v) in targets[i].iter().zip(&lp[i]) {
                    m.insert(t.clone(), json!(v));
                }
            }
            r.insert("log_likelihood".into(), json!(metrics::logsumexp(&lp[i])));
        }
    }
    Ok((scores, rows))
}

fn check_shape(lp: &[Vec<f64>], want: &[&[String]], what: &str) -> Result<(), String> {
    if lp.len() != want.len() || lp.iter().zip(want).any(|(l, w)| l.len() != w.len()) {
        return Err(format!("the model returned log-probabilities of the wrong shape for the {what}s"));
    }
    if lp.iter().flatten().any(|v| v.is_nan()) {
        return Err(format!("the model returned NaN log-probabilities for some {what}s"));
    }
    Ok(())
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n as f64
}

/// `add_aggregate_scores`: per shot count, the mean of every metric over the subtasks, the
/// mean normalised preferred score (`normalized_aggregate_score`, 0–100), and an aggregate
/// entry named after the task; a task without subtasks gets its own entry rewritten.
pub fn aggregate(task_name: &str, scores: Vec<ScoreData>) -> Vec<ScoreData> {
    let mut by_shots: BTreeMap<usize, Vec<ScoreData>> = BTreeMap::new();
    for s in &scores {
        by_shots.entry(s.shots).or_default().push(s.clone());
    }
    let mut aggregates: BTreeMap<usize, ScoreData> = BTreeMap::new();
    for (&shots, group) in &mut by_shots {
        if group.len() > 1 {
            group.retain(|s| s.subtask != task_name);
        }
        let mut all: Vec<&String> = group.iter().flat_map(|s| s.scores.keys()).collect();
        all.sort();
        all.dedup();
        let mut dict: Scores =
            all.iter().map(|m| ((*m).clone(), mean(group.iter().filter_map(|s| s.scores.get(*m).copied())))).collect();
        dict.insert(
            "normalized_aggregate_score".into(),
            100.0 * mean(group.iter().map(|s| (s.scores[&s.preferred] - s.low) / (s.high - s.low))),
        );
        let (preferred, low, high) = if group.iter().all(|s| s.preferred == "multiple_choice_grade") {
            ("multiple_choice_grade".to_string(), mean(group.iter().map(|s| s.low)), 1.0)
        } else if group.len() == 1 && group[0].subtask == task_name {
            (group[0].preferred.clone(), group[0].low, group[0].high)
        } else {
            ("normalized_aggregate_score".to_string(), 0.0, 100.0)
        };
        aggregates.insert(shots, ScoreData::new(task_name, shots, &preferred, dict, low, high));
    }
    let mut out: Vec<ScoreData> = Vec::new();
    for s in scores {
        if s.subtask == task_name {
            if let Some(a) = aggregates.remove(&s.shots) {
                out.push(a);
            }
        } else {
            out.push(s);
        }
    }
    out.extend(aggregates.into_values());
    out
}
