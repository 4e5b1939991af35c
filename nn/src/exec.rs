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

/// Runs `sess` on rows of `x` (`width` values each), 4,096 rows at a time, feeding the
/// input `input` and reading the f32 output `output`. Returns the outputs, row-major, and
/// their row width.
pub fn predict_rows(
    sess: &mut ort::session::Session,
    input: &str,
    output: &str,
    width: usize,
    x: &[f32],
) -> Result<(Vec<f32>, usize), NnError> {
    let w = width.max(1);
    let mut out = Vec::new();
    let mut k = 0;
    for chunk in x.chunks(4096 * w) {
        let n = (chunk.len() / w) as i64;
        let v = ort::value::Tensor::from_array((vec![n, w as i64], chunk.to_vec()))?;
        let r = sess.run(vec![(input, v)])?;
        let (shape, data) = r[output].try_extract_tensor::<f32>()?;
        k = *shape.last().unwrap_or(&0) as usize;
        out.extend_from_slice(data);
    }
    Ok((out, k))
}
