//! The op contract: an op's parameters are one Rust type.
//!
//! `#[derive(Params)]` (from `lab-derive`) on a struct gives the [`ParamSpec`]s the checker
//! reads (names, types, defaults, docs), the [`Check`]s `labrun check` enforces, and the
//! typed value `run` receives. Each field's Rust type says what the `.lab` file may pass
//! ([`ParamType`]): `i64`, `usize` (an integer ≥ 0), `f64`, `bool`, `String`, `Range<usize>`,
//! lists of these, an enum of options ([`Options`], `#[derive(Choice)]`), a file ([`FilePath`]) or folder
//! ([`DirPath`]), or artifacts made by other steps ([`ModelDir`], [`DatasetDir`], …; lists of
//! them, and [`Grid`]s for lists of lists).
//!
//! A complete op:
//!
//! ```
//! use lab_ops::params::{DatasetDir, Params};
//! use lab_ops::{Op, OpError, RunCtx, Signature, Type};
//!
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
//!     fn run(&self, _ctx: &RunCtx, p: TakeParams) -> Result<(), OpError> {
//!         let _rows = (p.data, p.count, p.seed); // read p.data, write ctx.out
//!         Ok(())
//!     }
//! }
//!
//! // Declared once: the parameters, their types and defaults, and the rules they imply.
//! let mut specs = Vec::new();
//! TakeParams::specs(&mut specs);
//! let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
//! assert_eq!(names, ["data", "count", "seed"]);
//! let mut rules = Vec::new();
//! TakeParams::checks(&mut rules);
//! assert!(!rules.is_empty(), "`count: usize` is at least 0");
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

/// The message for a string that is none of an enum's options.
pub fn not_an_option(got: &str, options: &[&str]) -> String {
    let list = options.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ");
    format!("is `{got}`; it takes {list}")
}

fn min0(name: &'static str, has_min: bool, out: &mut Vec<Check>) {
    if !has_min {
        out.push(Check::Min { param: name, min: 0.0, strict: false });
    }
}

/// A plain value type: its `.lab` type, how an argument is read, how a default is written,
/// and (for counts) the rule it implies.
macro_rules! value_param {
    ($t:ty, $ty:expr, |$args:ident, $name:ident| $read:expr, |$v:ident| $value:expr $(, implied $implied:ident)?) => {
        impl ParamType for $t {
            fn ty() -> Type {
                $ty
            }
            $(fn implied(name: &'static str, has_min: bool, out: &mut Vec<Check>) {
                $implied(name, has_min, out)
            })?
            fn from_arg($args: &Args, $name: &'static str) -> Result<Self, OpError> {
                $read
            }
        }

        impl ValueParam for $t {
            fn to_value(&self) -> Value {
                let $v = self;
                $value
            }
        }
    };
}

/// A count or a size as the op receives it; the rule `≥ 0` was checked before the run.
fn count(v: i64, name: &str) -> Result<usize, OpError> {
    usize::try_from(v).map_err(|_| OpError::invalid(name, format!("must be at least 0, got {v}")))
}

value_param!(i64, Type::Int, |args, name| args.int(name), |v| Value::Int(*v));
value_param!(usize, Type::Int, |args, name| count(args.int(name)?, name), |v| Value::Int(*v as i64), implied min0);
value_param!(f64, Type::Float, |args, name| args.float(name), |v| Value::Float(*v));
value_param!(bool, Type::Bool, |args, name| args.bool(name), |v| Value::Bool(*v));
value_param!(String, Type::Str, |args, name| args.str(name).map(str::to_string), |v| Value::Str(v.clone()));
// A half-open range of indices, `a..b` with `0 ≤ a ≤ b`.
value_param!(
    Range<usize>,
    Type::Range,
    |args, name| args.range(name),
    |v| Value::Range { start: v.start as i64, end: v.end as i64 },
    implied min0
);
value_param!(Vec<i64>, Type::list(Type::Int), |args, name| args.ints(name), |v| Value::List(
    v.iter().map(|&i| Value::Int(i)).collect()
));
value_param!(
    Vec<usize>,
    Type::list(Type::Int),
    |args, name| args.ints(name)?.into_iter().map(|v| count(v, name)).collect(),
    |v| Value::List(v.iter().map(|&i| Value::Int(i as i64)).collect()),
    implied min0
);
value_param!(Vec<f64>, Type::list(Type::Float), |args, name| args.floats(name), |v| Value::List(
    v.iter().map(|&x| Value::Float(x)).collect()
));
value_param!(Vec<String>, Type::list(Type::Str), |args, name| args.strs(name), |v| Value::List(
    v.iter().map(|s| Value::Str(s.clone())).collect()
));

/// A string parameter with fixed options, as an enum: what `#[derive(Choice)]` implements,
/// and what labrun's own option enums of `lab_nn` implement below. `check` reports any other
/// string at its argument.
pub trait Options: Copy + std::str::FromStr<Err = String> {
    /// Every option, as a `.lab` file writes it.
    const OPTIONS: &'static [&'static str];
    /// The option as a `.lab` file writes it.
    fn as_str(self) -> &'static str;
}

impl<T: Options> ParamType for T {
    fn ty() -> Type {
        Type::Str
    }
    fn implied(name: &'static str, _has_min: bool, out: &mut Vec<Check>) {
        out.push(Check::OneOf { param: name, options: T::OPTIONS });
    }
    fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
        args.str(name)?.parse().map_err(|e: String| OpError::invalid(name, e))
    }
}

impl<T: Options> ValueParam for T {
    fn to_value(&self) -> Value {
        Value::Str(self.as_str().into())
    }
}

impl<T: Options> FromDefault<T> for T {
    fn from_default(v: T) -> Self {
        v
    }
}

/// The option enums of `lab_nn`, whose names live there.
macro_rules! nn_options {
    ($($t:ty),*) => {$(
        impl Options for $t {
            const OPTIONS: &'static [&'static str] = <$t>::OPTIONS;
            fn as_str(self) -> &'static str {
                <$t>::as_str(self)
            }
        }
    )*};
}

nn_options!(lab_nn::gpt::Trainable, lab_nn::gpt::Init, lab_nn::mlp::Activation);

/// A folder or a file the op reads: the path, as a `&Path` too.
macro_rules! path_newtype {
    ($(#[$doc:meta])* $name:ident, $ty:ident, |$args:ident, $arg:ident| $read:expr) => {
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
            fn from_arg($args: &Args, $arg: &'static str) -> Result<Self, OpError> {
                $read.map($name)
            }
        }
    };
}

path_newtype!(
    /// A file named in the `.lab` file (relative to it; the absolute path lowering resolved
    /// it to); its content is part of the key.
    FilePath,
    Path,
    |args, name| args.str(name).map(PathBuf::from)
);
path_newtype!(
    /// A file or a folder named in the `.lab` file; everything in it is part of the key.
    DirPath,
    Dir,
    |args, name| args.str(name).map(PathBuf::from)
);

/// A list of lists of inputs (`[[Metrics]]`): the engine passes nested lists flattened,
/// row-major, so the op receives every folder in one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid<T>(pub Vec<T>);

macro_rules! artifact_param {
    ($(#[$doc:meta])* $name:ident, $ty:ident) => {
        path_newtype!($(#[$doc])* $name, $ty, |args, name| args.artifact(name).map(Path::to_path_buf));

        impl ParamType for Vec<$name> {
            fn ty() -> Type {
                Type::list(Type::$ty)
            }
            fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
                Ok(args.artifacts(name)?.iter().cloned().map($name).collect())
            }
        }

        impl ParamType for Grid<$name> {
            fn ty() -> Type {
                Type::list(Type::list(Type::$ty))
            }
            fn from_arg(args: &Args, name: &'static str) -> Result<Self, OpError> {
                Ok(Grid(args.artifacts(name)?.iter().cloned().map($name).collect()))
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
    /// A `Model` made by another step: its folder (`lab_nn::folder::ModelFolder`).
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
    /// An `Attack` (rounds of the backdoor game) made by another step.
    AttackDir,
    Attack
);
artifact_param!(
    /// An `Env` (an environment) made by another step.
    EnvDir,
    Env
);
artifact_param!(
    /// `Distributions` (token inputs, independent per position) made by another step.
    DistributionsDir,
    Distributions
);
artifact_param!(
    /// A `Figure` made by another step.
    FigureDir,
    Figure
);
