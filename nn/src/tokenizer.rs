//! Tokenizers: characters of an explicit alphabet (the default for pipelines), raw bytes,
//! and Hugging Face `tokenizer.json` files. A tokenizer is stored with its model as
//! `tokenizer.json`: labrun's own kinds as a small JSON object, Hugging Face ones as the
//! original file.

use crate::NnError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How text becomes token ids.
#[derive(Clone)]
pub enum Tokenizer {
    /// One token per character of `alphabet`, in its order.
    Char { alphabet: Vec<char> },
    /// One token per byte (256 tokens).
    Byte,
    /// A Hugging Face tokenizer, with the file it came from.
    Hf { tok: Box<tokenizers::Tokenizer>, json: String },
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tokenizer::Char { alphabet } => write!(f, "Char({:?})", alphabet.iter().collect::<String>()),
            Tokenizer::Byte => write!(f, "Byte"),
            Tokenizer::Hf { tok, .. } => write!(f, "Hf({} tokens)", tok.get_vocab_size(true)),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    labrun_tokenizer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    alphabet: String,
}

impl Tokenizer {
    /// A character tokenizer; every character of `alphabet` must be distinct.
    pub fn chars(alphabet: &str) -> Result<Tokenizer, NnError> {
        let chars: Vec<char> = alphabet.chars().collect();
        if chars.is_empty() {
            return Err(NnError::BadModel("the alphabet is empty; list every character the text uses".into()));
        }
        for (i, c) in chars.iter().enumerate() {
            if chars[..i].contains(c) {
                return Err(NnError::BadModel(format!("the alphabet lists {} twice", show_char(*c))));
            }
        }
        Ok(Tokenizer::Char { alphabet: chars })
    }

    /// A Hugging Face tokenizer from the text of a `tokenizer.json`. Its vocabulary must
    /// be one id per token, the ids 0..n: an empty vocabulary, two tokens with one id or an
    /// id past the vocabulary's size would only fail later, inside the model.
    pub fn hf(json: &str) -> Result<Tokenizer, NnError> {
        let tok = tokenizers::Tokenizer::from_bytes(json.as_bytes())
            .map_err(|e| NnError::BadModel(format!("not a valid Hugging Face tokenizer.json: {e}")))?;
        let vocab = tok.get_vocab(true);
        if vocab.is_empty() {
            return Err(NnError::BadModel("the tokenizer's vocabulary is empty".into()));
        }
        // Added tokens alone (`<|endoftext|>`) encode no text: every prompt would be empty.
        if tok.get_vocab(false).is_empty() {
            let added: Vec<&str> = vocab.keys().map(|k| k.as_str()).take(4).collect();
            return Err(NnError::BadModel(format!(
                "the tokenizer's vocabulary is empty apart from its added tokens ({}): it cannot encode any text",
                added.join(", ")
            )));
        }
        let mut by_id: Vec<(u32, &str)> = vocab.iter().map(|(t, &id)| (id, t.as_str())).collect();
        by_id.sort();
        if let Some(w) = by_id.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(NnError::BadModel(format!(
                "the tokens {:?} and {:?} share the id {}: every token needs its own",
                w[0].1, w[1].1, w[0].0
            )));
        }
        let (last, token) = by_id[by_id.len() - 1];
        if last as usize >= by_id.len() {
            return Err(NnError::BadModel(format!(
                "the token {token:?} has the id {last}, but the vocabulary has {} tokens: ids must run from 0 to {}",
                by_id.len(),
                by_id.len() - 1
            )));
        }
        Ok(Tokenizer::Hf { tok: Box::new(tok), json: json.to_string() })
    }

    /// Number of token ids.
    pub fn vocab(&self) -> usize {
        match self {
            Tokenizer::Char { alphabet } => alphabet.len(),
            Tokenizer::Byte => 256,
            Tokenizer::Hf { tok, .. } => tok.get_vocab_size(true),
        }
    }

    /// Token ids of `text`. A character outside a char tokenizer's alphabet is an error
    /// that names it and its position.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, NnError> {
        match self {
            Tokenizer::Char { alphabet } => text
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    alphabet.iter().position(|&a| a == c).map(|p| p as i64).ok_or_else(|| {
                        NnError::BadModel(format!(
                            "{} at character {i} of {:?} is not in the tokenizer's alphabet {:?}; add it to `alphabet` or remove it from the text",
                            show_char(c),
                            clip(text),
                            alphabet.iter().collect::<String>()
                        ))
                    })
                })
                .collect(),
            Tokenizer::Byte => Ok(text.bytes().map(i64::from).collect()),
            Tokenizer::Hf { tok, .. } => {
                let enc = tok
                    .encode(text, false)
                    .map_err(|e| NnError::BadModel(format!("the tokenizer cannot encode {:?}: {e}", clip(text))))?;
                Ok(enc.get_ids().iter().map(|&i| i as i64).collect())
            }
        }
    }

    /// The text of token ids (ids out of range are an error).
    pub fn decode(&self, ids: &[i64]) -> Result<String, NnError> {
        let bad = |id: i64| NnError::BadModel(format!("token id {id} is outside the vocabulary of {}", self.vocab()));
        match self {
            Tokenizer::Char { alphabet } => ids
                .iter()
                .map(|&i| usize::try_from(i).ok().and_then(|i| alphabet.get(i).copied()).ok_or_else(|| bad(i)))
                .collect(),
            Tokenizer::Byte => {
                let bytes: Vec<u8> =
                    ids.iter().map(|&i| u8::try_from(i).map_err(|_| bad(i))).collect::<Result<_, _>>()?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            Tokenizer::Hf { tok, .. } => {
                let ids: Vec<u32> =
                    ids.iter().map(|&i| u32::try_from(i).map_err(|_| bad(i))).collect::<Result<_, _>>()?;
                tok.decode(&ids, false).map_err(|e| NnError::BadModel(format!("cannot decode tokens: {e}")))
            }
        }
    }

    /// The text of one token.
    pub fn token_text(&self, id: i64) -> Result<String, NnError> {
        self.decode(&[id])
    }

    /// Writes `tokenizer.json` into a model directory.
    pub fn save(&self, dir: &Path) -> Result<(), NnError> {
        std::fs::write(dir.join("tokenizer.json"), self.to_json())?;
        Ok(())
    }

    /// The text of this tokenizer's `tokenizer.json`.
    pub fn to_json(&self) -> String {
        match self {
            Tokenizer::Char { alphabet } => serde_json::to_string_pretty(&Stored {
                labrun_tokenizer: "char".into(),
                alphabet: alphabet.iter().collect(),
            }),
            Tokenizer::Byte => {
                serde_json::to_string_pretty(&Stored { labrun_tokenizer: "byte".into(), alphabet: String::new() })
            }
            Tokenizer::Hf { json, .. } => Ok(json.clone()),
        }
        .expect("serialisable")
    }

    /// Reads `tokenizer.json` from a model directory.
    pub fn load(dir: &Path) -> Result<Tokenizer, NnError> {
        let path = dir.join("tokenizer.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| NnError::BadModel(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| NnError::BadModel(format!("{}: {e}", path.display())))
    }

    /// A tokenizer from the text of a `tokenizer.json` (labrun's or Hugging Face's).
    pub fn from_json(text: &str) -> Result<Tokenizer, NnError> {
        if let Ok(s) = serde_json::from_str::<Stored>(text) {
            return match s.labrun_tokenizer.as_str() {
                "char" => Tokenizer::chars(&s.alphabet),
                "byte" => Ok(Tokenizer::Byte),
                other => Err(NnError::BadModel(format!("unknown tokenizer kind `{other}`"))),
            };
        }
        Tokenizer::hf(text)
    }
}

fn show_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() { format!("{c:?} (U+{:04X})", c as u32) } else { format!("`{c}`") }
}

fn clip(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(60).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_round_trip_and_unknown_character() {
        let t = Tokenizer::chars("ab, \n").unwrap();
        assert_eq!(t.vocab(), 5);
        let ids = t.encode("ba, a\n").unwrap();
        assert_eq!(ids, vec![1, 0, 2, 3, 0, 4]);
        assert_eq!(t.decode(&ids).unwrap(), "ba, a\n");
        let e = t.encode("abc").unwrap_err().to_string();
        assert!(e.contains("`c` at character 2"), "{e}");
        assert!(Tokenizer::chars("aa").is_err());
        assert!(t.decode(&[5]).is_err());
    }

    #[test]
    fn byte_round_trip() {
        let t = Tokenizer::Byte;
        assert_eq!(t.encode("hé").unwrap(), vec![104, 195, 169]);
        assert_eq!(t.decode(&[104, 195, 169]).unwrap(), "hé");
    }

    /// A word-level `tokenizer.json` with this vocabulary.
    fn word_level(vocab: &str) -> String {
        format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
               "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null, "decoder": null,
               "model": {{"type": "WordLevel", "vocab": {vocab}, "unk_token": "<unk>"}}}}"#
        )
    }

    #[test]
    fn a_vocabulary_must_give_each_token_its_own_id_from_0() {
        let t = Tokenizer::hf(&word_level(r#"{"<unk>": 0, "a": 1, "b": 2}"#)).unwrap();
        assert_eq!(t.vocab(), 3);
        let e = Tokenizer::hf(&word_level(r#"{"<unk>": 0, "a": 1, "b": 1}"#)).unwrap_err().to_string();
        assert!(e.contains(r#"the tokens "a" and "b" share the id 1"#), "{e}");
        let e = Tokenizer::hf(&word_level(r#"{"<unk>": 0, "a": 1, "b": 7}"#)).unwrap_err().to_string();
        assert!(
            e.contains(r#"the token "b" has the id 7, but the vocabulary has 3 tokens: ids must run from 0 to 2"#),
            "{e}"
        );
        let e = Tokenizer::hf(&word_level("{}")).unwrap_err().to_string();
        assert!(e.contains("the tokenizer's vocabulary is empty"), "{e}");
        // Only an added token: nothing but it can be encoded.
        let only_added = word_level("{}").replace(
            r#""added_tokens": []"#,
            r#""added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}]"#,
        );
        let e = Tokenizer::hf(&only_added).unwrap_err().to_string();
        assert!(e.contains("empty apart from its added tokens (<|endoftext|>)"), "{e}");
    }

    #[test]
    fn stored_form_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        Tokenizer::chars("xyz").unwrap().save(dir.path()).unwrap();
        let t = Tokenizer::load(dir.path()).unwrap();
        assert_eq!(t.encode("zyx").unwrap(), vec![2, 1, 0]);
    }
}
