//! One journal entry, as `journalctl -o json` prints it, into event fields.
//!
//! | journal field | event field |
//! |---|---|
//! | `MESSAGE` | `message` |
//! | `__REALTIME_TIMESTAMP` (µs since the epoch) | `timestamp` |
//! | `PRIORITY` (syslog 0–7) | `level`: emergency, alert, critical, error, warn, notice, info, debug |
//! | `_SYSTEMD_UNIT`, else `SYSLOG_IDENTIFIER` | `app` |
//! | `_HOSTNAME` | `host` |
//! | every field but `MESSAGE` | `journald.<name in lower case>` (`journald._pid`) |
//!
//! Journal field names are upper case, digits and `_` only, so lower-casing them loses
//! nothing and two names never meet. A value is a string when it is UTF-8; journalctl
//! prints other values as an array of byte values, decoded here lossily (invalid bytes
//! become U+FFFD), and a field that appears more than once as an array of its values (the
//! first is the one mapped).

use bytes::Bytes;
use serde_json::Value as Json;

use crate::event::{fields, Map, Value};
use crate::parse::Level;

/// Where the mapped fields' values nest.
pub(super) const NAMESPACE: &str = "journald";

/// An entry decoded: its fields, and the cursor that resumes after it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) fields: Map,
    pub(super) cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum EntryError {
    #[error("invalid json from journalctl: {0}")]
    Json(#[from] serde_json::Error),
    #[error("journalctl printed json that is not an object")]
    NotAnObject,
}

/// Decodes one line of journalctl's output.
pub(super) fn decode(line: &[u8]) -> Result<Entry, EntryError> {
    let Json::Object(object) = serde_json::from_slice::<Json>(line)? else {
        return Err(EntryError::NotAnObject);
    };
    let mut cursor = None;
    let mut message = None;
    let mut journald = Map::with_capacity(object.len());
    let mut out = Map::with_capacity(6);
    let (mut unit, mut identifier) = (None, None);
    for (name, json) in object {
        if name == "__CURSOR" {
            cursor = json.as_str().map(str::to_string);
        }
        if name == "MESSAGE" {
            message = Some(first_text(&json));
            continue;
        }
        match name.as_str() {
            "__REALTIME_TIMESTAMP" => {
                if let Ok(micros) = first_text(&json).parse::<i64>() {
                    out.insert(
                        fields::TIMESTAMP,
                        Value::Timestamp(micros.saturating_mul(1_000)),
                    );
                }
            }
            "PRIORITY" => {
                if let Some(level) = first_text(&json)
                    .parse::<i64>()
                    .ok()
                    .filter(|p| (0..=7).contains(p))
                    .and_then(Level::from_number)
                {
                    out.insert(fields::LEVEL, level.to_value());
                }
            }
            "_HOSTNAME" => {
                out.insert(fields::HOST, Value::from(first_text(&json)));
            }
            "_SYSTEMD_UNIT" => unit = Some(first_text(&json)),
            "SYSLOG_IDENTIFIER" => identifier = Some(first_text(&json)),
            _ => {}
        }
        journald.insert(name.to_ascii_lowercase(), value(json));
    }
    let mut fields = Map::with_capacity(out.len() + 3);
    if let Some(message) = message {
        fields.insert(fields::MESSAGE, Value::from(message));
    }
    fields.extend(out);
    if let Some(app) = unit.or(identifier) {
        fields.insert(fields::APP, Value::from(app));
    }
    fields.insert(NAMESPACE, Value::Object(journald));
    Ok(Entry { fields, cursor })
}

/// A field's value as text: a string as is, bytes lossily, the first of repeated values.
fn first_text(json: &Json) -> String {
    match json {
        Json::String(s) => s.clone(),
        Json::Array(items) if is_bytes(items) => {
            String::from_utf8_lossy(&bytes(items)).into_owned()
        }
        Json::Array(items) => items.first().map(first_text).unwrap_or_default(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// A field's value: a string, bytes decoded lossily, or an array of the repeated values.
fn value(json: Json) -> Value {
    match json {
        Json::String(s) => Value::Bytes(Bytes::from(s)),
        Json::Array(items) if is_bytes(&items) => {
            Value::from(String::from_utf8_lossy(&bytes(&items)).into_owned())
        }
        Json::Array(items) => Value::Array(items.into_iter().map(value).collect()),
        Json::Null => Value::Null,
        other => Value::from(other.to_string()),
    }
}

/// True for a non-empty array of numbers 0–255: journalctl's spelling of a binary value.
fn is_bytes(items: &[Json]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|i| i.as_u64().is_some_and(|n| n <= u64::from(u8::MAX)))
}

fn bytes(items: &[Json]) -> Vec<u8> {
    items
        .iter()
        .filter_map(|i| i.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(map: &Map, key: &str) -> Option<String> {
        map.get_path(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    #[test]
    fn maps_fields() {
        let entry = decode(br#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000123456","PRIORITY":"3","_HOSTNAME":"h1","_SYSTEMD_UNIT":"nginx.service","SYSLOG_IDENTIFIER":"nginx","MESSAGE":"hello","_PID":"42"}"#).unwrap();
        assert_eq!(entry.cursor.as_deref(), Some("s=1;i=2"));
        let f = &entry.fields;
        assert_eq!(text(f, "message").as_deref(), Some("hello"));
        assert_eq!(
            f.get("timestamp"),
            Some(&Value::Timestamp(1_700_000_000_123_456_000))
        );
        assert_eq!(text(f, "level").as_deref(), Some("error"));
        assert_eq!(text(f, "host").as_deref(), Some("h1"));
        assert_eq!(text(f, "app").as_deref(), Some("nginx.service"));
        assert_eq!(text(f, "journald._pid").as_deref(), Some("42"));
        assert_eq!(
            text(f, "journald.syslog_identifier").as_deref(),
            Some("nginx")
        );
        assert_eq!(text(f, "journald.message"), None);
    }

    #[test]
    fn levels_by_priority() {
        for (priority, level) in [
            ("0", Some("emergency")),
            ("1", Some("alert")),
            ("2", Some("critical")),
            ("3", Some("error")),
            ("4", Some("warn")),
            ("5", Some("notice")),
            ("6", Some("info")),
            ("7", Some("debug")),
            ("8", None),
            ("x", None),
        ] {
            let line = format!(r#"{{"PRIORITY":"{priority}"}}"#);
            let entry = decode(line.as_bytes()).unwrap();
            assert_eq!(text(&entry.fields, "level").as_deref(), level, "{priority}");
        }
    }

    #[test]
    fn binary_and_repeated_values() {
        let entry =
            decode(br#"{"MESSAGE":[255,104,105],"SYSLOG_IDENTIFIER":"cron","TAG":["a","b"]}"#)
                .unwrap();
        let f = &entry.fields;
        assert_eq!(text(f, "message").as_deref(), Some("\u{fffd}hi"));
        assert_eq!(text(f, "app").as_deref(), Some("cron"));
        assert_eq!(
            f.get_path("journald.tag"),
            Some(&Value::Array(vec![Value::from("a"), Value::from("b")]))
        );
        assert_eq!(entry.cursor, None);
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for line in [&b"{"[..], b"[1,2]", b"", b"\xff\xfe", b"null"] {
            assert!(decode(line).is_err());
        }
    }
}
