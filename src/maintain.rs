//! `labrun why`, `labrun cache …` and `labrun doctor`.

use crate::cli::CacheAction;
use crate::shared::{cache_dir, compiled, open_cache, pipeline_id, utc};
use lab_engine::Exit;
use lab_ops::Registry;
use serde_json::Value as Json;
use std::path::Path;
use std::process::ExitCode;

pub fn why(
    file: &Path,
    step: &str,
    set: &crate::cli::SetArgs,
    cache_arg: Option<&Path>,
    registry: &Registry,
) -> ExitCode {
    let (sources, plan) = match compiled(file, set, registry) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let Some(node) = plan.find(step) else {
        let names = plan.nodes.iter().map(|n| n.name.as_str());
        let hint = lab_engine::suggest(step, names).unwrap_or_else(|| "`labrun plan FILE` lists the steps".into());
        eprintln!("labrun: no step is named `{step}`; {hint}");
        let _ = sources;
        return Exit::User.into();
    };
    let cache = match open_cache(cache_arg) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let st = lab_engine::execute::status(&plan, &cache);
    let (status, keys) = (&st.cached, &st.keys);
    let name = &node.name;
    match status[node.id] {
        Some(true) => {
            let meta = st.results[node.id].as_ref().map(|r| r.meta.clone()).unwrap_or_default();
            let secs =
                meta.get("seconds").and_then(Json::as_f64).map(|s| format!(", took {s:.1}s")).unwrap_or_default();
            let by = meta.get("pipeline").and_then(Json::as_str).map(|p| format!(" by `{p}`")).unwrap_or_default();
            println!("`{name}` is cached: computed{by}{secs}; a run reuses it");
            Exit::Success.into()
        }
        None => {
            // An input must run first: name the first one upstream that is not cached.
            let mut stack = node.deps.clone();
            let mut seen = std::collections::BTreeSet::new();
            while let Some(d) = stack.pop() {
                if !seen.insert(d) {
                    continue;
                }
                if status[d] == Some(false) {
                    println!(
                        "`{name}` will run because its input `{}` is not cached; `labrun why {} '{}'` says why",
                        plan.nodes[d].name,
                        file.display(),
                        plan.nodes[d].name
                    );
                    return Exit::Success.into();
                }
                stack.extend(plan.nodes[d].deps.iter().copied());
            }
            println!("`{name}` will run: an input will be recomputed first");
            Exit::Success.into()
        }
        Some(false) => {
            let now = keys[node.id].as_ref().map(|(_, p)| p.clone()).unwrap_or(Json::Null);
            let prev = cache.last_run(&pipeline_id(file)).and_then(|r| r.steps.get(name).map(|(_, p, _)| p.clone()));
            match prev {
                None => println!("`{name}` will run: no earlier run of this pipeline computed it"),
                Some(prev) => {
                    let changes = diff(&prev, &now);
                    if changes.is_empty() {
                        println!(
                            "`{name}` will run: its inputs and params are as in the last run, but the result is no longer in the cache (removed by `cache gc`, `cache rm` or `cache verify`)"
                        );
                    } else {
                        println!("`{name}` will run because:");
                        for c in changes {
                            println!("  {c}");
                        }
                    }
                }
            }
            Exit::Success.into()
        }
    }
}

/// What differs between two readable preimages.
fn diff(prev: &Json, now: &Json) -> Vec<String> {
    let mut out = Vec::new();
    if prev["op"] != now["op"] || prev["version"] != now["version"] {
        out.push(format!("op {}@{} → {}@{}", prev["op"], prev["version"], now["op"], now["version"]));
    }
    let empty = serde_json::Map::new();
    let params = |j: &Json| j["params"].as_object().cloned().unwrap_or_else(|| empty.clone());
    let (pp, np) = (params(prev), params(now));
    let mut keys: Vec<&String> = pp.keys().chain(np.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let show = |v: Option<&Json>| v.and_then(Json::as_str).map(str::to_string).unwrap_or_else(|| "(unset)".into());
        if pp.get(k) != np.get(k) {
            out.push(format!("params.{k} {} → {}", show(pp.get(k)), show(np.get(k))));
        }
    }
    let inputs = |j: &Json| j["inputs"].as_object().cloned().unwrap_or_else(|| empty.clone());
    let (pi, ni) = (inputs(prev), inputs(now));
    for (k, v) in &ni {
        if pi.get(k) != Some(v) {
            let step = v.get("step").and_then(Json::as_str).map(|s| format!(" (from `{s}`)")).unwrap_or_default();
            out.push(format!("input `{k}`{step} changed"));
        }
    }
    out
}

pub fn cache(action: CacheAction, cache_arg: Option<&Path>) -> ExitCode {
    let cache = match open_cache(cache_arg) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let not_found = |e: lab_cache::CacheError| {
        eprintln!("labrun: {e}; `labrun cache ls` lists the artifacts");
        Exit::User.into()
    };
    match action {
        CacheAction::Ls { names } => {
            let list = cache.list();
            let total: u64 = list.iter().map(|e| e.bytes).sum();
            let named = if names { step_names(&cache) } else { Default::default() };
            for e in &list {
                let id = &e.id.to_string()[..16];
                if names {
                    let name = named.get(&e.id).map_or("-", String::as_str);
                    println!("{id}  {:>10}  {name:32}  {}", human(e.bytes), e.files.join(", "));
                } else {
                    println!("{id}  {:>10}  {}", human(e.bytes), e.files.join(", "));
                }
            }
            println!("{} artifacts, {} in {}", list.len(), human(total), cache.root().display());
            if names {
                println!("names are `pipeline: step` of the latest run that made or used each artifact (`labrun log`)");
            }
        }
        CacheAction::Show { what, run } => match resolve(&cache, &what, run) {
            Err(message) => {
                eprintln!("labrun: {message}");
                return Exit::User.into();
            }
            Ok((found, step)) => {
                let e = match found {
                    Ok(e) => e,
                    Err(e) => return not_found(e),
                };
                if let Some(step) = step {
                    println!("step     {step}");
                }
                println!(
                    "artifact {}\npath     {}\nsize     {}",
                    e.id,
                    cache.artifact_path(&e.id).display(),
                    human(e.bytes)
                );
                for f in &e.files {
                    println!("  {f}");
                }
                if let Ok(m) = std::fs::read_to_string(cache.artifact_path(&e.id).join("metrics.json")) {
                    println!("{m}");
                }
            }
        },
        CacheAction::Verify => match cache.verify() {
            Ok(r) => {
                println!("checked {} artifacts", r.checked);
                for id in &r.quarantined {
                    println!("corrupt: {id} (moved to quarantine; the next run recomputes it)");
                }
                if r.quarantined.is_empty() {
                    println!("no corruption found");
                } else {
                    println!("{} corrupt, {} action results dropped", r.quarantined.len(), r.dropped_actions);
                    return Exit::User.into();
                }
            }
            Err(e) => {
                eprintln!("labrun: {e}");
                return Exit::Environment.into();
            }
        },
        CacheAction::Gc { dry_run, keep_runs } => match keep_runs
            .map(|n| {
                lab_cache::index::RunIndex::open(cache.root()).and_then(|(ix, note)| {
                    if let Some(n) = note {
                        eprintln!("labrun: {n}");
                    }
                    ix.used_by_last(n)
                })
            })
            .transpose()
        {
            Err(e) => {
                eprintln!("labrun: cannot read the run index: {e}");
                return Exit::Environment.into();
            }
            Ok(keep) => match cache.gc_keeping(dry_run, keep.as_ref()) {
                Ok((removed, freed)) => {
                    let verb = if dry_run { "would remove" } else { "removed" };
                    println!("{verb} {} artifacts, {}", removed.len(), human(freed));
                }
                Err(e) => {
                    eprintln!("labrun: {e}");
                    return Exit::Environment.into();
                }
            },
        },
        CacheAction::Rm { id } => match cache.find(&id) {
            Ok(e) => {
                if let Err(e) = cache.remove(&e.id) {
                    eprintln!("labrun: {e}");
                    return Exit::Environment.into();
                }
                println!("removed {}", e.id);
            }
            Err(e) => return not_found(e),
        },
        CacheAction::Pin { id } => match cache.find(&id) {
            Ok(e) => {
                let _ = cache.pin(&e.id, true);
                println!("pinned {}", e.id);
            }
            Err(e) => return not_found(e),
        },
        CacheAction::Unpin { id } => match cache.find(&id) {
            Ok(e) => {
                let _ = cache.pin(&e.id, false);
                println!("unpinned {}", e.id);
            }
            Err(e) => return not_found(e),
        },
    }
    Exit::Success.into()
}

/// For each artifact, `pipeline: step` of the most recent indexed run that made or used it.
fn step_names(cache: &lab_cache::Cache) -> std::collections::BTreeMap<lab_cache::ArtifactId, String> {
    let mut names = std::collections::BTreeMap::new();
    let Ok((ix, _)) = lab_cache::index::RunIndex::open(cache.root()) else { return names };
    for run in ix.recent(50).unwrap_or_default() {
        if let Ok(Some((_, steps))) = ix.run(run.id) {
            for s in steps {
                if let Some(a) = s.artifact {
                    names.entry(a).or_insert_with(|| format!("{}: {}", run.pipeline, s.step));
                }
            }
        }
    }
    names
}

/// What `cache show WHAT` means: a step of a run (the latest, or `--run N`), else an
/// artifact id's prefix. Returns the lookup and the step it came from; an error says why
/// nothing was found, with the step names that come close.
#[allow(clippy::type_complexity)]
fn resolve(
    cache: &lab_cache::Cache,
    what: &str,
    run: Option<i64>,
) -> Result<(Result<lab_cache::Entry, lab_cache::CacheError>, Option<String>), String> {
    let hex = !what.is_empty() && what.chars().all(|c| c.is_ascii_hexdigit());
    let by_id = || Ok((cache.find(what), None));
    let index = lab_cache::index::RunIndex::open(cache.root()).map(|(ix, _)| ix);
    let ix = match index {
        Ok(ix) => ix,
        Err(_) if hex && run.is_none() => return by_id(),
        Err(e) => return Err(format!("cannot read the run index: {e}")),
    };
    let id = match run {
        Some(id) => Some(id),
        None => ix.recent(1).map_err(|e| format!("cannot read the run index: {e}"))?.first().map(|r| r.id),
    };
    let Some(id) = id else {
        return if hex {
            by_id()
        } else {
            Err(format!("no run is recorded to look up a step `{what}` in (`labrun log` lists runs)"))
        };
    };
    let Some((summary, steps)) = ix.run(id).map_err(|e| format!("cannot read the run index: {e}"))? else {
        return Err(format!("no run {id} in the index; `labrun log` lists the runs"));
    };
    // A step's exact name wins over an id prefix that happens to match it (`bad`, `e1`).
    if let Some(step) = steps.iter().find(|s| s.step == what) {
        let Some(artifact) = step.artifact else {
            return Err(format!(
                "step `{what}` of run {id} ({}) has no artifact: it {}",
                summary.pipeline, step.status
            ));
        };
        return Ok((
            cache.find(&artifact.to_string()),
            Some(format!("{what} (run {id}, {}; {})", summary.pipeline, step.op)),
        ));
    }
    if hex && run.is_none() {
        return by_id();
    }
    let hint = lab_engine::suggest(what, steps.iter().map(|s| s.step.as_str()))
        .unwrap_or_else(|| format!("`labrun log {id}` lists its steps"));
    Err(format!("`{what}`: run {id} ({}) has no step of that name; {hint}", summary.pipeline))
}

fn human(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

pub fn doctor(cache_arg: Option<&Path>) -> ExitCode {
    println!("labrun      {}", env!("CARGO_PKG_VERSION"));
    println!("cache       {}", cache_dir(cache_arg).display());
    println!("data dir    {}", lab_nn::runtime::data_dir().display());
    println!("cores       {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!("threads     1 ONNX Runtime thread per step by default (`--threads`); steps run in parallel (`-j`)");
    match lab_nn::runtime::init() {
        Ok(info) => {
            println!("onnxruntime {} ({})", info.version, info.source);
            println!("library     {}", info.library.display());
            println!(
                "providers   cpu{}",
                if info.cuda {
                    ", cuda"
                } else {
                    " (cuda: not available; install `onnxruntime-gpu` for `--device cuda`)"
                }
            );
            slurm_doctor();
            Exit::Success.into()
        }
        Err(e) => {
            println!("onnxruntime missing: {e}");
            slurm_doctor();
            Exit::Environment.into()
        }
    }
}

/// Whether `--executor slurm` can work from here.
fn slurm_doctor() {
    match lab_engine::slurm::describe_cluster() {
        Ok((version, partitions)) => {
            println!("slurm       {version}: sbatch reachable, {} partition(s)", partitions.len());
            for p in partitions {
                println!("  partition {p}");
            }
        }
        Err(e) => println!("slurm       not usable: {e} (only `--executor slurm` needs it)"),
    }
}

/// `labrun log`: the latest runs, or one run with its steps.
pub fn log(run: Option<i64>, count: usize, cache_arg: Option<&Path>) -> ExitCode {
    let cache = match open_cache(cache_arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (ix, note) = match lab_cache::index::RunIndex::open(cache.root()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("labrun: cannot read the run index: {e}");
            return Exit::Environment.into();
        }
    };
    if let Some(n) = note {
        eprintln!("labrun: {n}");
    }
    let exit = |c: Option<i64>| c.map_or("?".to_string(), |c| c.to_string());
    match run {
        None => match ix.recent(count) {
            Ok(runs) if runs.is_empty() => {
                println!("no runs recorded in {} yet", cache.root().display());
                Exit::Success.into()
            }
            Ok(runs) => {
                println!(
                    "{:>5}  {:19}  {:24} {:>6} {:>8} {:>7} {:>6} {:>8}  {:>4}  {:8} host",
                    "run",
                    "started (UTC)",
                    "pipeline",
                    "steps",
                    "executed",
                    "cached",
                    "failed",
                    "time",
                    "exit",
                    "executor"
                );
                for r in runs {
                    println!(
                        "{:>5}  {:19}  {:24} {:>6} {:>8} {:>7} {:>6} {:>7.1}s  {:>4}  {:8} {}",
                        r.id,
                        utc(r.started_unix),
                        r.pipeline.chars().take(24).collect::<String>(),
                        r.steps,
                        r.executed,
                        r.cached,
                        r.failed,
                        r.seconds,
                        exit(r.exit_code),
                        r.executor,
                        r.host
                    );
                }
                Exit::Success.into()
            }
            Err(e) => {
                eprintln!("labrun: cannot read the run index: {e}");
                Exit::Environment.into()
            }
        },
        Some(id) => match ix.run(id) {
            Ok(Some((r, steps))) => {
                println!("run {}: {} ({})", r.id, r.pipeline, r.file);
                println!(
                    "started {} UTC on {}, {} executor, {:.1} s, exit {}",
                    utc(r.started_unix),
                    if r.host.is_empty() { "?" } else { &r.host },
                    r.executor,
                    r.seconds,
                    exit(r.exit_code)
                );
                println!("params {}", r.params);
                if r.overrides != "[]" {
                    println!("--set {}", r.overrides);
                }
                println!(
                    "{} steps: {} executed, {} cached, {} failed, {} skipped\n",
                    r.steps, r.executed, r.cached, r.failed, r.skipped
                );
                println!("{:40} {:24} {:9} {:>9}  artifact", "step", "op", "status", "seconds");
                for s in steps {
                    let secs = s.seconds.map_or(String::new(), |x| format!("{x:.2}"));
                    let art = s.artifact.map_or(String::new(), |a| a.to_string()[..12].to_string());
                    println!("{:40} {:24} {:9} {:>9}  {art}", s.step, s.op, s.status, secs);
                    if let Some(e) = s.error {
                        println!("    {}", e.lines().next().unwrap_or(""));
                    }
                }
                Exit::Success.into()
            }
            Ok(None) => {
                eprintln!("labrun: no run {id} in the index; `labrun log` lists the runs");
                Exit::User.into()
            }
            Err(e) => {
                eprintln!("labrun: cannot read the run index: {e}");
                Exit::Environment.into()
            }
        },
    }
}
