//! Multilayer perceptrons: initialisation, the forward graph, and the model directory
//! (`model.json`, `weights.safetensors`, standalone `model.onnx`).

use crate::folder::ModelFolder;
use crate::graph::{Graph, V};
use crate::tensor::{DType, Tensor};
use crate::{NnError, weights};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Tanh,
    Gelu,
    Sigmoid,
}

impl Activation {
    const ALL: [Activation; 4] = [Activation::Relu, Activation::Tanh, Activation::Gelu, Activation::Sigmoid];
    /// Every option, as `.lab` files (and `model.json`) write it.
    pub const OPTIONS: &[&str] = &["relu", "tanh", "gelu", "sigmoid"];

    pub fn as_str(self) -> &'static str {
        Self::OPTIONS[Self::ALL.iter().position(|&a| a == self).expect("listed")]
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown activation `{s}`; use `relu`, `tanh`, `gelu` or `sigmoid`"))
    }
}

/// The architecture of an MLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpSpec {
    pub inputs: usize,
    pub hidden: Vec<usize>,
    pub outputs: usize,
    pub activation: Activation,
}

impl MlpSpec {
    /// Layer widths, inputs to outputs.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.inputs];
        w.extend(&self.hidden);
        w.push(self.outputs);
        w
    }

    /// (name, shape) of every parameter, in order: `l0.w`, `l0.b`, `l1.w`, …
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let w = self.widths();
        (0..w.len() - 1)
            .flat_map(|i| [(format!("l{i}.w"), vec![w[i], w[i + 1]]), (format!("l{i}.b"), vec![w[i + 1]])])
            .collect()
    }

    /// Appends the forward pass: `x` [N, inputs] → logits [N, outputs].
    pub fn forward(&self, g: &mut Graph, x: V, params: &[V]) -> V {
        let layers = params.len() / 2;
        let mut h = x;
        for i in 0..layers {
            let z = g.matmul(h, params[2 * i]);
            h = g.add(z, params[2 * i + 1]);
            if i + 1 < layers {
                h = match self.activation {
                    Activation::Relu => g.relu(h),
                    Activation::Tanh => g.tanh(h),
                    Activation::Gelu => g.gelu(h),
                    Activation::Sigmoid => g.sigmoid(h),
                };
            }
        }
        h
    }
}

/// An MLP with weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    pub spec: MlpSpec,
    /// In [`MlpSpec::param_shapes`] order.
    pub params: Vec<(String, Tensor)>,
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    arch: String,
    #[serde(flatten)]
    spec: MlpSpec,
}

/// How an MLP's fresh weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpInit {
    /// Weights ~ N(0, gain/fan_in): 1 is LeCun's scale, 2 is He's (for ReLU).
    pub gain: f64,
    /// Biases ~ N(0, bias_std²) (0: zero biases).
    pub bias_std: f64,
    /// The last layer's weights are made positive (|w|).
    pub positive_readout: bool,
}

impl Default for MlpInit {
    fn default() -> Self {
        MlpInit { gain: 1.0, bias_std: 0.0, positive_readout: false }
    }
}

impl Mlp {
    /// Fresh weights ~ N(0, 1/fan_in), zero biases; equal seeds give equal weights.
    pub fn init(spec: MlpSpec, seed: u64) -> Mlp {
        Self::init_with(spec, seed, MlpInit::default())
    }

    /// Fresh weights drawn as `how` says; equal seeds give equal weights.
    pub fn init_with(spec: MlpSpec, seed: u64, how: MlpInit) -> Mlp {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let shapes = spec.param_shapes();
        let last = shapes.len() - 2;
        let params = shapes
            .into_iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let n: usize = shape.iter().product();
                let t = if shape.len() == 2 {
                    let std = (how.gain / shape[0] as f64).sqrt() as f32;
                    let normal = Normal::new(0.0f32, std).expect("positive std");
                    let mut w: Vec<f32> = (0..n).map(|_| normal.sample(&mut rng)).collect();
                    if how.positive_readout && i == last {
                        w.iter_mut().for_each(|x| *x = x.abs());
                    }
                    Tensor::f32(shape, w)
                } else if how.bias_std > 0.0 {
                    let normal = Normal::new(0.0f32, how.bias_std as f32).expect("positive std");
                    Tensor::f32(shape, (0..n).map(|_| normal.sample(&mut rng)).collect())
                } else {
                    Tensor::f32(shape, vec![0.0; n])
                };
                (name, t)
            })
            .collect();
        Mlp { spec, params }
    }

    /// The standalone inference graph: input `x` [N, inputs], output `logits`.
    pub fn inference_graph(&self) -> Graph {
        let mut g = Graph::new(DType::F32);
        let x = g.input("x", DType::F32, &[-1, self.spec.inputs as i64]);
        let ps: Vec<V> = self.params.iter().map(|(n, t)| g.initializer(n, t.clone())).collect();
        let y = self.spec.forward(&mut g, x, &ps);
        g.output(y, "logits");
        g
    }

    /// Writes `model.json`, `weights.safetensors` and `model.onnx` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), NnError> {
        let folder = ModelFolder::new(dir);
        folder.write_meta(&ModelFile { arch: "mlp".into(), spec: self.spec.clone() })?;
        weights::save(&folder.weights_path(), &self.params)?;
        std::fs::write(
            folder.onnx_path(),
            self.inference_graph().to_onnx_bytes("labrun MLP: x [N, inputs] -> logits [N, outputs]"),
        )?;
        Ok(())
    }

    /// Reads a model directory, checking the weights against the architecture.
    pub fn load(dir: &Path) -> Result<Mlp, NnError> {
        let folder = ModelFolder::new(dir);
        let meta_path = folder.meta_path();
        let meta: ModelFile = folder.read_meta("model description")?;
        if meta.arch != "mlp" {
            return Err(NnError::BadModel(format!(
                "{}: architecture `{}` is not an MLP",
                meta_path.display(),
                meta.arch
            )));
        }
        let params = weights::take_params(weights::load(&folder.weights_path())?, meta.spec.param_shapes(), dir)?;
        Ok(Mlp { spec: meta.spec, params })
    }
}
