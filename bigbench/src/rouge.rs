//! `rouge` as the official code computes it: for each query and ROUGE type, the target
//! that scores best; then t5's `rouge` over those targets, which scores each pair with
//! rouge_score (lowercased alphanumeric tokens, no stemming; `rougeLsum` on sentences
//! split at newlines after `" . "` becomes `" .\n"`) and reports the median of 1,000
//! bootstrap means of the F-measure, × 100.
//!
//! The official bootstrap draws from numpy's global random state, which it never seeds,
//! so its own runs differ in the last digits. labrun draws from `RandomState(seed)`; with
//! `np.random.seed(seed)` set just before `rouge_fn`, the official code gives the same
//! numbers (`tests/official.rs` checks this).

use crate::rng::RandomState;
use std::collections::{BTreeSet, HashMap};

pub const TYPES: [&str; 3] = ["rouge1", "rouge2", "rougeLsum"];
/// The bootstrap's random seed.
pub const SEED: u32 = 0;
const SAMPLES: usize = 1000;

/// rouge_score's tokenizer.
fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let spaced: String =
        lower.chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { ' ' }).collect();
    spaced.split(' ').filter(|t| !t.is_empty()).map(str::to_string).collect()
}

fn fmeasure(p: f64, r: f64) -> f64 {
    if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 }
}

/// (precision, recall, F) of one ROUGE-N pair.
fn rouge_n(target: &[String], pred: &[String], n: usize) -> [f64; 3] {
    fn grams(t: &[String], n: usize) -> HashMap<&[String], usize> {
        let mut m: HashMap<&[String], usize> = HashMap::new();
        if t.len() >= n {
            for w in t.windows(n) {
                *m.entry(w).or_default() += 1;
            }
        }
        m
    }
    let (tg, pg) = (grams(target, n), grams(pred, n));
    let inter: usize = tg.iter().map(|(g, c)| (*c).min(pg.get(g).copied().unwrap_or(0))).sum();
    let (tc, pc): (usize, usize) = (tg.values().sum(), pg.values().sum());
    let p = inter as f64 / pc.max(1) as f64;
    let r = inter as f64 / tc.max(1) as f64;
    [p, r, fmeasure(p, r)]
}

fn lcs_table(a: &[String], b: &[String]) -> Vec<Vec<usize>> {
    let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i][j] = if a[i - 1] == b[j - 1] { t[i - 1][j - 1] + 1 } else { t[i - 1][j].max(t[i][j - 1]) };
        }
    }
    t
}

/// Indices into `r` of one longest common subsequence (rouge_score's backtrack).
fn lcs_ind(r: &[String], c: &[String]) -> Vec<usize> {
    let t = lcs_table(r, c);
    let (mut i, mut j) = (r.len(), c.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// Summary-level LCS (`rougeLsum`).
fn rouge_lsum(target: &str, pred: &str) -> [f64; 3] {
    let sents = |t: &str| -> Vec<Vec<String>> { t.split('\n').filter(|s| !s.is_empty()).map(tokenize).collect() };
    let (rs, cs) = (sents(target), sents(pred));
    let zero = [0.0; 3];
    if rs.is_empty() || cs.is_empty() {
        return zero;
    }
    let m: usize = rs.iter().map(Vec::len).sum();
    let n: usize = cs.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return zero;
    }
    let mut cnt_r: HashMap<&str, i64> = HashMap::new();
    let mut cnt_c: HashMap<&str, i64> = HashMap::new();
    rs.iter().flatten().for_each(|t| *cnt_r.entry(t).or_default() += 1);
    cs.iter().flatten().for_each(|t| *cnt_c.entry(t).or_default() += 1);
    let mut hits = 0usize;
    for r in &rs {
        let union: BTreeSet<usize> = cs.iter().flat_map(|c| lcs_ind(r, c)).collect();
        for i in union {
            let t = r[i].as_str();
            let (a, b) = (cnt_c.get(t).copied().unwrap_or(0), cnt_r.get(t).copied().unwrap_or(0));
            if a > 0 && b > 0 {
                hits += 1;
                *cnt_c.get_mut(t).expect("counted") -= 1;
                *cnt_r.get_mut(t).expect("counted") -= 1;
            }
        }
    }
    let (rec, prec) = (hits as f64 / m as f64, hits as f64 / n as f64);
    [prec, rec, fmeasure(prec, rec)]
}

/// Every ROUGE type of one (target, prediction) pair, after t5's sentence marking.
fn score(target: &str, pred: &str) -> [[f64; 3]; 3] {
    let (target, pred) = (target.replace(" . ", " .\n"), pred.replace(" . ", " .\n"));
    let (tt, pt) = (tokenize(&target), tokenize(&pred));
    [rouge_n(&tt, &pt, 1), rouge_n(&tt, &pt, 2), rouge_lsum(&target, &pred)]
}

/// rouge_score's `BootstrapAggregator`: the median of bootstrap means of the F-measure.
fn bootstrap_mid(rows: &[[f64; 3]], rng: &mut RandomState) -> f64 {
    let n = rows.len();
    let mut means: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.choice_one(n)).collect();
            // All three measures share the draws; only the F-measure is reported.
            idx.iter().map(|&i| rows[i][2]).sum::<f64>() / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    // numpy's linear percentile at 50: between the two middle values.
    let h = (SAMPLES - 1) as f64 * 0.5;
    let (lo, t) = (h.floor() as usize, h - h.floor());
    let (a, b) = (means[lo], means[(lo + 1).min(SAMPLES - 1)]);
    if t >= 0.5 { b - (b - a) * (1.0 - t) } else { a + (b - a) * t }
}

/// t5's `rouge(targets, predictions)`: every type's bootstrap median F × 100, the draws
/// taken in the official order (types in order, one bootstrap each).
fn t5_rouge(targets: &[&str], preds: &[String], rng: &mut RandomState) -> [f64; 3] {
    let scores: Vec<[[f64; 3]; 3]> = targets.iter().zip(preds).map(|(t, p)| score(t, p)).collect();
    let mut out = [0.0; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let rows: Vec<[f64; 3]> = scores.iter().map(|s| s[k]).collect();
        *o = bootstrap_mid(&rows, rng) * 100.0;
    }
    out
}

/// `rouge_fn(targets, responses)`: `rouge1`, `rouge2` and `rougeLsum`.
pub fn rouge_fn(targets: &[&[String]], responses: &[String]) -> Vec<(String, f64)> {
    let mut rng = RandomState::new(SEED);
    // The best target of each query, per type (the first on ties). Scoring one pair
    // bootstraps a single row, which draws nothing.
    let mut best: [Vec<&str>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for (ts, r) in targets.iter().zip(responses) {
        let per: Vec<[[f64; 3]; 3]> = ts.iter().map(|t| score(t, r)).collect();
        for (k, b) in best.iter_mut().enumerate() {
            let mut bi = 0;
            for (i, s) in per.iter().enumerate() {
                if s[k][2] > per[bi][k][2] {
                    bi = i;
                }
            }
            b.push(ts[bi].as_str());
        }
    }
    TYPES.iter().enumerate().map(|(k, name)| (name.to_string(), t5_rouge(&best[k], responses, &mut rng)[k])).collect()
}
