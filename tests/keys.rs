//! Cache keys are the contract between labrun versions: a change to how ops declare or
//! receive their parameters must not change the key of any step, or every user's cache goes
//! cold. This test computes, for every pipeline in `pipelines/` and `tests/pipelines/`, the
//! key of every step from its plan alone, and compares them with the committed snapshots.
//!
//! Keys depend on the artifact ids of the inputs, which exist only after a run. Here each
//! step's output id is a stand-in derived from the step's own key, in plan order, so a
//! step's key covers its whole upstream graph (a Merkle hash of the plan): equal stand-in
//! keys before and after a change mean equal real keys, as long as the ops compute the same
//! bytes. Absolute paths in `Path` arguments are written relative to the repository, so
//! the snapshot does not depend on where the checkout lies.

mod common;

use lab_cache::ArtifactId;
use lab_engine::execute::key_bytes;
use std::path::Path;

/// `s` + length + text, the encoding of a string value, with the repository's folder
/// replaced by `<root>`.
fn relative_paths(bytes: &[u8], root: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b's' && i + 9 <= bytes.len() {
            let len = u64::from_le_bytes(bytes[i + 1..i + 9].try_into().unwrap()) as usize;
            let text = bytes.get(i + 9..i + 9 + len);
            if let Some(text) = text
                && text.starts_with(root)
            {
                let rel = [b"<root>".as_slice(), &text[root.len()..]].concat();
                out.push(b's');
                out.extend_from_slice(&(rel.len() as u64).to_le_bytes());
                out.extend_from_slice(&rel);
                i += 9 + len;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn plan_keys(file: &Path) -> String {
    let registry = lab_ops::registry();
    let compiled = lab_engine::compile(file, &[], &registry);
    let plan = compiled.plan.unwrap_or_else(|| panic!("{} does not compile: {:?}", file.display(), compiled.diags));
    let root = common::root().display().to_string();
    let mut outputs: Vec<Option<ArtifactId>> = vec![None; plan.nodes.len()];
    let mut lines = Vec::new();
    for i in plan.order.iter().copied() {
        let node = &plan.nodes[i];
        let bytes = key_bytes(&plan, node, &outputs).expect("inputs come first in plan order");
        let bytes = relative_paths(&bytes, root.as_bytes());
        let key = blake3::hash(&bytes);
        outputs[i] = Some(ArtifactId(*blake3::hash(key.as_bytes()).as_bytes()));
        lines.push(format!("{} {} {}", &key.to_hex()[..16], node.op.name(), node.name));
    }
    lines.sort();
    lines.join("\n")
}

#[test]
fn every_pipeline_keeps_its_cache_keys() {
    let root = common::root();
    let mut files = Vec::new();
    for dir in ["pipelines", "tests/pipelines"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "lab") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 10, "found only {files:?}");
    for file in files {
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        let name = rel.replace(['/', '.'], "_");
        insta::assert_snapshot!(name, plan_keys(&file), &rel);
    }
}
