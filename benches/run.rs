//! Scheduler and cache overhead on a generated 10,000-step pipeline of tiny ops:
//! the first run (every step executed and committed: lock, temp dir, fsync, hash, rename,
//! action record), then a no-op rerun where everything is cached. The baseline, measured
//! in the same run, is check + plan of the same file.
//!
//! `cargo bench --bench run`

use lab_engine::execute::{RunOptions, run_local as run};
use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let steps = if quick { 200 } else { 10_000 };
    let dir = tempfile::tempdir().unwrap();
    let mut src = String::new();
    for i in 0..steps / 2 {
        let _ = writeln!(src, "n{i} = generate.noise(shape: [1], count: 1, seed: {i})");
        let _ = writeln!(src, "s{i} = score.stats(n{i})");
    }
    let file = dir.path().join("many.lab");
    std::fs::write(&file, src).unwrap();
    let registry = lab_ops::registry();
    let cache = lab_cache::Cache::open(&dir.path().join("cache")).unwrap();
    let cancel = AtomicBool::new(false);
    let quiet = |_: &lab_engine::execute::Event| {};
    let opts = RunOptions {
        jobs: 2,
        threads: 1,
        device: lab_ops::Device::Cpu,
        keep_going: false,
        force: BTreeSet::new(),
        cancel: &cancel,
        on_event: &quiet,
        pipeline: "many",
    };

    let t = Instant::now();
    let plan = lab_engine::compile(&file, &[], &registry).plan.expect("compiles");
    let check_plan = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let first = run(&plan, &cache, &registry, &opts);
    let first_secs = t.elapsed().as_secs_f64();
    // Identical actions (two seeds can draw the same 1-value noise) run once.
    assert_eq!(first.executed.len() + first.cached.len(), steps);

    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let plan = lab_engine::compile(&file, &[], &registry).plan.expect("compiles");
        let again = run(&plan, &cache, &registry, &opts);
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(again.cached.len(), steps);
    }
    println!("{steps} steps");
    println!("baseline: check + plan            {:8.1} ms", check_plan * 1e3);
    println!(
        "no-op rerun (check + plan + all cache hits) {:8.1} ms  = {:.2}x the baseline",
        best * 1e3,
        best / check_plan
    );
    println!(
        "first run, every step executed     {:8.1} ms  = {:.0} us per step (2 jobs; includes fsync)",
        first_secs * 1e3,
        first_secs / steps as f64 * 1e6
    );
    println!("cache-hit overhead per step        {:8.1} us", (best - check_plan).max(0.0) / steps as f64 * 1e6);
}
