//! `estimate.best_of_n` and `estimate.rewards`: how a tabular policy's gold and proxy
//! rewards move as it is optimised against the proxy — by best-of-n sampling (unbiased
//! estimates from one pool of draws, exact KL) and along RL checkpoints. Both write `Curve`s
//! against d = √KL. The estimators of E f(x) are in `estimate.rs`.

use crate::artifact::Metrics;
use crate::curve::Curve;
use crate::markov::{self, Markov, SeqReward};
use crate::params::{ModelDir, Params};
use crate::{Check, Op, OpError, Progress, RunCtx, Signature, Type};
use serde_json::json;
use std::path::Path;

/// ln k! for k = 0..=n.
pub fn log_factorials(n: usize) -> Vec<f64> {
    let mut lf = vec![0.0; n + 1];
    for k in 1..=n {
        lf[k] = lf[k - 1] + (k as f64).ln();
    }
    lf
}

/// The unbiased best-of-n estimate from a pool of N ≥ n draws: the expected score of the
/// draw a best-of-n policy would pick, E_n = Σ_{i=n}^{N} C(i−1, n−1)/C(N, n) · score_(i),
/// where the pool is sorted by the selecting reward (ascending) and `scores` are in that
/// order (C(i−1, n−1)/C(N, n) is the chance that the i-th smallest is the largest of a
/// random n-subset). The weights are computed in log space (`lf` from [`log_factorials`]
/// of at least N).
pub fn best_of_n(scores: &[f64], n: usize, lf: &[f64]) -> f64 {
    let big = scores.len();
    assert!(n >= 1 && n <= big && lf.len() > big, "best_of_n needs 1 ≤ n ≤ N and ln k! up to N");
    let log_choose = |a: usize, b: usize| lf[a] - lf[b] - lf[a - b];
    let denom = log_choose(big, n);
    (n..=big).map(|i| (log_choose(i - 1, n - 1) - denom).exp() * scores[i - 1]).sum()
}

/// KL(best-of-n ‖ π₀) = log n − (n − 1)/n (exact when the pool has no ties).
pub fn kl_best_of_n(n: usize) -> f64 {
    (n as f64).ln() - (n as f64 - 1.0) / n as f64
}

/// `points` integers log-spaced from 1 to `top`, without repeats.
fn log_grid(top: usize, points: usize) -> Vec<usize> {
    let mut g: Vec<usize> = (0..points)
        .map(|k| {
            if points == 1 { top } else { ((top as f64).ln() * k as f64 / (points - 1) as f64).exp().round() as usize }
        })
        .map(|n| n.clamp(1, top))
        .collect();
    g.dedup();
    g
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// Best-of-n sampling against a proxy, scored by the gold reward.
pub struct BestOfN;

#[derive(Params)]
#[params(rules = best_of_n_rules)]
pub struct BestOfNParams {
    /// the policy sampled (`model.markov`)
    policy: ModelDir,
    /// the true reward, over one-hot features
    gold: ModelDir,
    /// the reward model that selects, over one-hot features
    proxy: ModelDir,
    /// samples per pool, N (the largest n)
    #[param(default = 8192, min = 2)]
    pool: usize,
    /// independent pools averaged
    #[param(default = 4, min = 1)]
    pools: usize,
    /// values of n, log-spaced from 1 to N
    #[param(default = 25, min = 2)]
    points: usize,
    /// sampling seed
    #[param(default = 0)]
    seed: i64,
}

/// All pools together hold at most 2^24 samples.
fn best_of_n_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["pool", "pools"],
        doc: "`pool` × `pools` ≤ 2^24",
        test: |v| match (v[0].as_i64(), v[1].as_i64()) {
            (Some(a), Some(b)) if a.max(0).saturating_mul(b.max(0)) > 1 << 24 => {
                Some(format!("`pool` × `pools` is {} samples; at most 2^24", a.max(0).saturating_mul(b.max(0))))
            }
            _ => None,
        },
    }]
}

impl Op for BestOfN {
    type Params = BestOfNParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "best_of_n",
            1,
            Type::Curve,
            "best-of-n against a proxy reward model: for log-spaced n, the gold and proxy scores of the sequence with the highest proxy score among n policy samples, by the unbiased estimator over pools of N ≥ n samples (each pool sorted by proxy; E_n = Σ_{i≥n} C(i−1, n−1)/C(N, n)·score_(i)), relative to the policy's mean (n = 1), averaged over pools with standard errors; with KL_bon = log n − (n−1)/n and d = √KL. A pool with more than 1% duplicate sequences is an error: ties make that KL formula overstate the KL. Columns: n, kl, d, gold, proxy, gold_se, proxy_se",
        )
    }

    fn run(&self, ctx: &RunCtx, p: BestOfNParams) -> Result<(), OpError> {
        let (policy, mut gold, mut proxy) = policy_gold_proxy(ctx, &p.policy, &p.gold, &p.proxy)?;
        let (pool, pools, points) = (p.pool, p.pools, p.points);
        let grid = log_grid(pool, points);
        let lf = log_factorials(pool);
        let table = policy.table(&policy.bias);
        let seed = p.seed;
        // Per pool, each n: (gold, proxy) relative to the pool's mean.
        let mut per_pool: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut duplicates = 0;
        for p in 0..pools {
            ctx.check_cancel()?;
            let seqs = table.sample(pool, &mut markov::rng(seed, 100 + p as u64));
            let dup = pool - seqs.unique();
            if dup * 100 > pool {
                return Err(OpError::Data(format!(
                    "pool {} has {dup} duplicate sequences of {pool}; best-of-n's KL formula overstates the KL when samples repeat: use a policy with more entropy (longer sequences, a larger vocabulary or a smaller `logit_std`) or a smaller `pool`",
                    p + 1
                )));
            }
            duplicates += dup;
            let g = gold.score(&seqs)?;
            let r = proxy.score(&seqs)?;
            let mut order: Vec<usize> = (0..pool).collect();
            order.sort_by(|&a, &b| r[a].total_cmp(&r[b]));
            let gs: Vec<f64> = order.iter().map(|&i| g[i]).collect();
            let rs: Vec<f64> = order.iter().map(|&i| r[i]).collect();
            let (g1, r1) = (best_of_n(&gs, 1, &lf), best_of_n(&rs, 1, &lf));
            per_pool.push(grid.iter().map(|&n| (best_of_n(&gs, n, &lf) - g1, best_of_n(&rs, n, &lf) - r1)).collect());
            (ctx.progress)(Progress {
                done: p as u64 + 1,
                total: pools as u64,
                message: format!("pool {} of {pools}", p + 1),
            });
        }
        let mut c = Curve::new(&["n", "kl", "d", "gold", "proxy", "gold_se", "proxy_se"]);
        for (j, &n) in grid.iter().enumerate() {
            let (g, gse) = mean_se(&per_pool.iter().map(|v| v[j].0).collect::<Vec<_>>());
            let (r, rse) = mean_se(&per_pool.iter().map(|v| v[j].1).collect::<Vec<_>>());
            let kl = kl_best_of_n(n);
            c.push(vec![n as f64, kl, kl.sqrt(), g, r, gse, rse]);
        }
        write_curve(ctx.out, &c, json!({"duplicates": duplicates}))
    }
}

/// The `policy`, `gold` and `proxy` arguments: a tabular policy and two reward models over
/// its one-hot features.
fn policy_gold_proxy(
    ctx: &RunCtx,
    policy: &Path,
    gold: &Path,
    proxy: &Path,
) -> Result<(Markov, SeqReward, SeqReward), OpError> {
    let policy = Markov::from_arg(policy, "policy")?;
    let gold = SeqReward::load(ctx, gold, "gold", &policy)?;
    let proxy = SeqReward::load(ctx, proxy, "proxy", &policy)?;
    Ok((policy, gold, proxy))
}

/// A curve's summary: where gold peaks, and the last proxy score.
fn write_curve(dir: &Path, c: &Curve, extra: serde_json::Value) -> Result<(), OpError> {
    let gold = c.column("gold", "curve")?;
    let d = c.column("d", "curve")?;
    let proxy = c.column("proxy", "curve")?;
    let (i, &gmax) =
        gold.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).ok_or_else(|| OpError::internal("an empty curve"))?;
    let mut m = Metrics::new();
    m.insert("gold_max".into(), json!(gmax));
    m.insert("d_at_gold_max".into(), json!(d[i]));
    m.insert("gold_last".into(), json!(gold[gold.len() - 1]));
    m.insert("proxy_last".into(), json!(proxy[proxy.len() - 1]));
    m.insert("d_last".into(), json!(d[d.len() - 1]));
    if let serde_json::Value::Object(e) = extra {
        m.extend(e);
    }
    c.write(dir, &m)
}

/// Gold and proxy scores of a policy's RL checkpoints.
pub struct Rewards;

#[derive(Params)]
pub struct RewardsParams {
    /// a policy from `finetune.rl` (or any `model.markov`: then its one state)
    policy: ModelDir,
    /// the true reward, over one-hot features
    gold: ModelDir,
    /// the reward model the policy was optimised against
    proxy: ModelDir,
    /// samples per checkpoint
    #[param(default = 8192, min = 2, max = 1 << 24)]
    samples: usize,
    /// sampling seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Rewards {
    type Params = RewardsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "rewards",
            1,
            Type::Curve,
            "the mean gold and proxy scores of each checkpoint of a tabular policy trained by `finetune.rl` (Monte Carlo over `samples` sequences each, the same random numbers for every checkpoint), relative to the first checkpoint (the starting policy), against the checkpoint's exact KL and d = √KL. Columns: step, kl, d, gold, proxy, gold_se, proxy_se",
        )
    }

    fn run(&self, ctx: &RunCtx, p: RewardsParams) -> Result<(), OpError> {
        let (policy, mut gold, mut proxy) = policy_gold_proxy(ctx, &p.policy, &p.gold, &p.proxy)?;
        let samples = p.samples;
        let states: Vec<(usize, Vec<f32>)> = if policy.checkpoints.is_empty() {
            vec![(0, policy.bias.clone())]
        } else {
            policy.checkpoints.iter().map(|c| (c.step, c.bias.clone())).collect()
        };
        let base = policy.table(&states[0].1);
        let seed = p.seed;
        let mut c = Curve::new(&["step", "kl", "d", "gold", "proxy", "gold_se", "proxy_se"]);
        let mut first: Option<(Vec<f64>, Vec<f64>)> = None;
        for (k, (step, bias)) in states.iter().enumerate() {
            ctx.check_cancel()?;
            let table = policy.table(bias);
            let kl = table.kl(&base).max(0.0);
            let seqs = table.sample(samples, &mut markov::rng(seed, 200));
            let (g, r) = (gold.score(&seqs)?, proxy.score(&seqs)?);
            let (g0, r0) = first.get_or_insert_with(|| (g.clone(), r.clone()));
            let (gm, gse) = mean_se(&g);
            let (rm, rse) = mean_se(&r);
            let (g0m, r0m) = (mean_se(g0).0, mean_se(r0).0);
            c.push(vec![*step as f64, kl, kl.sqrt(), gm - g0m, rm - r0m, gse, rse]);
            (ctx.progress)(Progress {
                done: k as u64 + 1,
                total: states.len() as u64,
                message: format!("checkpoint {} of {}", k + 1, states.len()),
            });
        }
        write_curve(ctx.out, &c, json!({}))
    }
}
