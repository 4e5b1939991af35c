//! `finetune.*`: ops that train a model and return the trained copy.

use crate::artifact::Dataset;
use crate::generate::NEXT_TOKEN_FILE;
use crate::lmops::{self, training_params};
use crate::nnops;
use crate::text::TextData;
use crate::{Args, Op, OpError, Registry, RunCtx, Signature, Type, Value};
use lab_nn::lm::{LmObjective, Ranked};
use lab_nn::train::Objective;

pub fn register(r: &mut Registry) {
    r.add(Supervised);
    r.add(Distill);
    r.add(Pretrain);
    r.add(Sft);
    r.add(DistillLm);
    r.add(Reward);
}

fn common(sig: Signature) -> Signature {
    sig.opt("epochs", Type::Int, Value::Int(5), "passes over the data")
        .opt("lr", Type::Float, Value::Float(3e-4), "Adam learning rate")
        .opt("batch", Type::Int, Value::Int(64), "rows per step")
        .opt("seed", Type::Int, Value::Int(0), "shuffle seed")
}

/// Loads `model` and `data`, trains a copy of the model on the logits in `logits` with
/// the given objective, and saves it as the output.
fn train_copy(
    ctx: &RunCtx,
    args: &Args,
    objective: impl FnOnce(std::ops::Range<usize>) -> Objective,
) -> Result<(), OpError> {
    let mut model = nnops::load_model(args, "model")?;
    let d = Dataset::read(args.artifact("data")?)?;
    nnops::check_width(model.spec.inputs, &d, "data")?;
    let logits = args.range("logits")?;
    nnops::check_logits(model.spec.outputs, &logits, "logits")?;
    nnops::fit(ctx, args, &mut model, &d, objective(logits))?;
    model.save(ctx.out)?;
    Ok(())
}

/// Cross-entropy training on the dataset's labels, using only the logits in `logits`.
pub struct Supervised;

impl Op for Supervised {
    fn signature(&self) -> Signature {
        common(
            Signature::new(
                "finetune",
                "supervised",
                2,
                Type::Model,
                "cross-entropy training on labels, over the logits in `logits` only (the others get no signal)",
            )
            .req("model", Type::Model, "the model to start from (it is copied, not changed)")
            .req("data", Type::Dataset, "inputs `x` with labels `y`")
            .opt(
                "logits",
                Type::Range,
                Value::Range { start: 0, end: 10 },
                "the logits that form the softmax",
            ),
        )
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        train_copy(ctx, args, |logits| Objective::CrossEntropy { logits })
    }
}

/// Distillation: KL(softmax(teacher) ‖ softmax(student)) over the logits in `logits`.
pub struct Distill;

impl Op for Distill {
    fn signature(&self) -> Signature {
        common(
            Signature::new(
                "finetune",
                "distill",
                2,
                Type::Model,
                "trains the student's logits in `logits` to match soft targets `t` (KL divergence of the softmaxes)",
            )
            .req("model", Type::Model, "the student to start from (it is copied, not changed)")
            .req("data", Type::Dataset, "inputs `x` with the teacher's logits `t` (from `generate.logits`)")
            .req("logits", Type::Range, "the student logits matched to the columns of `t`"),
        )
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        train_copy(ctx, args, |logits| Objective::Distill { logits })
    }
}

/// Next-token training on documents.
pub struct Pretrain;

impl Op for Pretrain {
    fn signature(&self) -> Signature {
        training_params(
            Signature::new("finetune", "pretrain", 2, Type::Model, "next-token training of a language model on the `text` of each record (documents longer than the context are cut into windows); AdamW with warmup + cosine, gradient clipping, optional validation and early stopping")
                .req("model", Type::Model, "the language model to start from (it is copied, not changed)")
                .req("corpus", Type::Dataset, "records with `text`"),
            800,
            3e-3,
            64,
        )
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let model = lmops::load_gpt(args, "model")?;
        let data = TextData::read(args.artifact("corpus")?, "corpus")?;
        let rows = lmops::rows(&model, &data, "corpus", false)?;
        lmops::train_and_save(ctx, args, model, LmObjective::NextToken, rows, Vec::new())
    }
}

/// Supervised fine-tuning on prompt/completion pairs.
pub struct Sft;

impl Op for Sft {
    fn signature(&self) -> Signature {
        training_params(
            Signature::new(
                "finetune",
                "sft",
                1,
                Type::Model,
                "supervised fine-tuning: next-token loss on each record's `completion` tokens only, after its `prompt`",
            )
            .req("model", Type::Model, "the language model to start from (it is copied, not changed)")
            .req("data", Type::Dataset, "records with `prompt` and `completion`"),
            100,
            1e-3,
            32,
        )
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let model = lmops::load_gpt(args, "model")?;
        let data = TextData::read(args.artifact("data")?, "data")?;
        let rows = lmops::rows(&model, &data, "data", true)?;
        lmops::train_and_save(ctx, args, model, LmObjective::NextToken, rows, Vec::new())
    }
}

/// Distillation to a teacher's next-token distributions.
pub struct DistillLm;

impl Op for DistillLm {
    fn signature(&self) -> Signature {
        training_params(
            Signature::new("finetune", "distill_lm", 1, Type::Model, "distillation of a language model: KL(teacher ‖ student) of the next-token distributions at each completion position, over the tokens `generate.next_token` kept (renormalised among them)")
                .req("model", Type::Model, "the student to start from (it is copied, not changed)")
                .req("data", Type::Dataset, "records with the teacher's distributions, from `generate.next_token`"),
            300,
            1e-3,
            64,
        )
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let model = lmops::load_gpt(args, "model")?;
        let dir = args.artifact("data")?;
        let data = TextData::read(dir, "data")?;
        let path = dir.join(NEXT_TOKEN_FILE);
        if !path.is_file() {
            return Err(OpError::invalid(
                "data",
                "holds no next-token distributions; make it with `generate.next_token(teacher, data, tokens: …)`",
            ));
        }
        let st = lab_nn::weights::load(&path)?;
        let get = |n: &str| {
            st.iter()
                .find(|(k, _)| k == n)
                .map(|(_, t)| t)
                .ok_or_else(|| OpError::Data(format!("{}: no `{n}`", path.display())))
        };
        let logp = get("logp")?
            .as_f32()
            .ok_or_else(|| OpError::Data(format!("{}: `logp` is not f32", path.display())))?
            .to_vec();
        let offsets = get("offsets")?.to_i64();
        let tokens = get("tokens")?.to_i64();
        let k = tokens.len();
        let mut rows = lmops::rows(&model, &data, "data", true)?;
        if offsets.len() != data.records.len() + 1 {
            return Err(OpError::Data(format!(
                "{}: {} offsets for {} records",
                path.display(),
                offsets.len(),
                data.records.len()
            )));
        }
        // Rows with an empty completion were skipped; match the rest by completion length.
        let mut r = 0;
        for i in 0..data.records.len() {
            let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
            if a == b {
                continue;
            }
            let row =
                rows.get_mut(r).ok_or_else(|| OpError::Data("the distributions do not match the records".into()))?;
            if row.ids.len() - row.from != b - a {
                return Err(OpError::Data(format!(
                    "record {}: the distributions cover {} positions but the completion has {} tokens; were they made with another tokenizer?",
                    i + 1,
                    b - a,
                    row.ids.len() - row.from
                )));
            }
            row.teacher = logp[a * k..b * k].to_vec();
            r += 1;
        }
        // The teacher's token ids, as the student's: the same tokenizer, or the same text.
        let teacher = lab_nn::tokenizer::Tokenizer::load(dir)?;
        let tokens: Vec<i64> = if teacher.to_json() == model.tokenizer.to_json() {
            tokens
        } else {
            tokens
                .iter()
                .map(|&t| {
                    let text = teacher.token_text(t)?;
                    match model.tokenizer.encode(&text)?.as_slice() {
                        [id] => Ok(*id),
                        _ => Err(lab_nn::NnError::BadModel(format!(
                            "the teacher's token {text:?} is not one token of the student's tokenizer; distil between models whose tokenizers share these tokens"
                        ))),
                    }
                })
                .collect::<Result<_, _>>()
                .map_err(|e| OpError::invalid("data", e.to_string()))?
        };
        let full = tokens.len() == model.spec.vocab && tokens.iter().enumerate().all(|(i, &t)| t == i as i64);
        let objective = LmObjective::Distill { tokens: if full { Vec::new() } else { tokens } };
        lmops::train_and_save(ctx, args, model, objective, rows, Vec::new())
    }
}

/// Bradley–Terry reward modelling.
pub struct Reward;

impl Op for Reward {
    fn signature(&self) -> Signature {
        training_params(
            Signature::new("finetune", "reward", 1, Type::Model, "reward modelling with the Bradley–Terry loss −log σ(r(better) − r(worse)), r being the scalar head at a sequence's last token: over each record's `chosen`/`rejected` pair, or over all pairs of its `completions` (best first); texts follow the `prompt`")
                .req("model", Type::Model, "a language model with a scalar head (`value_head: true` or `model.value_head`)")
                .req("data", Type::Dataset, "records with `prompt` and either `chosen` and `rejected`, or `completions` (a list, best first)"),
            200,
            1e-3,
            16,
        )
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        if args.float("val_fraction")? > 0.0 {
            return Err(OpError::invalid(
                "val_fraction",
                "is not supported by `finetune.reward` yet; hold comparisons out with `filter.exclude` and score them with `score.rewards`",
            ));
        }
        let model = lmops::load_gpt(args, "model")?;
        let data = TextData::read(args.artifact("data")?, "data")?;
        let mut ranked = Vec::new();
        for (i, r) in data.records.iter().enumerate() {
            let text = |v, field| string_field(v, field, i);
            let prompt = match r.get("prompt") {
                Some(p) => text(p, "prompt")?,
                None => "",
            };
            let texts: Vec<&str> = match (r.get("chosen"), r.get("rejected"), r.get("completions")) {
                (Some(c), Some(j), _) => vec![text(c, "chosen")?, text(j, "rejected")?],
                (_, _, Some(serde_json::Value::Array(cs))) => {
                    cs.iter().map(|c| text(c, "completions")).collect::<Result<_, _>>()?
                }
                _ => {
                    return Err(OpError::invalid(
                        "data",
                        format!("record {} has neither `chosen` and `rejected` nor a `completions` list", i + 1),
                    ));
                }
            };
            let seqs = texts
                .iter()
                .map(|t| lmops::encode(&model.tokenizer, &format!("{prompt}{t}"), "data"))
                .collect::<Result<_, _>>()?;
            ranked.push(Ranked { seqs });
        }
        lmops::train_and_save(ctx, args, model, LmObjective::Reward, Vec::new(), ranked)
    }
}

/// A record's string field; anything else is an error naming the record (1-based).
fn string_field<'a>(v: &'a serde_json::Value, field: &str, i: usize) -> Result<&'a str, OpError> {
    v.as_str().ok_or_else(|| OpError::invalid("data", format!("record {}: `{field}` must be a string", i + 1)))
}
