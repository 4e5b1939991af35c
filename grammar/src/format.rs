//! The canonical layout, used by `labrun fmt`. It keeps every comment (pest drops them,
//! so they come from the raw text), keeps single blank lines between items, indents
//! blocks by two spaces and breaks a value over lines when it is too long or holds a
//! comment. Formatting is idempotent: `format(format(x)) == format(x)`.

use crate::ast::*;
use crate::lexer::{self, Comment};

const WIDTH: usize = 120;
const INDENT: &str = "  ";

/// Formats a parsed file. `src` must be the text `file` was parsed from.
pub fn format(file: &File, src: &str) -> String {
    let comments = lexer::scan(src, usize::MAX).comments;
    let mut f = Formatter { src, comments, next: 0, out: String::new() };
    f.items(&file.items, 0, 0);
    f.leading(src.len(), 0, true);
    let mut out = f.out.trim_end().to_string();
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

struct Formatter<'a> {
    src: &'a str,
    comments: Vec<Comment>,
    next: usize,
    out: String,
}

impl Formatter<'_> {
    fn blank_between(&self, a: usize, b: usize) -> bool {
        a < b && self.src[a..b].matches('\n').count() >= 2
    }

    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn blank(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") && !self.out.ends_with("{\n") {
            self.out.push('\n');
        }
    }

    /// Emits the comments that start before `pos`, each on its own line, keeping blank
    /// lines; `prev_end` is where the previous construct ended. Returns where the last
    /// emitted comment ended.
    fn leading(&mut self, pos: usize, depth: usize, _final: bool) -> Option<usize> {
        let mut last = None;
        while self.next < self.comments.len() && self.comments[self.next].start < pos {
            let c = self.comments[self.next].clone();
            self.next += 1;
            let prev = self.src[..c.start].trim_end_matches([' ', '\t', '\r', '\n']).len();
            if self.blank_between(prev, c.start) {
                self.blank();
            }
            self.line(depth, &c.text);
            last = Some(c.end);
        }
        last
    }

    /// The comment that sits on the same line right after `end`, if any.
    fn trailing(&mut self, end: usize) -> Option<String> {
        let c = self.comments.get(self.next)?;
        if c.start >= end && self.src[end..c.start].trim_matches([' ', '\t', ',']).is_empty() {
            self.next += 1;
            return Some(c.text.clone());
        }
        None
    }

    fn has_comment_in(&self, start: usize, end: usize) -> bool {
        self.comments[self.next..].iter().take_while(|c| c.start < end).any(|c| c.start >= start)
    }

    fn items(&mut self, items: &[Item], depth: usize, _block_start: usize) {
        for item in items {
            let span = item.span();
            self.leading(span.start as usize, depth, false);
            let prev = self.src[..span.start as usize].trim_end_matches([' ', '\t', '\r', '\n']).len();
            if self.blank_between(prev, span.start as usize) {
                self.blank();
            }
            self.item(item, depth);
        }
    }

    /// Ends the line of a construct that finished at `end`: a same-line comment, then any
    /// comments left inside the construct (so none is ever lost).
    fn finish(&mut self, text: String, depth: usize, end: usize) {
        match self.trailing(end) {
            Some(c) => self.line(depth, &format!("{text}  {c}")),
            None => self.line(depth, &text),
        }
    }

    fn item(&mut self, item: &Item, depth: usize) {
        match item {
            Item::Import(i) => {
                let text = format!("import {}", quote(&i.path.value));
                self.finish(text, depth, i.span.end as usize);
            }
            Item::Param(p) => {
                self.assignment(&format!("param {} = ", p.name.name), &p.value, depth, p.span.end as usize)
            }
            Item::Step(s) => {
                let head = format!("{} = ", target(&s.target));
                self.assignment(&head, &s.value, depth, s.span.end as usize);
            }
            Item::For(fb) => {
                let binds: Vec<String> =
                    fb.bindings.iter().map(|b| format!("{} in {}", b.name.name, flat(&b.iter))).collect();
                let open = self.body_start(fb.span.start as usize);
                self.finish(format!("for {} {{", binds.join(", ")), depth, open);
                self.items(&fb.body, depth + 1, open);
                self.close(depth, fb.span.end as usize);
            }
            Item::Report(r) => {
                let open = self.body_start(r.span.start as usize);
                self.finish(format!("report {} {{", quote(&r.title.value)), depth, open);
                for e in &r.entries {
                    match e {
                        ReportEntry::Row(row) => self.row(row, depth + 1),
                        ReportEntry::Table(t) => {
                            self.leading(t.span.start as usize, depth + 1, false);
                            let prev =
                                self.src[..t.span.start as usize].trim_end_matches([' ', '\t', '\r', '\n']).len();
                            if self.blank_between(prev, t.span.start as usize) {
                                self.blank();
                            }
                            let open = self.body_start(t.span.start as usize);
                            let head = match &t.caption {
                                Some(c) => format!("table {} {{", quote(&c.value)),
                                None => "table {".to_string(),
                            };
                            self.finish(head, depth + 1, open);
                            for item in &t.items {
                                match item {
                                    TableItem::Row(row) => self.row(row, depth + 2),
                                    TableItem::For { bindings, rows, span } => {
                                        self.leading(span.start as usize, depth + 2, false);
                                        let binds: Vec<String> = bindings
                                            .iter()
                                            .map(|b| format!("{} in {}", b.name.name, flat(&b.iter)))
                                            .collect();
                                        let open = self.body_start(span.start as usize);
                                        self.finish(format!("for {} {{", binds.join(", ")), depth + 2, open);
                                        for row in rows {
                                            self.row(row, depth + 3);
                                        }
                                        self.close(depth + 2, span.end as usize);
                                    }
                                }
                            }
                            self.close(depth + 1, t.span.end as usize);
                        }
                    }
                }
                self.close(depth, r.span.end as usize);
            }
        }
    }

    /// Offset just after the `{` that opens the block starting at `start`.
    fn body_start(&self, start: usize) -> usize {
        let mut i = start;
        let bytes = self.src.as_bytes();
        let mut in_str = false;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_str => i += 1,
                b'"' => in_str = !in_str,
                b'#' if !in_str => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                b'{' if !in_str => return i + 1,
                _ => {}
            }
            i += 1;
        }
        start
    }

    fn close(&mut self, depth: usize, end: usize) {
        // Comments before the closing brace belong inside the block.
        self.leading(end.saturating_sub(1), depth + 1, false);
        self.finish("}".to_string(), depth, end);
    }

    fn row(&mut self, row: &Row, depth: usize) {
        self.leading(row.span.start as usize, depth, false);
        let prev = self.src[..row.span.start as usize].trim_end_matches([' ', '\t', '\r', '\n']).len();
        if self.blank_between(prev, row.span.start as usize) {
            self.blank();
        }
        let label = if row.quoted || !is_plain_name(&row.label) { quote(&row.label) } else { row.label.clone() };
        let mark = if row.headline { "headline " } else { "" };
        self.assignment(&format!("{mark}{label} = "), &row.value, depth, row.span.end as usize);
    }

    fn assignment(&mut self, head: &str, value: &Expr, depth: usize, end: usize) {
        let one = format!("{head}{}", flat(value));
        let (s, e) = (value.span.start as usize, value.span.end as usize);
        if depth * INDENT.len() + one.len() <= WIDTH && !self.has_comment_in(s, e) {
            self.finish(one, depth, end);
            return;
        }
        let mut lines = Vec::new();
        self.broken(value, head.to_string(), depth, &mut lines);
        let last = lines.pop().unwrap_or_default();
        for (d, l) in lines {
            self.line(d, &l);
        }
        // Comments that sat inside the value but between no elements: keep them, after it.
        self.finish(last.1, last.0, end);
        self.leading(e, depth, false);
    }

    /// Lays out `e` over several lines; `head` is the text already on its first line.
    /// Pushes (depth, text) lines; the last one is left for the caller to end.
    fn broken(&mut self, e: &Expr, head: String, depth: usize, lines: &mut Vec<(usize, String)>) {
        let (open, elems, close): (String, Vec<(String, &Expr)>, &str) = match &e.kind {
            ExprKind::Call(c) => (
                format!("{}.{}(", c.kind.name, c.method.name),
                c.args
                    .iter()
                    .map(|a| (a.name.as_ref().map(|n| format!("{}: ", n.name)).unwrap_or_default(), &a.value))
                    .collect(),
                ")",
            ),
            ExprKind::List(items) => ("[".into(), items.iter().map(|i| (String::new(), i)).collect(), "]"),
            ExprKind::Record(fields) => {
                ("{".into(), fields.iter().map(|(k, v)| (format!("{}: ", k.name), v)).collect(), "}")
            }
            _ => {
                lines.push((depth, format!("{head}{}", flat(e))));
                return;
            }
        };
        if elems.is_empty() {
            lines.push((depth, format!("{head}{open}{close}")));
            return;
        }
        lines.push((depth, format!("{head}{open}")));
        for (prefix, v) in elems {
            let (s, end) = (v.span.start as usize, v.span.end as usize);
            while self.next < self.comments.len() && self.comments[self.next].start < s {
                let c = self.comments[self.next].clone();
                self.next += 1;
                lines.push((depth + 1, c.text));
            }
            let one = format!("{prefix}{},", flat(v));
            if (depth + 1) * INDENT.len() + one.len() <= WIDTH && !self.has_comment_in(s, end) {
                lines.push((depth + 1, one));
            } else {
                self.broken(v, prefix, depth + 1, lines);
                if let Some(last) = lines.last_mut() {
                    last.1.push(',');
                }
            }
            let comma_end = self.src[end..].find(|c: char| !c.is_whitespace() || c == '\n').map_or(end, |n| end + n);
            let after = if self.src[comma_end..].starts_with(',') { comma_end + 1 } else { end };
            if let Some(c) = self.trailing(after)
                && let Some(last) = lines.last_mut()
            {
                last.1.push_str("  ");
                last.1.push_str(&c);
            }
        }
        // Comments after the last element, before the closing bracket.
        while self.next < self.comments.len() && self.comments[self.next].start < e.span.end as usize {
            let c = self.comments[self.next].clone();
            self.next += 1;
            lines.push((depth + 1, c.text));
        }
        lines.push((depth, close.to_string()));
    }
}

fn target(t: &Target) -> String {
    if t.index.is_empty() {
        t.name.name.clone()
    } else {
        format!("{}[{}]", t.name.name, t.index.iter().map(flat).collect::<Vec<_>>().join(", "))
    }
}

fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(s, "import" | "param" | "for" | "in" | "report" | "table" | "true" | "false")
}

/// A string literal that parses back to `s`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One-line rendering of an expression, as `labrun fmt` writes it.
pub fn flat(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int { text, .. } | ExprKind::Float { text, .. } => text.clone(),
        ExprKind::Str(s) => quote(s),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::List(items) => format!("[{}]", items.iter().map(flat).collect::<Vec<_>>().join(", ")),
        ExprKind::Record(fields) => {
            format!(
                "{{{}}}",
                fields.iter().map(|(k, v)| format!("{}: {}", k.name, flat(v))).collect::<Vec<_>>().join(", ")
            )
        }
        ExprKind::Ref { name, index } => {
            if index.is_empty() {
                name.name.clone()
            } else {
                format!("{}[{}]", name.name, index.iter().map(flat).collect::<Vec<_>>().join(", "))
            }
        }
        ExprKind::Call(c) => {
            let args: Vec<String> = c
                .args
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{}: {}", n.name, flat(&a.value)),
                    None => flat(&a.value),
                })
                .collect();
            format!("{}.{}({})", c.kind.name, c.method.name, args.join(", "))
        }
        ExprKind::Binary { first, rest } => {
            let mut s = flat(first);
            for (op, e) in rest {
                if *op == BinOp::Range {
                    s.push_str("..");
                } else {
                    s.push(' ');
                    s.push_str(op.symbol());
                    s.push(' ');
                }
                s.push_str(&flat(e));
            }
            s
        }
        ExprKind::Neg(x) => format!("-{}", flat(x)),
        ExprKind::Paren(x) => format!("({})", flat(x)),
        ExprKind::Comprehension { body, clauses } => {
            let cl: Vec<String> =
                clauses.iter().map(|c| format!(" for {} in {}", c.name.name, flat(&c.iter))).collect();
            format!("[{}{}]", flat(body), cl.concat())
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{format, parse};

    fn fmt(src: &str) -> String {
        format(&parse(src, 0).unwrap(), src)
    }

    fn check(src: &str, want: &str) {
        let once = fmt(src);
        assert_eq!(once, want, "first pass");
        assert_eq!(fmt(&once), once, "not idempotent");
        assert_eq!(parse(&once, 0).unwrap().shape(), parse(src, 0).unwrap().shape(), "meaning changed");
    }

    #[test]
    fn keeps_headline_marks() {
        check(
            "report \"R\" { table { headline   \"a b\"=x\nheadline=y } headline f=g }",
            "report \"R\" {\n  table {\n    headline \"a b\" = x\n    headline = y\n  }\n  headline f = g\n}\n",
        );
    }

    #[test]
    fn normalises_spacing() {
        check("a=m.f( x ,k:1 , )\nb = [1,2 ,3]\n", "a = m.f(x, k: 1)\nb = [1, 2, 3]\n");
    }

    #[test]
    fn keeps_comments_and_blank_lines() {
        check(
            "# head\n\nparam s = 0 # the seed\n\n\n# about a\na = m.f(s)\nb = 1\n# tail\n",
            "# head\n\nparam s = 0  # the seed\n\n# about a\na = m.f(s)\nb = 1\n# tail\n",
        );
    }

    #[test]
    fn blocks_indent() {
        check(
            "for s in seeds { t[s]=m.f(seed:s) # c\n}\nreport \"R\" { table \"T\" { a = x\n\"b c\" = y } }",
            "for s in seeds {\n  t[s] = m.f(seed: s)  # c\n}\nreport \"R\" {\n  table \"T\" {\n    a = x\n    \"b c\" = y\n  }\n}\n",
        );
    }

    #[test]
    fn breaks_long_calls_and_keeps_inner_comments() {
        check(
            "x = finetune.distill(model, data, # why\n  logits: 10..13, epochs: 10)\n",
            "x = finetune.distill(\n  model,\n  data,  # why\n  logits: 10..13,\n  epochs: 10,\n)\n",
        );
        let long = format!("x = m.f({})\n", (0..60).map(|i| format!("a{i}")).collect::<Vec<_>>().join(", "));
        let out = fmt(&long);
        assert!(out.lines().all(|l| l.len() <= 120), "{out}");
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn keeps_literal_spelling_and_escapes() {
        check("n = 60_000\nlr = 1e-3\ns = \"a\\\"b\\n\"\n", "n = 60_000\nlr = 1e-3\ns = \"a\\\"b\\n\"\n");
    }
}
