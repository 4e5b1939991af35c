//! The `.lab` language: grammar, syntax tree, parse diagnostics and formatter.
//!
//! - [`parse`] turns source text into a [`File`] (every node carries a byte [`Span`]) or a
//!   list of [`ParseError`]s written in words, never in grammar rule names.
//! - [`format`] prints a [`File`] back in the canonical layout, keeping every comment;
//!   `format(parse(format(x)))` equals `format(x)`.
//!
//! The crate knows nothing of ops, types or the engine: the checker lives in `lab-engine`.

mod ast;
mod depth;
mod error;
mod format;
mod lexer;
mod parse;
mod span;

pub use ast::*;
pub use depth::MAX_DEPTH;
pub use error::ParseError;
pub use format::{flat, format};
pub use parse::{MAX_NESTING, parse};

/// Changes whenever the grammar, the syntax tree or the parser's code does: a parse saved
/// under one fingerprint is never read under another.
pub const FINGERPRINT: &str = concat!(env!("CARGO_PKG_VERSION"), "-", env!("LAB_GRAMMAR_FINGERPRINT"));
pub use span::Span;
