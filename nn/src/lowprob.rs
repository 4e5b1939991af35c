//! Low-probability estimation (arXiv:2410.13211): the probability that a model's argmax at
//! the last position is a target token when its inputs are drawn from a distribution of
//! independent tokens per position — far too small for naive sampling to see.
//!
//! Every estimator reads the model through an [`Oracle`] (last-position logits, the
//! gradient of the target logit with respect to the one-hot inputs, the activations the
//! output layer reads and its weights), so the samplers are tested on models whose answers
//! are known in closed form and run unchanged on a GPT ([`GptOracle`], ONNX Runtime).
//!
//! - [`exact`]: enumerates every input (the ground truth);
//! - [`naive`]: the share of `n` samples that hit;
//! - [`itgis`]: importance sampling from independent tokens reweighted by a moving
//!   average of gradient scores, `q_i(v) ∝ p_i(v) · exp(s_i(v)/T)`;
//! - [`mhis`]: Metropolis–Hastings chains with stationary law `∝ p(x) · exp(logit_t(x)/T)`
//!   and gradient-informed single-token proposals, reweighted to `p`;
//! - [`Activations::qld`]: the quadratic logit decomposition along the shortest accepting
//!   direction in whitened activation space;
//! - [`Activations::gld`]: a Gaussian fitted to (target logit − max logit);
//! - [`is_loss`] and [`fit_power`]: the paper's Itakura–Saito loss after the calibration
//!   `p̂ ↦ a · p̂^c`.

use crate::NnError;
use crate::gpt::Gpt;
use crate::graph::Graph;
use crate::runtime::SessionOptions;
use crate::tensor::{DType, Tensor};
use rand::Rng;

/// Independent tokens per position: for each position, `(token, probability)` pairs whose
/// probabilities are positive and sum to 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Dist {
    pub name: String,
    pub positions: Vec<Vec<(usize, f64)>>,
}

impl Dist {
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The number of distinct inputs, or `None` above `u64::MAX`.
    pub fn support(&self) -> Option<u64> {
        self.positions.iter().try_fold(1u64, |acc, p| acc.checked_mul(p.len() as u64))
    }

    /// `[position][token]` log-probabilities over the vocabulary (−∞ outside the support).
    pub fn log_table(&self, vocab: usize) -> Vec<Vec<f64>> {
        self.positions
            .iter()
            .map(|opts| {
                let mut row = vec![f64::NEG_INFINITY; vocab];
                for &(t, p) in opts {
                    row[t] = p.ln();
                }
                row
            })
            .collect()
    }

    /// One input drawn from the distribution, appended to `out`.
    pub fn sample_into(&self, rng: &mut impl Rng, out: &mut Vec<u32>) {
        for opts in &self.positions {
            out.push(draw(opts.iter().map(|&(_, p)| p), rng).map(|i| opts[i].0).unwrap_or(opts[0].0) as u32);
        }
    }
}

/// Index drawn with probability proportional to `weights` (non-negative, not all zero).
fn draw(weights: impl Iterator<Item = f64> + Clone, rng: &mut impl Rng) -> Option<usize> {
    let total: f64 = weights.clone().sum();
    let mut u = rng.random::<f64>() * total;
    let mut last = None;
    for (i, w) in weights.enumerate() {
        if w > 0.0 {
            last = Some(i);
            if u < w {
                return Some(i);
            }
            u -= w;
        }
    }
    last
}

/// What the estimators may ask of a model. Inputs are flat `[n, len]` token ids.
pub trait Oracle {
    fn vocab(&self) -> usize;
    /// Last-position logits, `[n, vocab]`.
    fn logits(&mut self, xs: &[u32], n: usize) -> Result<Vec<f32>, NnError>;
    /// Last-position logits `[n, vocab]` and the gradient of the last-position logit of
    /// `target` with respect to the one-hot inputs, `[n, len, vocab]`.
    fn target_grad(&mut self, xs: &[u32], n: usize, target: usize) -> Result<(Vec<f32>, Vec<f32>), NnError>;
    /// The activations the output layer reads at the last position, `[n, width]`.
    fn activations(&mut self, xs: &[u32], n: usize) -> Result<Vec<f32>, NnError>;
    /// The output layer, `[width, vocab]` (logits = activations · W_U), and `width`.
    fn unembedding(&self) -> (Vec<f32>, usize);
}

/// The index of the largest value; the first on ties (as `argmax` in PyTorch and NumPy).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The exact probability of each token being the argmax: every input is enumerated and
/// weighted by its probability, in batches of `batch`. `progress` gets the share done and
/// answers whether to go on; `None` when it said no.
pub fn exact(
    o: &mut dyn Oracle,
    d: &Dist,
    batch: usize,
    progress: &mut dyn FnMut(f64) -> bool,
) -> Result<Option<Vec<f64>>, NnError> {
    let v = o.vocab();
    let total =
        d.support().ok_or_else(|| NnError::Graph("the distribution has too many inputs to enumerate".into()))?;
    let len = d.len();
    let mut probs = vec![0f64; v];
    let mut digits = vec![0usize; len];
    let mut xs = Vec::with_capacity(batch * len);
    let mut ws = Vec::with_capacity(batch);
    let mut done = 0u64;
    let mut flush = |xs: &mut Vec<u32>, ws: &mut Vec<f64>, o: &mut dyn Oracle| -> Result<(), NnError> {
        let n = ws.len();
        if n == 0 {
            return Ok(());
        }
        let logits = o.logits(xs, n)?;
        for (row, w) in logits.chunks(v).zip(ws.iter()) {
            probs[argmax(row)] += w;
        }
        xs.clear();
        ws.clear();
        Ok(())
    };
    for _ in 0..total {
        let mut w = 1.0;
        for (pos, &k) in digits.iter().enumerate() {
            let (t, p) = d.positions[pos][k];
            xs.push(t as u32);
            w *= p;
        }
        ws.push(w);
        // Next input: the last position counts fastest.
        for pos in (0..len).rev() {
            digits[pos] += 1;
            if digits[pos] < d.positions[pos].len() {
                break;
            }
            digits[pos] = 0;
        }
        if ws.len() == batch {
            flush(&mut xs, &mut ws, o)?;
            done += batch as u64;
            if !progress(done as f64 / total as f64) {
                return Ok(None);
            }
        }
    }
    flush(&mut xs, &mut ws, o)?;
    Ok(Some(probs))
}

/// The share of `n` inputs drawn from `d` whose argmax is each token (one sample serves
/// every target).
pub fn naive(o: &mut dyn Oracle, d: &Dist, n: usize, batch: usize, rng: &mut impl Rng) -> Result<Vec<f64>, NnError> {
    let v = o.vocab();
    let mut hits = vec![0usize; v];
    sample_batches(d, n, batch, rng, |xs, b| {
        for row in o.logits(xs, b)?.chunks(v) {
            hits[argmax(row)] += 1;
        }
        Ok(())
    })?;
    Ok(hits.into_iter().map(|h| h as f64 / n.max(1) as f64).collect())
}

/// Settings of [`itgis`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItgisConfig {
    /// Samples in all.
    pub samples: usize,
    /// Samples per proposal update.
    pub batch: usize,
    /// Temperature T of `q_i(v) ∝ p_i(v) · exp(s_i(v)/T)`.
    pub temperature: f64,
    /// Decay of the moving average of gradient scores.
    pub decay: f64,
}

/// Independent-token gradient importance sampling. The proposal is a product of
/// per-position distributions `q_i(v) ∝ p_i(v) · exp(s_i(v)/T_k)`, where `s` is an
/// exponentially decayed sum of the batch-mean gradients of the target logit with respect
/// to the one-hot inputs and `T_k` rescales `T` by the decayed sum's total weight (so the
/// scores act as an average). The first batch samples from `p`. The estimate is the mean of
/// `1[argmax = target] · p(x)/q(x)`: unbiased for any scores, as long as `q` stays positive
/// wherever `p` is (scores over ~700·T apart underflow it).
pub fn itgis(o: &mut dyn Oracle, d: &Dist, target: usize, c: ItgisConfig, rng: &mut impl Rng) -> Result<f64, NnError> {
    let (v, len) = (o.vocab(), d.len());
    let mut scores = vec![0f64; len * v];
    let mut sum = 0f64;
    let mut left = c.samples;
    let mut k = 0i32;
    while left > 0 {
        let b = left.min(c.batch.max(1));
        let temp = if k == 0 { 1.0 } else { c.temperature * (1.0 - c.decay.powi(k)) / (1.0 - c.decay) };
        // Per position: the proposal over the options, and log(p/q) for each option.
        let proposals: Vec<(Vec<f64>, Vec<f64>)> = d
            .positions
            .iter()
            .enumerate()
            .map(|(pos, opts)| {
                let logits: Vec<f64> = opts.iter().map(|&(t, p)| p.ln() + scores[pos * v + t] / temp).collect();
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
                let q: Vec<f64> = logits.iter().map(|l| (l - lse).exp()).collect();
                let log_ratio = opts.iter().zip(&logits).map(|(&(_, p), l)| p.ln() - (l - lse)).collect();
                (q, log_ratio)
            })
            .collect();
        let mut xs = Vec::with_capacity(b * len);
        let mut log_w = vec![0f64; b];
        for lw in log_w.iter_mut() {
            for (pos, (q, lr)) in proposals.iter().enumerate() {
                let i = draw(q.iter().copied(), rng).unwrap_or(0);
                xs.push(d.positions[pos][i].0 as u32);
                *lw += lr[i];
            }
        }
        let (logits, grad) = o.target_grad(&xs, b, target)?;
        for (row, lw) in logits.chunks(v).zip(&log_w) {
            if argmax(row) == target {
                sum += lw.exp();
            }
        }
        for s in scores.iter_mut() {
            *s *= c.decay;
        }
        for g in grad.chunks(len * v) {
            for (s, &gi) in scores.iter_mut().zip(g) {
                *s += gi as f64 / b as f64;
            }
        }
        left -= b;
        k += 1;
    }
    Ok(sum / c.samples.max(1) as f64)
}

/// Settings of [`mhis`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MhisConfig {
    /// Chains run side by side.
    pub chains: usize,
    /// Steps of each chain that are kept.
    pub steps: usize,
    /// Steps of each chain dropped first.
    pub burn_in: usize,
    /// Temperature T of the stationary law `∝ p(x) · exp(logit_t(x)/T)` and of the proposals.
    pub temperature: f64,
}

/// Metropolis–Hastings importance sampling. Chains start from `p`; each step picks a
/// position uniformly and proposes a token from `∝ p_i(v) · exp(g_i(v)/T)`, `g` the
/// gradient of the target logit at the current input, accepted by the Metropolis–Hastings
/// rule for the stationary law `π(x) ∝ p(x) · exp(s(x)/T)`, `s` the target logit. Since
/// `E_p[1_t] = E_π[1_t · e^(−s/T)] / E_π[e^(−s/T)]`, the estimate is that ratio over the
/// kept states. Model calls: `chains · (1 + burn_in + steps)` (the first evaluates the
/// starting states).
pub fn mhis(o: &mut dyn Oracle, d: &Dist, target: usize, c: MhisConfig, rng: &mut impl Rng) -> Result<f64, NnError> {
    let (v, len, n) = (o.vocab(), d.len(), c.chains.max(1));
    let logp = d.log_table(v);
    let mut cur = Vec::with_capacity(n * len);
    for _ in 0..n {
        d.sample_into(rng, &mut cur);
    }
    let (logits, mut grads) = o.target_grad(&cur, n, target)?;
    let mut score: Vec<f64> = logits.chunks(v).map(|r| r[target] as f64).collect();
    let mut hit: Vec<bool> = logits.chunks(v).map(|r| argmax(r) == target).collect();
    // The proposal at position `pos` of chain `b` given its gradient `g` `[len, vocab]`:
    // log-probabilities over the vocabulary.
    let proposal = |g: &[f32], pos: usize| -> Vec<f64> {
        let l: Vec<f64> = (0..v).map(|t| logp[pos][t] + g[pos * v + t] as f64 / c.temperature).collect();
        let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + l.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        l.iter().map(|x| x - lse).collect()
    };
    // Σ e^(−s/T) over kept states and over those that hit, scaled by e^(−m), m the largest
    // exponent so far.
    let (mut m, mut den, mut num) = (f64::NEG_INFINITY, 0f64, 0f64);
    for step in 0..c.burn_in + c.steps {
        let mut prop = cur.clone();
        let mut moves = Vec::with_capacity(n);
        for b in 0..n {
            let pos = rng.random_range(0..len);
            let lq = proposal(&grads[b * len * v..(b + 1) * len * v], pos);
            let t = draw(lq.iter().map(|l| l.exp()), rng).unwrap_or(cur[b * len + pos] as usize);
            prop[b * len + pos] = t as u32;
            moves.push((pos, t, lq[t]));
        }
        let (plogits, pgrads) = o.target_grad(&prop, n, target)?;
        for (b, &(pos, t, log_fwd)) in moves.iter().enumerate() {
            let old = cur[b * len + pos] as usize;
            let pscore = plogits[b * v + target] as f64;
            let back = proposal(&pgrads[b * len * v..(b + 1) * len * v], pos)[old];
            let log_accept = (pscore - score[b]) / c.temperature + logp[pos][t] - logp[pos][old] + back - log_fwd;
            if log_accept >= 0.0 || rng.random::<f64>().ln() < log_accept {
                cur[b * len + pos] = t as u32;
                score[b] = pscore;
                hit[b] = argmax(&plogits[b * v..(b + 1) * v]) == target;
                grads[b * len * v..(b + 1) * len * v].copy_from_slice(&pgrads[b * len * v..(b + 1) * len * v]);
            }
        }
        if step >= c.burn_in {
            for b in 0..n {
                let e = -score[b] / c.temperature;
                if e > m {
                    let scale = (m - e).exp();
                    (den, num, m) = (den * scale, num * scale, e);
                }
                let w = (e - m).exp();
                den += w;
                if hit[b] {
                    num += w;
                }
            }
        }
    }
    Ok(if den > 0.0 { num / den } else { 0.0 })
}

/// Samples of the activations the output layer reads, for [`Activations`]: `[n, width]`.
pub fn activation_samples(
    o: &mut dyn Oracle,
    d: &Dist,
    n: usize,
    batch: usize,
    rng: &mut impl Rng,
) -> Result<Vec<f32>, NnError> {
    let mut out = Vec::new();
    sample_batches(d, n, batch, rng, |xs, b| {
        out.extend(o.activations(xs, b)?);
        Ok(())
    })?;
    Ok(out)
}

/// `n` inputs drawn from `d`, handed to `f` in batches of at most `batch` (flat ids, count).
fn sample_batches(
    d: &Dist,
    n: usize,
    batch: usize,
    rng: &mut impl Rng,
    mut f: impl FnMut(&[u32], usize) -> Result<(), NnError>,
) -> Result<(), NnError> {
    let mut left = n;
    while left > 0 {
        let b = left.min(batch.max(1));
        let mut xs = Vec::with_capacity(b * d.len());
        for _ in 0..b {
            d.sample_into(rng, &mut xs);
        }
        f(&xs, b)?;
        left -= b;
    }
    Ok(())
}

/// Activations sampled from one distribution, prepared once for every target's
/// extrapolation: their logits (for [`Activations::gld`]) and their whitened form (for
/// [`Activations::qld`]).
pub struct Activations {
    width: usize,
    vocab: usize,
    /// Each sample's logits, in f64.
    logits: Vec<Vec<f64>>,
    /// Whitened samples `z = L⁻¹(a − μ)`, `LLᵀ = Σ + εI`.
    z: Vec<Vec<f64>>,
    /// In whitened coordinates logits = z · P + b: `pull[t]` is column t of P = Lᵀ W_U.
    pull: Vec<Vec<f64>>,
    /// b = μ · W_U.
    bias: Vec<f64>,
}

impl Activations {
    /// From samples `acts` `[n, width]` and the output layer `wu` `[width, vocab]`.
    pub fn new(acts: &[f32], wu: &[f32], width: usize) -> Activations {
        let vocab = wu.len() / width;
        let n = acts.len() / width;
        let a: Vec<Vec<f64>> = acts.chunks(width).map(|r| r.iter().map(|&x| x as f64).collect()).collect();
        let logits = acts.chunks(width).map(|r| matvec(r, wu, vocab)).collect();
        let mean: Vec<f64> = (0..width).map(|j| a.iter().map(|r| r[j]).sum::<f64>() / n.max(1) as f64).collect();
        let mut cov = vec![vec![0f64; width]; width];
        for r in &a {
            for i in 0..width {
                let di = r[i] - mean[i];
                for j in 0..=i {
                    cov[i][j] += di * (r[j] - mean[j]) / n as f64;
                }
            }
        }
        let l = cholesky(&cov, 1e-5);
        let z =
            a.iter().map(|r| forward_solve(&l, &r.iter().zip(&mean).map(|(x, m)| x - m).collect::<Vec<_>>())).collect();
        let w = |i: usize, t: usize| wu[i * vocab + t] as f64;
        let pull =
            (0..vocab).map(|t| (0..width).map(|k| (k..width).map(|i| l[i][k] * w(i, t)).sum()).collect()).collect();
        let bias = (0..vocab).map(|t| (0..width).map(|i| mean[i] * w(i, t)).sum()).collect();
        Activations { width, vocab, logits, z, pull, bias }
    }

    /// Gaussian logit difference: `P(N(μ, σ²) > 0)` for μ, σ the mean and standard
    /// deviation of (target logit − max logit) over the samples.
    pub fn gld(&self, target: usize) -> f64 {
        let diffs: Vec<f64> =
            self.logits.iter().map(|l| l[target] - l.iter().cloned().fold(f64::NEG_INFINITY, f64::max)).collect();
        if diffs.is_empty() {
            return 0.0;
        }
        let n = diffs.len() as f64;
        let mu = diffs.iter().sum::<f64>() / n;
        let sd = (diffs.iter().map(|d| (d - mu).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        if sd <= 0.0 {
            return if mu >= 0.0 { 1.0 } else { 0.0 };
        }
        0.5 * libm::erfc(-mu / sd / std::f64::consts::SQRT_2)
    }

    /// Quadratic logit decomposition: `d` is the shortest whitened vector whose logits make
    /// `target` the argmax (Hildreth's dual coordinate ascent, to a tolerance), normalised;
    /// 0 when no such vector is found. Each sample splits into its coordinate along `d` and
    /// the rest; pairing every rest with every coordinate (n² inputs), the estimate is the
    /// share of pairs whose logits pick `target` — for each rest an interval of
    /// coordinates, counted by binary search.
    pub fn qld(&self, target: usize) -> f64 {
        let (z, n) = (&self.z, self.z.len());
        if n < 2 {
            return 0.0;
        }
        // Constraints (pull_t − pull_u) · z + (b_t − b_u) ≥ 0 for every u ≠ target.
        let cons: Vec<(Vec<f64>, f64)> = (0..self.vocab)
            .filter(|&u| u != target)
            .map(|u| {
                let a = (0..self.width).map(|k| self.pull[target][k] - self.pull[u][k]).collect();
                (a, self.bias[target] - self.bias[u])
            })
            .collect();
        let Some(dir) = shortest_accepting(&cons, self.width) else { return 0.0 };
        let norm = dir.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            // The mean activation already picks the target: no direction to extrapolate along.
            return (z.iter().filter(|zi| accepts(&cons, zi)).count() as f64) / n as f64;
        }
        let dir: Vec<f64> = dir.iter().map(|x| x / norm).collect();
        let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
        let mut coords: Vec<f64> = z.iter().map(|zi| dot(zi, &dir)).collect();
        coords.sort_by(|a, b| a.total_cmp(b));
        let mut pairs = 0f64;
        for zi in z {
            let c0 = dot(zi, &dir);
            let rest: Vec<f64> = zi.iter().zip(&dir).map(|(x, d)| x - c0 * d).collect();
            // Accept when for every constraint: a·rest + b + r (a·dir) ≥ 0.
            let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
            for (av, b) in &cons {
                let num = dot(av, &rest) + b;
                let den = dot(av, &dir);
                if den > 0.0 {
                    lo = lo.max(-num / den);
                } else if den < 0.0 {
                    hi = hi.min(-num / den);
                } else if num < 0.0 {
                    hi = f64::NEG_INFINITY;
                }
            }
            if hi > lo {
                let below_hi = coords.partition_point(|&c| c <= hi);
                let below_lo = coords.partition_point(|&c| c < lo);
                pairs += below_hi.saturating_sub(below_lo) as f64;
            }
        }
        pairs / (n as f64 * n as f64)
    }
}

/// Logits `a · W_U` of one activation vector, in f64.
fn matvec(a: &[f32], wu: &[f32], vocab: usize) -> Vec<f64> {
    let mut out = vec![0f64; vocab];
    for (i, &ai) in a.iter().enumerate() {
        for (o, &w) in out.iter_mut().zip(&wu[i * vocab..(i + 1) * vocab]) {
            *o += ai as f64 * w as f64;
        }
    }
    out
}

fn accepts(cons: &[(Vec<f64>, f64)], z: &[f64]) -> bool {
    cons.iter().all(|(a, b)| a.iter().zip(z).map(|(x, y)| x * y).sum::<f64>() + b >= 0.0)
}

/// The shortest `z` with `a · z + b ≥ 0` for every constraint, by Hildreth's method
/// (coordinate ascent on the dual, exact for this quadratic programme); `None` when the
/// constraints cannot all hold (within the iterations).
fn shortest_accepting(cons: &[(Vec<f64>, f64)], width: usize) -> Option<Vec<f64>> {
    let mut z = vec![0f64; width];
    let mut lambda = vec![0f64; cons.len()];
    let norms: Vec<f64> = cons.iter().map(|(a, _)| a.iter().map(|x| x * x).sum()).collect();
    for _ in 0..20_000 {
        let mut change = 0f64;
        for (k, (a, b)) in cons.iter().enumerate() {
            if norms[k] == 0.0 {
                continue;
            }
            let slack = a.iter().zip(&z).map(|(x, y)| x * y).sum::<f64>() + b;
            let step = (-slack / norms[k]).max(-lambda[k]);
            if step != 0.0 {
                lambda[k] += step;
                for (zi, ai) in z.iter_mut().zip(a) {
                    *zi += step * ai;
                }
                change = change.max(step.abs() * norms[k].sqrt());
            }
        }
        if change < 1e-10 {
            break;
        }
    }
    // A small tolerance: the iterate reaches the boundary only in the limit.
    let ok = cons.iter().all(|(a, b)| {
        let scale = a.iter().map(|x| x.abs()).sum::<f64>().max(1.0);
        a.iter().zip(&z).map(|(x, y)| x * y).sum::<f64>() + b >= -1e-6 * scale
    });
    ok.then_some(z)
}

/// The lower Cholesky factor of `cov + eps·I` (`cov` given on and below the diagonal).
fn cholesky(cov: &[Vec<f64>], eps: f64) -> Vec<Vec<f64>> {
    let n = cov.len();
    let mut l = vec![vec![0f64; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                l[i][i] = (cov[i][i] + eps - s).max(1e-300).sqrt();
            } else {
                l[i][j] = (cov[i][j] - s) / l[j][j];
            }
        }
    }
    l
}

fn forward_solve(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let mut z = vec![0f64; b.len()];
    for i in 0..b.len() {
        let s: f64 = (0..i).map(|k| l[i][k] * z[k]).sum();
        z[i] = (b[i] - s) / l[i][i];
    }
    z
}

/// The paper's Itakura–Saito loss of an estimate `q` of `p`: `p/q − ln(p/q) − 1`.
pub fn is_loss(p: f64, q: f64) -> f64 {
    let r = p / q;
    r - r.ln() - 1.0
}

/// The calibration `p̂ ↦ a · p̂^c` that minimises the mean IS loss over `(p, p̂)` pairs,
/// as `(a, c)`; with `constant`, `c = 0` (the best constant). Estimates must be positive
/// (clamp zeros to a floor first). For a fixed `c` the best `a` is `mean(p / p̂^c)`; the
/// loss is convex in `(ln a, c)`, so `c` is found by golden-section search on [−1, 4].
pub fn fit_power(pairs: &[(f64, f64)], constant: bool) -> (f64, f64) {
    let best_a = |c: f64| pairs.iter().map(|&(p, q)| p / q.powf(c)).sum::<f64>() / pairs.len() as f64;
    let loss = |c: f64| {
        let a = best_a(c);
        pairs.iter().map(|&(p, q)| is_loss(p, a * q.powf(c))).sum::<f64>()
    };
    if constant || pairs.len() < 2 {
        return (best_a(0.0), 0.0);
    }
    let (mut lo, mut hi) = (-1.0f64, 4.0f64);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let (m1, m2) = (hi - g * (hi - lo), lo + g * (hi - lo));
        if loss(m1) <= loss(m2) {
            hi = m2;
        } else {
            lo = m1;
        }
    }
    let c = (lo + hi) / 2.0;
    (best_a(c), c)
}

/// Last-position logits of a GPT on one real-valued "one-hot" input `[len, vocab]` (rows
/// may blend tokens): the function whose gradient [`GptOracle`] takes, for checking it.
pub fn onehot_logits(model: &Gpt, onehot: &[f32], len: usize) -> Result<Vec<f32>, NnError> {
    let v = model.spec.vocab;
    let mut g = Graph::new(DType::F32);
    let p = model.param_initializers(&mut g);
    let x = g.input("onehot", DType::F32, &[1, len as i64, v as i64]);
    let emb = g.matmul(x, p.get("wte"));
    let pass = model.forward_embeddings(&mut g, &p, emb)?;
    let last = g.slice(pass.logits, 1, len as i64 - 1, len as i64);
    g.output(last, "logits");
    let out = crate::exec::run_graph(
        &g,
        &[("onehot", &Tensor::f32(vec![1, len, v], onehot.to_vec()))],
        SessionOptions::default(),
    )?;
    Ok(f32s(out.into_iter().next().expect("logits")))
}

/// A GPT as an [`Oracle`]: two ONNX Runtime sessions over fixed-length inputs (any batch).
pub struct GptOracle {
    vocab: usize,
    len: usize,
    width: usize,
    wu: Vec<f32>,
    forward: ort::session::Session,
    gradient: ort::session::Session,
}

impl GptOracle {
    /// Sessions for inputs of `len` tokens (at most the model's context).
    pub fn new(model: &Gpt, len: usize, opts: SessionOptions) -> Result<GptOracle, NnError> {
        let (v, t) = (model.spec.vocab, len as i64);
        // Forward: token ids → last-position logits and the final LayerNorm's output.
        let mut g = Graph::new(DType::F32);
        let p = model.param_initializers(&mut g);
        let ids = g.input("input_ids", DType::I64, &[-1, t]);
        let pass = model.training_forward(&mut g, &p, ids)?;
        let logits = g.slice(pass.logits, 1, t - 1, t);
        let normed = g.slice(pass.normed, 1, t - 1, t);
        g.output(logits, "logits");
        g.output(normed, "normed");
        let forward = crate::runtime::session(&g.to_onnx_bytes("labrun low-probability forward"), opts)?;
        // Gradient: one-hot inputs → logits and d(Σ logits ⊙ select)/d one-hot, `select`
        // marking the target at the last position.
        let mut g = Graph::new(DType::F32);
        let p = model.param_initializers(&mut g);
        let onehot = g.input("onehot", DType::F32, &[-1, t, v as i64]);
        let select = g.input("select", DType::F32, &[1, t, v as i64]);
        let emb = g.matmul(onehot, p.get("wte"));
        let pass = model.forward_embeddings(&mut g, &p, emb)?;
        let picked = g.mul(pass.logits, select);
        let loss = g.reduce_sum(picked, &[0, 1, 2], false);
        let grads = crate::autodiff::grad(&mut g, loss, &[onehot])?;
        let last = g.slice(pass.logits, 1, t - 1, t);
        g.output(last, "logits");
        g.output(grads[0], "d_onehot");
        let gradient = crate::runtime::session(&g.to_onnx_bytes("labrun low-probability gradient"), opts)?;
        Ok(GptOracle { vocab: v, len, width: model.spec.width, wu: model.unembedding(), forward, gradient })
    }

    fn ids(&self, xs: &[u32], n: usize) -> Result<Tensor, NnError> {
        if xs.len() != n * self.len {
            return Err(NnError::Graph(format!("{} token ids for {n} inputs of {} tokens", xs.len(), self.len)));
        }
        Ok(Tensor::i64(vec![n, self.len], xs.iter().map(|&x| x as i64).collect()))
    }
}

fn f32s(t: Tensor) -> Vec<f32> {
    t.as_f32().map(|s| s.to_vec()).unwrap_or_else(|| t.to_f64().into_iter().map(|x| x as f32).collect())
}

/// `v`, unless it holds NaN or infinity: an argmax over those would be a silent guess.
fn finite(v: Vec<f32>, what: &str) -> Result<Vec<f32>, NnError> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(v)
    } else {
        Err(NnError::NonFiniteOutput(format!(
            "the model's {what} hold NaN or infinity; its weights are broken (retrain it with a lower learning rate)"
        )))
    }
}

impl Oracle for GptOracle {
    fn vocab(&self) -> usize {
        self.vocab
    }

    fn logits(&mut self, xs: &[u32], n: usize) -> Result<Vec<f32>, NnError> {
        let ids = self.ids(xs, n)?;
        let out = crate::exec::run_session(&mut self.forward, &[("input_ids", &ids)])?;
        finite(f32s(out.into_iter().next().expect("logits")), "logits")
    }

    fn activations(&mut self, xs: &[u32], n: usize) -> Result<Vec<f32>, NnError> {
        let ids = self.ids(xs, n)?;
        let out = crate::exec::run_session(&mut self.forward, &[("input_ids", &ids)])?;
        finite(f32s(out.into_iter().nth(1).expect("normed")), "activations")
    }

    fn target_grad(&mut self, xs: &[u32], n: usize, target: usize) -> Result<(Vec<f32>, Vec<f32>), NnError> {
        let (v, t) = (self.vocab, self.len);
        self.ids(xs, n)?;
        let mut oh = vec![0f32; n * t * v];
        for (i, &x) in xs.iter().enumerate() {
            oh[i * v + x as usize] = 1.0;
        }
        let mut sel = vec![0f32; t * v];
        sel[(t - 1) * v + target] = 1.0;
        let out = crate::exec::run_session(
            &mut self.gradient,
            &[("onehot", &Tensor::f32(vec![n, t, v], oh)), ("select", &Tensor::f32(vec![1, t, v], sel))],
        )?;
        let mut it = out.into_iter();
        let logits = finite(f32s(it.next().expect("logits")), "logits")?;
        let grad = finite(f32s(it.next().expect("gradient")), "input gradients")?;
        Ok((logits, grad))
    }

    fn unembedding(&self) -> (Vec<f32>, usize) {
        (self.wu.clone(), self.width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A bag of embeddings: activations `Σ_i E_i[x_i]`, logits `activations · W_U`; the
    /// gradient of a logit with respect to the one-hot inputs is `E_i[v] · W_U[:, t]`.
    struct Linear {
        vocab: usize,
        width: usize,
        emb: Vec<Vec<f32>>,
        wu: Vec<f32>,
    }

    impl Linear {
        fn new(vocab: usize, len: usize, width: usize, seed: u64) -> Linear {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let emb = (0..len).map(|_| (0..vocab * width).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect();
            let wu = (0..width * vocab).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            Linear { vocab, width, emb, wu }
        }
        fn act(&self, x: &[u32]) -> Vec<f32> {
            let mut a = vec![0f32; self.width];
            for (i, &t) in x.iter().enumerate() {
                for (aj, e) in a.iter_mut().zip(&self.emb[i][t as usize * self.width..]) {
                    *aj += e;
                }
            }
            a
        }
        fn logit_row(&self, a: &[f32]) -> Vec<f32> {
            matvec(a, &self.wu, self.vocab).into_iter().map(|x| x as f32).collect()
        }
    }

    impl Oracle for Linear {
        fn vocab(&self) -> usize {
            self.vocab
        }
        fn logits(&mut self, xs: &[u32], n: usize) -> Result<Vec<f32>, NnError> {
            let len = xs.len() / n;
            Ok(xs.chunks(len).flat_map(|x| self.logit_row(&self.act(x))).collect())
        }
        fn activations(&mut self, xs: &[u32], n: usize) -> Result<Vec<f32>, NnError> {
            let len = xs.len() / n;
            Ok(xs.chunks(len).flat_map(|x| self.act(x)).collect())
        }
        fn target_grad(&mut self, xs: &[u32], n: usize, target: usize) -> Result<(Vec<f32>, Vec<f32>), NnError> {
            let len = xs.len() / n;
            let logits = self.logits(xs, n)?;
            let mut grad = Vec::with_capacity(n * len * self.vocab);
            for _ in 0..n {
                for e in &self.emb {
                    for v in 0..self.vocab {
                        grad.push(
                            (0..self.width).map(|j| e[v * self.width + j] * self.wu[j * self.vocab + target]).sum(),
                        );
                    }
                }
            }
            Ok((logits, grad))
        }
        fn unembedding(&self) -> (Vec<f32>, usize) {
            (self.wu.clone(), self.width)
        }
    }

    fn dist(vocab: usize, len: usize, options: usize, seed: u64) -> Dist {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let positions = (0..len)
            .map(|_| {
                let mut toks: Vec<usize> = (0..vocab).collect();
                for i in 0..options {
                    let j = rng.random_range(i..vocab);
                    toks.swap(i, j);
                }
                let w: Vec<f64> = (0..options).map(|_| rng.random_range(0.2..1.0)).collect();
                let s: f64 = w.iter().sum();
                toks[..options].iter().zip(&w).map(|(&t, &wi)| (t, wi / s)).collect()
            })
            .collect();
        Dist { name: "test".into(), positions }
    }

    /// Brute force by nested loops over a 3-position distribution.
    fn brute(o: &mut Linear, d: &Dist) -> Vec<f64> {
        let mut p = vec![0f64; o.vocab];
        for &(a, pa) in &d.positions[0] {
            for &(b, pb) in &d.positions[1] {
                for &(c, pc) in &d.positions[2] {
                    let l = o.logits(&[a as u32, b as u32, c as u32], 1).unwrap();
                    p[argmax(&l)] += pa * pb * pc;
                }
            }
        }
        p
    }

    #[test]
    fn exact_matches_brute_force_in_any_batching() {
        let mut o = Linear::new(7, 3, 4, 1);
        let d = dist(7, 3, 5, 2);
        let want = brute(&mut o, &d);
        for batch in [1, 7, 1000] {
            let got = exact(&mut o, &d, batch, &mut |_| true).unwrap().unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "batch {batch}: {got:?} vs {want:?}");
            }
        }
        assert!((want.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    /// The mean and standard error of `runs` estimates.
    fn mean_se(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, (var / n).sqrt())
    }

    /// A target with a small but not tiny probability, for sharp tests.
    fn rare_target(p: &[f64]) -> usize {
        (0..p.len())
            .filter(|&t| p[t] > 0.005 && p[t] < 0.1)
            .min_by(|&a, &b| p[a].total_cmp(&p[b]))
            .expect("a rare target")
    }

    #[test]
    fn itgis_is_unbiased_and_its_weights_average_to_one() {
        let mut o = Linear::new(8, 3, 4, 3);
        let d = dist(8, 3, 6, 4);
        let p = exact(&mut o, &d, 64, &mut |_| true).unwrap().unwrap();
        let t = rare_target(&p);
        let c = ItgisConfig { samples: 256, batch: 32, temperature: 0.5, decay: 0.9 };
        let runs: Vec<f64> =
            (0..400).map(|s| itgis(&mut o, &d, t, c, &mut ChaCha8Rng::seed_from_u64(s)).unwrap()).collect();
        let (m, se) = mean_se(&runs);
        assert!((m - p[t]).abs() < 4.0 * se, "ITGIS mean {m} ± {se} vs exact {}", p[t]);
        // Importance weights p/q average to 1: the estimate for a token that always wins.
        let mut sure = Linear::new(8, 3, 4, 3);
        for j in 0..sure.width {
            sure.wu[j * 8] = 0.0;
        }
        for e in sure.emb.iter_mut() {
            e.iter_mut().for_each(|x| *x = x.abs());
        }
        for j in 0..sure.width {
            sure.wu[j * 8 + 1] = 3.0;
        }
        // Token 1's logit is 3·Σ|E| > any other: it always wins; its gradient still
        // tilts the proposal.
        let runs: Vec<f64> =
            (0..200).map(|s| itgis(&mut sure, &d, 1, c, &mut ChaCha8Rng::seed_from_u64(s)).unwrap()).collect();
        let (m, se) = mean_se(&runs);
        assert!(se > 0.0, "the proposal must differ from p for this test to mean anything");
        assert!((m - 1.0).abs() < 4.0 * se, "mean weight {m} ± {se}");
    }

    #[test]
    fn mhis_chains_have_the_right_stationary_law() {
        let mut o = Linear::new(6, 3, 3, 5);
        let d = dist(6, 3, 4, 6);
        let p = exact(&mut o, &d, 64, &mut |_| true).unwrap().unwrap();
        let t = rare_target(&p);
        // Long chains: the ratio estimator converges to p only if the chains' law is
        // p(x)·exp(s/T)/Z. Several temperatures, as a wrong acceptance rule shows at some.
        for temp in [0.3, 1.0, 3.0] {
            let c = MhisConfig { chains: 32, steps: 2000, burn_in: 100, temperature: temp };
            let runs: Vec<f64> =
                (0..8).map(|s| mhis(&mut o, &d, t, c, &mut ChaCha8Rng::seed_from_u64(s)).unwrap()).collect();
            let (m, se) = mean_se(&runs);
            assert!((m - p[t]).abs() < 4.0 * se + 0.02 * p[t], "T={temp}: MHIS {m} ± {se} vs exact {}", p[t]);
        }
    }

    #[test]
    fn naive_counts_hits() {
        let mut o = Linear::new(6, 3, 3, 7);
        let d = dist(6, 3, 4, 8);
        let p = exact(&mut o, &d, 64, &mut |_| true).unwrap().unwrap();
        let est = naive(&mut o, &d, 200_000, 4096, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        for (e, q) in est.iter().zip(&p) {
            assert!((e - q).abs() < 5.0 * (q * (1.0 - q) / 200_000.0).sqrt() + 1e-9, "{est:?} vs {p:?}");
        }
    }

    #[test]
    fn shortest_accepting_vector_by_hand() {
        // z₁ ≥ 1 and z₂ ≥ 2: the shortest is (1, 2).
        let cons = vec![(vec![1.0, 0.0], -1.0), (vec![0.0, 1.0], -2.0)];
        let z = shortest_accepting(&cons, 2).unwrap();
        assert!((z[0] - 1.0).abs() < 1e-8 && (z[1] - 2.0).abs() < 1e-8, "{z:?}");
        // z₁ + z₂ ≥ 2: the shortest is (1, 1).
        let z = shortest_accepting(&[(vec![1.0, 1.0], -2.0)], 2).unwrap();
        assert!((z[0] - 1.0).abs() < 1e-8 && (z[1] - 1.0).abs() < 1e-8, "{z:?}");
        // z₁ ≥ 1 and −z₁ ≥ 0 cannot both hold.
        assert!(shortest_accepting(&[(vec![1.0], -1.0), (vec![-1.0], 0.0)], 1).is_none());
    }

    #[test]
    fn qld_and_gld_track_a_frequent_token() {
        // For a token that wins often, both extrapolations should land near its frequency.
        let mut o = Linear::new(6, 3, 3, 9);
        let d = dist(6, 3, 4, 10);
        let p = exact(&mut o, &d, 64, &mut |_| true).unwrap().unwrap();
        let t = (0..6).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        let acts = activation_samples(&mut o, &d, 2000, 500, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let (wu, w) = o.unembedding();
        let fit = Activations::new(&acts, &wu, w);
        let (q, g) = (fit.qld(t), fit.gld(t));
        assert!(q > p[t] / 3.0 && q < (3.0 * p[t]).min(1.0), "QLD {q} vs {}", p[t]);
        assert!(g > p[t] / 4.0 && g <= 1.0, "GLD {g} vs {}", p[t]);
    }

    #[test]
    fn is_loss_and_the_calibration_fit_by_hand() {
        // p/q = 1/2: 0.5 − ln 0.5 − 1 = 0.193147…
        assert!((is_loss(1e-5, 2e-5) - (0.5 + 2f64.ln() - 1.0)).abs() < 1e-12);
        assert_eq!(is_loss(3e-6, 3e-6), 0.0);
        // p = 3 p̂²: the fit finds a = 3, c = 2.
        let pairs: Vec<(f64, f64)> = [1e-3, 3e-3, 1e-2, 5e-2].iter().map(|&q: &f64| (3.0 * q * q, q)).collect();
        let (a, c) = fit_power(&pairs, false);
        assert!((c - 2.0).abs() < 1e-6 && (a / 3.0 - 1.0).abs() < 1e-5, "a {a} c {c}");
        // The best constant is the mean of p (d/da Σ(p/a − ln(p/a) − 1) = 0 at a = mean p).
        let (a, c) = fit_power(&pairs, true);
        let mean = pairs.iter().map(|x| x.0).sum::<f64>() / 4.0;
        assert!(c == 0.0 && (a - mean).abs() < 1e-15);
    }
}
