//! A tabular policy: a position-dependent second-order Markov chain over a small
//! vocabulary, π(x) = Π_t π_t(x_t | x_{t−2}, x_{t−1}), with `softmax(logits + bias)` at each
//! position and context. The logits are π₀'s and stay fixed; RL learns the bias, one per
//! (position, token). Everything is exact where it can be: KL(π‖π₀) by a forward recursion
//! over the chain's states, log-probability gradients in closed form. Sequences are scored
//! by reward models over their one-hot (position, token) features.
//!
//! A policy is a `Model` artifact: `model.json` (`arch: "markov"`, sizes, checkpoints) and
//! `weights.safetensors` (`logits` `[length, vocab+1, vocab+1, vocab]` with context index
//! `vocab` for "before the start", `bias` `[length, vocab]`, and the bias at each RL
//! checkpoint, `checkpoints` `[k, length, vocab]`).

use crate::nnops::Inference;
use crate::{OpError, RunCtx};
use lab_nn::Tensor;
use lab_nn::folder::ModelFolder;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const ARCH: &str = "markov";

/// The largest logit table a policy may have (entries), so that a typo in `vocab` is an
/// error rather than gigabytes.
/// The most logits a policy's table holds.
pub const MAX_TABLE: usize = 1 << 24;

/// A policy saved during RL: its bias, the step it was reached at and its exact KL to π₀.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub step: usize,
    pub kl: f64,
    #[serde(skip)]
    pub bias: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Markov {
    pub length: usize,
    pub vocab: usize,
    /// π₀'s logits, `[length, vocab+1, vocab+1, vocab]`.
    pub logits: Vec<f32>,
    /// The learned bias, `[length, vocab]` (zero for π₀).
    pub bias: Vec<f32>,
    pub checkpoints: Vec<Checkpoint>,
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    arch: String,
    length: usize,
    vocab: usize,
    order: usize,
    #[serde(default)]
    checkpoints: Vec<Checkpoint>,
}

/// Next-token probabilities at every position and context, `[length, vocab+1, vocab+1, vocab]`.
pub struct Table {
    length: usize,
    vocab: usize,
    p: Vec<f64>,
}

/// Token sequences, row-major `[n, length]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Seqs {
    pub length: usize,
    pub tokens: Vec<u32>,
}

impl Seqs {
    pub fn len(&self) -> usize {
        self.tokens.len() / self.length
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn row(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.length..(i + 1) * self.length]
    }

    /// One-hot (position, token) features, `[n, length · vocab]`.
    pub fn one_hot(&self, vocab: usize) -> Vec<f32> {
        self.one_hot_rows(0..self.len(), vocab)
    }

    /// One-hot features of the sequences `rows`.
    pub fn one_hot_rows(&self, rows: std::ops::Range<usize>, vocab: usize) -> Vec<f32> {
        let w = self.length * vocab;
        let mut x = vec![0f32; rows.len() * w];
        let tokens = &self.tokens[rows.start * self.length..rows.end * self.length];
        for (i, &tok) in tokens.iter().enumerate() {
            let (r, t) = (i / self.length, i % self.length);
            x[r * w + t * vocab + tok as usize] = 1.0;
        }
        x
    }

    /// How many distinct sequences there are.
    pub fn unique(&self) -> usize {
        let mut rows: Vec<&[u32]> = (0..self.len()).map(|i| self.row(i)).collect();
        rows.sort_unstable();
        rows.dedup();
        rows.len()
    }
}

impl Markov {
    /// π₀ with logits ~ N(0, logit_std²); equal seeds give equal policies.
    pub fn init(length: usize, vocab: usize, logit_std: f64, seed: u64) -> Result<Markov, OpError> {
        if length == 0 || vocab < 2 {
            return Err(OpError::invalid("vocab", "a policy needs `length` ≥ 1 and `vocab` ≥ 2"));
        }
        let n = length.saturating_mul((vocab + 1).saturating_mul(vocab + 1)).saturating_mul(vocab);
        if n > MAX_TABLE {
            return Err(OpError::invalid(
                "vocab",
                format!("length {length} × (vocab {vocab} + 1)² × vocab is {n} logits, more than {MAX_TABLE}"),
            ));
        }
        if !(logit_std >= 0.0 && logit_std.is_finite()) {
            return Err(OpError::invalid("logit_std", format!("must be a finite number ≥ 0, got {logit_std}")));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, logit_std).expect("checked std");
        let logits = (0..n).map(|_| normal.sample(&mut rng) as f32).collect();
        Ok(Markov { length, vocab, logits, bias: vec![0.0; length * vocab], checkpoints: Vec::new() })
    }

    fn ctx(&self, t: usize, a: usize, b: usize) -> usize {
        ((t * (self.vocab + 1) + a) * (self.vocab + 1) + b) * self.vocab
    }

    /// The next-token probabilities with `bias` added to π₀'s logits.
    pub fn table(&self, bias: &[f32]) -> Table {
        let (l, v) = (self.length, self.vocab);
        let mut p = vec![0f64; self.logits.len()];
        for t in 0..l {
            for a in 0..=v {
                for b in 0..=v {
                    let at = self.ctx(t, a, b);
                    let z: Vec<f64> = (0..v).map(|k| (self.logits[at + k] + bias[t * v + k]) as f64).collect();
                    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = z.iter().map(|x| (x - m).exp()).collect();
                    let s: f64 = e.iter().sum();
                    for k in 0..v {
                        p[at + k] = e[k] / s;
                    }
                }
            }
        }
        Table { length: l, vocab: v, p }
    }

    pub fn save(&self, dir: &Path) -> Result<(), OpError> {
        let meta = ModelFile {
            arch: ARCH.into(),
            length: self.length,
            vocab: self.vocab,
            order: 2,
            checkpoints: self.checkpoints.clone(),
        };
        ModelFolder::new(dir).write_meta(&meta)?;
        let (l, v) = (self.length, self.vocab);
        let mut tensors = vec![
            ("logits".to_string(), Tensor::f32(vec![l, v + 1, v + 1, v], self.logits.clone())),
            ("bias".to_string(), Tensor::f32(vec![l, v], self.bias.clone())),
        ];
        if !self.checkpoints.is_empty() {
            let all = self.checkpoints.iter().flat_map(|c| c.bias.iter().copied()).collect();
            tensors.push(("checkpoints".into(), Tensor::f32(vec![self.checkpoints.len(), l, v], all)));
        }
        lab_nn::weights::save(&ModelFolder::new(dir).weights_path(), &tensors)?;
        Ok(())
    }

    pub fn load(dir: &Path, arg: &str) -> Result<Markov, OpError> {
        let folder = ModelFolder::new(dir);
        let meta: ModelFile = folder
            .read_meta("tabular policy")
            .map_err(|e| OpError::invalid(arg, format!("is not a tabular policy (`model.markov`): {e}")))?;
        if meta.arch != ARCH {
            return Err(OpError::invalid(
                arg,
                format!("is a `{}` model; this op needs a tabular policy from `model.markov`", meta.arch),
            ));
        }
        let (l, v) = (meta.length, meta.vocab);
        let st = lab_nn::weights::load(&folder.weights_path())?;
        let get = |name: &str, shape: Vec<usize>| -> Result<Vec<f32>, OpError> {
            let t = st
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| OpError::Data(format!("{}: the weights have no `{name}`", dir.display())))?;
            match t.as_f32() {
                Some(x) if t.shape == shape => Ok(x.to_vec()),
                _ => Err(OpError::Data(format!(
                    "{}: `{name}` must be f32 of shape {shape:?}, found {:?}",
                    dir.display(),
                    t.shape
                ))),
            }
        };
        let logits = get("logits", vec![l, v + 1, v + 1, v])?;
        let bias = get("bias", vec![l, v])?;
        let mut checkpoints = meta.checkpoints;
        if !checkpoints.is_empty() {
            let all = get("checkpoints", vec![checkpoints.len(), l, v])?;
            for (c, b) in checkpoints.iter_mut().zip(all.chunks_exact(l * v)) {
                c.bias = b.to_vec();
            }
        }
        Ok(Markov { length: l, vocab: v, logits, bias, checkpoints })
    }

    /// Loads the policy argument `name`.
    pub fn from_arg(dir: &std::path::Path, name: &str) -> Result<Markov, OpError> {
        Markov::load(dir, name)
    }
}

impl Table {
    fn at(&self, t: usize, a: usize, b: usize) -> usize {
        ((t * (self.vocab + 1) + a) * (self.vocab + 1) + b) * self.vocab
    }

    /// `n` sequences drawn from the chain.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Seqs {
        let (l, v) = (self.length, self.vocab);
        let mut tokens = Vec::with_capacity(n * l);
        for _ in 0..n {
            let (mut a, mut b) = (v, v);
            for t in 0..l {
                let p = &self.p[self.at(t, a, b)..][..v];
                let u: f64 = rng.random();
                let mut acc = 0.0;
                let mut k = v - 1;
                for (j, &pj) in p.iter().enumerate() {
                    acc += pj;
                    if u < acc {
                        k = j;
                        break;
                    }
                }
                tokens.push(k as u32);
                (a, b) = (b, k);
            }
        }
        Seqs { length: l, tokens }
    }

    /// Exact KL(self ‖ other) of the sequence distributions: Σ_t E_{context ~ self}
    /// KL(self_t(·|context) ‖ other_t(·|context)), carrying the distribution over contexts
    /// (x_{t−2}, x_{t−1}) forward position by position.
    pub fn kl(&self, other: &Table) -> f64 {
        let (l, v) = (self.length, self.vocab);
        let s = v + 1;
        let mut mass = vec![0f64; s * s];
        mass[v * s + v] = 1.0;
        let mut kl = 0.0;
        for t in 0..l {
            let mut next = vec![0f64; s * s];
            for a in 0..s {
                for b in 0..s {
                    let m = mass[a * s + b];
                    if m == 0.0 {
                        continue;
                    }
                    let at = self.at(t, a, b);
                    for k in 0..v {
                        let (p, q) = (self.p[at + k], other.p[at + k]);
                        if p > 0.0 {
                            kl += m * p * (p / q).ln();
                        }
                        next[b * s + k] += m * p;
                    }
                }
            }
            mass = next;
        }
        kl
    }

    /// log π(x) of each sequence.
    pub fn log_prob(&self, seqs: &Seqs) -> Vec<f64> {
        let v = self.vocab;
        (0..seqs.len())
            .map(|i| {
                let (mut a, mut b) = (v, v);
                let mut lp = 0.0;
                for (t, &k) in seqs.row(i).iter().enumerate() {
                    lp += self.p[self.at(t, a, b) + k as usize].ln();
                    (a, b) = (b, k as usize);
                }
                lp
            })
            .collect()
    }

    /// Σ_i w_i ∂ log π(x_i) / ∂ bias: at each position, one-hot(x_t) − π_t(· | context).
    pub fn bias_gradient(&self, seqs: &Seqs, w: &[f64]) -> Vec<f64> {
        let v = self.vocab;
        let mut g = vec![0f64; self.length * v];
        for (i, &wi) in w.iter().enumerate() {
            let (mut a, mut b) = (v, v);
            for (t, &k) in seqs.row(i).iter().enumerate() {
                let p = &self.p[self.at(t, a, b)..][..v];
                for j in 0..v {
                    g[t * v + j] -= wi * p[j];
                }
                g[t * v + k as usize] += wi;
                (a, b) = (b, k as usize);
            }
        }
        g
    }
}

/// A reward model over sequences: any model whose ONNX file maps one-hot (position, token)
/// features `[N, length · vocab]` to one score per row (an MLP from `model.mlp`, a
/// `model.gold_reward`, a user's own file).
pub struct SeqReward {
    inference: Inference,
    vocab: usize,
}

impl SeqReward {
    pub fn load(ctx: &RunCtx, dir: &std::path::Path, name: &str, policy: &Markov) -> Result<SeqReward, OpError> {
        let inference = Inference::load(ctx, dir)?;
        let features = policy.length * policy.vocab;
        if let Some(w) = inference.inputs.filter(|&w| w != features) {
            return Err(OpError::invalid(
                name,
                format!(
                    "takes {w} inputs, but the policy's sequences have {features} one-hot features (length {} × vocab {})",
                    policy.length, policy.vocab
                ),
            ));
        }
        if let Some(o) = inference.outputs.filter(|&o| o != 1) {
            return Err(OpError::invalid(name, format!("has {o} outputs; a reward model has one (`outputs: 1`)")));
        }
        Ok(SeqReward { inference, vocab: policy.vocab })
    }

    /// The score of every sequence.
    pub fn score(&mut self, seqs: &Seqs) -> Result<Vec<f64>, OpError> {
        let w = seqs.length * self.vocab;
        let mut out = Vec::with_capacity(seqs.len());
        // In chunks, so that a large pool never holds all its features at once.
        const CHUNK: usize = 4096;
        for start in (0..seqs.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(seqs.len());
            let (y, k) = self.inference.predict_x(&seqs.one_hot_rows(start..end, self.vocab), w)?;
            if k != 1 {
                return Err(OpError::Data(format!("the reward model gave {k} scores per sequence; it must give one")));
            }
            out.extend(y.iter().map(|&v| v as f64));
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(OpError::Numeric(format!("the reward model scored sequence {} as {}", i + 1, out[i])));
        }
        Ok(out)
    }
}

/// Mean and standard deviation (population) of `x`.
pub fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n;
    (m, v.sqrt())
}

/// A seeded generator for the ops of this family.
pub fn rng(seed: i64, stream: u64) -> rand_chacha::ChaCha8Rng {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed as u64);
    r.set_stream(stream);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_distributions_and_sampling_follows_them() {
        let m = Markov::init(3, 4, 1.0, 7).unwrap();
        let t = m.table(&m.bias);
        for c in t.p.chunks_exact(4) {
            assert!((c.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        // The first token's frequency against its probability.
        let s = t.sample(40_000, &mut rng(1, 0));
        let p0 = t.p[t.at(0, 4, 4)];
        let f0 = (0..s.len()).filter(|&i| s.row(i)[0] == 0).count() as f64 / s.len() as f64;
        assert!((f0 - p0).abs() < 4.0 * (p0 * (1.0 - p0) / 40_000.0).sqrt(), "{f0} vs {p0}");
    }

    #[test]
    fn one_hot_marks_one_feature_per_position() {
        let s = Seqs { length: 2, tokens: vec![1, 0, 2, 2] };
        assert_eq!(s.one_hot(3), vec![0., 1., 0., 1., 0., 0., 0., 0., 1., 0., 0., 1.]);
        assert_eq!(s.unique(), 2);
    }
}
