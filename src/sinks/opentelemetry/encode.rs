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

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

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

/// An export request holding `events`, grouped by resource and scope.
pub fn request(events: &[&Event]) -> ExportLogsServiceRequest {
    let mut groups: Vec<ResourceGroup<'_>> = Vec::new();
    let mut last: Option<usize> = None;
    for event in events {
        let record = Record::new(&event.fields);
        let key = record.resource_key();
        let index = match last.filter(|&i| groups[i].key == key) {
            Some(i) => i,
            None => match groups.iter().position(|g| g.key == key) {
                Some(i) => i,
                None => {
                    groups.push(ResourceGroup {
                        key,
                        resource: record.resource(),
                        scopes: Vec::new(),
                    });
                    groups.len() - 1
                }
            },
        };
        last = Some(index);
        let scope_key = record.scope_key();
        let group = &mut groups[index];
        let scope_index = match group.scopes.iter().rposition(|s| s.key == scope_key) {
            Some(i) => i,
            None => {
                group.scopes.push(ScopeGroup {
                    key: scope_key,
                    logs: ScopeLogs {
                        scope: scope_key.map(scope),
                        log_records: Vec::new(),
                        schema_url: String::new(),
                    },
                });
                group.scopes.len() - 1
            }
        };
        let log = record.log_record();
        group.scopes[scope_index].logs.log_records.push(log);
    }
    ExportLogsServiceRequest {
        resource_logs: groups
            .into_iter()
            .map(|g| ResourceLogs {
                resource: g.resource,
                scope_logs: g.scopes.into_iter().map(|s| s.logs).collect(),
                schema_url: String::new(),
            })
            .collect(),
    }
}

struct ResourceGroup<'a> {
    key: [Option<&'a Value>; 5],
    resource: Option<Resource>,
    scopes: Vec<ScopeGroup<'a>>,
}

struct ScopeGroup<'a> {
    key: Option<&'a Value>,
    logs: ScopeLogs,
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
                "trace_id" | "span_id" => id_bytes(value).is_some(),
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

    fn resource_key(&self) -> [Option<&'a Value>; 5] {
        self.resource
    }

    fn scope_key(&self) -> Option<&'a Value> {
        self.scope
    }

    fn resource(&self) -> Option<Resource> {
        let mut resource = Resource::default();
        for (name, value) in RESOURCE_FIELDS.iter().zip(self.resource) {
            let Some(value) = value else { continue };
            match *name {
                fields::APP => resource.attributes.push(key_value("service.name", value)),
                fields::INSTANCE => resource
                    .attributes
                    .push(key_value("service.instance.id", value)),
                fields::HOST => resource.attributes.push(key_value("host.name", value)),
                "kubernetes" => {
                    if let Value::Object(map) = value {
                        for (key, value) in map.iter() {
                            resource
                                .attributes
                                .push(key_value(&k8s_attribute(key), value));
                        }
                    }
                }
                _ => {
                    if let Value::Object(map) = value {
                        if let Some(Value::Object(attributes)) = map.get("attributes") {
                            resource.attributes.extend(key_values(attributes));
                        }
                        if let Some(n) = map.get("dropped_attributes_count").and_then(positive_u32)
                        {
                            resource.dropped_attributes_count = n;
                        }
                    }
                }
            }
        }
        (!resource.attributes.is_empty() || resource.dropped_attributes_count > 0)
            .then_some(resource)
    }

    fn log_record(&self) -> LogRecord {
        let fields = self.fields;
        let mut record = LogRecord::default();
        if let Some(time) = fields.get(fields::TIMESTAMP).and_then(positive_time) {
            record.time_unix_nano = time;
            if let Some(observed) = fields.get("observed_timestamp").and_then(positive_time) {
                record.observed_time_unix_nano = observed;
            }
        }
        let (text, number) = self.severity;
        record.severity_text = text.unwrap_or("").to_string();
        record.severity_number = number.unwrap_or(0);
        if let Some(id) = fields.get("trace_id").and_then(id_bytes) {
            record.trace_id = id;
        }
        if let Some(id) = fields.get("span_id").and_then(id_bytes) {
            record.span_id = id;
        }
        record.flags = fields
            .get("trace_flags")
            .and_then(positive_u32)
            .unwrap_or(0);
        if let Some(name) = fields.get("event_name").and_then(non_empty_text) {
            record.event_name = name.to_string();
        }
        if let Some(attributes) = fields.get("attributes").and_then(non_empty_object) {
            record.attributes = key_values(attributes);
        }
        record.dropped_attributes_count = fields
            .get("dropped_attributes_count")
            .and_then(positive_u32)
            .unwrap_or(0);
        record.body = self.body();
        record
    }

    fn body(&self) -> Option<AnyValue> {
        match self.body.as_slice() {
            [] => None,
            [(fields::MESSAGE, Value::Bytes(text))] if std::str::from_utf8(text).is_ok() => {
                Some(any_value(&Value::Bytes(text.clone())))
            }
            list => Some(AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: list.iter().map(|(k, v)| key_value(k, v)).collect(),
                })),
            }),
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

fn scope(value: &Value) -> InstrumentationScope {
    let mut scope = InstrumentationScope::default();
    if let Value::Object(map) = value {
        if let Some(name) = map.get("name").and_then(non_empty_text) {
            scope.name = name.to_string();
        }
        if let Some(version) = map.get("version").and_then(non_empty_text) {
            scope.version = version.to_string();
        }
        if let Some(attributes) = map.get("attributes").and_then(non_empty_object) {
            scope.attributes = key_values(attributes);
        }
        if let Some(n) = map.get("dropped_attributes_count").and_then(positive_u32) {
            scope.dropped_attributes_count = n;
        }
    }
    scope
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
fn id_bytes(value: &Value) -> Option<Vec<u8>> {
    let Value::Bytes(text) = value else {
        return None;
    };
    if text.is_empty() || text.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = text
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()?;
    bytes.iter().any(|&b| b != 0).then_some(bytes)
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

fn key_values(map: &Map) -> Vec<KeyValue> {
    map.iter().map(|(k, v)| key_value(k, v)).collect()
}

fn key_value(key: &str, value: &Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(any_value(value)),
        ..KeyValue::default()
    }
}

/// A field's value as an OTLP value. Strings that are not UTF-8 go as bytes; times as
/// RFC 3339 text, which is how every other sink writes them.
fn any_value(value: &Value) -> AnyValue {
    let inner = match value {
        Value::Null => None,
        Value::Bool(b) => Some(any_value::Value::BoolValue(*b)),
        Value::Integer(n) => Some(any_value::Value::IntValue(*n)),
        Value::Float(f) => Some(any_value::Value::DoubleValue(*f)),
        Value::Bytes(bytes) => Some(match std::str::from_utf8(bytes) {
            Ok(text) => any_value::Value::StringValue(text.to_string()),
            Err(_) => any_value::Value::BytesValue(Bytes::clone(bytes).into()),
        }),
        Value::Timestamp(nanos) => Some(any_value::Value::StringValue(format_timestamp(*nanos))),
        Value::Array(values) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: values.iter().map(any_value).collect(),
        })),
        Value::Object(map) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: key_values(map),
        })),
    };
    AnyValue { value: inner }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
