use crate::{Type, Value};

/// What the checker knows of an op: its name, version, typed parameters and output.
#[derive(Debug, Clone)]
pub struct Signature {
    /// `generate`, `filter`, `finetune`, `probe`, `estimate`, `score`, `model`, `data`,
    /// `fit` or `report`.
    pub kind: &'static str,
    pub method: &'static str,
    /// Bumped on any change of meaning; part of every cache key.
    pub version: u32,
    /// User documentation, printed by `labrun ops`.
    pub doc: &'static str,
    pub params: Vec<ParamSpec>,
    pub output: Type,
}

/// One parameter. Parameters of artifact type (or lists of them) are the op's inputs:
/// edges of the DAG. The others are values fixed before the run.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: Type,
    /// `None`: the argument is required.
    pub default: Option<Value>,
    pub doc: &'static str,
}

impl Signature {
    pub fn new(kind: &'static str, method: &'static str, version: u32, output: Type, doc: &'static str) -> Self {
        Signature { kind, method, version, doc, params: Vec::new(), output }
    }

    /// Adds a required parameter.
    pub fn req(mut self, name: &'static str, ty: Type, doc: &'static str) -> Self {
        self.params.push(ParamSpec { name, ty, default: None, doc });
        self
    }

    /// Adds a parameter with a default.
    pub fn opt(mut self, name: &'static str, ty: Type, default: Value, doc: &'static str) -> Self {
        self.params.push(ParamSpec { name, ty, default: Some(default), doc });
        self
    }

    /// `kind.method`
    pub fn name(&self) -> String {
        format!("{}.{}", self.kind, self.method)
    }

    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The call form shown in help lines: `score.accuracy(model: Model, data: Dataset, …)`.
    pub fn synopsis(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match &p.default {
                Some(d) => format!("{}: {} = {}", p.name, p.ty, d),
                None => format!("{}: {}", p.name, p.ty),
            })
            .collect();
        format!("{}({}) -> {}", self.name(), params.join(", "), self.output)
    }
}

/// The op kinds the language knows.
pub const KINDS: &[&str] =
    &["generate", "filter", "finetune", "probe", "estimate", "score", "model", "data", "fit", "report"];
