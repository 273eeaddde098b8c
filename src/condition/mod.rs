//! The condition language: small boolean expressions over event fields, such as
//! `level >= "warn" and http.status >= 500` or `message matches /timeout|refused/`.
//!
//! A condition is compiled once when the config is loaded ([`Condition::compile`]) into a
//! tree that [`Condition::check`] evaluates per event without allocating and without
//! looking at condition text again. The language and its semantics are documented for
//! users in `docs/conditions.md`; the short version:
//!
//! - a missing field makes every comparison false, `!=` included (`not x == 1` is the way
//!   to say "x is not 1, or x is missing");
//! - a number on either side compares numerically, also against numeric strings;
//! - the `level` field compares by severity (`trace` < ... < `emergency`).
//!
//! Module map: `lexer` (text → tokens), `parser` (tokens → tree), `eval` (the tree and its
//! evaluation), `path` (field paths, shared with templates and transforms), `set` (many
//! conditions evaluated together, for alert rules).

mod eval;
mod lexer;
mod parser;
mod path;
mod set;
#[cfg(test)]
mod tests;

pub(crate) use eval::{compare_values, with_scalar_bytes};
pub use eval::{severity_rank, SEVERITY_NAMES};
pub(crate) use lexer::{scan_number, CmpOp, NumberToken};
pub(crate) use parser::regex_error_text;
pub use path::FieldPath;
pub(crate) use path::{scan as scan_path, scan_quoted};
pub use set::{ConditionSet, SetResults};

use crate::event::{Event, Map};

/// A compiled condition.
#[derive(Clone)]
pub struct Condition {
    source: String,
    root: eval::Node,
}

/// Why a condition failed to compile, with the 1-based column (in characters) it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct ConditionError {
    pub column: usize,
    pub message: String,
}

impl ConditionError {
    fn at(src: &str, offset: usize, message: String) -> Self {
        Self {
            column: Self::column(src, offset),
            message,
        }
    }

    /// Converts a byte offset into a 1-based character column.
    fn column(src: &str, offset: usize) -> usize {
        src.get(..offset).map_or(offset, |s| s.chars().count()) + 1
    }
}

impl Condition {
    /// Compiles `src`. Regexes are compiled here, so a bad one fails the config load.
    pub fn compile(src: &str) -> Result<Condition, ConditionError> {
        let tokens = lexer::lex(src)?;
        let root = parser::Parser::new(src, tokens).parse()?;
        Ok(Condition {
            source: src.to_string(),
            root,
        })
    }

    /// Whether `event` satisfies the condition.
    pub fn check(&self, event: &Event) -> bool {
        self.root.eval(&event.fields)
    }

    /// Whether a field map satisfies the condition (for callers without an [`Event`]).
    pub fn check_fields(&self, fields: &Map) -> bool {
        self.root.eval(fields)
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}
