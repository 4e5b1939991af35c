use crate::{Op, Signature};
use std::collections::BTreeMap;

/// Every op labrun knows, by `kind.method`. Ops are listed explicitly in each family's
/// `register`, so each can be found with grep.
pub struct Registry {
    ops: BTreeMap<String, (Signature, Box<dyn Op>)>,
}

impl Registry {
    pub fn empty() -> Self {
        Registry { ops: BTreeMap::new() }
    }

    pub fn add(&mut self, op: impl Op + 'static) {
        let sig = op.signature();
        let prev = self.ops.insert(sig.name(), (sig, Box::new(op)));
        assert!(prev.is_none(), "op registered twice");
    }

    pub fn get(&self, kind: &str, method: &str) -> Option<(&Signature, &dyn Op)> {
        self.ops.get(&format!("{kind}.{method}")).map(|(s, o)| (s, o.as_ref()))
    }

    pub fn signatures(&self) -> impl Iterator<Item = &Signature> {
        self.ops.values().map(|(s, _)| s)
    }

    /// Methods of one kind, for "did you mean".
    pub fn methods(&self, kind: &str) -> Vec<&'static str> {
        self.ops.values().filter(|(s, _)| s.kind == kind).map(|(s, _)| s.method).collect()
    }
}

/// The registry with every op.
pub fn registry() -> Registry {
    let mut r = Registry::empty();
    crate::data::register(&mut r);
    crate::generate::register(&mut r);
    crate::filter::register(&mut r);
    crate::model::register(&mut r);
    crate::finetune::register(&mut r);
    crate::score::register(&mut r);
    crate::report::register(&mut r);
    r
}
