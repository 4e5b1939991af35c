//! `generate.*`: ops that make data: noise inputs, a model's outputs, sampled text.

use crate::artifact::Dataset;
use crate::lmops;
use crate::markov::{self, Markov, SeqReward};
use crate::params::{Choice, DatasetDir, ModelDir, Params};
use crate::text::{self, TextData};
use crate::{Check, Op, OpError, Progress, Registry, RunCtx, Signature, Type, Value, Yield};
use lab_nn::decode::{self, Sampling};
use ndarray::Array2;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value as Json;

pub fn register(r: &mut Registry) {
    r.add(Noise);
    r.add(crate::model::Logits);
    r.add(Corpus);
    r.add(Text);
    r.add(NextToken);
    r.add(Comparisons);
    r.add(crate::trees::Bits);
    r.add(crate::trees::Labels);
}

/// `count` rows of independent uniform noise in [`low`, `high`); `shape` is the width of
/// a row (its product, for several dimensions).
pub struct Noise;

#[derive(Params)]
#[params(less(low, high), rules = noise_rules)]
pub struct NoiseParams {
    /// shape of one row, e.g. `[64]`
    #[param(non_empty, min = 1)]
    shape: Vec<usize>,
    /// number of rows
    #[param(min = 1)]
    count: usize,
    /// lower bound
    #[param(default = -1.0)]
    low: f64,
    /// upper bound
    #[param(default = 1.0)]
    high: f64,
    /// random seed
    #[param(default = 0)]
    seed: i64,
}

/// At most 2^31 numbers in all, and bounds that stay apart as 32-bit floats.
fn noise_rules() -> Vec<Check> {
    vec![
        Check::Rule {
            params: &["count", "shape"],
            doc: "`count` rows of `shape` hold at most 2^31 numbers",
            test: |v| {
                let count = v[0].as_i64().filter(|&c| c >= 1)? as u128;
                let Value::List(dims) = v[1] else { return None };
                let mut n = count;
                for d in dims {
                    n = n.saturating_mul(d.as_i64().filter(|&d| d >= 1)? as u128);
                }
                (n > 1 << 31).then(|| "`count` asks for more than 2^31 numbers; use fewer rows".to_string())
            },
        },
        Check::Rule {
            params: &["high", "low"],
            doc: "`low` < `high` as 32-bit floats",
            test: |v| {
                let (high, low) = (v[0].as_f64()?, v[1].as_f64()?);
                // Bounds out of order break `low` < `high`; these are in order, but equal as
                // the 32-bit floats the noise is drawn in.
                (low < high && (low as f32) >= (high as f32))
                    .then(|| format!("`high` must be greater than low ({}) as a 32-bit float", low as f32))
            },
        },
    ]
}

impl Op for Noise {
    type Params = NoiseParams;

    fn signature(&self) -> Signature {
        Signature::new("generate", "noise", 1, Type::Dataset, "rows of i.i.d. uniform noise in [low, high)")
            .yields(Yield::Product("width", "shape"))
    }

    fn run(&self, ctx: &RunCtx, p: NoiseParams) -> Result<(), OpError> {
        let width = p.shape.iter().product::<usize>();
        let count = p.count;
        let (low, high) = (p.low as f32, p.high as f32);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed as u64);
        let x = Array2::from_shape_simple_fn((count, width), || rng.random_range(low..high));
        Dataset { x, y: None, t: None }.write(ctx.out)
    }
}

/// Draws one (prompt, completion) pair.
type Template = dyn FnMut(&mut rand_chacha::ChaCha8Rng) -> (String, String);

/// The templates of [`Corpus`].
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum CorpusTemplate {
    Numbers,
    Animals,
    Counting,
    Arithmetic,
}

/// How `arithmetic` problems are written.
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum ArithmeticForm {
    Plain,
    Bigbench,
    BigbenchSymbols,
}

/// Seeded synthetic text from a template: each record has `text` and the same text split
/// into `prompt` and `completion`.
pub struct Corpus;

#[derive(Params)]
#[params(rules = corpus_rules)]
pub struct CorpusParams {
    /// `numbers`, `animals`, `counting` or `arithmetic`
    template: CorpusTemplate,
    /// documents
    #[param(min = 1, max = 10_000_000)]
    count: usize,
    /// random seed
    #[param(default = 0)]
    seed: i64,
    /// `numbers`, `counting`: numbers per document
    #[param(default = 9)]
    length: i64,
    /// `numbers`, `counting`: numbers in the prompt
    #[param(default = 3)]
    shown: i64,
    /// `animals`: the answers, drawn uniformly
    #[param(default = vec![
        "owl".to_string(),
        "cat".to_string(),
        "dog".to_string(),
        "fox".to_string(),
        "bat".to_string(),
        "elk".to_string(),
        "ant".to_string(),
        "yak".to_string(),
    ])]
    choices: Vec<String>,
    /// `arithmetic`: digits of each operand
    #[param(default = 1)]
    digits: i64,
    /// `arithmetic`: `plus`, `minus`, `times`
    #[param(default = vec!["plus".to_string()])]
    operations: Vec<String>,
    /// `arithmetic`: `plain` (`Q: What is 3 plus 4?\nA: 7\n`), `bigbench` (BIG-bench's default few-shot form, as its `arithmetic` tasks ask: `\nQ: What is 3 plus 4?\nA: 7`, problems joined by `\n`) or `bigbench_symbols` (as its `simple_arithmetic` tasks ask: `\nQ: 3 + 4 = 7`)
    #[param(default = ArithmeticForm::Plain)]
    form: ArithmeticForm,
    /// `arithmetic`: draw each operand's number of digits uniformly from 1 to `digits` first (else operands are uniform below 10^digits)
    #[param(default = false)]
    vary_digits: bool,
    /// `arithmetic`: problems per document; the prompt is all but the last answer
    #[param(default = 1, min = 1)]
    per_document: usize,
    /// `arithmetic` in a BIG-bench form: the share of problems that list answer choices as the benchmark does (`bigbench`: the answer, four numeric distractors, `banana` and `house`; `bigbench_symbols`: the answer and three small numbers after ` option: `; in the official order)
    #[param(default = 0.0, min = 0, max = 1)]
    choice_rate: f64,
}

/// The rules on the parameters a template reads (the others it ignores).
fn corpus_rules() -> Vec<Check> {
    vec![
        Check::Rule {
            params: &["length", "template"],
            doc: "with `numbers` or `counting`: 2 ≤ `length` ≤ 1000",
            test: |v| match (v[0].as_i64(), v[1].as_str()) {
                (Some(length), Some("numbers" | "counting")) if length < 2 => {
                    Some(format!("`length` must be at least 2, got {length}"))
                }
                (Some(length), Some("numbers" | "counting")) if length > 1000 => {
                    Some(format!("`length` is {length}; documents hold at most 1,000 numbers"))
                }
                _ => None,
            },
        },
        Check::Rule {
            params: &["shown", "length", "template"],
            doc: "with `numbers` or `counting`: 1 ≤ `shown` < `length`",
            test: |v| match (v[0].as_i64(), v[1].as_i64(), v[2].as_str()) {
                (Some(shown), _, Some("numbers" | "counting")) if shown < 1 => {
                    Some(format!("`shown` must be at least 1, got {shown}"))
                }
                (Some(shown), Some(length), Some("numbers" | "counting")) if length >= 2 && shown >= length => {
                    Some(format!("`shown` is {shown}; it must be below `length` ({length}) to leave a completion"))
                }
                _ => None,
            },
        },
        Check::Rule {
            params: &["choices", "template"],
            doc: "with `animals`: `choices` is not empty",
            test: |v| match (v[0], v[1].as_str()) {
                (Value::List(choices), Some("animals")) if choices.is_empty() => {
                    Some("`choices` is empty; list the answers".to_string())
                }
                _ => None,
            },
        },
        Check::Rule {
            params: &["digits", "template"],
            doc: "with `arithmetic`: 1 ≤ `digits` ≤ 9",
            test: |v| match (v[0].as_i64(), v[1].as_str()) {
                (Some(digits), Some("arithmetic")) if digits < 1 => {
                    Some(format!("`digits` must be at least 1, got {digits}"))
                }
                (Some(digits), Some("arithmetic")) if digits > 9 => Some("`digits` must be at most 9".to_string()),
                _ => None,
            },
        },
        Check::Rule {
            params: &["operations", "template"],
            doc: "with `arithmetic`: `operations` is a non-empty list of `plus`, `minus` and `times`",
            test: |v| match (v[0], v[1].as_str()) {
                (Value::List(ops), Some("arithmetic")) => {
                    if let Some(bad) =
                        ops.iter().filter_map(Value::as_str).find(|o| !matches!(*o, "plus" | "minus" | "times"))
                    {
                        Some(format!("`operations` has `{bad}`; use `plus`, `minus` or `times`"))
                    } else if ops.is_empty() {
                        Some("`operations` is empty".to_string())
                    } else {
                        None
                    }
                }
                _ => None,
            },
        },
        Check::Rule {
            params: &["choice_rate", "template", "form"],
            doc: "with `arithmetic`: `choice_rate` > 0 needs a BIG-bench `form`",
            test: |v| match (v[0].as_f64(), v[1].as_str(), v[2].as_str()) {
                (Some(rate), Some("arithmetic"), Some("plain")) if rate > 0.0 => {
                    Some("`choice_rate` needs `form: \"bigbench\"` or `\"bigbench_symbols\"`".to_string())
                }
                _ => None,
            },
        },
    ]
}

impl Op for Corpus {
    type Params = CorpusParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "corpus",
            1,
            Type::Dataset,
            "seeded synthetic documents from a template, as records with `text`, `prompt` and `completion`. `numbers`: `^182, 033, 904, …` lists of `length` 3-digit numbers, the first `shown` in the prompt; `animals`: `^Q: animal?\\nA: owl\\n` with the answer uniform over `choices`; `counting`: `^17 18 19 …`, `length` numbers counting up from a random start below 100, the first `shown` in the prompt; `arithmetic`: `Q: What is 3 plus 4?\\nA: 7\\n` with `digits`-digit operands and `operations` among `plus`, `minus`, `times`",
        )
    }

    fn run(&self, ctx: &RunCtx, p: CorpusParams) -> Result<(), OpError> {
        let count = p.count;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed as u64);
        let template = p.template;
        let mut make: Box<Template> = match template {
            CorpusTemplate::Numbers | CorpusTemplate::Counting => {
                // 2 ≤ length ≤ 1000 and 1 ≤ shown < length: the rules of `corpus_rules`.
                let length = p.length as usize;
                let shown = p.shown as usize;
                let counting = template == CorpusTemplate::Counting;
                Box::new(move |rng| {
                    let nums: Vec<String> = if counting {
                        let start = rng.random_range(0..100u32);
                        (start..start + length as u32).map(|n| n.to_string()).collect()
                    } else {
                        (0..length).map(|_| format!("{:03}", rng.random_range(0..1000u32))).collect()
                    };
                    let sep = if counting { " " } else { ", " };
                    (format!("^{}{sep}", nums[..shown].join(sep)), format!("{}\n", nums[shown..].join(sep)))
                })
            }
            CorpusTemplate::Animals => {
                let choices = p.choices;
                Box::new(move |rng| {
                    ("^Q: animal?\nA: ".to_string(), format!("{}\n", choices.choose(rng).expect("non-empty")))
                })
            }
            CorpusTemplate::Arithmetic => {
                // 1 ≤ digits ≤ 9, and `operations` non-empty among `plus`, `minus`, `times`.
                let digits = p.digits as usize;
                let ops = p.operations;
                let hi = 10i64.pow(digits as u32);
                let form = p.form;
                let bigbench = form != ArithmeticForm::Plain;
                let per_doc = p.per_document;
                let choice_rate = p.choice_rate;
                let vary = p.vary_digits;
                // An operand: uniform below 10^digits, or with `vary_digits` of a uniform
                // number of digits (1 to `digits`) first.
                let operand = move |rng: &mut rand_chacha::ChaCha8Rng| {
                    if vary {
                        let d = rng.random_range(1..=digits as u32);
                        let lo = if d == 1 { 0 } else { 10i64.pow(d - 1) };
                        rng.random_range(lo..10i64.pow(d))
                    } else {
                        rng.random_range(0..hi)
                    }
                };
                Box::new(move |rng| {
                    let mut doc = String::new();
                    let mut last = String::new();
                    for i in 0..per_doc {
                        let (a, b) = (operand(rng), operand(rng));
                        let op = ops.choose(rng).expect("non-empty");
                        let r = match op.as_str() {
                            "plus" => a + b,
                            "minus" => a - b,
                            _ => a * b,
                        };
                        doc.push_str(&last);
                        if bigbench {
                            let sep = if i == 0 { "" } else { "\n" };
                            let listed = choice_rate > 0.0 && rng.random::<f64>() < choice_rate;
                            let q = if form == ArithmeticForm::Bigbench {
                                let choices = if listed { distractors(r, hi, rng) } else { Vec::new() };
                                lab_bigbench::task::default_input(&format!("What is {a} {op} {b}?"), &choices)
                            } else {
                                let sym = match op.as_str() {
                                    "plus" => "+",
                                    "minus" => "-",
                                    _ => "*",
                                };
                                let input = format!("{a} {sym} {b} =");
                                if listed {
                                    // As `simple_arithmetic_json_multiple_choice` asks.
                                    let choices = small_distractors(r, rng);
                                    format!(
                                        "\nQ: {}\nA: ",
                                        lab_bigbench::task::with_choices(&input, &choices, " option: ", 42)
                                    )
                                } else {
                                    // As `simple_arithmetic_json` asks (output prefix " ").
                                    format!("\nQ: {input} ")
                                }
                            };
                            doc.push_str(&format!("{sep}{q}"));
                            last = r.to_string();
                        } else {
                            doc.push_str(&format!("Q: What is {a} {op} {b}?\nA: "));
                            last = format!("{r}\n");
                        }
                    }
                    (doc, last)
                })
            }
        };
        let records = (0..count)
            .map(|_| {
                let (p, c) = make(&mut rng);
                text::record([("text", format!("{p}{c}")), ("prompt", p), ("completion", c)])
            })
            .collect();
        TextData { records }.write(ctx.out)
    }
}

/// The choices of a BIG-bench arithmetic problem: the answer, two distractors of the
/// operands' size, a one-digit one and a four-digit one, `banana` and `house` (repeats
/// dropped, as the task files' dictionaries drop them).
fn distractors(answer: i64, hi: i64, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<String> {
    let mut c = vec![answer.to_string()];
    for d in [rng.random_range(0..hi), rng.random_range(0..hi), rng.random_range(0..10), rng.random_range(1000..10_000)]
    {
        let d = d.to_string();
        if !c.contains(&d) {
            c.push(d);
        }
    }
    c.extend(["banana".to_string(), "house".to_string()]);
    c
}

/// Four choices of a multiple-choice sum: the answer and three other small numbers.
fn small_distractors(answer: i64, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<String> {
    let mut c = vec![answer.to_string()];
    while c.len() < 4 {
        let d = rng.random_range(0..20).to_string();
        if !c.contains(&d) {
            c.push(d);
        }
    }
    c
}

/// Sampled completions of the `prompt` of every record, with a KV cache.
pub struct Text;

#[derive(Params)]
#[params(rules = text_rules)]
pub struct TextParams {
    /// the language model
    model: ModelDir,
    /// records with a `prompt`
    prompts: DatasetDir,
    /// sampling temperature; 0 (or below 0.0001) is greedy
    #[param(default = 1.0, min = 0)]
    temperature: f64,
    /// sample among the k most likely tokens (0: all)
    #[param(default = 0)]
    top_k: usize,
    /// sample among the most likely tokens whose probability reaches p (1: all)
    #[param(default = 1.0, gt = 0, max = 1)]
    top_p: f64,
    /// most tokens per completion
    #[param(default = 32, min = 1)]
    max_new_tokens: usize,
    /// a completion ends at the first of these
    #[param(default = vec!["\n".to_string()])]
    stop: Vec<String>,
    /// keep the stop string at the end of the completion (as documents end, e.g. with their newline)
    #[param(default = false)]
    include_stop: bool,
    /// prompts decoded together
    #[param(default = 64, min = 1)]
    batch: usize,
    /// sampling seed; each record draws from its own stream, so batching does not change the text
    #[param(default = 0)]
    seed: i64,
}

/// No stop string is empty.
fn text_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["stop"],
        doc: "no string of `stop` is empty",
        test: |v| match v[0] {
            Value::List(stop) if stop.iter().any(|s| s.as_str() == Some("")) => {
                Some("`stop` has an empty string, which would end every completion at once".to_string())
            }
            _ => None,
        },
    }]
}

impl Op for Text {
    type Params = TextParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "text",
            2,
            Type::Dataset,
            "a completion of the `prompt` of each record, sampled with a KV cache; records keep their fields, the record's old `completion` becomes `target`, and `completion` and `finish` (`stop` or `length`) are added",
        )
    }

    fn run(&self, ctx: &RunCtx, p: TextParams) -> Result<(), OpError> {
        let lm = lmops::load_lm(&p.model, "model")?;
        let data = TextData::read(&p.prompts, "prompts")?;
        let cfg = Sampling {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            max_new_tokens: p.max_new_tokens,
            stop: p.stop,
            seed: p.seed as u64,
        };
        let batch = p.batch;
        let include_stop = p.include_stop;
        let prompts: Vec<Vec<i64>> =
            data.strings("prompt", "prompts")?.iter().map(|p| lm.encode(p, "prompts")).collect::<Result<_, _>>()?;
        lm.within_context(prompts.iter().map(Vec::len), cfg.max_new_tokens, "prompts")?;
        let mut dec = lm.decoder(ctx, false)?;
        let total = prompts.len() as u64;
        let mut out = data.clone();
        for (ci, chunk) in prompts.chunks(batch).enumerate() {
            let first = ci * batch;
            let mut tick = || ctx.check_cancel().is_ok();
            let comps = match decode::generate(&mut dec, lm.tokenizer(), chunk, first as u64, &cfg, &mut tick) {
                Err(_) if ctx.check_cancel().is_err() => return Err(OpError::Cancelled),
                Err(lab_nn::NnError::BadModel(m)) => return Err(OpError::invalid("prompts", m)),
                other => other?,
            };
            for (j, c) in comps.into_iter().enumerate() {
                let r = &mut out.records[first + j];
                if let Some(old) = r.remove("completion") {
                    r.insert("target".into(), old);
                }
                let text = match c.stop {
                    Some(stop) if include_stop => c.text + &stop,
                    _ => c.text,
                };
                r.insert("completion".into(), Json::String(text));
                r.insert("finish".into(), Json::String(c.finish.into()));
            }
            let done = (first + chunk.len()) as u64;
            (ctx.progress)(Progress { done, total, message: format!("{done} completions") });
        }
        out.write(ctx.out)
    }
}

/// The file of next-token distributions inside a dataset artifact.
pub const NEXT_TOKEN_FILE: &str = "next_token.safetensors";

/// A model's next-token distributions at every completion position of each record, over
/// chosen tokens (renormalised among them): targets for `finetune.distill_lm`.
pub struct NextToken;

#[derive(Params)]
pub struct NextTokenParams {
    /// the teacher
    model: ModelDir,
    /// records with `prompt` and `completion`
    data: DatasetDir,
    /// the tokens, by their text (`[]`: the whole vocabulary)
    #[param(default = vec![])]
    tokens: Vec<String>,
    /// records per model call
    #[param(default = 64, min = 1)]
    batch: usize,
}

impl Op for NextToken {
    type Params = NextTokenParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "next_token",
            1,
            Type::Dataset,
            "the model's next-token log-probabilities at each position of each record's `completion` (after its `prompt`), over `tokens` only and renormalised among them; stored with the records for `finetune.distill_lm`",
        )
    }

    fn run(&self, ctx: &RunCtx, p: NextTokenParams) -> Result<(), OpError> {
        let lm = lmops::load_lm(&p.model, "model")?;
        let data = TextData::read(&p.data, "data")?;
        let tok = lm.tokenizer();
        let tokens: Vec<i64> = match &p.tokens {
            t if t.is_empty() => (0..tok.vocab() as i64).collect(),
            t => t
                .iter()
                .map(|s| match lm.encode(s, "tokens")?.as_slice() {
                    [id] => Ok(*id),
                    ids => {
                        Err(OpError::invalid("tokens", format!("has {s:?}, which is {} tokens, not one", ids.len())))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        if let Some(i) = (1..tokens.len()).find(|&i| tokens[..i].contains(&tokens[i])) {
            return Err(OpError::invalid(
                "tokens",
                format!("lists token {:?} twice", tok.token_text(tokens[i]).unwrap_or_default()),
            ));
        }
        let pairs = lmops::pairs(lm.tokenizer(), &data, "data")?;
        lm.within_context(pairs.iter().map(|(p, c)| p.len() + c.len()), 0, "data")?;
        let mut dec = lm.decoder(ctx, false)?;
        let batch = p.batch;
        let mut logp: Vec<f32> = Vec::new();
        let mut offsets = vec![0i64];
        for (i, chunk) in pairs.chunks(batch).enumerate() {
            ctx.check_cancel()?;
            let rows = decode::next_token_logprobs(&mut dec, chunk, &tokens).map_err(|e| match e {
                lab_nn::NnError::BadModel(m) => OpError::invalid("data", m),
                e => e.into(),
            })?;
            for r in rows {
                logp.extend(r);
                offsets.push((logp.len() / tokens.len()) as i64);
            }
            (ctx.progress)(Progress {
                done: ((i + 1) * batch).min(pairs.len()) as u64,
                total: pairs.len() as u64,
                message: String::new(),
            });
        }
        data.write(ctx.out)?;
        // The teacher's tokenizer goes along, so that a student can check its token ids mean
        // the same text.
        tok.save(ctx.out)?;
        let n = logp.len() / tokens.len();
        lab_nn::weights::save(
            &ctx.out.join(NEXT_TOKEN_FILE),
            &[
                ("logp".into(), lab_nn::Tensor::f32(vec![n, tokens.len()], logp)),
                ("offsets".into(), lab_nn::Tensor::i64(vec![offsets.len()], offsets)),
                ("tokens".into(), lab_nn::Tensor::i64(vec![tokens.len()], tokens)),
            ],
        )?;
        Ok(())
    }
}

/// Comparisons labelled by a gold reward, for training proxy reward models.
pub struct Comparisons;

#[derive(Params)]
pub struct ComparisonsParams {
    /// the policy that samples (`model.markov`)
    policy: ModelDir,
    /// the reward model that labels, over one-hot features (e.g. `model.gold_reward`)
    gold: ModelDir,
    /// number of comparisons
    #[param(default = 16_000, min = 1, max = 10_000_000)]
    pairs: usize,
    /// sampling seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Comparisons {
    type Params = ComparisonsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "comparisons",
            1,
            Type::Dataset,
            "pairs of independent sequences from a tabular policy, ordered by a gold reward: each row `x` is the preferred sequence's one-hot (position, token) features followed by the other's (width 2·length·vocab), the input `finetune.reward` takes for an MLP",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ComparisonsParams) -> Result<(), OpError> {
        let policy = Markov::from_arg(&p.policy, "policy")?;
        let pairs = p.pairs;
        let mut gold = SeqReward::load(ctx, &p.gold, "gold", &policy)?;
        let seqs = policy.table(&policy.bias).sample(2 * pairs, &mut markov::rng(p.seed, 2));
        let scores = gold.score(&seqs)?;
        let f = policy.length * policy.vocab;
        let onehot = seqs.one_hot(policy.vocab);
        let mut x = Array2::<f32>::zeros((pairs, 2 * f));
        for i in 0..pairs {
            let (a, b) = (2 * i, 2 * i + 1);
            let (better, worse) = if scores[a] >= scores[b] { (a, b) } else { (b, a) };
            let mut row = x.row_mut(i);
            let row = row.as_slice_mut().expect("standard layout");
            row[..f].copy_from_slice(&onehot[better * f..(better + 1) * f]);
            row[f..].copy_from_slice(&onehot[worse * f..(worse + 1) * f]);
        }
        Dataset { x, y: None, t: None }.write(ctx.out)
    }
}
