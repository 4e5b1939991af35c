//! Running graphs on host tensors: conversions between [`Tensor`] and ORT values, and a
//! one-shot runner for inference and tests.

use crate::NnError;
use crate::graph::Graph;
use crate::runtime::{SessionOptions, session};
use crate::tensor::{Data, Tensor};
use ort::value::DynValue;

/// A host tensor as an ORT value (copied).
pub fn to_ort(t: &Tensor) -> Result<DynValue, NnError> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Ok(match &t.data {
        Data::F32(v) => ort::value::Tensor::from_array((shape, v.clone()))?.into_dyn(),
        Data::F64(v) => ort::value::Tensor::from_array((shape, v.clone()))?.into_dyn(),
        Data::I64(v) => ort::value::Tensor::from_array((shape, v.clone()))?.into_dyn(),
    })
}

/// An ORT tensor value as a host tensor (copied).
pub fn from_ort(v: &DynValue) -> Result<Tensor, NnError> {
    if let Ok((shape, data)) = v.try_extract_tensor::<f32>() {
        return Ok(Tensor::f32(shape.iter().map(|&d| d as usize).collect(), data.to_vec()));
    }
    if let Ok((shape, data)) = v.try_extract_tensor::<f64>() {
        return Ok(Tensor::f64(shape.iter().map(|&d| d as usize).collect(), data.to_vec()));
    }
    if let Ok((shape, data)) = v.try_extract_tensor::<i64>() {
        return Ok(Tensor::i64(shape.iter().map(|&d| d as usize).collect(), data.to_vec()));
    }
    Err(NnError::Ort("an output is not a f32, f64 or i64 tensor".into()))
}

/// Runs `graph` once: `feeds` by input name, outputs in the graph's order.
pub fn run_graph(graph: &Graph, feeds: &[(&str, &Tensor)], opts: SessionOptions) -> Result<Vec<Tensor>, NnError> {
    let bytes = graph.to_onnx_bytes("");
    let mut s = session(&bytes, opts)?;
    run_session(&mut s, feeds)
}

/// Runs a session on host tensors; outputs in the session's order.
pub fn run_session(s: &mut ort::session::Session, feeds: &[(&str, &Tensor)]) -> Result<Vec<Tensor>, NnError> {
    let mut inputs: Vec<(String, DynValue)> = Vec::with_capacity(feeds.len());
    for (name, t) in feeds {
        inputs.push((name.to_string(), to_ort(t)?));
    }
    let names: Vec<String> = s.outputs().iter().map(|o| o.name().to_string()).collect();
    let out = s.run(inputs)?;
    names.iter().map(|n| from_ort(&out[n.as_str()])).collect()
}
