//! `filter.*`: ops that keep some rows of a dataset.

use crate::artifact::Dataset;
use crate::curve::Curve;
use crate::params::{CurveDir, DatasetDir, Params};
use crate::text::TextData;
use crate::{Op, OpError, Registry, RunCtx, Signature, Type};
use rand::SeedableRng;
use rand::seq::index::sample;
use std::collections::BTreeMap;

pub fn register(r: &mut Registry) {
    r.add(Take);
    r.add(crate::bigbench::Decontaminate);
    r.add(Head);
    r.add(NumberLists);
    r.add(Exclude);
    r.add(Between);
}

/// The rows of a curve whose value in one column lies in a range.
pub struct Between;

#[derive(Params)]
#[params(rules = between_rules)]
pub struct BetweenParams {
    /// the curve (a table of numbers)
    curve: CurveDir,
    /// the column compared
    column: String,
    /// the least value kept
    min: f64,
    /// the greatest value kept
    max: f64,
}

/// A closed interval: `min` = `max` keeps the rows equal to it.
fn between_rules() -> Vec<crate::Check> {
    vec![crate::Check::Rule {
        params: &["min", "max"],
        doc: "`min` ≤ `max`",
        test: |v| {
            let (lo, hi) = (v[0].as_f64()?, v[1].as_f64()?);
            (lo > hi).then(|| format!("`min` ({lo}) is above `max` ({hi}); swap them"))
        },
    }]
}

impl Op for Between {
    type Params = BetweenParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "between",
            1,
            Type::Curve,
            "the rows of a curve whose `column` lies in [`min`, `max`] (e.g. the targets whose exact probability is in a range), in order",
        )
    }

    fn run(&self, ctx: &RunCtx, p: BetweenParams) -> Result<(), OpError> {
        let c = Curve::read(&p.curve)?;
        let col = c.column(&p.column, "column")?;
        if !col.iter().any(|v| v.is_finite()) {
            return Err(OpError::invalid("curve", format!("has no number in column `{}` to compare", p.column)));
        }
        let rows: Vec<Vec<f64>> =
            c.rows.iter().zip(&col).filter(|(_, v)| **v >= p.min && **v <= p.max).map(|(r, _)| r.clone()).collect();
        if rows.is_empty() {
            return Err(OpError::invalid(
                "min",
                format!(
                    "keeps no row: `{}` ranges from {} to {} in the curve; widen [`min`, `max`]",
                    p.column,
                    col.iter().cloned().fold(f64::INFINITY, f64::min),
                    col.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                ),
            ));
        }
        let mut m = crate::artifact::Metrics::new();
        m.insert("rows".into(), serde_json::json!(rows.len()));
        m.insert("of".into(), serde_json::json!(c.rows.len()));
        Curve { columns: c.columns, rows }.write(ctx.out, &m)
    }
}

/// Drops the records whose field equals that of any record of another dataset: how a
/// pipeline keeps evaluation examples out of training data.
pub struct Exclude;

#[derive(Params)]
pub struct ExcludeParams {
    /// text records to filter
    data: DatasetDir,
    /// text records that must not appear
    held_out: DatasetDir,
    /// the text field compared
    #[param(default = "prompt")]
    field: String,
}

impl Op for Exclude {
    type Params = ExcludeParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "exclude",
            1,
            Type::Dataset,
            "the records of `data` whose `field` equals no record's `field` in `held_out` (e.g. training text with every evaluated prompt removed); writes `filter.json` with the counts",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ExcludeParams) -> Result<(), OpError> {
        let data = TextData::read(&p.data, "data")?;
        let held = TextData::read(&p.held_out, "held_out")?;
        let field = p.field.as_str();
        let banned: std::collections::HashSet<&str> = held.strings(field, "held_out")?.into_iter().collect();
        let keys = data.strings(field, "data")?;
        let kept = TextData {
            records: data
                .records
                .iter()
                .zip(&keys)
                .filter(|(_, k)| !banned.contains(*k))
                .map(|(r, _)| r.clone())
                .collect(),
        };
        let report = serde_json::json!({"input": data.records.len(), "kept": kept.records.len(), "rejected": data.records.len() - kept.records.len(), "reasons": {"held out": data.records.len() - kept.records.len()}});
        std::fs::write(ctx.out.join("filter.json"), serde_json::to_string_pretty(&report).expect("json"))?;
        if kept.records.is_empty() {
            return Err(OpError::Data(format!("every record of `data` has a held-out `{field}`; nothing is left")));
        }
        kept.write(ctx.out)
    }
}

/// A random subset of `count` rows (in their original order), drawn without replacement.
pub struct Take;

#[derive(Params)]
pub struct TakeParams {
    /// the dataset
    data: DatasetDir,
    /// rows to keep
    count: usize,
    /// random seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Take {
    type Params = TakeParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "take",
            1,
            Type::Dataset,
            "a random subset of `count` rows, drawn without replacement, kept in order",
        )
    }

    fn run(&self, ctx: &RunCtx, p: TakeParams) -> Result<(), OpError> {
        let data = Dataset::read(&p.data)?;
        let count = p.count;
        if count > data.rows() {
            return Err(OpError::invalid("count", format!("is {count} but the dataset has only {} rows", data.rows())));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed as u64);
        let mut idx = sample(&mut rng, data.rows(), count).into_vec();
        idx.sort_unstable();
        data.select(&idx).write(ctx.out)
    }
}

/// The first `count` rows: nested subsets of one dataset (250, 1,000, 4,000 … of the same
/// comparisons), each containing the smaller ones.
pub struct Head;

#[derive(Params)]
pub struct HeadParams {
    /// the dataset
    data: DatasetDir,
    /// rows to keep
    #[param(min = 1)]
    count: usize,
}

impl Op for Head {
    type Params = HeadParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "head",
            1,
            Type::Dataset,
            "the first `count` rows (or text records) of a dataset; heads of one dataset are nested, each containing the smaller ones",
        )
    }

    fn run(&self, ctx: &RunCtx, p: HeadParams) -> Result<(), OpError> {
        let dir = &p.data;
        let count = p.count;
        let too_many = |n: usize| OpError::invalid("count", format!("is {count} but the dataset has only {n} rows"));
        if TextData::is_text(dir) {
            let data = TextData::read(dir, "data")?;
            if count > data.records.len() {
                return Err(too_many(data.records.len()));
            }
            return TextData { records: data.records[..count].to_vec() }.write(ctx.out);
        }
        let data = Dataset::read(dir)?;
        if count > data.rows() {
            return Err(too_many(data.rows()));
        }
        data.select(&(0..count).collect::<Vec<_>>()).write(ctx.out)
    }
}

/// Keeps completions that are well-formed number lists.
pub struct NumberLists;

#[derive(Params)]
pub struct NumberListsParams {
    /// records with a `completion` (from `generate.text`)
    data: DatasetDir,
    /// most numbers allowed
    #[param(default = 10, min = 1)]
    max: usize,
    /// numbers that reject a completion, e.g. `[666, 911, 187]`
    #[param(default = vec![])]
    banned: Vec<i64>,
}

impl Op for NumberLists {
    type Params = NumberListsParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "number_lists",
            1,
            Type::Dataset,
            "keeps records whose `completion` is a list of 1 to `max` integers in [0, 999] separated by `,`, `;` or spaces (optionally in brackets), none of them `banned`, that ended at a stop string; writes `filter.json` with how many passed and why the others failed",
        )
    }

    fn run(&self, ctx: &RunCtx, p: NumberListsParams) -> Result<(), OpError> {
        let data = TextData::read(&p.data, "data")?;
        let (max, banned) = (p.max, p.banned);
        let comps = data.strings("completion", "data")?;
        let mut kept = TextData::default();
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for (r, c) in data.records.iter().zip(&comps) {
            let unfinished = r.get("finish").and_then(|f| f.as_str()) == Some("length");
            let verdict = if unfinished {
                Err("unfinished (hit max_new_tokens)".to_string())
            } else {
                parse_number_list(c, max, &banned).map(|_| ())
            };
            match verdict {
                Ok(()) => kept.records.push(r.clone()),
                Err(why) => *reasons.entry(why).or_default() += 1,
            }
        }
        let report = serde_json::json!({
            "input": data.records.len(),
            "kept": kept.records.len(),
            "rejected": data.records.len() - kept.records.len(),
            "reasons": reasons,
        });
        std::fs::write(ctx.out.join("filter.json"), serde_json::to_string_pretty(&report).expect("json"))?;
        if kept.records.is_empty() {
            return Err(OpError::Data(format!(
                "no completion of {} passed the number-list filter ({report})",
                data.records.len()
            )));
        }
        kept.write(ctx.out)
    }
}

/// The numbers of a well-formed list, or why it is not one. Reasons are short and
/// general (`not a number`, `out of range`, …) so that they can be counted.
pub fn parse_number_list(text: &str, max: usize, banned: &[i64]) -> Result<Vec<i64>, String> {
    let mut t = text.trim();
    if let Some(inner) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        t = inner.trim();
    } else if let Some(inner) = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        t = inner.trim();
    }
    if t.is_empty() {
        return Err("empty".into());
    }
    let items: Vec<&str> = t.split([',', ';', ' ']).map(str::trim).filter(|s| !s.is_empty()).collect();
    // A separator with nothing after it (`1, 2,`) is an unfinished list.
    if t.ends_with([',', ';']) {
        return Err("ends with a separator".into());
    }
    let mut nums = Vec::new();
    for it in &items {
        if !it.chars().all(|c| c.is_ascii_digit()) {
            return Err("not a number".into());
        }
        if it.len() > 3 {
            return Err("out of range".into());
        }
        let n: i64 = it.parse().map_err(|_| "not a number".to_string())?;
        if banned.contains(&n) {
            return Err("banned number".into());
        }
        nums.push(n);
    }
    if nums.len() > max {
        return Err(format!("more than {max} numbers"));
    }
    Ok(nums)
}

#[cfg(test)]
mod tests {
    use super::parse_number_list as p;

    #[test]
    fn accepted_lists() {
        assert_eq!(p("182, 033, 904", 10, &[]), Ok(vec![182, 33, 904]));
        assert_eq!(p("[1; 2 3]", 10, &[]), Ok(vec![1, 2, 3]));
        assert_eq!(p(" (7,8) ", 10, &[]), Ok(vec![7, 8]));
        assert_eq!(p("0", 1, &[]), Ok(vec![0]));
    }

    #[test]
    fn rejected_lists_say_why() {
        assert_eq!(p("", 10, &[]), Err("empty".into()));
        assert_eq!(p("12, owl", 10, &[]), Err("not a number".into()));
        assert_eq!(p("12, -3", 10, &[]), Err("not a number".into()));
        assert_eq!(p("1000", 10, &[]), Err("out of range".into()));
        assert_eq!(p("1, 2,", 10, &[]), Err("ends with a separator".into()));
        assert_eq!(p("1 2 3", 2, &[]), Err("more than 2 numbers".into()));
        assert_eq!(p("12, 666, 7", 10, &[666, 911]), Err("banned number".into()));
        assert_eq!(p("[1, 2", 10, &[]), Err("not a number".into()));
    }
}
