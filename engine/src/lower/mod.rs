//! Lowering: params get their values (`--set` included), sweeps expand into indexed
//! steps, calls become DAG nodes. Identical invocations become one node. Lowering reads
//! the typed program that `check` produced ([`crate::typed`]): names are already resolved
//! and calls bound, so nothing here looks a name up or walks syntax.

mod inputs;
mod rules;

use crate::Diag;
use crate::check::{Def, Program};
use crate::diagnostic::suggest;
use crate::plan::{ArgVal, Node, NodeArgs as Args, NodeKey, Plan, ReportPlan, RowPlan, TablePlan};
use crate::typed::{DefId, TDefKind, TExpr, TKind, TRow, TTableItem, Typed};
use foldhash::HashMap as FxHashMap;
use lab_grammar::{BinOp, Span};
use lab_ops::{Type, Value};
use std::collections::{BTreeMap, HashMap};

/// Sweeps may create at most this many steps in all.
pub const MAX_INSTANCES: usize = 1_000_000;

/// Sweeps may hold at most this many loop values in all (steps × their loop variables):
/// a sweep over many variables is refused before its steps fill the memory.
pub const MAX_LOOP_VALUES: usize = 8_000_000;

/// A report table's `for` may make at most this many rows.
pub const MAX_TABLE_ROWS: usize = 100_000;

/// Loop values in scope, by slot (outermost first), as `check` numbered them.
type Env = Vec<Value>;

/// The steps of one sweep, in sweep order, and where each encoded index sits.
#[derive(Default)]
struct Family {
    list: Vec<(Vec<u8>, Instance)>,
    /// Built once the family is large enough for a search to be slow (most steps are
    /// families of one).
    index: Option<FxHashMap<Vec<u8>, usize>>,
}

impl Family {
    const INDEXED: usize = 16;

    fn position(&self, key: &[u8]) -> Option<usize> {
        match &self.index {
            Some(m) => m.get(key).copied(),
            None => self.list.iter().position(|(k, _)| k == key),
        }
    }

    fn push(&mut self, key: Vec<u8>, inst: Instance) {
        if let Some(m) = &mut self.index {
            m.insert(key.clone(), self.list.len());
        } else if self.list.is_empty() {
            // Most families have one step: no room for more until a second comes.
            self.list.reserve_exact(1);
        } else if self.list.len() + 1 >= Self::INDEXED {
            let mut m: FxHashMap<Vec<u8>, usize> =
                self.list.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
            m.insert(key.clone(), self.list.len());
            self.index = Some(m);
        }
        self.list.push((key, inst));
    }
}

struct Instance {
    env: Env,
    name: String,
    state: State,
}

/// Where the evaluation of an instance stands.
#[derive(Clone)]
enum State {
    Pending,
    Visiting,
    Done(Option<ArgVal>),
}

pub(crate) struct Lowerer<'a> {
    program: &'a Typed,
    /// `--set` values by the param they replace, and their text.
    overrides: FxHashMap<DefId, (&'a TExpr, &'a str)>,
    /// Each param's value once computed (`Some(None)`: it failed).
    params: Vec<Option<Option<Value>>>,
    /// Each step family's instances.
    instances: Vec<Family>,
    nodes: Vec<Node>,
    dedupe: FxHashMap<Vec<u8>, usize>,
    total_instances: usize,
    total_loop_values: usize,
    /// The directory of each source file, to resolve `Path` arguments.
    dirs: Vec<std::path::PathBuf>,
    /// The project folder `Path` arguments must lie in (as shown, canonical).
    project: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub diags: Vec<Diag>,
}

impl<'a> Lowerer<'a> {
    pub fn new(
        program: &'a Typed,
        dirs: Vec<std::path::PathBuf>,
        project: Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) -> Self {
        let n = program.defs.len();
        Lowerer {
            program,
            overrides: program.overrides.iter().map(|(id, e, text)| (*id, (e, text.as_str()))).collect(),
            params: vec![None; n],
            instances: (0..n).map(|_| Family::default()).collect(),
            nodes: Vec::new(),
            dedupe: FxHashMap::default(),
            total_instances: 0,
            total_loop_values: 0,
            dirs,
            project,
            diags: Vec::new(),
        }
    }

    pub fn lower(mut self) -> (Option<Plan>, Vec<Diag>) {
        let program = self.program;
        // Source order, so the plan reads like the file.
        for (id, d) in program.defs.iter().enumerate() {
            if d.is_param() {
                self.param(id);
            }
        }
        for (id, d) in program.defs.iter().enumerate() {
            if let TDefKind::Step { loops, span, .. } = &d.kind {
                if self.sweep_too_large(loops, *span) {
                    continue;
                }
                self.enumerate(id, loops, &mut Vec::new());
            }
        }
        if !self.diags.is_empty() {
            return (None, self.diags);
        }
        for id in 0..self.instances.len() {
            for pos in 0..self.instances[id].list.len() {
                self.resolve_at(id, pos);
            }
        }
        let reports = self.reports();
        let params = self
            .params
            .iter()
            .enumerate()
            .filter_map(|(id, v)| v.clone().flatten().map(|v| (program.defs[id].name.clone(), v)))
            .collect();
        if !self.diags.is_empty() {
            return (None, self.diags);
        }
        let order = match Plan::topological(&self.nodes) {
            Ok(o) => o,
            Err(id) => {
                let n = &self.nodes[id];
                self.diags.push(Diag::new("lab::cycle", format!("`{}` depends on itself", n.name)).at(n.span, "here"));
                return (None, self.diags);
            }
        };
        (Some(Plan { nodes: self.nodes, order, reports, params }), self.diags)
    }

    fn param(&mut self, id: DefId) -> Option<Value> {
        if let Some(v) = &self.params[id] {
            return v.clone();
        }
        self.params[id] = Some(None);
        let def = &self.program.defs[id];
        let TDefKind::Param { value: default, text: default_text } = &def.kind else { unreachable!() };
        let (name, declared) = (&def.name, &def.ty);
        let value = if let Some(&(expr, text)) = self.overrides.get(&id) {
            let v = self.constant(expr, &Vec::new());
            match v {
                Some(v) if declared.accepts(&v.type_of()) => Some(coerce(v, declared)),
                Some(v) => {
                    self.diags.push(
                        Diag::new(
                            "lab::bad_override",
                            format!(
                                "`--set {name}={text}` gives {}, but `{name}` is {}",
                                crate::check::an(&v.type_of()),
                                crate::check::an(declared)
                            ),
                        )
                        .at(default.span, format!("`{name}` is {} here", crate::check::an(declared)))
                        .help(format!(
                            "give {}, like the default: `{name}={default_text}`",
                            crate::check::an(declared),
                        )),
                    );
                    None
                }
                None => None,
            }
        } else {
            self.constant(default, &Vec::new())
        };
        self.params[id] = Some(value.clone());
        value
    }

    /// Refuses, before expanding it, a sweep whose loops (each over a list or range that no
    /// other loop variable shapes) make more steps or loop values than labrun expands; the
    /// count is exact, with no overflow. Loops that depend on each other are counted as
    /// they expand instead.
    fn sweep_too_large(&mut self, loops: &[TExpr], span: Span) -> bool {
        // One loop: its own length is checked where it is expanded, at the range.
        if loops.len() < 2 || loops.iter().any(mentions_local) {
            return false;
        }
        let before = self.diags.len();
        let mut steps: u128 = 1;
        for l in loops {
            let len = match self.constant(l, &Vec::new()) {
                Some(Value::List(items)) => items.len() as u128,
                Some(Value::Range { start, end }) => end.saturating_sub(start).max(0) as u128,
                _ => {
                    // Reported where the loop is expanded.
                    self.diags.truncate(before);
                    return false;
                }
            };
            steps = steps.saturating_mul(len);
        }
        let values = steps.saturating_mul(loops.len() as u128);
        let total_steps = steps.saturating_add(self.total_instances as u128);
        let total_values = values.saturating_add(self.total_loop_values as u128);
        if total_steps <= MAX_INSTANCES as u128 && total_values <= MAX_LOOP_VALUES as u128 {
            return false;
        }
        self.diags.push(
            Diag::new(
                "lab::too_large",
                format!(
                    "this sweep makes {steps} steps over {} loop variables; labrun expands at most {MAX_INSTANCES} steps and {MAX_LOOP_VALUES} loop values in all",
                    loops.len()
                ),
            )
            .at(span, "this step")
            .help("sweep over fewer variables or fewer values"),
        );
        true
    }

    /// Creates the instances of a step family: one per combination of its loops.
    fn enumerate(&mut self, family: DefId, loops: &[TExpr], env: &mut Env) {
        let program = self.program;
        let def = &program.defs[family];
        let TDefKind::Step { index, target, span, .. } = &def.kind else { unreachable!() };
        if env.len() == loops.len() {
            let mut idx = Vec::with_capacity(index.len());
            for i in index {
                match self.constant(i, env) {
                    Some(v) => idx.push(v),
                    None => return,
                }
            }
            let key = encode_index(&idx);
            let name = instance_name(&def.name, &idx);
            self.total_instances += 1;
            self.total_loop_values += env.len();
            if self.total_instances <= MAX_INSTANCES && self.total_loop_values > MAX_LOOP_VALUES {
                self.diags.push(
                    Diag::new(
                        "lab::too_large",
                        format!("sweeps hold more than {MAX_LOOP_VALUES} loop values (steps × loop variables)"),
                    )
                    .at(*span, format!("while expanding this step, over {} loop variables", env.len()))
                    .help("sweep over fewer variables or fewer values"),
                );
                // Stop every sweep here, as past the step limit.
                self.total_instances = MAX_INSTANCES + 1;
            }
            if self.total_instances == MAX_INSTANCES + 1 && self.total_loop_values <= MAX_LOOP_VALUES {
                self.diags.push(
                    Diag::new("lab::too_large", format!("sweeps create more than {MAX_INSTANCES} steps"))
                        .at(*span, "while expanding this step")
                        .help("sweep over fewer values"),
                );
            }
            if self.total_instances > MAX_INSTANCES {
                return;
            }
            let fam = &mut self.instances[family];
            if fam.position(&key).is_some() {
                self.diags.push(
                    Diag::new("lab::duplicate", format!("`{name}` is defined twice by this sweep"))
                        .at(*target, "two loop values give the same index")
                        .help("index the step by every loop variable: `name[a, b]`"),
                );
                return;
            }
            fam.push(key, Instance { env: env.clone(), name, state: State::Pending });
            return;
        }
        let Some(items) = self.iterate(&loops[env.len()], env) else { return };
        for v in items {
            env.push(v);
            self.enumerate(family, loops, env);
            env.pop();
            if self.total_instances > MAX_INSTANCES {
                return;
            }
        }
    }

    fn iterate(&mut self, e: &TExpr, env: &Env) -> Option<Vec<Value>> {
        match self.constant(e, env)? {
            Value::List(items) => Some(items),
            Value::Range { start, end } => {
                if (end - start) as usize > MAX_INSTANCES {
                    self.diags.push(
                        Diag::new("lab::too_large", format!("the range `{start}..{end}` is too long to sweep"))
                            .at(e.span, "here"),
                    );
                    return None;
                }
                Some((start..end).map(Value::Int).collect())
            }
            other => {
                self.diags.push(
                    Diag::new(
                        "lab::type_mismatch",
                        format!("cannot sweep over {}", crate::check::an(&other.type_of())),
                    )
                    .at(e.span, "here"),
                );
                None
            }
        }
    }

    /// The value of an instance: evaluates its definition once.
    fn resolve(&mut self, family: DefId, key: &[u8]) -> Option<ArgVal> {
        let pos = self.instances[family].position(key)?;
        self.resolve_at(family, pos)
    }

    /// [`Lowerer::resolve`] by the instance's position in its family.
    fn resolve_at(&mut self, family: DefId, pos: usize) -> Option<ArgVal> {
        let program = self.program;
        let inst = &mut self.instances[family].list[pos].1;
        match &inst.state {
            State::Done(v) => return v.clone(),
            State::Visiting => {
                let def = &program.defs[family];
                self.diags
                    .push(Diag::new("lab::cycle", format!("`{}` depends on itself", def.name)).at(def.span, "here"));
                return None;
            }
            State::Pending => inst.state = State::Visiting,
        }
        let (env, name) = (std::mem::take(&mut inst.env), std::mem::take(&mut inst.name));
        let TDefKind::Step { value, .. } = &program.defs[family].kind else { unreachable!() };
        let v = self.eval(value, &env, &name, true);
        let inst = &mut self.instances[family].list[pos].1;
        inst.state = State::Done(v.clone());
        inst.env = env;
        inst.name = name;
        v
    }

    /// Evaluates an expression that must not involve steps.
    fn constant(&mut self, e: &TExpr, env: &Env) -> Option<Value> {
        match self.eval(e, env, "", false)? {
            ArgVal::Value(v) => Some(v),
            _ => {
                self.diags.push(
                    Diag::new("lab::not_constant", "this must be known before the run").at(e.span, "depends on a step"),
                );
                None
            }
        }
    }

    /// Evaluates `e`. `owner` names calls it creates; `named` says `e` is the whole value of
    /// the step `owner` (so its call takes the step's name).
    fn eval(&mut self, e: &TExpr, env: &Env, owner: &str, named: bool) -> Option<ArgVal> {
        let program = self.program;
        let value = |v| Some(ArgVal::Value(v));
        match &e.kind {
            TKind::Int(v) => value(Value::Int(*v)),
            TKind::Float(v) => value(Value::Float(*v)),
            TKind::Str(s) => value(Value::Str(s.clone())),
            TKind::Bool(b) => value(Value::Bool(*b)),
            TKind::Invalid => None,
            TKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, x) in items.iter().enumerate() {
                    let child = if x.creates_nodes() { format!("{owner}/{i}") } else { String::new() };
                    out.push(self.eval(x, env, &child, false)?);
                }
                Some(collapse(out))
            }
            TKind::Record(fields) => {
                let mut m = BTreeMap::new();
                for (k, v) in fields {
                    match self.eval(v, env, owner, false)? {
                        ArgVal::Value(x) => {
                            m.insert(k.clone(), x);
                        }
                        _ => {
                            self.diags.push(
                                Diag::new("lab::not_constant", "record fields must be known before the run")
                                    .at(v.span, "depends on a step"),
                            );
                            return None;
                        }
                    }
                }
                value(Value::Record(m))
            }
            TKind::Neg(x) => match self.constant(x, env)? {
                Value::Int(i) => match i.checked_neg() {
                    Some(v) => value(Value::Int(v)),
                    None => self.overflow(e.span),
                },
                Value::Float(f) => value(Value::Float(-f)),
                _ => None,
            },
            TKind::Binary { first, rest } => {
                let mut acc = self.constant(first, env)?;
                for (op, rhs) in rest {
                    let r = self.constant(rhs, env)?;
                    acc = self.arith(e.span, *op, acc, r, rhs.span)?;
                }
                value(acc)
            }
            TKind::Comprehension { body, clauses } => {
                let mut out = Vec::new();
                let mut env = env.clone();
                self.comprehend(body, clauses, &mut env, owner, &mut out)?;
                Some(collapse(out))
            }
            TKind::Local { slot, index } => {
                let idx = self.index_values(index, env)?;
                let v = env.get(*slot)?.clone();
                self.index_list(e.span, v, &idx).map(ArgVal::Value)
            }
            TKind::Param { def, index } => {
                let idx = self.index_values(index, env)?;
                let v = self.param(*def)?;
                self.index_list(e.span, v, &idx).map(ArgVal::Value)
            }
            TKind::Step { def, index } => {
                let idx = self.index_values(index, env)?;
                let TDefKind::Step { index: own, .. } = &program.defs[*def].kind else { unreachable!() };
                if own.is_empty() {
                    let v = self.resolve(*def, &encode_index(&[]))?;
                    return match (v, idx.as_slice()) {
                        (v, []) => Some(v),
                        (ArgVal::Value(list), _) => self.index_list(e.span, list, &idx).map(ArgVal::Value),
                        // A list of step results: `scores[0]`.
                        (ArgVal::List(items), [Value::Int(i)]) => self.pick(e.span, &items, *i),
                        _ => None,
                    };
                }
                let key = encode_index(&idx);
                if self.instances[*def].position(&key).is_none() {
                    let d = &program.defs[*def];
                    let have: Vec<String> =
                        self.instances[*def].list.iter().map(|(_, i)| i.name.clone()).take(8).collect();
                    let want = instance_name(&d.name, &idx);
                    self.diags.push(
                        Diag::new("lab::bad_index", format!("`{want}` does not exist"))
                            .at(e.span, "no step has this index")
                            .also(d.span, "the sweep is defined here")
                            .help(if have.is_empty() {
                                "the sweep that defines it is empty".to_string()
                            } else {
                                format!("it defines {}{}", have.join(", "), if have.len() == 8 { ", …" } else { "" })
                            }),
                    );
                    return None;
                }
                self.resolve(*def, &key)
            }
            TKind::Call(call) => {
                let sig = std::sync::Arc::clone(&call.sig);
                let mut args = Args::for_params(sig.params.iter().map(|p| p.name));
                let mut deps = Vec::new();
                let mut spans: BTreeMap<&'static str, Span> = BTreeMap::new();
                for (position, (spec, arg)) in sig.params.iter().zip(&call.args).enumerate() {
                    if let Some(a) = arg {
                        spans.insert(spec.name, a.span);
                    }
                    let v = match arg {
                        Some(a) => {
                            let child =
                                if a.creates_nodes() { format!("{owner}/{}", spec.name) } else { String::new() };
                            match self.eval(a, env, &child, false)? {
                                ArgVal::Value(v) => ArgVal::Value(coerce(v, &spec.ty)),
                                other => other,
                            }
                        }
                        None => ArgVal::Value(spec.default.clone()?),
                    };
                    if let ArgVal::Value(Value::Range { start, end }) = &v
                        && start > end
                    {
                        let span = arg.as_ref().map_or(e.span, |a| a.span);
                        self.diags.push(
                            Diag::new(
                                "lab::bad_range",
                                format!("the range `{start}..{end}` is empty: it starts after it ends"),
                            )
                            .at(span, "start > end")
                            .help("write the smaller bound first: `0..10`"),
                        );
                        return None;
                    }
                    v.deps(&mut deps);
                    if let (Type::Path | Type::Dir, ArgVal::Value(Value::Str(p))) = (&spec.ty, &v) {
                        let span = arg.as_ref().map_or(e.span, |a| a.span);
                        let max_bytes = sig.checks.iter().find_map(|c| match c {
                            lab_ops::Check::MaxBytes { param, bytes } if *param == spec.name => Some(*bytes),
                            _ => None,
                        });
                        let (abs, hash) = self.resolve_path(p, span, spec.ty == Type::Dir, max_bytes)?;
                        args.set_hash(position, hash);
                        args.set(position, ArgVal::Value(Value::Str(abs)));
                        continue;
                    }
                    args.set(position, v);
                }
                deps.sort_unstable();
                deps.dedup();
                self.check_args(&sig, &args, &spans, e.span);
                let facts = self.facts_of(&sig, &args);
                let resources = match &call.resources {
                    None => sig.resources,
                    Some(a) => match self.eval(a, env, "", false)? {
                        ArgVal::Value(Value::Record(fields)) => match sig.resources.with(&fields) {
                            Ok(r) => r,
                            Err(msg) => {
                                self.diags.push(
                                    Diag::new("lab::bad_resources", msg).at(a.span, "these resources").help(format!(
                                        "`labrun ops {}` shows what the op asks for by default",
                                        sig.name()
                                    )),
                                );
                                return None;
                            }
                        },
                        _ => return None,
                    },
                };
                // Inputs by node id: one node per invocation, in the cache key's layout.
                let mut key = Vec::with_capacity(128);
                NodeKey::write(&sig, &args, &mut key, &mut |n, out| {
                    out.extend_from_slice(&(n as u64).to_le_bytes());
                    Some(())
                });
                let name = if named { owner.to_string() } else { owner.trim_start_matches('/').to_string() };
                if let Some(&id) = self.dedupe.get(&key) {
                    // Names are unique (steps resolve once, nested names carry their owner), so no
                    // search of the aliases is needed.
                    if !name.is_empty() && self.nodes[id].name != name {
                        self.nodes[id].aliases.push(name);
                    }
                    return Some(ArgVal::Node(id));
                }
                let id = self.nodes.len();
                self.nodes.push(Node {
                    id,
                    name,
                    aliases: Vec::new(),
                    op: sig,
                    args,
                    span: e.span,
                    deps,
                    resources,
                    facts,
                });
                self.dedupe.insert(key, id);
                Some(ArgVal::Node(id))
            }
        }
    }

    fn index_values(&mut self, index: &[TExpr], env: &Env) -> Option<Vec<Value>> {
        let mut idx = Vec::with_capacity(index.len());
        for i in index {
            idx.push(self.constant(i, env)?);
        }
        Some(idx)
    }

    fn comprehend(
        &mut self,
        body: &TExpr,
        clauses: &[TExpr],
        env: &mut Env,
        owner: &str,
        out: &mut Vec<ArgVal>,
    ) -> Option<()> {
        let Some((first, rest)) = clauses.split_first() else {
            // Refused before it grows: a product of ranges can ask for billions of values.
            if out.len() >= MAX_INSTANCES {
                self.diags.push(
                    Diag::new("lab::too_large", format!("this list has more than {MAX_INSTANCES} elements"))
                        .at(body.span, "while building this list")
                        .help("loop over fewer values"),
                );
                return None;
            }
            let v = self.eval(body, env, &format!("{owner}/{}", out.len()), false)?;
            out.push(v);
            return Some(());
        };
        for v in self.iterate(first, env)? {
            env.push(v);
            let r = self.comprehend(body, rest, env, owner, out);
            env.pop();
            r?;
        }
        Some(())
    }

    fn index_list(&mut self, at: Span, v: Value, idx: &[Value]) -> Option<Value> {
        match (v, idx) {
            (v, []) => Some(v),
            (Value::List(items), [Value::Int(i)]) => self.pick(at, &items, *i),
            _ => None,
        }
    }

    /// Element `i` of a list (negative: from the end); out of bounds is an error at `at`.
    fn pick<T: Clone>(&mut self, at: Span, items: &[T], i: i64) -> Option<T> {
        let n = items.len() as i64;
        let j = if i < 0 { n + i } else { i };
        if (0..n).contains(&j) {
            Some(items[j as usize].clone())
        } else {
            self.diags.push(
                Diag::new("lab::bad_index", format!("index {i} is out of bounds for a list of {n}"))
                    .at(at, "out of bounds")
                    .help(format!("valid positions are 0..{n} (or -{n}..-1 from the end)")),
            );
            None
        }
    }

    fn overflow<T>(&mut self, at: Span) -> Option<T> {
        self.diags.push(Diag::new("lab::overflow", "integer overflow").at(at, "the result does not fit in 64 bits"));
        None
    }

    fn arith(&mut self, at: Span, op: BinOp, l: Value, r: Value, rspan: Span) -> Option<Value> {
        use Value::{Float, Int};
        if op == BinOp::Range {
            return match (l, r) {
                (Int(a), Int(b)) if a <= b => Some(Value::Range { start: a, end: b }),
                (Int(a), Int(b)) => {
                    self.diags.push(
                        Diag::new("lab::bad_range", format!("the range `{a}..{b}` is empty: it starts after it ends"))
                            .at(at, "start > end")
                            .help("write the smaller bound first"),
                    );
                    None
                }
                _ => None,
            };
        }
        if matches!(op, BinOp::Div | BinOp::Rem) && r.as_f64() == Some(0.0) {
            self.diags.push(Diag::new("lab::division_by_zero", "division by zero").at(rspan, "this is zero"));
            return None;
        }
        match (l, r) {
            (Int(a), Int(b)) => {
                let v = match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    BinOp::Mul => a.checked_mul(b),
                    BinOp::Div => return Some(Float(a as f64 / b as f64)),
                    BinOp::Rem => a.checked_rem_euclid(b),
                    BinOp::Range => unreachable!(),
                };
                match v {
                    Some(v) => Some(Int(v)),
                    None => self.overflow(at),
                }
            }
            (l, r) => {
                let (a, b) = (l.as_f64()?, r.as_f64()?);
                let v = match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Rem => a.rem_euclid(b),
                    BinOp::Range => unreachable!(),
                };
                if v.is_finite() { Some(Float(v)) } else { self.float_overflow(at, v) }
            }
        }
    }

    fn float_overflow<T>(&mut self, at: Span, v: f64) -> Option<T> {
        let (what, label) = if v.is_nan() {
            ("not a number", "undefined for these values")
        } else {
            ("infinite: float overflow", "beyond the largest 64-bit float (about 1.8e308)")
        };
        self.diags.push(
            Diag::new("lab::overflow", format!("the result is {what}"))
                .at(at, label)
                .help("keep values within ±1.8e308; a product of large numbers overflows"),
        );
        None
    }

    fn reports(&mut self) -> Vec<ReportPlan> {
        let program = self.program;
        let mut out = Vec::new();
        // Figures are files named after their labels, all in one folder.
        let mut files: HashMap<String, (String, Span)> = HashMap::new();
        for r in &program.reports {
            let mut plan = ReportPlan { title: r.title.clone(), tables: Vec::new(), rows: Vec::new() };
            for row in &r.rows {
                if let Some(v) = self.eval(&row.value, &Vec::new(), &format!("report/{}", row.label), true) {
                    // Figures, and fits (which draw one): both become `LABEL.svg`.
                    if let ArgVal::Node(n) = &v
                        && matches!(self.nodes[*n].op.output, Type::Figure | Type::Fit)
                    {
                        let file = format!("{}.svg", crate::report::sanitize(&row.label));
                        if let Some((first, at)) = files.get(&file) {
                            self.diags.push(
                                Diag::new(
                                    "lab::duplicate",
                                    format!("figures `{first}` and `{}` would both be written to `{file}`", row.label),
                                )
                                .at(row.label_span, "this figure")
                                .also(*at, "the other")
                                .help("figure files are named after their labels, with characters other than letters, digits, `-` and `_` as `_`: rename one"),
                            );
                        } else {
                            files.insert(file, (row.label.clone(), row.label_span));
                        }
                    }
                    plan.rows.push(RowPlan {
                        label: row.label.clone(),
                        headline: row.headline,
                        value: v,
                        span: row.span,
                    });
                }
            }
            for t in &r.tables {
                let mut rows = Vec::new();
                for item in &t.items {
                    match item {
                        TTableItem::Row(row) => {
                            if let Some(v) = self.eval(&row.value, &Vec::new(), &format!("report/{}", row.label), true)
                            {
                                rows.push(RowPlan {
                                    label: row.label.clone(),
                                    headline: row.headline,
                                    value: v,
                                    span: row.span,
                                });
                            }
                        }
                        TTableItem::For { bindings, rows: body } => {
                            let mut envs: Vec<Env> = vec![Vec::new()];
                            let mut too_many = false;
                            'product: for (_, iter) in bindings {
                                let mut next = Vec::new();
                                for env in &envs {
                                    for v in self.iterate(iter, env).unwrap_or_default() {
                                        if next.len() == MAX_TABLE_ROWS {
                                            self.diags.push(
                                                Diag::new(
                                                    "lab::too_large",
                                                    format!("this table's `for` makes more than {MAX_TABLE_ROWS} rows"),
                                                )
                                                .at(iter.span, "here")
                                                .help("a table reads best with a few dozen rows: sweep over fewer values, or use a figure"),
                                            );
                                            too_many = true;
                                            break 'product;
                                        }
                                        let mut e = env.clone();
                                        e.push(v);
                                        next.push(e);
                                    }
                                }
                                envs = next;
                            }
                            if too_many {
                                envs.clear();
                            }
                            for env in &envs {
                                for row in body {
                                    self.table_row(row, bindings, env, &mut rows);
                                }
                            }
                        }
                    }
                }
                plan.tables.push(TablePlan { caption: t.caption.clone(), rows });
            }
            out.push(plan);
        }
        out
    }

    fn table_row(&mut self, row: &TRow, bindings: &[(String, TExpr)], env: &Env, rows: &mut Vec<RowPlan>) {
        let label = interpolate(&row.label, bindings, env);
        if let Some(v) = self.eval(&row.value, env, &format!("report/{label}"), true) {
            rows.push(RowPlan { label, headline: row.headline, value: v, span: row.span });
        }
    }
}

/// Checks `--set` names against the program's params.
pub(crate) fn check_override_names(program: &Program, names: &[String]) -> Vec<Diag> {
    let mut params: Vec<&str> = program
        .names
        .iter()
        .zip(&program.defs)
        .filter(|(_, d)| matches!(d, Def::Param(_)))
        .map(|(n, _)| n.as_str())
        .collect();
    params.sort_unstable();
    names
        .iter()
        .filter(|n| !params.contains(&n.as_str()))
        .map(|n| {
            Diag::new("lab::bad_override", format!("`--set {n}=…` names no param of this program")).maybe_help(
                suggest(n, params.iter().copied()).or_else(|| Some(format!("its params: {}", params.join(", ")))),
            )
        })
        .collect()
}

/// A row label with its `{name}` holes filled from the loop values.
fn interpolate(label: &str, bindings: &[(String, TExpr)], env: &Env) -> String {
    let mut out = label.to_string();
    for ((name, _), v) in bindings.iter().zip(env) {
        let shown = match v {
            Value::Str(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("{{{name}}}"), &shown);
    }
    out
}

fn collapse(items: Vec<ArgVal>) -> ArgVal {
    if items.iter().all(|i| matches!(i, ArgVal::Value(_))) {
        ArgVal::Value(Value::List(
            items.into_iter().map(|i| if let ArgVal::Value(v) = i { v } else { unreachable!() }).collect(),
        ))
    } else {
        ArgVal::List(items)
    }
}

/// Converts integers to floats where the declared type wants floats, so `lr: 1` and
/// `lr: 1.0` are the same invocation.
pub(crate) fn coerce(v: Value, ty: &Type) -> Value {
    match (v, ty) {
        (Value::Int(i), Type::Float) => Value::Float(i as f64),
        (Value::List(items), Type::List(t)) => Value::List(items.into_iter().map(|i| coerce(i, t)).collect()),
        (v, _) => v,
    }
}

/// The key of a sweep's step: its index values encoded as a list (without copying them).
fn encode_index(idx: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + 9 * idx.len());
    out.push(b'l');
    out.extend_from_slice(&(idx.len() as u64).to_le_bytes());
    for v in idx {
        v.encode(&mut out);
    }
    out
}

pub(crate) fn instance_name(family: &str, idx: &[Value]) -> String {
    if idx.is_empty() {
        family.to_string()
    } else {
        format!("{family}[{}]", idx.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))
    }
}

/// Whether `e` reads a loop variable (so its value depends on the loop it is in).
fn mentions_local(e: &TExpr) -> bool {
    match &e.kind {
        TKind::Int(_) | TKind::Float(_) | TKind::Str(_) | TKind::Bool(_) | TKind::Invalid => false,
        TKind::Local { .. } | TKind::Comprehension { .. } | TKind::Call(_) => true,
        TKind::List(xs) => xs.iter().any(mentions_local),
        TKind::Record(fields) => fields.iter().any(|(_, x)| mentions_local(x)),
        TKind::Neg(x) => mentions_local(x),
        TKind::Binary { first, rest } => mentions_local(first) || rest.iter().any(|(_, x)| mentions_local(x)),
        TKind::Param { index, .. } | TKind::Step { index, .. } => index.iter().any(mentions_local),
    }
}
