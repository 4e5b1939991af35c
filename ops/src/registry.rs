use crate::params::Params;
use crate::{DynOp, Op, Signature};
use std::collections::BTreeMap;
use std::sync::Arc;

type Entry = (Arc<Signature>, Box<dyn DynOp>);

/// Every op labrun knows, by kind, then method. Ops are listed explicitly in each family's
/// `register`, so each can be found with grep.
pub struct Registry {
    ops: BTreeMap<&'static str, BTreeMap<&'static str, Entry>>,
}

impl Registry {
    pub fn empty() -> Self {
        Registry { ops: BTreeMap::new() }
    }

    /// Adds an op; its parameters and their rules come from its `Params` type.
    pub fn add<T: Op>(&mut self, op: T) {
        let mut sig = op.signature();
        let mut params = Vec::new();
        T::Params::specs(&mut params);
        let mut checks = Vec::new();
        T::Params::checks(&mut checks);
        sig.params = params;
        sig.checks = checks;
        sig.assert_consistent();
        let prev = self.ops.entry(sig.kind).or_default().insert(sig.method, (Arc::new(sig), Box::new(op)));
        assert!(prev.is_none(), "op registered twice");
    }

    pub fn get(&self, kind: &str, method: &str) -> Option<(&Arc<Signature>, &dyn DynOp)> {
        self.ops.get(kind)?.get(method).map(|(s, o)| (s, o.as_ref()))
    }

    /// Every signature, by kind then method.
    pub fn signatures(&self) -> impl Iterator<Item = &Signature> {
        self.ops.values().flat_map(|m| m.values()).map(|(s, _)| s.as_ref())
    }

    /// The op kinds (`data`, `model`, …), for "did you mean".
    pub fn kinds(&self) -> Vec<&'static str> {
        self.ops.keys().copied().collect()
    }

    /// Methods of one kind, for "did you mean".
    pub fn methods(&self, kind: &str) -> Vec<&'static str> {
        self.ops.get(kind).map(|m| m.keys().copied().collect()).unwrap_or_default()
    }
}

/// The registry with every op.
pub fn registry() -> Registry {
    let mut r = Registry::empty();
    crate::data::register(&mut r);
    crate::generate::register(&mut r);
    crate::filter::register(&mut r);
    crate::model::register(&mut r);
    crate::fit::register(&mut r);
    crate::finetune::register(&mut r);
    crate::score::register(&mut r);
    crate::probe::register(&mut r);
    crate::estimate::register(&mut r);
    crate::report::register(&mut r);
    crate::backdoor::register_attacks(&mut r);
    crate::backdoor::register_defences(&mut r);
    crate::rl::register_envs(&mut r);
    crate::rl::register_rl(&mut r);
    crate::lowprob::register_generate(&mut r);
    crate::lowprob::register_data(&mut r);
    crate::lowprob::register_estimate(&mut r);
    crate::lowprob::register_score(&mut r);
    r
}
