//! Decision trees over bits as models (`model.tree`, `fit.tree`), the inputs they read
//! (`generate.bits`), and labels from any model (`generate.labels`).

use crate::artifact::Dataset;
use crate::nnops;
use crate::params::{DatasetDir, ModelDir, Params};
use crate::{Check, Op, OpError, RunCtx, Signature, Type, Yield};
use lab_nn::tree::Tree;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use std::path::Path;

/// A random decision tree over uniform bits.
pub struct RandomTree;

#[derive(Params)]
#[params(rules = tree_rules)]
pub struct RandomTreeParams {
    /// input bits
    #[param(min = 1, max = 4096)]
    bits: usize,
    /// number of leaves (at most 2^bits)
    #[param(min = 1, max = 65_536)]
    leaves: usize,
    /// seed of the tree's shape, tests and labels
    #[param(default = 0)]
    seed: i64,
}

fn tree_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["bits", "leaves"],
        doc: "`leaves` ≤ 2^`bits`",
        test: |v| {
            let (bits, leaves) = (v[0].as_i64()?, v[1].as_i64()?);
            (bits < 63 && leaves > 1i64 << bits.max(0)).then(|| {
                format!("`leaves` {leaves} is more than a tree over {bits} bits has: at most {}", 1i64 << bits)
            })
        },
    }]
}

impl Op for RandomTree {
    type Params = RandomTreeParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "tree",
            1,
            Type::Model,
            "a random decision tree over `bits` uniform bits with `leaves` leaves (a uniformly drawn leaf split on an untested feature, repeatedly), labels fair coins with sibling leaves differing; outputs `[1 − p, p]`, run by ONNX Runtime's `ai.onnx.ml` tree operator",
        )
        .yields(Yield::Arg("inputs", "bits"))
        .yields(Yield::Const("outputs", 2))
    }

    fn run(&self, ctx: &RunCtx, p: RandomTreeParams) -> Result<(), OpError> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed as u64);
        Tree::random(p.bits, p.leaves, &mut rng).save(ctx.out)?;
        Ok(())
    }
}

/// A decision tree learned from labelled bits (CART).
pub struct FitTree;

#[derive(Params)]
pub struct FitTreeParams {
    /// rows of bits (0 or 1) with labels `y` in {0, 1}
    data: DatasetDir,
    /// the most leaves the tree grows
    #[param(default = 1024, min = 1, max = 1_000_000)]
    max_leaves: usize,
}

impl Op for FitTree {
    type Params = FitTreeParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "fit",
            "tree",
            1,
            Type::Model,
            "a decision tree learned by CART: always splits the leaf whose best split removes the most Gini impurity, until every leaf is pure or `max_leaves`; a leaf's p is its share of rows labelled 1",
        )
        .yields(Yield::From("inputs", "data", "width"))
        .yields(Yield::Const("outputs", 2))
    }

    fn run(&self, ctx: &RunCtx, p: FitTreeParams) -> Result<(), OpError> {
        let d = Dataset::read(&p.data)?;
        let (x, bits) = bit_rows(&d, "data")?;
        let y = d.y.as_ref().ok_or_else(|| {
            OpError::invalid("data", "has no labels `y`; label rows with `generate.labels(model, inputs)`")
        })?;
        let y: Vec<u8> = y
            .iter()
            .enumerate()
            .map(|(i, &v)| match v {
                0 | 1 => Ok(v as u8),
                _ => Err(OpError::invalid("data", format!("row {} has label {v}; trees learn labels 0 and 1", i + 1))),
            })
            .collect::<Result<_, _>>()?;
        Tree::fit(&x, bits, &y, p.max_leaves).save(ctx.out)?;
        Ok(())
    }
}

/// The rows of `d` as bits, checked: every value 0 or 1.
pub fn bit_rows(d: &Dataset, arg: &str) -> Result<(Vec<f32>, usize), OpError> {
    let x = d.x.as_standard_layout().to_owned();
    let bits = x.ncols();
    let v = x.into_raw_vec_and_offset().0;
    if let Some(i) = v.iter().position(|&b| b != 0.0 && b != 1.0) {
        return Err(OpError::invalid(
            arg,
            format!(
                "row {} column {} is {}; decision trees read bits (0 or 1), e.g. from `generate.bits`",
                i / bits.max(1) + 1,
                i % bits.max(1) + 1,
                v[i]
            ),
        ));
    }
    Ok((v, bits))
}

/// Reads a tree model, with a clear error for other architectures.
pub fn load_tree(dir: &Path, arg: &str) -> Result<Tree, OpError> {
    match nnops::model_arch(dir)?.as_str() {
        "tree" => Ok(Tree::load(dir)?),
        other => Err(OpError::invalid(
            arg,
            format!("is a `{other}` model; this op needs a decision tree (`model.tree` or `fit.tree`)"),
        )),
    }
}

/// `count` rows of uniform random bits.
pub fn random_bits(bits: usize, count: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..bits * count).map(|_| rng.random_bool(0.5) as u8 as f32).collect()
}

/// Rows of uniform random bits.
pub struct Bits;

#[derive(Params)]
#[params(rules = bits_rules)]
pub struct BitsParams {
    /// bits per row
    #[param(min = 1)]
    bits: usize,
    /// number of rows
    #[param(min = 1)]
    count: usize,
    /// random seed
    #[param(default = 0)]
    seed: i64,
}

fn bits_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["bits", "count"],
        doc: "`count` rows of `bits` hold at most 2^31 numbers",
        test: |v| {
            let n = (v[0].as_i64()? as u128).saturating_mul(v[1].as_i64()? as u128);
            (n > 1 << 31).then(|| "`count` × `bits` is more than 2^31 numbers; use fewer rows".to_string())
        },
    }]
}

impl Op for Bits {
    type Params = BitsParams;

    fn signature(&self) -> Signature {
        Signature::new("generate", "bits", 1, Type::Dataset, "rows of independent fair bits (0.0 or 1.0)")
            .yields(Yield::Arg("width", "bits"))
    }

    fn run(&self, ctx: &RunCtx, p: BitsParams) -> Result<(), OpError> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed as u64);
        let x = random_bits(p.bits, p.count, &mut rng);
        let x = Array2::from_shape_vec((p.count, p.bits), x).map_err(|e| OpError::internal(e.to_string()))?;
        Dataset { x, y: None, t: None }.write(ctx.out)
    }
}

/// A model's predicted class on each row, kept as labels.
pub struct Labels;

#[derive(Params)]
#[params(agree(inputs = "width", model = "inputs"))]
pub struct LabelsParams {
    /// the model that labels
    model: ModelDir,
    /// input rows
    inputs: DatasetDir,
}

impl Op for Labels {
    type Params = LabelsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "labels",
            1,
            Type::Dataset,
            "the inputs labelled with the model's predicted class (the argmax of its outputs, ties to the lowest) as `y`",
        )
        .yields(Yield::From("width", "inputs", "width"))
    }

    fn run(&self, ctx: &RunCtx, p: LabelsParams) -> Result<(), OpError> {
        let mut model = nnops::Inference::load(ctx, &p.model)?;
        let d = Dataset::read(&p.inputs)?;
        let (logits, k) = model.predict(&d, "inputs")?;
        let y =
            Array1::from_vec(logits.chunks(k.max(1)).map(|r| lab_nn::decode::argmax(r) as i64).collect::<Vec<i64>>());
        Dataset { x: d.x, y: Some(y), t: d.t }.write(ctx.out)
    }
}
