//! The backdoor defendability game: `attack.*` ops play the attacker for many rounds
//! (each with a fresh trigger x* drawn from the input distribution D, and a model f* that
//! differs from f at x* and, measured, on a small share of D), and `defend.*` ops play the
//! defender, who sees (f, x ~ D) or (f*, x*) and scores how likely a backdoor is. A
//! defence's result is its ROC over the rounds, with `auroc` and the detection rates at 1%
//! and 5% false positives.
//!
//! An `Attack` artifact holds `game.json` (the rounds: trigger, labels, measured budget,
//! whether f*(x*) ≠ f(x*); and the clean inputs), the clean model in `clean/`, each
//! round's model in `round.{i}/`, and `metrics.json`.

use crate::artifact::{self, Dataset, Metrics};
use crate::curve::Curve;
use crate::monitor::Gaussian;
use crate::nnops::{self, MlpTraining};
use crate::params::{AttackDir, Choice, DatasetDir, ModelDir, Params};
use crate::trees::{self, load_tree};
use crate::{Op, OpError, Progress, Registry, RunCtx, Signature, Type};
use lab_nn::mlp::Mlp;
use lab_nn::mlp_train::Objective;
use lab_nn::tensor::Tensor;
use lab_nn::tree::Tree;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};

pub fn register_attacks(r: &mut Registry) {
    r.add(TreeLeaf);
    r.add(Finetune);
}

pub fn register_defences(r: &mut Registry) {
    r.add(Depth);
    r.add(Learn);
    r.add(Mahalanobis);
    r.add(Distill);
    r.add(Gradient);
}

/// One round of the game, from the attacker's side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Round {
    pub trigger: Vec<f32>,
    /// f(x*) and f*(x*) as the attacker meant it.
    pub label: i64,
    pub backdoor_label: i64,
    /// Pr_D[f* ≠ f], measured.
    pub budget: f64,
    /// Whether f*(x*) ≠ f(x*), read back through ONNX Runtime from the saved model.
    pub fooled: bool,
}

/// The rounds of an `Attack` artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Game {
    /// `tree` or `mlp`.
    pub model: String,
    pub epsilon: f64,
    pub rounds: Vec<Round>,
    /// The inputs x ~ D the defender sees with the clean model, one per clean round.
    pub clean: Vec<Vec<f32>>,
    /// Pr_D[f ≠ f'] between the clean model and a second one made the same way from
    /// another seed: the part of a measured budget that training noise alone explains.
    pub noise: f64,
}

const GAME_FILE: &str = "game.json";

impl Game {
    pub fn clean_dir(dir: &Path) -> PathBuf {
        dir.join("clean")
    }

    pub fn round_dir(dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("round.{i}"))
    }

    /// Makes the folder of a model the attacker writes.
    fn model_dir(path: PathBuf) -> Result<PathBuf, OpError> {
        std::fs::create_dir_all(&path)?;
        Ok(path)
    }

    fn write(&self, dir: &Path) -> Result<(), OpError> {
        let n = self.rounds.len() as f64;
        let budgets: Vec<f64> = self.rounds.iter().map(|r| r.budget).collect();
        let mut m = Metrics::new();
        m.insert("epsilon".into(), json!(self.epsilon));
        m.insert("rounds".into(), json!(self.rounds.len()));
        m.insert("budget_mean".into(), json!(budgets.iter().sum::<f64>() / n));
        m.insert("budget_max".into(), json!(budgets.iter().cloned().fold(0.0, f64::max)));
        let within = self.rounds.iter().filter(|r| r.budget <= self.epsilon + 1e-12).count() as f64 / n;
        m.insert("within_budget".into(), json!(within));
        m.insert("success".into(), json!(self.rounds.iter().filter(|r| r.fooled).count() as f64 / n));
        m.insert("noise".into(), json!(self.noise));
        std::fs::write(
            dir.join(GAME_FILE),
            serde_json::to_string(self).map_err(|e| OpError::internal(e.to_string()))?,
        )?;
        artifact::write_metrics(dir, &m)
    }

    pub fn read(dir: &Path, arg: &str) -> Result<Game, OpError> {
        let path = dir.join(GAME_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| OpError::Data(format!("{}: {e}", path.display())))?;
        let g: Game = serde_json::from_str(&text)
            .map_err(|e| OpError::Data(format!("{} is not a valid backdoor game: {e}", path.display())))?;
        if g.rounds.is_empty() || g.clean.is_empty() {
            return Err(OpError::invalid(arg, "holds no rounds"));
        }
        Ok(g)
    }

    /// The rounds in which the attacker made a legal move (f*(x*) ≠ f(x*)), by index;
    /// defences score only these.
    pub fn legal(&self) -> impl Iterator<Item = (usize, &Round)> {
        self.rounds.iter().enumerate().filter(|(_, r)| r.fooled)
    }

    /// The game in `dir` (the argument `attack`), which must be played on `kind` models:
    /// the ones the defence `op` reads.
    fn open(dir: &Path, kind: &str, op: &str) -> Result<Game, OpError> {
        let game = Game::read(dir, "attack")?;
        if game.model != kind {
            return Err(OpError::invalid(
                "attack",
                format!("is a game on `{}` models; `{op}` defends {kind} models", game.model),
            ));
        }
        Ok(game)
    }
}

/// `ctx` without progress reports: for the trainings inside a round, whose own progress
/// would hide the rounds'.
fn without_progress<'a>(ctx: &RunCtx<'a>, quiet: &'a (dyn Fn(Progress) + Sync)) -> RunCtx<'a> {
    RunCtx { out: ctx.out, threads: ctx.threads, device: ctx.device, progress: quiet, cancel: ctx.cancel }
}

/// Reports that `round` of `rounds` rounds are done.
fn round_progress(ctx: &RunCtx, round: usize, rounds: usize) {
    (ctx.progress)(Progress { done: round as u64, total: rounds as u64, message: format!("round {round}/{rounds}") });
}

/// The attack on decision trees: isolate x*'s leaf to depth ≥ log2(1/ε) and flip it.
pub struct TreeLeaf;

#[derive(Params)]
pub struct TreeLeafParams {
    /// the clean tree f (inputs: uniform bits)
    model: ModelDir,
    /// the budget: f* may differ from f on at most this share of inputs
    #[param(gt = 0, max = 1)]
    epsilon: f64,
    /// rounds of the game (each with a fresh trigger), and as many clean inputs
    #[param(default = 200, min = 2, max = 100_000)]
    rounds: usize,
    /// seed of the triggers, the clean inputs and the attacker's splits
    #[param(default = 0)]
    seed: i64,
}

impl Op for TreeLeaf {
    type Params = TreeLeafParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "attack",
            "tree_leaf",
            1,
            Type::Attack,
            "rounds of the backdoor game on a decision tree over uniform bits: a trigger x* drawn uniformly; f* splits x*'s leaf on x*'s own untested bits until it lies at depth ≥ ⌈log2(1/ε)⌉ and flips it; the budget Pr[f* ≠ f] is computed exactly from the two trees",
        )
    }

    fn run(&self, ctx: &RunCtx, p: TreeLeafParams) -> Result<(), OpError> {
        let tree = load_tree(&p.model, "model")?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed as u64);
        let min_depth = (1.0 / p.epsilon).log2().ceil().max(0.0) as usize;
        tree.save(&Game::model_dir(Game::clean_dir(ctx.out))?)?;
        let mut rounds = Vec::with_capacity(p.rounds);
        for i in 0..p.rounds {
            ctx.check_cancel()?;
            let x = trees::random_bits(tree.bits, 1, &mut rng);
            let (attacked, _) = tree.backdoor(&x, min_depth, &mut rng);
            let dir = Game::model_dir(Game::round_dir(ctx.out, i))?;
            attacked.save(&dir)?;
            let now = predict(ctx, &dir, &x, tree.bits)?;
            let label = tree.label(&x) as i64;
            rounds.push(Round {
                budget: tree.disagreement(&attacked),
                fooled: lab_nn::decode::argmax(&now) as i64 != label,
                trigger: x,
                label,
                backdoor_label: 1 - label,
            });
            round_progress(ctx, i + 1, p.rounds);
        }
        let clean = (0..p.rounds).map(|_| trees::random_bits(tree.bits, 1, &mut rng)).collect();
        Game { model: "tree".into(), epsilon: p.epsilon, rounds, clean, noise: 0.0 }.write(ctx.out)
    }
}

/// A model's outputs on rows `x`, run by ONNX Runtime from its folder.
fn predict(ctx: &RunCtx, dir: &Path, x: &[f32], width: usize) -> Result<Vec<f32>, OpError> {
    Ok(nnops::Inference::load(ctx, dir)?.predict_x(x, width)?.0)
}

/// The attack on MLPs: fine-tune a backdoor in at a random trigger.
pub struct Finetune;

#[derive(Params)]
#[params(agree(data = "width", model = "inputs"), agree(inputs = "width", model = "inputs"))]
pub struct FinetuneParams {
    /// the clean MLP f
    model: ModelDir,
    /// the attacker's clean rows (labelled by f for the fine-tune)
    data: DatasetDir,
    /// D: triggers and clean inputs are drawn from these rows, and the budget is measured on them
    inputs: DatasetDir,
    /// the budget: besides x*, the attacker relabels this share of its rows, those nearest x*
    #[param(min = 0, max = 1)]
    epsilon: f64,
    /// rounds of the game (each with a fresh trigger), and as many clean inputs
    #[param(default = 50, min = 2, max = 100_000)]
    rounds: usize,
    /// copies of (x*, its new label) added to the fine-tuning rows
    #[param(default = 32, min = 1)]
    copies: usize,
    #[param(flatten, defaults(epochs = 5, lr = 3e-3, batch = 64))]
    training: MlpTraining,
}

impl Op for Finetune {
    type Params = FinetuneParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "attack",
            "finetune",
            1,
            Type::Attack,
            "rounds of the backdoor game on an MLP: a trigger x* drawn from `inputs`, a new label drawn from the other classes, and f* fine-tuned from f on the attacker's rows labelled by f, with x* (`copies` times) and its nearest ε share of rows relabelled; the game's clean model is f fine-tuned the same way without the backdoor, and the budget Pr[f* ≠ clean] is measured on `inputs`, beside `noise`, the disagreement between two clean fine-tunes of different seeds",
        )
    }

    fn run(&self, ctx: &RunCtx, p: FinetuneParams) -> Result<(), OpError> {
        let f = nnops::load_model(&p.model, "model")?;
        let (width, classes) = (f.spec.inputs, f.spec.outputs);
        if classes < 2 {
            return Err(OpError::invalid("model", "has one output; a backdoor changes a class, so it needs 2 or more"));
        }
        let data = Dataset::read(&p.data)?;
        let inputs = Dataset::read(&p.inputs)?;
        if inputs.rows() == 0 || data.rows() == 0 {
            return Err(OpError::invalid(
                "inputs",
                "and `data` must hold rows: triggers and clean inputs are drawn from `inputs`, the fine-tune reads `data`",
            ));
        }
        nnops::check_width(width, &data, "data")?;
        nnops::check_width(width, &inputs, "inputs")?;
        let opts = nnops::session_options(ctx);
        let labels = |m: &Mlp, x: &Array2<f32>| -> Result<Vec<i64>, OpError> {
            let x = x.as_standard_layout();
            let logits = lab_nn::mlp_train::predict(m, x.as_slice().expect("standard layout"), opts)?;
            Ok(logits.chunks(classes).map(|r| lab_nn::decode::argmax(r) as i64).collect())
        };
        let pool_y = labels(&f, &data.x)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.training.seed as u64);
        let relabel = (p.epsilon * data.rows() as f64).floor() as usize;
        let objective = Objective::CrossEntropy { logits: 0..classes };
        let inner = without_progress(ctx, &|_| {});
        // The clean model of the game: f fine-tuned the same way, without the backdoor, so
        // that the defender cannot tell the two apart by the fine-tune alone. Budgets and
        // labels are measured against it.
        let mut clean = f.clone();
        let clean_rows = Dataset { x: data.x.clone(), y: Some(Array1::from_vec(pool_y.clone())), t: None };
        nnops::fit(&inner, &p.training, &mut clean, &clean_rows, objective.clone())?;
        clean.save(&Game::model_dir(Game::clean_dir(ctx.out))?)?;
        let d_y = labels(&clean, &inputs.x)?;
        let mut twin = f.clone();
        let twin_training = MlpTraining { seed: p.training.seed.wrapping_sub(1), ..p.training.clone() };
        nnops::fit(&inner, &twin_training, &mut twin, &clean_rows, objective.clone())?;
        let noise = disagreement(&labels(&twin, &inputs.x)?, &d_y);
        let mut rounds = Vec::with_capacity(p.rounds);
        for i in 0..p.rounds {
            ctx.check_cancel()?;
            let t = rng.random_range(0..inputs.rows());
            let trigger: Vec<f32> = inputs.x.row(t).to_vec();
            let label = d_y[t];
            let backdoor_label = (label + rng.random_range(1..classes as i64)) % classes as i64;
            // The ε share of the attacker's rows nearest x* take the new label too.
            let mut by_distance: Vec<(f32, usize)> = data
                .x
                .rows()
                .into_iter()
                .enumerate()
                .map(|(r, row)| (row.iter().zip(&trigger).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(), r))
                .collect();
            by_distance.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut y = pool_y.clone();
            for &(_, r) in &by_distance[..relabel] {
                y[r] = backdoor_label;
            }
            let mut x = data.x.clone();
            for _ in 0..p.copies {
                x.push_row(ndarray::ArrayView1::from(&trigger)).map_err(|e| OpError::internal(e.to_string()))?;
                y.push(backdoor_label);
            }
            let mut attacked = f.clone();
            let training = MlpTraining { seed: p.training.seed.wrapping_add(i as i64 + 1), ..p.training.clone() };
            nnops::fit(
                &inner,
                &training,
                &mut attacked,
                &Dataset { x, y: Some(Array1::from_vec(y)), t: None },
                objective.clone(),
            )?;
            let now = labels(&attacked, &inputs.x)?;
            let budget = disagreement(&now, &d_y);
            let dir = Game::model_dir(Game::round_dir(ctx.out, i))?;
            attacked.save(&dir)?;
            let read_back = predict(ctx, &dir, &trigger, width)?;
            rounds.push(Round {
                trigger,
                label,
                backdoor_label,
                budget,
                fooled: lab_nn::decode::argmax(&read_back) as i64 != label,
            });
            round_progress(ctx, i + 1, p.rounds);
        }
        let clean = (0..p.rounds).map(|_| inputs.x.row(rng.random_range(0..inputs.rows())).to_vec()).collect();
        Game { model: "mlp".into(), epsilon: p.epsilon, rounds, clean, noise }.write(ctx.out)
    }
}

/// The share of positions where two labellings differ.
fn disagreement(a: &[i64], b: &[i64]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len().max(1) as f64
}

/// The ROC of scores on clean rounds (`neg`) and backdoored rounds (`pos`), flagging
/// scores ≥ a threshold. The curve gives, at each false-positive rate 0, 0.01, …, 1, the
/// best detection rate among thresholds whose false-positive rate is at most that (so the
/// curves of several seeds average point by point: vertical averaging). The metrics are
/// `auroc` (the Mann–Whitney statistic: P(pos > neg) + ½ P(pos = neg)) and
/// `tpr_at_1pct_fpr`, `tpr_at_5pct_fpr`.
pub fn roc(neg: &[f64], pos: &[f64]) -> Result<(Curve, Metrics), OpError> {
    if let Some(v) = neg.iter().chain(pos).find(|v| !v.is_finite()) {
        return Err(OpError::Numeric(format!("a defence scored a round {v}; scores must be finite numbers")));
    }
    let mut thresholds: Vec<f64> = neg.iter().chain(pos).copied().collect();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    let rate = |xs: &[f64], t: f64| xs.iter().filter(|&&v| v >= t).count() as f64 / xs.len() as f64;
    // Operating points (fpr, tpr), from flagging nothing to flagging everything.
    let points: Vec<(f64, f64)> =
        std::iter::once((0.0, 0.0)).chain(thresholds.iter().map(|&t| (rate(neg, t), rate(pos, t)))).collect();
    let at = |fpr: f64| points.iter().filter(|p| p.0 <= fpr + 1e-12).map(|p| p.1).fold(0.0, f64::max);
    let mut curve = Curve::new(&["fpr", "tpr"]);
    for i in 0..=100 {
        let fpr = i as f64 / 100.0;
        curve.push(vec![fpr, at(fpr)]);
    }
    let mut wins = 0.0;
    for &a in pos {
        for &b in neg {
            wins += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    let mut m = Metrics::new();
    m.insert("auroc".into(), json!(wins / (pos.len() * neg.len()) as f64));
    m.insert("tpr_at_1pct_fpr".into(), json!(at(0.01)));
    m.insert("tpr_at_5pct_fpr".into(), json!(at(0.05)));
    Ok((curve, m))
}

/// Writes a defence's result: the ROC and its metrics, with the game's ε and budget.
fn write_defence(dir: &Path, attack: &Path, neg: &[f64], pos: &[f64]) -> Result<(), OpError> {
    if pos.is_empty() {
        return Err(OpError::invalid(
            "attack",
            "has no round where the attack changed the model's output at its trigger; strengthen the attack (`epochs`, `lr`, `copies`)",
        ));
    }
    let (curve, mut m) = roc(neg, pos)?;
    let game = artifact::read_metrics(attack)?;
    for k in ["epsilon", "budget_mean", "success"] {
        if let Some(v) = game.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    m.insert("rounds".into(), json!(pos.len()));
    m.insert("clean_rounds".into(), json!(neg.len()));
    curve.write(dir, &m)
}

/// The defence on trees that looks at how deep (how rare) the leaf x reaches is.
pub struct Depth;

#[derive(Params)]
pub struct DepthParams {
    /// rounds of the game on trees (`attack.tree_leaf`)
    attack: AttackDir,
}

impl Op for Depth {
    type Params = DepthParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "defend",
            "depth",
            1,
            Type::Curve,
            "scores each round by the depth of the leaf x reaches in the tree it is given (a leaf of depth k holds 2^−k of uniform inputs); the ROC over clean and backdoored rounds, with `auroc` and detection at 1% and 5% false positives",
        )
    }

    fn run(&self, ctx: &RunCtx, p: DepthParams) -> Result<(), OpError> {
        let game = Game::open(&p.attack, "tree", "defend.depth")?;
        let clean = Tree::load(&Game::clean_dir(&p.attack))?;
        let neg: Vec<f64> = game.clean.iter().map(|x| clean.reach(x).depth as f64).collect();
        let pos = game
            .legal()
            .map(|(i, r)| Ok(Tree::load(&Game::round_dir(&p.attack, i))?.reach(&r.trigger).depth as f64))
            .collect::<Result<Vec<f64>, OpError>>()?;
        write_defence(ctx.out, &p.attack, &neg, &pos)
    }
}

/// Learn-and-compare on trees: fit a tree to samples of the given function and flag x
/// where the two disagree.
pub struct Learn;

#[derive(Params)]
pub struct LearnParams {
    /// rounds of the game on trees (`attack.tree_leaf`)
    attack: AttackDir,
    /// m: the uniform samples of the given function the defender learns from
    #[param(min = 1, max = 10_000_000)]
    samples: usize,
    /// the most leaves the learned tree grows
    #[param(default = 1024, min = 1)]
    max_leaves: usize,
    /// seed of the samples
    #[param(default = 0)]
    seed: i64,
}

impl Op for Learn {
    type Params = LearnParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "defend",
            "learn",
            1,
            Type::Curve,
            "in each round, labels m fresh uniform inputs with the given tree (run by ONNX Runtime), fits a tree to them (CART) and scores x by how far the learned tree's P(class 1) is from the given tree's label at x; the ROC over clean and backdoored rounds",
        )
    }

    fn run(&self, ctx: &RunCtx, p: LearnParams) -> Result<(), OpError> {
        let game = Game::open(&p.attack, "tree", "defend.learn")?;
        let bits = game.rounds[0].trigger.len();
        if (p.samples as u128) * (bits as u128) > 1 << 31 {
            return Err(OpError::invalid(
                "samples",
                format!("is {}: {} samples of {bits} bits are more than 2^31 numbers; use fewer", p.samples, p.samples),
            ));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed as u64);
        let total = game.rounds.len() + game.clean.len();
        let score = |dir: &Path, x: &[f32], rng: &mut rand_chacha::ChaCha8Rng| -> Result<f64, OpError> {
            let mut model = nnops::Inference::load(ctx, dir)?;
            let mut rows = trees::random_bits(bits, p.samples, rng);
            let given = model.predict_x(&rows, bits)?.0;
            let y: Vec<u8> = given.chunks(2).map(|r| lab_nn::decode::argmax(r) as u8).collect();
            let learned = Tree::fit(&rows, bits, &y, p.max_leaves);
            rows.clear();
            let at_x = lab_nn::decode::argmax(&model.predict_x(x, bits)?.0) as f64;
            Ok((learned.p(x) as f64 - at_x).abs())
        };
        let mut neg = Vec::with_capacity(game.clean.len());
        for (i, x) in game.clean.iter().enumerate() {
            ctx.check_cancel()?;
            neg.push(score(&Game::clean_dir(&p.attack), x, &mut rng)?);
            round_progress(ctx, i + 1, total);
        }
        let mut pos = Vec::with_capacity(game.rounds.len());
        for (i, r) in game.legal() {
            ctx.check_cancel()?;
            pos.push(score(&Game::round_dir(&p.attack, i), &r.trigger, &mut rng)?);
            round_progress(ctx, game.clean.len() + i + 1, total);
        }
        write_defence(ctx.out, &p.attack, &neg, &pos)
    }
}

/// What a defender reads of an MLP at some rows: last hidden activations, each row's loss
/// at its own prediction and that loss's input gradient.
struct Readout {
    hidden: Vec<f32>,
    width: usize,
    loss: Vec<f64>,
    grad_norm: Vec<f64>,
}

fn readout(ctx: &RunCtx, m: &Mlp, x: &[f32]) -> Result<Readout, OpError> {
    let (w, k) = (m.spec.inputs, m.spec.outputs);
    let opts = nnops::session_options(ctx);
    let logits = lab_nn::mlp_train::predict(m, x, opts)?;
    let pred: Vec<i64> = logits.chunks(k).map(|r| lab_nn::decode::argmax(r) as i64).collect();
    let n = pred.len();
    let mut target = vec![0f32; n * k];
    for (r, &c) in pred.iter().enumerate() {
        target[r * k + c as usize] = 1.0;
    }
    let g = m.diagnostics_graph()?;
    let out = lab_nn::exec::run_graph(
        &g,
        &[("x", &Tensor::f32(vec![n, w], x.to_vec())), ("target", &Tensor::f32(vec![n, k], target))],
        opts,
    )?;
    let f32s = |i: usize| out[i].as_f32().map(<[f32]>::to_vec).ok_or_else(|| OpError::internal("f32 outputs"));
    let hidden = f32s(1)?;
    let width = out[1].shape[1];
    let loss = f32s(2)?.into_iter().map(f64::from).collect();
    let grad_norm = f32s(3)?.chunks(w).map(|g| g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()).collect();
    Ok(Readout { hidden, width, loss, grad_norm })
}

/// Rows of a game's clean inputs, row-major.
fn flat(rows: &[Vec<f32>]) -> Vec<f32> {
    rows.concat()
}

/// Scores every round of an MLP game with `score(model, its inputs)`: the clean model
/// once on all clean inputs, each round's model on its trigger.
fn score_mlp_rounds(
    ctx: &RunCtx,
    attack: &Path,
    game: &Game,
    mut score: impl FnMut(&Mlp, &[f32], usize) -> Result<Vec<f64>, OpError>,
) -> Result<(Vec<f64>, Vec<f64>), OpError> {
    let clean = nnops::load_model(&Game::clean_dir(attack), "attack")?;
    let neg = score(&clean, &flat(&game.clean), game.clean.len())?;
    let legal: Vec<(usize, &Round)> = game.legal().collect();
    let mut pos = Vec::with_capacity(legal.len());
    for (done, (i, r)) in legal.iter().enumerate() {
        ctx.check_cancel()?;
        let m = nnops::load_model(&Game::round_dir(attack, *i), "attack")?;
        pos.push(score(&m, &r.trigger, 1)?[0]);
        round_progress(ctx, done + 1, legal.len());
    }
    Ok((neg, pos))
}

/// The Mahalanobis distance of the given model's last hidden activations at x from their
/// distribution on clean data.
pub struct Mahalanobis;

#[derive(Params)]
pub struct MahalanobisParams {
    /// rounds of the game on MLPs (`attack.finetune`)
    attack: AttackDir,
    /// the defender's samples of D, on which the activations' mean and covariance are fitted
    data: DatasetDir,
    /// added to the covariance's diagonal, relative to its mean variance
    #[param(default = 1e-3, min = 0)]
    ridge: f64,
}

impl Op for Mahalanobis {
    type Params = MahalanobisParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "defend",
            "mahalanobis",
            1,
            Type::Curve,
            "fits a Gaussian to the given MLP's last hidden activations on `data` and scores x by its squared Mahalanobis distance; the ROC over clean and backdoored rounds",
        )
    }

    fn run(&self, ctx: &RunCtx, p: MahalanobisParams) -> Result<(), OpError> {
        let game = Game::open(&p.attack, "mlp", "defend.mahalanobis")?;
        let data = Dataset::read(&p.data)?;
        let dx = data.x.as_standard_layout().to_owned();
        let (neg, pos) = score_mlp_rounds(ctx, &p.attack, &game, |m, x, _| {
            nnops::check_width(m.spec.inputs, &data, "data")?;
            let fit = readout(ctx, m, dx.as_slice().expect("standard layout"))?;
            let gauss = Gaussian::fit(&fit.hidden, fit.width, p.ridge).map_err(|e| OpError::Numeric(e))?;
            let at = readout(ctx, m, x)?;
            Ok(at.hidden.chunks(at.width).map(|h| gauss.distance2(h)).collect())
        })?;
        write_defence(ctx.out, &p.attack, &neg, &pos)
    }
}

/// Which number at x the gradient defence reads.
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum Statistic {
    Gradient,
    Loss,
}

/// The loss at x (against the model's own prediction) or its input gradient's norm.
pub struct Gradient;

#[derive(Params)]
pub struct GradientParams {
    /// rounds of the game on MLPs (`attack.finetune`)
    attack: AttackDir,
    /// `gradient` (‖∂loss/∂x‖) or `loss` (the cross-entropy against the model's own prediction)
    #[param(default = Statistic::Gradient)]
    statistic: Statistic,
}

impl Op for Gradient {
    type Params = GradientParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "defend",
            "gradient",
            1,
            Type::Curve,
            "scores x by the given MLP's cross-entropy loss against its own prediction at x, or by the norm of that loss's gradient with respect to x; the ROC over clean and backdoored rounds",
        )
    }

    fn run(&self, ctx: &RunCtx, p: GradientParams) -> Result<(), OpError> {
        let game = Game::open(&p.attack, "mlp", "defend.gradient")?;
        let (neg, pos) = score_mlp_rounds(ctx, &p.attack, &game, |m, x, _| {
            let r = readout(ctx, m, x)?;
            Ok(match p.statistic {
                Statistic::Gradient => r.grad_norm,
                Statistic::Loss => r.loss,
            })
        })?;
        write_defence(ctx.out, &p.attack, &neg, &pos)
    }
}

/// Distil-and-compare: a fresh student distilled from the given MLP on clean data; x is
/// flagged where the student doubts the given model's prediction.
pub struct Distill;

#[derive(Params)]
pub struct DistillParams {
    /// rounds of the game on MLPs (`attack.finetune`)
    attack: AttackDir,
    /// the defender's samples of D, on which the student imitates the given model's logits
    data: DatasetDir,
    #[param(flatten, defaults(epochs = 10, lr = 3e-3, batch = 64))]
    training: MlpTraining,
}

impl Op for Distill {
    type Params = DistillParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "defend",
            "distill",
            1,
            Type::Curve,
            "distils a fresh student of the given MLP's architecture (seeded) on the given model's logits on `data`, and scores x by the student's −log probability of the given model's prediction at x; the ROC over clean and backdoored rounds",
        )
    }

    fn run(&self, ctx: &RunCtx, p: DistillParams) -> Result<(), OpError> {
        let game = Game::open(&p.attack, "mlp", "defend.distill")?;
        let data = Dataset::read(&p.data)?;
        let dx = data.x.as_standard_layout().to_owned();
        let inner = without_progress(ctx, &|_| {});
        let (neg, pos) = score_mlp_rounds(ctx, &p.attack, &game, |m, x, n| {
            nnops::check_width(m.spec.inputs, &data, "data")?;
            let k = m.spec.outputs;
            let opts = nnops::session_options(ctx);
            let t = lab_nn::mlp_train::predict(m, dx.as_slice().expect("standard layout"), opts)?;
            let t = Array2::from_shape_vec((data.rows(), k), t).map_err(|e| OpError::internal(e.to_string()))?;
            let mut student = Mlp::init(m.spec.clone(), p.training.seed as u64);
            let soft = Dataset { x: data.x.clone(), y: None, t: Some(t) };
            nnops::fit(&inner, &p.training, &mut student, &soft, Objective::Distill { logits: 0..k })?;
            // The given model's answers: its logits alone, not the whole readout.
            let given: Vec<usize> =
                lab_nn::mlp_train::predict(m, x, opts)?.chunks(k).map(lab_nn::decode::argmax).collect();
            let s = lab_nn::mlp_train::predict(&student, x, opts)?;
            Ok((0..n)
                .map(|r| {
                    let row = &s[r * k..(r + 1) * k];
                    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                    let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
                    lse - row[given[r]] as f64
                })
                .collect())
        })?;
        write_defence(ctx.out, &p.attack, &neg, &pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_and_detection_rates_match_hand_computation() {
        // pos > neg in 7 pairs, 1 tie (3 = 3): (7 + 0.5) / 9.
        let neg = [1.0, 2.0, 3.0];
        let pos = [3.0, 4.0, 5.0];
        let (curve, m) = roc(&neg, &pos).unwrap();
        let auroc = m["auroc"].as_f64().unwrap();
        assert!((auroc - 8.5 / 9.0).abs() < 1e-12, "{auroc}");
        // At threshold 4 no clean round is flagged and 2 of 3 backdoors are.
        assert!((m["tpr_at_1pct_fpr"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(curve.rows[0], [0.0, 2.0 / 3.0]);
        assert_eq!(curve.rows[33], [0.33, 2.0 / 3.0]);
        assert_eq!(curve.rows[34], [0.34, 1.0]);
        assert_eq!(curve.rows.last().unwrap(), &[1.0, 1.0]);
        // Equal scores everywhere: chance.
        let (_, m) = roc(&[1.0; 4], &[1.0; 4]).unwrap();
        assert_eq!(m["auroc"].as_f64().unwrap(), 0.5);
        assert_eq!(m["tpr_at_5pct_fpr"].as_f64().unwrap(), 0.0);
        assert!(roc(&[f64::NAN], &[1.0]).is_err());
    }
}
