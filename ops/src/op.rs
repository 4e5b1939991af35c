use crate::params::Params;
use crate::{Signature, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use thiserror::Error;

/// An operation: its parameters (one type, see [`crate::params`]), a signature for the
/// checker and `run` for the engine.
pub trait Op: Send + Sync + 'static {
    /// Every parameter: names, types, defaults, docs and rules come from this type.
    type Params: Params;

    /// The op's name, version, output type, doc, cluster resources and output facts. Its
    /// parameters and rules are added from [`Op::Params`] by the registry.
    fn signature(&self) -> Signature;

    /// Computes the output artifact into `ctx.out` (an empty directory).
    fn run(&self, ctx: &RunCtx, params: Self::Params) -> Result<(), OpError>;
}

/// An op as the registry holds it: run from untyped arguments.
pub trait DynOp: Send + Sync {
    /// Checks `args` against the signature's rules, reads them into the op's parameters
    /// and runs it. `args` hold every parameter, defaults filled in.
    fn run_args(&self, sig: &Signature, ctx: &RunCtx, args: &Args) -> Result<(), OpError>;
}

impl<T: Op> DynOp for T {
    fn run_args(&self, sig: &Signature, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        sig.validate(args)?;
        let params = T::Params::from_args(args)?;
        Op::run(self, ctx, params)
    }
}

/// One argument as the op receives it.
#[derive(Debug, Clone)]
pub enum ArgIn {
    Value(Value),
    /// An artifact: the directory that holds it (read-only).
    Artifact(PathBuf),
    /// A list of artifacts.
    Artifacts(Vec<PathBuf>),
}

/// The arguments of one run, by parameter name.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub map: BTreeMap<String, ArgIn>,
}

impl Args {
    fn value(&self, name: &str) -> Result<&Value, OpError> {
        match self.map.get(name) {
            Some(ArgIn::Value(v)) => Ok(v),
            _ => Err(OpError::internal(format!("argument `{name}` is missing or not a value"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64, OpError> {
        self.value(name)?.as_i64().ok_or_else(|| OpError::internal(format!("`{name}` is not an integer")))
    }

    /// An integer that must be at least `min`.
    pub fn int_at_least(&self, name: &str, min: i64) -> Result<usize, OpError> {
        let v = self.int(name)?;
        if v < min {
            return Err(OpError::invalid(name, format!("must be at least {min}, got {v}")));
        }
        Ok(v as usize)
    }

    pub fn bool(&self, name: &str) -> Result<bool, OpError> {
        match self.value(name)? {
            Value::Bool(b) => Ok(*b),
            _ => Err(OpError::internal(format!("`{name}` is not a boolean"))),
        }
    }

    pub fn float(&self, name: &str) -> Result<f64, OpError> {
        self.value(name)?.as_f64().ok_or_else(|| OpError::internal(format!("`{name}` is not a number")))
    }

    pub fn str(&self, name: &str) -> Result<&str, OpError> {
        self.value(name)?.as_str().ok_or_else(|| OpError::internal(format!("`{name}` is not a string")))
    }

    pub fn range(&self, name: &str) -> Result<std::ops::Range<usize>, OpError> {
        match self.value(name)? {
            Value::Range { start, end } if *start >= 0 && start <= end => Ok(*start as usize..*end as usize),
            Value::Range { start, end } => {
                Err(OpError::invalid(name, format!("`{start}..{end}` is not a valid index range")))
            }
            _ => Err(OpError::internal(format!("`{name}` is not a range"))),
        }
    }

    pub fn ints(&self, name: &str) -> Result<Vec<i64>, OpError> {
        match self.value(name)? {
            Value::List(items) => items
                .iter()
                .map(|v| v.as_i64().ok_or_else(|| OpError::invalid(name, "must be a list of integers")))
                .collect(),
            _ => Err(OpError::internal(format!("`{name}` is not a list"))),
        }
    }

    /// A list of numbers (integers widen to floats).
    pub fn floats(&self, name: &str) -> Result<Vec<f64>, OpError> {
        match self.value(name)? {
            Value::List(items) => items
                .iter()
                .map(|v| v.as_f64().ok_or_else(|| OpError::invalid(name, "must be a list of numbers")))
                .collect(),
            _ => Err(OpError::internal(format!("`{name}` is not a list"))),
        }
    }

    pub fn strs(&self, name: &str) -> Result<Vec<String>, OpError> {
        match self.value(name)? {
            Value::List(items) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| OpError::invalid(name, "must be a list of strings"))
                })
                .collect(),
            _ => Err(OpError::internal(format!("`{name}` is not a list"))),
        }
    }

    pub fn artifact(&self, name: &str) -> Result<&Path, OpError> {
        match self.map.get(name) {
            Some(ArgIn::Artifact(p)) => Ok(p),
            _ => Err(OpError::internal(format!("argument `{name}` is not an artifact"))),
        }
    }

    pub fn artifacts(&self, name: &str) -> Result<&[PathBuf], OpError> {
        match self.map.get(name) {
            Some(ArgIn::Artifacts(p)) => Ok(p),
            // An optional list left at its default `[]`.
            Some(ArgIn::Value(Value::List(v))) if v.is_empty() => Ok(&[]),
            _ => Err(OpError::internal(format!("argument `{name}` is not a list of artifacts"))),
        }
    }
}

/// Progress of a running op, shown by the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    /// e.g. `loss 0.312`
    pub message: String,
}

/// Where and how an op runs.
pub struct RunCtx<'a> {
    /// An empty directory the op writes its artifact into.
    pub out: &'a Path,
    /// Threads the op may use (ONNX Runtime intra-op threads).
    pub threads: usize,
    /// The execution provider for model ops.
    pub device: crate::Device,
    pub progress: &'a (dyn Fn(Progress) + Sync),
    pub cancel: &'a AtomicBool,
}

impl RunCtx<'_> {
    /// Fails with [`OpError::Cancelled`] once the user asked to stop; long loops call it.
    pub fn check_cancel(&self) -> Result<(), OpError> {
        if self.cancel.load(Ordering::Relaxed) { Err(OpError::Cancelled) } else { Ok(()) }
    }
}

/// Who is to blame for a failure; picks the exit code and the wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The `.lab` file or its data: exit 1.
    User,
    /// The machine: missing library, full disk: exit 2.
    Environment,
    /// A bug in labrun.
    Internal,
}

#[derive(Debug, Error)]
pub enum OpError {
    #[error("argument `{name}` {message}")]
    Invalid { name: String, message: String },
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    Numeric(String),
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Nn(#[from] lab_nn::NnError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl OpError {
    pub fn invalid(name: &str, message: impl Into<String>) -> Self {
        OpError::Invalid { name: name.into(), message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        OpError::Internal(message.into())
    }

    pub fn blame(&self) -> Blame {
        match self {
            OpError::Invalid { .. } | OpError::Data(_) | OpError::Numeric(_) => Blame::User,
            OpError::Cancelled => Blame::User,
            OpError::Nn(e) => match e.blame_is_env() {
                true => Blame::Environment,
                false => Blame::User,
            },
            OpError::Io(_) => Blame::Environment,
            OpError::Internal(_) => Blame::Internal,
        }
    }
}
