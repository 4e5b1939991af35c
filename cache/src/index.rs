//! The run index: every run of a pipeline — when and where it ran, with which parameters,
//! what each step did (executed, reused from the cache, failed, skipped) and how long it
//! took, and how the run ended — in SQLite (`runs.sqlite` in the cache). WAL mode and a
//! busy timeout let concurrent runs write to it safely. The index is a record, never a
//! dependency: a missing or corrupt one is rebuilt from the cache's run records (`runs/`),
//! and a failure to write it is reported, not fatal.

use crate::{ArtifactId, RunRecord};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub const FILE: &str = "runs.sqlite";

/// A run as the index lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub id: i64,
    pub started_unix: f64,
    pub seconds: f64,
    pub pipeline: String,
    pub file: String,
    pub host: String,
    pub executor: String,
    /// The process's exit code; `None` for runs rebuilt from the cache's records.
    pub exit_code: Option<i64>,
    /// The params the run used (JSON), and the `--set` overrides.
    pub params: String,
    pub overrides: String,
    pub steps: i64,
    pub executed: i64,
    pub cached: i64,
    pub failed: i64,
    pub skipped: i64,
}

/// What one step of a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub step: String,
    pub op: String,
    pub key: Option<String>,
    pub artifact: Option<ArtifactId>,
    /// `executed`, `cached`, `failed` or `skipped`.
    pub status: String,
    pub seconds: Option<f64>,
    pub error: Option<String>,
}

pub struct RunIndex {
    conn: Connection,
}

/// Why the index would not open.
enum Open {
    /// Not a database, or a damaged one: moved aside and rebuilt.
    Corrupt(String),
    /// Another process holds the lock it needs right now (two runs creating the index at
    /// once): tried again.
    Busy(String),
    /// Anything else (no space, permissions): reported, the file left alone.
    Other(String),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  started_unix REAL NOT NULL,
  seconds REAL NOT NULL,
  pipeline TEXT NOT NULL,
  file TEXT NOT NULL,
  host TEXT NOT NULL,
  executor TEXT NOT NULL,
  exit_code INTEGER,
  params TEXT NOT NULL,
  overrides TEXT NOT NULL,
  steps INTEGER NOT NULL,
  executed INTEGER NOT NULL,
  cached INTEGER NOT NULL,
  failed INTEGER NOT NULL,
  skipped INTEGER NOT NULL,
  -- The run whose rows in `steps` describe this run's steps: itself, or an earlier run of
  -- the same pipeline whose steps did exactly the same (a no-op rerun adds no rows).
  steps_of INTEGER NOT NULL,
  steps_digest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_digest ON runs(pipeline, file, steps_digest);
CREATE TABLE IF NOT EXISTS steps (
  run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  step TEXT NOT NULL,
  op TEXT NOT NULL,
  key TEXT,
  artifact TEXT,
  status TEXT NOT NULL,
  seconds REAL,
  error TEXT
);
CREATE INDEX IF NOT EXISTS steps_run ON steps(run);
";

fn sql(e: rusqlite::Error) -> String {
    e.to_string()
}

impl RunIndex {
    /// Opens the index of the cache at `root`, creating it, or rebuilding it from the run
    /// records when it is missing or unreadable. The note says what was rebuilt, if anything.
    pub fn open(root: &Path) -> Result<(RunIndex, Option<String>), String> {
        let path = root.join(FILE);
        let existed = path.exists();
        match Self::connect_waiting(&path) {
            Ok(ix) if existed => Ok((ix, None)),
            Ok(ix) => {
                let n = ix.rebuild(root)?;
                Ok((ix, (n > 0).then(|| format!("the run index was missing; rebuilt {n} runs from the cache"))))
            }
            // Locked too long, a full disk: the index is fine, it just cannot be used now.
            Err(Open::Busy(e) | Open::Other(e)) => Err(e),
            Err(Open::Corrupt(e)) => {
                // Keep the broken file for inspection; start again from the cache's records.
                let aside = aside_name(&path);
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    if from.exists() {
                        let _ = std::fs::rename(&from, format!("{}{suffix}", aside.display()));
                    }
                }
                let ix = Self::connect_waiting(&path).map_err(|e| match e {
                    Open::Corrupt(e) | Open::Busy(e) | Open::Other(e) => e,
                })?;
                let n = ix.rebuild(root)?;
                Ok((
                    ix,
                    Some(format!(
                        "the run index was unreadable ({e}); moved it to {} and rebuilt {n} runs from the cache",
                        aside.display()
                    )),
                ))
            }
        }
    }

    /// [`RunIndex::connect`], tried again while another process holds a lock it needs:
    /// switching a new file to WAL mode and creating the tables can report "locked" at once,
    /// without waiting for the busy timeout.
    fn connect_waiting(path: &Path) -> Result<RunIndex, Open> {
        let started = std::time::Instant::now();
        loop {
            match Self::connect(path) {
                Err(Open::Busy(_)) if started.elapsed() < std::time::Duration::from_secs(30) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn connect(path: &Path) -> Result<RunIndex, Open> {
        let classify = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                Open::Corrupt(e.to_string())
            }
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => Open::Busy(e.to_string()),
            _ => Open::Other(e.to_string()),
        };
        let conn = Connection::open(path).map_err(classify)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(classify)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(classify)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(classify)?;
        // No integrity scan here: it would read the whole index on every run. A damaged file
        // fails the statements above (not a database, corrupt) and is rebuilt.
        conn.execute_batch(SCHEMA).map_err(classify)?;
        Ok(RunIndex { conn })
    }

    /// One run per pipeline record of the cache (each pipeline's latest run), with what its
    /// steps used; times and exit codes are unknown.
    fn rebuild(&self, root: &Path) -> Result<usize, String> {
        let mut n = 0;
        let mut records: Vec<(std::time::SystemTime, RunRecord)> = std::fs::read_dir(root.join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let t = e.metadata().and_then(|m| m.modified()).ok()?;
                let r: RunRecord = serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
                Some((t, r))
            })
            .collect();
        records.sort_by_key(|(t, _)| *t);
        for (t, r) in records {
            let unix = t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            let steps: Vec<StepRow> = r
                .steps
                .iter()
                .map(|(name, (key, pre, art))| StepRow {
                    step: name.clone(),
                    op: pre.get("op").and_then(|o| o.as_str()).unwrap_or("").to_string(),
                    key: Some(key.to_string()),
                    artifact: *art,
                    status: "recorded".into(),
                    seconds: None,
                    error: None,
                })
                .collect();
            let run = RunSummary {
                id: 0,
                started_unix: unix,
                seconds: 0.0,
                pipeline: std::path::Path::new(&r.pipeline)
                    .file_stem()
                    .map_or(r.pipeline.clone(), |s| s.to_string_lossy().into_owned()),
                file: r.pipeline.clone(),
                host: String::new(),
                executor: "rebuilt from the cache".into(),
                exit_code: None,
                params: "{}".into(),
                overrides: "[]".into(),
                steps: steps.len() as i64,
                executed: 0,
                cached: 0,
                failed: 0,
                skipped: 0,
            };
            self.record(&run, &steps)?;
            n += 1;
        }
        Ok(n)
    }

    /// Adds a run and its steps (one transaction); returns the run's id. Steps that did
    /// exactly what an earlier run of the same pipeline's did are stored once.
    pub fn record(&self, run: &RunSummary, steps: &[StepRow]) -> Result<i64, String> {
        let mut h = blake3::Hasher::new();
        for s in steps {
            for field in [Some(&s.step), Some(&s.op), s.key.as_ref(), Some(&s.status), s.error.as_ref()] {
                h.update(field.map_or("\u{0}", |f| f.as_str()).as_bytes());
                h.update(b"\x1f");
            }
            h.update(s.artifact.as_ref().map_or(&[0; 32], |a| &a.0));
            h.update(&s.seconds.map_or(u64::MAX, f64::to_bits).to_le_bytes());
        }
        self.record_lazy(run, &h.finalize().to_hex(), || steps.to_vec())
    }

    /// [`RunIndex::record`] for a caller that can digest its steps without building their
    /// rows: `steps` is called only when no earlier run of the pipeline has the same
    /// `digest` (a no-op rerun builds no rows).
    pub fn record_lazy(
        &self,
        run: &RunSummary,
        digest: &str,
        steps: impl FnOnce() -> Vec<StepRow>,
    ) -> Result<i64, String> {
        // Take the write lock first: a deferred transaction that reads, then writes, fails at
        // once (without waiting) when another run committed in between.
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
        let result = self.insert(run, steps, digest);
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        self.conn.execute_batch(end).map_err(sql)?;
        result
    }

    fn insert(&self, run: &RunSummary, steps: impl FnOnce() -> Vec<StepRow>, digest: &str) -> Result<i64, String> {
        let tx = &self.conn;
        let same: Option<i64> = tx
            .query_row(
                "SELECT steps_of FROM runs WHERE pipeline = ?1 AND file = ?2 AND steps_digest = ?3 ORDER BY id DESC LIMIT 1",
                params![run.pipeline, run.file, digest],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        tx.execute(
            "INSERT INTO runs (started_unix, seconds, pipeline, file, host, executor, exit_code, params, overrides, steps, executed, cached, failed, skipped, steps_of, steps_digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                run.started_unix,
                run.seconds,
                run.pipeline,
                run.file,
                run.host,
                run.executor,
                run.exit_code,
                run.params,
                run.overrides,
                run.steps,
                run.executed,
                run.cached,
                run.failed,
                run.skipped,
                same.unwrap_or(0),
                digest
            ],
        )
        .map_err(sql)?;
        let id = tx.last_insert_rowid();
        if same.is_some() {
            return Ok(id);
        }
        tx.execute("UPDATE runs SET steps_of = ?1 WHERE id = ?1", [id]).map_err(sql)?;
        let steps = steps();
        {
            let mut st = tx
                .prepare("INSERT INTO steps (run, step, op, key, artifact, status, seconds, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .map_err(sql)?;
            for s in &steps {
                st.execute(params![
                    id,
                    s.step,
                    s.op,
                    s.key,
                    s.artifact.map(|a| a.to_string()),
                    s.status,
                    s.seconds,
                    s.error
                ])
                .map_err(sql)?;
            }
        }
        Ok(id)
    }

    fn summary(r: &rusqlite::Row) -> rusqlite::Result<RunSummary> {
        Ok(RunSummary {
            id: r.get(0)?,
            started_unix: r.get(1)?,
            seconds: r.get(2)?,
            pipeline: r.get(3)?,
            file: r.get(4)?,
            host: r.get(5)?,
            executor: r.get(6)?,
            exit_code: r.get(7)?,
            params: r.get(8)?,
            overrides: r.get(9)?,
            steps: r.get(10)?,
            executed: r.get(11)?,
            cached: r.get(12)?,
            failed: r.get(13)?,
            skipped: r.get(14)?,
        })
    }

    const COLUMNS: &'static str = "id, started_unix, seconds, pipeline, file, host, executor, exit_code, params, overrides, steps, executed, cached, failed, skipped";

    /// The latest `n` runs, newest first.
    pub fn recent(&self, n: usize) -> Result<Vec<RunSummary>, String> {
        let mut st =
            self.conn.prepare(&format!("SELECT {} FROM runs ORDER BY id DESC LIMIT ?1", Self::COLUMNS)).map_err(sql)?;
        let rows = st.query_map([n as i64], Self::summary).map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    /// One run and its steps.
    pub fn run(&self, id: i64) -> Result<Option<(RunSummary, Vec<StepRow>)>, String> {
        let run = self
            .conn
            .query_row(&format!("SELECT {} FROM runs WHERE id = ?1", Self::COLUMNS), [id], Self::summary)
            .optional()
            .map_err(sql)?;
        let Some(run) = run else { return Ok(None) };
        let mut st = self
            .conn
            .prepare(
                "SELECT step, op, key, artifact, status, seconds, error FROM steps WHERE run = (SELECT steps_of FROM runs WHERE id = ?1) ORDER BY rowid",
            )
            .map_err(sql)?;
        let steps = st
            .query_map([id], |r| {
                let art: Option<String> = r.get(3)?;
                Ok(StepRow {
                    step: r.get(0)?,
                    op: r.get(1)?,
                    key: r.get(2)?,
                    artifact: art.and_then(|a| a.parse().ok()),
                    status: r.get(4)?,
                    seconds: r.get(5)?,
                    error: r.get(6)?,
                })
            })
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        Ok(Some((run, steps)))
    }

    /// The artifacts the latest `n` runs used (produced or reused).
    pub fn used_by_last(&self, n: usize) -> Result<BTreeSet<ArtifactId>, String> {
        let mut st = self
            .conn
            .prepare("SELECT artifact FROM steps WHERE artifact IS NOT NULL AND run IN (SELECT steps_of FROM runs ORDER BY id DESC LIMIT ?1)")
            .map_err(sql)?;
        let rows = st.query_map([n as i64], |r| r.get::<_, String>(0)).map_err(sql)?;
        Ok(rows.filter_map(|a| a.ok()?.parse().ok()).collect())
    }
}

fn aside_name(path: &Path) -> PathBuf {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    PathBuf::from(format!("{}.corrupt-{t}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pipeline: &str, exit: i64) -> RunSummary {
        RunSummary {
            id: 0,
            started_unix: 1.0,
            seconds: 2.0,
            pipeline: pipeline.into(),
            file: format!("{pipeline}.lab"),
            host: "h".into(),
            executor: "local".into(),
            exit_code: Some(exit),
            params: "{}".into(),
            overrides: "[]".into(),
            steps: 1,
            executed: 1,
            cached: 0,
            failed: 0,
            skipped: 0,
        }
    }

    fn step(a: u8) -> StepRow {
        StepRow {
            step: "x".into(),
            op: "data.digits".into(),
            key: None,
            artifact: Some(ArtifactId([a; 32])),
            status: "executed".into(),
            seconds: Some(0.5),
            error: None,
        }
    }

    #[test]
    fn runs_are_recorded_listed_and_kept_by_recency() {
        let dir = tempfile::tempdir().unwrap();
        let (ix, note) = RunIndex::open(dir.path()).unwrap();
        assert_eq!(note, None);
        let a = ix.record(&run("a", 0), &[step(1)]).unwrap();
        let b = ix.record(&run("b", 1), &[step(2)]).unwrap();
        let recent = ix.recent(10).unwrap();
        assert_eq!(recent.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b, a]);
        let (r, steps) = ix.run(a).unwrap().unwrap();
        assert_eq!((r.pipeline.as_str(), r.exit_code, steps), ("a", Some(0), vec![step(1)]));
        assert_eq!(ix.used_by_last(1).unwrap(), [ArtifactId([2; 32])].into_iter().collect());
        assert_eq!(ix.used_by_last(2).unwrap().len(), 2);
        assert!(ix.run(999).unwrap().is_none());
        // The same steps again: a new run, sharing the earlier one's rows.
        let c = ix.record(&run("a", 0), &[step(1)]).unwrap();
        let rows: i64 = ix.conn.query_row("SELECT COUNT(*) FROM steps", [], |r| r.get(0)).unwrap();
        assert_eq!((rows, ix.run(c).unwrap().unwrap().1), (2, vec![step(1)]));
        assert_eq!(ix.used_by_last(1).unwrap(), [ArtifactId([1; 32])].into_iter().collect());
    }

    #[test]
    fn a_corrupt_index_is_moved_aside_and_rebuilt_from_the_run_records() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("runs")).unwrap();
        let mut rec = RunRecord { pipeline: "/p/exp.lab".into(), ..Default::default() };
        rec.steps.insert(
            "teacher".into(),
            (crate::Key([7; 32]), serde_json::json!({"op": "finetune.supervised"}), Some(ArtifactId([9; 32]))),
        );
        std::fs::write(dir.path().join("runs/exp-1.json"), serde_json::to_vec(&rec).unwrap()).unwrap();
        std::fs::write(dir.path().join(FILE), b"this is not a database, it is garbage").unwrap();
        let (ix, note) = RunIndex::open(dir.path()).unwrap();
        let note = note.unwrap();
        assert!(note.contains("unreadable") && note.contains("rebuilt 1 runs"), "{note}");
        let runs = ix.recent(5).unwrap();
        assert_eq!((runs.len(), runs[0].pipeline.as_str(), runs[0].exit_code), (1, "exp", None));
        let (_, steps) = ix.run(runs[0].id).unwrap().unwrap();
        assert_eq!((steps[0].op.as_str(), steps[0].artifact), ("finetune.supervised", Some(ArtifactId([9; 32]))));
        assert!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains("corrupt"))
        );
        // Deleted: rebuilt the same way, and said so.
        drop(ix);
        for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(FILE) {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        let (ix, note) = RunIndex::open(dir.path()).unwrap();
        assert!(note.unwrap().contains("missing"));
        assert_eq!(ix.recent(5).unwrap().len(), 1);
    }
}
