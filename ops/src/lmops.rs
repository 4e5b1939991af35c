//! Shared plumbing of the language-model ops: loading a model (labrun's GPT or an imported
//! decoder), tokenizing records, the training settings every `finetune.*` LM op takes, and
//! the training log written next to the weights.

use crate::nnops::session_options;
use crate::text::TextData;
use crate::{Args, Check, OpError, Progress, RunCtx, Signature, Type, Value, Yield};
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
        onnx: Vec<u8>,
        tokenizer: Tokenizer,
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
            Lm::Imported { .. } => None,
        }
    }

    /// A decoder session; with `hidden`, one that also returns the residual stream.
    pub fn decoder(&self, ctx: &RunCtx, hidden: bool) -> Result<Decoder, OpError> {
        let bytes = match self {
            Lm::Own(g) => g.decoder_graph(hidden).to_onnx_bytes(""),
            Lm::Imported { onnx, .. } => onnx.clone(),
        };
        Ok(Decoder::new(&bytes, self.context(), session_options(ctx))?)
    }

    pub fn encode(&self, text: &str, arg: &str) -> Result<Vec<i64>, OpError> {
        encode(self.tokenizer(), text, arg)
    }
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

fn arch(dir: &Path) -> Result<String, OpError> {
    let text = std::fs::read_to_string(dir.join("model.json"))
        .map_err(|e| OpError::Data(format!("{} is not a model: {e}", dir.display())))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| OpError::Data(format!("{}/model.json: {e}", dir.display())))?;
    Ok(v["arch"].as_str().unwrap_or("").to_string())
}

/// The language model argument `name`.
pub fn load_lm(args: &Args, name: &str) -> Result<Lm, OpError> {
    let dir = args.artifact(name)?;
    match arch(dir)?.as_str() {
        "gpt" => Ok(Lm::Own(Gpt::load(dir)?)),
        "import_lm" => {
            let onnx = std::fs::read(dir.join("model.onnx"))?;
            Ok(Lm::Imported { onnx, tokenizer: Tokenizer::load(dir)? })
        }
        other => Err(OpError::invalid(
            name,
            format!("is a `{other}` model, not a language model (make one with `model.gpt` or `model.import_lm`)"),
        )),
    }
}

/// The argument `name` as a labrun GPT, for training.
pub fn load_gpt(args: &Args, name: &str) -> Result<Gpt, OpError> {
    match load_lm(args, name)? {
        Lm::Own(g) => Ok(g),
        Lm::Imported { .. } => Err(OpError::invalid(
            name,
            "is an imported decoder; labrun trains the language models it builds (`model.gpt`), imported ones are for inference",
        )),
    }
}

/// The parameters every LM training op takes.
pub fn training_params(sig: Signature, steps: i64, lr: f64, batch: i64) -> Signature {
    sig.opt("steps", Type::Int, Value::Int(steps), "optimizer steps")
        .opt("lr", Type::Float, Value::Float(lr), "peak learning rate (AdamW)")
        .opt("warmup", Type::Int, Value::Int(0), "linear warmup steps before the cosine decay to 10% (0: constant rate)")
        .opt("batch", Type::Int, Value::Int(batch), "sequences per step")
        .opt("weight_decay", Type::Float, Value::Float(0.0), "AdamW weight decay")
        .opt("clip", Type::Float, Value::Float(1.0), "clip the global gradient norm to this (0: no clipping)")
        .opt("train", Type::Str, Value::Str("all".into()), "what trains: `all`, `body` (blocks + final norm), `embeddings` or `head`")
        .opt("val_fraction", Type::Float, Value::Float(0.0), "share of rows held out to measure a validation loss")
        .opt("patience", Type::Int, Value::Int(0), "with validation: stop after this many evaluations without improvement, keeping the best weights (0: never)")
        .opt("eval_every", Type::Int, Value::Int(50), "steps between validation evaluations")
        .opt("seed", Type::Int, Value::Int(0), "shuffle seed")
        .at_least("steps", 1.0)
        .positive("lr")
        .at_least("warmup", 0.0)
        .at_least("batch", 1.0)
        .at_least("weight_decay", 0.0)
        .at_least("clip", 0.0)
        .check(Check::Min { param: "val_fraction", min: 0.0, strict: false })
        .check(Check::Max { param: "val_fraction", max: 1.0, strict: true })
        .at_least("patience", 0.0)
        .at_least("eval_every", 1.0)
        .one_of("train", &["all", "body", "embeddings", "head"])
        .yields(Yield::All("model"))
}

/// Reads [`training_params`].
pub fn train_config(ctx: &RunCtx, args: &Args) -> Result<(TrainConfig, Trainable, f64), OpError> {
    let lr = args.float("lr")?;
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(OpError::invalid("lr", format!("must be a positive number, got {lr}")));
    }
    let clip = args.float("clip")?;
    if clip < 0.0 {
        return Err(OpError::invalid("clip", "must be 0 (off) or positive"));
    }
    let val_fraction = args.float("val_fraction")?;
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(OpError::invalid("val_fraction", format!("must be in [0, 1), got {val_fraction}")));
    }
    let warmup = args.int_at_least("warmup", 0)?;
    let patience = args.int_at_least("patience", 0)?;
    if patience > 0 && val_fraction == 0.0 {
        return Err(OpError::invalid("patience", "needs validation data to stop on: set `val_fraction` too"));
    }
    let trainable = args.str("train")?.parse().map_err(|e: String| OpError::invalid("train", e))?;
    let cfg = TrainConfig {
        epochs: 1,
        steps: Some(args.int_at_least("steps", 1)?),
        batch: args.int_at_least("batch", 1)?,
        lr,
        seed: args.int("seed")? as u64,
        optim: OptimConfig {
            optimizer: Optimizer::AdamW,
            weight_decay: args.float("weight_decay")?,
            clip: (clip > 0.0).then_some(clip),
            ..OptimConfig::default()
        },
        schedule: if warmup > 0 { Schedule::WarmupCosine { warmup } } else { Schedule::Constant },
        session: session_options(ctx),
        eval_every: args.int_at_least("eval_every", 1)?,
        patience: (patience > 0).then_some(patience),
    };
    Ok((cfg, trainable, val_fraction))
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

/// Trains a copy of the `model` argument and writes it, with `train_log.json`, to the
/// output.
pub fn train_and_save(
    ctx: &RunCtx,
    args: &Args,
    mut model: Gpt,
    objective: LmObjective,
    rows: Vec<Row>,
    ranked: Vec<Ranked>,
) -> Result<(), OpError> {
    let (cfg, trainable, val_fraction) = train_config(ctx, args)?;
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
