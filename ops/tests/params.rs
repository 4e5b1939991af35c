//! The op contract: what `#[derive(Params)]` and `#[derive(Choice)]` make of a struct.

use lab_ops::params::{Choice, DatasetDir, ModelDir, Params};
use lab_ops::{ArgIn, Args, Check, OpError, ParamSpec, Type, Value};
use std::ops::Range;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Choice)]
enum Mode {
    Fast,
    VerySlow,
    #[choice(name = "x-y")]
    Odd,
}

#[derive(Debug, Params)]
struct Inner {
    /// a shared setting
    #[param(default = 3, min = 1)]
    steps: usize,
    /// a shared rate
    #[param(default = 0.5, positive)]
    lr: f64,
}

#[derive(Debug, Params)]
#[params(less(low, high), within(logits, model = "outputs"))]
struct Example {
    /// the model
    model: ModelDir,
    /// the parts
    parts: Vec<DatasetDir>,
    /// how many
    count: usize,
    /// lower
    #[param(default = -1.0)]
    low: f64,
    /// upper
    #[param(default = 1)]
    high: f64,
    /// which logits
    #[param(default = 0..10)]
    logits: Range<usize>,
    /// how
    #[param(default = Mode::VerySlow)]
    mode: Mode,
    /// names
    #[param(default = vec!["a".to_string()], non_empty, one_of = ["a", "b"])]
    names: Vec<String>,
    /// a keyword as a name
    #[param(default = "t")]
    r#type: String,
    #[param(flatten, defaults(steps = 7))]
    inner: Inner,
}

fn specs() -> Vec<ParamSpec> {
    let mut out = Vec::new();
    Example::specs(&mut out);
    out
}

#[test]
fn specs_come_in_field_order_with_types_defaults_and_docs() {
    let s = specs();
    let names: Vec<&str> = s.iter().map(|p| p.name).collect();
    assert_eq!(names, ["model", "parts", "count", "low", "high", "logits", "mode", "names", "type", "steps", "lr"]);
    let ty: Vec<String> = s.iter().map(|p| p.ty.to_string()).collect();
    assert_eq!(
        ty,
        ["Model", "List[Dataset]", "Int", "Float", "Float", "Range", "Str", "List[Str]", "Str", "Int", "Float"]
    );
    assert_eq!(s[0].default, None);
    assert_eq!(s[2].doc, "how many");
    // An integer literal on a float field is a float, as the checker coerces it.
    assert_eq!(s[4].default, Some(Value::Float(1.0)));
    assert_eq!(s[5].default, Some(Value::Range { start: 0, end: 10 }));
    assert_eq!(s[6].default, Some(Value::Str("very_slow".into())));
    assert_eq!(s[7].default, Some(Value::List(vec![Value::Str("a".into())])));
    // The flattened group's default, overridden by the op.
    assert_eq!(s[9].default, Some(Value::Int(7)));
    assert_eq!(s[10].default, Some(Value::Float(0.5)));
}

#[test]
fn rules_come_from_types_options_and_the_struct() {
    let mut c = Vec::new();
    Example::checks(&mut c);
    let has = |x: Check| c.contains(&x);
    // usize and ranges are at least 0; a declared bound replaces the implied one.
    assert!(has(Check::Min { param: "count", min: 0.0, strict: false }));
    assert!(has(Check::Min { param: "logits", min: 0.0, strict: false }));
    assert!(has(Check::Min { param: "steps", min: 1.0, strict: false }));
    assert!(!has(Check::Min { param: "steps", min: 0.0, strict: false }));
    assert!(has(Check::Min { param: "lr", min: 0.0, strict: true }));
    assert!(has(Check::OneOf { param: "mode", options: &["fast", "very_slow", "x-y"] }));
    assert!(has(Check::OneOf { param: "names", options: &["a", "b"] }));
    assert!(has(Check::NonEmpty { param: "names" }));
    assert!(has(Check::Less { low: "low", high: "high" }));
    assert!(has(Check::Within { param: "logits", input: "model", fact: "outputs" }));
}

fn args(count: i64, mode: &str) -> Args {
    let mut a = Args::default();
    for p in specs() {
        if let Some(d) = p.default {
            a.map.insert(p.name.into(), ArgIn::Value(d));
        }
    }
    a.map.insert("model".into(), ArgIn::Artifact(PathBuf::from("/m")));
    a.map.insert("parts".into(), ArgIn::Artifacts(vec![PathBuf::from("/a"), PathBuf::from("/b")]));
    a.map.insert("count".into(), ArgIn::Value(Value::Int(count)));
    a.map.insert("mode".into(), ArgIn::Value(Value::Str(mode.into())));
    a
}

#[test]
fn runs_receive_typed_values() {
    let e = Example::from_args(&args(5, "x-y")).unwrap();
    assert_eq!(e.model.0, PathBuf::from("/m"));
    assert_eq!(e.parts.len(), 2);
    assert_eq!((e.count, e.low, e.high), (5, -1.0, 1.0));
    assert_eq!(e.logits, 0..10);
    assert_eq!(e.mode, Mode::Odd);
    assert_eq!(e.names, ["a"]);
    assert_eq!(e.r#type, "t");
    assert_eq!((e.inner.steps, e.inner.lr), (7, 0.5));
    assert_eq!("fast".parse::<Mode>(), Ok(Mode::Fast));
    assert_eq!(Mode::VerySlow.to_string(), "very_slow");
}

#[test]
fn bad_values_are_errors_in_the_users_terms() {
    match Example::from_args(&args(-2, "fast")) {
        Err(OpError::Invalid { name, message }) => {
            assert_eq!((name.as_str(), message.as_str()), ("count", "must be at least 0, got -2"))
        }
        other => panic!("{other:?}"),
    }
    match Example::from_args(&args(1, "slow")) {
        Err(OpError::Invalid { name, message }) => {
            assert_eq!(name, "mode");
            assert!(message.contains("it takes `fast`, `very_slow`, `x-y`"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_registry_checks_values_again_before_an_op_runs() {
    let reg = lab_ops::registry();
    let (sig, _) = reg.get("filter", "head").unwrap();
    assert!(sig.params.iter().any(|p| p.name == "count" && p.ty == Type::Int));
    let mut a = Args::default();
    a.map.insert("data".into(), ArgIn::Artifact(PathBuf::from("/nowhere")));
    a.map.insert("count".into(), ArgIn::Value(Value::Int(0)));
    let e = sig.validate(&a).unwrap_err().to_string();
    assert_eq!(e, "argument `count` of `filter.head` must be ≥ 1, but it is 0");
}
