//! The recursive-descent parser of the grammar in the module doc of `query`.

use std::ops::Bound;

use super::{Query, QueryError, MAX_DEPTH, MAX_QUERY_BYTES};
use crate::condition::{severity_rank, SEVERITY_NAMES};
use crate::event::fields;

/// Parses a whole query (see [`Query::parse`]).
pub(super) fn parse(input: &str) -> Result<Query, QueryError> {
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
        // A `-` negates what touches it; alone (before a space, a `)` or the end) it is a
        // word, the same inside parentheses as outside.
        if self.peek() == Some('-')
            && self.rest()[1..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace() && c != ')')
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
                if field == fields::LEVEL && self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    return self.parse_level_comparison(field, kind);
                }
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

    /// `level:>=error`: every level name whose severity compares so (as conditions compare
    /// levels), as one `OR` of terms, so the index and the tail's matcher need nothing new.
    /// `kind` is the comparison's index in `parse_value`'s table.
    fn parse_level_comparison(&mut self, field: String, kind: u8) -> Result<Query, QueryError> {
        let start = self.pos;
        let word = self.take_while(|c| c.is_ascii_alphabetic());
        let Some(rank) = severity_rank(word.as_bytes()) else {
            self.pos = start;
            return Err(self.error(
                "expected a level (trace, debug, info, notice, warn, error, critical, alert, emergency) or a number",
            ));
        };
        let keep = |r: u8| match kind {
            0 => r >= rank,
            1 => r <= rank,
            2 => r > rank,
            _ => r < rank,
        };
        let terms: Vec<Query> = SEVERITY_NAMES
            .iter()
            .filter(|name| severity_rank(name.as_bytes()).is_some_and(keep))
            .map(|name| Query::Term {
                field: Some(field.clone()),
                value: (*name).to_string(),
            })
            .collect();
        Ok(match terms.len() {
            // `level:<trace`: nothing is below the lowest level.
            0 => Query::Not(Box::new(Query::All)),
            _ => Query::Or(terms),
        })
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
