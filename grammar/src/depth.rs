//! How deeply expressions nest. Everything after parsing walks expressions recursively, so
//! a file that nests deeper than [`MAX_DEPTH`] is refused here, by a walk that does not
//! recurse itself.

use crate::ast::{Expr, ExprKind, File, Item, ReportEntry, TableItem};
use crate::{ParseError, Span};

/// The deepest expression accepted: operators, brackets, calls and lists all count.
pub const MAX_DEPTH: usize = 200;

/// The first expression nesting deeper than [`MAX_DEPTH`], if any.
pub fn too_deep(file: &File) -> Option<ParseError> {
    let mut roots: Vec<&Expr> = Vec::new();
    let mut items: Vec<&Item> = file.items.iter().collect();
    while let Some(item) = items.pop() {
        match item {
            Item::Import(_) => {}
            Item::Param(p) => roots.push(&p.value),
            Item::Step(s) => {
                roots.push(&s.value);
                roots.extend(&s.target.index);
            }
            Item::For(f) => {
                roots.extend(f.bindings.iter().map(|b| &b.iter));
                items.extend(&f.body);
            }
            Item::Report(r) => {
                for e in &r.entries {
                    match e {
                        ReportEntry::Row(row) => roots.push(&row.value),
                        ReportEntry::Table(t) => {
                            for ti in &t.items {
                                match ti {
                                    TableItem::Row(row) => roots.push(&row.value),
                                    TableItem::For { bindings, rows, .. } => {
                                        roots.extend(bindings.iter().map(|b| &b.iter));
                                        roots.extend(rows.iter().map(|r| &r.value));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let mut stack: Vec<(&Expr, usize)> = roots.into_iter().map(|e| (e, 1)).collect();
    while let Some((e, d)) = stack.pop() {
        if d > MAX_DEPTH {
            return Some(error(e.span));
        }
        stack.extend(children(e).into_iter().map(|c| (c, d + 1)));
    }
    None
}

/// The expressions directly inside `e`.
fn children(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        ExprKind::Int { .. } | ExprKind::Float { .. } | ExprKind::Str(_) | ExprKind::Bool(_) => Vec::new(),
        ExprKind::List(xs) => xs.iter().collect(),
        ExprKind::Record(fields) => fields.iter().map(|(_, x)| x).collect(),
        ExprKind::Ref { index, .. } => index.iter().collect(),
        ExprKind::Call(c) => c.args.iter().map(|a| &a.value).collect(),
        ExprKind::Binary { first, rest } => std::iter::once(&**first).chain(rest.iter().map(|(_, e)| e)).collect(),
        ExprKind::Neg(x) | ExprKind::Paren(x) => vec![x],
        ExprKind::Comprehension { body, clauses } => {
            std::iter::once(&**body).chain(clauses.iter().map(|b| &b.iter)).collect()
        }
    }
}

fn error(span: Span) -> ParseError {
    ParseError::new(span, format!("this expression nests more than {MAX_DEPTH} levels deep"), "too deep")
        .with_help("split it: give parts of it their own params or steps")
}
