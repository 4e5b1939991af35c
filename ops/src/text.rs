//! Text datasets: one JSON object per line in `data.jsonl`, so a person can open them in
//! any editor and other tools can read them. Conventional fields: `text` (a document),
//! `prompt` and `completion` (a pair), `chosen`/`rejected` or `completions` (preferences,
//! best first), `target` (an expected answer).

use crate::OpError;
use serde_json::{Map, Value as Json};
use std::io::Write;
use std::path::Path;

/// The file of a text dataset inside its artifact directory.
pub const TEXT_FILE: &str = "data.jsonl";

/// Records of a text dataset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextData {
    pub records: Vec<Map<String, Json>>,
}

impl TextData {
    pub fn is_text(dir: &Path) -> bool {
        dir.join(TEXT_FILE).is_file()
    }

    /// Writes the dataset artifact into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), OpError> {
        self.write_file(&dir.join(TEXT_FILE))
    }

    /// Writes the records as JSON Lines to `path`.
    pub fn write_file(&self, path: &Path) -> Result<(), OpError> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        for r in &self.records {
            serde_json::to_writer(&mut f, r).map_err(|e| OpError::internal(e.to_string()))?;
            f.write_all(b"\n")?;
        }
        f.flush()?;
        Ok(())
    }

    /// Reads a text dataset artifact; `arg` names the argument in errors.
    pub fn read(dir: &Path, arg: &str) -> Result<TextData, OpError> {
        let path = dir.join(TEXT_FILE);
        if !path.is_file() {
            return Err(OpError::invalid(
                arg,
                "is a dataset of numeric rows, not of text; text datasets come from `data.text`, `data.jsonl`, `generate.corpus` or `generate.text`",
            ));
        }
        let text = std::fs::read_to_string(&path)?;
        parse_jsonl(&text, &path.display().to_string())
    }

    /// The string field `field` of every record; a record without it is an error naming
    /// the record.
    pub fn strings(&self, field: &str, arg: &str) -> Result<Vec<&str>, OpError> {
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.get(field).and_then(Json::as_str).ok_or_else(|| {
                    let message = match r.get(field) {
                        // There, but not text: say what it is.
                        Some(v) => {
                            let shown = v.to_string();
                            let shown = if shown.chars().count() > 40 {
                                format!("{}…", shown.chars().take(39).collect::<String>())
                            } else {
                                shown
                            };
                            format!("record {}: `{field}` is {} ({shown}), not text", i + 1, kind(v))
                        }
                        None => {
                            let have: Vec<&str> = r.keys().map(String::as_str).collect();
                            format!("record {} has no field `{field}` (it has: {})", i + 1, have.join(", "))
                        }
                    };
                    OpError::invalid(arg, message)
                })
            })
            .collect()
    }
}

/// Parses JSON Lines: every non-empty line an object. A bad line is an error naming the
/// file and the line.
/// The first `n` records of a text dataset artifact, as JSON (for reports); `None` when
/// the artifact is not a text dataset.
pub fn samples(dir: &Path, n: usize) -> Option<Vec<Json>> {
    use std::io::BufRead;
    let f = std::fs::File::open(dir.join(TEXT_FILE)).ok()?;
    let lines = std::io::BufReader::new(f).lines().map_while(Result::ok).take(n);
    Some(lines.filter_map(|l| serde_json::from_str(&l).ok()).collect())
}

pub fn parse_jsonl(text: &str, file: &str) -> Result<TextData, OpError> {
    // Some tools (Windows editors, Excel exports) begin UTF-8 files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('\u{feff}') {
            return Err(OpError::Data(format!(
                "{file}:{}: the line starts with a byte-order mark (U+FEFF), which JSON allows only at the start of a file; were files joined together? Remove it",
                i + 1
            )));
        }
        match serde_json::from_str::<Json>(line) {
            Ok(Json::Object(m)) => records.push(m),
            Ok(other) => {
                return Err(OpError::Data(format!(
                    "{file}:{}: expected a JSON object per line, found {}",
                    i + 1,
                    kind(&other)
                )));
            }
            Err(e) => return Err(OpError::Data(format!("{file}:{}: not valid JSON: {e}", i + 1))),
        }
    }
    Ok(TextData { records })
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A record from (field, string) pairs.
pub fn record<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> Map<String, Json> {
    fields.into_iter().map(|(k, v)| (k.to_string(), Json::String(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse_jsonl("{\"a\": 1}\n\n[1, 2]\n", "x.jsonl").unwrap_err().to_string();
        assert!(e.contains("x.jsonl:3") && e.contains("an array"), "{e}");
        let e = parse_jsonl("{\"a\": 1}\n{oops\n", "y.jsonl").unwrap_err().to_string();
        assert!(e.contains("y.jsonl:2: not valid JSON"), "{e}");
    }

    #[test]
    fn round_trip_and_missing_fields() {
        let dir = tempfile::tempdir().unwrap();
        let d = TextData { records: vec![record([("prompt", "a".into()), ("completion", "b".into())])] };
        d.write(dir.path()).unwrap();
        let r = TextData::read(dir.path(), "data").unwrap();
        assert_eq!(r, d);
        assert_eq!(r.strings("prompt", "data").unwrap(), vec!["a"]);
        let e = r.strings("text", "data").unwrap_err().to_string();
        assert!(e.contains("record 1 has no field `text` (it has: completion, prompt)"), "{e}");
        // A field that is there but is not text says what it is.
        let mut m = Map::new();
        m.insert("prompt".to_string(), serde_json::json!(42));
        let n = TextData { records: vec![m] };
        let e = n.strings("prompt", "data").unwrap_err().to_string();
        assert!(e.contains("record 1: `prompt` is a number (42), not text"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_record() {
        let d = parse_jsonl("\u{feff}{\"text\": \"a\"}\n{\"text\": \"b\"}\n", "bom.jsonl").unwrap();
        assert_eq!(d.strings("text", "data").unwrap(), vec!["a", "b"]);
        // Only at the start: elsewhere it is a character like any other, and JSON refuses it.
        let e = parse_jsonl("{\"text\": \"a\"}\n\u{feff}{\"text\": \"b\"}\n", "x.jsonl").unwrap_err().to_string();
        assert!(e.contains("x.jsonl:2: the line starts with a byte-order mark (U+FEFF)"), "{e}");
    }
}
