//! Tests of the event record encoding: round trips, totality on hostile input, timing.

use std::net::{SocketAddr, SocketAddrV6};
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::event::{Event, EventMeta, Value};
use proptest::prelude::*;

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Integer),
        // NaN never equals itself; its bits are checked in a separate test.
        any::<f64>()
            .prop_filter("not nan", |f| !f.is_nan())
            .prop_map(Value::Float),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bytes(b.into())),
        any::<i64>().prop_map(Value::Timestamp),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[a-z.]{0,30}", inner), 0..6).prop_map(|entries| {
                Value::Object(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
            }),
        ]
    })
}

fn event_strategy() -> impl Strategy<Value = Event> {
    let peer = prop_oneof![
        Just(None),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| Some(SocketAddr::from((ip, port)))),
        (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(ip, port, f, s)| { Some(SocketAddr::V6(SocketAddrV6::new(ip.into(), port, f, s))) }
        ),
    ];
    (
        proptest::collection::vec(("\\PC{0,30}", value_strategy()), 0..12),
        proptest::option::of("[a-z_]{1,20}"),
        any::<i64>(),
        peer,
    )
        .prop_map(|(fields, source, received_at, peer)| Event {
            fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            meta: EventMeta {
                source: source.map(|s| Arc::from(s.as_str())),
                received_at,
                peer,
                ack: None,
            },
        })
}

fn assert_same(a: &Event, b: &Event) {
    assert_eq!(a.fields, b.fields);
    assert_eq!(a.meta.source, b.meta.source);
    assert_eq!(a.meta.received_at, b.meta.received_at);
    assert_eq!(a.meta.peer, b.meta.peer);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trips(event in event_strategy()) {
        let mut out = Vec::new();
        encode_event(&event, &mut out);
        assert_same(&decode_event(&out).unwrap(), &event);
        assert_same(&decode_event_shared(&Bytes::from(out)).unwrap(), &event);
    }

    #[test]
    fn every_strict_prefix_is_an_error(event in event_strategy()) {
        let mut out = Vec::new();
        encode_event(&event, &mut out);
        for cut in 0..out.len() {
            prop_assert!(decode_event(&out[..cut]).is_err(), "prefix {cut} of {}", out.len());
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_event(&bytes);
        let mut with_header = vec![VERSION, 3, 0];
        with_header.extend_from_slice(&bytes);
        let _ = decode_event(&with_header);
    }
}

#[test]
fn keeps_what_json_would_lose() {
    let mut event = Event::default();
    event.insert("ts", Value::Timestamp(1_700_000_000_123_456_789));
    event.insert(
        "raw",
        Value::Bytes(Bytes::from_static(b"\xff\xfe not utf-8")),
    );
    event.insert("one", Value::Integer(1));
    event.insert("one_float", Value::Float(1.0));
    event.insert("nan", Value::Float(f64::NAN));
    let mut out = Vec::new();
    encode_event(&event, &mut out);
    let back = decode_event(&out).unwrap();
    assert_eq!(
        back.get("ts"),
        Some(&Value::Timestamp(1_700_000_000_123_456_789))
    );
    assert_eq!(back.get("raw"), event.get("raw"));
    assert_eq!(back.get("one"), Some(&Value::Integer(1)));
    assert_eq!(back.get("one_float"), Some(&Value::Float(1.0)));
    assert!(matches!(back.get("nan"), Some(Value::Float(f)) if f.to_bits() == f64::NAN.to_bits()));
}

#[test]
fn hostile_inputs_are_errors_without_big_allocations() {
    let table: &[(&str, Vec<u8>, RecordError)] = &[
        ("empty", vec![], RecordError::Truncated),
        ("version", vec![9, 0, 0, 0], RecordError::UnknownVersion(9)),
        // A field count of 2^62 with nothing behind it.
        (
            "huge count",
            vec![
                1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40,
            ],
            RecordError::Truncated,
        ),
        (
            "huge string",
            vec![1, 0, 0, 1, 1, b'k', TAG_BYTES, 0xff, 0xff, 0xff, 0xff, 0x0f],
            RecordError::Truncated,
        ),
        (
            "varint overflow",
            vec![
                1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            RecordError::VarintOverflow,
        ),
        (
            "bad tag",
            vec![1, 0, 0, 1, 1, b'k', 42],
            RecordError::UnknownTag(42),
        ),
        (
            "bad key",
            vec![1, 0, 0, 1, 1, 0xff, TAG_NULL],
            RecordError::InvalidUtf8,
        ),
        (
            "bad peer",
            vec![1, FLAG_PEER, 0, 5],
            RecordError::UnknownPeerKind(5),
        ),
        (
            "trailing",
            vec![1, 0, 0, 0, 0],
            RecordError::TrailingBytes(1),
        ),
    ];
    for (name, bytes, expected) in table {
        assert_eq!(decode_event(bytes).err().as_ref(), Some(expected), "{name}");
    }
    // Nesting bomb: arrays of one element, 100,000 deep.
    let mut bomb = vec![1, 0, 0, 1, 1, b'k'];
    for _ in 0..100_000 {
        bomb.extend_from_slice(&[TAG_ARRAY, 1]);
    }
    bomb.push(TAG_NULL);
    assert_eq!(decode_event(&bomb).err(), Some(RecordError::TooDeep));
}

#[test]
fn too_deep_values_encode_as_null_and_still_decode() {
    let mut value = Value::Integer(1);
    for _ in 0..(MAX_DEPTH + 10) {
        value = Value::Array(vec![value]);
    }
    let mut event = Event::default();
    event.insert("deep", value);
    let mut out = Vec::new();
    encode_event(&event, &mut out);
    assert!(decode_event(&out).is_ok());
}

#[test]
fn duplicate_keys_in_garbage_keep_the_last() {
    let bytes = [1, 0, 0, 2, 1, b'k', TAG_FALSE, 1, b'k', TAG_TRUE];
    let event = decode_event(&bytes).unwrap();
    assert_eq!(event.fields.len(), 1);
    assert_eq!(event.get("k"), Some(&Value::Bool(true)));
}

/// A typical 10-field event. Run with
/// `cargo test --release -- --ignored --nocapture record_timing` for numbers.
#[test]
#[ignore = "timing: run in release"]
fn record_timing() {
    let mut event = Event::from_message(Bytes::from_static(
        b"GET /api/v1/users/42 HTTP/1.1 200 512 \"-\" \"curl/8.0\"",
    ));
    event.insert("timestamp", Value::Timestamp(1_700_000_000_000_000_000));
    event.insert("level", "info");
    event.insert("app", "web");
    event.insert("instance", "web.1");
    event.insert("host", "ip-10-0-0-1");
    event.insert("status", 200i64);
    event.insert("duration_ms", 12.5f64);
    event.insert("path", "/api/v1/users/42");
    event.insert("method", "GET");
    event.meta.source = Some(Arc::from("http_in"));
    event.meta.received_at = 1_700_000_000_000_000_001;
    event.meta.peer = Some(SocketAddr::from(([10, 0, 0, 2], 51234)));
    let n = 1_000_000;
    let mut out = Vec::with_capacity(512);
    let start = std::time::Instant::now();
    for _ in 0..n {
        out.clear();
        encode_event(std::hint::black_box(&event), &mut out);
    }
    let encode_ns = start.elapsed().as_nanos() / n;
    let shared = Bytes::from(out.clone());
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(decode_event(std::hint::black_box(&out)).unwrap());
    }
    let decode_ns = start.elapsed().as_nanos() / n;
    let start = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(decode_event_shared(std::hint::black_box(&shared)).unwrap());
    }
    let shared_ns = start.elapsed().as_nanos() / n;
    println!(
        "10-field event, {} bytes: encode {encode_ns} ns, decode {decode_ns} ns (copying), {shared_ns} ns (shared)",
        out.len()
    );
}
