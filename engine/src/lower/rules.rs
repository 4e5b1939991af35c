//! The facts a node's output carries and the rules its arguments follow, checked wherever
//! the values are known at lowering (`lab::bad_value`, each at its argument).

use super::{Args, Lowerer};
use crate::Diag;
use crate::plan::ArgVal;
use lab_grammar::Span;
use lab_ops::Value;
use std::collections::BTreeMap;

impl Lowerer<'_> {
    /// The facts a call's output carries, from its signature's declarations.
    pub(super) fn facts_of(&self, sig: &lab_ops::Signature, args: &Args) -> BTreeMap<&'static str, i64> {
        let mut facts = BTreeMap::new();
        let input = |name: &str| match args.get(name) {
            Some(ArgVal::Node(n)) => Some(&self.nodes[*n].facts),
            _ => None,
        };
        for y in &sig.yields {
            match y {
                lab_ops::Yield::Const(f, v) => {
                    facts.insert(*f, *v);
                }
                lab_ops::Yield::Arg(f, p) => {
                    if let Some(ArgVal::Value(Value::Int(v))) = args.get(p) {
                        facts.insert(*f, *v);
                    }
                }
                lab_ops::Yield::Product(f, p) => {
                    if let Some(ArgVal::Value(Value::List(xs))) = args.get(p) {
                        let prod = xs.iter().try_fold(1i64, |acc, x| x.as_i64().and_then(|v| acc.checked_mul(v)));
                        if let Some(v) = prod {
                            facts.insert(*f, v);
                        }
                    }
                }
                lab_ops::Yield::From(f, i, of) => {
                    if let Some(v) = input(i).and_then(|fs| fs.get(of)) {
                        facts.insert(*f, *v);
                    }
                }
                lab_ops::Yield::All(i) => {
                    if let Some(fs) = input(i) {
                        facts.extend(fs.iter().map(|(k, v)| (*k, *v)));
                    }
                }
            }
        }
        facts
    }

    /// Checks the rules of a call's signature wherever the values are known now; every
    /// broken rule is reported, each at its argument.
    pub(super) fn check_args(
        &mut self,
        sig: &lab_ops::Signature,
        args: &Args,
        spans: &BTreeMap<&'static str, Span>,
        call: Span,
    ) {
        use lab_ops::Check;
        let span = |p: &str| spans.get(p).copied().unwrap_or(call);
        let value = |p: &str| match args.get(p) {
            Some(ArgVal::Value(v)) => Some(v),
            _ => None,
        };
        let len = |p: &str| match args.get(p) {
            Some(ArgVal::Value(Value::List(xs))) => Some(xs.len()),
            Some(ArgVal::List(xs)) => Some(xs.len()),
            _ => None,
        };
        let facts = |p: &str| match args.get(p) {
            Some(ArgVal::Node(n)) => {
                Some((&self.nodes[*n].facts, self.nodes[*n].name.clone(), self.nodes[*n].op.name()))
            }
            _ => None,
        };
        let mut found: Vec<Diag> = Vec::new();
        for c in &sig.checks {
            if let Some(b) = c.broken(sig, &value, &len) {
                // A string that is no option: suggest the nearest one.
                let help = match (c, value(b.param)) {
                    (Check::OneOf { options, .. }, Some(Value::Str(v))) => {
                        crate::suggest(v, options.iter().copied()).unwrap_or(b.help)
                    }
                    _ => b.help,
                };
                found.push(Diag::new("lab::bad_value", b.message).at(span(b.param), "here").help(help));
                continue;
            }
            match c {
                Check::Within { param, input, fact } => {
                    if let (Some(Value::Range { start, end }), Some((fs, name, op))) = (value(param), facts(input))
                        && let Some(&n) = fs.get(fact)
                        && (*end > n || *start < 0)
                    {
                        found.push(
                            Diag::new(
                                "lab::bad_value",
                                format!("`{param}` is {start}..{end}, but `{name}` ({op}) has {n} {fact}"),
                            )
                            .at(span(param), "here")
                            .help(format!("valid ranges lie within 0..{n}")),
                        );
                    }
                }
                Check::Agree { a, b } => {
                    if let (Some((fa, na, oa)), Some((fb, nb, ob))) = (facts(a.0), facts(b.0))
                        && let (Some(&x), Some(&y)) = (fa.get(a.1), fb.get(b.1))
                        && x != y
                    {
                        found.push(
                            Diag::new(
                                "lab::bad_value",
                                format!("`{}` of `{}` has {} {x}, but `{}` has {} {y}", a.0, sig.name(), a.1, b.0, b.1),
                            )
                            .at(span(a.0), format!("`{na}` ({oa}): {} {x}", a.1))
                            .also(span(b.0), format!("`{nb}` ({ob}): {} {y}", b.1))
                            .help(format!("pass {} whose {} matches the {} of {}", a.0, a.1, b.1, b.0)),
                        );
                    }
                }
                _ => {}
            }
        }
        self.diags.extend(found);
    }
}
