use crate::Type;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A value known before the run: a literal, a param, or the result of arithmetic on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Range { start: i64, end: i64 },
    Record(BTreeMap<String, Value>),
}

impl Value {
    pub fn type_of(&self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::Str(_) => Type::Str,
            Value::Range { .. } => Type::Range,
            Value::Record(_) => Type::Record,
            Value::List(items) => {
                Type::list(items.iter().fold(Type::Any, |acc, v| acc.unify(&v.type_of()).unwrap_or(Type::Any)))
            }
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Appends an unambiguous, canonical encoding: tagged, length-prefixed, floats by bit
    /// pattern, records in key order. Equal values give equal bytes and vice versa.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bool(b) => out.extend_from_slice(&[b'b', *b as u8]),
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(b'f');
                // -0.0 and 0.0 mean the same to every op; NaN never reaches here.
                let f = if *f == 0.0 { 0.0 } else { *f };
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                out.push(b's');
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::List(items) => {
                out.push(b'l');
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for v in items {
                    v.encode(out);
                }
            }
            Value::Range { start, end } => {
                out.push(b'r');
                out.extend_from_slice(&start.to_le_bytes());
                out.extend_from_slice(&end.to_le_bytes());
            }
            Value::Record(fields) => {
                out.push(b'{');
                out.extend_from_slice(&(fields.len() as u64).to_le_bytes());
                for (k, v) in fields {
                    Value::Str(k.clone()).encode(out);
                    v.encode(out);
                }
            }
        }
    }
}

/// For defaults written in Rust (`defaults(steps = 800, lr = 3e-3)`).
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Range { start, end } => write!(f, "{start}..{end}"),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
            Value::Record(fields) => {
                write!(f, "{{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode(&mut out);
        out
    }

    #[test]
    fn encoding_is_unambiguous() {
        // Same printed digits, different types or nesting: different bytes.
        assert_ne!(enc(&Value::Int(1)), enc(&Value::Float(1.0)));
        assert_ne!(
            enc(&Value::Str("ab".into())),
            enc(&Value::List(vec![Value::Str("a".into()), Value::Str("b".into())]))
        );
        assert_ne!(
            enc(&Value::List(vec![Value::List(vec![]), Value::Int(0)])),
            enc(&Value::List(vec![Value::List(vec![Value::Int(0)])]))
        );
        assert_eq!(enc(&Value::Float(0.0)), enc(&Value::Float(-0.0)));
    }

    #[test]
    fn display_reads_like_source() {
        let v = Value::List(vec![Value::Int(1), Value::Float(2.0), Value::Range { start: 0, end: 10 }]);
        assert_eq!(v.to_string(), "[1, 2.0, 0..10]");
    }
}
