//! `filter.*`: ops that keep some rows of a dataset.

use crate::artifact::Dataset;
use crate::text::TextData;
use crate::{Args, Op, OpError, Registry, RunCtx, Signature, Type, Value};
use rand::SeedableRng;
use rand::seq::index::sample;
use std::collections::BTreeMap;

pub fn register(r: &mut Registry) {
    r.add(Take);
    r.add(crate::bigbench::Decontaminate);
    r.add(Head);
    r.add(NumberLists);
    r.add(Exclude);
}

/// Drops the records whose field equals that of any record of another dataset: how a
/// pipeline keeps evaluation examples out of training data.
pub struct Exclude;

impl Op for Exclude {
    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "exclude",
            1,
            Type::Dataset,
            "the records of `data` whose `field` equals no record's `field` in `held_out` (e.g. training text with every evaluated prompt removed); writes `filter.json` with the counts",
        )
        .req("data", Type::Dataset, "text records to filter")
        .req("held_out", Type::Dataset, "text records that must not appear")
        .opt("field", Type::Str, Value::Str("prompt".into()), "the text field compared")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let data = TextData::read(args.artifact("data")?, "data")?;
        let held = TextData::read(args.artifact("held_out")?, "held_out")?;
        let field = args.str("field")?;
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

impl Op for Take {
    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "take",
            1,
            Type::Dataset,
            "a random subset of `count` rows, drawn without replacement, kept in order",
        )
        .req("data", Type::Dataset, "the dataset")
        .req("count", Type::Int, "rows to keep")
        .opt("seed", Type::Int, Value::Int(0), "random seed")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let data = Dataset::read(args.artifact("data")?)?;
        let count = args.int_at_least("count", 0)?;
        if count > data.rows() {
            return Err(OpError::invalid("count", format!("is {count} but the dataset has only {} rows", data.rows())));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.int("seed")? as u64);
        let mut idx = sample(&mut rng, data.rows(), count).into_vec();
        idx.sort_unstable();
        data.select(&idx).write(ctx.out)
    }
}

/// The first `count` rows: nested subsets of one dataset (250, 1,000, 4,000 … of the same
/// comparisons), each containing the smaller ones.
pub struct Head;

impl Op for Head {
    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "head",
            1,
            Type::Dataset,
            "the first `count` rows (or text records) of a dataset; heads of one dataset are nested, each containing the smaller ones",
        )
        .req("data", Type::Dataset, "the dataset")
        .req("count", Type::Int, "rows to keep")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let dir = args.artifact("data")?;
        let count = args.int_at_least("count", 1)?;
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

impl Op for NumberLists {
    fn signature(&self) -> Signature {
        Signature::new(
            "filter",
            "number_lists",
            1,
            Type::Dataset,
            "keeps records whose `completion` is a list of 1 to `max` integers in [0, 999] separated by `,`, `;` or spaces (optionally in brackets), none of them `banned`, that ended at a stop string; writes `filter.json` with how many passed and why the others failed",
        )
        .req("data", Type::Dataset, "records with a `completion` (from `generate.text`)")
        .opt("max", Type::Int, Value::Int(10), "most numbers allowed")
        .opt("banned", Type::list(Type::Int), Value::List(vec![]), "numbers that reject a completion, e.g. `[666, 911, 187]`")
    }

    fn run(&self, ctx: &RunCtx, args: &Args) -> Result<(), OpError> {
        let data = TextData::read(args.artifact("data")?, "data")?;
        let max = args.int_at_least("max", 1)?;
        let banned = args.ints("banned")?;
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
