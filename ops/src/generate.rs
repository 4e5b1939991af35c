//! `generate.*`: ops that make data: noise inputs, a model's outputs, sampled text.

use crate::artifact::Dataset;
use crate::lmops;
use crate::markov::{self, Markov, SeqReward};
use crate::text::{self, TextData};
use crate::{Args, Check, Op, OpError, Progress, Registry, RunCtx, Signature, Type, Value, Yield};
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
}

/// `count` rows of independent uniform noise in [`low`, `high`); `shape` is the width of
/// a row (its product, for several dimensions).
pub struct Noise;

impl Op for Noise {
    fn signature(&self) -> Signature {
        Signature::new("generate", "noise", 1, Type::Dataset, "rows of i.i.d. uniform noise in [low, high)")
            .req("shape", Type::list(Type::Int), "shape of one row, e.g. `[64]`")
            .req("count", Type::Int, "number of rows")
            .opt("low", Type::Float, Value::Float(-1.0), "lower bound")
            .opt("high", Type::Float, Value::Float(1.0), "upper bound")
            .opt("seed", Type::Int, Value::Int(0), "random seed")
            .non_empty("shape")
            .at_least("shape", 1.0)
            .at_least("count", 1.0)
            .check(Check::Less { low: "low", high: "high" })
            .yields(Yield::Product("width", "shape"))
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let shape = args.ints("shape")?;
        if shape.is_empty() || shape.iter().any(|&d| d < 1) {
            return Err(OpError::invalid("shape", "must be a non-empty list of positive sizes"));
        }
        let width = shape.iter().product::<i64>() as usize;
        let count = args.int_at_least("count", 1)?;
        if width.saturating_mul(count) > 1 << 31 {
            return Err(OpError::invalid("count", "asks for more than 2^31 numbers; use fewer rows"));
        }
        let (low, high) = (args.float("low")? as f32, args.float("high")? as f32);
        if low.partial_cmp(&high) != Some(std::cmp::Ordering::Less) {
            return Err(OpError::invalid("high", format!("must be greater than low ({low})")));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.int("seed")? as u64);
        let x = Array2::from_shape_simple_fn((count, width), || rng.random_range(low..high));
        Dataset { x, y: None, t: None }.write(ctx.out)
    }
}

/// Draws one (prompt, completion) pair.
type Template = dyn FnMut(&mut rand_chacha::ChaCha8Rng) -> (String, String);

/// The templates of [`Corpus`].
const TEMPLATES: &str = "`numbers`, `animals`, `counting` or `arithmetic`";

/// Seeded synthetic text from a template: each record has `text` and the same text split
/// into `prompt` and `completion`.
pub struct Corpus;

impl Op for Corpus {
    fn signature(&self) -> Signature {
        Signature::new("generate", "corpus", 1, Type::Dataset, "seeded synthetic documents from a template, as records with `text`, `prompt` and `completion`. `numbers`: `^182, 033, 904, …` lists of `length` 3-digit numbers, the first `shown` in the prompt; `animals`: `^Q: animal?\\nA: owl\\n` with the answer uniform over `choices`; `counting`: `^17 18 19 …`, `length` numbers counting up from a random start below 100, the first `shown` in the prompt; `arithmetic`: `Q: What is 3 plus 4?\\nA: 7\\n` with `digits`-digit operands and `operations` among `plus`, `minus`, `times`")
            .req("template", Type::Str, TEMPLATES)
            .req("count", Type::Int, "documents")
            .opt("seed", Type::Int, Value::Int(0), "random seed")
            .opt("length", Type::Int, Value::Int(9), "`numbers`, `counting`: numbers per document")
            .opt("shown", Type::Int, Value::Int(3), "`numbers`, `counting`: numbers in the prompt")
            .opt("choices", Type::list(Type::Str), Value::List(["owl", "cat", "dog", "fox", "bat", "elk", "ant", "yak"].iter().map(|a| Value::Str(a.to_string())).collect()), "`animals`: the answers, drawn uniformly")
            .opt("digits", Type::Int, Value::Int(1), "`arithmetic`: digits of each operand")
            .opt("operations", Type::list(Type::Str), Value::List(vec![Value::Str("plus".into())]), "`arithmetic`: `plus`, `minus`, `times`")
            .opt("form", Type::Str, Value::Str("plain".into()), "`arithmetic`: `plain` (`Q: What is 3 plus 4?\\nA: 7\\n`), `bigbench` (BIG-bench's default few-shot form, as its `arithmetic` tasks ask: `\\nQ: What is 3 plus 4?\\nA: 7`, problems joined by `\\n`) or `bigbench_symbols` (as its `simple_arithmetic` tasks ask: `\\nQ: 3 + 4 = 7`)")
            .opt("vary_digits", Type::Bool, Value::Bool(false), "`arithmetic`: draw each operand's number of digits uniformly from 1 to `digits` first (else operands are uniform below 10^digits)")
            .opt("per_document", Type::Int, Value::Int(1), "`arithmetic`: problems per document; the prompt is all but the last answer")
            .opt("choice_rate", Type::Float, Value::Float(0.0), "`arithmetic` in a BIG-bench form: the share of problems that list answer choices as the benchmark does (`bigbench`: the answer, four numeric distractors, `banana` and `house`; `bigbench_symbols`: the answer and three small numbers after ` option: `; in the official order)")
            .check(Check::Min { param: "choice_rate", min: 0.0, strict: false })
            .check(Check::Max { param: "choice_rate", max: 1.0, strict: false })
            .check(Check::OneOf { param: "form", options: &["plain", "bigbench", "bigbench_symbols"] })
            .check(Check::Min { param: "per_document", min: 1.0, strict: false })
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let count = args.int_at_least("count", 1)?;
        if count > 10_000_000 {
            return Err(OpError::invalid("count", "asks for more than 10 million documents"));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.int("seed")? as u64);
        let template = args.str("template")?;
        let mut make: Box<Template> = match template {
            "numbers" | "counting" => {
                let length = args.int_at_least("length", 2)?;
                if length > 1000 {
                    return Err(OpError::invalid(
                        "length",
                        format!("is {length}; documents hold at most 1,000 numbers"),
                    ));
                }
                let shown = args.int_at_least("shown", 1)?;
                if shown >= length {
                    return Err(OpError::invalid(
                        "shown",
                        format!("is {shown}; it must be below `length` ({length}) to leave a completion"),
                    ));
                }
                let counting = template == "counting";
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
            "animals" => {
                let choices = args.strs("choices")?;
                if choices.is_empty() {
                    return Err(OpError::invalid("choices", "is empty; list the answers"));
                }
                Box::new(move |rng| {
                    ("^Q: animal?\nA: ".to_string(), format!("{}\n", choices.choose(rng).expect("non-empty")))
                })
            }
            "arithmetic" => {
                let digits = args.int_at_least("digits", 1)?;
                if digits > 9 {
                    return Err(OpError::invalid("digits", "must be at most 9"));
                }
                let ops = args.strs("operations")?;
                if let Some(bad) = ops.iter().find(|o| !matches!(o.as_str(), "plus" | "minus" | "times")) {
                    return Err(OpError::invalid("operations", format!("has `{bad}`; use `plus`, `minus` or `times`")));
                }
                if ops.is_empty() {
                    return Err(OpError::invalid("operations", "is empty"));
                }
                let hi = 10i64.pow(digits as u32);
                let form = args.str("form")?.to_string();
                let bigbench = form != "plain";
                let per_doc = args.int_at_least("per_document", 1)?;
                let choice_rate = args.float("choice_rate")?;
                if choice_rate > 0.0 && !bigbench {
                    return Err(OpError::invalid(
                        "choice_rate",
                        "needs `form: \"bigbench\"` or `\"bigbench_symbols\"`",
                    ));
                }
                let vary = args.bool("vary_digits")?;
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
                            let q = if form == "bigbench" {
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
            other => return Err(OpError::invalid("template", format!("is `{other}`; use {TEMPLATES}"))),
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

impl Op for Text {
    fn signature(&self) -> Signature {
        Signature::new("generate", "text", 2, Type::Dataset, "a completion of the `prompt` of each record, sampled with a KV cache; records keep their fields, the record's old `completion` becomes `target`, and `completion` and `finish` (`stop` or `length`) are added")
            .req("model", Type::Model, "the language model")
            .req("prompts", Type::Dataset, "records with a `prompt`")
            .opt("temperature", Type::Float, Value::Float(1.0), "sampling temperature; 0 is greedy")
            .opt("top_k", Type::Int, Value::Int(0), "sample among the k most likely tokens (0: all)")
            .opt("top_p", Type::Float, Value::Float(1.0), "sample among the most likely tokens whose probability reaches p (1: all)")
            .opt("max_new_tokens", Type::Int, Value::Int(32), "most tokens per completion")
            .opt("stop", Type::list(Type::Str), Value::List(vec![Value::Str("\n".into())]), "a completion ends at the first of these")
            .opt("include_stop", Type::Bool, Value::Bool(false), "keep the stop string at the end of the completion (as documents end, e.g. with their newline)")
            .opt("batch", Type::Int, Value::Int(64), "prompts decoded together")
            .opt("seed", Type::Int, Value::Int(0), "sampling seed; each record draws from its own stream, so batching does not change the text")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let lm = lmops::load_lm(args, "model")?;
        let data = TextData::read(args.artifact("prompts")?, "prompts")?;
        let temperature = args.float("temperature")?;
        let top_p = args.float("top_p")?;
        if temperature < 0.0 || !temperature.is_finite() {
            return Err(OpError::invalid("temperature", "must be 0 (greedy) or positive"));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(OpError::invalid("top_p", format!("must be in (0, 1], got {top_p}")));
        }
        let cfg = Sampling {
            temperature,
            top_k: args.int_at_least("top_k", 0)?,
            top_p,
            max_new_tokens: args.int_at_least("max_new_tokens", 1)?,
            stop: {
                let stop = args.strs("stop")?;
                if stop.iter().any(String::is_empty) {
                    return Err(OpError::invalid(
                        "stop",
                        "has an empty string, which would end every completion at once",
                    ));
                }
                stop
            },
            seed: args.int("seed")? as u64,
        };
        let batch = args.int_at_least("batch", 1)?;
        let include_stop = args.bool("include_stop")?;
        let prompts: Vec<Vec<i64>> =
            data.strings("prompt", "prompts")?.iter().map(|p| lm.encode(p, "prompts")).collect::<Result<_, _>>()?;
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

impl Op for NextToken {
    fn signature(&self) -> Signature {
        Signature::new("generate", "next_token", 1, Type::Dataset, "the model's next-token log-probabilities at each position of each record's `completion` (after its `prompt`), over `tokens` only and renormalised among them; stored with the records for `finetune.distill_lm`")
            .req("model", Type::Model, "the teacher")
            .req("data", Type::Dataset, "records with `prompt` and `completion`")
            .opt("tokens", Type::list(Type::Str), Value::List(vec![]), "the tokens, by their text (`[]`: the whole vocabulary)")
            .opt("batch", Type::Int, Value::Int(64), "records per model call")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let lm = lmops::load_lm(args, "model")?;
        let data = TextData::read(args.artifact("data")?, "data")?;
        let tok = lm.tokenizer();
        let tokens: Vec<i64> = match args.strs("tokens")? {
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
        let mut dec = lm.decoder(ctx, false)?;
        let batch = args.int_at_least("batch", 1)?;
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

impl Op for Comparisons {
    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "comparisons",
            1,
            Type::Dataset,
            "pairs of independent sequences from a tabular policy, ordered by a gold reward: each row `x` is the preferred sequence's one-hot (position, token) features followed by the other's (width 2·length·vocab), the input `finetune.reward` takes for an MLP",
        )
        .req("policy", Type::Model, "the policy that samples (`model.markov`)")
        .req("gold", Type::Model, "the reward model that labels, over one-hot features (e.g. `model.gold_reward`)")
        .opt("pairs", Type::Int, Value::Int(16_000), "number of comparisons")
        .opt("seed", Type::Int, Value::Int(0), "sampling seed")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let policy = Markov::from_arg(args, "policy")?;
        let pairs = args.int_at_least("pairs", 1)?;
        if pairs > 10_000_000 {
            return Err(OpError::invalid("pairs", format!("is {pairs}; at most 10,000,000 comparisons")));
        }
        let mut gold = SeqReward::load(ctx, args, "gold", &policy)?;
        let seqs = policy.table(&policy.bias).sample(2 * pairs, &mut markov::rng(args.int("seed")?, 2));
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
