//! `${VAR}` and `${VAR:-default}` substitution in pipeline text.
//!
//! Substitution happens on the raw text before TOML parsing, so that non-string values
//! (`port = ${PORT}`) work as users of Vector expect. To stop a variable from smuggling in
//! extra TOML (a value holding a newline could open a new table), values containing line
//! breaks are rejected. `$$` writes a literal `$`.

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
    while let Some(pos) = rest.find('$') {
        let (before, after) = rest.split_at(pos);
        line += before.matches('\n').count();
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
        out.push_str(&value);
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
