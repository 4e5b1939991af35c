//! The metrics of `bigbench/api/task_metrics.py`, computed the same way: the same
//! normalisations, the same sums and divisions, the same tie-breaking.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const GENERATIVE: &[&str] = &[
    "bleu",
    "exact_str_match",
    "case_insensitive_str_match",
    "sequence_f1",
    "numeric_match_with_0_1_relative_error",
    "rouge",
];
pub const SCORING: &[&str] = &["log_likelihood"];
pub const MULTIPLE_CHOICE: &[&str] = &[
    "multiple_choice_grade",
    "calibration_multiple_choice_brier_score",
    "expected_calibration_error",
    "weighted_log_probabilities",
    "weighted_probabilities",
    "macro_f1",
];
/// Every metric a task may list (BLEURT excepted: it needs a downloaded model).
pub fn all() -> Vec<&'static str> {
    GENERATIVE.iter().chain(SCORING).chain(MULTIPLE_CHOICE).copied().collect()
}

/// The official score ranges: (metric, low, high).
pub const SCORE_RANGES: &[(&str, f64, f64)] = &[
    ("bleu", 0.0, 100.0),
    ("sequence_f1", 0.0, 100.0),
    ("bleurt", -0.1, 1.1),
    ("calibration_multiple_choice_brier_score", 0.0, 1.0),
    ("expected_calibration_error", 0.0, 1.0),
    ("exact_str_match", 0.0, 1.0),
    ("case_insensitive_str_match", 0.0, 1.0),
    ("log_likelihood", -10.0, 0.0),
    ("multiple_choice_grade", 0.0, 1.0),
    ("numeric_match_with_0_1_relative_error", 0.0, 1.0),
    ("rouge1", 0.0, 100.0),
    ("rouge2", 0.0, 100.0),
    ("rougeLsum", 0.0, 100.0),
    ("weighted_log_probabilities", -10.0, 0.0),
    ("weighted_probabilities", -1.0, 1.0),
    ("macro_f1", 0.0, 1.0),
];

/// The score names a task's metrics produce.
pub fn produced<'a>(generative: &'a [String], scoring: &'a [String], mc: &'a [String]) -> Vec<&'a str> {
    let mut out = Vec::new();
    for m in generative.iter().chain(scoring).chain(mc) {
        match m.as_str() {
            "rouge" => out.extend(["rouge1", "rouge2", "rougeLsum"]),
            "log_likelihood" => out.extend(["log_likelihood", "log_likelihood_per_word", "log_likelihood_per_char"]),
            other => out.push(other),
        }
    }
    out
}

pub type Scores = BTreeMap<String, f64>;

/// One multiple-choice query: the choices' scores and the model's log-probabilities, in
/// the order of the choices.
pub struct Choice<'a> {
    pub choices: &'a [String],
    pub scores: &'a [f64],
    /// What the metrics rank by: normalised among the choices unless the task asks for
    /// absolute normalisation.
    pub log_prob: &'a [f64],
    /// The model's own log-probabilities.
    pub absolute: &'a [f64],
}

/// numpy's `sum` of a float64 vector: pairwise, with eight accumulators per block of up to
/// 128 values (so results agree to the last bit).
pub fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0, |s, v| s + v);
    }
    if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &a[i..] {
            res += v;
        }
        return res;
    }
    let half = (n / 2) / 8 * 8;
    np_sum(&a[..half]) + np_sum(&a[half..])
}

/// `scipy.special.logsumexp` (scipy 1.15 and later): the maxima are taken out, the rest
/// summed relative to them, and `log1p(s / m) + log(m) + max` for m maxima.
pub fn logsumexp(x: &[f64]) -> f64 {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return if x.is_empty() {
            f64::NEG_INFINITY
        } else {
            np_sum(&x.iter().map(|v| v.exp()).collect::<Vec<_>>()).ln()
        };
    }
    let m = x.iter().filter(|&&v| v == max).count() as f64;
    let e: Vec<f64> = x.iter().map(|&v| if v == max { 0.0 } else { (v - max).exp() }).collect();
    let s = np_sum(&e);
    let s = if s == 0.0 { s } else { s / m };
    s.ln_1p() + m.ln() + max
}

/// `argmax` with the official deterministic tie-breaking: among the largest values, the
/// one at SHA-256(the float64 bytes) mod (number of ties).
pub fn argmax(x: &[f64]) -> usize {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ties: Vec<usize> = (0..x.len()).filter(|&i| x[i] == max).collect();
    if ties.len() <= 1 {
        return ties.first().copied().unwrap_or(0);
    }
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let digest = Sha256::digest(&bytes);
    let m = ties.len() as u64;
    let r = digest.iter().fold(0u64, |acc, &b| (acc * 256 + u64::from(b)) % m);
    ties[r as usize]
}

/// numpy's `argmax`: the first largest.
fn first_max(x: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best
}

/// Log-probabilities normalised among the choices (`x − logsumexp(x)`).
pub fn normalize(x: &[f64]) -> Vec<f64> {
    let z = logsumexp(x);
    x.iter().map(|v| v - z).collect()
}

/// The choice the model picks in each query, and the score it earns.
pub fn grades(qs: &[Choice]) -> Vec<f64> {
    qs.iter().map(|q| q.scores[argmax(q.log_prob)]).collect()
}

/// (the model's probabilities, the target probabilities) of one query.
fn probabilities(q: &Choice) -> (Vec<f64>, Vec<f64>) {
    let total: f64 = q.scores.iter().sum();
    let target = if total == 0.0 { vec![0.0; q.scores.len()] } else { q.scores.iter().map(|s| s / total).collect() };
    let max = q.log_prob.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = q.log_prob.iter().map(|l| (l - max).exp()).collect();
    let z: f64 = e.iter().sum();
    (e.iter().map(|v| v / z).collect(), target)
}

/// The multi-category Brier score of each query (summed over its choices).
pub fn briers(qs: &[Choice]) -> Vec<f64> {
    qs.iter()
        .map(|q| {
            let (p, t) = probabilities(q);
            t.iter().zip(&p).map(|(t, p)| t * (p - 1.0).powi(2) + (1.0 - t) * p.powi(2)).sum()
        })
        .collect()
}

/// The multiple-choice metrics the task lists.
pub fn multiple_choice(names: &[String], qs: &[Choice]) -> Result<Scores, String> {
    let n = qs.len() as f64;
    let mut out = Scores::new();
    for m in names {
        let v = match m.as_str() {
            "multiple_choice_grade" => grades(qs).iter().sum::<f64>() / n,
            // Divided by the number of (query, choice) pairs, as the official code does.
            "calibration_multiple_choice_brier_score" => {
                briers(qs).iter().sum::<f64>() / qs.iter().map(|q| q.scores.len()).sum::<usize>() as f64
            }
            "expected_calibration_error" => ece(qs),
            "weighted_log_probabilities" => {
                qs.iter().map(|q| q.scores.iter().zip(q.absolute).map(|(s, l)| s * l).sum::<f64>()).sum::<f64>() / n
            }
            "weighted_probabilities" => {
                qs.iter().map(|q| q.scores.iter().zip(q.absolute).map(|(s, l)| s * l.exp()).sum::<f64>()).sum::<f64>()
                    / n
            }
            "macro_f1" => macro_f1(qs)?,
            other => return Err(format!("`{other}` is not a multiple-choice metric")),
        };
        out.insert(m.clone(), v);
    }
    Ok(out)
}

/// Expected calibration error over 15 equal-width confidence buckets.
fn ece(qs: &[Choice]) -> f64 {
    const BUCKETS: usize = 15;
    let mut conf: Vec<Vec<f64>> = vec![Vec::new(); BUCKETS];
    let mut right: Vec<Vec<f64>> = vec![Vec::new(); BUCKETS];
    for q in qs {
        let (p, t) = probabilities(q);
        let c = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut j = 0;
        while j < BUCKETS - 1 && c >= (j + 1) as f64 / BUCKETS as f64 {
            j += 1;
        }
        conf[j].push(c);
        right[j].push(f64::from(u8::from(first_max(&t) == first_max(&p))));
    }
    let n = qs.len() as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    conf.iter()
        .zip(&right)
        .filter(|(c, _)| !c.is_empty())
        .map(|(c, r)| c.len() as f64 / n * (mean(r) - mean(c)).abs())
        .sum()
}

/// scikit-learn's `f1_score(average="macro")` of the picked choices against the single
/// correct one, over the labels that occur in either.
fn macro_f1(qs: &[Choice]) -> Result<f64, String> {
    if qs.iter().any(|q| q.scores.iter().filter(|&&s| s == 1.0).count() != 1) {
        return Err("macro_f1 metric requires a single correct target for each example".into());
    }
    if qs.iter().any(|q| q.scores.iter().sum::<f64>() != 1.0) {
        return Err("macro_f1 metric requires no soft scores".into());
    }
    let truth: Vec<&str> =
        qs.iter().map(|q| q.choices[q.scores.iter().position(|&s| s == 1.0).expect("checked")].as_str()).collect();
    let pred: Vec<&str> = qs.iter().map(|q| q.choices[argmax(q.log_prob)].as_str()).collect();
    let mut labels: Vec<&str> = truth.iter().chain(&pred).copied().collect();
    labels.sort_unstable();
    labels.dedup();
    let f1s: Vec<f64> = labels
        .iter()
        .map(|l| {
            let (mut tp, mut fp, mut f_n) = (0.0, 0.0, 0.0);
            for (t, p) in truth.iter().zip(&pred) {
                match (t == l, p == l) {
                    (true, true) => tp += 1.0,
                    (false, true) => fp += 1.0,
                    (true, false) => f_n += 1.0,
                    _ => {}
                }
            }
            let denom = 2.0 * tp + fp + f_n;
            if denom == 0.0 { 0.0 } else { 2.0 * tp / denom }
        })
        .collect();
    Ok(f1s.iter().sum::<f64>() / f1s.len() as f64)
}

/// Python's `str.strip()`: its whitespace includes the separators U+001C–U+001F.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// Python's `float(s)`, or `None` where it raises.
pub fn py_float(s: &str) -> Option<f64> {
    let t = py_strip(s);
    let b = t.as_bytes();
    // Underscores are allowed only between digits.
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' && !(i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit()) {
            return None;
        }
    }
    let t = t.replace('_', "");
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if !matches!(body, "inf" | "infinity" | "nan") && body.chars().any(|c| c.is_alphabetic() && c != 'e') {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Per-query values of the generative metrics that are means over queries.
pub fn exact(targets: &[&[String]], responses: &[String]) -> Vec<f64> {
    targets.iter().zip(responses).map(|(t, r)| f64::from(u8::from(t.contains(r)))).collect()
}

pub fn case_insensitive(targets: &[&[String]], responses: &[String]) -> Vec<f64> {
    targets
        .iter()
        .zip(responses)
        .map(|(t, r)| {
            let r = py_strip(r).to_lowercase();
            f64::from(u8::from(t.iter().any(|x| py_strip(x).to_lowercase() == r)))
        })
        .collect()
}

pub fn numeric(targets: &[&[String]], responses: &[String]) -> Result<Vec<f64>, String> {
    targets
        .iter()
        .zip(responses)
        .map(|(t, r)| {
            if t.len() != 1 {
                return Err("numeric_match_with_0_1_relative_error needs exactly one target per example".to_string());
            }
            let ok = match (py_float(&t[0]), py_float(r)) {
                (Some(ft), Some(fv)) => (fv - ft).abs() / if ft != 0.0 { ft } else { 1.0 } <= 0.1,
                _ => false,
            };
            Ok(f64::from(u8::from(ok)))
        })
        .collect()
}

/// `sequence_f1` of one (target, response) pair: the response's space-separated labels,
/// padded with `O` or cut to the first target's length, scored by t5's
/// `sequence_accuracy` over the labels (100 × the share that match).
pub fn sequence_f1_one(target: &str, response: &str) -> f64 {
    let t: Vec<&str> = target.split(' ').collect();
    let mut p: Vec<&str> = response.split(' ').collect();
    p.resize(t.len(), "O");
    100.0 * t.iter().zip(&p).filter(|(a, b)| a == b).count() as f64 / t.len() as f64
}

/// The generative metrics the task lists, with per-query values where a metric has them.
pub fn generative(
    names: &[String],
    targets: &[&[String]],
    responses: &[String],
) -> Result<(Scores, BTreeMap<String, Vec<f64>>), String> {
    let n = targets.len() as f64;
    let mut out = Scores::new();
    let mut per = BTreeMap::new();
    let mut mean = |name: &str, v: Vec<f64>, out: &mut Scores| {
        out.insert(name.to_string(), v.iter().sum::<f64>() / n);
        per.insert(name.to_string(), v);
    };
    for m in names {
        match m.as_str() {
            "exact_str_match" => mean(m, exact(targets, responses), &mut out),
            "case_insensitive_str_match" => mean(m, case_insensitive(targets, responses), &mut out),
            "numeric_match_with_0_1_relative_error" => mean(m, numeric(targets, responses)?, &mut out),
            "sequence_f1" => {
                mean(m, targets.iter().zip(responses).map(|(t, r)| sequence_f1_one(&t[0], r)).collect(), &mut out)
            }
            "bleu" => {
                out.insert("bleu".into(), crate::bleu::bleu_fn(targets, responses));
            }
            "rouge" => out.extend(crate::rouge::rouge_fn(targets, responses)),
            other => return Err(format!("`{other}` is not a generative metric")),
        }
    }
    Ok((out, per))
}

/// `log_likelihood`: the mean log-probability of the targets; with several targets for
/// some query, of all of a query's targets together (logsumexp), full sequence only.
pub fn log_likelihood(log_probs: &[Vec<f64>], targets: &[&[String]]) -> Scores {
    let n = log_probs.len() as f64;
    let mut out = Scores::new();
    if targets.iter().any(|t| t.len() > 1) {
        out.insert("log_likelihood".into(), log_probs.iter().map(|l| logsumexp(l)).sum::<f64>() / n);
        return out;
    }
    let (mut all, mut chars, mut words) = (0.0, 0.0, 0.0);
    for (l, t) in log_probs.iter().zip(targets) {
        all += l[0];
        chars += l[0] / t[0].chars().count() as f64;
        words += l[0] / t[0].split_whitespace().count() as f64;
    }
    out.insert("log_likelihood".into(), all / n);
    out.insert("log_likelihood_per_word".into(), words / n);
    out.insert("log_likelihood_per_char".into(), chars / n);
    out
}
