//! A model folder: the one place that knows its file names. Every model artifact holds
//! `model.json` (its architecture, `arch`, and sizes), and by architecture
//! `weights.safetensors`, a standalone `model.onnx` and `tokenizer.json`.

use crate::NnError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A model's folder (an artifact, or an op's output folder being written).
#[derive(Debug, Clone, Copy)]
pub struct ModelFolder<'a> {
    dir: &'a Path,
}

impl<'a> ModelFolder<'a> {
    /// The architecture and sizes.
    pub const META: &'static str = "model.json";
    /// The parameters, for models labrun trains.
    pub const WEIGHTS: &'static str = "weights.safetensors";
    /// The standalone inference graph (for language models, the decoder).
    pub const ONNX: &'static str = "model.onnx";

    pub fn new(dir: &'a Path) -> Self {
        ModelFolder { dir }
    }

    pub fn dir(&self) -> &'a Path {
        self.dir
    }

    pub fn meta_path(&self) -> PathBuf {
        self.dir.join(Self::META)
    }

    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(Self::WEIGHTS)
    }

    pub fn onnx_path(&self) -> PathBuf {
        self.dir.join(Self::ONNX)
    }

    /// Writes `model.json`.
    pub fn write_meta<T: Serialize>(&self, meta: &T) -> std::io::Result<()> {
        std::fs::write(self.meta_path(), serde_json::to_string_pretty(meta).expect("serialisable"))
    }

    /// Reads `model.json` as a `what` (e.g. "GPT description"), saying which file is wrong
    /// and why.
    pub fn read_meta<T: DeserializeOwned>(&self, what: &str) -> Result<T, NnError> {
        let path = self.meta_path();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            NnError::BadModel(format!("{} is not a model folder: cannot read {}: {e}", self.dir.display(), Self::META))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| NnError::BadModel(format!("{} is not a valid {what}: {e}", path.display())))
    }

    /// The architecture named in `model.json` (`mlp`, `gpt`, `import_lm`, `onnx`,
    /// `markov`, …).
    pub fn arch(&self) -> Result<String, NnError> {
        let v: serde_json::Value = self.read_meta("model description")?;
        Ok(v["arch"].as_str().unwrap_or("").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = ModelFolder::new(dir.path());
        let e = f.arch().unwrap_err().to_string();
        assert!(e.contains("is not a model folder") && e.contains("model.json"), "{e}");
        std::fs::write(f.meta_path(), "{not json").unwrap();
        assert!(f.arch().unwrap_err().to_string().contains("is not a valid model description"));
        f.write_meta(&serde_json::json!({"arch": "mlp", "inputs": 3})).unwrap();
        assert_eq!(f.arch().unwrap(), "mlp");
    }
}
