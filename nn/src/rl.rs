//! Policy-gradient training of MLP policies on a labelling environment (the toy of the RL
//! scaling-law experiments): each step the agent sees a row and picks a class, reward 1
//! when it is the row's label. Episodes have a fixed length; the horizon h sets the
//! discount γ = 1 − 1/h of the returns-to-go the policy gradient weighs actions with, so a
//! longer horizon only adds the noise of later, unrelated rewards (credit assignment).
//!
//! An update samples `episodes` episodes with the current policy, weighs each action's
//! log-probability by its advantage (return-to-go minus a leave-one-out baseline: the mean
//! return-to-go of the other episodes at the same step) and takes one Adam step on
//! −mean(A · log π(a | x)). The step is one ONNX Runtime session run ([`Stepper`]); the
//! policy is read with the current weights fed to an inference session, never copied out.

use crate::NnError;
use crate::graph::Graph;
use crate::mlp::Mlp;
use crate::mlp_train::{Objective, loss_graph};
use crate::optim::{OptimConfig, Optimizer};
use crate::runtime::{SessionOptions, session};
use crate::tensor::DType;
use crate::train::Stepper;
use ort::session::SessionInputValue;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// The labelling environment: rows `x` (`width` each) with labels `y`; observations are
/// rows drawn uniformly, plus Gaussian noise of std `noise`.
pub struct Env<'a> {
    pub x: &'a [f32],
    pub y: &'a [i64],
    pub width: usize,
    pub length: usize,
    pub noise: f32,
}

impl Env<'_> {
    pub fn rows(&self) -> usize {
        self.y.len()
    }

    /// `count` observations: (row index, noisy row).
    fn observe(&self, count: usize, rng: &mut impl Rng) -> (Vec<usize>, Vec<f32>) {
        let normal = Normal::new(0.0f32, self.noise.max(0.0)).expect("a std ≥ 0");
        let mut idx = Vec::with_capacity(count);
        let mut obs = Vec::with_capacity(count * self.width);
        for _ in 0..count {
            let r = rng.random_range(0..self.rows());
            idx.push(r);
            obs.extend(
                self.x[r * self.width..(r + 1) * self.width]
                    .iter()
                    .map(|&v| if self.noise > 0.0 { v + normal.sample(rng) } else { v }),
            );
        }
        (idx, obs)
    }
}

/// Returns-to-go of one episode's rewards with discount `gamma`.
pub fn returns_to_go(rewards: &[f32], gamma: f32) -> Vec<f32> {
    let mut out = vec![0f32; rewards.len()];
    let mut acc = 0f32;
    for t in (0..rewards.len()).rev() {
        acc = rewards[t] + gamma * acc;
        out[t] = acc;
    }
    out
}

/// Advantages of `episodes` episodes of equal length (row-major returns-to-go): each
/// return minus the mean of the other episodes' returns at the same step.
pub fn advantages(returns: &[f32], episodes: usize) -> Vec<f32> {
    let len = returns.len() / episodes.max(1);
    let mut out = returns.to_vec();
    if episodes < 2 {
        return out;
    }
    for t in 0..len {
        let sum: f32 = (0..episodes).map(|e| returns[e * len + t]).sum();
        for e in 0..episodes {
            let r = returns[e * len + t];
            out[e * len + t] = r - (sum - r) / (episodes - 1) as f32;
        }
    }
    out
}

/// The inference graph with the parameters as inputs (named after them), so a training
/// stepper's current weights can be fed as they are.
fn policy_graph(model: &Mlp) -> Graph {
    let mut g = Graph::new(DType::F32);
    let x = g.input("x", DType::F32, &[-1, model.spec.inputs as i64]);
    let params = model.spec.param_inputs(&mut g);
    let logits = model.spec.forward(&mut g, x, &params);
    g.output(logits, "logits");
    g
}

#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Episodes per update.
    pub episodes: usize,
    /// γ = 1 − 1/h.
    pub gamma: f32,
    pub lr: f64,
    /// Train until this many interactions (environment steps).
    pub interactions: usize,
    pub seed: u64,
    pub session: SessionOptions,
}

/// Trains `model` in place for `cfg.interactions` interactions. After each update, when
/// `want(interactions so far)` is true, the current weights go to `on_checkpoint`;
/// `on_update` sees the interactions so far and the update's loss, and returns `false` to
/// stop (cancellation, an error).
pub fn train_pg(
    model: &mut Mlp,
    env: &Env,
    cfg: &PgConfig,
    want: &dyn Fn(usize) -> bool,
    on_checkpoint: &mut dyn FnMut(usize, &Mlp) -> Result<(), NnError>,
    on_update: &mut dyn FnMut(usize, f32) -> bool,
) -> Result<(), NnError> {
    if env.width != model.spec.inputs {
        return Err(NnError::BadModel(format!(
            "the environment's observations have {} values but the policy takes {} inputs",
            env.width, model.spec.inputs
        )));
    }
    let k = model.spec.outputs;
    if let Some(&bad) = env.y.iter().find(|&&l| l < 0 || l as usize >= k) {
        return Err(NnError::BadModel(format!("label {bad} is not one of the policy's {k} actions")));
    }
    let (graph, loss) = loss_graph(model, &Objective::CrossEntropy { logits: 0..k }, k);
    let trainable = vec![true; model.params.len()];
    let optim = OptimConfig { optimizer: Optimizer::Adam, ..OptimConfig::default() };
    let mut stepper = Stepper::new(graph, loss, &model.params, &trainable, &optim, cfg.session)?;
    let mut policy = session(&policy_graph(model).to_onnx_bytes("labrun policy"), cfg.session)?;
    let names: Vec<String> = model.params.iter().map(|(n, _)| n.clone()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let n = cfg.episodes * env.length;
    let mut done = 0usize;
    while done < cfg.interactions {
        let (idx, obs) = env.observe(n, &mut rng);
        let xv = ort::value::Tensor::from_array((vec![n as i64, env.width as i64], obs))?.into_dyn();
        let logits: Vec<f32> = {
            let mut inputs: Vec<(String, SessionInputValue)> = vec![("x".to_string(), (&xv).into())];
            for (name, v) in names.iter().zip(stepper.values()) {
                inputs.push((name.clone(), v.into()));
            }
            let out = policy.run(inputs)?;
            out["logits"].try_extract_tensor::<f32>()?.1.to_vec()
        };
        // Sample actions, reward them, weigh them.
        let mut actions = Vec::with_capacity(n);
        let mut rewards = Vec::with_capacity(n);
        for (r, row) in logits.chunks(k).enumerate() {
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let w: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
            let total: f32 = w.iter().sum();
            let mut u = rng.random::<f32>() * total;
            let mut a = k - 1;
            for (j, &p) in w.iter().enumerate() {
                if u < p {
                    a = j;
                    break;
                }
                u -= p;
            }
            actions.push(a);
            rewards.push((a as i64 == env.y[idx[r]]) as u8 as f32);
        }
        let returns: Vec<f32> = rewards.chunks(env.length).flat_map(|ep| returns_to_go(ep, cfg.gamma)).collect();
        let adv = advantages(&returns, cfg.episodes);
        let mut target = vec![0f32; n * k];
        for (r, (&a, &v)) in actions.iter().zip(&adv).enumerate() {
            target[r * k + a] = v;
        }
        let tv = ort::value::Tensor::from_array((vec![n as i64, k as i64], target))?.into_dyn();
        let loss = stepper.step(&[("x", xv), ("target", tv)], cfg.lr as f32)?;
        done += n;
        if want(done) {
            let mut now = model.clone();
            stepper.write_back(&mut now.params)?;
            on_checkpoint(done, &now)?;
        }
        if !on_update(done, loss) {
            return Err(NnError::Graph("training was cancelled".into()));
        }
    }
    stepper.write_back(&mut model.params)
}

/// The expected return of an episode of `length` steps under `model`'s stochastic policy:
/// `length` × the mean probability of the right label over the rows (observed with the
/// noise draws of `seed`, the same for every model).
pub fn expected_return(model: &Mlp, env: &Env, seed: u64, opts: SessionOptions) -> Result<f64, NnError> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, env.noise.max(0.0)).expect("a std ≥ 0");
    let obs: Vec<f32> = env.x.iter().map(|&v| if env.noise > 0.0 { v + normal.sample(&mut rng) } else { v }).collect();
    let logits = crate::mlp_train::predict(model, &obs, opts)?;
    let k = model.spec.outputs;
    let mut sum = 0.0f64;
    for (row, &y) in logits.chunks(k).zip(env.y) {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        sum += (row[y as usize] as f64 - max).exp() / z;
    }
    Ok(env.length as f64 * sum / env.rows().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::V;
    use crate::mlp::{Activation, MlpInit, MlpSpec};
    use crate::tensor::Tensor;

    #[test]
    fn returns_to_go_and_leave_one_out_advantages() {
        let g = returns_to_go(&[1.0, 0.0, 1.0], 0.5);
        assert_eq!(g, vec![1.25, 0.5, 1.0]);
        assert_eq!(returns_to_go(&[1.0, 0.0, 1.0], 0.0), vec![1.0, 0.0, 1.0]);
        // Two episodes of two steps: the other episode's return is the baseline.
        assert_eq!(advantages(&[1.0, 2.0, 3.0, 6.0], 2), vec![-2.0, -4.0, 2.0, 4.0]);
    }

    #[test]
    fn a_known_policy_earns_its_expected_return() {
        // Zero weights and a bias that favours class 0 by far: P(0) ≈ 1.
        let spec = MlpSpec { inputs: 2, hidden: vec![3], outputs: 3, activation: Activation::Relu };
        let mut m = Mlp::init_with(spec, 0, MlpInit::default());
        for (name, t) in m.params.iter_mut() {
            let n = t.len();
            *t = Tensor::f32(t.shape.clone(), vec![0.0; n]);
            if name == "l1.b" {
                *t = Tensor::f32(vec![3], vec![30.0, 0.0, 0.0]);
            }
        }
        let x = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
        let y = [0i64, 1, 0, 2];
        let env = Env { x: &x, y: &y, width: 2, length: 10, noise: 0.0 };
        let r = expected_return(&m, &env, 0, SessionOptions::default()).unwrap();
        assert!((r - 5.0).abs() < 1e-6, "{r}");
        // A uniform policy earns length / classes.
        if let Some((_, b)) = m.params.iter_mut().find(|(n, _)| n == "l1.b") {
            *b = Tensor::f32(vec![3], vec![0.0; 3]);
        }
        let r = expected_return(&m, &env, 0, SessionOptions::default()).unwrap();
        assert!((r - 10.0 / 3.0).abs() < 1e-5, "{r}");
    }

    /// The policy-gradient loss, with every action weighted by its probability times its
    /// advantage (held constant), has −∇ of the expected reward as its gradient: checked
    /// against finite differences of the expected reward.
    #[test]
    fn policy_gradient_matches_finite_differences() {
        let spec = MlpSpec { inputs: 2, hidden: vec![3], outputs: 3, activation: Activation::Tanh };
        let m = Mlp::init_with(spec, 4, MlpInit { bias_std: 0.5, ..MlpInit::default() });
        let x = [0.3f32, -0.5, 0.9, 0.1];
        let y = [2i64, 0];
        let probs = |m: &Mlp| -> Vec<f64> {
            let l = crate::mlp_train::predict(m, &x, SessionOptions::default()).unwrap();
            l.chunks(3)
                .flat_map(|r| {
                    let z: f64 = r.iter().map(|&v| (v as f64).exp()).sum();
                    r.iter().map(move |&v| (v as f64).exp() / z)
                })
                .collect()
        };
        let expected_reward = |m: &Mlp| {
            let p = probs(m);
            (p[2] + p[3]) / 2.0
        };
        // Rows: every (x, a) pair; target = π(a|x) · (r − b), b = the expected reward at x.
        let p = probs(&m);
        let mut rows_x = Vec::new();
        let mut target = Vec::new();
        for i in 0..2 {
            let b = p[i * 3 + y[i] as usize];
            for a in 0..3 {
                rows_x.extend_from_slice(&x[i * 2..i * 2 + 2]);
                let mut t = [0f32; 3];
                t[a] = (p[i * 3 + a] * ((a as i64 == y[i]) as u8 as f64 - b)) as f32;
                target.extend_from_slice(&t);
            }
        }
        let (mut g, loss) = loss_graph(&m, &Objective::CrossEntropy { logits: 0..3 }, 3);
        let param_vs: Vec<V> =
            m.params.iter().map(|(n, _)| g.inputs.iter().copied().find(|&v| g.info(v).name == *n).unwrap()).collect();
        let grads = crate::autodiff::grad(&mut g, loss, &param_vs).unwrap();
        for (i, &gv) in grads.iter().enumerate() {
            g.output(gv, &format!("d{i}"));
        }
        let xt = Tensor::f32(vec![6, 2], rows_x);
        let tt = Tensor::f32(vec![6, 3], target);
        let mut feeds: Vec<(&str, &Tensor)> = vec![("x", &xt), ("target", &tt)];
        for (n, t) in &m.params {
            feeds.push((n.as_str(), t));
        }
        let out = crate::exec::run_graph(&g, &feeds, SessionOptions::default()).unwrap();
        let h = 1e-2f32;
        for (pi, (name, t)) in m.params.iter().enumerate() {
            let analytic = out[pi].as_f32().unwrap();
            for j in 0..t.len() {
                let mut up = m.clone();
                let mut down = m.clone();
                up.params[pi].1.as_f32_mut().unwrap()[j] += h;
                down.params[pi].1.as_f32_mut().unwrap()[j] -= h;
                let fd = (expected_reward(&up) - expected_reward(&down)) / (2.0 * h as f64);
                // The loss is a mean over the 6 rows; the expected reward a mean over 2 inputs.
                let pg = -(analytic[j] as f64) * 6.0 / 2.0;
                assert!((fd - pg).abs() < 2e-3, "{name}[{j}]: finite difference {fd}, policy gradient {pg}");
            }
        }
    }
}
