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

/// `cmds` on `name` exit 1 with `expect` on stderr and no internal error.
fn rejects_with(cmds: &[&str], name: &str, bytes: &[u8], expect: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    let mut last = String::new();
    for cmd in cmds {
        let r = labrun(dir.path(), &[cmd, name]);
        assert_eq!(r.code, 1, "{cmd} {name}: exit {}\n{}", r.code, &r.stderr[..r.stderr.len().min(2000)]);
        assert!(
            r.stderr.contains(expect),
            "{cmd} {name}: stderr lacks {expect:?}:\n{}",
            &r.stderr[..r.stderr.len().min(3000)]
        );
        assert!(!r.stderr.contains("internal error"), "{}", r.stderr);
        last = r.stderr;
    }
    last
}

#[test]
fn a_flat_sum_of_thousands_of_terms_is_refused_not_a_stack_overflow() {
    let s = format!("x = {}\ny = generate.noise(shape: [4], count: x)\n", vec!["1"; 200_000].join(" + "));
    rejects("flat.lab", s.as_bytes(), "this expression has 199999 operators; labrun takes up to 100000");
    // Operators nested in brackets count too.
    let mut e = "1".to_string();
    for _ in 0..120 {
        e = format!("({e} + 1)");
    }
    rejects("nested.lab", format!("x = {e}\n").as_bytes(), "nests more than 200 levels");
}

#[test]
fn an_error_past_column_65535_is_drawn_clipped() {
    let s = format!("y = generate.noise(shape: [4], count: 10){}z = undefined_thing\n", " ".repeat(70_000));
    let err = rejects_with(&["check", "plan"], "wide.lab", s.as_bytes(), "not defined (column 70046)");
    assert!(err.contains("unknown name `undefined_thing`") && err.lines().all(|l| l.chars().count() < 400), "{err}");
}

#[test]
fn a_megabyte_long_unknown_name_is_reported_at_once() {
    let s = format!("y = generate.noise(shape: [4], count: 10)\nz = score.stats({})\n", "a".repeat(1 << 20));
    let err = rejects_with(&["check", "plan"], "long.lab", s.as_bytes(), "characters left out");
    assert!(err.len() < 10_000, "{} bytes of diagnostics", err.len());
}

#[test]
fn a_hundred_thousand_errors_show_the_first_fifty_and_a_count() {
    let mut s = String::from("y = generate.noise(shape: [4], count: 10)\n");
    for i in 0..100_000 {
        s.push_str(&format!("z{i} = score.stats(undefined_{i})\n"));
    }
    let err = rejects_with(
        &["check"],
        "many.lab",
        s.as_bytes(),
        "… and 99950 more errors not shown (99950 × lab::unknown_name)",
    );
    assert_eq!(err.matches("× unknown name").count(), 50);
    assert!(err.contains("labrun: 100000 errors"));
}

#[test]
fn list_products_are_refused_before_they_are_built() {
    let s = b"param n = 100000\nxs = [i * j for i in 0..n for j in 0..n]\ny = generate.noise(shape: [4], count: 10)\n";
    rejects_with(&["check", "plan"], "product.lab", s, "this list has more than 1000000 elements");
    let s = b"for i in 0..100000, j in 0..100000 {\n  x[i, j] = generate.noise(shape: [4], count: 10, seed: i)\n}\n";
    rejects_with(&["check", "plan"], "sweep.lab", s, "this sweep makes 10000000000 steps over 2 loop variables");
}

#[test]
fn control_and_invisible_characters_are_shown_by_name() {
    let s = "y = generate.noise(shape: [4], count: \"a\u{7}b\u{200b}c\")\n";
    let err = rejects_with(&["check"], "ctl.lab", s.as_bytes(), "takes an Int, not a Str");
    assert!(err.contains("\"a\\u{7}b<U+200B>c\""), "{err}");
    assert!(!err.contains('\u{7}') && !err.contains('\u{200b}'), "{err}");
}

#[test]
fn imports_stay_inside_the_project_and_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("sub")).unwrap();
    std::fs::write(dir.path().join("outside.lab"), "secret = data.digits()\n").unwrap();
    let noise = "y = generate.noise(shape: [4], count: 10)\n";
    for (name, import, expect) in [
        ("passwd.lab", "/etc/passwd", "`/etc/passwd` is not a `.lab` file"),
        ("zero.lab", "/dev/zero", "`/dev/zero` is not a `.lab` file"),
        ("up.lab", "../outside.lab", "`../outside.lab` is outside the project folder"),
    ] {
        std::fs::write(project.join(name), format!("import \"{import}\"\n{noise}")).unwrap();
        let r = labrun(&project, &["check", name]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains(expect) && r.stderr.contains("lab::bad_import"), "{}", r.stderr);
        assert!(!r.stderr.contains("root:") && !r.stderr.contains("secret"), "{}", r.stderr);
    }
    // A link inside the project to a file outside it is outside too; a link to a device
    // named like a `.lab` file is not read.
    std::os::unix::fs::symlink(dir.path().join("outside.lab"), project.join("link.lab")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", project.join("dev.lab")).unwrap();
    std::fs::write(project.join("links.lab"), format!("import \"link.lab\"\nimport \"dev.lab\"\n{noise}")).unwrap();
    let r = labrun(&project, &["check", "links.lab"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("`link.lab` is outside") && r.stderr.contains("`dev.lab` is outside"), "{}", r.stderr);
    let r = labrun(&project, &["check", "--import-root", "/", "dev.lab"]);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    // Files in subfolders are inside; `--import-root` widens the project.
    std::fs::write(project.join("sub/ok.lab"), "helper = data.digits()\n").unwrap();
    std::fs::write(project.join("in.lab"), format!("import \"sub/ok.lab\"\n{noise}")).unwrap();
    assert_eq!(labrun(&project, &["check", "in.lab"]).code, 0);
    let wide = dir.path().to_str().unwrap();
    let r = labrun(&project, &["check", "--import-root", wide, "up.lab"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn op_paths_must_be_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let fifo = std::process::Command::new("mkfifo").arg(dir.path().join("pipe")).status().unwrap();
    assert!(fifo.success());
    std::fs::write(
        dir.path().join("p.lab"),
        "x = data.text(path: \"/dev/zero\")\ny = data.text(path: \"sub\")\nz = data.text(path: \"pipe\")\n",
    )
    .unwrap();
    let r = labrun(dir.path(), &["check", "p.lab"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // A device outside the project is not even opened; a pipe inside it is not a file.
    assert!(r.stderr.contains("`/dev/zero` is outside the project folder"), "{}", r.stderr);
    assert!(r.stderr.contains("cannot read `pipe`: it is not a regular file"), "{}", r.stderr);
    assert!(r.stderr.contains("cannot read `sub`: it is a directory"), "{}", r.stderr);
}

#[test]
fn a_text_file_too_big_to_read_is_refused_by_its_size_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // A sparse file: 1.1 GB long, no disk used.
    let big = std::fs::File::create(dir.path().join("big.jsonl")).unwrap();
    big.set_len((1 << 30) + (100 << 20)).unwrap();
    drop(big);
    std::fs::write(dir.path().join("big.lab"), "d = data.jsonl(path: \"big.jsonl\")\ns = score.stats(d)\n").unwrap();
    // `check` refuses it by its size, before hashing it, at the argument.
    let r = labrun(dir.path(), &["check", "big.lab"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("`big.jsonl` is 1.2 GB; this argument takes files of up to 1.1 GB"), "{}", r.stderr);
    assert!(r.stderr.contains("big.lab:1:22"), "at the argument: {}", r.stderr);
    // `labrun ops` states the limit.
    let ops = labrun(dir.path(), &["ops", "data.jsonl"]);
    assert!(ops.stdout.contains("`path` is a file of at most 1.1 GB"), "{}", ops.stdout);
}

/// Every file an op reads whole has a size limit checked before hashing: model files,
/// tokenizers, and a BIG-bench task folder's files together.
#[test]
fn model_files_and_task_folders_too_big_to_read_are_refused_by_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = |name: &str, len: u64| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    };
    sparse("big.onnx", 3 << 30);
    sparse("tokenizer.json", 300 << 20);
    sparse("small.onnx", 10);
    sparse("task/task.json", 700 << 20);
    sparse("task/sub/task.json", 700 << 20);
    let cases = [
        ("m = model.onnx(path: \"big.onnx\")", "`big.onnx` is 3.2 GB; this argument takes files of up to 2.1 GB"),
        (
            "m = model.import_lm(path: \"small.onnx\", tokenizer: \"tokenizer.json\")",
            "`tokenizer.json` is 315 MB; this argument takes files of up to 268 MB",
        ),
        ("t = data.bigbench(path: \"task\")", "`task` is 1.5 GB; this argument takes files of up to 1.1 GB"),
    ];
    for (lab, want) in cases {
        std::fs::write(dir.path().join("big.lab"), format!("{lab}\n")).unwrap();
        let r = labrun(dir.path(), &["check", "big.lab"]);
        assert_eq!(r.code, 1, "{lab}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{lab}: {}", r.stderr);
    }
}

/// A generated parameter holding a flat 5,000-term sum parses, checks, evaluates and
/// formats: a run of operators of one precedence is one node, not 5,000 nested ones.
#[test]
fn a_generated_flat_sum_of_five_thousand_terms_is_a_number() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("labrun.toml"), "").unwrap();
    let text = format!(
        "param x = {}\nparam z = 10 - 2 - 3 + 4 * 2 / 4 % 3 - (1 - 2) * 3\ny = generate.noise(shape: [4], count: x, low: z, high: z + 1)\n",
        vec!["1"; 5000].join(" + ")
    );
    std::fs::write(dir.path().join("flat.lab"), &text).unwrap();
    let r = labrun(dir.path(), &["plan", "flat.lab"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Left to right, by precedence: 10 − 2 − 3 + ((4 × 2) / 4) % 3 − (1 − 2) × 3 = 10.
    assert!(r.stdout.contains("count: 5000") && r.stdout.contains("low: 10.0"), "{}", r.stdout);
    let r = labrun(dir.path(), &["fmt", "--check", "flat.lab"]);
    assert_eq!(r.code, 0, "the formatter keeps the sum as written: {}{}", r.stdout, r.stderr);
}
