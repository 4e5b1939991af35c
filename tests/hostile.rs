//! Hostile input never panics: each gets a diagnostic on stderr and exit code 1.

mod common;
use common::labrun;

fn rejects(name: &str, bytes: &[u8], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    for cmd in ["check", "plan", "fmt"] {
        let r = labrun(dir.path(), &[cmd, name]);
        assert_eq!(r.code, 1, "{cmd} {name}: exit {}\n{}", r.code, r.stderr);
        assert!(
            r.stderr.contains(expect),
            "{cmd} {name}: stderr lacks {expect:?}:\n{}",
            &r.stderr[..r.stderr.len().min(2000)]
        );
        assert!(!r.stderr.contains("internal error"), "{}", r.stderr);
    }
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e.lab"), b"").unwrap();
    let r = labrun(dir.path(), &["check", "e.lab"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("defines no steps"), "{}", r.stderr);
    // An empty file is formatted already.
    assert_eq!(labrun(dir.path(), &["fmt", "--check", "e.lab"]).code, 0);
}

#[test]
fn invalid_utf8() {
    rejects("u.lab", b"a = data.digits()\n\xff\xfe\n", "not UTF-8");
}

#[test]
fn binary_garbage() {
    // A deterministic pseudo-random byte soup, made valid UTF-8 so the parser sees it.
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 128) as u8
        })
        .collect();
    rejects("g.lab", &bytes, "lab::syntax");
}

#[test]
fn ten_megabyte_file() {
    let mut s = String::with_capacity(10 << 20);
    let mut i = 0;
    while s.len() < 10 << 20 {
        s.push_str(&format!("step_{i} = data.digits(split: \"train\")  # filler\n"));
        i += 1;
    }
    s.push_str("broken = = 1\n");
    rejects("big.lab", s.as_bytes(), "expected a value");
}

#[test]
fn ten_thousand_nested_brackets() {
    let s = format!("a = {}1{}\n", "[".repeat(10_000), "]".repeat(10_000));
    rejects("deep.lab", s.as_bytes(), "nest deeper");
    let s = format!("a = model.mlp({}\n", "(".repeat(10_000));
    rejects("deep2.lab", s.as_bytes(), "nest deeper");
}

#[test]
fn unterminated_strings() {
    rejects("s.lab", b"a = data.digits(split: \"train)\n", "unterminated string");
    rejects("s2.lab", b"a = data.digits(split: \"train", "unterminated string");
    rejects("s3.lab", b"a = \"\\", "unterminated string");
}

#[test]
fn missing_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let r = labrun(dir.path(), &["check", "nope.lab"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot read `nope.lab`"), "{}", r.stderr);
    std::fs::create_dir(dir.path().join("d.lab")).unwrap();
    let r = labrun(dir.path(), &["check", "d.lab"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("directory"), "{}", r.stderr);
}

#[test]
fn usage_mistakes_exit_1_and_help_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let r = labrun(dir.path(), &["run"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = labrun(dir.path(), &["plan", "x.lab", "--no-such-flag"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = labrun(dir.path(), &["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("labrun FILE"), "{}", r.stdout);
}
