//! Named weights as safetensors files.

use crate::NnError;
use crate::tensor::{Data, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;

/// Writes named tensors; names keep their order in the file's header (sorted).
pub fn save(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), NnError> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| t.to_le_bytes()).collect();
    let mut views = Vec::new();
    for ((name, t), b) in tensors.iter().zip(&bytes) {
        let dt = match t.data {
            Data::F32(_) => Dtype::F32,
            Data::F64(_) => Dtype::F64,
            Data::I64(_) => Dtype::I64,
        };
        views.push((
            name.clone(),
            TensorView::new(dt, t.shape.clone(), b).map_err(|e| NnError::BadModel(e.to_string()))?,
        ));
    }
    safetensors::serialize_to_file(views, None, path).map_err(|e| NnError::BadModel(format!("{}: {e}", path.display())))
}

/// Reads every tensor of a safetensors file, sorted by name.
pub fn load(path: &Path) -> Result<Vec<(String, Tensor)>, NnError> {
    let bytes = std::fs::read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| NnError::BadModel(format!("{} is not a valid safetensors file: {e}", path.display())))?;
    let mut out = Vec::new();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    for name in names {
        let v = st.tensor(&name).map_err(|e| NnError::BadModel(e.to_string()))?;
        let shape = v.shape().to_vec();
        let t = match v.dtype() {
            Dtype::F32 => Tensor::f32(
                shape,
                v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            ),
            Dtype::F64 => Tensor::f64(
                shape,
                v.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            ),
            Dtype::I64 => Tensor::i64(
                shape,
                v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
            ),
            other => {
                return Err(NnError::BadModel(format!(
                    "{}: tensor `{name}` has unsupported type {other:?}",
                    path.display()
                )));
            }
        };
        out.push((name, t));
    }
    Ok(out)
}

/// Takes from `loaded` the tensor of each (name, shape) in `shapes`, in that order, checking
/// that it exists and is f32 of that shape; `dir` names the model in errors.
pub fn take_params(
    mut loaded: Vec<(String, Tensor)>,
    shapes: Vec<(String, Vec<usize>)>,
    dir: &Path,
) -> Result<Vec<(String, Tensor)>, NnError> {
    let mut params = Vec::with_capacity(shapes.len());
    for (name, shape) in shapes {
        let i = loaded
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or_else(|| NnError::BadModel(format!("{}: weights lack `{name}`", dir.display())))?;
        let (n, t) = loaded.swap_remove(i);
        if t.shape != shape || t.dtype() != crate::tensor::DType::F32 {
            return Err(NnError::BadModel(format!(
                "{}: `{n}` is {:?} {:?}, expected f32 {shape:?}",
                dir.display(),
                t.dtype(),
                t.shape
            )));
        }
        params.push((n, t));
    }
    Ok(params)
}
