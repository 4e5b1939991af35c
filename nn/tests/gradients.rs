//! Every gradient rule against central finite differences, in f64, through ONNX Runtime.
//! Each case builds `out = f(inputs)` and checks d/d(inputs) of `sum(out · r)` for a random
//! `r`. Shapes with −1 exercise the dynamic-batch paths.

use lab_nn::autodiff::grad;
use lab_nn::exec::{run_graph, run_session};
use lab_nn::runtime::{SessionOptions, session};
use lab_nn::{DType, Graph, Tensor, V};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1_000_000) as f64 / 1_000_000.0
    }
    /// Uniform in [lo, hi), kept at least `gap` away from 0 (kinks of relu and max).
    fn tensor(&mut self, shape: &[usize], lo: f64, hi: f64, gap: f64) -> Tensor {
        let n = shape.iter().product();
        let v = (0..n)
            .map(|_| {
                loop {
                    let x = lo + (hi - lo) * self.next();
                    if x.abs() >= gap {
                        break x;
                    }
                }
            })
            .collect();
        Tensor::f64(shape.to_vec(), v)
    }
}

/// `spec`: (declared shape, concrete value) per input; `check`: which inputs to differentiate.
fn check(name: &str, spec: Vec<(Vec<i64>, Tensor)>, check: &[usize], f: impl Fn(&mut Graph, &[V]) -> V) {
    check_in(DType::F64, 1e-6, 1e-6, name, spec, check, f)
}

/// The same in f32, for ops ONNX Runtime has no f64 kernel for: a larger step and tolerance.
fn check_f32(name: &str, spec: Vec<(Vec<i64>, Tensor)>, check: &[usize], f: impl Fn(&mut Graph, &[V]) -> V) {
    let spec = spec
        .into_iter()
        .map(|(s, t)| (s, Tensor::f32(t.shape.clone(), t.to_f64().iter().map(|&v| v as f32).collect())))
        .collect();
    check_in(DType::F32, 1e-2, 2e-3, name, spec, check, f)
}

fn check_in(
    dt: DType,
    eps: f64,
    tol: f64,
    name: &str,
    spec: Vec<(Vec<i64>, Tensor)>,
    check: &[usize],
    f: impl Fn(&mut Graph, &[V]) -> V,
) {
    let build = |with_r: bool| {
        let mut g = Graph::new(dt);
        let xs: Vec<V> = spec.iter().enumerate().map(|(i, (s, _))| g.input(&format!("x{i}"), dt, s)).collect();
        let out = f(&mut g, &xs);
        (g, xs, out, with_r)
    };
    // Forward once to learn the output's concrete shape.
    let (mut g, _, out, _) = build(false);
    g.output(out, "out");
    let feeds: Vec<(String, &Tensor)> = spec.iter().enumerate().map(|(i, (_, t))| (format!("x{i}"), t)).collect();
    let feed_refs: Vec<(&str, &Tensor)> = feeds.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let fwd = run_graph(&g, &feed_refs, SessionOptions::default()).unwrap_or_else(|e| panic!("{name}: forward: {e}"));
    let mut rng = Rng(0xDEADBEEF ^ name.len() as u64);
    let r = rng.tensor(&fwd[0].shape, -1.0, 1.0, 0.0);
    let r =
        if dt == DType::F32 { Tensor::f32(r.shape.clone(), r.to_f64().iter().map(|&v| v as f32).collect()) } else { r };

    let (mut g, xs, out, _) = build(true);
    let rshape: Vec<i64> = g.shape(out).to_vec();
    let rv = g.input("r", dt, &rshape);
    let prod = g.mul(out, rv);
    let axes: Vec<i64> = (0..g.rank(prod) as i64).collect();
    let loss = if axes.is_empty() { prod } else { g.reduce_sum(prod, &axes, false) };
    let wrt: Vec<V> = check.iter().map(|&i| xs[i]).collect();
    let grads = grad(&mut g, loss, &wrt).unwrap_or_else(|e| panic!("{name}: {e}"));
    g.output(loss, "loss");
    for (k, gv) in grads.iter().enumerate() {
        g.output(*gv, &format!("g{k}"));
    }
    let mut s = session(&g.to_onnx_bytes(""), SessionOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut run = |inputs: &[Tensor]| {
        let mut feeds: Vec<(String, &Tensor)> = inputs.iter().enumerate().map(|(i, t)| (format!("x{i}"), t)).collect();
        feeds.push(("r".into(), &r));
        let refs: Vec<(&str, &Tensor)> = feeds.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        run_session(&mut s, &refs).unwrap_or_else(|e| panic!("{name}: run: {e}"))
    };
    let base: Vec<Tensor> = spec.iter().map(|(_, t)| t.clone()).collect();
    let analytic = run(&base);
    for (k, &i) in check.iter().enumerate() {
        let a = analytic[1 + k].to_f64();
        assert_eq!(a.len(), base[i].len(), "{name}: gradient of x{i} has the wrong size");
        for (j, &aj) in a.iter().enumerate() {
            let mut plus = base.clone();
            let mut minus = base.clone();
            nudge(&mut plus[i], j, eps);
            nudge(&mut minus[i], j, -eps);
            let fd = (run(&plus)[0].to_f64()[0] - run(&minus)[0].to_f64()[0]) / (2.0 * eps);
            let err = (aj - fd).abs() / fd.abs().max(1.0);
            assert!(err < tol, "{name}: d/dx{i}[{j}] analytic {aj} vs finite difference {fd}");
        }
    }
}

fn nudge(t: &mut Tensor, j: usize, by: f64) {
    match &mut t.data {
        lab_nn::tensor::Data::F64(v) => v[j] += by,
        lab_nn::tensor::Data::F32(v) => v[j] += by as f32,
        lab_nn::tensor::Data::I64(_) => unreachable!("integer inputs are not differentiated"),
    }
}

fn t(rng: &mut Rng, shape: &[usize]) -> Tensor {
    rng.tensor(shape, -1.0, 1.0, 0.05)
}

fn pos(rng: &mut Rng, shape: &[usize]) -> Tensor {
    rng.tensor(shape, 0.5, 2.0, 0.0)
}

#[test]
fn elementwise_binary_with_broadcasting() {
    let mut r = Rng(1);
    type Bin = fn(&mut Graph, V, V) -> V;
    let ops: [(&str, Bin); 4] = [("Add", Graph::add), ("Sub", Graph::sub), ("Mul", Graph::mul), ("Div", Graph::div)];
    for (name, op) in ops {
        // Same shapes; row broadcast over a dynamic batch; scalar-like [1, 1]; rank mismatch.
        check(name, vec![(vec![2, 3], t(&mut r, &[2, 3])), (vec![2, 3], pos(&mut r, &[2, 3]))], &[0, 1], |g, x| {
            op(g, x[0], x[1])
        });
        check(name, vec![(vec![-1, 3], t(&mut r, &[4, 3])), (vec![3], pos(&mut r, &[3]))], &[0, 1], |g, x| {
            op(g, x[0], x[1])
        });
        check(name, vec![(vec![2, 3], t(&mut r, &[2, 3])), (vec![1, 1], pos(&mut r, &[1, 1]))], &[0, 1], |g, x| {
            op(g, x[0], x[1])
        });
        check(
            name,
            vec![(vec![2, 1, 3], t(&mut r, &[2, 1, 3])), (vec![4, 1], pos(&mut r, &[4, 1]))],
            &[0, 1],
            |g, x| op(g, x[0], x[1]),
        );
    }
}

#[test]
fn pow_with_constant_exponent() {
    let mut r = Rng(2);
    check("Pow", vec![(vec![2, 3], pos(&mut r, &[2, 3])), (vec![], Tensor::f64(vec![], vec![2.5]))], &[0], |g, x| {
        g.pow(x[0], x[1])
    });
}

#[test]
fn matmul_shapes() {
    let mut r = Rng(3);
    check("MatMul 2d", vec![(vec![3, 4], t(&mut r, &[3, 4])), (vec![4, 2], t(&mut r, &[4, 2]))], &[0, 1], |g, x| {
        g.matmul(x[0], x[1])
    });
    check(
        "MatMul batch x 2d",
        vec![(vec![-1, 3, 4], t(&mut r, &[2, 3, 4])), (vec![4, 2], t(&mut r, &[4, 2]))],
        &[0, 1],
        |g, x| g.matmul(x[0], x[1]),
    );
    check(
        "MatMul batched",
        vec![(vec![2, 3, 4], t(&mut r, &[2, 3, 4])), (vec![2, 4, 5], t(&mut r, &[2, 4, 5]))],
        &[0, 1],
        |g, x| g.matmul(x[0], x[1]),
    );
    check(
        "MatMul broadcast batch",
        vec![(vec![2, 3, 4], t(&mut r, &[2, 3, 4])), (vec![1, 4, 5], t(&mut r, &[1, 4, 5]))],
        &[0, 1],
        |g, x| g.matmul(x[0], x[1]),
    );
}

#[test]
fn unary_activations() {
    let mut r = Rng(4);
    type Un = fn(&mut Graph, V) -> V;
    let ops: [(&str, Un); 7] = [
        ("Relu", Graph::relu),
        ("Tanh", Graph::tanh),
        ("Sigmoid", Graph::sigmoid),
        ("Exp", Graph::exp),
        ("Neg", Graph::neg),
        ("Identity", Graph::identity),
        ("Relu again", Graph::relu),
    ];
    for (name, op) in ops {
        check(name, vec![(vec![-1, 5], t(&mut r, &[3, 5]))], &[0], |g, x| op(g, x[0]));
    }
    // ONNX Runtime implements Erf (and so exact GELU) in f32 only.
    check_f32("Erf", vec![(vec![-1, 5], t(&mut r, &[3, 5]))], &[0], |g, x| g.erf(x[0]));
    check_f32("Gelu", vec![(vec![-1, 5], t(&mut r, &[3, 5]))], &[0], |g, x| g.gelu(x[0]));
    check("Log", vec![(vec![2, 3], pos(&mut r, &[2, 3]))], &[0], |g, x| g.log(x[0]));
    check("Sqrt", vec![(vec![2, 3], pos(&mut r, &[2, 3]))], &[0], |g, x| g.sqrt(x[0]));
}

#[test]
fn softmaxes() {
    let mut r = Rng(5);
    check("Softmax", vec![(vec![-1, 4], t(&mut r, &[3, 4]))], &[0], |g, x| g.softmax(x[0], -1));
    check("LogSoftmax", vec![(vec![-1, 4], t(&mut r, &[3, 4]))], &[0], |g, x| g.log_softmax(x[0], -1));
    check("Softmax axis 1 of 3", vec![(vec![2, 3, 4], t(&mut r, &[2, 3, 4]))], &[0], |g, x| g.softmax(x[0], 1));
}

#[test]
fn reductions() {
    let mut r = Rng(6);
    for keep in [true, false] {
        check("ReduceSum", vec![(vec![-1, 3, 4], t(&mut r, &[2, 3, 4]))], &[0], |g, x| g.reduce_sum(x[0], &[1], keep));
        check("ReduceSum all", vec![(vec![2, 3], t(&mut r, &[2, 3]))], &[0], |g, x| g.reduce_sum(x[0], &[0, 1], keep));
        check("ReduceMean static", vec![(vec![-1, 3, 4], t(&mut r, &[2, 3, 4]))], &[0], |g, x| {
            g.reduce_mean(x[0], &[-1], keep)
        });
        check("ReduceMean dynamic", vec![(vec![-1, 3], t(&mut r, &[5, 3]))], &[0], |g, x| {
            g.reduce_mean(x[0], &[0], keep)
        });
        check("ReduceMax", vec![(vec![3, 4], t(&mut r, &[3, 4]))], &[0], |g, x| g.reduce_max(x[0], &[1], keep));
    }
}

#[test]
fn shape_ops() {
    let mut r = Rng(7);
    check("Reshape", vec![(vec![-1, 6], t(&mut r, &[2, 6]))], &[0], |g, x| g.reshape(x[0], &[-1, 2, 3]));
    check("Transpose", vec![(vec![2, 3, 4], t(&mut r, &[2, 3, 4]))], &[0], |g, x| g.transpose(x[0], &[2, 0, 1]));
    check("Unsqueeze", vec![(vec![-1, 3], t(&mut r, &[2, 3]))], &[0], |g, x| g.unsqueeze(x[0], &[1]));
    check("Squeeze", vec![(vec![2, 1, 3], t(&mut r, &[2, 1, 3]))], &[0], |g, x| g.squeeze(x[0], &[1]));
    check("Concat", vec![(vec![2, 3], t(&mut r, &[2, 3])), (vec![2, 2], t(&mut r, &[2, 2]))], &[0, 1], |g, x| {
        g.concat(&[x[0], x[1]], 1)
    });
    check("Slice", vec![(vec![-1, 6], t(&mut r, &[2, 6]))], &[0], |g, x| g.slice(x[0], 1, 1, 4));
    check("Expand", vec![(vec![1, 3], t(&mut r, &[1, 3])), (vec![4, 3], t(&mut r, &[4, 3]))], &[0], |g, x| {
        g.expand_like(x[0], x[1])
    });
}

#[test]
fn gather_accumulates_repeated_indices() {
    let mut r = Rng(8);
    let emb = t(&mut r, &[5, 3]);
    let idx = Tensor::i64(vec![2, 3], vec![0, 2, 2, 4, 0, 0]);
    let mut g = Graph::new(DType::F64);
    let _ = &mut g;
    // Indices are an int64 input: a constant here, so only the table is differentiated.
    check("Gather", vec![(vec![5, 3], emb)], &[0], move |g, x| {
        let i = g.constant(idx.clone());
        g.gather(x[0], i)
    });
}

#[test]
fn where_and_cast() {
    let mut r = Rng(9);
    check("Where", vec![(vec![2, 3], t(&mut r, &[2, 3])), (vec![3], t(&mut r, &[3]))], &[0, 1], |g, x| {
        let z = g.scalar(0.0);
        let c = g.greater(x[0], z);
        g.where_(c, x[0], x[1])
    });
    // Through f32 and back: the finite difference sees f32 rounding, hence f32 tolerances.
    check_in(DType::F64, 1e-2, 2e-3, "Cast", vec![(vec![2, 3], t(&mut r, &[2, 3]))], &[0], |g, x| {
        let f = g.cast(x[0], DType::F32);
        g.cast(f, DType::F64)
    });
}

#[test]
fn layer_norm_decomposition() {
    let mut r = Rng(10);
    check(
        "LayerNorm",
        vec![(vec![-1, 4], t(&mut r, &[3, 4])), (vec![4], pos(&mut r, &[4])), (vec![4], t(&mut r, &[4]))],
        &[0, 1, 2],
        |g, x| g.layer_norm(x[0], x[1], x[2], 1e-5),
    );
}

#[test]
fn layer_norm_as_one_node() {
    // ONNX Runtime has no f64 kernel for it: checked in f32.
    let mut r = Rng(12);
    check_f32(
        "LayerNormalization",
        vec![(vec![-1, 3, 4], t(&mut r, &[2, 3, 4])), (vec![4], pos(&mut r, &[4])), (vec![4], t(&mut r, &[4]))],
        &[0, 1, 2],
        |g, x| g.layer_norm_fused(x[0], x[1], x[2], 1e-5),
    );
}

#[test]
fn shared_values_accumulate_gradients() {
    let mut r = Rng(11);
    // x is used three times: x·x + tanh(x).
    check("fan-out", vec![(vec![2, 3], t(&mut r, &[2, 3]))], &[0], |g, x| {
        let a = g.mul(x[0], x[0]);
        let b = g.tanh(x[0]);
        g.add(a, b)
    });
}

#[test]
fn gather_elements_along_the_last_axis() {
    let mut r = Rng(41);
    check("GatherElements", vec![(vec![2, 3, 4], t(&mut r, &[2, 3, 4]))], &[0], |g, x| {
        // Index 2 twice in one row: gradients of repeated picks add up.
        let idx = g.constant(Tensor::i64(vec![2, 3, 2], vec![0, 3, 1, 1, 2, 0, 2, 2, 3, 0, 1, 2]));
        g.gather_last(x[0], idx)
    });
}

/// Causal multi-head self-attention as the GPT uses it: two heads over a batch of two
/// sequences of three positions, with the causal mask; every input and weight checked.
#[test]
fn causal_self_attention() {
    let mut r = Rng(43);
    let (b, s, d) = (2, 3, 4);
    let bias = Tensor::f64(vec![s, s], lab_nn::gpt::causal_bias(s));
    check(
        "attention",
        vec![
            (vec![-1, s as i64, d as i64], t(&mut r, &[b, s, d])),
            (vec![d as i64, 3 * d as i64], t(&mut r, &[d, 3 * d])),
            (vec![3 * d as i64], t(&mut r, &[3 * d])),
            (vec![d as i64, d as i64], t(&mut r, &[d, d])),
            (vec![d as i64], t(&mut r, &[d])),
            (vec![s as i64, s as i64], bias),
        ],
        &[0, 1, 2, 3, 4],
        |g, x| lab_nn::gpt::attention(g, x[0], [x[1], x[2], x[3], x[4]], 2, x[5], None).0,
    );
}
