//! Diagnostics: what went wrong, where, and how to fix it. The engine collects them as
//! plain data; [`render`] draws them with miette for the CLI and the snapshot tests.

use crate::Sources;
use lab_grammar::Span;
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use std::fmt;

/// Every diagnostic code labrun emits for a program, documented in `grammar/GRAMMAR.md`.
pub const CODES: &[&str] = &[
    "lab::syntax",
    "lab::io",
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

/// A diagnostic bound to its source, in the form miette draws.
struct Bound<'a> {
    diag: &'a Diag,
    src: Option<NamedSource<String>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl fmt::Display for Bound<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
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
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.src.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() { None } else { Some(Box::new(self.labels.clone().into_iter())) }
    }
}

fn bind<'a>(d: &'a Diag, sources: &Sources) -> Bound<'a> {
    let mut help = d.help.clone();
    let mut labels = Vec::new();
    let mut src = None;
    if let Some((span, label)) = &d.primary {
        let f = sources.get(span.file);
        src = Some(NamedSource::new(f.name.clone(), f.text.clone()));
        labels.push(LabeledSpan::new_primary_with_span(Some(label.clone()), *span));
        for (s, l) in &d.secondary {
            if s.file == span.file {
                labels.push(LabeledSpan::new_with_span(Some(l.clone()), *s));
            } else {
                // miette draws one file per diagnostic: name the other place in words.
                let note = format!("{l}: {}", sources.location(s.file, s.start));
                help = Some(match help {
                    Some(h) => format!("{h}\n{note}"),
                    None => note,
                });
            }
        }
    }
    Bound { diag: d, src, labels, help }
}

/// Draws diagnostics as text. `color` adds ANSI colours; `width` wraps long lines.
pub fn render(diags: &[Diag], sources: &Sources, color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    for d in diags {
        let b = bind(d, sources);
        let _ = handler.render_report(&mut out, &b);
    }
    out
}

/// "did you mean" for `name` among `candidates`.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let best = candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(1) || c.starts_with(name) && name.len() >= 3)
        .min();
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}
