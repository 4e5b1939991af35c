//! The real ONNX Runtime: loading, a forward pass, and the CUDA refusal.

use lab_nn::exec::run_graph;
use lab_nn::runtime::{SessionOptions, init};
use lab_nn::{DType, Device, Graph, NnError, Tensor};

#[test]
fn runtime_loads_and_runs_a_graph() {
    let info = init().expect("ONNX Runtime loads");
    assert!(info.library.exists());
    let mut g = Graph::new(DType::F32);
    let x = g.input("x", DType::F32, &[-1, 3]);
    let w = g.initializer("w", Tensor::f32(vec![3, 2], vec![1., 0., 0., 1., 1., 1.]));
    let y = g.matmul(x, w);
    let y = g.relu(y);
    g.output(y, "y");
    let xin = Tensor::f32(vec![2, 3], vec![1., 2., 3., -4., -5., -6.]);
    let out = run_graph(&g, &[("x", &xin)], SessionOptions::default()).unwrap();
    // [1,2,3]·W = [1+3, 2+3] = [4, 5]; the negative row is clipped to 0.
    assert_eq!(out[0], Tensor::f32(vec![2, 2], vec![4., 5., 0., 0.]));
}

#[test]
fn asking_for_cuda_without_it_is_an_error_not_a_cpu_run() {
    let info = init().unwrap();
    let mut g = Graph::new(DType::F32);
    let x = g.input("x", DType::F32, &[1]);
    let y = g.identity(x);
    g.output(y, "y");
    let r = lab_nn::runtime::session(&g.to_onnx_bytes(""), SessionOptions { threads: 1, device: Device::Cuda });
    if info.cuda {
        assert!(r.is_ok(), "CUDA is available here but the session failed: {:?}", r.err());
    } else {
        assert!(matches!(r, Err(NnError::CudaUnavailable(_))), "expected CudaUnavailable");
    }
}
