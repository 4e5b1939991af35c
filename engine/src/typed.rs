//! The typed program: what `check` hands to lowering. Every name is resolved (a loop
//! variable to its slot, a param or step to its definition's id), every call is bound to
//! its op's signature (one argument per parameter, in the signature's order) and every
//! expression carries its type. Lowering evaluates this tree; it never looks a name up or
//! walks syntax again. Syntax is kept only where a message quotes it.

use lab_grammar::{BinOp, Span};
use lab_ops::{Signature, Type};
use std::sync::Arc;

/// A definition's position in [`Typed::defs`]: source order, file by file.
pub(crate) type DefId = usize;

/// A resolved expression.
#[derive(Debug, Clone)]
pub(crate) struct TExpr {
    pub kind: TKind,
    pub span: Span,
    pub ty: Type,
}

#[derive(Debug, Clone)]
pub(crate) enum TKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    List(Vec<TExpr>),
    Record(Vec<(String, TExpr)>),
    Neg(Box<TExpr>),
    /// `first op₁ e₁ op₂ e₂ …`, left to right (see `ExprKind::Binary`).
    Binary {
        first: Box<TExpr>,
        rest: Vec<(BinOp, TExpr)>,
    },
    /// `[body for x in iter …]`: each clause binds the next slot.
    Comprehension {
        body: Box<TExpr>,
        clauses: Vec<TExpr>,
    },
    /// A loop variable: its slot in the environment (outermost loop first), indexed.
    Local {
        slot: usize,
        index: Vec<TExpr>,
    },
    Param {
        def: DefId,
        index: Vec<TExpr>,
    },
    /// A step, or one step of a sweep (by its loop values).
    Step {
        def: DefId,
        index: Vec<TExpr>,
    },
    Call(Box<TCall>),
    /// Something that did not check; a program holding one is never lowered.
    Invalid,
}

/// A call bound to its op.
#[derive(Debug, Clone)]
pub(crate) struct TCall {
    pub sig: Arc<Signature>,
    /// One per parameter of `sig`, in order: the argument given, if any.
    pub args: Vec<Option<TExpr>>,
    /// The reserved `resources:` argument.
    pub resources: Option<TExpr>,
}

/// A param or a step (family).
#[derive(Debug)]
pub(crate) struct TDef {
    pub name: String,
    /// Where the name is defined.
    pub span: Span,
    pub ty: Type,
    pub kind: TDefKind,
}

#[derive(Debug)]
pub(crate) enum TDefKind {
    Param {
        value: TExpr,
        /// The default as written, quoted by messages about `--set`.
        text: String,
    },
    Step {
        /// The sweeps it is defined in, outermost first: slot `i` is `loops[i]`'s value.
        loops: Vec<TExpr>,
        index: Vec<TExpr>,
        /// Where the indexed name is written (`x[i, j]`).
        target: Span,
        value: TExpr,
        /// The whole definition, for messages.
        span: Span,
    },
}

impl TDef {
    pub fn is_param(&self) -> bool {
        matches!(self.kind, TDefKind::Param { .. })
    }
}

/// A row of a report.
#[derive(Debug)]
pub(crate) struct TRow {
    pub headline: bool,
    pub label: String,
    pub label_span: Span,
    pub value: TExpr,
    pub span: Span,
}

#[derive(Debug)]
pub(crate) enum TTableItem {
    Row(TRow),
    /// Rows for every combination of the loop values: the bindings' names (for the
    /// `{name}` holes of labels) and what they range over.
    For {
        bindings: Vec<(String, TExpr)>,
        rows: Vec<TRow>,
    },
}

#[derive(Debug)]
pub(crate) struct TTable {
    pub caption: Option<String>,
    pub items: Vec<TTableItem>,
}

#[derive(Debug)]
pub(crate) struct TReport {
    pub title: String,
    pub tables: Vec<TTable>,
    pub rows: Vec<TRow>,
}

/// A checked program, ready to lower.
#[derive(Debug)]
pub(crate) struct Typed {
    pub defs: Vec<TDef>,
    pub reports: Vec<TReport>,
    /// `--set` values, resolved and typed like the rest, by the param they replace.
    pub overrides: Vec<(DefId, TExpr, String)>,
}

impl TExpr {
    pub fn invalid(span: Span) -> TExpr {
        TExpr { kind: TKind::Invalid, span, ty: Type::Any }
    }

    /// Whether evaluating it may create nodes (which are named after their owner).
    pub fn creates_nodes(&self) -> bool {
        match &self.kind {
            TKind::Call(_) | TKind::Comprehension { .. } => true,
            TKind::List(items) => items.iter().any(TExpr::creates_nodes),
            _ => false,
        }
    }
}
