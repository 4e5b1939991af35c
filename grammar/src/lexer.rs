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

#[cfg(test)]
mod tests {
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
