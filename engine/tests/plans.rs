//! What lowering makes of a program: sweeps expanded into indexed steps, params and `--set`
//! values in place, defaults filled in and integers widened where floats are declared,
//! identical calls made one node (the others its aliases), nested calls named after their
//! owner, in an order where every input comes first. Snapshots of whole plans.

use lab_engine::{Override, Plan, compile};
use std::fmt::Write;

fn plan_of(text: &str, set: &[&str]) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.lab");
    std::fs::write(&file, text).unwrap();
    let overrides: Vec<Override> = set.iter().map(|s| s.parse().unwrap()).collect();
    let compiled = compile(&file, &overrides, &lab_ops::registry());
    assert!(compiled.diags.is_empty(), "{:?}", compiled.diags);
    compiled.plan.expect("a plan")
}

/// One line per node, in plan order: name (aliases), op, every argument.
fn show(plan: &Plan) -> String {
    let mut out = String::new();
    for &i in &plan.order {
        let n = &plan.nodes[i];
        let aliases = if n.aliases.is_empty() { String::new() } else { format!(" (also {})", n.aliases.join(", ")) };
        let args: Vec<String> = n.args.iter().map(|(k, v)| format!("{k}: {}", plan.show_arg(v))).collect();
        writeln!(out, "{}{aliases} = {}({})", n.name, n.op.name(), args.join(", ")).unwrap();
        for &d in &n.deps {
            assert!(plan.order.iter().position(|&j| j == d) < plan.order.iter().position(|&j| j == i));
        }
    }
    out
}

#[test]
fn sweeps_params_defaults_and_deduplication() {
    let text = "\
param seeds = [0, 1]
param count = 200
train = data.digits(split: \"train\")
for s in seeds {
  noise[s] = generate.noise(shape: [64], count: count, seed: s)
  init[s] = model.mlp(inputs: 64, hidden: [8], outputs: 10, seed: s)
}
same = generate.noise(shape: [64], count: 200, seed: 0)
acc = score.accuracy(finetune.supervised(init[1], train, epochs: 2), train)
";
    insta::assert_snapshot!("default", show(&plan_of(text, &[])));
    insta::assert_snapshot!("overridden", show(&plan_of(text, &["seeds=[1, 7]", "count=10"])));
}
