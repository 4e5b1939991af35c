//! Models as ONNX graphs, run by ONNX Runtime — for inference and for training.
//!
//! - [`graph`]: a small graph IR with shape inference, written as standard ONNX protobuf
//!   ([`onnx`], encoded with prost).
//! - [`autodiff`]: reverse-mode gradients over that IR, one rule per ONNX op.
//! - [`optim`]: optimizer steps (SGD, Adam/AdamW, clipping) as graph nodes, so one training
//!   step is one session run.
//! - [`mlp`]: the MLP architecture; [`gpt`]: the GPT decoder; [`train`]: the training
//!   loop shared by every model; [`lm`]: language-model objectives (next token, SFT,
//!   distillation, reward); [`reward`]: the Bradley–Terry loss they share with MLP
//!   reward models over features; [`weights`]: safetensors; [`tokenizer`]: text to token ids.
//! - [`decode`]: generation with a KV cache, log-probabilities and activations through
//!   GPT-2's ONNX decoder interface (labrun's models and imported ones).
//! - [`rl`]: policy-gradient training of MLP policies on a labelling environment.
//! - [`tree`]: decision trees over bits (random, learned, backdoored), exported with the
//!   `ai.onnx.ml` tree operators.
//! - [`folder`]: a model folder's files (`model.json`, weights, `model.onnx`).
//! - [`runtime`]: finding, installing and loading ONNX Runtime; sessions on CPU or CUDA.

pub mod autodiff;
pub mod decode;
mod device;
mod error;
pub mod exec;
pub mod folder;
pub mod gpt;
pub mod graph;
pub mod lm;
pub mod lowprob;
pub mod mlp;
pub mod mlp_train;
pub mod onnx;
pub mod onnx_io;
pub mod optim;
pub mod reward;
pub mod rl;
pub mod runtime;
pub mod tensor;
pub mod tokenizer;
pub mod train;
pub mod tree;
pub mod weights;

pub use device::Device;
pub use error::NnError;
pub use graph::{Graph, V};
pub use tensor::{DType, Tensor};
