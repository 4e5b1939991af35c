//! The op-test harness: run any registered op with defaults filled in, into a temp dir.
#![allow(dead_code)]

use lab_ops::{ArgIn, Args, OpError, RunCtx, Value, registry};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

pub struct Ws {
    pub dir: tempfile::TempDir,
    n: usize,
}

impl Ws {
    pub fn new() -> Self {
        Ws { dir: tempfile::tempdir().unwrap(), n: 0 }
    }

    /// Runs `kind.method` with defaults filled in; returns the artifact directory.
    pub fn run(&mut self, op: &str, args: Vec<(&str, ArgIn)>) -> Result<PathBuf, OpError> {
        let reg = registry();
        let (kind, method) = op.split_once('.').unwrap();
        let (sig, op) = reg.get(kind, method).unwrap();
        let mut a = Args::default();
        for p in &sig.params {
            if let Some(d) = &p.default {
                a.map.insert(p.name.to_string(), ArgIn::Value(d.clone()));
            }
        }
        for (k, v) in args {
            a.map.insert(k.to_string(), v);
        }
        self.n += 1;
        let out = self.dir.path().join(format!("a{}", self.n));
        std::fs::create_dir(&out).unwrap();
        let cancel = AtomicBool::new(false);
        let ctx = RunCtx { out: &out, threads: 1, device: lab_nn::Device::Cpu, progress: &|_| {}, cancel: &cancel };
        op.run_args(sig, &ctx, &a)?;
        Ok(out)
    }
}

pub fn v(x: Value) -> ArgIn {
    ArgIn::Value(x)
}
pub fn art(p: &Path) -> ArgIn {
    ArgIn::Artifact(p.to_path_buf())
}
pub fn int(i: i64) -> ArgIn {
    v(Value::Int(i))
}

pub fn s(x: &str) -> ArgIn {
    v(Value::Str(x.into()))
}
pub fn strs(xs: &[&str]) -> ArgIn {
    v(Value::List(xs.iter().map(|x| Value::Str(x.to_string())).collect()))
}
