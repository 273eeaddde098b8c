//! Object keys: the `key_prefix` template rendered per event (which open object the event
//! joins), then a unique name per object.
//!
//! The prefix renders like a file sink's path (`Template::render_path`): a field's value
//! cannot add a `/` level, form `..`, or be longer than 200 bytes, and date tokens come from
//! the event's timestamp in UTC. Keys are also kept within S3's 1,024 bytes and free of `.`
//! and `..` levels, which S3 would store but URL normalisation would change on the way.

use crate::event::Event;
use crate::field_error::FieldError;
use crate::template::Template;

/// S3's longest key, in bytes.
const MAX_KEY_BYTES: usize = 1024;
/// What the unique name needs: `20261206T233407Z-` (17), 16 hex digits, `.ndjson.zst` (11).
const NAME_BYTES: usize = 48;

#[derive(Debug, Clone)]
pub(super) struct KeyTemplate {
    template: Template,
}

impl KeyTemplate {
    pub(super) fn parse(src: &str) -> Result<KeyTemplate, FieldError> {
        let field = |message: String| FieldError::new("key_prefix", message);
        let template = Template::parse(src).map_err(|e| field(e.to_string()))?;
        if src.starts_with('/') {
            return Err(field(
                "must not start with `/` (keys are relative to the bucket)".into(),
            ));
        }
        if src.split('/').any(|level| level == "." || level == "..") {
            return Err(field("must not have a `.` or `..` level".into()));
        }
        if src.len() > MAX_KEY_BYTES - NAME_BYTES {
            return Err(field(format!(
                "is longer than {} bytes (S3 keys have at most {MAX_KEY_BYTES})",
                MAX_KEY_BYTES - NAME_BYTES
            )));
        }
        Ok(KeyTemplate { template })
    }

    /// Whether every event renders the same prefix (then it is rendered once per batch).
    pub(super) fn is_static(&self) -> bool {
        self.template.is_static()
    }

    /// Appends the prefix `event` renders to `out` (not yet made safe: see [`safe_prefix`]).
    pub(super) fn render(&self, event: &Event, out: &mut String) {
        self.template.render_path(event, out);
    }
}

/// A rendered prefix made safe to use as the start of a key: no `.` or `..` level, no
/// leading `/`, short enough for the unique name to follow within S3's key length. Field
/// values are sanitised already; this covers what they form with the literal text around
/// them.
pub(super) fn safe_prefix(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    for (i, level) in rendered.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match level {
            "" if i == 0 => {}
            "." | ".." => out.push('_'),
            level => out.push_str(level),
        }
    }
    let out = out.trim_start_matches('/');
    let mut end = out.len().min(MAX_KEY_BYTES - NAME_BYTES);
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].to_string()
}

/// The key of a new object: `prefix`, the time it is stored (UTC), 64 random bits and the
/// extension of its encoding and compression, e.g.
/// `logs/web/2026/12/06/23/20261206T233407Z-3f9a1c2b4d5e6f70.ndjson.gz`. Keys never repeat,
/// so a retried PUT replaces only its own earlier attempt, and a restarted router never
/// overwrites an object stored before.
pub(super) fn object_key(prefix: &str, extension: &str) -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    format!("{prefix}{now}-{:016x}{extension}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    use crate::event::test_event as event;

    #[test]
    fn renders_fields_and_event_time() {
        let template = KeyTemplate::parse("logs/{{ app }}/%Y/%m/%d/%H/").unwrap();
        let mut e = event(r#"{"app":"web/../x"}"#);
        e.insert("timestamp", Value::Timestamp(1_700_000_000_000_000_000));
        let mut out = String::new();
        template.render(&e, &mut out);
        assert_eq!(safe_prefix(&out), "logs/web____x/2023/11/14/22/");
    }

    #[test]
    fn refuses_unsafe_templates() {
        for (src, ok) in [
            ("logs/{{ app }}/", true),
            ("", true),
            ("/logs/", false),
            ("logs/../x/", false),
            ("./logs/", false),
            ("logs/{{ app", false),
        ] {
            assert_eq!(KeyTemplate::parse(src).is_ok(), ok, "{src}");
        }
        assert!(KeyTemplate::parse(&"x".repeat(1000)).is_err());
    }

    #[test]
    fn safe_prefix_table() {
        for (rendered, expected) in [
            ("logs/a/", "logs/a/"),
            ("/logs/", "logs/"),
            ("logs/./x/../", "logs/_/x/_/"),
            ("..", "_"),
            ("", ""),
        ] {
            assert_eq!(safe_prefix(rendered), expected, "{rendered}");
        }
        let long = format!("{}é", "x".repeat(MAX_KEY_BYTES - NAME_BYTES - 1));
        let safe = safe_prefix(&long);
        assert!(safe.len() <= MAX_KEY_BYTES - NAME_BYTES, "{}", safe.len());
    }

    #[test]
    fn keys_are_unique_and_fit() {
        let a = object_key("p/", ".ndjson.zst");
        let b = object_key("p/", ".ndjson.zst");
        assert_ne!(a, b);
        assert!(a.starts_with("p/") && a.ends_with(".ndjson.zst"), "{a}");
        assert!(a.len() - "p/".len() <= NAME_BYTES, "{a}");
    }
}
