//! Model ops end to end on real data, through ONNX Runtime.

use lab_ops::{OpError, Value};
use std::path::Path;

mod common;
use common::{Ws, art, int, v};

fn accuracy(p: &Path) -> f64 {
    lab_ops::artifact::read_metrics(p).unwrap()["accuracy"].as_f64().unwrap()
}

#[test]
fn mlp_learns_digits_to_95_percent() {
    let mut ws = Ws::new();
    let train = ws.run("data.digits", vec![("split", v(Value::Str("train".into())))]).unwrap();
    let test = ws.run("data.digits", vec![("split", v(Value::Str("test".into())))]).unwrap();
    let init = ws
        .run(
            "model.mlp",
            vec![
                ("inputs", int(64)),
                ("hidden", v(Value::List(vec![Value::Int(128)]))),
                ("outputs", int(10)),
                ("seed", int(1)),
            ],
        )
        .unwrap();
    let before = ws.run("score.accuracy", vec![("model", art(&init)), ("data", art(&test))]).unwrap();
    let trained = ws
        .run(
            "finetune.supervised",
            vec![
                ("model", art(&init)),
                ("data", art(&train)),
                ("epochs", int(20)),
                ("lr", v(Value::Float(3e-3))),
                ("batch", int(32)),
            ],
        )
        .unwrap();
    let after = ws.run("score.accuracy", vec![("model", art(&trained)), ("data", art(&test))]).unwrap();
    assert!(accuracy(&before) < 0.3, "untrained accuracy {}", accuracy(&before));
    assert!(accuracy(&after) >= 0.95, "trained accuracy {}", accuracy(&after));

    // The exported model.onnx stands alone: same logits as labrun's own prediction.
    let model = lab_nn::mlp::Mlp::load(&trained).unwrap();
    let bytes = std::fs::read(trained.join("model.onnx")).unwrap();
    let mut s = lab_nn::runtime::session(&bytes, Default::default()).unwrap();
    let x =
        lab_nn::Tensor::f32(vec![2, 64], lab_ops::data::load_digits().unwrap().x.as_slice().unwrap()[..128].to_vec());
    let standalone = lab_nn::exec::run_session(&mut s, &[("x", &x)]).unwrap();
    let ours = lab_nn::mlp_train::predict(&model, x.as_f32().unwrap(), Default::default()).unwrap();
    assert_eq!(standalone[0].as_f32().unwrap(), &ours[..]);
}

#[test]
fn equal_seeds_give_equal_models_and_training_is_deterministic() {
    let mut ws = Ws::new();
    let train = ws.run("data.digits", vec![]).unwrap();
    let mk = |ws: &mut Ws, seed| {
        ws.run(
            "model.mlp",
            vec![
                ("inputs", int(64)),
                ("hidden", v(Value::List(vec![Value::Int(16)]))),
                ("outputs", int(10)),
                ("seed", int(seed)),
            ],
        )
        .unwrap()
    };
    let (a, b, c) = (mk(&mut ws, 3), mk(&mut ws, 3), mk(&mut ws, 4));
    let bytes = |p: &Path| std::fs::read(p.join("weights.safetensors")).unwrap();
    assert_eq!(bytes(&a), bytes(&b));
    assert_ne!(bytes(&a), bytes(&c));
    let t1 =
        ws.run("finetune.supervised", vec![("model", art(&a)), ("data", art(&train)), ("epochs", int(1))]).unwrap();
    let t2 =
        ws.run("finetune.supervised", vec![("model", art(&b)), ("data", art(&train)), ("epochs", int(1))]).unwrap();
    assert_eq!(bytes(&t1), bytes(&t2));
    assert_ne!(bytes(&t1), bytes(&a));
}

#[test]
fn exploding_loss_is_reported_with_its_step() {
    let mut ws = Ws::new();
    let train = ws.run("data.digits", vec![]).unwrap();
    // Adam's steps have size ~lr whatever the gradient: at 1e30 the logits overflow f32.
    let hidden = v(Value::List(vec![Value::Int(32), Value::Int(32)]));
    let m = ws.run("model.mlp", vec![("inputs", int(64)), ("hidden", hidden), ("outputs", int(10))]).unwrap();
    let err = ws
        .run(
            "finetune.supervised",
            vec![("model", art(&m)), ("data", art(&train)), ("lr", v(Value::Float(1e30))), ("epochs", int(3))],
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OpError::Numeric(_)), "{msg}");
    assert!(msg.contains("at step") && msg.contains("lower `lr`"), "{msg}");
}

#[test]
fn mismatched_models_and_data_are_clear_errors() {
    let mut ws = Ws::new();
    let train = ws.run("data.digits", vec![]).unwrap();
    let m = ws
        .run("model.mlp", vec![("inputs", int(32)), ("hidden", v(Value::List(vec![]))), ("outputs", int(10))])
        .unwrap();
    let e = ws.run("score.accuracy", vec![("model", art(&m)), ("data", art(&train))]).unwrap_err().to_string();
    assert!(e.contains("width 64") && e.contains("32 inputs"), "{e}");
    let m = ws
        .run("model.mlp", vec![("inputs", int(64)), ("hidden", v(Value::List(vec![]))), ("outputs", int(10))])
        .unwrap();
    let e = ws
        .run(
            "finetune.supervised",
            vec![("model", art(&m)), ("data", art(&train)), ("logits", v(Value::Range { start: 5, end: 12 }))],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("10 outputs"), "{e}");
    // Labels outside the trained logits.
    let e = ws
        .run(
            "finetune.supervised",
            vec![("model", art(&m)), ("data", art(&train)), ("logits", v(Value::Range { start: 0, end: 5 }))],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the trained logits"), "{e}");
    // Absurd sizes are refused before anything is allocated.
    let e = ws
        .run(
            "model.mlp",
            vec![("inputs", int(64)), ("hidden", v(Value::List(vec![Value::Int(1 << 40)]))), ("outputs", int(10))],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("parameters"), "{e}");
    // Corrupt files: the weights matter to training, the ONNX file to inference.
    std::fs::write(m.join("weights.safetensors"), b"garbage").unwrap();
    let e = ws.run("finetune.supervised", vec![("model", art(&m)), ("data", art(&train))]).unwrap_err().to_string();
    assert!(e.contains("not a valid safetensors file"), "{e}");
    std::fs::write(m.join("model.onnx"), b"garbage").unwrap();
    let e = ws.run("score.accuracy", vec![("model", art(&m)), ("data", art(&train))]).unwrap_err().to_string();
    assert!(e.contains("not an ONNX model"), "{e}");
}

#[test]
fn an_imported_onnx_model_scores_like_the_model_it_came_from() {
    let mut ws = Ws::new();
    let train = ws.run("data.digits", vec![]).unwrap();
    let test = ws.run("data.digits", vec![("split", v(Value::Str("test".into())))]).unwrap();
    let m = ws
        .run(
            "model.mlp",
            vec![("inputs", int(64)), ("hidden", v(Value::List(vec![Value::Int(32)]))), ("outputs", int(10))],
        )
        .unwrap();
    let t = ws
        .run(
            "finetune.supervised",
            vec![("model", art(&m)), ("data", art(&train)), ("epochs", int(3)), ("lr", v(Value::Float(3e-3)))],
        )
        .unwrap();
    let file = ws.dir.path().join("exported.onnx");
    std::fs::copy(t.join("model.onnx"), &file).unwrap();
    let imported = ws.run("model.onnx", vec![("path", v(Value::Str(file.display().to_string())))]).unwrap();
    let a = ws.run("score.accuracy", vec![("model", art(&t)), ("data", art(&test))]).unwrap();
    let b = ws.run("score.accuracy", vec![("model", art(&imported)), ("data", art(&test))]).unwrap();
    assert_eq!(lab_ops::artifact::read_metrics(&a).unwrap(), lab_ops::artifact::read_metrics(&b).unwrap());
    let e =
        ws.run("finetune.supervised", vec![("model", art(&imported)), ("data", art(&train))]).unwrap_err().to_string();
    assert!(e.contains("imported ONNX model"), "{e}");
    std::fs::write(&file, b"not onnx").unwrap();
    let e = ws.run("model.onnx", vec![("path", v(Value::Str(file.display().to_string())))]).unwrap_err().to_string();
    assert!(e.contains("not an ONNX model"), "{e}");
}
