//! The training loop every model shares ([`fit`]): any loss graph, frozen parameters,
//! epochs or a step budget, validation, early stopping, NaN detection. A training step —
//! forward, loss, backward, optimizer update — is one graph and one session run; weights and
//! optimizer state stay ORT values between steps. The objectives live with their models:
//! [`crate::mlp_train`] for MLPs, [`crate::lm`] for language models, [`crate::reward`].

use crate::NnError;
use crate::autodiff::grad;
use crate::exec::to_ort;
use crate::graph::{Graph, V};
use crate::optim::{self, OptimConfig, Schedule};
use crate::runtime::{SessionOptions, session};
use crate::tensor::{DType, Tensor};
use ort::session::SessionInputValue;
use ort::value::DynValue;
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// Training rows that a loss graph reads, fed a batch at a time.
pub trait Batches {
    fn rows(&self) -> usize;
    /// The session inputs (by input name) of the rows `rows`.
    fn feed(&self, rows: &[usize]) -> Result<Vec<(&'static str, DynValue)>, NnError>;
    /// What a batch's mean loss is a mean over (rows, or predicted tokens), to average
    /// validation batches fairly.
    fn weight(&self, rows: &[usize]) -> f64 {
        rows.len() as f64
    }
}

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Train for exactly this many steps (reshuffling at each pass) instead of `epochs`.
    pub steps: Option<usize>,
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
            steps: None,
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
    /// The training loss of every step.
    pub losses: Vec<f32>,
    /// Mean training loss of each epoch.
    pub epoch_loss: Vec<f32>,
    /// (step, validation loss) at each evaluation.
    pub val_loss: Vec<(usize, f32)>,
    pub stopped_early: bool,
}

/// A training step as one ONNX Runtime session: forward, loss, backward and optimizer
/// update, with the weights and the optimizer state kept as ORT values between steps.
/// [`fit`] drives it over a dataset; on-policy methods drive it with fresh data each step.
pub struct Stepper {
    sess: ort::session::Session,
    input_names: Vec<String>,
    names: Vec<String>,
    train_idx: Vec<usize>,
    param_vals: Vec<DynValue>,
    state: std::collections::HashMap<String, DynValue>,
    state_names: &'static [&'static str],
    steps: usize,
}

impl Stepper {
    /// `graph` computes the scalar `loss` from inputs named after every parameter and the
    /// inputs each step feeds. Only parameters marked `trainable` get gradients and
    /// updates; the others are fed unchanged (frozen).
    pub fn new(
        mut graph: Graph,
        loss: V,
        params: &[(String, Tensor)],
        trainable: &[bool],
        optim_cfg: &OptimConfig,
        opts: SessionOptions,
    ) -> Result<Stepper, NnError> {
        let input_of = |g: &Graph, name: &str| g.inputs.iter().copied().find(|&v| g.info(v).name == name);
        let pv: Vec<V> = params
            .iter()
            .map(|(n, _)| {
                input_of(&graph, n).ok_or_else(|| NnError::Graph(format!("the loss graph has no input `{n}`")))
            })
            .collect::<Result<_, _>>()?;
        let train_idx: Vec<usize> = (0..params.len()).filter(|&i| trainable[i]).collect();
        if train_idx.is_empty() {
            return Err(NnError::Graph("nothing to train: every parameter is frozen".into()));
        }
        let wrt: Vec<V> = train_idx.iter().map(|&i| pv[i]).collect();
        let grads = grad(&mut graph, loss, &wrt)?;
        let step = optim::step(&mut graph, &wrt, &grads, optim_cfg);
        graph.output(loss, "loss");
        for (j, &i) in train_idx.iter().enumerate() {
            graph.output(step.updated[j], &format!("new.{}", params[i].0));
        }
        let state_names = optim::state_names(optim_cfg.optimizer);
        for (k, &s) in step.state_out.iter().enumerate() {
            graph.output(s, &format!("new.{}", state_names[k]));
        }
        let sess = session(&graph.to_onnx_bytes("labrun training step"), opts)?;
        let input_names: Vec<String> = sess.inputs().iter().map(|i| i.name().to_string()).collect();
        let param_vals: Vec<DynValue> = params.iter().map(|(_, t)| to_ort(t)).collect::<Result<_, _>>()?;
        // Optimizer state: one flat vector per moment over the trainable parameters.
        let n_train: usize = train_idx.iter().map(|&i| params[i].1.len()).sum();
        let mut state = std::collections::HashMap::new();
        for name in state_names {
            state.insert(name.to_string(), to_ort(&Tensor::zeros(DType::F32, vec![n_train]))?);
        }
        let names = params.iter().map(|(n, _)| n.clone()).collect();
        Ok(Stepper { sess, input_names, names, train_idx, param_vals, state, state_names, steps: 0 })
    }

    /// One step on `feeds` (by input name) at learning rate `lr`; returns the loss before
    /// the update. A loss that is not finite is an error, and the weights are not updated.
    pub fn step(&mut self, feeds: &[(&str, DynValue)], lr: f32) -> Result<f32, NnError> {
        let lrv = ort::value::Tensor::from_array((Vec::<i64>::new(), vec![lr]))?.into_dyn();
        let tt = ort::value::Tensor::from_array((Vec::<i64>::new(), vec![(self.steps + 1) as f32]))?.into_dyn();
        let inputs: Vec<SessionInputValue> = self
            .input_names
            .iter()
            .map(|name| -> Result<SessionInputValue, NnError> {
                Ok(match name.as_str() {
                    "lr" => (&lrv).into(),
                    "t" => (&tt).into(),
                    n => {
                        if let Some((_, v)) = feeds.iter().find(|(f, _)| *f == n) {
                            v.into()
                        } else if let Some(i) = self.names.iter().position(|p| p == n) {
                            (&self.param_vals[i]).into()
                        } else if let Some(v) = self.state.get(n) {
                            v.into()
                        } else {
                            return Err(NnError::Graph(format!("nothing feeds the training input `{n}`")));
                        }
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        let mut out = self.sess.run(&inputs[..])?;
        drop(inputs);
        let loss_v: f32 = out["loss"].try_extract_tensor::<f32>()?.1[0];
        if !loss_v.is_finite() {
            return Err(NnError::NonFinite { step: self.steps + 1, value: loss_v });
        }
        for &i in &self.train_idx {
            self.param_vals[i] = out.remove(format!("new.{}", self.names[i])).expect("updated parameter");
        }
        for name in self.state_names {
            self.state.insert(name.to_string(), out.remove(format!("new.{name}")).expect("optimizer state"));
        }
        self.steps += 1;
        Ok(loss_v)
    }

    /// The current weights, as ORT values in the parameters' order (to feed an inference
    /// session without copying them out).
    pub fn values(&self) -> &[DynValue] {
        &self.param_vals
    }

    /// Replaces the current weights (e.g. with the best ones kept by early stopping).
    fn set_values(&mut self, vals: Vec<DynValue>) {
        self.param_vals = vals;
    }

    /// Copies the trained weights back into `params`.
    pub fn write_back(&self, params: &mut [(String, Tensor)]) -> Result<(), NnError> {
        for &i in &self.train_idx {
            let (_, data) = self.param_vals[i].try_extract_tensor::<f32>()?;
            params[i].1 = Tensor::f32(params[i].1.shape.clone(), data.to_vec());
        }
        Ok(())
    }
}

/// Trains `params` in place: `graph` computes the scalar `loss` from inputs named after
/// every parameter and the inputs that `data` feeds. Only parameters marked `trainable`
/// get gradients and updates; the others are fed unchanged (frozen), and come back
/// bit-identical. One step is one session run ([`Stepper`]).
#[allow(clippy::too_many_arguments)]
pub fn fit(
    graph: Graph,
    loss: V,
    params: &mut [(String, Tensor)],
    trainable: &[bool],
    data: &dyn Batches,
    val: Option<&dyn Batches>,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(StepInfo) -> bool,
) -> Result<TrainReport, NnError> {
    let rows = data.rows();
    if rows == 0 {
        return Err(NnError::Graph("the training data has no rows".into()));
    }
    let mut eval_graph = graph.clone();
    eval_graph.output(loss, "loss");
    let mut stepper = Stepper::new(graph, loss, params, trainable, &cfg.optim, cfg.session)?;
    let mut eval = match val {
        Some(v) => Some((session(&eval_graph.to_onnx_bytes("labrun validation loss"), cfg.session)?, v)),
        None => None,
    };
    let mut best: Option<(f32, Vec<DynValue>)> = None;
    let mut since_best = 0;

    // A batch larger than the data is the whole data (and reserves no more than that).
    let batch = cfg.batch.max(1).min(rows);
    let per_epoch = rows.div_ceil(batch);
    let (total, epochs) = match cfg.steps {
        Some(n) => (n, n.div_ceil(per_epoch)),
        None => (per_epoch * cfg.epochs, cfg.epochs),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..rows).collect();
    let mut report = TrainReport::default();
    let mut s = 0;
    'epochs: for epoch in 0..epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut seen) = (0.0f64, 0usize);
        for chunk in order.chunks(batch) {
            if s == total {
                break;
            }
            let feeds = data.feed(chunk)?;
            let lr = cfg.schedule.lr(cfg.lr, s, total) as f32;
            let loss_v = stepper.step(&feeds, lr)?;
            report.losses.push(loss_v);
            sum += loss_v as f64 * chunk.len() as f64;
            seen += chunk.len();
            s += 1;
            if !on_step(StepInfo { step: s, total, epoch, loss: loss_v }) {
                return Err(NnError::Graph("training was cancelled".into()));
            }
            if let Some((es, v)) = eval.as_mut()
                && (s % cfg.eval_every.max(1) == 0 || s == total)
            {
                let vl = mean_loss(es, *v, batch, params, stepper.values())?;
                report.val_loss.push((s, vl));
                if best.as_ref().is_none_or(|(b, _)| vl < *b) {
                    best = Some((vl, stepper.values().iter().map(clone_value).collect::<Result<_, _>>()?));
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
        if seen > 0 {
            report.epoch_loss.push((sum / seen as f64) as f32);
        }
    }
    report.steps = s;
    if cfg.patience.is_some()
        && let Some((_, vals)) = best
    {
        stepper.set_values(vals);
    }
    stepper.write_back(params)?;
    Ok(report)
}

/// The loss over every row of `data`, batch by batch, weighted by rows.
fn mean_loss(
    sess: &mut ort::session::Session,
    data: &dyn Batches,
    batch: usize,
    params: &[(String, Tensor)],
    param_vals: &[DynValue],
) -> Result<f32, NnError> {
    let names: Vec<String> = sess.inputs().iter().map(|i| i.name().to_string()).collect();
    let all: Vec<usize> = (0..data.rows()).collect();
    let (mut sum, mut n) = (0.0f64, 0.0f64);
    for chunk in all.chunks(batch.max(1)) {
        let feeds = data.feed(chunk)?;
        let inputs: Vec<SessionInputValue> = names
            .iter()
            .map(|name| match feeds.iter().find(|(f, _)| f == name) {
                Some((_, v)) => v.into(),
                None => (&param_vals[params.iter().position(|(p, _)| p == name).expect("parameter input")]).into(),
            })
            .collect();
        let out = sess.run(&inputs[..])?;
        let w = data.weight(chunk);
        sum += out["loss"].try_extract_tensor::<f32>()?.1[0] as f64 * w;
        n += w;
    }
    Ok((sum / n.max(f64::MIN_POSITIVE)) as f32)
}

fn clone_value(v: &DynValue) -> Result<DynValue, NnError> {
    let (shape, data) = v.try_extract_tensor::<f32>()?;
    Ok(ort::value::Tensor::from_array((shape.to_vec(), data.to_vec()))?.into_dyn())
}
