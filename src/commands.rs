use crate::cli::{Cli, Command, GraphFormat};
use crate::shared::{compiled, open_cache, print_diags, stem};
use lab_engine::{Diag, Exit, Plan, Sources};
use lab_ops::{Registry, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs a command; its exit code is an [`Exit`].
pub fn dispatch(cli: Cli) -> ExitCode {
    let registry = lab_ops::registry();
    match cli.command {
        Command::Check { files, set } => check(&files, &set, &registry),
        Command::Plan { file, targets, set, cache } => plan(&file, &targets, &set, cache.cache.as_deref(), &registry),
        Command::Graph { file, format, set } => graph(&file, format, &set, &registry),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Ops { name } => ops(name.as_deref(), &registry),
        Command::Show { pipeline, results } => show(&pipeline, results.as_deref()),
        Command::Run(args) => crate::run::run(args, &registry),
        Command::Why { file, step, set, cache } => {
            crate::maintain::why(&file, &step, &set, cache.cache.as_deref(), &registry)
        }
        Command::Cache { action, cache } => crate::maintain::cache(action, cache.cache.as_deref()),
        Command::Doctor { cache } => crate::maintain::doctor(cache.cache.as_deref()),
        Command::Log { run, count, cache } => crate::maintain::log(run, count, cache.cache.as_deref()),
        Command::SlurmWorker { specs, cache } => {
            let cache = match open_cache(cache.cache.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            lab_engine::slurm::worker(&cache, &registry, &specs).into()
        }
    }
}

fn check(files: &[PathBuf], set: &crate::cli::SetArgs, registry: &Registry) -> ExitCode {
    let mut ok = true;
    for f in files {
        match compiled(f, set, registry) {
            Ok((_, plan)) => println!("{}: ok ({} steps)", f.display(), plan.nodes.len()),
            Err(_) => ok = false,
        }
    }
    if ok { Exit::Success.into() } else { Exit::User.into() }
}

/// Arguments worth showing: inputs, and values that differ from the op's default.
pub fn key_args(plan: &Plan, node: &lab_engine::Node) -> String {
    node.args
        .iter()
        .filter(|(k, v)| match v {
            lab_engine::ArgVal::Value(v) => node.op.param(k.as_ref()).and_then(|p| p.default.as_ref()) != Some(v),
            _ => true,
        })
        .map(|(k, v)| format!("{k}: {}", plan.show_arg(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plan(
    file: &Path,
    targets: &[String],
    set: &crate::cli::SetArgs,
    cache: Option<&Path>,
    registry: &Registry,
) -> ExitCode {
    let (sources, plan) = match compiled(file, set, registry) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let plan = if targets.is_empty() {
        plan
    } else {
        match plan.prune(targets) {
            Ok(p) => p,
            Err(d) => {
                print_diags(&d, &sources);
                return Exit::User.into();
            }
        }
    };
    let cache = match open_cache(cache) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let status = lab_engine::execute::status(&plan, &cache);
    let name = stem(file);
    let from: Vec<Option<String>> =
        status.results.iter().map(|r| lab_engine::execute::computed_by(r.as_ref()?).filter(|p| *p != name)).collect();
    print!("{}", plan_text(&plan, &status.cached, &from));
    Exit::Success.into()
}

/// One line per step: position, cache status, name, op, key arguments.
pub fn plan_text(plan: &Plan, status: &[Option<bool>], from: &[Option<String>]) -> String {
    let name_w = plan.order.iter().map(|&i| plan.nodes[i].name.chars().count()).max().unwrap_or(4).min(40);
    let op_w = plan.order.iter().map(|&i| plan.nodes[i].op.name().len()).max().unwrap_or(2);
    let cached = status.iter().filter(|s| **s == Some(true)).count();
    let mut s = format!(
        "{} step{}: {cached} cached, {} to run\n",
        plan.nodes.len(),
        if plan.nodes.len() == 1 { "" } else { "s" },
        plan.nodes.len() - cached
    );
    for (k, &i) in plan.order.iter().enumerate() {
        let n = &plan.nodes[i];
        let st = match (status[i], &from[i]) {
            (Some(true), Some(p)) => format!("cached ({p})"),
            (Some(true), None) => "cached".into(),
            _ => "run".into(),
        };
        let line = format!("{:>4}  {:8} {:name_w$}  {:op_w$}  {}", k + 1, st, n.name, n.op.name(), key_args(plan, n));
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

fn graph(file: &Path, format: GraphFormat, set: &crate::cli::SetArgs, registry: &Registry) -> ExitCode {
    match compiled(file, set, registry) {
        Ok((_, plan)) => {
            print!(
                "{}",
                match format {
                    GraphFormat::Dot => plan.to_dot(),
                    GraphFormat::Mermaid => plan.to_mermaid(),
                }
            );
            Exit::Success.into()
        }
        Err(code) => code,
    }
}

fn fmt(files: &[PathBuf], check_only: bool) -> ExitCode {
    let mut code = Exit::Success.into();
    for f in files {
        let mut sources = Sources::default();
        let text = match std::fs::read(f)
            .map_err(|e| e.to_string())
            .and_then(|b| String::from_utf8(b).map_err(|_| "it is not UTF-8 text".to_string()))
        {
            Ok(t) => t,
            Err(e) => {
                eprintln!("labrun: cannot read `{}`: {e}", f.display());
                code = Exit::User.into();
                continue;
            }
        };
        let id = sources.add(f.clone(), f.display().to_string(), text.clone());
        let parsed = match lab_grammar::parse(&text, id) {
            Ok(p) => p,
            Err(errs) => {
                let diags: Vec<Diag> = errs
                    .into_iter()
                    .map(|e| Diag::new("lab::syntax", e.message).at(e.span, e.label).maybe_help(e.help))
                    .collect();
                print_diags(&diags, &sources);
                code = Exit::User.into();
                continue;
            }
        };
        let out = lab_grammar::format(&parsed, &text);
        if out == text {
            continue;
        }
        if check_only {
            println!("would reformat {}", f.display());
            code = Exit::User.into();
        } else if let Err(e) = write_atomic(f, out.as_bytes()) {
            eprintln!("labrun: cannot write `{}`: {e}", f.display());
            code = Exit::Environment.into();
        } else {
            println!("formatted {}", f.display());
        }
    }
    code
}

/// Writes through a temporary file and a rename, so a crash leaves the old or the new file.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.labrun-tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The first sentence of an op's documentation (not ended by `e.g.` and the like), cut to
/// `room` characters.
pub fn summary(doc: &str, room: usize) -> String {
    let end = doc.match_indices(". ").map(|(i, _)| i).find(|&i| {
        let before = &doc[..i];
        !["e.g", "i.e", "vs", "etc", "cf"].iter().any(|a| before.ends_with(a))
    });
    let first = end.map_or(doc, |i| &doc[..i]).trim_end_matches('.');
    if first.chars().count() <= room {
        return first.to_string();
    }
    let cut: String = first.chars().take(room.saturating_sub(1)).collect();
    // At a word boundary where there is one.
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(a, _)| a).trim_end_matches([',', ';', ':']);
    format!("{cut}…")
}

/// `labrun show`: a pipeline's `results.md`, found from its file, its name or its folder.
fn show(pipeline: &Path, results: Option<&Path>) -> ExitCode {
    let dir = match results {
        Some(d) => d.to_path_buf(),
        None if pipeline.is_dir() => pipeline.to_path_buf(),
        None => PathBuf::from("results").join(stem(pipeline)),
    };
    let file = dir.join("results.md");
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            print!("{text}");
            Exit::Success.into()
        }
        Err(e) => {
            let hint = if pipeline.extension().is_some_and(|x| x == "lab") && pipeline.is_file() {
                format!("run it first: `labrun {}`", pipeline.display())
            } else {
                "name the pipeline's `.lab` file, or its results folder (`--results DIR` if the run was given one)"
                    .into()
            };
            eprintln!("labrun: no results at {} ({}); {hint}", file.display(), lab_engine::load::io_words(&e));
            Exit::User.into()
        }
    }
}

fn ops(name: Option<&str>, registry: &Registry) -> ExitCode {
    let kinds: Vec<&str> = registry.signatures().map(|s| s.kind).collect();
    let kind = name.filter(|n| kinds.contains(n));
    match name.filter(|_| kind.is_none()) {
        None => {
            let width = crate::shared::width().max(60);
            let name_w = registry.signatures().map(|s| s.name().len()).max().unwrap_or(20);
            let mut at = "";
            for s in registry.signatures().filter(|s| kind.is_none_or(|k| s.kind == k)) {
                if s.kind != at {
                    at = s.kind;
                    println!("{}{at}", if kind.is_some() { "" } else { "\n" });
                }
                println!("  {:name_w$}  {}", s.name(), summary(s.doc, width - name_w - 4));
            }
            println!("\n`labrun ops NAME` documents one op in full.");
            Exit::Success.into()
        }
        Some(n) => {
            let found = n.split_once('.').and_then(|(k, m)| registry.get(k, m));
            let Some((sig, _)) = found else {
                let all: Vec<String> = registry.signatures().map(|s| s.name()).collect();
                let hint = lab_engine::suggest(n, all.iter().map(String::as_str))
                    .unwrap_or_else(|| "`labrun ops` lists every op".into());
                eprintln!("labrun: no op is named `{n}`; {hint}");
                return Exit::User.into();
            };
            println!(
                "{} (version {})\n\n{}\n\nreturns {}\n\nparameters:",
                sig.name(),
                sig.version,
                sig.doc,
                sig.output
            );
            for p in &sig.params {
                let default = match &p.default {
                    Some(Value::Float(f)) if *f == f64::MIN => " (optional)".to_string(),
                    Some(d) => format!(" = {d}"),
                    None => " (required)".into(),
                };
                println!("  {}: {}{}\n      {}", p.name, p.ty, default, p.doc);
            }
            if !sig.checks.is_empty() {
                println!("\nrules (`labrun check` enforces them where the values are known):");
                for c in &sig.checks {
                    println!("  {}", c.describe());
                }
            }
            println!(
                "\non a cluster (`--executor slurm`), one step asks for: {}\n      override per call: `resources: {{cpus: 4, mem: \"8G\", gpus: 1, time: \"2h\"}}`",
                sig.resources.describe()
            );
            Exit::Success.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summaries_end_at_the_first_sentence_and_fit_their_room() {
        assert_eq!(summary("a chart (e.g. gold). More here.", 80), "a chart (e.g. gold)");
        assert_eq!(summary("one, i.e. two. Three.", 80), "one, i.e. two");
        assert_eq!(summary("no full stop", 80), "no full stop");
        // Cut at a word, with an ellipsis, within the room.
        let s = summary("the records of a JSON Lines file, one object per line", 24);
        assert_eq!(s, "the records of a JSON…");
        assert!(s.chars().count() <= 24);
        assert_eq!(summary("ééééé ééééé", 4), "ééé…");
    }
}
