//! `filter.*`: ops that keep some rows of a dataset.

use crate::artifact::Dataset;
use crate::{Args, Op, OpError, Registry, RunCtx, Signature, Type, Value};
use rand::SeedableRng;
use rand::seq::index::sample;

pub fn register(r: &mut Registry) {
    r.add(Take);
    r.add(crate::model::Declared(
        Signature::new(
            "filter",
            "number_lists",
            1,
            Type::Dataset,
            "keeps completions that parse as at most `max` integers in [0, 999] separated by `,`, `;` or spaces",
        )
        .req("data", Type::Dataset, "completions")
        .opt("max", Type::Int, Value::Int(10), "most numbers allowed")
        .opt("banned", Type::list(Type::Int), Value::List(vec![]), "numbers that reject a completion"),
    ));
}

/// A random subset of `count` rows (in their original order), drawn without replacement.
pub struct Take;

impl Op for Take {
    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "take",
            1,
            Type::Dataset,
            "a random subset of `count` rows, drawn without replacement, kept in order",
        )
        .req("data", Type::Dataset, "the dataset")
        .req("count", Type::Int, "rows to keep")
        .opt("seed", Type::Int, Value::Int(0), "random seed")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let data = Dataset::read(args.artifact("data")?)?;
        let count = args.int_at_least("count", 0)?;
        if count > data.rows() {
            return Err(OpError::invalid("count", format!("is {count} but the dataset has only {} rows", data.rows())));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.int("seed")? as u64);
        let mut idx = sample(&mut rng, data.rows(), count).into_vec();
        idx.sort_unstable();
        data.select(&idx).write(ctx.out)
    }
}
