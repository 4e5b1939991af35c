//! The Slurm executor. The driver (`labrun run --executor slurm`) plans as usual; each
//! step the cache lacks becomes part of a Slurm job that runs `labrun slurm-worker` on a
//! compute node, which computes it with the same code, lock and atomic commit as a local
//! run, in the cache on the cluster's shared filesystem. The cache is the meeting point:
//! the driver learns the outcome from a small result file the worker writes beside it.
//!
//! Under `<cache>/slurm/`: `specs/KEY.DRIVER.json` (what to compute), `results/KEY.JOB.json`
//! (how it ended in that job), `progress/KEY` (the latest progress line), `jobs/KEY` (the job computing it, so
//! that a restarted driver adopts the job rather than submitting it again), `logs/JOB.log`
//! (the job's stdout and stderr) and `submitted.log` (one line per submitted job).
//!
//! Ready steps with the same resource request are grouped into one job while their
//! expected times (each op declares one, a call may override it) add up to at most
//! `batch_minutes`: a sweep of a thousand tiny steps becomes two jobs, not a thousand, and
//! long steps get a job each.

use crate::execute::{Action, Done, Event, Executor, RunOptions, RunReport, StepError, execute, schedule};
use crate::plan::Plan;
use lab_cache::{ArtifactId, Cache, Key};
use lab_ops::{ArgIn, Args, Blame, Progress, Registry, Resources, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How labrun uses a Slurm cluster: the `[slurm]` table of `labrun.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition` of every job.
    pub partition: Option<String>,
    /// `--account` of every job.
    pub account: Option<String>,
    /// `--time` of every job (e.g. `"02:00:00"`); by default three times the expected
    /// time of the job's steps plus ten minutes.
    pub time_limit: Option<String>,
    /// More `sbatch` options, e.g. `["--qos=short", "--constraint=a100"]`.
    pub sbatch_args: Vec<String>,
    /// Jobs in flight at once.
    pub max_jobs: usize,
    /// How many times a step whose job Slurm killed (time limit, preemption, node failure,
    /// memory, `scancel`) is submitted again.
    pub retries: usize,
    /// Ready steps with equal requests share a job while their expected times add up to at
    /// most this.
    pub batch_minutes: u64,
    /// The most steps in one job.
    pub max_batch: usize,
    /// Seconds between looks at the queue (at most).
    pub poll_seconds: f64,
    /// The `labrun` executable on the compute nodes (default: this one, which must then be
    /// on the shared filesystem).
    pub labrun: Option<PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            time_limit: None,
            sbatch_args: Vec::new(),
            max_jobs: 100,
            retries: 2,
            batch_minutes: 10,
            max_batch: 500,
            poll_seconds: 1.0,
            labrun: None,
        }
    }
}

/// What a worker computes: an action, with its arguments as values and artifact paths.
#[derive(Debug, Serialize, Deserialize)]
struct Spec {
    node: usize,
    step: String,
    op: String,
    version: u32,
    key: Key,
    preimage: serde_json::Value,
    forced: bool,
    pipeline: String,
    device: String,
    threads: usize,
    args: BTreeMap<String, SpecArg>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SpecArg {
    Value(Value),
    Artifact(PathBuf),
    Artifacts(Vec<PathBuf>),
}

/// How an action ended, as the worker reports it.
#[derive(Debug, Serialize, Deserialize)]
struct Outcome {
    ok: bool,
    id: Option<ArtifactId>,
    secs: f64,
    /// Another process computed it while the worker waited for the lock.
    by_other: bool,
    computed_by: Option<String>,
    error: Option<String>,
    blame: Option<String>,
    /// What kind of failure, when it failed.
    #[serde(default)]
    failure: Option<crate::execute::Failure>,
}

fn blame_name(b: Blame) -> &'static str {
    match b {
        Blame::User => "user",
        Blame::Environment => "environment",
        Blame::Internal => "internal",
    }
}

fn blame_of(s: Option<&str>) -> Blame {
    match s {
        Some("user") => Blame::User,
        Some("internal") => Blame::Internal,
        _ => Blame::Environment,
    }
}

/// The driver's directories in the cache.
struct Dirs {
    root: PathBuf,
}

impl Dirs {
    fn new(cache: &Cache) -> std::io::Result<Dirs> {
        let root = cache.root().join("slurm");
        for d in ["specs", "results", "progress", "jobs", "logs"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(Dirs { root })
    }
    /// A driver's spec of an action (`nonce` names the driver, so that two drivers never
    /// remove each other's).
    fn spec(&self, k: &Key, nonce: &str) -> PathBuf {
        self.root.join("specs").join(format!("{k}.{nonce}.json"))
    }
    /// The outcome of an action as computed by one job.
    fn result(&self, k: &Key, job: &str) -> PathBuf {
        self.root.join("results").join(format!("{k}.{job}.json"))
    }
    fn progress(&self, k: &Key) -> PathBuf {
        self.root.join("progress").join(k.to_string())
    }
    fn job(&self, k: &Key) -> PathBuf {
        self.root.join("jobs").join(k.to_string())
    }
    fn log(&self, job: u64) -> PathBuf {
        self.root.join("logs").join(format!("{job}.log"))
    }
    /// Forgets an action's files once the driver has the outcome of its job. A driver
    /// that adopted the job (`own` false) leaves them to the one that submitted it.
    fn clear(&self, k: &Key, nonce: &str, job: u64, own: bool) {
        let _ = std::fs::remove_file(self.spec(k, nonce));
        if !own {
            return;
        }
        for p in [self.result(k, &job.to_string()), self.progress(k)] {
            let _ = std::fs::remove_file(p);
        }
        // The job file, unless a newer job (another driver's) has replaced it.
        if std::fs::read_to_string(self.job(k)).is_ok_and(|t| t.trim() == job.to_string()) {
            let _ = std::fs::remove_file(self.job(k));
        }
    }
}

/// Writes `text` to `path` atomically (a reader sees all of it or nothing).
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// A job in flight and the actions it computes.
struct Job {
    actions: Vec<Action>,
}

/// Submits actions as Slurm jobs and reports how they end.
pub struct Driver<'a> {
    cfg: SlurmConfig,
    cache: &'a Cache,
    opts: &'a RunOptions<'a>,
    dirs: Result<Dirs, String>,
    exe: PathBuf,
    queue: VecDeque<Action>,
    inflight: BTreeMap<u64, Job>,
    done: VecDeque<(usize, Done)>,
    attempts: HashMap<usize, usize>,
    /// The jobs this driver submitted (the only ones Ctrl-C cancels). The others in flight
    /// were adopted from another driver: their results are not this run's work.
    own_jobs: std::collections::HashSet<u64>,
    progress_seen: HashMap<usize, std::time::SystemTime>,
    cancelled: bool,
    poll_failures: usize,
    wait: Duration,
    /// Names this driver's files.
    nonce: String,
}

/// Job states in which the job may still produce results.
const ACTIVE: &[&str] = &[
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "RESV_DEL_HOLD",
];

/// Pending reasons that never clear by themselves: the request exceeds what the cluster or
/// the account allows.
const NEVER: &[&str] = &[
    "PartitionTimeLimit",
    "PartitionNodeLimit",
    "PartitionConfig",
    "BadConstraints",
    "InvalidQOS",
    "InvalidAccount",
    "AccountNotAllowed",
    "QOSMaxWallDurationPerJobLimit",
    "QOSMaxCpuPerJobLimit",
    "QOSMaxMemoryPerJob",
    "QOSMaxGRESPerJob",
    "DependencyNeverSatisfied",
];

/// Runs every node of `plan` that the cache lacks as jobs on a Slurm cluster.
pub fn run(plan: &Plan, cache: &Cache, cfg: &SlurmConfig, opts: &RunOptions) -> RunReport {
    schedule(plan, cache, opts, &mut Driver::new(cfg.clone(), cache, opts))
}

/// `start` only queues: the scheduler starts every ready step before it waits, so the
/// driver sees them together and can put small ones into one job.
impl Executor for Driver<'_> {
    fn capacity(&self) -> usize {
        usize::MAX
    }

    fn start(&mut self, a: Action) {
        self.enqueue(a);
    }

    fn wait(&mut self) -> Option<(usize, Done)> {
        self.next_done()
    }

    fn halt(&mut self) {
        Driver::halt(self)
    }
}

impl<'a> Driver<'a> {
    pub fn new(cfg: SlurmConfig, cache: &'a Cache, opts: &'a RunOptions<'a>) -> Driver<'a> {
        let exe = cfg.labrun.clone().or_else(|| std::env::current_exe().ok()).unwrap_or_else(|| "labrun".into());
        let dirs = Dirs::new(cache).map_err(|e| format!("cannot prepare {}/slurm: {e}", cache.root().display()));
        let wait = Duration::from_millis(100);
        Driver {
            cfg,
            cache,
            opts,
            dirs,
            exe,
            queue: VecDeque::new(),
            inflight: BTreeMap::new(),
            done: VecDeque::new(),
            attempts: HashMap::new(),
            own_jobs: Default::default(),
            progress_seen: HashMap::new(),
            cancelled: false,
            poll_failures: 0,
            wait,
            nonce: format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
            ),
        }
    }

    /// Queues an action; it is submitted at the next [`Driver::next_done`].
    pub fn enqueue(&mut self, a: Action) {
        self.queue.push_back(a);
    }

    /// Submits what is queued, then waits until some action ends and returns it; `None`
    /// when nothing is queued or in flight.
    pub fn next_done(&mut self) -> Option<(usize, Done)> {
        loop {
            if let Some(d) = self.done.pop_front() {
                return Some(d);
            }
            if self.opts.cancel.load(Ordering::Relaxed) && !self.cancelled {
                self.cancel_all();
                continue;
            }
            if self.queue.is_empty() && self.inflight.is_empty() {
                return None;
            }
            if let Err(e) = &self.dirs {
                let e = e.clone();
                for a in self.queue.drain(..) {
                    self.done.push_back((a.node, Done::Err(StepError::cluster(Blame::Environment, e.clone()))));
                }
                continue;
            }
            self.submit_queued();
            if !self.done.is_empty() {
                continue;
            }
            self.sleep();
            self.poll();
        }
    }

    fn dirs(&self) -> &Dirs {
        self.dirs.as_ref().expect("checked before submitting")
    }

    /// Sleeps before the next look at the queue, waking for Ctrl-C; the wait grows from
    /// 0.1 s to `poll_seconds`.
    fn sleep(&mut self) {
        let until = Instant::now() + self.wait;
        while Instant::now() < until && !self.opts.cancel.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let max = Duration::from_secs_f64(self.cfg.poll_seconds.clamp(0.05, 60.0));
        self.wait = (self.wait.mul_f64(1.5)).min(max);
    }

    /// Adopts the live jobs a previous driver submitted for queued actions, then submits
    /// the rest in batches, up to `max_jobs` in flight.
    fn submit_queued(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        self.adopt();
        while !self.queue.is_empty() && self.inflight.len() < self.cfg.max_jobs.max(1) {
            let first = self.queue.pop_front().expect("not empty");
            let request = |r: &Resources| (r.cpus, r.mem_mb, r.gpus);
            let mut seconds = first.resources.seconds;
            let mut batch = vec![first];
            let mut i = 0;
            while i < self.queue.len() && batch.len() < self.cfg.max_batch.max(1) {
                let r = &self.queue[i].resources;
                if request(r) == request(&batch[0].resources)
                    && seconds.saturating_add(r.seconds) <= self.cfg.batch_minutes.saturating_mul(60)
                {
                    seconds += r.seconds;
                    batch.push(self.queue.remove(i).expect("in range"));
                } else {
                    i += 1;
                }
            }
            self.submit(batch, seconds);
        }
    }

    /// Queued actions whose job file names a job still in the queue join that job.
    fn adopt(&mut self) {
        let mut owners: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, a) in self.queue.iter().enumerate() {
            if let Some(id) = std::fs::read_to_string(self.dirs().job(&a.key)).ok().and_then(|t| t.trim().parse().ok())
            {
                owners.entry(id).or_default().push(i);
            }
        }
        if owners.is_empty() {
            return;
        }
        let ids: Vec<u64> = owners.keys().copied().collect();
        let Ok(states) = squeue(&ids) else { return };
        let mut take: Vec<(u64, usize)> = Vec::new();
        for (id, idx) in owners {
            if states.get(&id).is_some_and(|(s, _)| ACTIVE.contains(&s.as_str())) {
                take.extend(idx.into_iter().map(|i| (id, i)));
            }
        }
        take.sort_by_key(|&(_, i)| std::cmp::Reverse(i));
        for (id, i) in take {
            let a = self.queue.remove(i).expect("in range");
            self.inflight.entry(id).or_insert_with(|| Job { actions: Vec::new() }).actions.push(a);
        }
    }

    fn submit(&mut self, batch: Vec<Action>, seconds: u64) {
        let fail = |d: &mut Self, batch: Vec<Action>, msg: String| {
            for a in batch {
                d.done.push_back((a.node, Done::Err(StepError::cluster(Blame::Environment, msg.clone()))));
            }
        };
        let mut specs = Vec::new();
        for a in &batch {
            let spec = Spec {
                node: a.node,
                step: a.step.clone(),
                op: a.op.name(),
                version: a.op.version,
                key: a.key,
                preimage: a.preimage.clone(),
                forced: a.forced,
                pipeline: self.opts.pipeline.to_string(),
                device: self.opts.device.to_string(),
                threads: self.opts.threads,
                args: a
                    .args
                    .map
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            ArgIn::Value(v) => SpecArg::Value(v.clone()),
                            ArgIn::Artifact(p) => SpecArg::Artifact(p.clone()),
                            ArgIn::Artifacts(p) => SpecArg::Artifacts(p.clone()),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            };
            let path = self.dirs().spec(&a.key, &self.nonce);
            let text = serde_json::to_string(&spec).expect("serialisable");
            if let Err(e) = write_atomic(&path, &text) {
                return fail(self, batch, format!("cannot write {}: {e}", path.display()));
            }
            specs.push(path);
        }
        let r = batch[0].resources;
        let time = self
            .cfg
            .time_limit
            .clone()
            .unwrap_or_else(|| slurm_time(seconds.saturating_mul(3).div_ceil(60).saturating_add(10)));
        let name = match batch.len() {
            1 => format!("labrun:{}:{}", self.opts.pipeline, batch[0].step),
            n => format!("labrun:{}:{}+{}", self.opts.pipeline, batch[0].step, n - 1),
        };
        let mut cmd = format!("exec {} slurm-worker --cache {}", quote(&self.exe), quote(self.cache.root()));
        for s in &specs {
            cmd.push(' ');
            cmd.push_str(&quote(s));
        }
        let mut sbatch = Command::new("sbatch");
        sbatch
            .arg("--parsable")
            .arg(format!("--job-name={name}"))
            .arg(format!("--output={}", self.dirs().root.join("logs").join("%j.log").display()))
            .arg(format!("--cpus-per-task={}", r.cpus))
            .arg(format!("--mem={}M", r.mem_mb))
            .arg(format!("--time={time}"));
        if r.gpus > 0 {
            sbatch.arg(format!("--gres=gpu:{}", r.gpus));
        }
        if let Some(p) = &self.cfg.partition {
            sbatch.arg(format!("--partition={p}"));
        }
        if let Some(a) = &self.cfg.account {
            sbatch.arg(format!("--account={a}"));
        }
        sbatch.args(&self.cfg.sbatch_args).arg(format!("--wrap={cmd}"));
        let out = match sbatch.output() {
            Ok(o) => o,
            Err(e) => {
                return fail(
                    self,
                    batch,
                    format!(
                        "cannot run `sbatch`: {e}; is Slurm installed here? `labrun doctor` shows what labrun finds"
                    ),
                );
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let id = stdout.trim().split(';').next().and_then(|s| s.parse::<u64>().ok());
        let Some(id) = id.filter(|_| out.status.success()) else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return fail(self, batch, format!("`sbatch` refused the job: {err}"));
        };
        for a in &batch {
            let _ = write_atomic(&self.dirs().job(&a.key), &id.to_string());
        }
        let steps: Vec<&str> = batch.iter().map(|a| a.step.as_str()).collect();
        let line = format!(
            "{id}\t{}\t{}\t{}\n",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            self.opts.pipeline,
            steps.join(" ")
        );
        use std::io::Write;
        if let Ok(mut f) =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dirs().root.join("submitted.log"))
        {
            let _ = f.write_all(line.as_bytes());
        }
        self.wait = Duration::from_millis(100);
        self.own_jobs.insert(id);
        self.inflight.insert(id, Job { actions: batch });
    }

    /// Looks at the jobs in flight: streams progress, and collects the outcome of every
    /// action whose job has ended (resubmitting those Slurm killed).
    fn poll(&mut self) {
        if self.inflight.is_empty() {
            return;
        }
        let ids: Vec<u64> = self.inflight.keys().copied().collect();
        let states = match squeue(&ids) {
            Ok(s) => {
                self.poll_failures = 0;
                s
            }
            Err(e) => {
                self.poll_failures += 1;
                if self.poll_failures >= 30 {
                    let jobs = std::mem::take(&mut self.inflight);
                    for (_, job) in jobs {
                        for a in job.actions {
                            let msg = format!("cannot read the Slurm queue: {e}");
                            self.done.push_back((a.node, Done::Err(StepError::cluster(Blame::Environment, msg))));
                        }
                    }
                }
                return;
            }
        };
        for id in ids {
            let (state, reason) = states.get(&id).cloned().unwrap_or_else(|| ("GONE".into(), String::new()));
            if state == "PENDING" && NEVER.iter().any(|r| reason.starts_with(r)) && self.own_jobs.contains(&id) {
                // Slurm would keep it pending for ever: cancel it and say why.
                let _ = Command::new("scancel").arg(id.to_string()).output();
                let job = self.inflight.remove(&id).expect("in flight");
                for a in job.actions {
                    let msg = format!(
                        "Slurm will never start job {id}: it is pending for `{reason}`; change the step's `resources:` (or the partition in labrun.toml) to fit what the cluster allows"
                    );
                    if let Ok(d) = &self.dirs {
                        d.clear(&a.key, &self.nonce, id, true);
                    }
                    self.done.push_back((a.node, Done::Err(StepError::cluster(Blame::User, msg))));
                }
                continue;
            }
            if ACTIVE.contains(&state.as_str()) {
                if state == "RUNNING" {
                    self.stream_progress(id);
                }
                continue;
            }
            let job = self.inflight.remove(&id).expect("in flight");
            for a in job.actions {
                self.collect(id, &state, &reason, a);
            }
        }
    }

    fn stream_progress(&mut self, id: u64) {
        let Some(job) = self.inflight.get(&id) else { return };
        let mut events = Vec::new();
        for a in &job.actions {
            let path = self.dirs().progress(&a.key);
            let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else { continue };
            if self.progress_seen.get(&a.node) == Some(&modified) {
                continue;
            }
            if let Ok(p) = std::fs::read_to_string(&path).map_err(|_| ()).and_then(|t| {
                serde_json::from_str::<serde_json::Value>(&t).map_err(|_| ()).map(|v| Progress {
                    done: v["done"].as_u64().unwrap_or(0),
                    total: v["total"].as_u64().unwrap_or(0),
                    message: v["message"].as_str().unwrap_or("").to_string(),
                })
            }) {
                events.push((a.node, modified, p));
            }
        }
        for (node, modified, progress) in events {
            self.progress_seen.insert(node, modified);
            (self.opts.on_event)(&Event::Progress { node, progress });
        }
    }

    /// The outcome of an action whose job `id` ended in `state`.
    fn collect(&mut self, id: u64, state: &str, reason: &str, a: Action) {
        let dirs = Dirs { root: self.dirs().root.clone() };
        let adopted = !self.own_jobs.contains(&id);
        let outcome = std::fs::read_to_string(dirs.result(&a.key, &id.to_string()))
            .ok()
            .and_then(|t| serde_json::from_str::<Outcome>(&t).ok());
        if let Some(o) = outcome {
            dirs.clear(&a.key, &self.nonce, id, !adopted);
            let by_other = if adopted { Some(None) } else { o.by_other.then_some(o.computed_by) };
            let done = match (o.ok, o.id) {
                (true, Some(id)) => Done::Ok { id, secs: o.secs, by_other },
                _ => Done::Err(StepError::new(
                    o.failure.unwrap_or(crate::execute::Failure::Op),
                    blame_of(o.blame.as_deref()),
                    o.error.unwrap_or_else(|| "the step failed without a message".into()),
                )),
            };
            self.done.push_back((a.node, done));
            return;
        }
        // No result from the job: it died before the step ended or could say so, or (for an
        // adopted job) its own driver already collected it. The cache says whether the
        // step was computed, and by which job.
        if !a.forced
            && let Some(r) = self.cache.lookup(&a.key)
            && let Some(&out) = r.outputs.first()
        {
            let secs = r.meta.get("seconds").and_then(|s| s.as_f64()).unwrap_or(0.0);
            let ours = !adopted && r.meta.get("slurm_job").and_then(|j| j.as_str()) == Some(&id.to_string());
            dirs.clear(&a.key, &self.nonce, id, !adopted);
            let by_other = (!ours).then(|| crate::execute::computed_by(&r));
            self.done.push_back((a.node, Done::Ok { id: out, secs, by_other }));
            return;
        }
        let how = match (state, reason) {
            ("GONE", _) => "left the queue without a result".to_string(),
            (s, "" | "None") => format!("ended {s}"),
            (s, r) => format!("ended {s} ({r})"),
        };
        let killed = !matches!(state, "COMPLETED" | "FAILED");
        let tries = {
            let t = self.attempts.entry(a.node).or_insert(0);
            *t += 1;
            *t
        };
        if killed && tries <= self.cfg.retries {
            let reason = format!(
                "Slurm job {id} {how}; submitting it again (attempt {} of {})",
                tries + 1,
                self.cfg.retries + 1
            );
            (self.opts.on_event)(&Event::Retry { node: a.node, reason });
            dirs.clear(&a.key, &self.nonce, id, !adopted);
            self.queue.push_back(a);
            return;
        }
        let tail = log_tail(&dirs.log(id), 12);
        let msg = if killed {
            format!(
                "Slurm job {id} {how}, and no retries are left ({tries} attempt{}; `retries` in labrun.toml allows more); the job's log ends:\n{tail}",
                if tries == 1 { "" } else { "s" }
            )
        } else {
            format!("Slurm job {id} {how} without a result from labrun; the job's log ends:\n{tail}")
        };
        dirs.clear(&a.key, &self.nonce, id, !adopted);
        self.done.push_back((a.node, Done::Err(StepError::cluster(Blame::Environment, msg))));
    }

    /// The run stopped: what is queued is never submitted.
    pub fn halt(&mut self) {
        for a in self.queue.drain(..) {
            self.done.push_back((a.node, Done::NotStarted));
        }
    }

    /// Ctrl-C: cancels every job this driver submitted (adopted ones are left to their
    /// driver) and stops waiting for them; what is queued never starts.
    fn cancel_all(&mut self) {
        self.cancelled = true;
        // Jobs adopted from another driver may be that driver's to finish: left running.
        let ids: Vec<String> =
            self.inflight.keys().filter(|i| self.own_jobs.contains(i)).map(|i| i.to_string()).collect();
        if !ids.is_empty() {
            let _ = Command::new("scancel").args(&ids).output();
        }
        let jobs = std::mem::take(&mut self.inflight);
        for (id, job) in jobs {
            for a in job.actions {
                if let Ok(d) = &self.dirs {
                    d.clear(&a.key, &self.nonce, id, self.own_jobs.contains(&id));
                }
                self.done.push_back((a.node, Done::Err(StepError::cancelled())));
            }
        }
        for a in self.queue.drain(..) {
            self.done.push_back((a.node, Done::Err(StepError::cancelled())));
        }
    }
}

/// `HH:MM:SS` (or `D-HH:MM:SS`) for Slurm's `--time`.
fn slurm_time(minutes: u64) -> String {
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    if d > 0 { format!("{d}-{h:02}:{m:02}:00") } else { format!("{h:02}:{m:02}:00") }
}

/// A path or word quoted for `sh`.
fn quote(p: impl AsRef<std::ffi::OsStr>) -> String {
    let s = p.as_ref().to_string_lossy();
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let all: Vec<&str> = t.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            if tail.is_empty() {
                "  (empty)".into()
            } else {
                tail.iter().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
            }
        }
        Err(e) => format!("  (no log at {}: {e})", path.display()),
    }
}

/// State and reason of each job that `squeue` still knows.
fn squeue(ids: &[u64]) -> Result<HashMap<u64, (String, String)>, String> {
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%i|%T|%r", "-j"])
        .arg(list.join(","))
        .output()
        .map_err(|e| format!("cannot run `squeue`: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // One id that Slurm has forgotten is an error, not an empty answer.
        if stderr.contains("Invalid job id") {
            return Ok(HashMap::new());
        }
        return Err(format!("`squeue` failed: {}", stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split('|');
            let id = it.next()?.trim().parse().ok()?;
            Some((id, (it.next()?.trim().to_string(), it.next().unwrap_or("").trim().to_string())))
        })
        .collect())
}

/// `labrun slurm-worker`: computes the actions of `specs` in this process (on a compute
/// node), writing each one's outcome beside the spec. Returns the exit code.
pub fn worker(cache: &Cache, registry: &Registry, specs: &[PathBuf]) -> crate::Exit {
    let dirs = match Dirs::new(cache) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("labrun slurm-worker: cannot use the cache at {}: {e}", cache.root().display());
            return crate::Exit::Environment;
        }
    };
    let cancel = AtomicBool::new(false);
    let mut code = crate::Exit::Success;
    for path in specs {
        let spec: Spec = match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("labrun slurm-worker: cannot read {}: {e}", path.display());
                code = crate::Exit::Environment;
                continue;
            }
        };
        let started = Instant::now();
        let outcome = run_spec(&spec, cache, registry, &dirs, &cancel);
        match &outcome {
            o if o.ok => {
                println!("labrun: {} ({}) done in {:.2}s", spec.step, spec.op, started.elapsed().as_secs_f64())
            }
            o => {
                code = crate::Exit::User;
                println!("labrun: {} ({}) failed: {}", spec.step, spec.op, o.error.as_deref().unwrap_or(""));
            }
        }
        let text = serde_json::to_string(&outcome).expect("serialisable");
        let job = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "local".into());
        if let Err(e) = write_atomic(&dirs.result(&spec.key, &job), &text) {
            eprintln!("labrun slurm-worker: cannot write the result of {}: {e}", spec.step);
            code = crate::Exit::Environment;
        }
    }
    code
}

fn run_spec(spec: &Spec, cache: &Cache, registry: &Registry, dirs: &Dirs, cancel: &AtomicBool) -> Outcome {
    let failed = |e: StepError| Outcome {
        ok: false,
        id: None,
        secs: 0.0,
        by_other: false,
        computed_by: None,
        blame: Some(blame_name(e.blame).into()),
        failure: Some(e.failure),
        error: Some(e.message),
    };
    // The worker's own troubles: the nodes' labrun or device does not fit the driver's.
    let fail = |error: String, blame: Blame| failed(StepError::cluster(blame, error));
    let Some((kind, method)) = spec.op.split_once('.') else {
        return fail(format!("`{}` is not an op name", spec.op), Blame::Internal);
    };
    let Some((sig, _)) = registry.get(kind, method) else {
        return fail(
            format!("this labrun has no op `{}`; use the same labrun on the nodes as on the driver", spec.op),
            Blame::Environment,
        );
    };
    if sig.version != spec.version {
        return fail(
            format!(
                "`{}` is version {} here but {} on the driver; use the same labrun on the nodes as on the driver",
                spec.op, sig.version, spec.version
            ),
            Blame::Environment,
        );
    }
    let device = match spec.device.parse() {
        Ok(d) => d,
        Err(e) => return fail(format!("device `{}`: {e}", spec.device), Blame::Environment),
    };
    let mut args = Args::default();
    for (k, v) in &spec.args {
        let v = match v {
            SpecArg::Value(v) => ArgIn::Value(v.clone()),
            SpecArg::Artifact(p) => ArgIn::Artifact(p.clone()),
            SpecArg::Artifacts(p) => ArgIn::Artifacts(p.clone()),
        };
        args.map.insert(k.clone(), v);
    }
    let action = Action {
        node: spec.node,
        step: spec.step.clone(),
        op: std::sync::Arc::clone(sig),
        key: spec.key,
        preimage: spec.preimage.clone(),
        args,
        forced: spec.forced,
        resources: sig.resources,
    };
    let progress_path = dirs.progress(&spec.key);
    let last = std::sync::Mutex::new(Instant::now() - Duration::from_secs(1));
    let on_event = |e: &Event| {
        if let Event::Progress { progress, .. } = e {
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= Duration::from_millis(500) || progress.done == progress.total {
                *last = Instant::now();
                let text = json!({"done": progress.done, "total": progress.total, "message": progress.message});
                let _ = write_atomic(&progress_path, &text.to_string());
            }
        }
    };
    let opts = RunOptions {
        jobs: 1,
        threads: spec.threads.max(1),
        device,
        keep_going: false,
        force: Default::default(),
        cancel,
        on_event: &on_event,
        pipeline: &spec.pipeline,
    };
    let done = execute(&action, cache, registry, &opts);
    // The driver reads the outcome as final: the result is on disk before it is written.
    let done = match (done, cache.flush_commits()) {
        (Done::Ok { .. }, Err(e)) => Done::Err(StepError::store("cannot record the result", &e)),
        (done, _) => done,
    };
    match done {
        Done::Ok { id, secs, by_other } => Outcome {
            ok: true,
            id: Some(id),
            secs,
            by_other: by_other.is_some(),
            computed_by: by_other.flatten(),
            error: None,
            blame: None,
            failure: None,
        },
        Done::Err(e) => failed(e),
        Done::NotStarted => {
            failed(StepError::new(crate::execute::Failure::Op, Blame::Internal, "the step was not started"))
        }
    }
}

/// For `labrun doctor`: whether `sbatch` answers, and the partitions `sinfo` lists.
pub fn describe_cluster() -> Result<(String, Vec<String>), String> {
    let v = output_within(Command::new("sbatch").arg("--version"), DOCTOR_WAIT).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "`sbatch` is not installed here; install Slurm's client tools".to_string(),
        std::io::ErrorKind::TimedOut => {
            format!("`sbatch --version` {e}; is SLURM_CONF set to the cluster's configuration?")
        }
        _ => format!("`sbatch` cannot run ({e})"),
    })?;
    if !v.status.success() {
        return Err(cluster_trouble(&String::from_utf8_lossy(&v.stderr)));
    }
    let version = String::from_utf8_lossy(&v.stdout).trim().to_string();
    let p = output_within(Command::new("sinfo").args(["-h", "-o", "%P|%a|%D|%c|%m|%l|%G"]), DOCTOR_WAIT)
        .map_err(|e| format!("{version}, but `sinfo` {e}"))?;
    if !p.status.success() {
        return Err(format!("{version}, but {}", cluster_trouble(&String::from_utf8_lossy(&p.stderr))));
    }
    let parts = String::from_utf8_lossy(&p.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 7).then(|| {
                format!(
                    "{} ({}; {} nodes, {} CPUs and {} MB each, time limit {}, GPUs {})",
                    f[0],
                    f[1],
                    f[2],
                    f[3],
                    f[4],
                    f[5],
                    if f[6] == "(null)" { "none" } else { f[6] }
                )
            })
        })
        .collect();
    Ok((version, parts))
}

/// How long `labrun doctor` waits for a Slurm command (a missing `slurm.conf` makes them
/// retry for a minute).
const DOCTOR_WAIT: Duration = Duration::from_secs(10);

/// A command's output, or an error if it cannot start or has not finished within `limit`
/// (then it is killed). Its output is read as it comes, so a long one never blocks it.
fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("did not answer within {} s", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

/// What a Slurm client's error output means, in one sentence with what to do: its fatal
/// line (else its last error), without the program's prefix, and a hint for the usual
/// causes.
pub fn cluster_trouble(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let pick = lines.iter().rev().find(|l| l.contains("fatal:")).or_else(|| lines.last());
    let Some(line) = pick else { return "the cluster does not answer, and its client says nothing of why".into() };
    // `sinfo: fatal: Could not …` → `Could not …`
    let said = line.rsplit_once("fatal: ").or_else(|| line.rsplit_once("error: ")).map_or(*line, |(_, s)| s).trim();
    let lower = stderr.to_lowercase();
    let hint = if lower.contains("configuration source")
        || lower.contains("slurm.conf")
        || lower.contains("configuration file")
    {
        "no usable slurm.conf here: set SLURM_CONF to the cluster's configuration, or for a local test cluster run `eval \"$(scripts/slurm-cluster start)\"`"
    } else if lower.contains("unable to contact slurm controller") || lower.contains("connection refused") {
        "the controller (slurmctld) does not answer: is it running, and is this machine allowed to reach it?"
    } else if lower.contains("munge") {
        "authentication (munge) fails: is munged running with the cluster's key?"
    } else {
        "run the command by hand to see all it says"
    };
    format!("the cluster does not answer ({said}); {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_errors_are_summarised_with_what_to_do() {
        let no_conf = "sinfo: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\nsinfo: error: fetch_config: DNS SRV lookup failed\nsinfo: error: _establish_config_source: failed to fetch config\nsinfo: fatal: Could not establish a configuration source\n";
        let s = cluster_trouble(no_conf);
        assert!(s.starts_with("the cluster does not answer (Could not establish a configuration source); "), "{s}");
        assert!(s.contains("SLURM_CONF"), "{s}");
        assert!(!s.contains("res_nsearch"), "only the fatal line: {s}");
        let down = "sinfo: error: Unable to contact slurm controller (connect failure)\n";
        let s = cluster_trouble(down);
        assert!(s.contains("Unable to contact slurm controller (connect failure)") && s.contains("slurmctld"), "{s}");
        assert_eq!(cluster_trouble("  \n"), "the cluster does not answer, and its client says nothing of why");
    }

    #[test]
    fn time_limits_and_quoting_are_what_slurm_and_sh_expect() {
        assert_eq!(slurm_time(8), "00:08:00");
        assert_eq!(slurm_time(95), "01:35:00");
        assert_eq!(slurm_time(1500), "1-01:00:00");
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn the_config_rejects_unknown_keys() {
        let ok: SlurmConfig = serde_json::from_value(json!({"partition": "gpu", "max_jobs": 4})).unwrap();
        assert_eq!((ok.partition.as_deref(), ok.max_jobs, ok.retries), (Some("gpu"), 4, 2));
        assert!(serde_json::from_value::<SlurmConfig>(json!({"partitoin": "gpu"})).is_err());
    }
}
