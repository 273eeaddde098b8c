//! Events into an OTLP `ExportLogsServiceRequest`: the exact reverse of the source's
//! mapping (`sources::otlp`), so that what an OTLP source made of a record comes back the
//! same from the next router's OTLP source.
//!
//! | event field | OTLP |
//! |---|---|
//! | `app`, `instance`, `host` | resource `service.name`, `service.instance.id`, `host.name` |
//! | `kubernetes.pod_name`, `pod_namespace`, `container_name`, `pod_uid`, `pod_node_name` | resource `k8s.pod.name`, `k8s.namespace.name`, `k8s.container.name`, `k8s.pod.uid`, `k8s.node.name` |
//! | other `kubernetes.KIND_name`/`_uid` (deployment, replicaset, statefulset, daemonset, job, cronjob, cluster, node, container) | resource `k8s.KIND.name`/`.uid`; any other key `k8s.KEY` |
//! | `resource.attributes`, `resource.dropped_attributes_count` | the resource's other attributes, its dropped count |
//! | `scope.name`, `scope.version`, `scope.attributes`, `scope.dropped_attributes_count` | the instrumentation scope |
//! | `timestamp`, `observed_timestamp` | `time_unix_nano`, `observed_time_unix_nano` |
//! | `severity_text`, `severity_number` | themselves; without them, `level` as both (`warn`, 13) |
//! | `trace_id`, `span_id` (hex), `trace_flags` | `trace_id`, `span_id` (bytes), `flags` |
//! | `event_name`, `attributes`, `dropped_attributes_count` | themselves |
//! | `message` alone (a string) | `body` as a string |
//! | `message` and every other field | `body` as a key-value list |
//!
//! A field that cannot take its OTLP place exactly (a `trace_id` that is not hex, an
//! `attributes` that is not an object, a `timestamp` that is not a time) goes into the body
//! list under its own name, where the source finds it again. A `level` that disagrees with
//! the event's severity fields (changed by a transform) wins: the severity is rewritten
//! from it. Events with the same resource share one `ResourceLogs`, and within it those
//! with the same scope one `ScopeLogs`, in the order first seen.

use super::wire::Writer;
use crate::event::{fields, format_timestamp, Event, Map, Value};
use crate::parse::Level;
use crate::sources::otlp::level_of;

/// The event fields that make up a record's resource, in the order compared.
const RESOURCE_FIELDS: [&str; 5] = [
    fields::APP,
    fields::INSTANCE,
    fields::HOST,
    "kubernetes",
    "resource",
];

/// `kubernetes.*` keys the source renames from `k8s.*` attributes, and back.
const K8S_RENAMED: [(&str, &str); 5] = [
    ("pod_name", "k8s.pod.name"),
    ("pod_namespace", "k8s.namespace.name"),
    ("container_name", "k8s.container.name"),
    ("pod_uid", "k8s.pod.uid"),
    ("pod_node_name", "k8s.node.name"),
];

/// Kinds of the semantic conventions' `k8s.KIND.name` and `k8s.KIND.uid` attributes.
const K8S_KINDS: [&str; 10] = [
    "pod",
    "namespace",
    "node",
    "container",
    "deployment",
    "replicaset",
    "statefulset",
    "daemonset",
    "job",
    "cronjob",
];

/// An export request holding `events`, grouped by resource and scope, as protobuf.
pub fn request(events: &[&Event]) -> Vec<u8> {
    let mut groups: Vec<ResourceGroup<'_>> = Vec::new();
    let mut last: Option<usize> = None;
    for event in events {
        let record = Record::new(&event.fields);
        let key = record.resource;
        let index = match last.filter(|&i| groups[i].key == key) {
            Some(i) => i,
            None => match groups.iter().position(|g| g.key == key) {
                Some(i) => i,
                None => {
                    groups.push(ResourceGroup {
                        key,
                        scopes: Vec::new(),
                    });
                    groups.len() - 1
                }
            },
        };
        last = Some(index);
        let group = &mut groups[index];
        let scope_index = match group.scopes.iter().rposition(|s| s.key == record.scope) {
            Some(i) => i,
            None => {
                group.scopes.push(ScopeGroup {
                    key: record.scope,
                    records: Vec::new(),
                });
                group.scopes.len() - 1
            }
        };
        group.scopes[scope_index].records.push(record);
    }
    // Field numbers are opentelemetry-proto's; fields go in their order, as prost writes them.
    let mut w = Writer::default();
    for group in &groups {
        w.message(1, |w| {
            // A resource slot taken always makes an attribute or a dropped count.
            if group.key.iter().any(Option::is_some) {
                w.message(1, |w| resource(w, &group.key));
            }
            for scope_group in &group.scopes {
                w.message(2, |w| {
                    if let Some(value) = scope_group.key {
                        w.message(1, |w| scope(w, value));
                    }
                    for record in &scope_group.records {
                        w.message(2, |w| record.log_record(w));
                    }
                });
            }
        });
    }
    w.buf
}

struct ResourceGroup<'a> {
    key: [Option<&'a Value>; 5],
    scopes: Vec<ScopeGroup<'a>>,
}

struct ScopeGroup<'a> {
    key: Option<&'a Value>,
    records: Vec<Record<'a>>,
}

/// One event's fields, sorted into their OTLP places; what has no place goes to the body.
struct Record<'a> {
    fields: &'a Map,
    /// The resource's fields that fit it (`RESOURCE_FIELDS` order).
    resource: [Option<&'a Value>; 5],
    scope: Option<&'a Value>,
    /// `severity_text` and `severity_number` as written.
    severity: (Option<&'a str>, Option<i32>),
    /// Fields for the body list, `message` among them.
    body: Vec<(&'a str, &'a Value)>,
}

impl<'a> Record<'a> {
    fn new(fields: &'a Map) -> Self {
        let (severity, level_placed) = severity(fields);
        let mut record = Record {
            fields,
            resource: [None; 5],
            scope: None,
            severity,
            body: Vec::new(),
        };
        for (key, value) in fields.iter() {
            let key = key.as_str();
            let placed = match key {
                fields::APP => set(&mut record.resource[0], value),
                fields::INSTANCE => set(&mut record.resource[1], value),
                fields::HOST => set(&mut record.resource[2], value),
                "kubernetes" => kubernetes_fits(value) && set(&mut record.resource[3], value),
                "resource" => resource_fits(value) && set(&mut record.resource[4], value),
                "scope" => scope_fits(value) && set(&mut record.scope, value),
                // The record's own fields are placed in `log_record`; here they only must
                // fit, or they go to the body.
                fields::TIMESTAMP => positive_time(value).is_some(),
                "observed_timestamp" => {
                    positive_time(value).is_some()
                        && fields
                            .get(fields::TIMESTAMP)
                            .and_then(positive_time)
                            .is_some()
                }
                "severity_text" => non_empty_text(value).is_some(),
                "severity_number" => severity_number(value).is_some(),
                "trace_id" | "span_id" => hex_id(value).is_some(),
                "trace_flags" | "dropped_attributes_count" => positive_u32(value).is_some(),
                "event_name" => non_empty_text(value).is_some(),
                "attributes" => non_empty_object(value).is_some(),
                fields::LEVEL => level_placed,
                _ => false,
            };
            if !placed {
                record.body.push((key, value));
            }
        }
        record
    }

    /// The `LogRecord`'s fields.
    fn log_record(&self, w: &mut Writer) {
        let fields = self.fields;
        let time = fields.get(fields::TIMESTAMP).and_then(positive_time);
        w.fixed64(1, time.unwrap_or(0));
        let (text, number) = self.severity;
        w.int(2, number.unwrap_or(0).into());
        w.string(3, text.unwrap_or(""));
        match self.body.as_slice() {
            [] => {}
            [(fields::MESSAGE, Value::Bytes(text))] if std::str::from_utf8(text).is_ok() => {
                w.message(5, |w| w.bytes(1, text));
            }
            list => w.message(5, |w| {
                w.message(6, |w| {
                    for (key, value) in list {
                        key_value(w, 1, key, value);
                    }
                })
            }),
        }
        if let Some(attributes) = fields.get("attributes").and_then(non_empty_object) {
            key_values(w, 6, attributes);
        }
        let count = fields
            .get("dropped_attributes_count")
            .and_then(positive_u32);
        w.int(7, count.unwrap_or(0).into());
        let flags = fields.get("trace_flags").and_then(positive_u32);
        w.fixed32(8, flags.unwrap_or(0));
        if let Some(hex) = fields.get("trace_id").and_then(hex_id) {
            id(w, 9, hex);
        }
        if let Some(hex) = fields.get("span_id").and_then(hex_id) {
            id(w, 10, hex);
        }
        if time.is_some() {
            let observed = fields.get("observed_timestamp").and_then(positive_time);
            w.fixed64(11, observed.unwrap_or(0));
        }
        if let Some(name) = fields.get("event_name").and_then(non_empty_text) {
            w.string(12, name);
        }
    }
}

/// A `Resource`'s fields from a group's resource slots (`RESOURCE_FIELDS` order, so the
/// `resource` object's dropped count comes after every attribute).
fn resource(w: &mut Writer, slots: &[Option<&Value>; 5]) {
    for (name, value) in RESOURCE_FIELDS.iter().zip(slots) {
        let Some(value) = value else { continue };
        match *name {
            fields::APP => key_value(w, 1, "service.name", value),
            fields::INSTANCE => key_value(w, 1, "service.instance.id", value),
            fields::HOST => key_value(w, 1, "host.name", value),
            "kubernetes" => {
                if let Value::Object(map) = value {
                    for (key, value) in map.iter() {
                        key_value(w, 1, &k8s_attribute(key), value);
                    }
                }
            }
            _ => {
                if let Value::Object(map) = value {
                    if let Some(Value::Object(attributes)) = map.get("attributes") {
                        key_values(w, 1, attributes);
                    }
                    let count = map.get("dropped_attributes_count").and_then(positive_u32);
                    w.int(2, count.unwrap_or(0).into());
                }
            }
        }
    }
}

/// The severity to write, and whether it carries the event's `level` (else the level goes
/// to the body). The source reads the level from the severity text, else its number.
fn severity(fields: &Map) -> ((Option<&str>, Option<i32>), bool) {
    let text = fields.get("severity_text").and_then(non_empty_text);
    let number = fields.get("severity_number").and_then(severity_number);
    let Some(level) = fields.get(fields::LEVEL) else {
        return ((text, number), true);
    };
    let given = level_of(text.unwrap_or(""), number.unwrap_or(0));
    if given.map(Level::to_value).as_ref() == Some(level) {
        return ((text, number), true);
    }
    match canonical_level(level) {
        Some(level) => ((Some(level.as_str()), Some(severity_of(level))), true),
        // Not a level the source could name: kept as a field of its own.
        None => ((text, number), false),
    }
}

fn set<'a>(slot: &mut Option<&'a Value>, value: &'a Value) -> bool {
    *slot = Some(value);
    true
}

/// An `InstrumentationScope`'s fields.
fn scope(w: &mut Writer, value: &Value) {
    if let Value::Object(map) = value {
        if let Some(name) = map.get("name").and_then(non_empty_text) {
            w.string(1, name);
        }
        if let Some(version) = map.get("version").and_then(non_empty_text) {
            w.string(2, version);
        }
        if let Some(attributes) = map.get("attributes").and_then(non_empty_object) {
            key_values(w, 3, attributes);
        }
        let count = map.get("dropped_attributes_count").and_then(positive_u32);
        w.int(4, count.unwrap_or(0).into());
    }
}

/// A `kubernetes` object whose every key has an attribute name the source reads back.
fn kubernetes_fits(value: &Value) -> bool {
    matches!(value, Value::Object(map) if !map.is_empty() && map.keys().all(|k| !k.contains('.')))
}

/// The `k8s.*` attribute for a `kubernetes` key: the source's renamings reversed, the
/// semantic conventions' `KIND_name`/`KIND_uid` with their dots back, else `k8s.KEY`
/// (which the source reads back as `KEY`, having no dot to replace).
fn k8s_attribute(key: &str) -> String {
    if let Some((_, attribute)) = K8S_RENAMED.iter().find(|(k, _)| *k == key) {
        return (*attribute).to_string();
    }
    if let Some((kind, rest)) = key.split_once('_') {
        let attribute = format!("k8s.{kind}.{rest}");
        let conventional = K8S_KINDS.contains(&kind)
            && matches!(rest, "name" | "uid" | "restart_count")
            && !K8S_RENAMED.iter().any(|(_, a)| *a == attribute);
        if conventional {
            return attribute;
        }
    }
    format!("k8s.{key}")
}

/// A `resource` object as the source makes it: non-empty `attributes` whose keys the
/// source would not rename, and a dropped count.
fn resource_fits(value: &Value) -> bool {
    let Value::Object(map) = value else {
        return false;
    };
    !map.is_empty()
        && map.iter().all(|(key, value)| match key.as_str() {
            "attributes" => non_empty_object(value).is_some_and(|attributes| {
                attributes.keys().all(|k| {
                    !matches!(k, "service.name" | "service.instance.id" | "host.name")
                        && !k.starts_with("k8s.")
                })
            }),
            "dropped_attributes_count" => positive_u32(value).is_some(),
            _ => false,
        })
}

/// A `scope` object as the source makes it.
fn scope_fits(value: &Value) -> bool {
    let Value::Object(map) = value else {
        return false;
    };
    !map.is_empty()
        && map.iter().all(|(key, value)| match key.as_str() {
            "name" | "version" => non_empty_text(value).is_some(),
            "attributes" => non_empty_object(value).is_some(),
            "dropped_attributes_count" => positive_u32(value).is_some(),
            _ => false,
        })
}

fn positive_time(value: &Value) -> Option<u64> {
    match value {
        Value::Timestamp(n) if *n > 0 => u64::try_from(*n).ok(),
        _ => None,
    }
}

fn non_empty_text(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.is_empty())
}

fn non_empty_object(value: &Value) -> Option<&Map> {
    match value {
        Value::Object(map) if !map.is_empty() => Some(map),
        _ => None,
    }
}

fn severity_number(value: &Value) -> Option<i32> {
    match value {
        Value::Integer(n) if *n != 0 => i32::try_from(*n).ok(),
        _ => None,
    }
}

fn positive_u32(value: &Value) -> Option<u32> {
    match value {
        Value::Integer(n) if *n > 0 => u32::try_from(*n).ok(),
        _ => None,
    }
}

/// Lowercase hex (as the source writes ids), not all zeros (which the source leaves out).
fn hex_id(value: &Value) -> Option<&[u8]> {
    let Value::Bytes(text) = value else {
        return None;
    };
    let hex = text.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let id = !text.is_empty() && text.len() % 2 == 0 && hex && text.iter().any(|&c| c != b'0');
    id.then_some(text)
}

/// An id's bytes from its hex (checked by `hex_id`).
fn id(w: &mut Writer, field: u32, hex: &[u8]) {
    let digit = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
    w.bytes_with(field, hex.len() / 2, |buf| {
        buf.extend(
            hex.chunks_exact(2)
                .map(|pair| digit(pair[0]) << 4 | digit(pair[1])),
        );
    });
}

/// The level a `level` field names in Sluice's own spelling (what the source writes).
fn canonical_level(value: &Value) -> Option<Level> {
    let level = Level::from_word(value.as_str()?.as_bytes())?;
    (level.to_value() == *value).then_some(level)
}

/// The first severity number of a level's OTLP range (`INFO` is 9, `WARN` 13…).
fn severity_of(level: Level) -> i32 {
    match level {
        Level::Trace => 1,
        Level::Debug => 5,
        Level::Info => 9,
        Level::Notice => 10,
        Level::Warn => 13,
        Level::Error => 17,
        Level::Critical => 21,
        Level::Alert => 22,
        Level::Emergency => 23,
    }
}

/// A `KeyValue` in `field` for each of `map`'s fields.
fn key_values(w: &mut Writer, field: u32, map: &Map) {
    for (key, value) in map.iter() {
        key_value(w, field, key, value);
    }
}

fn key_value(w: &mut Writer, field: u32, key: &str, value: &Value) {
    w.message(field, |w| {
        w.string(1, key);
        w.message(2, |w| any_value(w, value));
    });
}

/// An `AnyValue`'s fields for a field's value. Strings that are not UTF-8 go as bytes;
/// times as RFC 3339 text, which is how every other sink writes them.
fn any_value(w: &mut Writer, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => w.int_always(2, i64::from(*b)),
        Value::Integer(n) => w.int_always(3, *n),
        Value::Float(f) => w.fixed64_always(4, f.to_bits()),
        Value::Bytes(bytes) => match std::str::from_utf8(bytes) {
            Ok(_) => w.bytes(1, bytes),
            Err(_) => w.bytes(7, bytes),
        },
        Value::Timestamp(nanos) => w.bytes(1, format_timestamp(*nanos).as_bytes()),
        Value::Array(values) => w.message(5, |w| {
            for value in values {
                w.message(1, |w| any_value(w, value));
            }
        }),
        Value::Object(map) => w.message(6, |w| key_values(w, 1, map)),
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
