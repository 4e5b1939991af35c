//! labrun's content-addressed store, in two layers (as in Bazel):
//!
//! - an **action key** (a blake3 derived key over the canonical bytes of an op, its
//!   version, params, input artifact ids and seed) maps to an **action result**: the ids
//!   of its output artifacts plus metadata and the key's preimage;
//! - an **artifact id** (the blake3 Merkle hash of a directory's contents) maps to the
//!   artifact itself, a plain directory.
//!
//! Layout under the root: `artifacts/ab/abcd…/`, `actions/ab/abcd….json`, `actions.idx`
//! (every action's outputs in one file, read once per run: `journal`), `locks/`,
//! `tmp/`, `quarantine/`, `runs/` (what each pipeline's latest run used), `pins/`,
//! `parsed/` (kept syntax trees of `.lab` files, [`PARSED`]) and `runs.sqlite`, the index
//! of every run ([`index`]).
//! Every write goes to `tmp/` and is renamed into place. Artifacts and their action
//! results are committed in groups ([`Cache::commit_grouped`]): one filesystem sync makes a
//! group's artifacts durable before any of its results is written, so a result never names
//! an artifact a crash could lose; failures write nothing.

mod hash;
pub mod index;
mod journal;
mod store;

pub use blake3::Hasher;
pub use hash::{ArtifactId, Key, hash_dir, hash_file};

/// The cache's folder of kept syntax trees (parsed `.lab` files, by text): derived, and
/// emptied by `gc`.
pub const PARSED: &str = "parsed";
pub use store::{ActionResult, Cache, CacheError, Entry, Hit, LockGuard, RunRecord, VerifyReport};
