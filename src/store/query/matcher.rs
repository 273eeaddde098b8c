//! [`Query::matches`]: the query evaluated on a live event (for the tail), with the same
//! semantics as the stored-event search.

use std::ops::Bound;

use super::Query;
use crate::event::{fields, Event, Value};

impl Query {
    /// Whether a live event matches: the same semantics as the stored-event search.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Query::All => true,
            Query::And(parts) => parts.iter().all(|q| q.matches(event)),
            Query::Or(parts) => parts.iter().any(|q| q.matches(event)),
            Query::Not(inner) => !inner.matches(event),
            Query::Term { field, value } | Query::Phrase { field, text: value } => {
                match text_field(field) {
                    None => message_contains(event, value),
                    Some(name) => field_values(event, name).iter().any(|v| v == value),
                }
            }
            Query::Wildcard { field, pattern } => match text_field(field) {
                None => {
                    let pattern = pattern.to_lowercase();
                    event.message().is_some_and(|m| {
                        tokens(&m.to_text()).any(|token| glob_matches(&pattern, &token))
                    })
                }
                Some(name) => field_values(event, name)
                    .iter()
                    .any(|v| glob_matches(pattern, v)),
            },
            Query::Range {
                field,
                lower,
                upper,
            } => numbers(event, field)
                .into_iter()
                .any(|n| in_range(n, *lower, *upper)),
        }
    }
}

/// `None` when the field is the message text (bare words and `message:`).
fn text_field(field: &Option<String>) -> Option<&str> {
    match field.as_deref() {
        None | Some(fields::MESSAGE) => None,
        Some(name) => Some(name),
    }
}

pub(crate) fn in_range(n: f64, lower: Bound<f64>, upper: Bound<f64>) -> bool {
    let above = match lower {
        Bound::Included(l) => n >= l,
        Bound::Excluded(l) => n > l,
        Bound::Unbounded => true,
    };
    let below = match upper {
        Bound::Included(u) => n <= u,
        Bound::Excluded(u) => n < u,
        Bound::Unbounded => true,
    };
    above && below
}

/// The message's tokens as the index cuts them: runs of alphanumerics, lowercased.
pub(crate) fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

/// Whether the message holds `words`' tokens consecutively (a phrase match). Text without
/// any token (only punctuation) matches everything, as the index ignores it too.
fn message_contains(event: &Event, words: &str) -> bool {
    let wanted: Vec<String> = tokens(words).collect();
    if wanted.is_empty() {
        return true;
    }
    let Some(message) = event.message() else {
        return false;
    };
    let have: Vec<String> = tokens(&message.to_text()).collect();
    have.windows(wanted.len()).any(|w| w == wanted.as_slice())
}

/// The text of a field's value(s): arrays give one per element.
fn field_values(event: &Event, name: &str) -> Vec<String> {
    match event.get(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(keyword_text).collect(),
        Some(value) => vec![keyword_text(value)],
    }
}

/// A value as the index stores it for exact matching (`Value::write_text`, as
/// `index::Fields::document` writes it).
fn keyword_text(value: &Value) -> String {
    value.to_text()
}

fn numbers(event: &Event, name: &str) -> Vec<f64> {
    match event.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(number).collect(),
        Some(value) => number(value).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Numbers only: a string that looks like a number is still a string (as in the index).
pub(crate) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Glob match: `*` any run (also empty), `?` exactly one character.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    // ASCII (nearly every value): byte by byte, nothing allocated. A query scans a column
    // with this, one call per row.
    if pattern.is_ascii() && text.is_ascii() {
        return glob(pattern.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    // Otherwise by characters, so that `?` is one character, not one byte.
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(&p, &t, '*', '?')
}

/// `p` matched against `t`, where `star` is any run and `any` any one item. Iterative with
/// one backtrack point: linear in practice, no recursion.
fn glob<T: Copy + PartialEq>(p: &[T], t: &[T], star: T, any: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = backtrack {
            pi = sp + 1;
            ti = st + 1;
            backtrack = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == star)
}
