//! Where a run's steps are computed, as the user chose it: this process or a Slurm
//! cluster. The scheduler (`execute`) is shared; each executor implements
//! [`execute::Executor`](crate::execute::Executor).

use crate::execute::{self, RunOptions, RunReport};
use crate::plan::Plan;
use crate::slurm::{self, SlurmConfig};
use lab_cache::Cache;
use lab_ops::Registry;

/// Where the steps of a run are computed.
#[derive(Debug, Clone, Default)]
pub enum ExecutorConfig {
    /// Threads of this process.
    #[default]
    Local,
    /// Jobs on a Slurm cluster, meeting in the (shared) cache.
    Slurm(SlurmConfig),
}

/// Runs every node of `plan` that the cache lacks, where `on` says.
pub fn run(plan: &Plan, cache: &Cache, registry: &Registry, opts: &RunOptions, on: &ExecutorConfig) -> RunReport {
    match on {
        ExecutorConfig::Local => execute::run_local(plan, cache, registry, opts),
        ExecutorConfig::Slurm(cfg) => slurm::run(plan, cache, cfg, opts),
    }
}
