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
//! lowercased); `field:value` matches a field's whole value exactly.

use std::ops::Bound;

use crate::event::{fields, Event, Value};

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
        if input.len() > MAX_QUERY_BYTES {
            return Err(QueryError {
                position: MAX_QUERY_BYTES,
                message: format!("query longer than {MAX_QUERY_BYTES} bytes"),
            });
        }
        let mut parser = Parser {
            input,
            pos: 0,
            depth: 0,
        };
        parser.skip_ws();
        if parser.at_end() {
            return Ok(Query::All);
        }
        let query = parser.parse_or()?;
        parser.skip_ws();
        if !parser.at_end() {
            return Err(parser.error("unexpected `)`"));
        }
        Ok(query)
    }

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

/// A value as the index stores it for exact matching.
pub(crate) fn keyword_text(value: &Value) -> String {
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
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

// === impl Parser ===

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, message: impl Into<String>) -> QueryError {
        QueryError {
            position: self.pos,
            message: message.into(),
        }
    }

    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Whether an operator keyword (uppercase) stands next, as a whole word.
    fn at_keyword(&self, keyword: &str) -> bool {
        let rest = self.rest();
        rest.starts_with(keyword)
            && rest[keyword.len()..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == '(')
    }

    fn parse_or(&mut self) -> Result<Query, QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("query nested too deeply"));
        }
        let mut parts = vec![self.parse_and()?];
        loop {
            self.skip_ws();
            if !self.at_keyword("OR") {
                break;
            }
            self.pos += 2;
            parts.push(self.parse_and()?);
        }
        self.depth -= 1;
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::Or(parts)
        })
    }

    fn parse_and(&mut self) -> Result<Query, QueryError> {
        let mut parts = vec![self.parse_unary()?];
        loop {
            self.skip_ws();
            if self.at_end() || self.peek() == Some(')') || self.at_keyword("OR") {
                break;
            }
            if self.at_keyword("AND") {
                self.pos += 3;
            }
            parts.push(self.parse_unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::And(parts)
        })
    }

    fn parse_unary(&mut self) -> Result<Query, QueryError> {
        self.skip_ws();
        if self.at_keyword("NOT") {
            self.pos += 3;
            return self.negated();
        }
        if self.peek() == Some('-')
            && self.rest()[1..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace())
        {
            self.pos += 1;
            return self.negated();
        }
        self.parse_atom()
    }

    fn negated(&mut self) -> Result<Query, QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("query nested too deeply"));
        }
        let inner = self.parse_unary()?;
        self.depth -= 1;
        Ok(Query::Not(Box::new(inner)))
    }

    fn parse_atom(&mut self) -> Result<Query, QueryError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.error("expected a term after an operator")),
            Some('(') => {
                self.bump();
                self.skip_ws();
                if self.peek() == Some(')') {
                    return Err(self.error("empty parentheses"));
                }
                let inner = self.parse_or()?;
                self.skip_ws();
                if self.bump() != Some(')') {
                    return Err(self.error("expected `)`"));
                }
                Ok(inner)
            }
            Some(')') => Err(self.error("unexpected `)`")),
            Some('"') => Ok(Query::Phrase {
                field: None,
                text: self.parse_quoted()?,
            }),
            Some(_) => {
                if self.at_keyword("AND") || self.at_keyword("OR") {
                    return Err(self.error("expected a term before this operator"));
                }
                let start = self.pos;
                let word = self.take_while(|c| !c.is_whitespace() && !"():\"".contains(c));
                if self.peek() == Some(':') && !word.is_empty() {
                    self.bump();
                    return self.parse_value(word.to_string());
                }
                if word.is_empty() {
                    self.pos = start;
                    return Err(self.error("expected a term"));
                }
                Ok(word_query(None, word))
            }
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let input = self.input;
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
        &input[start..self.pos]
    }

    fn parse_quoted(&mut self) -> Result<String, QueryError> {
        let start = self.pos;
        self.bump(); // the opening quote
        let mut text = String::new();
        loop {
            match self.bump() {
                None => {
                    self.pos = start;
                    return Err(self.error("unterminated quote"));
                }
                Some('"') => return Ok(text),
                Some('\\') => match self.bump() {
                    Some(c) => text.push(c),
                    None => {
                        self.pos = start;
                        return Err(self.error("unterminated quote"));
                    }
                },
                Some(c) => text.push(c),
            }
        }
    }

    fn parse_value(&mut self, field: String) -> Result<Query, QueryError> {
        let comparisons = [(">=", 0), ("<=", 1), (">", 2), ("<", 3)];
        for (op, kind) in comparisons {
            if self.rest().starts_with(op) {
                self.pos += op.len();
                let n = self.parse_number()?;
                let (lower, upper) = match kind {
                    0 => (Bound::Included(n), Bound::Unbounded),
                    1 => (Bound::Unbounded, Bound::Included(n)),
                    2 => (Bound::Excluded(n), Bound::Unbounded),
                    _ => (Bound::Unbounded, Bound::Excluded(n)),
                };
                return Ok(Query::Range {
                    field,
                    lower,
                    upper,
                });
            }
        }
        match self.peek() {
            Some('"') => Ok(Query::Phrase {
                field: Some(field),
                text: self.parse_quoted()?,
            }),
            Some('[') => {
                self.bump();
                self.skip_ws();
                let lower = self.parse_bound()?;
                self.skip_ws();
                if !self.at_keyword("TO") {
                    return Err(self.error("expected `TO` in a range"));
                }
                self.pos += 2;
                self.skip_ws();
                let upper = self.parse_bound()?;
                self.skip_ws();
                if self.bump() != Some(']') {
                    return Err(self.error("expected `]` closing the range"));
                }
                Ok(Query::Range {
                    field,
                    lower,
                    upper,
                })
            }
            _ => {
                // Values may hold `:` (times, URLs); they end at whitespace or `)`.
                let word = self.take_while(|c| !c.is_whitespace() && c != ')' && c != '(');
                if word.is_empty() {
                    return Err(self.error(format!("expected a value after `{field}:`")));
                }
                Ok(word_query(Some(field), word))
            }
        }
    }

    fn parse_bound(&mut self) -> Result<Bound<f64>, QueryError> {
        if self.peek() == Some('*') {
            self.bump();
            return Ok(Bound::Unbounded);
        }
        Ok(Bound::Included(self.parse_number()?))
    }

    fn parse_number(&mut self) -> Result<f64, QueryError> {
        let start = self.pos;
        let word = self.take_while(|c| c.is_ascii_digit() || "+-.eE".contains(c));
        match word.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => {
                self.pos = start;
                Err(self.error("expected a number"))
            }
        }
    }
}

fn word_query(field: Option<String>, word: &str) -> Query {
    if word.contains(['*', '?']) {
        Query::Wildcard {
            field,
            pattern: word.to_string(),
        }
    } else {
        Query::Term {
            field,
            value: word.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(field: Option<&str>, value: &str) -> Query {
        Query::Term {
            field: field.map(str::to_string),
            value: value.to_string(),
        }
    }

    #[test]
    fn parses_table() {
        let not = |q| Query::Not(Box::new(q));
        let cases: Vec<(&str, Query)> = vec![
            ("", Query::All),
            ("  ", Query::All),
            ("boom", term(None, "boom")),
            ("app:web", term(Some("app"), "web")),
            (
                "app:web level:error",
                Query::And(vec![term(Some("app"), "web"), term(Some("level"), "error")]),
            ),
            (
                "a AND b OR c",
                Query::Or(vec![
                    Query::And(vec![term(None, "a"), term(None, "b")]),
                    term(None, "c"),
                ]),
            ),
            (
                "a AND (b OR c)",
                Query::And(vec![
                    term(None, "a"),
                    Query::Or(vec![term(None, "b"), term(None, "c")]),
                ]),
            ),
            ("NOT a", not(term(None, "a"))),
            ("-level:debug", not(term(Some("level"), "debug"))),
            (
                "msg:\"connection refused\"",
                Query::Phrase {
                    field: Some("msg".into()),
                    text: "connection refused".into(),
                },
            ),
            (
                "\"a \\\"b\\\"\"",
                Query::Phrase {
                    field: None,
                    text: "a \"b\"".into(),
                },
            ),
            (
                "app:web*",
                Query::Wildcard {
                    field: Some("app".into()),
                    pattern: "web*".into(),
                },
            ),
            (
                "status:>=500",
                Query::Range {
                    field: "status".into(),
                    lower: Bound::Included(500.0),
                    upper: Bound::Unbounded,
                },
            ),
            (
                "took:<1.5",
                Query::Range {
                    field: "took".into(),
                    lower: Bound::Unbounded,
                    upper: Bound::Excluded(1.5),
                },
            ),
            (
                "status:[200 TO 299]",
                Query::Range {
                    field: "status".into(),
                    lower: Bound::Included(200.0),
                    upper: Bound::Included(299.0),
                },
            ),
            (
                "status:[500 TO *]",
                Query::Range {
                    field: "status".into(),
                    lower: Bound::Included(500.0),
                    upper: Bound::Unbounded,
                },
            ),
            ("url:http://x/y", term(Some("url"), "http://x/y")),
            ("a-b", term(None, "a-b")),
        ];
        for (input, expected) in cases {
            assert_eq!(Query::parse(input), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn errors_carry_position() {
        let cases = [
            ("(a", 2, "expected `)`"),
            ("a)", 1, "unexpected `)`"),
            ("a AND", 5, "expected a term"),
            ("OR a", 0, "expected a term before"),
            ("status:>=abc", 9, "expected a number"),
            ("status:[1 2]", 10, "expected `TO`"),
            ("msg:\"open", 4, "unterminated quote"),
            ("()", 1, "empty parentheses"),
            ("app:", 4, "expected a value"),
        ];
        for (input, position, message) in cases {
            let err = Query::parse(input).expect_err(input);
            assert_eq!(err.position, position, "{input:?}: {err}");
            assert!(err.message.contains(message), "{input:?}: {err}");
        }
        let deep = "(".repeat(200) + "a" + &")".repeat(200);
        assert!(Query::parse(&deep).is_err());
    }

    #[test]
    fn matches_live_events() {
        let value: Value = serde_json::from_str(
            r#"{"message":"Connection refused by upstream","app":"web-1","status":503,"tags":["a","b"]}"#,
        )
        .expect("json");
        let Value::Object(map) = value else {
            panic!("object expected")
        };
        let event = Event::new(map);
        let cases = [
            ("", true),
            ("refused", true),
            ("REFUSED", true),
            ("refuse", false),
            ("\"refused by\"", true),
            ("\"by refused\"", false),
            ("refu*", true),
            ("app:web-1", true),
            ("app:web", false),
            ("app:web*", true),
            ("app:w?b-1", true),
            ("status:>=500", true),
            ("status:[200 TO 299]", false),
            ("status:503", true),
            ("tags:b", true),
            ("missing:x", false),
            ("-app:web-1", false),
            ("NOT missing:x", true),
            ("app:x OR status:<600", true),
            ("app:web-1 AND nothing", false),
        ];
        for (query, expected) in cases {
            let q = Query::parse(query).expect(query);
            assert_eq!(q.matches(&event), expected, "{query:?}");
        }
    }

    proptest::proptest! {
        /// Any text parses or fails with a position inside it (or just after); whatever
        /// parses evaluates, and `NOT (q)` negates it.
        #[test]
        fn parse_never_panics(src in "\\PC{0,64}") {
            match Query::parse(&src) {
                Err(e) => proptest::prop_assert!(e.position <= src.len(), "{e}"),
                Ok(q) => {
                    let event = Event::new(crate::event::Map::new());
                    let negated = Query::Not(Box::new(q.clone()));
                    proptest::prop_assert_eq!(negated.matches(&event), !q.matches(&event));
                }
            }
        }

        #[test]
        fn pieces_parse_or_fail_cleanly(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("app:web"), proptest::strategy::Just("AND"),
                    proptest::strategy::Just("OR"), proptest::strategy::Just("NOT"),
                    proptest::strategy::Just("("), proptest::strategy::Just(")"),
                    proptest::strategy::Just("-x"), proptest::strategy::Just("\"a b\""),
                    proptest::strategy::Just("s:>=5"), proptest::strategy::Just("s:[1 TO *]"),
                    proptest::strategy::Just("w*"), proptest::strategy::Just(":"),
                ],
                0..12,
            )
        ) {
            let src = parts.join(" ");
            if let Err(e) = Query::parse(&src) {
                proptest::prop_assert!(e.position <= src.len(), "{src}: {e}");
            }
        }
    }

    #[test]
    fn glob_table() {
        let cases = [
            ("web*", "web", true),
            ("web*", "webserver", true),
            ("*er", "webserver", true),
            ("w?b", "web", true),
            ("w?b", "wb", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "ba", false),
        ];
        for (p, t, expected) in cases {
            assert_eq!(glob_matches(p, t), expected, "{p} {t}");
        }
    }
}
