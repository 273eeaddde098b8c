use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;

fn text(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
        ..Default::default()
    }
}

fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", text("checkout")),
                    kv("service.instance.id", text("pod-7")),
                    kv("host.name", text("node-1")),
                    kv("k8s.pod.name", text("checkout-abc")),
                    kv("k8s.namespace.name", text("shop")),
                    kv("k8s.deployment.name", text("checkout")),
                    kv("deployment.environment", text("prod")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "io.shop.payments".into(),
                    version: "1.2.0".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn field<'a>(event: &'a Event, path: &str) -> Option<&'a Value> {
    crate::condition::FieldPath::parse(path)
        .unwrap()
        .get(&event.fields)
}

fn text_of(event: &Event, path: &str) -> Option<String> {
    field(event, path).map(Value::to_text)
}

#[test]
fn a_record_maps_by_the_semantic_conventions() {
    let record = LogRecord {
        time_unix_nano: 1_795_000_000_123_456_789,
        observed_time_unix_nano: 1_795_000_001_000_000_000,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: text("payment declined"),
        attributes: vec![
            kv(
                "http.status_code",
                Some(AnyValue {
                    value: Some(any_value::Value::IntValue(402)),
                }),
            ),
            kv(
                "retry",
                Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(false)),
                }),
            ),
        ],
        trace_id: (1..=16).collect(),
        span_id: vec![0xab; 8],
        flags: 1,
        event_name: "payment.declined".into(),
        ..Default::default()
    };
    let body = request(vec![record]).encode_to_vec();
    let events = decode_protobuf(&Bytes::from(body)).unwrap().events;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    let expect = [
        ("message", "payment declined"),
        ("level", "error"),
        ("severity_text", "ERROR"),
        ("severity_number", "17"),
        ("timestamp", "2026-11-18T11:06:40.123456Z"),
        ("observed_timestamp", "2026-11-18T11:06:41.000000Z"),
        ("trace_id", "0102030405060708090a0b0c0d0e0f10"),
        ("span_id", "abababababababab"),
        ("trace_flags", "1"),
        ("event_name", "payment.declined"),
        ("app", "checkout"),
        ("instance", "pod-7"),
        ("host", "node-1"),
        ("kubernetes.pod_name", "checkout-abc"),
        ("kubernetes.pod_namespace", "shop"),
        ("kubernetes.deployment_name", "checkout"),
        ("resource.attributes.\"deployment.environment\"", "prod"),
        ("scope.name", "io.shop.payments"),
        ("scope.version", "1.2.0"),
        ("attributes.\"http.status_code\"", "402"),
        ("attributes.retry", "false"),
    ];
    for (path, value) in expect {
        assert_eq!(
            text_of(e, path).as_deref(),
            Some(value),
            "{path}: {:?}",
            e.fields
        );
    }
    assert_eq!(
        field(e, "attributes.\"http.status_code\""),
        Some(&Value::Integer(402)),
        "numbers stay numbers"
    );
}

#[test]
fn bodies_severities_and_times_of_every_shape() {
    let records = vec![
        // A structured body becomes fields; the level comes from the number.
        LogRecord {
            severity_number: 13,
            observed_time_unix_nano: 1_795_000_000_000_000_000,
            body: Some(AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![
                        kv("message", text("slow query")),
                        kv(
                            "ms",
                            Some(AnyValue {
                                value: Some(any_value::Value::DoubleValue(812.5)),
                            }),
                        ),
                    ],
                })),
            }),
            ..Default::default()
        },
        // An array body is kept as JSON text; bytes as base64.
        LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![text("a").unwrap(), text("b").unwrap()],
                })),
            }),
            attributes: vec![kv(
                "raw",
                Some(AnyValue {
                    value: Some(any_value::Value::BytesValue(vec![0, 255])),
                }),
            )],
            ..Default::default()
        },
        // No severity, no time, an all-zero trace id: none of them invented.
        LogRecord {
            body: text("plain"),
            trace_id: vec![0; 16],
            ..Default::default()
        },
    ];
    let events = decode_protobuf(&Bytes::from(request(records).encode_to_vec()))
        .unwrap()
        .events;
    assert_eq!(
        text_of(&events[0], "message").as_deref(),
        Some("slow query")
    );
    assert_eq!(field(&events[0], "ms"), Some(&Value::Float(812.5)));
    assert_eq!(text_of(&events[0], "level").as_deref(), Some("warn"));
    assert_eq!(
        text_of(&events[0], "timestamp").as_deref(),
        Some("2026-11-18T11:06:40.000000Z"),
        "observed time when the record has none"
    );
    assert_eq!(
        text_of(&events[1], "message").as_deref(),
        Some(r#"["a","b"]"#)
    );
    assert_eq!(
        text_of(&events[1], "attributes.raw").as_deref(),
        Some("AP8=")
    );
    for absent in ["level", "timestamp", "trace_id", "severity_text"] {
        assert_eq!(field(&events[2], absent), None, "{absent}");
    }
    assert_eq!(text_of(&events[2], "app").as_deref(), Some("checkout"));
}

/// OTLP's JSON mapping, as the specification's example writes it: camelCase names, hex
/// ids, 64-bit integers as strings.
#[test]
fn json_mapping() {
    let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},
      "scopeLogs":[{"scope":{"name":"my.library","version":"1.0.0"},
      "logRecords":[{"timeUnixNano":"1544712660300000000","observedTimeUnixNano":"1544712660300000000",
        "severityNumber":10,"severityText":"Information","traceId":"5b8efff798038103d269b633813fc60c",
        "spanId":"eee19b7ec3c1b174","body":{"stringValue":"Example log record"},
        "attributes":[{"key":"string.attribute","value":{"stringValue":"some string"}},
                      {"key":"int.attribute","value":{"intValue":"10"}}]}]}]}]}"#;
    let events = decode_json(body).unwrap().events;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(text_of(e, "message").as_deref(), Some("Example log record"));
    assert_eq!(text_of(e, "level").as_deref(), Some("info"));
    assert_eq!(text_of(e, "app").as_deref(), Some("my.service"));
    assert_eq!(
        text_of(e, "trace_id").as_deref(),
        Some("5b8efff798038103d269b633813fc60c")
    );
    assert_eq!(text_of(e, "span_id").as_deref(), Some("eee19b7ec3c1b174"));
    assert_eq!(
        text_of(e, "timestamp").as_deref(),
        Some("2018-12-13T14:51:00.300000Z")
    );
    assert_eq!(
        field(e, "attributes.\"int.attribute\""),
        Some(&Value::Integer(10))
    );
}

#[test]
fn malformed_bodies_are_refused_with_a_reason() {
    let error = decode_protobuf(&Bytes::from_static(b"\xff\xff\xff"))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("invalid OTLP protobuf"), "{error}");
    let error = decode_json(b"{\"resourceLogs\": 5}")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("invalid OTLP JSON"), "{error}");
    assert!(decode_json(b"{}").unwrap().events.is_empty());
}

#[test]
fn a_record_with_a_time_past_2262_is_unmappable_not_silently_timeless() {
    let records = vec![
        LogRecord {
            time_unix_nano: u64::MAX,
            body: text("far future"),
            ..Default::default()
        },
        LogRecord {
            observed_time_unix_nano: 1,
            body: text("now"),
            ..Default::default()
        },
    ];
    let decoded = decode_protobuf(&Bytes::from(request(records).encode_to_vec())).unwrap();
    assert_eq!(decoded.events.len(), 1);
    assert_eq!(decoded.unmappable.len(), 1);
    let (event, reason) = &decoded.unmappable[0];
    assert_eq!(event.get("message"), Some(&Value::from("far future")));
    assert_eq!(*reason, TIME_OUT_OF_RANGE);
}
