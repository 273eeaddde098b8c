//! OpenTelemetry logs (OTLP) into events, by the semantic conventions.
//!
//! An `ExportLogsServiceRequest`, in protobuf (`application/x-protobuf`) or in OTLP's JSON
//! mapping (`application/json`, ids as hex, 64-bit numbers as strings), becomes one event
//! per log record:
//!
//! | OTLP | event field |
//! |---|---|
//! | `body` (a string) | `message` |
//! | `body` (a key-value list) | its keys as fields (`message` among them if it has one) |
//! | `body` (other values) | `message`, as JSON text (bytes as base64) |
//! | `severity_text`, `severity_number` | `level` in Sluice's vocabulary (text first, else number); both kept as `severity_text`, `severity_number` |
//! | `time_unix_nano`, else `observed_time_unix_nano` | `timestamp`; `observed_timestamp` kept |
//! | `trace_id`, `span_id` | `trace_id`, `span_id` (lowercase hex); `flags` as `trace_flags` |
//! | `event_name` | `event_name` |
//! | resource `service.name`, `service.instance.id`, `host.name` | `app`, `instance`, `host` |
//! | resource `k8s.pod.name`, `k8s.namespace.name`, `k8s.container.name`, `k8s.pod.uid`, `k8s.node.name` | `kubernetes.pod_name`, `pod_namespace`, `container_name`, `pod_uid`, `pod_node_name`; other `k8s.A.B` as `kubernetes.A_B` |
//! | other resource attributes | `resource.attributes` (keys as sent, dots included) |
//! | scope `name`, `version`, attributes, dropped attribute count | `scope.name`, `scope.version`, `scope.attributes`, `scope.dropped_attributes_count` |
//! | log attributes | `attributes` |
//! | dropped attribute counts (when not 0) | `dropped_attributes_count` |
//!
//! Protobuf is read by `otlp_wire.rs` straight into events; JSON goes through serde into
//! prost's messages, and `decode_protobuf_with_prost` (the reference the wire reader is
//! tested against) through prost's. All three hand a record's parts to the one mapping
//! below (`resource_fields`, `scope_fields`, `push_record`).
//!
//! Nothing is dropped silently: a record's every part lands in a field. A record with a time
//! an event cannot hold (past the year 2262) is unmappable: the source rejects it in its
//! answer's `partial_success` and sends it to dead-letter. A request that is not a valid
//! export request is refused whole, with the decoder's reason.

use base64::Engine;
use bytes::Bytes;
use compact_str::CompactString;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;

use super::otlp_wire::{self, WireError};
use crate::event::{fields, Event, Map, Value};
use crate::parse::Level;

/// Why a body is not an export request.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("invalid OTLP protobuf: {0}")]
    Wire(#[from] WireError),
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid OTLP JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The records of a request: those mapped, and those that cannot be (with what of them
/// could be mapped, and why), which the source rejects in its `partial_success`.
#[derive(Debug, Default)]
pub struct Records {
    pub events: Vec<Event>,
    pub unmappable: Vec<(Event, &'static str)>,
}

impl Records {
    /// The records as comparable text, for checking one decoder against another: `Debug`
    /// shows every field in order with its type, and NaN alike on both sides (where `==`
    /// would not).
    pub fn as_text(&self) -> (Vec<String>, Vec<String>) {
        (
            self.events
                .iter()
                .map(|e| format!("{:?}", e.fields))
                .collect(),
            self.unmappable
                .iter()
                .map(|(e, why)| format!("{:?} {why}", e.fields))
                .collect(),
        )
    }
}

/// Why a record cannot become an event: a time past what an event holds (year 2262).
pub const TIME_OUT_OF_RANGE: &str =
    "time_unix_nano or observed_time_unix_nano is past the year 2262";

/// The events of a protobuf `ExportLogsServiceRequest`, read straight from the wire
/// (`otlp_wire.rs`): strings become slices of `body`, without prost's message tree.
pub fn decode_protobuf(body: &Bytes) -> Result<Records, OtlpError> {
    Ok(otlp_wire::decode(body)?)
}

/// The events of a protobuf `ExportLogsServiceRequest` decoded by prost into its messages
/// first: the reference `decode_protobuf` is tested and benchmarked against.
pub fn decode_protobuf_with_prost(body: &[u8]) -> Result<Records, OtlpError> {
    Ok(events_of(ExportLogsServiceRequest::decode(body)?))
}

/// The events of an `ExportLogsServiceRequest` in OTLP's JSON mapping.
pub fn decode_json(body: &[u8]) -> Result<Records, OtlpError> {
    Ok(events_of(serde_json::from_slice(body)?))
}

/// The `partial_success` of the answer to a request of `records` records: `None` when none
/// was rejected, else the count of those unmappable plus those a sink rejected
/// (`downstream`, counted on the request's token), at most all of them.
pub fn partial_success(
    records: usize,
    unmappable: usize,
    downstream: usize,
) -> Option<ExportLogsPartialSuccess> {
    let rejected = (unmappable + downstream).min(records.max(1));
    (rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: rejected as i64,
        error_message: if unmappable > 0 {
            format!(
                "{rejected} of {records} records were rejected ({unmappable} unmappable: {TIME_OUT_OF_RANGE})"
            )
        } else {
            format!(
                "{rejected} of {records} records were rejected by a sink of the pipeline (sent to its dead-letter output)"
            )
        },
    })
}

/// The events of a request prost (or serde, for JSON) decoded into its messages: each part
/// is handed to the mapping below, which the wire reader uses too.
fn events_of(request: ExportLogsServiceRequest) -> Records {
    let mut records = Records::default();
    for resource_logs in request.resource_logs {
        let shared = match resource_logs.resource {
            Some(resource) => resource_fields(
                resource.attributes.into_iter().map(key_value),
                resource.dropped_attributes_count,
            ),
            None => Map::new(),
        };
        for scope_logs in resource_logs.scope_logs {
            let scoped = match scope_logs.scope {
                Some(scope) => scope_fields(
                    &shared,
                    Scope {
                        name: Bytes::from(scope.name),
                        version: Bytes::from(scope.version),
                        attributes: attributes(scope.attributes),
                        dropped_attributes_count: scope.dropped_attributes_count,
                    },
                ),
                None => shared.clone(),
            };
            for record in scope_logs.log_records {
                let LogRecord {
                    time_unix_nano,
                    observed_time_unix_nano,
                    severity_number,
                    severity_text,
                    body,
                    attributes: list,
                    dropped_attributes_count,
                    flags,
                    trace_id,
                    span_id,
                    event_name,
                } = record;
                let parts = Record {
                    time_unix_nano,
                    observed_time_unix_nano,
                    severity_number,
                    severity_text: Bytes::from(severity_text),
                    body: any(body),
                    attributes: attributes(list),
                    dropped_attributes_count,
                    flags,
                    trace_id: &trace_id,
                    span_id: &span_id,
                    event_name: Bytes::from(event_name),
                };
                push_record(&mut records, parts, &scoped);
            }
        }
    }
    records
}

/// A log record's parts as a decoder read them, the values (body, attributes) already
/// events' values; the texts are valid UTF-8 (both decoders check).
pub(super) struct Record<'a> {
    pub(super) time_unix_nano: u64,
    pub(super) observed_time_unix_nano: u64,
    pub(super) severity_number: i32,
    pub(super) severity_text: Bytes,
    /// `Null` when the record has no body (or a body with no value).
    pub(super) body: Value,
    pub(super) attributes: Map,
    pub(super) dropped_attributes_count: u32,
    pub(super) flags: u32,
    pub(super) trace_id: &'a [u8],
    pub(super) span_id: &'a [u8],
    pub(super) event_name: Bytes,
}

/// An instrumentation scope's parts as a decoder read them.
#[derive(Default)]
pub(super) struct Scope {
    pub(super) name: Bytes,
    pub(super) version: Bytes,
    pub(super) attributes: Map,
    pub(super) dropped_attributes_count: u32,
}

/// The fields every record of a resource shares: its attributes, the well-known ones as
/// Sluice's fields, the rest kept.
pub(super) fn resource_fields<K: AsRef<str>>(
    attributes: impl IntoIterator<Item = (K, Value)>,
    dropped_attributes_count: u32,
) -> Map {
    let mut map = Map::new();
    let mut rest = Map::new();
    for (key, value) in attributes {
        let key = key.as_ref();
        let renamed = match key {
            "service.name" => Some(fields::APP),
            "service.instance.id" => Some(fields::INSTANCE),
            "host.name" => Some("host"),
            _ => None,
        };
        if let Some(field) = renamed {
            map.insert(field, value);
        } else if let Some(k8s) = key.strip_prefix("k8s.") {
            let name = match k8s {
                "pod.name" => "pod_name".to_string(),
                "namespace.name" => "pod_namespace".to_string(),
                "container.name" => "container_name".to_string(),
                "pod.uid" => "pod_uid".to_string(),
                "node.name" => "pod_node_name".to_string(),
                other => other.replace('.', "_"),
            };
            object(&mut map, "kubernetes").insert(name.as_str(), value);
        } else {
            rest.insert(key, value);
        }
    }
    if !rest.is_empty() {
        object(&mut map, "resource").insert("attributes", Value::Object(rest));
    }
    if dropped_attributes_count > 0 {
        object(&mut map, "resource").insert(
            "dropped_attributes_count",
            Value::Integer(i64::from(dropped_attributes_count)),
        );
    }
    map
}

/// The fields every record of a scope shares: the resource's and the scope's own.
pub(super) fn scope_fields(shared: &Map, scope: Scope) -> Map {
    let mut scoped = shared.clone();
    let mut map = Map::new();
    if !scope.name.is_empty() {
        map.insert("name", Value::Bytes(scope.name));
    }
    if !scope.version.is_empty() {
        map.insert("version", Value::Bytes(scope.version));
    }
    if !scope.attributes.is_empty() {
        map.insert("attributes", Value::Object(scope.attributes));
    }
    if scope.dropped_attributes_count > 0 {
        map.insert(
            "dropped_attributes_count",
            Value::Integer(i64::from(scope.dropped_attributes_count)),
        );
    }
    if !map.is_empty() {
        scoped.insert("scope", Value::Object(map));
    }
    scoped
}

/// A record's event (or, with a time an event cannot hold, its unmappable part) added to
/// `records`.
pub(super) fn push_record(records: &mut Records, record: Record<'_>, scoped: &Map) {
    let in_range = [record.time_unix_nano, record.observed_time_unix_nano]
        .iter()
        .all(|&t| i64::try_from(t).is_ok());
    let body_fields = match &record.body {
        Value::Object(map) => map.len(),
        _ => 1,
    };
    // The map is made as large as it may get at once, where growing a clone of the scope's
    // fields insert by insert took a reallocation or three per record.
    let mut map = Map::with_capacity(scoped.len() + RECORD_KEYS.len() + body_fields);
    debug_assert!(
        scoped.keys().all(|key| SCOPE_KEYS.contains(&key)),
        "record_fields relies on the scope's keys being SCOPE_KEYS: {scoped:?}"
    );
    for (key, value) in scoped.iter() {
        // The scope's fields have no repeated key.
        map.push_unchecked(key.clone(), value.clone());
    }
    let event = Event::new(record_fields(record, map));
    if in_range {
        records.events.push(event);
    } else {
        records.unmappable.push((event, TIME_OUT_OF_RANGE));
    }
}

fn record_fields(record: Record<'_>, map: Map) -> Map {
    // Fields are pushed without the scan for a duplicate that `Map::insert` makes (of all
    // the fields before, for every one) where no duplicate can be: the scope's keys are
    // `SCOPE_KEYS` (see `resource_fields`, `scope_fields`), a record's own are each put
    // once and are none of those, and a structured body's keys are unique (each decoder
    // merges repeats) so they only need checking against those two short lists.
    let mut fields = Fields {
        map,
        checked: false,
    };
    match record.body {
        Value::Object(list) => {
            for (key, value) in list {
                fields.checked |= RECORD_KEYS.contains(&key.as_str());
                if SCOPE_KEYS.contains(&key.as_str()) {
                    fields.map.insert(key, value);
                } else {
                    fields.map.push_unchecked(key, value);
                }
            }
        }
        Value::Bytes(text) => fields.put(fields::MESSAGE, Value::Bytes(text)),
        Value::Null => {}
        other => fields.put(fields::MESSAGE, Value::from(other.to_text())),
    }
    let level =
        Level::from_word(&record.severity_text).or_else(|| severity_level(record.severity_number));
    if let Some(level) = level {
        fields.put(fields::LEVEL, level.to_value());
    }
    if !record.severity_text.is_empty() {
        fields.put("severity_text", Value::Bytes(record.severity_text));
    }
    if record.severity_number != 0 {
        fields.put(
            "severity_number",
            Value::Integer(i64::from(record.severity_number)),
        );
    }
    let time = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|&t| t != 0);
    if let Some(nanos) = time.and_then(|t| i64::try_from(t).ok()) {
        fields.put(fields::TIMESTAMP, Value::Timestamp(nanos));
    }
    if let Ok(observed) = i64::try_from(record.observed_time_unix_nano) {
        if observed != 0 {
            fields.put("observed_timestamp", Value::Timestamp(observed));
        }
    }
    if record.trace_id.iter().any(|&b| b != 0) {
        fields.put("trace_id", hex(record.trace_id));
    }
    if record.span_id.iter().any(|&b| b != 0) {
        fields.put("span_id", hex(record.span_id));
    }
    if record.flags != 0 {
        fields.put("trace_flags", Value::Integer(i64::from(record.flags)));
    }
    if !record.event_name.is_empty() {
        fields.put("event_name", Value::Bytes(record.event_name));
    }
    if !record.attributes.is_empty() {
        fields.put("attributes", Value::Object(record.attributes));
    }
    if record.dropped_attributes_count > 0 {
        fields.put(
            "dropped_attributes_count",
            Value::Integer(i64::from(record.dropped_attributes_count)),
        );
    }
    debug_assert!(
        {
            let mut keys: Vec<&str> = fields.map.keys().collect();
            keys.sort_unstable();
            keys.windows(2).all(|w| w[0] != w[1])
        },
        "a record's field pushed twice: {:?}",
        fields.map
    );
    fields.map
}

/// The keys `resource_fields` and `scope_fields` may give the fields a scope's records share.
const SCOPE_KEYS: [&str; 6] = [
    fields::APP,
    fields::INSTANCE,
    "host",
    "kubernetes",
    "resource",
    "scope",
];

/// The keys `record_fields` may put besides a structured body's.
const RECORD_KEYS: [&str; 12] = [
    fields::MESSAGE,
    fields::LEVEL,
    "severity_text",
    "severity_number",
    fields::TIMESTAMP,
    "observed_timestamp",
    "trace_id",
    "span_id",
    "trace_flags",
    "event_name",
    "attributes",
    "dropped_attributes_count",
];

/// A record's event fields, put with a duplicate check only when one can be there.
struct Fields {
    map: Map,
    checked: bool,
}

impl Fields {
    fn put(&mut self, key: &'static str, value: Value) {
        if self.checked {
            self.map.insert(key, value);
        } else {
            self.map
                .push_unchecked(CompactString::const_new(key), value);
        }
    }
}

/// The level a record's severity gives: its text when that is a level word, else its number.
/// The `opentelemetry` sink writes severities so that this gives back the event's level.
pub fn level_of(severity_text: &str, severity_number: i32) -> Option<Level> {
    Level::from_word(severity_text.as_bytes()).or_else(|| severity_level(severity_number))
}

/// OTLP's severity number ranges: 1–4 trace, 5–8 debug, 9–12 info, 13–16 warn, 17–20
/// error, 21–24 fatal.
fn severity_level(number: i32) -> Option<Level> {
    Some(match number {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Critical,
        _ => return None,
    })
}

/// The object at `key`, made if missing (replacing a non-object).
fn object<'a>(map: &'a mut Map, key: &str) -> &'a mut Map {
    if !matches!(map.get(key), Some(Value::Object(_))) {
        map.insert(key, Value::Object(Map::new()));
    }
    match map.get_mut(key) {
        Some(Value::Object(inner)) => inner,
        _ => unreachable!("an object was just put at {key}"),
    }
}

fn key_value(kv: KeyValue) -> (String, Value) {
    let value = any(kv.value);
    (kv.key, value)
}

fn attributes(list: Vec<KeyValue>) -> Map {
    let mut map = Map::new();
    for kv in list {
        let value = any(kv.value);
        map.insert(kv.key.as_str(), value);
    }
    map
}

fn any(value: Option<AnyValue>) -> Value {
    value
        .and_then(|v| v.value)
        .map(any_value)
        .unwrap_or(Value::Null)
}

fn any_value(value: any_value::Value) -> Value {
    match value {
        any_value::Value::StringValue(s) => Value::Bytes(Bytes::from(s)),
        any_value::Value::BoolValue(b) => Value::Bool(b),
        any_value::Value::IntValue(n) => Value::Integer(n),
        any_value::Value::DoubleValue(f) => Value::Float(f),
        any_value::Value::ArrayValue(array) => {
            Value::Array(array.values.into_iter().map(|v| any(Some(v))).collect())
        }
        any_value::Value::KvlistValue(list) => Value::Object(attributes(list.values)),
        any_value::Value::BytesValue(bytes) => bytes_value(&bytes),
        any_value::Value::StringValueStrindex(index) => strindex_value(index),
    }
}

/// An `AnyValue`'s `bytes_value`: base64 text, since an event's strings are text.
pub(super) fn bytes_value(bytes: &[u8]) -> Value {
    Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// An `AnyValue`'s `string_value_strindex`: a reference into a dictionary that only the
/// profiles signal defines, kept as the number.
pub(super) fn strindex_value(index: i32) -> Value {
    Value::Integer(i64::from(index))
}

/// A trace or span id as lowercase hex text.
fn hex(bytes: &[u8]) -> Value {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        text.push(DIGITS[usize::from(b >> 4)]);
        text.push(DIGITS[usize::from(b & 0xf)]);
    }
    Value::Bytes(Bytes::from(text))
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
