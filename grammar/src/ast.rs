//! The syntax tree. Nodes keep spans for diagnostics; [`File::shape`] prints the tree
//! without spans, so two parses can be compared for meaning.

use crate::Span;
use std::fmt::Write;

/// A parsed `.lab` file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct File {
    pub items: Vec<Item>,
}

/// A top-level (or `for`-body) declaration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Item {
    Import(Import),
    Param(Param),
    Step(Step),
    For(ForBlock),
    Report(Report),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Import(i) => i.span,
            Item::Param(p) => p.span,
            Item::Step(s) => s.span,
            Item::For(f) => f.span,
            Item::Report(r) => r.span,
        }
    }
}

/// `import "common.lab"`
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Import {
    pub path: Str,
    pub span: Span,
}

/// `param seed = 0`
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Param {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `name = expr` or `name[i, j] = expr` (inside a `for`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub target: Target,
    pub value: Expr,
    pub span: Span,
}

/// The left side of a step.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub name: Ident,
    pub index: Vec<Expr>,
    pub span: Span,
}

/// `for a in xs, b in ys { … }`: the cartesian product of its bindings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForBlock {
    pub bindings: Vec<Binding>,
    pub body: Vec<Item>,
    pub span: Span,
}

/// `name in expr`
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    pub name: Ident,
    pub iter: Expr,
    pub span: Span,
}

/// `report "Title" { … }`
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub title: Str,
    pub entries: Vec<ReportEntry>,
    pub span: Span,
}

/// A report holds tables and loose rows (figures, single values).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ReportEntry {
    Table(Table),
    Row(Row),
}

/// `table "caption" { label = expr … }`
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Table {
    pub caption: Option<Str>,
    pub items: Vec<TableItem>,
    pub span: Span,
}

/// A row, or rows for every combination of loop values.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TableItem {
    Row(Row),
    /// `for k in counts { "k = {k}" = acc[k] }`
    For {
        bindings: Vec<Binding>,
        rows: Vec<Row>,
        span: Span,
    },
}

/// `label = expr` or `"a label" = expr` inside a report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// `headline "label" = …`: the end of a run prints this row.
    #[serde(default)]
    pub headline: bool,
    pub label: String,
    pub quoted: bool,
    pub label_span: Span,
    pub value: Expr,
    pub span: Span,
}

/// A name with its span.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A string literal: its decoded value and its span (quotes included).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Str {
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ExprKind {
    /// An integer; `text` keeps the literal as written (`60_000`).
    Int {
        value: i64,
        text: String,
    },
    /// A float; `text` keeps the literal as written (`1e-3`).
    Float {
        value: f64,
        text: String,
    },
    Str(String),
    Bool(bool),
    List(Vec<Expr>),
    Record(Vec<(Ident, Expr)>),
    /// A name, possibly indexed: `seed`, `teacher[s]`, `rm[w, s]`.
    Ref {
        name: Ident,
        index: Vec<Expr>,
    },
    Call(Call),
    /// `first op₁ e₁ op₂ e₂ …`, evaluated left to right: one node for a whole run of
    /// operators of one precedence (`a + b - c`), so a long sum nests one level, not one
    /// per operator. A range (`a..b`) has exactly one operator.
    Binary {
        first: Box<Expr>,
        rest: Vec<(BinOp, Expr)>,
    },
    Neg(Box<Expr>),
    /// `[body for x in xs for y in ys]`
    Comprehension {
        body: Box<Expr>,
        clauses: Vec<Binding>,
    },
    /// `( expr )`, kept so the formatter can print what the user wrote.
    Paren(Box<Expr>),
}

/// `kind.method(args…)`
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Call {
    pub kind: Ident,
    pub method: Ident,
    pub args: Vec<Arg>,
}

/// A positional (`name` is `None`) or named argument.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Range,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Range => "..",
        }
    }

    /// Binding strength; higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Range => 1,
            BinOp::Add | BinOp::Sub => 2,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 3,
        }
    }
}

impl File {
    /// The tree as an s-expression without spans, literal spelling or parentheses:
    /// equal shapes mean equal programs.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            item_shape(item, &mut out);
            out.push('\n');
        }
        out
    }
}

fn item_shape(item: &Item, out: &mut String) {
    match item {
        Item::Import(i) => {
            let _ = write!(out, "(import {:?})", i.path.value);
        }
        Item::Param(p) => {
            let _ = write!(out, "(param {} ", p.name.name);
            p.value.shape(out);
            out.push(')');
        }
        Item::Step(s) => step_shape(s, out),
        Item::For(f) => {
            out.push_str("(for");
            for b in &f.bindings {
                let _ = write!(out, " ({} ", b.name.name);
                b.iter.shape(out);
                out.push(')');
            }
            for i in &f.body {
                out.push(' ');
                item_shape(i, out);
            }
            out.push(')');
        }
        Item::Report(r) => {
            let _ = write!(out, "(report {:?}", r.title.value);
            for e in &r.entries {
                match e {
                    ReportEntry::Table(t) => {
                        let _ = write!(out, " (table {:?}", t.caption.as_ref().map(|c| &c.value));
                        for item in &t.items {
                            match item {
                                TableItem::Row(row) => row_shape(row, out),
                                TableItem::For { bindings, rows, .. } => {
                                    out.push_str(" (for");
                                    for b in bindings {
                                        let _ = write!(out, " ({} ", b.name.name);
                                        b.iter.shape(out);
                                        out.push(')');
                                    }
                                    for row in rows {
                                        row_shape(row, out);
                                    }
                                    out.push(')');
                                }
                            }
                        }
                        out.push(')');
                    }
                    ReportEntry::Row(row) => row_shape(row, out),
                }
            }
            out.push(')');
        }
    }
}

fn step_shape(s: &Step, out: &mut String) {
    let _ = write!(out, "(step {}", s.target.name.name);
    for i in &s.target.index {
        out.push(' ');
        i.shape(out);
    }
    out.push(' ');
    s.value.shape(out);
    out.push(')');
}

fn row_shape(r: &Row, out: &mut String) {
    let mark = if r.headline { "headline " } else { "" };
    let _ = write!(out, " ({mark}row {:?} ", r.label);
    r.value.shape(out);
    out.push(')');
}

impl Expr {
    fn shape(&self, out: &mut String) {
        match &self.kind {
            ExprKind::Int { value, .. } => {
                let _ = write!(out, "{value}");
            }
            ExprKind::Float { value, .. } => {
                let _ = write!(out, "{:?}f", value);
            }
            ExprKind::Str(s) => {
                let _ = write!(out, "{s:?}");
            }
            ExprKind::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            ExprKind::List(items) => {
                out.push_str("(list");
                for i in items {
                    out.push(' ');
                    i.shape(out);
                }
                out.push(')');
            }
            ExprKind::Record(fields) => {
                out.push_str("(record");
                for (k, v) in fields {
                    let _ = write!(out, " {}:", k.name);
                    v.shape(out);
                }
                out.push(')');
            }
            ExprKind::Ref { name, index } => {
                out.push_str(&name.name);
                if !index.is_empty() {
                    out.push('[');
                    for i in index {
                        i.shape(out);
                        out.push(',');
                    }
                    out.push(']');
                }
            }
            ExprKind::Call(c) => {
                let _ = write!(out, "({}.{}", c.kind.name, c.method.name);
                for a in &c.args {
                    out.push(' ');
                    if let Some(n) = &a.name {
                        let _ = write!(out, "{}:", n.name);
                    }
                    a.value.shape(out);
                }
                out.push(')');
            }
            // As nested pairs, `(+ (+ a b) c)`: the shape does not depend on how a chain is
            // stored.
            ExprKind::Binary { first, rest } => {
                for (op, _) in rest.iter().rev() {
                    let _ = write!(out, "({} ", op.symbol());
                }
                first.shape(out);
                for (_, e) in rest {
                    out.push(' ');
                    e.shape(out);
                    out.push(')');
                }
            }
            ExprKind::Neg(e) => {
                out.push_str("(neg ");
                e.shape(out);
                out.push(')');
            }
            ExprKind::Comprehension { body, clauses } => {
                out.push_str("(comp ");
                body.shape(out);
                for c in clauses {
                    let _ = write!(out, " ({} ", c.name.name);
                    c.iter.shape(out);
                    out.push(')');
                }
                out.push(')');
            }
            ExprKind::Paren(e) => e.shape(out),
        }
    }
}
