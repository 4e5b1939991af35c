//! Reading existing ONNX files: their inputs, outputs and initializers, so users can bring
//! their own models.

use crate::NnError;
use crate::onnx::{self, ModelProto};
use crate::tensor::Tensor;
use prost::Message;

/// An ONNX element type code (`TensorProto.DataType`) by name: `float`, `int64`, ….
pub fn elem_type_name(code: i32) -> String {
    let name = match code {
        1 => "float",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "double",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        0 => "an undeclared type",
        _ => return format!("element type {code}"),
    };
    name.to_string()
}

/// A declared shape in words: `[batch, 12, ?]`, `?` for a symbolic dimension.
pub fn shape_text(shape: &[Option<i64>]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect();
    format!("[{}]", dims.join(", "))
}

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
    /// The initializers stored in the file itself, with their values.
    pub initializers: Vec<(String, Tensor)>,
    /// Every initializer's name and shape, external ones included.
    pub initializer_shapes: Vec<(String, Vec<usize>)>,
    /// Initializers stored as external data, in files beside the model.
    pub external: Vec<ExternalData>,
    pub nodes: usize,
}

/// Where an initializer stored as external data keeps its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalData {
    pub tensor: String,
    /// The file, relative to the model's folder.
    pub location: String,
    pub offset: u64,
    /// `None`: to the end of the file.
    pub length: Option<u64>,
}

impl ModelInfo {
    /// Checks that every external data file lies inside `dir` (a plain relative path, no
    /// `..`, no link leading out), exists, and holds the bytes the model says; returns the
    /// distinct files, relative to `dir`.
    pub fn external_files(&self, dir: &std::path::Path) -> Result<Vec<String>, NnError> {
        let root = dir.canonicalize().map_err(|e| NnError::BadModel(format!("{}: {e}", dir.display())))?;
        let mut files: Vec<String> = Vec::new();
        for x in &self.external {
            let rel = std::path::Path::new(&x.location);
            let plain = rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
            if !plain || x.location.is_empty() {
                return Err(NnError::BadModel(format!(
                    "initializer `{}` keeps its data in `{}`, outside the model's folder; external data files must lie beside the model",
                    x.tensor, x.location
                )));
            }
            let path = root.join(rel);
            let real = path.canonicalize().map_err(|e| {
                NnError::BadModel(format!(
                    "initializer `{}` keeps its data in `{}`, which cannot be read: {e}",
                    x.tensor, x.location
                ))
            })?;
            if !real.starts_with(&root) || !real.is_file() {
                return Err(NnError::BadModel(format!(
                    "initializer `{}` keeps its data in `{}`, which is not a file inside the model's folder",
                    x.tensor, x.location
                )));
            }
            let size = real.metadata()?.len();
            let end = x.offset.saturating_add(x.length.unwrap_or(0));
            if end > size || x.offset > size {
                return Err(NnError::BadModel(format!(
                    "initializer `{}` needs bytes {}..{end} of `{}`, which holds {size}: the data file is truncated or belongs to another export",
                    x.tensor, x.offset, x.location
                )));
            }
            if !files.contains(&x.location) {
                files.push(x.location.clone());
            }
        }
        Ok(files)
    }
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
    let mut external = Vec::new();
    for t in &g.initializer {
        if t.data_location == onnx::EXTERNAL {
            let field = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.as_str());
            let number = |k: &str| -> Result<Option<u64>, NnError> {
                field(k)
                    .map(|v| {
                        v.parse::<u64>().map_err(|_| {
                            NnError::BadModel(format!(
                                "initializer `{}`: external data `{k}` is `{v}`, not a number",
                                t.name
                            ))
                        })
                    })
                    .transpose()
            };
            let location = field("location").ok_or_else(|| {
                NnError::BadModel(format!("initializer `{}` is external data without a `location`", t.name))
            })?;
            external.push(ExternalData {
                tensor: t.name.clone(),
                location: location.to_string(),
                offset: number("offset")?.unwrap_or(0),
                length: number("length")?,
            });
        } else {
            initializers.push((t.name.clone(), Tensor::from_proto(t)?));
        }
    }
    let initializer_shapes =
        g.initializer.iter().map(|t| (t.name.clone(), t.dims.iter().map(|&d| d.max(0) as usize).collect())).collect();
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
        initializer_shapes,
        external,
        nodes: g.node.len(),
    })
}
