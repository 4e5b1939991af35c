use crate::{Type, Value};

/// What the checker knows of an op: its name, version, typed parameters and output.
#[derive(Debug, Clone)]
pub struct Signature {
    /// `generate`, `filter`, `finetune`, `probe`, `estimate`, `score`, `model`, `data`,
    /// `fit` or `report`.
    pub kind: &'static str,
    pub method: &'static str,
    /// Bumped on any change of meaning; part of every cache key.
    pub version: u32,
    /// User documentation, printed by `labrun ops`.
    pub doc: &'static str,
    pub params: Vec<ParamSpec>,
    pub output: Type,
    /// What one step of this op needs when a cluster runs it (`--executor slurm`).
    pub resources: Resources,
    /// What its arguments must satisfy, checked by `labrun check` wherever the values are
    /// known before the run. Filled from the op's `Params` by the registry, with `params`.
    pub checks: Vec<Check>,
    /// Facts about its output that later checks read (a model's input width, a dataset's).
    pub yields: Vec<Yield>,
}

/// A rule an op's arguments must follow, declared in its signature and checked before the
/// run (and again by the op, for values only known then). Rules compare equal by their
/// fields, a `Rule`'s test by its address (enough to find a declared rule in tests).
#[derive(Debug, Clone, PartialEq)]
#[allow(unpredictable_function_pointer_comparisons)]
pub enum Check {
    /// A number (or every number of a list) at least `min`; more than `min` when `strict`.
    Min { param: &'static str, min: f64, strict: bool },
    /// A number (or every number of a list) at most `max`; less than `max` when `strict`.
    Max { param: &'static str, max: f64, strict: bool },
    /// A string among `options`.
    OneOf { param: &'static str, options: &'static [&'static str] },
    /// A list with at least one element.
    NonEmpty { param: &'static str },
    /// `low < high`.
    Less { low: &'static str, high: &'static str },
    /// Two lists of the same length (`b` may be empty when `b_optional`).
    SameLength { a: &'static str, b: &'static str, b_optional: bool },
    /// A range argument that must lie within `0..fact` of an input (`logits` within the
    /// model's `outputs`).
    Within { param: &'static str, input: &'static str, fact: &'static str },
    /// Two inputs whose facts must agree (the data's `width`, the model's `inputs`).
    Agree { a: (&'static str, &'static str), b: (&'static str, &'static str) },
    /// A file argument of at most `bytes` bytes: checked by its size before the file is
    /// hashed or read.
    MaxBytes { param: &'static str, bytes: u64 },
    /// A rule the others cannot say, over the values of `params` (checked once all are
    /// known): `test` returns what is wrong, if anything. `doc` says the rule in words.
    Rule { params: &'static [&'static str], doc: &'static str, test: fn(&[&Value]) -> Option<String> },
}

/// A rule that the arguments break: at which argument, what is wrong, and a hint.
#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    pub param: &'static str,
    pub message: String,
    pub help: String,
}

/// A size as messages write it: `1.0 GB`, `12 MB`, `900 bytes`.
pub fn fmt_bytes(b: u64) -> String {
    match b {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.0} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.0} kB", b as f64 / 1e3),
        b => format!("{b} bytes"),
    }
}

/// A number as messages write it: `3`, `0.250`, `1.00e-4`.
pub fn fmt_num(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e9 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else if x.abs() >= 0.001 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

/// A fact about an op's output, for later [`Check::Within`] and [`Check::Agree`].
#[derive(Debug, Clone, PartialEq)]
pub enum Yield {
    /// `fact` is this number.
    Const(&'static str, i64),
    /// `fact` is the integer argument `param`.
    Arg(&'static str, &'static str),
    /// `fact` is the product of the integer list argument `param`.
    Product(&'static str, &'static str),
    /// `fact` is the fact `of` of the input `input`.
    From(&'static str, &'static str, &'static str),
    /// Every fact of the input `input` (a trained copy of a model is the same shape).
    All(&'static str),
}

impl Check {
    /// The rule in words, for `labrun ops`.
    pub fn describe(&self) -> String {
        let num = |x: f64| if x == x.trunc() { format!("{x:.0}") } else { x.to_string() };
        match self {
            Check::Min { param, min, strict } => format!("`{param}` {} {}", if *strict { ">" } else { "≥" }, num(*min)),
            Check::Max { param, max, strict } => format!("`{param}` {} {}", if *strict { "<" } else { "≤" }, num(*max)),
            Check::OneOf { param, options } => {
                format!(
                    "`{param}` is one of {}",
                    options.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
                )
            }
            Check::NonEmpty { param } => format!("`{param}` is not empty"),
            Check::MaxBytes { param, bytes } => format!("`{param}` is a file of at most {}", fmt_bytes(*bytes)),
            Check::Less { low, high } => format!("`{low}` < `{high}`"),
            Check::SameLength { a, b, b_optional } => {
                format!("`{b}` has one entry per `{a}`{}", if *b_optional { " (or none)" } else { "" })
            }
            Check::Within { param, input, fact } => format!("`{param}` lies within the {fact} of `{input}`"),
            Check::Agree { a, b } => format!("the {} of `{}` equals the {} of `{}`", a.1, a.0, b.1, b.0),
            Check::Rule { doc, .. } => doc.to_string(),
        }
    }

    /// The parameters this rule reads.
    pub fn params(&self) -> Vec<&'static str> {
        match self {
            Check::Min { param, .. } | Check::Max { param, .. } | Check::OneOf { param, .. } => vec![param],
            Check::NonEmpty { param } | Check::MaxBytes { param, .. } => vec![param],
            Check::Less { low, high } => vec![low, high],
            Check::SameLength { a, b, .. } => vec![a, b],
            Check::Within { param, input, .. } => vec![param, input],
            Check::Agree { a, b } => vec![a.0, b.0],
            Check::Rule { params, .. } => params.to_vec(),
        }
    }

    /// Whether the values break this rule, for rules on values (`Within` and `Agree` read
    /// facts of inputs, which the engine knows). `value` gives an argument's value when it
    /// is known, `len` a list's length (of values or of inputs).
    pub fn broken<'v>(
        &self,
        sig: &Signature,
        value: &dyn Fn(&str) -> Option<&'v Value>,
        len: &dyn Fn(&str) -> Option<usize>,
    ) -> Option<Broken> {
        let doc = |p: &str| sig.param(p).map_or(String::new(), |s| format!("`{p}`: {}", s.doc));
        let op = sig.name();
        match self {
            Check::Min { param, min: bound, strict } | Check::Max { param, max: bound, strict } => {
                let is_min = matches!(self, Check::Min { .. });
                let nums: Vec<f64> = match value(param) {
                    Some(Value::List(xs)) => xs.iter().filter_map(Value::as_f64).collect(),
                    // A range's bound is its start (its end is at least that).
                    Some(Value::Range { start, .. }) if is_min => vec![*start as f64],
                    Some(v) => v.as_f64().into_iter().collect(),
                    None => Vec::new(),
                };
                let x = nums.into_iter().find(|&x| match (is_min, *strict) {
                    (true, true) => x <= *bound,
                    (true, false) => x < *bound,
                    (false, true) => x >= *bound,
                    (false, false) => x > *bound,
                })?;
                let cmp = match (is_min, *strict) {
                    (true, true) => ">",
                    (true, false) => "≥",
                    (false, true) => "<",
                    (false, false) => "≤",
                };
                let (each, what) = match value(param) {
                    Some(Value::List(_)) => (" (each)", "it is"),
                    Some(Value::Range { .. }) => (" (its start)", "it starts at"),
                    _ => ("", "it is"),
                };
                Some(Broken {
                    param,
                    message: format!(
                        "`{param}` of `{op}` must be {cmp} {}{each}, but {what} {}",
                        fmt_num(*bound),
                        fmt_num(x)
                    ),
                    help: doc(param),
                })
            }
            Check::OneOf { param, options } => {
                let bad = match value(param) {
                    Some(Value::Str(v)) => Some(v.as_str()),
                    Some(Value::List(xs)) => xs.iter().filter_map(Value::as_str).find(|v| !options.contains(v)),
                    _ => None,
                }
                .filter(|v| !options.contains(v))?;
                let list = options.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ");
                Some(Broken {
                    param,
                    message: format!("`{param}` of `{op}` is `{bad}`; it takes {list}"),
                    help: doc(param),
                })
            }
            Check::NonEmpty { param } => (len(param) == Some(0)).then(|| Broken {
                param,
                message: format!("`{param}` of `{op}` is empty"),
                help: doc(param),
            }),
            Check::Less { low, high } => {
                let a = value(low).and_then(Value::as_f64)?;
                let b = value(high).and_then(Value::as_f64)?;
                (a >= b).then(|| Broken {
                    param: high,
                    message: format!("`{low}` ({}) must be less than `{high}` ({}) in `{op}`", fmt_num(a), fmt_num(b)),
                    help: format!("swap them, or widen the interval: {}", doc(high)),
                })
            }
            Check::SameLength { a, b, b_optional } => {
                let (la, lb) = (len(a)?, len(b)?);
                (la != lb && !(*b_optional && lb == 0)).then(|| Broken {
                    param: b,
                    message: format!("`{b}` has {lb} entries but `{a}` has {la}, in `{op}`"),
                    help: format!("give one entry of `{b}` per entry of `{a}`"),
                })
            }
            Check::Rule { params, doc: rule, test } => {
                let values: Vec<&Value> = params.iter().map(|p| value(p)).collect::<Option<_>>()?;
                let message = test(&values)?;
                // The message's first named parameter is the one to point at, when it is
                // one of the rule's (a rule on sizes names the one that is too large).
                let named = message.split('`').skip(1).step_by(2).find_map(|w| params.iter().find(|p| **p == w));
                Some(Broken {
                    param: named.copied().unwrap_or(params[0]),
                    message: format!("{message}, in `{op}`"),
                    help: format!("the rule: {rule}"),
                })
            }
            // Sizes are checked where files are resolved (`labrun check`) and read.
            Check::Within { .. } | Check::Agree { .. } | Check::MaxBytes { .. } => None,
        }
    }
}

/// The machine share a step needs on a cluster: CPUs, memory, GPUs and the time it is
/// expected to take at the op's default scale. A `.lab` file overrides them per call with
/// the reserved argument `resources: {cpus: 4, mem: "8G", gpus: 1, time: "2h"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resources {
    pub cpus: u32,
    pub mem_mb: u64,
    pub gpus: u32,
    /// Expected wall time in seconds; a job's time limit is a multiple of its steps' sum.
    pub seconds: u64,
}

impl Default for Resources {
    /// A small step: one CPU, 1 GiB, no GPU, a second.
    fn default() -> Self {
        Resources { cpus: 1, mem_mb: 1024, gpus: 0, seconds: 1 }
    }
}

impl Resources {
    /// The fields a `resources:` record may set, for messages.
    pub const FIELDS: &'static str =
        "`cpus` (≥ 1), `mem` (e.g. \"4G\", \"512M\"), `gpus` (≥ 0), `time` (e.g. \"90m\", \"2h\", \"1:30:00\")";

    /// These resources with the fields of a `resources:` record overriding them.
    pub fn with(mut self, record: &std::collections::BTreeMap<String, Value>) -> Result<Resources, String> {
        for (k, v) in record {
            match (k.as_str(), v) {
                ("cpus", Value::Int(n)) if (1..=4096).contains(n) => self.cpus = *n as u32,
                ("gpus", Value::Int(n)) if (0..=64).contains(n) => self.gpus = *n as u32,
                ("mem", Value::Int(n)) if (1..=1 << 40).contains(n) => self.mem_mb = *n as u64,
                ("mem", Value::Str(s)) => self.mem_mb = parse_mem(s)?,
                ("time", Value::Int(n)) if (1..=10_000_000).contains(n) => self.seconds = 60 * *n as u64,
                ("time", Value::Str(s)) => self.seconds = parse_seconds(s)?,
                ("cpus" | "gpus" | "mem" | "time", v) => {
                    return Err(format!("`{k}: {v}` is out of range; the fields are {}", Self::FIELDS));
                }
                _ => return Err(format!("`{k}` is not a resource; the fields are {}", Self::FIELDS)),
            }
        }
        Ok(self)
    }

    /// `1 CPU, 1 GiB, no GPU, 1 min`
    pub fn describe(&self) -> String {
        let mem = if self.mem_mb.is_multiple_of(1024) {
            format!("{} GiB", self.mem_mb / 1024)
        } else {
            format!("{} MiB", self.mem_mb)
        };
        let gpus = match self.gpus {
            0 => "no GPU".to_string(),
            1 => "1 GPU".to_string(),
            n => format!("{n} GPUs"),
        };
        let cpus = if self.cpus == 1 { "1 CPU".to_string() } else { format!("{} CPUs", self.cpus) };
        let time = match self.seconds {
            s if s < 120 => format!("{s} s"),
            s if s < 7200 => format!("{} min", s.div_ceil(60)),
            s => format!("{:.1} h", s as f64 / 3600.0),
        };
        format!("{cpus}, {mem}, {gpus}, about {time}")
    }
}

/// `"4G"`, `"512M"`, `"2048"` (MiB) → MiB.
fn parse_mem(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'G' | 'g')) => (&t[..i], 1024.0),
        Some((i, 'M' | 'm')) => (&t[..i], 1.0),
        Some((i, 'T' | 't')) => (&t[..i], 1024.0 * 1024.0),
        _ => (t, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x * mult < 1e9 => Ok((x * mult).ceil() as u64),
        _ => Err(format!("`mem: \"{s}\"` is not a memory size; write e.g. \"4G\" or \"512M\"")),
    }
}

/// `"90m"`, `"2h"`, `"45s"`, `"1:30:00"`, `"30:00"`, `"90"` (minutes) → seconds (rounded up).
fn parse_seconds(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("`time: \"{s}\"` is not a duration; write e.g. \"90m\", \"2h\" or \"1:30:00\"");
    let secs: f64 = if t.contains(':') {
        let parts: Vec<f64> = t.split(':').map(|p| p.parse::<f64>()).collect::<Result<_, _>>().map_err(|_| bad())?;
        match parts.as_slice() {
            [m, s] => m * 60.0 + s,
            [h, m, s] => h * 3600.0 + m * 60.0 + s,
            _ => return Err(bad()),
        }
    } else {
        let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
        let x: f64 = num.trim().parse().map_err(|_| bad())?;
        x * match unit {
            "s" => 1.0,
            "" | "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        }
    };
    if !(secs > 0.0 && secs < 1e9) {
        return Err(bad());
    }
    Ok(secs.ceil() as u64)
}

/// One parameter. Parameters of artifact type (or lists of them) are the op's inputs:
/// edges of the DAG. The others are values fixed before the run.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: Type,
    /// `None`: the argument is required.
    pub default: Option<Value>,
    pub doc: &'static str,
}

impl Signature {
    pub fn new(kind: &'static str, method: &'static str, version: u32, output: Type, doc: &'static str) -> Self {
        // What a step of each kind typically needs; ops that need more or less say so.
        let resources = match kind {
            "finetune" => Resources { cpus: 2, mem_mb: 4096, gpus: 0, seconds: 600 },
            "generate" | "probe" | "estimate" | "score" => Resources { cpus: 1, mem_mb: 2048, gpus: 0, seconds: 10 },
            _ => Resources::default(),
        };
        Signature {
            kind,
            method,
            version,
            doc,
            params: Vec::new(),
            output,
            resources,
            checks: Vec::new(),
            yields: Vec::new(),
        }
    }

    /// Declares a fact about the output.
    pub fn yields(mut self, y: Yield) -> Self {
        self.yields.push(y);
        self
    }

    /// Declares what one step needs on a cluster (the default is [`Resources::default`]).
    pub fn needs(mut self, cpus: u32, mem_gib: u64, seconds: u64) -> Self {
        self.resources = Resources { cpus, mem_mb: mem_gib * 1024, gpus: 0, seconds };
        self
    }

    /// Checks the rules on values against the arguments of a run (the checker enforced
    /// them already; this keeps an op safe when called directly).
    pub fn validate(&self, args: &crate::Args) -> Result<(), crate::OpError> {
        let value = |p: &str| match args.map.get(p) {
            Some(crate::ArgIn::Value(v)) => Some(v),
            _ => None,
        };
        // Lists of inputs arrive flattened (a list of lists is one list): their lengths
        // were checked at lowering, where the nesting is known.
        let len = |p: &str| match args.map.get(p) {
            Some(crate::ArgIn::Value(Value::List(v))) => Some(v.len()),
            _ => None,
        };
        for c in &self.checks {
            if let Some(b) = c.broken(self, &value, &len) {
                // `argument `count` of `filter.head` must be ≥ 1, …`, not the name twice.
                let prefix = format!("`{}` ", b.param);
                let message = b.message.strip_prefix(&prefix).map_or(b.message.clone(), str::to_string);
                return Err(crate::OpError::Invalid { name: b.param.to_string(), message });
            }
        }
        Ok(())
    }

    /// Panics when a rule or a fact names no parameter, or a name is declared twice: a bug
    /// in an op's declaration, found when the registry is built (by every test).
    pub fn assert_consistent(&self) {
        let name = self.name();
        for (i, p) in self.params.iter().enumerate() {
            assert!(self.params[..i].iter().all(|q| q.name != p.name), "{name}: `{}` is declared twice", p.name);
        }
        let known = |p: &str| self.param(p).is_some();
        for c in &self.checks {
            for p in c.params() {
                assert!(known(p), "{name}: the rule `{}` names `{p}`, which is no parameter", c.describe());
            }
        }
        for y in &self.yields {
            let p = match y {
                Yield::Const(..) => continue,
                Yield::Arg(_, p) | Yield::Product(_, p) | Yield::From(_, p, _) | Yield::All(p) => p,
            };
            assert!(known(p), "{name}: a fact of the output names `{p}`, which is no parameter");
        }
    }

    /// `kind.method`
    pub fn name(&self) -> String {
        format!("{}.{}", self.kind, self.method)
    }

    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The call form shown in help lines: `score.accuracy(model: Model, data: Dataset, …)`.
    pub fn synopsis(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match &p.default {
                Some(d) => format!("{}: {} = {}", p.name, p.ty, d),
                None => format!("{}: {}", p.name, p.ty),
            })
            .collect();
        format!("{}({}) -> {}", self.name(), params.join(", "), self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rec(fields: &[(&str, Value)]) -> BTreeMap<String, Value> {
        fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn resource_records_override_fields_and_reject_nonsense() {
        let r = Resources::default()
            .with(&rec(&[
                ("cpus", Value::Int(4)),
                ("mem", Value::Str("1.5G".into())),
                ("gpus", Value::Int(1)),
                ("time", Value::Str("1:30:00".into())),
            ]))
            .unwrap();
        assert_eq!(r, Resources { cpus: 4, mem_mb: 1536, gpus: 1, seconds: 5400 });
        assert_eq!(r.describe(), "4 CPUs, 1536 MiB, 1 GPU, about 90 min");
        let t = |s: &str| Resources::default().with(&rec(&[("time", Value::Str(s.into()))])).map(|r| r.seconds);
        assert_eq!((t("2h"), t("45s"), t("30:00"), t("90")), (Ok(7200), Ok(45), Ok(1800), Ok(5400)));
        assert!(t("soon").unwrap_err().contains("not a duration"));
        let e = Resources::default().with(&rec(&[("cpu", Value::Int(2))])).unwrap_err();
        assert!(e.contains("`cpu` is not a resource"), "{e}");
        assert!(Resources::default().with(&rec(&[("cpus", Value::Int(0))])).unwrap_err().contains("out of range"));
        assert!(Resources::default().with(&rec(&[("mem", Value::Str("lots".into()))])).is_err());
    }
}
