//! BIG-bench in labrun: `data.bigbench` reads a task folder as the official code does,
//! `score.bigbench` evaluates a language model on it and writes the official scores, and
//! the held-out rule (no training text may contain an evaluated example) is enforced by
//! `filter.decontaminate` and by `score.bigbench`'s `train` argument. The reading,
//! prompting and scoring live in the `lab-bigbench` crate; this file connects them to
//! labrun's models and artifacts.

use crate::artifact::{self, Metrics};
use crate::lmops::{self, Lm};
use crate::params::{DatasetDir, DirPath, ModelDir, Params};
use crate::text::{self, TextData};
use crate::{Op, OpError, Progress, RunCtx, Signature, Type};
use aho_corasick::AhoCorasick;
use lab_bigbench::eval::{self, Model, ScoreData, Settings};
use lab_bigbench::task::Task;
use lab_nn::decode::{self, Decoder, Sampling};
use serde_json::json;
use std::path::Path;

/// The folder inside a `data.bigbench` artifact holding the task's files.
const TASK_DIR: &str = "task";
/// The official random seed.
const SEED: i64 = 42;

/// `data.bigbench`: a BIG-bench JSON task (simple or composite), checked and stored.
pub struct Data;

#[derive(Params)]
pub struct DataParams {
    /// the task's folder (or its task.json), relative to the `.lab` file
    #[param(max_bytes = crate::data::MAX_TEXT_FILE_BYTES)]
    path: DirPath,
}

impl Op for Data {
    type Params = DataParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "data",
            "bigbench",
            1,
            Type::Dataset,
            "a BIG-bench JSON task, read as the official `bigbench` package reads it: `task.json` with every field `json_task.py` honours and its defaults; a folder whose task.json has no examples is a composite task whose subfolders are subtasks (`parent:child`); duplicate examples dropped. Unknown fields, wrong types and empty example lists are errors naming the file and the field. The records (one per example: `subtask`, `input`, `targets`, `choices`, and the zero-shot `prompt` with its first target as `completion`) serve `filter.decontaminate` and the text ops; `score.bigbench` evaluates models on it",
        )
    }

    fn run(&self, ctx: &RunCtx, p: DataParams) -> Result<(), OpError> {
        let path = p.path.to_path_buf();
        let task = Task::load(&path, 0, SEED as u32).map_err(|e| OpError::Data(e.to_string()))?;
        // The files themselves, so scoring reads what the official code would read.
        let root = if path.is_dir() { path.clone() } else { path.parent().unwrap_or(Path::new(".")).to_path_buf() };
        let dest = ctx.out.join(TASK_DIR);
        std::fs::create_dir_all(&dest)?;
        std::fs::copy(root.join("task.json"), dest.join("task.json"))?;
        if let lab_bigbench::task::Body::Composite(subs) = &task.body {
            for s in subs {
                let dir = s
                    .file
                    .parent()
                    .and_then(Path::file_name)
                    .ok_or_else(|| OpError::internal("a subtask file has no folder"))?;
                std::fs::create_dir_all(dest.join(dir))?;
                std::fs::copy(&s.file, dest.join(dir).join("task.json"))?;
            }
        }
        let mut records = Vec::new();
        let mut summary = Vec::new();
        for (name, leaf) in task.leaves() {
            for e in &leaf.examples {
                let mut r = text::record([
                    ("subtask", name.to_string()),
                    ("input", e.raw_input.clone()),
                    ("prompt", format!("{}{}", leaf.task_prefix, e.input)),
                    ("completion", e.target[0].clone()),
                ]);
                r.insert("targets".into(), json!(e.target));
                if !e.choices.is_empty() {
                    r.insert("choices".into(), json!(e.choices));
                }
                records.push(r);
            }
            summary.push(json!({
                "subtask": name, "examples": leaf.examples.len(), "duplicates_dropped": leaf.duplicates,
                "metrics": leaf.metrics, "preferred_score": leaf.preferred, "low": leaf.low, "high": leaf.high,
            }));
        }
        let info = json!({"task": task.name, "source": path.display().to_string(), "subtasks": summary});
        std::fs::write(ctx.out.join("bigbench.json"), serde_json::to_string_pretty(&info).expect("json"))?;
        TextData { records }.write(ctx.out)
    }
}

/// Finds evaluated inputs inside training text: a match counts only where it is not part
/// of a longer word or number (`1 + 4 =` is not inside `21 + 4 =`).
pub struct Contamination {
    ac: AhoCorasick,
    keys: Vec<String>,
}

impl Contamination {
    pub fn new(keys: impl IntoIterator<Item = String>) -> Result<Contamination, OpError> {
        let mut keys: Vec<String> = keys.into_iter().filter(|k| !k.trim().is_empty()).collect();
        keys.sort();
        keys.dedup();
        let ac = AhoCorasick::new(&keys).map_err(|e| OpError::internal(e.to_string()))?;
        Ok(Contamination { ac, keys })
    }

    /// The first held-out string that `text` contains, if any.
    pub fn find<'a>(&'a self, text: &str) -> Option<&'a str> {
        let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        for m in self.ac.find_overlapping_iter(text) {
            let key = &self.keys[m.pattern().as_usize()];
            let before = text[..m.start()].chars().next_back();
            let after = text[m.end()..].chars().next();
            let starts_word = word(key.chars().next());
            let ends_word = word(key.chars().next_back());
            let glued = (starts_word && word(before)) || (ends_word && word(after));
            if !glued {
                return Some(key);
            }
        }
        None
    }
}

/// `filter.decontaminate`.
pub struct Decontaminate;

#[derive(Params)]
pub struct DecontaminateParams {
    /// text records to clean (e.g. a training corpus)
    data: DatasetDir,
    /// records holding the strings that must not occur (e.g. `data.bigbench` tasks)
    #[param(non_empty)]
    against: Vec<DatasetDir>,
    /// the field of `data` searched
    #[param(default = "text")]
    field: String,
    /// the field of `against` searched for
    #[param(default = "input")]
    key: String,
}

impl Op for Decontaminate {
    type Params = DecontaminateParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "decontaminate",
            1,
            Type::Dataset,
            "the records of `data` whose `field` contains none of the `key` strings of the `against` datasets (matched where they are not part of a longer word or number), e.g. training text with every BIG-bench example input removed; writes `filter.json` with the counts and the first few removed",
        )
    }

    fn run(&self, ctx: &RunCtx, p: DecontaminateParams) -> Result<(), OpError> {
        let data = TextData::read(&p.data, "data")?;
        let (field, key) = (p.field.as_str(), p.key.as_str());
        let mut keys = Vec::new();
        for d in &p.against {
            let held = TextData::read(d, "against")?;
            keys.extend(held.strings(key, "against")?.into_iter().map(str::to_string));
        }
        let c = Contamination::new(keys)?;
        let texts = data.strings(field, "data")?;
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for (r, t) in data.records.iter().zip(&texts) {
            match c.find(t) {
                None => kept.push(r.clone()),
                Some(k) => removed.push(json!({"text": t, "contains": k})),
            }
        }
        let report = json!({
            "input": data.records.len(), "kept": kept.len(), "rejected": removed.len(),
            "reasons": {"contains an evaluated example": removed.len()},
            "examples": removed.iter().take(10).collect::<Vec<_>>(),
        });
        std::fs::write(ctx.out.join("filter.json"), serde_json::to_string_pretty(&report).expect("json"))?;
        if kept.is_empty() {
            return Err(OpError::Data(format!("every record of `data` contains a held-out `{key}`; nothing is left")));
        }
        TextData { records: kept }.write(ctx.out)
    }
}

/// A labrun language model as the scorer's [`Model`].
struct Adapter<'a> {
    lm: &'a Lm,
    dec: Decoder,
    ctx: &'a RunCtx<'a>,
    batch: usize,
    sampling: Sampling,
    rows: u64,
    calls: u64,
    label: String,
}

impl Adapter<'_> {
    fn encode(&self, s: &str) -> Result<Vec<i64>, String> {
        self.lm.encode(s, "task").map_err(|e| e.to_string())
    }

    fn fits(&self, tokens: usize, what: &str) -> Result<(), String> {
        match self.lm.context() {
            Some(c) if tokens > c => Err(format!(
                "{what} reaches {tokens} tokens, beyond the model's context of {c}; evaluate fewer `shots` or give the model a longer `context`"
            )),
            _ => Ok(()),
        }
    }

    fn tick(&mut self) -> Result<(), String> {
        self.calls += 1;
        (self.ctx.progress)(Progress { done: self.calls, total: 0, message: self.label.clone() });
        self.ctx.check_cancel().map_err(|e| e.to_string())
    }
}

impl Model for Adapter<'_> {
    fn log_probs(&mut self, prompts: &[&str], targets: &[&[String]]) -> Result<Vec<Vec<f64>>, String> {
        let mut pairs = Vec::new();
        let mut at = Vec::new();
        let mut out: Vec<Vec<f64>> = targets.iter().map(|t| vec![0.0; t.len()]).collect();
        for (i, (p, ts)) in prompts.iter().zip(targets).enumerate() {
            let pt = self.encode(p)?;
            if pt.is_empty() {
                return Err("a prompt is empty; the model needs a token to condition on".into());
            }
            for (j, t) in ts.iter().enumerate() {
                let tt = self.encode(t)?;
                if tt.is_empty() {
                    continue; // log P(empty) = 0
                }
                self.fits(pt.len() + tt.len() - 1, &format!("the prompt and target {t:?}"))?;
                pairs.push((pt.clone(), tt));
                at.push((i, j));
            }
        }
        for (chunk, idx) in pairs.chunks(self.batch).zip(at.chunks(self.batch)) {
            let scored = decode::score(&mut self.dec, chunk).map_err(|e| e.to_string())?;
            for ((i, j), (lp, _)) in idx.iter().zip(scored) {
                out[*i][*j] = lp;
            }
            self.tick()?;
        }
        Ok(out)
    }

    fn generate(&mut self, prompts: &[&str], stop: Option<&str>) -> Result<Vec<String>, String> {
        let ids: Vec<Vec<i64>> = prompts.iter().map(|p| self.encode(p)).collect::<Result<_, _>>()?;
        let mut sampling = self.sampling.clone();
        sampling.stop = stop.filter(|s| !s.is_empty()).map(|s| vec![s.to_string()]).unwrap_or_default();
        if let Some(longest) = ids.iter().map(Vec::len).max() {
            self.fits(
                longest + sampling.max_new_tokens - 1,
                &format!("a prompt plus {} generated tokens", sampling.max_new_tokens),
            )?;
        }
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.batch) {
            let cancel = self.ctx.cancel;
            let done = decode::generate(&mut self.dec, self.lm.tokenizer(), chunk, self.rows, &sampling, &mut || {
                !cancel.load(std::sync::atomic::Ordering::Relaxed)
            })
            .map_err(|e| e.to_string())?;
            self.rows += chunk.len() as u64;
            // The official models return the text up to and including the stop string.
            out.extend(done.into_iter().map(|c| match c.stop {
                Some(s) => c.text + &s,
                None => c.text,
            }));
            self.tick()?;
        }
        Ok(out)
    }
}

/// File-name form of a subtask name.
fn file_stem(subtask: &str, shots: usize) -> String {
    let s: String =
        subtask.chars().map(|c| if c.is_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    format!("{s}_{shots}shot")
}

/// `score.bigbench`.
pub struct Score;

#[derive(Params)]
pub struct ScoreParams {
    /// the language model (`model.gpt` or `model.import_lm`)
    model: ModelDir,
    /// a task from `data.bigbench`
    task: DatasetDir,
    /// the shot counts to evaluate
    #[param(default = vec![0usize], non_empty)]
    shots: Vec<usize>,
    /// at most this many queries per shot count, drawn as the official code draws them (split evenly over subtasks); 0: every example
    #[param(default = 0)]
    max_examples: usize,
    /// tokens generated per query for the generative metrics
    #[param(default = 16, min = 1)]
    max_new_tokens: usize,
    /// generations are cut to this many characters before post-processing (the official `max_length`); 0: no cut
    #[param(default = 0)]
    max_length: i64,
    /// sampling temperature of generations; 0 (or below 0.0001) is greedy
    #[param(default = 0.0, min = 0)]
    temperature: f64,
    /// the official random seed of the prompts (42), also the sampling seed
    #[param(default = SEED, min = 0, max = u32::MAX)]
    seed: i64,
    /// sequences per model call
    #[param(default = 32, min = 1)]
    batch: usize,
    /// the model's training data: scoring is refused when a training record's `text` contains an evaluated example's input
    #[param(default = vec![])]
    train: Vec<DatasetDir>,
}

impl Op for Score {
    type Params = ScoreParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "bigbench",
            1,
            Type::Metrics,
            "evaluates a language model on a BIG-bench task (`data.bigbench`) exactly as the official `bigbench` package does: its zero- and few-shot prompts character for character (shots and choice order drawn with numpy's RandomState(42)), multiple-choice metrics from log P(choice | prompt), generative ones from a generation (greedy by default) post-processed the official way, every `task_metrics.py` metric, the normalised preferred score 100·(raw − low)/(high − low), and the aggregation over subtasks. Writes `scores.json` (per subtask and shot count: `subtask`, `shots`, `preferred`, `scores`, `low`, `high`, `normalized`), one JSONL file of per-query records per subtask and shot count in `records/` (`prompt`, `text`, `response`, `logprobs`, `targets`, metric values), and as metrics the task's `normalized_<k>shot` and, for multiple-choice tasks, `multiple_choice_grade_<k>shot` and `brier_<k>shot`, with the model's `parameters`",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ScoreParams) -> Result<(), OpError> {
        let shots: Vec<usize> = p.shots;
        let max_shots = shots.iter().copied().max().unwrap_or(0);
        // Declared within 0..=2³² − 1.
        let seed = p.seed as u32;
        let dir = p.task.join(TASK_DIR);
        if !dir.join("task.json").is_file() {
            return Err(OpError::invalid("task", "is not a BIG-bench task; make one with `data.bigbench(path: ...)`"));
        }
        let task = Task::load(&dir, max_shots, seed)
            .map_err(|e| OpError::invalid("shots", format!("cannot be used with task: {}", e.message)))?;
        let max_examples = match p.max_examples {
            0 => None,
            m => Some(m),
        };
        let settings =
            Settings { shots: &shots, max_examples, seed, max_length: Some(p.max_length as usize).filter(|&m| m > 0) };
        if !p.train.is_empty() {
            check_held_out(&task, &settings, &p.train)?;
        }
        let lm = lmops::load_lm(&p.model, "model")?;
        let mut adapter = Adapter {
            lm: &lm,
            dec: lm.decoder(ctx, false)?,
            ctx,
            batch: p.batch,
            sampling: Sampling {
                temperature: p.temperature,
                top_k: 0,
                top_p: 1.0,
                max_new_tokens: p.max_new_tokens,
                stop: Vec::new(),
                seed: u64::from(seed),
            },
            rows: 0,
            calls: 0,
            label: format!("{}: {} shot counts", task.name, shots.len()),
        };
        let (scores, records) =
            eval::evaluate(&task, &settings, &mut adapter).map_err(|e| match ctx.check_cancel() {
                Err(c) => c,
                Ok(()) => OpError::invalid("model", format!("cannot be scored on {}: {e}", task.name)),
            })?;
        let rec_dir = ctx.out.join("records");
        std::fs::create_dir_all(&rec_dir)?;
        for r in &records {
            TextData { records: r.rows.clone() }
                .write_file(&rec_dir.join(format!("{}.jsonl", file_stem(&r.subtask, r.shots))))?;
        }
        std::fs::write(ctx.out.join("scores.json"), serde_json::to_string_pretty(&scores).expect("json"))?;
        let mut m = summary(&task.name, &scores);
        if let Lm::Own(g) = &lm {
            m.insert("parameters".into(), json!(g.spec.n_params()));
        }
        m.insert("queries".into(), json!(records.iter().map(|r| r.rows.len()).sum::<usize>()));
        artifact::write_metrics(ctx.out, &m)
    }
}

/// The task-level entries as flat metrics: `normalized_<k>shot` (the preferred score,
/// normalised), and for multiple-choice tasks the grade and the Brier score per shot
/// count. `scores.json` has everything.
fn summary(task: &str, scores: &[ScoreData]) -> Metrics {
    let mut m = Metrics::new();
    for s in scores.iter().filter(|s| s.subtask == task) {
        let k = s.shots;
        m.insert(format!("normalized_{k}shot"), json!(s.normalized));
        if let Some(v) = s.scores.get("multiple_choice_grade") {
            m.insert(format!("multiple_choice_grade_{k}shot"), json!(v));
        }
        if let Some(v) = s.scores.get("calibration_multiple_choice_brier_score") {
            m.insert(format!("brier_{k}shot"), json!(v));
        }
    }
    m
}

/// Refuses to score a model whose training data contains an evaluated example's input.
fn check_held_out(task: &Task, s: &Settings, train: &[DatasetDir]) -> Result<(), OpError> {
    let per_leaf = task.per_leaf_max(s.max_examples).map_err(|e| OpError::invalid("max_examples", e))?;
    let mut keys = Vec::new();
    for (_, leaf) in task.leaves() {
        for &k in s.shots {
            let qs = leaf.queries(k, per_leaf, s.seed).map_err(|e| OpError::invalid("shots", e))?;
            keys.extend(qs.iter().map(|q| leaf.examples[q.example].raw_input.clone()));
        }
    }
    let c = Contamination::new(keys)?;
    for (i, p) in train.iter().enumerate() {
        let data = TextData::read(p, "train")?;
        let texts = data.strings("text", "train")?;
        let hits: Vec<(usize, &str)> =
            texts.iter().enumerate().filter_map(|(r, t)| c.find(t).map(|k| (r, k))).collect();
        if let Some((r, k)) = hits.first() {
            return Err(OpError::invalid(
                "train",
                format!(
                    "dataset {} has {} records containing evaluated examples of {} (record {} contains {k:?}); the scores would not measure held-out skill. Remove them first with `filter.decontaminate(data, against: [task])`",
                    i + 1,
                    hits.len(),
                    task.name,
                    r + 1
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_respect_word_boundaries() {
        let c = Contamination::new(["1 + 4 =".to_string(), "What is 3 plus 4?".to_string()]).unwrap();
        assert_eq!(c.find("Q: 1 + 4 = 5"), Some("1 + 4 ="));
        assert_eq!(c.find("Q: 21 + 4 = 25"), None, "inside a longer number");
        assert_eq!(c.find("\nQ: What is 3 plus 4?\nA: 7"), Some("What is 3 plus 4?"));
        assert_eq!(c.find("\nQ: What is 13 plus 4?\nA: 17"), None);
        assert_eq!(c.find("\nQ: What is 3 plus 45?\nA: 48"), None);
        assert_eq!(file_stem("a:b c", 2), "a_b_c_2shot");
    }
}
