//! `score.*`: ops that measure something and return `Metrics`.

use crate::artifact::{self, Dataset, Metrics};
use crate::model::Declared;
use crate::{Args, Op, OpError, Registry, RunCtx, Signature, Type, Value};
use serde_json::json;

pub fn register(r: &mut Registry) {
    r.add(Accuracy);
    r.add(Summary);
    r.add(Stats);
    r.add(Declared(
        Signature::new(
            "score",
            "logprob",
            1,
            Type::Metrics,
            "exact log-probability of `continuation` after `prompt` under a language model",
        )
        .req("model", Type::Model, "the language model")
        .req("prompt", Type::Str, "the conditioning text")
        .req("continuation", Type::Str, "the text whose probability is measured"),
    ));
}

/// Classification accuracy: argmax over the logits in `logits` against the labels.
pub struct Accuracy;

impl Op for Accuracy {
    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "accuracy",
            1,
            Type::Metrics,
            "share of rows whose argmax over `logits` equals the label; also the mean cross-entropy over those logits",
        )
        .req("model", Type::Model, "the classifier")
        .req("data", Type::Dataset, "inputs `x` with labels `y`")
        .opt(
            "logits",
            Type::Range,
            Value::Range { start: 0, end: 10 },
            "the logits that compete in the argmax",
        )
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let mut model = crate::nnops::Inference::load(ctx, args.artifact("model")?)?;
        let d = Dataset::read(args.artifact("data")?)?;
        let y = d.y.as_ref().ok_or_else(|| OpError::invalid("data", "has no labels `y` to score against"))?;
        let range = args.range("logits")?;
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

impl Op for Summary {
    fn signature(&self) -> Signature {
        Signature::new("score", "summary", 1, Type::Metrics, "mean, sample standard deviation, 95% confidence half-width (Student t), min and max of one metric over a list of results")
            .req("values", Type::list(Type::Metrics), "results to summarise, e.g. `[acc[s] for s in seeds]`")
            .opt("metric", Type::Str, Value::Str("accuracy".into()), "which metric of each result")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let metric = args.str("metric")?;
        let xs = args
            .artifacts("values")?
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

/// Row count and input statistics of a dataset: a cheap, model-free score.
pub struct Stats;

impl Op for Stats {
    fn signature(&self) -> Signature {
        Signature::new(
            "score",
            "stats",
            1,
            Type::Metrics,
            "row count, width, and mean/std/min/max of the inputs of a dataset",
        )
        .req("data", Type::Dataset, "the dataset")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let d = Dataset::read(args.artifact("data")?)?;
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
