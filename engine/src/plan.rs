//! The plan: a DAG of concrete op invocations, in a topological order.

use lab_grammar::Span;
use lab_ops::{Signature, Value};
use petgraph::graph::{DiGraph, NodeIndex};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A lowered argument: a value fixed before the run, the output of a node, or a list of
/// either.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgVal {
    Value(Value),
    Node(usize),
    List(Vec<ArgVal>),
}

impl ArgVal {
    /// Node ids this argument reads.
    pub fn deps(&self, out: &mut Vec<usize>) {
        match self {
            ArgVal::Value(_) => {}
            ArgVal::Node(n) => out.push(*n),
            ArgVal::List(items) => items.iter().for_each(|i| i.deps(out)),
        }
    }
}

/// A node's arguments by the position of their parameter in the op's signature: one value
/// per parameter (every parameter, defaults filled in), and beside a `Path` or `Dir`
/// argument the hash of its content. Names are the signature's own strings. Keys and
/// displays read the arguments in name order ([`NodeArgs::iter`]), a content hash as the
/// derived entry `NAME#blake3`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeArgs {
    names: Vec<&'static str>,
    values: Vec<Option<ArgVal>>,
    hashes: Vec<Option<ArgVal>>,
}

impl NodeArgs {
    /// Arguments for parameters named `names` (the signature's, in its order), none set.
    pub fn for_params(names: impl Iterator<Item = &'static str>) -> NodeArgs {
        let names: Vec<&'static str> = names.collect();
        let n = names.len();
        NodeArgs { names, values: vec![None; n], hashes: vec![None; n] }
    }

    /// Sets the argument of the parameter at `position`.
    pub fn set(&mut self, position: usize, value: ArgVal) {
        self.values[position] = Some(value);
    }

    /// Records the content hash of the file or folder the parameter at `position` names.
    pub fn set_hash(&mut self, position: usize, hash: String) {
        self.hashes[position] = Some(ArgVal::Value(Value::Str(hash)));
    }

    /// The argument of the parameter at `position`.
    pub fn at(&self, position: usize) -> Option<&ArgVal> {
        self.values.get(position)?.as_ref()
    }

    /// The argument of the parameter `name`.
    pub fn get(&self, name: &str) -> Option<&ArgVal> {
        self.at(self.names.iter().position(|n| *n == name)?)
    }

    /// Every argument in name order, content hashes as `NAME#blake3` among them.
    pub fn iter(&self) -> impl Iterator<Item = (Cow<'static, str>, &ArgVal)> {
        let mut all: Vec<(Cow<'static, str>, &ArgVal)> = Vec::with_capacity(self.names.len() + 1);
        for (i, name) in self.names.iter().enumerate() {
            if let Some(v) = &self.values[i] {
                all.push((Cow::Borrowed(*name), v));
            }
            if let Some(h) = &self.hashes[i] {
                all.push((Cow::Owned(format!("{name}#blake3")), h));
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.into_iter()
    }

    /// The same arguments with `f` applied to each value (content hashes kept).
    pub fn map(&self, f: impl Fn(&ArgVal) -> ArgVal) -> NodeArgs {
        NodeArgs {
            names: self.names.clone(),
            values: self.values.iter().map(|v| v.as_ref().map(&f)).collect(),
            hashes: self.hashes.clone(),
        }
    }
}

/// The canonical bytes of an invocation — op, version, every argument by name — of which
/// both deduplication (at lowering, inputs written as node ids) and the cache key (at run
/// time, inputs written as their artifact ids) are made. One layout for both, so two calls
/// are one node exactly when, given the same inputs, they would have one cache key.
pub struct NodeKey;

impl NodeKey {
    /// Appends the bytes to `out`. `input` appends the id of one input node, or returns
    /// `None` when it is not known yet (and then so is the key). A list of inputs is written
    /// flattened: its count, then each input in order.
    pub fn write(
        op: &Signature,
        args: &NodeArgs,
        out: &mut Vec<u8>,
        input: &mut dyn FnMut(usize, &mut Vec<u8>) -> Option<()>,
    ) -> Option<()> {
        // `kind.method`, written without building the string.
        let (kind, method) = (op.kind.as_bytes(), op.method.as_bytes());
        out.extend_from_slice(&((kind.len() + 1 + method.len()) as u64).to_le_bytes());
        out.extend_from_slice(kind);
        out.push(b'.');
        out.extend_from_slice(method);
        out.extend_from_slice(&op.version.to_le_bytes());
        let mut nodes = Vec::new();
        for (k, v) in args.iter() {
            out.extend_from_slice(&(k.len() as u64).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            match v {
                ArgVal::Value(v) => {
                    out.push(0);
                    v.encode(out);
                }
                other => {
                    out.push(1);
                    nodes.clear();
                    other.deps(&mut nodes);
                    out.extend_from_slice(&(nodes.len() as u64).to_le_bytes());
                    for &n in &nodes {
                        input(n, out)?;
                    }
                }
            }
        }
        Some(())
    }
}

/// One op invocation.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: usize,
    /// The step's name (`teacher[0]`), or `owner/param` for a call nested in another.
    pub name: String,
    /// Other names that lowered to the very same invocation.
    pub aliases: Vec<String>,
    pub op: std::sync::Arc<Signature>,
    /// Every parameter, defaults filled in, values coerced to the declared types.
    pub args: NodeArgs,
    /// The call in the source.
    pub span: Span,
    pub deps: Vec<usize>,
    /// What the step needs on a cluster: the op's declaration, or the call's `resources:`.
    /// Not part of the cache key.
    pub resources: lab_ops::Resources,
    /// What is known of the output before the run (a model's `inputs` and `outputs`, a
    /// dataset's `width`), from the op's signature.
    pub facts: std::collections::BTreeMap<&'static str, i64>,
}

/// A row of a report: a label and what it shows.
#[derive(Debug, Clone)]
pub struct RowPlan {
    pub label: String,
    /// Marked `headline`: the end of a run prints it.
    pub headline: bool,
    pub value: ArgVal,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct TablePlan {
    pub caption: Option<String>,
    pub rows: Vec<RowPlan>,
}

/// A `report` block, lowered.
#[derive(Debug, Clone)]
pub struct ReportPlan {
    pub title: String,
    pub tables: Vec<TablePlan>,
    /// Rows outside any table: figures and single values.
    pub rows: Vec<RowPlan>,
}

/// A checked, lowered program.
#[derive(Debug, Clone)]
pub struct Plan {
    pub nodes: Vec<Node>,
    /// Node ids, dependencies first.
    pub order: Vec<usize>,
    pub reports: Vec<ReportPlan>,
    /// Every param's final value (after `--set`).
    pub params: BTreeMap<String, Value>,
}

impl Plan {
    pub(crate) fn graph(nodes: &[Node]) -> DiGraph<usize, ()> {
        let mut g = DiGraph::with_capacity(nodes.len(), nodes.len() * 2);
        for n in nodes {
            g.add_node(n.id);
        }
        for n in nodes {
            for &d in &n.deps {
                g.add_edge(NodeIndex::new(d), NodeIndex::new(n.id), ());
            }
        }
        g
    }

    /// Kahn's algorithm, always taking the ready node created first: dependencies come
    /// first and otherwise the file's order is kept. `Err` holds a node on a cycle.
    pub(crate) fn topological(nodes: &[Node]) -> Result<Vec<usize>, usize> {
        let g = Plan::graph(nodes);
        let mut indegree: Vec<usize> = nodes.iter().map(|n| n.deps.len()).collect();
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
            nodes.iter().filter(|n| n.deps.is_empty()).map(|n| std::cmp::Reverse(n.id)).collect();
        let mut order = Vec::with_capacity(nodes.len());
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for next in g.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing) {
                let j = g[next];
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.push(std::cmp::Reverse(j));
                }
            }
        }
        match indegree.iter().position(|&d| d > 0) {
            Some(stuck) => Err(stuck),
            None => Ok(order),
        }
    }

    /// Finds a node by its name or an alias.
    pub fn find(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name || n.aliases.iter().any(|a| a == name))
    }

    /// How an argument reads in `labrun plan`: values as in source, nodes by name.
    pub fn show_arg(&self, a: &ArgVal) -> String {
        match a {
            ArgVal::Value(v) => v.to_string(),
            ArgVal::Node(n) => self.nodes[*n].name.clone(),
            ArgVal::List(items) => {
                format!("[{}]", items.iter().map(|i| self.show_arg(i)).collect::<Vec<_>>().join(", "))
            }
        }
    }

    /// Graphviz text: one box per node, labelled with its op.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph labrun {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n");
        for &i in &self.order {
            let n = &self.nodes[i];
            let _ = writeln!(s, "  n{} [label=\"{}\\n{}\"];", n.id, dot_escape(&n.name), n.op.name());
        }
        for &i in &self.order {
            for d in &self.nodes[i].deps {
                let _ = writeln!(s, "  n{d} -> n{i};");
            }
        }
        s.push_str("}\n");
        s
    }

    /// Mermaid flowchart text.
    pub fn to_mermaid(&self) -> String {
        let mut s = String::from("flowchart LR\n");
        for &i in &self.order {
            let n = &self.nodes[i];
            let _ = writeln!(s, "  n{}[\"{}<br/>{}\"]", n.id, n.name.replace('"', "#quot;"), n.op.name());
        }
        for &i in &self.order {
            for d in &self.nodes[i].deps {
                let _ = writeln!(s, "  n{d} --> n{i}");
            }
        }
        s
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
