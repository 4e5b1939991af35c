//! labrun's engine: from a `.lab` file to a run.
//!
//! # Steps
//! - **Loading** ([`load`]): the root file and its imports are read and parsed by
//!   `lab-grammar` into syntax trees (`lab_grammar::File`), collected with their text in
//!   [`Sources`].
//! - **Checking** (`check`): every name is resolved and every expression typed against the
//!   op signatures of `lab-ops`. All errors of the program come back at once as [`Diag`]s;
//!   without errors, the outcome is the typed program (`typed`): names resolved to
//!   definitions and loop slots, calls bound to their signatures, types attached.
//! - **Lowering** (`lower`): reads the typed program. Params take their values (`--set`
//!   overrides included), sweeps expand into indexed steps and calls become nodes of a
//!   [`Plan`], a DAG in topological order. [`Plan::prune`] keeps what chosen targets need.
//! - **Running** (`run`): the plan's nodes are looked up in the cache, the missing ones
//!   run in parallel, and reports are written; the outcome is a `RunReport`.
//!
//! [`compile`] does loading, checking and lowering in one call.

mod check;
mod diagnostic;
pub mod execute;
pub mod exit;
pub mod load;
mod lower;
mod plan;
mod prune;
pub mod report;
pub mod run;
pub mod slurm;
mod source;
pub mod timing;
mod typed;

pub use diagnostic::{CODES, Diag, render, suggest};
pub use exit::Exit;
pub use plan::{ArgVal, Node, NodeArgs, NodeKey, Plan, ReportPlan, RowPlan, TablePlan};
pub use source::{SourceFile, Sources};

use lab_ops::Registry;
use std::path::Path;

/// A `--set name=value` override, as typed.
#[derive(Debug, Clone)]
pub struct Override {
    pub name: String,
    pub value: String,
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((n, v)) if !n.trim().is_empty() => {
                Ok(Override { name: n.trim().to_string(), value: v.trim().to_string() })
            }
            _ => Err(format!("`{s}` is not of the form `name=value`")),
        }
    }
}

/// The result of [`compile`]: the sources (for rendering diagnostics) and, when there
/// were no errors, the plan.
pub struct Compiled {
    pub sources: Sources,
    pub plan: Option<Plan>,
    pub diags: Vec<Diag>,
}

/// In reading order: by file, then position; span-less ones last.
fn sort(diags: &mut [Diag]) {
    diags.sort_by_key(|d| d.primary.as_ref().map_or((u32::MAX, u32::MAX), |(s, _)| (s.file, s.start)));
}

/// Loads, checks and lowers the program rooted at `path`; its imports must lie in its folder.
pub fn compile(path: &Path, overrides: &[Override], registry: &Registry) -> Compiled {
    compile_in(path, None, overrides, registry)
}

/// [`compile`], with imports allowed anywhere under `import_root` (default: the folder of
/// `path`).
pub fn compile_in(path: &Path, import_root: Option<&Path>, overrides: &[Override], registry: &Registry) -> Compiled {
    compile_kept(path, import_root, overrides, registry, None)
}

/// [`compile_in`], keeping large files' syntax trees in the folder `parsed` for the next
/// compilation of the same text ([`load::parse_kept`]).
pub fn compile_kept(
    path: &Path,
    import_root: Option<&Path>,
    overrides: &[Override],
    registry: &Registry,
    parsed: Option<&Path>,
) -> Compiled {
    let t = timing::phase("load");
    let (loaded, diags) = load::load(path, import_root, parsed);
    drop(t);
    let t = timing::phase("check");
    let mut sources = loaded.sources.clone();
    let typed = match check(&loaded, overrides, registry, &mut sources, diags) {
        Ok(typed) => typed,
        Err(mut diags) => {
            sort(&mut diags);
            return Compiled { sources, plan: None, diags };
        }
    };
    drop(t);
    let t = timing::phase("lower");
    let dirs = sources.files.iter().map(|f| f.path.parent().map(Path::to_path_buf).unwrap_or_default()).collect();
    let (plan, mut lower_diags) = lower::Lowerer::new(&typed, dirs, loaded.project.clone()).lower();
    // A report with nothing to show: no step anywhere in the program.
    if plan.as_ref().is_some_and(|p| p.nodes.is_empty())
        && let Some(span) = loaded.files.iter().flat_map(|(_, f)| &f.items).find_map(|i| match i {
            lab_grammar::Item::Report(r) => Some(r.title.span),
            _ => None,
        })
    {
        lower_diags.push(
            Diag::new("lab::empty", "this report has nothing to show: the program makes no steps (none is defined, or only in loops over empty lists)")
                .at(span, "a report with no steps")
                .help("a report's rows show the results of steps, written `name = kind.method(args…)`; `labrun ops` lists the ops"),
        );
    }
    sort(&mut lower_diags);
    drop(t);
    let _t = timing::phase("free");
    // The syntax trees and the typed program are freed on another thread: for ten thousand
    // steps that is milliseconds the run need not wait for.
    std::thread::spawn(move || drop((typed, loaded)));
    Compiled { sources, plan, diags: lower_diags }
}

/// Checking: every name resolved, every expression typed against the op signatures, and
/// the `--set` overrides (parsed as little files of their own, added to `sources`) resolved
/// and typed like the rest. The typed program, or every error at once (with `diags`, those
/// of loading).
fn check(
    loaded: &load::Loaded,
    overrides: &[Override],
    registry: &Registry,
    sources: &mut Sources,
    mut diags: Vec<Diag>,
) -> Result<typed::Typed, Vec<Diag>> {
    let program = check::collect(loaded, &mut diags);
    let mut checker = check::Checker::new(&program, registry);
    checker.check_all();
    diags.extend(std::mem::take(&mut checker.diags));
    let names: Vec<String> = overrides.iter().map(|o| o.name.clone()).collect();
    diags.extend(lower::check_override_names(&program, &names));
    let mut parsed = std::collections::BTreeMap::new();
    for o in overrides {
        let text = format!("{} = {}", o.name, o.value);
        let id = sources.add(format!("--set {}", o.name).into(), "--set".into(), text.clone());
        match lab_grammar::parse(&text, id) {
            Ok(f) => {
                if let Some(lab_grammar::Item::Step(s)) = f.items.into_iter().next() {
                    parsed.insert(o.name.clone(), (s.value, o.value.clone()));
                }
            }
            Err(errs) => diags.extend(errs.into_iter().map(|e| {
                Diag::new("lab::bad_override", format!("`--set {}={}` is not a value: {}", o.name, o.value, e.message))
                    .at(e.span, e.label)
                    .help("write the value as in a `.lab` file: `seed=3`, `lr=1e-3`, `widths=[1,2]`, `name=\"x\"`")
            })),
        }
    }
    let typed = checker.typed(&parsed);
    diags.extend(std::mem::take(&mut checker.diags));
    if diags.is_empty() { Ok(typed) } else { Err(diags) }
}
