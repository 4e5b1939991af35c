//! `data.*`: loaders for data that labrun ships or that the user points at.

use crate::artifact::Dataset;
use crate::params::{Choice, DatasetDir, FilePath, Params};
use crate::text::{self, TextData};
use crate::{Op, OpError, Registry, RunCtx, Signature, Type, Yield};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::io::Read;

pub fn register(r: &mut Registry) {
    r.add(Digits);
    r.add(crate::bigbench::Data);
    r.add(TextFile);
    r.add(Jsonl);
    r.add(Concat);
}

/// A text file as documents: one per line, or the whole file as one.
pub struct TextFile;

/// How a text file is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum Split {
    Lines,
    File,
}

#[derive(Params)]
pub struct TextFileParams {
    /// the file, relative to the `.lab` file
    #[param(max_bytes = MAX_TEXT_FILE_BYTES)]
    path: FilePath,
    /// `lines` (one document per non-empty line) or `file` (one document)
    #[param(default = Split::Lines)]
    split: Split,
}

impl Op for TextFile {
    type Params = TextFileParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "data",
            "text",
            1,
            Type::Dataset,
            "a text file as documents (`text` records): one per non-empty line, or the whole file as one",
        )
    }

    fn run(&self, ctx: &RunCtx, p: TextFileParams) -> Result<(), OpError> {
        let path = p.path.display().to_string();
        let text = read_text_file(&p.path, "data.text")?;
        let docs: Vec<String> = match p.split {
            Split::Lines => text.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{l}\n")).collect(),
            Split::File => vec![text],
        };
        if docs.iter().all(|d| d.trim().is_empty()) {
            return Err(OpError::Data(format!("{path} holds no text")));
        }
        TextData { records: docs.into_iter().map(|d| text::record([("text", d)])).collect() }.write(ctx.out)
    }
}

/// JSON Lines records, keeping the fields asked for.
pub struct Jsonl;

#[derive(Params)]
#[params(same_length_or_empty(fields, rename))]
pub struct JsonlParams {
    /// the file, relative to the `.lab` file
    #[param(max_bytes = MAX_TEXT_FILE_BYTES)]
    path: FilePath,
    /// fields every record must have, and the only ones kept (`[]`: keep all)
    #[param(default = vec![])]
    fields: Vec<String>,
    /// new names for `fields`, in order (e.g. fields `["question", "answer"]`, rename `["prompt", "completion"]`)
    #[param(default = vec![])]
    rename: Vec<String>,
}

impl Op for Jsonl {
    type Params = JsonlParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "data",
            "jsonl",
            1,
            Type::Dataset,
            "records of a JSON Lines file (one object per line); a bad line is an error naming file and line",
        )
    }

    fn run(&self, ctx: &RunCtx, p: JsonlParams) -> Result<(), OpError> {
        let path = &p.path.display().to_string();
        let text = read_text_file(&p.path, "data.jsonl")?;
        let mut data = text::parse_jsonl(&text, path)?;
        let (fields, rename) = (p.fields, p.rename);
        if !fields.is_empty() {
            for (i, r) in data.records.iter_mut().enumerate() {
                let mut kept = serde_json::Map::new();
                for (j, f) in fields.iter().enumerate() {
                    let v = r
                        .remove(f)
                        .ok_or_else(|| OpError::Data(format!("{path}:{}: the record has no field `{f}`", i + 1)))?;
                    kept.insert(rename.get(j).unwrap_or(f).clone(), v);
                }
                *r = kept;
            }
        }
        if data.records.is_empty() {
            return Err(OpError::Data(format!("{path} has no records")));
        }
        data.write(ctx.out)
    }
}

/// Text datasets one after another, optionally shuffled.
pub struct Concat;

#[derive(Params)]
pub struct ConcatParams {
    /// the datasets
    parts: Vec<DatasetDir>,
    /// shuffle the records
    #[param(default = true)]
    shuffle: bool,
    /// shuffle seed
    #[param(default = 0)]
    seed: i64,
}

impl Op for Concat {
    type Params = ConcatParams;

    fn signature(&self) -> Signature {
        Signature::new(
            "data",
            "concat",
            1,
            Type::Dataset,
            "the records of several text datasets together, shuffled with `seed` (or kept in order with `shuffle: false`)",
        )
    }

    fn run(&self, ctx: &RunCtx, p: ConcatParams) -> Result<(), OpError> {
        let mut all = TextData::default();
        for part in &p.parts {
            all.records.extend(TextData::read(part, "parts")?.records);
        }
        if p.shuffle {
            all.records.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(p.seed as u64));
        }
        all.write(ctx.out)
    }
}

static DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// scikit-learn's 8x8 handwritten digits (1,797 images), shipped inside labrun. Pixels are
/// scaled from 0..16 to [-1, 1]; labels are 0..9. The split shuffles all images with
/// `split_seed` and holds out the last `test_fraction` as `test`.
pub struct Digits;

/// Which images of the digits.
#[derive(Debug, Clone, Copy, PartialEq, Choice)]
pub enum DigitsSplit {
    Train,
    Test,
    All,
}

#[derive(Params)]
pub struct DigitsParams {
    /// `train`, `test` or `all`
    #[param(default = DigitsSplit::Train)]
    split: DigitsSplit,
    /// share of images held out as `test`
    #[param(default = 0.2, gt = 0, lt = 1)]
    test_fraction: f64,
    /// seed of the shuffle that makes the split
    #[param(default = 0)]
    split_seed: i64,
}

impl Op for Digits {
    type Params = DigitsParams;

    fn signature(&self) -> Signature {
        Signature::new("data", "digits", 1, Type::Dataset, "scikit-learn's 8x8 handwritten digits (1,797 images, shipped with labrun); pixels scaled to [-1, 1], labels 0..9")
            .yields(Yield::Const("width", 64))
    }

    fn run(&self, ctx: &RunCtx, p: DigitsParams) -> Result<(), OpError> {
        digits_split(p.split, p.test_fraction, p.split_seed)?.write(ctx.out)
    }
}

/// The shipped digits' `split`: all images shuffled with `split_seed`, the last
/// `test_fraction` held out as `test`.
pub fn digits_split(split: DigitsSplit, test_fraction: f64, split_seed: i64) -> Result<Dataset, OpError> {
    let all = load_digits()?;
    let mut idx: Vec<usize> = (0..all.rows()).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(split_seed as u64));
    let n_test = (all.rows() as f64 * test_fraction).round() as usize;
    let (train, test) = idx.split_at(all.rows() - n_test);
    let chosen = match split {
        DigitsSplit::Train => train,
        DigitsSplit::Test => test,
        DigitsSplit::All => &idx[..],
    };
    Ok(all.select(chosen))
}

/// The largest text file `data.text` and `data.jsonl` read (into memory, whole).
pub const MAX_TEXT_FILE_BYTES: u64 = 1 << 30;

/// A whole text file, refused by its size before it is read when it is over
/// [`MAX_TEXT_FILE_BYTES`].
fn read_text_file(path: &std::path::Path, op: &str) -> Result<String, OpError> {
    let shown = path.display();
    let size = std::fs::metadata(path).map_err(|e| OpError::Data(format!("cannot read {shown}: {e}")))?.len();
    if size > MAX_TEXT_FILE_BYTES {
        return Err(OpError::invalid(
            "path",
            format!(
                "{shown} is {:.1} GB; {op} reads files of up to {:.1} GB into memory: split it, or keep only the records you need",
                size as f64 / 1e9,
                MAX_TEXT_FILE_BYTES as f64 / 1e9
            ),
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| OpError::Data(format!("cannot read {shown} as UTF-8 text: {e}")))?;
    // A byte-order mark (Windows editors write one) is not part of the text.
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The shipped digits, unshuffled, pixels in [-1, 1].
pub fn load_digits() -> Result<Dataset, OpError> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ).read_to_string(&mut text)?;
    let mut x = Vec::with_capacity(1797 * 64);
    let mut y = Vec::with_capacity(1797);
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<f32> = line
            .split(',')
            .map(|f| f.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| OpError::internal(format!("digits line {i}: {e}")))?;
        if fields.len() != 65 {
            return Err(OpError::internal(format!("digits line {i} has {} fields", fields.len())));
        }
        x.extend(fields[..64].iter().map(|p| p / 8.0 - 1.0));
        y.push(fields[64] as i64);
    }
    let n = y.len();
    Ok(Dataset {
        x: Array2::from_shape_vec((n, 64), x).map_err(|e| OpError::internal(e.to_string()))?,
        y: Some(Array1::from_vec(y)),
        t: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_not_part_of_a_text_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bom.txt");
        std::fs::write(&path, "\u{feff}hello\nworld\n").unwrap();
        assert_eq!(read_text_file(&path, "data.text").unwrap(), "hello\nworld\n");
    }

    #[test]
    fn digits_match_the_published_counts() {
        let d = load_digits().unwrap();
        assert_eq!(d.rows(), 1797);
        assert_eq!(d.x.ncols(), 64);
        let y = d.y.unwrap();
        // scikit-learn's documentation: about 180 images per class; class 0 has 178.
        assert_eq!(y.iter().filter(|&&c| c == 0).count(), 178);
        assert!(d.x.iter().all(|p| (-1.0..=1.0).contains(p)));
        // First row of the CSV: 0,0,5,13,9,1,0,0 → 5/8-1 at position 2.
        assert_eq!(d.x[[0, 2]], 5.0 / 8.0 - 1.0);
    }
}
