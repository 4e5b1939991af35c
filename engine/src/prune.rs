use crate::Diag;
use crate::diagnostic::suggest;
use crate::plan::{ArgVal, Plan};
use petgraph::graph::NodeIndex;
use petgraph::visit::{Reversed, Walker};
use std::collections::BTreeSet;

impl Plan {
    /// The nodes that `names` name: a step (`teacher[0]`), an alias, or a whole sweep
    /// (`teacher`). Unknown names are diagnostics with "did you mean".
    pub fn resolve(&self, names: &[String]) -> Result<BTreeSet<usize>, Vec<Diag>> {
        let mut out = BTreeSet::new();
        let mut diags = Vec::new();
        for t in names {
            let hits: Vec<usize> = self
                .nodes
                .iter()
                .filter(|n| {
                    std::iter::once(&n.name)
                        .chain(&n.aliases)
                        .any(|a| a == t || a.strip_prefix(t.as_str()).is_some_and(|r| r.starts_with('[')))
                })
                .map(|n| n.id)
                .collect();
            if hits.is_empty() {
                let names = self
                    .nodes
                    .iter()
                    .flat_map(|n| std::iter::once(n.name.as_str()).chain(n.aliases.iter().map(String::as_str)));
                diags.push(
                    Diag::new("lab::unknown_target", format!("no step is named `{t}`"))
                        .maybe_help(suggest(t, names).or_else(|| Some("`labrun plan FILE` lists the steps".into()))),
                );
            }
            out.extend(hits);
        }
        if diags.is_empty() { Ok(out) } else { Err(diags) }
    }

    /// Keeps only what `targets` need (see [`Plan::resolve`]). Reports are dropped: they
    /// need the whole program.
    pub fn prune(&self, targets: &[String]) -> Result<Plan, Vec<Diag>> {
        let roots = self.resolve(targets)?;
        let g = Plan::graph(&self.nodes);
        let mut keep = BTreeSet::new();
        for r in roots {
            for i in petgraph::visit::Dfs::new(Reversed(&g), NodeIndex::new(r)).iter(Reversed(&g)) {
                keep.insert(g[i]);
            }
        }
        // Renumber the kept nodes densely, preserving their relative order.
        let map: std::collections::BTreeMap<usize, usize> =
            keep.iter().enumerate().map(|(new, &old)| (old, new)).collect();
        let remap = |a: &ArgVal| remap_arg(a, &map);
        let nodes = keep
            .iter()
            .map(|&old| {
                let mut n = self.nodes[old].clone();
                n.id = map[&old];
                n.deps = n.deps.iter().map(|d| map[d]).collect();
                n.args = n.args.map(remap);
                n
            })
            .collect();
        let order = self.order.iter().filter_map(|o| map.get(o).copied()).collect();
        Ok(Plan { nodes, order, reports: Vec::new(), params: self.params.clone() })
    }
}

fn remap_arg(a: &ArgVal, map: &std::collections::BTreeMap<usize, usize>) -> ArgVal {
    match a {
        ArgVal::Value(v) => ArgVal::Value(v.clone()),
        ArgVal::Node(n) => ArgVal::Node(map[n]),
        ArgVal::List(items) => ArgVal::List(items.iter().map(|i| remap_arg(i, map)).collect()),
    }
}
