//! `generate.*`: ops that make data: noise inputs, a model's outputs, sampled text.

use crate::artifact::Dataset;
use crate::{Args, Op, OpError, Registry, RunCtx, Signature, Type, Value};
use ndarray::Array2;
use rand::{Rng, SeedableRng};

pub fn register(r: &mut Registry) {
    r.add(Noise);
    r.add(crate::model::Logits);
    r.add(crate::model::Declared(
        Signature::new("generate", "text", 1, Type::Dataset, "samples completions of `prompts` from a language model")
            .req("model", Type::Model, "the language model")
            .req("prompts", Type::Dataset, "prompts to complete")
            .opt("count", Type::Int, Value::Int(1000), "completions to sample")
            .opt("temperature", Type::Float, Value::Float(1.0), "sampling temperature")
            .opt("seed", Type::Int, Value::Int(0), "sampling seed"),
    ));
}

/// `count` rows of independent uniform noise in [`low`, `high`); `shape` is the width of
/// a row (its product, for several dimensions).
pub struct Noise;

impl Op for Noise {
    fn signature(&self) -> Signature {
        Signature::new("generate", "noise", 1, Type::Dataset, "rows of i.i.d. uniform noise in [low, high)")
            .req("shape", Type::list(Type::Int), "shape of one row, e.g. `[64]`")
            .req("count", Type::Int, "number of rows")
            .opt("low", Type::Float, Value::Float(-1.0), "lower bound")
            .opt("high", Type::Float, Value::Float(1.0), "upper bound")
            .opt("seed", Type::Int, Value::Int(0), "random seed")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let shape = args.ints("shape")?;
        if shape.is_empty() || shape.iter().any(|&d| d < 1) {
            return Err(OpError::invalid("shape", "must be a non-empty list of positive sizes"));
        }
        let width = shape.iter().product::<i64>() as usize;
        let count = args.int_at_least("count", 1)?;
        if width.saturating_mul(count) > 1 << 31 {
            return Err(OpError::invalid("count", "asks for more than 2^31 numbers; use fewer rows"));
        }
        let (low, high) = (args.float("low")? as f32, args.float("high")? as f32);
        if low.partial_cmp(&high) != Some(std::cmp::Ordering::Less) {
            return Err(OpError::invalid("high", format!("must be greater than low ({low})")));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.int("seed")? as u64);
        let x = Array2::from_shape_simple_fn((count, width), || rng.random_range(low..high));
        Dataset { x, y: None, t: None }.write(ctx.out)
    }
}
