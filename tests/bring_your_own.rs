//! Bring-your-own models and programs: what used to be accepted wrongly or explained
//! misleadingly now gets a clear error, with the exit code of a user's mistake.

mod common;
use common::labrun;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}

#[test]
fn a_report_with_no_steps_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "r.lab", "report \"r\" {\n  table \"t\" {\n    \"a\" = 1\n  }\n}\n");
    let r = labrun(dir.path(), &["check", &f]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("this report has nothing to show: the program makes no steps"), "{}", r.stderr);
    assert!(r.stderr.contains("r.lab:1"), "{}", r.stderr);
}

#[test]
fn float_overflow_is_not_called_integer_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "o.lab",
        "param x = 1e308 * 10.0\ny = model.mlp(inputs: 2, hidden: [2], outputs: 2, bias_std: x)\n",
    );
    let r = labrun(dir.path(), &["check", &f]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("the result is infinite: float overflow"), "{}", r.stderr);
    assert!(!r.stderr.contains("integer overflow"), "{}", r.stderr);
}

/// A model whose weights hold NaN gives NaN outputs: an error naming the row, not a
/// metric computed over NaN.
#[test]
fn non_finite_model_outputs_are_an_error() {
    use lab_nn::mlp::{Activation, Mlp, MlpSpec};
    let dir = tempfile::tempdir().unwrap();
    let spec = MlpSpec { inputs: 64, hidden: vec![4], outputs: 10, activation: Activation::Relu };
    let mut m = Mlp::init(spec, 0);
    m.params[1].1 = lab_nn::tensor::Tensor::f32(vec![4], vec![f32::NAN, 0.0, 0.0, 0.0]);
    let model_dir = dir.path().join("nan_model");
    std::fs::create_dir_all(&model_dir).unwrap();
    m.save(&model_dir).unwrap();
    let f = write(
        dir.path(),
        "n.lab",
        "m = model.onnx(path: \"nan_model/model.onnx\")\nacc = score.accuracy(m, data.digits(split: \"test\"))\n",
    );
    let cache = dir.path().join("cache");
    let r = labrun(dir.path(), &["run", &f, "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("for input row 1 is NaN"), "{}", r.stderr);
    assert!(r.stderr.contains("acc"), "the step is named: {}", r.stderr);
}

/// An exported GPT-2's context comes from its position-embedding table, and a record
/// longer than it is refused before the model runs, by its number and length.
#[test]
fn an_imported_decoder_knows_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::root().join("nn/tests/fixtures/tiny_gpt2");
    for f in ["model.onnx", "tokenizer.json"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    let long = "the robot walks in the evening ".repeat(200);
    write(
        dir.path(),
        "texts.jsonl",
        &format!(
            "{{\"prompt\": \"In\", \"completion\": \" the evening\"}}\n{{\"prompt\": \"{long}\", \"completion\": \" end\"}}\n"
        ),
    );
    let f = write(
        dir.path(),
        "c.lab",
        "lm = model.import_lm(path: \"model.onnx\", tokenizer: \"tokenizer.json\")\nlp = score.logprobs(lm, data.jsonl(path: \"texts.jsonl\"))\n",
    );
    let cache = dir.path().join("cache");
    let r = labrun(dir.path(), &["run", &f, "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("record 2 is"), "{}", r.stderr);
    assert!(r.stderr.contains("beyond the model's context of"), "{}", r.stderr);
    let show = labrun(dir.path(), &["cache", "show", "lm", "--cache", cache.to_str().unwrap()]);
    let path = show.stdout.lines().find_map(|l| l.strip_prefix("path")).unwrap().trim().to_string();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(std::path::Path::new(&path).join("model.json")).unwrap())
            .unwrap();
    assert!(meta["context"].as_u64().is_some_and(|c| c > 0), "{meta}");
}

/// A model too large for memory is blamed on the parameter that makes it so.
#[test]
fn a_huge_context_is_blamed_on_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "c.lab",
        "m = model.gpt(alphabet: \"ab\", width: 8, heads: 1, layers: 1, context: 100000000000)\n",
    );
    let r = labrun(dir.path(), &["check", &f]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("`context` 100000000000 makes a model of"), "{}", r.stderr);
    assert!(r.stderr.contains("position embeddings (`context` × `width`)"), "{}", r.stderr);
    assert!(r.stderr.contains("c.lab:1:71"), "the context argument is pointed at: {}", r.stderr);
}

/// A link inside a folder argument that leads out of the project is refused, and a
/// project folder named with `--import-root` must exist (confinement is never off).
#[test]
fn links_out_of_the_project_and_a_missing_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let task = project.join("task");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(dir.path().join("secret.json"), "{}").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.json"), task.join("task.json")).unwrap();
    std::fs::write(project.join("labrun.toml"), "").unwrap();
    let f = write(&project, "t.lab", "t = data.bigbench(path: \"task\")\n");
    let r = labrun(&project, &["check", &f]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("task.json: a link that leads outside the project folder"), "{}", r.stderr);
    let r = labrun(&project, &["check", &f, "--import-root", "no/such/folder"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("`--import-root no/such/folder` is not a folder"), "{}", r.stderr);
}

/// Op kinds come from the registry: a misspelt method of a newer kind gets "did you mean",
/// and an unknown kind lists every kind there is.
#[test]
fn every_op_kind_is_known_to_the_checker() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "k.lab",
        "g = attack.tree_leaf(model.tree(bits: 4, leaves: 4), epsilon: 0.5)\nd = defend.depht(g)\n",
    );
    let r = labrun(dir.path(), &["check", &f]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("unknown op `defend.depht`"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `depth`"), "{}", r.stderr);
    let f = write(dir.path(), "u.lab", "x = nope.thing()\n");
    let r = labrun(dir.path(), &["check", &f]);
    assert!(r.stderr.contains("unknown op kind `nope`"), "{}", r.stderr);
    for kind in ["attack", "defend", "env", "rl", "data", "report"] {
        assert!(r.stderr.contains(kind), "{kind} missing: {}", r.stderr);
    }
}

/// An export whose weights are external data is imported from its folder (the data file
/// travels with it into the cache and the model scores text); given as a file, it is
/// refused with the folder to give instead. Float16 weights import as they are.
#[test]
fn exports_with_external_data_or_float16_weights_import() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = common::root().join("nn/tests/fixtures");
    std::fs::create_dir(dir.path().join("ext")).unwrap();
    for f in ["model.onnx", "model.onnx.data"] {
        std::fs::copy(fixtures.join("tiny_gpt2_external").join(f), dir.path().join("ext").join(f)).unwrap();
    }
    std::fs::copy(fixtures.join("tiny_gpt2_fp16/model.onnx"), dir.path().join("half.onnx")).unwrap();
    std::fs::copy(fixtures.join("tiny_gpt2/tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    write(dir.path(), "texts.jsonl", "{\"prompt\": \"In\", \"completion\": \" the evening\"}\n");
    let lab = "ext = model.import_lm(path: \"ext\", tokenizer: \"tokenizer.json\")\n\
               half = model.import_lm(path: \"half.onnx\", tokenizer: \"tokenizer.json\")\n\
               texts = data.jsonl(path: \"texts.jsonl\")\n\
               report \"r\" {\n  table \"t\" {\n    \"external\" = score.logprobs(ext, texts)\n    \"float16\" = score.logprobs(half, texts)\n  }\n}\n";
    let f = write(dir.path(), "x.lab", lab);
    let cache = dir.path().join("cache");
    let r = labrun(dir.path(), &["run", &f, "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results/x/results.json")).unwrap()).unwrap();
    let rows = results["reports"][0]["tables"][0]["rows"].as_array().unwrap();
    let lp = |i: usize| rows[i]["metrics"]["mean_logprob"].as_f64().unwrap_or_else(|| panic!("{}", rows[i]));
    assert!((lp(0) - lp(1)).abs() < 0.05, "external {} vs float16 {}", lp(0), lp(1));
    // The file alone: the data file would not be tracked.
    let f =
        write(dir.path(), "y.lab", "m = model.import_lm(path: \"ext/model.onnx\", tokenizer: \"tokenizer.json\")\n");
    let r = labrun(dir.path(), &["run", &f, "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("keeps its weights as external data (model.onnx.data)"), "{}", r.stderr);
    assert!(r.stderr.contains("give its folder instead"), "{}", r.stderr);
}

/// An ONNX file that ONNX Runtime cannot open (here an operator that does not exist) is
/// refused by `model.onnx` itself, naming the file, not later by each step that uses it.
#[test]
fn an_onnx_file_runtime_cannot_load_is_refused_at_import() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = lab_nn::Graph::new(lab_nn::DType::F32);
    let x = g.input("x", lab_nn::DType::F32, &[-1, 2]);
    let y = g.node("MatMuX", &[x], vec![], lab_nn::DType::F32, vec![-1, 2]);
    g.output(y, "y");
    std::fs::write(dir.path().join("bad.onnx"), g.to_onnx_bytes("")).unwrap();
    let f = write(dir.path(), "x.lab", "m = model.onnx(path: \"bad.onnx\")\n");
    let cache = dir.path().join("cache");
    let r = labrun(dir.path(), &["run", &f, "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("bad.onnx: ONNX Runtime cannot load it"), "{}", r.stderr);
    assert!(r.stderr.contains("MatMuX"), "the operator is named: {}", r.stderr);
}

/// A decoder whose logits do not declare their width is checked against its token
/// embedding table: a tokenizer with more ids than the table has rows is refused at
/// import, before any id reaches ONNX Runtime; the matching tokenizer imports.
#[test]
fn a_tokenizer_with_more_ids_than_the_embedding_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = common::root().join("nn/tests/fixtures");
    std::fs::copy(fixtures.join("tiny_gpt2_open_vocab/model.onnx"), dir.path().join("model.onnx")).unwrap();
    let text = std::fs::read_to_string(fixtures.join("tiny_gpt2/tokenizer.json")).unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), &text).unwrap();
    let mut tok: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let n = vocab.len();
    for i in 0..10 {
        vocab.insert(format!("zzq{i}"), serde_json::json!(n + i));
    }
    std::fs::write(dir.path().join("big_tokenizer.json"), tok.to_string()).unwrap();
    let cache = dir.path().join("cache");
    let f = write(dir.path(), "ok.lab", "m = model.import_lm(path: \"model.onnx\", tokenizer: \"tokenizer.json\")\n");
    let r = labrun(dir.path(), &["run", &f, "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let f =
        write(dir.path(), "bad.lab", "m = model.import_lm(path: \"model.onnx\", tokenizer: \"big_tokenizer.json\")\n");
    let r = labrun(dir.path(), &["run", &f, "--cache", cache.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "has {} tokens but the model's token embedding `model.transformer.wte.weight` has {n} rows",
            n + 10
        )),
        "{}",
        r.stderr
    );
}
