//! GPT-style decoder-only transformers: token and learned position embeddings, pre-LayerNorm
//! blocks with causal multi-head attention and a GELU MLP, a final LayerNorm, an output
//! layer (tied to the token embeddings or not) and an optional scalar head for reward and
//! value models.
//!
//! Two graphs come from one set of weights:
//! - the **training graph** ([`Gpt::training_forward`]): a fixed sequence length `T`,
//!   parameters as graph inputs, a constant causal mask; autodiff differentiates it;
//! - the **decoder graph** ([`Gpt::decoder_graph`]): the interface of GPT-2 exports —
//!   inputs `input_ids`, `attention_mask`, `position_ids`, `past_key_values.N.key/value`;
//!   outputs `logits`, `present.N.key/value` — so generation with a KV cache and scoring
//!   run the same code on labrun's models and on imported ones. It is the model's
//!   standalone `model.onnx`.

use crate::folder::ModelFolder;
use crate::graph::{Graph, V};
use crate::tensor::{DType, Tensor};
use crate::tokenizer::Tokenizer;
use crate::{NnError, weights};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// LayerNorm epsilon, as GPT-2.
const LN_EPS: f64 = 1e-5;
/// The additive attention bias of a masked position: far below any score, yet finite so
/// that a fully masked row (a padding query) stays a number.
const MASKED: f64 = -1e9;

/// The architecture of a GPT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GptSpec {
    pub vocab: usize,
    pub width: usize,
    pub heads: usize,
    pub layers: usize,
    /// Longest sequence (learned positions).
    pub context: usize,
    /// The output layer is the transposed token embedding.
    #[serde(default)]
    pub tied: bool,
    /// A scalar head on the final residual stream (reward and value models).
    #[serde(default)]
    pub value_head: bool,
}

/// Which part of the model a parameter belongs to, for freezing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Token and position embeddings.
    Embeddings,
    /// Transformer blocks and the final LayerNorm.
    Body,
    /// The output layer and the scalar head.
    Head,
}

impl Group {
    pub fn of(name: &str) -> Group {
        if name == "wte" || name == "wpe" {
            Group::Embeddings
        } else if name.starts_with("head.") || name.starts_with("value.") {
            Group::Head
        } else {
            Group::Body
        }
    }
}

/// What trains during fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainable {
    All,
    /// Blocks and final LayerNorm; embeddings and heads frozen.
    Body,
    Embeddings,
    Head,
}

impl Trainable {
    const ALL: [Trainable; 4] = [Trainable::All, Trainable::Body, Trainable::Embeddings, Trainable::Head];
    /// Every option, as `.lab` files write it.
    pub const OPTIONS: &[&str] = &["all", "body", "embeddings", "head"];

    pub fn as_str(self) -> &'static str {
        Self::OPTIONS[Self::ALL.iter().position(|&t| t == self).expect("listed")]
    }
}

impl std::str::FromStr for Trainable {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("is `{s}`; use `all`, `body`, `embeddings` or `head`"))
    }
}

impl Trainable {
    pub fn includes(self, name: &str) -> bool {
        match self {
            Trainable::All => true,
            Trainable::Body => Group::of(name) == Group::Body,
            Trainable::Embeddings => Group::of(name) == Group::Embeddings,
            Trainable::Head => Group::of(name) == Group::Head,
        }
    }
}

impl GptSpec {
    pub fn head_dim(&self) -> usize {
        self.width / self.heads.max(1)
    }

    /// Sizes that cannot make a model are errors naming the field.
    pub fn validate(&self) -> Result<(), NnError> {
        for (name, v) in [
            ("vocab", self.vocab),
            ("width", self.width),
            ("heads", self.heads),
            ("layers", self.layers),
            ("context", self.context),
        ] {
            if v == 0 {
                return Err(NnError::BadModel(format!("`{name}` must be at least 1")));
            }
        }
        if !self.width.is_multiple_of(self.heads) {
            return Err(NnError::BadModel(format!(
                "`width` {} is not a multiple of `heads` {}; each head gets width/heads dimensions",
                self.width, self.heads
            )));
        }
        let n = self.n_params();
        if n > 1 << 31 {
            return Err(NnError::BadModel(format!(
                "the model would have {n} parameters; labrun builds GPTs up to 2^31"
            )));
        }
        Ok(())
    }

    /// (name, shape) of every parameter, in a fixed order.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (v, d, c) = (self.vocab, self.width, self.context);
        let mut p = vec![("wte".to_string(), vec![v, d]), ("wpe".to_string(), vec![c, d])];
        for i in 0..self.layers {
            let l = |s: &str| format!("h{i}.{s}");
            p.extend([
                (l("ln1.g"), vec![d]),
                (l("ln1.b"), vec![d]),
                (l("attn.qkv.w"), vec![d, 3 * d]),
                (l("attn.qkv.b"), vec![3 * d]),
                (l("attn.proj.w"), vec![d, d]),
                (l("attn.proj.b"), vec![d]),
                (l("ln2.g"), vec![d]),
                (l("ln2.b"), vec![d]),
                (l("mlp.fc.w"), vec![d, 4 * d]),
                (l("mlp.fc.b"), vec![4 * d]),
                (l("mlp.proj.w"), vec![4 * d, d]),
                (l("mlp.proj.b"), vec![d]),
            ]);
        }
        p.extend([("lnf.g".to_string(), vec![d]), ("lnf.b".to_string(), vec![d])]);
        if !self.tied {
            p.push(("head.w".to_string(), vec![d, v]));
        }
        if self.value_head {
            p.extend([("value.w".to_string(), vec![d, 1]), ("value.b".to_string(), vec![1])]);
        }
        p
    }

    pub fn n_params(&self) -> usize {
        self.param_shapes().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }
}

/// How fresh weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// GPT-2's: N(0, 0.02), residual projections scaled by 1/√(2·layers), zero biases.
    Gpt2,
    /// PyTorch's module defaults: embeddings N(0, 1), linear weights and biases
    /// U(±1/√fan_in). Larger weights: fine-tuning moves the network relatively less.
    Pytorch,
}

impl Init {
    const ALL: [Init; 2] = [Init::Gpt2, Init::Pytorch];
    /// Every option, as `.lab` files write it.
    pub const OPTIONS: &[&str] = &["gpt2", "pytorch"];

    pub fn as_str(self) -> &'static str {
        Self::OPTIONS[Self::ALL.iter().position(|&i| i == self).expect("listed")]
    }
}

impl std::str::FromStr for Init {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|i| i.as_str() == s).ok_or_else(|| format!("is `{s}`; use `gpt2` or `pytorch`"))
    }
}

/// What one pass of the network computes.
pub struct Pass {
    /// `[B, S, vocab]`
    pub logits: V,
    /// `[B, S]`, with a scalar head.
    pub values: Option<V>,
    /// The residual stream entering each block, then after the last block (before the
    /// final LayerNorm): `layers + 1` values of `[B, S, width]`.
    pub hidden: Vec<V>,
    /// The final LayerNorm's output, `[B, S, width]`: the activations the output layer
    /// reads (logits = normed · W_U).
    pub normed: V,
    /// Per layer, keys and values of every position so far: `[B, heads, P + S, head_dim]`.
    pub present: Vec<(V, V)>,
}

/// A GPT with weights and its tokenizer.
#[derive(Debug, Clone)]
pub struct Gpt {
    pub spec: GptSpec,
    /// In [`GptSpec::param_shapes`] order.
    pub params: Vec<(String, Tensor)>,
    pub tokenizer: Tokenizer,
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    arch: String,
    #[serde(flatten)]
    spec: GptSpec,
}

impl Gpt {
    /// GPT-2's initialisation: weights ~ N(0, 0.02), residual projections scaled by
    /// 1/√(2·layers), zero biases, unit LayerNorm gains. Equal seeds give equal weights.
    pub fn init(spec: GptSpec, tokenizer: Tokenizer, seed: u64) -> Result<Gpt, NnError> {
        Self::init_with(spec, tokenizer, seed, Init::Gpt2)
    }

    /// Fresh weights under the chosen scheme; equal seeds give equal weights.
    pub fn init_with(spec: GptSpec, tokenizer: Tokenizer, seed: u64, scheme: Init) -> Result<Gpt, NnError> {
        spec.validate()?;
        if tokenizer.vocab() != spec.vocab {
            return Err(NnError::BadModel(format!(
                "the tokenizer has {} tokens but the model's vocabulary is {}",
                tokenizer.vocab(),
                spec.vocab
            )));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let proj_std = 0.02 / (2.0 * spec.layers as f32).sqrt();
        let params = spec
            .param_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let layer_norm = name.starts_with("lnf.") || name.contains(".ln");
                let embedding = name == "wte" || name == "wpe";
                let data = match scheme {
                    _ if layer_norm => vec![if name.ends_with(".g") { 1.0 } else { 0.0 }; n],
                    Init::Gpt2 if shape.len() == 1 => vec![0.0; n],
                    Init::Gpt2 => {
                        let std = if name.ends_with("proj.w") { proj_std } else { 0.02 };
                        let normal = Normal::new(0.0f32, std).expect("positive std");
                        (0..n).map(|_| normal.sample(&mut rng)).collect()
                    }
                    Init::Pytorch if embedding => {
                        let normal = Normal::new(0.0f32, 1.0).expect("positive std");
                        (0..n).map(|_| normal.sample(&mut rng)).collect()
                    }
                    Init::Pytorch => {
                        // A linear layer's weight and bias: U(±1/√fan_in).
                        let fan_in = if name.ends_with("mlp.proj.w") || name.ends_with("mlp.proj.b") {
                            4 * spec.width
                        } else {
                            spec.width
                        };
                        let bound = 1.0 / (fan_in as f32).sqrt();
                        (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                    }
                };
                (name, Tensor::f32(shape, data))
            })
            .collect();
        Ok(Gpt { spec, params, tokenizer })
    }

    /// Adds a freshly initialised scalar head (for a reward model made from a language
    /// model); the rest is unchanged.
    pub fn with_value_head(mut self, seed: u64) -> Gpt {
        if self.spec.value_head {
            return self;
        }
        self.spec.value_head = true;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 0.02).expect("positive std");
        let d = self.spec.width;
        self.params
            .push(("value.w".into(), Tensor::f32(vec![d, 1], (0..d).map(|_| normal.sample(&mut rng)).collect())));
        self.params.push(("value.b".into(), Tensor::f32(vec![1], vec![0.0])));
        self
    }

    /// The output layer as `[width, vocab]` (row-major): logits = normed · W_U.
    pub fn unembedding(&self) -> Vec<f32> {
        let find = |n: &str| self.params.iter().find(|(k, _)| k == n).map(|(_, t)| t.to_f64());
        let (d, v) = (self.spec.width, self.spec.vocab);
        if self.spec.tied {
            let wte = find("wte").unwrap_or_default();
            (0..d * v).map(|k| wte.get((k % v) * d + k / v).copied().unwrap_or(0.0) as f32).collect()
        } else {
            find("head.w").unwrap_or_default().into_iter().map(|x| x as f32).collect()
        }
    }

    /// Graph inputs for every parameter, named after it.
    pub fn param_inputs(&self, g: &mut Graph) -> Params {
        Params(
            self.params
                .iter()
                .map(|(n, t)| {
                    (n.clone(), g.input(n, DType::F32, &t.shape.iter().map(|&d| d as i64).collect::<Vec<_>>()))
                })
                .collect(),
        )
    }

    /// Parameters as initializers (weights stored in the graph).
    pub fn param_initializers(&self, g: &mut Graph) -> Params {
        Params(self.params.iter().map(|(n, t)| (n.clone(), g.initializer(n, t.clone()))).collect())
    }

    /// The network on `tokens` `[B, T]` with a static `T` ≤ context, positions 0..T and a
    /// constant causal mask.
    pub fn training_forward(&self, g: &mut Graph, p: &Params, tokens: V) -> Result<Pass, NnError> {
        self.training_forward_at(g, p, tokens, None)
    }

    /// [`Gpt::training_forward`] at given positions: `positions` `[B, T]` (int64, each
    /// below the context) instead of 0..T, so short windows can train every position.
    pub fn training_forward_at(
        &self,
        g: &mut Graph,
        p: &Params,
        tokens: V,
        positions: Option<V>,
    ) -> Result<Pass, NnError> {
        let tok = g.gather(p.get("wte"), tokens);
        self.forward_embeddings_at(g, p, tok, positions)
    }

    /// Like [`Gpt::training_forward`], from token embeddings `[B, T, width]` instead of
    /// token ids (for gradients with respect to the input).
    pub fn forward_embeddings(&self, g: &mut Graph, p: &Params, tok: V) -> Result<Pass, NnError> {
        self.forward_embeddings_at(g, p, tok, None)
    }

    fn forward_embeddings_at(&self, g: &mut Graph, p: &Params, tok: V, positions: Option<V>) -> Result<Pass, NnError> {
        let t = g.shape(tok)[1];
        if t < 1 || t as usize > self.spec.context {
            return Err(NnError::Graph(format!(
                "sequences of {t} tokens do not fit a context of {}",
                self.spec.context
            )));
        }
        let t = t as usize;
        let positions = positions.unwrap_or_else(|| g.constant(Tensor::i64(vec![t], (0..t as i64).collect())));
        let pos = g.gather(p.get("wpe"), positions);
        let bias = g.constant(Tensor::float(DType::F32, vec![t, t], causal_bias(t)));
        Ok(self.forward(g, p, tok, pos, bias, None))
    }

    /// The decoder graph with GPT-2's interface. With `hidden`, it also outputs
    /// `hidden.{i}`, the residual stream entering block `i` (and after the last block).
    pub fn decoder_graph(&self, hidden: bool) -> Graph {
        let mut g = Graph::new(DType::F32);
        let (h, dh) = (self.spec.heads as i64, self.spec.head_dim() as i64);
        let ids = g.input("input_ids", DType::I64, &[-1, -1]);
        g.name_dims(ids, &["batch", "seq"]);
        let mask = g.input("attention_mask", DType::I64, &[-1, -1]);
        g.name_dims(mask, &["batch", "total"]);
        let pos_ids = g.input("position_ids", DType::I64, &[-1, -1]);
        g.name_dims(pos_ids, &["batch", "seq"]);
        let mut past = Vec::new();
        for i in 0..self.spec.layers {
            let k = g.input(&format!("past_key_values.{i}.key"), DType::F32, &[-1, h, -1, dh]);
            let v = g.input(&format!("past_key_values.{i}.value"), DType::F32, &[-1, h, -1, dh]);
            g.name_dims(k, &["batch", "", "past", ""]);
            g.name_dims(v, &["batch", "", "past", ""]);
            past.push((k, v));
        }
        let p = self.param_initializers(&mut g);
        let pos = g.gather(p.get("wpe"), pos_ids);
        let bias = decoder_bias(&mut g, ids, mask);
        let tok = g.gather(p.get("wte"), ids);
        let pass = self.forward(&mut g, &p, tok, pos, bias, Some(&past));
        g.output(pass.logits, "logits");
        g.name_dims(pass.logits, &["batch", "seq", ""]);
        for (i, (k, v)) in pass.present.iter().enumerate() {
            g.output(*k, &format!("present.{i}.key"));
            g.output(*v, &format!("present.{i}.value"));
            g.name_dims(*k, &["batch", "", "total", ""]);
            g.name_dims(*v, &["batch", "", "total", ""]);
        }
        if let Some(v) = pass.values {
            g.output(v, "values");
            g.name_dims(v, &["batch", "seq"]);
        }
        if hidden {
            for (i, &hv) in pass.hidden.iter().enumerate() {
                g.output(hv, &format!("hidden.{i}"));
                g.name_dims(hv, &["batch", "seq", ""]);
            }
        }
        g
    }

    /// The shared network: blocks, final norm, heads, from token embeddings `tok`. `pos` are the position
    /// embeddings (broadcast against `[B, S, width]`); `bias` is added to every attention
    /// score (`[.., S, P + S]`); `past` holds each layer's cached keys and values.
    fn forward(&self, g: &mut Graph, p: &Params, tok: V, pos: V, bias: V, past: Option<&[(V, V)]>) -> Pass {
        let mut x = g.add(tok, pos);
        let mut hidden = Vec::new();
        let mut present = Vec::new();
        for i in 0..self.spec.layers {
            hidden.push(x);
            let (nx, k, v) = self.block(g, p, i, x, bias, past.map(|pk| pk[i]));
            x = nx;
            present.push((k, v));
        }
        hidden.push(x);
        let hf = g.layer_norm_fused(x, p.get("lnf.g"), p.get("lnf.b"), LN_EPS);
        let logits = if self.spec.tied {
            let wt = g.transpose(p.get("wte"), &[1, 0]);
            g.matmul(hf, wt)
        } else {
            g.matmul(hf, p.get("head.w"))
        };
        let values = self.spec.value_head.then(|| {
            let v = g.matmul(hf, p.get("value.w"));
            let v = g.add(v, p.get("value.b"));
            g.reshape_keep(v, 2, &[])
        });
        Pass { logits, values, hidden, normed: hf, present }
    }

    fn block(&self, g: &mut Graph, p: &Params, i: usize, x: V, bias: V, past: Option<(V, V)>) -> (V, V, V) {
        let name = |s: &str| format!("h{i}.{s}");
        let a = g.layer_norm_fused(x, p.get(&name("ln1.g")), p.get(&name("ln1.b")), LN_EPS);
        let w = [name("attn.qkv.w"), name("attn.qkv.b"), name("attn.proj.w"), name("attn.proj.b")].map(|n| p.get(&n));
        let (o, k, v) = attention(g, a, w, self.spec.heads, bias, past);
        let x = g.add(x, o);
        let m = g.layer_norm_fused(x, p.get(&name("ln2.g")), p.get(&name("ln2.b")), LN_EPS);
        let m = g.matmul(m, p.get(&name("mlp.fc.w")));
        let m = g.add(m, p.get(&name("mlp.fc.b")));
        let m = g.gelu(m);
        let m = g.matmul(m, p.get(&name("mlp.proj.w")));
        let m = g.add(m, p.get(&name("mlp.proj.b")));
        (g.add(x, m), k, v)
    }

    /// Writes `model.json`, `weights.safetensors`, `tokenizer.json` and the decoder as
    /// `model.onnx` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), NnError> {
        let folder = ModelFolder::new(dir);
        folder.write_meta(&ModelFile { arch: "gpt".into(), spec: self.spec.clone() })?;
        weights::save(&folder.weights_path(), &self.params)?;
        self.tokenizer.save(dir)?;
        std::fs::write(
            folder.onnx_path(),
            self.decoder_graph(false).to_onnx_bytes(
                "labrun GPT: input_ids, attention_mask, position_ids, past_key_values.N.key/value -> logits, present.N.key/value",
            ),
        )?;
        Ok(())
    }

    /// Reads a model directory, checking the weights against the architecture.
    pub fn load(dir: &Path) -> Result<Gpt, NnError> {
        let folder = ModelFolder::new(dir);
        let meta_path = folder.meta_path();
        let meta: ModelFile = folder.read_meta("GPT description")?;
        if meta.arch != "gpt" {
            return Err(NnError::BadModel(format!(
                "{}: architecture `{}` is not a GPT",
                meta_path.display(),
                meta.arch
            )));
        }
        meta.spec.validate()?;
        let tokenizer = Tokenizer::load(dir)?;
        if tokenizer.vocab() != meta.spec.vocab {
            return Err(NnError::BadModel(format!(
                "{}: the tokenizer has {} tokens but the model's vocabulary is {}",
                dir.display(),
                tokenizer.vocab(),
                meta.spec.vocab
            )));
        }
        let params = weights::take_params(weights::load(&folder.weights_path())?, meta.spec.param_shapes(), dir)?;
        Ok(Gpt { spec: meta.spec, params, tokenizer })
    }
}

/// Causal multi-head self-attention of `x` `[B, S, d]` with weights `[qkv.w, qkv.b,
/// proj.w, proj.b]`: returns the projected output and the keys and values of every
/// position (`past` prepended), `[B, heads, P + S, d/heads]`. `bias` is added to the scores.
pub fn attention(g: &mut Graph, x: V, w: [V; 4], heads: usize, bias: V, past: Option<(V, V)>) -> (V, V, V) {
    let d = *g.shape(x).last().expect("rank 3");
    let (h, dh) = (heads as i64, d / heads as i64);
    let qkv = g.matmul(x, w[0]);
    let qkv = g.add(qkv, w[1]);
    let split = |g: &mut Graph, part: i64| {
        let s = g.slice(qkv, -1, part * d, (part + 1) * d);
        let s = g.reshape_keep(s, 2, &[h, dh]);
        g.transpose(s, &[0, 2, 1, 3])
    };
    let q = split(g, 0);
    let mut k = split(g, 1);
    let mut v = split(g, 2);
    if let Some((pk, pv)) = past {
        k = g.concat(&[pk, k], 2);
        v = g.concat(&[pv, v], 2);
    }
    let scale = g.scalar(1.0 / (dh as f64).sqrt());
    let qs = g.mul(q, scale);
    let kt = g.transpose_last(k);
    let scores = g.matmul(qs, kt);
    let scores = g.add(scores, bias);
    let att = g.softmax(scores, -1);
    let o = g.matmul(att, v);
    let o = g.transpose(o, &[0, 2, 1, 3]);
    let o = g.reshape_keep(o, 2, &[d]);
    let o = g.matmul(o, w[2]);
    (g.add(o, w[3]), k, v)
}

/// The additive causal mask of `t` positions: 0 where key ≤ query, else a large negative.
pub fn causal_bias(t: usize) -> Vec<f64> {
    (0..t * t).map(|i| if i % t <= i / t { 0.0 } else { MASKED }).collect()
}

/// Graph values of a model's parameters, by name.
pub struct Params(BTreeMap<String, V>);

impl Params {
    pub fn get(&self, name: &str) -> V {
        self.0[name]
    }
}

/// The additive attention bias of the decoder: query `i` of `S` new tokens sits at
/// position `P + i` of `P + S` and sees key `j` when `j ≤ P + i` and `attention_mask[b, j]`
/// is 1. Returns `[B, 1, S, P + S]`.
fn decoder_bias(g: &mut Graph, ids: V, mask: V) -> V {
    let total = g.dim(mask, 1);
    let s = g.dim(ids, 1);
    let past = g.node("Sub", &[total, s], vec![], DType::I64, vec![]);
    let zero = g.int_scalar(0);
    let kidx = g.range(zero, total);
    let qidx = g.range(past, total);
    let qcol = g.unsqueeze(qidx, &[1]);
    let causal = g.node("LessOrEqual", &[kidx, qcol], vec![], DType::Bool, vec![-1, -1]);
    let one = g.int_scalar(1);
    let keep = g.equal(mask, one);
    let keep = g.unsqueeze(keep, &[1, 2]);
    let allowed = g.node("And", &[causal, keep], vec![], DType::Bool, vec![-1, 1, -1, -1]);
    let (z, m) = (g.scalar(0.0), g.scalar(MASKED));
    g.where_(allowed, z, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GptSpec {
        GptSpec { vocab: 5, width: 8, heads: 2, layers: 2, context: 6, tied: false, value_head: false }
    }

    #[test]
    fn parameter_groups_and_count() {
        let s = spec();
        // wte 40 + wpe 48 + 2 × (4·8 + 8·24 + 24 + 64 + 8 + 8·32 + 32 + 32·8 + 8) + lnf 16 + head 40
        let per_layer = 4 * 8 + 8 * 24 + 24 + 64 + 8 + 8 * 32 + 32 + 32 * 8 + 8;
        assert_eq!(s.n_params(), 40 + 48 + 2 * per_layer + 16 + 40);
        assert_eq!(Group::of("wte"), Group::Embeddings);
        assert_eq!(Group::of("h1.attn.qkv.w"), Group::Body);
        assert_eq!(Group::of("lnf.g"), Group::Body);
        assert_eq!(Group::of("head.w"), Group::Head);
        assert!(Trainable::Body.includes("lnf.b") && !Trainable::Body.includes("wpe"));
        let bad = GptSpec { heads: 3, ..s };
        assert!(bad.validate().unwrap_err().to_string().contains("multiple of `heads`"));
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = Gpt::init(spec(), Tokenizer::chars("abcde").unwrap(), 3).unwrap();
        m.save(dir.path()).unwrap();
        let l = Gpt::load(dir.path()).unwrap();
        assert_eq!(l.spec, m.spec);
        assert_eq!(l.params, m.params);
        assert!(Gpt::init(spec(), Tokenizer::chars("abc").unwrap(), 0).is_err());
    }
}
