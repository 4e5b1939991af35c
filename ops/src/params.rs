//! The op contract: an op's parameters are one Rust type.
//!
//! `#[derive(Params)]` (from `lab-derive`) on a struct gives the [`ParamSpec`]s the checker
//! reads (names, types, defaults, docs), the [`Check`]s `labrun check` enforces, and the
//! typed value `run` receives. Each field's Rust type says what the `.lab` file may pass
//! ([`ParamType`]): `i64`, `usize` (an integer ≥ 0), `f64`, `bool`, `String`, `Range<usize>`,
//! lists of these, a [`Choice`](lab_derive::Choice) enum, a file ([`FilePath`]) or folder
//! ([`DirPath`]), or an artifact made by another step ([`ModelDir`], [`DatasetDir`], …).
//!
//! A complete op:
//!
//! ```ignore
//! #[derive(Params)]
//! pub struct TakeParams {
//!     /// the dataset
//!     data: DatasetDir,
//!     /// rows to keep
//!     count: usize,
//!     /// random seed
//!     #[param(default = 0)]
//!     seed: i64,
//! }
//!
//! pub struct Take;
//!
//! impl Op for Take {
//!     type Params = TakeParams;
//!     fn signature(&self) -> Signature {
//!         Signature::new("filter", "take", 1, Type::Dataset, "a random subset of `count` rows")
//!     }
//!     fn run(&self, ctx: &RunCtx, p: TakeParams) -> Result<(), OpError> { … }
//! }
//! ```

use crate::{Args, Check, OpError, ParamSpec, Type, Value};
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};

pub use lab_derive::{Choice, Params};

/// An op's parameters: what `#[derive(Params)]` implements.
pub trait Params: Sized {
    /// Appends one spec per parameter, in field order.
    fn specs(out: &mut Vec<ParamSpec>);
    /// Appends the rules the arguments must follow.
    fn checks(out: &mut Vec<Check>);
    /// The typed parameters of one run, read from arguments the checker already accepted.
    fn from_args(args: &Args) -> Result<Self, OpError>;
}

/// A Rust type that can be a parameter: its `.lab` type, the rules that type implies, and
/// how to read an argument of it.
pub trait ParamType: Sized {
    fn ty() -> Type;
    /// Rules every argument of this type follows (`usize`: at least 0), unless the field
    /// declares its own lower bound (`has_min`).
    fn implied(_name: &'static str, _has_min: bool, _out: &mut Vec<Check>) {}
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError>;
}

/// A parameter type that can have a default: a value known before the run.
pub trait ValueParam: ParamType {
    fn to_value(&self) -> Value;
}

/// What a default written in `#[param(default = …)]` may be for a field of this type: the
/// type itself, and literals that read naturally (`10` for a count or a rate, `"a"` for a
/// string). Each type has one impl per kind of literal, so a literal's type is inferred.
pub trait FromDefault<T> {
    fn from_default(v: T) -> Self;
}

macro_rules! same_default {
    ($($t:ty),*) => {$(
        impl FromDefault<$t> for $t {
            fn from_default(v: $t) -> Self {
                v
            }
        }
    )*};
}

same_default!(i64, f64, bool, String, Range<usize>, Vec<i64>, Vec<usize>, Vec<f64>, Vec<String>);

impl FromDefault<i64> for usize {
    fn from_default(v: i64) -> Self {
        usize::try_from(v).expect("a count's default is at least 0")
    }
}

impl FromDefault<i64> for f64 {
    fn from_default(v: i64) -> Self {
        v as f64
    }
}

impl FromDefault<&str> for String {
    fn from_default(v: &str) -> Self {
        v.to_string()
    }
}

/// Sets the default of the parameter `name` among `specs` (the `defaults(…)` of a
/// flattened field). A name that is not there is a bug in the op's declaration, found when
/// the registry is built.
pub fn set_default(specs: &mut [ParamSpec], name: &str, value: Value) {
    let spec = specs
        .iter_mut()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("`defaults({name} = …)` names no parameter of the flattened type"));
    let value = match (&spec.ty, value) {
        (Type::Float, Value::Int(i)) => Value::Float(i as f64),
        (_, v) => v,
    };
    assert!(spec.ty.accepts(&value.type_of()), "the default of `{name}` is not a {}", spec.ty);
    spec.default = Some(value);
}

/// The message for a string that is none of a [`Choice`]'s options.
pub fn not_an_option(got: &str, options: &[&str]) -> String {
    let list = options.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ");
    format!("is `{got}`; it takes {list}")
}

fn min0(name: &'static str, has_min: bool, out: &mut Vec<Check>) {
    if !has_min {
        out.push(Check::Min { param: name, min: 0.0, strict: false });
    }
}

impl ParamType for i64 {
    fn ty() -> Type {
        Type::Int
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.int(name)
    }
}

impl ValueParam for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}

/// A count or a size: an integer that is at least 0.
impl ParamType for usize {
    fn ty() -> Type {
        Type::Int
    }
    fn implied(name: &'static str, has_min: bool, out: &mut Vec<Check>) {
        min0(name, has_min, out)
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        let v = args.int(name)?;
        usize::try_from(v).map_err(|_| OpError::invalid(name, format!("must be at least 0, got {v}")))
    }
}

impl ValueParam for usize {
    fn to_value(&self) -> Value {
        Value::Int(*self as i64)
    }
}

impl ParamType for f64 {
    fn ty() -> Type {
        Type::Float
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.float(name)
    }
}

impl ValueParam for f64 {
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
}

impl ParamType for bool {
    fn ty() -> Type {
        Type::Bool
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.bool(name)
    }
}

impl ValueParam for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl ParamType for String {
    fn ty() -> Type {
        Type::Str
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.str(name).map(str::to_string)
    }
}

impl ValueParam for String {
    fn to_value(&self) -> Value {
        Value::Str(self.clone())
    }
}

/// A half-open range of indices, `a..b` with `0 ≤ a ≤ b`.
impl ParamType for Range<usize> {
    fn ty() -> Type {
        Type::Range
    }
    fn implied(name: &'static str, has_min: bool, out: &mut Vec<Check>) {
        min0(name, has_min, out)
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.range(name)
    }
}

impl ValueParam for Range<usize> {
    fn to_value(&self) -> Value {
        Value::Range { start: self.start as i64, end: self.end as i64 }
    }
}

impl ParamType for Vec<i64> {
    fn ty() -> Type {
        Type::list(Type::Int)
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.ints(name)
    }
}

impl ValueParam for Vec<i64> {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|&i| Value::Int(i)).collect())
    }
}

/// Counts or sizes: integers that are each at least 0.
impl ParamType for Vec<usize> {
    fn ty() -> Type {
        Type::list(Type::Int)
    }
    fn implied(name: &'static str, has_min: bool, out: &mut Vec<Check>) {
        min0(name, has_min, out)
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.ints(name)?
            .into_iter()
            .map(|v| {
                usize::try_from(v).map_err(|_| OpError::invalid(name, format!("must each be at least 0, got {v}")))
            })
            .collect()
    }
}

impl ValueParam for Vec<usize> {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|&i| Value::Int(i as i64)).collect())
    }
}

impl ParamType for Vec<f64> {
    fn ty() -> Type {
        Type::list(Type::Float)
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.floats(name)
    }
}

impl ValueParam for Vec<f64> {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|&x| Value::Float(x)).collect())
    }
}

impl ParamType for Vec<String> {
    fn ty() -> Type {
        Type::list(Type::Str)
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.strs(name)
    }
}

impl ValueParam for Vec<String> {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(|s| Value::Str(s.clone())).collect())
    }
}

macro_rules! path_param {
    ($(#[$doc:meta])* $name:ident, $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub PathBuf);

        impl Deref for $name {
            type Target = Path;
            fn deref(&self) -> &Path {
                &self.0
            }
        }

        impl AsRef<Path> for $name {
            fn as_ref(&self) -> &Path {
                &self.0
            }
        }

        impl ParamType for $name {
            fn ty() -> Type {
                Type::$ty
            }
            fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
                path_arg(args, name).map($name)
            }
        }
    };
}

/// A `Path` or `Dir` argument: the absolute path lowering resolved it to.
fn path_arg(args: &Args, name: &'static str) -> Result<PathBuf, OpError> {
    Ok(PathBuf::from(args.str(name)?))
}

path_param!(
    /// A file named in the `.lab` file (relative to it); its content is part of the key.
    FilePath,
    Path
);
path_param!(
    /// A file or a folder named in the `.lab` file; everything in it is part of the key.
    DirPath,
    Dir
);

macro_rules! artifact_param {
    ($(#[$doc:meta])* $name:ident, $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub PathBuf);

        impl Deref for $name {
            type Target = Path;
            fn deref(&self) -> &Path {
                &self.0
            }
        }

        impl AsRef<Path> for $name {
            fn as_ref(&self) -> &Path {
                &self.0
            }
        }

        impl ParamType for $name {
            fn ty() -> Type {
                Type::$ty
            }
            fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
                Ok($name(args.artifact(name)?.to_path_buf()))
            }
        }

        impl ParamType for Vec<$name> {
            fn ty() -> Type {
                Type::list(Type::$ty)
            }
            fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
                Ok(args.artifacts(name)?.iter().cloned().map($name).collect())
            }
        }

        impl FromDefault<Vec<$name>> for Vec<$name> {
            fn from_default(v: Vec<$name>) -> Self {
                v
            }
        }

        /// Only the empty list: an optional list of inputs.
        impl ValueParam for Vec<$name> {
            fn to_value(&self) -> Value {
                assert!(self.is_empty(), "a list of artifacts has no default but `[]`");
                Value::List(Vec::new())
            }
        }
    };
}

artifact_param!(
    /// A `Dataset` made by another step: the folder that holds it.
    DatasetDir,
    Dataset
);
artifact_param!(
    /// A `Model` made by another step: its folder .
    ModelDir,
    Model
);
artifact_param!(
    /// `Activations` made by another step.
    ActivationsDir,
    Activations
);
artifact_param!(
    /// A `Probe` made by another step.
    ProbeDir,
    Probe
);
artifact_param!(
    /// `Metrics` (or an `Estimate`, a `Fit`, a `Curve`: results with metrics).
    MetricsDir,
    Metrics
);
artifact_param!(
    /// An `Estimate` made by another step.
    EstimateDir,
    Estimate
);
artifact_param!(
    /// A `Fit` made by another step.
    FitDir,
    Fit
);
artifact_param!(
    /// A `Curve` made by another step.
    CurveDir,
    Curve
);
artifact_param!(
    /// A `Figure` made by another step.
    FigureDir,
    Figure
);
