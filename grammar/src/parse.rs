//! Source text → [`File`]. pest recognises the text; this module builds the tree and turns
//! pest's failures into [`ParseError`]s that speak of the language, not of rule names.

use crate::ast::*;
use crate::lexer;
use crate::{ParseError, Span};
use pest::Parser as _;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::LazyLock;

#[derive(pest_derive::Parser)]
#[grammar = "lab.pest"]
struct LabParser;

/// Words that cannot name a step, param, loop variable or argument.
const KEYWORDS: &[&str] = &["import", "param", "for", "in", "report", "table", "true", "false"];

/// Brackets may nest this deep; deeper input is rejected before pest sees it, so hostile
/// files cannot exhaust the stack.
pub const MAX_NESTING: usize = 128;
/// Operators in one expression. A run of operators of one precedence is one node, so only
/// brackets nest (bounded by [`crate::MAX_DEPTH`]); this bounds the work, not the depth.
const MAX_OPERATORS: usize = 100_000;
/// Prefix operators (`- - - x`) allowed in a row, for the same reason.
const MAX_PREFIX: usize = 64;

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::range_op, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left) | Op::infix(Rule::rem, Assoc::Left))
        .op(Op::prefix(Rule::neg))
});

/// Parses one file. `file` is stored in every span. On failure, returns every error found
/// (a syntax error stops the parse, so usually one; literal errors can add more).
pub fn parse(src: &str, file: u32) -> Result<File, Vec<ParseError>> {
    let f = parse_tree(src, file)?;
    match crate::depth::too_deep(&f) {
        Some(e) => Err(vec![e]),
        None => Ok(f),
    }
}

fn parse_tree(src: &str, file: u32) -> Result<File, Vec<ParseError>> {
    let scan = lexer::scan(src, MAX_NESTING);
    if let Some(at) = scan.too_deep {
        return Err(vec![
            ParseError::new(
                Span::new(file, at, at + 1),
                format!("brackets nest deeper than {MAX_NESTING} levels"),
                "too deep",
            )
            .with_help("split the value into named steps or params"),
        ]);
    }
    let comments: Vec<(usize, usize)> = scan.comments.iter().map(|c| (c.start, c.end)).collect();
    // Large files parse in parallel, cut between top-level items. Any trouble in a chunk
    // falls back to parsing the whole file, so results and messages are those of one parse.
    if src.len() >= PARALLEL_BYTES {
        let cuts = lexer::item_starts(src);
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        if parts > 1 && cuts.len() > parts {
            let mut bounds = vec![0];
            for k in 1..parts {
                let want = src.len() * k / parts;
                let at = cuts[cuts.partition_point(|&c| c < want).min(cuts.len() - 1)];
                if at > *bounds.last().unwrap() {
                    bounds.push(at);
                }
            }
            bounds.push(src.len());
            let results: Vec<Option<Result<Vec<Item>, Vec<ParseError>>>> = std::thread::scope(|sc| {
                let handles: Vec<_> = bounds
                    .windows(2)
                    .map(|w| {
                        let (a, b) = (w[0], w[1]);
                        let comments = &comments;
                        sc.spawn(move || parse_items(&src[a..b], a, file, comments))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().ok().flatten()).collect()
            });
            if results.iter().all(|r| r.is_some()) {
                let mut items = Vec::new();
                let mut errors = Vec::new();
                for r in results.into_iter().flatten() {
                    match r {
                        Ok(mut i) => items.append(&mut i),
                        Err(mut e) => errors.append(&mut e),
                    }
                }
                return if errors.is_empty() { Ok(File { items }) } else { Err(errors) };
            }
        }
    }
    if let Some(r) = parse_items(src, 0, file, &comments) {
        return r.map(|items| File { items });
    }
    // Tracking parse attempts is costly, so only a failed parse is repeated with it, to
    // name the expected tokens.
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // The flag is global: one detailed parse at a time.
    let guard = DETAIL.lock().unwrap_or_else(|p| p.into_inner());
    pest::set_error_detail(true);
    let e = LabParser::parse(Rule::file, src).expect_err("the same input fails again");
    pest::set_error_detail(false);
    drop(guard);
    if let Some(at) = scan.unterminated_string {
        let end = src[at..].find('\n').map_or(src.len(), |n| at + n);
        return Err(vec![
            ParseError::new(Span::new(file, at, end), "unterminated string", "this string has no closing `\"`")
                .with_help("close the string with `\"` on the same line; write a line break as `\\n`"),
        ]);
    }
    Err(vec![syntax_error(src, file, e)])
}

/// Files at least this large are parsed in parallel chunks.
const PARALLEL_BYTES: usize = 128 << 10;

/// Parses `src`, which starts at byte `base` of the file, into items. `None`: a syntax
/// error (the caller reparses for a detailed message); `Some(Err)`: errors in literals.
fn parse_items(
    src: &str,
    base: usize,
    file: u32,
    comments: &[(usize, usize)],
) -> Option<Result<Vec<Item>, Vec<ParseError>>> {
    let pairs = LabParser::parse(Rule::file, src).ok()?;
    let local: Vec<(usize, usize)> = comments
        .iter()
        .filter(|&&(s, _)| s >= base && s < base + src.len())
        .map(|&(s, e)| (s - base, e - base))
        .collect();
    let mut b = Builder { file, src, base, comments: local, errors: Vec::new() };
    let mut items = Vec::new();
    for pair in pairs.into_iter().next().expect("file rule").into_inner() {
        if pair.as_rule() != Rule::EOI {
            items.push(b.item(pair));
        }
    }
    Some(if b.errors.is_empty() { Ok(items) } else { Err(b.errors) })
}

struct Builder<'a> {
    file: u32,
    /// The text being built from: the file, or a chunk of it starting at `base`.
    src: &'a str,
    base: usize,
    /// Comment byte ranges, sorted.
    comments: Vec<(usize, usize)>,
    errors: Vec<ParseError>,
}

impl Builder<'_> {
    /// The pair's span without trailing whitespace or comments, which pest may include.
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        let start = s.start();
        let mut end = s.end();
        loop {
            let trimmed = start + self.src[start..end].trim_end().len();
            let i = self.comments.partition_point(|&(cs, _)| cs < trimmed);
            let in_comment =
                i.checked_sub(1).map(|i| &self.comments[i]).filter(|&&(cs, ce)| cs >= start && ce >= trimmed);
            match in_comment {
                Some(&(cs, _)) => end = cs,
                None => {
                    end = trimmed;
                    break;
                }
            }
        }
        Span::new(self.file, self.base + start, self.base + end)
    }

    fn item(&mut self, p: Pair<Rule>) -> Item {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::import => Item::Import(Import { path: self.string(p.into_inner().next().unwrap()), span }),
            Rule::param => {
                let mut it = p.into_inner();
                let name = self.ident(it.next().unwrap());
                let value = self.expr(it.next().unwrap());
                Item::Param(Param { name, value, span })
            }
            Rule::step => Item::Step(self.step(p)),
            Rule::for_block => {
                let mut bindings = Vec::new();
                let mut body = Vec::new();
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::binding => bindings.push(self.binding(q)),
                        _ => body.push(self.item(q)),
                    }
                }
                Item::For(ForBlock { bindings, body, span })
            }
            Rule::report => {
                let mut it = p.into_inner();
                let title = self.string(it.next().unwrap());
                let entries = it
                    .map(|q| match q.as_rule() {
                        Rule::table => {
                            let span = self.span(&q);
                            let mut caption = None;
                            let mut items = Vec::new();
                            for r in q.into_inner() {
                                match r.as_rule() {
                                    Rule::string => caption = Some(self.string(r)),
                                    Rule::table_for => {
                                        let fspan = self.span(&r);
                                        let mut bindings = Vec::new();
                                        let mut rows = Vec::new();
                                        for x in r.into_inner() {
                                            match x.as_rule() {
                                                Rule::binding => bindings.push(self.binding(x)),
                                                _ => rows.push(self.row(x)),
                                            }
                                        }
                                        items.push(TableItem::For { bindings, rows, span: fspan });
                                    }
                                    _ => items.push(TableItem::Row(self.row(r))),
                                }
                            }
                            ReportEntry::Table(Table { caption, items, span })
                        }
                        _ => ReportEntry::Row(self.row(q)),
                    })
                    .collect();
                Item::Report(Report { title, entries, span })
            }
            r => unreachable!("item rule {r:?}"),
        }
    }

    fn step(&mut self, p: Pair<Rule>) -> Step {
        let span = self.span(&p);
        let mut it = p.into_inner();
        let t = it.next().unwrap();
        let tspan = self.span(&t);
        let mut tt = t.into_inner();
        let name = self.ident(tt.next().unwrap());
        let index = tt.next().map(|i| self.index(i)).unwrap_or_default();
        let value = self.expr(it.next().unwrap());
        Step { target: Target { name, index, span: tspan }, value, span }
    }

    fn row(&mut self, p: Pair<Rule>) -> Row {
        let span = self.span(&p);
        let mut it = p.into_inner().peekable();
        let headline = it.next_if(|l| l.as_rule() == Rule::headline).is_some();
        let l = it.next().unwrap();
        let label_span = self.span(&l);
        let (label, quoted) = match l.as_rule() {
            Rule::string => (self.string(l).value, true),
            _ => (l.as_str().to_string(), false),
        };
        let value = self.expr(it.next().unwrap());
        Row { headline, label, quoted, label_span, value, span }
    }

    fn binding(&mut self, p: Pair<Rule>) -> Binding {
        let span = self.span(&p);
        let mut it = p.into_inner();
        let name = self.ident(it.next().unwrap());
        let iter = self.expr(it.next().unwrap());
        Binding { name, iter, span }
    }

    fn index(&mut self, p: Pair<Rule>) -> Vec<Expr> {
        p.into_inner().map(|e| self.expr(e)).collect()
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        Ident { name: p.as_str().to_string(), span: self.span(&p) }
    }

    fn string(&mut self, p: Pair<Rule>) -> Str {
        let span = self.span(&p);
        let chars = p.into_inner().next().unwrap();
        let base = self.base + chars.as_span().start();
        let raw = chars.as_str();
        let mut value = String::with_capacity(raw.len());
        let mut it = raw.char_indices();
        while let Some((i, c)) = it.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            match it.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, '0')) => value.push('\0'),
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'u')) => {
                    let rest: String = it.by_ref().take_while(|&(_, c)| c != '}').map(|(_, c)| c).collect();
                    let hex = rest.trim_start_matches('{');
                    match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                        Some(ch) => value.push(ch),
                        None => self.errors.push(
                            ParseError::new(
                                Span::new(self.file, base + i, base + i + 3 + rest.len()),
                                format!("`\\u{{{hex}}}` is not a Unicode character"),
                                "invalid escape",
                            )
                            .with_help("write a code point between 0 and 10FFFF, outside D800–DFFF"),
                        ),
                    }
                }
                _ => unreachable!("grammar admits only known escapes"),
            }
        }
        Str { value, span }
    }

    fn expr(&mut self, p: Pair<Rule>) -> Expr {
        // Most expressions are a single value: no operator to resolve.
        {
            let mut inner = p.clone().into_inner();
            if let (Some(only), None) = (inner.next(), inner.next()) {
                return self.primary(only);
            }
        }
        let span = self.span(&p);
        let prefixes = p.clone().into_inner().filter(|q| q.as_rule() == Rule::neg).count();
        if prefixes > MAX_PREFIX {
            self.errors.push(ParseError::new(span, "too many `-` signs in a row", "here"));
            return Expr { kind: ExprKind::Int { value: 0, text: "0".into() }, span };
        }
        // Refuse an absurdly long expression before building it.
        let operators = p.clone().into_inner().filter(|q| q.as_rule() != Rule::neg).count() / 2;
        if operators > MAX_OPERATORS {
            self.errors.push(
                ParseError::new(
                    span,
                    format!("this expression has {operators} operators; labrun takes up to {MAX_OPERATORS}"),
                    "too long",
                )
                .with_help("split it: give parts of it their own params or steps"),
            );
            return Expr { kind: ExprKind::Int { value: 0, text: "0".into() }, span };
        }
        let (file, base) = (self.file, self.base);
        let me = std::cell::RefCell::new(self);
        PRATT
            .map_primary(|q| me.borrow_mut().primary(q))
            .map_prefix(|op, rhs| {
                let s = op.as_span();
                let span = Span::new(file, base + s.start(), rhs.span.end as usize);
                Expr { kind: ExprKind::Neg(Box::new(rhs)), span }
            })
            .map_infix(|lhs, op, rhs| {
                let op = match op.as_rule() {
                    Rule::add => BinOp::Add,
                    Rule::sub => BinOp::Sub,
                    Rule::mul => BinOp::Mul,
                    Rule::div => BinOp::Div,
                    Rule::rem => BinOp::Rem,
                    Rule::range_op => BinOp::Range,
                    r => unreachable!("infix {r:?}"),
                };
                let span = lhs.span.to(rhs.span);
                // A run of operators of one precedence grows one node (left to right).
                match lhs.kind {
                    ExprKind::Binary { first, mut rest }
                        if op != BinOp::Range
                            && rest.last().is_some_and(|(last, _)| {
                                *last != BinOp::Range && last.precedence() == op.precedence()
                            }) =>
                    {
                        rest.push((op, rhs));
                        Expr { kind: ExprKind::Binary { first, rest }, span }
                    }
                    kind => {
                        let lhs = Expr { kind, span: lhs.span };
                        Expr { kind: ExprKind::Binary { first: Box::new(lhs), rest: vec![(op, rhs)] }, span }
                    }
                }
            })
            .parse(p.into_inner())
    }

    fn primary(&mut self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::number => {
                let text = p.as_str().to_string();
                let digits = text.replace('_', "");
                if digits.contains(['.', 'e', 'E']) {
                    let value: f64 = digits.parse().unwrap_or(f64::NAN);
                    if !value.is_finite() {
                        self.errors.push(ParseError::new(span, "float literal is out of range", "not a finite number"));
                    }
                    ExprKind::Float { value, text }
                } else {
                    let value = match digits.parse::<i64>() {
                        Ok(v) => v,
                        Err(_) => {
                            self.errors.push(
                                ParseError::new(span, "integer literal is too large", "does not fit in 64 bits")
                                    .with_help(format!(
                                        "integers range from {} to {}; write a float for larger values",
                                        i64::MIN,
                                        i64::MAX
                                    )),
                            );
                            0
                        }
                    };
                    ExprKind::Int { value, text }
                }
            }
            Rule::string => ExprKind::Str(self.string(p).value),
            Rule::boolean => ExprKind::Bool(p.as_str() == "true"),
            Rule::list => {
                let parts: Vec<Pair<Rule>> = p.into_inner().collect();
                if parts.iter().any(|q| q.as_rule() == Rule::for_clause) {
                    let mut it = parts.into_iter();
                    let body = Box::new(self.expr(it.next().unwrap()));
                    let clauses = it.map(|c| self.binding(c)).collect();
                    ExprKind::Comprehension { body, clauses }
                } else {
                    ExprKind::List(parts.into_iter().map(|e| self.expr(e)).collect())
                }
            }
            Rule::record => ExprKind::Record(
                p.into_inner()
                    .map(|f| {
                        let mut it = f.into_inner();
                        let k = self.ident(it.next().unwrap());
                        (k, self.expr(it.next().unwrap()))
                    })
                    .collect(),
            ),
            Rule::named => {
                let mut it = p.into_inner();
                let word = it.next().unwrap();
                if word.as_rule() == Rule::boolean {
                    return Expr { kind: ExprKind::Bool(word.as_str() == "true"), span };
                }
                let first = Ident { name: word.as_str().to_string(), span: self.span(&word) };
                match it.next() {
                    Some(tail) if tail.as_rule() == Rule::call_tail => {
                        let mut it = tail.into_inner();
                        let method = self.ident(it.next().unwrap());
                        let args = it
                            .map(|a| {
                                let aspan = self.span(&a);
                                let mut parts: Vec<Pair<Rule>> = a.into_inner().collect();
                                let value = self.expr(parts.pop().unwrap());
                                let name = parts.pop().map(|n| self.ident(n));
                                Arg { name, value, span: aspan }
                            })
                            .collect();
                        ExprKind::Call(Call { kind: first, method, args })
                    }
                    tail => {
                        if KEYWORDS.contains(&first.name.as_str()) {
                            self.errors.push(
                                ParseError::new(
                                    first.span,
                                    format!("`{}` is a keyword, not a value", first.name),
                                    "keyword",
                                )
                                .with_help("choose another name for the step or param"),
                            );
                        }
                        let index = tail.map(|i| self.index(i)).unwrap_or_default();
                        ExprKind::Ref { name: first, index }
                    }
                }
            }
            Rule::expr => ExprKind::Paren(Box::new(self.expr(p))),
            r => unreachable!("primary {r:?}"),
        };
        Expr { kind, span }
    }
}

/// What a grammar rule is called in an error message.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::import | Rule::param | Rule::for_block | Rule::report | Rule::step | Rule::target => {
            "a step (`name = kind.method(…)`), `param`, `for`, `import` or `report`"
        }
        Rule::expr => "a value",
        Rule::ident | Rule::word | Rule::named => "a name",
        Rule::string => "a string",
        Rule::number => "a number",
        Rule::binding => "`name in list`",
        Rule::for_clause => "`for`",
        Rule::table | Rule::row => "a row (`label = value`) or `table`",
        Rule::arg => "an argument",
        Rule::field => "a field (`name: value`)",
        Rule::index => "`[`",
        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::rem | Rule::range_op => "an operator",
        _ => return None,
    })
}

fn syntax_error(src: &str, file: u32, e: pest::error::Error<Rule>) -> ParseError {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !expected.contains(&s) {
            expected.push(s);
        }
    };
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            if let Some(d) = describe(*r) {
                push(d.to_string());
            }
        }
    }
    if let Some(attempts) = e.parse_attempts() {
        for t in attempts.expected_tokens() {
            let token = t.to_string();
            {
                let is_range = token.len() == 4 && &token[1..3] == "..";
                let useful = !is_range
                    && token != "BUILTIN_RULE"
                    && !token.trim().is_empty()
                    && !matches!(token.as_str(), "#" | "_" | "\"" | "e" | "E" | "+" | "-" | "*" | "/" | "%" | "..")
                    && !token.starts_with('\\')
                    && !(token.len() > 1
                        && token.chars().all(|c| c.is_ascii_alphabetic())
                        && is_literal_keyword(&token));
                if useful {
                    push(format!("`{token}`"));
                }
            }
        }
    }
    // A value can continue with an operator anywhere; saying so adds noise, not help.
    if expected.len() > 1 {
        expected.retain(|s| s != "an operator");
    }
    // The item description already covers names, keywords and (at the top) the end.
    if expected.iter().any(|s| s.starts_with("a step")) {
        expected.retain(|s| {
            !matches!(s.as_str(), "a name" | "`for`" | "`import`" | "`param`" | "`report`" | "end of file")
        });
    }
    // What can start a value, listed piecemeal, is "a value".
    if expected.iter().any(|s| s == "a name") && expected.iter().any(|s| s == "`(`") {
        expected.retain(|s| !matches!(s.as_str(), "a name" | "a number" | "a string" | "`(`" | "`[`" | "`{`" | "`-`"));
        expected.insert(0, "a value".to_string());
    }
    // Brackets that open a value are part of "a value".
    if expected.iter().any(|s| s == "a value") {
        expected.retain(|s| !matches!(s.as_str(), "`(`" | "`[`" | "`{`"));
    }
    let (found, found_len) = token_at(src, pos);
    let expected_words = join_or(&expected);
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {expected_words}, found {found}")
    };
    let label =
        if expected.is_empty() { "not expected here".to_string() } else { format!("expected {expected_words}") };
    let mut err = ParseError::new(Span::new(file, pos, pos + found_len), message, label);
    if let Some(h) = hint(src, pos, &expected) {
        err = err.with_help(h);
    }
    err
}

fn is_literal_keyword(t: &str) -> bool {
    matches!(t, "true" | "false" | "in")
}

/// The lexeme at `pos`, described for a message, and its length in bytes.
fn token_at(src: &str, pos: usize) -> (String, usize) {
    let rest = &src[pos.min(src.len())..];
    let Some(c) = rest.chars().next() else {
        return ("end of file".into(), 0);
    };
    if c.is_ascii_alphanumeric() || c == '_' {
        let n = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        return (format!("`{}`", &rest[..n]), n);
    }
    if c == '\n' {
        return ("end of line".into(), 0);
    }
    if c.is_control() || c == '\u{FFFD}' {
        return (format!("character U+{:04X}", c as u32), c.len_utf8());
    }
    (format!("`{c}`"), c.len_utf8())
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} or {}", rest.join(", "), last),
    }
}

fn hint(src: &str, pos: usize, expected: &[String]) -> Option<String> {
    let rest = &src[pos.min(src.len())..];
    let before = src[..pos.min(src.len())].trim_end();
    if rest.trim().is_empty() {
        for (close, what) in [("`}`", "a `{` block"), ("`)`", "a `(`"), ("`]`", "a `[`")] {
            if expected.iter().any(|e| e == close) {
                return Some(format!("{what} is not closed; add {close}"));
            }
        }
    }
    let last_word = before.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("");
    if expected.iter().any(|e| e == "a name")
        && matches!(last_word, "for" | "param" | "import" | "report" | "table" | "in" | "true" | "false")
        && rest.starts_with('=')
    {
        return Some(format!("`{last_word}` is a keyword; choose another name"));
    }
    if rest.starts_with('=') && expected.iter().any(|e| e == "`:`" || e == "`)`" || e == "`,`") {
        return Some("arguments are written `name: value`".into());
    }
    if rest.starts_with(':') && expected.iter().any(|e| e == "`=`") {
        return Some("steps and params are written `name = value`".into());
    }
    if expected.iter().any(|e| e == "`=`") {
        return Some("a step is written `name = kind.method(args…)`".into());
    }
    if before.ends_with('=') && expected.iter().any(|e| e == "a value") {
        return Some("write a value after `=`: a number, string, list, name or `kind.method(…)` call".into());
    }
    if before.ends_with('.') && rest.starts_with(|c: char| c.is_ascii_digit()) {
        return Some("write a range with two dots: `0..10`".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(src: &str) -> String {
        match parse(src, 0) {
            Ok(f) => f.shape(),
            Err(e) => panic!("{src:?}: {}", e[0].message),
        }
    }

    fn err(src: &str) -> String {
        match parse(src, 0) {
            Ok(f) => panic!("{src:?} parsed: {}", f.shape()),
            Err(e) => e[0].message.clone(),
        }
    }

    macro_rules! parses {
        ($($name:ident: $src:expr => $shape:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(shape($src).trim_end(), $shape);
            }
        )*};
    }

    parses! {
        empty: "" => "";
        comment_only: "# nothing\n" => "";
        int_underscores: "n = 60_000" => "(step n 60000)";
        float_forms: "a = [1e-3, 2.5, 3E+2, 1_0.0_1]" => "(step a (list 0.001f 2.5f 300.0f 10.01f))";
        strings_escape: r#"s = "a\"b\\c\n\u{1F600}""# => "(step s \"a\\\"b\\\\c\\n😀\")";
        bools: "b = [true, false]" => "(step b (list true false))";
        trailing_commas: "x = m.f(1, 2,)\ny = [1,]\nz = {a: 1,}" => "(step x (m.f 1 2))\n(step y (list 1))\n(step z (record a:1))";
        range: "r = 0..10" => "(step r (.. 0 10))";
        range_arith: "r = a+1..2*b" => "(step r (.. (+ a 1) (* 2 b)))";
        precedence: "x = 1 + 2 * 3 - 4 / 2 % 3" => "(step x (- (+ 1 (* 2 3)) (% (/ 4 2) 3)))";
        parens: "x = (1 + 2) * 3" => "(step x (* (+ 1 2) 3))";
        negation: "x = -seed - -1" => "(step x (- (neg seed) (neg 1)))";
        call_named: "t = finetune.supervised(base, train, logits: 0..10, epochs: 5)" =>
            "(step t (finetune.supervised base train logits:(.. 0 10) epochs:5))";
        nested_call: "p = finetune.reward(model.mlp(inputs: 8), pairs)" => "(step p (finetune.reward (model.mlp inputs:8) pairs))";
        report_kind_in_call: "f = report.bar(x)" => "(step f (report.bar x))";
        param: "param seed = 0" => "(param seed 0)";
        import: "import \"common.lab\"" => "(import \"common.lab\")";
        for_single: "for s in seeds { t[s] = m.f(seed: s) }" => "(for (s seeds) (step t s (m.f seed:s)))";
        for_product: "for w in [1, 2], s in 0..3 { r[w, s] = m.f(w, s) }" =>
            "(for (w (list 1 2)) (s (.. 0 3)) (step r w s (m.f w s)))";
        for_nested: "for a in x { for b in y { c[a, b] = m.f() } }" => "(for (a x) (for (b y) (step c a b (m.f))))";
        comprehension: "c = fit.power_law(points: [score[w] for w in widths])" =>
            "(step c (fit.power_law points:(comp score[w,] (w widths))))";
        comprehension_two: "c = [r[a, b] for a in x for b in y]" => "(step c (comp r[a,b,] (a x) (b y)))";
        record: "o = {lr: 1e-3, epochs: 5}" => "(step o (record lr:0.001f epochs:5))";
        table_for: "report \"T\" { table { for k in ks, e in es { \"k={k}\" = s[k, e] } } }" =>
            "(report \"T\" (table None (for (k ks) (e es) (row \"k={k}\" s[k,e,]))))";
        report: "report \"T\" { table \"acc\" { teacher = score.accuracy(t, d), \"a b\" = x } fig = report.bar(x) }" =>
            "(report \"T\" (table Some(\"acc\") (row \"teacher\" (score.accuracy t d)) (row \"a b\" x)) (row \"fig\" (report.bar x)))";
        headline_rows: "report \"T\" { table { headline \"a b\" = x, headline y = z, headline = w, headlines = v } headline f = g }" =>
            "(report \"T\" (table None (headline row \"a b\" x) (headline row \"y\" z) (row \"headline\" w) (row \"headlines\" v)) (headline row \"f\" g))";
        headline_in_table_for: "report \"T\" { table { for k in ks { headline \"k={k}\" = s[k] } } }" =>
            "(report \"T\" (table None (for (k ks) (headline row \"k={k}\" s[k,]))))";
        keyword_prefix_names: "inputs = 1\nformat = 2\nreports = 3" => "(step inputs 1)\n(step format 2)\n(step reports 3)";
        crlf: "a = 1\r\nb = 2\r\n" => "(step a 1)\n(step b 2)";
    }

    #[test]
    fn errors_speak_in_words() {
        assert_eq!(err("a = "), "expected a value, found end of file");
        assert_eq!(err("a 1"), "expected `[` or `=`, found `1`");
        assert_eq!(err("x = m.f(a = 1)"), "expected `[`, `)`, `,`, `.` or `:`, found `=`");
        assert_eq!(err("param = 3"), "expected a name, found `=`");
        assert_eq!(err("a = \"abc\nb = 1"), "unterminated string");
        assert_eq!(err("a = 99999999999999999999"), "integer literal is too large");
        assert_eq!(err("a = \"\\u{D800}\""), "`\\u{D800}` is not a Unicode character");
    }

    #[test]
    fn parallel_parsing_gives_the_sequential_tree() {
        let pipeline = include_str!("../../pipelines/subliminal.lab");
        let mut src = String::new();
        let mut i = 0;
        while src.len() < 3 * PARALLEL_BYTES {
            // Rename definitions so the file stays a valid program; keep comments, sweeps,
            // reports, multi-line calls, and an expression that continues on a line that
            // starts with a name (a bad cut point the parser must survive).
            src.push_str(
                &pipeline.replace("param ", &format!("param p{i}_")).replace("report \"", &format!("report \"{i} ")),
            );
            src.push_str(&format!("cont{i} = 1 +\nseed_{i}\n"));
            i += 1;
        }
        let comments: Vec<(usize, usize)> =
            lexer::scan(&src, MAX_NESTING).comments.iter().map(|c| (c.start, c.end)).collect();
        let sequential = parse_items(&src, 0, 7, &comments).expect("parses").expect("no literal errors");
        let parallel = parse(&src, 7).expect("parses");
        assert_eq!(parallel.items, sequential);
        // A syntax error in a late chunk reports exactly what one whole parse reports.
        let broken = format!("{src}\nlate = = 1\n");
        let e = parse(&broken, 0).unwrap_err();
        assert_eq!(e[0].message, "expected a value, found `=`");
        assert_eq!(&broken[e[0].span.range()], "=");
    }

    #[test]
    fn nested_brackets_parse_in_linear_time() {
        // Found by the fuzzer: list and comprehension alternatives re-read nested
        // brackets 2^depth times, so this test would not finish.
        for open in ["[", "("] {
            let close = if open == "[" { "]" } else { ")" };
            let src = format!("x = {}1{}", open.repeat(120), close.repeat(120));
            parse(&src, 0).unwrap();
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let src = format!("a = {}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(err(&src).contains("nest deeper"));
        let negs = format!("a = {}1", "-".repeat(10_000));
        assert!(err(&negs).contains("`-` signs"));
    }

    #[test]
    fn spans_point_at_source() {
        let src = "a = 1\nbb = m.f(x)";
        let f = parse(src, 3).unwrap();
        let Item::Step(s) = &f.items[1] else { panic!() };
        assert_eq!(&src[s.target.name.span.range()], "bb");
        assert_eq!(&src[s.value.span.range()], "m.f(x)");
        assert_eq!(s.span.file, 3);
    }
}
