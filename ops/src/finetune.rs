//! `finetune.*`: ops that train a model and return the trained copy.

use crate::artifact::Dataset;
use crate::model::Declared;
use crate::nnops;
use crate::{Args, Op, OpError, Registry, RunCtx, Signature, Type, Value};
use lab_nn::train::Objective;

pub fn register(r: &mut Registry) {
    r.add(Supervised);
    r.add(Distill);
    r.add(Declared(
        Signature::new(
            "finetune",
            "pretrain",
            1,
            Type::Model,
            "next-token training of a language model on a text corpus",
        )
        .req("model", Type::Model, "the language model")
        .req("corpus", Type::Dataset, "training text")
        .opt("steps", Type::Int, Value::Int(800), "optimizer steps")
        .opt("lr", Type::Float, Value::Float(3e-3), "peak learning rate (AdamW, warmup + cosine)")
        .opt("batch", Type::Int, Value::Int(64), "sequences per step")
        .opt("seed", Type::Int, Value::Int(0), "shuffle seed"),
    ));
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
                1,
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
                1,
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
