//! Splits a remap program into tokens, each with the byte offset it starts at.
//!
//! Paths, quoted strings and numbers are read by the condition language's own scanners, so
//! `.http.status`, `."app.kubernetes.io/name"`, `"text\n"` and `1e-3` mean the same in both
//! languages. What the remap language adds: `=`, arithmetic, `??`, blocks, newlines as
//! statement ends, `#` comments, names (variables and functions) and `r'...'` regexes.
//!
//! Unlike in a condition, a path must start with `.`: a bare word is a variable or a
//! function. Field names may contain `-` (`.x-request-id`), so subtraction is written with
//! spaces around the `-` (`.a - 1`).

use super::CompileError;
use crate::condition::{scan_number, scan_path, scan_quoted, CmpOp, FieldPath, NumberToken};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Path(FieldPath),
    Name(String),
    Str(String),
    Regex(String),
    Int(i64),
    Float(f64),
    True,
    False,
    Null,
    If,
    Else,
    Abort,
    Assign,
    Cmp(CmpOp),
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    And,
    Or,
    Not,
    Coalesce,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Semicolon,
    Newline,
}

/// A token, the byte offset where it starts and its length in the source.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spanned {
    pub(super) token: Token,
    pub(super) offset: usize,
    pub(super) len: usize,
}

pub(super) fn lex(src: &str) -> Result<Vec<Spanned>, CompileError> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while let Some(c) = src[pos..].chars().next() {
        let rest = &src[pos..];
        if c == '\n' {
            tokens.push(Spanned {
                token: Token::Newline,
                offset: pos,
                len: 1,
            });
            pos += 1;
            continue;
        }
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        if c == '#' {
            pos += rest.find('\n').unwrap_or(rest.len());
            continue;
        }
        let err = |offset: usize, message: String| CompileError::at(src, offset, message);
        let two = |s: &str| rest.starts_with(s);
        let (token, len) = match c {
            '(' => (Token::LParen, 1),
            ')' => (Token::RParen, 1),
            '{' => (Token::LBrace, 1),
            '}' => (Token::RBrace, 1),
            '[' => (Token::LBracket, 1),
            ']' => (Token::RBracket, 1),
            ',' => (Token::Comma, 1),
            ':' => (Token::Colon, 1),
            ';' => (Token::Semicolon, 1),
            '+' => (Token::Plus, 1),
            '-' => (Token::Minus, 1),
            '*' => (Token::Star, 1),
            '/' => (Token::Slash, 1),
            '%' => (Token::Percent, 1),
            '=' if two("==") => (Token::Cmp(CmpOp::Eq), 2),
            '!' if two("!=") => (Token::Cmp(CmpOp::Ne), 2),
            '<' if two("<=") => (Token::Cmp(CmpOp::Le), 2),
            '>' if two(">=") => (Token::Cmp(CmpOp::Ge), 2),
            '<' => (Token::Cmp(CmpOp::Lt), 1),
            '>' => (Token::Cmp(CmpOp::Gt), 1),
            '=' => (Token::Assign, 1),
            '!' => (Token::Not, 1),
            '&' if two("&&") => (Token::And, 2),
            '|' if two("||") => (Token::Or, 2),
            '?' if two("??") => (Token::Coalesce, 2),
            '"' | '\'' => {
                let (text, used) = scan_quoted(rest).map_err(|e| err(pos + e.offset, e.message))?;
                (Token::Str(text), used)
            }
            'r' if matches!(rest[1..].chars().next(), Some('\'' | '"')) => {
                let (pattern, used) = scan_regex(rest).ok_or_else(|| {
                    err(pos, "unterminated regex (expected a closing quote)".into())
                })?;
                (Token::Regex(pattern), used)
            }
            '0'..='9' => match scan_number(rest).map_err(|m| err(pos, m))? {
                (NumberToken::Int(i), used) => (Token::Int(i), used),
                (NumberToken::Float(f), used) => (Token::Float(f), used),
            },
            '.' => {
                let (path, used) = scan_path(rest).map_err(|e| err(pos + e.offset, e.message))?;
                (Token::Path(path), used)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let token = match &rest[..len] {
                    "true" => Token::True,
                    "false" => Token::False,
                    "null" => Token::Null,
                    "if" => Token::If,
                    "else" => Token::Else,
                    "abort" => Token::Abort,
                    name => Token::Name(name.to_string()),
                };
                (token, len)
            }
            other => {
                let text: String = rest
                    .chars()
                    .take_while(|c| "&|~^?$=!<>@`\\".contains(*c))
                    .collect();
                let shown = if text.is_empty() {
                    other.to_string()
                } else {
                    text
                };
                return Err(err(pos, format!("unexpected `{shown}`")));
            }
        };
        tokens.push(Spanned {
            token,
            offset: pos,
            len,
        });
        pos += len;
    }
    Ok(tokens)
}

/// Scans `r'pattern'` or `r"pattern"`: the text is given to the regex engine as written,
/// except that a backslash before the closing quote character makes it part of the pattern.
fn scan_regex(src: &str) -> Option<(String, usize)> {
    let mut chars = src.char_indices().skip(1);
    let (_, quote) = chars.next()?;
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, e)) if e == quote => out.push(e),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}
