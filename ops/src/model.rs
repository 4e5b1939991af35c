//! `model.*`: model constructors, and the ops that run a model forward.

use crate::artifact::Dataset;
use crate::markov::{self, Markov};
use crate::nnops;
use crate::params::{Choice, DatasetDir, DirPath, FilePath, ModelDir, Params};
use crate::{Check, Op, OpError, Registry, RunCtx, Signature, Type, Value, Yield};
use lab_nn::gpt::{Gpt, GptSpec};
use lab_nn::mlp::{Activation, Mlp, MlpInit, MlpSpec};
use lab_nn::tokenizer::Tokenizer;
use ndarray::Array2;
use std::ops::Range;

pub fn register(r: &mut Registry) {
    r.add(MlpOp);
    r.add(OnnxFile);
    r.add(GptOp);
    r.add(ImportLm);
    r.add(ValueHead);
    r.add(MarkovOp);
    r.add(GoldReward);
    r.add(crate::trees::RandomTree);
}

/// A GPT language model with fresh weights; its vocabulary comes from its tokenizer.
pub struct GptOp;

/// How `model.gpt` turns text into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum GptTokenizer {
    Char,
    Byte,
}

#[derive(Params)]
#[params(rules = gpt_rules)]
pub struct GptParams {
    /// `char` (one token per character of `alphabet`) or `byte` (256 tokens)
    #[param(default = GptTokenizer::Char)]
    tokenizer: GptTokenizer,
    /// with `char`: every character the texts use, each once
    #[param(default = "")]
    alphabet: String,
    /// residual width
    #[param(min = 1)]
    width: usize,
    /// attention heads (divides `width`)
    #[param(default = 4, min = 1)]
    heads: usize,
    /// transformer blocks (up to 256: deeper stacks of tiny blocks only run for hours)
    #[param(default = 2, min = 1, max = 256)]
    layers: usize,
    /// longest sequence, in tokens
    #[param(default = 48, min = 1)]
    context: usize,
    /// use the token embedding as the output layer
    #[param(default = false)]
    tied: bool,
    /// add a scalar head (reward and value models)
    #[param(default = false)]
    value_head: bool,
    /// `gpt2` (N(0, 0.02), scaled residual projections) or `pytorch` (embeddings N(0, 1), linear layers U(±1/√fan_in))
    #[param(default = lab_nn::gpt::Init::Gpt2)]
    init: lab_nn::gpt::Init,
    /// initialisation seed; equal seeds give equal weights
    #[param(default = 0)]
    seed: i64,
}

/// A `char` alphabet the tokenizer accepts, and a shape the model can take.
fn gpt_rules() -> Vec<Check> {
    vec![
        Check::Rule {
            params: &["alphabet", "tokenizer"],
            doc: "with `char`: `alphabet` lists every character the texts use, each once",
            test: |v| match (v[0].as_str(), v[1].as_str()) {
                (Some(""), Some("char")) => Some(
                    "`alphabet` is empty; list every character the texts use, e.g. `alphabet: \"0123456789, \\n\"`"
                        .to_string(),
                ),
                (Some(alphabet), Some("char")) => {
                    Tokenizer::chars(alphabet).err().map(|e| format!("`alphabet`: {}", bad(e)))
                }
                _ => None,
            },
        },
        Check::Rule {
            params: &["width", "heads", "layers", "context", "tied", "value_head", "tokenizer", "alphabet"],
            doc: "`heads` divides `width`, and the model has at most 2^31 parameters",
            test: |v| {
                let dim = |x: &Value| x.as_i64().filter(|&n| n >= 1);
                let (width, heads, layers, context) = (dim(v[0])?, dim(v[1])?, dim(v[2])?, dim(v[3])?);
                let (tied, value_head) = (matches!(v[4], Value::Bool(true)), matches!(v[5], Value::Bool(true)));
                let vocab = match (v[6].as_str()?, v[7].as_str()?) {
                    ("byte", _) => Tokenizer::Byte.vocab(),
                    ("char", alphabet) => Tokenizer::chars(alphabet).ok()?.vocab(),
                    _ => return None,
                };
                // The parameters of `GptSpec::param_shapes`, counted without listing them
                // (that list is as long as `layers`, and its products may overflow).
                let (v_, d, c, l) = (vocab as f64, width as f64, context as f64, layers as f64);
                let n = v_ * d
                    + c * d
                    + l * (12.0 * d * d + 13.0 * d)
                    + 2.0 * d
                    + if tied { 0.0 } else { d * v_ }
                    + if value_head { d + 1.0 } else { 0.0 };
                if n > (1u64 << 31) as f64 {
                    if width % heads != 0 {
                        return Some(format!(
                            "`width` {width} is not a multiple of `heads` {heads}; each head gets width/heads dimensions"
                        ));
                    }
                    // Name the part that makes it so large.
                    let parts = [
                        (
                            v_ * d * if tied { 1.0 } else { 2.0 },
                            "width",
                            width,
                            "the token embeddings (vocabulary × `width`)",
                        ),
                        (c * d, "context", context, "the position embeddings (`context` × `width`)"),
                        (l * (12.0 * d * d + 13.0 * d), "layers", layers, "the blocks (`layers` × 12·`width`²)"),
                    ];
                    let block = 12.0 * d * d + 13.0 * d;
                    let (most, mut name, mut value, what) =
                        parts.into_iter().max_by(|a, b| a.0.total_cmp(&b.0)).expect("three parts");
                    // One block alone too large is the width's doing, not the depth's.
                    if name == "layers" && block > (1u64 << 31) as f64 {
                        (name, value) = ("width", width);
                    }
                    return Some(format!(
                        "`{name}` {value} makes a model of {n:.0} parameters, {most:.0} of them in {what}; labrun builds GPTs up to 2^31"
                    ));
                }
                let spec = GptSpec {
                    vocab,
                    width: width as usize,
                    heads: heads as usize,
                    layers: layers as usize,
                    context: context as usize,
                    tied,
                    value_head,
                };
                spec.validate().err().map(bad)
            },
        },
    ]
}

impl Op for GptOp {
    type Params = GptParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "gpt",
            2,
            Type::Model,
            "a GPT decoder with fresh weights: token and learned position embeddings, pre-LayerNorm blocks of causal multi-head attention and a GELU MLP, a final LayerNorm and an output layer; the vocabulary comes from the tokenizer",
        )
    }

    fn run(&self, ctx: &RunCtx, p: GptParams) -> Result<(), OpError> {
        let tokenizer = match p.tokenizer {
            GptTokenizer::Char => Tokenizer::chars(&p.alphabet).map_err(|e| OpError::invalid("alphabet", bad(e)))?,
            GptTokenizer::Byte => Tokenizer::Byte,
        };
        let spec = GptSpec {
            vocab: tokenizer.vocab(),
            width: p.width,
            heads: p.heads,
            layers: p.layers,
            context: p.context,
            tied: p.tied,
            value_head: p.value_head,
        };
        Gpt::init_with(spec, tokenizer, p.seed as u64, p.init)?.save(ctx.out)?;
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

#[derive(Params)]
pub struct ValueHeadParams {
    /// the language model
    model: ModelDir,
    /// initialisation seed of the head
    #[param(default = 0)]
    seed: i64,
}

impl Op for ValueHead {
    type Params = ValueHeadParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "value_head",
            1,
            Type::Model,
            "a copy of a GPT with a fresh scalar head on its final residual stream (the start of a reward model)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ValueHeadParams) -> Result<(), OpError> {
        let m = crate::lmops::load_gpt(&p.model, "model")?;
        m.with_value_head(p.seed as u64).save(ctx.out)?;
        Ok(())
    }
}

/// A decoder exported by other tools, with its Hugging Face tokenizer.
pub struct ImportLm;

#[derive(Params)]
pub struct ImportLmParams {
    /// the `.onnx` file, or the folder holding it as `model.onnx` with its external data files (needed when the export keeps its weights beside it), relative to the `.lab` file
    #[param(max_bytes = MAX_IMPORT_BYTES)]
    path: DirPath,
    /// the `tokenizer.json` file
    #[param(max_bytes = MAX_TOKENIZER_BYTES)]
    tokenizer: FilePath,
}

/// The largest `.onnx` file read: protobuf's own limit (larger exports keep their weights
/// as external data).
pub const MAX_ONNX_BYTES: u64 = 2 << 30;
/// The largest imported model, external data included.
pub const MAX_IMPORT_BYTES: u64 = 64 << 30;
/// The largest `tokenizer.json` read (the largest vocabularies in use take tens of MB).
pub const MAX_TOKENIZER_BYTES: u64 = 256 << 20;

impl Op for ImportLm {
    type Params = ImportLmParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "import_lm",
            2,
            Type::Model,
            "a language model exported to ONNX with GPT-2's decoder interface (inputs `input_ids`, `attention_mask`, `position_ids`, `past_key_values.N.key/value`; outputs `logits`, `present.N.key/value`) and its Hugging Face `tokenizer.json`; for `generate.text` and `score.*`",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ImportLmParams) -> Result<(), OpError> {
        let folder = p.path.is_dir();
        let file = if folder { p.path.join("model.onnx") } else { p.path.to_path_buf() };
        let path = file.display().to_string();
        let tpath = p.tokenizer.display().to_string();
        if folder && !file.is_file() {
            return Err(OpError::invalid(
                "path",
                format!(
                    "is a folder without a `model.onnx`; give the `.onnx` file, or the folder that holds it as `model.onnx`"
                ),
            ));
        }
        let size = std::fs::metadata(&file).map_err(|e| OpError::Data(format!("cannot read {path}: {e}")))?.len();
        if size > MAX_ONNX_BYTES {
            return Err(OpError::Data(format!(
                "{path} is {}; an ONNX file holds at most {}: export the weights as external data beside it",
                crate::fmt_bytes(size),
                crate::fmt_bytes(MAX_ONNX_BYTES)
            )));
        }
        let bytes = std::fs::read(&file).map_err(|e| OpError::Data(format!("cannot read {path}: {e}")))?;
        let ttext =
            std::fs::read_to_string(&p.tokenizer).map_err(|e| OpError::Data(format!("cannot read {tpath}: {e}")))?;
        let tokenizer = Tokenizer::from_json(&ttext).map_err(|e| OpError::Data(format!("{tpath}: {}", bad(e))))?;
        let info = lab_nn::onnx_io::read(&bytes).map_err(|e| OpError::Data(format!("{path}: {e}")))?;
        // Weights kept as external data travel with the model, from its own folder only.
        if !info.external.is_empty() && !folder {
            let files: std::collections::BTreeSet<&str> = info.external.iter().map(|x| x.location.as_str()).collect();
            let dir = p.path.parent().map(|d| d.display().to_string()).unwrap_or_default();
            return Err(OpError::invalid(
                "path",
                format!(
                    "keeps its weights as external data ({}); give its folder instead (`path: \"{dir}\"`), so that the data files are read and tracked with it",
                    files.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let external = info.external_files(&p.path).map_err(|e| OpError::Data(format!("{path}: {}", bad(e))))?;
        for f in &external {
            let to = ctx.out.join(f);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(p.path.join(f), &to)?;
        }
        std::fs::write(ctx.out.join("model.onnx"), &bytes)?;
        let dec =
            lab_nn::decode::Decoder::from_file(&ctx.out.join("model.onnx"), None, crate::nnops::session_options(ctx))
                .map_err(|e| OpError::Data(format!("{path}: {}", bad(e))))?;
        if !dec.position_ids {
            return Err(OpError::Data(format!(
                "{path}: the decoder has no `position_ids` input; export it with position ids so that batches of prompts can be left-padded"
            )));
        }
        let logits = info.outputs.iter().find(|o| o.name == "logits");
        // An output may declare no shape; one that does must have three dimensions.
        if let Some(l) = logits.filter(|l| (!l.shape.is_empty() && l.shape.len() != 3) || l.elem_type != 1) {
            return Err(OpError::Data(format!(
                "{path}: output `logits` is {} of {}; labrun reads float logits [batch, sequence, vocab]",
                lab_nn::onnx_io::shape_text(&l.shape),
                lab_nn::onnx_io::elem_type_name(l.elem_type)
            )));
        }
        let vocab = logits.and_then(|o| o.shape.last().copied().flatten());
        let context = context_length(&info);
        if let Some(v) = vocab
            && tokenizer.vocab() as i64 > v
        {
            return Err(OpError::Data(format!(
                "the tokenizer {tpath} has {} tokens but the model's logits cover {v}: they do not belong together",
                tokenizer.vocab()
            )));
        }
        // The token embedding table bounds the ids the model can take, whatever its logits say.
        if let Some((name, rows)) = embedding_rows(&info)
            && tokenizer.vocab() > rows
        {
            return Err(OpError::Data(format!(
                "the tokenizer {tpath} has {} tokens but the model's token embedding `{name}` has {rows} rows: they do not belong together",
                tokenizer.vocab()
            )));
        }
        tokenizer.save(ctx.out)?;
        let meta = serde_json::json!({"arch": "import_lm", "layers": dec.layers, "heads": dec.heads, "head_dim": dec.head_dim, "vocab": vocab, "context": context, "external_data": external});
        std::fs::write(ctx.out.join("model.json"), serde_json::to_string_pretty(&meta).expect("json"))?;
        Ok(())
    }
}

/// An exported decoder's context length: the rows of its learned position-embedding table
/// (GPT-2's `wpe`, `position_embeddings`, `embed_positions`), if it has one. Models with
/// rotary or other computed positions have none: their prompts are limited by memory only.
/// The token embedding table's name and rows (GPT-2's `wte`, Llama's and OPT's
/// `embed_tokens`), when the export has one.
fn embedding_rows(info: &lab_nn::onnx_io::ModelInfo) -> Option<(String, usize)> {
    info.initializer_shapes.iter().find_map(|(n, shape)| {
        let l = n.to_ascii_lowercase();
        (shape.len() == 2 && (l.contains("wte") || l.contains("embed_tokens"))).then(|| (n.clone(), shape[0]))
    })
}

pub fn context_length(info: &lab_nn::onnx_io::ModelInfo) -> Option<usize> {
    info.initializer_shapes
        .iter()
        .filter(|(n, shape)| {
            let n = n.to_ascii_lowercase();
            shape.len() == 2 && (n.contains("wpe") || n.contains("position_embed") || n.contains("embed_positions"))
        })
        .map(|(n, shape)| {
            // OPT's learned positions keep two rows before the first position.
            let offset = if n.to_ascii_lowercase().contains("embed_positions") { 2 } else { 0 };
            shape[0].saturating_sub(offset)
        })
        .next()
}

/// A multilayer perceptron with fresh weights: `inputs` → `hidden`… → `outputs`.
pub struct MlpOp;

/// How `model.mlp` draws fresh weights.
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum MlpWeights {
    Lecun,
    He,
}

#[derive(Params)]
#[params(rules = mlp_rules)]
pub struct MlpParams {
    /// input width
    #[param(min = 1)]
    inputs: usize,
    /// widths of the hidden layers, e.g. `[128, 128]`
    #[param(min = 1)]
    hidden: Vec<usize>,
    /// number of logits
    #[param(min = 1)]
    outputs: usize,
    /// `relu`, `tanh`, `gelu` or `sigmoid`
    #[param(default = Activation::Relu)]
    activation: Activation,
    /// weights ~ N(0, 1/fan_in) (`lecun`) or N(0, 2/fan_in) (`he`)
    #[param(default = MlpWeights::Lecun)]
    init: MlpWeights,
    /// biases ~ N(0, bias_std²); 0 gives zero biases
    #[param(default = 0.0, min = 0, max = 1e6)]
    bias_std: f64,
    /// make the last layer's weights positive
    #[param(default = false)]
    positive_readout: bool,
    /// initialisation seed; equal seeds give equal weights
    #[param(default = 0)]
    seed: i64,
}

/// At most 2^31 parameters, and at most 256 hidden layers.
fn mlp_rules() -> Vec<Check> {
    vec![
        Check::Rule {
            params: &["hidden"],
            doc: "`hidden` lists at most 256 layers",
            test: |v| {
                let Value::List(hidden) = v[0] else { return None };
                (hidden.len() > 256).then(|| {
                    format!("`hidden` lists {} layers; labrun builds MLPs of up to 256 hidden layers", hidden.len())
                })
            },
        },
        Check::Rule {
            params: &["hidden", "inputs", "outputs"],
            doc: "the model has at most 2^31 parameters",
            test: |v| {
                let width = |x: &Value| x.as_i64().filter(|&n| n >= 1).map(|n| n as usize);
                let Value::List(hidden) = v[0] else { return None };
                let hidden: Vec<usize> = hidden.iter().map(width).collect::<Option<_>>()?;
                let spec =
                    MlpSpec { inputs: width(v[1])?, hidden, outputs: width(v[2])?, activation: Activation::Relu };
                let params: u128 = spec
                    .param_shapes()
                    .iter()
                    .map(|(_, s)| s.iter().map(|&d| d as u128).product::<u128>())
                    .fold(0, u128::saturating_add);
                (params > 1 << 31).then(|| {
                format!(
                    "`hidden` makes a model of {params} parameters ({} GiB of weights); labrun builds MLPs up to 2^31 parameters",
                    params.saturating_mul(4) >> 30
                )
            })
            },
        },
    ]
}

impl Op for MlpOp {
    type Params = MlpParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "mlp",
            1,
            Type::Model,
            "a multilayer perceptron with fresh weights: N(0, 1/fan_in) (or He's N(0, 2/fan_in)), zero biases unless `bias_std` is set, optionally a positive readout",
        )
        .yields(Yield::Arg("inputs", "inputs"))
        .yields(Yield::Arg("outputs", "outputs"))
    }

    fn run(&self, ctx: &RunCtx, p: MlpParams) -> Result<(), OpError> {
        let gain = match p.init {
            MlpWeights::Lecun => 1.0,
            MlpWeights::He => 2.0,
        };
        let how = MlpInit { gain, bias_std: p.bias_std, positive_readout: p.positive_readout };
        let spec = MlpSpec { inputs: p.inputs, hidden: p.hidden, outputs: p.outputs, activation: p.activation };
        Mlp::init_with(spec, p.seed as u64, how).save(ctx.out)?;
        Ok(())
    }
}

/// An existing ONNX model, for inference: its first input takes rows `[N, width]`, its
/// first output gives logits `[N, k]`.
pub struct OnnxFile;

#[derive(Params)]
pub struct OnnxFileParams {
    /// the `.onnx` file, relative to the `.lab` file
    #[param(max_bytes = MAX_ONNX_BYTES)]
    path: FilePath,
}

impl Op for OnnxFile {
    type Params = OnnxFileParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "onnx",
            1,
            Type::Model,
            "an existing ONNX model file, for inference: first input `[N, width]` floats, first output `[N, k]` logits",
        )
    }

    fn run(&self, ctx: &RunCtx, p: OnnxFileParams) -> Result<(), OpError> {
        let path = p.path.display().to_string();
        let bytes = std::fs::read(&p.path).map_err(|e| OpError::Data(format!("cannot read {path}: {e}")))?;
        let info = lab_nn::onnx_io::read(&bytes).map_err(|e| OpError::Data(format!("{path}: {e}")))?;
        let (Some(i), Some(o)) = (info.inputs.first(), info.outputs.first()) else {
            return Err(OpError::Data(format!("{path}: the model has no input or no output")));
        };
        if i.shape.len() != 2 || i.elem_type != 1 {
            return Err(OpError::Data(format!(
                "{path}: input `{}` must be 2-D float rows [N, width], not {} of {}",
                i.name,
                lab_nn::onnx_io::shape_text(&i.shape),
                lab_nn::onnx_io::elem_type_name(i.elem_type)
            )));
        }
        // A file ONNX Runtime cannot open (an unknown operator, a broken graph) is refused
        // here, naming the file, rather than in every step that uses it.
        lab_nn::runtime::session(&bytes, crate::nnops::session_options(ctx))
            .map_err(|e| OpError::Data(format!("{path}: ONNX Runtime cannot load it: {e}")))?;
        std::fs::write(ctx.out.join("model.onnx"), &bytes)?;
        let meta = serde_json::json!({"arch": "onnx", "input": i.name, "output": o.name, "inputs": i.shape[1], "outputs": o.shape.last().copied().flatten()});
        std::fs::write(ctx.out.join("model.json"), serde_json::to_string_pretty(&meta).expect("json"))?;
        Ok(())
    }
}

/// A model's logits on every row of a dataset, kept as soft targets.
pub struct Logits;

#[derive(Params)]
#[params(within(keep, model = "outputs"), agree(inputs = "width", model = "inputs"))]
pub struct LogitsParams {
    /// the model to run
    model: ModelDir,
    /// input rows
    inputs: DatasetDir,
    /// which logits to keep; `0..0` keeps all
    #[param(default = 0..0)]
    keep: Range<usize>,
}

impl Op for Logits {
    type Params = LogitsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "generate",
            "logits",
            1,
            Type::Dataset,
            "the model's logits on each input row, stored as soft targets `t`",
        )
        .yields(Yield::From("width", "inputs", "width"))
    }

    fn run(&self, ctx: &RunCtx, p: LogitsParams) -> Result<(), OpError> {
        let mut model = nnops::Inference::load(ctx, &p.model)?;
        let d = Dataset::read(&p.inputs)?;
        let keep = p.keep;
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

#[derive(Params)]
#[params(rules = markov_rules)]
pub struct MarkovParams {
    /// tokens per sequence
    #[param(default = 8, min = 1)]
    length: usize,
    /// vocabulary size
    #[param(default = 16, min = 2)]
    vocab: usize,
    /// spread of the logits (0: uniform sequences)
    #[param(default = 0.7, min = 0)]
    logit_std: f64,
    /// seed of the logits
    #[param(default = 0)]
    seed: i64,
}

/// The policy's logit table fits: the bound `Markov::init` enforces (its `MAX_TABLE`).
fn markov_rules() -> Vec<Check> {
    vec![Check::Rule {
        params: &["vocab", "length"],
        doc: "`length` × (`vocab` + 1)² × `vocab` is at most 2^24 logits",
        test: |v| {
            let vocab = v[0].as_i64().filter(|&n| n >= 2)? as u128;
            let length = v[1].as_i64().filter(|&n| n >= 1)? as u128;
            let n = length.saturating_mul((vocab + 1).saturating_mul(vocab + 1)).saturating_mul(vocab);
            (n > crate::markov::MAX_TABLE as u128).then(|| {
                format!(
                    "`vocab`: length {length} × (vocab {vocab} + 1)² × vocab is {n} logits, more than {}",
                    crate::markov::MAX_TABLE
                )
            })
        },
    }]
}

impl Op for MarkovOp {
    type Params = MarkovParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "markov",
            1,
            Type::Model,
            "a tabular policy over token sequences: a position-dependent second-order Markov chain, π(x_t | x_{t−2}, x_{t−1}) = softmax of logits drawn N(0, logit_std²) for every position and context; RL (`finetune.rl`) adds a learned bias per (position, token)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: MarkovParams) -> Result<(), OpError> {
        Markov::init(p.length, p.vocab, p.logit_std, p.seed as u64)?.save(ctx.out)
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

#[derive(Params)]
pub struct GoldRewardParams {
    /// the policy (`model.markov`) whose sequences it scores and under which it is standardised
    policy: ModelDir,
    /// hidden width of q and o
    #[param(default = 32, min = 1)]
    hidden: usize,
    /// weight of the penalty
    #[param(default = 0.5)]
    penalty: f64,
    /// attribute level (in standard deviations) where the penalty starts
    #[param(default = 0.5)]
    threshold: f64,
    /// correlation of the attribute with quality, in [−1, 1]
    #[param(default = 0.9, min = -1, max = 1)]
    correlation: f64,
    /// policy samples the standardisation uses
    #[param(default = 8192, min = 2)]
    samples: usize,
    /// seed of the two networks and of the samples
    #[param(default = 0)]
    seed: i64,
}

impl Op for GoldReward {
    type Params = GoldRewardParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "model",
            "gold_reward",
            1,
            Type::Model,
            "a synthetic gold reward over a policy's sequences: gold = q − penalty·relu(a − threshold)², standardised under the policy, where q and o are random 2-layer ReLU MLPs over one-hot (position, token) features, standardised under the policy, and the attribute a = correlation·q + √(1 − correlation²)·o; saved as an ONNX model (`x` one-hot features → `logits`)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: GoldRewardParams) -> Result<(), OpError> {
        let policy = Markov::from_arg(&p.policy, "policy")?;
        let hidden = p.hidden;
        let samples = p.samples;
        let rho = p.correlation;
        // Values of a `.lab` file are finite numbers: `penalty` and `threshold` are.
        let (penalty, threshold) = (p.penalty, p.threshold);
        let seed = p.seed;
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
            Ok(lab_nn::mlp_train::predict(m, &x, opts)?.iter().map(|&v| v as f64).collect())
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
