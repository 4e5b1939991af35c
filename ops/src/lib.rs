//! labrun's ops. Each op declares a [`Signature`] (read by the type checker) and a
//! `run` (called by the engine); [`registry`] lists them all, one family per file.
//!
//! Artifacts are directories: a `Dataset` holds `data.safetensors` (`x`: f32 [n, d],
//! optional `y`: i64 [n] labels, optional `t`: f32 [n, k] soft targets); a `Model` holds
//! `model.json`, `weights.safetensors` and a standalone inference `model.onnx`;
//! `Metrics` hold `metrics.json`; a `Figure` holds `figure.svg`. Text datasets hold
//! `data.jsonl` ([`text`]); language models hold `model.json` (`arch` `gpt` or
//! `import_lm`), `tokenizer.json`, a decoder `model.onnx` with GPT-2's interface, and for
//! trained GPTs `weights.safetensors` and `train_log.json`.

// The derives name this crate by its path, inside it as outside.
extern crate self as lab_ops;

pub mod artifact;
pub mod backdoor;
pub mod best_of_n;
pub mod bigbench;
pub mod curve;
mod lmops;
pub mod lowprob;
pub mod markov;
mod moments;
pub mod monitor;
mod nnops;
mod op;
pub mod params;
mod registry;
pub mod rl;
mod signature;
pub mod trees;
mod types;
mod value;

pub mod data;
pub mod estimate;
pub mod filter;
pub mod finetune;
pub mod fit;
pub mod generate;
pub mod model;
pub mod probe;
pub mod report;
pub mod score;
pub mod svg;
pub mod text;

/// Where model ops run.
pub use lab_nn::Device;

/// The ONNX Runtime version, if a model op has loaded it in this process.
pub fn runtime_version() -> Option<String> {
    lab_nn::runtime::loaded().map(|i| i.version.clone())
}

pub use op::{ArgIn, Args, Blame, DynOp, Op, OpError, Progress, RunCtx};
pub use registry::{Registry, registry};
pub use signature::{Broken, Check, ParamSpec, Resources, Signature, Yield, fmt_bytes, fmt_num};
pub use types::Type;
pub use value::Value;
