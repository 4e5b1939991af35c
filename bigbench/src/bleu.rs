//! `bleu` as the official code computes it: t5's `bleu`, which is sacrebleu's corpus BLEU
//! (2.x) with the international tokenizer (`13a`'s Unicode variant), exponential
//! smoothing, no lowercasing, and all four n-gram orders. Queries with fewer targets are
//! padded with their first target, as `bleu_fn` does.

use regex::Regex;
use std::collections::HashMap;
use std::sync::LazyLock;

const ORDER: usize = 4;

static INTL: LazyLock<[(Regex, &'static str); 3]> = LazyLock::new(|| {
    [
        (Regex::new(r"(\P{N})(\p{P})").expect("valid"), "${1} ${2} "),
        (Regex::new(r"(\p{P})(\P{N})").expect("valid"), " ${1} ${2}"),
        (Regex::new(r"(\p{S})").expect("valid"), " ${1} "),
    ]
});

/// Python's `str.split()`.
pub fn py_split(s: &str) -> Vec<&str> {
    s.split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)).filter(|t| !t.is_empty()).collect()
}

/// sacrebleu's `TokenizerV14International` of a right-stripped line.
pub fn tokenize_intl(line: &str) -> String {
    let stripped = line.trim_end_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
    let mut s = stripped.to_string();
    for (re, rep) in INTL.iter() {
        s = re.replace_all(&s, *rep).into_owned();
    }
    py_split(&s).join(" ")
}

fn ngrams(line: &str) -> (HashMap<Vec<&str>, usize>, usize) {
    let toks = py_split(line);
    let mut m: HashMap<Vec<&str>, usize> = HashMap::new();
    for n in 1..=ORDER {
        for w in toks.windows(n) {
            *m.entry(w.to_vec()).or_default() += 1;
        }
    }
    (m, toks.len())
}

/// Corpus BLEU of `hyps` against reference streams (`refs[k][i]`: the k-th reference of
/// segment i).
pub fn corpus_bleu(hyps: &[String], refs: &[Vec<String>]) -> f64 {
    let (mut correct, mut total) = ([0usize; ORDER], [0usize; ORDER]);
    let (mut sys_len, mut ref_len) = (0usize, 0usize);
    for (i, hyp) in hyps.iter().enumerate() {
        let toks: Vec<String> = refs.iter().map(|stream| tokenize_intl(&stream[i])).collect();
        let mut ref_ngrams: HashMap<Vec<&str>, usize> = HashMap::new();
        let mut lens = Vec::new();
        for t in &toks {
            let (m, len) = ngrams(t);
            lens.push(len);
            for (g, c) in m {
                let e = ref_ngrams.entry(g).or_default();
                *e = (*e).max(c);
            }
        }
        let h = tokenize_intl(hyp);
        let (hm, hlen) = ngrams(&h);
        // The closest reference length, the shorter one on ties.
        let mut closest: Option<(usize, usize)> = None;
        for &l in &lens {
            let d = hlen.abs_diff(l);
            match closest {
                None => closest = Some((d, l)),
                Some((cd, cl)) if d < cd || (d == cd && l < cl) => closest = Some((d, l)),
                _ => {}
            }
        }
        sys_len += hlen;
        ref_len += closest.map_or(0, |c| c.1);
        for (g, c) in hm {
            total[g.len() - 1] += c;
            if let Some(r) = ref_ngrams.get(&g) {
                correct[g.len() - 1] += c.min(*r);
            }
        }
    }
    compute(&correct, &total, sys_len, ref_len)
}

/// `BLEU.compute_bleu` with `smooth_method="exp"` and no effective order.
fn compute(correct: &[usize; ORDER], total: &[usize; ORDER], sys_len: usize, ref_len: usize) -> f64 {
    let bp = if sys_len < ref_len {
        if sys_len > 0 { (1.0 - ref_len as f64 / sys_len as f64).exp() } else { 0.0 }
    } else {
        1.0
    };
    if correct.iter().all(|&c| c == 0) {
        return 0.0;
    }
    let mut precisions = [0.0f64; ORDER];
    let mut smooth = 1.0;
    for n in 0..ORDER {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    bp * (precisions.iter().map(|&p| log(p)).sum::<f64>() / ORDER as f64).exp()
}

/// `bleu_fn(targets, responses)`.
pub fn bleu_fn(targets: &[&[String]], responses: &[String]) -> f64 {
    let max_refs = targets.iter().map(|t| t.len()).max().unwrap_or(0);
    let streams: Vec<Vec<String>> =
        (0..max_refs).map(|k| targets.iter().map(|t| t.get(k).unwrap_or(&t[0]).clone()).collect()).collect();
    corpus_bleu(responses, &streams)
}
