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

    /// One graph input per parameter, named after it, in [`MlpSpec::param_shapes`] order
    /// (for graphs whose weights are fed, such as a training step's).
    pub fn param_inputs(&self, g: &mut Graph) -> Vec<V> {
        self.param_shapes()
            .iter()
            .map(|(n, shape)| g.input(n, DType::F32, &shape.iter().map(|&d| d as i64).collect::<Vec<_>>()))
            .collect()
    }

    /// Appends the forward pass: `x` [N, inputs] → logits [N, outputs].
    pub fn forward(&self, g: &mut Graph, x: V, params: &[V]) -> V {
        self.forward_layers(g, x, params).1
    }

    /// The forward pass with each hidden layer's activations (after the nonlinearity), in
    /// order, and the logits.
    pub fn forward_layers(&self, g: &mut Graph, x: V, params: &[V]) -> (Vec<V>, V) {
        let layers = params.len() / 2;
        let (mut h, mut hidden) = (x, Vec::new());
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
                hidden.push(h);
            }
        }
        (hidden, h)
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

    /// What a defender reads of the model at each row: inputs `x` [N, inputs] and
    /// `target` [N, outputs] (one-hot labels); outputs `logits`, the last hidden layer's
    /// activations `hidden` [N, width] (the inputs for a model without hidden layers), the
    /// cross-entropy `loss` [N] of each row against its target, and `grad_x` [N, inputs],
    /// the gradient of each row's loss with respect to its input.
    pub fn diagnostics_graph(&self) -> Result<Graph, NnError> {
        let mut g = Graph::new(DType::F32);
        let x = g.input("x", DType::F32, &[-1, self.spec.inputs as i64]);
        let target = g.input("target", DType::F32, &[-1, self.spec.outputs as i64]);
        let ps: Vec<V> = self.params.iter().map(|(n, t)| g.initializer(n, t.clone())).collect();
        let (hidden, logits) = self.spec.forward_layers(&mut g, x, &ps);
        let lps = g.log_softmax(logits, -1);
        let picked = g.mul(target, lps);
        let per_row = g.reduce_sum(picked, &[1], false);
        let loss = g.neg(per_row);
        // Rows are independent: the gradient of their sum is each row's own gradient.
        let total = g.reduce_sum(loss, &[0], false);
        let grad_x = crate::autodiff::grad(&mut g, total, &[x])?[0];
        let last = hidden.last().copied().unwrap_or(x);
        let last = g.identity(last);
        g.output(logits, "logits");
        g.output(last, "hidden");
        g.output(loss, "loss");
        g.output(grad_x, "grad_x");
        Ok(g)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::run_graph;
    use crate::runtime::SessionOptions;

    #[test]
    fn diagnostics_gradient_matches_finite_differences() {
        let spec = MlpSpec { inputs: 3, hidden: vec![5, 4], outputs: 3, activation: Activation::Tanh };
        let m = Mlp::init_with(spec, 1, MlpInit { bias_std: 0.3, ..MlpInit::default() });
        let g = m.diagnostics_graph().unwrap();
        let x = vec![0.3f32, -0.7, 1.1, -0.2, 0.5, 0.9];
        let target = Tensor::f32(vec![2, 3], vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        let run = |x: &[f32]| {
            run_graph(
                &g,
                &[("x", &Tensor::f32(vec![2, 3], x.to_vec())), ("target", &target)],
                SessionOptions::default(),
            )
            .unwrap()
        };
        let out = run(&x);
        assert_eq!(out[1].shape, vec![2, 4], "the last hidden layer");
        let (loss, grad) = (out[2].as_f32().unwrap().to_vec(), out[3].as_f32().unwrap().to_vec());
        let h = 1e-2f32;
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let row = i / 3;
            let fd = (run(&up)[2].as_f32().unwrap()[row] - run(&down)[2].as_f32().unwrap()[row]) / (2.0 * h);
            assert!((fd - grad[i]).abs() < 2e-3, "input {i}: finite difference {fd}, gradient {}", grad[i]);
        }
        // The loss is the cross-entropy of each row's logits against its target.
        let logits = out[0].as_f32().unwrap();
        for (r, &t) in [1usize, 2].iter().enumerate() {
            let l = &logits[r * 3..r * 3 + 3];
            let lse = l.iter().map(|v| v.exp()).sum::<f32>().ln();
            assert!((loss[r] - (lse - l[t])).abs() < 1e-5);
        }
    }
}
