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
//! Nothing is dropped silently: a record's every part lands in a field. A record with a time
//! an event cannot hold (past the year 2262) is unmappable: the source rejects it in its
//! answer's `partial_success` and sends it to dead-letter. A request that is not a valid
//! export request is refused whole, with the decoder's reason.

use base64::Engine;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;

use crate::event::{fields, Event, Map, Value};
use crate::parse::Level;

/// Why a body is not an export request.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
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

/// Why a record cannot become an event: a time past what an event holds (year 2262).
pub const TIME_OUT_OF_RANGE: &str =
    "time_unix_nano or observed_time_unix_nano is past the year 2262";

/// The events of a protobuf `ExportLogsServiceRequest`.
pub fn decode_protobuf(body: &[u8]) -> Result<Records, OtlpError> {
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

fn events_of(request: ExportLogsServiceRequest) -> Records {
    let mut records = Records::default();
    for resource_logs in request.resource_logs {
        // What every record of this resource shares, built once.
        let mut shared = Map::new();
        if let Some(resource) = resource_logs.resource {
            resource_fields(resource.attributes, &mut shared);
            if resource.dropped_attributes_count > 0 {
                object(&mut shared, "resource").insert(
                    "dropped_attributes_count",
                    Value::Integer(i64::from(resource.dropped_attributes_count)),
                );
            }
        }
        for scope_logs in resource_logs.scope_logs {
            let mut scoped = shared.clone();
            if let Some(scope) = scope_logs.scope {
                let mut map = Map::new();
                if !scope.name.is_empty() {
                    map.insert("name", Value::from(scope.name.as_str()));
                }
                if !scope.version.is_empty() {
                    map.insert("version", Value::from(scope.version.as_str()));
                }
                if !scope.attributes.is_empty() {
                    map.insert("attributes", Value::Object(attributes(scope.attributes)));
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
            }
            for record in scope_logs.log_records {
                let in_range = [record.time_unix_nano, record.observed_time_unix_nano]
                    .iter()
                    .all(|&t| i64::try_from(t).is_ok());
                let event = Event::new(record_fields(record, scoped.clone()));
                if in_range {
                    records.events.push(event);
                } else {
                    records.unmappable.push((event, TIME_OUT_OF_RANGE));
                }
            }
        }
    }
    records
}

fn record_fields(record: LogRecord, mut map: Map) -> Map {
    match record.body.and_then(|b| b.value) {
        Some(any_value::Value::KvlistValue(list)) => {
            for kv in list.values {
                let value = any(kv.value);
                map.insert(kv.key.as_str(), value);
            }
        }
        Some(any_value::Value::StringValue(text)) => {
            map.insert(fields::MESSAGE, Value::Bytes(Bytes::from(text)));
        }
        Some(other) => {
            let value = any_value(other);
            map.insert(fields::MESSAGE, Value::from(value.to_text()));
        }
        None => {}
    }
    if let Some(level) = level_of(&record.severity_text, record.severity_number) {
        map.insert(fields::LEVEL, level.to_value());
    }
    if !record.severity_text.is_empty() {
        map.insert("severity_text", Value::from(record.severity_text.as_str()));
    }
    if record.severity_number != 0 {
        map.insert(
            "severity_number",
            Value::Integer(i64::from(record.severity_number)),
        );
    }
    let time = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|&t| t != 0);
    if let Some(nanos) = time.and_then(|t| i64::try_from(t).ok()) {
        map.insert(fields::TIMESTAMP, Value::Timestamp(nanos));
    }
    if let Ok(observed) = i64::try_from(record.observed_time_unix_nano) {
        if observed != 0 {
            map.insert("observed_timestamp", Value::Timestamp(observed));
        }
    }
    if record.trace_id.iter().any(|&b| b != 0) {
        map.insert("trace_id", Value::from(hex(&record.trace_id).as_str()));
    }
    if record.span_id.iter().any(|&b| b != 0) {
        map.insert("span_id", Value::from(hex(&record.span_id).as_str()));
    }
    if record.flags != 0 {
        map.insert("trace_flags", Value::Integer(i64::from(record.flags)));
    }
    if !record.event_name.is_empty() {
        map.insert("event_name", Value::from(record.event_name.as_str()));
    }
    if !record.attributes.is_empty() {
        map.insert("attributes", Value::Object(attributes(record.attributes)));
    }
    if record.dropped_attributes_count > 0 {
        map.insert(
            "dropped_attributes_count",
            Value::Integer(i64::from(record.dropped_attributes_count)),
        );
    }
    map
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

/// The resource's attributes: the well-known ones as Sluice's fields, the rest kept.
fn resource_fields(attributes: Vec<KeyValue>, map: &mut Map) {
    let mut rest = Map::new();
    for kv in attributes {
        let key = kv.key;
        let value = any(kv.value);
        let renamed = match key.as_str() {
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
            object(map, "kubernetes").insert(name.as_str(), value);
        } else {
            rest.insert(key.as_str(), value);
        }
    }
    if !rest.is_empty() {
        object(map, "resource").insert("attributes", Value::Object(rest));
    }
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
        any_value::Value::BytesValue(bytes) => Value::from(
            base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .as_str(),
        ),
        // A reference into a dictionary that only the profiles signal defines.
        any_value::Value::StringValueStrindex(index) => Value::Integer(i64::from(index)),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    text
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
