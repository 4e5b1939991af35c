//! Optimizer steps as graph nodes: a whole training step (forward, backward, update) is
//! one session run, and the optimizer state flows through as graph inputs and outputs.

use crate::graph::{Graph, V};

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// Plain gradient descent.
    Sgd,
    /// Adam; `weight_decay` adds the L2 term to the gradient.
    Adam,
    /// AdamW: weight decay decoupled from the adaptive step.
    AdamW,
}

/// Update settings fixed in the graph. The learning rate is an input, so schedules need
/// no new graph.
#[derive(Debug, Clone, Copy)]
pub struct OptimConfig {
    pub optimizer: Optimizer,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value.
    pub clip: Option<f64>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig { optimizer: Optimizer::Adam, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, clip: None }
    }
}

/// The values one optimizer step reads and writes.
pub struct Step {
    /// Scalar inputs: learning rate and the 1-based step number.
    pub lr: V,
    pub t: V,
    /// Per parameter: (state inputs, state outputs) — first and second moments for Adam.
    pub state_in: Vec<Vec<V>>,
    pub state_out: Vec<Vec<V>>,
    /// Per parameter: the updated value.
    pub updated: Vec<V>,
    /// The global gradient norm before clipping.
    pub grad_norm: V,
}

/// Appends one update of `params` given their `grads`. State inputs are named
/// `m.{name}` and `v.{name}` after each parameter's name.
pub fn step(g: &mut Graph, params: &[V], grads: &[V], cfg: &OptimConfig) -> Step {
    let lr = g.input("lr", g.float, &[]);
    let t = g.input("t", g.float, &[]);
    // Global norm, for clipping and for the progress display.
    let mut total = None;
    for &gr in grads {
        let sq = g.mul(gr, gr);
        let axes: Vec<i64> = (0..g.rank(sq) as i64).collect();
        let s = if axes.is_empty() { sq } else { g.reduce_sum(sq, &axes, false) };
        total = Some(match total {
            None => s,
            Some(acc) => g.add(acc, s),
        });
    }
    let grad_norm = match total {
        Some(t2) => g.sqrt(t2),
        None => g.scalar(0.0),
    };
    let grads: Vec<V> = match cfg.clip {
        Some(c) => {
            let cv = g.scalar(c);
            let tiny = g.scalar(1e-6);
            let denom = g.add(grad_norm, tiny);
            let ratio = g.div(cv, denom);
            let one = g.scalar(1.0);
            let over = g.greater(ratio, one);
            let scale = g.where_(over, one, ratio);
            grads.iter().map(|&gr| g.mul(gr, scale)).collect()
        }
        None => grads.to_vec(),
    };
    let mut state_in = Vec::new();
    let mut state_out = Vec::new();
    let mut updated = Vec::new();
    for (&p, &gr) in params.iter().zip(&grads) {
        let name = g.info(p).name.clone();
        let shape = g.shape(p).to_vec();
        match cfg.optimizer {
            Optimizer::Sgd => {
                let mut d = gr;
                if cfg.weight_decay > 0.0 {
                    let wd = g.scalar(cfg.weight_decay);
                    let pw = g.mul(p, wd);
                    d = g.add(d, pw);
                }
                let s = g.mul(d, lr);
                updated.push(g.sub(p, s));
                state_in.push(vec![]);
                state_out.push(vec![]);
            }
            Optimizer::Adam | Optimizer::AdamW => {
                let m = g.input(&format!("m.{name}"), g.float, &shape);
                let v = g.input(&format!("v.{name}"), g.float, &shape);
                let mut gr = gr;
                if cfg.optimizer == Optimizer::Adam && cfg.weight_decay > 0.0 {
                    let wd = g.scalar(cfg.weight_decay);
                    let pw = g.mul(p, wd);
                    gr = g.add(gr, pw);
                }
                let (b1, b2) = (g.scalar(cfg.beta1), g.scalar(cfg.beta2));
                let (c1, c2) = (g.scalar(1.0 - cfg.beta1), g.scalar(1.0 - cfg.beta2));
                let m1 = g.mul(m, b1);
                let m2 = g.mul(gr, c1);
                let m_new = g.add(m1, m2);
                let gg = g.mul(gr, gr);
                let v1 = g.mul(v, b2);
                let v2 = g.mul(gg, c2);
                let v_new = g.add(v1, v2);
                let one = g.scalar(1.0);
                let b1t = g.pow(b1, t);
                let b2t = g.pow(b2, t);
                let bc1 = g.sub(one, b1t);
                let bc2 = g.sub(one, b2t);
                let mhat = g.div(m_new, bc1);
                let vhat = g.div(v_new, bc2);
                let sq = g.sqrt(vhat);
                let e = g.scalar(cfg.eps);
                let den = g.add(sq, e);
                let mut upd = g.div(mhat, den);
                if cfg.optimizer == Optimizer::AdamW && cfg.weight_decay > 0.0 {
                    let wd = g.scalar(cfg.weight_decay);
                    let pw = g.mul(p, wd);
                    upd = g.add(upd, pw);
                }
                let s = g.mul(upd, lr);
                updated.push(g.sub(p, s));
                state_in.push(vec![m, v]);
                state_out.push(vec![m_new, v_new]);
            }
        }
    }
    Step { lr, t, state_in, state_out, updated, grad_norm }
}

/// Learning rate over training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    Constant,
    /// Linear warmup over `warmup` steps, then cosine decay to 10% of the peak.
    WarmupCosine {
        warmup: usize,
    },
}

impl Schedule {
    /// The learning rate at 0-based `step` of `total`.
    pub fn lr(&self, peak: f64, step: usize, total: usize) -> f64 {
        match *self {
            Schedule::Constant => peak,
            Schedule::WarmupCosine { warmup } => {
                if step < warmup {
                    peak * (step + 1) as f64 / warmup as f64
                } else {
                    let p = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
                    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_cosine_shape() {
        let s = Schedule::WarmupCosine { warmup: 10 };
        assert!((s.lr(1.0, 0, 100) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 9, 100) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 100) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 100, 100) - 0.1).abs() < 1e-12);
        assert_eq!(Schedule::Constant.lr(0.3, 50, 100), 0.3);
    }
}
