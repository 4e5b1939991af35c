//! Running language models: a [`Decoder`] wraps any ONNX decoder with GPT-2's interface
//! (labrun's own `model.onnx` and imported exports alike) and carries the KV cache between
//! calls. On top of it: batched sampling ([`generate`]), exact log-probabilities
//! ([`score`]), next-token distributions ([`next_token_logprobs`]) and residual-stream
//! activations ([`Decoder::hidden`]).

use crate::NnError;
use crate::onnx_io;
use crate::runtime::{SessionOptions, session};
use crate::tokenizer::Tokenizer;
use ort::session::SessionInputValue;
use ort::value::DynValue;
use rand::{Rng, SeedableRng};

/// A decoder session and what its interface declares.
pub struct Decoder {
    sess: ort::session::Session,
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Longest sequence the model takes, when known.
    pub context: Option<usize>,
    /// The model takes `position_ids` (without them it numbers positions itself, which
    /// left padding would shift).
    pub position_ids: bool,
    /// Outputs `hidden.0 ..= hidden.L` exist.
    pub hidden_outputs: usize,
    input_names: Vec<String>,
}

/// What one call computes.
pub struct StepOut {
    /// `[B, S, vocab]`, row-major.
    pub logits: Vec<f32>,
    pub vocab: usize,
    /// Per layer, keys then values, `[B, heads, P + S, head_dim]`.
    pub present: Vec<DynValue>,
    /// `hidden.i` outputs, `[B, S, width]` each, when asked for.
    pub hidden: Vec<(Vec<usize>, Vec<f32>)>,
    /// The scalar head, `[B, S]`, when the model has one.
    pub values: Option<Vec<f32>>,
}

impl Decoder {
    /// Opens a decoder, checking its interface: every missing input or output, and every
    /// past/present tensor of the wrong rank, is named.
    pub fn new(onnx: &[u8], context: Option<usize>, opts: SessionOptions) -> Result<Decoder, NnError> {
        Self::open(onnx, None, context, opts)
    }

    /// [`Decoder::new`] for the ONNX file at `path`, whose external data files (weights
    /// stored beside the model) ONNX Runtime finds next to it.
    pub fn from_file(path: &std::path::Path, context: Option<usize>, opts: SessionOptions) -> Result<Decoder, NnError> {
        let bytes = std::fs::read(path)?;
        Self::open(&bytes, Some(path), context, opts)
    }

    fn open(
        onnx: &[u8],
        file: Option<&std::path::Path>,
        context: Option<usize>,
        opts: SessionOptions,
    ) -> Result<Decoder, NnError> {
        let info = onnx_io::read(onnx)?;
        let input = |n: &str| info.inputs.iter().find(|i| i.name == n);
        let output = |n: &str| info.outputs.iter().find(|i| i.name == n);
        let mut problems = Vec::new();
        for n in ["input_ids", "attention_mask"] {
            match input(n) {
                None => problems.push(format!("no input `{n}`")),
                Some(i) if i.shape.len() != 2 || i.elem_type != 7 => problems.push(format!(
                    "input `{n}` must be int64 [batch, seq], not {} of {}",
                    onnx_io::shape_text(&i.shape),
                    onnx_io::elem_type_name(i.elem_type)
                )),
                _ => {}
            }
        }
        if output("logits").is_none() {
            problems.push("no output `logits`".into());
        }
        let layers = (0..).take_while(|i| input(&format!("past_key_values.{i}.key")).is_some()).count();
        if layers == 0 {
            problems.push("no input `past_key_values.0.key` (export the model with its KV cache)".into());
        }
        let (mut heads, mut head_dim) = (0, 0);
        for i in 0..layers {
            for kind in ["key", "value"] {
                let (pi, po) = (format!("past_key_values.{i}.{kind}"), format!("present.{i}.{kind}"));
                match input(&pi) {
                    None => problems.push(format!("no input `{pi}`")),
                    Some(p) if p.shape.len() != 4 => {
                        problems.push(format!("`{pi}` must be [batch, heads, past, head_dim], not {:?}", p.shape))
                    }
                    Some(p) => {
                        heads = p.shape[1].unwrap_or(0) as usize;
                        head_dim = p.shape[3].unwrap_or(0) as usize;
                    }
                }
                if output(&po).is_none() {
                    problems.push(format!("no output `{po}`"));
                }
            }
        }
        if layers > 0 && (heads == 0 || head_dim == 0) {
            problems.push("the past_key_values tensors must have static `heads` and `head_dim` dimensions".into());
        }
        if !problems.is_empty() {
            return Err(NnError::BadModel(format!(
                "not a decoder with GPT-2's ONNX interface: {}",
                problems.join("; ")
            )));
        }
        let hidden_outputs = (0..).take_while(|i| output(&format!("hidden.{i}")).is_some()).count();
        let position_ids = input("position_ids").is_some();
        let sess = match file {
            Some(path) => crate::runtime::session_from_file(path, opts)?,
            None => session(onnx, opts)?,
        };
        let input_names = sess.inputs().iter().map(|i| i.name().to_string()).collect();
        Ok(Decoder { sess, layers, heads, head_dim, context, position_ids, hidden_outputs, input_names })
    }

    /// An empty KV cache for `b` rows.
    pub fn empty_past(&self, b: usize) -> Result<Vec<DynValue>, NnError> {
        (0..2 * self.layers)
            .map(|_| {
                Ok(ort::value::Tensor::from_array((
                    vec![b as i64, self.heads as i64, 0, self.head_dim as i64],
                    Vec::<f32>::new(),
                ))?
                .into_dyn())
            })
            .collect()
    }

    /// One call: `ids` and `positions` are `[b, s]`, `mask` is `[b, P + s]`, `past` the
    /// cache of `P` positions.
    pub fn run(
        &mut self,
        ids: Vec<i64>,
        positions: Vec<i64>,
        mask: Vec<i64>,
        b: usize,
        past: &[DynValue],
        hidden: bool,
    ) -> Result<StepOut, NnError> {
        let s = ids.len() / b.max(1);
        let total = mask.len() / b.max(1);
        let idv = ort::value::Tensor::from_array((vec![b as i64, s as i64], ids))?.into_dyn();
        let posv = ort::value::Tensor::from_array((vec![b as i64, s as i64], positions))?.into_dyn();
        let maskv = ort::value::Tensor::from_array((vec![b as i64, total as i64], mask))?.into_dyn();
        let inputs: Vec<(String, SessionInputValue)> = self
            .input_names
            .iter()
            .map(|n| -> Result<(String, SessionInputValue), NnError> {
                let v: SessionInputValue = match n.as_str() {
                    "input_ids" => (&idv).into(),
                    "attention_mask" => (&maskv).into(),
                    "position_ids" => (&posv).into(),
                    other => {
                        let rest = other.strip_prefix("past_key_values.").ok_or_else(|| {
                            NnError::BadModel(format!("the decoder has an input `{other}` that labrun cannot feed"))
                        })?;
                        let (layer, kind) = rest.split_once('.').unwrap_or((rest, ""));
                        let l: usize = layer.parse().map_err(|_| NnError::BadModel(format!("odd input `{other}`")))?;
                        (&past[2 * l + usize::from(kind == "value")]).into()
                    }
                };
                Ok((n.clone(), v))
            })
            .collect::<Result<_, _>>()?;
        let mut out = self.sess.run(inputs)?;
        let (shape, logits) = out["logits"].try_extract_tensor::<f32>()?;
        let vocab = *shape.last().unwrap_or(&0) as usize;
        let logits = logits.to_vec();
        let mut present = Vec::with_capacity(2 * self.layers);
        for l in 0..self.layers {
            for kind in ["key", "value"] {
                present.push(out.remove(format!("present.{l}.{kind}")).expect("checked output"));
            }
        }
        let values = match out.get("values") {
            Some(v) => Some(v.try_extract_tensor::<f32>()?.1.to_vec()),
            None => None,
        };
        let mut hs = Vec::new();
        if hidden {
            for i in 0..self.hidden_outputs {
                let (shape, data) = out[format!("hidden.{i}").as_str()].try_extract_tensor::<f32>()?;
                hs.push((shape.iter().map(|&d| d as usize).collect(), data.to_vec()));
            }
        }
        Ok(StepOut { logits, vocab, present, hidden: hs, values })
    }

    /// One full pass over left-padded sequences (no cache): the outputs and the padding
    /// of each row.
    pub fn full(&mut self, seqs: &[Vec<i64>], hidden: bool) -> Result<(StepOut, Padded), NnError> {
        if let Some(c) = self.context
            && let Some(s) = seqs.iter().find(|s| s.len() > c)
        {
            return Err(NnError::BadModel(format!(
                "a text of {} tokens exceeds the model's context of {c} tokens",
                s.len()
            )));
        }
        let p = Padded::new(seqs);
        let past = self.empty_past(seqs.len())?;
        let out = self.run(p.ids.clone(), p.positions.clone(), p.mask.clone(), seqs.len(), &past, hidden)?;
        Ok((out, p))
    }
}

/// Sequences left-padded to one length, with the attention mask and positions.
pub struct Padded {
    pub len: usize,
    /// Padding before each row.
    pub pad: Vec<usize>,
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub positions: Vec<i64>,
}

impl Padded {
    pub fn new(seqs: &[Vec<i64>]) -> Padded {
        let len = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut p = Padded { len, pad: Vec::new(), ids: Vec::new(), mask: Vec::new(), positions: Vec::new() };
        for s in seqs {
            let pad = len - s.len();
            p.pad.push(pad);
            p.ids.extend(std::iter::repeat_n(0, pad).chain(s.iter().copied()));
            p.mask.extend(std::iter::repeat_n(0, pad).chain(std::iter::repeat_n(1, s.len())));
            p.positions.extend(std::iter::repeat_n(0, pad).chain(0..s.len() as i64));
        }
        p
    }
}

/// log-softmax of one row, in f64.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}

/// Temperatures below this decode greedily: the distribution is then the greedy choice to
/// within float precision, and dividing logits by a subnormal number would overflow.
pub const MIN_TEMPERATURE: f64 = 1e-4;

/// How to pick each new token.
#[derive(Debug, Clone)]
pub struct Sampling {
    /// 0 (or anything below [`MIN_TEMPERATURE`]) picks the most likely token (greedy).
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1: all).
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// Generation of a row ends at the first of these; the completion excludes it.
    pub stop: Vec<String>,
    pub seed: u64,
}

/// One completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub ids: Vec<i64>,
    pub text: String,
    /// `stop` (a stop string ended it) or `length` (max_new_tokens).
    pub finish: &'static str,
    /// The stop string that ended it, cut from `text`.
    pub stop: Option<String>,
}

/// Samples a completion of each prompt, all in one batch with a KV cache: the prompt is
/// run once, then each new token costs one position. Row `i` draws from its own random
/// stream (`seed`, `first_row + i`), so results do not depend on how rows are batched.
pub fn generate(
    dec: &mut Decoder,
    tok: &Tokenizer,
    prompts: &[Vec<i64>],
    first_row: u64,
    cfg: &Sampling,
    on_token: &mut dyn FnMut() -> bool,
) -> Result<Vec<Completion>, NnError> {
    let b = prompts.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(NnError::BadModel(format!(
            "prompt {} is empty; a model needs at least one token to continue",
            first_row as usize + i
        )));
    }
    let p = Padded::new(prompts);
    if let Some(c) = dec.context
        // The last new token is never fed back, so it needs no position.
        && p.len + cfg.max_new_tokens - 1 > c
    {
        return Err(NnError::BadModel(format!(
            "a prompt of {} tokens plus {} new tokens exceeds the model's context of {c}; shorten the prompts or lower `max_new_tokens`",
            p.len, cfg.max_new_tokens
        )));
    }
    let mut rngs: Vec<rand_chacha::ChaCha8Rng> = (0..b)
        .map(|i| {
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
            r.set_stream(first_row + i as u64);
            r
        })
        .collect();
    let mut out: Vec<Vec<i64>> = vec![Vec::new(); b];
    let mut done: Vec<Option<&'static str>> = vec![None; b];
    let mut next_pos: Vec<i64> = prompts.iter().map(|s| s.len() as i64).collect();
    let mut mask = p.mask.clone();
    let mut past = dec.empty_past(b)?;
    let mut step = dec.run(p.ids.clone(), p.positions.clone(), mask.clone(), b, &past, false)?;
    let mut s = p.len;
    for t in 0..cfg.max_new_tokens {
        let v = step.vocab;
        let mut ids = Vec::with_capacity(b);
        for r in 0..b {
            let row = &step.logits[(r * s + s - 1) * v..(r * s + s) * v];
            let id = if done[r].is_some() {
                0
            } else {
                pick(
                    finite_logits(row, Some(first_row + r as u64 + 1), (prompts[r].len() + t).saturating_sub(1))?,
                    cfg,
                    &mut rngs[r],
                ) as i64
            };
            if done[r].is_none() {
                out[r].push(id);
                if !cfg.stop.is_empty() {
                    let text = tok.decode(&out[r])?;
                    if cfg.stop.iter().any(|st| text.contains(st.as_str())) {
                        done[r] = Some("stop");
                    }
                }
            }
            ids.push(id);
        }
        if !on_token() {
            return Err(NnError::Graph("generation was cancelled".into()));
        }
        if done.iter().all(Option::is_some) || t + 1 == cfg.max_new_tokens {
            break;
        }
        // Feed the new tokens: one position per row.
        let mut m2 = Vec::with_capacity(mask.len() + b);
        let total = mask.len() / b;
        for r in 0..b {
            m2.extend_from_slice(&mask[r * total..(r + 1) * total]);
            m2.push(1);
        }
        mask = m2;
        let positions: Vec<i64> = next_pos.clone();
        for np in &mut next_pos {
            *np += 1;
        }
        past = std::mem::take(&mut step.present);
        step = dec.run(ids, positions, mask.clone(), b, &past, false)?;
        s = 1;
    }
    out.into_iter()
        .zip(done)
        .map(|(ids, d)| {
            let text = tok.decode(&ids)?;
            // The earliest stop string in the text ends it.
            let first = cfg.stop.iter().filter_map(|st| text.find(st.as_str()).map(|at| (at, st))).min();
            let (text, finish, stop) = match first {
                Some((cut, st)) => (text[..cut].to_string(), "stop", Some(st.clone())),
                None => (text, d.unwrap_or("length"), None),
            };
            Ok(Completion { ids, text, finish, stop })
        })
        .collect()
}

/// Picks a token from one row of logits.
fn pick(row: &[f32], cfg: &Sampling, rng: &mut impl Rng) -> usize {
    if cfg.temperature < MIN_TEMPERATURE {
        return argmax(row);
    }
    let mut cand: Vec<(usize, f64)> = row.iter().map(|&l| l as f64 / cfg.temperature).enumerate().collect();
    if cfg.top_k > 0 && cfg.top_k < cand.len() || cfg.top_p < 1.0 {
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    }
    if cfg.top_k > 0 && cfg.top_k < cand.len() {
        cand.truncate(cfg.top_k);
    }
    let max = cand.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
    let mut probs: Vec<f64> = cand.iter().map(|c| (c.1 - max).exp()).collect();
    let z: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= z);
    if cfg.top_p < 1.0 {
        let (mut acc, mut keep) = (0.0, probs.len());
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if acc >= cfg.top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        cand.truncate(keep);
        let z: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= z);
    }
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (c, p) in cand.iter().zip(&probs) {
        acc += p;
        if u < acc {
            return c.0;
        }
    }
    cand.last().map_or(0, |c| c.0)
}

/// The first index of the largest value.
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0
}

/// The scalar head of a reward or value model at the last token of each sequence.
pub fn rewards(dec: &mut Decoder, seqs: &[Vec<i64>]) -> Result<Vec<f64>, NnError> {
    if let Some(i) = seqs.iter().position(Vec::is_empty) {
        return Err(NnError::BadModel(format!("text {i} is empty; a reward needs at least one token")));
    }
    let (out, pad) = dec.full(seqs, false)?;
    let values = out
        .values
        .ok_or_else(|| NnError::BadModel("the model has no scalar head; train one with `finetune.reward`".into()))?;
    Ok((0..seqs.len()).map(|r| values[r * pad.len + pad.len - 1] as f64).collect())
}

/// `row` if every logit in it is a finite number; otherwise an error naming the position
/// (and `text`, the record's number from 1, when known) whose logits are not.
fn finite_logits(row: &[f32], text: Option<u64>, position: usize) -> Result<&[f32], NnError> {
    match row.iter().position(|x| !x.is_finite()) {
        None => Ok(row),
        Some(i) => Err(NnError::NonFiniteOutput(format!(
            "the model's logit for token {i} is {} at position {position}{}; its weights or inputs hold NaN or infinite values",
            row[i],
            text.map_or(String::new(), |t| format!(" of record {t}"))
        ))),
    }
}

/// A prompt and its continuation, as token ids.
pub type Pair = (Vec<i64>, Vec<i64>);

/// Runs (prompt, continuation) pairs through the decoder in one left-padded batch and
/// calls `f(pair, j, logits)` with the logits that predict token `j` of each continuation.
fn for_each_continuation_token(
    dec: &mut Decoder,
    pairs: &[Pair],
    mut f: impl FnMut(usize, usize, &[f32]),
) -> Result<(), NnError> {
    if let Some(i) = pairs.iter().position(|(p, _)| p.is_empty()) {
        return Err(NnError::BadModel(format!(
            "prompt {i} is empty; the first token of a text has no probability to score"
        )));
    }
    let seqs: Vec<Vec<i64>> = pairs.iter().map(|(p, c)| p.iter().chain(c).copied().collect()).collect();
    let (out, pad) = dec.full(&seqs, false)?;
    let (l, v) = (pad.len, out.vocab);
    if let Some(id) = pairs.iter().flat_map(|(_, c)| c).find(|&&id| id < 0 || id as usize >= v) {
        return Err(NnError::BadModel(format!(
            "token id {id} is outside the model's {v} logits: the tokenizer does not fit the model"
        )));
    }
    for (r, (p, c)) in pairs.iter().enumerate() {
        for j in 0..c.len() {
            // The logits at the position before a token predict it.
            let at = r * l + pad.pad[r] + p.len() + j - 1;
            let row = finite_logits(&out.logits[at * v..(at + 1) * v], None, p.len() + j - 1)?;
            f(r, j, row);
        }
    }
    Ok(())
}

/// log P(continuation | prompt) of each (prompt, continuation) pair of token ids, summed
/// over the continuation's tokens, with the per-token terms.
pub fn score(dec: &mut Decoder, pairs: &[Pair]) -> Result<Vec<(f64, Vec<f64>)>, NnError> {
    let mut terms: Vec<Vec<f64>> = pairs.iter().map(|(_, c)| Vec::with_capacity(c.len())).collect();
    for_each_continuation_token(dec, pairs, |r, j, row| terms[r].push(log_softmax(row)[pairs[r].1[j] as usize]))?;
    Ok(terms.into_iter().map(|t| (t.iter().sum(), t)).collect())
}

/// For each (prompt, continuation): the model's next-token log-probabilities over
/// `tokens` only (renormalised among them), at each position that predicts a continuation
/// token: `[continuation length, tokens.len()]`, row-major.
pub fn next_token_logprobs(dec: &mut Decoder, pairs: &[Pair], tokens: &[i64]) -> Result<Vec<Vec<f32>>, NnError> {
    if let Some(t) = tokens.iter().find(|&&t| t < 0) {
        return Err(NnError::BadModel(format!("token id {t} is negative")));
    }
    let mut rows: Vec<Vec<f32>> = pairs.iter().map(|(_, c)| Vec::with_capacity(c.len() * tokens.len())).collect();
    for_each_continuation_token(dec, pairs, |r, _, row| {
        let sub: Vec<f32> = tokens.iter().map(|&t| row.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY)).collect();
        rows[r].extend(log_softmax(&sub).into_iter().map(|x| x as f32));
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_k_and_top_p() {
        let row = [0.0f32, 3.0, 1.0, 2.9];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let greedy = Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, max_new_tokens: 1, stop: vec![], seed: 0 };
        assert_eq!(pick(&row, &greedy, &mut rng), 1);
        // top_k = 2 keeps tokens 1 and 3 only.
        let k2 = Sampling { temperature: 1.0, top_k: 2, ..greedy.clone() };
        for _ in 0..200 {
            assert!(matches!(pick(&row, &k2, &mut rng), 1 | 3));
        }
        // A tiny top_p keeps the single most likely token.
        let p = Sampling { temperature: 1.0, top_p: 0.01, ..greedy };
        for _ in 0..50 {
            assert_eq!(pick(&row, &p, &mut rng), 1);
        }
    }

    #[test]
    fn a_vanishing_temperature_is_greedy() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let base = Sampling { temperature: 1e-310, top_k: 0, top_p: 1.0, max_new_tokens: 1, stop: vec![], seed: 0 };
        for row in [[0.0f32, 3.0, 1.0, 2.9], [-5.0, -1.0, -3.0, -2.0], [2.0, -7.0, 1.5, 0.0]] {
            for t in [1e-310, 1e-20, MIN_TEMPERATURE / 2.0] {
                let cfg = Sampling { temperature: t, ..base.clone() };
                for _ in 0..20 {
                    assert_eq!(pick(&row, &cfg, &mut rng), argmax(&row), "temperature {t}, row {row:?}");
                }
            }
        }
    }

    #[test]
    fn log_softmax_normalises() {
        let ls = log_softmax(&[1.0, 2.0, 3.0]);
        let z: f64 = ls.iter().map(|x| x.exp()).sum();
        assert!((z - 1.0).abs() < 1e-12);
        assert!((ls[2] - ls[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn left_padding() {
        let p = Padded::new(&[vec![5, 6, 7], vec![9]]);
        assert_eq!(p.ids, vec![5, 6, 7, 0, 0, 9]);
        assert_eq!(p.mask, vec![1, 1, 1, 0, 0, 1]);
        assert_eq!(p.positions, vec![0, 1, 2, 0, 0, 0]);
        assert_eq!(p.pad, vec![0, 2]);
    }
}
