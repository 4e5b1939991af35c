//! The low-probability estimation family (arXiv:2410.13211): a synthetic language to
//! train a small GPT on (`generate.language`), input distributions of independent tokens
//! per position (`generate.distributions`, `data.distributions`), the probability that the
//! model's argmax at the last position is a target token — exactly by enumeration
//! (`estimate.exact`) and by the paper's estimators with a sample budget
//! (`estimate.naive`, `estimate.itgis`, `estimate.mhis`, `estimate.qld`, `estimate.gld`) —
//! and the paper's score (`score.is_loss`). The estimators themselves live in
//! `lab_nn::lowprob`.
//!
//! A `Distributions` artifact is `distributions.json` (what the ops read) and
//! `distributions.csv` (distribution, name, position, token, probability). Estimates
//! are `Curve`s with columns `distribution` (its index), `target` (a token id),
//! `probability` (the exact value, copied from the targets) and `estimate`.

use crate::artifact::{self, Metrics};
use crate::curve::Curve;
use crate::lmops;
use crate::nnops::session_options;
use crate::params::{Choice, CurveDir, DistributionsDir, FilePath, ModelDir, Options, Params};
use crate::text::{self, TextData};
use crate::{Check, Op, OpError, Progress, Registry, RunCtx, Signature, Type};
use lab_nn::gpt::Gpt;
use lab_nn::lowprob::{self, Dist, GptOracle, ItgisConfig, MhisConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Normal};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fmt::Write;
use std::path::Path;

pub fn register_generate(r: &mut Registry) {
    r.add(Language);
    r.add(Distributions);
}

pub fn register_data(r: &mut Registry) {
    r.add(DistributionsFile);
}

pub fn register_estimate(r: &mut Registry) {
    r.add(Exact);
    r.add(Naive);
    r.add(Itgis);
    r.add(Mhis);
    r.add(Qld);
    r.add(Gld);
}

pub fn register_score(r: &mut Registry) {
    r.add(IsLoss);
}

/// The most inputs `estimate.exact` enumerates per distribution.
const MAX_ENUMERATED: u64 = 1 << 32;
const FILE: &str = "distributions.json";

// ---------------------------------------------------------------------------------------
// The synthetic language

/// `generate.language`: documents of a seeded low-rank language.
pub struct Language;

#[derive(Params)]
#[params(rules = language_rules)]
pub struct LanguageParams {
    /// the characters of the language, one token each (give the model the same alphabet)
    alphabet: String,
    /// documents
    #[param(min = 1, max = 10_000_000)]
    count: usize,
    /// tokens before the answer (the model's inputs)
    #[param(default = 5, min = 1, max = 64)]
    length: usize,
    /// rank of the map from inputs to the answer
    #[param(default = 8, min = 1, max = 256)]
    rank: usize,
    /// seed of the language (its embeddings)
    #[param(default = 0)]
    language_seed: i64,
    /// seed of the documents
    #[param(default = 0)]
    seed: i64,
}

/// An alphabet of distinct characters.
fn language_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["alphabet"],
        doc: "`alphabet` is not empty and lists each character once",
        test: |v| {
            let a = v[0].as_str()?;
            let mut seen = std::collections::HashSet::new();
            if a.is_empty() {
                Some("`alphabet` is empty; list the language's characters, e.g. `alphabet: \"abcdef\"`".into())
            } else {
                a.chars()
                    .find(|c| !seen.insert(*c))
                    .map(|c| format!("`alphabet` has `{c}` twice; each character is one token"))
            }
        },
    }]
}

impl Op for Language {
    type Params = LanguageParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "language",
            1,
            Type::Dataset,
            "documents of a seeded low-rank language: `length` tokens drawn uniformly from the alphabet, then the answer argmax_v (F·tanh(Σ_i E_i[x_i]))_v for random rank-`rank` embeddings E_i, F (seeded by `language_seed`). Records: `prompt` (the inputs), `completion` (the answer), `text` (both)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: LanguageParams) -> Result<(), OpError> {
        let chars: Vec<char> = p.alphabet.chars().collect();
        let v = chars.len();
        let mut rng = ChaCha8Rng::seed_from_u64(p.language_seed as u64);
        let normal = Normal::new(0.0, 1.0).expect("unit normal");
        let scale = 1.5 / (p.length as f64).sqrt();
        let emb: Vec<f64> = (0..p.length * v * p.rank).map(|_| scale * normal.sample(&mut rng)).collect();
        let out: Vec<f64> = (0..v * p.rank).map(|_| normal.sample(&mut rng)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed as u64);
        let mut records = Vec::with_capacity(p.count);
        let mut h = vec![0f64; p.rank];
        for _ in 0..p.count {
            h.iter_mut().for_each(|x| *x = 0.0);
            let mut prompt = String::with_capacity(p.length + 1);
            for i in 0..p.length {
                let t = rng.random_range(0..v);
                prompt.push(chars[t]);
                let e = &emb[(i * v + t) * p.rank..(i * v + t + 1) * p.rank];
                h.iter_mut().zip(e).for_each(|(a, b)| *a += b);
            }
            h.iter_mut().for_each(|x| *x = x.tanh());
            let answer = (0..v)
                .map(|t| (t, out[t * p.rank..(t + 1) * p.rank].iter().zip(&h).map(|(a, b)| a * b).sum::<f64>()))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(t, _)| t)
                .ok_or_else(|| OpError::invalid("alphabet", "is empty; list the language's characters"))?;
            let completion = chars[answer].to_string();
            records.push(text::record([
                ("text", format!("{prompt}{completion}")),
                ("prompt", prompt),
                ("completion", completion),
            ]));
        }
        ctx.check_cancel()?;
        TextData { records }.write(ctx.out)
    }
}

// ---------------------------------------------------------------------------------------
// Distributions

/// One option of a position, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OptionFile {
    /// The token's text (one character for labrun's GPTs).
    token: String,
    p: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DistFile {
    name: String,
    positions: Vec<Vec<OptionFile>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DistsFile {
    distributions: Vec<DistFile>,
}

/// Checks distributions as written by a person or an op: names unique, every distribution
/// of the same length, per position distinct tokens of positive probabilities that sum to 1
/// (within 1e-6; they are renormalised). `file` names the source in errors.
fn validate(d: &DistsFile, file: &str) -> Result<(), OpError> {
    let bad = |m: String| OpError::Data(format!("{file}: {m}"));
    let first = d.distributions.first().ok_or_else(|| bad("holds no distributions".into()))?;
    let mut names = std::collections::HashSet::new();
    for dist in &d.distributions {
        if !names.insert(dist.name.as_str()) {
            return Err(bad(format!("two distributions are named `{}`; give each its own name", dist.name)));
        }
        if dist.positions.is_empty() || dist.positions.len() != first.positions.len() {
            return Err(bad(format!(
                "distribution `{}` has {} positions, `{}` has {}; every distribution needs the same number (at least 1)",
                dist.name,
                dist.positions.len(),
                first.name,
                first.positions.len()
            )));
        }
        for (i, opts) in dist.positions.iter().enumerate() {
            let at = format!("distribution `{}`, position {i}", dist.name);
            if opts.is_empty() {
                return Err(bad(format!("{at} has no tokens")));
            }
            let mut seen = std::collections::HashSet::new();
            for o in opts {
                if !(o.p.is_finite() && o.p > 0.0) {
                    return Err(bad(format!(
                        "{at}: token `{}` has probability {}; use a positive number",
                        o.token, o.p
                    )));
                }
                if !seen.insert(o.token.as_str()) {
                    return Err(bad(format!("{at} lists token `{}` twice", o.token)));
                }
            }
            let total: f64 = opts.iter().map(|o| o.p).sum();
            if (total - 1.0).abs() > 1e-6 {
                return Err(bad(format!("{at}: the probabilities sum to {total}, not 1")));
            }
        }
    }
    Ok(())
}

fn write_dists(dir: &Path, d: &DistsFile) -> Result<(), OpError> {
    let text = serde_json::to_string_pretty(d).map_err(|e| OpError::internal(e.to_string()))?;
    std::fs::write(dir.join(FILE), text)?;
    let mut csv = String::from("distribution,name,position,token,probability\n");
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for (k, dist) in d.distributions.iter().enumerate() {
        for (i, opts) in dist.positions.iter().enumerate() {
            for o in opts {
                let _ = writeln!(csv, "{k},{},{i},{},{}", quote(&dist.name), quote(&o.token), o.p);
            }
        }
    }
    std::fs::write(dir.join("distributions.csv"), csv)?;
    let inputs: Vec<f64> =
        d.distributions.iter().map(|x| x.positions.iter().map(|p| p.len() as f64).product()).collect();
    let mut m = Metrics::new();
    m.insert("distributions".into(), json!(d.distributions.len()));
    m.insert("length".into(), json!(d.distributions[0].positions.len()));
    m.insert("inputs".into(), json!(inputs.iter().cloned().fold(0.0, f64::max)));
    artifact::write_metrics(dir, &m)
}

fn read_file(path: &Path, file: &str) -> Result<DistsFile, OpError> {
    let text = std::fs::read_to_string(path).map_err(|e| OpError::Data(format!("{file}: {e}")))?;
    let d: DistsFile = serde_json::from_str(&text).map_err(|e| {
        OpError::Data(format!(
            "{file} is not a distributions file ({e}); write {{\"distributions\": [{{\"name\": …, \"positions\": [[{{\"token\": \"a\", \"p\": 0.5}}, …], …]}}]}}"
        ))
    })?;
    validate(&d, file)?;
    Ok(d)
}

/// Reads a `Distributions` artifact as token ids of `model`'s tokenizer, checking that each
/// token is one of its tokens and that inputs fit its context (the behaviour is the
/// argmax at the last input position).
fn read_dists(dir: &Path, model: &Gpt, arg: &str) -> Result<Vec<Dist>, OpError> {
    let path = dir.join(FILE);
    let d = read_file(&path, &path.display().to_string())?;
    let len = d.distributions[0].positions.len();
    if len > model.spec.context {
        return Err(OpError::invalid(
            arg,
            format!(
                "has inputs of {len} tokens, longer than the model's context of {}; use shorter inputs or a model with a longer context",
                model.spec.context
            ),
        ));
    }
    d.distributions
        .iter()
        .map(|dist| {
            let positions = dist
                .positions
                .iter()
                .map(|opts| {
                    let total: f64 = opts.iter().map(|o| o.p).sum();
                    opts.iter()
                        .map(|o| match model.tokenizer.encode(&o.token).ok().as_deref() {
                            Some([id]) => Ok((*id as usize, o.p / total)),
                            _ => Err(OpError::invalid(
                                arg,
                                format!(
                                    "distribution `{}` uses `{}`, which is not one token of the model's vocabulary",
                                    dist.name, o.token
                                ),
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Dist { name: dist.name.clone(), positions })
        })
        .collect()
}

/// `generate.distributions`: random distributions over a model's tokens.
pub struct Distributions;

#[derive(Params)]
pub struct DistributionsParams {
    /// the language model whose tokens the inputs are made of
    model: ModelDir,
    /// distributions
    #[param(min = 1, max = 10_000)]
    count: usize,
    /// tokens per input
    #[param(min = 1, max = 64)]
    length: usize,
    /// tokens each position may take, drawn without replacement from the vocabulary
    #[param(default = 12, min = 1, max = 1_000_000)]
    options: usize,
    /// α of the symmetric Dirichlet the probabilities of a position's options are drawn from (large: near uniform)
    #[param(default = 1.0, positive, max = 1e6)]
    concentration: f64,
    /// random seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Distributions {
    type Params = DistributionsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "distributions",
            1,
            Type::Distributions,
            "`count` distributions over inputs of `length` tokens, independent per position: each position takes one of `options` tokens of the model's vocabulary (drawn at random), with probabilities from a symmetric Dirichlet(`concentration`). Named `random-0`, `random-1`, …",
        )
    }

    fn run(&self, ctx: &RunCtx, p: DistributionsParams) -> Result<(), OpError> {
        let model = lmops::load_gpt(&p.model, "model")?;
        if p.length > model.spec.context {
            return Err(OpError::invalid(
                "length",
                format!("is {}, longer than the model's context of {}", p.length, model.spec.context),
            ));
        }
        // Only tokens whose text reads back as themselves can be written down (a byte
        // tokenizer's bytes above 0x7f are not text on their own).
        let usable: Vec<String> = (0..model.spec.vocab)
            .filter_map(|t| {
                let text = model.tokenizer.token_text(t as i64).ok()?;
                (model.tokenizer.encode(&text).ok()? == [t as i64]).then_some(text)
            })
            .collect();
        if p.options > usable.len() {
            return Err(OpError::invalid(
                "options",
                format!(
                    "is {}, more than the {} tokens of the model that are text on their own (of {})",
                    p.options,
                    usable.len(),
                    model.spec.vocab
                ),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed as u64);
        let gamma = Gamma::new(p.concentration, 1.0).map_err(|e| OpError::invalid("concentration", e.to_string()))?;
        let mut distributions = Vec::with_capacity(p.count);
        for k in 0..p.count {
            let mut positions = Vec::with_capacity(p.length);
            for _ in 0..p.length {
                let toks = rand::seq::index::sample(&mut rng, usable.len(), p.options);
                // Gamma draws can underflow to 0 at small α: a floor keeps every option possible.
                let w: Vec<f64> = (0..p.options).map(|_| gamma.sample(&mut rng).max(1e-12)).collect();
                let total: f64 = w.iter().sum();
                let opts =
                    toks.iter().zip(&w).map(|(t, wi)| OptionFile { token: usable[t].clone(), p: wi / total }).collect();
                positions.push(opts);
            }
            distributions.push(DistFile { name: format!("random-{k}"), positions });
        }
        write_dists(ctx.out, &DistsFile { distributions })
    }
}

/// `data.distributions`: distributions written by hand.
pub struct DistributionsFile;

#[derive(Params)]
pub struct DistributionsFileParams {
    /// a JSON file: `{"distributions": [{"name": "digits", "positions": [[{"token": "1", "p": 0.5}, {"token": "2", "p": 0.5}], …]}, …]}`
    #[param(max_bytes = 64 << 20)]
    path: FilePath,
}

impl Op for DistributionsFile {
    type Params = DistributionsFileParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "data",
            "distributions",
            1,
            Type::Distributions,
            "input distributions from a JSON file: named distributions over inputs of a fixed number of tokens, independent per position, each position a list of tokens (their text) with probabilities summing to 1",
        )
    }

    fn run(&self, ctx: &RunCtx, p: DistributionsFileParams) -> Result<(), OpError> {
        let d = read_file(&p.path, &p.path.display().to_string())?;
        write_dists(ctx.out, &d)
    }
}

// ---------------------------------------------------------------------------------------
// Estimates

/// An estimator's own work for one distribution: estimates for `targets`.
type Method<'a> = dyn FnMut(&mut GptOracle, &Dist, usize, &[usize], &mut dyn FnMut() -> Result<(), OpError>) -> Result<Vec<f64>, OpError>
    + 'a;

/// A seeded generator for one (distribution, target) pair (`target` = usize::MAX for the
/// whole distribution), independent of the order in which pairs are visited.
fn rng_for(seed: i64, dist: usize, target: usize) -> ChaCha8Rng {
    // SplitMix64 steps over (seed, dist, target).
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    };
    let mut h = mix(seed as u64);
    for v in [dist as u64, target as u64] {
        h = mix(h.wrapping_add(0x9e3779b97f4a7c15) ^ v);
    }
    ChaCha8Rng::seed_from_u64(h)
}

/// Runs `method` on every (distribution, target) row of `targets` and writes the estimates.
fn estimate_targets(
    ctx: &RunCtx,
    model: &Path,
    inputs: &Path,
    targets: &Path,
    name: &str,
    method: &mut Method,
) -> Result<(), OpError> {
    let gpt = lmops::load_gpt(model, "model")?;
    let dists = read_dists(inputs, &gpt, "inputs")?;
    let tc = Curve::read(targets)?;
    let di = tc.column("distribution", "targets")?;
    let ti = tc.column("target", "targets")?;
    let truth = tc.column("probability", "targets").map_err(|_| {
        OpError::invalid(
            "targets",
            format!(
                "has no `probability` column (it has: {}); give it the rows of `estimate.exact`, e.g. through `filter.between`",
                tc.columns.join(", ")
            ),
        )
    })?;
    let mut by_dist: Vec<Vec<(usize, usize)>> = vec![Vec::new(); dists.len()];
    for (row, (&d, &t)) in di.iter().zip(&ti).enumerate() {
        let ok = d >= 0.0 && d.fract() == 0.0 && (d as usize) < dists.len();
        if !ok {
            return Err(OpError::invalid(
                "targets",
                format!("row {row} names distribution {d}; `inputs` has {} (0 to {})", dists.len(), dists.len() - 1),
            ));
        }
        if !(t >= 0.0 && t.fract() == 0.0 && (t as usize) < gpt.spec.vocab) {
            return Err(OpError::invalid(
                "targets",
                format!("row {row} names target {t}, not a token id of the model (0 to {})", gpt.spec.vocab - 1),
            ));
        }
        by_dist[d as usize].push((row, t as usize));
    }
    let mut oracle = GptOracle::new(&gpt, dists[0].len(), session_options(ctx))?;
    let mut est = vec![f64::NAN; tc.rows.len()];
    let total = tc.rows.len() as u64;
    let mut done = 0u64;
    for (k, (dist, rows)) in dists.iter().zip(&by_dist).enumerate() {
        if rows.is_empty() {
            continue;
        }
        let ts: Vec<usize> = rows.iter().map(|r| r.1).collect();
        let mut tick = || -> Result<(), OpError> {
            ctx.check_cancel()?;
            done += 1;
            (ctx.progress)(Progress { done: done.min(total), total, message: format!("{name}: {}", dist.name) });
            Ok(())
        };
        let got = method(&mut oracle, dist, k, &ts, &mut tick)?;
        if let Some((t, g)) = ts.iter().zip(&got).find(|(_, g)| !(g.is_finite() && **g >= 0.0)) {
            return Err(OpError::Data(format!(
                "{name} estimated {g} for target {t} of distribution `{}`: its settings (e.g. an extreme temperature) broke the arithmetic",
                dist.name
            )));
        }
        for (&(row, _), g) in rows.iter().zip(got) {
            est[row] = g;
        }
    }
    let mut curve = Curve::new(&["distribution", "target", "probability", "estimate"]);
    for (i, e) in est.iter().enumerate() {
        curve.push(vec![di[i], ti[i], truth[i], *e]);
    }
    let mut m = Metrics::new();
    m.insert("method".into(), json!(name));
    m.insert("targets".into(), json!(est.len()));
    m.insert("zeros".into(), json!(est.iter().filter(|&&e| e == 0.0).count()));
    curve.write(ctx.out, &m)
}

/// `estimate.exact`: the ground truth, by enumeration.
pub struct Exact;

#[derive(Params)]
pub struct ExactParams {
    /// the language model
    model: ModelDir,
    /// the input distributions
    inputs: DistributionsDir,
    /// inputs per ONNX Runtime call
    #[param(default = 4096, min = 1, max = 1_000_000)]
    batch: usize,
}

impl Op for Exact {
    type Params = ExactParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "exact",
            1,
            Type::Curve,
            "the exact probability, under each input distribution, that the model's argmax at the last input position is each token of its vocabulary: every input is enumerated (batched through ONNX Runtime) and weighted by its probability. Columns: distribution, target, probability",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ExactParams) -> Result<(), OpError> {
        let gpt = lmops::load_gpt(&p.model, "model")?;
        let dists = read_dists(&p.inputs, &gpt, "inputs")?;
        for d in &dists {
            if d.support().is_none_or(|n| n > MAX_ENUMERATED) {
                return Err(OpError::invalid(
                    "inputs",
                    format!(
                        "distribution `{}` has more than 2^32 inputs to enumerate; use fewer options or shorter inputs",
                        d.name
                    ),
                ));
            }
        }
        let mut oracle = GptOracle::new(&gpt, dists[0].len(), session_options(ctx))?;
        let mut curve = Curve::new(&["distribution", "target", "probability"]);
        let n = dists.len();
        for (k, d) in dists.iter().enumerate() {
            let mut progress = |share: f64| {
                let done = ((k as f64 + share) * 1000.0) as u64;
                (ctx.progress)(Progress { done, total: n as u64 * 1000, message: d.name.clone() });
                ctx.check_cancel().is_ok()
            };
            let probs = lowprob::exact(&mut oracle, d, p.batch, &mut progress)?.ok_or(OpError::Cancelled)?;
            for (t, q) in probs.iter().enumerate() {
                curve.push(vec![k as f64, t as f64, *q]);
            }
        }
        let mut m = Metrics::new();
        m.insert("distributions".into(), json!(n));
        m.insert("tokens".into(), json!(gpt.spec.vocab));
        curve.write(ctx.out, &m)
    }
}

/// `estimate.naive`: the share of samples that hit.
pub struct Naive;

#[derive(Params)]
pub struct NaiveParams {
    /// the language model
    model: ModelDir,
    /// the input distributions
    inputs: DistributionsDir,
    /// (distribution, target) rows to estimate, e.g. `filter.between(exact, …)`
    targets: CurveDir,
    /// inputs sampled per distribution (shared by its targets)
    #[param(default = 1024, min = 1, max = 100_000_000)]
    samples: usize,
    /// random seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Naive {
    type Params = NaiveParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "naive",
            1,
            Type::Curve,
            "naive sampling: the share of `samples` inputs drawn from each distribution on which the model's argmax at the last position is the target. Columns: distribution, target, probability (copied from `targets`), estimate",
        )
    }

    fn run(&self, ctx: &RunCtx, p: NaiveParams) -> Result<(), OpError> {
        let mut method =
            |o: &mut GptOracle, d: &Dist, k: usize, ts: &[usize], tick: &mut dyn FnMut() -> Result<(), OpError>| {
                let shares = lowprob::naive(o, d, p.samples, 4096, &mut rng_for(p.seed, k, usize::MAX))?;
                ts.iter().map(|&t| tick().map(|_| shares[t])).collect()
            };
        estimate_targets(ctx, &p.model, &p.inputs, &p.targets, "naive", &mut method)
    }
}

/// `estimate.itgis`: independent-token gradient importance sampling.
pub struct Itgis;

#[derive(Params)]
pub struct ItgisParams {
    /// the language model
    model: ModelDir,
    /// the input distributions
    inputs: DistributionsDir,
    /// (distribution, target) rows to estimate
    targets: CurveDir,
    /// model calls (samples) per target
    #[param(default = 1024, min = 1, max = 100_000_000)]
    samples: usize,
    /// samples per update of the proposal
    #[param(default = 256, min = 1, max = 65_536)]
    batch: usize,
    /// temperature T of the proposal ∝ p(x)·exp(score/T) (from 0.001: smaller ones overflow the weights)
    #[param(default = 1.0, min = 1e-3, max = 1e6)]
    temperature: f64,
    /// decay of the moving average of gradient scores
    #[param(default = 0.9, min = 0, lt = 1)]
    decay: f64,
    /// random seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Itgis {
    type Params = ItgisParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "itgis",
            1,
            Type::Curve,
            "independent-token gradient importance sampling (ITGIS): inputs are drawn from a proposal of independent tokens ∝ p_i(v)·exp(s_i(v)/T), s a decayed average of the gradient of the target logit with respect to the one-hot inputs, updated every `batch` samples; the estimate averages 1[argmax = target]·p(x)/q(x). Columns: distribution, target, probability (copied from `targets`), estimate",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ItgisParams) -> Result<(), OpError> {
        let c = ItgisConfig { samples: p.samples, batch: p.batch, temperature: p.temperature, decay: p.decay };
        let mut method =
            |o: &mut GptOracle, d: &Dist, k: usize, ts: &[usize], tick: &mut dyn FnMut() -> Result<(), OpError>| {
                ts.iter()
                    .map(|&t| {
                        let e = lowprob::itgis(o, d, t, c, &mut rng_for(p.seed, k, t))?;
                        tick()?;
                        Ok(e)
                    })
                    .collect()
            };
        estimate_targets(ctx, &p.model, &p.inputs, &p.targets, "itgis", &mut method)
    }
}

/// `estimate.mhis`: Metropolis–Hastings importance sampling.
pub struct Mhis;

#[derive(Params)]
#[params(rules = mhis_rules)]
pub struct MhisParams {
    /// the language model
    model: ModelDir,
    /// the input distributions
    inputs: DistributionsDir,
    /// (distribution, target) rows to estimate
    targets: CurveDir,
    /// model calls per target, all included: chains × (1 + burn-in + kept steps)
    #[param(default = 1024, min = 1, max = 100_000_000)]
    samples: usize,
    /// chains run side by side
    #[param(default = 16, min = 1, max = 65_536)]
    chains: usize,
    /// steps of each chain dropped before samples are kept
    #[param(default = 16, min = 0, max = 1_000_000)]
    burn_in: usize,
    /// temperature T of the stationary law ∝ p(x)·exp(logit_target/T) and of the proposals (from 0.001: smaller ones overflow the weights)
    #[param(default = 2.0, min = 1e-3, max = 1e6)]
    temperature: f64,
    /// random seed
    #[param(default = 0)]
    seed: i64,
}

/// The burn-in leaves samples to keep.
fn mhis_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["samples", "chains", "burn_in"],
        doc: "`samples` ≥ `chains` × (`burn_in` + 2): each chain's first state, its burn-in and at least one kept step are in the budget",
        test: |v| {
            let (n, c, b) = (v[0].as_i64()?, v[1].as_i64()?, v[2].as_i64()?);
            let need = c.saturating_mul(b.saturating_add(2));
            (n < need).then(|| {
                format!(
                    "`samples` ({n}) must be at least `chains` × (`burn_in` + 2) = {need}: each chain's first state and its burn-in are part of the budget"
                )
            })
        },
    }]
}

impl Op for Mhis {
    type Params = MhisParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "mhis",
            1,
            Type::Curve,
            "Metropolis–Hastings importance sampling (MHIS): `chains` chains with stationary law ∝ p(x)·exp(logit_target(x)/T) and gradient-informed single-token proposals; after `burn_in` steps, the kept states x give E[1[argmax = target]·e^(−s/T)] / E[e^(−s/T)]. At most `samples` model calls in all: the chains' first states, the burn-in and the kept steps. Columns: distribution, target, probability (copied from `targets`), estimate",
        )
    }

    fn run(&self, ctx: &RunCtx, p: MhisParams) -> Result<(), OpError> {
        let c = MhisConfig {
            chains: p.chains,
            steps: p.samples.saturating_sub(p.chains * (p.burn_in + 1)) / p.chains,
            burn_in: p.burn_in,
            temperature: p.temperature,
        };
        let mut method =
            |o: &mut GptOracle, d: &Dist, k: usize, ts: &[usize], tick: &mut dyn FnMut() -> Result<(), OpError>| {
                ts.iter()
                    .map(|&t| {
                        let e = lowprob::mhis(o, d, t, c, &mut rng_for(p.seed, k, t))?;
                        tick()?;
                        Ok(e)
                    })
                    .collect()
            };
        estimate_targets(ctx, &p.model, &p.inputs, &p.targets, "mhis", &mut method)
    }
}

/// Activation extrapolation: one sample of activations per distribution, then a per-target
/// estimate from it.
fn extrapolate(
    ctx: &RunCtx,
    model: &Path,
    inputs: &Path,
    targets: &Path,
    samples: usize,
    seed: i64,
    name: &str,
    f: fn(&lowprob::Activations, usize) -> f64,
) -> Result<(), OpError> {
    let mut method =
        |o: &mut GptOracle, d: &Dist, k: usize, ts: &[usize], tick: &mut dyn FnMut() -> Result<(), OpError>| {
            let acts = lowprob::activation_samples(o, d, samples, 4096, &mut rng_for(seed, k, usize::MAX))?;
            let (wu, width) = lowprob::Oracle::unembedding(o);
            let fit = lowprob::Activations::new(&acts, &wu, width);
            ts.iter().map(|&t| tick().map(|_| f(&fit, t))).collect()
        };
    estimate_targets(ctx, model, inputs, targets, name, &mut method)
}

/// `estimate.qld`: quadratic logit decomposition.
pub struct Qld;

#[derive(Params)]
pub struct ExtrapolationParams {
    /// the language model
    model: ModelDir,
    /// the input distributions
    inputs: DistributionsDir,
    /// (distribution, target) rows to estimate
    targets: CurveDir,
    /// inputs sampled per distribution (their activations serve every target)
    #[param(default = 1024, min = 2, max = 1_000_000)]
    samples: usize,
    /// random seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Qld {
    type Params = ExtrapolationParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "qld",
            1,
            Type::Curve,
            "quadratic logit decomposition (QLD): the activations the output layer reads, sampled and whitened, split into their coordinate along d — the shortest whitened vector whose logits pick the target — and the rest; the estimate is the share of the n² (coordinate, rest) pairs whose logits pick the target. Columns: distribution, target, probability (copied from `targets`), estimate",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ExtrapolationParams) -> Result<(), OpError> {
        extrapolate(ctx, &p.model, &p.inputs, &p.targets, p.samples, p.seed, "qld", lowprob::Activations::qld)
    }
}

/// `estimate.gld`: Gaussian logit difference.
pub struct Gld;

impl Op for Gld {
    type Params = ExtrapolationParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "gld",
            1,
            Type::Curve,
            "Gaussian logit difference (GLD): a normal fitted to (target logit − max logit) over sampled inputs; the estimate is its probability of being above 0. Columns: distribution, target, probability (copied from `targets`), estimate",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ExtrapolationParams) -> Result<(), OpError> {
        extrapolate(ctx, &p.model, &p.inputs, &p.targets, p.samples, p.seed, "gld", lowprob::Activations::gld)
    }
}

// ---------------------------------------------------------------------------------------
// The score

/// How estimates are calibrated before the loss.
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum Calibration {
    /// `p̂ ↦ a·p̂^c`, fitted on the other distributions (the paper's).
    Power,
    /// The best constant, fitted on the other distributions (ignores the estimates).
    Constant,
    /// The estimates as they are.
    None,
}

/// `score.is_loss`: the Itakura–Saito loss after calibration.
pub struct IsLoss;

#[derive(Params)]
pub struct IsLossParams {
    /// one estimate curve per seed (columns distribution, probability, estimate)
    #[param(non_empty)]
    estimates: Vec<CurveDir>,
    /// `power` (a·p̂^c, the paper's), `constant` (the best constant) or `none`
    #[param(default = Calibration::Power)]
    fit: Calibration,
    /// estimates below this (0 above all) count as this before the fit
    #[param(default = 1e-9, min = 1e-30, lt = 1)]
    floor: f64,
}

impl Op for IsLoss {
    type Params = IsLossParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "is_loss",
            1,
            Type::Metrics,
            "the Itakura–Saito loss p/q − ln(p/q) − 1 of estimates q of probabilities p, averaged over targets, after a calibration fitted leaving out each distribution in turn (cross-validation over distributions); estimates below `floor` (zeros) count as `floor`. One value per seed: `is_loss` is their mean, with `std` and `stderr`; `fit_a`, `fit_c` the calibration fitted on all targets (mean over seeds); `zero_share` the share of estimates below the floor; `cross_validated` false when there is a single distribution (the fit is then in-sample)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: IsLossParams) -> Result<(), OpError> {
        let mut losses = Vec::new();
        let mut cross_validated = true;
        let (mut fa, mut fc, mut zeros, mut count) = (0.0, 0.0, 0usize, 0usize);
        for (i, dir) in p.estimates.iter().enumerate() {
            let arg = format!("estimates[{i}]");
            let c = Curve::read(dir)?;
            let d = c.column("distribution", &arg)?;
            let truth = c.column("probability", &arg)?;
            let est = c.column("estimate", &arg)?;
            if c.rows.is_empty() {
                return Err(OpError::invalid(&arg, "has no targets"));
            }
            if let Some(t) = truth.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
                return Err(OpError::invalid(
                    &arg,
                    format!(
                        "has a true probability of {t}; score targets whose probability is positive (`filter.between`)"
                    ),
                ));
            }
            if let Some(e) = est.iter().find(|e| !(e.is_finite() && **e >= 0.0)) {
                return Err(OpError::invalid(&arg, format!("has an estimate of {e}; estimates are probabilities")));
            }
            zeros += est.iter().filter(|&&e| e < p.floor).count();
            count += est.len();
            let q: Vec<f64> = est.iter().map(|&e| e.max(p.floor)).collect();
            let pairs: Vec<(f64, f64)> = truth.iter().copied().zip(q.iter().copied()).collect();
            let fit = |rows: &[(f64, f64)]| match p.fit {
                Calibration::None => (1.0, 1.0),
                Calibration::Power => lowprob::fit_power(rows, false),
                Calibration::Constant => lowprob::fit_power(rows, true),
            };
            let groups: std::collections::BTreeSet<u64> = d.iter().map(|x| x.to_bits()).collect();
            cross_validated &= groups.len() > 1;
            let mut total = 0.0;
            for g in &groups {
                let rest: Vec<(f64, f64)> =
                    pairs.iter().zip(&d).filter(|(_, x)| x.to_bits() != *g).map(|(r, _)| *r).collect();
                // One distribution alone: nothing to leave out, the fit is in-sample.
                let (a, cc) = fit(if rest.is_empty() { &pairs } else { &rest });
                total += pairs
                    .iter()
                    .zip(&d)
                    .filter(|(_, x)| x.to_bits() == *g)
                    .map(|(&(pt, qt), _)| lowprob::is_loss(pt, a * qt.powf(cc)))
                    .sum::<f64>();
            }
            losses.push(total / pairs.len() as f64);
            let (a, cc) = fit(&pairs);
            fa += a;
            fc += cc;
        }
        ctx.check_cancel()?;
        let n = losses.len() as f64;
        let mean = losses.iter().sum::<f64>() / n;
        let std = if losses.len() > 1 {
            (losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let mut m = Metrics::new();
        m.insert("is_loss".into(), json!(mean));
        m.insert("std".into(), json!(std));
        m.insert("stderr".into(), json!(std / n.sqrt()));
        m.insert("seeds".into(), json!(losses.len()));
        m.insert("per_seed".into(), json!(losses));
        m.insert("fit_a".into(), json!(fa / n));
        m.insert("fit_c".into(), json!(fc / n));
        m.insert("zero_share".into(), json!(zeros as f64 / count as f64));
        m.insert("fit".into(), json!(p.fit.as_str()));
        m.insert("cross_validated".into(), json!(cross_validated));
        artifact::write_metrics(ctx.out, &m)
    }
}
