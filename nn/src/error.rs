use thiserror::Error;

/// Failures of model building, loading and execution.
#[derive(Debug, Error)]
pub enum NnError {
    /// ONNX Runtime could not be found or loaded.
    #[error("ONNX Runtime is not available: {0}")]
    RuntimeMissing(String),
    /// The CUDA execution provider was asked for but cannot run here.
    #[error("the CUDA execution provider is not available: {0}")]
    CudaUnavailable(String),
    /// An error reported by ONNX Runtime.
    #[error("ONNX Runtime: {0}")]
    Ort(String),
    /// A model or weights file that cannot be read or does not fit its description.
    #[error("bad model: {0}")]
    BadModel(String),
    /// A graph that cannot be built or differentiated.
    #[error("graph: {0}")]
    Graph(String),
    /// A model's output is NaN or infinite.
    #[error("{0}")]
    NonFiniteOutput(String),
    /// A loss became NaN or infinite.
    #[error("loss is {value} at step {step}; lower the learning rate or check the data")]
    NonFinite { step: usize, value: f32 },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl NnError {
    /// Whether the machine, not the user's file, is at fault.
    pub fn blame_is_env(&self) -> bool {
        matches!(self, NnError::RuntimeMissing(_) | NnError::CudaUnavailable(_) | NnError::Io(_))
    }
}

impl From<ort::Error<ort::session::builder::SessionBuilder>> for NnError {
    fn from(e: ort::Error<ort::session::builder::SessionBuilder>) -> Self {
        NnError::Ort(e.to_string())
    }
}

impl From<ort::Error> for NnError {
    fn from(e: ort::Error) -> Self {
        NnError::Ort(e.to_string())
    }
}
