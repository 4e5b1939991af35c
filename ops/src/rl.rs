//! The RL family: environments (`env.digits`), policy-gradient training
//! (`rl.policy_gradient`), the compute-efficient frontier and intrinsic performance
//! (`estimate.frontier`), and the scaling law fitted to them (`fit.rl_scaling`).
//!
//! Compute is counted as the paper counts it: C = 6·N·E for a policy of N parameters after
//! E environment interactions. A policy's intrinsic performance I is the least compute at
//! which any model of the family reaches its return; the law is
//! I^(−β) = (N_c/N)^(α_N) + (E_c/E)^(α_E) with 1/β = 1/α_N + 1/α_E.

use crate::artifact::{self, Dataset, Metrics};
use crate::curve::{self, Curve};
use crate::data::{DigitsSplit, digits_split};
use crate::fit::r_squared;
use crate::nnops;
use crate::params::{CurveDir, EnvDir, FitDir, Grid, ModelDir, Params};
use crate::svg::{Line, YEnds, lines_svg_scaled};
use crate::{Op, OpError, Progress, Registry, RunCtx, Signature, Type, Yield};
use lab_nn::rl::{self, Env, PgConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::cell::Cell;
use std::path::Path;

pub fn register_envs(r: &mut Registry) {
    r.add(DigitsEnv);
}

pub fn register_rl(r: &mut Registry) {
    r.add(PolicyGradient);
}

/// What an `Env` artifact holds besides its rows (`data.safetensors`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvSpec {
    pub kind: String,
    /// Steps per episode.
    pub length: usize,
    /// Std of the Gaussian noise added to every observation.
    pub noise: f64,
}

const ENV_FILE: &str = "env.json";

/// An environment's description and rows, checked.
pub fn read_env(dir: &Path) -> Result<(EnvSpec, Dataset), OpError> {
    let path = dir.join(ENV_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| OpError::Data(format!("{}: {e}", path.display())))?;
    let spec: EnvSpec = serde_json::from_str(&text)
        .map_err(|e| OpError::Data(format!("{} is not a valid environment: {e}", path.display())))?;
    let d = Dataset::read(dir)?;
    if d.y.is_none() || d.rows() == 0 {
        return Err(OpError::Data(format!("{}: the environment has no labelled rows", dir.display())));
    }
    Ok((spec, d))
}

/// The digits environment.
pub struct DigitsEnv;

#[derive(Params)]
pub struct DigitsEnvParams {
    /// which images the agent sees: `train`, `test` or `all`
    #[param(default = DigitsSplit::Train)]
    split: DigitsSplit,
    /// steps per episode
    #[param(default = 64, min = 1, max = 1_000_000)]
    length: usize,
    /// std of Gaussian noise added to each observation (pixels are in [-1, 1])
    #[param(default = 0.0, min = 0, max = 100)]
    noise: f64,
    /// share of images held out as `test`
    #[param(default = 0.2, gt = 0, lt = 1)]
    test_fraction: f64,
    /// seed of the shuffle that makes the split
    #[param(default = 0)]
    split_seed: i64,
}

impl Op for DigitsEnv {
    type Params = DigitsEnvParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "env",
            "digits",
            1,
            Type::Env,
            "the digits environment: each step the agent sees an image of the shipped 8x8 digits (drawn uniformly from the split, plus Gaussian noise) and picks one of 10 labels, reward 1 when right; episodes of `length` steps",
        )
        .yields(Yield::Const("width", 64))
        .yields(Yield::Const("actions", 10))
    }

    fn run(&self, ctx: &RunCtx, p: DigitsEnvParams) -> Result<(), OpError> {
        digits_split(p.split, p.test_fraction, p.split_seed)?.write(ctx.out)?;
        let spec = EnvSpec { kind: "digits".into(), length: p.length, noise: p.noise };
        std::fs::write(ctx.out.join(ENV_FILE), serde_json::to_string_pretty(&spec).expect("json"))?;
        Ok(())
    }
}

/// Policy-gradient training of an MLP policy, with its learning curve.
pub struct PolicyGradient;

#[derive(Params)]
#[params(
    agree(env = "width", model = "inputs"),
    agree(eval = "width", model = "inputs"),
    agree(env = "actions", model = "outputs")
)]
pub struct PolicyGradientParams {
    /// the policy to start from: an MLP with one logit per action
    model: ModelDir,
    /// the environment it trains in
    env: EnvDir,
    /// the environment each checkpoint's return is measured in (e.g. held-out images)
    eval: EnvDir,
    /// h: returns-to-go are discounted with γ = 1 − 1/h (1: each action weighed by its own reward only)
    #[param(min = 1)]
    horizon: f64,
    /// environment interactions to train for
    #[param(min = 1, max = 2_000_000_000)]
    interactions: usize,
    /// episodes per update
    #[param(default = 8, min = 2, max = 1_000_000)]
    episodes: usize,
    /// Adam learning rate
    #[param(default = 3e-3, positive)]
    lr: f64,
    /// checkpoints, at log-spaced interaction counts from the first update to the last
    #[param(default = 16, min = 2, max = 10_000)]
    checkpoints: usize,
    /// seed of the episodes and actions
    #[param(default = 0)]
    seed: i64,
}

impl Op for PolicyGradient {
    type Params = PolicyGradientParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "rl",
            "policy_gradient",
            1,
            Type::Curve,
            "trains an MLP policy by policy gradient (returns-to-go discounted with γ = 1 − 1/h, a leave-one-out baseline over the update's episodes, Adam) and measures, at log-spaced interaction counts, the expected episode return on `eval`. Columns: interactions, parameters, compute (6·N·E), return",
        )
    }

    fn run(&self, ctx: &RunCtx, p: PolicyGradientParams) -> Result<(), OpError> {
        let mut model = nnops::load_model(&p.model, "model")?;
        let (spec, d) = read_env(&p.env)?;
        let (espec, ed) = read_env(&p.eval)?;
        let x = d.x.as_standard_layout().to_owned();
        let ex = ed.x.as_standard_layout().to_owned();
        let (y, ey) = (d.y.expect("checked").to_vec(), ed.y.expect("checked").to_vec());
        let k = model.spec.outputs as i64;
        for (arg, labels) in [("env", &y), ("eval", &ey)] {
            if let Some(l) = labels.iter().find(|&&l| l < 0 || l >= k) {
                return Err(OpError::invalid(arg, format!("has label {l}, not one of the policy's {k} actions")));
            }
        }
        let width = d.x.ncols();
        let env =
            Env { x: x.as_slice().expect("standard"), y: &y, width, length: spec.length, noise: spec.noise as f32 };
        let eval = Env {
            x: ex.as_slice().expect("standard"),
            y: &ey,
            width: ed.x.ncols(),
            length: espec.length,
            noise: espec.noise as f32,
        };
        let per_update = p.episodes * spec.length;
        let total = p.interactions.max(per_update);
        let n_params: usize = model.params.iter().map(|(_, t)| t.len()).sum();
        // Checkpoint k is taken at the first update with ≥ first·(total/first)^(k/(K−1))
        // interactions.
        let grid: Vec<f64> = (0..p.checkpoints)
            .map(|k| per_update as f64 * (total as f64 / per_update as f64).powf(k as f64 / (p.checkpoints - 1) as f64))
            .collect();
        let next = Cell::new(0usize);
        let want = |done: usize| {
            let mut hit = false;
            while next.get() < grid.len() && done as f64 >= grid[next.get()] * (1.0 - 1e-9) {
                next.set(next.get() + 1);
                hit = true;
            }
            hit
        };
        let mut curve = Curve::new(&["interactions", "parameters", "compute", "return"]);
        let opts = nnops::session_options(ctx);
        let (mut last, mut trained) = (f64::NAN, 0usize);
        let mut on_checkpoint = |done: usize, m: &lab_nn::mlp::Mlp| -> Result<(), lab_nn::NnError> {
            last = rl::expected_return(m, &eval, 0, opts)?;
            trained = done;
            curve.push(vec![done as f64, n_params as f64, 6.0 * n_params as f64 * done as f64, last]);
            Ok(())
        };
        let cfg = PgConfig {
            episodes: p.episodes,
            gamma: (1.0 - 1.0 / p.horizon) as f32,
            lr: p.lr,
            interactions: total,
            seed: p.seed as u64,
            session: opts,
        };
        let mut on_update = |done: usize, loss: f32| {
            if done.is_multiple_of(per_update * 20) || done >= total {
                (ctx.progress)(Progress { done: done as u64, total: total as u64, message: format!("loss {loss:.4}") });
            }
            ctx.check_cancel().is_ok()
        };
        match rl::train_pg(&mut model, &env, &cfg, &want, &mut on_checkpoint, &mut on_update) {
            Ok(()) => {}
            Err(_) if ctx.check_cancel().is_err() => return Err(OpError::Cancelled),
            Err(lab_nn::NnError::NonFinite { step, value }) => {
                return Err(OpError::Numeric(format!(
                    "the policy-gradient loss became {value} at update {step}; lower `lr` (now {})",
                    p.lr
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let mut m = Metrics::new();
        m.insert("return".into(), json!(last));
        m.insert("parameters".into(), json!(n_params));
        // Training runs in whole updates: the last checkpoint is where it ended.
        m.insert("interactions".into(), json!(trained));
        m.insert("horizon".into(), json!(p.horizon));
        m.insert("compute".into(), json!(6.0 * n_params as f64 * trained as f64));
        curve.write(ctx.out, &m)
    }
}

/// One model size's learning curve (seeds averaged): its parameters and checkpoints.
struct Run {
    parameters: f64,
    interactions: Vec<f64>,
    compute: Vec<f64>,
    ret: Vec<f64>,
    /// The best return so far at each checkpoint.
    best: Vec<f64>,
}

impl Run {
    /// The least compute at which this run's best-so-far return reaches `r`, interpolated
    /// linearly in the return and logarithmically in compute between checkpoints; the
    /// first checkpoint's compute when it starts above `r`; infinite if it never reaches it.
    fn compute_to_reach(&self, r: f64) -> f64 {
        if r <= self.best[0] {
            return self.compute[0];
        }
        for j in 1..self.best.len() {
            if self.best[j] >= r {
                let (r0, r1) = (self.best[j - 1], self.best[j]);
                let t = if r1 > r0 { (r - r0) / (r1 - r0) } else { 1.0 };
                let (c0, c1) = (self.compute[j - 1].ln(), self.compute[j].ln());
                return (c0 + t * (c1 - c0)).exp();
            }
        }
        f64::INFINITY
    }
}

/// The compute-efficient frontier and intrinsic performance over model sizes.
pub struct Frontier;

#[derive(Params)]
pub struct FrontierParams {
    /// one group per model size, each the learning curves of its seeds (`rl.policy_gradient`), averaged point by point
    #[param(non_empty)]
    curves: Grid<CurveDir>,
    /// one value per model size (e.g. `widths`): the curves split into that many groups, in order
    #[param(non_empty)]
    sizes: Vec<f64>,
}

impl Op for Frontier {
    type Params = FrontierParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "estimate",
            "frontier",
            1,
            Type::Curve,
            "the compute-efficient frontier of learning curves of several model sizes (each size's seeds averaged point by point): for every checkpoint of every size, its intrinsic performance (the least compute at which any size reaches its return, interpolated in log compute along each size's best-so-far curve), the frontier (the best return at no more compute) and the size that holds it. Columns, rows by compute: parameters, interactions, compute, return, intrinsic, frontier, optimal_parameters",
        )
    }

    fn run(&self, ctx: &RunCtx, p: FrontierParams) -> Result<(), OpError> {
        let all = curve::read_all(&p.curves.0)?;
        let groups = p.sizes.len();
        if all.len() % groups != 0 {
            return Err(OpError::invalid(
                "sizes",
                format!(
                    "has {groups} values, but {} curves do not split into that many groups of equal size",
                    all.len()
                ),
            ));
        }
        let mut runs = Vec::new();
        for (g, group) in all.chunks(all.len() / groups).enumerate() {
            // A group is one model size's seeds: curves of one size on one grid.
            let first = group[0].column("parameters", "curves")?;
            for c in group {
                let (n, e) = (c.column("parameters", "curves")?, c.column("interactions", "curves")?);
                if n.first() != first.first() || e != group[0].column("interactions", "curves")? {
                    return Err(OpError::invalid(
                        "curves",
                        format!(
                            "group {} mixes runs of different sizes or checkpoints ({:?} and {:?} parameters); give one group per size, each its seeds' curves: `[[run[w, s] for s in seeds] for w in widths]`",
                            g + 1,
                            first.first(),
                            n.first()
                        ),
                    ));
                }
            }
            let mean = curve::mean(group, "curves")?;
            let ret = mean.column("return", "curves")?;
            let params = mean.column("parameters", "curves")?;
            if ret.is_empty() {
                return Err(OpError::invalid("curves", "hold a curve with no checkpoints"));
            }
            if ret.iter().any(|r| !r.is_finite()) {
                return Err(OpError::Data("a learning curve has a return that is not a finite number".into()));
            }
            let best = ret
                .iter()
                .scan(f64::NEG_INFINITY, |m, &r| {
                    *m = m.max(r);
                    Some(*m)
                })
                .collect();
            runs.push(Run {
                parameters: params[0],
                interactions: mean.column("interactions", "curves")?,
                compute: mean.column("compute", "curves")?,
                ret,
                best,
            });
        }
        let mut rows = Vec::new();
        for run in &runs {
            for j in 0..run.ret.len() {
                let r = run.ret[j];
                let intrinsic = runs.iter().map(|o| o.compute_to_reach(r)).fold(f64::INFINITY, f64::min);
                rows.push((run.parameters, run.interactions[j], run.compute[j], r, intrinsic));
            }
        }
        rows.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.total_cmp(&b.0)));
        let mut out = Curve::new(&[
            "parameters",
            "interactions",
            "compute",
            "return",
            "intrinsic",
            "frontier",
            "optimal_parameters",
        ]);
        let (mut best, mut holder) = (f64::NEG_INFINITY, f64::NAN);
        for &(n, e, c, r, i) in &rows {
            if r > best {
                best = r;
                holder = n;
            }
            out.push(vec![n, e, c, r, i, best, holder]);
        }
        let mut m = Metrics::new();
        m.insert("sizes".into(), json!(runs.len()));
        m.insert("points".into(), json!(rows.len()));
        m.insert("frontier_max".into(), json!(best));
        m.insert("optimal_parameters".into(), json!(holder));
        out.write(ctx.out, &m)
    }
}

/// The RL scaling law fitted to intrinsic performance.
pub struct RlScaling;

#[derive(Params)]
pub struct RlScalingParams {
    /// frontiers (`estimate.frontier`), e.g. one per horizon: they share α_N, α_E and N_c, and each has its own E_c
    #[param(non_empty)]
    frontiers: Vec<CurveDir>,
    /// a fit whose α_N, α_E and N_c to keep (`[law]`), so that only E_c is fitted; `[]` fits them all
    #[param(default = vec![])]
    shared: Vec<FitDir>,
    /// the share of each run's training dropped from the fit (its first interactions)
    #[param(default = 0.015625, min = 0, lt = 1)]
    skip: f64,
    /// title of the figure
    #[param(default = "")]
    title: String,
}

/// The law's prediction of ln I for (N, E).
fn ln_intrinsic(a_n: f64, a_e: f64, n_c: f64, e_c: f64, n: f64, e: f64) -> f64 {
    let inv_beta = 1.0 / a_n + 1.0 / a_e;
    -inv_beta * ((n_c / n).powf(a_n) + (e_c / e).powf(a_e)).ln()
}

/// Points of intrinsic performance: parameters, interactions, I, and which frontier.
#[derive(Debug, Clone, Default)]
pub struct Points {
    pub n: Vec<f64>,
    pub e: Vec<f64>,
    pub i: Vec<f64>,
    pub group: Vec<usize>,
    pub groups: usize,
}

/// A fitted law: shared exponents and N_c, one E_c per group, and the squared error in
/// ln I.
#[derive(Debug, Clone)]
pub struct Law {
    pub alpha_n: f64,
    pub alpha_e: f64,
    pub n_c: f64,
    pub e_c: Vec<f64>,
    pub sse: f64,
}

impl Law {
    fn ln_i(&self, pts: &Points, j: usize) -> f64 {
        ln_intrinsic(self.alpha_n, self.alpha_e, self.n_c, self.e_c[pts.group[j]], pts.n[j], pts.e[j])
    }
}

/// For given exponents (and N_c, when `n_c` is given), the coefficients a = N_c^α_N and
/// b_g = E_c,g^α_E of I^(−β) = a·N^(−α_N) + b_g·E^(−α_E), by least squares in relative
/// error; `None` unless all are positive.
fn coefficients(pts: &Points, a_n: f64, a_e: f64, n_c: Option<f64>) -> Option<Law> {
    let beta = 1.0 / (1.0 / a_n + 1.0 / a_e);
    let rows = pts.n.len();
    let y: Vec<f64> = pts.i.iter().map(|v| v.powf(-beta)).collect();
    let fixed_a = n_c.map(|c| c.powf(a_n));
    let cols = pts.groups + usize::from(fixed_a.is_none());
    let off = usize::from(fixed_a.is_none());
    let mut m = nalgebra::DMatrix::<f64>::zeros(rows, cols);
    let mut rhs = nalgebra::DVector::<f64>::from_element(rows, 1.0);
    for j in 0..rows {
        let f = pts.n[j].powf(-a_n) / y[j];
        match fixed_a {
            Some(a) => rhs[j] -= a * f,
            None => m[(j, 0)] = f,
        }
        m[(j, off + pts.group[j])] = pts.e[j].powf(-a_e) / y[j];
    }
    let sol = m.svd(true, true).solve(&rhs, 1e-14).ok()?;
    let a = fixed_a.unwrap_or(sol[0]);
    let bs: Vec<f64> = (0..pts.groups).map(|g| sol[off + g]).collect();
    if !(a > 0.0 && bs.iter().all(|&b| b > 0.0)) {
        return None;
    }
    let mut law = Law {
        alpha_n: a_n,
        alpha_e: a_e,
        n_c: a.powf(1.0 / a_n),
        e_c: bs.iter().map(|b| b.powf(1.0 / a_e)).collect(),
        sse: 0.0,
    };
    law.sse = (0..rows).map(|j| (law.ln_i(pts, j) - pts.i[j].ln()).powi(2)).sum();
    law.sse.is_finite().then_some(law)
}

/// The residuals ln I_law − ln I of a law whose parameters are θ = (ln α_N, ln α_E,
/// ln N_c, ln E_c per group), or only the ln E_c when the rest is `fixed`.
struct LawProblem<'a> {
    pts: &'a Points,
    fixed: Option<[f64; 3]>,
    theta: nalgebra::DVector<f64>,
}

impl LawProblem<'_> {
    fn law(&self, theta: &nalgebra::DVector<f64>) -> Law {
        let (head, ec) = match self.fixed {
            Some(f) => ([f[0], f[1], f[2]], theta.as_slice()),
            None => ([theta[0].exp(), theta[1].exp(), theta[2].exp()], &theta.as_slice()[3..]),
        };
        Law { alpha_n: head[0], alpha_e: head[1], n_c: head[2], e_c: ec.iter().map(|v| v.exp()).collect(), sse: 0.0 }
    }

    fn residuals_at(&self, theta: &nalgebra::DVector<f64>) -> nalgebra::DVector<f64> {
        let law = self.law(theta);
        nalgebra::DVector::from_iterator(
            self.pts.n.len(),
            (0..self.pts.n.len()).map(|j| law.ln_i(self.pts, j) - self.pts.i[j].ln()),
        )
    }
}

impl levenberg_marquardt::LeastSquaresProblem<f64, nalgebra::Dyn, nalgebra::Dyn> for LawProblem<'_> {
    type ResidualStorage = nalgebra::VecStorage<f64, nalgebra::Dyn, nalgebra::U1>;
    type JacobianStorage = nalgebra::VecStorage<f64, nalgebra::Dyn, nalgebra::Dyn>;
    type ParameterStorage = nalgebra::VecStorage<f64, nalgebra::Dyn, nalgebra::U1>;

    fn set_params(&mut self, x: &nalgebra::DVector<f64>) {
        self.theta.copy_from(x);
    }

    fn params(&self) -> nalgebra::DVector<f64> {
        self.theta.clone()
    }

    fn residuals(&self) -> Option<nalgebra::DVector<f64>> {
        let r = self.residuals_at(&self.theta);
        r.iter().all(|v| v.is_finite()).then_some(r)
    }

    fn jacobian(&self) -> Option<nalgebra::DMatrix<f64>> {
        // Central differences: the law is smooth in θ and has few parameters.
        let (rows, cols) = (self.pts.n.len(), self.theta.len());
        let mut j = nalgebra::DMatrix::zeros(rows, cols);
        for c in 0..cols {
            let h = 1e-6 * (1.0 + self.theta[c].abs());
            let (mut up, mut down) = (self.theta.clone(), self.theta.clone());
            up[c] += h;
            down[c] -= h;
            let d = (self.residuals_at(&up) - self.residuals_at(&down)) / (2.0 * h);
            j.set_column(c, &d);
        }
        j.iter().all(|v| v.is_finite()).then_some(j)
    }
}

/// Levenberg–Marquardt from `start` on the residuals in ln I; the law it ends at, if its
/// exponents stay within [0.001, 100].
fn refine(pts: &Points, start: &Law, fixed: bool) -> Option<Law> {
    let theta: Vec<f64> = if fixed {
        start.e_c.iter().map(|v| v.ln()).collect()
    } else {
        [start.alpha_n.ln(), start.alpha_e.ln(), start.n_c.ln()]
            .into_iter()
            .chain(start.e_c.iter().map(|v| v.ln()))
            .collect()
    };
    let problem = LawProblem {
        pts,
        fixed: fixed.then_some([start.alpha_n, start.alpha_e, start.n_c]),
        theta: nalgebra::DVector::from_vec(theta),
    };
    let (done, _) = levenberg_marquardt::LevenbergMarquardt::new().minimize(problem);
    let mut law = done.law(&done.theta);
    law.sse = done.residuals_at(&done.theta).norm_squared();
    let ok = law.sse.is_finite()
        && [law.alpha_n, law.alpha_e].iter().all(|a| (1e-3..=100.0).contains(a))
        && law.n_c.is_finite()
        && law.e_c.iter().all(|v| v.is_finite() && *v > 0.0);
    ok.then_some(law)
}

/// Least squares in ln I. Starting points come from a log grid of exponents from 0.01 to
/// 10 (the coefficients solved by least squares in relative error for each pair); the
/// best few, spread over the grid, are refined by Levenberg–Marquardt on all parameters.
pub fn fit_law(pts: &Points) -> Option<Law> {
    let steps = 40;
    let (lo, hi) = (0.01f64.ln(), 10f64.ln());
    let d = (hi - lo) / steps as f64;
    let mut grid: Vec<Law> = Vec::new();
    for u in 0..=steps {
        for v in 0..=steps {
            if let Some(l) = coefficients(pts, (lo + d * u as f64).exp(), (lo + d * v as f64).exp(), None) {
                grid.push(l);
            }
        }
    }
    grid.sort_by(|a, b| a.sse.total_cmp(&b.sse));
    // The best start of each region of the exponents (a 4×4 split of the grid), so that a
    // start in every basin is tried.
    let mut starts: Vec<&Law> = Vec::new();
    let region =
        |l: &Law| (((l.alpha_n.ln() - lo) / (hi - lo) * 4.0) as i32, ((l.alpha_e.ln() - lo) / (hi - lo) * 4.0) as i32);
    for l in &grid {
        if !starts.iter().any(|s| region(s) == region(l)) {
            starts.push(l);
        }
    }
    starts
        .into_iter()
        .filter_map(|s| refine(pts, s, false).or_else(|| Some(s.clone())))
        .min_by(|a, b| a.sse.total_cmp(&b.sse))
}

/// The usable points of a frontier: each run's first `skip` of training dropped, and
/// intrinsic performance finite and positive.
fn frontier_points(c: &Curve, group: usize, skip: f64, pts: &mut Points) -> Result<(), OpError> {
    let (n, e, i) = (
        c.column("parameters", "frontiers")?,
        c.column("interactions", "frontiers")?,
        c.column("intrinsic", "frontiers")?,
    );
    // Each size's training length: its largest interaction count.
    let mut total: Vec<(f64, f64)> = Vec::new();
    for (&nv, &ev) in n.iter().zip(&e) {
        match total.iter_mut().find(|(k, _)| *k == nv) {
            Some((_, t)) => *t = t.max(ev),
            None => total.push((nv, ev)),
        }
    }
    for j in 0..n.len() {
        let t = total.iter().find(|(k, _)| *k == n[j]).map_or(0.0, |(_, t)| *t);
        if e[j] >= skip * t && i[j].is_finite() && i[j] > 0.0 && e[j] > 0.0 && n[j] > 0.0 {
            pts.n.push(n[j]);
            pts.e.push(e[j]);
            pts.i.push(i[j]);
            pts.group.push(group);
        }
    }
    Ok(())
}

impl Op for RlScaling {
    type Params = RlScalingParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "fit",
            "rl_scaling",
            1,
            Type::Fit,
            "least-squares fit (in log I) of the RL scaling law I^(−β) = (N_c/N)^(α_N) + (E_c/E)^(α_E), 1/β = 1/α_N + 1/α_E, to the intrinsic performance of frontiers' checkpoints (each run's first `skip` of training dropped); several frontiers share α_N, α_E and N_c and each has its own E_c; with `shared`, only E_c is fitted. Reports `alpha_n`, `alpha_e`, `beta`, `n_c`, `e_c` (the first frontier's; all in `e_c_all`), `r2` (in log I), `points` and `optimal_size_exponent` = α_E/(α_N + α_E) (N_opt ∝ C^that); draws I against interactions per model size, measured and fitted",
        )
    }

    fn run(&self, ctx: &RunCtx, p: RlScalingParams) -> Result<(), OpError> {
        let mut pts = Points { groups: p.frontiers.len(), ..Points::default() };
        for (g, dir) in p.frontiers.iter().enumerate() {
            frontier_points(&Curve::read(dir)?, g, p.skip, &mut pts)?;
        }
        if let Some(g) = (0..pts.groups).find(|&g| pts.group.iter().filter(|&&x| x == g).count() < 2) {
            return Err(OpError::invalid(
                "frontiers",
                format!(
                    "frontier {} has fewer than 2 usable points after dropping the first {} of training (or its intrinsic performance is never finite); lower `skip` or train longer",
                    g + 1,
                    p.skip
                ),
            ));
        }
        let free = if p.shared.is_empty() { 3 } else { 0 };
        if pts.n.len() < free + pts.groups + 1 {
            return Err(OpError::invalid(
                "frontiers",
                format!(
                    "have {} usable points after dropping the first {} of training; the fit has {} coefficients and needs more points",
                    pts.n.len(),
                    p.skip,
                    free + pts.groups
                ),
            ));
        }
        let law = match p.shared.first() {
            None => fit_law(&pts),
            Some(dir) => {
                let m = artifact::read_metrics(dir)?;
                let get = |k: &str| {
                    artifact::metric(&m, k).map_err(|_| {
                        OpError::invalid("shared", format!("has no `{k}`: give a `fit.rl_scaling` result"))
                    })
                };
                coefficients(&pts, get("alpha_n")?, get("alpha_e")?, Some(get("n_c")?))
                    .map(|start| refine(&pts, &start, true).unwrap_or(start))
            }
        }
        .ok_or_else(|| {
            OpError::Data(
                "no exponents between 0.01 and 10 fit the intrinsic performance with positive coefficients".into(),
            )
        })?;
        let pred: Vec<f64> = (0..pts.n.len()).map(|j| law.ln_i(&pts, j)).collect();
        let ln_i: Vec<f64> = pts.i.iter().map(|v| v.ln()).collect();
        let r2 = r_squared(&ln_i, &pred);
        let (a_n, a_e) = (law.alpha_n, law.alpha_e);
        let beta = 1.0 / (1.0 / a_n + 1.0 / a_e);
        let mut m = Metrics::new();
        m.insert("alpha_n".into(), json!(a_n));
        m.insert("alpha_e".into(), json!(a_e));
        m.insert("beta".into(), json!(beta));
        m.insert("n_c".into(), json!(law.n_c));
        m.insert("e_c".into(), json!(law.e_c[0]));
        if law.e_c.len() > 1 {
            m.insert("e_c_all".into(), json!(law.e_c));
        }
        m.insert("r2".into(), json!(r2));
        m.insert("points".into(), json!(pts.n.len()));
        m.insert("optimal_size_exponent".into(), json!(a_e / (a_n + a_e)));
        artifact::write_metrics(ctx.out, &m)?;
        let doc = json!({"law": "I^(-beta) = (N_c/N)^alpha_N + (E_c/E)^alpha_E", "alpha_n": a_n, "alpha_e": a_e, "beta": beta, "n_c": law.n_c, "e_c": law.e_c, "r2": r2, "points": (0..pts.n.len()).map(|j| json!([pts.n[j], pts.e[j], pts.i[j], pts.group[j]])).collect::<Vec<_>>()});
        std::fs::write(ctx.out.join("fit.json"), serde_json::to_string_pretty(&doc).expect("json"))?;
        // The first frontier, per size: measured log10 I (solid) and the law (dashed).
        let mut sizes: Vec<f64> = (0..pts.n.len()).filter(|&j| pts.group[j] == 0).map(|j| pts.n[j]).collect();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        let mut lines = Vec::new();
        for (si, &size) in sizes.iter().enumerate() {
            let at: Vec<usize> = (0..pts.n.len()).filter(|&j| pts.group[j] == 0 && pts.n[j] == size).collect();
            let measured = at.iter().map(|&j| (pts.e[j], pts.i[j].log10(), None)).collect();
            let fitted = at.iter().map(|&j| (pts.e[j], pred[j] / std::f64::consts::LN_10, None)).collect();
            lines.push(Line {
                label: format!("{size:.0} parameters"),
                points: measured,
                dashed: false,
                color: Some(si),
            });
            lines.push(Line { label: format!("{size:.0}, fit"), points: fitted, dashed: true, color: Some(si) });
        }
        let title = match p.title.as_str() {
            "" => format!("Intrinsic performance: α_N = {a_n:.2}, α_E = {a_e:.2}, R² = {r2:.3}"),
            t => t.to_string(),
        };
        let svg = lines_svg_scaled(
            &title,
            "interactions E",
            "log10 intrinsic performance I (FLOPs)",
            &lines,
            None,
            true,
            YEnds::default(),
        );
        std::fs::write(ctx.out.join(artifact::FIGURE_FILE), svg)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_law_is_recovered_from_data_it_generated() {
        // Two groups (horizons) share the exponents and N_c; E_c differs.
        let (a_n, a_e, n_c, e_c) = (0.6, 0.35, 2.0e3, [5.0e4, 2.0e5]);
        let mut pts = Points { groups: 2, ..Points::default() };
        for (g, &ec) in e_c.iter().enumerate() {
            for &nv in &[300.0, 600.0, 1200.0, 2400.0, 4800.0] {
                for k in 0..12 {
                    let ev = 1e4 * 2f64.powf(k as f64 * 0.7);
                    pts.n.push(nv);
                    pts.e.push(ev);
                    pts.i.push(ln_intrinsic(a_n, a_e, n_c, ec, nv, ev).exp());
                    pts.group.push(g);
                }
            }
        }
        let law = fit_law(&pts).unwrap();
        assert!(law.sse < 1e-4, "sse {}", law.sse);
        assert!((law.alpha_n - a_n).abs() < 0.02 && (law.alpha_e - a_e).abs() < 0.02, "{law:?}");
        assert!((law.n_c / n_c - 1.0).abs() < 0.1, "{law:?}");
        for g in 0..2 {
            assert!((law.e_c[g] / e_c[g] - 1.0).abs() < 0.1, "{law:?}");
        }
        // With the exponents and N_c given, E_c alone is solved exactly.
        let fixed = coefficients(&pts, a_n, a_e, Some(n_c)).unwrap();
        assert!(fixed.sse < 1e-12 && (fixed.e_c[1] / e_c[1] - 1.0).abs() < 1e-6, "{fixed:?}");
    }

    #[test]
    fn intrinsic_performance_of_hand_worked_curves() {
        // Size A (10 params) reaches 1 at compute 10 and 2 at 100; size B (100 params)
        // reaches 1.5 at 1000 and 3 at 10,000. B's return 1.5 is reached by A between
        // compute 10 and 100: halfway in return, so at √(10·100) ≈ 31.6 (log interpolation).
        let a = Run {
            parameters: 10.0,
            interactions: vec![1.0, 10.0],
            compute: vec![10.0, 100.0],
            ret: vec![1.0, 2.0],
            best: vec![1.0, 2.0],
        };
        let b = Run {
            parameters: 100.0,
            interactions: vec![10.0, 100.0],
            compute: vec![1e3, 1e4],
            ret: vec![1.5, 3.0],
            best: vec![1.5, 3.0],
        };
        assert!((a.compute_to_reach(1.5) - 1000f64.sqrt()).abs() < 1e-9);
        assert_eq!(b.compute_to_reach(1.5), 1e3);
        assert_eq!(a.compute_to_reach(3.0), f64::INFINITY);
        assert_eq!(a.compute_to_reach(0.5), 10.0);
        // Return 2.5 is reached only by B, between 1,000 and 10,000, a third of the way.
        assert!((b.compute_to_reach(2.5) - 10f64.powf(3.0 + 2.0 / 3.0)).abs() < 1e-6);
    }
}
