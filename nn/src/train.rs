//! The training loop. A training step — forward, loss, backward, optimizer update — is one
//! graph and one session run; weights and optimizer state stay ORT values between steps.

use crate::NnError;
use crate::autodiff::grad;
use crate::exec::to_ort;
use crate::graph::{Graph, V};
use crate::mlp::Mlp;
use crate::optim::{self, OptimConfig, Schedule};
use crate::runtime::{SessionOptions, session};
use crate::tensor::{DType, Tensor};
use ort::session::SessionInputValue;
use ort::value::DynValue;
use rand::SeedableRng;
use rand::seq::SliceRandom;
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

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub optim: OptimConfig,
    pub schedule: Schedule,
    pub session: SessionOptions,
    /// Evaluate the validation loss every this many steps (when validation data is given).
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement, keeping the best weights.
    pub patience: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch: 64,
            lr: 3e-4,
            seed: 0,
            optim: OptimConfig::default(),
            schedule: Schedule::Constant,
            session: SessionOptions::default(),
            eval_every: 100,
            patience: None,
        }
    }
}

/// Reported after every step.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    pub step: usize,
    pub total: usize,
    pub epoch: usize,
    pub loss: f32,
}

/// What training did.
#[derive(Debug, Clone, Default)]
pub struct TrainReport {
    pub steps: usize,
    /// Mean training loss of each epoch.
    pub epoch_loss: Vec<f32>,
    /// (step, validation loss) at each evaluation.
    pub val_loss: Vec<(usize, f32)>,
    pub stopped_early: bool,
}

/// Where each session input comes from.
enum Source {
    X,
    Target,
    Param(usize),
    State(usize, usize),
    Lr,
    T,
}

/// The loss graph shared by training and evaluation: inputs `x`, `target`, parameters.
fn loss_graph(model: &Mlp, objective: &Objective, k: usize) -> (Graph, Vec<V>, V) {
    let mut g = Graph::new(DType::F32);
    let x = g.input("x", DType::F32, &[-1, model.spec.inputs as i64]);
    let params: Vec<V> = model
        .params
        .iter()
        .map(|(n, t)| g.input(n, DType::F32, &t.shape.iter().map(|&d| d as i64).collect::<Vec<_>>()))
        .collect();
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
    (g, params, loss)
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
    let target_matrix = dense_targets(&data.targets, rows, k, &range)?;
    let val_matrix = match val {
        Some(v) => Some(dense_targets(&v.targets, v.rows(), k, &range)?),
        None => None,
    };

    let (mut g, params, loss) = loss_graph(model, objective, k);
    let grads = grad(&mut g, loss, &params)?;
    let step = optim::step(&mut g, &params, &grads, &cfg.optim);
    g.output(loss, "loss");
    for (i, &u) in step.updated.iter().enumerate() {
        g.output(u, &format!("new.{}", model.params[i].0));
        for (j, &s) in step.state_out[i].iter().enumerate() {
            g.output(s, &format!("state{j}.{}", model.params[i].0));
        }
    }
    let mut sess = session(&g.to_onnx_bytes("labrun training step"), cfg.session)?;

    let mut sources = Vec::new();
    for input in sess.inputs() {
        let name = input.name();
        let src = if name == "x" {
            Source::X
        } else if name == "target" {
            Source::Target
        } else if name == "lr" {
            Source::Lr
        } else if name == "t" {
            Source::T
        } else if let Some(i) = model.params.iter().position(|(n, _)| n == name) {
            Source::Param(i)
        } else if let Some((j, p)) =
            name.strip_prefix("m.").map(|p| (0, p)).or_else(|| name.strip_prefix("v.").map(|p| (1, p)))
        {
            Source::State(model.params.iter().position(|(n, _)| n == p).expect("state of a known parameter"), j)
        } else {
            return Err(NnError::Graph(format!("unexpected training input `{name}`")));
        };
        sources.push(src);
    }
    let mut param_vals: Vec<DynValue> = model.params.iter().map(|(_, t)| to_ort(t)).collect::<Result<_, _>>()?;
    let mut state_vals: Vec<Vec<DynValue>> = model
        .params
        .iter()
        .zip(&step.state_in)
        .map(|((_, t), s)| {
            s.iter().map(|_| to_ort(&Tensor::zeros(DType::F32, t.shape.clone()))).collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;

    let mut eval = match (val, &val_matrix) {
        (Some(v), Some(m)) => Some(Evaluator::new(model, objective, k, v, m, cfg.session)?),
        _ => None,
    };
    let mut best: Option<(f32, Vec<DynValue>)> = None;
    let mut since_best = 0;

    // A batch larger than the data is the whole data (and reserves no more than that).
    let batch = cfg.batch.max(1).min(rows);
    let per_epoch = rows.div_ceil(batch);
    let total = per_epoch * cfg.epochs;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..rows).collect();
    let mut report = TrainReport::default();
    let (w, mut xb, mut tb) = (data.width, Vec::with_capacity(batch * data.width), Vec::with_capacity(batch * k));
    let mut s = 0;
    'epochs: for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut seen) = (0.0f64, 0usize);
        for chunk in order.chunks(batch) {
            xb.clear();
            tb.clear();
            for &r in chunk {
                xb.extend_from_slice(&data.x[r * w..(r + 1) * w]);
                tb.extend_from_slice(&target_matrix[r * k..(r + 1) * k]);
            }
            let n = chunk.len() as i64;
            // The tensors take the buffers; fresh ones are filled for the next step.
            let xv = ort::value::Tensor::from_array((
                vec![n, w as i64],
                std::mem::replace(&mut xb, Vec::with_capacity(batch * w)),
            ))?
            .into_dyn();
            let tv = ort::value::Tensor::from_array((
                vec![n, k as i64],
                std::mem::replace(&mut tb, Vec::with_capacity(batch * k)),
            ))?
            .into_dyn();
            let lr = cfg.schedule.lr(cfg.lr, s, total) as f32;
            let lrv = ort::value::Tensor::from_array((Vec::<i64>::new(), vec![lr]))?.into_dyn();
            let tt = ort::value::Tensor::from_array((Vec::<i64>::new(), vec![(s + 1) as f32]))?.into_dyn();
            let inputs: Vec<SessionInputValue> = sources
                .iter()
                .map(|src| match src {
                    Source::X => (&xv).into(),
                    Source::Target => (&tv).into(),
                    Source::Lr => (&lrv).into(),
                    Source::T => (&tt).into(),
                    Source::Param(i) => (&param_vals[*i]).into(),
                    Source::State(i, j) => (&state_vals[*i][*j]).into(),
                })
                .collect();
            let mut out = sess.run(&inputs[..])?;
            let loss_v: f32 = out["loss"].try_extract_tensor::<f32>()?.1[0];
            if !loss_v.is_finite() {
                return Err(NnError::NonFinite { step: s + 1, value: loss_v });
            }
            for (i, (name, _)) in model.params.iter().enumerate() {
                param_vals[i] = out.remove(format!("new.{name}")).expect("updated parameter");
                for j in 0..state_vals[i].len() {
                    state_vals[i][j] = out.remove(format!("state{j}.{name}")).expect("optimizer state");
                }
            }
            drop(out);
            sum += loss_v as f64 * chunk.len() as f64;
            seen += chunk.len();
            s += 1;
            if !on_step(StepInfo { step: s, total, epoch, loss: loss_v }) {
                return Err(NnError::Graph("training was cancelled".into()));
            }
            if let Some(ev) = eval.as_mut()
                && (s % cfg.eval_every.max(1) == 0 || s == total)
            {
                let vl = ev.loss(&param_vals)?;
                report.val_loss.push((s, vl));
                if best.as_ref().is_none_or(|(b, _)| vl < *b) {
                    best = Some((vl, param_vals.iter().map(clone_value).collect::<Result<_, _>>()?));
                    since_best = 0;
                } else {
                    since_best += 1;
                    if cfg.patience.is_some_and(|p| since_best >= p) {
                        report.stopped_early = true;
                        report.epoch_loss.push((sum / seen as f64) as f32);
                        break 'epochs;
                    }
                }
            }
        }
        report.epoch_loss.push((sum / seen as f64) as f32);
    }
    report.steps = s;
    if cfg.patience.is_some()
        && let Some((_, vals)) = best
    {
        param_vals = vals;
    }
    for (i, v) in param_vals.iter().enumerate() {
        let (_, data) = v.try_extract_tensor::<f32>()?;
        model.params[i].1 = Tensor::f32(model.params[i].1.shape.clone(), data.to_vec());
    }
    Ok(report)
}

fn clone_value(v: &DynValue) -> Result<DynValue, NnError> {
    let (shape, data) = v.try_extract_tensor::<f32>()?;
    Ok(ort::value::Tensor::from_array((shape.to_vec(), data.to_vec()))?.into_dyn())
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

/// Validation loss with the current weights.
struct Evaluator {
    sess: ort::session::Session,
    x: DynValue,
    t: DynValue,
    param_names: Vec<String>,
}

impl Evaluator {
    fn new(
        model: &Mlp,
        objective: &Objective,
        k: usize,
        v: &Data,
        m: &[f32],
        opts: SessionOptions,
    ) -> Result<Self, NnError> {
        let (mut g, _, loss) = loss_graph(model, objective, k);
        g.output(loss, "loss");
        let sess = session(&g.to_onnx_bytes("labrun validation loss"), opts)?;
        let n = v.rows() as i64;
        Ok(Evaluator {
            sess,
            x: ort::value::Tensor::from_array((vec![n, v.width as i64], v.x.to_vec()))?.into_dyn(),
            t: ort::value::Tensor::from_array((vec![n, k as i64], m.to_vec()))?.into_dyn(),
            param_names: model.params.iter().map(|(n, _)| n.clone()).collect(),
        })
    }

    fn loss(&mut self, params: &[DynValue]) -> Result<f32, NnError> {
        let inputs: Vec<SessionInputValue> = self
            .sess
            .inputs()
            .iter()
            .map(|i| match i.name() {
                "x" => (&self.x).into(),
                "target" => (&self.t).into(),
                name => (&params[self.param_names.iter().position(|p| p == name).expect("parameter input")]).into(),
            })
            .collect();
        let out = self.sess.run(&inputs[..])?;
        Ok(out["loss"].try_extract_tensor::<f32>()?.1[0])
    }
}

/// Logits of an MLP on many rows, computed in chunks with the inference graph.
pub fn predict(model: &Mlp, x: &[f32], opts: SessionOptions) -> Result<Vec<f32>, NnError> {
    let mut sess = session(&model.inference_graph().to_onnx_bytes(""), opts)?;
    Ok(crate::exec::predict_rows(&mut sess, "x", "logits", model.spec.inputs, x)?.0)
}
