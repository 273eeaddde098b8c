//! Splits condition source into tokens, each with the byte offset it starts at.
//!
//! The lexer is context-free: `/` only ever starts a regex literal (the language has no
//! division) and keywords are reserved words, so no token depends on the one before it.

use super::path::{self, FieldPath};
use super::ConditionError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Cmp(CmpOp),
    And,
    Or,
    Not,
    Contains,
    Matches,
    Exists,
    In,
    True,
    False,
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Regex(String),
    Path(FieldPath),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A token, the byte offset where it starts and its length in the source.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spanned {
    pub(super) token: Token,
    pub(super) offset: usize,
    pub(super) len: usize,
}

pub(super) fn lex(src: &str) -> Result<Vec<Spanned>, ConditionError> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while let Some(c) = src[pos..].chars().next() {
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        let rest = &src[pos..];
        let err = |offset: usize, message: String| ConditionError::at(src, offset, message);
        let (token, len) = match c {
            '(' => (Token::LParen, 1),
            ')' => (Token::RParen, 1),
            '[' => (Token::LBracket, 1),
            ']' => (Token::RBracket, 1),
            ',' => (Token::Comma, 1),
            '=' if rest.starts_with("==") => (Token::Cmp(CmpOp::Eq), 2),
            '!' if rest.starts_with("!=") => (Token::Cmp(CmpOp::Ne), 2),
            '<' if rest.starts_with("<=") => (Token::Cmp(CmpOp::Le), 2),
            '>' if rest.starts_with(">=") => (Token::Cmp(CmpOp::Ge), 2),
            '<' => (Token::Cmp(CmpOp::Lt), 1),
            '>' => (Token::Cmp(CmpOp::Gt), 1),
            // Aliases for readers coming from VRL or C-like languages.
            '!' => (Token::Not, 1),
            '&' if rest.starts_with("&&") => (Token::And, 2),
            '|' if rest.starts_with("||") => (Token::Or, 2),
            '=' if rest.starts_with("=~") => {
                return Err(err(
                    pos,
                    "unknown operator `=~` (write `matches /regex/`)".into(),
                ))
            }
            '=' => return Err(err(pos, "unknown operator `=` (did you mean `==`?)".into())),
            '"' | '\'' => {
                let (text, used) =
                    path::scan_quoted(rest).map_err(|e| err(pos + e.offset, e.message))?;
                (Token::Str(text), used)
            }
            '/' => {
                let (pattern, used) = scan_regex(rest).ok_or_else(|| {
                    err(pos, "unterminated regex (expected a closing `/`)".into())
                })?;
                (Token::Regex(pattern), used)
            }
            '-' | '0'..='9' => match scan_number(rest).map_err(|m| err(pos, m))? {
                (NumberToken::Int(i), used) => (Token::Int(i), used),
                (NumberToken::Float(f), used) => (Token::Float(f), used),
            },
            '.' => {
                let (p, used) = path::scan(rest).map_err(|e| err(pos + e.offset, e.message))?;
                (Token::Path(p), used)
            }
            c if path::is_segment_start(c) => {
                let word_len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let keyword = match &rest[..word_len] {
                    "and" => Some(Token::And),
                    "or" => Some(Token::Or),
                    "not" => Some(Token::Not),
                    "contains" => Some(Token::Contains),
                    "matches" => Some(Token::Matches),
                    "exists" => Some(Token::Exists),
                    "in" => Some(Token::In),
                    "true" => Some(Token::True),
                    "false" => Some(Token::False),
                    "null" => Some(Token::Null),
                    _ => None,
                };
                // A keyword followed by `.` or `-` is the start of a path (`in.bytes`).
                let continues_path =
                    matches!(rest[word_len..].chars().next(), Some('.' | '-' | '@'));
                match keyword {
                    Some(k) if !continues_path => (k, word_len),
                    _ => {
                        let (p, used) =
                            path::scan(rest).map_err(|e| err(pos + e.offset, e.message))?;
                        (Token::Path(p), used)
                    }
                }
            }
            '&' | '|' | '~' | '+' | '*' | '%' | '^' | '?' | ':' | ';' | '$' | '#' => {
                let op: String = rest
                    .chars()
                    .take_while(|c| "&|~+*%^?:;$#=!<>".contains(*c))
                    .collect();
                return Err(err(pos, format!("unknown operator `{op}`")));
            }
            other => {
                return Err(err(pos, format!("unexpected character `{other}`")));
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

/// Scans `/pattern/`. `\/` stands for a slash; every other escape is left for the regex
/// engine, so `\d` and `\.` mean what they mean in a regex.
fn scan_regex(src: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = src.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '/' => return Some((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
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

/// A number literal as [`scan_number`] read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NumberToken {
    Int(i64),
    Float(f64),
}

/// Scans an integer or a float (with an optional leading `-`) and returns it with the bytes
/// it used. A number running straight into letters (`5xx`) is an error rather than two
/// tokens, because it is almost always a typo for a string. The remap language reads its
/// numbers with this too.
pub(crate) fn scan_number(src: &str) -> Result<(NumberToken, usize), String> {
    let bytes = src.as_bytes();
    let mut end = usize::from(bytes.first() == Some(&b'-'));
    let digits_start = end;
    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    if end == digits_start {
        return Err("unknown operator `-`".into());
    }
    let mut is_float = false;
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        is_float = true;
        end += 1;
        while bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(bytes.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        if bytes.get(exp).is_some_and(u8::is_ascii_digit) {
            is_float = true;
            end = exp;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
        }
    }
    let text = &src[..end];
    if let Some(c) = src[end..].chars().next() {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            let word_end = src[end..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                .map_or(src.len(), |i| end + i);
            return Err(format!(
                "invalid number `{}` (quote it if it is a string)",
                &src[..word_end]
            ));
        }
    }
    if !is_float {
        // Integers beyond i64 fall back to a float rather than failing the config.
        if let Ok(i) = text.parse::<i64>() {
            return Ok((NumberToken::Int(i), end));
        }
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok((NumberToken::Float(f), end)),
        _ => Err(format!("number `{text}` is out of range")),
    }
}
