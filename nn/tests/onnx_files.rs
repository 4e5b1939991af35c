//! labrun's ONNX files read back, and pass the official checker when the `onnx` Python
//! package is importable (the structural round trip is always checked); where it is not,
//! the checker's test is reported ignored with the reason. CI installs `onnx` and sets
//! `LABRUN_REQUIRE_ONNX_CHECKER=1`, which turns a missing package into a failure.

use lab_nn::autodiff::grad;
use lab_nn::mlp::{Activation, Mlp, MlpSpec};
use lab_nn::onnx_io::read;
use lab_nn::optim::{OptimConfig, step};
use lab_nn::{DType, Graph};

fn models() -> Vec<(&'static str, Vec<u8>, Mlp)> {
    let mlp = Mlp::init(MlpSpec { inputs: 6, hidden: vec![5, 4], outputs: 3, activation: Activation::Gelu }, 9);
    let inference = mlp.inference_graph().to_onnx_bytes("inference");
    // A whole training step: forward, cross-entropy, backward, Adam.
    let mut g = Graph::new(DType::F32);
    let x = g.input("x", DType::F32, &[-1, 6]);
    let ps: Vec<_> = mlp
        .params
        .iter()
        .map(|(n, t)| g.input(n, DType::F32, &t.shape.iter().map(|&d| d as i64).collect::<Vec<_>>()))
        .collect();
    let y = g.input("target", DType::F32, &[-1, 3]);
    let logits = mlp.spec.forward(&mut g, x, &ps);
    let lp = g.log_softmax(logits, -1);
    let m = g.mul(y, lp);
    let s = g.reduce_sum(m, &[1], false);
    let mean = g.reduce_mean(s, &[0], false);
    let loss = g.neg(mean);
    let grads = grad(&mut g, loss, &ps).unwrap();
    let st = step(&mut g, &ps, &grads, &OptimConfig { clip: Some(1.0), ..OptimConfig::default() });
    g.output(loss, "loss");
    for (i, u) in st.updated.iter().enumerate() {
        g.output(*u, &format!("new{i}"));
    }
    let training = g.to_onnx_bytes("training step");
    vec![("inference", inference, mlp.clone()), ("training", training, mlp)]
}

/// The GPT's decoder (its `model.onnx`, with and without activation outputs) and one
/// whole training step per language-model objective.
fn gpt_models() -> Vec<(String, Vec<u8>)> {
    use lab_nn::gpt::{Gpt, GptSpec};
    use lab_nn::lm::{LmObjective, loss_graph};
    let spec = GptSpec { vocab: 7, width: 8, heads: 2, layers: 2, context: 6, tied: false, value_head: true };
    let m = Gpt::init(spec, lab_nn::tokenizer::Tokenizer::chars("abcdefg").unwrap(), 1).unwrap();
    let mut out = vec![
        ("decoder".to_string(), m.decoder_graph(false).to_onnx_bytes("decoder")),
        ("decoder_hidden".to_string(), m.decoder_graph(true).to_onnx_bytes("decoder")),
    ];
    for (name, obj) in [
        ("next_token", LmObjective::NextToken),
        ("distill", LmObjective::Distill { tokens: vec![1, 3] }),
        ("reward", LmObjective::Reward),
    ] {
        let (mut g, loss) = loss_graph(&m, &obj, 5).unwrap();
        let ps: Vec<_> =
            m.params.iter().map(|(n, _)| *g.inputs.iter().find(|&&v| g.info(v).name == *n).unwrap()).collect();
        let grads = grad(&mut g, loss, &ps).unwrap();
        let st = step(&mut g, &ps, &grads, &OptimConfig { clip: Some(1.0), ..OptimConfig::default() });
        g.output(loss, "loss");
        for (i, u) in st.updated.iter().enumerate() {
            g.output(*u, &format!("new{i}"));
        }
        out.push((format!("gpt_{name}_step"), g.to_onnx_bytes("training step")));
    }
    out
}

fn main() -> std::process::ExitCode {
    use libtest_mimic::{Arguments, Completion, Failed, Trial};
    let args = Arguments::from_args();
    let has_onnx = args.list
        || std::process::Command::new("python3").args(["-c", "import onnx"]).output().is_ok_and(|o| o.status.success());
    let required = std::env::var_os("LABRUN_REQUIRE_ONNX_CHECKER").is_some_and(|v| v == "1");
    let checker = move || match (has_onnx, required) {
        (true, _) => {
            exported_models_pass_the_onnx_checker();
            Ok(Completion::Completed)
        }
        (false, true) => Err(Failed::from("LABRUN_REQUIRE_ONNX_CHECKER=1, but `python3 -c 'import onnx'` fails")),
        (false, false) => {
            Ok(Completion::ignored_with("the `onnx` Python package is not importable (`pip install onnx`)"))
        }
    };
    let trials = vec![
        Trial::test("exported_models_read_back", || {
            exported_models_read_back();
            Ok(())
        }),
        Trial::ignorable_test("exported_models_pass_the_onnx_checker", checker),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

fn exported_models_read_back() {
    for (name, bytes, mlp) in models() {
        let info = read(&bytes).unwrap();
        assert_eq!(info.opset, lab_nn::graph::OPSET, "{name}");
        assert_eq!(info.producer, "labrun");
        assert_eq!(info.inputs[0].name, "x");
        assert_eq!(info.inputs[0].shape, vec![None, Some(6)]);
        if name == "inference" {
            assert_eq!(info.outputs[0].name, "logits");
            for (n, t) in &mlp.params {
                let (_, got) = info.initializers.iter().find(|(m, _)| m == n).expect("weight stored");
                assert_eq!(got, t, "{n}");
            }
        } else {
            assert!(info.nodes > 50, "a training step has many nodes");
        }
    }
    assert!(read(b"not a model").is_err());
}

fn exported_models_pass_the_onnx_checker() {
    let dir = tempfile::tempdir().unwrap();
    let all = models().into_iter().map(|(n, b, _)| (n.to_string(), b)).chain(gpt_models());
    for (name, bytes) in all {
        let path = dir.path().join(format!("{name}.onnx"));
        std::fs::write(&path, bytes).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-c", "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
