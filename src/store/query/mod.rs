//! The store's query language, parsed by hand (recursive descent) into a small tree that
//! two back ends read: `search` translates it to tantivy queries over stored events, and
//! [`Query::matches`] evaluates it on live events for the tail.
//!
//! ```text
//! query    := or? EOF                       (empty query: everything)
//! or       := and ("OR" and)*
//! and      := unary (("AND")? unary)*       (juxtaposition is AND)
//! unary    := "NOT" unary | "-" unary | atom
//! atom     := "(" or ")" | FIELD ":" value | value
//! value    := '"' phrase '"' | ">=" NUM | ">" NUM | "<=" NUM | "<" NUM
//!           | "[" (NUM | "*") "TO" (NUM | "*") "]" | WORD    (a WORD with * or ? is a wildcard)
//! ```
//!
//! A bare word or phrase searches the `message` text (tokenised on non-alphanumerics,
//! lowercased); `field:value` matches a field's whole value exactly. On `level`, a
//! comparison may name a level instead of a number (`level:>=warn`): it becomes the `OR` of
//! every level name of that severity or more, as conditions rank them.

use std::ops::Bound;

mod matcher;
mod parser;
#[cfg(test)]
mod tests;

// The store's translation to tantivy uses them; a build without the store has the
// language alone.
#[cfg_attr(not(feature = "store"), allow(unused_imports))]
pub(crate) use matcher::{glob_matches, in_range, number, tokens};

/// A parse error, with the byte offset in the query where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("query error at position {position}: {message}")]
pub struct QueryError {
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Matches every event (the empty query).
    All,
    And(Vec<Query>),
    Or(Vec<Query>),
    Not(Box<Query>),
    /// `field:value`, or a bare word (`field` is `None`: full text on `message`).
    Term {
        field: Option<String>,
        value: String,
    },
    /// `field:"some words"` or a bare `"some words"`.
    Phrase {
        field: Option<String>,
        text: String,
    },
    /// `field:web*`: `*` any run of characters, `?` one character.
    Wildcard {
        field: Option<String>,
        pattern: String,
    },
    /// `status:>=500`, `status:[200 TO 299]`: numeric, on fields holding numbers.
    Range {
        field: String,
        lower: Bound<f64>,
        upper: Bound<f64>,
    },
}

/// Longest query accepted; it also bounds the parser's recursion.
pub const MAX_QUERY_BYTES: usize = 4096;
const MAX_DEPTH: usize = 64;

impl Query {
    pub fn parse(input: &str) -> Result<Query, QueryError> {
        parser::parse(input)
    }
}
