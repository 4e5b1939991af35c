use clap::{Args, Parser, Subcommand, ValueEnum};
use lab_engine::Override;
use std::ffi::OsString;
use std::path::PathBuf;

/// Run machine-learning safety experiments written as `.lab` files.
///
/// `labrun FILE` is short for `labrun run FILE`.
#[derive(Parser, Debug)]
#[command(name = "labrun", version, after_help = "`labrun FILE [STEP…]` is short for `labrun run FILE [STEP…]`.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline: check it, plan it, compute what the cache lacks, write the reports
    Run(RunArgs),
    /// Print a pipeline's last results (`results/<name>/results.md`)
    Show {
        /// The pipeline's `.lab` file, its name (`subliminal`), or a results folder
        pipeline: PathBuf,
        /// Where its results were written, if not `results/<name>` (`run --results`)
        #[arg(long, value_name = "DIR")]
        results: Option<PathBuf>,
    },
    /// Check files for syntax and type errors without running anything
    Check {
        /// `.lab` files to check
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Show the steps a run would execute, in order, with their ops, inputs and cache status
    Plan {
        /// The pipeline: a `.lab` file
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
        /// The pipeline: a `.lab` file
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Explain why a step would run (what changed since the last run) or that it is cached
    Why {
        /// The pipeline: a `.lab` file
        file: PathBuf,
        /// A step's name (`teacher[0]`)
        step: String,
        #[command(flatten)]
        set: SetArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Format `.lab` files in place (or check that they are formatted)
    Fmt {
        /// `.lab` files to format
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 if a file is not formatted
        #[arg(long)]
        check: bool,
    },
    /// List the ops, one line each, or document one (`labrun ops finetune.distill`)
    Ops {
        /// An op (`kind.method`) to document, or a kind (`finetune`) to list its ops
        name: Option<String>,
    },
    /// Inspect and maintain the cache
    Cache {
        #[command(subcommand)]
        action: CacheAction,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// List recent runs (`labrun log`), or show one (`labrun log 12`)
    Log {
        /// A run's number, as `labrun log` lists it
        run: Option<i64>,
        /// How many runs to list
        #[arg(short = 'n', long, default_value_t = 20)]
        count: usize,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Show the ONNX Runtime in use, execution providers, threads, the cache location and the Slurm cluster
    Doctor {
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Compute planned actions on a cluster node (what a Slurm job of `--executor slurm` runs)
    #[command(hide = true)]
    SlurmWorker {
        /// Action files the driver wrote (`<cache>/slurm/specs/KEY.json`)
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

/// Where the steps of a run are computed.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// Threads of this process
    Local,
    /// Jobs on a Slurm cluster (settings: `[slurm]` in labrun.toml)
    Slurm,
}

#[derive(Subcommand, Debug)]
pub enum CacheAction {
    /// List stored artifacts
    Ls {
        /// Name each artifact by the steps of recent runs that made or used it (from `labrun log`)
        #[arg(long)]
        names: bool,
    },
    /// Show one artifact: by a prefix of its id, or by a step's name in the last run (`teacher[0]`)
    Show {
        /// An artifact id (or a prefix of one), or a step name
        what: String,
        /// Resolve step names in this run (a number from `labrun log`) instead of the latest
        #[arg(long, value_name = "N")]
        run: Option<i64>,
    },
    /// Re-hash every artifact; quarantine corrupt ones so they are recomputed
    Verify,
    /// Remove what no pipeline's latest run used and nothing pins
    Gc {
        #[arg(long)]
        dry_run: bool,
        /// Keep only what the last N runs used (of any pipeline; `labrun log` lists them), and what is pinned
        #[arg(long, value_name = "N")]
        keep_runs: Option<usize>,
    },
    /// Remove one artifact (by a prefix of its id)
    Rm { id: String },
    /// Keep an artifact through `gc`
    Pin { id: String },
    /// Let `gc` remove an artifact again
    Unpin { id: String },
}

#[derive(Args, Debug, Clone, Default)]
pub struct SetArgs {
    /// Override a param: `--set seed=3` (repeatable)
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<Override>,
    /// The project folder: imports and the files ops read must lie in it (default: the nearest folder with a labrun.toml at or above the file run, else that file's folder)
    #[arg(long, value_name = "DIR")]
    pub import_root: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CacheArgs {
    /// Cache directory (default: $LABRUN_CACHE, else $XDG_CACHE_HOME/labrun or ~/.cache/labrun)
    #[arg(long, value_name = "DIR", env = "LABRUN_CACHE", global = true)]
    pub cache: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline to run: a `.lab` file
    pub file: PathBuf,
    /// Steps to compute (default: everything, and the reports)
    pub targets: Vec<String>,
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Steps to run at once (default: the number of cores)
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// ONNX Runtime threads per step (default: 1; one thread per step is fastest for small models)
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Execution provider for model ops: `cpu`, or `cuda` (needs `onnxruntime-gpu`; `labrun doctor` says whether it is there)
    #[arg(long, default_value = "cpu", value_parser = device_parser())]
    pub device: lab_ops::Device,
    /// After a failure, go on with the steps that do not depend on it
    #[arg(long)]
    pub keep_going: bool,
    /// Recompute this step even if cached (repeatable; a sweep name forces all its steps)
    #[arg(long, value_name = "STEP")]
    pub force: Vec<String>,
    /// Recompute every step
    #[arg(long)]
    pub force_all: bool,
    /// Print machine-readable events (JSON lines) on stdout instead of progress bars
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Print nothing while running but failures and warnings; the summary and results at the end
    #[arg(short, long)]
    pub quiet: bool,
    /// Where reports go (default: results/<pipeline name>)
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
    /// Where steps run (default: `[run] executor` of labrun.toml, else local)
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorKind>,
}

/// `--device`: its values listed in `--help` and in the error for another.
fn device_parser() -> impl clap::builder::TypedValueParser<Value = lab_ops::Device> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["cpu", "cuda"])
        .map(|s| s.parse::<lab_ops::Device>().expect("a listed device parses"))
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

const SUBCOMMANDS: &[&str] =
    &["run", "show", "check", "plan", "graph", "why", "fmt", "ops", "cache", "log", "doctor", "slurm-worker", "help"];

/// `labrun FILE …` means `labrun run FILE …`.
pub fn normalise_args(mut args: Vec<OsString>) -> Vec<OsString> {
    if let Some(first) = args.get(1).and_then(|a| a.to_str())
        && !first.starts_with('-')
        && !SUBCOMMANDS.contains(&first)
    {
        args.insert(1, "run".into());
    }
    args
}
