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

    /// Reads an ONNX initializer (raw or typed storage). Float16 values become f32; bool
    /// and int32 values become i64. Tensors stored as external data are read by
    /// [`crate::onnx_io`], not here.
    pub fn from_proto(p: &crate::onnx::TensorProto) -> Result<Tensor, crate::NnError> {
        use crate::onnx::data_type::*;
        if p.data_location == crate::onnx::EXTERNAL {
            return Err(crate::NnError::BadModel(format!(
                "initializer `{}` is stored as external data; its values are not read here",
                p.name
            )));
        }
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
            // Half-precision weights are widened to f32 (exactly: every f16 is an f32).
            FLOAT16 => {
                let v: Vec<f32> = if !p.raw_data.is_empty() {
                    p.raw_data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()
                } else {
                    p.int32_data.iter().map(|&b| f16_to_f32(b as u16)).collect()
                };
                Tensor { shape, data: Data::F32(v) }
            }
            // Booleans and 32-bit integers as int64 (0/1 for booleans).
            BOOL | INT32 => {
                let v: Vec<i64> = if !p.raw_data.is_empty() {
                    if p.data_type == BOOL {
                        p.raw_data.iter().map(|&b| (b != 0) as i64).collect()
                    } else {
                        p.raw_data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect()
                    }
                } else {
                    p.int32_data.iter().map(|&x| if p.data_type == BOOL { (x != 0) as i64 } else { x as i64 }).collect()
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

/// An IEEE 754 half-precision number's bits as f32.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        // Subnormal: normalise the fraction.
        (0, f) => {
            let shift = f.leading_zeros() - 21;
            sign | ((127 - 15 + 1 - shift) << 23) | (((f << shift) & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod half_tests {
    use super::f16_to_f32;

    #[test]
    fn half_precision_values_widen_exactly() {
        for (bits, want) in [
            (0x0000u16, 0.0f32),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x03ff, 6.097_555e-5),
            (0x0400, 6.103_515_6e-5),
        ] {
            assert_eq!(f16_to_f32(bits), want, "{bits:#06x}");
        }
        assert!(f16_to_f32(0x7c00).is_infinite() && f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }
}
