//! `model.*`: model constructors, and the ops that run a model forward.

use crate::artifact::Dataset;
use crate::markov::{self, Markov};
use crate::nnops;
use crate::{Args, Check, Op, OpError, Registry, RunCtx, Signature, Type, Value, Yield};
use lab_nn::gpt::{Gpt, GptSpec};
use lab_nn::mlp::{Mlp, MlpInit, MlpSpec};
use lab_nn::tokenizer::Tokenizer;
use ndarray::Array2;

pub fn register(r: &mut Registry) {
    r.add(MlpOp);
    r.add(OnnxFile);
    r.add(GptOp);
    r.add(ImportLm);
    r.add(ValueHead);
    r.add(MarkovOp);
    r.add(GoldReward);
}

/// A GPT language model with fresh weights; its vocabulary comes from its tokenizer.
pub struct GptOp;

impl Op for GptOp {
    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "gpt",
            2,
            Type::Model,
            "a GPT decoder with fresh weights: token and learned position embeddings, pre-LayerNorm blocks of causal multi-head attention and a GELU MLP, a final LayerNorm and an output layer; the vocabulary comes from the tokenizer",
        )
        .opt("tokenizer", Type::Str, Value::Str("char".into()), "`char` (one token per character of `alphabet`) or `byte` (256 tokens)")
        .opt("alphabet", Type::Str, Value::Str(String::new()), "with `char`: every character the texts use, each once")
        .req("width", Type::Int, "residual width")
        .opt("heads", Type::Int, Value::Int(4), "attention heads (divides `width`)")
        .opt("layers", Type::Int, Value::Int(2), "transformer blocks")
        .opt("context", Type::Int, Value::Int(48), "longest sequence, in tokens")
        .opt("tied", Type::Bool, Value::Bool(false), "use the token embedding as the output layer")
        .opt("value_head", Type::Bool, Value::Bool(false), "add a scalar head (reward and value models)")
        .opt("init", Type::Str, Value::Str("gpt2".into()), "`gpt2` (N(0, 0.02), scaled residual projections) or `pytorch` (embeddings N(0, 1), linear layers U(±1/√fan_in))")
        .opt("seed", Type::Int, Value::Int(0), "initialisation seed; equal seeds give equal weights")
        .one_of("tokenizer", &["char", "byte"])
        .at_least("width", 1.0)
        .at_least("heads", 1.0)
        .at_least("layers", 1.0)
        .at_least("context", 1.0)
        .one_of("init", &["gpt2", "pytorch"])
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let init = args.str("init")?.parse().map_err(|e: String| OpError::invalid("init", e))?;
        let tokenizer = match args.str("tokenizer")? {
            "char" => {
                let alphabet = args.str("alphabet")?;
                if alphabet.is_empty() {
                    return Err(OpError::invalid(
                        "alphabet",
                        "is empty; list every character the texts use, e.g. `alphabet: \"0123456789, \\n\"`",
                    ));
                }
                Tokenizer::chars(alphabet).map_err(|e| OpError::invalid("alphabet", bad(e)))?
            }
            "byte" => Tokenizer::Byte,
            other => {
                return Err(OpError::invalid(
                    "tokenizer",
                    format!("is `{other}`; use `char` or `byte` (Hugging Face tokenizers come with `model.import_lm`)"),
                ));
            }
        };
        let spec = GptSpec {
            vocab: tokenizer.vocab(),
            width: args.int_at_least("width", 1)?,
            heads: args.int_at_least("heads", 1)?,
            layers: args.int_at_least("layers", 1)?,
            context: args.int_at_least("context", 1)?,
            tied: args.bool("tied")?,
            value_head: args.bool("value_head")?,
        };
        spec.validate().map_err(|e| OpError::invalid("width", bad(e)))?;
        Gpt::init_with(spec, tokenizer, args.int("seed")? as u64, init)?.save(ctx.out)?;
        Ok(())
    }
}

fn bad(e: lab_nn::NnError) -> String {
    match e {
        lab_nn::NnError::BadModel(m) => m,
        other => other.to_string(),
    }
}

/// A language model with a fresh scalar head, for reward modelling.
pub struct ValueHead;

impl Op for ValueHead {
    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "value_head",
            1,
            Type::Model,
            "a copy of a GPT with a fresh scalar head on its final residual stream (the start of a reward model)",
        )
        .req("model", Type::Model, "the language model")
        .opt("seed", Type::Int, Value::Int(0), "initialisation seed of the head")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let m = crate::lmops::load_gpt(args, "model")?;
        m.with_value_head(args.int("seed")? as u64).save(ctx.out)?;
        Ok(())
    }
}

/// A decoder exported by other tools, with its Hugging Face tokenizer.
pub struct ImportLm;

impl Op for ImportLm {
    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "import_lm",
            1,
            Type::Model,
            "a language model exported to ONNX with GPT-2's decoder interface (inputs `input_ids`, `attention_mask`, `position_ids`, `past_key_values.N.key/value`; outputs `logits`, `present.N.key/value`) and its Hugging Face `tokenizer.json`; for `generate.text` and `score.*`",
        )
        .req("path", Type::Path, "the `.onnx` file, relative to the `.lab` file")
        .req("tokenizer", Type::Path, "the `tokenizer.json` file")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let path = args.str("path")?;
        let tpath = args.str("tokenizer")?;
        let bytes = std::fs::read(path).map_err(|e| OpError::Data(format!("cannot read {path}: {e}")))?;
        let ttext = std::fs::read_to_string(tpath).map_err(|e| OpError::Data(format!("cannot read {tpath}: {e}")))?;
        let tokenizer = Tokenizer::from_json(&ttext).map_err(|e| OpError::Data(format!("{tpath}: {}", bad(e))))?;
        let info = lab_nn::onnx_io::read(&bytes).map_err(|e| OpError::Data(format!("{path}: {e}")))?;
        let dec = lab_nn::decode::Decoder::new(&bytes, None, crate::nnops::session_options(ctx))
            .map_err(|e| OpError::Data(format!("{path}: {}", bad(e))))?;
        if !dec.position_ids {
            return Err(OpError::Data(format!(
                "{path}: the decoder has no `position_ids` input; export it with position ids so that batches of prompts can be left-padded"
            )));
        }
        let vocab = info.outputs.iter().find(|o| o.name == "logits").and_then(|o| o.shape.last().copied().flatten());
        if let Some(v) = vocab
            && tokenizer.vocab() as i64 > v
        {
            return Err(OpError::Data(format!(
                "the tokenizer {tpath} has {} tokens but the model's logits cover {v}: they do not belong together",
                tokenizer.vocab()
            )));
        }
        std::fs::write(ctx.out.join("model.onnx"), &bytes)?;
        tokenizer.save(ctx.out)?;
        let meta = serde_json::json!({"arch": "import_lm", "layers": dec.layers, "heads": dec.heads, "head_dim": dec.head_dim, "vocab": vocab});
        std::fs::write(ctx.out.join("model.json"), serde_json::to_string_pretty(&meta).expect("json"))?;
        Ok(())
    }
}

/// A multilayer perceptron with fresh weights: `inputs` → `hidden`… → `outputs`.
pub struct MlpOp;

impl Op for MlpOp {
    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "mlp",
            1,
            Type::Model,
            "a multilayer perceptron with fresh weights: N(0, 1/fan_in) (or He's N(0, 2/fan_in)), zero biases unless `bias_std` is set, optionally a positive readout",
        )
        .req("inputs", Type::Int, "input width")
        .req("hidden", Type::list(Type::Int), "widths of the hidden layers, e.g. `[128, 128]`")
        .req("outputs", Type::Int, "number of logits")
        .opt("activation", Type::Str, Value::Str("relu".into()), "`relu`, `tanh`, `gelu` or `sigmoid`")
        .opt(
            "init",
            Type::Str,
            Value::Str("lecun".into()),
            "weights ~ N(0, 1/fan_in) (`lecun`) or N(0, 2/fan_in) (`he`)",
        )
        .opt("bias_std", Type::Float, Value::Float(0.0), "biases ~ N(0, bias_std²); 0 gives zero biases")
        .opt("positive_readout", Type::Bool, Value::Bool(false), "make the last layer's weights positive")
        .opt("seed", Type::Int, Value::Int(0), "initialisation seed; equal seeds give equal weights")
        .at_least("inputs", 1.0)
        .at_least("hidden", 1.0)
        .at_least("outputs", 1.0)
        .one_of("activation", &["relu", "tanh", "gelu", "sigmoid"])
        .one_of("init", &["lecun", "he"])
        .between("bias_std", 0.0, 1e6)
        .yields(Yield::Arg("inputs", "inputs"))
        .yields(Yield::Arg("outputs", "outputs"))
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let gain = match args.str("init")? {
            "lecun" => 1.0,
            "he" => 2.0,
            other => return Err(OpError::invalid("init", format!("is `{other}`; use `lecun` or `he`"))),
        };
        let bias_std = args.float("bias_std")?;
        if !(0.0..=1e6).contains(&bias_std) {
            return Err(OpError::invalid("bias_std", format!("must be between 0 and 1e6, got {bias_std}")));
        }
        let how = MlpInit { gain, bias_std, positive_readout: args.bool("positive_readout")? };
        let inputs = args.int_at_least("inputs", 1)?;
        let outputs = args.int_at_least("outputs", 1)?;
        let hidden = args.ints("hidden")?;
        if hidden.iter().any(|&h| h < 1) {
            return Err(OpError::invalid("hidden", "widths must be at least 1"));
        }
        let activation = args.str("activation")?.parse().map_err(|e: String| OpError::invalid("activation", e))?;
        let spec = MlpSpec { inputs, hidden: hidden.iter().map(|&h| h as usize).collect(), outputs, activation };
        let params: u128 =
            spec.param_shapes().iter().map(|(_, s)| s.iter().map(|&d| d as u128).product::<u128>()).sum();
        if params > 1 << 31 {
            return Err(OpError::invalid(
                "hidden",
                format!(
                    "makes a model of {params} parameters ({} GiB of weights); labrun builds MLPs up to 2^31 parameters",
                    (params * 4) >> 30
                ),
            ));
        }
        Mlp::init_with(spec, args.int("seed")? as u64, how).save(ctx.out)?;
        Ok(())
    }
}

/// An existing ONNX model, for inference: its first input takes rows `[N, width]`, its
/// first output gives logits `[N, k]`.
pub struct OnnxFile;

impl Op for OnnxFile {
    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "onnx",
            1,
            Type::Model,
            "an existing ONNX model file, for inference: first input `[N, width]` floats, first output `[N, k]` logits",
        )
        .req("path", Type::Path, "the `.onnx` file, relative to the `.lab` file")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let path = args.str("path")?;
        let bytes = std::fs::read(path).map_err(|e| OpError::Data(format!("cannot read {path}: {e}")))?;
        let info = lab_nn::onnx_io::read(&bytes).map_err(|e| OpError::Data(format!("{path}: {e}")))?;
        let (Some(i), Some(o)) = (info.inputs.first(), info.outputs.first()) else {
            return Err(OpError::Data(format!("{path}: the model has no input or no output")));
        };
        if i.shape.len() != 2 || i.elem_type != 1 {
            return Err(OpError::Data(format!(
                "{path}: input `{}` must be 2-D float rows [N, width], not {:?} of type {}",
                i.name, i.shape, i.elem_type
            )));
        }
        std::fs::write(ctx.out.join("model.onnx"), &bytes)?;
        let meta = serde_json::json!({"arch": "onnx", "input": i.name, "output": o.name, "inputs": i.shape[1], "outputs": o.shape.last().copied().flatten()});
        std::fs::write(ctx.out.join("model.json"), serde_json::to_string_pretty(&meta).expect("json"))?;
        Ok(())
    }
}

/// A model's logits on every row of a dataset, kept as soft targets.
pub struct Logits;

impl Op for Logits {
    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "logits",
            1,
            Type::Dataset,
            "the model's logits on each input row, stored as soft targets `t`",
        )
        .req("model", Type::Model, "the model to run")
        .req("inputs", Type::Dataset, "input rows")
        .opt("keep", Type::Range, Value::Range { start: 0, end: 0 }, "which logits to keep; `0..0` keeps all")
        .check(Check::Within { param: "keep", input: "model", fact: "outputs" })
        .check(Check::Agree { a: ("inputs", "width"), b: ("model", "inputs") })
        .yields(Yield::From("width", "inputs", "width"))
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let mut model = nnops::Inference::load(ctx, args.artifact("model")?)?;
        let d = Dataset::read(args.artifact("inputs")?)?;
        let keep = args.range("keep")?;
        // Check what can be checked before running the model.
        if let (false, Some(o)) = (keep.is_empty(), model.outputs) {
            nnops::check_logits(o, &keep, "keep")?;
        }
        let (logits, o) = model.predict(&d, "inputs")?;
        let keep = if keep.is_empty() { 0..o } else { keep };
        nnops::check_logits(o, &keep, "keep")?;
        let t = Array2::from_shape_fn((d.rows(), keep.len()), |(r, c)| logits[r * o + keep.start + c]);
        Dataset { x: d.x, y: d.y, t: Some(t) }.write(ctx.out)
    }
}

/// π₀ of the reward-model overoptimization miniature: a tabular second-order Markov chain.
pub struct MarkovOp;

impl Op for MarkovOp {
    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "markov",
            1,
            Type::Model,
            "a tabular policy over token sequences: a position-dependent second-order Markov chain, π(x_t | x_{t−2}, x_{t−1}) = softmax of logits drawn N(0, logit_std²) for every position and context; RL (`finetune.rl`) adds a learned bias per (position, token)",
        )
        .opt("length", Type::Int, Value::Int(8), "tokens per sequence")
        .opt("vocab", Type::Int, Value::Int(16), "vocabulary size")
        .opt("logit_std", Type::Float, Value::Float(0.7), "spread of the logits (0: uniform sequences)")
        .opt("seed", Type::Int, Value::Int(0), "seed of the logits")
        .at_least("length", 1.0)
        .at_least("vocab", 2.0)
        .at_least("logit_std", 0.0)
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let length = args.int_at_least("length", 1)?;
        let vocab = args.int_at_least("vocab", 2)?;
        Markov::init(length, vocab, args.float("logit_std")?, args.int("seed")? as u64)?.save(ctx.out)
    }
}

/// The synthetic gold reward of the miniature: quality minus a penalty on an attribute that
/// goes with quality. A plain random network as gold gives no overoptimization: proxies
/// learn it everywhere. This one is hard to learn where the policy rarely goes, the upper
/// tail of the correlated attribute.
pub struct GoldReward;

#[derive(serde::Serialize)]
struct GoldFile {
    arch: &'static str,
    inputs: usize,
    length: usize,
    vocab: usize,
    hidden: usize,
    penalty: f64,
    threshold: f64,
    correlation: f64,
    /// (mean, std) of the raw quality, the raw other score and the raw gold under π₀.
    standardization: [(f64, f64); 3],
}

impl Op for GoldReward {
    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "gold_reward",
            1,
            Type::Model,
            "a synthetic gold reward over a policy's sequences: gold = q − penalty·relu(a − threshold)², standardised under the policy, where q and o are random 2-layer ReLU MLPs over one-hot (position, token) features, standardised under the policy, and the attribute a = correlation·q + √(1 − correlation²)·o; saved as an ONNX model (`x` one-hot features → `logits`)",
        )
        .req("policy", Type::Model, "the policy (`model.markov`) whose sequences it scores and under which it is standardised")
        .opt("hidden", Type::Int, Value::Int(32), "hidden width of q and o")
        .opt("penalty", Type::Float, Value::Float(0.5), "weight of the penalty")
        .opt("threshold", Type::Float, Value::Float(0.5), "attribute level (in standard deviations) where the penalty starts")
        .opt("correlation", Type::Float, Value::Float(0.9), "correlation of the attribute with quality, in [−1, 1]")
        .opt("samples", Type::Int, Value::Int(8192), "policy samples the standardisation uses")
        .opt("seed", Type::Int, Value::Int(0), "seed of the two networks and of the samples")
        .at_least("hidden", 1.0)
        .between("correlation", -1.0, 1.0)
        .at_least("samples", 2.0)
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let policy = Markov::from_arg(args, "policy")?;
        let hidden = args.int_at_least("hidden", 1)?;
        let samples = args.int_at_least("samples", 2)?;
        let rho = args.float("correlation")?;
        if !(-1.0..=1.0).contains(&rho) {
            return Err(OpError::invalid("correlation", format!("must be in [−1, 1], got {rho}")));
        }
        let (penalty, threshold) = (args.float("penalty")?, args.float("threshold")?);
        for (name, v) in [("penalty", penalty), ("threshold", threshold)] {
            if !v.is_finite() {
                return Err(OpError::invalid(name, "must be a finite number"));
            }
        }
        let seed = args.int("seed")?;
        let inputs = policy.length * policy.vocab;
        let spec = MlpSpec { inputs, hidden: vec![hidden], outputs: 1, activation: lab_nn::mlp::Activation::Relu };
        let he = MlpInit { gain: 2.0, bias_std: 0.0, positive_readout: false };
        let quality = Mlp::init_with(spec.clone(), seed as u64, he);
        let other = Mlp::init_with(spec, (seed as u64).wrapping_add(0x9e37_79b9_7f4a_7c15), he);
        let seqs = policy.table(&policy.bias).sample(samples, &mut markov::rng(seed, 1));
        let x = seqs.one_hot(policy.vocab);
        let opts = nnops::session_options(ctx);
        let standardize = |raw: Vec<f64>| -> Result<(Vec<f64>, (f64, f64)), OpError> {
            let (m, sd) = markov::mean_std(&raw);
            if sd.is_nan() || sd <= 0.0 {
                return Err(OpError::Data(
                    "a random network gives every sampled sequence the same score; use another `seed` or more `samples`"
                        .into(),
                ));
            }
            Ok((raw.iter().map(|r| (r - m) / sd).collect(), (m, sd)))
        };
        let raw = |m: &Mlp| -> Result<Vec<f64>, OpError> {
            Ok(lab_nn::train::predict(m, &x, opts)?.iter().map(|&v| v as f64).collect())
        };
        let (q, sq) = standardize(raw(&quality)?)?;
        let (o, so) = standardize(raw(&other)?)?;
        let c = (1.0 - rho * rho).sqrt();
        let gold: Vec<f64> =
            q.iter().zip(&o).map(|(&q, &o)| q - penalty * (rho * q + c * o - threshold).max(0.0).powi(2)).collect();
        let (_, sg) = standardize(gold)?;
        let meta = GoldFile {
            arch: "gold_reward",
            inputs,
            length: policy.length,
            vocab: policy.vocab,
            hidden,
            penalty,
            threshold,
            correlation: rho,
            standardization: [sq, so, sg],
        };

        // The same formula as one ONNX graph: x → logits.
        let mut g = lab_nn::Graph::new(lab_nn::DType::F32);
        let xin = g.input("x", lab_nn::DType::F32, &[-1, inputs as i64]);
        let net = |g: &mut lab_nn::Graph, m: &Mlp, prefix: &str, (mean, sd): (f64, f64)| {
            let ps: Vec<_> = m.params.iter().map(|(n, t)| g.initializer(&format!("{prefix}.{n}"), t.clone())).collect();
            let r = m.spec.forward(g, xin, &ps);
            affine(g, r, 1.0 / sd, -mean / sd)
        };
        let qv = net(&mut g, &quality, "quality", sq);
        let ov = net(&mut g, &other, "other", so);
        let a = affine(&mut g, qv, rho, -threshold);
        let co = affine(&mut g, ov, c, 0.0);
        let a = g.add(a, co);
        let e = g.relu(a);
        let e2 = g.mul(e, e);
        let pen = affine(&mut g, e2, penalty, 0.0);
        let gold = g.sub(qv, pen);
        let out = affine(&mut g, gold, 1.0 / sg.1, -sg.0 / sg.1);
        g.output(out, "logits");
        std::fs::write(
            ctx.out.join("model.json"),
            serde_json::to_string_pretty(&meta).map_err(|e| OpError::internal(e.to_string()))?,
        )?;
        let weights: Vec<(String, lab_nn::Tensor)> = [("quality", &quality), ("other", &other)]
            .iter()
            .flat_map(|(p, m)| m.params.iter().map(move |(n, t)| (format!("{p}.{n}"), t.clone())))
            .collect();
        lab_nn::weights::save(&ctx.out.join("weights.safetensors"), &weights)?;
        std::fs::write(
            ctx.out.join("model.onnx"),
            g.to_onnx_bytes("labrun synthetic gold reward: x [N, length*vocab] one-hot -> logits [N, 1]"),
        )?;
        Ok(())
    }
}

/// a·v + b
fn affine(g: &mut lab_nn::Graph, v: lab_nn::V, a: f64, b: f64) -> lab_nn::V {
    let av = g.scalar(a);
    let m = g.mul(v, av);
    if b == 0.0 {
        return m;
    }
    let bv = g.scalar(b);
    g.add(m, bv)
}
