//! MLP objectives — cross-entropy on labels and distillation to soft targets, each on a
//! range of logits — their batches, and [`train`] and [`predict`] for MLPs. The loop itself
//! is [`crate::train::fit`].

use crate::NnError;
use crate::graph::{Graph, V};
use crate::mlp::Mlp;
use crate::runtime::{SessionOptions, session};
use crate::tensor::DType;
use crate::train::{Batches, StepInfo, TrainConfig, TrainReport, fit};
use ort::value::DynValue;
use std::ops::Range;

/// What the model is trained to do, on which of its logits.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// Cross-entropy against integer labels, over the logits in the range.
    CrossEntropy { logits: Range<usize> },
    /// KL(softmax(teacher) ‖ softmax(student)) between soft targets and the logits in the
    /// range.
    Distill { logits: Range<usize> },
}

impl Objective {
    fn logits(&self) -> &Range<usize> {
        match self {
            Objective::CrossEntropy { logits } | Objective::Distill { logits } => logits,
        }
    }
}

/// Training data: inputs, row-major `[rows, width]`, and targets.
pub struct Data<'a> {
    pub x: &'a [f32],
    pub width: usize,
    pub targets: Targets<'a>,
}

pub enum Targets<'a> {
    Labels(&'a [i64]),
    /// Row-major `[rows, k]`.
    Soft(&'a [f32], usize),
}

impl Data<'_> {
    pub fn rows(&self) -> usize {
        self.x.len() / self.width.max(1)
    }
}

/// The loss graph shared by training and evaluation: inputs `x`, `target`, parameters
/// (named after them).
pub fn loss_graph(model: &Mlp, objective: &Objective, k: usize) -> (Graph, V) {
    let mut g = Graph::new(DType::F32);
    let x = g.input("x", DType::F32, &[-1, model.spec.inputs as i64]);
    let params = model.spec.param_inputs(&mut g);
    let target = g.input("target", DType::F32, &[-1, k as i64]);
    let logits = model.spec.forward(&mut g, x, &params);
    let r = objective.logits();
    let sl = if r.start == 0 && r.end == model.spec.outputs {
        logits
    } else {
        g.slice(logits, 1, r.start as i64, r.end as i64)
    };
    let lps = g.log_softmax(sl, -1);
    let loss = match objective {
        Objective::CrossEntropy { .. } => {
            let picked = g.mul(target, lps);
            let per_row = g.reduce_sum(picked, &[1], false);
            let mean = g.reduce_mean(per_row, &[0], false);
            g.neg(mean)
        }
        Objective::Distill { .. } => {
            let pt = g.softmax(target, -1);
            let lpt = g.log_softmax(target, -1);
            let diff = g.sub(lpt, lps);
            let w = g.mul(pt, diff);
            let per_row = g.reduce_sum(w, &[1], false);
            g.reduce_mean(per_row, &[0], false)
        }
    };
    (g, loss)
}

/// Rows of an MLP's inputs with dense targets, fed as `x` and `target`.
struct MlpRows<'a> {
    x: &'a [f32],
    width: usize,
    targets: Vec<f32>,
    k: usize,
}

impl Batches for MlpRows<'_> {
    fn rows(&self) -> usize {
        self.x.len() / self.width.max(1)
    }

    fn feed(&self, rows: &[usize]) -> Result<Vec<(&'static str, DynValue)>, NnError> {
        let (w, k, n) = (self.width, self.k, rows.len() as i64);
        let mut xb = Vec::with_capacity(rows.len() * w);
        let mut tb = Vec::with_capacity(rows.len() * k);
        for &r in rows {
            xb.extend_from_slice(&self.x[r * w..(r + 1) * w]);
            tb.extend_from_slice(&self.targets[r * k..(r + 1) * k]);
        }
        Ok(vec![
            ("x", ort::value::Tensor::from_array((vec![n, w as i64], xb))?.into_dyn()),
            ("target", ort::value::Tensor::from_array((vec![n, k as i64], tb))?.into_dyn()),
        ])
    }
}

/// Trains `model` in place. `on_step` sees every step and returns `false` to stop
/// (cancellation); stopping early that way is an error of its own, never a silent success.
pub fn train(
    model: &mut Mlp,
    data: &Data,
    val: Option<&Data>,
    objective: &Objective,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(StepInfo) -> bool,
) -> Result<TrainReport, NnError> {
    let range = objective.logits().clone();
    if range.is_empty() || range.end > model.spec.outputs {
        return Err(NnError::Graph(format!(
            "logits {}..{} are not within the model's {} outputs",
            range.start, range.end, model.spec.outputs
        )));
    }
    let k = range.len();
    if data.width != model.spec.inputs {
        return Err(NnError::BadModel(format!(
            "the data has {} columns but the model takes {} inputs",
            data.width, model.spec.inputs
        )));
    }
    let rows = data.rows();
    if rows == 0 {
        return Err(NnError::Graph("the training data has no rows".into()));
    }
    // Targets as a dense [rows, k] matrix: one-hot labels or soft targets.
    let train_rows =
        MlpRows { x: data.x, width: data.width, targets: dense_targets(&data.targets, rows, k, &range)?, k };
    let val_rows = match val {
        Some(v) => {
            Some(MlpRows { x: v.x, width: v.width, targets: dense_targets(&v.targets, v.rows(), k, &range)?, k })
        }
        None => None,
    };
    let (g, loss) = loss_graph(model, objective, k);
    let trainable = vec![true; model.params.len()];
    fit(g, loss, &mut model.params, &trainable, &train_rows, val_rows.as_ref().map(|v| v as &dyn Batches), cfg, on_step)
}

fn dense_targets(t: &Targets, rows: usize, k: usize, range: &Range<usize>) -> Result<Vec<f32>, NnError> {
    match t {
        Targets::Labels(y) => {
            if y.len() != rows {
                return Err(NnError::BadModel(format!("{} labels for {rows} rows", y.len())));
            }
            let mut m = vec![0.0f32; rows * k];
            for (r, &label) in y.iter().enumerate() {
                let l = label as usize;
                if label < range.start as i64 || l >= range.end {
                    return Err(NnError::BadModel(format!(
                        "label {label} of row {r} is outside the trained logits {}..{}",
                        range.start, range.end
                    )));
                }
                m[r * k + (l - range.start)] = 1.0;
            }
            Ok(m)
        }
        Targets::Soft(v, width) => {
            if *width != k {
                return Err(NnError::BadModel(format!(
                    "the soft targets have {width} columns but the logits {}..{} are {k}",
                    range.start, range.end
                )));
            }
            if v.len() != rows * k {
                return Err(NnError::BadModel(format!("{} soft-target values for {rows} rows of {k}", v.len())));
            }
            Ok(v.to_vec())
        }
    }
}

/// Logits of an MLP on many rows, computed in chunks with the inference graph.
pub fn predict(model: &Mlp, x: &[f32], opts: SessionOptions) -> Result<Vec<f32>, NnError> {
    let mut sess = session(&model.inference_graph().to_onnx_bytes(""), opts)?;
    Ok(crate::exec::predict_rows(&mut sess, "x", "logits", model.spec.inputs, x)?.0)
}
