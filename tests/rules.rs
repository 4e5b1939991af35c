//! Every rule an op declares on its parameters is enforced by `labrun check`, before
//! anything runs, at the argument's line (`lab::bad_value`). For each op of the registry
//! and each of its rules on plain values, this test writes a `.lab` file that calls the op
//! with one value that breaks the rule (all else valid: inputs made by other ops of the
//! registry, values chosen to satisfy every other rule), checks it, and expects the
//! diagnostic. It also checks that the valid call alone passes. So a new op's rules are
//! tested the moment it is registered.

use lab_ops::{Check, Signature, Type, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

fn lit(v: &Value) -> String {
    match v {
        Value::Float(x) => format!("{x:?}"),
        Value::List(xs) => format!("[{}]", xs.iter().map(lit).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// The bounds the rules put on a parameter: (lowest allowed, strict), (highest, strict).
fn bounds(sig: &Signature, name: &str) -> (Option<(f64, bool)>, Option<(f64, bool)>) {
    let (mut lo, mut hi) = (None, None);
    for c in &sig.checks {
        match c {
            Check::Min { param, min, strict } if *param == name => {
                if lo.is_none_or(|(m, _)| *min >= m) {
                    lo = Some((*min, *strict));
                }
            }
            Check::Max { param, max, strict } if *param == name => {
                if hi.is_none_or(|(m, _)| *max <= m) {
                    hi = Some((*max, *strict));
                }
            }
            _ => {}
        }
    }
    (lo, hi)
}

/// A number every bound of `name` allows.
fn valid_number(sig: &Signature, name: &str, int: bool) -> f64 {
    let (lo, hi) = bounds(sig, name);
    let mut x = match lo {
        Some((m, strict)) => match (int, strict) {
            (true, true) => m.floor() + 1.0,
            (true, false) => m.ceil(),
            (false, true) => m + 0.25,
            (false, false) => m,
        },
        None => 1.0,
    };
    if let Some((m, _)) = hi
        && x >= m
    {
        x = if int { (m - 1.0).max(lo.map_or(0.0, |l| l.0)) } else { (lo.map_or(m - 1.0, |l| l.0) + m) / 2.0 };
    }
    x
}

fn options(sig: &Signature, name: &str) -> Option<&'static [&'static str]> {
    sig.checks.iter().find_map(|c| match c {
        Check::OneOf { param, options } if *param == name => Some(*options),
        _ => None,
    })
}

/// A valid literal for the value parameter `name` of type `ty`.
fn valid_value(sig: &Signature, name: &str, ty: &Type, dir: &Path) -> String {
    match ty {
        Type::Int => format!("{}", valid_number(sig, name, true) as i64),
        Type::Float => format!("{:?}", valid_number(sig, name, false)),
        Type::Bool => "true".into(),
        Type::Str => match options(sig, name) {
            Some(o) => format!("{:?}", o[0]),
            None => "\"x\"".into(),
        },
        Type::Range => "0..1".into(),
        Type::Path | Type::Dir => {
            let file = dir.join("input.txt");
            std::fs::write(&file, "{\"text\": \"1 2 3\"}\n").unwrap();
            "\"input.txt\"".into()
        }
        Type::List(t) => match &**t {
            Type::Str => match options(sig, name) {
                Some(o) => format!("[{:?}]", o[0]),
                None => "[\"x\"]".into(),
            },
            inner => format!("[{}]", valid_value(sig, name, inner, dir)),
        },
        other => panic!("{}: no literal for a `{other}` parameter", sig.name()),
    }
}

/// Writes a step producing an artifact of type `ty` (and the steps it needs) into `out`;
/// returns its name.
fn produce(ty: &Type, sigs: &[&Signature], dir: &Path, out: &mut String, n: &mut usize, depth: usize) -> String {
    assert!(depth < 6, "no op makes a `{ty}` from plain values");
    // Plain models and datasets that every op reading them accepts.
    let known = match ty {
        Type::Model => Some("model.mlp(inputs: 64, hidden: [8], outputs: 10)"),
        Type::Dataset => Some("data.digits()"),
        _ => None,
    };
    if let Some(call) = known {
        *n += 1;
        writeln!(out, "s{n} = {call}").unwrap();
        return format!("s{n}");
    }
    // The op making this type with the fewest required inputs, among those that do not
    // need an input of the very type they make (`estimate.frontier` makes a `Curve` from
    // curves).
    let base = |t: &Type| -> Type {
        let mut t = t.clone();
        while let Type::List(inner) = t {
            t = *inner;
        }
        t
    };
    let own = |s: &&&Signature| s.params.iter().any(|p| p.default.is_none() && base(&p.ty) == *ty);
    let sig = sigs
        .iter()
        .filter(|s| &s.output == ty && s.kind != "report" && !own(s))
        .chain(sigs.iter().filter(|s| &s.output == ty))
        .min_by_key(|s| (own(s), s.params.iter().filter(|p| p.default.is_none() && p.ty.is_artifact()).count()))
        .unwrap_or_else(|| panic!("no op makes a `{ty}`"));
    let call = call_of(sig, None, sigs, dir, out, n, depth + 1);
    *n += 1;
    let name = format!("s{n}");
    writeln!(out, "{name} = {call}").unwrap();
    name
}

/// A call of `sig` with its required arguments, and `bad` (a parameter and a literal) if
/// given.
fn call_of(
    sig: &Signature,
    bad: Option<(&str, &str)>,
    sigs: &[&Signature],
    dir: &Path,
    out: &mut String,
    n: &mut usize,
    depth: usize,
) -> String {
    let mut args = Vec::new();
    for p in &sig.params {
        let value = match bad {
            Some((name, v)) if name == p.name => v.to_string(),
            _ if p.default.is_some() => continue,
            _ => match inputs(&p.ty, sigs, dir, out, n, depth) {
                Some(v) => v,
                None => valid_value(sig, p.name, &p.ty, dir),
            },
        };
        args.push(format!("{}: {value}", p.name));
    }
    // Values a rule between parameters asks for, beyond the required ones.
    let extra: &[(&str, &str, &str)] = &[
        ("report.lines", "x", "[1.0]"),
        ("fit.trend", "x", "[1.0]"),
        ("model.gpt", "alphabet", "\"ab\""),
        ("model.gpt", "heads", "1"),
        ("report.curves", "labels", "[\"a\"]"),
    ];
    for (op, name, value) in extra {
        if *op == sig.name() && bad.is_none_or(|(b, _)| b != *name) {
            args.push(format!("{name}: {value}"));
        }
    }
    format!("{}({})", sig.name(), args.join(", "))
}

/// Inputs for a parameter of artifact type, or of lists (of lists) of them.
fn inputs(ty: &Type, sigs: &[&Signature], dir: &Path, out: &mut String, n: &mut usize, depth: usize) -> Option<String> {
    match ty {
        t if t.is_artifact() => Some(produce(t, sigs, dir, out, n, depth)),
        Type::List(t) => inputs(t, sigs, dir, out, n, depth).map(|v| format!("[{v}]")),
        _ => None,
    }
}

/// A literal that breaks `check` of `sig` (all else valid), if the rule is on a value.
fn breaking(sig: &Signature, check: &Check) -> Option<(&'static str, String)> {
    let ty = |p: &str| sig.param(p).unwrap().ty.clone();
    let int = |p: &str| match ty(p) {
        Type::List(t) => *t == Type::Int,
        t => matches!(t, Type::Int | Type::Range),
    };
    let one = |p: &str, x: f64| {
        let v = if int(p) { Value::Int(x as i64) } else { Value::Float(x) };
        lit(&match ty(p) {
            Type::List(_) => Value::List(vec![v]),
            Type::Range => return format!("({})..{}", x as i64, x as i64 + 1),
            _ => v,
        })
    };
    match check {
        Check::Min { param, min, strict } => {
            let x = match (*strict, int(param)) {
                (true, _) => *min,
                (false, true) => min.ceil() - 1.0,
                (false, false) => min - 0.5,
            };
            Some((param, one(param, x)))
        }
        Check::Max { param, max, strict } => {
            let x = match (*strict, int(param)) {
                (true, _) => *max,
                (false, true) => max.floor() + 1.0,
                (false, false) => max + 0.5,
            };
            Some((param, one(param, x)))
        }
        Check::OneOf { param, .. } => Some((
            param,
            match ty(param) {
                Type::List(_) => "[\"no such option\"]".to_string(),
                _ => "\"no such option\"".to_string(),
            },
        )),
        Check::NonEmpty { param } => Some((param, "[]".to_string())),
        _ => None,
    }
}

fn check_file(dir: &Path, text: &str) -> Vec<lab_engine::Diag> {
    let file = dir.join("t.lab");
    std::fs::write(&file, text).unwrap();
    let registry = lab_ops::registry();
    lab_engine::compile(&file, &[], &registry).diags
}

#[test]
fn every_value_rule_of_every_op_is_reported_by_check() {
    let registry = lab_ops::registry();
    let sigs: Vec<&Signature> = registry.signatures().collect();
    let dir = tempfile::tempdir().unwrap();
    let mut tested: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for sig in &sigs {
        // The valid call passes.
        let (mut pre, mut n) = (String::new(), 0);
        let call = call_of(sig, None, &sigs, dir.path(), &mut pre, &mut n, 0);
        let text = format!("{pre}target = {call}\n");
        let diags = check_file(dir.path(), &text);
        if !diags.is_empty() {
            failures.push(format!("{}: the valid call fails:\n{text}{:?}", sig.name(), diags));
            continue;
        }
        for check in &sig.checks {
            let Some((param, bad)) = breaking(sig, check) else { continue };
            let (mut pre, mut n) = (String::new(), 0);
            let call = call_of(sig, Some((param, &bad)), &sigs, dir.path(), &mut pre, &mut n, 0);
            let text = format!("{pre}target = {call}\n");
            let diags = check_file(dir.path(), &text);
            let line = text.lines().count();
            let hit = diags.iter().any(|d| {
                d.code == "lab::bad_value"
                    && d.message.contains(&format!("`{param}`"))
                    && d.primary.as_ref().is_some_and(|(s, _)| text[..s.start as usize].lines().count() == line)
            });
            if hit {
                *tested.entry(sig.name()).or_default() += 1;
            } else {
                failures.push(format!(
                    "{}: `{}` with `{param}: {bad}` is not reported at check time:\n{text}{diags:?}",
                    sig.name(),
                    check.describe()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let rules: usize = tested.values().sum();
    assert!(rules > 100, "only {rules} rules tested: {tested:?}");
}

#[test]
fn rules_between_parameters_are_reported_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // less(low, high)
        ("x = generate.noise(shape: [4], count: 10, low: 1.0, high: 0.5)", "`low` (1) must be less than `high`"),
        // a deep MLP of tiny layers: few parameters, but hours of layers
        (
            "x = model.mlp(inputs: 2, hidden: [1 for i in 0..300], outputs: 1)",
            "`hidden` lists 300 layers; labrun builds MLPs of up to 256 hidden layers",
        ),
        // same_length_or_empty(fields, rename)
        (
            "x = data.jsonl(path: \"input.txt\", fields: [\"a\", \"b\"], rename: [\"c\"])",
            "`rename` has 1 entries but `fields` has 2",
        ),
        // a rule of its own: patience needs validation data
        (
            "m = model.gpt(width: 16, alphabet: \"0123456789, ^\")\nc = generate.corpus(template: \"numbers\", count: 10)\nx = finetune.pretrain(m, c, patience: 2)",
            "`patience` needs validation data",
        ),
    ];
    std::fs::write(dir.path().join("input.txt"), "{\"a\": 1, \"b\": 2}\n").unwrap();
    for (text, want) in cases {
        let diags = check_file(dir.path(), text);
        assert!(
            diags.iter().any(|d| d.code == "lab::bad_value" && d.message.contains(want)),
            "{text}\nwant `{want}`, got {diags:?}"
        );
    }
}
