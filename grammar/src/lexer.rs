//! A light scan of the raw text that runs before pest: it finds what the grammar cannot
//! explain well (unterminated strings, absurd nesting) and collects comments for the
//! formatter, which pest drops.

/// A `#` comment: byte offsets of the `#` and of the end of its line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Comment {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// What the scan found.
pub(crate) struct Scan {
    pub comments: Vec<Comment>,
    /// Byte offset of a string that is never closed on its line.
    pub unterminated_string: Option<usize>,
    /// Offset of the first bracket that opens deeper than the limit.
    pub too_deep: Option<usize>,
}

pub(crate) fn scan(src: &str, max_depth: usize) -> Scan {
    let bytes = src.as_bytes();
    let mut comments = Vec::new();
    let mut unterminated_string = None;
    let mut too_deep = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
                comments.push(Comment { start: i, end, text: src[i..end].trim_end().to_string() });
                i = end;
                continue;
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut closed = false;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        b'\n' => break,
                        _ => i += 1,
                    }
                }
                if !closed && unterminated_string.is_none() {
                    unterminated_string = Some(start);
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > max_depth && too_deep.is_none() {
                    too_deep = Some(i);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Scan { comments, unterminated_string, too_deep }
}

/// Byte offsets where a line starts at bracket depth 0, outside strings, with a name or
/// keyword: places where a top-level item may begin. An expression never continues with
/// a name after a line break, so cutting the file there keeps every item whole (a wrong
/// guess only makes a chunk fail to parse, and the caller then parses the whole file).
pub(crate) fn item_starts(src: &str) -> Vec<usize> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut line_start = true;
    while i < bytes.len() {
        let b = bytes[i];
        if line_start && depth == 0 && (b.is_ascii_alphabetic() || b == b'_') {
            out.push(i);
        }
        line_start = false;
        match b {
            b'\n' => line_start = true,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn item_starts_skip_nested_and_quoted_lines() {
        let src = "a = 1\nfor s in x {\n  b[s] = m.f()\n}\nc = \"x\n# d = 2\ne = [\nf]\n";
        let starts: Vec<&str> = item_starts(src).iter().map(|&i| &src[i..i + 1]).collect();
        assert_eq!(starts, ["a", "f", "c", "e"]);
    }

    use super::*;

    #[test]
    fn comments_skip_strings() {
        let s = scan("a = \"# not\" # yes\n# two", 10);
        let texts: Vec<_> = s.comments.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["# yes", "# two"]);
        assert_eq!(s.unterminated_string, None);
    }

    #[test]
    fn finds_unterminated_string() {
        let s = scan("a = \"abc\nb = 1", 10);
        assert_eq!(s.unterminated_string, Some(4));
    }

    #[test]
    fn finds_deep_nesting() {
        let s = scan("a = [[[[1]]]]", 3);
        assert_eq!(s.too_deep, Some(7));
    }
}
