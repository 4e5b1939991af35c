//! Training language models: the loss graphs of next-token prediction (pretraining and
//! SFT), distillation to a teacher's next-token distribution (optionally over a subset of
//! tokens, renormalised), and Bradley–Terry reward modelling; the rows they read; and
//! gradients with respect to the input.

use crate::NnError;
use crate::gpt::{Gpt, Trainable};
use crate::graph::{Graph, V};
use crate::runtime::SessionOptions;
use crate::tensor::{DType, Tensor};
use crate::train::{self, Batches, StepInfo, TrainConfig, TrainReport};
use ort::value::DynValue;
use std::collections::HashMap;

/// What a language model is trained to do.
#[derive(Debug, Clone, PartialEq)]
pub enum LmObjective {
    /// Cross-entropy of each next token, at the positions the rows weight.
    NextToken,
    /// KL(teacher ‖ student) of the next-token distributions at weighted positions,
    /// restricted to `tokens` and renormalised (all tokens when empty).
    Distill { tokens: Vec<i64> },
    /// Bradley–Terry: −log σ(r(chosen) − r(rejected)) over pairs, with r the scalar head
    /// at each sequence's last token.
    Reward,
}

/// A token sequence whose tokens from `from` on are predicted (trained on).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub ids: Vec<i64>,
    pub from: usize,
    /// With [`LmObjective::Distill`]: the teacher's log-probabilities over the chosen
    /// tokens at each predicted position, `[ids.len() − from, k]`.
    pub teacher: Vec<f32>,
    /// The position of the first token (0 unless training windows are placed at random
    /// positions of a longer context).
    pub offset: usize,
}

/// A comparison for reward modelling: completions of one prompt, best first. Every pair
/// (better, worse) is one Bradley–Terry term.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub seqs: Vec<Vec<i64>>,
}

/// Rows padded to one length `t + 1`, fed as `tokens`/`targets`/`weights` (and the
/// teacher's distribution for distillation). Weights are normalised per batch so that
/// the loss is a mean over predicted tokens.
struct TokenBatches<'a> {
    rows: &'a [Row],
    t: usize,
    k: usize,
    /// Whether the graph takes each row's `positions`.
    positions: bool,
}

impl Batches for TokenBatches<'_> {
    fn rows(&self) -> usize {
        self.rows.len()
    }

    fn weight(&self, rows: &[usize]) -> f64 {
        rows.iter()
            .map(|&r| self.rows[r].ids.len().min(self.t + 1).saturating_sub(self.rows[r].from.max(1)) as f64)
            .sum()
    }

    fn feed(&self, rows: &[usize]) -> Result<Vec<(&'static str, DynValue)>, NnError> {
        let (t, k, n) = (self.t, self.k, rows.len());
        let mut tokens = vec![0i64; n * t];
        let mut targets = vec![0i64; n * t];
        let mut weights = vec![0f32; n * t];
        let mut probs = vec![0f32; if k > 0 { n * t * k } else { 0 }];
        let mut negent = vec![0f32; if k > 0 { n * t } else { 0 }];
        let mut positions = vec![0i64; if self.positions { n * t } else { 0 }];
        for (b, &r) in rows.iter().enumerate() {
            let row = &self.rows[r];
            if self.positions {
                // Padding sits at position 0 (it is masked out of the loss).
                for (j, p) in positions[b * t..(b + 1) * t].iter_mut().enumerate() {
                    *p = if j + 1 < row.ids.len() { (row.offset + j) as i64 } else { 0 };
                }
            }
            for j in 0..row.ids.len().min(t + 1) {
                if j < t {
                    tokens[b * t + j] = row.ids[j];
                }
                if j >= 1 && j >= row.from {
                    let at = b * t + j - 1;
                    targets[at] = row.ids[j];
                    weights[at] = 1.0;
                    if k > 0 {
                        let lp = &row.teacher[(j - row.from) * k..(j - row.from + 1) * k];
                        let mut h = 0.0f32;
                        for (c, &l) in lp.iter().enumerate() {
                            let p = l.exp();
                            probs[at * k + c] = p;
                            h += if p > 0.0 { p * l } else { 0.0 };
                        }
                        negent[at] = h;
                    }
                }
            }
        }
        let total: f32 = weights.iter().sum();
        if total > 0.0 {
            weights.iter_mut().for_each(|w| *w /= total);
        }
        let (ni, ti) = (n as i64, t as i64);
        let mut feeds = vec![
            ("tokens", ort::value::Tensor::from_array((vec![ni, ti], tokens))?.into_dyn()),
            ("weights", ort::value::Tensor::from_array((vec![ni, ti], weights))?.into_dyn()),
        ];
        if self.positions {
            feeds.push(("positions", ort::value::Tensor::from_array((vec![ni, ti], positions))?.into_dyn()));
        }
        if k > 0 {
            feeds.push(("teacher_p", ort::value::Tensor::from_array((vec![ni, ti, k as i64], probs))?.into_dyn()));
            feeds.push(("teacher_negent", ort::value::Tensor::from_array((vec![ni, ti], negent))?.into_dyn()));
        } else {
            feeds.push(("targets", ort::value::Tensor::from_array((vec![ni, ti], targets))?.into_dyn()));
        }
        Ok(feeds)
    }
}

/// Ranked comparisons fed as `tokens` `[M, t]`, `last` (one-hot at each sequence's last
/// token), `pairs` `[P, M]` (+1 better, −1 worse) and pair `weights` `[P]`.
struct RankedBatches<'a> {
    items: &'a [Ranked],
    t: usize,
}

impl Batches for RankedBatches<'_> {
    fn rows(&self) -> usize {
        self.items.len()
    }

    fn feed(&self, rows: &[usize]) -> Result<Vec<(&'static str, DynValue)>, NnError> {
        let t = self.t;
        let seqs: Vec<&Vec<i64>> = rows.iter().flat_map(|&r| self.items[r].seqs.iter()).collect();
        let m = seqs.len();
        let mut tokens = vec![0i64; m * t];
        let mut last = vec![0f32; m * t];
        for (i, s) in seqs.iter().enumerate() {
            for (j, &id) in s.iter().take(t).enumerate() {
                tokens[i * t + j] = id;
            }
            last[i * t + s.len().min(t) - 1] = 1.0;
        }
        let mut pairs = Vec::new();
        let mut base = 0;
        let mut count = 0;
        for &r in rows {
            let k = self.items[r].seqs.len();
            for a in 0..k {
                for b in a + 1..k {
                    let mut row = vec![0f32; m];
                    row[base + a] = 1.0;
                    row[base + b] = -1.0;
                    pairs.extend(row);
                    count += 1;
                }
            }
            base += k;
        }
        let weights = vec![1.0 / count.max(1) as f32; count];
        let (mi, ti) = (m as i64, t as i64);
        Ok(vec![
            ("tokens", ort::value::Tensor::from_array((vec![mi, ti], tokens))?.into_dyn()),
            ("last", ort::value::Tensor::from_array((vec![mi, ti], last))?.into_dyn()),
            ("pairs", ort::value::Tensor::from_array((vec![count as i64, mi], pairs))?.into_dyn()),
            ("weights", ort::value::Tensor::from_array((vec![count as i64], weights))?.into_dyn()),
        ])
    }
}

/// Builds the loss graph of `objective` for sequences of `t` tokens. Inputs: every
/// parameter (by name), `tokens` `[B, t]`, `weights`, and the objective's own.
pub fn loss_graph(model: &Gpt, objective: &LmObjective, t: usize) -> Result<(Graph, V), NnError> {
    loss_graph_at(model, objective, t, false)
}

/// [`loss_graph`], with `positions`: the graph also takes each token's position
/// (`positions` `[B, T]`) instead of 0..T.
pub fn loss_graph_at(model: &Gpt, objective: &LmObjective, t: usize, positions: bool) -> Result<(Graph, V), NnError> {
    let mut g = Graph::new(DType::F32);
    let p = model.param_inputs(&mut g);
    let ti = t as i64;
    let tokens = g.input("tokens", DType::I64, &[-1, ti]);
    let pos = positions.then(|| g.input("positions", DType::I64, &[-1, ti]));
    let pass = model.training_forward_at(&mut g, &p, tokens, pos)?;
    let loss = match objective {
        LmObjective::NextToken => next_token_loss(&mut g, pass.logits, -1, ti),
        LmObjective::Distill { tokens: subset } => {
            let k = if subset.is_empty() { model.spec.vocab } else { subset.len() };
            let tp = g.input("teacher_p", DType::F32, &[-1, ti, k as i64]);
            let negent = g.input("teacher_negent", DType::F32, &[-1, ti]);
            let weights = g.input("weights", DType::F32, &[-1, ti]);
            let logits = if subset.is_empty() {
                pass.logits
            } else {
                // A selection matrix picks the subset's logits (its gradient is a MatMul's).
                let v = model.spec.vocab;
                let mut sel = vec![0.0; v * k];
                for (c, &id) in subset.iter().enumerate() {
                    if id < 0 || id as usize >= v {
                        return Err(NnError::BadModel(format!("token id {id} is outside the vocabulary of {v}")));
                    }
                    sel[id as usize * k + c] = 1.0;
                }
                let sel = g.constant(Tensor::float(DType::F32, vec![v, k], sel));
                g.matmul(pass.logits, sel)
            };
            let ls = g.log_softmax(logits, -1);
            let cross = g.mul(tp, ls);
            let cross = g.reduce_sum(cross, &[-1], false);
            let kl = g.sub(negent, cross);
            let w = g.mul(kl, weights);
            g.reduce_sum(w, &[0, 1], false)
        }
        LmObjective::Reward => {
            let values = pass.values.ok_or_else(|| {
                NnError::BadModel(
                    "reward modelling needs a scalar head (`value_head: true`, or `model.value_head`)".into(),
                )
            })?;
            let last = g.input("last", DType::F32, &[-1, ti]);
            let pairs = g.input("pairs", DType::F32, &[-1, -1]);
            let weights = g.input("weights", DType::F32, &[-1]);
            let r = g.mul(values, last);
            let r = g.reduce_sum(r, &[1], true);
            let diff = g.matmul(pairs, r);
            let diff = g.reshape_keep(diff, 1, &[]);
            crate::reward::bradley_terry(&mut g, diff, weights)
        }
    };
    Ok((g, loss))
}

/// −Σ weights · log softmax(logits)[targets], with inputs `targets` and `weights` of shape
/// `[batch, t]` (weights sum to 1 over a batch, so this is a mean).
fn next_token_loss(g: &mut Graph, logits: V, batch: i64, t: i64) -> V {
    let targets = g.input("targets", DType::I64, &[batch, t]);
    let weights = g.input("weights", DType::F32, &[batch, t]);
    let lp = g.log_softmax(logits, -1);
    let idx = g.unsqueeze(targets, &[-1]);
    let picked = g.gather_last(lp, idx);
    let picked = g.reshape_keep(picked, 2, &[]);
    let w = g.mul(picked, weights);
    let s = g.reduce_sum(w, &[0, 1], false);
    g.neg(s)
}

/// The longest row, checked against the context: sequences of `t + 1` tokens train
/// positions `0..t`.
fn train_len(model: &Gpt, lens: impl Iterator<Item = usize>) -> Result<usize, NnError> {
    let longest = lens.max().unwrap_or(0);
    if longest < 2 {
        return Err(NnError::BadModel("every training text has fewer than 2 tokens: nothing to predict".into()));
    }
    if longest - 1 > model.spec.context {
        return Err(NnError::BadModel(format!(
            "a training text has {longest} tokens; the model's context is {} (texts may have context + 1 tokens)",
            model.spec.context
        )));
    }
    Ok(longest - 1)
}

/// Trains `model` in place on `rows` (or ranked comparisons for [`LmObjective::Reward`]);
/// only the parameters `trainable` picks change.
#[allow(clippy::too_many_arguments)]
pub fn train_lm(
    model: &mut Gpt,
    objective: &LmObjective,
    rows: &[Row],
    ranked: &[Ranked],
    val_rows: Option<&[Row]>,
    trainable: Trainable,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(StepInfo) -> bool,
) -> Result<TrainReport, NnError> {
    let mask: Vec<bool> = model.params.iter().map(|(n, _)| trainable.includes(n)).collect();
    if !mask.iter().any(|&m| m) {
        return Err(NnError::BadModel(format!(
            "`train: {trainable:?}` selects no parameter of this model (a tied model has no output layer of its own)"
        )));
    }
    if objective == &LmObjective::Reward {
        if ranked.is_empty() {
            return Err(NnError::BadModel("there are no comparisons to train on".into()));
        }
        if let Some(i) = ranked.iter().position(|r| r.seqs.len() < 2 || r.seqs.iter().any(Vec::is_empty)) {
            return Err(NnError::BadModel(format!("comparison {} needs at least two non-empty texts", i + 1)));
        }
        // A compared text is read whole: n tokens, n positions (the head reads the last).
        let t = ranked.iter().flat_map(|r| r.seqs.iter().map(Vec::len)).max().unwrap_or(0);
        if t > model.spec.context {
            return Err(NnError::BadModel(format!(
                "a compared text has {t} tokens; the model's context is {}",
                model.spec.context
            )));
        }
        let (g, loss) = loss_graph(model, objective, t)?;
        let data = RankedBatches { items: ranked, t };
        return train::fit(g, loss, &mut model.params, &mask, &data, None, cfg, on_step);
    }
    let k = match objective {
        LmObjective::Distill { tokens } if tokens.is_empty() => model.spec.vocab,
        LmObjective::Distill { tokens } => tokens.len(),
        _ => 0,
    };
    for (i, r) in rows.iter().enumerate() {
        if k > 0 && r.teacher.len() != r.ids.len().saturating_sub(r.from) * k {
            return Err(NnError::BadModel(format!(
                "row {i}: the teacher's distributions cover {} values, expected {} positions × {k} tokens",
                r.teacher.len(),
                r.ids.len().saturating_sub(r.from)
            )));
        }
    }
    let all = || rows.iter().chain(val_rows.unwrap_or(&[]));
    let t = train_len(model, all().map(|r| r.ids.len()))?;
    let positions = all().any(|r| r.offset > 0);
    if let Some(r) = all().find(|r| r.offset + r.ids.len().min(t + 1) - 1 > model.spec.context) {
        return Err(NnError::BadModel(format!(
            "a row placed at position {} runs past the model's context of {}",
            r.offset, model.spec.context
        )));
    }
    let (g, loss) = loss_graph_at(model, objective, t, positions)?;
    let data = TokenBatches { rows, t, k, positions };
    let val = val_rows.map(|v| TokenBatches { rows: v, t, k, positions });
    train::fit(g, loss, &mut model.params, &mask, &data, val.as_ref().map(|v| v as &dyn Batches), cfg, on_step)
}

/// Gradients of the mean next-token loss of a sequence (at positions `from..`) with respect
/// to the input: the token embeddings `[T, width]` and the one-hot token encoding
/// `[T, vocab]` (the attack and importance-sampling papers take one or the other), `T`
/// being the sequence's length − 1. The gradient graph is built and opened once per
/// sequence length.
pub struct InputGradients<'a> {
    model: &'a Gpt,
    opts: SessionOptions,
    sessions: HashMap<usize, ort::session::Session>,
}

impl<'a> InputGradients<'a> {
    pub fn new(model: &'a Gpt, opts: SessionOptions) -> Self {
        InputGradients { model, opts, sessions: HashMap::new() }
    }

    fn session(&self, t: usize) -> Result<ort::session::Session, NnError> {
        let (model, v) = (self.model, self.model.spec.vocab);
        let mut g = Graph::new(DType::F32);
        let p = model.param_initializers(&mut g);
        let onehot = g.input("onehot", DType::F32, &[1, t as i64, v as i64]);
        let emb = g.matmul(onehot, p.get("wte"));
        let pass = model.forward_embeddings(&mut g, &p, emb)?;
        let loss = next_token_loss(&mut g, pass.logits, 1, t as i64);
        let grads = crate::autodiff::grad(&mut g, loss, &[emb, onehot])?;
        g.output(grads[0], "d_embeddings");
        g.output(grads[1], "d_onehot");
        crate::runtime::session(&g.to_onnx_bytes("labrun input gradients"), self.opts)
    }

    /// `(d loss / d embeddings, d loss / d one-hot)` of `seq`.
    pub fn of(&mut self, seq: &[i64], from: usize) -> Result<(Tensor, Tensor), NnError> {
        let t = train_len(self.model, std::iter::once(seq.len()))?;
        let v = self.model.spec.vocab;
        let mut oh = vec![0f32; t * v];
        let mut tg = vec![0i64; t];
        let mut wt = vec![0f32; t];
        for j in 0..t {
            let id = seq[j];
            if id < 0 || id as usize >= v {
                return Err(NnError::BadModel(format!("token id {id} is outside the vocabulary of {v}")));
            }
            oh[j * v + id as usize] = 1.0;
            if j + 1 >= from.max(1) {
                tg[j] = seq[j + 1];
                wt[j] = 1.0;
            }
        }
        let n: f32 = wt.iter().sum();
        wt.iter_mut().for_each(|w| *w /= n.max(1.0));
        if !self.sessions.contains_key(&t) {
            let s = self.session(t)?;
            self.sessions.insert(t, s);
        }
        let sess = self.sessions.get_mut(&t).expect("inserted above");
        let out = crate::exec::run_session(
            sess,
            &[
                ("onehot", &Tensor::f32(vec![1, t, v], oh)),
                ("targets", &Tensor::i64(vec![1, t], tg)),
                ("weights", &Tensor::f32(vec![1, t], wt)),
            ],
        )?;
        let mut it = out.into_iter();
        let (de, doh) = (it.next().expect("two outputs"), it.next().expect("two outputs"));
        Ok((Tensor { shape: vec![t, self.model.spec.width], ..de }, Tensor { shape: vec![t, v], ..doh }))
    }
}

/// [`InputGradients::of`] for one sequence.
pub fn input_gradients(model: &Gpt, seq: &[i64], from: usize) -> Result<(Tensor, Tensor), NnError> {
    InputGradients::new(model, SessionOptions::default()).of(seq, from)
}
