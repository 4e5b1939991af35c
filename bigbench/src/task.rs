//! Reading a BIG-bench JSON task as `bigbench/api/json_task.py` does: the same required
//! and optional fields with the same defaults, composite tasks from subfolders, duplicate
//! examples dropped, every example formatted by `default_format_fn` (choices shuffled
//! with a fresh `RandomState(seed)` per example and appended to the input), and the
//! preferred score's low and high ends. What the official code would reject, or would
//! fail on later, is an error here naming the file and the field.

use crate::json::{self, J};
use crate::metrics::{self, SCORE_RANGES};
use crate::rng::RandomState;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Fields the official JSON task reads.
const TASK_FIELDS: &[&str] = &[
    "canary",
    "name",
    "description",
    "keywords",
    "metrics",
    "examples",
    "preferred_score",
    "absolute_normalization",
    "example_input_prefix",
    "example_output_prefix",
    "choice_prefix",
    "append_choices_to_input",
    "few_shot_example_separator",
    "task_prefix",
    "output_regex",
    "stop_string",
];
/// Fields that tasks of the benchmark carry and the official JSON task ignores.
const IGNORED_TASK_FIELDS: &[&str] =
    &["contributors", "expert_description", "prefix", "input_prefix", "low_score", "high_score"];
const EXAMPLE_FIELDS: &[&str] = &["input", "target", "target_scores"];
const IGNORED_EXAMPLE_FIELDS: &[&str] =
    &["comment", "meta", "id", "_id", "inst_type", "n_sentences", "party", "task_prefix"];

/// The default regex applied to generations when a task sets neither `output_regex` nor
/// `stop_string`.
pub const DEFAULT_REGEX: &str = r"[^\.\?\!\;\n]+";

/// A mistake in a task file.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
pub struct TaskError {
    pub file: PathBuf,
    pub field: Option<String>,
    pub message: String,
}

/// A task: examples, or subtasks (a composite task).
#[derive(Debug, Clone)]
pub struct Task {
    /// The official name: `parent:child` for a subtask.
    pub name: String,
    pub file: PathBuf,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub enum Body {
    Leaf(Box<Leaf>),
    Composite(Vec<Task>),
}

/// A task with examples.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub metrics: Vec<String>,
    pub generative: Vec<String>,
    pub scoring: Vec<String>,
    /// Multiple-choice metrics, with the calibration pair added after
    /// `multiple_choice_grade` as the official code adds them.
    pub multiple_choice: Vec<String>,
    pub preferred: String,
    pub low: f64,
    pub high: f64,
    pub absolute_normalization: bool,
    pub task_prefix: String,
    pub separator: String,
    pub output_regex: Option<String>,
    pub stop_string: Option<String>,
    pub examples: Vec<Example>,
    /// How many duplicate examples were dropped.
    pub duplicates: usize,
}

/// One formatted example.
#[derive(Debug, Clone)]
pub struct Example {
    /// The input with prefixes (and, for multiple choice, the appended choices).
    pub input: String,
    /// The input as the file gives it.
    pub raw_input: String,
    pub target: Vec<String>,
    /// The choices in the order of `target_scores` (empty without it).
    pub choices: Vec<String>,
    /// Each choice's score, in the same order.
    pub scores: Vec<f64>,
    /// The whole formatted example as Python holds it, for Python's `==`.
    pub formatted: J,
}

impl Task {
    /// Reads the task in `path`: a `task.json` file or the folder holding one. `max_shots`
    /// is the largest shot count to be evaluated (the official check that enough
    /// distinct examples exist); `seed` is the official random seed (42).
    pub fn load(path: &Path, max_shots: usize, seed: u32) -> Result<Task, TaskError> {
        let file = if path.is_dir() { path.join("task.json") } else { path.to_path_buf() };
        let j = read_json(&file)?;
        Self::from_json(j, &file, None, max_shots, seed, true)
    }

    fn from_json(
        j: J,
        file: &Path,
        parent: Option<&str>,
        max_shots: usize,
        seed: u32,
        top: bool,
    ) -> Result<Task, TaskError> {
        let err = |field: Option<&str>, message: String| TaskError {
            file: file.to_path_buf(),
            field: field.map(str::to_string),
            message,
        };
        let J::Obj(fields) = &j else {
            return Err(err(None, format!("a task file holds a JSON object, not {}", j.kind())));
        };
        for (k, _) in fields {
            if !TASK_FIELDS.contains(&k.as_str()) && !IGNORED_TASK_FIELDS.contains(&k.as_str()) {
                return Err(err(
                    Some(k),
                    format!(
                        "is not a field of BIG-bench JSON tasks (they have: {}; ignored: {})",
                        TASK_FIELDS.join(", "),
                        IGNORED_TASK_FIELDS.join(", ")
                    ),
                ));
            }
        }
        let name =
            string(&j, "name", file)?.ok_or_else(|| err(Some("name"), "is missing: a task must have a name".into()))?;
        // The official code replaces non-ASCII characters of names with `?`.
        let name: String = name.chars().map(|c| if c.is_ascii() { c } else { '?' }).collect();
        let name = match parent {
            Some(p) => format!("{p}:{name}"),
            None => name,
        };
        for key in ["canary", "description", "keywords"] {
            if j.get(key).is_none() {
                return Err(err(Some(key), format!("is missing: task `{name}` needs a `{key}` field")));
            }
        }
        check_strings(&j, "keywords", file, false)?;
        check_strings(&j, "canary", file, true)?;
        string(&j, "description", file)?;

        if j.get("examples").is_none() {
            if !top {
                return Err(err(Some("examples"), format!("is missing: subtask `{name}` needs examples")));
            }
            let dir = file.parent().unwrap_or(Path::new("."));
            let subtasks = subtask_files(dir).map_err(|e| err(None, format!("cannot list {}: {e}", dir.display())))?;
            if subtasks.is_empty() {
                return Err(err(
                    Some("examples"),
                    format!(
                        "is missing, and no subfolder holds a task.json: task `{name}` must have examples or subtasks"
                    ),
                ));
            }
            let mut tasks = Vec::new();
            for f in subtasks {
                let t = Self::from_json(read_json(&f)?, &f, Some(&name), max_shots, seed, false)?;
                if tasks.iter().any(|o: &Task| o.name == t.name) {
                    return Err(TaskError {
                        file: f,
                        field: Some("name".into()),
                        message: format!("subtask name `{}` is used twice in `{name}`", t.name),
                    });
                }
                tasks.push(t);
            }
            return Ok(Task { name, file: file.to_path_buf(), body: Body::Composite(tasks) });
        }
        let leaf = Leaf::from_json(&j, file, &name, max_shots, seed)?;
        Ok(Task { name, file: file.to_path_buf(), body: Body::Leaf(Box::new(leaf)) })
    }

    /// The tasks with examples, in the official order (subfolders sorted by path).
    pub fn leaves(&self) -> Vec<(&str, &Leaf)> {
        match &self.body {
            Body::Leaf(l) => vec![(self.name.as_str(), l)],
            Body::Composite(ts) => ts.iter().flat_map(Task::leaves).collect(),
        }
    }

    /// How many of its examples a leaf evaluates when the whole task may use
    /// `max_examples` (split evenly over subtasks, as the official code does).
    pub fn per_leaf_max(&self, max_examples: Option<usize>) -> Result<Option<usize>, String> {
        match (&self.body, max_examples) {
            (Body::Composite(ts), Some(m)) => {
                let each = m / ts.len();
                if each < 1 {
                    return Err(format!(
                        "max_examples ({m}) must be at least the number of subtasks of `{}` ({})",
                        self.name,
                        ts.len()
                    ));
                }
                Ok(Some(each))
            }
            (_, m) => Ok(m),
        }
    }
}

/// The `task.json` of each immediate subfolder, sorted by path.
fn subtask_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() && p.join("task.json").is_file() {
            out.push(p.join("task.json"));
        }
    }
    out.sort();
    Ok(out)
}

fn read_json(file: &Path) -> Result<J, TaskError> {
    let err = |message: String| TaskError { file: file.to_path_buf(), field: None, message };
    let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read the task: {e}")))?;
    json::parse(&text).map_err(|e| err(format!("not valid JSON: {e}")))
}

/// An optional string field.
fn string(j: &J, key: &str, file: &Path) -> Result<Option<String>, TaskError> {
    match j.get(key) {
        None => Ok(None),
        Some(J::Str(s)) => Ok(Some(s.clone())),
        Some(other) => Err(TaskError {
            file: file.to_path_buf(),
            field: Some(key.into()),
            message: format!("must be a string, not {}", other.kind()),
        }),
    }
}

/// A list of strings (or, with `or_string`, one string).
fn check_strings(j: &J, key: &str, file: &Path, or_string: bool) -> Result<Vec<String>, TaskError> {
    let bad = |what: &str| TaskError {
        file: file.to_path_buf(),
        field: Some(key.into()),
        message: format!("must be a list of strings{}, not {what}", if or_string { " or a string" } else { "" }),
    };
    match j.get(key) {
        None => Ok(Vec::new()),
        Some(J::Str(s)) if or_string => Ok(vec![s.clone()]),
        Some(J::Arr(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| bad(&format!("a list holding {}", x.kind()))))
            .collect(),
        Some(other) => Err(bad(other.kind())),
    }
}

impl Leaf {
    fn from_json(j: &J, file: &Path, name: &str, max_shots: usize, seed: u32) -> Result<Leaf, TaskError> {
        let err = |field: &str, message: String| TaskError {
            file: file.to_path_buf(),
            field: Some(field.to_string()),
            message,
        };
        for key in ["metrics", "preferred_score"] {
            if j.get(key).is_none() {
                return Err(err(key, format!("is missing: task `{name}` needs a `{key}` field")));
            }
        }
        let metric_list = check_strings(j, "metrics", file, false)?;
        if metric_list.is_empty() {
            return Err(err("metrics", "is empty: list at least one metric".into()));
        }
        for m in &metric_list {
            if m == "bleurt" {
                return Err(err(
                    "metrics",
                    "lists `bleurt`, which needs the BLEURT-20 checkpoint; labrun downloads no weights, so it cannot score this task".into(),
                ));
            }
            if !metrics::all().contains(&m.as_str()) {
                return Err(err(
                    "metrics",
                    format!("lists `{m}`, which is not a BIG-bench metric (they are: {})", metrics::all().join(", ")),
                ));
            }
        }
        let pick = |set: &[&str]| -> Vec<String> {
            metric_list.iter().filter(|m| set.contains(&m.as_str())).cloned().collect()
        };
        let generative = pick(metrics::GENERATIVE);
        let scoring = pick(metrics::SCORING);
        let mut multiple_choice = pick(metrics::MULTIPLE_CHOICE);
        if multiple_choice.iter().any(|m| m == "multiple_choice_grade") {
            multiple_choice
                .retain(|m| m != "calibration_multiple_choice_brier_score" && m != "expected_calibration_error");
            multiple_choice.push("calibration_multiple_choice_brier_score".into());
            multiple_choice.push("expected_calibration_error".into());
        }
        let preferred = string(j, "preferred_score", file)?.unwrap_or_default();
        if preferred == "rouge" {
            return Err(err("preferred_score", "is `rouge`; use `rouge1`, `rouge2` or `rougeLsum`".into()));
        }
        let Some(&(_, lo, hi)) = SCORE_RANGES.iter().find(|(m, _, _)| *m == preferred) else {
            return Err(err(
                "preferred_score",
                format!(
                    "is `{preferred}`, which has no official score range (it must be one of: {})",
                    SCORE_RANGES.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let produced = metrics::produced(&generative, &scoring, &multiple_choice);
        if !produced.iter().any(|m| *m == preferred) {
            return Err(err(
                "preferred_score",
                format!(
                    "is `{preferred}`, but the task's metrics do not produce it (they give: {})",
                    produced.join(", ")
                ),
            ));
        }
        let prefix = |key: &str, default: &str| -> Result<String, TaskError> {
            Ok(string(j, key, file)?.unwrap_or_else(|| default.to_string()))
        };
        let input_prefix = prefix("example_input_prefix", "\nQ: ")?;
        let output_prefix = prefix("example_output_prefix", "\nA: ")?;
        let choice_prefix = prefix("choice_prefix", "\n  choice: ")?;
        let separator = prefix("few_shot_example_separator", "\n")?;
        let task_prefix = prefix("task_prefix", "")?;
        // Python truth value, as the official code tests it (so the string "false" is true).
        let append_choices = match j.get("append_choices_to_input") {
            None => true,
            Some(v @ (J::Bool(_) | J::Str(_))) => v.truthy(),
            Some(other) => {
                return Err(err("append_choices_to_input", format!("must be a boolean, not {}", other.kind())));
            }
        };
        let absolute_normalization = match j.get("absolute_normalization") {
            None => false,
            Some(J::Bool(b)) => *b,
            Some(other) => {
                return Err(err("absolute_normalization", format!("must be a boolean, not {}", other.kind())));
            }
        };
        let output_regex = string(j, "output_regex", file)?;
        let stop_string = string(j, "stop_string", file)?;
        if let Some(r) = &output_regex {
            crate::post::compile(r).map_err(|m| err("output_regex", m))?;
        }
        let output_regex = match (&output_regex, &stop_string) {
            (None, None) => Some(DEFAULT_REGEX.to_string()),
            _ => output_regex,
        };

        let Some(J::Arr(raw)) = j.get("examples") else {
            return Err(err(
                "examples",
                format!("must be a list of examples, not {}", j.get("examples").map_or("missing", J::kind)),
            ));
        };
        if raw.is_empty() {
            return Err(err("examples", "is empty: a task needs examples".into()));
        }
        // Duplicates: equal `json.dumps` text, the first kept (with its place in the file).
        let mut seen = std::collections::HashSet::new();
        let mut distinct = Vec::new();
        for (i, x) in raw.iter().enumerate() {
            let mut k = String::new();
            key(x, Equality::Dump, &mut k);
            if seen.insert(k) {
                distinct.push((i, x));
            }
        }
        let duplicates = raw.len() - distinct.len();
        if distinct.len() < max_shots + 1 {
            return Err(err(
                "examples",
                format!(
                    "has {} distinct examples, too few for {max_shots}-shot prompts (which need {})",
                    distinct.len(),
                    max_shots + 1
                ),
            ));
        }
        let mut examples = Vec::with_capacity(distinct.len());
        for &(i, x) in &distinct {
            let at = |field: &str| format!("examples[{i}].{field}");
            let ex = format_example(x, &input_prefix, &output_prefix, &choice_prefix, append_choices, seed)
                .map_err(|(field, m)| err(&at(field), m))?;
            if !multiple_choice.is_empty() && ex.choices.is_empty() {
                return Err(err(
                    &at("target_scores"),
                    "is missing; the task's multiple-choice metrics need it on every example".into(),
                ));
            }
            if (!generative.is_empty() || !scoring.is_empty()) && x.get("target").is_none() {
                return Err(err(
                    &at("target"),
                    "is missing; the task's generative and scoring metrics need it on every example".into(),
                ));
            }
            examples.push(ex);
        }
        let low = if preferred == "multiple_choice_grade" {
            examples.iter().map(|e| e.scores.iter().sum::<f64>() / e.scores.len() as f64).sum::<f64>()
                / examples.len() as f64
        } else {
            lo
        };
        if hi <= low {
            return Err(err(
                "preferred_score",
                format!("its high end {hi} must be above its low end {low} (random guessing already scores that)"),
            ));
        }
        Ok(Leaf {
            metrics: metric_list,
            generative,
            scoring,
            multiple_choice,
            preferred,
            low,
            high: hi,
            absolute_normalization,
            task_prefix,
            separator,
            output_regex,
            stop_string,
            examples,
            duplicates,
        })
    }
}

/// `default_format_fn`. Errors carry the field at fault.
fn format_example(
    x: &J,
    input_prefix: &str,
    output_prefix: &str,
    choice_prefix: &str,
    append_choices: bool,
    seed: u32,
) -> Result<Example, (&'static str, String)> {
    let J::Obj(fields) = x else {
        return Err(("input", format!("an example must be an object, not {}", x.kind())));
    };
    for (k, _) in fields {
        if !EXAMPLE_FIELDS.contains(&k.as_str()) && !IGNORED_EXAMPLE_FIELDS.contains(&k.as_str()) {
            return Err((
                "input",
                format!(
                    "the example has a field `{k}`, which BIG-bench examples do not have (they have: {}; ignored: {})",
                    EXAMPLE_FIELDS.join(", "),
                    IGNORED_EXAMPLE_FIELDS.join(", ")
                ),
            ));
        }
    }
    let raw_input = match x.get("input") {
        Some(J::Str(s)) => s.clone(),
        Some(other) => return Err(("input", format!("must be a string, not {}", other.kind()))),
        None => return Err(("input", "is missing; every example needs an input".into())),
    };
    let mut target: Option<Vec<String>> = match x.get("target") {
        None => None,
        Some(J::Str(s)) => Some(vec![s.clone()]),
        Some(J::Arr(a)) if !a.is_empty() => Some(
            a.iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ("target", format!("must list strings, not {}", t.kind())))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(J::Arr(_)) => return Err(("target", "is an empty list; give at least one target".into())),
        Some(other) => return Err(("target", format!("must be a string or a list of strings, not {}", other.kind()))),
    };
    let mut input = raw_input.clone();
    let (mut choices, mut scores) = (Vec::new(), Vec::new());
    match x.get("target_scores") {
        None => {}
        Some(J::Obj(kv)) if !kv.is_empty() => {
            for (k, v) in kv {
                let s = v.as_f64().ok_or_else(|| {
                    ("target_scores", format!("the score of `{k}` must be a number, not {}", v.kind()))
                })?;
                choices.push(k.clone());
                scores.push(s);
            }
            if append_choices {
                input = with_choices(&input, &choices, choice_prefix, seed);
            }
            if target.is_none() {
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
                if (scores.len() == 1 && max == 0.0) || (scores.len() > 1 && max <= min) {
                    return Err((
                        "target_scores",
                        "gives no choice a higher score than the others: no choice is correct".into(),
                    ));
                }
                let first = scores.iter().position(|&s| s == max).expect("max is a score");
                target = Some(vec![choices[first].clone()]);
            }
        }
        Some(J::Obj(_)) => return Err(("target_scores", "is empty; list the choices and their scores".into())),
        Some(other) => {
            return Err(("target_scores", format!("must be an object of choices and scores, not {}", other.kind())));
        }
    }
    let Some(target) = target else {
        return Err(("target", "is missing; an example needs a `target` or `target_scores`".into()));
    };
    let input = format!("{input_prefix}{input}{output_prefix}");
    let mut formatted = fields.clone();
    let set = |kv: &mut Vec<(String, J)>, k: &str, v: J| match kv.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v,
        None => kv.push((k.to_string(), v)),
    };
    set(&mut formatted, "input", J::Str(input.clone()));
    set(&mut formatted, "target", J::Arr(target.iter().cloned().map(J::Str).collect()));
    if !choices.is_empty() {
        set(&mut formatted, "choice", J::Arr(choices.iter().cloned().map(J::Str).collect()));
    }
    Ok(Example { input, raw_input, target, choices, scores, formatted: J::Obj(formatted) })
}

/// An input with its choices appended as `default_format_fn` appends them: sorted, then
/// shuffled by a fresh `RandomState(seed)`, each after the choice prefix.
pub fn with_choices(input: &str, choices: &[String], choice_prefix: &str, seed: u32) -> String {
    let mut sorted = choices.to_vec();
    sorted.sort();
    RandomState::new(seed).shuffle(&mut sorted);
    format!("{input}{choice_prefix}{}", sorted.join(choice_prefix))
}

/// An example's input in the official default format (prefixes `\nQ: `, `\nA: ` and
/// `\n  choice: `), with its choices if any: what a task without custom prefixes shows the
/// model.
pub fn default_input(input: &str, choices: &[String]) -> String {
    let body = if choices.is_empty() { input.to_string() } else { with_choices(input, choices, "\n  choice: ", 42) };
    format!("\nQ: {body}\nA: ")
}

/// One query of an n-shot evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The exact text the model sees: task prefix, shots, then the example's input.
    pub prompt: String,
    /// The example asked (an index into the leaf's examples).
    pub example: usize,
    /// The examples shown as shots, in order.
    pub shots: Vec<usize>,
}

impl Leaf {
    /// `make_nshot_dataset` and the task prefix: the queries of a `shots`-shot evaluation,
    /// at most `max_examples` of them, drawn as the official code draws them.
    pub fn queries(&self, shots: usize, max_examples: Option<usize>, seed: u32) -> Result<Vec<Query>, String> {
        let n = self.examples.len();
        let count = max_examples.map_or(n, |m| m.min(n));
        let mut rng = RandomState::new(seed);
        let plain = |e: usize, input: String, shots: Vec<usize>| Query {
            prompt: format!("{}{input}", self.task_prefix),
            example: e,
            shots,
        };
        if shots == 0 {
            let idx: Vec<usize> = if count < n { rng.choice_distinct(n, count) } else { (0..n).collect() };
            return Ok(idx.into_iter().map(|e| plain(e, self.examples[e].input.clone(), Vec::new())).collect());
        }
        if n < shots + 1 {
            return Err(format!("{n} examples are too few for {shots}-shot prompts"));
        }
        // Python's `x != sample` removes every example equal to the query, so group them.
        let mut groups: HashMap<String, usize> = HashMap::new();
        let group: Vec<usize> = self
            .examples
            .iter()
            .map(|e| {
                let mut k = String::new();
                key(&e.formatted, Equality::Python, &mut k);
                let next = groups.len();
                *groups.entry(k).or_insert(next)
            })
            .collect();
        let asked = rng.choice_distinct(n, count);
        let mut out = Vec::with_capacity(asked.len());
        for q in asked {
            let valid: Vec<usize> = (0..n).filter(|&i| group[i] != group[q]).collect();
            if valid.len() < shots {
                return Err(format!("too few examples differ from example {q} for {shots}-shot prompts"));
            }
            let picked: Vec<usize> = rng.choice_distinct(valid.len(), shots).into_iter().map(|i| valid[i]).collect();
            let context: Vec<String> = picked
                .iter()
                .map(|&s| {
                    let ex = &self.examples[s];
                    let t = &ex.target[rng.choice_one(ex.target.len())];
                    format!("{}{t}", ex.input)
                })
                .collect();
            let input = format!("{}{}{}", context.join(&self.separator), self.separator, self.examples[q].input);
            out.push(plain(q, input, picked));
        }
        Ok(out)
    }
}

/// How two values are compared.
#[derive(Clone, Copy, PartialEq)]
enum Equality {
    /// As their `json.dumps` text: keys in order, integers apart from floats (duplicate
    /// examples).
    Dump,
    /// As Python's `==`: dicts by sorted key, numbers and booleans by value.
    Python,
}

/// A text form of a value, equal for values equal under `eq`.
fn key(j: &J, eq: Equality, out: &mut String) {
    let py = eq == Equality::Python;
    match j {
        J::Null => out.push('n'),
        J::Bool(b) if py => out.push_str(&format!("#{}", f64::from(u8::from(*b)))),
        J::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        J::Int(i) if py => out.push_str(&format!("#{}", *i as f64)),
        J::Int(i) => out.push_str(&format!("i{i}")),
        J::Float(f) if py => out.push_str(&format!("#{f}")),
        J::Float(f) => out.push_str(&format!("d{:x}", f.to_bits())),
        J::Str(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        J::Arr(a) => {
            out.push('[');
            for x in a {
                key(x, eq, out);
                out.push(',');
            }
            out.push(']');
        }
        J::Obj(kv) => {
            let mut kv: Vec<&(String, J)> = kv.iter().collect();
            if py {
                kv.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (k, v) in kv {
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                key(v, eq, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}
