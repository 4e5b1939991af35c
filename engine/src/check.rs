//! Name resolution and type checking. Reads only op signatures; runs nothing. Every error
//! of the program is collected, each once: a name that failed to check gets type `?`,
//! which is accepted everywhere, so one mistake does not cascade.

use crate::Diag;
use crate::diagnostic::suggest;
use crate::load::Loaded;
use crate::typed::{DefId, TCall, TDef, TDefKind, TExpr, TKind, TReport, TRow, TTable, TTableItem};
use foldhash::HashMap as FxHashMap;
use lab_grammar::{Arg, BinOp, Binding, Call, Expr, ExprKind, Item, Param, Report, ReportEntry, Span, Step, TableItem};
use lab_ops::{ParamSpec, Registry, Signature, Type};
use std::collections::{BTreeMap, BTreeSet};

/// A top-level name: a param or a step (a family of steps when defined in a `for`).
#[derive(Clone)]
pub(crate) enum Def<'a> {
    Param(&'a Param),
    Step { step: &'a Step, loops: Vec<&'a Binding> },
}

impl Def<'_> {
    pub(crate) fn name_span(&self) -> Span {
        match self {
            Def::Param(p) => p.name.span,
            Def::Step { step, .. } => step.target.name.span,
        }
    }

    fn arity(&self) -> usize {
        match self {
            Def::Param(_) => 0,
            Def::Step { step, .. } => step.target.index.len(),
        }
    }

    fn value(&self) -> &Expr {
        match self {
            Def::Param(p) => &p.value,
            Def::Step { step, .. } => &step.value,
        }
    }
}

/// Every definition of a program, and the reports of its root file.
pub(crate) struct Program<'a> {
    /// Every definition, in source order (file, then position): its position is its
    /// [`DefId`].
    pub defs: Vec<Def<'a>>,
    pub names: Vec<String>,
    pub ids: FxHashMap<String, DefId>,
    pub reports: Vec<&'a Report>,
}

/// Gathers definitions from every file; duplicates are errors with both places.
pub(crate) fn collect<'a>(loaded: &'a Loaded, diags: &mut Vec<Diag>) -> Program<'a> {
    let mut defs: FxHashMap<String, Def<'a>> = FxHashMap::default();
    let mut reports = Vec::new();
    fn add<'a>(defs: &mut FxHashMap<String, Def<'a>>, name: &str, def: Def<'a>, diags: &mut Vec<Diag>) {
        if let Some(prev) = defs.get(name) {
            diags.push(
                Diag::new("lab::duplicate", format!("`{name}` is defined twice"))
                    .at(def.name_span(), "defined again here")
                    .also(prev.name_span(), "first defined here")
                    .help("names are unique across a file and its imports; rename one of them"),
            );
            return;
        }
        defs.insert(name.to_string(), def);
    }
    fn walk<'a>(
        items: &'a [Item],
        loops: &mut Vec<&'a Binding>,
        defs: &mut FxHashMap<String, Def<'a>>,
        diags: &mut Vec<Diag>,
    ) {
        for item in items {
            match item {
                Item::Step(s) => add(defs, &s.target.name.name, Def::Step { step: s, loops: loops.clone() }, diags),
                Item::For(f) => {
                    let n = loops.len();
                    loops.extend(f.bindings.iter());
                    walk(&f.body, loops, defs, diags);
                    loops.truncate(n);
                }
                _ => {}
            }
        }
    }
    for (i, (_, file)) in loaded.files.iter().enumerate() {
        for item in &file.items {
            match item {
                Item::Param(p) => add(&mut defs, &p.name.name, Def::Param(p), diags),
                Item::Report(r) if i == 0 => reports.push(r),
                _ => {}
            }
        }
        walk(&file.items, &mut Vec::new(), &mut defs, diags);
    }
    let mut order: Vec<(String, Def<'a>)> = defs.into_iter().collect();
    order.sort_unstable_by_key(|(_, d)| {
        let s = d.name_span();
        (s.file, s.start)
    });
    let ids = order.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
    let (names, defs) = order.into_iter().unzip();
    Program { defs, names, ids, reports }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Visiting,
    Done,
}

/// The checked type of every definition.
pub(crate) struct Checker<'a, 'r> {
    pub program: &'a Program<'a>,
    pub registry: &'r Registry,
    /// Each definition's type and whether it is known before the run, by [`DefId`].
    types: Vec<Option<(Type, bool)>>,
    state: Vec<Option<State>>,
    stack: Vec<DefId>,
    reported_cycles: BTreeSet<Vec<String>>,
    pub diags: Vec<Diag>,
    /// The typed definitions, by [`DefId`], as they are checked.
    resolved: Vec<Option<TDef>>,
    reports: Vec<TReport>,
    /// Loop variables already reported for hiding a param or a step (a `for` block's
    /// bindings are checked once per step inside it).
    shadowing: BTreeSet<Span>,
}

/// Loop variables in scope, innermost last.
type Scope = Vec<(String, Type)>;

impl<'a, 'r> Checker<'a, 'r> {
    pub fn new(program: &'a Program<'a>, registry: &'r Registry) -> Self {
        Checker {
            program,
            registry,
            types: vec![None; program.names.len()],
            state: vec![None; program.names.len()],
            stack: Vec::new(),
            reported_cycles: BTreeSet::new(),
            diags: Vec::new(),
            resolved: (0..program.names.len()).map(|_| None).collect(),
            reports: Vec::new(),
            shadowing: BTreeSet::new(),
        }
    }

    /// The typed program, once [`Checker::check_all`] has run without errors;
    /// `overrides` are the parsed `--set` values by param name.
    pub fn typed(&mut self, overrides: &BTreeMap<String, (Expr, String)>) -> crate::typed::Typed {
        let mut set = Vec::new();
        for (name, (expr, text)) in overrides {
            if let Some(&id) = self.program.ids.get(name) {
                let (t, _) = self.expr(expr, &Vec::new());
                set.push((id, t, text.clone()));
            }
        }
        let defs = std::mem::take(&mut self.resolved)
            .into_iter()
            .zip(&self.program.names)
            .map(|(d, name)| {
                d.unwrap_or_else(|| TDef {
                    name: name.clone(),
                    span: self.program.defs[self.program.ids[name]].name_span(),
                    ty: Type::Any,
                    kind: TDefKind::Param { value: TExpr::invalid(Span::default()), text: String::new() },
                })
            })
            .collect();
        crate::typed::Typed { defs, reports: std::mem::take(&mut self.reports), overrides: set }
    }

    /// Checks every definition and report row.
    pub fn check_all(&mut self) {
        for id in 0..self.program.names.len() {
            self.def_type(id);
        }
        for r in self.program.reports.clone() {
            let mut report = TReport { title: r.title.value.clone(), tables: Vec::new(), rows: Vec::new() };
            for entry in &r.entries {
                match entry {
                    ReportEntry::Row(row) => {
                        let (value, _) = self.expr(&row.value, &Vec::new());
                        if row.headline && matches!(value.ty, Type::Figure) {
                            self.diags.push(
                                Diag::new("lab::type_mismatch", "a figure cannot be a headline")
                                    .at(row.label_span, "marked `headline`")
                                    .help(
                                        "headlines are numbers printed at the end of a run: mark a table row instead",
                                    ),
                            );
                        }
                        report.rows.push(t_row(row, value));
                    }
                    ReportEntry::Table(t) => {
                        let mut table =
                            TTable { caption: t.caption.as_ref().map(|c| c.value.clone()), items: Vec::new() };
                        for item in &t.items {
                            match item {
                                TableItem::Row(row) => {
                                    let row = self.table_row(row, &Vec::new());
                                    table.items.push(TTableItem::Row(row));
                                }
                                TableItem::For { bindings, rows, .. } => {
                                    let mut scope: Scope = Vec::new();
                                    let mut typed = Vec::new();
                                    for b in bindings {
                                        let (iter, ty) = self.binding_type(b, &scope);
                                        scope.push((b.name.name.clone(), ty));
                                        typed.push((b.name.name.clone(), iter));
                                    }
                                    let rows = rows.iter().map(|row| self.table_row(row, &scope)).collect();
                                    table.items.push(TTableItem::For { bindings: typed, rows });
                                }
                            }
                        }
                        report.tables.push(table);
                    }
                }
            }
            self.reports.push(report);
        }
    }

    fn table_row(&mut self, row: &lab_grammar::Row, scope: &Scope) -> TRow {
        let (value, _) = self.expr(&row.value, scope);
        let ty = &value.ty;
        if matches!(ty, Type::Figure) || matches!(ty, Type::List(t) if **t == Type::Figure) {
            self.diags.push(
                Diag::new("lab::type_mismatch", "a table cannot show a figure")
                    .at(row.value.span, "this is a Figure")
                    .help("put the figure outside `table { … }`: `name = report.bar(…)`"),
            );
        }
        for name in label_holes(&row.label) {
            if !scope.iter().any(|(n, _)| *n == name) {
                self.diags.push(
                    Diag::new("lab::unknown_name", format!("`{{{name}}}` in a row label names no loop variable"))
                        .at(row.label_span, "in this label")
                        .help("`{name}` in a label is replaced by the value of a `for` variable of the table"),
                );
            }
        }
        t_row(row, value)
    }

    /// The type of a definition and whether its value is known before the run.
    pub fn def_type(&mut self, id: DefId) -> (Type, bool) {
        if let Some(t) = &self.types[id] {
            return t.clone();
        }
        if self.state[id] == Some(State::Visiting) {
            self.report_cycle(id);
            return (Type::Any, false);
        }
        let program = self.program;
        let name = program.names[id].as_str();
        let def = &program.defs[id];
        self.state[id] = Some(State::Visiting);
        self.stack.push(id);
        let mut scope: Scope = Vec::new();
        let mut loops = Vec::new();
        let mut index = Vec::new();
        if let Def::Step { loops: bindings, step } = &def {
            for b in bindings {
                let (iter, t) = self.binding_type(b, &scope);
                scope.push((b.name.name.clone(), t));
                loops.push(iter);
            }
            for i in &step.target.index {
                let (t, _) = self.expr(i, &scope);
                self.expect_key(i, &t.ty);
                index.push(t);
            }
        }
        let (value, is_const) = self.expr(def.value(), &scope);
        if let Def::Param(p) = &def
            && !is_const
        {
            self.diags.push(
                Diag::new("lab::not_constant", format!("param `{}` must be known before the run", p.name.name))
                    .at(p.value.span, "this depends on a step")
                    .help("params hold numbers, strings and lists; make this a step instead: `name = …`"),
            );
        }
        self.stack.pop();
        self.state[id] = Some(State::Done);
        let result = (value.ty.clone(), is_const);
        self.types[id] = Some(result.clone());
        let kind = match &def {
            Def::Param(p) => TDefKind::Param { value, text: text_of(&p.value) },
            Def::Step { step, .. } => TDefKind::Step { loops, index, target: step.target.span, value, span: step.span },
        };
        self.resolved[id] = Some(TDef { name: name.to_string(), span: def.name_span(), ty: result.0.clone(), kind });
        result
    }

    fn report_cycle(&mut self, id: DefId) {
        let at = self.stack.iter().position(|&n| n == id).unwrap_or(0);
        let members: Vec<String> = self.stack[at..].iter().map(|&n| self.program.names[n].clone()).collect();
        let mut key = members.clone();
        key.sort();
        if !self.reported_cycles.insert(key) {
            return;
        }
        let path = members
            .iter()
            .chain(std::iter::once(&members[0]))
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(" → ");
        let first = &self.program.defs[self.program.ids[&members[0]]];
        let mut d = Diag::new("lab::cycle", format!("`{}` depends on itself: {path}", members[0]))
            .at(first.name_span(), format!("`{}` is defined here", members[0]));
        for m in &members[1..] {
            d = d.also(self.program.defs[self.program.ids[m]].name_span(), format!("`{m}` is part of the cycle"));
        }
        self.diags.push(d.help("steps may not depend on themselves; break the cycle by using an earlier step"));
    }

    /// A loop's range, typed, and the type of its variable.
    fn binding_type(&mut self, b: &Binding, scope: &Scope) -> (TExpr, Type) {
        // A loop variable named like a param or a step would silently hide it in the loop.
        if let Some(&id) = self.program.ids.get(&b.name.name)
            && self.shadowing.insert(b.name.span)
        {
            let def = &self.program.defs[id];
            let what = if matches!(def, Def::Param(_)) { "param" } else { "step" };
            let n = &b.name.name;
            self.diags.push(
                Diag::new("lab::duplicate", format!("the loop variable `{n}` has the name of a {what}"))
                    .at(b.name.span, "this loop variable")
                    .also(def.name_span(), format!("the {what}"))
                    .help(format!(
                        "inside the loop, `{n}` would mean the loop's value, not the {what}: rename the variable"
                    )),
            );
        }
        // Two loop variables of one name: the inner would silently hide the outer.
        if scope.iter().any(|(n, _)| *n == b.name.name) && self.shadowing.insert(b.name.span) {
            let n = &b.name.name;
            self.diags.push(
                Diag::new("lab::duplicate", format!("the loop variable `{n}` is already bound by an enclosing loop"))
                    .at(b.name.span, "bound again here")
                    .help(format!("each loop variable needs its own name: rename this `{n}`")),
            );
        }
        let (iter, is_const) = self.expr(&b.iter, scope);
        if !is_const {
            self.diags.push(
                Diag::new("lab::not_constant", "a sweep must be over values known before the run")
                    .at(b.iter.span, "this depends on a step")
                    .help("sweep over a param or a literal list: `for s in [0, 1, 2]`"),
            );
            return (iter, Type::Any);
        }
        let ty = match &iter.ty {
            Type::List(e) => (**e).clone(),
            Type::Range => Type::Int,
            Type::Any => Type::Any,
            other => {
                self.diags.push(
                    Diag::new("lab::type_mismatch", format!("cannot sweep over {}", an(other)))
                        .at(b.iter.span, format!("this is {}", an(other)))
                        .help("`for` takes a list (`[1, 2, 4]`) or a range (`0..5`)"),
                );
                Type::Any
            }
        };
        (iter, ty)
    }

    fn expect_key(&mut self, e: &Expr, t: &Type) {
        if !matches!(t, Type::Int | Type::Str | Type::Bool | Type::Float | Type::Any) {
            self.diags.push(
                Diag::new("lab::bad_index", format!("an index must be a number, string or bool, not {}", an(t)))
                    .at(e.span, format!("this is {}", an(t))),
            );
        }
    }

    /// `e` resolved and typed, and whether it is known before the run.
    pub fn expr(&mut self, e: &Expr, scope: &Scope) -> (TExpr, bool) {
        let typed = |kind: TKind, ty: Type| TExpr { kind, span: e.span, ty };
        match &e.kind {
            ExprKind::Int { value, .. } => (typed(TKind::Int(*value), Type::Int), true),
            ExprKind::Float { value, .. } => (typed(TKind::Float(*value), Type::Float), true),
            ExprKind::Str(v) => (typed(TKind::Str(v.clone()), Type::Str), true),
            ExprKind::Bool(b) => (typed(TKind::Bool(*b), Type::Bool), true),
            ExprKind::Paren(x) => self.expr(x, scope),
            ExprKind::List(items) => {
                let mut elem = Type::Any;
                let mut all_const = true;
                let mut first_span: Option<(Span, Type)> = None;
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    let (x, c) = self.expr(i, scope);
                    let t = x.ty.clone();
                    all_const &= c;
                    match elem.unify(&t) {
                        Some(u) => elem = u,
                        None => {
                            let (fs, ft) = first_span.clone().unwrap();
                            self.diags.push(
                                Diag::new("lab::type_mismatch", format!("a list mixes {ft} and {t}"))
                                    .at(i.span, format!("this is {}", an(&t)))
                                    .also(fs, format!("this is {}", an(&ft)))
                                    .help("every element of a list has the same type"),
                            );
                            elem = Type::Any;
                        }
                    }
                    if first_span.is_none() {
                        first_span = Some((i.span, t));
                    }
                    out.push(x);
                }
                (typed(TKind::List(out), Type::list(elem)), all_const)
            }
            ExprKind::Record(fields) => {
                let mut seen = BTreeMap::new();
                let mut all_const = true;
                let mut out = Vec::with_capacity(fields.len());
                for (k, v) in fields {
                    if let Some(prev) = seen.insert(k.name.clone(), k.span) {
                        self.diags.push(
                            Diag::new("lab::duplicate", format!("field `{}` appears twice", k.name))
                                .at(k.span, "again here")
                                .also(prev, "first here"),
                        );
                    }
                    let (x, c) = self.expr(v, scope);
                    all_const &= c;
                    out.push((k.name.clone(), x));
                }
                (typed(TKind::Record(out), Type::Record), all_const)
            }
            ExprKind::Neg(x) => {
                let (inner, c) = self.expr(x, scope);
                let t = inner.ty.clone();
                self.numeric(x, &t, c, "-");
                let ty = if t.is_numeric() { t } else { Type::Any };
                (typed(TKind::Neg(Box::new(inner)), ty), c)
            }
            ExprKind::Binary { first, rest } => {
                // Left to right: the value so far (its span, type, constness) meets the next.
                let (f, mut acc_c) = self.expr(first, scope);
                let (mut acc_span, mut acc_ty) = (first.span, f.ty.clone());
                let mut typed_rest = Vec::with_capacity(rest.len());
                for (op, rhs) in rest {
                    let (r, rc) = self.expr(rhs, scope);
                    let rt = r.ty.clone();
                    let ok = self.numeric_at(acc_span, &acc_ty, acc_c, op.symbol())
                        & self.numeric_at(rhs.span, &rt, rc, op.symbol());
                    let (ty, c) = if !ok {
                        (Type::Any, acc_c && rc)
                    } else {
                        match op {
                            BinOp::Range => {
                                for (span, t) in [(acc_span, &acc_ty), (rhs.span, &rt)] {
                                    if *t == Type::Float {
                                        self.diags.push(
                                            Diag::new("lab::bad_range", "range bounds must be integers")
                                                .at(span, "this is a Float")
                                                .help("write `0..10`; for a list of floats write `[0.1, 0.2]`"),
                                        );
                                    }
                                }
                                (Type::Range, true)
                            }
                            BinOp::Div => (Type::Float, true),
                            _ => (acc_ty.unify(&rt).unwrap_or(Type::Any), true),
                        }
                    };
                    typed_rest.push((*op, r));
                    (acc_span, acc_ty, acc_c) = (acc_span.to(rhs.span), ty, c);
                }
                (typed(TKind::Binary { first: Box::new(f), rest: typed_rest }, acc_ty), acc_c)
            }
            ExprKind::Comprehension { body, clauses } => {
                let mut inner = scope.clone();
                let mut iters = Vec::with_capacity(clauses.len());
                for c in clauses {
                    let (iter, t) = self.binding_type(c, &inner);
                    inner.push((c.name.name.clone(), t));
                    iters.push(iter);
                }
                let (b, c) = self.expr(body, &inner);
                let ty = Type::list(b.ty.clone());
                (typed(TKind::Comprehension { body: Box::new(b), clauses: iters }, ty), c)
            }
            ExprKind::Ref { name, index } => self.reference(e, name, index, scope),
            ExprKind::Call(call) => {
                let (sig, _) = match self.lookup(call) {
                    Some(x) => x,
                    None => {
                        for a in &call.args {
                            self.expr(&a.value, scope);
                        }
                        return (TExpr::invalid(e.span), false);
                    }
                };
                let sig = std::sync::Arc::clone(sig);
                let bound = bind_args(&sig, call, e.span, &mut self.diags);
                let mut args = Vec::with_capacity(bound.len());
                for (spec, arg) in &bound {
                    args.push(arg.map(|arg| {
                        let (x, _) = self.expr(&arg.value, scope);
                        if !spec.ty.accepts(&x.ty) {
                            self.diags.push(type_mismatch(&sig, spec, &arg.value, &x.ty));
                        }
                        x
                    }));
                }
                // Extra positional or unknown named args were reported by bind_args; still
                // check their values for errors of their own.
                let resources = resources_arg(&sig, call);
                let mut typed_resources = None;
                for a in &call.args {
                    if !bound.iter().any(|(_, b)| b.is_some_and(|b| std::ptr::eq(b, a))) {
                        let (x, _) = self.expr(&a.value, scope);
                        if resources.is_some_and(|r| std::ptr::eq(r, a)) {
                            if !Type::Record.accepts(&x.ty) {
                                self.diags.push(
                                    Diag::new(
                                        "lab::type_mismatch",
                                        format!("`resources` takes a record, not {}", an(&x.ty)),
                                    )
                                    .at(a.value.span, format!("this is {}", an(&x.ty)))
                                    .help(format!(
                                        "write e.g. `resources: {{cpus: 4, mem: \"8G\", time: \"2h\"}}`; the fields are {}",
                                        lab_ops::Resources::FIELDS
                                    )),
                                );
                            }
                            typed_resources = Some(x);
                        }
                    }
                }
                let ty = sig.output.clone();
                (typed(TKind::Call(Box::new(TCall { sig, args, resources: typed_resources })), ty), false)
            }
        }
    }

    fn numeric(&mut self, x: &Expr, t: &Type, is_const: bool, op: &str) -> bool {
        self.numeric_at(x.span, t, is_const, op)
    }

    /// [`Self::numeric`] for the value spanning `span`.
    fn numeric_at(&mut self, span: Span, t: &Type, is_const: bool, op: &str) -> bool {
        if !t.is_numeric() {
            self.diags.push(
                Diag::new("lab::type_mismatch", format!("`{op}` works on numbers, not on {}", an(t)))
                    .at(span, format!("this is {}", an(t)))
                    .help("arithmetic works on numbers known before the run"),
            );
            return false;
        }
        if !is_const {
            self.diags.push(
                Diag::new("lab::not_constant", format!("`{op}` needs numbers known before the run"))
                    .at(span, "this is computed by a step")
                    .help("arithmetic works on params, loop variables and literals"),
            );
            return false;
        }
        true
    }

    fn reference(&mut self, e: &Expr, name: &lab_grammar::Ident, index: &[Expr], scope: &Scope) -> (TExpr, bool) {
        let mut typed_index = Vec::with_capacity(index.len());
        let mut index_types = Vec::with_capacity(index.len());
        for i in index {
            let (x, c) = self.expr(i, scope);
            self.expect_key(i, &x.ty);
            index_types.push((x.ty.clone(), c));
            typed_index.push(x);
        }
        if let Some(slot) = scope.iter().rposition(|(n, _)| *n == name.name) {
            let t = scope[slot].1.clone();
            let (ty, c) = self.index_value(e, &name.name, t, true, index, &index_types);
            return (TExpr { kind: TKind::Local { slot, index: typed_index }, span: e.span, ty }, c);
        }
        let program = self.program;
        let Some((id, def)) = program.ids.get(&name.name).map(|&id| (id, &program.defs[id])) else {
            // Past the errors that are drawn, a suggestion would only cost time.
            let hint = if self.diags.len() < crate::diagnostic::MAX_RENDERED {
                let candidates =
                    scope.iter().map(|(n, _)| n.as_str()).chain(self.program.names.iter().map(String::as_str));
                suggest(&name.name, candidates)
            } else {
                None
            };
            self.diags.push(
                Diag::new("lab::unknown_name", format!("unknown name `{}`", name.name))
                    .at(name.span, "not defined")
                    .maybe_help(
                        hint.or_else(|| Some("define it as a step (`name = …`) or a param (`param name = …`)".into())),
                    ),
            );
            return (TExpr::invalid(e.span), false);
        };
        let (t, c) = self.def_type(id);
        let make = |ty: Type, index: Vec<TExpr>| {
            let kind = match def {
                Def::Param(_) => TKind::Param { def: id, index },
                Def::Step { .. } => TKind::Step { def: id, index },
            };
            TExpr { kind, span: e.span, ty }
        };
        let arity = def.arity();
        if arity == 0 {
            let (ty, c) = self.index_value(e, &name.name, t, c, index, &index_types);
            return (make(ty, typed_index), c);
        }
        if index.len() != arity {
            let Def::Step { step, .. } = &def else { unreachable!() };
            let shape = lab_grammar_index_text(step);
            let d = if index.is_empty() {
                Diag::new("lab::bad_index", format!("`{}` is a sweep; pick one of its steps", name.name))
                    .at(name.span, format!("indexed as `{shape}` where it is defined"))
                    .also(step.target.span, "defined here")
                    .help(format!("write `{shape}` inside a matching `for`, or collect them: `[{shape} for …]`"))
            } else {
                Diag::new(
                    "lab::bad_index",
                    format!("`{}` takes {arity} index value(s), not {}", name.name, index.len()),
                )
                .at(e.span, format!("{} given", index.len()))
                .also(step.target.span, format!("defined as `{shape}`"))
            };
            self.diags.push(d);
            return (TExpr::invalid(e.span), false);
        }
        let c = c && index_types.iter().all(|(_, c)| *c);
        (make(t, typed_index), c)
    }

    /// Indexing a list-valued param or loop variable: `widths[0]`.
    fn index_value(
        &mut self,
        e: &Expr,
        name: &str,
        t: Type,
        c: bool,
        index: &[Expr],
        index_types: &[(Type, bool)],
    ) -> (Type, bool) {
        match index.len() {
            0 => (t, c),
            1 => match t {
                Type::List(elem) if matches!(index_types[0].0, Type::Int | Type::Any) => (*elem, c && index_types[0].1),
                Type::Any => (Type::Any, c),
                // An index that is no key at all was reported where it was typed.
                Type::List(_) if !matches!(index_types[0].0, Type::Str | Type::Bool | Type::Float) => {
                    (Type::Any, false)
                }
                Type::List(_) => {
                    let it = &index_types[0].0;
                    self.diags.push(
                        Diag::new(
                            "lab::bad_index",
                            format!("`{name}` is a list, indexed by an integer position, not {}", an(it)),
                        )
                        .at(index[0].span, format!("this is {}", an(it)))
                        .help(format!("write `{name}[0]` for its first element")),
                    );
                    (Type::Any, false)
                }
                other => {
                    self.diags.push(
                        Diag::new("lab::bad_index", format!("`{name}` is {} and cannot be indexed", an(&other)))
                            .at(e.span, "indexed here")
                            .help("only lists (by integer position) and sweeps (by loop value) take an index"),
                    );
                    (Type::Any, false)
                }
            },
            n => {
                self.diags
                    .push(Diag::new("lab::bad_index", format!("`{name}` takes one index, not {n}")).at(e.span, "here"));
                (Type::Any, false)
            }
        }
    }

    /// The signature of a call, or a diagnostic with "did you mean".
    pub fn lookup(&mut self, call: &Call) -> Option<(&'r std::sync::Arc<Signature>, &'r dyn lab_ops::DynOp)> {
        let (kind, method) = (&call.kind.name, &call.method.name);
        if let Some(x) = self.registry.get(kind, method) {
            return Some(x);
        }
        let kinds = self.registry.kinds();
        if !kinds.contains(&kind.as_str()) {
            self.diags.push(
                Diag::new("lab::unknown_op", format!("unknown op kind `{kind}`"))
                    .at(call.kind.span, "not an op kind")
                    .maybe_help(
                        suggest(kind, kinds.iter().copied())
                            .or_else(|| Some(format!("op kinds are {}", kinds.join(", ")))),
                    ),
            );
        } else {
            let methods = self.registry.methods(kind);
            let help = match suggest(method, methods.iter().copied()) {
                Some(s) => s,
                None => format!("`{kind}` has: {}; `labrun ops` lists every op", methods.join(", ")),
            };
            self.diags.push(
                Diag::new("lab::unknown_op", format!("unknown op `{kind}.{method}`"))
                    .at(call.method.span, format!("`{kind}` has no `{method}`"))
                    .help(help),
            );
        }
        None
    }
}

fn t_row(row: &lab_grammar::Row, value: TExpr) -> TRow {
    TRow { headline: row.headline, label: row.label.clone(), label_span: row.label_span, value, span: row.span }
}

/// A param's default as written, for messages about `--set`.
/// A param's default as `--set` takes it (`[0, 1, 2]`); long ones are cut.
fn text_of(e: &Expr) -> String {
    let text = lab_grammar::flat(e);
    if text.chars().count() <= 60 { text } else { format!("{}…", text.chars().take(59).collect::<String>()) }
}

/// The `{name}` holes of a row label.
pub(crate) fn label_holes(label: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = label;
    while let Some(i) = rest.find('{') {
        match rest[i..].find('}') {
            Some(j) => {
                out.push(rest[i + 1..i + j].trim().to_string());
                rest = &rest[i + j + 1..];
            }
            None => break,
        }
    }
    out
}

/// `a Model`, `an Int`.
pub(crate) fn an(t: &Type) -> String {
    let s = t.to_string();
    let article = if s.starts_with(['A', 'E', 'I', 'O', 'U']) { "an" } else { "a" };
    format!("{article} {s}")
}

fn lab_grammar_index_text(step: &Step) -> String {
    let idx: Vec<String> = step
        .target
        .index
        .iter()
        .map(|e| match &e.kind {
            ExprKind::Ref { name, index } if index.is_empty() => name.name.clone(),
            _ => "…".into(),
        })
        .collect();
    format!("{}[{}]", step.target.name.name, idx.join(", "))
}

fn type_mismatch(sig: &Signature, spec: &ParamSpec, value: &Expr, actual: &Type) -> Diag {
    let mut d = Diag::new(
        "lab::type_mismatch",
        format!("`{}` of `{}` takes {}, not {}", spec.name, sig.name(), an(&spec.ty), an(actual)),
    )
    .at(value.span, format!("this is {}", an(actual)));
    d = d.help(match (&spec.ty, actual) {
        (Type::Int, Type::Float) => "write a whole number, e.g. `5` rather than `5.0`".to_string(),
        (Type::Range, Type::Int) => "write a range of logits: `0..10`".to_string(),
        (Type::List(_), t) if !matches!(t, Type::List(_)) => format!("wrap it in a list: `[…]`; {}", spec.doc),
        _ => format!("`{}`: {}", spec.name, spec.doc),
    });
    d
}

/// The argument, accepted by every op, that overrides its cluster resources.
pub(crate) const RESOURCES: &str = "resources";

/// The `resources:` argument of a call, if it has one.
pub(crate) fn resources_arg<'c>(sig: &Signature, call: &'c Call) -> Option<&'c Arg> {
    if sig.param(RESOURCES).is_some() {
        return None;
    }
    call.args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == RESOURCES))
}

/// Matches a call's arguments to a signature's parameters: positional ones in order,
/// then named ones. Reports extra, unknown, repeated and missing arguments.
pub(crate) fn bind_args<'s, 'c>(
    sig: &'s Signature,
    call: &'c Call,
    call_span: Span,
    diags: &mut Vec<Diag>,
) -> Vec<(&'s ParamSpec, Option<&'c Arg>)> {
    let mut bound: Vec<(&'s ParamSpec, Option<&'c Arg>)> = sig.params.iter().map(|p| (p, None)).collect();
    let mut next_positional = 0;
    for a in &call.args {
        match &a.name {
            None => {
                if next_positional >= bound.len() {
                    diags.push(
                        Diag::new(
                            "lab::arity",
                            format!("`{}` takes at most {} arguments", sig.name(), sig.params.len()),
                        )
                        .at(a.span, "one too many")
                        .help(format!("its parameters: {}", sig.synopsis())),
                    );
                    continue;
                }
                bound[next_positional].1 = Some(a);
                next_positional += 1;
            }
            // The reserved argument every op takes (unless it has a parameter of that name).
            Some(n) if n.name == RESOURCES && sig.param(RESOURCES).is_none() => {}
            Some(n) => match bound.iter().position(|(p, _)| p.name == n.name) {
                None => {
                    let names = sig.params.iter().map(|p| p.name);
                    diags.push(
                        Diag::new("lab::unknown_arg", format!("`{}` has no parameter `{}`", sig.name(), n.name))
                            .at(n.span, "unknown parameter")
                            .maybe_help(
                                suggest(&n.name, names).or_else(|| Some(format!("its parameters: {}", sig.synopsis()))),
                            ),
                    );
                }
                Some(i) => {
                    if let Some(prev) = bound[i].1 {
                        diags.push(
                            Diag::new("lab::duplicate_arg", format!("`{}` is given twice", n.name))
                                .at(a.span, "given again here")
                                .also(prev.span, "first given here"),
                        );
                    } else {
                        bound[i].1 = Some(a);
                    }
                }
            },
        }
    }
    let missing: Vec<&str> =
        bound.iter().filter(|(p, a)| a.is_none() && p.default.is_none()).map(|(p, _)| p.name).collect();
    if !missing.is_empty() {
        let list = missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
        diags.push(
            Diag::new("lab::missing_arg", format!("`{}` needs {list}", sig.name()))
                .at(call_span, format!("missing {list}"))
                .help(format!("its parameters: {}", sig.synopsis())),
        );
    }
    bound
}
