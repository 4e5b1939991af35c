//! Every file in `tests/diagnostics/` is a broken program; its rendered diagnostics (no
//! colour, 100 columns) are snapshots in `tests/snapshots/`. A file may start with
//! `# set: NAME=VALUE` (one per line) and `# targets: STEP …` lines. Files named `_*.lab` are imported
//! by others. Regenerate with `INSTA_UPDATE=always cargo test --test diagnostics`.

use lab_engine::{CODES, Override, compile, render};
use std::collections::BTreeSet;
use std::path::Path;

fn header(text: &str, key: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.strip_prefix(&format!("# {key}: "))).map(str::to_string).collect()
}

#[test]
fn broken_files_give_the_expected_diagnostics() {
    let registry = lab_ops::registry();
    let dir = Path::new("tests/diagnostics");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "lab") && !p.file_name().unwrap().to_string_lossy().starts_with('_')
        })
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus has {} files", files.len());
    let mut seen_codes = BTreeSet::new();
    for path in &files {
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).to_string();
        // One override per `# set:` line; targets separated by spaces.
        let sets: Vec<Override> = header(&text, "set").iter().map(|s| s.parse().unwrap()).collect();
        let targets: Vec<String> =
            header(&text, "targets").iter().flat_map(|l| l.split(' ').map(str::to_string)).collect();
        let c = compile(path, &sets, &registry);
        let diags = match (&c.plan, targets.is_empty()) {
            (Some(plan), false) => plan.prune(&targets).err().unwrap_or_default(),
            _ => c.diags.clone(),
        };
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        assert!(!diags.is_empty(), "{name}: expected diagnostics, got none");
        for d in &diags {
            assert!(CODES.contains(&d.code), "{name}: code {} is not in CODES", d.code);
            seen_codes.insert(d.code);
        }
        let rendered = render(&diags, &c.sources, false, 100);
        insta::assert_snapshot!(name, rendered);
    }
    let missing: Vec<_> = CODES.iter().filter(|c| !seen_codes.contains(*c)).collect();
    assert!(missing.is_empty(), "no corpus file covers {missing:?}");
}
