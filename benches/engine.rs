//! Engine overhead: check + plan of a generated 10,000-step pipeline, against parsing the
//! same file alone (the baseline, measured in the same run).
//!
//! `cargo bench --bench engine`

use criterion::{Criterion, criterion_group, criterion_main};
use std::fmt::Write;
use std::hint::black_box;

/// 10,000 steps: 1,000 chains of 10, each starting from noise and ending in a score,
/// plus a sweep, so lowering, sweeps, dedupe and the DAG are all exercised.
pub fn generated_pipeline() -> String {
    let mut s = String::from("param rows = 1_000\n");
    for c in 0..1000 {
        let _ = writeln!(s, "n{c} = generate.noise(shape: [8], count: rows, seed: {c})");
        for k in 1..9 {
            let _ = writeln!(
                s,
                "t{c}_{k} = filter.take({}, count: rows - {k})",
                if k == 1 { format!("n{c}") } else { format!("t{c}_{}", k - 1) }
            );
        }
        let _ = writeln!(s, "s{c} = score.stats(t{c}_8)");
    }
    s
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.lab");
    let src = generated_pipeline();
    std::fs::write(&path, &src).unwrap();
    let registry = lab_ops::registry();
    let compiled = lab_engine::compile(&path, &[], &registry);
    assert!(compiled.diags.is_empty());
    assert_eq!(compiled.plan.as_ref().unwrap().nodes.len(), 10_000);
    let mut g = c.benchmark_group("engine_10k_steps");
    g.sample_size(20);
    g.bench_function("baseline_parse_only", |b| b.iter(|| black_box(lab_grammar::parse(black_box(&src), 0).unwrap())));
    g.bench_function("check_and_plan", |b| b.iter(|| black_box(lab_engine::compile(&path, &[], &registry))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
