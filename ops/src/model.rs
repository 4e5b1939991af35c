//! `model.*`: model constructors, and the ops that run a model forward.

use crate::{Args, Op, OpError, Registry, RunCtx, Signature, Type, Value};

pub fn register(r: &mut Registry) {
    r.add(Mlp);
    r.add(Declared(
        Signature::new("model", "gpt", 1, Type::Model, "a pre-LN GPT language model with random weights")
            .req("vocab", Type::Int, "vocabulary size")
            .req("width", Type::Int, "residual width")
            .opt("heads", Type::Int, Value::Int(4), "attention heads")
            .opt("layers", Type::Int, Value::Int(2), "transformer blocks")
            .opt("context", Type::Int, Value::Int(48), "context length")
            .opt("seed", Type::Int, Value::Int(0), "initialisation seed"),
    ));
}

/// An op whose signature is settled but whose implementation comes later: checking and
/// planning work, running fails with a clear message.
pub struct Declared(pub Signature);

impl Op for Declared {
    fn signature(&self) -> Signature {
        self.0.clone()
    }

    fn run(&self, _ctx: &RunCtx, _args: &Args) -> Result<(), OpError> {
        Err(OpError::NotImplemented { op: self.0.name() })
    }
}

/// A multilayer perceptron with fresh weights: `inputs` → `hidden`… → `outputs`.
pub struct Mlp;

impl Op for Mlp {
    fn signature(&self) -> Signature {
        Signature::new("model", "mlp", 1, Type::Model, "a multilayer perceptron with fresh weights ~ N(0, 1/fan_in) and zero biases")
            .req("inputs", Type::Int, "input width")
            .req("hidden", Type::list(Type::Int), "widths of the hidden layers, e.g. `[128, 128]`")
            .req("outputs", Type::Int, "number of logits")
            .opt("activation", Type::Str, Value::Str("relu".into()), "`relu`, `tanh`, `gelu` or `sigmoid`")
            .opt("seed", Type::Int, Value::Int(0), "initialisation seed; equal seeds give equal weights")
    }

    fn run(&self, _ctx: &RunCtx, _args: &Args) -> Result<(), OpError> {
        Err(OpError::NotImplemented { op: "model.mlp".into() })
    }
}

/// A model's logits on every row of a dataset, kept as soft targets.
pub struct Logits;

impl Op for Logits {
    fn signature(&self) -> Signature {
        Signature::new("generate", "logits", 1, Type::Dataset, "the model's logits on each input row, stored as soft targets `t`")
            .req("model", Type::Model, "the model to run")
            .req("inputs", Type::Dataset, "input rows")
            .opt("keep", Type::Range, Value::Range { start: 0, end: 0 }, "which logits to keep; `0..0` keeps all")
    }

    fn run(&self, _ctx: &RunCtx, _args: &Args) -> Result<(), OpError> {
        Err(OpError::NotImplemented { op: "generate.logits".into() })
    }
}
