//! Parser and decoder targets: `parse::{json, logfmt, syslog, access_log, auto, detect,
//! normalize, parse_timestamp, leading_timestamp}` and the `Decoder` that joins framing and
//! decoding.
//!
//! Every `decode_*` target takes the input both as one line (the parser directly) and as a
//! stream (a `Decoder` with newline framing), and asserts for every parser:
//! - the `Decoder` yields, per frame, exactly what the parser returns for that frame: its
//!   fields, or a `parse_error` bad frame that carries the frame and the parser's error;
//! - a trailing `\r\n` changes nothing (parsers ignore line terminators);
//! - maps never hold a key twice, at any depth;
//! - error text is short, lowercase and free of control characters.
//!
//! and then the format's own invariants, documented at each function.

use bytes::{Bytes, BytesMut};
use sluice::codec::{
    BadFrameReason, Decoded, Decoder, DecodingConfig, FrameLimits, FramingConfig, OversizePolicy,
};
use sluice::event::{format_timestamp, Event, Map, Value};
use sluice::parse::{self, Format, Level, ParseError, TimestampSource};
use sluice::sinks::encoding::Encoding;

use crate::check::{assert_parse_error, assert_unique_keys, contains_slice};

/// A fixed "now" for year-less timestamp formats, so that a run is reproducible:
/// 2026-06-15T12:00:00Z.
const NOW: i64 = 1_781_524_800_000_000_000;

type Parser = fn(&Bytes) -> Result<Map, ParseError>;

// === JSON ===

/// JSON: we accept exactly the objects `serde_json::from_slice::<serde_json::Value>`
/// accepts, and our map re-encoded with `serde_json::to_vec` parses back to a value equal to
/// serde_json's, with two documented exceptions: integers above `i64::MAX` become floats
/// (`Value` has no u64), and floats are compared to within a few ULPs, because serde_json
/// without `float_roundtrip` does not always read back the shortest representation it
/// writes to the same `f64`. Repeated keys keep the last value in both.
pub fn decode_json(data: &[u8]) {
    common(DecodingConfig::Json, data, |line| parse::json(line));
    check_json_line(data);
}

fn check_json_line(line: &[u8]) {
    let ours = parse::json(line);
    let reference = serde_json::from_slice::<serde_json::Value>(line);
    match (&ours, &reference) {
        (Ok(map), Ok(serde_json::Value::Object(_))) => {
            let encoded = serde_json::to_vec(map).expect("a map always serialises");
            let back: serde_json::Value =
                serde_json::from_slice(&encoded).expect("our json output parses");
            let reference = reference.as_ref().expect("checked above");
            assert!(
                json_eq(&back, reference),
                "round trip differs:\nours:       {back}\nserde_json: {reference}"
            );
        }
        (Ok(map), _) => panic!("accepted what serde_json does not take as an object: {map:?}"),
        (Err(e), Ok(serde_json::Value::Object(_))) => {
            panic!("rejected an object serde_json accepts: {e}")
        }
        (Err(_), _) => {}
    }
}

/// Structural equality with the number rules in [`decode_json`]'s doc.
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => {
                let (f, g) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                f == g || (f - g).abs() <= f.abs().max(g.abs()) * 4.0 * f64::EPSILON
            }
        },
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

// === logfmt ===

/// logfmt on arbitrary bytes: a parsed line has at least one key; keys are non-empty runs
/// of bytes above space other than `=` and `"`; values are `true` (a flag) or strings, and
/// in a line without backslashes every string value is a slice of the line.
pub fn decode_logfmt(data: &[u8]) {
    common(DecodingConfig::Logfmt, data, parse::logfmt_bytes);
    let Ok(map) = parse::logfmt(data) else {
        return;
    };
    assert!(!map.is_empty());
    let escapes = data.contains(&b'\\');
    for (key, value) in map.iter() {
        assert!(!key.is_empty());
        assert!(
            key.bytes().all(|b| b > b' ' && b != b'=' && b != b'"'),
            "bad key {key:?}"
        );
        match value {
            Value::Bool(true) => {}
            Value::Bytes(b) => assert!(escapes || contains_slice(data, b), "value not in line"),
            other => panic!("logfmt value {other:?}"),
        }
    }
}

/// logfmt round trip: pairs generated from the input, written as a logfmt writer would
/// (bare when the value allows, else quoted with `\" \\ \n \t \r` escaped), parse back to
/// the same fields, repeated keys keeping the last value at the first one's position.
pub fn logfmt_roundtrip(data: &[u8]) {
    const KEY_CHARS: &[&str] = &[
        "a", "b", "c", "k", "x", "_", ".", "-", "@", "/", "1", "Z", "é", "ü", "{", "\u{7f}",
    ];
    let mut line = Vec::new();
    let mut expected: Vec<(String, Value)> = Vec::new();
    let mut rest = data;
    while let [control, tail @ ..] = rest {
        let key_len = 1 + usize::from(control >> 4) % 4;
        let Some((key_bytes, tail)) = tail.split_at_checked(key_len) else {
            break;
        };
        let key: String = key_bytes
            .iter()
            .map(|b| KEY_CHARS[usize::from(b % 16)])
            .collect();
        let value_len = usize::from(tail.first().copied().unwrap_or(0) % 12);
        let tail = tail.get(1..).unwrap_or_default();
        let (raw, tail) = tail.split_at(value_len.min(tail.len()));
        rest = tail;
        if !line.is_empty() {
            line.push(if control & 8 == 0 { b' ' } else { b'\t' });
        }
        line.extend_from_slice(key.as_bytes());
        let value = match control % 4 {
            0 => Value::Bool(true),
            1 => {
                // Bare: no byte at or below space, and no leading quote.
                let bare: Vec<u8> = raw.iter().copied().filter(|b| *b > b' ').collect();
                // A leading quote would open a quoted value.
                let quotes = bare.iter().take_while(|b| **b == b'"').count();
                let bare = &bare[quotes..];
                line.push(b'=');
                line.extend_from_slice(bare);
                Value::Bytes(Bytes::copy_from_slice(bare))
            }
            _ => {
                line.extend_from_slice(b"=\"");
                for &b in raw {
                    match b {
                        b'"' => line.extend_from_slice(b"\\\""),
                        b'\\' => line.extend_from_slice(b"\\\\"),
                        b'\n' => line.extend_from_slice(b"\\n"),
                        b'\t' => line.extend_from_slice(b"\\t"),
                        b'\r' => line.extend_from_slice(b"\\r"),
                        b => line.push(b),
                    }
                }
                line.push(b'"');
                Value::Bytes(Bytes::copy_from_slice(raw))
            }
        };
        match expected.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => expected.push((key, value)),
        }
    }
    let parsed = parse::logfmt(&line);
    if expected.is_empty() {
        assert!(parsed.is_err(), "an empty line parsed");
        return;
    }
    let map = parsed.unwrap_or_else(|e| panic!("{e} in {:?}", String::from_utf8_lossy(&line)));
    let got: Vec<(String, Value)> = map
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(got, expected, "line {:?}", String::from_utf8_lossy(&line));
}

// === syslog ===

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Syslog: `facility` and `severity` are present exactly when the line starts with a valid
/// `<PRI>` (0 to 191) and a line starting with any other `<` is rejected; `timestamp` is a
/// timestamp value; `message` is a suffix of the line; the header fields are slices of the
/// line without spaces.
pub fn decode_syslog(data: &[u8]) {
    common(DecodingConfig::Syslog, data, parse::syslog_bytes);
    let line = trim_line_end(data);
    let pri = valid_pri(line);
    let Ok(map) = parse::syslog(data) else {
        return;
    };
    assert!(
        pri || line.first() != Some(&b'<'),
        "accepted an invalid priority"
    );
    assert_eq!(map.contains_key("facility"), pri);
    assert_eq!(map.contains_key("severity"), pri);
    if let Some(severity) = map.get("severity") {
        assert!(SEVERITIES.iter().any(|s| Some(*s) == severity.as_str()));
    }
    if let Some(ts) = map.get("timestamp") {
        assert!(matches!(ts, Value::Timestamp(_)), "timestamp {ts:?}");
    }
    if let Some(message) = map.get("message") {
        let message = message.as_bytes().expect("message is bytes");
        assert!(
            line.ends_with(message),
            "message is not the end of the line"
        );
        assert!(!message.is_empty());
    }
    for field in ["host", "app", "proc_id", "msgid", "instance"] {
        if let Some(value) = map.get(field) {
            let value = value.as_bytes().expect("header fields are bytes");
            assert!(
                !value.is_empty() && !value.contains(&b' '),
                "{field} {value:?}"
            );
            assert!(contains_slice(line, value));
        }
    }
}

fn valid_pri(line: &[u8]) -> bool {
    let digits = line
        .iter()
        .skip(1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    line.first() == Some(&b'<')
        && (1..=3).contains(&digits)
        && line.get(1 + digits) == Some(&b'>')
        && line[1..1 + digits]
            .iter()
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'))
            <= 191
}

// === access log ===

/// Access logs: `status` is an integer in 100..=999, `size` a non-negative integer,
/// `timestamp` always present, no `message` (the raw line stays the message), `method`,
/// `path` and `protocol` all or none (and then no `request`), text fields are slices of the
/// line and `-` is never stored.
pub fn decode_access_log(data: &[u8]) {
    common(DecodingConfig::Bytes, data, |line| {
        parse::access_log_bytes(line)
    });
    let line = trim_line_end(data);
    let Ok(map) = parse::access_log(data) else {
        return;
    };
    match map.get("status") {
        Some(Value::Integer(s)) => assert!((100..=999).contains(s)),
        other => panic!("status {other:?}"),
    }
    match map.get("size") {
        None => {}
        Some(Value::Integer(s)) => assert!(*s >= 0),
        other => panic!("size {other:?}"),
    }
    assert!(map.contains_key("timestamp"));
    assert!(!map.contains_key("message"));
    let request_parts = ["method", "path", "protocol"].map(|k| map.contains_key(k));
    assert!(
        request_parts == [true; 3] || request_parts == [false; 3],
        "{request_parts:?}"
    );
    assert!(!(request_parts[0] && map.contains_key("request")));
    for field in [
        "client", "ident", "user", "method", "path", "protocol", "request", "referrer", "agent",
    ] {
        if let Some(value) = map.get(field) {
            let value = value.as_bytes().expect("text fields are bytes");
            assert!(contains_slice(line, value), "{field} not in line");
            assert_ne!(&value[..], b"-", "{field} stored as `-`");
        }
    }
}

// === auto, normalize, encoding ===

/// `auto` never fails. Per line: `detect` says which parser it used and its map is exactly
/// that parser's result (plain text: `{message: line}`); only JSON can yield no fields
/// (`{}`). Then `normalize` and the sink encodings on the resulting event.
pub fn decode_auto(data: &[u8]) {
    common(DecodingConfig::Auto, data, |line| {
        Ok(parse::auto(line.clone()))
    });
    let line = Bytes::copy_from_slice(data);
    let (format, map) = parse::detect(line.clone());
    assert_eq!(parse::auto(line.clone()), map);
    let trimmed = trim_line_end(data);
    match format {
        Format::Text => {
            let mut text = Map::new();
            text.insert("message", Value::Bytes(Bytes::copy_from_slice(trimmed)));
            assert_eq!(map, text);
        }
        Format::Json => assert_eq!(parse::json(data).ok(), Some(map.clone())),
        Format::Syslog => assert_eq!(parse::syslog(data).ok(), Some(map.clone())),
        Format::AccessLog => assert_eq!(parse::access_log(data).ok(), Some(map.clone())),
        Format::Logfmt => assert_eq!(parse::logfmt(data).ok(), Some(map.clone())),
    }
    assert!(
        format == Format::Json || !map.is_empty(),
        "{format:?} yielded no fields"
    );

    for received_at in [0, NOW] {
        let mut event = Event::new(map.clone());
        event.meta.received_at = received_at;
        check_normalize(&mut event);
        check_encodings(&event);
    }
}

/// `normalize` only renames `msg` to `message` (when there is no `message`), sets
/// `timestamp` and `level`, and leaves every other field as it was. The level it reports is
/// the `level` field's value; an unrecognised `level` stays untouched. It is idempotent.
fn check_normalize(event: &mut Event) {
    let before = event.fields.clone();
    let normalized = parse::normalize(event);
    let after = &event.fields;
    assert_unique_keys(after);
    let renamed_msg = before.contains_key("msg") && !before.contains_key("message");
    for (key, value) in before.iter() {
        match key.as_str() {
            "msg" if renamed_msg => {
                assert!(!after.contains_key("msg"));
                assert_eq!(after.get("message"), Some(value));
            }
            "timestamp" | "level" => assert!(after.contains_key(key)),
            _ => assert_eq!(after.get(key), Some(value), "field {key} changed"),
        }
    }
    // A bare text line may also gain the source fields its layout carries (logcat's pid,
    // glog's file…): each a slice of the message.
    let message = before.get("message").and_then(Value::as_bytes);
    for (key, value) in after.iter() {
        let source_field = matches!(
            key.as_str(),
            "pid" | "tid" | "component" | "file" | "line" | "logger" | "thread"
        ) && message.is_some_and(|m| {
            value
                .as_bytes()
                .is_some_and(|v| !v.is_empty() && m.windows(v.len()).any(|w| w == &v[..]))
        });
        assert!(
            before.contains_key(key)
                || matches!(key.as_str(), "timestamp" | "level")
                || (key == "message" && renamed_msg)
                || source_field,
            "normalize added {key}"
        );
    }
    match normalized.timestamp {
        TimestampSource::Missing => {
            assert_eq!(event.meta.received_at, 0);
            assert_eq!(after.get("timestamp"), before.get("timestamp"));
        }
        TimestampSource::ReceivedAt => {
            assert_eq!(
                after.get("timestamp"),
                Some(&Value::Timestamp(event.meta.received_at))
            );
        }
        TimestampSource::Field | TimestampSource::Message => {
            assert!(matches!(after.get("timestamp"), Some(Value::Timestamp(_))));
        }
        TimestampSource::ReadAt => {
            assert!(before.contains_key("read_at"));
            assert!(matches!(after.get("timestamp"), Some(Value::Timestamp(_))));
        }
    }
    match normalized.level {
        Some(level) => {
            assert!(Level::ALL.contains(&level));
            assert_eq!(
                after.get("level").and_then(Value::as_str),
                Some(level.as_str())
            );
        }
        None => assert_eq!(after.get("level"), before.get("level")),
    }

    let once = event.fields.clone();
    let again = parse::normalize(event);
    assert_eq!(event.fields, once, "normalize is not idempotent");
    assert_eq!(again.level, normalized.level);
}

/// `json` writes one JSON object per line with every field; `text` writes the message as it
/// arrived, or JSON when there is none.
fn check_encodings(event: &Event) {
    let mut json = Vec::new();
    Encoding::Json.encode(event, &mut json);
    assert_eq!(json.pop(), Some(b'\n'));
    assert!(!json.contains(&b'\n'), "a newline inside an encoded event");
    let parsed: serde_json::Value = serde_json::from_slice(&json).expect("json encoding parses");
    let object = parsed.as_object().expect("an object");
    assert_eq!(object.len(), event.fields.len());

    let mut text = Vec::new();
    Encoding::Text.encode(event, &mut text);
    match event.fields.get("message") {
        Some(Value::Bytes(message)) => assert_eq!(&text[..text.len() - 1], &message[..]),
        Some(_) => {}
        None => assert_eq!(text, [&json[..], b"\n"].concat()),
    }
}

// === timestamps ===

/// `parse_timestamp`: surrounding blanks do not matter; a parsed time printed as RFC 3339
/// (microseconds) parses back to itself, cut to microseconds. `leading_timestamp`: the
/// timestamp spans a non-empty prefix that ends at a non-alphanumeric byte or the end, and
/// that prefix alone parses as the same time with `parse_timestamp` (glog headers excepted:
/// they are only recognised at the start of a line).
pub fn timestamp(data: &[u8]) {
    let parsed = parse::parse_timestamp(data, NOW);
    let padded = [&b" \t"[..], data, b" \n"].concat();
    assert_eq!(
        parse::parse_timestamp(&padded, NOW),
        parsed,
        "blanks changed the result"
    );
    if let Some(nanos) = parsed {
        check_rfc3339_round_trip(nanos);
    }
    assert_eq!(
        parse::timestamp_from_value(&Value::Bytes(Bytes::copy_from_slice(data)), NOW),
        parsed
    );

    if let Some((nanos, used)) = parse::leading_timestamp(data, NOW) {
        assert!(
            used > 0 && used <= data.len(),
            "used {used} of {}",
            data.len()
        );
        assert!(
            data.get(used).is_none_or(|b| !b.is_ascii_alphanumeric()),
            "timestamp ends inside a word at {used}"
        );
        check_rfc3339_round_trip(nanos);
        let glog = matches!(data[0], b'I' | b'W' | b'E' | b'F');
        if !glog {
            assert_eq!(
                parse::parse_timestamp(&data[..used], NOW),
                Some(nanos),
                "prefix {:?} alone",
                String::from_utf8_lossy(&data[..used])
            );
        }
    }
}

fn check_rfc3339_round_trip(nanos: i64) {
    let Some(micros) = nanos.checked_sub(nanos.rem_euclid(1000)) else {
        return;
    };
    let text = format_timestamp(nanos);
    assert_eq!(
        parse::parse_timestamp(text.as_bytes(), NOW),
        Some(micros),
        "{nanos} printed as {text}"
    );
}

// === shared ===

/// The invariants every `decode_*` target checks; see the module docs.
fn common(decoding: DecodingConfig, data: &[u8], parse: Parser) {
    let line = Bytes::copy_from_slice(data);
    let result = parse(&line);
    match &result {
        Ok(map) => assert_unique_keys(map),
        Err(e) => assert_parse_error(e),
    }
    let with_crlf = Bytes::from([data, b"\r\n"].concat());
    if decoding != DecodingConfig::Syslog {
        // Syslog reads year-less dates against the clock, so two calls may differ at a year
        // boundary; everything else is a pure function of the line.
        assert_eq!(
            parse(&with_crlf),
            result,
            "a trailing \\r\\n changed the result"
        );
    }

    // Through the codec: newline framing, every frame decoded by `decoding`.
    let limits = FrameLimits {
        max_frame_bytes: 4096,
        oversize: OversizePolicy::Skip,
    };
    let mut decoder = Decoder::new(FramingConfig::Newline(limits).build(), decoding.build());
    let mut buf = BytesMut::from(data);
    let mut items = Vec::new();
    decoder.decode_all(&mut buf, true, |item| items.push(item));
    assert!(buf.is_empty());
    let frames: Vec<&[u8]> = if data.is_empty() {
        Vec::new()
    } else {
        data.strip_suffix(b"\n")
            .unwrap_or(data)
            .split(|b| *b == b'\n')
            .collect()
    };
    assert_eq!(items.len(), frames.len(), "one item per line");
    for (item, frame) in items.iter().zip(frames) {
        let frame = Bytes::copy_from_slice(frame);
        if frame.len() > limits.max_frame_bytes {
            assert!(matches!(item, Decoded::Bad(bad) if bad.reason_label() == "oversized"));
            continue;
        }
        let direct = match decoding {
            DecodingConfig::Bytes => {
                let mut map = Map::new();
                map.insert("message", Value::Bytes(frame.clone()));
                Ok(map)
            }
            _ => parse(&frame),
        };
        match (item, direct) {
            (Decoded::Fields { fields, truncated }, Ok(map)) => {
                assert!(!truncated);
                assert_eq!(fields, &map);
            }
            (Decoded::Bad(bad), Err(error)) => {
                assert_eq!(bad.raw(), &frame);
                match bad.reason() {
                    BadFrameReason::Parse {
                        format,
                        error: got,
                        truncated: false,
                    } => {
                        assert_eq!(*format, decoding.name());
                        assert_eq!(got, &error);
                    }
                    other => panic!("bad frame {other}"),
                }
                assert!(bad.reason().to_string().starts_with("invalid "));
            }
            (item, direct) => panic!("decoder gave {item:?}, the parser {direct:?}"),
        }
    }
}

fn trim_line_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    &s[..end]
}
