//! A fingerprint of the parser's sources: parsed files cached by the engine are keyed by it,
//! so a changed grammar or syntax tree never reads a stale parse.

use std::hash::{Hash, Hasher};

fn main() {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir("src")
        .expect("src")
        .flatten()
        .map(|e| e.path())
        .chain(std::iter::once("lab.pest".into()))
        .collect();
    files.sort();
    for f in &files {
        f.hash(&mut h);
        std::fs::read(f).expect("readable source").hash(&mut h);
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rustc-env=LAB_GRAMMAR_FINGERPRINT={:016x}", h.finish());
}
