//! `${VAR}` and `${VAR:-default}` substitution in pipeline text.
//!
//! Substitution happens on the raw text before TOML parsing, so that non-string values
//! (`port = ${PORT}`) work as users of Vector expect. A value can never change the TOML
//! structure around it: inside a `"string"` it is escaped (a `"` in it stays a character),
//! inside a `'literal'` a `'` is refused, and outside strings it must be one TOML scalar
//! (`1048576, when_full = "drop_newest"` is refused rather than adding a key). Values with
//! line breaks are refused everywhere. `$$` writes a literal `$`.

/// A substitution problem, with the 1-based line it occurred on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvError {
    #[error("line {line}: environment variable `{name}` is not set and has no default (write ${{{name}:-default}})")]
    Missing { line: usize, name: String },
    #[error("line {line}: unterminated `${{` (expected `}}`)")]
    Unterminated { line: usize },
    #[error("line {line}: invalid environment variable name `{name}`")]
    InvalidName { line: usize, name: String },
    #[error(
        "line {line}: environment variable `{name}` contains a line break, which is not allowed"
    )]
    Multiline { line: usize, name: String },
    #[error("line {line}: environment variable `{name}` would change the pipeline's structure: {reason}")]
    Structure {
        line: usize,
        name: String,
        reason: &'static str,
    },
}

/// Where in the TOML text a substitution lands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Context {
    Bare,
    Comment,
    Basic,
    Literal,
    MultiBasic,
    MultiLiteral,
}

/// The context after reading `text` from `context` (a small TOML lexer: strings, their
/// escapes, comments).
fn advance(mut context: Context, text: &str) -> Context {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        match context {
            Context::Bare => match bytes[i] {
                b'#' => context = Context::Comment,
                b'"' if rest.starts_with(b"\"\"\"") => {
                    context = Context::MultiBasic;
                    i += 2;
                }
                b'"' => context = Context::Basic,
                b'\'' if rest.starts_with(b"'''") => {
                    context = Context::MultiLiteral;
                    i += 2;
                }
                b'\'' => context = Context::Literal,
                _ => {}
            },
            Context::Comment if bytes[i] == b'\n' => context = Context::Bare,
            Context::Comment => {}
            Context::Basic => match bytes[i] {
                b'\\' => i += 1,
                b'"' | b'\n' => context = Context::Bare,
                _ => {}
            },
            Context::Literal if matches!(bytes[i], b'\'' | b'\n') => context = Context::Bare,
            Context::Literal => {}
            Context::MultiBasic if bytes[i] == b'\\' => i += 1,
            Context::MultiBasic if rest.starts_with(b"\"\"\"") => {
                context = Context::Bare;
                i += 2;
            }
            Context::MultiBasic => {}
            Context::MultiLiteral if rest.starts_with(b"'''") => {
                context = Context::Bare;
                i += 2;
            }
            Context::MultiLiteral => {}
        }
        i += 1;
    }
    context
}

/// Writes `value` where `context` says it lands, or says why it cannot go there.
fn place(context: Context, value: &str, out: &mut String) -> Result<(), &'static str> {
    match context {
        Context::Comment => out.push_str(value),
        Context::Basic | Context::MultiBasic => {
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                    c => out.push(c),
                }
            }
        }
        Context::Literal | Context::MultiLiteral => {
            if value.contains('\'') {
                return Err("it contains a ' inside a 'literal string' (use a \"basic string\")");
            }
            out.push_str(value);
        }
        Context::Bare => {
            if !is_one_scalar(value) {
                return Err(
                    "outside quotes a value must be one number, boolean, date or quoted string (quote the ${...} to use it as text)",
                );
            }
            out.push_str(value);
        }
    }
    Ok(())
}

/// Whether `value` is exactly one TOML scalar (no comment, no second key, no table) or a
/// bare key (`[sinks.${NAME}]`).
fn is_one_scalar(value: &str) -> bool {
    let bare_key = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if bare_key(value) {
        return true;
    }
    // Followed by more on its line, so that a comment in the value (`"" # x`, `5 # x`)
    // swallows the rest and fails to parse, while a `#` inside a quoted string does not.
    let Ok(table) = format!("v = [{value}, 1]").parse::<toml::Table>() else {
        return false;
    };
    match table.get("v") {
        Some(toml::Value::Array(items)) if table.len() == 1 && items.len() == 2 => {
            !matches!(items[0], toml::Value::Table(_) | toml::Value::Array(_))
        }
        _ => false,
    }
}

/// Replaces `${VAR}` / `${VAR:-default}` in `text` using `lookup`.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<EnvError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut line = 1;
    let mut context = Context::Bare;
    while let Some(pos) = rest.find('$') {
        let (before, after) = rest.split_at(pos);
        line += before.matches('\n').count();
        context = advance(context, before);
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("$$") {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            errors.push(EnvError::Unterminated { line });
            rest = "";
            break;
        };
        let body = &body_start[..end];
        rest = &body_start[end + 1..];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            errors.push(EnvError::InvalidName {
                line,
                name: name.to_string(),
            });
            continue;
        }
        let value = match (lookup(name), default) {
            (Some(v), _) => v,
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                errors.push(EnvError::Missing {
                    line,
                    name: name.to_string(),
                });
                continue;
            }
        };
        if value.contains(['\n', '\r']) {
            errors.push(EnvError::Multiline {
                line,
                name: name.to_string(),
            });
            continue;
        }
        if let Err(reason) = place(context, &value, &mut out) {
            errors.push(EnvError::Structure {
                line,
                name: name.to_string(),
                reason,
            });
        }
        line += body.matches('\n').count();
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("5140".into()),
            "EMPTY" => Some(String::new()),
            "EVIL" => Some("x\"\n[sinks.evil]".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_table() {
        let table = [
            ("port = ${PORT}", Ok("port = 5140")),
            ("a = \"${MISSING:-dflt}\"", Ok("a = \"dflt\"")),
            ("a = \"${EMPTY:-dflt}\"", Ok("a = \"\"")),
            ("cost = \"$$5 and $x\"", Ok("cost = \"$5 and $x\"")),
            ("no vars", Ok("no vars")),
        ];
        for (input, expected) in table {
            assert_eq!(
                interpolate(input, lookup).as_deref().map_err(|_| ()),
                expected.map_err(|_: ()| ()),
                "{input}"
            );
        }
    }

    /// A value lands as data wherever it is placed; it can never add a key, close a string
    /// or a table, or comment out the rest of a line.
    #[test]
    fn values_cannot_change_the_structure() {
        let env = |name: &str| {
            Some(
                match name {
                    "MB" => "1048576, when_full = \"drop_newest\"",
                    "QUOTE" => "a\", when_full = \"drop_newest",
                    "SLASH" => "C:\\logs\\app",
                    "HASH" => "5 # comment",
                    "NAME" => "my-sink_1",
                    "TABLE" => "{ a = 1 }",
                    "TEXT" => "\"quoted # text\"",
                    "APOS" => "it's",
                    "EMPTY_HASH" => "\"\"#",
                    _ => return None,
                }
                .to_string(),
            )
        };
        let parsed = |text: &str| -> Result<toml::Table, String> {
            let text = interpolate(text, env).map_err(|e| e[0].to_string())?;
            text.parse::<toml::Table>().map_err(|e| e.to_string())
        };
        let err = parsed("b = { max_bytes = ${MB} }").unwrap_err();
        assert!(
            err.contains("`MB` would change the pipeline's structure"),
            "{err}"
        );
        let t = parsed("b = { path = \"${QUOTE}\" }").unwrap();
        assert_eq!(t["b"].as_table().unwrap().len(), 1);
        assert_eq!(
            t["b"]["path"].as_str(),
            Some("a\", when_full = \"drop_newest")
        );
        let t = parsed("p = \"${SLASH}\"\nm = \"\"\"x ${QUOTE}\"\"\"").unwrap();
        assert_eq!(t["p"].as_str(), Some("C:\\logs\\app"));
        assert_eq!(t["m"].as_str(), Some("x a\", when_full = \"drop_newest"));
        assert!(parsed("n = ${HASH}").is_err());
        assert!(parsed("n = ${TABLE}").is_err());
        // A string followed by a comment (the fuzzer's `""#`) would comment out the rest
        // of the line: in `[${X}, ${X}]`, the second element.
        assert!(parsed("n = [${EMPTY_HASH}, ${EMPTY_HASH}\n]").is_err());
        assert!(parsed("s = 'x${APOS}'")
            .unwrap_err()
            .contains("literal string"));
        let t = parsed("[sinks.${NAME}]\nt = ${TEXT}\n# ${MB} in a comment is inert").unwrap();
        assert_eq!(t["sinks"]["my-sink_1"]["t"].as_str(), Some("quoted # text"));
        // A `#` or quote inside a string does not confuse where later values land.
        let t = parsed("a = \"# not a comment\\\" ${NAME}\"").unwrap();
        assert_eq!(t["a"].as_str(), Some("# not a comment\" my-sink_1"));
        let err = parsed("a = \"# not a comment\\\" ${NAME}\"\nb = ${MB}").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn errors_name_the_line() {
        let errs = interpolate(
            "a = 1\nb = ${NOPE}\nc = ${EVIL}\nd = ${1X}\ne = ${OPEN",
            lookup,
        )
        .unwrap_err();
        assert_eq!(
            errs,
            vec![
                EnvError::Missing {
                    line: 2,
                    name: "NOPE".into()
                },
                EnvError::Multiline {
                    line: 3,
                    name: "EVIL".into()
                },
                EnvError::InvalidName {
                    line: 4,
                    name: "1X".into()
                },
                EnvError::Unterminated { line: 5 },
            ]
        );
    }
}
