//! Bradley–Terry reward modelling: the loss −log σ(r(better) − r(worse)) that language-model
//! reward models ([`crate::lm`]) and MLP reward models over feature vectors share, and the
//! training of the latter on pairs of feature rows.

use crate::NnError;
use crate::graph::{Graph, V};
use crate::mlp::Mlp;
use crate::tensor::DType;
use crate::train::{self, Batches, StepInfo, TrainConfig, TrainReport};
use ort::value::DynValue;

/// Σ weights · softplus(−diff): the Bradley–Terry loss of reward differences `diff` (one
/// per pair, better minus worse) weighted by `weights` (of the same shape). Written as
/// relu(−d) + log(1 + exp(−|d|)), which is finite for any d.
pub fn bradley_terry(g: &mut Graph, diff: V, weights: V) -> V {
    let nd = g.neg(diff);
    let pos = g.relu(nd);
    let neg = g.relu(diff);
    let abs = g.add(pos, neg);
    let na = g.neg(abs);
    let e = g.exp(na);
    let one = g.scalar(1.0);
    let l1 = g.add(one, e);
    let lg = g.log(l1);
    let sp = g.add(pos, lg);
    let w = g.mul(sp, weights);
    g.reduce_sum(w, &[0], false)
}

/// The Bradley–Terry loss graph of an MLP with one output: inputs `better` and `worse`
/// `[B, inputs]`, pair `weights` `[B]`, and every parameter by name.
pub fn mlp_loss_graph(model: &Mlp) -> Result<(Graph, V), NnError> {
    if model.spec.outputs != 1 {
        return Err(NnError::BadModel(format!(
            "a reward model has one output (`outputs: 1`); this MLP has {}",
            model.spec.outputs
        )));
    }
    let mut g = Graph::new(DType::F32);
    let f = model.spec.inputs as i64;
    let params: Vec<V> = model
        .params
        .iter()
        .map(|(n, t)| g.input(n, DType::F32, &t.shape.iter().map(|&d| d as i64).collect::<Vec<_>>()))
        .collect();
    let better = g.input("better", DType::F32, &[-1, f]);
    let worse = g.input("worse", DType::F32, &[-1, f]);
    let weights = g.input("weights", DType::F32, &[-1]);
    let rb = model.spec.forward(&mut g, better, &params);
    let rw = model.spec.forward(&mut g, worse, &params);
    let diff = g.sub(rb, rw);
    let diff = g.reshape_keep(diff, 1, &[]);
    let loss = bradley_terry(&mut g, diff, weights);
    Ok((g, loss))
}

/// Pairs of feature rows, row-major `[pairs, width]` each: `better[i]` is preferred to
/// `worse[i]`. A batch's loss is the mean over its pairs.
pub struct Pairs<'a> {
    pub better: &'a [f32],
    pub worse: &'a [f32],
    pub width: usize,
}

impl Batches for Pairs<'_> {
    fn rows(&self) -> usize {
        self.better.len() / self.width.max(1)
    }

    fn feed(&self, rows: &[usize]) -> Result<Vec<(&'static str, DynValue)>, NnError> {
        let w = self.width;
        let gather = |m: &[f32]| rows.iter().flat_map(|&r| m[r * w..(r + 1) * w].iter().copied()).collect::<Vec<_>>();
        let n = rows.len() as i64;
        Ok(vec![
            ("better", ort::value::Tensor::from_array((vec![n, w as i64], gather(self.better)))?.into_dyn()),
            ("worse", ort::value::Tensor::from_array((vec![n, w as i64], gather(self.worse)))?.into_dyn()),
            ("weights", ort::value::Tensor::from_array((vec![n], vec![1.0 / n as f32; rows.len()]))?.into_dyn()),
        ])
    }
}

/// Trains every parameter of an MLP reward model in place on `pairs`, validating on `val`
/// (early stopping as `cfg` says).
pub fn train_mlp(
    model: &mut Mlp,
    pairs: &Pairs,
    val: Option<&Pairs>,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(StepInfo) -> bool,
) -> Result<TrainReport, NnError> {
    for p in std::iter::once(pairs).chain(val) {
        if p.width != model.spec.inputs || p.better.len() != p.worse.len() {
            return Err(NnError::BadModel(format!(
                "comparison rows of width {} do not fit a reward model over {} features",
                p.width, model.spec.inputs
            )));
        }
    }
    let (g, loss) = mlp_loss_graph(model)?;
    let mask = vec![true; model.params.len()];
    train::fit(g, loss, &mut model.params, &mask, pairs, val.map(|v| v as &dyn Batches), cfg, on_step)
}
