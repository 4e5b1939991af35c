use crate::Span;
use thiserror::Error;

/// A syntax error, located and explained in words: plain data, which the engine turns into
/// a `lab::syntax` diagnostic (only the engine's renderer knows miette).
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
    pub span: Span,
    /// What the span's label says.
    pub label: String,
    pub help: Option<String>,
}

impl ParseError {
    pub(crate) fn new(span: Span, message: impl Into<String>, label: impl Into<String>) -> Self {
        ParseError { message: message.into(), span, label: label.into(), help: None }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}
