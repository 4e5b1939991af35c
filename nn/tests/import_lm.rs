//! A GPT-2 exported by PyTorch/transformers (random weights, made by
//! `fixtures/make_tiny_gpt2.py`): labrun's decoder must reproduce transformers' logits and
//! its greedy continuations, through the same code that runs labrun's own models.

use lab_nn::decode::{self, Decoder, Sampling};
use lab_nn::tokenizer::Tokenizer;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_gpt2");

fn fixture() -> (Decoder, Tokenizer, Value) {
    let onnx = std::fs::read(format!("{DIR}/model.onnx")).unwrap();
    let tok = Tokenizer::from_json(&std::fs::read_to_string(format!("{DIR}/tokenizer.json")).unwrap()).unwrap();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/reference.json")).unwrap()).unwrap();
    (Decoder::new(&onnx, None, Default::default()).unwrap(), tok, reference)
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

#[test]
fn tokenizer_and_logits_match_transformers() {
    let (mut dec, tok, r) = fixture();
    assert_eq!((dec.layers, dec.heads, dec.head_dim), (2, 4, 8));
    let prompt_ids = ids(&r["prompt_ids"]);
    assert_eq!(tok.encode(r["prompt"].as_str().unwrap()).unwrap(), prompt_ids);
    let (out, _) = dec.full(std::slice::from_ref(&prompt_ids), false).unwrap();
    let want: Vec<f64> = r["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    assert_eq!(out.logits.len(), want.len());
    let worst = out.logits.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    println!("imported GPT-2: max abs logit error vs transformers = {worst:.2e}");
    assert!(worst < 1e-4, "max abs error {worst}");
}

#[test]
fn greedy_continuations_match_transformers_token_for_token() {
    let (mut dec, tok, r) = fixture();
    let cfg = Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, max_new_tokens: 12, stop: vec![], seed: 0 };
    let got = decode::generate(&mut dec, &tok, &[ids(&r["prompt_ids"])], 0, &cfg, &mut || true).unwrap();
    assert_eq!(got[0].ids, ids(&r["greedy_ids"]));
    assert_eq!(got[0].text, r["greedy_text"].as_str().unwrap());
    // A left-padded batch of prompts of different lengths.
    let prompts: Vec<Vec<i64>> = r["batch_prompt_ids"].as_array().unwrap().iter().map(ids).collect();
    let cfg = Sampling { max_new_tokens: 8, ..cfg };
    let got = decode::generate(&mut dec, &tok, &prompts, 0, &cfg, &mut || true).unwrap();
    for (g, want) in got.iter().zip(r["batch_greedy_ids"].as_array().unwrap()) {
        assert_eq!(g.ids, ids(want));
    }
}

#[test]
fn a_model_without_the_decoder_interface_is_refused_with_what_is_missing() {
    // labrun's MLP export: no input_ids, no KV cache.
    let mlp = lab_nn::mlp::Mlp::init(
        lab_nn::mlp::MlpSpec { inputs: 2, hidden: vec![3], outputs: 2, activation: lab_nn::mlp::Activation::Relu },
        0,
    );
    let err =
        Decoder::new(&mlp.inference_graph().to_onnx_bytes(""), None, Default::default()).err().unwrap().to_string();
    assert!(err.contains("no input `input_ids`") && err.contains("past_key_values.0.key"), "{err}");
}

/// The variants of the fixture made by `fixtures/make_variants.py` — float16 weights with
/// a bool initializer, and every weight in an external data file — give the float32
/// model's log-probabilities: exactly for external data, within float16's precision for
/// float16 weights.
#[test]
fn float16_and_external_data_exports_give_the_same_log_probabilities() {
    let (mut base, tok, r) = fixture();
    let prompt = tok.encode(r["prompt"].as_str().unwrap()).unwrap();
    let logprobs = |dec: &mut Decoder| -> Vec<f64> {
        let (out, _) = dec.full(std::slice::from_ref(&prompt), false).unwrap();
        out.logits.chunks(out.vocab).flat_map(decode::log_softmax).collect()
    };
    let want = logprobs(&mut base);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let fp16 = std::fs::read(format!("{root}/tiny_gpt2_fp16/model.onnx")).unwrap();
    let info = lab_nn::onnx_io::read(&fp16).unwrap();
    assert!(info.initializers.iter().any(|(n, _)| n == "labrun_true"), "the bool initializer is read");
    let mut half = Decoder::new(&fp16, None, Default::default()).unwrap();
    let got = logprobs(&mut half);
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("float16 weights: max abs log-probability error = {worst:.2e}");
    // Float16 keeps 11 significant bits (relative error 4.9e-4 per weight).
    assert!(worst > 0.0 && worst < 2e-2, "float16: {worst}");
    let path = std::path::Path::new(root).join("tiny_gpt2_external/model.onnx");
    let info = lab_nn::onnx_io::read(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(info.external.len(), 14, "every weight is external");
    assert_eq!(info.external_files(path.parent().unwrap()).unwrap(), vec!["model.onnx.data".to_string()]);
    let mut ext = Decoder::from_file(&path, None, Default::default()).unwrap();
    let got = logprobs(&mut ext);
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-6, "external data: {worst}");
}

/// External data must lie beside the model and hold the bytes the model names.
#[test]
fn external_data_outside_the_folder_or_truncated_is_refused() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_gpt2_external");
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(format!("{src}/model.onnx")).unwrap();
    let data = std::fs::read(format!("{src}/model.onnx.data")).unwrap();
    std::fs::write(dir.path().join("model.onnx.data"), &data[..data.len() / 2]).unwrap();
    let info = lab_nn::onnx_io::read(&bytes).unwrap();
    let e = info.external_files(dir.path()).unwrap_err().to_string();
    assert!(e.contains("the data file is truncated or belongs to another export"), "{e}");
    let mut moved = info.clone();
    moved.external[0].location = "../elsewhere.data".into();
    let e = moved.external_files(dir.path()).unwrap_err().to_string();
    assert!(e.contains("outside the model's folder"), "{e}");
    std::fs::remove_file(dir.path().join("model.onnx.data")).unwrap();
    let e = info.external_files(dir.path()).unwrap_err().to_string();
    assert!(e.contains("which cannot be read"), "{e}");
}
