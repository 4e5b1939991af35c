//! Host tensors: what goes into and comes out of graphs.

/// Element types used by labrun graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I64,
    Bool,
}

impl DType {
    pub fn onnx(self) -> i32 {
        use crate::onnx::data_type::*;
        match self {
            DType::F32 => FLOAT,
            DType::F64 => DOUBLE,
            DType::I64 => INT64,
            DType::Bool => BOOL,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

/// Tensor contents.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// A dense, row-major host tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "shape does not match data");
        Tensor { shape, data: Data::F32(data) }
    }

    pub fn f64(shape: Vec<usize>, data: Vec<f64>) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "shape does not match data");
        Tensor { shape, data: Data::F64(data) }
    }

    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "shape does not match data");
        Tensor { shape, data: Data::I64(data) }
    }

    /// A tensor of floats of the given type filled from `f64` values.
    pub fn float(dtype: DType, shape: Vec<usize>, data: Vec<f64>) -> Tensor {
        match dtype {
            DType::F32 => Tensor::f32(shape, data.into_iter().map(|v| v as f32).collect()),
            DType::F64 => Tensor::f64(shape, data),
            other => panic!("{other:?} is not a float type"),
        }
    }

    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        match dtype {
            DType::I64 => Tensor::i64(shape, vec![0; n]),
            d => Tensor::float(d, shape, vec![0.0; n]),
        }
    }

    pub fn dtype(&self) -> DType {
        match self.data {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::I64(_) => DType::I64,
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as `f64`, whatever the element type.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::F64(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// The values as i64 (floats truncated).
    pub fn to_i64(&self) -> Vec<i64> {
        match &self.data {
            Data::I64(v) => v.clone(),
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::F64(v) => v.iter().map(|&x| x as i64).collect(),
        }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Little-endian bytes, as ONNX `raw_data` and safetensors store them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    pub fn to_proto(&self, name: &str) -> crate::onnx::TensorProto {
        crate::onnx::TensorProto {
            dims: self.shape.iter().map(|&d| d as i64).collect(),
            data_type: self.dtype().onnx(),
            name: name.to_string(),
            raw_data: self.to_le_bytes(),
            ..Default::default()
        }
    }

    /// Reads an ONNX initializer (raw or typed storage).
    pub fn from_proto(p: &crate::onnx::TensorProto) -> Result<Tensor, crate::NnError> {
        use crate::onnx::data_type::*;
        let shape: Vec<usize> = p.dims.iter().map(|&d| d.max(0) as usize).collect();
        let n: usize = shape.iter().product();
        let bad = |what: &str| crate::NnError::BadModel(format!("initializer `{}`: {what}", p.name));
        let t = match p.data_type {
            FLOAT => {
                let v: Vec<f32> = if !p.raw_data.is_empty() {
                    p.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
                } else {
                    p.float_data.clone()
                };
                Tensor { shape, data: Data::F32(v) }
            }
            DOUBLE => {
                let v: Vec<f64> = if !p.raw_data.is_empty() {
                    p.raw_data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
                } else {
                    p.double_data.clone()
                };
                Tensor { shape, data: Data::F64(v) }
            }
            INT64 => {
                let v: Vec<i64> = if !p.raw_data.is_empty() {
                    p.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
                } else {
                    p.int64_data.clone()
                };
                Tensor { shape, data: Data::I64(v) }
            }
            other => return Err(bad(&format!("element type {other} is not supported"))),
        };
        let len = match &t.data {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I64(v) => v.len(),
        };
        if len != n {
            return Err(bad(&format!("holds {len} values for shape {:?}", t.shape)));
        }
        Ok(t)
    }
}
