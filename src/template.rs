//! Templates: literal text with `{{ field.path }}` placeholders, such as
//! `"{{ app }}-{{ instance }}"` or, for file sinks, `"/var/log/sluice/{{ app }}/%Y-%m-%d.log"`.
//!
//! A template is split into segments when the config is loaded, so rendering is a walk over
//! segments that appends to a caller-owned buffer. Two renderings exist:
//!
//! - [`Template::render`] writes field values as text; `%` has no meaning.
//! - [`Template::render_path`] is for file paths: field values are sanitised so that no event
//!   can steer a path (no `/`, `\`, `..`, NUL or control characters; a missing or empty field
//!   renders `_`), and strftime-style tokens expand from the event's `timestamp` (UTC).
//!
//! Placeholders take the field paths of the condition language (`{{ .http.status }}`,
//! `{{ labels."app.kubernetes.io/name" }}`). There is no escape for a literal `{{`.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::condition::FieldPath;
use crate::event::{fields, now_nanos, Event, Value};

/// Longest rendering of one field in a path, in bytes. File systems limit a path component
/// to 255 bytes; a field is usually one part of a component.
const MAX_PATH_FIELD_BYTES: usize = 200;

#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Field(FieldPath),
    /// A strftime token, kept with its text so that `render` writes it verbatim.
    Date(DateToken, &'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateToken {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// `%F`: `%Y-%m-%d`.
    Date,
    /// `%j`: day of the year, 001–366.
    DayOfYear,
    /// `%%`: a literal `%`.
    Percent,
}

const DATE_TOKENS: &[(&str, DateToken)] = &[
    ("%Y", DateToken::Year),
    ("%m", DateToken::Month),
    ("%d", DateToken::Day),
    ("%H", DateToken::Hour),
    ("%M", DateToken::Minute),
    ("%S", DateToken::Second),
    ("%F", DateToken::Date),
    ("%j", DateToken::DayOfYear),
    ("%%", DateToken::Percent),
];

/// Why a template failed to parse, with the 1-based column (in characters) it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct TemplateError {
    pub column: usize,
    pub message: String,
}

impl TemplateError {
    fn at(src: &str, offset: usize, message: String) -> Self {
        Self {
            column: src[..offset].chars().count() + 1,
            message,
        }
    }
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = src;
        let mut offset = 0;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("{{") {
                let Some(close) = after.find("}}") else {
                    return Err(TemplateError::at(
                        src,
                        offset,
                        "unclosed `{{` (expected `}}`)".into(),
                    ));
                };
                let inner = &after[..close];
                let name = inner.trim();
                if name.is_empty() {
                    return Err(TemplateError::at(
                        src,
                        offset,
                        "empty placeholder `{{}}`".into(),
                    ));
                }
                let path = FieldPath::parse(name)
                    .map_err(|message| TemplateError::at(src, offset, message))?;
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Field(path));
                let used = 2 + close + 2;
                rest = &rest[used..];
                offset += used;
                continue;
            }
            if let Some(&(text, token)) = DATE_TOKENS.iter().find(|(t, _)| rest.starts_with(t)) {
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Date(token, text));
                rest = &rest[2..];
                offset += 2;
                continue;
            }
            let c = rest.chars().next().unwrap_or_default();
            literal.push(c);
            rest = &rest[c.len_utf8()..];
            offset += c.len_utf8();
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Template {
            source: src.to_string(),
            segments,
        })
    }

    /// A template that renders one field, for options that name a field rather than take a
    /// template (`key_field`): built from the path, so no character of the field's name can
    /// be read as template syntax.
    pub fn field(path: FieldPath) -> Template {
        Template {
            source: format!("{{{{ {} }}}}", path.as_str()),
            segments: vec![Segment::Field(path)],
        }
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether every event renders the same text with both [`Template::render`] and
    /// [`Template::render_path`]: no placeholders and no date tokens. Callers use this to
    /// render once (or open a file once) instead of per event.
    pub fn is_static(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// The field path when the template is exactly one placeholder and nothing else, so a
    /// caller can copy the field's value with its type instead of rendering text.
    pub fn single_field(&self) -> Option<&FieldPath> {
        match self.segments.as_slice() {
            [Segment::Field(path)] => Some(path),
            _ => None,
        }
    }

    /// The field paths the template reads, in order.
    pub fn fields(&self) -> impl Iterator<Item = &FieldPath> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Field(p) => Some(p),
            _ => None,
        })
    }

    /// Appends the template rendered for `event` to `out`. A missing field renders as
    /// nothing; strings render without quotes, timestamps as RFC 3339, containers as JSON.
    pub fn render(&self, event: &Event, out: &mut String) {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Field(path) => {
                    if let Some(value) = path.get(&event.fields) {
                        value.write_text(out);
                    }
                }
                Segment::Date(_, text) => out.push_str(text),
            }
        }
    }

    /// Appends the template rendered as a file path for `event` to `out`: field values are
    /// sanitised and date tokens expand from the event's `timestamp` field (a
    /// [`Value::Timestamp`]) or, without one, the current time, in UTC.
    pub fn render_path(&self, event: &Event, out: &mut String) {
        let mut time: Option<DateTime<Utc>> = None;
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Field(path) => push_sanitised(path.get(&event.fields), out),
                Segment::Date(token, _) => {
                    let t = *time.get_or_insert_with(|| event_time(event));
                    let _ = match token {
                        DateToken::Year => write!(out, "{:04}", t.year()),
                        DateToken::Month => write!(out, "{:02}", t.month()),
                        DateToken::Day => write!(out, "{:02}", t.day()),
                        DateToken::Hour => write!(out, "{:02}", t.hour()),
                        DateToken::Minute => write!(out, "{:02}", t.minute()),
                        DateToken::Second => write!(out, "{:02}", t.second()),
                        DateToken::Date => {
                            write!(out, "{:04}-{:02}-{:02}", t.year(), t.month(), t.day())
                        }
                        DateToken::DayOfYear => write!(out, "{:03}", t.ordinal()),
                        DateToken::Percent => out.write_char('%'),
                    };
                }
            }
        }
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

fn event_time(event: &Event) -> DateTime<Utc> {
    let nanos = match event.fields.get(fields::TIMESTAMP) {
        Some(Value::Timestamp(n)) => *n,
        _ => now_nanos(),
    };
    DateTime::from_timestamp(nanos.div_euclid(1_000_000_000), 0).unwrap_or_default()
}

/// Appends a field value as one safe piece of a path.
fn push_sanitised(value: Option<&Value>, out: &mut String) {
    let start = out.len();
    match value {
        Some(Value::Bytes(b)) => push_sanitised_str(&String::from_utf8_lossy(b), start, out),
        Some(Value::Null) | None => {}
        // Numbers and booleans render short and safe; timestamps contain `:` only. They take
        // the same path for simplicity: the allocation is rare next to string fields.
        Some(other) => push_sanitised_str(&other.to_text(), start, out),
    }
    if out.len() == start {
        out.push('_');
    }
}

fn push_sanitised_str(text: &str, start: usize, out: &mut String) {
    for c in text.chars() {
        if out.len() - start + c.len_utf8() > MAX_PATH_FIELD_BYTES {
            break;
        }
        match c {
            '/' | '\\' => out.push('_'),
            c if c.is_control() => out.push('_'), // NUL included
            // A dot next to a dot (from this value or the literal before it) could form a
            // `..` component; both become `_`.
            '.' if out.ends_with('.') => {
                out.pop();
                out.push_str("__");
            }
            c => out.push(c),
        }
    }
    // A value ending in `.` could still form `..` with a literal `.` that follows it, so a
    // trailing dot of a value is always replaced.
    if out.len() > start && out.ends_with('.') {
        out.pop();
        out.push('_');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::test_event as event;

    fn parse(src: &str) -> Template {
        Template::parse(src).unwrap_or_else(|e| panic!("`{src}`: {e}"))
    }

    #[test]
    fn render() {
        let e = r#"{"app":"web","n":3,"ok":true,"http":{"status":500},"tags":["a"],"nil":null}"#;
        let cases = [
            ("plain text", "plain text"),
            ("", ""),
            ("{{app}}", "web"),
            ("{{ app }}-{{instance}}", "web-"),
            ("{{ .app }}:{{ n }}:{{ ok }}", "web:3:true"),
            ("status={{ http.status }}", "status=500"),
            ("{{ tags }}", r#"["a"]"#),
            ("[{{ nil }}]", "[]"),
            ("100%d {{ app }}", "100%d web"),
            ("a } b }} c {", "a } b }} c {"),
            ("ünï {{ app }} cödé", "ünï web cödé"),
        ];
        let e = event(e);
        for (src, expected) in cases {
            let mut out = String::new();
            parse(src).render(&e, &mut out);
            assert_eq!(out, expected, "`{src}`");
        }
    }

    #[test]
    fn render_appends_and_renders_timestamps() {
        let mut e = event(r#"{"app":"web"}"#);
        e.insert("timestamp", Value::Timestamp(1_700_000_000_123_456_789));
        let mut out = String::from("> ");
        parse("{{ timestamp }} {{ app }}").render(&e, &mut out);
        assert_eq!(out, "> 2023-11-14T22:13:20.123456Z web");
    }

    #[test]
    fn render_path() {
        let cases = [
            ("/logs/{{ app }}.log", r#"{"app":"web"}"#, "/logs/web.log"),
            (
                "/logs/{{ app }}.log",
                r#"{"app":"../../etc/passwd"}"#,
                "/logs/______etc_passwd.log",
            ),
            ("/logs/{{ app }}/x", r#"{"app":".."}"#, "/logs/__/x"),
            ("/logs/{{ app }}/x", r#"{"app":"."}"#, "/logs/_/x"),
            // Found by the `template` fuzz target: a value's trailing dot plus a literal dot.
            ("/logs/{{ app }}./x", r#"{"app":"."}"#, "/logs/_./x"),
            ("/logs/{{ app }}.log", r#"{"app":"web."}"#, "/logs/web_.log"),
            ("/logs/.{{ app }}/x", r#"{"app":"."}"#, "/logs/__/x"),
            (
                "/logs/{{ app }}/x",
                r#"{"app":"a\\b\u0000c\nd"}"#,
                "/logs/a_b_c_d/x",
            ),
            ("/logs/{{ app }}/x", "{}", "/logs/_/x"),
            ("/logs/{{ app }}/x", r#"{"app":""}"#, "/logs/_/x"),
            ("/logs/{{ app }}/x", r#"{"app":null}"#, "/logs/_/x"),
            ("/logs/{{ n }}/x", r#"{"n":42}"#, "/logs/42/x"),
            (
                "/logs/{{ o }}/x",
                r#"{"o":{"a":"b/c"}}"#,
                r#"/logs/{"a":"b_c"}/x"#,
            ),
            (
                "/logs/{{ app }}-%Y-%m-%d.log",
                r#"{"app":"web"}"#,
                "/logs/web-2023-11-14.log",
            ),
            ("/logs/%F/%H%M%S-%j", "{}", "/logs/2023-11-14/221320-318"),
            ("/logs/100%%-%q", "{}", "/logs/100%-%q"),
        ];
        for (src, json, expected) in cases {
            let mut e = event(json);
            e.insert("timestamp", Value::Timestamp(1_700_000_000_999_000_000));
            let mut out = String::new();
            parse(src).render_path(&e, &mut out);
            assert_eq!(out, expected, "`{src}` on {json}");
        }
    }

    #[test]
    fn render_path_caps_field_length() {
        let long = "x".repeat(10_000);
        let e = event(&format!(r#"{{"app":"{long}"}}"#));
        let mut out = String::new();
        parse("{{ app }}").render_path(&e, &mut out);
        assert_eq!(out.len(), MAX_PATH_FIELD_BYTES);
    }

    #[test]
    fn render_path_without_timestamp_uses_now() {
        let e = event(r#"{"timestamp":"not a timestamp value"}"#);
        let mut out = String::new();
        parse("%Y").render_path(&e, &mut out);
        let year: i32 = out.parse().unwrap_or(0);
        assert!(year >= 2024, "{out}");
    }

    #[test]
    fn field_renders_names_that_look_like_template_syntax() {
        let e = event(r#"{"labels":{"a}}%Y":"x"},"app":"web"}"#);
        for (path, expected) in [(r#"labels."a}}%Y""#, "x"), ("app", "web")] {
            let template = Template::field(FieldPath::parse(path).expect(path));
            let mut out = String::new();
            template.render(&e, &mut out);
            assert_eq!(out, expected, "{path}");
            assert_eq!(template.single_field().map(|p| p.as_str()), Some(path));
        }
    }

    #[test]
    fn is_static_and_single_field() {
        assert!(parse("/var/log/sluice.log").is_static());
        assert!(parse("").is_static());
        assert!(!parse("/var/log/{{ app }}.log").is_static());
        assert!(!parse("/var/log/%Y.log").is_static());
        assert_eq!(
            parse("{{ a.b }}").single_field().map(|p| p.as_str()),
            Some("a.b")
        );
        assert!(parse(" {{ a }}").single_field().is_none());
        assert_eq!(
            parse("{{a}}-{{b}}")
                .fields()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("{{ app", "at column 1: unclosed `{{` (expected `}}`)"),
            ("ok {{ }} ok", "at column 4: empty placeholder `{{}}`"),
            (
                "é{{a b}}",
                "at column 2: invalid field path `a b`: unexpected ` `",
            ),
            (
                "{{ a. }}",
                "at column 1: invalid field path `a.`: expected a field name after `.`",
            ),
        ];
        for (src, expected) in cases {
            match Template::parse(src) {
                Ok(t) => panic!("`{src}` parsed: {t:?}"),
                Err(e) => assert_eq!(e.to_string(), expected, "`{src}`"),
            }
        }
    }

    proptest::proptest! {
        /// Parsing never panics, and a rendered path never escapes its directory: no `/`,
        /// `..` or NUL comes from a field value.
        #[test]
        fn render_path_is_safe(src in "\\PC{0,40}", value in "(?s).{0,40}") {
            let _ = Template::parse(&src);
            let t = parse("{{ v }}");
            let mut e = Event::default();
            e.insert("v", value.as_str());
            let mut out = String::new();
            t.render_path(&e, &mut out);
            proptest::prop_assert!(!out.is_empty());
            proptest::prop_assert!(!out.contains('/') && !out.contains('\\') && !out.contains('\0'));
            proptest::prop_assert!(!out.contains(".."), "{out:?}");
        }
    }
}
