//! `probe.*`: reading what a model computes inside.

use crate::lmops;
use crate::params::{Choice, DatasetDir, ModelDir, Params};
use crate::text::TextData;
use crate::{Op, OpError, Progress, Registry, RunCtx, Signature, Type};

pub fn register(r: &mut Registry) {
    r.add(Activations);
    r.add(InputGradients);
}

/// The file of an input-gradients artifact.
pub const GRADIENTS_FILE: &str = "gradients.safetensors";

/// Gradients of the loss on each completion with respect to the model's input.
pub struct InputGradients;

#[derive(Params)]
pub struct InputGradientsParams {
    /// a GPT built by labrun
    model: ModelDir,
    /// records with `prompt` and `completion`
    data: DatasetDir,
}

impl Op for InputGradients {
    type Params = InputGradientsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "probe",
            "input_gradients",
            1,
            Type::Activations,
            "for each record, the gradient of the mean next-token loss of its `completion` (after its `prompt`) with respect to the input token embeddings and to the one-hot tokens; stored as `d_embeddings` [positions, width] and `d_onehot` [positions, vocab] with per-record `offsets` in `gradients.safetensors`, and each input position's gradient norm as `saliency` in the records",
        )
    }

    fn run(&self, ctx: &RunCtx, p: InputGradientsParams) -> Result<(), OpError> {
        let model = lmops::load_gpt(&p.model, "model")?;
        let data = TextData::read(&p.data, "data")?;
        let pairs = lmops::pairs(&model.tokenizer, &data, "data")?;
        lmops::within_context(Some(model.spec.context), pairs.iter().map(|(p, c)| p.len() + c.len()), 0, "data")?;
        let mut grads = lab_nn::lm::InputGradients::new(&model, crate::nnops::session_options(ctx));
        let (mut de, mut doh, mut offsets) = (Vec::new(), Vec::new(), vec![0i64]);
        let mut out = data.clone();
        for (i, (p, c)) in pairs.iter().enumerate() {
            ctx.check_cancel()?;
            let seq: Vec<i64> = p.iter().chain(c).copied().collect();
            let (e, o) = grads.of(&seq, p.len().max(1)).map_err(|e| match e {
                lab_nn::NnError::BadModel(m) => OpError::invalid("data", format!("record {}: {m}", i + 1)),
                e => e.into(),
            })?;
            let d = model.spec.width;
            let ev = e.as_f32().expect("f32 gradients");
            let saliency: Vec<f64> =
                ev.chunks(d).map(|row| row.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt()).collect();
            out.records[i].insert("saliency".into(), serde_json::json!(saliency));
            de.extend_from_slice(ev);
            doh.extend_from_slice(o.as_f32().expect("f32 gradients"));
            offsets.push(offsets.last().copied().unwrap_or(0) + e.shape[0] as i64);
            (ctx.progress)(Progress { done: i as u64 + 1, total: pairs.len() as u64, message: String::new() });
        }
        let n = *offsets.last().unwrap_or(&0) as usize;
        lab_nn::weights::save(
            &ctx.out.join(GRADIENTS_FILE),
            &[
                ("d_embeddings".into(), lab_nn::Tensor::f32(vec![n, model.spec.width], de)),
                ("d_onehot".into(), lab_nn::Tensor::f32(vec![n, model.spec.vocab], doh)),
                ("offsets".into(), lab_nn::Tensor::i64(vec![offsets.len()], offsets)),
            ],
        )?;
        out.write(ctx.out)
    }
}

/// The file of an `Activations` artifact.
pub const ACTIVATIONS_FILE: &str = "activations.safetensors";

/// Residual-stream activations of a GPT.
pub struct Activations;

/// Which tokens' residual stream `probe.activations` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum Position {
    Last,
    Mean,
}

#[derive(Params)]
pub struct ActivationsParams {
    /// a GPT built by labrun
    model: ModelDir,
    /// records
    data: DatasetDir,
    /// the text field to read
    #[param(default = "text")]
    field: String,
    /// which layers (`[]`: all)
    #[param(default = vec![])]
    layers: Vec<usize>,
    /// `last` (the last token) or `mean` (mean over the tokens)
    #[param(default = Position::Last)]
    position: Position,
    /// records per model call
    #[param(default = 64, min = 1)]
    batch: usize,
}

impl Op for Activations {
    type Params = ActivationsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "probe",
            "activations",
            1,
            Type::Activations,
            "the residual stream of a GPT on each record's text, at chosen layers (0: the embeddings entering block 0; L: after the last block), at the last token or averaged over tokens; stored as `layer.{i}` [records, width] in `activations.safetensors`, with the records",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ActivationsParams) -> Result<(), OpError> {
        let model = lmops::load_gpt(&p.model, "model")?;
        let data = TextData::read(&p.data, "data")?;
        let texts = data.strings(&p.field, "data")?;
        let n_layers = model.spec.layers + 1;
        // Layers are at least 0 (the parameter's type); the model says how many there are.
        let layers: Vec<usize> = match &p.layers {
            l if l.is_empty() => (0..n_layers).collect(),
            l => l
                .iter()
                .map(|&i| {
                    Some(i).filter(|&i| i < n_layers).ok_or_else(|| {
                        OpError::invalid("layers", format!("has {i}; the model's layers are 0..={}", n_layers - 1))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mean = match p.position {
            Position::Last => false,
            Position::Mean => true,
        };
        let seqs: Vec<Vec<i64>> =
            texts.iter().map(|t| lmops::encode(&model.tokenizer, t, "data")).collect::<Result<_, _>>()?;
        if let Some(i) = seqs.iter().position(Vec::is_empty) {
            return Err(OpError::invalid("data", format!("record {} has an empty text", i + 1)));
        }
        lmops::within_context(Some(model.spec.context), seqs.iter().map(Vec::len), 0, "data")?;
        let d = model.spec.width;
        let mut dec = lmops::Lm::Own(model).decoder(ctx, true)?;
        let mut acts: Vec<Vec<f32>> = vec![Vec::with_capacity(seqs.len() * d); layers.len()];
        let batch = p.batch;
        for (ci, chunk) in seqs.chunks(batch).enumerate() {
            ctx.check_cancel()?;
            let (out, pad) = dec.full(chunk, true).map_err(|e| match e {
                lab_nn::NnError::BadModel(m) => OpError::invalid("data", m),
                e => e.into(),
            })?;
            for (li, &l) in layers.iter().enumerate() {
                let (_, h) = &out.hidden[l];
                for (r, s) in chunk.iter().enumerate() {
                    let row = |p: usize| &h[(r * pad.len + p) * d..(r * pad.len + p + 1) * d];
                    if mean {
                        let mut acc = vec![0f32; d];
                        for p in pad.pad[r]..pad.len {
                            acc.iter_mut().zip(row(p)).for_each(|(a, x)| *a += x);
                        }
                        acts[li].extend(acc.iter().map(|a| a / s.len() as f32));
                    } else {
                        acts[li].extend_from_slice(row(pad.len - 1));
                    }
                }
            }
            (ctx.progress)(Progress {
                done: ((ci + 1) * batch).min(seqs.len()) as u64,
                total: seqs.len() as u64,
                message: String::new(),
            });
        }
        let tensors: Vec<(String, lab_nn::Tensor)> = layers
            .iter()
            .zip(acts)
            .map(|(l, a)| (format!("layer.{l}"), lab_nn::Tensor::f32(vec![seqs.len(), d], a)))
            .collect();
        lab_nn::weights::save(&ctx.out.join(ACTIVATIONS_FILE), &tensors)?;
        data.write(ctx.out)
    }
}
