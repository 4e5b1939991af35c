//! Reading and writing artifacts: datasets as safetensors, metrics as JSON.

use crate::OpError;
use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::BTreeMap;
use std::path::Path;

/// Rows of inputs with optional hard labels and soft targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Inputs, one row per example.
    pub x: Array2<f32>,
    /// Class labels.
    pub y: Option<Array1<i64>>,
    /// Soft targets (e.g. a teacher's logits), one row per example.
    pub t: Option<Array2<f32>>,
}

const DATA_FILE: &str = "data.safetensors";

impl Dataset {
    pub fn rows(&self) -> usize {
        self.x.nrows()
    }

    /// A comparison dataset's rows `idx` (each the preferred features, then the other's),
    /// split into the preferred halves and the other halves, row-major.
    pub fn comparison_halves(&self, idx: impl ExactSizeIterator<Item = usize>) -> (Vec<f32>, Vec<f32>) {
        let f = self.x.ncols() / 2;
        let (mut better, mut worse) = (Vec::with_capacity(idx.len() * f), Vec::with_capacity(idx.len() * f));
        for i in idx {
            let row = self.x.row(i);
            better.extend(row.iter().take(f));
            worse.extend(row.iter().skip(f).take(f));
        }
        (better, worse)
    }

    /// Keeps the rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(ndarray::Axis(0), idx),
            y: self.y.as_ref().map(|y| y.select(ndarray::Axis(0), idx)),
            t: self.t.as_ref().map(|t| t.select(ndarray::Axis(0), idx)),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<(), OpError> {
        let x = self.x.as_standard_layout();
        let xb = f32_bytes(x.as_slice().unwrap());
        let mut views = vec![("x".to_string(), TensorView::new(Dtype::F32, x.shape().to_vec(), &xb).map_err(st)?)];
        let yb;
        if let Some(y) = &self.y {
            yb = y.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
            views.push(("y".into(), TensorView::new(Dtype::I64, vec![y.len()], &yb).map_err(st)?));
        }
        let tb;
        if let Some(t) = &self.t {
            let t = t.as_standard_layout();
            tb = f32_bytes(t.as_slice().unwrap());
            views.push(("t".into(), TensorView::new(Dtype::F32, t.shape().to_vec(), &tb).map_err(st)?));
        }
        safetensors::serialize_to_file(views, None, &dir.join(DATA_FILE)).map_err(st)?;
        Ok(())
    }

    pub fn read(dir: &Path) -> Result<Dataset, OpError> {
        let path = dir.join(DATA_FILE);
        if !path.exists() && crate::text::TextData::is_text(dir) {
            return Err(OpError::Data(format!(
                "{} holds text records (`data.jsonl`), not numeric rows; this op needs rows of numbers",
                dir.display()
            )));
        }
        let bytes = std::fs::read(&path)?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| OpError::Data(format!("{} is not a valid dataset: {e}", path.display())))?;
        let x =
            matrix(&st, "x", &path)?.ok_or_else(|| OpError::Data(format!("{} has no `x` tensor", path.display())))?;
        let y = match st.tensor("y") {
            Ok(v) if v.dtype() == Dtype::I64 => Some(Array1::from_vec(
                v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
            )),
            Ok(_) => return Err(OpError::Data(format!("{}: `y` must be i64", path.display()))),
            Err(_) => None,
        };
        let t = matrix(&st, "t", &path)?;
        for (name, n) in [("y", y.as_ref().map(|y| y.len())), ("t", t.as_ref().map(|t| t.nrows()))] {
            if let Some(n) = n.filter(|&n| n != x.nrows()) {
                return Err(OpError::Data(format!(
                    "{}: `{name}` has {n} rows but `x` has {}",
                    path.display(),
                    x.nrows()
                )));
            }
        }
        Ok(Dataset { x, y, t })
    }
}

fn st(e: safetensors::SafeTensorError) -> OpError {
    match e {
        // A full disk or a permission problem is the machine's, not the data's.
        safetensors::SafeTensorError::IoError(io) => OpError::Io(io),
        other => OpError::Data(format!("safetensors: {other}")),
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

fn matrix(st: &safetensors::SafeTensors, name: &str, path: &Path) -> Result<Option<Array2<f32>>, OpError> {
    let Ok(v) = st.tensor(name) else { return Ok(None) };
    if v.dtype() != Dtype::F32 || v.shape().len() != 2 {
        return Err(OpError::Data(format!("{}: `{name}` must be a 2-D f32 tensor", path.display())));
    }
    let data: Vec<f32> = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    Array2::from_shape_vec((v.shape()[0], v.shape()[1]), data)
        .map(Some)
        .map_err(|e| OpError::Data(format!("{}: {e}", path.display())))
}

/// Named numbers (and lists of numbers) that a score produces.
pub type Metrics = BTreeMap<String, serde_json::Value>;

const METRICS_FILE: &str = "metrics.json";

pub fn write_metrics(dir: &Path, m: &Metrics) -> Result<(), OpError> {
    let text = serde_json::to_string_pretty(m).map_err(|e| OpError::internal(e.to_string()))?;
    std::fs::write(dir.join(METRICS_FILE), text)?;
    Ok(())
}

/// A JSON object from a file of an artifact.
pub fn read_json(path: &Path) -> Result<Metrics, OpError> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| OpError::Data(format!("{} is not valid JSON: {e}", path.display())))
}

pub fn read_metrics(dir: &Path) -> Result<Metrics, OpError> {
    let path = dir.join(METRICS_FILE);
    let text = std::fs::read_to_string(&path)?;
    serde_json::from_str(&text).map_err(|e| OpError::Data(format!("{} is not valid metrics JSON: {e}", path.display())))
}

/// The file a `Figure` artifact (and a fit's drawing) is written to.
pub const FIGURE_FILE: &str = "figure.svg";

/// The drawing of an artifact, if it holds one (figures, fits).
pub fn figure(dir: &Path) -> Option<std::path::PathBuf> {
    Some(dir.join(FIGURE_FILE)).filter(|p| p.is_file())
}

/// An artifact's metrics as JSON, if it holds readable ones.
pub fn metrics_json(dir: &Path) -> Option<serde_json::Value> {
    read_metrics(dir).ok().map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

/// The number `name` in a metrics artifact.
pub fn metric(m: &Metrics, name: &str) -> Result<f64, OpError> {
    m.get(name).and_then(|v| v.as_f64()).ok_or_else(|| {
        let have: Vec<&str> = m.keys().map(String::as_str).collect();
        OpError::invalid("metric", format!("`{name}` is not in these metrics (they have: {})", have.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dataset {
            x: Array2::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as f32 - 0.5),
            y: Some(Array1::from_vec(vec![1, 0, 2])),
            t: Some(Array2::from_elem((3, 4), 0.25)),
        };
        d.write(dir.path()).unwrap();
        assert_eq!(Dataset::read(dir.path()).unwrap(), d);
    }

    #[test]
    fn corrupt_dataset_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DATA_FILE), b"\x10\0\0\0\0\0\0\0{garbage").unwrap();
        assert!(matches!(Dataset::read(dir.path()), Err(OpError::Data(_))));
    }
}
