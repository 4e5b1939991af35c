use std::fmt;

/// The type of a value or of an op's output. The checker reads only these.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Int,
    Float,
    Str,
    Bool,
    /// `a..b`, integers, half-open.
    Range,
    Record,
    /// A file path, written as a string, relative to the `.lab` file. The file's content
    /// (not only its name) is part of the cache key.
    Path,
    /// A file or a folder, written as a string relative to the `.lab` file. Everything in a
    /// folder (names and contents) is part of the cache key.
    Dir,
    List(Box<Type>),
    Model,
    Dataset,
    Activations,
    Probe,
    Metrics,
    Estimate,
    Fit,
    /// A table of points, one named column per quantity (`curve.csv`).
    Curve,
    Figure,
    /// Rounds of the backdoor game: per round a trigger and the attacked model, with the
    /// clean model and clean inputs the defender also faces.
    Attack,
    /// An environment an agent acts in (`env.*`).
    Env,
    /// Named distributions over fixed-length token inputs, independent per position
    /// (`generate.distributions`, `data.distributions`).
    Distributions,
    /// The element type of `[]`, and the type given to anything that already failed to
    /// check (so one mistake is reported once).
    Any,
}

impl Type {
    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }

    /// Artifact types are produced by steps and stored in the cache; the rest are plain
    /// values known before the run.
    pub fn is_artifact(&self) -> bool {
        matches!(
            self,
            Type::Model
                | Type::Dataset
                | Type::Activations
                | Type::Probe
                | Type::Metrics
                | Type::Estimate
                | Type::Fit
                | Type::Curve
                | Type::Figure
                | Type::Attack
                | Type::Env
                | Type::Distributions
        )
    }

    /// Whether a value of type `actual` may be passed where `self` is expected.
    /// Integers widen to floats; lists check their elements.
    pub fn accepts(&self, actual: &Type) -> bool {
        match (self, actual) {
            (_, Type::Any) | (Type::Any, _) => true,
            (Type::Float, Type::Int) => true,
            (Type::Path | Type::Dir, Type::Str) => true,
            // Estimates, fits, curves and attacks are results with metrics: they go where metrics go.
            (Type::Metrics, Type::Estimate | Type::Fit | Type::Curve | Type::Attack) => true,
            (Type::List(a), Type::List(b)) => a.accepts(b),
            (a, b) => a == b,
        }
    }

    /// The common type of two list elements, if any.
    pub fn unify(&self, other: &Type) -> Option<Type> {
        match (self, other) {
            (Type::Any, t) | (t, Type::Any) => Some(t.clone()),
            (Type::Int, Type::Float) | (Type::Float, Type::Int) => Some(Type::Float),
            (Type::List(a), Type::List(b)) => a.unify(b).map(Type::list),
            (a, b) if a == b => Some(a.clone()),
            _ => None,
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Any)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Int => write!(f, "Int"),
            Type::Float => write!(f, "Float"),
            Type::Str => write!(f, "Str"),
            Type::Bool => write!(f, "Bool"),
            Type::Range => write!(f, "Range"),
            Type::Record => write!(f, "Record"),
            Type::Path => write!(f, "Path"),
            Type::Dir => write!(f, "Dir"),
            Type::List(t) => write!(f, "List[{t}]"),
            Type::Model => write!(f, "Model"),
            Type::Dataset => write!(f, "Dataset"),
            Type::Activations => write!(f, "Activations"),
            Type::Probe => write!(f, "Probe"),
            Type::Metrics => write!(f, "Metrics"),
            Type::Estimate => write!(f, "Estimate"),
            Type::Fit => write!(f, "Fit"),
            Type::Curve => write!(f, "Curve"),
            Type::Figure => write!(f, "Figure"),
            Type::Attack => write!(f, "Attack"),
            Type::Env => write!(f, "Env"),
            Type::Distributions => write!(f, "Distributions"),
            Type::Any => write!(f, "?"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_and_lists() {
        assert!(Type::Float.accepts(&Type::Int));
        assert!(!Type::Int.accepts(&Type::Float));
        assert!(Type::list(Type::Float).accepts(&Type::list(Type::Int)));
        assert!(!Type::Model.accepts(&Type::Dataset));
        assert!(Type::list(Type::Metrics).accepts(&Type::list(Type::Fit)));
        assert!(!Type::Fit.accepts(&Type::Metrics));
        assert_eq!(Type::Int.unify(&Type::Float), Some(Type::Float));
        assert_eq!(Type::Model.unify(&Type::Int), None);
        assert_eq!(Type::list(Type::Metrics).to_string(), "List[Metrics]");
    }
}
