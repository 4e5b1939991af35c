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

/// A node's arguments, sorted by name, in one small allocation. Names are the signature's
/// own strings; only derived entries such as a path's `NAME#blake3` are allocated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeArgs(Vec<(Cow<'static, str>, ArgVal)>);

impl NodeArgs {
    pub fn with_capacity(n: usize) -> NodeArgs {
        NodeArgs(Vec::with_capacity(n))
    }

    pub fn get(&self, name: &str) -> Option<&ArgVal> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(name)).ok().map(|i| &self.0[i].1)
    }

    /// Sets `name` (replacing an earlier value).
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: ArgVal) {
        let name = name.into();
        match self.0.binary_search_by(|(k, _)| k.as_ref().cmp(name.as_ref())) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// In name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Cow<'static, str>, &ArgVal)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a NodeArgs {
    type Item = (&'a Cow<'static, str>, &'a ArgVal);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Cow<'static, str>, ArgVal)>,
        fn(&'a (Cow<'static, str>, ArgVal)) -> (&'a Cow<'static, str>, &'a ArgVal),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl FromIterator<(Cow<'static, str>, ArgVal)> for NodeArgs {
    fn from_iter<I: IntoIterator<Item = (Cow<'static, str>, ArgVal)>>(iter: I) -> Self {
        let mut v: Vec<_> = iter.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        NodeArgs(v)
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
        for (k, v) in args {
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
