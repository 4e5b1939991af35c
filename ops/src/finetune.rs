//! `finetune.*`: ops that train a model and return the trained copy.

use crate::artifact::Dataset;
use crate::generate::NEXT_TOKEN_FILE;
use crate::lmops::{self, LmTraining};
use crate::markov::{self, Checkpoint, Markov, SeqReward};
use crate::nnops::{self, MlpTraining};
use crate::params::{DatasetDir, ModelDir, Params};
use crate::text::TextData;
use crate::{Op, OpError, Progress, Registry, RunCtx, Signature, Type, Yield};
use lab_nn::lm::{LmObjective, Ranked};
use lab_nn::mlp_train::Objective;
use lab_nn::reward::{self, Pairs};
use std::ops::Range;
use std::path::Path;

pub fn register(r: &mut Registry) {
    r.add(Supervised);
    r.add(Distill);
    r.add(Pretrain);
    r.add(Sft);
    r.add(DistillLm);
    r.add(Reward);
    r.add(Rl);
}

/// Loads `model` and `data`, trains a copy of the model on the logits in `logits` with
/// the given objective, and saves it as the output.
fn train_copy(
    ctx: &RunCtx,
    model: &Path,
    data: &Path,
    logits: Range<usize>,
    training: &MlpTraining,
    objective: impl FnOnce(Range<usize>) -> Objective,
) -> Result<(), OpError> {
    let mut model = nnops::load_model(model, "model")?;
    let d = Dataset::read(data)?;
    nnops::check_width(model.spec.inputs, &d, "data")?;
    nnops::check_logits(model.spec.outputs, &logits, "logits")?;
    nnops::fit(ctx, training, &mut model, &d, objective(logits))?;
    model.save(ctx.out)?;
    Ok(())
}

/// Cross-entropy training on the dataset's labels, using only the logits in `logits`.
pub struct Supervised;

#[derive(Params)]
#[params(within(logits, model = "outputs"), agree(data = "width", model = "inputs"))]
pub struct SupervisedParams {
    /// the model to start from (it is copied, not changed)
    model: ModelDir,
    /// inputs `x` with labels `y`
    data: DatasetDir,
    /// the logits that form the softmax
    #[param(default = 0..10)]
    logits: Range<usize>,
    #[param(flatten)]
    training: MlpTraining,
}

impl Op for Supervised {
    type Params = SupervisedParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "finetune",
            "supervised",
            2,
            Type::Model,
            "cross-entropy training on labels, over the logits in `logits` only (the others get no signal)",
        )
        .needs(1, 2, 60)
        .yields(Yield::All("model"))
    }

    fn run(&self, ctx: &RunCtx, p: SupervisedParams) -> Result<(), OpError> {
        train_copy(ctx, &p.model, &p.data, p.logits, &p.training, |logits| Objective::CrossEntropy { logits })
    }
}

/// Distillation: KL(softmax(teacher) ‖ softmax(student)) over the logits in `logits`.
pub struct Distill;

#[derive(Params)]
#[params(within(logits, model = "outputs"), agree(data = "width", model = "inputs"))]
pub struct DistillParams {
    /// the student to start from (it is copied, not changed)
    model: ModelDir,
    /// inputs `x` with the teacher's logits `t` (from `generate.logits`)
    data: DatasetDir,
    /// the student logits matched to the columns of `t`
    logits: Range<usize>,
    #[param(flatten)]
    training: MlpTraining,
}

impl Op for Distill {
    type Params = DistillParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "finetune",
            "distill",
            2,
            Type::Model,
            "trains the student's logits in `logits` to match soft targets `t` (KL divergence of the softmaxes)",
        )
        .needs(1, 2, 60)
        .yields(Yield::All("model"))
    }

    fn run(&self, ctx: &RunCtx, p: DistillParams) -> Result<(), OpError> {
        train_copy(ctx, &p.model, &p.data, p.logits, &p.training, |logits| Objective::Distill { logits })
    }
}

/// Next-token training on documents.
pub struct Pretrain;

#[derive(Params)]
pub struct PretrainParams {
    /// the language model to start from (it is copied, not changed)
    model: ModelDir,
    /// records with `text`
    corpus: DatasetDir,
    /// tokens per training window (documents are cut into windows of this length); 0: the model's context
    #[param(default = 0)]
    window: usize,
    /// place each window at a random position of the context (fixed per window), so that short windows train every position of a long context: cheap training for long prompts whose answers depend on nearby text
    #[param(default = false)]
    random_positions: bool,
    #[param(flatten, defaults(steps = 800, lr = 3e-3, batch = 64))]
    training: LmTraining,
}

impl Op for Pretrain {
    type Params = PretrainParams;

    fn signature(&self) -> Signature {
        Signature::new("finetune", "pretrain", 2, Type::Model, "next-token training of a language model on the `text` of each record (documents longer than the context are cut into windows); AdamW with warmup + cosine, gradient clipping, optional validation and early stopping")
            .yields(Yield::All("model"))
    }

    fn run(&self, ctx: &RunCtx, p: PretrainParams) -> Result<(), OpError> {
        let model = lmops::load_gpt(&p.model, "model")?;
        let data = TextData::read(&p.corpus, "corpus")?;
        let context = model.spec.context;
        let window = match p.window {
            0 => context,
            w if w > context => {
                return Err(OpError::invalid(
                    "window",
                    format!("is {w}; it must fit the model's context of {context}"),
                ));
            }
            w => w,
        };
        let random = p.random_positions.then_some(p.training.seed as u64);
        let rows = lmops::windows(&model, &data, "corpus", window, random)?;
        lmops::train_and_save(ctx, &p.training, model, LmObjective::NextToken, rows, Vec::new())
    }
}

/// Supervised fine-tuning on prompt/completion pairs.
pub struct Sft;

#[derive(Params)]
pub struct SftParams {
    /// the language model to start from (it is copied, not changed)
    model: ModelDir,
    /// records with `prompt` and `completion`
    data: DatasetDir,
    #[param(flatten, defaults(steps = 100, lr = 1e-3, batch = 32))]
    training: LmTraining,
}

impl Op for Sft {
    type Params = SftParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "finetune",
            "sft",
            1,
            Type::Model,
            "supervised fine-tuning: next-token loss on each record's `completion` tokens only, after its `prompt`",
        )
        .yields(Yield::All("model"))
    }

    fn run(&self, ctx: &RunCtx, p: SftParams) -> Result<(), OpError> {
        let model = lmops::load_gpt(&p.model, "model")?;
        let data = TextData::read(&p.data, "data")?;
        let rows = lmops::rows(&model, &data, "data", true)?;
        lmops::train_and_save(ctx, &p.training, model, LmObjective::NextToken, rows, Vec::new())
    }
}

/// Distillation to a teacher's next-token distributions.
pub struct DistillLm;

#[derive(Params)]
pub struct DistillLmParams {
    /// the student to start from (it is copied, not changed)
    model: ModelDir,
    /// records with the teacher's distributions, from `generate.next_token`
    data: DatasetDir,
    #[param(flatten, defaults(steps = 300, lr = 1e-3, batch = 64))]
    training: LmTraining,
}

impl Op for DistillLm {
    type Params = DistillLmParams;

    fn signature(&self) -> Signature {
        Signature::new("finetune", "distill_lm", 1, Type::Model, "distillation of a language model: KL(teacher ‖ student) of the next-token distributions at each completion position, over the tokens `generate.next_token` kept (renormalised among them)")
            .yields(Yield::All("model"))
    }

    fn run(&self, ctx: &RunCtx, p: DistillLmParams) -> Result<(), OpError> {
        let model = lmops::load_gpt(&p.model, "model")?;
        let dir: &Path = &p.data;
        let data = TextData::read(dir, "data")?;
        let path = dir.join(NEXT_TOKEN_FILE);
        if !path.is_file() {
            return Err(OpError::invalid(
                "data",
                "holds no next-token distributions; make it with `generate.next_token(teacher, data, tokens: …)`",
            ));
        }
        let st = lab_nn::weights::load(&path)?;
        let get = |n: &str| {
            st.iter()
                .find(|(k, _)| k == n)
                .map(|(_, t)| t)
                .ok_or_else(|| OpError::Data(format!("{}: no `{n}`", path.display())))
        };
        let logp = get("logp")?
            .as_f32()
            .ok_or_else(|| OpError::Data(format!("{}: `logp` is not f32", path.display())))?
            .to_vec();
        let offsets = get("offsets")?.to_i64();
        let tokens = get("tokens")?.to_i64();
        let k = tokens.len();
        let mut rows = lmops::rows(&model, &data, "data", true)?;
        if offsets.len() != data.records.len() + 1 {
            return Err(OpError::Data(format!(
                "{}: {} offsets for {} records",
                path.display(),
                offsets.len(),
                data.records.len()
            )));
        }
        // Rows with an empty completion were skipped; match the rest by completion length.
        let mut r = 0;
        for i in 0..data.records.len() {
            let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
            if a == b {
                continue;
            }
            let row =
                rows.get_mut(r).ok_or_else(|| OpError::Data("the distributions do not match the records".into()))?;
            if row.ids.len() - row.from != b - a {
                return Err(OpError::Data(format!(
                    "record {}: the distributions cover {} positions but the completion has {} tokens; were they made with another tokenizer?",
                    i + 1,
                    b - a,
                    row.ids.len() - row.from
                )));
            }
            row.teacher = logp[a * k..b * k].to_vec();
            r += 1;
        }
        // The teacher's token ids, as the student's: the same tokenizer, or the same text.
        let teacher = lab_nn::tokenizer::Tokenizer::load(dir)?;
        let tokens: Vec<i64> = if teacher.to_json() == model.tokenizer.to_json() {
            tokens
        } else {
            tokens
                .iter()
                .map(|&t| {
                    let text = teacher.token_text(t)?;
                    match model.tokenizer.encode(&text)?.as_slice() {
                        [id] => Ok(*id),
                        _ => Err(lab_nn::NnError::BadModel(format!(
                            "the teacher's token {text:?} is not one token of the student's tokenizer; distil between models whose tokenizers share these tokens"
                        ))),
                    }
                })
                .collect::<Result<_, _>>()
                .map_err(|e| OpError::invalid("data", e.to_string()))?
        };
        let full = tokens.len() == model.spec.vocab && tokens.iter().enumerate().all(|(i, &t)| t == i as i64);
        let objective = LmObjective::Distill { tokens: if full { Vec::new() } else { tokens } };
        lmops::train_and_save(ctx, &p.training, model, objective, rows, Vec::new())
    }
}

/// Bradley–Terry reward modelling.
pub struct Reward;

#[derive(Params)]
pub struct RewardParams {
    /// a language model with a scalar head (`value_head: true` or `model.value_head`), or an MLP with `outputs: 1`
    model: ModelDir,
    /// for a language model, records with `prompt` and either `chosen` and `rejected`, or `completions` (a list, best first); for an MLP, rows of two feature vectors, the preferred first
    data: DatasetDir,
    #[param(flatten, defaults(steps = 200, lr = 1e-3, batch = 16))]
    training: LmTraining,
}

impl Op for Reward {
    type Params = RewardParams;

    fn signature(&self) -> Signature {
        Signature::new("finetune", "reward", 1, Type::Model, "reward modelling with the Bradley–Terry loss −log σ(r(better) − r(worse)). For a language model, r is the scalar head at a sequence's last token, over each record's `chosen`/`rejected` pair or over all pairs of its `completions` (best first); texts follow the `prompt`. For an MLP with one output, r is its output on a feature row, over rows of comparisons (the preferred row's features, then the other's, as `generate.comparisons` makes them); with `val_fraction` it writes the held-out accuracy to `train_log.json`")
            .yields(Yield::All("model"))
    }

    fn run(&self, ctx: &RunCtx, p: RewardParams) -> Result<(), OpError> {
        if nnops::model_arch(&p.model)? == "mlp" {
            return reward_mlp(ctx, &p);
        }
        if p.training.val_fraction > 0.0 {
            return Err(OpError::invalid(
                "val_fraction",
                "is not supported by `finetune.reward` on language models yet; hold comparisons out with `filter.exclude` and score them with `score.rewards`",
            ));
        }
        let model = lmops::load_gpt(&p.model, "model")?;
        let data = TextData::read(&p.data, "data")?;
        let mut ranked = Vec::new();
        for (i, r) in data.records.iter().enumerate() {
            let text = |v, field| string_field(v, field, i);
            let prompt = match r.get("prompt") {
                Some(p) => text(p, "prompt")?,
                None => "",
            };
            let texts: Vec<&str> = match (r.get("chosen"), r.get("rejected"), r.get("completions")) {
                (Some(c), Some(j), _) => vec![text(c, "chosen")?, text(j, "rejected")?],
                (_, _, Some(serde_json::Value::Array(cs))) => {
                    cs.iter().map(|c| text(c, "completions")).collect::<Result<_, _>>()?
                }
                _ => {
                    return Err(OpError::invalid(
                        "data",
                        format!("record {} has neither `chosen` and `rejected` nor a `completions` list", i + 1),
                    ));
                }
            };
            let seqs = texts
                .iter()
                .map(|t| lmops::encode(&model.tokenizer, &format!("{prompt}{t}"), "data"))
                .collect::<Result<_, _>>()?;
            ranked.push(Ranked { seqs });
        }
        lmops::train_and_save(ctx, &p.training, model, LmObjective::Reward, Vec::new(), ranked)
    }
}

/// A record's string field; anything else is an error naming the record (1-based).
fn string_field<'a>(v: &'a serde_json::Value, field: &str, i: usize) -> Result<&'a str, OpError> {
    v.as_str().ok_or_else(|| OpError::invalid("data", format!("record {}: `{field}` must be a string", i + 1)))
}

/// Bradley–Terry training of an MLP reward model on comparison rows.
fn reward_mlp(ctx: &RunCtx, p: &RewardParams) -> Result<(), OpError> {
    let mut model = nnops::load_model(&p.model, "model")?;
    let d = Dataset::read(&p.data)?;
    let f = model.spec.inputs;
    if model.spec.outputs != 1 {
        return Err(OpError::invalid(
            "model",
            format!("has {} outputs; a reward model has one (`outputs: 1`)", model.spec.outputs),
        ));
    }
    if d.x.ncols() != 2 * f {
        return Err(OpError::invalid(
            "data",
            format!(
                "has rows of width {}, but comparisons for a model over {f} features have width {} (the preferred row's features, then the other's)",
                d.x.ncols(),
                2 * f
            ),
        ));
    }
    let (cfg, trainable, val_fraction) = p.training.config(ctx);
    if trainable != lab_nn::gpt::Trainable::All {
        return Err(OpError::invalid("train", "must be `all` for an MLP reward model"));
    }
    let (train_idx, val_idx) = lmops::split_val((0..d.rows()).collect(), val_fraction, cfg.seed);
    let (tb, tw) = d.comparison_halves(train_idx.iter().copied());
    let (vb, vw) = d.comparison_halves(val_idx.iter().copied());
    let pairs = Pairs { better: &tb, worse: &tw, width: f };
    let val = Pairs { better: &vb, worse: &vw, width: f };
    let mut on_step = lmops::progress(ctx, 20);
    let val = (!val_idx.is_empty()).then_some(&val);
    let report = reward::train_mlp(&mut model, &pairs, val, &cfg, &mut on_step)
        .map_err(|e| lmops::training_error(ctx, e, cfg.lr))?;
    model.save(ctx.out)?;
    lmops::write_log(ctx.out, &report)?;
    if !val_idx.is_empty() {
        // How often the trained model ranks a held-out pair as the labels do.
        let opts = nnops::session_options(ctx);
        let rb = lab_nn::mlp_train::predict(&model, &vb, opts)?;
        let rw = lab_nn::mlp_train::predict(&model, &vw, opts)?;
        let acc = rb.iter().zip(&rw).filter(|(a, b)| a > b).count() as f64 / rb.len() as f64;
        let mut m = crate::artifact::Metrics::new();
        m.insert("val_accuracy".into(), serde_json::json!(acc));
        m.insert("val_pairs".into(), serde_json::json!(rb.len()));
        m.insert("train_pairs".into(), serde_json::json!(train_idx.len()));
        m.insert("steps".into(), serde_json::json!(report.steps));
        crate::artifact::write_metrics(ctx.out, &m)?;
    }
    Ok(())
}

/// Policy-gradient RL of a tabular policy against a reward model.
pub struct Rl;

#[derive(Params)]
#[params(less(min_kl, max_kl))]
pub struct RlParams {
    /// the starting policy (`model.markov`); it is copied, not changed
    policy: ModelDir,
    /// the reward model optimised (e.g. a proxy from `finetune.reward`)
    reward: ModelDir,
    /// the most optimizer steps
    #[param(default = 2000, min = 1)]
    steps: usize,
    /// sequences sampled per step
    #[param(default = 512, min = 2)]
    batch: usize,
    /// Adam learning rate
    #[param(default = 0.02, positive)]
    lr: f64,
    /// stop once KL(π ‖ π₀) reaches this (nats)
    #[param(default = 16.0)]
    max_kl: f64,
    /// the first checkpoint's KL
    #[param(default = 0.05, positive)]
    min_kl: f64,
    /// checkpoints, log-spaced in KL from `min_kl` to `max_kl` (π₀ is kept too)
    #[param(default = 16, min = 1)]
    checkpoints: usize,
    /// sampling seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Rl {
    type Params = RlParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "finetune",
            "rl",
            1,
            Type::Model,
            "REINFORCE on a tabular policy (`model.markov`) against a reward model over its one-hot features: the policy's logits plus a learned bias per (position, token), advantages whitened within each batch, Adam, no KL penalty. The exact KL to the starting policy is tracked every step; the policy is saved as a checkpoint whenever the KL passes the next of `checkpoints` log-spaced levels between `min_kl` and `max_kl`, and training stops at `max_kl` (or after `steps`). `estimate.rewards` scores the checkpoints; `rl_log.json` has the KL and mean reward of every step",
        )
        .needs(1, 1, 60)
        .yields(Yield::All("policy"))
    }

    fn run(&self, ctx: &RunCtx, p: RlParams) -> Result<(), OpError> {
        let mut policy = Markov::from_arg(&p.policy, "policy")?;
        let mut reward = SeqReward::load(ctx, &p.reward, "reward", &policy)?;
        let (steps, batch, k) = (p.steps, p.batch, p.checkpoints);
        let lr = p.lr;
        let (min_kl, max_kl) = (p.min_kl, p.max_kl);
        let levels: Vec<f64> = (0..k)
            .map(|i| if k == 1 { max_kl } else { min_kl * (max_kl / min_kl).powf(i as f64 / (k - 1) as f64) })
            .collect();
        let base = policy.table(&policy.bias);
        let mut bias: Vec<f64> = policy.bias.iter().map(|&b| b as f64).collect();
        let to_f32 = |b: &[f64]| b.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        policy.checkpoints = vec![Checkpoint { step: 0, kl: 0.0, bias: policy.bias.clone() }];
        let (mut m, mut v) = (vec![0f64; bias.len()], vec![0f64; bias.len()]);
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let mut rng = markov::rng(p.seed, 3);
        let mut next = 0;
        let mut log = Vec::new();
        let mut kl = 0.0;
        for step in 1..=steps {
            ctx.check_cancel()?;
            let table = policy.table(&to_f32(&bias));
            let seqs = table.sample(batch, &mut rng);
            let r = reward.score(&seqs)?;
            let (mean, sd) = markov::mean_std(&r);
            let adv: Vec<f64> = r.iter().map(|x| (x - mean) / (sd + 1e-8) / batch as f64).collect();
            let g = table.bias_gradient(&seqs, &adv);
            let t = step as i32;
            for i in 0..bias.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let (mh, vh) = (m[i] / (1.0 - b1.powi(t)), v[i] / (1.0 - b2.powi(t)));
                // Ascent: the objective is the expected reward.
                bias[i] += lr * mh / (vh.sqrt() + eps);
            }
            let b32 = to_f32(&bias);
            kl = policy.table(&b32).kl(&base);
            if !kl.is_finite() {
                return Err(OpError::Numeric(format!(
                    "the policy's KL became {kl} at step {step}; lower `lr` (now {lr})"
                )));
            }
            log.push(serde_json::json!({"step": step, "kl": kl, "reward": mean}));
            while next < levels.len() && kl >= levels[next] {
                policy.checkpoints.push(Checkpoint { step, kl, bias: b32.clone() });
                next += 1;
            }
            if step % 10 == 0 || step == steps {
                (ctx.progress)(Progress {
                    done: step as u64,
                    total: steps as u64,
                    message: format!("KL {kl:.2} of {max_kl}, reward {mean:.3}"),
                });
            }
            if kl >= max_kl {
                break;
            }
        }
        // A run that stops short of `max_kl` keeps only the levels it reached, so that the
        // checkpoints of several seeds line up level by level.
        policy.bias = to_f32(&bias);
        policy.save(ctx.out)?;
        let doc = serde_json::json!({"reached_max_kl": kl >= max_kl, "steps": log});
        std::fs::write(ctx.out.join("rl_log.json"), serde_json::to_string(&doc).expect("json"))?;
        Ok(())
    }
}
