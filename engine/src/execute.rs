//! Running a plan: action keys from input artifact ids, cache lookups, and a parallel
//! scheduler on rayon. A failure starts nothing new (unless `keep_going`), lets running
//! steps finish, and is never cached.

use crate::plan::{ArgVal, Node, NodeKey, Plan};
use lab_cache::{ActionResult, ArtifactId, Cache, Key};
pub use lab_ops::Args;
use lab_ops::{ArgIn, Blame, OpError, Progress, Registry, RunCtx};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What happens during a run, for progress displays and `--json`.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run starts with this many steps.
    Start {
        total: usize,
    },
    /// A step's result came from the cache.
    Cached {
        node: usize,
    },
    Started {
        node: usize,
    },
    Progress {
        node: usize,
        progress: Progress,
    },
    /// A step finished; `by_other` when another process computed it meanwhile.
    Finished {
        node: usize,
        secs: f64,
        by_other: bool,
    },
    Failed {
        node: usize,
        error: StepError,
    },
    /// Not run because `because` failed (or the run stopped).
    Skipped {
        node: usize,
        because: Option<usize>,
    },
    /// A cluster job of the step ended without a result (cancelled, timed out, preempted,
    /// its node failed) and the step was submitted again.
    Retry {
        node: usize,
        reason: String,
    },
}

pub struct RunOptions<'a> {
    /// Steps run at once.
    pub jobs: usize,
    /// ONNX Runtime threads per step.
    pub threads: usize,
    pub device: lab_ops::Device,
    pub keep_going: bool,
    /// Nodes recomputed even when cached.
    pub force: BTreeSet<usize>,
    pub cancel: &'a AtomicBool,
    pub on_event: &'a (dyn Fn(&Event) + Sync),
    /// The pipeline's name, recorded with each result (not part of any key).
    pub pipeline: &'a str,
}

/// Where the steps of a run are computed: threads of this process ([`run_local`]) or jobs
/// on a cluster (`slurm::Driver`). The scheduler starts steps and waits for them through
/// this, and knows nothing else of where they run.
pub trait Executor {
    /// Steps computed at once.
    fn capacity(&self) -> usize;
    /// Starts (or queues) a step.
    fn start(&mut self, a: Action);
    /// The next step to end; `None` when nothing runs.
    fn wait(&mut self) -> Option<(usize, Done)>;
    /// Drops what has not started yet: the run stops.
    fn halt(&mut self) {}
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Each node's output, when it has one.
    pub outputs: Vec<Option<ArtifactId>>,
    pub keys: Vec<Option<Key>>,
    pub executed: Vec<usize>,
    pub cached: Vec<usize>,
    /// For cached nodes: the pipeline that computed the result, as recorded with it.
    pub computed_by: Vec<Option<String>>,
    pub failed: Vec<(usize, StepError)>,
    pub skipped: Vec<usize>,
    pub cancelled: bool,
    /// Why some results of the run could not be recorded in the cache (their steps run
    /// again next time), if some could not.
    pub not_recorded: Option<String>,
}

/// How long a finished step's result may wait to be committed with others.
const GROUP_LATENCY: std::time::Duration = std::time::Duration::from_millis(200);

/// The canonical key preimage of a node whose inputs are known, and its readable form.
pub fn preimage(plan: &Plan, node: &Node, outputs: &[Option<ArtifactId>]) -> Option<(Vec<u8>, serde_json::Value)> {
    let (bytes, shown) = preimage_parts(plan, node, outputs, true)?;
    Some((bytes, shown.expect("asked for")))
}

/// The canonical key preimage alone: what a cache lookup needs (the readable form is
/// built only for steps that run, or for records that change).
pub fn key_bytes(plan: &Plan, node: &Node, outputs: &[Option<ArtifactId>]) -> Option<Vec<u8>> {
    preimage_parts(plan, node, outputs, false).map(|(b, _)| b)
}

fn preimage_parts(
    plan: &Plan,
    node: &Node,
    outputs: &[Option<ArtifactId>],
    readable: bool,
) -> Option<(Vec<u8>, Option<serde_json::Value>)> {
    let mut bytes = Vec::with_capacity(256);
    NodeKey::write(&node.op, &node.args, &mut bytes, &mut |n, out| {
        out.extend_from_slice(&outputs[n]?.0);
        Some(())
    })?;
    let shown = readable.then(|| {
        let mut params = serde_json::Map::new();
        let mut inputs = serde_json::Map::new();
        for (k, v) in node.args.iter() {
            if let ArgVal::Value(v) = v {
                params.insert(k.to_string(), json!(v.to_string()));
                continue;
            }
            let mut ids = Vec::new();
            collect_ids(v, outputs, &mut ids).expect("the key covers every input");
            let mut shown: Vec<serde_json::Value> =
                ids.iter().map(|(n, id)| json!({"step": plan.nodes[*n].name, "artifact": id.to_string()})).collect();
            inputs.insert(k.to_string(), if matches!(v, ArgVal::Node(_)) { shown.remove(0) } else { json!(shown) });
        }
        json!({"op": node.op.name(), "version": node.op.version, "params": params, "inputs": inputs})
    });
    Some((bytes, shown))
}

fn collect_ids(a: &ArgVal, outputs: &[Option<ArtifactId>], out: &mut Vec<(usize, ArtifactId)>) -> Option<()> {
    match a {
        ArgVal::Value(_) => {}
        ArgVal::Node(n) => out.push((*n, outputs[*n]?)),
        ArgVal::List(items) => {
            for i in items {
                collect_ids(i, outputs, out)?;
            }
        }
    }
    Some(())
}

fn to_args(node: &Node, cache: &Cache, outputs: &[Option<ArtifactId>]) -> Args {
    let mut a = Args::default();
    for (k, v) in node.args.iter() {
        let arg = match v {
            ArgVal::Value(v) => ArgIn::Value(v.clone()),
            ArgVal::Node(n) => ArgIn::Artifact(cache.artifact_path(&outputs[*n].expect("input computed"))),
            // Nested lists of artifacts arrive flattened, row-major.
            ArgVal::List(_) => {
                let mut ids = Vec::new();
                collect_ids(v, outputs, &mut ids).expect("inputs computed");
                ArgIn::Artifacts(ids.iter().map(|(_, id)| cache.artifact_path(id)).collect())
            }
        };
        a.map.insert(k.to_string(), arg);
    }
    a
}

/// The cache's view of a plan, per node.
pub struct Status {
    /// `Some(true)` cached, `Some(false)` would run, `None` unknown (an input would run
    /// first, so the key is not known yet).
    pub cached: Vec<Option<bool>>,
    /// The key and its readable preimage, when the inputs are known.
    pub keys: Vec<Option<(Key, serde_json::Value)>>,
    /// The action result of each cached node.
    pub results: Vec<Option<ActionResult>>,
}

/// Cache status of every node, without running anything.
pub fn status(plan: &Plan, cache: &Cache) -> Status {
    let n = plan.nodes.len();
    let mut outputs = vec![None; n];
    let mut st = Status { cached: vec![None; n], keys: vec![None; n], results: vec![None; n] };
    for &i in &plan.order {
        let Some((bytes, shown)) = preimage(plan, &plan.nodes[i], &outputs) else { continue };
        let key = Key::of(&bytes);
        st.keys[i] = Some((key, shown));
        match cache.lookup(&key) {
            Some(r) => {
                st.cached[i] = Some(true);
                outputs[i] = r.outputs.first().copied();
                st.results[i] = Some(r);
            }
            None => st.cached[i] = Some(false),
        }
    }
    st
}

/// The pipeline an action result records as having computed it.
pub fn computed_by(r: &ActionResult) -> Option<String> {
    r.meta.get("pipeline").and_then(|p| p.as_str()).map(str::to_string)
}

/// What kind of failure ended a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The op returned an error: its arguments, its data, a numerical failure, a library.
    Op,
    /// The op panicked: a bug in labrun.
    Panic,
    /// The run was stopped before the step ended (Ctrl-C).
    Cancelled,
    /// An input artifact is missing from the cache (deleted behind labrun's back).
    MissingInput,
    /// The cache could not take the result.
    Store,
    /// The disk is full.
    DiskFull,
    /// A cluster job ended without a result, or could not be submitted or watched.
    Cluster,
}

/// Why a step failed: the kind of failure, whose fault it is, what happened in words, and
/// the op's own error when an op failed in this process (a Slurm worker's crosses as words).
#[derive(Debug, Clone)]
pub struct StepError {
    pub failure: Failure,
    pub blame: Blame,
    pub message: String,
    pub source: Option<std::sync::Arc<OpError>>,
}

/// Equal failures: the same kind, blame and words (the source is not compared).
impl PartialEq for StepError {
    fn eq(&self, other: &Self) -> bool {
        (self.failure, self.blame, &self.message) == (other.failure, other.blame, &other.message)
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Whether an I/O error means the disk is full.
fn disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

impl StepError {
    pub fn new(failure: Failure, blame: Blame, message: impl Into<String>) -> StepError {
        StepError { failure, blame, message: message.into(), source: None }
    }

    pub fn cancelled() -> StepError {
        StepError::new(Failure::Cancelled, Blame::User, "cancelled")
    }

    /// An op's own error, with the op's blame; the error is kept as the source.
    pub fn op(e: OpError) -> StepError {
        let message = e.to_string();
        let err = match &e {
            OpError::Cancelled => return StepError::cancelled(),
            OpError::Io(io) if disk_full(io) => StepError::new(Failure::DiskFull, Blame::Environment, message),
            // Libraries (ONNX Runtime) report a full disk in words only.
            _ if message.contains("No space left on device") => {
                StepError::new(Failure::DiskFull, Blame::Environment, message)
            }
            _ => StepError::new(Failure::Op, e.blame(), message),
        };
        StepError { source: Some(std::sync::Arc::new(e)), ..err }
    }

    /// The cache could not take the result (`what`: what failed).
    pub fn store(what: &str, e: &lab_cache::CacheError) -> StepError {
        let full = matches!(e, lab_cache::CacheError::Io { source, .. } if disk_full(source));
        let failure = if full { Failure::DiskFull } else { Failure::Store };
        StepError::new(failure, Blame::Environment, format!("{what}: {e}"))
    }

    pub fn cluster(blame: Blame, message: impl Into<String>) -> StepError {
        StepError::new(Failure::Cluster, blame, message)
    }
}

/// How one action ended.
#[derive(Debug, Clone)]
pub enum Done {
    /// `by_other`: the pipeline that computed it while this run waited for the lock.
    Ok {
        id: ArtifactId,
        secs: f64,
        by_other: Option<Option<String>>,
    },
    Err(StepError),
    /// Never started: the run stopped (a failure without `--keep-going`) while it waited
    /// for a slot.
    NotStarted,
}

/// One step to compute: what an executor needs to run it here or elsewhere.
#[derive(Debug, Clone)]
pub struct Action {
    pub node: usize,
    pub step: String,
    pub op: std::sync::Arc<lab_ops::Signature>,
    pub key: Key,
    pub preimage: serde_json::Value,
    pub args: Args,
    pub forced: bool,
    pub resources: lab_ops::Resources,
}

/// Runs every node of `plan` that the cache lacks on `opts.jobs` threads of this process.
pub fn run_local(plan: &Plan, cache: &Cache, registry: &Registry, opts: &RunOptions) -> RunReport {
    let jobs = opts.jobs.max(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build().expect("thread pool");
    pool.in_place_scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Done)>();
        let mut threads = Threads { scope, tx, rx, jobs, cache, registry, opts, not_recorded: None };
        let mut report = schedule(plan, cache, opts, &mut threads);
        if let Err(e) = cache.flush_commits() {
            threads.not_recorded = Some(e.to_string());
        }
        report.not_recorded = threads.not_recorded;
        report
    })
}

/// The local executor: each step a task of a rayon scope.
struct Threads<'s, 'a> {
    scope: &'s rayon::Scope<'a>,
    tx: std::sync::mpsc::Sender<(usize, Done)>,
    rx: std::sync::mpsc::Receiver<(usize, Done)>,
    jobs: usize,
    cache: &'a Cache,
    registry: &'a Registry,
    opts: &'a RunOptions<'a>,
    /// Why a group commit failed, if one did.
    not_recorded: Option<String>,
}

impl Executor for Threads<'_, '_> {
    fn capacity(&self) -> usize {
        self.jobs
    }

    fn start(&mut self, a: Action) {
        let (tx, cache, registry, opts) = (self.tx.clone(), self.cache, self.registry, self.opts);
        self.scope.spawn(move |_| {
            let done = execute(&a, cache, registry, opts);
            let _ = tx.send((a.node, done));
        });
    }

    /// Results wait for a group commit at most `GROUP_LATENCY` while no step ends.
    fn wait(&mut self) -> Option<(usize, Done)> {
        loop {
            match self.rx.recv_timeout(GROUP_LATENCY) {
                Ok(done) => return Some(done),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.cache.flush_commits() {
                        self.not_recorded = Some(e.to_string());
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

/// The scheduler shared by every executor: keys from input artifact ids, cache lookups,
/// the executor's `start` for what must be computed (at most its `capacity` at once),
/// `wait` for the next action to end, `halt` to drop what it has not started yet. A failure
/// skips what depends on it and, unless `keep_going`, starts nothing new.
pub(crate) fn schedule(plan: &Plan, cache: &Cache, opts: &RunOptions, exec: &mut dyn Executor) -> RunReport {
    let capacity = exec.capacity();
    let n = plan.nodes.len();
    let mut report =
        RunReport { outputs: vec![None; n], keys: vec![None; n], computed_by: vec![None; n], ..Default::default() };
    (opts.on_event)(&Event::Start { total: n });
    let dependents = Dependents::new(plan);
    let remaining: &mut Vec<usize> = &mut plan.nodes.iter().map(|node| node.deps.len()).collect();
    let mut ready = Ready::new(plan);
    for &i in &plan.order {
        if remaining[i] == 0 {
            ready.push(i);
        }
    }
    let mut blocked: BTreeSet<usize> = BTreeSet::new();
    let mut stop = false;
    let mut running = 0usize;
    loop {
        if opts.cancel.load(Ordering::Relaxed) {
            stop = true;
            report.cancelled = true;
        }
        while !stop && running < capacity {
            let Some(i) = ready.pop() else { break };
            let node = &plan.nodes[i];
            let key = Key::of(&key_bytes(plan, node, &report.outputs).expect("inputs are done"));
            report.keys[i] = Some(key);
            if !opts.force.contains(&i)
                && let Some(r) = cache.hit(&key)
            {
                report.outputs[i] = r.outputs.first().copied();
                report.computed_by[i] = r.pipeline;
                report.cached.push(i);
                (opts.on_event)(&Event::Cached { node: i });
                release(i, &dependents, remaining, &mut ready);
                continue;
            }
            running += 1;
            (opts.on_event)(&Event::Started { node: i });
            let (_, shown) = preimage(plan, node, &report.outputs).expect("inputs are done");
            exec.start(Action {
                node: i,
                step: node.name.clone(),
                op: std::sync::Arc::clone(&node.op),
                key,
                preimage: shown,
                args: to_args(node, cache, &report.outputs),
                forced: opts.force.contains(&i),
                resources: node.resources,
            });
        }
        if running == 0 {
            break;
        }
        let Some((i, done)) = exec.wait() else { break };
        running -= 1;
        match done {
            Done::Ok { id, secs, by_other } => {
                report.outputs[i] = Some(id);
                match &by_other {
                    Some(by) => {
                        report.cached.push(i);
                        report.computed_by[i] = by.clone();
                    }
                    None => report.executed.push(i),
                }
                (opts.on_event)(&Event::Finished { node: i, secs, by_other: by_other.is_some() });
                release(i, &dependents, remaining, &mut ready);
            }
            Done::Err(error) => {
                if error.failure == Failure::Cancelled {
                    report.cancelled = true;
                }
                (opts.on_event)(&Event::Failed { node: i, error: error.clone() });
                report.failed.push((i, error));
                // Everything downstream of a failure is skipped.
                let mut stack = dependents.of(i).to_vec();
                while let Some(d) = stack.pop() {
                    if blocked.insert(d) {
                        report.skipped.push(d);
                        (opts.on_event)(&Event::Skipped { node: d, because: Some(i) });
                        stack.extend(dependents.of(d).iter().copied());
                    }
                }
                ready.drop_if(|r| blocked.contains(&r));
                if !opts.keep_going {
                    stop = true;
                    // What an executor holds back for a free slot never starts.
                    exec.halt();
                }
            }
            Done::NotStarted => {
                report.skipped.push(i);
                (opts.on_event)(&Event::Skipped { node: i, because: None });
            }
        }
    }
    // What never started because the run stopped.
    let skipped: BTreeSet<usize> = report.skipped.iter().copied().collect();
    for &i in &plan.order {
        if report.outputs[i].is_none()
            && !blocked.contains(&i)
            && !skipped.contains(&i)
            && !report.failed.iter().any(|(f, _)| *f == i)
        {
            report.skipped.push(i);
            (opts.on_event)(&Event::Skipped { node: i, because: None });
        }
    }
    report
}

/// This machine's name, read once per process.
fn host() -> Option<&'static str> {
    static HOST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOST.get_or_init(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string())).as_deref()
}

/// Who reads each node, all in one list (a node's readers are a slice of it).
struct Dependents {
    start: Vec<usize>,
    list: Vec<usize>,
}

impl Dependents {
    fn new(plan: &Plan) -> Dependents {
        let n = plan.nodes.len();
        let mut start = vec![0; n + 1];
        for node in &plan.nodes {
            for &d in &node.deps {
                start[d + 1] += 1;
            }
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut list = vec![0; start[n]];
        for node in &plan.nodes {
            for &d in &node.deps {
                list[fill[d]] = node.id;
                fill[d] += 1;
            }
        }
        Dependents { start, list }
    }

    fn of(&self, i: usize) -> &[usize] {
        &self.list[self.start[i]..self.start[i + 1]]
    }
}

fn release(i: usize, dependents: &Dependents, remaining: &mut [usize], ready: &mut Ready) {
    for &d in dependents.of(i) {
        remaining[d] -= 1;
        if remaining[d] == 0 {
            ready.push(d);
        }
    }
}

/// The steps whose inputs are done, taken in plan order so that runs read like the file.
struct Ready<'a> {
    order: &'a [usize],
    /// Each node's position in `order`.
    rank: Vec<usize>,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<usize>>,
}

impl<'a> Ready<'a> {
    fn new(plan: &'a Plan) -> Ready<'a> {
        let mut rank = vec![0; plan.nodes.len()];
        for (r, &i) in plan.order.iter().enumerate() {
            rank[i] = r;
        }
        Ready { order: &plan.order, rank, heap: Default::default() }
    }

    fn push(&mut self, node: usize) {
        self.heap.push(std::cmp::Reverse(self.rank[node]));
    }

    fn pop(&mut self) -> Option<usize> {
        self.heap.pop().map(|std::cmp::Reverse(r)| self.order[r])
    }

    fn drop_if(&mut self, f: impl Fn(usize) -> bool) {
        let order = self.order;
        self.heap.retain(|std::cmp::Reverse(r)| !f(order[*r]));
    }
}

/// Computes one action in this process: takes the key's lock, looks again (another process
/// may have computed it meanwhile), runs the op into a temporary directory, and commits the
/// artifact, then the action result.
pub fn execute(a: &Action, cache: &Cache, registry: &Registry, opts: &RunOptions) -> Done {
    let (key, forced) = (a.key, a.forced);
    let started = Instant::now();
    let lock = match cache.lock(&key) {
        Ok(l) => l,
        Err(e) => return Done::Err(StepError::store("cannot lock the step's cache entry", &e)),
    };
    // Another process may have computed it while we waited for the lock.
    if !forced
        && let Some(r) = cache.lookup(&key)
        && let Some(&id) = r.outputs.first()
    {
        return Done::Ok { id, secs: started.elapsed().as_secs_f64(), by_other: Some(computed_by(&r)) };
    }
    // The action index is trusted for cached steps; an input deleted behind labrun's back
    // is caught here, before the op reads it.
    let missing = a.args.map.values().find_map(|v| match v {
        ArgIn::Artifact(p) => (!p.is_dir()).then_some(p),
        ArgIn::Artifacts(ps) => ps.iter().find(|p| !p.is_dir()),
        ArgIn::Value(_) => None,
    });
    if let Some(p) = missing {
        return Done::Err(StepError::new(
            Failure::MissingInput,
            Blame::Environment,
            format!(
                "an input artifact is missing from the cache ({}); run `labrun cache verify` to forget results whose artifacts are gone, then run again",
                p.display()
            ),
        ));
    }
    let Some((sig, op)) = registry.get(a.op.kind, a.op.method) else {
        return Done::Err(StepError::new(
            Failure::Panic,
            Blame::Internal,
            format!("op `{}` is not registered", a.op.name()),
        ));
    };
    let tmp = match cache.tmp_dir() {
        Ok(t) => t,
        Err(e) => return Done::Err(StepError::store("cannot make a temporary folder", &e)),
    };
    let progress = |p: Progress| (opts.on_event)(&Event::Progress { node: a.node, progress: p });
    let ctx = RunCtx {
        out: tmp.path(),
        threads: opts.threads,
        device: opts.device,
        progress: &progress,
        cancel: opts.cancel,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op.run_args(sig, &ctx, &a.args)));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Done::Err(StepError::op(e)),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Done::Err(StepError::new(
                Failure::Panic,
                Blame::Internal,
                format!("internal error in `{}`: {msg}", a.op.name()),
            ));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let id = match cache.commit_artifact(&tmp.into_path()) {
        Ok(id) => id,
        Err(e) => return Done::Err(StepError::store("cannot store the result", &e)),
    };
    let mut meta = BTreeMap::new();
    meta.insert("seconds".into(), json!(secs));
    meta.insert("labrun".into(), json!(env!("CARGO_PKG_VERSION")));
    meta.insert("device".into(), json!(opts.device.to_string()));
    meta.insert("pid".into(), json!(std::process::id()));
    meta.insert("pipeline".into(), json!(opts.pipeline));
    meta.insert("step".into(), json!(a.step));
    if let Ok(job) = std::env::var("SLURM_JOB_ID") {
        meta.insert("slurm_job".into(), json!(job));
    }
    if let Some(h) = host() {
        meta.insert("host".into(), json!(h));
    }
    if let Some(v) = lab_ops::runtime_version() {
        meta.insert("onnxruntime".into(), json!(v));
    }
    meta.insert(
        "finished_unix".into(),
        json!(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
    );
    let result = ActionResult { outputs: vec![id], meta, preimage: a.preimage.clone() };
    // Committed with others in one filesystem sync; a step that took a while is committed
    // (with whatever waits) at once, so a killed run never loses it.
    let committed = cache
        .commit_grouped(&key, result, lock)
        .and_then(|()| if secs >= GROUP_LATENCY.as_secs_f64() { cache.flush_commits() } else { Ok(()) });
    if let Err(e) = committed {
        return Done::Err(StepError::store("cannot record the result", &e));
    }
    Done::Ok { id, secs, by_other: None }
}
