//! Field paths as conditions, templates and transforms name them: `level`, `.level`,
//! `http.status`, `kubernetes.labels."app.kubernetes.io/name"`.
//!
//! A path is split into segments once, when the config is loaded, so that looking a field up
//! per event scans no text. Lookup follows [`Map::get_path`]: an unquoted dotted path first
//! matches a top-level key spelled exactly that way (`"http.status"` as one field name, as
//! flat logfmt keys often are), then descends through nested objects.

use compact_str::CompactString;

use crate::event::{Map, Value};

/// A parsed field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// The path as written (without a leading dot), for messages.
    text: String,
    /// The whole dotted path as one key, tried first; `None` for single-segment paths and
    /// for paths with a quoted segment (quoting says "this dot is part of the name").
    exact: Option<CompactString>,
    segments: Box<[CompactString]>,
}

/// Why a path could not be parsed: a byte offset into the parsed text and a message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

impl FieldPath {
    /// Parses a whole string as a path (templates and transform configs use this).
    pub fn parse(src: &str) -> Result<FieldPath, String> {
        // Vector's throttle takes a template for `key_field`, so a field written that way
        // gets the fix rather than a bare syntax error.
        if let Some(inner) = src
            .trim()
            .strip_prefix("{{")
            .and_then(|s| s.strip_suffix("}}"))
        {
            if let Ok(path) = FieldPath::parse(inner.trim()) {
                return Err(format!(
                    "invalid field path `{src}`: this option takes a field, not a template: write `{}`",
                    path.as_str()
                ));
            }
        }
        match scan(src) {
            Ok((path, len)) if len == src.len() => Ok(path),
            Ok((_, len)) => Err(format!(
                "invalid field path `{src}`: unexpected `{}`",
                src[len..].chars().next().unwrap_or(' ')
            )),
            Err(e) => Err(format!("invalid field path `{src}`: {}", e.message)),
        }
    }

    /// The path as written, without a leading dot.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[CompactString] {
        &self.segments
    }

    /// The exact top-level key tried before descending, if any.
    pub fn exact_key(&self) -> Option<&str> {
        self.exact.as_deref()
    }

    /// Looks the path up in `map`.
    pub fn get<'a>(&self, map: &'a Map) -> Option<&'a Value> {
        if let Some(exact) = &self.exact {
            if let Some(v) = map.get(exact) {
                return Some(v);
            }
        }
        let (first, rest) = self.segments.split_first()?;
        let mut current = map.get(first)?;
        for seg in rest {
            match current {
                Value::Object(m) => current = m.get(seg)?,
                _ => return None,
            }
        }
        Some(current)
    }
}

impl FieldPath {
    /// Looks the path up in `map` for changing the value in place.
    pub fn get_mut<'a>(&self, map: &'a mut Map) -> Option<&'a mut Value> {
        if let Some(exact) = &self.exact {
            if map.get(exact).is_some() {
                return map.get_mut(exact);
            }
        }
        let (first, rest) = self.segments.split_first()?;
        let mut current = map.get_mut(first)?;
        for seg in rest {
            match current {
                Value::Object(m) => current = m.get_mut(seg)?,
                _ => return None,
            }
        }
        Some(current)
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Characters that may start an unquoted segment. `@` is included for Elasticsearch-style
/// names such as `@timestamp`.
pub(crate) fn is_segment_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@'
}

/// Characters that may continue an unquoted segment. `-` is allowed because header-style
/// names (`x-request-id`) are common and the language has no arithmetic to confuse it with.
fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '-'
}

/// Scans a path at the start of `src` and returns it with the number of bytes it used. A
/// path is an optional leading `.`, then segments separated by `.`; a segment is a name
/// (`[A-Za-z_@][A-Za-z0-9_@-]*`) or, after a dot, a double-quoted string.
pub(crate) fn scan(src: &str) -> Result<(FieldPath, usize), PathError> {
    let bytes = src.as_bytes();
    let mut pos = 0;
    let mut segments: Vec<CompactString> = Vec::new();
    let mut quoted = false;
    let mut after_dot = false;
    if bytes.first() == Some(&b'.') {
        pos = 1;
        after_dot = true;
    }
    loop {
        let rest = &src[pos..];
        let c = rest.chars().next();
        match c {
            Some('"') if after_dot => {
                let (name, used) = scan_quoted(rest).map_err(|mut e| {
                    e.offset += pos;
                    e
                })?;
                if name.is_empty() {
                    return Err(PathError {
                        offset: pos,
                        message: "empty quoted field name".into(),
                    });
                }
                segments.push(name.into());
                quoted = true;
                pos += used;
            }
            Some(c) if is_segment_start(c) => {
                let len = rest
                    .char_indices()
                    .find(|&(_, c)| !is_segment_char(c))
                    .map_or(rest.len(), |(i, _)| i);
                segments.push(rest[..len].into());
                pos += len;
            }
            _ => {
                return Err(PathError {
                    offset: pos,
                    message: if pos == 0 {
                        "expected a field name".into()
                    } else {
                        "expected a field name after `.`".into()
                    },
                })
            }
        }
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            after_dot = true;
        } else {
            break;
        }
    }
    let text = segments
        .iter()
        .map(|s| {
            if s.chars().all(is_segment_char) && s.starts_with(is_segment_start) {
                s.to_string()
            } else {
                format!("{s:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(".");
    let exact = (segments.len() > 1 && !quoted).then(|| segments.join(".").into());
    Ok((
        FieldPath {
            text,
            exact,
            segments: segments.into_boxed_slice(),
        },
        pos,
    ))
}

/// Scans a double- or single-quoted string at the start of `src` (which begins with the
/// quote) and returns its unescaped text and the bytes it used, closing quote included.
pub(crate) fn scan_quoted(src: &str) -> Result<(String, usize), PathError> {
    let mut chars = src.char_indices();
    let Some((_, quote)) = chars.next() else {
        return Err(PathError {
            offset: 0,
            message: "expected a string".into(),
        });
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, i + c.len_utf8())),
            '\\' => {
                let Some((j, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    '\\' | '"' | '\'' | '/' => out.push(e),
                    'u' => {
                        let rest = &src[j + 1..];
                        let close = rest.find('}').filter(|_| rest.starts_with('{'));
                        let ch = close
                            .and_then(|end| u32::from_str_radix(&rest[1..end], 16).ok())
                            .and_then(char::from_u32);
                        match (ch, close) {
                            (Some(ch), Some(end)) => {
                                out.push(ch);
                                // Skip `{XXXX}`.
                                for _ in 0..=end {
                                    chars.next();
                                }
                            }
                            _ => {
                                return Err(PathError {
                                    offset: i,
                                    message: "invalid unicode escape (expected `\\u{XXXX}`)".into(),
                                })
                            }
                        }
                    }
                    other => {
                        return Err(PathError {
                            offset: i,
                            message: format!("unknown escape `\\{other}` in string"),
                        })
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(PathError {
        offset: 0,
        message: "unterminated string".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            ("level", &["level"], None),
            (".level", &["level"], None),
            ("http.status", &["http", "status"], Some("http.status")),
            ("@timestamp", &["@timestamp"], None),
            ("x-request-id", &["x-request-id"], None),
            (".\"weird key\"", &["weird key"], None),
            ("k.\"a.b\".c", &["k", "a.b", "c"], None),
        ];
        for (src, segs, exact) in cases {
            let p = FieldPath::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            let got: Vec<&str> = p.segments().iter().map(|s| s.as_str()).collect();
            assert_eq!(&got, segs, "{src}");
            assert_eq!(p.exact_key(), *exact, "{src}");
        }
    }

    #[test]
    fn rejects_bad_paths() {
        for src in [
            "", ".", "a.", "a..b", "1abc", "a b", "\"x\"", ".\"\"", ".\"open",
        ] {
            assert!(FieldPath::parse(src).is_err(), "{src:?} should be rejected");
        }
    }

    #[test]
    fn a_template_of_one_field_is_refused_with_the_field() {
        for (src, field) in [("{{ app }}", "app"), ("{{.http.status}}", "http.status")] {
            let error = FieldPath::parse(src).expect_err(src);
            assert!(
                error.ends_with(&format!("write `{field}`")),
                "{src}: {error}"
            );
        }
        let error = FieldPath::parse("{{ a }}-{{ b }}").expect_err("two fields");
        assert!(!error.contains("write"), "{error}");
    }
}
