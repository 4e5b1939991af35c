//! Shared plumbing of the language-model ops: loading a model (labrun's GPT or an imported
//! decoder), tokenizing records, the training settings every `finetune.*` LM op takes, and
//! the training log written next to the weights.

use crate::nnops::session_options;
use crate::params::Params;
use crate::text::TextData;
use crate::{Check, OpError, Progress, RunCtx};
use lab_nn::decode::Decoder;
use lab_nn::gpt::{Gpt, Trainable};
use lab_nn::lm::{self, LmObjective, Ranked, Row};
use lab_nn::optim::{OptimConfig, Optimizer, Schedule};
use lab_nn::tokenizer::Tokenizer;
use lab_nn::train::{StepInfo, TrainConfig, TrainReport};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::path::Path;

/// A language model ready to run.
pub enum Lm {
    Own(Gpt),
    /// A decoder exported by other tools (`model.import_lm`).
    Imported {
        /// The artifact's `model.onnx` (its external data files, if any, beside it).
        path: std::path::PathBuf,
        tokenizer: Tokenizer,
        /// From the position-embedding table, when the export has one.
        context: Option<usize>,
    },
}

impl Lm {
    pub fn tokenizer(&self) -> &Tokenizer {
        match self {
            Lm::Own(g) => &g.tokenizer,
            Lm::Imported { tokenizer, .. } => tokenizer,
        }
    }

    pub fn context(&self) -> Option<usize> {
        match self {
            Lm::Own(g) => Some(g.spec.context),
            Lm::Imported { context, .. } => *context,
        }
    }

    /// A decoder session; with `hidden`, one that also returns the residual stream.
    pub fn decoder(&self, ctx: &RunCtx, hidden: bool) -> Result<Decoder, OpError> {
        Ok(match self {
            Lm::Own(g) => {
                Decoder::new(&g.decoder_graph(hidden).to_onnx_bytes(""), self.context(), session_options(ctx))?
            }
            Lm::Imported { path, .. } => Decoder::from_file(path, self.context(), session_options(ctx))?,
        })
    }

    /// Refuses, before any work, a record of `arg` longer than the model's context: its
    /// number (from 1), its length in tokens (`extra` more for generation) and the context.
    pub fn within_context(&self, lens: impl Iterator<Item = usize>, extra: usize, arg: &str) -> Result<(), OpError> {
        within_context(self.context(), lens, extra, arg)
    }

    pub fn encode(&self, text: &str, arg: &str) -> Result<Vec<i64>, OpError> {
        encode(self.tokenizer(), text, arg)
    }
}

/// [`Lm::within_context`] for a model whose context is `context` (`None`: unknown).
pub fn within_context(
    context: Option<usize>,
    lens: impl Iterator<Item = usize>,
    extra: usize,
    arg: &str,
) -> Result<(), OpError> {
    let Some(c) = context else { return Ok(()) };
    for (i, len) in lens.enumerate() {
        // The last generated token is never fed back, so it needs no position.
        if len + extra.saturating_sub(1) > c {
            let what =
                if extra > 0 { format!("{len} tokens plus {extra} to generate") } else { format!("{len} tokens") };
            return Err(OpError::invalid(
                arg,
                format!(
                    "record {} is {what}, beyond the model's context of {c} tokens; shorten it, or use a model with a longer context",
                    i + 1
                ),
            ));
        }
    }
    Ok(())
}

/// The (`prompt`, `completion`) token ids of every record of the argument `arg`.
pub fn pairs(tok: &Tokenizer, data: &TextData, arg: &str) -> Result<Vec<lab_nn::decode::Pair>, OpError> {
    let pairs = encoded_pairs(tok, data, arg)?;
    if let Some(i) = pairs.iter().position(|(p, _)| p.is_empty()) {
        return Err(OpError::invalid(
            arg,
            format!("record {} has an empty `prompt`; a text's first token has no probability to score", i + 1),
        ));
    }
    Ok(pairs)
}

/// The (`prompt`, `completion`) token ids of every record, empty ones included.
fn encoded_pairs(tok: &Tokenizer, data: &TextData, arg: &str) -> Result<Vec<lab_nn::decode::Pair>, OpError> {
    let prompts = data.strings("prompt", arg)?;
    let comps = data.strings("completion", arg)?;
    prompts
        .iter()
        .zip(&comps)
        .enumerate()
        .map(|(i, (p, c))| {
            let enc = |t: &str| encode(tok, t, arg).map_err(|e| in_record(e, i));
            Ok((enc(p)?, enc(c)?))
        })
        .collect()
}

/// Token ids of text from the argument `arg`.
pub fn encode(tok: &Tokenizer, text: &str, arg: &str) -> Result<Vec<i64>, OpError> {
    tok.encode(text).map_err(|e| OpError::invalid(arg, nn_msg(e)))
}

/// Says which record (1-based) an argument error came from.
fn in_record(e: OpError, i: usize) -> OpError {
    match e {
        OpError::Invalid { name, message } => {
            OpError::Invalid { name, message: format!("{message} (record {})", i + 1) }
        }
        other => other,
    }
}

fn nn_msg(e: lab_nn::NnError) -> String {
    match e {
        lab_nn::NnError::BadModel(m) => format!("holds text the model cannot read: {m}"),
        other => other.to_string(),
    }
}

/// The language model in `dir`, the argument `name`.
pub fn load_lm(dir: &Path, name: &str) -> Result<Lm, OpError> {
    match crate::nnops::model_arch(dir)?.as_str() {
        "gpt" => Ok(Lm::Own(Gpt::load(dir)?)),
        "import_lm" => {
            let path = lab_nn::folder::ModelFolder::new(dir).onnx_path();
            if !path.is_file() {
                return Err(OpError::Data(format!("{}: the imported model's file is missing", path.display())));
            }
            let meta: serde_json::Value = lab_nn::folder::ModelFolder::new(dir).read_meta("model description")?;
            let context = meta["context"].as_u64().map(|c| c as usize);
            Ok(Lm::Imported { path, tokenizer: Tokenizer::load(dir)?, context })
        }
        other => Err(OpError::invalid(
            name,
            format!("is a `{other}` model, not a language model (make one with `model.gpt` or `model.import_lm`)"),
        )),
    }
}

/// The model in `dir` (the argument `name`) as a labrun GPT, for training.
pub fn load_gpt(dir: &Path, name: &str) -> Result<Gpt, OpError> {
    match load_lm(dir, name)? {
        Lm::Own(g) => Ok(g),
        Lm::Imported { .. } => Err(OpError::invalid(
            name,
            "is an imported decoder; labrun trains the language models it builds (`model.gpt`), imported ones are for inference",
        )),
    }
}

/// The parameters every LM training op takes (`#[param(flatten, defaults(steps = …, lr =
/// …, batch = …))]` sets an op's own defaults).
#[derive(Debug, Clone, Params)]
#[params(rules = training_rules)]
pub struct LmTraining {
    /// optimizer steps
    #[param(default = 100, min = 1)]
    pub steps: usize,
    /// peak learning rate (AdamW)
    #[param(default = 1e-3, positive)]
    pub lr: f64,
    /// linear warmup steps before the cosine decay to 10% (0: constant rate)
    #[param(default = 0)]
    pub warmup: usize,
    /// sequences per step
    #[param(default = 32, min = 1)]
    pub batch: usize,
    /// AdamW weight decay
    #[param(default = 0.0, min = 0)]
    pub weight_decay: f64,
    /// clip the global gradient norm to this (0: no clipping)
    #[param(default = 1.0, min = 0)]
    pub clip: f64,
    /// what trains: `all`, `body` (blocks + final norm), `embeddings` or `head`
    #[param(default = Trainable::All)]
    pub train: Trainable,
    /// share of rows held out to measure a validation loss
    #[param(default = 0.0, min = 0, lt = 1)]
    pub val_fraction: f64,
    /// with validation: stop after this many evaluations without improvement, keeping the best weights (0: never)
    #[param(default = 0)]
    pub patience: usize,
    /// steps between validation evaluations
    #[param(default = 50, min = 1)]
    pub eval_every: usize,
    /// shuffle seed
    #[param(default = 0)]
    pub seed: i64,
}

/// `patience` needs validation data to stop on.
fn training_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["patience", "val_fraction"],
        doc: "`patience` > 0 needs `val_fraction` > 0",
        test: |v| match (v[0].as_i64(), v[1].as_f64()) {
            (Some(p), Some(f)) if p > 0 && f == 0.0 => {
                Some("`patience` needs validation data to stop on: set `val_fraction` too".to_string())
            }
            _ => None,
        },
    }]
}

impl LmTraining {
    /// The training loop's settings, what trains, and the validation share.
    pub fn config(&self, ctx: &RunCtx) -> (TrainConfig, Trainable, f64) {
        let cfg = TrainConfig {
            epochs: 1,
            steps: Some(self.steps),
            batch: self.batch,
            lr: self.lr,
            seed: self.seed as u64,
            optim: OptimConfig {
                optimizer: Optimizer::AdamW,
                weight_decay: self.weight_decay,
                clip: (self.clip > 0.0).then_some(self.clip),
                ..OptimConfig::default()
            },
            schedule: if self.warmup > 0 { Schedule::WarmupCosine { warmup: self.warmup } } else { Schedule::Constant },
            session: session_options(ctx),
            eval_every: self.eval_every,
            patience: (self.patience > 0).then_some(self.patience),
        };
        (cfg, self.train, self.val_fraction)
    }
}

/// Splits off a seeded validation share of `rows`.
pub fn split_val<T: Clone>(rows: Vec<T>, fraction: f64, seed: u64) -> (Vec<T>, Vec<T>) {
    if fraction <= 0.0 {
        return (rows, Vec::new());
    }
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed));
    let n_val = ((rows.len() as f64 * fraction).round() as usize).min(rows.len().saturating_sub(1));
    let val = idx[..n_val].iter().map(|&i| rows[i].clone()).collect();
    let mut train_idx = idx[n_val..].to_vec();
    train_idx.sort_unstable();
    (train_idx.into_iter().map(|i| rows[i].clone()).collect(), val)
}

/// Trains a copy of a language model and writes it, with `train_log.json`, to the
/// output.
pub fn train_and_save(
    ctx: &RunCtx,
    training: &LmTraining,
    mut model: Gpt,
    objective: LmObjective,
    rows: Vec<Row>,
    ranked: Vec<Ranked>,
) -> Result<(), OpError> {
    let (cfg, trainable, val_fraction) = training.config(ctx);
    let (rows, val) = split_val(rows, val_fraction, cfg.seed);
    let mut on_step = progress(ctx, 5);
    let val_ref = (!val.is_empty()).then_some(&val[..]);
    let report = lm::train_lm(&mut model, &objective, &rows, &ranked, val_ref, trainable, &cfg, &mut on_step)
        .map_err(|e| training_error(ctx, e, cfg.lr))?;
    model.save(ctx.out)?;
    write_log(ctx.out, &report)
}

/// Shows the training loss every `every` steps; tells the loop to stop once the user
/// cancels.
pub fn progress<'a>(ctx: &'a RunCtx<'a>, every: usize) -> impl FnMut(StepInfo) -> bool + 'a {
    move |s: StepInfo| {
        if s.step.is_multiple_of(every) || s.step == s.total {
            (ctx.progress)(Progress {
                done: s.step as u64,
                total: s.total as u64,
                message: format!("loss {:.4}", s.loss),
            });
        }
        ctx.check_cancel().is_ok()
    }
}

/// A training failure in the user's terms: cancelled, a loss that blew up, bad data.
pub fn training_error(ctx: &RunCtx, e: lab_nn::NnError, lr: f64) -> OpError {
    match e {
        _ if ctx.check_cancel().is_err() => OpError::Cancelled,
        lab_nn::NnError::NonFinite { step, value } => OpError::Numeric(format!(
            "the training loss became {value} at step {step}; lower `lr` (now {lr}) or clip gradients harder"
        )),
        lab_nn::NnError::BadModel(m) => OpError::Data(m),
        e => e.into(),
    }
}

pub fn write_log(dir: &Path, r: &TrainReport) -> Result<(), OpError> {
    let log = serde_json::json!({
        "steps": r.steps,
        "loss": r.losses,
        "val_loss": r.val_loss,
        "stopped_early": r.stopped_early,
    });
    std::fs::write(dir.join("train_log.json"), serde_json::to_string(&log).expect("json"))?;
    Ok(())
}

/// Token rows of records: `prompt` + `completion` trained on the completion, or `text`
/// trained on everything after its first token (documents longer than the context are cut
/// into windows).
pub fn rows(model: &Gpt, data: &TextData, arg: &str, completion_only: bool) -> Result<Vec<Row>, OpError> {
    if !completion_only {
        return windows(model, data, arg, model.spec.context, None);
    }
    let mut out = Vec::new();
    for (pi, ci) in encoded_pairs(&model.tokenizer, data, arg)? {
        if ci.is_empty() {
            continue;
        }
        let from = pi.len().max(1);
        let mut ids = pi;
        ids.extend(ci);
        out.push(Row { ids, from, ..Row::default() });
    }
    if out.is_empty() {
        return Err(OpError::invalid(arg, "has no text to train on"));
    }
    Ok(out)
}

/// The `text` of every record cut into windows of `window` + 1 tokens (each predicting
/// `window` tokens). With `random_positions` (a seed), each window is placed at a random
/// position of the context, so that short windows train every position of a long one.
pub fn windows(
    model: &Gpt,
    data: &TextData,
    arg: &str,
    window: usize,
    random_positions: Option<u64>,
) -> Result<Vec<Row>, OpError> {
    let (tok, context) = (&model.tokenizer, model.spec.context);
    let mut rng = random_positions.map(rand_chacha::ChaCha8Rng::seed_from_u64);
    let mut out = Vec::new();
    for (i, text) in data.strings("text", arg)?.into_iter().enumerate() {
        let ids = encode(tok, text, arg).map_err(|e| in_record(e, i))?;
        let mut start = 0;
        while start + 1 < ids.len() {
            let end = (start + window + 1).min(ids.len());
            // A row of n tokens feeds n − 1 inputs, at positions offset..offset + n − 1.
            let offset = match &mut rng {
                Some(r) => r.random_range(0..=context + 1 - (end - start)),
                None => 0,
            };
            out.push(Row { ids: ids[start..end].to_vec(), from: 1, offset, ..Row::default() });
            if end == ids.len() {
                break;
            }
            start = end - 1;
        }
    }
    if out.is_empty() {
        return Err(OpError::invalid(arg, "has no text to train on"));
    }
    Ok(out)
}
