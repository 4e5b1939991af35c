//! The GPT behind the low-probability estimators, through ONNX Runtime: exact enumeration
//! against brute force through the model's own decoder (a separate graph), the gradient
//! graph's logits against the forward graph's, its one-hot gradient against finite
//! differences of the target logit, and the activations against the unembedding.

use lab_nn::decode::Decoder;
use lab_nn::gpt::{Gpt, GptSpec};
use lab_nn::lowprob::{self, Dist, GptOracle, Oracle};
use lab_nn::runtime::SessionOptions;
use lab_nn::tokenizer::Tokenizer;

fn tiny(tied: bool) -> Gpt {
    let spec = GptSpec { vocab: 6, width: 8, heads: 2, layers: 2, context: 5, tied, value_head: false };
    let mut m = Gpt::init(spec, Tokenizer::chars("abcdef").unwrap(), 3).unwrap();
    // Larger weights than GPT-2's init, so that argmaxes vary with the input.
    let mut state = 0x2545f4914f6cdd1du64;
    for (name, t) in &mut m.params {
        // Weights only: noisy biases and LayerNorm shifts would swamp the input.
        if name.ends_with(".b") || name.contains("ln") {
            continue;
        }
        if let lab_nn::tensor::Data::F32(v) = &mut t.data {
            for x in v.iter_mut() {
                // xorshift64: uniform noise in [-1, 1).
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *x += 2.0 * ((state >> 40) as f32 / (1u64 << 24) as f32) - 1.0;
            }
        }
    }
    m
}

fn dist() -> Dist {
    let p = |opts: &[(usize, f64)]| opts.to_vec();
    Dist {
        name: "d".into(),
        positions: vec![
            p(&[(0, 0.5), (2, 0.3), (5, 0.2)]),
            p(&[(1, 0.6), (3, 0.4)]),
            p(&[(0, 0.1), (1, 0.2), (4, 0.3), (5, 0.4)]),
        ],
    }
}

#[test]
fn exact_matches_brute_force_through_the_decoder() {
    for tied in [false, true] {
        let m = tiny(tied);
        let d = dist();
        let mut o = GptOracle::new(&m, 3, SessionOptions::default()).unwrap();
        let got = lowprob::exact(&mut o, &d, 5, &mut |_| true).unwrap().unwrap();
        let mut dec =
            Decoder::new(&m.decoder_graph(false).to_onnx_bytes(""), Some(5), SessionOptions::default()).unwrap();
        let mut want = vec![0f64; 6];
        for &(a, pa) in &d.positions[0] {
            for &(b, pb) in &d.positions[1] {
                for &(c, pc) in &d.positions[2] {
                    let (out, _) = dec.full(&[vec![a as i64, b as i64, c as i64]], false).unwrap();
                    want[lowprob::argmax(&out.logits[2 * 6..3 * 6])] += pa * pb * pc;
                }
            }
        }
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-9, "tied {tied}: {got:?} vs {want:?}");
        }
        assert!(want.iter().filter(|&&p| p > 0.0).count() >= 2, "the test model always answers the same: {want:?}");
    }
}

#[test]
fn gradient_graph_agrees_with_the_forward_graph_and_finite_differences() {
    let m = tiny(false);
    let mut o = GptOracle::new(&m, 3, SessionOptions::default()).unwrap();
    let xs = [2u32, 3, 4, 0, 1, 5];
    let fwd = o.logits(&xs, 2).unwrap();
    for target in [0, 4] {
        let (logits, grad) = o.target_grad(&xs, 2, target).unwrap();
        for (a, b) in logits.iter().zip(&fwd) {
            assert!((a - b).abs() < 1e-4, "{logits:?} vs {fwd:?}");
        }
        // The one-hot gradient at position i, token v, against central differences of the
        // target logit along that one-hot coordinate (the graph takes any real input).
        let (v, t) = (6usize, 3usize);
        for (i, tok) in [(0usize, 1usize), (1, 3), (2, 5)] {
            let h = 1e-2f32;
            let logit = |delta: f32| {
                let mut oh = vec![0f32; t * v];
                for (j, &x) in xs[..3].iter().enumerate() {
                    oh[j * v + x as usize] = 1.0;
                }
                oh[i * v + tok] += delta;
                lowprob::onehot_logits(&m, &oh, t).unwrap()[target] as f64
            };
            let fd = (logit(h) - logit(-h)) / (2.0 * h as f64);
            let g = grad[i * v + tok] as f64;
            assert!((fd - g).abs() < 2e-3 * (1.0 + g.abs()), "target {target}, ({i}, {tok}): fd {fd} vs grad {g}");
        }
    }
    // The activations times the unembedding are the logits.
    let acts = o.activations(&xs, 2).unwrap();
    let (wu, width) = o.unembedding();
    for (row, a) in acts.chunks(width).enumerate() {
        for k in 0..6 {
            let l: f32 = (0..width).map(|j| a[j] * wu[j * 6 + k]).sum();
            assert!((l - fwd[row * 6 + k]).abs() < 1e-4, "row {row} token {k}: {l} vs {}", fwd[row * 6 + k]);
        }
    }
}

#[test]
fn a_model_with_nan_weights_is_an_error_not_a_guess() {
    let mut m = tiny(false);
    if let lab_nn::tensor::Data::F32(v) = &mut m.params.iter_mut().find(|(n, _)| n == "head.w").unwrap().1.data {
        v[0] = f32::NAN;
    }
    let mut o = GptOracle::new(&m, 3, SessionOptions::default()).unwrap();
    let err = lowprob::exact(&mut o, &dist(), 4, &mut |_| true).unwrap_err().to_string();
    assert!(err.contains("NaN or infinity"), "{err}");
}
