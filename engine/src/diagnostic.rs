//! Diagnostics: what went wrong, where, and how to fix it. The engine collects them as
//! plain data; [`render`] draws them with miette for the CLI and the snapshot tests.

use crate::Sources;
use lab_grammar::Span;
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan};
use std::fmt;

/// Every diagnostic code labrun emits for a program, documented in `grammar/GRAMMAR.md`.
pub const CODES: &[&str] = &[
    "lab::syntax",
    "lab::io",
    "lab::bad_import",
    "lab::outside_project",
    "lab::empty",
    "lab::unknown_name",
    "lab::unknown_op",
    "lab::unknown_arg",
    "lab::missing_arg",
    "lab::duplicate_arg",
    "lab::arity",
    "lab::duplicate",
    "lab::cycle",
    "lab::type_mismatch",
    "lab::not_constant",
    "lab::bad_range",
    "lab::bad_resources",
    "lab::bad_value",
    "lab::bad_index",
    "lab::division_by_zero",
    "lab::overflow",
    "lab::too_large",
    "lab::bad_override",
    "lab::unknown_target",
];

/// One problem in a program. `code` is stable (`lab::type_mismatch`, …) and documented in
/// `grammar/GRAMMAR.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Diag {
    pub code: &'static str,
    pub message: String,
    /// Where, with a label; `None` for problems outside any file (a `--set` typo).
    pub primary: Option<(Span, String)>,
    /// Other places that explain the problem (the first definition of a duplicate).
    pub secondary: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Diag {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Diag { code, message: message.into(), primary: None, secondary: Vec::new(), help: None }
    }

    pub fn at(mut self, span: Span, label: impl Into<String>) -> Self {
        self.primary = Some((span, label.into()));
        self
    }

    pub fn also(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push((span, label.into()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
}

/// Diagnostics drawn in full; the rest are counted. (Reports of thousands of errors are
/// read from the top; drawing them all would take long and help no one.)
pub const MAX_RENDERED: usize = 50;
/// Lines longer than this are shown clipped around the labels.
const MAX_LINE: usize = 160;
/// Secondary labels further than this many lines from the primary are named in words.
const NEAR_LINES: usize = 12;

/// A diagnostic bound to its source, in the form miette draws.
struct Bound<'a> {
    diag: &'a Diag,
    src: Option<Excerpt>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

/// The lines of a file around a diagnostic's labels, with long lines clipped, control
/// characters escaped and invisible ones named, so that drawing a diagnostic costs the
/// size of what it shows, not of the file. Line numbers stay those of the file.
struct Excerpt {
    name: String,
    text: String,
    /// The file's 0-based line number of the excerpt's first line.
    first_line: usize,
}

impl miette::SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self.text.as_str().read_span(span, before, after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            inner.column(),
            inner.line_count(),
        )))
    }
}

impl fmt::Display for Bound<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&clip(&self.diag.message))
    }
}

/// A message shortened in its middle when a name in it is enormous.
fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 400;
    if s.chars().count() <= MAX {
        return s.into();
    }
    let head: String = s.chars().take(MAX / 2).collect();
    let tail: String = s.chars().rev().take(MAX / 4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{head} … ({} characters left out) … {tail}", s.chars().count() - MAX / 2 - MAX / 4).into()
}

impl fmt::Debug for Bound<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Bound<'_> {}

impl miette::Diagnostic for Bound<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help.as_ref().map(|h| Box::new(clip(h).into_owned()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.src.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() { None } else { Some(Box::new(self.labels.clone().into_iter())) }
    }
}

/// How a character is shown: control characters escaped, invisible ones named by code
/// point, everything else as it is.
fn shown(c: char, out: &mut String) {
    match c {
        '\t' => out.push(c),
        '\r' => out.push_str("\\r"),
        c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{00ad}' => {
            out.push_str(&format!("<U+{:04X}>", c as u32))
        }
        c => out.push(c),
    }
}

fn bind<'a>(d: &'a Diag, sources: &Sources) -> Bound<'a> {
    let mut help = d.help.clone();
    let Some((span, label)) = &d.primary else {
        return Bound { diag: d, src: None, labels: Vec::new(), help };
    };
    let f = sources.get(span.file);
    let clamp = |o: u32| (o as usize).min(f.text.len());
    let primary_line = f.line_of(clamp(span.start));
    // The labels drawn: the primary and the secondaries near it in the same file.
    let mut spans: Vec<(usize, usize, String, bool)> = vec![(clamp(span.start), clamp(span.end), label.clone(), true)];
    for (s, l) in &d.secondary {
        let near = s.file == span.file && f.line_of(clamp(s.start)).abs_diff(primary_line) <= NEAR_LINES;
        if near {
            spans.push((clamp(s.start), clamp(s.end), l.clone(), false));
        } else {
            // miette draws one place per diagnostic: name the other one in words.
            let note = format!("{l}: {}", sources.location(s.file, s.start));
            help = Some(match help {
                Some(h) => format!("{h}\n{note}"),
                None => note,
            });
        }
    }
    // A label spanning many lines is cut at the end of its first lines.
    for sp in &mut spans {
        let (l0, l1) = (f.line_of(sp.0), f.line_of(sp.1));
        if l1 > l0 + NEAR_LINES {
            sp.1 = f.line_text(l0 + NEAR_LINES).0;
        }
    }
    let first = spans.iter().map(|s| f.line_of(s.0)).min().unwrap_or(primary_line).saturating_sub(1);
    // The empty "line" after a final line break is not one.
    let lines = f.line_starts().len() - usize::from(f.text.ends_with('\n'));
    let last = (spans.iter().map(|s| f.line_of(s.1)).max().unwrap_or(primary_line) + 1)
        .min(lines.saturating_sub(1))
        .max(first);
    // Each line of the excerpt: shown text, and where the file's offsets land in it.
    let mut text = String::new();
    let mut mapped: Vec<(usize, usize)> = Vec::new(); // (file offset, excerpt offset) of label bounds
    let mut bounds: Vec<usize> = spans.iter().flat_map(|s| [s.0, s.1]).collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut clipped_primary = None;
    for line in first..=last {
        let (start, body) = f.line_text(line);
        let end = start + body.len();
        let inside: Vec<usize> = bounds.iter().copied().filter(|&b| b >= start && b <= end).collect();
        let (mut ws, mut we) = (start, end);
        if body.chars().count() > MAX_LINE {
            // The window shows the primary label when it is on this line, else the others;
            // a label longer than a line is shown by its start.
            let (ps, pe) = (clamp(span.start), clamp(span.end));
            let (lo, hi) = if (start..=end).contains(&ps) {
                (ps, pe.max(ps))
            } else {
                (inside.first().copied().unwrap_or(start), inside.last().copied().unwrap_or(start))
            };
            let hi = hi.max(lo).min(lo + MAX_LINE);
            let margin = MAX_LINE / 2;
            ws = body
                .char_indices()
                .map(|(i, _)| start + i)
                .rev()
                .find(|&o| o <= lo.saturating_sub(margin))
                .unwrap_or(start);
            we = body.char_indices().map(|(i, _)| start + i).find(|&o| o >= hi + margin).unwrap_or(end);
            if inside.contains(&clamp(span.start)) {
                clipped_primary = Some(f.text[start..clamp(span.start)].chars().count() + 1);
            }
        }
        if ws > start {
            text.push('…');
        }
        let mut o = ws;
        for &b in inside.iter().filter(|&&b| b < ws) {
            mapped.push((b, text.len()));
        }
        for c in f.text[ws..we].chars() {
            for &b in inside.iter().filter(|&&b| b == o) {
                mapped.push((b, text.len()));
            }
            shown(c, &mut text);
            o += c.len_utf8();
        }
        for &b in inside.iter().filter(|&&b| b >= we) {
            mapped.push((b, text.len()));
        }
        if we < end {
            text.push('…');
        }
        text.push('\n');
    }
    let at = |o: usize| mapped.iter().find(|(b, _)| *b == o).map_or(text.len(), |(_, e)| *e);
    let labels = spans
        .into_iter()
        .map(|(s, e, l, primary)| {
            let (a, b) = (at(s), at(e).max(at(s)));
            let l = match clipped_primary {
                Some(col) if primary => format!("{l} (column {col})"),
                _ => l,
            };
            let span = miette::SourceSpan::from((a, b - a));
            if primary {
                LabeledSpan::new_primary_with_span(Some(l), span)
            } else {
                LabeledSpan::new_with_span(Some(l), span)
            }
        })
        .collect();
    Bound { diag: d, src: Some(Excerpt { name: f.name.clone(), text, first_line: first }), labels, help }
}

/// Draws diagnostics as text: the first [`MAX_RENDERED`] in full, then how many more there
/// are of each code. `color` adds ANSI colours; `width` wraps long lines.
pub fn render(diags: &[Diag], sources: &Sources, color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    for d in diags.iter().take(MAX_RENDERED) {
        let b = bind(d, sources);
        let _ = handler.render_report(&mut out, &b);
    }
    if diags.len() > MAX_RENDERED {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for d in &diags[MAX_RENDERED..] {
            *counts.entry(d.code).or_default() += 1;
        }
        let list: Vec<String> = counts.iter().map(|(c, n)| format!("{n} × {c}")).collect();
        out.push_str(&format!(
            "… and {} more errors not shown ({}); fix the ones above first\n",
            diags.len() - MAX_RENDERED,
            list.join(", ")
        ));
    }
    out
}

/// Names longer than this get no suggestion: edit distance is quadratic in the length.
const MAX_SUGGEST_LEN: usize = 64;

/// "did you mean" for `name` among `candidates`.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    if name.len() > MAX_SUGGEST_LEN {
        return None;
    }
    let best = candidates
        .into_iter()
        .filter(|c| c.len() <= MAX_SUGGEST_LEN)
        .filter_map(|c| {
            let allowed = (name.len().max(c.len()) / 3).max(1);
            let prefix = c.starts_with(name) && name.len() >= 3;
            // The distance is at least the difference in length: skip the far ones cheaply.
            if !prefix && name.len().abs_diff(c.len()) > allowed {
                return None;
            }
            let d = strsim::damerau_levenshtein(name, c);
            (d <= allowed || prefix).then_some((d, c))
        })
        .min();
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}
