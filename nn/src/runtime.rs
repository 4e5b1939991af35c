//! ONNX Runtime: finding the shared library, installing it when missing, and creating
//! sessions on the CPU or CUDA execution provider.
//!
//! Search order for `libonnxruntime.so*`: `ORT_DYLIB_PATH`; labrun's data directory
//! (`$LABRUN_HOME`, else `$XDG_DATA_HOME/labrun`, else `~/.local/share/labrun`); an
//! `onnxruntime` package importable by `python3`. When none is found, labrun installs the
//! official `onnxruntime` wheel with pip into its data directory (or the wheel file named
//! by `LABRUN_ORT_WHEEL`, for machines that cannot download), and announces what it
//! fetches, where it puts it and how big it is through [`set_announcer`].

use crate::{Device, NnError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The wheel version labrun installs when it finds no ONNX Runtime.
pub const PINNED_VERSION: &str = "1.31.1";

/// What was loaded, and from where.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    pub library: PathBuf,
    /// e.g. `1.31.1`, read from the library's file name.
    pub version: String,
    /// `ORT_DYLIB_PATH`, `labrun data dir` or `python onnxruntime`.
    pub source: &'static str,
    /// Whether the CUDA execution provider can run here.
    pub cuda: bool,
}

static RUNTIME: OnceLock<Result<(RuntimeInfo, ort::environment::Environment), String>> = OnceLock::new();

type Announcer = Box<dyn Fn(&str) + Send + Sync>;
static ANNOUNCER: std::sync::RwLock<Option<Announcer>> = std::sync::RwLock::new(None);

/// Where announcements of slow, visible work (an install) go; by default standard error,
/// as `labrun: MESSAGE`. A program with a progress display routes them through it.
pub fn set_announcer(f: impl Fn(&str) + Send + Sync + 'static) {
    *ANNOUNCER.write().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
}

fn announce(message: &str) {
    match &*ANNOUNCER.read().unwrap_or_else(|p| p.into_inner()) {
        Some(f) => f(message),
        None => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "labrun: {message}");
        }
    }
}

/// labrun's own data directory.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LABRUN_HOME") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("labrun");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/labrun")
}

/// The runtime, if this process has already loaded it (never loads or installs).
pub fn loaded() -> Option<&'static RuntimeInfo> {
    match RUNTIME.get() {
        Some(Ok((info, _))) => Some(info),
        _ => None,
    }
}

/// Loads ONNX Runtime once per process. An install, if one is needed, is announced (see
/// [`set_announcer`]).
pub fn init() -> Result<&'static RuntimeInfo, NnError> {
    environment().map(|(info, _)| info)
}

fn environment() -> Result<(&'static RuntimeInfo, &'static ort::environment::Environment), NnError> {
    let r = RUNTIME.get_or_init(|| load().map_err(|e| e.to_string()));
    match r {
        Ok((info, env)) => Ok((info, env)),
        Err(e) => Err(NnError::RuntimeMissing(e.clone())),
    }
}

fn load() -> Result<(RuntimeInfo, ort::environment::Environment), NnError> {
    let (library, source) = match find_library() {
        Some(found) => found,
        None => {
            install()?;
            find_in(&data_dir().join(format!("onnxruntime-{PINNED_VERSION}")))
                .map(|p| (p, "labrun data dir"))
                .ok_or_else(|| {
                    NnError::RuntimeMissing(
                        "pip finished but no libonnxruntime.so was found in the installed wheel".into(),
                    )
                })?
        }
    };
    let version = library
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("libonnxruntime.so."))
        .unwrap_or("unknown")
        .to_string();
    let env = ort::init_from(&library)
        .map_err(|e| NnError::RuntimeMissing(format!("cannot load {}: {e}", library.display())))?
        .with_name("labrun")
        .with_telemetry(false)
        // ORT's own warnings are noise to a researcher; its errors come back as results.
        .with_logger(std::sync::Arc::new(|_, _, _, _, _| {}));
    let env = env.build().map_err(|e| NnError::RuntimeMissing(format!("cannot start ONNX Runtime: {e}")))?;
    let cuda = <ort::ep::CUDA as ort::ep::ExecutionProvider>::is_available().unwrap_or(false);
    Ok((RuntimeInfo { library, version, source, cuda }, env))
}

fn find_library() -> Option<(PathBuf, &'static str)> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some((p, "ORT_DYLIB_PATH"));
        }
    }
    if let Ok(entries) = std::fs::read_dir(data_dir()) {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for d in dirs.iter().rev() {
            if let Some(lib) = find_in(d) {
                return Some((lib, "labrun data dir"));
            }
        }
    }
    let out = Command::new("python3")
        .args(["-c", "import importlib.util as u, os; s = u.find_spec('onnxruntime'); print(os.path.dirname(s.origin) if s and s.origin else '')"])
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if dir.is_empty() {
        return None;
    }
    find_in(Path::new(&dir).parent()?).map(|p| (p, "python onnxruntime"))
}

/// `DIR/onnxruntime/capi/libonnxruntime.so.X.Y.Z`
fn find_in(dir: &Path) -> Option<PathBuf> {
    let capi = dir.join("onnxruntime").join("capi");
    let mut libs: Vec<PathBuf> = std::fs::read_dir(capi)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so.")))
        .collect();
    libs.sort();
    libs.pop()
}

/// Installs the pinned wheel into the data directory, holding a lock so that two labrun
/// processes do not install at once. Each stage is announced: what, where, how big.
fn install() -> Result<(), NnError> {
    let root = data_dir();
    std::fs::create_dir_all(&root)?;
    let lock = std::fs::File::create(root.join("install.lock"))?;
    lock.lock()?;
    let target = root.join(format!("onnxruntime-{PINNED_VERSION}"));
    if find_in(&target).is_some() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let partial = root.join(format!(".onnxruntime-{PINNED_VERSION}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let help = "install it yourself (`pip install onnxruntime`), set ORT_DYLIB_PATH to its libonnxruntime.so, or set LABRUN_ORT_WHEEL to a downloaded onnxruntime wheel";
    let pip = |args: &[&std::ffi::OsStr], what: &str| -> Result<(), NnError> {
        let out = Command::new("python3")
            .args(["-m", "pip"])
            .args(args)
            .args(["--quiet", "--disable-pip-version-check", "--no-deps"])
            .output()
            .map_err(|e| NnError::RuntimeMissing(format!("cannot run `python3 -m pip` to {what}: {e}; {help}")))?;
        if !out.status.success() {
            return Err(NnError::RuntimeMissing(format!(
                "`pip` could not {what}: {}; {help}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    };
    let wheel = match std::env::var_os("LABRUN_ORT_WHEEL") {
        Some(w) => {
            let w = PathBuf::from(w);
            if !w.is_file() {
                return Err(NnError::RuntimeMissing(format!(
                    "LABRUN_ORT_WHEEL names {}, which is not a file; point it at an onnxruntime wheel (`pip download onnxruntime=={PINNED_VERSION}` makes one)",
                    w.display()
                )));
            }
            announce(&format!(
                "ONNX Runtime not found; installing it from {} ({}) into {}",
                w.display(),
                megabytes(file_size(&w)),
                target.display()
            ));
            w
        }
        None => {
            announce(&format!(
                "ONNX Runtime not found; downloading the onnxruntime=={PINNED_VERSION} wheel with pip (24 MB on Linux x86-64) to install into {}",
                target.display()
            ));
            let downloads = partial.join("wheel");
            pip(
                &[
                    "download".as_ref(),
                    "--only-binary=:all:".as_ref(),
                    "--dest".as_ref(),
                    downloads.as_os_str(),
                    format!("onnxruntime=={PINNED_VERSION}").as_ref(),
                ],
                &format!("download onnxruntime=={PINNED_VERSION}"),
            )?;
            let w = std::fs::read_dir(&downloads)?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "whl"))
                .ok_or_else(|| {
                    NnError::RuntimeMissing(format!("pip downloaded no wheel of onnxruntime=={PINNED_VERSION}; {help}"))
                })?;
            announce(&format!(
                "downloaded {} ({}); unpacking it",
                w.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                megabytes(file_size(&w))
            ));
            w
        }
    };
    let unpacked = partial.join("onnxruntime");
    pip(
        &["install".as_ref(), "--no-index".as_ref(), "--target".as_ref(), unpacked.as_os_str(), wheel.as_os_str()],
        &format!("unpack {}", wheel.display()),
    )?;
    if find_in(&unpacked).is_none() {
        return Err(NnError::RuntimeMissing(format!(
            "the wheel {} holds no onnxruntime/capi/libonnxruntime.so.*; {help}",
            wheel.display()
        )));
    }
    // A complete install appears at once or not at all.
    std::fs::rename(&unpacked, &target)?;
    let _ = std::fs::remove_dir_all(&partial);
    announce(&format!(
        "installed ONNX Runtime in {} ({} on disk, {:.0} s); `labrun doctor` shows it",
        target.display(),
        megabytes(tree_size(&target)),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn tree_size(p: &Path) -> u64 {
    match std::fs::read_dir(p) {
        Ok(entries) => entries.flatten().map(|e| tree_size(&e.path())).sum(),
        Err(_) => file_size(p),
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// How a session runs.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    /// Intra-op threads. On small graphs one thread with spinning off is fastest; run
    /// independent steps in parallel instead.
    pub threads: usize,
    pub device: Device,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { threads: 1, device: Device::Cpu }
    }
}

/// Creates a session for an ONNX model. Asking for CUDA where it cannot run is an error,
/// never a silent CPU run.
pub fn session(model: &[u8], opts: SessionOptions) -> Result<ort::session::Session, NnError> {
    Ok(builder(opts)?.commit_from_memory(model)?)
}

/// A session for the ONNX file at `path`: its external data files are found beside it.
pub fn session_from_file(path: &std::path::Path, opts: SessionOptions) -> Result<ort::session::Session, NnError> {
    Ok(builder(opts)?.commit_from_file(path)?)
}

fn builder(opts: SessionOptions) -> Result<ort::session::builder::SessionBuilder, NnError> {
    let (info, env) = environment()?;
    let mut b = ort::session::Session::builder(env)?
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Level3)?
        .with_intra_threads(opts.threads.max(1))?
        .with_inter_threads(1)?
        .with_intra_op_spinning(false)?
        .with_inter_op_spinning(false)?;
    if opts.device == Device::Cuda {
        if !info.cuda {
            return Err(NnError::CudaUnavailable(format!(
                "ONNX Runtime {} from {} has no CUDA support; install `onnxruntime-gpu` and point ORT_DYLIB_PATH at its library",
                info.version,
                info.library.display()
            )));
        }
        b = b.with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])?;
    }
    Ok(b)
}
