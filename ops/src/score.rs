//! `score.*`: ops that measure something and return `Metrics`.

use crate::artifact::{self, Dataset, Metrics};
use crate::lmops;
use crate::params::{DatasetDir, EstimateDir, MetricsDir, ModelDir, Params};
use crate::text::TextData;
use crate::{Op, OpError, Registry, RunCtx, Signature, Type};
use serde_json::json;
use std::ops::Range;

pub fn register(r: &mut Registry) {
    r.add(Accuracy);
    r.add(crate::bigbench::Score);
    r.add(Summary);
    r.add(Stats);
    r.add(Logprob);
    r.add(Logprobs);
    r.add(Match);
    r.add(Rewards);
    r.add(Estimates);
    r.add(Orthogonality);
    r.add(Preferences);
}

/// Whether refining an estimate with an extra argument predicts the estimator's error.
pub struct Orthogonality;

#[derive(Params)]
#[params(same_length(estimates, refined), same_length(estimates, references))]
pub struct OrthogonalityParams {
    /// G(Y), one per problem
    estimates: Vec<EstimateDir>,
    /// G(Y | an extra argument), one per problem
    refined: Vec<EstimateDir>,
    /// Y, one per problem
    references: Vec<EstimateDir>,
}

impl Op for Orthogonality {
    type Params = OrthogonalityParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "orthogonality",
            1,
            Type::Metrics,
            "error orthogonality over problems: the correlation between an estimator's error (reference − estimate) and the change an extra argument makes to its estimate (refined − estimate); near 0 when the estimator cannot predict its own errors (`corr`, its `stderr`, `n`)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: OrthogonalityParams) -> Result<(), OpError> {
        let read = |dirs: &[EstimateDir]| -> Result<Vec<f64>, OpError> {
            dirs.iter().map(|p| crate::estimate::read(p).map(|e| e.0)).collect()
        };
        let (g, r, y) = (read(&p.estimates)?, read(&p.refined)?, read(&p.references)?);
        // The lists have one entry per problem (a declared rule); there must be three.
        if g.len() < 3 {
            return Err(OpError::invalid(
                "references",
                format!(
                    "the three lists have {}, {} and {} entries; give one per problem, at least three",
                    g.len(),
                    r.len(),
                    y.len()
                ),
            ));
        }
        let err: Vec<f64> = y.iter().zip(&g).map(|(y, g)| y - g).collect();
        let upd: Vec<f64> = r.iter().zip(&g).map(|(r, g)| r - g).collect();
        let mut m = Metrics::new();
        let r = correlation(&err, &upd);
        m.insert("corr".into(), json!(r));
        // The usual large-sample standard error of a correlation.
        m.insert("stderr".into(), json!((1.0 - r * r) / ((g.len() - 1) as f64).sqrt()));
        m.insert("n".into(), json!(g.len()));
        artifact::write_metrics(ctx.out, &m)
    }
}

/// How an estimator's estimates compare with reference values over many problems.
pub struct Estimates;

#[derive(Params)]
#[params(same_length(estimates, references))]
pub struct EstimatesParams {
    /// the estimates
    estimates: Vec<EstimateDir>,
    /// the reference for each estimate, in the same order
    references: Vec<EstimateDir>,
}

impl Op for Estimates {
    type Params = EstimatesParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "estimates",
            1,
            Type::Metrics,
            "errors of estimates against references, one pair per problem (e.g. per network): `mean_signed_error` (estimate − reference) with its `stderr`, `mean_abs_error`, `corr_error_estimate` (an estimator should not predict its own errors: near 0 is good), `mean_reference_stderr`, `n`",
        )
    }

    fn run(&self, ctx: &RunCtx, p: EstimatesParams) -> Result<(), OpError> {
        let (e, r) = (&p.estimates, &p.references);
        // One reference per estimate is a declared rule; there must be two.
        if e.len() < 2 {
            return Err(OpError::invalid(
                "references",
                format!("has {} references for {} estimates; give one per estimate, at least two", r.len(), e.len()),
            ));
        }
        let est: Vec<(f64, f64)> = e.iter().map(|p| crate::estimate::read(p)).collect::<Result<_, _>>()?;
        let refs: Vec<(f64, f64)> = r.iter().map(|p| crate::estimate::read(p)).collect::<Result<_, _>>()?;
        let err: Vec<f64> = est.iter().zip(&refs).map(|(a, b)| a.0 - b.0).collect();
        let xs: Vec<f64> = est.iter().map(|a| a.0).collect();
        let n = err.len() as f64;
        let s = summarise(&err);
        let mut m = Metrics::new();
        m.insert("mean_signed_error".into(), s["mean"].clone());
        m.insert("stderr".into(), json!(s["std"].as_f64().unwrap_or(0.0) / n.sqrt()));
        m.insert("mean_abs_error".into(), json!(err.iter().map(|x| x.abs()).sum::<f64>() / n));
        m.insert("corr_error_estimate".into(), json!(correlation(&err, &xs)));
        m.insert("mean_reference_stderr".into(), json!(refs.iter().map(|r| r.1).sum::<f64>() / n));
        m.insert("n".into(), json!(err.len()));
        artifact::write_metrics(ctx.out, &m)
    }
}

/// Pearson's correlation (0 when either side is constant).
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let (va, vb) = (a.iter().map(|x| (x - ma).powi(2)).sum::<f64>(), b.iter().map(|y| (y - mb).powi(2)).sum::<f64>());
    if va == 0.0 || vb == 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
}

/// A reward model's scores of texts.
pub struct Rewards;

#[derive(Params)]
pub struct RewardsParams {
    /// a language model with a scalar head (from `finetune.reward`)
    model: ModelDir,
    /// records with `prompt` and `completion`, or `text`
    data: DatasetDir,
    /// records per model call
    #[param(default = 64, min = 1)]
    batch: usize,
}

impl Op for Rewards {
    type Params = RewardsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "rewards",
            1,
            Type::Metrics,
            "a reward model's score (its scalar head at the last token) of each record's `prompt` + `completion` (or its `text`): `mean`, `std`, `n`; every record with its `reward` is written to `rows.jsonl` beside the metrics",
        )
    }

    fn run(&self, ctx: &RunCtx, p: RewardsParams) -> Result<(), OpError> {
        let lm = lmops::load_lm(&p.model, "model")?;
        let data = TextData::read(&p.data, "data")?;
        let texts: Vec<String> = match (data.strings("prompt", "data"), data.strings("completion", "data")) {
            (Ok(p), Ok(c)) => p.iter().zip(&c).map(|(p, c)| format!("{p}{c}")).collect(),
            _ => data.strings("text", "data")?.into_iter().map(str::to_string).collect(),
        };
        let seqs: Vec<Vec<i64>> = texts.iter().map(|t| lm.encode(t, "data")).collect::<Result<_, _>>()?;
        if let Some(i) = seqs.iter().position(Vec::is_empty) {
            return Err(OpError::invalid("data", format!("record {} has no text to score", i + 1)));
        }
        lm.within_context(seqs.iter().map(Vec::len), 0, "data")?;
        let mut dec = lm.decoder(ctx, false)?;
        let batch = p.batch;
        let mut rewards = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(batch) {
            ctx.check_cancel()?;
            rewards.extend(lab_nn::decode::rewards(&mut dec, chunk).map_err(|e| match e {
                lab_nn::NnError::BadModel(m) => OpError::invalid("model", m),
                e => e.into(),
            })?);
        }
        let mut out = data.clone();
        for (r, x) in out.records.iter_mut().zip(&rewards) {
            r.insert("reward".into(), json!(x));
        }
        out.write_file(&ctx.out.join("rows.jsonl"))?;
        let mut m = summarise(&rewards);
        m.remove("values");
        artifact::write_metrics(ctx.out, &m)
    }
}

/// Classification accuracy: argmax over the logits in `logits` against the labels.
pub struct Accuracy;

#[derive(Params)]
#[params(within(logits, model = "outputs"), agree(data = "width", model = "inputs"))]
pub struct AccuracyParams {
    /// the classifier
    model: ModelDir,
    /// inputs `x` with labels `y`
    data: DatasetDir,
    /// the logits that compete in the argmax
    #[param(default = 0..10)]
    logits: Range<usize>,
}

impl Op for Accuracy {
    type Params = AccuracyParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "accuracy",
            1,
            Type::Metrics,
            "share of rows whose argmax over `logits` equals the label; also the mean cross-entropy over those logits",
        )
    }

    fn run(&self, ctx: &RunCtx, p: AccuracyParams) -> Result<(), OpError> {
        let mut model = crate::nnops::Inference::load(ctx, &p.model)?;
        let d = Dataset::read(&p.data)?;
        let y = d.y.as_ref().ok_or_else(|| OpError::invalid("data", "has no labels `y` to score against"))?;
        let range = p.logits;
        // Check what can be checked before running the model.
        if let Some(o) = model.outputs {
            crate::nnops::check_logits(o, &range, "logits")?;
        }
        let (logits, o) = model.predict(&d, "data")?;
        crate::nnops::check_logits(o, &range, "logits")?;
        let (correct, ce) = accuracy(&logits, o, y.as_slice().expect("contiguous"), &range);
        let n = y.len();
        let mut m = Metrics::new();
        m.insert("accuracy".into(), json!(correct as f64 / n.max(1) as f64));
        m.insert("cross_entropy".into(), json!(ce));
        m.insert("n".into(), json!(n));
        artifact::write_metrics(ctx.out, &m)
    }
}

/// Correct predictions (argmax over `range` equals the label) and the mean cross-entropy
/// of the labels over `range`. Labels outside `range` count as wrong (and add no
/// cross-entropy).
pub fn accuracy(logits: &[f32], outputs: usize, y: &[i64], range: &std::ops::Range<usize>) -> (usize, f64) {
    let mut correct = 0;
    let mut ce = 0.0f64;
    let mut counted = 0usize;
    for (r, &label) in y.iter().enumerate() {
        let row = &logits[r * outputs + range.start..r * outputs + range.end];
        let (arg, _) = row
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) });
        if (range.start + arg) as i64 == label {
            correct += 1;
        }
        if label >= range.start as i64 && (label as usize) < range.end {
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
            ce += lse - row[label as usize - range.start] as f64;
            counted += 1;
        }
    }
    (correct, if counted == 0 { f64::NAN } else { ce / counted as f64 })
}

/// Mean, standard deviation and 95% confidence interval of one metric over many runs.
pub struct Summary;

#[derive(Params)]
pub struct SummaryParams {
    /// results to summarise, e.g. `[acc[s] for s in seeds]`
    #[param(non_empty)]
    values: Vec<MetricsDir>,
    /// which metric of each result
    #[param(default = "accuracy")]
    metric: String,
}

impl Op for Summary {
    type Params = SummaryParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "summary",
            1,
            Type::Metrics,
            "mean, sample standard deviation, 95% confidence half-width (Student t), min and max of one metric over a list of results",
        )
    }

    fn run(&self, ctx: &RunCtx, p: SummaryParams) -> Result<(), OpError> {
        let metric = p.metric.as_str();
        let xs = p
            .values
            .iter()
            .map(|p| artifact::metric(&artifact::read_metrics(p)?, metric))
            .collect::<Result<Vec<f64>, OpError>>()?;
        artifact::write_metrics(ctx.out, &summarise(&xs))
    }
}

/// The summary statistics of `xs` as metrics.
pub fn summarise(xs: &[f64]) -> Metrics {
    let n = xs.len();
    let mean = if n == 0 { f64::NAN } else { xs.iter().sum::<f64>() / n as f64 };
    let var = if n < 2 { 0.0 } else { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 };
    let std = var.sqrt();
    let ci95 = if n < 2 { 0.0 } else { t_975(n - 1) * std / (n as f64).sqrt() };
    let mut m = Metrics::new();
    m.insert("n".into(), json!(n));
    m.insert("mean".into(), json!(mean));
    m.insert("std".into(), json!(std));
    m.insert("ci95".into(), json!(ci95));
    m.insert("min".into(), json!(xs.iter().cloned().fold(f64::INFINITY, f64::min)));
    m.insert("max".into(), json!(xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)));
    m.insert("values".into(), json!(xs));
    m
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom.
fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

/// Records, mean length of the main text field, and a filter's counts when the dataset
/// came from one (`kept`, `rejected`, and `rejected: <reason>` for each reason).
fn text_stats(dir: &std::path::Path) -> Result<Metrics, OpError> {
    let d = TextData::read(dir, "data")?;
    let mut m = Metrics::new();
    m.insert("rows".into(), json!(d.records.len()));
    for field in ["text", "completion"] {
        let lens: Vec<usize> =
            d.records.iter().filter_map(|r| r.get(field).and_then(|v| v.as_str())).map(|t| t.chars().count()).collect();
        if !lens.is_empty() {
            m.insert(format!("mean {field} characters"), json!(lens.iter().sum::<usize>() as f64 / lens.len() as f64));
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("filter.json"))
        && let Ok(f) = serde_json::from_str::<serde_json::Value>(&text)
    {
        for k in ["input", "kept", "rejected"] {
            m.insert(k.into(), f[k].clone());
        }
        if let Some(reasons) = f["reasons"].as_object() {
            for (why, n) in reasons {
                m.insert(format!("rejected: {why}"), n.clone());
            }
        }
    }
    Ok(m)
}

/// Row count and input statistics of a dataset: a cheap, model-free score.
pub struct Stats;

#[derive(Params)]
pub struct StatsParams {
    /// the dataset
    data: DatasetDir,
}

impl Op for Stats {
    type Params = StatsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "stats",
            1,
            Type::Metrics,
            "row count, width, and mean/std/min/max of the inputs of a dataset; for text, the record count, mean lengths, and a filter's counts (kept, rejected, and why)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: StatsParams) -> Result<(), OpError> {
        let dir: &std::path::Path = &p.data;
        if TextData::is_text(dir) {
            return artifact::write_metrics(ctx.out, &text_stats(dir)?);
        }
        let d = Dataset::read(dir)?;
        let n = d.x.len().max(1) as f64;
        let mean = d.x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (d.x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let mut m = Metrics::new();
        m.insert("rows".into(), json!(d.rows()));
        m.insert("width".into(), json!(d.x.ncols()));
        m.insert("mean".into(), json!(mean));
        m.insert("std".into(), json!(std));
        m.insert("min".into(), json!(d.x.iter().cloned().fold(f32::INFINITY, f32::min)));
        m.insert("max".into(), json!(d.x.iter().cloned().fold(f32::NEG_INFINITY, f32::max)));
        if let Some(y) = &d.y {
            m.insert("classes".into(), json!(y.iter().collect::<std::collections::BTreeSet<_>>().len()));
        }
        artifact::write_metrics(ctx.out, &m)
    }
}

/// Exact log-probability of one continuation, optionally ranked among alternatives.
pub struct Logprob;

#[derive(Params)]
pub struct LogprobParams {
    /// the language model
    model: ModelDir,
    /// the conditioning text
    prompt: String,
    /// the text whose probability is measured
    continuation: String,
    /// alternatives to rank the continuation among (it is added if missing)
    #[param(default = vec![])]
    choices: Vec<String>,
}

impl Op for Logprob {
    type Params = LogprobParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "logprob",
            2,
            Type::Metrics,
            "the exact log-probability of `continuation` after `prompt` (`logprob`, `prob`, `tokens`); with `choices`, also every choice's log-probability, the continuation's probability renormalised among the choices (`choice_prob`) and its `rank` (1: most likely)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: LogprobParams) -> Result<(), OpError> {
        let lm = lmops::load_lm(&p.model, "model")?;
        let prompt = lm.encode(&p.prompt, "prompt")?;
        let cont_text = p.continuation.as_str();
        let mut choices = p.choices;
        if !choices.is_empty() && !choices.iter().any(|c| c == cont_text) {
            choices.push(cont_text.to_string());
        }
        let texts: Vec<String> = if choices.is_empty() { vec![cont_text.to_string()] } else { choices.clone() };
        let pairs: Vec<lab_nn::decode::Pair> = texts
            .iter()
            .map(|t| Ok((prompt.clone(), lm.encode(t, "continuation")?)))
            .collect::<Result<_, OpError>>()?;
        if let Some(i) = pairs.iter().position(|(_, c)| c.is_empty()) {
            return Err(OpError::invalid("continuation", format!("{:?} has no tokens to score", texts[i])));
        }
        if let Some(c) = lm.context()
            && let Some(i) = pairs.iter().position(|(p, t)| p.len() + t.len() > c)
        {
            return Err(OpError::invalid(
                "prompt",
                format!(
                    "and {:?} are {} tokens, beyond the model's context of {c} tokens; shorten them, or use a model with a longer context",
                    texts[i],
                    pairs[i].0.len() + pairs[i].1.len()
                ),
            ));
        }
        let mut dec = lm.decoder(ctx, false)?;
        let scored = lab_nn::decode::score(&mut dec, &pairs).map_err(|e| match e {
            lab_nn::NnError::BadModel(m) => OpError::invalid("prompt", m),
            e => e.into(),
        })?;
        let at = texts.iter().position(|t| t == cont_text).expect("continuation is among the texts");
        let lp = scored[at].0;
        let mut m = Metrics::new();
        m.insert("logprob".into(), json!(lp));
        m.insert("prob".into(), json!(lp.exp()));
        m.insert("tokens".into(), json!(pairs[at].1.len()));
        if !choices.is_empty() {
            let max = scored.iter().map(|s| s.0).fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = scored.iter().map(|s| (s.0 - max).exp()).sum();
            m.insert("choice_prob".into(), json!((lp - max).exp() / z));
            m.insert("rank".into(), json!(1 + scored.iter().filter(|s| s.0 > lp).count()));
            let per: serde_json::Map<String, serde_json::Value> =
                texts.iter().zip(&scored).map(|(t, s)| (t.clone(), json!(s.0))).collect();
            m.insert("choices".into(), serde_json::Value::Object(per));
        }
        artifact::write_metrics(ctx.out, &m)
    }
}

/// Log-probabilities of every record's completion.
pub struct Logprobs;

#[derive(Params)]
pub struct LogprobsParams {
    /// the language model
    model: ModelDir,
    /// records with `prompt` and `completion`
    data: DatasetDir,
    /// records per model call
    #[param(default = 64, min = 1)]
    batch: usize,
}

impl Op for Logprobs {
    type Params = LogprobsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "logprobs",
            1,
            Type::Metrics,
            "the exact log-probability of each record's `completion` after its `prompt`, in batches: the mean (`mean_logprob`), the total, the mean per token (`logprob_per_token`) and `perplexity`; every record with its `logprob` is written to `rows.jsonl` beside the metrics",
        )
    }

    fn run(&self, ctx: &RunCtx, p: LogprobsParams) -> Result<(), OpError> {
        let lm = lmops::load_lm(&p.model, "model")?;
        let data = TextData::read(&p.data, "data")?;
        let pairs = lmops::pairs(lm.tokenizer(), &data, "data")?;
        lm.within_context(pairs.iter().map(|(p, c)| p.len() + c.len()), 0, "data")?;
        let mut dec = lm.decoder(ctx, false)?;
        let mut out = data.clone();
        let (mut total, mut tokens) = (0.0f64, 0usize);
        let batch = p.batch;
        for (ci, chunk) in pairs.chunks(batch).enumerate() {
            ctx.check_cancel()?;
            let scored = lab_nn::decode::score(&mut dec, chunk).map_err(|e| match e {
                lab_nn::NnError::BadModel(m) => OpError::invalid("data", m),
                e => e.into(),
            })?;
            for (j, (lp, terms)) in scored.into_iter().enumerate() {
                total += lp;
                tokens += terms.len();
                out.records[ci * batch + j].insert("logprob".into(), json!(lp));
            }
        }
        out.write_file(&ctx.out.join("rows.jsonl"))?;
        let n = pairs.len().max(1) as f64;
        let mut m = Metrics::new();
        m.insert("mean_logprob".into(), json!(total / n));
        m.insert("total_logprob".into(), json!(total));
        m.insert("logprob_per_token".into(), json!(total / tokens.max(1) as f64));
        m.insert("perplexity".into(), json!((-total / tokens.max(1) as f64).exp()));
        m.insert("n".into(), json!(pairs.len()));
        artifact::write_metrics(ctx.out, &m)
    }
}

/// How often generated completions equal their targets.
pub struct Match;

#[derive(Params)]
pub struct MatchParams {
    /// records with `completion` and `target`
    data: DatasetDir,
}

impl Op for Match {
    type Params = MatchParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "match",
            1,
            Type::Metrics,
            "the share of records whose `completion` equals their `target` (`exact_match`; surrounding whitespace ignored), e.g. after `generate.text` on held-out prompts",
        )
    }

    fn run(&self, ctx: &RunCtx, p: MatchParams) -> Result<(), OpError> {
        let data = TextData::read(&p.data, "data")?;
        let got = data.strings("completion", "data")?;
        let want = data.strings("target", "data")?;
        let hits = got.iter().zip(&want).filter(|(g, w)| g.trim() == w.trim()).count();
        let mut m = Metrics::new();
        m.insert("exact_match".into(), json!(hits as f64 / got.len().max(1) as f64));
        m.insert("n".into(), json!(got.len()));
        artifact::write_metrics(ctx.out, &m)
    }
}

/// How often a reward model agrees with labelled comparisons.
pub struct Preferences;

#[derive(Params)]
pub struct PreferencesParams {
    /// a reward model with one output over feature rows (e.g. from `finetune.reward`)
    model: ModelDir,
    /// comparisons: rows of the preferred features, then the other's (from `generate.comparisons`)
    data: DatasetDir,
}

impl Op for Preferences {
    type Params = PreferencesParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "preferences",
            1,
            Type::Metrics,
            "the share of comparisons a reward model over feature rows orders as labelled (`accuracy`; ties count half), with the mean Bradley–Terry loss (`loss`, nats) and `n`",
        )
    }

    fn run(&self, ctx: &RunCtx, p: PreferencesParams) -> Result<(), OpError> {
        let mut model = crate::nnops::Inference::load(ctx, &p.model)?;
        let d = artifact::Dataset::read(&p.data)?;
        let w = d.x.ncols();
        if w % 2 != 0 || model.inputs.is_some_and(|f| 2 * f != w) {
            return Err(OpError::invalid(
                "data",
                format!(
                    "has rows of width {w}; comparisons for this model have width {} (two feature rows)",
                    model.inputs.map_or("2 × inputs".into(), |f| (2 * f).to_string())
                ),
            ));
        }
        let f = w / 2;
        let (better, worse) = d.comparison_halves(0..d.rows());
        let (rb, k) = model.predict_x(&better, f)?;
        let (rw, _) = model.predict_x(&worse, f)?;
        if k != 1 {
            return Err(OpError::invalid("model", format!("has {k} outputs; a reward model has one")));
        }
        let n = rb.len().max(1) as f64;
        let acc = rb
            .iter()
            .zip(&rw)
            .map(|(a, b)| {
                if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                }
            })
            .sum::<f64>()
            / n;
        // −log σ(d) = softplus(−d), computed stably.
        let loss = rb
            .iter()
            .zip(&rw)
            .map(|(a, b)| {
                let d = (a - b) as f64;
                (-d).max(0.0) + (-d.abs()).exp().ln_1p()
            })
            .sum::<f64>()
            / n;
        let mut m = Metrics::new();
        m.insert("accuracy".into(), json!(acc));
        m.insert("loss".into(), json!(loss));
        m.insert("n".into(), json!(rb.len()));
        artifact::write_metrics(ctx.out, &m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_matches_hand_computation() {
        // Two rows of 4 logits; scored over logits 1..3.
        let logits = [0.0, 2.0, 1.0, 9.0, 5.0, 0.0, 3.0, 0.0];
        let (correct, ce) = accuracy(&logits, 4, &[1, 1], &(1..3));
        // Row 0: argmax over [2, 1] is logit 1 (right); row 1: over [0, 3] is 2 (wrong).
        assert_eq!(correct, 1);
        let ce0 = (2f64.exp() + 1f64.exp()).ln() - 2.0;
        let ce1 = (1f64 + 3f64.exp()).ln() - 0.0;
        assert!((ce - (ce0 + ce1) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn summary_matches_hand_computation() {
        // xs = 1, 2, 3, 4: mean 2.5, sample variance 5/3, t(3) = 3.182.
        let m = summarise(&[1.0, 2.0, 3.0, 4.0]);
        let f = |k: &str| m[k].as_f64().unwrap();
        assert_eq!(f("mean"), 2.5);
        assert!((f("std") - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((f("ci95") - 3.182 * (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!((f("min"), f("max")), (1.0, 4.0));
        assert_eq!(summarise(&[7.0])["std"].as_f64(), Some(0.0));
    }
}
