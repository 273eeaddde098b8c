use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::*;
use crate::sources::otlp::decode_protobuf;

fn any(value: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

fn text(s: &str) -> Option<AnyValue> {
    any(any_value::Value::StringValue(s.into()))
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
        ..Default::default()
    }
}

/// Attributes of every OTLP value type, nested ones included.
fn every_type() -> Vec<KeyValue> {
    vec![
        kv("string", text("tea")),
        kv("int", any(any_value::Value::IntValue(-42))),
        kv("double", any(any_value::Value::DoubleValue(2.5))),
        kv("bool", any(any_value::Value::BoolValue(true))),
        kv("bytes", any(any_value::Value::BytesValue(vec![0, 1, 254]))),
        kv(
            "array",
            any(any_value::Value::ArrayValue(ArrayValue {
                values: vec![text("a").unwrap(), AnyValue { value: None }],
            })),
        ),
        kv(
            "map",
            any(any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("inner", any(any_value::Value::IntValue(7)))],
            })),
        ),
        kv("empty", None),
    ]
}

fn record(body: Option<AnyValue>, severity: (&str, i32), time: u64, observed: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: observed,
        severity_text: severity.0.into(),
        severity_number: severity.1,
        body,
        attributes: every_type(),
        dropped_attributes_count: 3,
        flags: 1,
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        event_name: "payment.done".into(),
    }
}

/// Two resources and two scopes, records with every kind of body, severity and time.
fn corpus() -> ExportLogsServiceRequest {
    let resource = |app: &str| Resource {
        attributes: vec![
            kv("service.name", text(app)),
            kv("service.instance.id", text("i-1")),
            kv("host.name", text("node-1")),
            kv("k8s.pod.name", text("pod-a")),
            kv("k8s.namespace.name", text("shop")),
            kv("k8s.deployment.name", text("checkout")),
            kv(
                "k8s.container.restart_count",
                any(any_value::Value::IntValue(2)),
            ),
            kv("deployment.environment", text("prod")),
        ],
        dropped_attributes_count: 1,
        ..Default::default()
    };
    let scope = |name: &str| InstrumentationScope {
        name: name.into(),
        version: "1.0".into(),
        attributes: every_type(),
        dropped_attributes_count: 2,
    };
    let records = vec![
        record(text("plain"), ("WARNING", 13), 1_700_000_000_000_000_001, 5),
        record(text("number only"), ("", 17), 0, 1_700_000_000_000_000_002),
        record(
            any(any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("message", text("structured")), kv("user", text("ada"))],
            })),
            ("notice", 10),
            7,
            0,
        ),
        record(any(any_value::Value::IntValue(5)), ("custom", 0), 9, 9),
        record(None, ("", 0), 0, 0),
    ];
    ExportLogsServiceRequest {
        resource_logs: ["checkout", "billing"]
            .into_iter()
            .map(|app| ResourceLogs {
                resource: Some(resource(app)),
                scope_logs: ["a", "b"]
                    .into_iter()
                    .map(|name| ScopeLogs {
                        scope: Some(scope(name)),
                        log_records: records.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    }
}

/// What the sink writes, read back by prost.
fn decoded_request(events: &[&Event]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest::decode(&request(events)[..]).expect("protobuf")
}

fn round_trip(events: &[Event]) -> Vec<Event> {
    let refs: Vec<&Event> = events.iter().collect();
    decode_protobuf(&Bytes::from(request(&refs)))
        .expect("the sink's request decodes")
        .events
}

#[test]
fn the_source_reads_back_every_field_of_what_it_made() {
    let events = decode_protobuf(&Bytes::from(corpus().encode_to_vec()))
        .unwrap()
        .events;
    assert_eq!(events.len(), 20);
    let again = round_trip(&events);
    for (before, after) in events.iter().zip(&again) {
        assert_eq!(before.fields, after.fields);
    }
    assert_eq!(again.len(), events.len());
}

#[test]
fn events_of_one_resource_and_scope_share_one_group_in_order_first_seen() {
    let mut events = decode_protobuf(&Bytes::from(corpus().encode_to_vec()))
        .unwrap()
        .events;
    // Interleave the two resources' events.
    let second = events.split_off(10);
    let mixed: Vec<Event> = events
        .into_iter()
        .zip(second)
        .flat_map(|(a, b)| [a, b])
        .collect();
    let refs: Vec<&Event> = mixed.iter().collect();
    let request = decoded_request(&refs);
    assert_eq!(request.resource_logs.len(), 2);
    for resource_logs in &request.resource_logs {
        assert_eq!(resource_logs.scope_logs.len(), 2);
        for scope_logs in &resource_logs.scope_logs {
            assert_eq!(scope_logs.log_records.len(), 5);
        }
    }
    let attribute = |r: &ResourceLogs| {
        r.resource.as_ref().unwrap().attributes[0]
            .value
            .clone()
            .and_then(|v| v.value)
    };
    assert_eq!(
        attribute(&request.resource_logs[0]),
        Some(any_value::Value::StringValue("checkout".into()))
    );
}

fn event(json: &str) -> Event {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let Value::Object(fields) = serde_json::from_value::<Value>(value).unwrap() else {
        panic!("an object");
    };
    Event::new(fields)
}

#[test]
fn fields_without_an_otlp_place_travel_in_the_body() {
    let events = vec![event(
        r#"{"message":"hi","trace_id":"not hex","attributes":5,"resource":{"other":1},
            "kubernetes":{"a.b":1},"scope":"s","custom":{"deep":[1,"x"]},"timestamp":"yesterday"}"#,
    )];
    let again = round_trip(&events);
    assert_eq!(again[0].fields, events[0].fields);
}

#[test]
fn a_level_becomes_the_severity() {
    let mut events = vec![event(
        r#"{"message":"disk full","level":"warn","app":"db"}"#,
    )];
    let refs: Vec<&Event> = events.iter().collect();
    let request = decoded_request(&refs);
    let record = &request.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(
        (record.severity_text.as_str(), record.severity_number),
        ("warn", 13)
    );
    assert_eq!(record.body, text("disk full"));
    // A level a transform changed wins over the severity the event came with.
    events[0].insert("severity_text", "INFO");
    events[0].insert("severity_number", Value::Integer(9));
    let again = round_trip(&events);
    assert_eq!(again[0].get("level"), Some(&Value::from("warn")));
    // A level the source could not name is kept as a field.
    let odd = vec![event(r#"{"message":"x","level":"loud"}"#)];
    assert_eq!(round_trip(&odd)[0].fields, odd[0].fields);
}

#[test]
fn kubernetes_keys_become_the_conventions_attributes() {
    for (key, attribute) in [
        ("pod_name", "k8s.pod.name"),
        ("pod_namespace", "k8s.namespace.name"),
        ("deployment_name", "k8s.deployment.name"),
        ("container_restart_count", "k8s.container.restart_count"),
        ("namespace_name", "k8s.namespace_name"),
        ("pod_labels", "k8s.pod_labels"),
    ] {
        assert_eq!(k8s_attribute(key), attribute, "{key}");
    }
}

/// The bytes are those prost writes for the message they decode to: fields in the order
/// of their numbers, lengths in their fewest bytes (here up to three, for a 20 KB message),
/// defaults left out but a oneof's member always written.
#[test]
fn the_request_is_written_as_prost_writes_it() {
    let mut events = decode_protobuf(&Bytes::from(corpus().encode_to_vec()))
        .unwrap()
        .events;
    events.push(event(
        r#"{"message":"hi","trace_id":"not hex","attributes":5,"resource":{"other":1},
            "kubernetes":{"a.b":1},"scope":"s","custom":{"deep":[1,"x",null,2.5,true,{"k":""}]},
            "timestamp":"yesterday"}"#,
    ));
    events.push(event(r#"{"message":"","n":-3,"b":false,"z":0}"#));
    events.push(event(r#"{}"#));
    let long = "x".repeat(20_000);
    events.push(event(&format!(r#"{{"message":"{long}","app":"db"}}"#)));
    let refs: Vec<&Event> = events.iter().collect();
    let written = request(&refs);
    assert_eq!(decoded_request(&refs).encode_to_vec(), written);
    assert!(written.len() > 20_000);
}
