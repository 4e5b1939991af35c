//! Reverse-mode differentiation of a [`Graph`]: appends the nodes that compute the
//! gradient of a scalar with respect to chosen values (weights or inputs). One rule per
//! ONNX op; every rule is checked against finite differences in `tests/gradients.rs`.

use crate::NnError;
use crate::graph::{Attr, Graph, Node, V};
use crate::tensor::{DType, Data};
use std::collections::HashMap;

/// Appends d`loss`/d`wrt[i]` for each `i` and returns those values. `loss` must be a
/// scalar. Values that `loss` does not depend on get zeros.
pub fn grad(g: &mut Graph, loss: V, wrt: &[V]) -> Result<Vec<V>, NnError> {
    if !g.shape(loss).is_empty() {
        return Err(NnError::Graph(format!("the loss must be a scalar, not of shape {:?}", g.shape(loss))));
    }
    // Which values depend on `wrt`: only their gradients are needed.
    let mut needs = vec![false; g.values.len()];
    for &w in wrt {
        needs[w.0] = true;
    }
    let forward: Vec<Node> = g.nodes.clone();
    for n in &forward {
        if n.inputs.iter().any(|i| needs[i.0]) {
            for o in &n.outputs {
                needs[o.0] = true;
            }
        }
    }
    let mut grads: HashMap<V, V> = HashMap::new();
    let one = g.scalar(1.0);
    grads.insert(loss, one);
    for n in forward.iter().rev() {
        let Some(&gy) = grads.get(&n.outputs[0]) else { continue };
        let want: Vec<bool> = n.inputs.iter().map(|i| needs.get(i.0).copied().unwrap_or(false)).collect();
        if !want.iter().any(|&w| w) {
            continue;
        }
        let gx = rule(g, n, gy, &want)?;
        for (i, gi) in n.inputs.iter().zip(gx) {
            if let Some(gi) = gi {
                let acc = match grads.get(i) {
                    Some(&prev) => g.add(prev, gi),
                    None => gi,
                };
                grads.insert(*i, acc);
            }
        }
    }
    Ok(wrt.iter().map(|w| grads.get(w).copied().unwrap_or_else(|| g.zeros_like(*w))).collect())
}

/// The int64 constant behind `v` (axes, pads, shapes), if `v` is one.
fn const_ints(g: &Graph, v: V) -> Option<Vec<i64>> {
    g.initializers.iter().find(|(k, _)| *k == v).and_then(|(_, t)| match &t.data {
        Data::I64(x) => Some(x.clone()),
        _ => None,
    })
}

/// Sums `gv` over the axes along which `target` was broadcast, then gives it `target`'s
/// shape.
fn unbroadcast(g: &mut Graph, gv: V, target: V) -> V {
    let gs = g.shape(gv).to_vec();
    let ts = g.shape(target).to_vec();
    if gs == ts {
        return gv;
    }
    let extra = gs.len() - ts.len();
    let mut axes: Vec<i64> = (0..extra as i64).collect();
    for (i, &td) in ts.iter().enumerate() {
        if td == 1 && gs[extra + i] != 1 {
            axes.push((extra + i) as i64);
        }
    }
    let r = if axes.is_empty() { gv } else { g.reduce_sum(gv, &axes, true) };
    g.reshape_like(r, target)
}

fn rule(g: &mut Graph, n: &Node, gy: V, want: &[bool]) -> Result<Vec<Option<V>>, NnError> {
    let x = |i: usize| n.inputs[i];
    let y = n.outputs[0];
    let w = |i: usize| want.get(i).copied().unwrap_or(false);
    Ok(match n.op {
        "Add" => vec![w(0).then(|| unbroadcast(g, gy, x(0))), w(1).then(|| unbroadcast(g, gy, x(1)))],
        "Sub" => vec![
            w(0).then(|| unbroadcast(g, gy, x(0))),
            w(1).then(|| {
                let ng = g.neg(gy);
                unbroadcast(g, ng, x(1))
            }),
        ],
        "Mul" => vec![
            w(0).then(|| {
                let t = g.mul(gy, x(1));
                unbroadcast(g, t, x(0))
            }),
            w(1).then(|| {
                let t = g.mul(gy, x(0));
                unbroadcast(g, t, x(1))
            }),
        ],
        "Div" => vec![
            w(0).then(|| {
                let t = g.div(gy, x(1));
                unbroadcast(g, t, x(0))
            }),
            w(1).then(|| {
                // −g·a/b² = −g·y/b
                let t = g.mul(gy, y);
                let t = g.div(t, x(1));
                let t = g.neg(t);
                unbroadcast(g, t, x(1))
            }),
        ],
        "Pow" => {
            if w(1) {
                return Err(NnError::Graph("the gradient of Pow with respect to its exponent is not supported".into()));
            }
            vec![
                Some({
                    let one = g.scalar(1.0);
                    let bm1 = g.sub(x(1), one);
                    let p = g.pow(x(0), bm1);
                    let t = g.mul(p, x(1));
                    let t = g.mul(gy, t);
                    unbroadcast(g, t, x(0))
                }),
                None,
            ]
        }
        "MatMul" => {
            let (a, b) = (x(0), x(1));
            let ga = w(0).then(|| {
                let bt = g.transpose_last(b);
                let t = g.matmul(gy, bt);
                unbroadcast(g, t, a)
            });
            let gb = w(1).then(|| {
                if g.rank(b) == 2 && g.rank(a) > 2 {
                    let k = *g.shape(a).last().unwrap();
                    let nn = *g.shape(gy).last().unwrap();
                    let a2 = g.reshape(a, &[-1, k]);
                    let g2 = g.reshape(gy, &[-1, nn]);
                    let at = g.transpose_last(a2);
                    g.matmul(at, g2)
                } else {
                    let at = g.transpose_last(a);
                    let t = g.matmul(at, gy);
                    unbroadcast(g, t, b)
                }
            });
            vec![ga, gb]
        }
        "Relu" => {
            let z = g.scalar(0.0);
            let pos = g.greater(x(0), z);
            vec![Some(g.where_(pos, gy, z))]
        }
        "Tanh" => {
            let one = g.scalar(1.0);
            let yy = g.mul(y, y);
            let d = g.sub(one, yy);
            vec![Some(g.mul(gy, d))]
        }
        "Sigmoid" => {
            let one = g.scalar(1.0);
            let om = g.sub(one, y);
            let d = g.mul(y, om);
            vec![Some(g.mul(gy, d))]
        }
        "Exp" => vec![Some(g.mul(gy, y))],
        "Log" => vec![Some(g.div(gy, x(0)))],
        "Sqrt" => {
            let half = g.scalar(0.5);
            let t = g.div(gy, y);
            vec![Some(g.mul(t, half))]
        }
        "Neg" => vec![Some(g.neg(gy))],
        "Identity" => vec![Some(gy)],
        "Erf" => {
            let c = g.scalar(2.0 / std::f64::consts::PI.sqrt());
            let xx = g.mul(x(0), x(0));
            let nx = g.neg(xx);
            let e = g.exp(nx);
            let d = g.mul(e, c);
            vec![Some(g.mul(gy, d))]
        }
        "Softmax" => {
            let axis = n.attr_int("axis").unwrap_or(-1);
            let gyy = g.mul(gy, y);
            let s = g.reduce_sum(gyy, &[axis], true);
            let d = g.sub(gy, s);
            vec![Some(g.mul(y, d))]
        }
        "LogSoftmax" => {
            let axis = n.attr_int("axis").unwrap_or(-1);
            let p = g.exp(y);
            let s = g.reduce_sum(gy, &[axis], true);
            let ps = g.mul(p, s);
            vec![Some(g.sub(gy, ps))]
        }
        "ReduceSum" | "ReduceMean" | "ReduceMax" => {
            let rank = g.rank(x(0)) as i64;
            let axes: Vec<i64> = if n.op == "ReduceSum" {
                const_ints(g, x(1)).ok_or_else(|| NnError::Graph("ReduceSum axes must be a constant".into()))?
            } else {
                n.attr_ints("axes").map(<[i64]>::to_vec).unwrap_or_else(|| (0..rank).collect())
            };
            let axes: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + rank } else { a }).collect();
            let keep = n.attr_int("keepdims").unwrap_or(1) == 1;
            let gk = if keep { gy } else { g.unsqueeze(gy, &axes) };
            let ge = g.expand_like(gk, x(0));
            let gx = match n.op {
                "ReduceSum" => ge,
                "ReduceMean" => {
                    let dims: Vec<i64> = axes.iter().map(|&a| g.shape(x(0))[a as usize]).collect();
                    let count = if dims.iter().all(|&d| d > 0) {
                        g.scalar(dims.iter().product::<i64>() as f64)
                    } else {
                        // A dynamic dimension: count elements at run time.
                        let shape = g.node("Shape", &[x(0)], vec![], DType::I64, vec![rank]);
                        let ax = g.ints(&axes);
                        let picked = g.node(
                            "Gather",
                            &[shape, ax],
                            vec![("axis", Attr::Int(0))],
                            DType::I64,
                            vec![axes.len() as i64],
                        );
                        let prod =
                            g.node("ReduceProd", &[picked], vec![("keepdims", Attr::Int(0))], DType::I64, vec![]);
                        g.cast(prod, g.float)
                    };
                    g.div(ge, count)
                }
                _ => {
                    let yk = if keep { y } else { g.unsqueeze(y, &axes) };
                    let ye = g.expand_like(yk, x(0));
                    let hit = g.equal(x(0), ye);
                    let z = g.scalar(0.0);
                    g.where_(hit, ge, z)
                }
            };
            let mut out = vec![Some(gx)];
            out.extend(n.inputs[1..].iter().map(|_| None));
            out
        }
        "Reshape" | "Squeeze" | "Unsqueeze" => {
            let mut out = vec![Some(g.reshape_like(gy, x(0)))];
            out.extend(n.inputs[1..].iter().map(|_| None));
            out
        }
        "Expand" => vec![Some(unbroadcast(g, gy, x(0))), None],
        "Transpose" => {
            let perm =
                n.attr_ints("perm").map(<[i64]>::to_vec).unwrap_or_else(|| (0..g.rank(x(0)) as i64).rev().collect());
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p as usize] = i as i64;
            }
            vec![Some(g.transpose(gy, &inv))]
        }
        "Gather" => {
            if n.attr_int("axis").unwrap_or(0) != 0 {
                return Err(NnError::Graph("Gather gradients are supported along axis 0 only".into()));
            }
            let zeros = g.zeros_like(x(0));
            let idx = g.unsqueeze(x(1), &[-1]);
            let (dt, shape) = (g.dtype(x(0)), g.shape(x(0)).to_vec());
            let s = g.node("ScatterND", &[zeros, idx, gy], vec![("reduction", Attr::Str("add".into()))], dt, shape);
            vec![Some(s), None]
        }
        "LayerNormalization" => {
            // y = x̂·γ + β with x̂ = (x − μ)·r: dx = r·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ.
            let (mean, inv) = (n.outputs[1], n.outputs[2]);
            let c = g.sub(x(0), mean);
            let xhat = g.mul(c, inv);
            let dgamma = w(1).then(|| {
                let t = g.mul(gy, xhat);
                unbroadcast(g, t, x(1))
            });
            let dbeta = w(2).then(|| unbroadcast(g, gy, x(2)));
            let dx = w(0).then(|| {
                let gg = g.mul(gy, x(1));
                let m1 = g.reduce_mean(gg, &[-1], true);
                let gx = g.mul(gg, xhat);
                let m2 = g.reduce_mean(gx, &[-1], true);
                let t = g.mul(xhat, m2);
                let d = g.sub(gg, m1);
                let d = g.sub(d, t);
                g.mul(d, inv)
            });
            vec![dx, dgamma, dbeta]
        }
        "GatherElements" => {
            let axis = n.attr_int("axis").unwrap_or(0);
            let zeros = g.zeros_like(x(0));
            let (dt, shape) = (g.dtype(x(0)), g.shape(x(0)).to_vec());
            let attrs = vec![("axis", Attr::Int(axis)), ("reduction", Attr::Str("add".into()))];
            vec![Some(g.node("ScatterElements", &[zeros, x(1), gy], attrs, dt, shape)), None]
        }
        "Concat" => {
            let axis = n.attr_int("axis").unwrap_or(0);
            let mut off = 0;
            let mut out = Vec::new();
            for (i, &inp) in n.inputs.iter().enumerate() {
                let size = g.shape(inp)[axis as usize];
                if size < 0 {
                    return Err(NnError::Graph("Concat gradients need static sizes along the axis".into()));
                }
                out.push(w(i).then(|| g.slice(gy, axis, off, off + size)));
                off += size;
            }
            out
        }
        "Slice" => {
            let (s, e, a) = (const_ints(g, x(1)), const_ints(g, x(2)), const_ints(g, x(3)));
            let (Some(s), Some(e), Some(a)) = (s, e, a) else {
                return Err(NnError::Graph("Slice gradients need constant starts, ends and axes".into()));
            };
            let rank = g.rank(x(0));
            let mut pads = vec![0i64; 2 * rank];
            for ((&st, &en), &ax) in s.iter().zip(&e).zip(&a) {
                let ax = if ax < 0 { ax + rank as i64 } else { ax } as usize;
                let dim = g.shape(x(0))[ax];
                if dim < 0 {
                    return Err(NnError::Graph("Slice gradients need a static size along the sliced axis".into()));
                }
                pads[ax] = st;
                pads[rank + ax] = dim - en.min(dim);
            }
            let p = g.ints(&pads);
            let (dt, shape) = (g.dtype(x(0)), g.shape(x(0)).to_vec());
            let padded = g.node("Pad", &[gy, p], vec![], dt, shape);
            vec![Some(padded), None, None, None]
        }
        "Where" => {
            let z = g.scalar(0.0);
            vec![
                None,
                w(1).then(|| {
                    let t = g.where_(x(0), gy, z);
                    unbroadcast(g, t, x(1))
                }),
                w(2).then(|| {
                    let t = g.where_(x(0), z, gy);
                    unbroadcast(g, t, x(2))
                }),
            ]
        }
        "Cast" => {
            let dt = g.dtype(x(0));
            vec![dt.is_float().then(|| g.cast(gy, dt))]
        }
        "Greater" | "Equal" | "Shape" => vec![None; n.inputs.len()],
        other => return Err(NnError::Graph(format!("no gradient rule for `{other}`"))),
    })
}
