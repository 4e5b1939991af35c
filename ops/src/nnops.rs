//! Shared plumbing of the ops that train or run models.

use crate::artifact::Dataset;
use crate::params::Params;
use crate::{OpError, Progress, RunCtx};
use lab_nn::mlp::Mlp;
use lab_nn::mlp_train::{self, Data, Objective, Targets};
use lab_nn::optim::{OptimConfig, Optimizer, Schedule};
use lab_nn::runtime::SessionOptions;
use lab_nn::train::{self, TrainConfig};
use std::path::Path;

pub fn session_options(ctx: &RunCtx) -> SessionOptions {
    SessionOptions { threads: ctx.threads.max(1), device: ctx.device }
}

/// Reads the model in `dir` (the argument `name`) for training: only MLPs can be trained
/// yet.
pub fn load_model(dir: &Path, name: &str) -> Result<Mlp, OpError> {
    match model_arch(dir)?.as_str() {
        "mlp" => Ok(Mlp::load(dir)?),
        "onnx" => Err(OpError::invalid(
            name,
            "is an imported ONNX model; labrun trains the models it builds (`model.mlp`), imported ones are for inference",
        )),
        other => Err(OpError::invalid(name, format!("is a `{other}` model; this op needs an MLP (`model.mlp`)"))),
    }
}

pub fn model_arch(dir: &Path) -> Result<String, OpError> {
    lab_nn::folder::ModelFolder::new(dir).arch().map_err(|e| OpError::Data(e.to_string()))
}

/// A model ready for inference: labrun's MLP or an imported ONNX file.
pub struct Inference {
    /// The input and output row widths the file declares (`None`: symbolic).
    pub inputs: Option<usize>,
    pub outputs: Option<usize>,
    session: ort::session::Session,
    input: String,
    output: String,
}

impl Inference {
    pub fn load(ctx: &RunCtx, dir: &std::path::Path) -> Result<Inference, OpError> {
        let bytes = std::fs::read(lab_nn::folder::ModelFolder::new(dir).onnx_path())
            .map_err(|e| OpError::Data(format!("{}: {e}", dir.display())))?;
        let info = lab_nn::onnx_io::read(&bytes)?;
        let (Some(i), Some(o)) = (info.inputs.first(), info.outputs.first()) else {
            return Err(OpError::Data(format!("{}: the model has no input or no output", dir.display())));
        };
        let width =
            |io: &lab_nn::onnx_io::IoInfo| io.shape.last().copied().flatten().filter(|&d| d > 0).map(|d| d as usize);
        let session = lab_nn::runtime::session(&bytes, session_options(ctx))?;
        Ok(Inference { inputs: width(i), outputs: width(o), session, input: i.name.clone(), output: o.name.clone() })
    }

    /// Logits for every row of `d`, after checking its width, and their row width.
    pub fn predict(&mut self, d: &Dataset, arg: &str) -> Result<(Vec<f32>, usize), OpError> {
        if let Some(inputs) = self.inputs {
            check_width(inputs, d, arg)?;
        }
        let x = d.x.as_standard_layout();
        self.predict_x(x.as_slice().expect("standard layout"), d.x.ncols())
    }
}

impl Inference {
    /// Outputs for rows `x` (row-major, `width` columns), and their row width.
    pub fn predict_x(&mut self, x: &[f32], width: usize) -> Result<(Vec<f32>, usize), OpError> {
        let (out, k) = lab_nn::exec::predict_rows(&mut self.session, &self.input, &self.output, width, x)?;
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(OpError::Numeric(format!(
                "the model's output {} for input row {} is {}; its weights or that row hold NaN or infinite values",
                i % k.max(1),
                i / k.max(1) + 1,
                out[i]
            )));
        }
        Ok((out, k))
    }
}

/// Checks that `range` indexes a model's `outputs` logits.
pub fn check_logits(outputs: usize, range: &std::ops::Range<usize>, arg: &str) -> Result<(), OpError> {
    if range.is_empty() || range.end > outputs {
        return Err(OpError::invalid(
            arg,
            format!(
                "is {}..{}, but the model has {outputs} outputs (valid ranges lie within 0..{outputs})",
                range.start, range.end
            ),
        ));
    }
    Ok(())
}

/// Checks that the data fits a model taking `inputs` columns.
pub fn check_width(inputs: usize, d: &Dataset, arg: &str) -> Result<(), OpError> {
    if d.x.ncols() != inputs {
        return Err(OpError::invalid(
            arg,
            format!("has rows of width {} but the model takes {inputs} inputs", d.x.ncols()),
        ));
    }
    Ok(())
}

/// The parameters every MLP training op takes.
#[derive(Debug, Clone, Params)]
pub struct MlpTraining {
    /// passes over the data
    #[param(default = 5, min = 1)]
    pub epochs: usize,
    /// Adam learning rate
    #[param(default = 3e-4, positive)]
    pub lr: f64,
    /// rows per step
    #[param(default = 64, min = 1)]
    pub batch: usize,
    /// shuffle seed
    #[param(default = 0)]
    pub seed: i64,
}

/// Trains with the op's `epochs`, `lr`, `batch` and `seed`, reporting progress.
pub fn fit(
    ctx: &RunCtx,
    training: &MlpTraining,
    model: &mut Mlp,
    d: &Dataset,
    objective: Objective,
) -> Result<(), OpError> {
    let cfg = TrainConfig {
        epochs: training.epochs,
        steps: None,
        batch: training.batch,
        lr: training.lr,
        seed: training.seed as u64,
        optim: OptimConfig { optimizer: Optimizer::Adam, ..OptimConfig::default() },
        schedule: Schedule::Constant,
        session: session_options(ctx),
        eval_every: usize::MAX,
        patience: None,
    };
    let x = d.x.as_standard_layout();
    let x = x.as_slice().expect("standard layout");
    let tmat;
    let targets = match &objective {
        Objective::CrossEntropy { .. } => {
            let y = d.y.as_ref().ok_or_else(|| {
                OpError::invalid("data", "has no labels `y`; supervised training needs labelled data")
            })?;
            Targets::Labels(y.as_slice().expect("contiguous"))
        }
        Objective::Distill { logits } => {
            let t = d
                .t
                .as_ref()
                .ok_or_else(|| OpError::invalid("data", "has no soft targets `t`; make them with `generate.logits`"))?;
            if t.ncols() != logits.len() {
                return Err(OpError::invalid(
                    "logits",
                    format!(
                        "is {}..{} ({} logits) but the targets have {} columns",
                        logits.start,
                        logits.end,
                        logits.len(),
                        t.ncols()
                    ),
                ));
            }
            tmat = t.as_standard_layout().to_owned();
            Targets::Soft(tmat.as_slice().expect("standard layout"), t.ncols())
        }
    };
    let data = Data { x, width: d.x.ncols(), targets };
    let mut on_step = |s: train::StepInfo| {
        if s.step.is_multiple_of(10) || s.step == s.total {
            (ctx.progress)(Progress {
                done: s.step as u64,
                total: s.total as u64,
                message: format!("epoch {} loss {:.4}", s.epoch + 1, s.loss),
            });
        }
        ctx.check_cancel().is_ok()
    };
    match mlp_train::train(model, &data, None, &objective, &cfg, &mut on_step) {
        Ok(_) => Ok(()),
        Err(_) if ctx.check_cancel().is_err() => Err(OpError::Cancelled),
        Err(lab_nn::NnError::NonFinite { step, value }) => Err(OpError::Numeric(format!(
            "the training loss became {value} at step {step}; lower `lr` (now {}) or check the data for extreme values",
            cfg.lr
        ))),
        Err(e) => Err(e.into()),
    }
}
