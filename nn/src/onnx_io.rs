//! Reading existing ONNX files: their inputs, outputs and initializers, so users can bring
//! their own models.

use crate::NnError;
use crate::onnx::{self, ModelProto};
use crate::tensor::Tensor;
use prost::Message;

/// A graph input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct IoInfo {
    pub name: String,
    /// ONNX `TensorProto.DataType` code (1 = float).
    pub elem_type: i32,
    /// `None` for a symbolic dimension (`N`, `batch`).
    pub shape: Vec<Option<i64>>,
}

/// What a model file declares.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub opset: i64,
    pub producer: String,
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
    pub initializers: Vec<(String, Tensor)>,
    pub nodes: usize,
}

fn io(v: &onnx::ValueInfoProto) -> IoInfo {
    let t = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
    IoInfo {
        name: v.name.clone(),
        elem_type: t.map_or(0, |t| t.elem_type),
        shape: t
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(onnx::dimension::Value::DimValue(v)) => Some(v),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Decodes an ONNX model. Graph inputs that are also initializers (older exporters list
/// weights as inputs) are not reported as inputs.
pub fn read(bytes: &[u8]) -> Result<ModelInfo, NnError> {
    let m = ModelProto::decode(bytes).map_err(|e| NnError::BadModel(format!("not an ONNX model: {e}")))?;
    let g = m.graph.as_ref().ok_or_else(|| NnError::BadModel("the ONNX model has no graph".into()))?;
    let mut initializers = Vec::new();
    for t in &g.initializer {
        initializers.push((t.name.clone(), Tensor::from_proto(t)?));
    }
    let init_names: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    Ok(ModelInfo {
        opset: m
            .opset_import
            .iter()
            .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .max()
            .unwrap_or(0),
        producer: m.producer_name.clone(),
        inputs: g.input.iter().filter(|i| !init_names.contains(&i.name.as_str())).map(io).collect(),
        outputs: g.output.iter().map(io).collect(),
        initializers,
        nodes: g.node.len(),
    })
}
