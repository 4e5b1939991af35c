//! The graph IR: values with static shapes (−1 marks a dynamic dimension, the batch) and
//! ONNX nodes, built through typed methods that infer each output's shape. Autodiff reads
//! these shapes; [`Graph::to_onnx`] writes a standard ONNX model.

use crate::NnError;
use crate::onnx::{self, attribute_type};
use crate::tensor::{DType, Tensor};

/// ONNX opset the graphs use.
pub const OPSET: i64 = 17;

/// A value in a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V(pub usize);

#[derive(Debug, Clone)]
pub struct ValueInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(String),
    Tensor(Tensor),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub op: &'static str,
    pub inputs: Vec<V>,
    pub outputs: Vec<V>,
    pub attrs: Vec<(&'static str, Attr)>,
}

impl Node {
    pub fn attr_int(&self, name: &str) -> Option<i64> {
        self.attrs
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, a)| if let Attr::Int(i) = a { Some(*i) } else { None })
    }

    pub fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        self.attrs
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, a)| if let Attr::Ints(i) = a { Some(&i[..]) } else { None })
    }
}

/// A computation graph under construction.
#[derive(Debug, Clone)]
pub struct Graph {
    pub values: Vec<ValueInfo>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<V>,
    pub outputs: Vec<V>,
    pub initializers: Vec<(V, Tensor)>,
    /// The float type of constants this graph makes.
    pub float: DType,
    /// Names of the dynamic dimensions of inputs and outputs (`batch`, `seq`, …), where
    /// they differ; unnamed dynamic dimensions are written as `N`.
    pub dim_names: Vec<(V, Vec<&'static str>)>,
}

/// Numpy broadcasting of two static shapes (−1 is a dynamic dimension).
pub fn broadcast(a: &[i64], b: &[i64]) -> Result<Vec<i64>, NnError> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            (-1, y) | (y, -1) => y,
            _ => return Err(NnError::Graph(format!("shapes {a:?} and {b:?} do not broadcast"))),
        };
    }
    Ok(out)
}

fn norm_axis(axis: i64, rank: usize) -> usize {
    if axis < 0 { (axis + rank as i64) as usize } else { axis as usize }
}

impl Graph {
    pub fn new(float: DType) -> Self {
        Graph {
            values: Vec::new(),
            nodes: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            float,
            dim_names: Vec::new(),
        }
    }

    pub fn info(&self, v: V) -> &ValueInfo {
        &self.values[v.0]
    }

    pub fn shape(&self, v: V) -> &[i64] {
        &self.values[v.0].shape
    }

    pub fn dtype(&self, v: V) -> DType {
        self.values[v.0].dtype
    }

    pub fn rank(&self, v: V) -> usize {
        self.values[v.0].shape.len()
    }

    fn value(&mut self, name: Option<&str>, dtype: DType, shape: Vec<i64>) -> V {
        let id = self.values.len();
        let name = name.map_or_else(|| format!("v{id}"), str::to_string);
        self.values.push(ValueInfo { name, dtype, shape });
        V(id)
    }

    /// Renames a value (inputs and outputs keep stable names).
    pub fn set_name(&mut self, v: V, name: &str) {
        self.values[v.0].name = name.to_string();
    }

    /// A graph input.
    pub fn input(&mut self, name: &str, dtype: DType, shape: &[i64]) -> V {
        let v = self.value(Some(name), dtype, shape.to_vec());
        self.inputs.push(v);
        v
    }

    /// A named initializer (a weight stored in the model file).
    pub fn initializer(&mut self, name: &str, t: Tensor) -> V {
        let v = self.value(Some(name), t.dtype(), t.shape.iter().map(|&d| d as i64).collect());
        self.initializers.push((v, t));
        v
    }

    /// A constant tensor (stored as an anonymous initializer).
    pub fn constant(&mut self, t: Tensor) -> V {
        let v = self.value(None, t.dtype(), t.shape.iter().map(|&d| d as i64).collect());
        self.initializers.push((v, t));
        v
    }

    /// A scalar of the graph's float type.
    pub fn scalar(&mut self, x: f64) -> V {
        let dt = self.float;
        self.constant(Tensor::float(dt, vec![], vec![x]))
    }

    /// A 1-D int64 constant (axes, shapes, pads).
    pub fn ints(&mut self, xs: &[i64]) -> V {
        self.constant(Tensor::i64(vec![xs.len()], xs.to_vec()))
    }

    /// Names the dimensions of an input or output (static ones are ignored), so that ONNX
    /// tools see which dynamic dimensions are equal.
    pub fn name_dims(&mut self, v: V, names: &[&'static str]) {
        self.dim_names.push((v, names.to_vec()));
    }

    /// A scalar int64 constant.
    pub fn int_scalar(&mut self, x: i64) -> V {
        self.constant(Tensor::i64(vec![], vec![x]))
    }

    /// Dimension `axis` of `x` at run time, as an int64 scalar.
    pub fn dim(&mut self, x: V, axis: i64) -> V {
        let rank = self.rank(x) as i64;
        let s = self.node("Shape", &[x], vec![], DType::I64, vec![rank]);
        let a = self.int_scalar(norm_axis(axis, rank as usize) as i64);
        self.node("Gather", &[s, a], vec![("axis", Attr::Int(0))], DType::I64, vec![])
    }

    /// `start, start+1, …, end−1` from int64 scalars.
    pub fn range(&mut self, start: V, end: V) -> V {
        let one = self.int_scalar(1);
        self.node("Range", &[start, end, one], vec![], DType::I64, vec![-1])
    }

    /// Reshape that keeps the first `keep` dimensions (static or not) and replaces the rest
    /// with `tail`.
    pub fn reshape_keep(&mut self, x: V, keep: usize, tail: &[i64]) -> V {
        let mut code = vec![0i64; keep];
        code.extend_from_slice(tail);
        let mut shape = self.shape(x)[..keep].to_vec();
        shape.extend_from_slice(tail);
        let s = self.ints(&code);
        let dt = self.dtype(x);
        self.node("Reshape", &[x, s], vec![], dt, shape)
    }

    /// `data[..., indices]` along the last axis, element-wise (ONNX GatherElements):
    /// `indices` has `data`'s shape except a smaller last axis.
    pub fn gather_last(&mut self, data: V, indices: V) -> V {
        let (dt, shape) = (self.dtype(data), self.shape(indices).to_vec());
        let axis = self.rank(data) as i64 - 1;
        self.node("GatherElements", &[data, indices], vec![("axis", Attr::Int(axis))], dt, shape)
    }

    pub fn output(&mut self, v: V, name: &str) {
        self.set_name(v, name);
        self.outputs.push(v);
    }

    /// Appends a node with one output of the given type and shape.
    pub fn node(
        &mut self,
        op: &'static str,
        inputs: &[V],
        attrs: Vec<(&'static str, Attr)>,
        dtype: DType,
        shape: Vec<i64>,
    ) -> V {
        let out = self.value(None, dtype, shape);
        self.nodes.push(Node { op, inputs: inputs.to_vec(), outputs: vec![out], attrs });
        out
    }

    fn binary(&mut self, op: &'static str, a: V, b: V) -> V {
        let shape = broadcast(self.shape(a), self.shape(b)).unwrap_or_else(|e| panic!("{op}: {e}"));
        let dt = self.dtype(a);
        self.node(op, &[a, b], vec![], dt, shape)
    }

    pub fn add(&mut self, a: V, b: V) -> V {
        self.binary("Add", a, b)
    }
    pub fn sub(&mut self, a: V, b: V) -> V {
        self.binary("Sub", a, b)
    }
    pub fn mul(&mut self, a: V, b: V) -> V {
        self.binary("Mul", a, b)
    }
    pub fn div(&mut self, a: V, b: V) -> V {
        self.binary("Div", a, b)
    }
    /// `a ^ b`; gradients flow to `a` only.
    pub fn pow(&mut self, a: V, b: V) -> V {
        self.binary("Pow", a, b)
    }

    fn compare(&mut self, op: &'static str, a: V, b: V) -> V {
        let shape = broadcast(self.shape(a), self.shape(b)).unwrap_or_else(|e| panic!("{op}: {e}"));
        self.node(op, &[a, b], vec![], DType::Bool, shape)
    }
    pub fn greater(&mut self, a: V, b: V) -> V {
        self.compare("Greater", a, b)
    }
    pub fn equal(&mut self, a: V, b: V) -> V {
        self.compare("Equal", a, b)
    }

    fn unary(&mut self, op: &'static str, x: V) -> V {
        let (dt, shape) = (self.dtype(x), self.shape(x).to_vec());
        self.node(op, &[x], vec![], dt, shape)
    }
    pub fn relu(&mut self, x: V) -> V {
        self.unary("Relu", x)
    }
    pub fn tanh(&mut self, x: V) -> V {
        self.unary("Tanh", x)
    }
    pub fn sigmoid(&mut self, x: V) -> V {
        self.unary("Sigmoid", x)
    }
    pub fn exp(&mut self, x: V) -> V {
        self.unary("Exp", x)
    }
    pub fn log(&mut self, x: V) -> V {
        self.unary("Log", x)
    }
    pub fn sqrt(&mut self, x: V) -> V {
        self.unary("Sqrt", x)
    }
    pub fn neg(&mut self, x: V) -> V {
        self.unary("Neg", x)
    }
    pub fn erf(&mut self, x: V) -> V {
        self.unary("Erf", x)
    }
    pub fn identity(&mut self, x: V) -> V {
        self.unary("Identity", x)
    }

    /// GELU, exact form: x · ½(1 + erf(x/√2)).
    pub fn gelu(&mut self, x: V) -> V {
        let r = self.scalar(std::f64::consts::FRAC_1_SQRT_2);
        let half = self.scalar(0.5);
        let one = self.scalar(1.0);
        let s = self.mul(x, r);
        let e = self.erf(s);
        let e1 = self.add(e, one);
        let h = self.mul(e1, half);
        self.mul(x, h)
    }

    pub fn softmax(&mut self, x: V, axis: i64) -> V {
        let (dt, shape) = (self.dtype(x), self.shape(x).to_vec());
        self.node("Softmax", &[x], vec![("axis", Attr::Int(axis))], dt, shape)
    }

    pub fn log_softmax(&mut self, x: V, axis: i64) -> V {
        let (dt, shape) = (self.dtype(x), self.shape(x).to_vec());
        self.node("LogSoftmax", &[x], vec![("axis", Attr::Int(axis))], dt, shape)
    }

    /// Matrix product with numpy semantics for rank ≥ 2 operands.
    pub fn matmul(&mut self, a: V, b: V) -> V {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        assert!(sa.len() >= 2 && sb.len() >= 2, "matmul needs rank ≥ 2");
        let batch = broadcast(&sa[..sa.len() - 2], &sb[..sb.len() - 2]).unwrap_or_else(|e| panic!("MatMul: {e}"));
        let (m, k1, k2, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 2], sb[sb.len() - 1]);
        assert!(k1 == k2 || k1 < 0 || k2 < 0, "MatMul: inner dimensions {k1} and {k2} differ");
        let mut shape = batch;
        shape.extend([m, n]);
        let dt = self.dtype(a);
        self.node("MatMul", &[a, b], vec![], dt, shape)
    }

    fn reduced(&self, x: V, axes: &[i64], keepdims: bool) -> (Vec<usize>, Vec<i64>) {
        let rank = self.rank(x);
        let axes: Vec<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect();
        let mut shape = Vec::new();
        for (i, &d) in self.shape(x).iter().enumerate() {
            if axes.contains(&i) {
                if keepdims {
                    shape.push(1);
                }
            } else {
                shape.push(d);
            }
        }
        (axes, shape)
    }

    /// Sum over `axes` (opset 13+: axes are an input).
    pub fn reduce_sum(&mut self, x: V, axes: &[i64], keepdims: bool) -> V {
        let (axes, shape) = self.reduced(x, axes, keepdims);
        let ax = self.ints(&axes.iter().map(|&a| a as i64).collect::<Vec<_>>());
        let dt = self.dtype(x);
        self.node("ReduceSum", &[x, ax], vec![("keepdims", Attr::Int(keepdims as i64))], dt, shape)
    }

    /// Mean over `axes` (opset 17: axes are an attribute).
    pub fn reduce_mean(&mut self, x: V, axes: &[i64], keepdims: bool) -> V {
        let (axes, shape) = self.reduced(x, axes, keepdims);
        let dt = self.dtype(x);
        let attrs = vec![
            ("axes", Attr::Ints(axes.iter().map(|&a| a as i64).collect())),
            ("keepdims", Attr::Int(keepdims as i64)),
        ];
        self.node("ReduceMean", &[x], attrs, dt, shape)
    }

    pub fn reduce_max(&mut self, x: V, axes: &[i64], keepdims: bool) -> V {
        let (axes, shape) = self.reduced(x, axes, keepdims);
        let dt = self.dtype(x);
        let attrs = vec![
            ("axes", Attr::Ints(axes.iter().map(|&a| a as i64).collect())),
            ("keepdims", Attr::Int(keepdims as i64)),
        ];
        self.node("ReduceMax", &[x], attrs, dt, shape)
    }

    /// Reshape to a static target (one −1 allowed, as in ONNX).
    pub fn reshape(&mut self, x: V, shape: &[i64]) -> V {
        let total: i64 = self.shape(x).iter().product();
        let known: i64 = shape.iter().filter(|&&d| d != -1).product();
        let out: Vec<i64> =
            shape.iter().map(|&d| if d == -1 && total > 0 && known > 0 { total / known } else { d }).collect();
        let s = self.ints(shape);
        let dt = self.dtype(x);
        self.node("Reshape", &[x, s], vec![], dt, out)
    }

    /// Reshape to the (runtime) shape of `like`.
    pub fn reshape_like(&mut self, x: V, like: V) -> V {
        let s = self.node("Shape", &[like], vec![], DType::I64, vec![self.rank(like) as i64]);
        let (dt, shape) = (self.dtype(x), self.shape(like).to_vec());
        self.node("Reshape", &[x, s], vec![], dt, shape)
    }

    /// Broadcasts `x` to the (runtime) shape of `like`.
    pub fn expand_like(&mut self, x: V, like: V) -> V {
        let s = self.node("Shape", &[like], vec![], DType::I64, vec![self.rank(like) as i64]);
        let (dt, shape) = (self.dtype(x), self.shape(like).to_vec());
        self.node("Expand", &[x, s], vec![], dt, shape)
    }

    pub fn transpose(&mut self, x: V, perm: &[i64]) -> V {
        let s = self.shape(x).to_vec();
        let shape = perm.iter().map(|&p| s[p as usize]).collect();
        let dt = self.dtype(x);
        self.node("Transpose", &[x], vec![("perm", Attr::Ints(perm.to_vec()))], dt, shape)
    }

    /// Swaps the last two axes.
    pub fn transpose_last(&mut self, x: V) -> V {
        let r = self.rank(x) as i64;
        let mut perm: Vec<i64> = (0..r).collect();
        perm.swap(r as usize - 1, r as usize - 2);
        self.transpose(x, &perm)
    }

    pub fn unsqueeze(&mut self, x: V, axes: &[i64]) -> V {
        let rank = self.rank(x) + axes.len();
        let axes: Vec<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect();
        let mut src = self.shape(x).iter();
        let shape = (0..rank).map(|i| if axes.contains(&i) { 1 } else { *src.next().unwrap() }).collect();
        let ax = self.ints(&axes.iter().map(|&a| a as i64).collect::<Vec<_>>());
        let dt = self.dtype(x);
        self.node("Unsqueeze", &[x, ax], vec![], dt, shape)
    }

    pub fn squeeze(&mut self, x: V, axes: &[i64]) -> V {
        let rank = self.rank(x);
        let axes: Vec<usize> = axes.iter().map(|&a| norm_axis(a, rank)).collect();
        let shape = self.shape(x).iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
        let ax = self.ints(&axes.iter().map(|&a| a as i64).collect::<Vec<_>>());
        let dt = self.dtype(x);
        self.node("Squeeze", &[x, ax], vec![], dt, shape)
    }

    /// `data[indices]` along axis 0 (embedding lookup).
    pub fn gather(&mut self, data: V, indices: V) -> V {
        let mut shape = self.shape(indices).to_vec();
        shape.extend_from_slice(&self.shape(data)[1..]);
        let dt = self.dtype(data);
        self.node("Gather", &[data, indices], vec![("axis", Attr::Int(0))], dt, shape)
    }

    pub fn concat(&mut self, xs: &[V], axis: i64) -> V {
        let rank = self.rank(xs[0]);
        let ax = norm_axis(axis, rank);
        let mut shape = self.shape(xs[0]).to_vec();
        let sizes: Vec<i64> = xs.iter().map(|&x| self.shape(x)[ax]).collect();
        shape[ax] = if sizes.iter().any(|&d| d < 0) { -1 } else { sizes.iter().sum() };
        let dt = self.dtype(xs[0]);
        self.node("Concat", xs, vec![("axis", Attr::Int(ax as i64))], dt, shape)
    }

    /// `x[start..end]` along `axis` (static bounds).
    pub fn slice(&mut self, x: V, axis: i64, start: i64, end: i64) -> V {
        let rank = self.rank(x);
        let ax = norm_axis(axis, rank);
        let mut shape = self.shape(x).to_vec();
        shape[ax] = end - start;
        let (s, e, a) = (self.ints(&[start]), self.ints(&[end]), self.ints(&[ax as i64]));
        let dt = self.dtype(x);
        self.node("Slice", &[x, s, e, a], vec![], dt, shape)
    }

    pub fn where_(&mut self, cond: V, a: V, b: V) -> V {
        let s = broadcast(self.shape(cond), self.shape(a))
            .and_then(|s| broadcast(&s, self.shape(b)))
            .unwrap_or_else(|e| panic!("Where: {e}"));
        let dt = self.dtype(a);
        self.node("Where", &[cond, a, b], vec![], dt, s)
    }

    pub fn cast(&mut self, x: V, to: DType) -> V {
        let shape = self.shape(x).to_vec();
        self.node("Cast", &[x], vec![("to", Attr::Int(to.onnx() as i64))], to, shape)
    }

    /// Layer normalisation over the last axis, decomposed into primitives (so autodiff
    /// needs no rule of its own): (x − mean) / sqrt(var + eps) · gamma + beta.
    pub fn layer_norm(&mut self, x: V, gamma: V, beta: V, eps: f64) -> V {
        let mean = self.reduce_mean(x, &[-1], true);
        let c = self.sub(x, mean);
        let sq = self.mul(c, c);
        let var = self.reduce_mean(sq, &[-1], true);
        let e = self.scalar(eps);
        let ve = self.add(var, e);
        let sd = self.sqrt(ve);
        let n = self.div(c, sd);
        let g = self.mul(n, gamma);
        self.add(g, beta)
    }

    /// Layer normalisation over the last axis as one ONNX `LayerNormalization` node; its
    /// mean and inverse standard deviation are outputs too, which its gradient rule reuses.
    pub fn layer_norm_fused(&mut self, x: V, gamma: V, beta: V, eps: f64) -> V {
        let (dt, shape) = (self.dtype(x), self.shape(x).to_vec());
        let mut stat = shape.clone();
        if let Some(last) = stat.last_mut() {
            *last = 1;
        }
        let outs: Vec<V> = [shape, stat.clone(), stat].into_iter().map(|s| self.value(None, dt, s)).collect();
        // The statistics in the input's own type (the default would be f32).
        let attrs = vec![
            ("axis", Attr::Int(-1)),
            ("epsilon", Attr::Float(eps as f32)),
            ("stash_type", Attr::Int(dt.onnx() as i64)),
        ];
        self.nodes.push(Node { op: "LayerNormalization", inputs: vec![x, gamma, beta], outputs: outs.clone(), attrs });
        outs[0]
    }

    /// Zeros shaped like `x` at run time.
    pub fn zeros_like(&mut self, x: V) -> V {
        let z = self.scalar(0.0);
        let z = if self.dtype(x) == self.float { z } else { self.cast(z, self.dtype(x)) };
        self.expand_like(z, x)
    }

    /// The standard ONNX model of this graph: inputs, outputs and initializers by name.
    pub fn to_onnx(&self, doc: &str) -> onnx::ModelProto {
        let vi = |v: V| {
            let info = &self.values[v.0];
            let names = self.dim_names.iter().find(|(k, _)| *k == v).map(|(_, n)| &n[..]).unwrap_or(&[]);
            let dims = info
                .shape
                .iter()
                .enumerate()
                .map(|(i, &d)| onnx::Dimension {
                    value: Some(if d < 0 {
                        onnx::dimension::Value::DimParam(names.get(i).copied().unwrap_or("N").into())
                    } else {
                        onnx::dimension::Value::DimValue(d)
                    }),
                })
                .collect();
            onnx::ValueInfoProto {
                name: info.name.clone(),
                r#type: Some(onnx::TypeProto {
                    tensor_type: Some(onnx::TypeProtoTensor {
                        elem_type: info.dtype.onnx(),
                        shape: Some(onnx::TensorShapeProto { dim: dims }),
                    }),
                }),
                doc_string: String::new(),
            }
        };
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| onnx::NodeProto {
                input: n.inputs.iter().map(|v| self.values[v.0].name.clone()).collect(),
                output: n.outputs.iter().map(|v| self.values[v.0].name.clone()).collect(),
                name: format!("{}_{i}", n.op),
                op_type: n.op.to_string(),
                attribute: n.attrs.iter().map(|(k, a)| attr_proto(k, a)).collect(),
                ..Default::default()
            })
            .collect();
        onnx::ModelProto {
            ir_version: 8,
            producer_name: "labrun".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(onnx::GraphProto {
                node: nodes,
                name: "labrun".into(),
                initializer: self.initializers.iter().map(|(v, t)| t.to_proto(&self.values[v.0].name)).collect(),
                input: self.inputs.iter().map(|&v| vi(v)).collect(),
                output: self.outputs.iter().map(|&v| vi(v)).collect(),
                ..Default::default()
            }),
            opset_import: vec![onnx::OperatorSetIdProto { domain: String::new(), version: OPSET }],
            ..Default::default()
        }
    }

    /// The model as `.onnx` bytes.
    pub fn to_onnx_bytes(&self, doc: &str) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.to_onnx(doc))
    }
}

fn attr_proto(name: &str, a: &Attr) -> onnx::AttributeProto {
    let mut p = onnx::AttributeProto { name: name.into(), ..Default::default() };
    match a {
        Attr::Int(i) => {
            p.i = *i;
            p.r#type = attribute_type::INT;
        }
        Attr::Ints(v) => {
            p.ints = v.clone();
            p.r#type = attribute_type::INTS;
        }
        Attr::Float(f) => {
            p.f = *f;
            p.r#type = attribute_type::FLOAT;
        }
        Attr::Str(s) => {
            p.s = s.as_bytes().to_vec();
            p.r#type = attribute_type::STRING;
        }
        Attr::Tensor(t) => {
            p.t = Some(t.to_proto(""));
            p.r#type = attribute_type::TENSOR;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_rules() {
        assert_eq!(broadcast(&[-1, 3], &[3]).unwrap(), vec![-1, 3]);
        assert_eq!(broadcast(&[4, 1], &[1, 5]).unwrap(), vec![4, 5]);
        assert_eq!(broadcast(&[], &[2, 2]).unwrap(), vec![2, 2]);
        assert!(broadcast(&[2, 3], &[4]).is_err());
    }

    #[test]
    fn shapes_are_inferred() {
        let mut g = Graph::new(DType::F32);
        let x = g.input("x", DType::F32, &[-1, 4, 8]);
        let w = g.initializer("w", Tensor::zeros(DType::F32, vec![8, 3]));
        let y = g.matmul(x, w);
        assert_eq!(g.shape(y), &[-1, 4, 3]);
        let s = g.reduce_sum(y, &[1], false);
        assert_eq!(g.shape(s), &[-1, 3]);
        let r = g.reshape(y, &[-1, 3]);
        assert_eq!(g.shape(r), &[-1, 3]);
        let t = g.transpose_last(y);
        assert_eq!(g.shape(t), &[-1, 3, 4]);
        let c = g.concat(&[y, y], -1);
        assert_eq!(g.shape(c), &[-1, 4, 6]);
        let sl = g.slice(c, -1, 1, 4);
        assert_eq!(g.shape(sl), &[-1, 4, 3]);
        let u = g.unsqueeze(sl, &[1]);
        assert_eq!(g.shape(u), &[-1, 1, 4, 3]);
    }
}
