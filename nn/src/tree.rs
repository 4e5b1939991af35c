//! Binary decision trees over bits: random trees, a CART learner, the leaf-isolating
//! backdoor of the defendability game, the exact disagreement between two trees, and
//! export as a standard `.onnx` file (`ai.onnx.ml` `TreeEnsembleRegressor`), so that a
//! tree runs on ONNX Runtime like every other model.
//!
//! Inputs are rows of bits (0.0 or 1.0); a split on feature `i` sends `x[i] ≤ 0.5` to its
//! `zero` child. A leaf holds `p`, the probability of class 1; a tree's outputs are
//! `[1 − p, p]` per row (for trees from [`Tree::random`], one-hot).

use crate::NnError;
use crate::folder::ModelFolder;
use crate::onnx::{self, attribute_type};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One node; node 0 is the root.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    Split {
        feature: usize,
        zero: usize,
        one: usize,
    },
    /// `p`: the probability of class 1 (0 or 1 for a tree that computes a function).
    Leaf {
        p: f32,
    },
}

/// A decision tree over `bits` input bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub bits: usize,
    pub nodes: Vec<Node>,
}

/// The leaf an input reaches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reached {
    pub node: usize,
    pub depth: usize,
}

/// A leaf's region: the (feature, bit) tests on its path.
pub type LeafPath = Vec<(usize, bool)>;

impl Tree {
    /// A random tree with `leaves` leaves: starting from one leaf, a leaf drawn uniformly
    /// (among those with features left to test) is split on a feature drawn uniformly
    /// from those not yet tested on its path, until there are `leaves`; labels are fair
    /// coin flips, redrawn where two sibling leaves would agree (so that every split
    /// matters). Needs `leaves ≤ 2^bits`.
    pub fn random(bits: usize, leaves: usize, rng: &mut impl Rng) -> Tree {
        assert!(bits >= 1 && leaves >= 1 && (bits >= 63 || leaves as u128 <= 1u128 << bits));
        let mut t = Tree { bits, nodes: vec![Node::Leaf { p: 0.0 }] };
        // The leaves that can still be split (features left to test), with their tests.
        let mut open: Vec<(usize, Vec<usize>)> = if bits > 0 { vec![(0, Vec::new())] } else { Vec::new() };
        for _ in 1..leaves {
            // As `IndexedRandom::choose` draws an index.
            let i = rng.random_range(0..open.len() as u32) as usize;
            let (node, used) = open.swap_remove(i);
            let free: Vec<usize> = (0..bits).filter(|f| !used.contains(f)).collect();
            let &feature = free.choose(rng).expect("a free feature");
            let (zero, one) = (t.nodes.len(), t.nodes.len() + 1);
            t.nodes.push(Node::Leaf { p: 0.0 });
            t.nodes.push(Node::Leaf { p: 0.0 });
            t.nodes[node] = Node::Split { feature, zero, one };
            let mut used = used;
            used.push(feature);
            if used.len() < bits {
                open.push((zero, used.clone()));
                open.push((one, used));
            }
        }
        for n in t.nodes.clone() {
            if let Node::Split { zero, one, .. } = n {
                let a = rng.random_bool(0.5) as u8 as f32;
                if matches!(t.nodes[zero], Node::Leaf { .. }) {
                    t.nodes[zero] = Node::Leaf { p: a };
                }
                if matches!(t.nodes[one], Node::Leaf { .. }) {
                    // Two leaf siblings get different labels; otherwise a coin flip.
                    let b = if matches!(t.nodes[zero], Node::Leaf { .. }) {
                        1.0 - a
                    } else {
                        rng.random_bool(0.5) as u8 as f32
                    };
                    t.nodes[one] = Node::Leaf { p: b };
                }
            }
        }
        if leaves == 1 {
            t.nodes[0] = Node::Leaf { p: rng.random_bool(0.5) as u8 as f32 };
        }
        t
    }

    /// The leaf `x` reaches and its depth.
    pub fn reach(&self, x: &[f32]) -> Reached {
        let (mut node, mut depth) = (0, 0);
        while let Node::Split { feature, zero, one } = self.nodes[node] {
            node = if x[feature] <= 0.5 { zero } else { one };
            depth += 1;
        }
        Reached { node, depth }
    }

    /// P(class 1) at `x`.
    pub fn p(&self, x: &[f32]) -> f32 {
        match self.nodes[self.reach(x).node] {
            Node::Leaf { p } => p,
            Node::Split { .. } => unreachable!("reach ends at a leaf"),
        }
    }

    /// The class at `x` (ties go to 0, as an argmax over `[1 − p, p]` does).
    pub fn label(&self, x: &[f32]) -> u8 {
        (self.p(x) > 0.5) as u8
    }

    pub fn leaves(&self) -> usize {
        self.nodes.iter().filter(|n| matches!(n, Node::Leaf { .. })).count()
    }

    pub fn depth(&self) -> usize {
        self.leaf_paths().iter().map(|(p, _)| p.len()).max().unwrap_or(0)
    }

    /// Every leaf with the tests on its path.
    pub fn leaf_paths(&self) -> Vec<(LeafPath, f32)> {
        let mut out = Vec::new();
        let mut stack = vec![(0usize, Vec::new())];
        while let Some((n, path)) = stack.pop() {
            match self.nodes[n] {
                Node::Leaf { p } => out.push((path, p)),
                Node::Split { feature, zero, one } => {
                    let mut z = path.clone();
                    z.push((feature, false));
                    let mut o = path;
                    o.push((feature, true));
                    stack.push((one, o));
                    stack.push((zero, z));
                }
            }
        }
        out
    }

    /// Checks the structure: children in range, each node reached once, features below
    /// `bits`, probabilities in [0, 1].
    pub fn validate(&self) -> Result<(), String> {
        let n = self.nodes.len();
        if n == 0 {
            return Err("the tree has no nodes".into());
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                return Err(format!("node {i} is reached twice"));
            }
            match self.nodes[i] {
                Node::Split { feature, zero, one } => {
                    if feature >= self.bits {
                        return Err(format!("node {i} tests feature {feature} of {}", self.bits));
                    }
                    for c in [zero, one] {
                        if c >= n || c == 0 {
                            return Err(format!("node {i} has child {c}, not a node of 1..{n}"));
                        }
                        stack.push(c);
                    }
                }
                Node::Leaf { p } if !(0.0..=1.0).contains(&p) => {
                    return Err(format!("leaf {i} has probability {p}, not in [0, 1]"));
                }
                Node::Leaf { .. } => {}
            }
        }
        match seen.iter().position(|s| !s) {
            Some(i) => Err(format!("node {i} is not reachable from the root")),
            None => Ok(()),
        }
    }

    /// The backdoor of the defendability game: `x`'s leaf is isolated by splits on `x`'s
    /// own bits (features not yet tested on its path, drawn at random) until it lies at
    /// depth ≥ `min_depth`, and its label is flipped. The new tree differs from this one
    /// exactly on that leaf, whose mass under uniform bits is 2^−depth. Returns the tree
    /// and the depth of the flipped leaf.
    pub fn backdoor(&self, x: &[f32], min_depth: usize, rng: &mut impl Rng) -> (Tree, usize) {
        let mut t = self.clone();
        let Reached { mut node, depth } = self.reach(x);
        let p = match self.nodes[node] {
            Node::Leaf { p } => p,
            Node::Split { .. } => unreachable!(),
        };
        let mut used: Vec<usize> = self.path_features(x);
        let mut depth_now = depth;
        while depth_now < min_depth.min(self.bits) {
            let free: Vec<usize> = (0..self.bits).filter(|f| !used.contains(f)).collect();
            let &feature = free.choose(rng).expect("fewer tests than bits");
            let (zero, one) = (t.nodes.len(), t.nodes.len() + 1);
            t.nodes.push(Node::Leaf { p });
            t.nodes.push(Node::Leaf { p });
            t.nodes[node] = Node::Split { feature, zero, one };
            node = if x[feature] <= 0.5 { zero } else { one };
            used.push(feature);
            depth_now += 1;
        }
        t.nodes[node] = Node::Leaf { p: 1.0 - (p > 0.5) as u8 as f32 };
        (t, depth_now)
    }

    fn path_features(&self, x: &[f32]) -> Vec<usize> {
        let (mut node, mut out) = (0, Vec::new());
        while let Node::Split { feature, zero, one } = self.nodes[node] {
            out.push(feature);
            node = if x[feature] <= 0.5 { zero } else { one };
        }
        out
    }

    /// Pr_x[self(x) ≠ other(x)] for x uniform over bits, computed exactly: the mass of
    /// every pair of leaves whose paths are compatible and whose labels differ.
    pub fn disagreement(&self, other: &Tree) -> f64 {
        let (a, b) = (self.leaf_paths(), other.leaf_paths());
        let mut mass = 0.0;
        for (pa, la) in &a {
            for (pb, lb) in &b {
                if (*la > 0.5) == (*lb > 0.5) {
                    continue;
                }
                let mut fixed: Vec<(usize, bool)> = pa.clone();
                let mut ok = true;
                for &(f, v) in pb {
                    match fixed.iter().find(|(g, _)| *g == f) {
                        Some(&(_, w)) if w != v => {
                            ok = false;
                            break;
                        }
                        Some(_) => {}
                        None => fixed.push((f, v)),
                    }
                }
                if ok {
                    mass += 0.5f64.powi(fixed.len() as i32);
                }
            }
        }
        mass
    }

    /// CART on bits: grows from one leaf, always splitting the leaf whose best split
    /// removes the most Gini impurity (weighted by its rows), until `max_leaves` or until
    /// every leaf is pure or has no feature left to test. A leaf's `p` is the share of its
    /// rows labelled 1 (0.5 for none). Impure leaves with no informative split (XOR-like
    /// labels) are split on their first untested feature that separates their rows.
    pub fn fit(x: &[f32], bits: usize, y: &[u8], max_leaves: usize) -> Tree {
        let rows = y.len();
        let bit = |r: usize, f: usize| x[r * bits + f] > 0.5;
        let gini = |idx: &[usize]| {
            let n = idx.len() as f64;
            if n == 0.0 {
                return 0.0;
            }
            let ones = idx.iter().filter(|&&r| y[r] == 1).count() as f64;
            let p = ones / n;
            n * 2.0 * p * (1.0 - p)
        };
        let leaf = |idx: &[usize]| {
            let ones = idx.iter().filter(|&&r| y[r] == 1).count();
            Node::Leaf { p: if idx.is_empty() { 0.5 } else { ones as f32 / idx.len() as f32 } }
        };
        // The best split of a leaf: (gain, feature), or None if pure or nothing separates.
        let best = |idx: &[usize], used: &[usize]| -> Option<(f64, usize)> {
            let g = gini(idx);
            if g == 0.0 {
                return None;
            }
            let mut best: Option<(f64, usize)> = None;
            for f in (0..bits).filter(|f| !used.contains(f)) {
                let (z, o): (Vec<usize>, Vec<usize>) = idx.iter().partition(|&&r| !bit(r, f));
                if z.is_empty() || o.is_empty() {
                    continue;
                }
                let gain = g - gini(&z) - gini(&o);
                if best.is_none_or(|(b, _)| gain > b + 1e-12) {
                    best = Some((gain, f));
                }
            }
            best
        };
        let all: Vec<usize> = (0..rows).collect();
        let mut t = Tree { bits, nodes: vec![leaf(&all)] };
        // Open leaves: (node, rows, tested features, best split).
        let mut open: Vec<(usize, Vec<usize>, Vec<usize>, Option<(f64, usize)>)> = {
            let b = best(&all, &[]);
            vec![(0, all, Vec::new(), b)]
        };
        let mut leaves = 1;
        while leaves < max_leaves.max(1) {
            let Some(i) = (0..open.len())
                .filter(|&i| open[i].3.is_some())
                .max_by(|&a, &b| open[a].3.unwrap().0.total_cmp(&open[b].3.unwrap().0).then(b.cmp(&a)))
            else {
                break;
            };
            let (node, idx, used, split) = open.swap_remove(i);
            let feature = split.expect("filtered").1;
            let (z, o): (Vec<usize>, Vec<usize>) = idx.iter().partition(|&&r| !bit(r, feature));
            let (zero, one) = (t.nodes.len(), t.nodes.len() + 1);
            t.nodes.push(leaf(&z));
            t.nodes.push(leaf(&o));
            t.nodes[node] = Node::Split { feature, zero, one };
            let mut used = used;
            used.push(feature);
            leaves += 1;
            let (bz, bo) = (best(&z, &used), best(&o, &used));
            open.push((zero, z, used.clone(), bz));
            open.push((one, o, used, bo));
        }
        t
    }

    /// The tree as a standard ONNX model: input `x` [N, bits] floats, output `logits`
    /// [N, 2] = `[1 − p, p]`, one `ai.onnx.ml` `TreeEnsembleRegressor` node.
    pub fn to_onnx_bytes(&self) -> Vec<u8> {
        let n = self.nodes.len();
        let mut features = Vec::with_capacity(n);
        let mut modes = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n);
        let (mut trues, mut falses) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut t_nodes, mut t_ids, mut t_weights) = (Vec::new(), Vec::new(), Vec::new());
        for (i, node) in self.nodes.iter().enumerate() {
            match *node {
                Node::Split { feature, zero, one } => {
                    features.push(feature as i64);
                    modes.push(b"BRANCH_LEQ".to_vec());
                    values.push(0.5f32);
                    trues.push(zero as i64);
                    falses.push(one as i64);
                }
                Node::Leaf { p } => {
                    features.push(0);
                    modes.push(b"LEAF".to_vec());
                    values.push(0.0);
                    trues.push(0);
                    falses.push(0);
                    for (id, w) in [(0, 1.0 - p), (1, p)] {
                        t_nodes.push(i as i64);
                        t_ids.push(id);
                        t_weights.push(w);
                    }
                }
            }
        }
        let ints = |name: &str, v: Vec<i64>| onnx::AttributeProto {
            name: name.into(),
            ints: v,
            r#type: attribute_type::INTS,
            ..Default::default()
        };
        let floats = |name: &str, v: Vec<f32>| onnx::AttributeProto {
            name: name.into(),
            floats: v,
            r#type: attribute_type::FLOATS,
            ..Default::default()
        };
        let int = |name: &str, i: i64| onnx::AttributeProto {
            name: name.into(),
            i,
            r#type: attribute_type::INT,
            ..Default::default()
        };
        let string = |name: &str, s: &str| onnx::AttributeProto {
            name: name.into(),
            s: s.as_bytes().to_vec(),
            r#type: attribute_type::STRING,
            ..Default::default()
        };
        let leaves = t_nodes.len();
        let attrs = vec![
            string("aggregate_function", "SUM"),
            int("n_targets", 2),
            ints("nodes_falsenodeids", falses),
            ints("nodes_featureids", features),
            onnx::AttributeProto {
                name: "nodes_modes".into(),
                strings: modes,
                r#type: attribute_type::STRINGS,
                ..Default::default()
            },
            ints("nodes_nodeids", (0..n as i64).collect()),
            ints("nodes_treeids", vec![0; n]),
            ints("nodes_truenodeids", trues),
            floats("nodes_values", values),
            string("post_transform", "NONE"),
            ints("target_ids", t_ids),
            ints("target_nodeids", t_nodes),
            ints("target_treeids", vec![0; leaves]),
            floats("target_weights", t_weights),
        ];
        let io = |name: &str, width: i64| onnx::ValueInfoProto {
            name: name.into(),
            r#type: Some(onnx::TypeProto {
                tensor_type: Some(onnx::TypeProtoTensor {
                    elem_type: onnx::data_type::FLOAT,
                    shape: Some(onnx::TensorShapeProto {
                        dim: vec![
                            onnx::Dimension { value: Some(onnx::dimension::Value::DimParam("N".into())) },
                            onnx::Dimension { value: Some(onnx::dimension::Value::DimValue(width)) },
                        ],
                    }),
                }),
            }),
            doc_string: String::new(),
        };
        let model = onnx::ModelProto {
            ir_version: 8,
            producer_name: "labrun".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: "labrun decision tree: x [N, bits] -> logits [N, 2] = [1 - p, p]".into(),
            graph: Some(onnx::GraphProto {
                node: vec![onnx::NodeProto {
                    input: vec!["x".into()],
                    output: vec!["logits".into()],
                    name: "tree".into(),
                    op_type: "TreeEnsembleRegressor".into(),
                    attribute: attrs,
                    domain: ML_DOMAIN.into(),
                    ..Default::default()
                }],
                name: "labrun".into(),
                input: vec![io("x", self.bits as i64)],
                output: vec![io("logits", 2)],
                ..Default::default()
            }),
            opset_import: vec![
                onnx::OperatorSetIdProto { domain: String::new(), version: crate::graph::OPSET },
                onnx::OperatorSetIdProto { domain: ML_DOMAIN.into(), version: 3 },
            ],
            ..Default::default()
        };
        prost::Message::encode_to_vec(&model)
    }

    /// Writes `model.json`, `tree.json` and `model.onnx` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), NnError> {
        let folder = ModelFolder::new(dir);
        folder.write_meta(&serde_json::json!({
            "arch": "tree", "inputs": self.bits, "outputs": 2,
            "leaves": self.leaves(), "depth": self.depth(),
        }))?;
        std::fs::write(dir.join(TREE_FILE), serde_json::to_string(self).expect("serialisable"))?;
        std::fs::write(folder.onnx_path(), self.to_onnx_bytes())?;
        Ok(())
    }

    /// Reads a tree's folder, checking its structure.
    pub fn load(dir: &Path) -> Result<Tree, NnError> {
        let path = dir.join(TREE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            NnError::BadModel(format!("{} is not a decision tree: cannot read {TREE_FILE}: {e}", dir.display()))
        })?;
        let t: Tree = serde_json::from_str(&text)
            .map_err(|e| NnError::BadModel(format!("{} is not a valid decision tree: {e}", path.display())))?;
        t.validate().map_err(|e| NnError::BadModel(format!("{}: {e}", path.display())))?;
        Ok(t)
    }
}

/// The file of a tree's structure in its model folder.
pub const TREE_FILE: &str = "tree.json";

/// The ONNX domain of the tree operators.
pub const ML_DOMAIN: &str = "ai.onnx.ml";

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(s: u64) -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(s)
    }

    /// Every input of `bits` bits as rows.
    fn all_inputs(bits: usize) -> Vec<Vec<f32>> {
        (0..1u32 << bits).map(|v| (0..bits).map(|i| ((v >> i) & 1) as f32).collect()).collect()
    }

    #[test]
    fn random_trees_have_the_asked_leaves_and_siblings_differ() {
        for s in 0..20 {
            let t = Tree::random(8, 12, &mut rng(s));
            assert_eq!(t.leaves(), 12);
            t.validate().unwrap();
            for n in &t.nodes {
                if let Node::Split { zero, one, .. } = *n
                    && let (Node::Leaf { p: a }, Node::Leaf { p: b }) = (t.nodes[zero], t.nodes[one])
                {
                    assert_ne!(a, b, "sibling leaves agree");
                }
            }
        }
    }

    #[test]
    fn disagreement_and_backdoor_budget_match_enumeration() {
        for s in 0..10 {
            let mut r = rng(s);
            let t = Tree::random(10, 16, &mut r);
            let inputs = all_inputs(10);
            let x = &inputs[r.random_range(0..inputs.len())];
            for min_depth in [0, 3, 6, 10] {
                let (b, depth) = t.backdoor(x, min_depth, &mut r);
                b.validate().unwrap();
                assert_ne!(t.label(x), b.label(x), "the trigger's label is flipped");
                let differ = inputs.iter().filter(|x| t.label(x) != b.label(x)).count() as f64;
                let exact = differ / inputs.len() as f64;
                assert_eq!(t.disagreement(&b), exact);
                assert_eq!(exact, 0.5f64.powi(depth as i32));
                assert!(depth >= min_depth && depth >= t.reach(x).depth);
                assert_eq!(b.reach(x).depth, depth);
            }
            let other = Tree::random(10, 16, &mut r);
            let differ = inputs.iter().filter(|x| t.label(x) != other.label(x)).count() as f64;
            assert_eq!(t.disagreement(&other), differ / inputs.len() as f64);
        }
    }

    #[test]
    fn cart_learns_a_tree_from_all_its_inputs() {
        let t = Tree::random(8, 10, &mut rng(3));
        let inputs = all_inputs(8);
        let x: Vec<f32> = inputs.concat();
        let y: Vec<u8> = inputs.iter().map(|x| t.label(x)).collect();
        let learned = Tree::fit(&x, 8, &y, 1000);
        learned.validate().unwrap();
        assert_eq!(t.disagreement(&learned), 0.0);
        // A budget of leaves is kept.
        assert!(Tree::fit(&x, 8, &y, 3).leaves() <= 3);
    }

    #[test]
    fn onnx_runtime_agrees_with_a_walk_of_the_tree() {
        let mut r = rng(7);
        let inputs = all_inputs(9);
        let x: Vec<f32> = inputs.concat();
        let random = Tree::random(9, 40, &mut r);
        // A learned tree has leaves with probabilities between 0 and 1.
        let sample: Vec<usize> = (0..60).map(|_| r.random_range(0..inputs.len())).collect();
        let xs: Vec<f32> = sample.iter().flat_map(|&i| inputs[i].clone()).collect();
        let ys: Vec<u8> = sample.iter().map(|&i| random.label(&inputs[i]) ^ (i % 7 == 0) as u8).collect();
        let learned = Tree::fit(&xs, 9, &ys, 12);
        for t in [random, learned] {
            let dir = tempfile::tempdir().unwrap();
            t.save(dir.path()).unwrap();
            assert_eq!(Tree::load(dir.path()).unwrap(), t);
            let bytes = std::fs::read(ModelFolder::new(dir.path()).onnx_path()).unwrap();
            let mut s = crate::runtime::session(&bytes, crate::runtime::SessionOptions::default()).unwrap();
            let (out, width) = crate::exec::predict_rows(&mut s, "x", "logits", 9, &x).unwrap();
            assert_eq!(width, 2);
            for (i, row) in inputs.iter().enumerate() {
                let p = t.p(row);
                assert!((out[2 * i] - (1.0 - p)).abs() < 1e-6 && (out[2 * i + 1] - p).abs() < 1e-6, "row {i}");
            }
        }
    }

    #[test]
    fn invalid_structures_are_named() {
        let t = Tree { bits: 2, nodes: vec![Node::Split { feature: 5, zero: 1, one: 2 }] };
        assert!(t.validate().unwrap_err().contains("feature 5"));
        let t = Tree { bits: 2, nodes: vec![Node::Split { feature: 0, zero: 1, one: 1 }, Node::Leaf { p: 0.0 }] };
        assert!(t.validate().unwrap_err().contains("reached twice"));
    }
}
