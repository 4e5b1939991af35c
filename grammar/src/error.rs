use crate::Span;
use miette::Diagnostic;
use thiserror::Error;

/// A syntax error, located and explained in words.
#[derive(Debug, Clone, Error, Diagnostic, PartialEq)]
#[error("{message}")]
#[diagnostic(code(lab::syntax))]
pub struct ParseError {
    pub message: String,
    #[label("{label}")]
    pub span: Span,
    pub label: String,
    #[help]
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
