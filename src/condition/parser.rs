//! A recursive-descent parser from tokens to the evaluation tree.
//!
//! Grammar, loosest binding first:
//!
//! ```text
//! or        = and ( "or" and )*
//! and       = not ( "and" not )*
//! not       = "not" not | primary
//! primary   = "(" or ")" | "true" | "false" | predicate
//! predicate = operand ( cmp operand | "contains" operand | "matches" REGEX
//!                     | "exists" | "in" "[" literal ( "," literal )* ","? "]" )
//! operand   = PATH | STRING | INT | FLOAT | "true" | "false" | "null"
//! ```
//!
//! On the right of a comparison or `contains`, a field must be written with its leading dot
//! (`bytes_out > .bytes_in`). A bare word there is almost always text that lost its quotes
//! (`level >= error`); read as a field it would compare against a field no event has, and
//! the condition would quietly never match. So it is an error that suggests the quotes.
//!
//! `and`/`or` chains are collected into flat lists, so a long chain does not deepen the
//! tree; parentheses and `not` do, and are capped at [`MAX_DEPTH`] so that hostile input
//! cannot overflow the stack while parsing or evaluating.

use super::eval::{Literal, Node, Operand};
use super::lexer::{Spanned, Token};
use super::ConditionError;
use crate::event::Value;

/// Deepest nesting of parentheses and `not` accepted.
pub(super) const MAX_DEPTH: usize = 64;

pub(super) struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Spanned>,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(src: &'a str, tokens: Vec<Spanned>) -> Self {
        Self {
            src,
            tokens,
            pos: 0,
            depth: 0,
        }
    }

    pub(super) fn parse(mut self) -> Result<Node, ConditionError> {
        if self.tokens.is_empty() {
            return Err(ConditionError::at(
                self.src,
                0,
                "the condition is empty".into(),
            ));
        }
        let node = self.parse_or()?;
        if let Some(tok) = self.tokens.get(self.pos) {
            let message = if tok.token == Token::RParen {
                "unmatched `)`".to_string()
            } else {
                format!(
                    "unexpected `{}` after a complete condition (missing `and` or `or`?)",
                    self.text(tok)
                )
            };
            return Err(ConditionError::at(self.src, tok.offset, message));
        }
        Ok(node)
    }

    // === helpers ===

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|t| &t.token)
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn text(&self, tok: &Spanned) -> &'a str {
        &self.src[tok.offset..tok.offset + tok.len]
    }

    /// Offset of the next token, or the end of the source.
    fn here(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.src.len(), |t| t.offset)
    }

    /// "expected X" at the next token, naming what was found there.
    fn expected(&self, what: &str) -> ConditionError {
        let message = match self.tokens.get(self.pos) {
            Some(tok) => format!("expected {what}, found `{}`", self.text(tok)),
            None => format!("expected {what}"),
        };
        ConditionError::at(self.src, self.here(), message)
    }

    fn enter(&mut self) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ConditionError::at(
                self.src,
                self.here(),
                format!("the condition nests too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    // === grammar ===

    fn parse_or(&mut self) -> Result<Node, ConditionError> {
        let mut items = vec![self.parse_and()?];
        while self.eat(&Token::Or) {
            items.push(self.parse_and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Const(false))
        } else {
            Node::Or(items.into_boxed_slice())
        })
    }

    fn parse_and(&mut self) -> Result<Node, ConditionError> {
        let mut items = vec![self.parse_not()?];
        while self.eat(&Token::And) {
            items.push(self.parse_not()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Const(true))
        } else {
            Node::And(items.into_boxed_slice())
        })
    }

    fn parse_not(&mut self) -> Result<Node, ConditionError> {
        if self.eat(&Token::Not) {
            self.enter()?;
            let inner = self.parse_not()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Node, ConditionError> {
        if self.peek() == Some(&Token::LParen) {
            let open = self.here();
            self.pos += 1;
            self.enter()?;
            let inner = self.parse_or()?;
            self.depth -= 1;
            if !self.eat(&Token::RParen) {
                let col = ConditionError::column(self.src, open);
                return Err(self.expected(&format!("`)` to close the `(` at column {col}")));
            }
            return Ok(inner);
        }
        let start = self.pos;
        let left = self.parse_operand("a condition")?;
        self.parse_predicate(start, left)
    }

    fn parse_operand(&mut self, what: &str) -> Result<Operand, ConditionError> {
        let operand = match self.peek() {
            Some(Token::Path(p)) => Operand::Field(p.clone()),
            Some(Token::Str(s)) => Operand::Lit(Literal::new(Value::from(s.as_str()))),
            Some(Token::Int(i)) => Operand::Lit(Literal::new(Value::Integer(*i))),
            Some(Token::Float(f)) => Operand::Lit(Literal::new(Value::Float(*f))),
            Some(Token::True) => Operand::Lit(Literal::new(Value::Bool(true))),
            Some(Token::False) => Operand::Lit(Literal::new(Value::Bool(false))),
            Some(Token::Null) => Operand::Lit(Literal::new(Value::Null)),
            _ => return Err(self.expected(what)),
        };
        self.pos += 1;
        Ok(operand)
    }

    /// The operand after the operator `op`, where a field needs its leading dot.
    fn parse_right_operand(&mut self, op: &str) -> Result<Operand, ConditionError> {
        if let Some(tok) = self.tokens.get(self.pos) {
            let text = self.text(tok);
            if matches!(tok.token, Token::Path(_)) && !text.starts_with('.') {
                // A path may hold a quoted segment; the suggestion must stay one string.
                let quoted = if text.contains('"') {
                    format!("'{text}'")
                } else {
                    format!("\"{text}\"")
                };
                return Err(ConditionError::at(
                    self.src,
                    tok.offset,
                    format!(
                        "bare word `{text}` after `{op}`: did you mean {quoted}? (a field on the right is written `.{text}`)"
                    ),
                ));
            }
        }
        self.parse_operand(&format!("a value after `{op}`"))
    }

    /// Parses what follows the operand at token index `start`.
    fn parse_predicate(&mut self, start: usize, left: Operand) -> Result<Node, ConditionError> {
        let left_text = self.text(&self.tokens[start]);
        let Some(op_tok) = self.tokens.get(self.pos).cloned() else {
            return self.bare_operand(left, left_text);
        };
        let op_text = self.text(&op_tok);
        match op_tok.token {
            Token::Cmp(op) => {
                self.pos += 1;
                let right = self.parse_right_operand(op.symbol())?;
                let severity = left.is_level_field() || right.is_level_field();
                Ok(Node::Compare {
                    op,
                    left,
                    right,
                    severity,
                })
            }
            Token::Contains => {
                self.pos += 1;
                let needle = self.parse_right_operand("contains")?;
                let finder = match &needle {
                    Operand::Lit(lit) => match &lit.value {
                        Value::Bytes(b) => Some(Box::new(memchr::memmem::Finder::new(b).into_owned())),
                        _ => None,
                    },
                    Operand::Field(_) => None,
                };
                Ok(Node::Contains {
                    haystack: left,
                    needle,
                    finder,
                })
            }
            Token::Matches => {
                self.pos += 1;
                let Some(Spanned {
                    token: Token::Regex(pattern),
                    offset,
                    ..
                }) = self.tokens.get(self.pos).cloned()
                else {
                    return Err(self.expected("a `/regex/` after `matches`"));
                };
                self.pos += 1;
                let regex = regex::bytes::Regex::new(&pattern).map_err(|e| {
                    ConditionError::at(
                        self.src,
                        offset,
                        format!("invalid regex: {}", regex_error_text(&e)),
                    )
                })?;
                Ok(Node::Matches {
                    subject: left,
                    regex,
                })
            }
            Token::Exists => {
                self.pos += 1;
                match left {
                    Operand::Field(path) => Ok(Node::Exists(path)),
                    Operand::Lit(_) => Err(ConditionError::at(
                        self.src,
                        op_tok.offset,
                        format!("`exists` needs a field, not the literal `{left_text}`"),
                    )),
                }
            }
            Token::In => {
                self.pos += 1;
                let list = self.parse_list()?;
                let severity = left.is_level_field();
                Ok(Node::In {
                    left,
                    list,
                    severity,
                })
            }
            Token::Not if self.tokens.get(self.pos + 1).map(|t| &t.token) == Some(&Token::In) => {
                Err(ConditionError::at(
                    self.src,
                    op_tok.offset,
                    format!("write `not {left_text} in [...]` rather than `{left_text} not in [...]`"),
                ))
            }
            Token::And | Token::Or | Token::RParen => self.bare_operand(left, left_text),
            Token::Regex(_) => Err(ConditionError::at(
                self.src,
                op_tok.offset,
                format!("expected an operator after `{left_text}` (write `{left_text} matches {op_text}`)"),
            )),
            _ => Err(ConditionError::at(
                self.src,
                op_tok.offset,
                format!("expected an operator after `{left_text}`, found `{op_text}`"),
            )),
        }
    }

    /// An operand standing alone is only a condition when it is `true` or `false`; a bare
    /// field is rejected because it usually means a forgotten `exists` or comparison.
    fn bare_operand(&self, operand: Operand, text: &str) -> Result<Node, ConditionError> {
        match operand {
            Operand::Lit(lit) => match lit.value {
                Value::Bool(b) => Ok(Node::Const(b)),
                _ => Err(ConditionError::at(
                    self.src,
                    self.here(),
                    format!("expected an operator after `{text}`"),
                )),
            },
            Operand::Field(_) => Err(ConditionError::at(
                self.src,
                self.here(),
                format!("expected an operator after `{text}` (did you mean `{text} exists`?)"),
            )),
        }
    }

    fn parse_list(&mut self) -> Result<Box<[Literal]>, ConditionError> {
        if !self.eat(&Token::LBracket) {
            return Err(self.expected("`[` after `in`"));
        }
        let mut items = Vec::new();
        loop {
            if self.eat(&Token::RBracket) {
                break;
            }
            match self.parse_operand("a literal or `]` in the list")? {
                Operand::Lit(lit) => items.push(lit),
                Operand::Field(_) => {
                    self.pos -= 1;
                    return Err(self.expected("a literal in the list (fields are not allowed)"));
                }
            }
            if self.eat(&Token::Comma) {
                continue;
            }
            if self.eat(&Token::RBracket) {
                break;
            }
            return Err(self.expected("`,` or `]` in the list"));
        }
        Ok(items.into_boxed_slice())
    }
}

/// The regex crate's syntax errors span several lines with a caret diagram; the last line,
/// `error: ...`, says what is wrong.
pub(crate) fn regex_error_text(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(text.lines().last().unwrap_or("syntax error"))
            .to_string(),
        regex::Error::CompiledTooBig(limit) => format!("compiled regex exceeds {limit} bytes"),
        other => other.to_string().to_lowercase(),
    }
}
