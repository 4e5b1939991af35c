//! `estimate.*`: estimators of Y = E_{x ~ N(0, I)} f(x) for an MLP f with one output —
//! mean-and-variance propagation (units independent), Gaussian covariance propagation, and
//! sampling (a small-budget Monte Carlo estimator, or with many samples the reference).
//! Each takes "arguments": input coordinates fixed to given values. An `Estimate` artifact
//! is `estimate.json`: `mean`, and `stderr` for sampling. The best-of-n estimators of
//! reward-model experiments are in `best_of_n.rs`.

use crate::artifact::{self, Metrics};
use crate::moments::{gauss_legendre, pdf, relu_cross_moment, relu_moments};
use crate::nnops::{self, session_options};
use crate::params::{Choice, ModelDir, Params};
use crate::{Check, Op, OpError, Progress, Registry, RunCtx, Signature, Type, Value};
use lab_nn::mlp::{Activation, Mlp};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::json;
use std::path::Path;

pub fn register(r: &mut Registry) {
    r.add(MeanProp);
    r.add(CovProp);
    r.add(Sampling);
    r.add(Iterated);
    r.add(crate::best_of_n::BestOfN);
    r.add(crate::best_of_n::Rewards);
    r.add(crate::rl::Frontier);
}

const FILE: &str = "estimate.json";

/// Reads the `mean` of an `Estimate` artifact (and its `stderr`, 0 when exact).
pub fn read(dir: &Path) -> Result<(f64, f64), OpError> {
    let m = artifact::read_json(&dir.join(FILE))?;
    let mean = m
        .get("mean")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| OpError::Data(format!("{} has no `mean`", dir.display())))?;
    Ok((mean, m.get("stderr").and_then(|v| v.as_f64()).unwrap_or(0.0)))
}

fn write(dir: &Path, mean: f64, stderr: Option<f64>, method: &str) -> Result<(), OpError> {
    let mut m = Metrics::new();
    m.insert("mean".into(), json!(mean));
    if let Some(s) = stderr {
        m.insert("stderr".into(), json!(s));
    }
    m.insert("method".into(), json!(method));
    let text = serde_json::to_string_pretty(&m).map_err(|e| OpError::internal(e.to_string()))?;
    std::fs::write(dir.join(FILE), text)?;
    // The same numbers as metrics, so that reports and `score.summary` read them.
    artifact::write_metrics(dir, &m)
}

/// A ReLU MLP with one output, as f64 layers `(W [in][out], b [out])`.
struct Net {
    layers: Vec<(Vec<Vec<f64>>, Vec<f64>)>,
    inputs: usize,
}

fn load_net(model: &Path) -> Result<(Mlp, Net), OpError> {
    let mlp = nnops::load_model(model, "model")?;
    if mlp.spec.activation != Activation::Relu {
        return Err(OpError::invalid(
            "model",
            "must be a ReLU MLP (`activation: \"relu\"`): the estimators propagate ReLU moments",
        ));
    }
    if mlp.spec.outputs != 1 {
        return Err(OpError::invalid(
            "model",
            format!("has {} outputs; the estimators estimate one (`outputs: 1`)", mlp.spec.outputs),
        ));
    }
    let layers = mlp
        .params
        .chunks(2)
        .map(|wb| {
            let (w, b) = (&wb[0].1, &wb[1].1);
            let wv = w.to_f64();
            let (i, o) = (w.shape[0], w.shape[1]);
            ((0..i).map(|r| wv[r * o..(r + 1) * o].to_vec()).collect(), b.to_f64())
        })
        .collect();
    let inputs = mlp.spec.inputs;
    Ok((mlp, Net { layers, inputs }))
}

/// Input means and variances with the first coordinates fixed.
fn input_moments(inputs: usize, fixed: &[f64]) -> Result<(Vec<f64>, Vec<f64>), OpError> {
    if fixed.len() > inputs {
        return Err(OpError::invalid("fixed", format!("fixes {} coordinates of a {inputs}-input model", fixed.len())));
    }
    let mu = (0..inputs).map(|i| fixed.get(i).copied().unwrap_or(0.0)).collect();
    let var = (0..inputs).map(|i| if i < fixed.len() { 0.0 } else { 1.0 }).collect();
    Ok((mu, var))
}

/// Mean-and-variance propagation, every unit independent of the others.
fn mean_prop(net: &Net, fixed: &[f64]) -> Result<f64, OpError> {
    let (mut mu, mut var) = input_moments(net.inputs, fixed)?;
    for (l, (w, b)) in net.layers.iter().enumerate() {
        let out = b.len();
        let mz: Vec<f64> = (0..out).map(|j| b[j] + (0..mu.len()).map(|i| mu[i] * w[i][j]).sum::<f64>()).collect();
        let vz: Vec<f64> = (0..out).map(|j| (0..var.len()).map(|i| var[i] * w[i][j] * w[i][j]).sum::<f64>()).collect();
        if l + 1 == net.layers.len() {
            return Ok(mz[0]);
        }
        let m: Vec<(f64, f64)> = mz.iter().zip(&vz).map(|(&m, &v)| relu_moments(m, v)).collect();
        mu = m.iter().map(|p| p.0).collect();
        var = m.iter().map(|p| (p.1 - p.0 * p.0).max(0.0)).collect();
    }
    unreachable!("an MLP has a last layer")
}

/// Gaussian covariance propagation: pre-activations are taken as jointly Gaussian.
fn cov_prop(net: &Net, fixed: &[f64]) -> Result<f64, OpError> {
    let rule = gauss_legendre(64);
    let (mut mu, var) = input_moments(net.inputs, fixed)?;
    let n0 = mu.len();
    let mut cov: Vec<Vec<f64>> =
        (0..n0).map(|i| (0..n0).map(|j| if i == j { var[i] } else { 0.0 }).collect()).collect();
    for (l, (w, b)) in net.layers.iter().enumerate() {
        let (inp, out) = (mu.len(), b.len());
        let mz: Vec<f64> = (0..out).map(|j| b[j] + (0..inp).map(|i| mu[i] * w[i][j]).sum::<f64>()).collect();
        // Σz = Wᵀ Σ W.
        let sw: Vec<Vec<f64>> =
            (0..inp).map(|i| (0..out).map(|j| (0..inp).map(|k| cov[i][k] * w[k][j]).sum()).collect()).collect();
        let cz: Vec<Vec<f64>> =
            (0..out).map(|a| (0..out).map(|c| (0..inp).map(|i| w[i][a] * sw[i][c]).sum()).collect()).collect();
        if l + 1 == net.layers.len() {
            return Ok(mz[0]);
        }
        (mu, cov) = relu_gaussian(&mz, &cz, &rule);
    }
    unreachable!("an MLP has a last layer")
}

/// Mean and covariance of relu(z) for z ~ N(mean, cov).
fn relu_gaussian(mean: &[f64], cov: &[Vec<f64>], rule: &[(f64, f64)]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = mean.len();
    let m: Vec<(f64, f64)> = (0..n).map(|j| relu_moments(mean[j], cov[j][j])).collect();
    let mut next = vec![vec![0.0; n]; n];
    for a in 0..n {
        next[a][a] = (m[a].1 - m[a].0 * m[a].0).max(0.0);
        for c in a + 1..n {
            let e = relu_cross_moment(mean[a], mean[c], cov[a][a], cov[c][c], cov[a][c], rule);
            next[a][c] = e - m[a].0 * m[c].0;
            next[c][a] = next[a][c];
        }
    }
    (m.iter().map(|p| p.0).collect(), next)
}

/// The parameters every estimator of one model takes: the model and its arguments (the
/// input coordinates held fixed).
#[derive(Params)]
#[params(rules = fixed_rules)]
pub struct WithFixed {
    /// a ReLU MLP with one output
    model: ModelDir,
    /// arguments: values of the first input coordinates, held fixed instead of drawn
    #[param(default = vec![])]
    fixed: Vec<f64>,
    /// when 0 or more: fix x₀ at a value drawn from N(0, 1) with this seed (an argument chosen at random)
    #[param(default = -1)]
    random_argument: i64,
}

/// `fixed` and `random_argument` both set x₀: only one of them may be given.
fn fixed_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["random_argument", "fixed"],
        doc: "`random_argument` ≥ 0 needs `fixed` empty",
        test: |v| match (v[0].as_i64(), v[1]) {
            (Some(s), Value::List(fixed)) if s >= 0 && !fixed.is_empty() => {
                Some("`random_argument` and `fixed` both set the first coordinate; give one of them".to_string())
            }
            _ => None,
        },
    }]
}

impl WithFixed {
    /// The fixed coordinates: `fixed`, or x₀ drawn with the seed `random_argument`.
    fn fixed(&self) -> Vec<f64> {
        match self.random_argument {
            s if s < 0 => self.fixed.clone(),
            s => vec![StandardNormal.sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(s as u64))],
        }
    }
}

/// Mean-and-variance propagation.
pub struct MeanProp;

impl Op for MeanProp {
    type Params = WithFixed;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "mean_prop",
            1,
            Type::Estimate,
            "Y = E f(x), x ~ N(0, I), by propagating each unit's mean and variance through the layers as if units were independent Gaussians (ReLU moments in closed form)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: WithFixed) -> Result<(), OpError> {
        let (_, net) = load_net(&p.model)?;
        write(ctx.out, mean_prop(&net, &p.fixed())?, None, "mean_prop")
    }
}

/// Covariance propagation.
pub struct CovProp;

impl Op for CovProp {
    type Params = WithFixed;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "cov_prop",
            1,
            Type::Estimate,
            "Y = E f(x), x ~ N(0, I), by propagating means and the full covariance, pre-activations taken as jointly Gaussian (ReLU cross-moments by one-dimensional quadrature of a closed form)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: WithFixed) -> Result<(), OpError> {
        let (_, net) = load_net(&p.model)?;
        write(ctx.out, cov_prop(&net, &p.fixed())?, None, "cov_prop")
    }
}

/// Monte Carlo.
pub struct Sampling;

#[derive(Params)]
pub struct SamplingParams {
    #[param(flatten)]
    input: WithFixed,
    /// draws of x
    #[param(default = 64, min = 2, max = 1u64 << 34)]
    samples: usize,
    /// random seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Sampling {
    type Params = SamplingParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "sampling",
            1,
            Type::Estimate,
            "Y = E f(x), x ~ N(0, I), by the mean of f over `samples` draws, with its standard error: a Monte Carlo estimator with a small budget, the reference with a large one; streamed through ONNX Runtime in chunks of 4,096 rows",
        )
    }

    fn run(&self, ctx: &RunCtx, p: SamplingParams) -> Result<(), OpError> {
        let (mlp, net) = load_net(&p.input.model)?;
        let fixed = p.input.fixed();
        input_moments(net.inputs, &fixed)?;
        let samples = p.samples;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed as u64);
        let mut sess = lab_nn::runtime::session(&mlp.inference_graph().to_onnx_bytes(""), session_options(ctx))?;
        let d = net.inputs;
        let (mut n, mut mean, mut m2) = (0usize, 0.0f64, 0.0f64);
        while n < samples {
            ctx.check_cancel()?;
            let rows = (samples - n).min(4096);
            let x: Vec<f32> = (0..rows * d)
                .map(|k| match fixed.get(k % d) {
                    Some(&v) => v as f32,
                    None => StandardNormal.sample(&mut rng),
                })
                .collect();
            let (y, _) = lab_nn::exec::predict_rows(&mut sess, "x", "logits", d, &x)?;
            for &v in &y {
                // Welford's running mean and sum of squares.
                n += 1;
                let delta = v as f64 - mean;
                mean += delta / n as f64;
                m2 += delta * (v as f64 - mean);
            }
            if samples > 100_000 {
                (ctx.progress)(Progress { done: n as u64, total: samples as u64, message: String::new() });
            }
        }
        let stderr = (m2 / (n - 1) as f64).sqrt() / (n as f64).sqrt();
        write(ctx.out, mean, Some(stderr), "sampling")
    }
}

/// An estimator's average over one argument: E_v[G(Y | x₀ = v)], v ~ N(0, 1).
pub struct Iterated;

/// The estimator G that `estimate.iterated` averages.
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum Propagation {
    MeanProp,
    CovProp,
}

#[derive(Params)]
pub struct IteratedParams {
    /// a ReLU MLP with one output
    model: ModelDir,
    /// `mean_prop` or `cov_prop`
    method: Propagation,
    /// quadrature points
    #[param(default = 48, min = 2)]
    points: usize,
}

impl Op for Iterated {
    type Params = IteratedParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "iterated",
            1,
            Type::Estimate,
            "the iterated estimate E_v[G(Y | x₀ = v)] over v ~ N(0, 1) (Gauss–Legendre quadrature on [−8, 8]) for the estimator G given by `method`; a good estimator gives back G(Y)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: IteratedParams) -> Result<(), OpError> {
        let (_, net) = load_net(&p.model)?;
        let method = p.method;
        let g: fn(&Net, &[f64]) -> Result<f64, OpError> = match p.method {
            Propagation::MeanProp => mean_prop,
            Propagation::CovProp => cov_prop,
        };
        let rule = gauss_legendre(p.points);
        let mut total = 0.0;
        for &(t, w) in &rule {
            ctx.check_cancel()?;
            let v = 8.0 * t;
            total += 8.0 * w * pdf(v) * g(&net, &[v])?;
        }
        write(ctx.out, total, None, &format!("iterated {method}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-hidden-layer net whose exact answer is known: f(x) = Σ relu(x_i) with
    /// x ~ N(0, I) has E f = n/√(2π), and independence holds, so both propagations are exact.
    #[test]
    fn propagation_is_exact_where_independence_holds() {
        let n = 3;
        let eye: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| f64::from(i == j)).collect()).collect();
        let net = Net { layers: vec![(eye, vec![0.0; n]), (vec![vec![1.0]; n], vec![0.0])], inputs: n };
        let want = n as f64 / (2.0 * std::f64::consts::PI).sqrt();
        assert!((mean_prop(&net, &[]).unwrap() - want).abs() < 1e-12);
        assert!((cov_prop(&net, &[]).unwrap() - want).abs() < 1e-9);
        // Fixing x₀ = 2 makes relu(x₀) = 2.
        let want = 2.0 + 2.0 / (2.0 * std::f64::consts::PI).sqrt();
        assert!((mean_prop(&net, &[2.0]).unwrap() - want).abs() < 1e-12);
    }

    /// One ReLU layer on correlated Gaussian inputs: the propagated means and covariances
    /// against 400,000 samples.
    #[test]
    fn relu_layer_covariance_matches_sampling() {
        let mean = [0.4, -0.3, 0.1];
        let cov = [vec![1.0, 0.5, -0.3], vec![0.5, 0.8, 0.2], vec![-0.3, 0.2, 0.6]];
        let (m, c) = relu_gaussian(&mean, &cov, &gauss_legendre(64));
        // Cholesky factor of `cov`, by hand for 3×3.
        let l00 = cov[0][0].sqrt();
        let l10 = cov[1][0] / l00;
        let l11 = (cov[1][1] - l10 * l10).sqrt();
        let l20 = cov[2][0] / l00;
        let l21 = (cov[2][1] - l20 * l10) / l11;
        let l22 = (cov[2][2] - l20 * l20 - l21 * l21).sqrt();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 400_000;
        let (mut s, mut ss) = ([0.0; 3], [[0.0; 3]; 3]);
        for _ in 0..n {
            let e: [f64; 3] =
                [StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng)];
            let z = [
                mean[0] + l00 * e[0],
                mean[1] + l10 * e[0] + l11 * e[1],
                mean[2] + l20 * e[0] + l21 * e[1] + l22 * e[2],
            ];
            let h = z.map(|v: f64| v.max(0.0));
            for a in 0..3 {
                s[a] += h[a];
                for b in 0..3 {
                    ss[a][b] += h[a] * h[b];
                }
            }
        }
        for a in 0..3 {
            let ma = s[a] / n as f64;
            assert!((ma - m[a]).abs() < 5e-3, "mean {a}: {ma} vs {}", m[a]);
            for b in 0..3 {
                let cab = ss[a][b] / n as f64 - ma * s[b] / n as f64;
                assert!((cab - c[a][b]).abs() < 5e-3, "cov {a}{b}: {cab} vs {}", c[a][b]);
            }
        }
    }
}
