use clap::{Args, Parser, Subcommand, ValueEnum};
use lab_engine::Override;
use std::ffi::OsString;
use std::path::PathBuf;

/// Run machine-learning safety experiments written as `.lab` files.
///
/// `labrun FILE` is short for `labrun run FILE`.
#[derive(Parser, Debug)]
#[command(name = "labrun", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline: check it, plan it, compute what the cache lacks, write the reports
    Run(RunArgs),
    /// Check files for syntax and type errors without running anything
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Show the steps a run would execute, in order, with their ops and inputs
    Plan {
        file: PathBuf,
        /// Steps to plan for (default: everything)
        targets: Vec<String>,
        #[command(flatten)]
        set: SetArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Print the DAG of a pipeline for Graphviz or Mermaid
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Format `.lab` files in place (or check that they are formatted)
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 if a file is not formatted
        #[arg(long)]
        check: bool,
    },
    /// List the ops, or document one (`labrun ops finetune.distill`)
    Ops { name: Option<String> },
}

#[derive(Args, Debug, Clone, Default)]
pub struct SetArgs {
    /// Override a param: `--set seed=3` (repeatable)
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<Override>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CacheArgs {
    /// Cache directory (default: $LABRUN_CACHE, else the per-user cache directory)
    #[arg(long, value_name = "DIR", env = "LABRUN_CACHE")]
    pub cache: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    pub file: PathBuf,
    /// Steps to compute (default: everything, and the reports)
    pub targets: Vec<String>,
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

const SUBCOMMANDS: &[&str] = &["run", "check", "plan", "graph", "fmt", "ops", "help"];

/// `labrun FILE …` means `labrun run FILE …`.
pub fn normalise_args(mut args: Vec<OsString>) -> Vec<OsString> {
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        if !first.starts_with('-') && !SUBCOMMANDS.contains(&first) {
            args.insert(1, "run".into());
        }
    }
    args
}
