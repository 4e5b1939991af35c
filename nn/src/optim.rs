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
    /// Optimizer state, one flat vector per moment over every parameter (Adam: inputs
    /// `m` and `v`), and its updated values.
    pub state_in: Vec<V>,
    pub state_out: Vec<V>,
    /// Per parameter: the updated value.
    pub updated: Vec<V>,
    /// The global gradient norm before clipping.
    pub grad_norm: V,
}

/// The names of the state inputs of `optimizer`, in [`Step::state_in`] order.
pub fn state_names(optimizer: Optimizer) -> &'static [&'static str] {
    match optimizer {
        Optimizer::Sgd => &[],
        Optimizer::Adam | Optimizer::AdamW => &["m", "v"],
    }
}

/// Appends one update of `params` given their `grads`. Every parameter and gradient is
/// flattened into one vector so that the update is a handful of nodes whatever the
/// number of parameters (a transformer has dozens); the state inputs are flat too.
pub fn step(g: &mut Graph, params: &[V], grads: &[V], cfg: &OptimConfig) -> Step {
    let lr = g.input("lr", g.float, &[]);
    let t = g.input("t", g.float, &[]);
    let sizes: Vec<i64> = params.iter().map(|&p| g.shape(p).iter().product::<i64>().max(1)).collect();
    let total: i64 = sizes.iter().sum();
    let flat = |g: &mut Graph, xs: &[V]| {
        let parts: Vec<V> = xs.iter().map(|&x| g.reshape(x, &[-1])).collect();
        if parts.len() == 1 { parts[0] } else { g.concat(&parts, 0) }
    };
    let p = flat(g, params);
    let gr = flat(g, grads);
    // Global norm, for clipping and for the progress display.
    let sq = g.mul(gr, gr);
    let grad_norm = {
        let s = g.reduce_sum(sq, &[0], false);
        g.sqrt(s)
    };
    let gr = match cfg.clip {
        Some(c) => {
            let cv = g.scalar(c);
            let tiny = g.scalar(1e-6);
            let denom = g.add(grad_norm, tiny);
            let ratio = g.div(cv, denom);
            let one = g.scalar(1.0);
            let over = g.greater(ratio, one);
            let scale = g.where_(over, one, ratio);
            g.mul(gr, scale)
        }
        None => gr,
    };
    let (new, state_in, state_out) = match cfg.optimizer {
        Optimizer::Sgd => {
            let mut d = gr;
            if cfg.weight_decay > 0.0 {
                let wd = g.scalar(cfg.weight_decay);
                let pw = g.mul(p, wd);
                d = g.add(d, pw);
            }
            let s = g.mul(d, lr);
            (g.sub(p, s), vec![], vec![])
        }
        Optimizer::Adam | Optimizer::AdamW => {
            let m = g.input("m", g.float, &[total]);
            let v = g.input("v", g.float, &[total]);
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
            // Bias corrections are scalars: fold them into the step size.
            let one = g.scalar(1.0);
            let b1t = g.pow(b1, t);
            let b2t = g.pow(b2, t);
            let bc1 = g.sub(one, b1t);
            let bc2 = g.sub(one, b2t);
            let vhat = g.div(v_new, bc2);
            let sq = g.sqrt(vhat);
            let e = g.scalar(cfg.eps);
            let den = g.add(sq, e);
            let mut upd = g.div(m_new, den);
            let rate = g.div(lr, bc1);
            upd = g.mul(upd, rate);
            if cfg.optimizer == Optimizer::AdamW && cfg.weight_decay > 0.0 {
                let wd = g.scalar(cfg.weight_decay);
                let lw = g.mul(lr, wd);
                let pw = g.mul(p, lw);
                upd = g.add(upd, pw);
            }
            (g.sub(p, upd), vec![m, v], vec![m_new, v_new])
        }
    };
    let mut updated = Vec::with_capacity(params.len());
    let mut off = 0;
    for (&param, &n) in params.iter().zip(&sizes) {
        let piece = if params.len() == 1 { new } else { g.slice(new, 0, off, off + n) };
        let shape = g.shape(param).to_vec();
        updated.push(if shape.len() == 1 { piece } else { g.reshape(piece, &shape) });
        off += n;
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
