//! Models as ONNX graphs, run by ONNX Runtime — for inference and for training.
//!
//! - [`graph`]: a small graph IR with shape inference, written as standard ONNX protobuf
//!   ([`onnx`], encoded with prost).
//! - [`autodiff`]: reverse-mode gradients over that IR, one rule per ONNX op.
//! - [`optim`]: optimizer steps (SGD, Adam/AdamW, clipping) as graph nodes, so one training
//!   step is one session run.
//! - [`mlp`]: the MLP architecture; [`train`]: the training loop; [`weights`]: safetensors.
//! - [`runtime`]: finding, installing and loading ONNX Runtime; sessions on CPU or CUDA.

pub mod autodiff;
mod device;
mod error;
pub mod exec;
pub mod graph;
pub mod mlp;
pub mod onnx;
pub mod onnx_io;
pub mod optim;
pub mod runtime;
pub mod tensor;
pub mod train;
pub mod weights;

pub use device::Device;
pub use error::NnError;
pub use graph::{Graph, V};
pub use tensor::{DType, Tensor};
