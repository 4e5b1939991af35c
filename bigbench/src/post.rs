//! The official post-processing of a generation (`model_utils.postprocess_output`):
//! truncate to `max_length` characters, cut after the first `stop_string` (unless it opens
//! the text), then keep the first match of `output_regex` (its group, if it has one; an
//! empty string when nothing matches).

use fancy_regex::Regex;

/// A compiled `output_regex`; errors say why it cannot be used.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    let re = Regex::new(pattern).map_err(|e| format!("is not a regular expression labrun can run: {e}"))?;
    if re.captures_len() > 2 {
        return Err(format!(
            "has {} groups; Python's re.findall would return a tuple, which the official code rejects. Make the others non-capturing: `(?:...)`",
            re.captures_len() - 1
        ));
    }
    Ok(re)
}

/// Post-processes one generation.
pub fn postprocess(text: &str, max_length: Option<usize>, stop_string: Option<&str>, regex: Option<&Regex>) -> String {
    let mut text: String = match max_length {
        Some(m) if m > 0 => text.chars().take(m).collect(),
        _ => text.to_string(),
    };
    if let Some(stop) = stop_string.filter(|s| !s.is_empty())
        && let Some(at) = text.find(stop)
        && at > 0
    {
        text.truncate(at + stop.len());
    }
    if let Some(re) = regex {
        // A regex whose matching runs away (fancy-regex's backtracking limit) finds nothing.
        text = match re.captures(&text) {
            Ok(Some(c)) => c.get(if c.len() > 1 { 1 } else { 0 }).map_or("", |m| m.as_str()).to_string(),
            _ => String::new(),
        };
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_examples() {
        // The docstring's examples.
        assert_eq!(
            postprocess("The apple is on the ground. What is", None, Some("."), None),
            "The apple is on the ground."
        );
        let re = compile(r"\d+").unwrap();
        assert_eq!(postprocess("= 42. 7*7 = 49. 7*8 =", None, None, Some(&re)), "42");
        // A stop string at the very start is not cut (the official `index > 0`).
        assert_eq!(postprocess(".abc.", None, Some("."), None), ".abc.");
        assert_eq!(postprocess("héllo", Some(2), None, None), "hé");
        let re = compile(r"A: (\d+)").unwrap();
        assert_eq!(postprocess("x A: 12 A: 3", None, None, Some(&re)), "12");
        assert_eq!(postprocess("none", None, None, Some(&re)), "");
        assert!(compile(r"(a)(b)").unwrap_err().contains("groups"));
    }
}
