use crate::journal::{Indexed, Journal};
use crate::{ArtifactId, Key, hash_dir};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("cache at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no cache entry matches `{0}`")]
    NotFound(String),
    #[error("`{0}` matches several cache entries; give more digits")]
    Ambiguous(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.to_path_buf(), source }
}

/// What an action produced, and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActionResult {
    pub outputs: Vec<ArtifactId>,
    /// Duration, host, ONNX Runtime version, execution provider, labrun version, time.
    pub meta: BTreeMap<String, serde_json::Value>,
    /// The key's preimage in readable form, for `labrun why`.
    pub preimage: serde_json::Value,
}

/// A cache hit as the scheduler needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub outputs: Vec<ArtifactId>,
    /// The pipeline that computed it.
    pub pipeline: Option<String>,
}

/// What one run of a pipeline used: kept by GC, compared by `labrun why`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunRecord {
    pub pipeline: String,
    /// Step name → (action key, readable preimage, output artifact).
    pub steps: BTreeMap<String, (Key, serde_json::Value, Option<ArtifactId>)>,
}

/// One listed entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: ArtifactId,
    pub bytes: u64,
    pub files: Vec<String>,
}

/// The result of `verify`.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub checked: usize,
    /// Artifacts whose content no longer matches their id, now moved to `quarantine/`.
    pub quarantined: Vec<ArtifactId>,
    /// Action results removed because they were unreadable or pointed at those.
    pub dropped_actions: usize,
}

/// Holds the per-key lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Every action key with its outputs, read once ([`crate::journal`]).
    journal: std::sync::Arc<Journal>,
    /// Action results waiting for the next group commit.
    group: std::sync::Arc<std::sync::Mutex<Vec<Pending>>>,
}

/// An action result whose artifacts are in place but not yet known to be on disk. It keeps
/// its key's lock, so another process waiting for the key finds the result when it gets
/// the lock.
#[derive(Debug)]
struct Pending {
    key: Key,
    result: ActionResult,
    _lock: LockGuard,
}

/// Results committed together: one filesystem sync covers them all.
const GROUP_SIZE: usize = 64;

/// Makes the artifacts `dirs` durable. A few are synced file by file; a large group with
/// one `syncfs` (Linux), which covers every file and rename of the filesystem at once but
/// also waits for whatever else is pending on it, so it is kept for groups where the
/// per-file syncs would cost more.
fn sync_all(root: &Path, dirs: &[PathBuf]) -> std::io::Result<()> {
    const FEW: usize = 8;
    #[cfg(target_os = "linux")]
    if dirs.len() > FEW {
        use std::os::fd::AsRawFd;
        let f = File::open(root)?;
        // SAFETY: `f` is an open file descriptor for the whole call.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        return Ok(());
    }
    let _ = root;
    for d in dirs {
        sync_tree(d)?;
        if let Some(p) = d.parent() {
            fsync_dir(p);
        }
    }
    Ok(())
}

fn fsync_dir(dir: &Path) {
    // Directory fsync makes a rename durable; failure only weakens durability.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            sync_tree(&e.path())?;
        } else {
            File::open(e.path())?.sync_all()?;
        }
    }
    fsync_dir(dir);
    Ok(())
}

impl Cache {
    /// Opens (creating if needed) a cache rooted at `root`.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        for sub in ["artifacts", "actions", "locks", "tmp", "quarantine", "runs", "pins"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
            journal: std::sync::Arc::new(Journal::new(root)),
            group: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn artifact_path(&self, id: &ArtifactId) -> PathBuf {
        let h = id.to_string();
        self.root.join("artifacts").join(&h[..2]).join(h)
    }

    fn action_path(&self, key: &Key) -> PathBuf {
        let h = key.to_string();
        self.root.join("actions").join(&h[..2]).join(format!("{h}.json"))
    }

    /// The action result of `key`, if one is recorded and all its outputs exist. An
    /// unreadable result is treated as absent (and recomputed).
    pub fn lookup(&self, key: &Key) -> Option<ActionResult> {
        let text = fs::read_to_string(self.action_path(key)).ok()?;
        let r: ActionResult = serde_json::from_str(&text).ok()?;
        r.outputs.iter().all(|o| self.artifact_path(o).is_dir()).then_some(r)
    }

    /// [`Cache::lookup`] for the scheduler: only the outputs and the pipeline that computed
    /// them, from the action index; a key the index lacks is read from its JSON result
    /// (and added to the index).
    pub fn hit(&self, key: &Key) -> Option<Hit> {
        if let Some(e) = self.journal.get(key) {
            return Some(Hit { outputs: e.outputs, pipeline: e.pipeline });
        }
        #[derive(Deserialize)]
        struct View {
            outputs: Vec<ArtifactId>,
            #[serde(default)]
            meta: MetaView,
        }
        #[derive(Deserialize, Default)]
        struct MetaView {
            pipeline: Option<String>,
        }
        let bytes = fs::read(self.action_path(key)).ok()?;
        let v: View = serde_json::from_slice(&bytes).ok()?;
        if !v.outputs.iter().all(|o| self.artifact_path(o).is_dir()) {
            return None;
        }
        let hit = Hit { outputs: v.outputs, pipeline: v.meta.pipeline };
        self.journal.add(key, &Indexed { outputs: hit.outputs.clone(), pipeline: hit.pipeline.clone() });
        Some(hit)
    }

    /// Reads the action index now (a first lookup would otherwise), e.g. on another thread
    /// while the pipeline is being checked.
    pub fn load_index(&self) {
        let _ = self.journal.get(&Key([0; 32]));
    }

    /// Writes out what the action index holds in memory (it also does when the cache is
    /// dropped).
    pub fn flush_index(&self) {
        self.journal.flush();
    }

    /// Waits for and takes the lock of `key`, so that one process computes it.
    pub fn lock(&self, key: &Key) -> Result<LockGuard, CacheError> {
        let p = self.root.join("locks").join(format!("{key}.lock"));
        let f = File::create(&p).map_err(io(&p))?;
        f.lock().map_err(io(&p))?;
        Ok(LockGuard { _file: f })
    }

    /// A fresh, empty directory under `tmp/` for an op to write into.
    pub fn tmp_dir(&self) -> Result<tempdir::TempDir, CacheError> {
        tempdir::TempDir::new_in(&self.root.join("tmp"))
    }

    /// Moves a finished output directory into the store under its content hash, without
    /// waiting for the disk: the action's result must then go through
    /// [`Cache::commit_grouped`], which syncs before recording it. If the same content is
    /// already stored it is kept, unless it no longer matches its id (a copy cut short by a
    /// crash before its group was synced), in which case it is replaced.
    pub fn commit_artifact(&self, dir: &Path) -> Result<ArtifactId, CacheError> {
        let id = hash_dir(dir).map_err(io(dir))?;
        let dest = self.artifact_path(&id);
        if dest.is_dir() {
            if hash_dir(&dest).is_ok_and(|h| h == id) {
                let _ = fs::remove_dir_all(dir);
                return Ok(id);
            }
            let q = self.root.join("quarantine").join(format!("{id}.{}", std::process::id()));
            fs::rename(&dest, &q).map_err(io(&dest))?;
        }
        let parent = dest.parent().expect("sharded path");
        fs::create_dir_all(parent).map_err(io(parent))?;
        match fs::rename(dir, &dest) {
            Ok(()) => Ok(id),
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(dir);
                Ok(id)
            }
            Err(e) => Err(CacheError::Io { path: dest, source: e }),
        }
    }

    /// Records an action result with the next group: when `GROUP_SIZE` (64) results wait, or
    /// at [`Cache::flush_commits`]. One filesystem sync then makes all their artifacts
    /// durable, and only after it are the results written, so a result never names an
    /// artifact that a power cut could lose. `lock` is released once the result is written.
    pub fn commit_grouped(&self, key: &Key, result: ActionResult, lock: LockGuard) -> Result<(), CacheError> {
        let full = {
            let mut g = self.group.lock().unwrap_or_else(|p| p.into_inner());
            g.push(Pending { key: *key, result, _lock: lock });
            g.len() >= GROUP_SIZE
        };
        if full { self.flush_commits() } else { Ok(()) }
    }

    /// Commits the results waiting in the group (see [`Cache::commit_grouped`]). On an
    /// error they are dropped: their steps run again next time.
    pub fn flush_commits(&self) -> Result<(), CacheError> {
        let pending = std::mem::take(&mut *self.group.lock().unwrap_or_else(|p| p.into_inner()));
        if pending.is_empty() {
            return Ok(());
        }
        let dirs: Vec<PathBuf> =
            pending.iter().flat_map(|p| p.result.outputs.iter().map(|o| self.artifact_path(o))).collect();
        sync_all(&self.root, &dirs).map_err(io(&self.root))?;
        for p in &pending {
            self.write_result(&p.key, &p.result)?;
        }
        self.journal.flush();
        Ok(())
    }

    /// Writes an action result and indexes it. Not synced: its artifacts are durable
    /// already, and a result a crash cuts short reads as absent.
    fn write_result(&self, key: &Key, result: &ActionResult) -> Result<(), CacheError> {
        let text = serde_json::to_vec_pretty(result).expect("serialisable");
        self.write_file(&self.action_path(key), &text, false)?;
        let pipeline = result.meta.get("pipeline").and_then(|p| p.as_str()).map(str::to_string);
        self.journal.add(key, &Indexed { outputs: result.outputs.clone(), pipeline });
        Ok(())
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        self.write_file(path, bytes, true)
    }

    /// Writes through a temporary file and a rename; `sync`: fsynced before and after.
    fn write_file(&self, path: &Path, bytes: &[u8], sync: bool) -> Result<(), CacheError> {
        let parent = path.parent().expect("file in a directory");
        fs::create_dir_all(parent).map_err(io(parent))?;
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!(
            ".{}.{}.{n}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
            std::process::id()
        ));
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        if sync {
            f.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, path).map_err(io(path))?;
        if sync {
            fsync_dir(parent);
        }
        Ok(())
    }

    /// Saves what a pipeline's run used (replacing its previous record).
    pub fn record_run(&self, pipeline_id: &str, record: &RunRecord) -> Result<(), CacheError> {
        let path = self.root.join("runs").join(format!("{pipeline_id}.json"));
        self.write_atomic(&path, &serde_json::to_vec_pretty(record).expect("serialisable"))
    }

    /// The previous run of a pipeline, if any.
    pub fn last_run(&self, pipeline_id: &str) -> Option<RunRecord> {
        let text = fs::read_to_string(self.root.join("runs").join(format!("{pipeline_id}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn all_artifacts(&self) -> Vec<ArtifactId> {
        let mut out = Vec::new();
        for shard in fs::read_dir(self.root.join("artifacts")).into_iter().flatten().flatten() {
            for e in fs::read_dir(shard.path()).into_iter().flatten().flatten() {
                if let Some(id) = e.file_name().to_str().and_then(|s| s.parse().ok()) {
                    out.push(id);
                }
            }
        }
        out.sort();
        out
    }

    fn all_actions(&self) -> Vec<(PathBuf, Option<ActionResult>)> {
        let mut out = Vec::new();
        for shard in fs::read_dir(self.root.join("actions")).into_iter().flatten().flatten() {
            for e in fs::read_dir(shard.path()).into_iter().flatten().flatten() {
                let r = fs::read_to_string(e.path()).ok().and_then(|t| serde_json::from_str(&t).ok());
                out.push((e.path(), r));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every stored artifact with its size and files.
    pub fn list(&self) -> Vec<Entry> {
        self.all_artifacts().into_iter().map(|id| self.entry(id)).collect()
    }

    fn entry(&self, id: ArtifactId) -> Entry {
        let p = self.artifact_path(&id);
        let mut bytes = 0;
        let mut files = Vec::new();
        for e in fs::read_dir(&p).into_iter().flatten().flatten() {
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            files.push(e.file_name().to_string_lossy().into_owned());
        }
        files.sort();
        Entry { id, bytes, files }
    }

    /// Finds an artifact by a unique prefix of its id.
    pub fn find(&self, prefix: &str) -> Result<Entry, CacheError> {
        let hits: Vec<ArtifactId> =
            self.all_artifacts().into_iter().filter(|id| id.to_string().starts_with(prefix)).collect();
        match hits.as_slice() {
            [] => Err(CacheError::NotFound(prefix.into())),
            [one] => Ok(self.entry(*one)),
            _ => Err(CacheError::Ambiguous(prefix.into())),
        }
    }

    /// Re-hashes every artifact; corrupt ones move to `quarantine/` and the action results
    /// that name them are dropped, so the next run recomputes them.
    pub fn verify(&self) -> Result<VerifyReport, CacheError> {
        let mut report = VerifyReport::default();
        let mut bad = BTreeSet::new();
        for id in self.all_artifacts() {
            report.checked += 1;
            let p = self.artifact_path(&id);
            let ok = hash_dir(&p).map(|h| h == id).unwrap_or(false);
            if !ok {
                let q = self.root.join("quarantine").join(format!("{id}.{}", std::process::id()));
                fs::rename(&p, &q).map_err(io(&p))?;
                report.quarantined.push(id);
                bad.insert(id);
            }
        }
        // Results naming a corrupt artifact, or one that is gone (deleted by hand).
        for (path, r) in self.all_actions() {
            let drop = match r {
                None => true,
                Some(r) => r.outputs.iter().any(|o| bad.contains(o) || !self.artifact_path(o).is_dir()),
            };
            if drop {
                fs::remove_file(&path).map_err(io(&path))?;
                report.dropped_actions += 1;
            }
        }
        self.journal.clear();
        Ok(report)
    }

    /// Pins an artifact so that GC keeps it.
    pub fn pin(&self, id: &ArtifactId, pinned: bool) -> Result<(), CacheError> {
        let p = self.root.join("pins").join(id.to_string());
        if pinned { fs::write(&p, b"").map_err(io(&p)) } else { fs::remove_file(&p).or(Ok(())) }
    }

    /// Removes artifacts that neither the latest run of any pipeline used nor a pin keeps,
    /// and the action results that point at removed artifacts. Returns what was (or, with
    /// `dry_run`, would be) removed, and the bytes freed.
    /// Removes what no pipeline's latest run used and nothing pins.
    pub fn gc(&self, dry_run: bool) -> Result<(Vec<ArtifactId>, u64), CacheError> {
        self.gc_keeping(dry_run, None)
    }

    /// Removes what nothing pins and `keep` lacks; without `keep`, what no pipeline's
    /// latest run used. (`keep` is e.g. what the last N runs of the run index used.)
    pub fn gc_keeping(
        &self,
        dry_run: bool,
        keep: Option<&BTreeSet<ArtifactId>>,
    ) -> Result<(Vec<ArtifactId>, u64), CacheError> {
        let mut keep: BTreeSet<ArtifactId> = keep.cloned().unwrap_or_default();
        let records = if keep.is_empty() { fs::read_dir(self.root.join("runs")).ok() } else { None };
        for e in records.into_iter().flatten().flatten() {
            if let Some(r) = fs::read_to_string(e.path()).ok().and_then(|t| serde_json::from_str::<RunRecord>(&t).ok())
            {
                keep.extend(r.steps.values().filter_map(|(_, _, a)| *a));
            }
        }
        for e in fs::read_dir(self.root.join("pins")).into_iter().flatten().flatten() {
            if let Some(id) = e.file_name().to_str().and_then(|s| s.parse().ok()) {
                keep.insert(id);
            }
        }
        let mut removed = Vec::new();
        let mut freed = 0;
        for id in self.all_artifacts() {
            if keep.contains(&id) {
                continue;
            }
            freed += self.entry(id).bytes;
            removed.push(id);
            if !dry_run {
                let p = self.artifact_path(&id);
                fs::remove_dir_all(&p).map_err(io(&p))?;
            }
        }
        if !dry_run {
            let gone: BTreeSet<ArtifactId> = removed.iter().copied().collect();
            for (path, r) in self.all_actions() {
                if r.is_none_or(|r| r.outputs.iter().any(|o| gone.contains(o))) {
                    let _ = fs::remove_file(&path);
                }
            }
            if !removed.is_empty() {
                self.journal.clear();
            }
            // Kept parses are rebuilt by the next run that needs them.
            let _ = fs::remove_dir_all(self.root.join(crate::PARSED));
            // Leftovers of killed runs.
            for e in fs::read_dir(self.root.join("tmp")).into_iter().flatten().flatten() {
                let _ = if e.path().is_dir() { fs::remove_dir_all(e.path()) } else { fs::remove_file(e.path()) };
            }
        }
        Ok((removed, freed))
    }

    /// Removes one artifact and the action results that produced it.
    pub fn remove(&self, id: &ArtifactId) -> Result<(), CacheError> {
        let p = self.artifact_path(id);
        fs::remove_dir_all(&p).map_err(io(&p))?;
        for (path, r) in self.all_actions() {
            if r.is_some_and(|r| r.outputs.contains(id)) {
                let _ = fs::remove_file(&path);
            }
        }
        self.journal.clear();
        Ok(())
    }
}

/// A small temporary-directory type that lives under the cache root (same filesystem, so
/// committing is a rename).
pub mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct TempDir {
        path: Option<PathBuf>,
    }

    impl TempDir {
        pub fn new_in(parent: &Path) -> Result<TempDir, super::CacheError> {
            for attempt in 0..1000u32 {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let p = parent.join(format!("out.{}.{nanos}.{attempt}", std::process::id()));
                match std::fs::create_dir(&p) {
                    Ok(()) => return Ok(TempDir { path: Some(p) }),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(super::CacheError::Io { path: p, source: e }),
                }
            }
            Err(super::CacheError::Io {
                path: parent.to_path_buf(),
                source: std::io::Error::other("cannot make a temporary directory"),
            })
        }

        pub fn path(&self) -> &Path {
            self.path.as_deref().expect("not yet taken")
        }

        /// Hands the directory over (it is no longer deleted on drop).
        pub fn into_path(mut self) -> PathBuf {
            self.path.take().expect("not yet taken")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if let Some(p) = &self.path {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records `r` as the result of `key`, as a run does.
    fn record(c: &Cache, key: &Key, r: &ActionResult) -> Result<(), CacheError> {
        c.commit_grouped(key, r.clone(), c.lock(key)?)?;
        c.flush_commits()
    }

    fn artifact(cache: &Cache, content: &[u8]) -> ArtifactId {
        let t = cache.tmp_dir().unwrap();
        fs::write(t.path().join("data"), content).unwrap();
        cache.commit_artifact(&t.into_path()).unwrap()
    }

    #[test]
    fn commit_lookup_and_dedupe() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let a = artifact(&c, b"hello");
        let b = artifact(&c, b"hello");
        assert_eq!(a, b);
        let key = Key::of(b"op v1 params");
        assert!(c.lookup(&key).is_none());
        let r = ActionResult { outputs: vec![a], meta: BTreeMap::new(), preimage: serde_json::json!({}) };
        record(&c, &key, &r).unwrap();
        assert_eq!(c.lookup(&key), Some(r));
        // An action whose output vanished is a miss, not a broken hit.
        fs::remove_dir_all(c.artifact_path(&a)).unwrap();
        assert!(c.lookup(&key).is_none());
    }

    #[test]
    fn verify_quarantines_corruption() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let a = artifact(&c, b"good bytes");
        let key = Key::of(b"k");
        record(&c, &key, &ActionResult { outputs: vec![a], meta: BTreeMap::new(), preimage: serde_json::json!({}) })
            .unwrap();
        fs::write(c.artifact_path(&a).join("data"), b"good bytez").unwrap();
        let r = c.verify().unwrap();
        assert_eq!(r.quarantined, vec![a]);
        assert_eq!(r.dropped_actions, 1);
        assert!(c.lookup(&key).is_none());
        assert_eq!(c.verify().unwrap().quarantined.len(), 0);
    }

    #[test]
    fn gc_keeps_runs_and_pins() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let (a, b, p) = (artifact(&c, b"a"), artifact(&c, b"b"), artifact(&c, b"p"));
        let mut rec = RunRecord::default();
        rec.steps.insert("s".into(), (Key::of(b"s"), serde_json::json!({}), Some(a)));
        c.record_run("pipe", &rec).unwrap();
        c.pin(&p, true).unwrap();
        let (dry, _) = c.gc(true).unwrap();
        assert_eq!(dry, vec![b]);
        assert!(c.artifact_path(&b).is_dir(), "dry run removes nothing");
        let (removed, freed) = c.gc(false).unwrap();
        assert_eq!(removed, vec![b]);
        assert_eq!(freed, 1);
        assert!(!c.artifact_path(&b).exists() && c.artifact_path(&a).is_dir() && c.artifact_path(&p).is_dir());
    }

    #[test]
    fn find_by_prefix() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let a = artifact(&c, b"x");
        assert_eq!(c.find(&a.to_string()[..8]).unwrap().id, a);
        assert!(matches!(c.find("zz"), Err(CacheError::NotFound(_))));
    }

    #[test]
    fn grouped_results_appear_after_the_sync_and_hold_their_lock_until_then() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let t = c.tmp_dir().unwrap();
        fs::write(t.path().join("data"), b"grouped").unwrap();
        let a = c.commit_artifact(&t.into_path()).unwrap();
        let key = Key::of(b"grouped action");
        let r = ActionResult { outputs: vec![a], meta: BTreeMap::new(), preimage: serde_json::json!({}) };
        c.commit_grouped(&key, r.clone(), c.lock(&key).unwrap()).unwrap();
        // Waiting for its group: not recorded, and the key still locked.
        assert!(c.lookup(&key).is_none());
        let held = File::open(d.path().join("locks").join(format!("{key}.lock"))).unwrap();
        assert!(held.try_lock().is_err());
        c.flush_commits().unwrap();
        assert_eq!(c.lookup(&key), Some(r));
        assert!(held.try_lock().is_ok());
        // Another handle on the cache finds it through the action index.
        assert_eq!(Cache::open(d.path()).unwrap().hit(&key).map(|h| h.outputs), Some(vec![a]));
    }

    #[test]
    fn an_artifact_cut_short_by_a_crash_is_replaced_when_computed_again() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let write = |content: &[u8]| {
            let t = c.tmp_dir().unwrap();
            fs::write(t.path().join("data"), content).unwrap();
            c.commit_artifact(&t.into_path()).unwrap()
        };
        let a = write(b"the full content");
        // What a power cut before the group's sync can leave: the name, not the bytes.
        fs::write(c.artifact_path(&a).join("data"), b"").unwrap();
        assert_eq!(write(b"the full content"), a);
        assert_eq!(fs::read(c.artifact_path(&a).join("data")).unwrap(), b"the full content");
        assert_eq!(fs::read_dir(d.path().join("quarantine")).unwrap().count(), 1);
    }

    #[test]
    fn removing_artifacts_forgets_their_indexed_results() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path()).unwrap();
        let a = artifact(&c, b"indexed");
        let key = Key::of(b"indexed action");
        let r = ActionResult { outputs: vec![a], meta: BTreeMap::new(), preimage: serde_json::json!({}) };
        record(&c, &key, &r).unwrap();
        c.flush_index();
        assert!(Cache::open(d.path()).unwrap().hit(&key).is_some());
        c.remove(&a).unwrap();
        assert!(Cache::open(d.path()).unwrap().hit(&key).is_none());
        // An artifact deleted by hand: `verify` drops the result that names it.
        let b = artifact(&c, b"deleted by hand");
        let key = Key::of(b"another action");
        record(&c, &key, &ActionResult { outputs: vec![b], meta: BTreeMap::new(), preimage: serde_json::json!({}) })
            .unwrap();
        c.flush_index();
        fs::remove_dir_all(c.artifact_path(&b)).unwrap();
        assert_eq!(c.verify().unwrap().dropped_actions, 1);
        assert!(Cache::open(d.path()).unwrap().hit(&key).is_none());
    }
}
