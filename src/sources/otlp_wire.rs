//! An `ExportLogsServiceRequest` read from protobuf straight into events.
//!
//! prost would first build the request as a tree of owned messages (a `String` or `Vec`
//! per key, value, id and text of every record) that `otlp.rs` then maps and drops. Here the
//! wire format is walked once: strings are checked to be UTF-8 and become slices of the
//! request's body (no copy), the values become events' values as they are read, and the
//! mapping (`otlp.rs`'s `resource_fields`, `scope_fields`, `push_record`) is the one the
//! prost and JSON paths use.
//!
//! What is accepted and what is refused is prost's: every field the messages define is
//! checked for its wire type (and strings for UTF-8) even when the mapping ignores it
//! (`schema_url`, `entity_refs`, `key_strindex`); unknown fields are skipped by wire type,
//! groups included; nesting is limited as prost limits it (100 messages deep). A field
//! repeated where one is expected merges as prost merges: the last scalar wins, lists are
//! appended, a repeated message merges into the one before (an `AnyValue` with two array
//! values holds both arrays' items).

use std::hash::BuildHasher;
use std::ops::Range;

use bytes::Bytes;
use compact_str::CompactString;

use super::otlp::{
    bytes_value, push_record, resource_fields, scope_fields, strindex_value, Record, Records, Scope,
};
use crate::event::{Map, Value};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// How deep messages may nest, as prost (and protobuf's C++ implementation) allow: an
/// `AnyValue` of arrays in arrays must not take the stack.
const RECURSION_LIMIT: u32 = 100;

/// Why a body is not a protobuf `ExportLogsServiceRequest`, and in which field.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {kind}")]
pub struct WireError {
    /// The message and field being read, e.g. `LogRecord.body`.
    at: &'static str,
    kind: Kind,
}

#[derive(Debug, thiserror::Error)]
enum Kind {
    #[error("invalid varint")]
    Varint,
    #[error("invalid key value: {0}")]
    Key(u64),
    #[error("invalid wire type value: {0}")]
    WireTypeValue(u64),
    #[error("invalid tag value: 0")]
    Tag,
    #[error("invalid wire type: {actual} (expected {expected})")]
    WireType { actual: u8, expected: u8 },
    #[error("buffer underflow")]
    Underflow,
    #[error("unexpected end group tag")]
    EndGroup,
    #[error("recursion limit reached")]
    RecursionLimit,
    #[error("invalid string value: data is not UTF-8 encoded")]
    Utf8,
}

type Result<T> = std::result::Result<T, WireError>;

fn fail<T>(at: &'static str, kind: Kind) -> Result<T> {
    Err(WireError { at, kind })
}

/// The events of a protobuf `ExportLogsServiceRequest`.
pub fn decode(body: &Bytes) -> Result<Records> {
    let mut records = Records::default();
    let mut reader = Reader::new(body, 0..body.len());
    let depth = RECURSION_LIMIT;
    while let Some((tag, wire)) = reader.key("ExportLogsServiceRequest")? {
        match tag {
            1 => {
                let inner =
                    reader.message("ExportLogsServiceRequest.resource_logs", wire, depth)?;
                resource_logs(inner, depth - 1, &mut records)?;
            }
            _ => reader.skip("ExportLogsServiceRequest", tag, wire, depth)?,
        }
    }
    Ok(records)
}

/// A `ResourceLogs`: its resource first (wherever it is among the fields, and merged when
/// repeated), so that what its records share is built once, then its scopes.
fn resource_logs(message: Reader<'_>, depth: u32, records: &mut Records) -> Result<()> {
    const AT: &str = "ResourceLogs";
    let mut attributes: Vec<(CompactString, Value)> = Vec::new();
    let mut dropped = 0;
    let mut reader = message.clone();
    while let Some((tag, wire)) = reader.key(AT)? {
        match tag {
            1 => {
                let inner = reader.message("ResourceLogs.resource", wire, depth)?;
                resource(inner, depth - 1, &mut attributes, &mut dropped)?;
            }
            // Read on the second pass; only its length is needed now.
            2 => {
                reader.message("ResourceLogs.scope_logs", wire, depth)?;
            }
            3 => {
                reader.string("ResourceLogs.schema_url", wire)?;
            }
            _ => reader.skip(AT, tag, wire, depth)?,
        }
    }
    let shared = resource_fields(attributes, dropped);
    let mut reader = message;
    while let Some((tag, wire)) = reader.key(AT)? {
        if tag == 2 {
            let inner = reader.message("ResourceLogs.scope_logs", wire, depth)?;
            scope_logs(inner, depth - 1, &shared, records)?;
        } else {
            reader.skip(AT, tag, wire, depth)?;
        }
    }
    Ok(())
}

fn resource(
    mut reader: Reader<'_>,
    depth: u32,
    attributes: &mut Vec<(CompactString, Value)>,
    dropped: &mut u32,
) -> Result<()> {
    const AT: &str = "Resource";
    while let Some((tag, wire)) = reader.key(AT)? {
        match tag {
            1 => {
                let inner = reader.message("Resource.attributes", wire, depth)?;
                attributes.push(key_value(inner, depth - 1)?);
            }
            2 => *dropped = reader.varint_field("Resource.dropped_attributes_count", wire)? as u32,
            3 => {
                let inner = reader.message("Resource.entity_refs", wire, depth)?;
                strings_only(inner, depth - 1, "EntityRef", &[1, 2, 3, 4])?;
            }
            _ => reader.skip(AT, tag, wire, depth)?,
        }
    }
    Ok(())
}

/// A `ScopeLogs`: its scope first (merged when repeated), then its records.
fn scope_logs(message: Reader<'_>, depth: u32, shared: &Map, records: &mut Records) -> Result<()> {
    const AT: &str = "ScopeLogs";
    let mut scope = None;
    let mut reader = message.clone();
    while let Some((tag, wire)) = reader.key(AT)? {
        match tag {
            1 => {
                let inner = reader.message("ScopeLogs.scope", wire, depth)?;
                instrumentation_scope(inner, depth - 1, scope.get_or_insert_with(Scope::default))?;
            }
            2 => {
                reader.message("ScopeLogs.log_records", wire, depth)?;
            }
            3 => {
                reader.string("ScopeLogs.schema_url", wire)?;
            }
            _ => reader.skip(AT, tag, wire, depth)?,
        }
    }
    let scoped = match scope {
        Some(scope) => scope_fields(shared, scope),
        None => shared.clone(),
    };
    let mut reader = message;
    while let Some((tag, wire)) = reader.key(AT)? {
        if tag == 2 {
            let inner = reader.message("ScopeLogs.log_records", wire, depth)?;
            log_record(inner, depth - 1, &scoped, records)?;
        } else {
            reader.skip(AT, tag, wire, depth)?;
        }
    }
    Ok(())
}

fn instrumentation_scope(mut reader: Reader<'_>, depth: u32, scope: &mut Scope) -> Result<()> {
    const AT: &str = "InstrumentationScope";
    while let Some((tag, wire)) = reader.key(AT)? {
        match tag {
            1 => scope.name = reader.string("InstrumentationScope.name", wire)?,
            2 => scope.version = reader.string("InstrumentationScope.version", wire)?,
            3 => {
                let inner = reader.message("InstrumentationScope.attributes", wire, depth)?;
                let (key, value) = key_value(inner, depth - 1)?;
                scope.attributes.insert(key, value);
            }
            4 => {
                scope.dropped_attributes_count = reader
                    .varint_field("InstrumentationScope.dropped_attributes_count", wire)?
                    as u32;
            }
            _ => reader.skip(AT, tag, wire, depth)?,
        }
    }
    Ok(())
}

fn log_record(
    mut reader: Reader<'_>,
    depth: u32,
    scoped: &Map,
    records: &mut Records,
) -> Result<()> {
    const AT: &str = "LogRecord";
    let mut attributes = Attributes::default();
    let mut record = Record {
        time_unix_nano: 0,
        observed_time_unix_nano: 0,
        severity_number: 0,
        severity_text: Bytes::new(),
        body: Value::Null,
        attributes: Map::new(),
        dropped_attributes_count: 0,
        flags: 0,
        trace_id: &[],
        span_id: &[],
        event_name: Bytes::new(),
    };
    while let Some((tag, wire)) = reader.key(AT)? {
        match tag {
            1 => record.time_unix_nano = reader.fixed64_field("LogRecord.time_unix_nano", wire)?,
            2 => {
                record.severity_number =
                    reader.varint_field("LogRecord.severity_number", wire)? as i32;
            }
            3 => record.severity_text = reader.string("LogRecord.severity_text", wire)?,
            5 => {
                let inner = reader.message("LogRecord.body", wire, depth)?;
                any_value(inner, depth - 1, &mut record.body)?;
            }
            6 => {
                let inner = reader.message("LogRecord.attributes", wire, depth)?;
                let (key, value) = key_value(inner, depth - 1)?;
                attributes.push(key, value);
            }
            7 => {
                record.dropped_attributes_count =
                    reader.varint_field("LogRecord.dropped_attributes_count", wire)? as u32;
            }
            8 => record.flags = reader.fixed32_field("LogRecord.flags", wire)?,
            9 => record.trace_id = reader.bytes("LogRecord.trace_id", wire)?,
            10 => record.span_id = reader.bytes("LogRecord.span_id", wire)?,
            11 => {
                record.observed_time_unix_nano =
                    reader.fixed64_field("LogRecord.observed_time_unix_nano", wire)?;
            }
            12 => record.event_name = reader.string("LogRecord.event_name", wire)?,
            _ => reader.skip(AT, tag, wire, depth)?,
        }
    }
    record.attributes = attributes.into_map();
    push_record(records, record, scoped);
    Ok(())
}

/// A `KeyValue`: its key and its value (`Null` when it has none).
fn key_value(mut reader: Reader<'_>, depth: u32) -> Result<(CompactString, Value)> {
    const AT: &str = "KeyValue";
    let mut key: &str = "";
    let mut value = Value::Null;
    while let Some((tag, wire)) = reader.key(AT)? {
        match tag {
            1 => key = reader.str("KeyValue.key", wire)?,
            2 => {
                let inner = reader.message("KeyValue.value", wire, depth)?;
                any_value(inner, depth - 1, &mut value)?;
            }
            3 => {
                reader.varint_field("KeyValue.key_strindex", wire)?;
            }
            _ => reader.skip(AT, tag, wire, depth)?,
        }
    }
    Ok((CompactString::new(key), value))
}

/// An `AnyValue` merged into `value` as prost merges its oneof: a scalar replaces what was
/// there; an array or key-value list adds to one of its kind, else replaces.
fn any_value(mut reader: Reader<'_>, depth: u32, value: &mut Value) -> Result<()> {
    const AT: &str = "AnyValue";
    while let Some((tag, wire)) = reader.key(AT)? {
        match tag {
            1 => *value = Value::Bytes(reader.string("AnyValue.string_value", wire)?),
            2 => *value = Value::Bool(reader.varint_field("AnyValue.bool_value", wire)? != 0),
            3 => *value = Value::Integer(reader.varint_field("AnyValue.int_value", wire)? as i64),
            4 => {
                let bits = reader.fixed64_field("AnyValue.double_value", wire)?;
                *value = Value::Float(f64::from_bits(bits));
            }
            5 => {
                let mut inner = reader.message("AnyValue.array_value", wire, depth)?;
                if !matches!(value, Value::Array(_)) {
                    *value = Value::Array(Vec::new());
                }
                let Value::Array(items) = value else {
                    unreachable!("an array was just put in")
                };
                let depth = depth - 1;
                while let Some((tag, wire)) = inner.key("ArrayValue")? {
                    if tag == 1 {
                        let item = inner.message("ArrayValue.values", wire, depth)?;
                        let mut element = Value::Null;
                        any_value(item, depth - 1, &mut element)?;
                        items.push(element);
                    } else {
                        inner.skip("ArrayValue", tag, wire, depth)?;
                    }
                }
            }
            6 => {
                let mut inner = reader.message("AnyValue.kvlist_value", wire, depth)?;
                // A list merged into the one before (rare) is added to it key by key.
                let mut list = match std::mem::take(value) {
                    Value::Object(map) => Attributes::merging(map),
                    _ => Attributes::default(),
                };
                let depth = depth - 1;
                while let Some((tag, wire)) = inner.key("KeyValueList")? {
                    if tag == 1 {
                        let item = inner.message("KeyValueList.values", wire, depth)?;
                        let (key, element) = key_value(item, depth - 1)?;
                        list.push(key, element);
                    } else {
                        inner.skip("KeyValueList", tag, wire, depth)?;
                    }
                }
                *value = Value::Object(list.into_map());
            }
            7 => *value = bytes_value(reader.bytes("AnyValue.bytes_value", wire)?),
            8 => {
                let index = reader.varint_field("AnyValue.string_value_strindex", wire)? as i32;
                *value = strindex_value(index);
            }
            _ => reader.skip(AT, tag, wire, depth)?,
        }
    }
    Ok(())
}

/// Key-value pairs as a map, pushed without `Map::insert`'s scan of every key before each
/// one (quadratic in a record's attributes, and the larger part of the reader's time when it
/// did): a 256-bit filter of the keys' hashes tells when a key may repeat, and only then are
/// repeats merged as inserting would have (the last value, at the first one's place).
#[derive(Default)]
struct Attributes {
    map: Map,
    seen: [u64; 4],
    repeated: bool,
    /// Merging into a map read before: every key checked.
    merging: bool,
}

impl Attributes {
    fn merging(map: Map) -> Self {
        Self {
            map,
            merging: true,
            ..Self::default()
        }
    }

    fn push(&mut self, key: CompactString, value: Value) {
        if self.merging {
            self.map.insert(key, value);
            return;
        }
        let hash = HASH.hash_one(key.as_str());
        let (word, bit) = ((hash >> 62) as usize, 1u64 << (hash & 63));
        self.repeated |= self.seen[word] & bit != 0;
        self.seen[word] |= bit;
        self.map.push_unchecked(key, value);
    }

    fn into_map(mut self) -> Map {
        if self.repeated {
            self.map.dedup_keep_last();
        }
        self.map
    }
}

/// The filter's hash: fixed, since it only spreads keys, never faces a chosen set of them
/// alone (a collision costs a `dedup_keep_last`, which is not quadratic either).
const HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6f74_6c70);

/// A message of string fields (`tags`) that the mapping does not use, checked all the same.
fn strings_only(mut reader: Reader<'_>, depth: u32, at: &'static str, tags: &[u32]) -> Result<()> {
    while let Some((tag, wire)) = reader.key(at)? {
        if tags.contains(&tag) {
            reader.str(at, wire)?;
        } else {
            reader.skip(at, tag, wire, depth)?;
        }
    }
    Ok(())
}

/// The fields of one message: `pos..end` of the request's body.
#[derive(Clone)]
struct Reader<'a> {
    body: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(body: &'a Bytes, range: Range<usize>) -> Self {
        Self {
            body,
            pos: range.start,
            end: range.end,
        }
    }

    /// The next field's tag and wire type, `None` at the message's end.
    fn key(&mut self, at: &'static str) -> Result<Option<(u32, u8)>> {
        if self.pos == self.end {
            return Ok(None);
        }
        let key = self.varint(at)?;
        if key > u64::from(u32::MAX) {
            return fail(at, Kind::Key(key));
        }
        let wire = (key & 7) as u8;
        if wire > FIXED32 {
            return fail(at, Kind::WireTypeValue(key & 7));
        }
        let tag = (key >> 3) as u32;
        if tag == 0 {
            return fail(at, Kind::Tag);
        }
        Ok(Some((tag, wire)))
    }

    fn varint(&mut self, at: &'static str) -> Result<u64> {
        let bytes = &self.body[self.pos..self.end];
        // The common case first: one byte.
        match bytes.first() {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                return Ok(u64::from(b));
            }
            None => return fail(at, Kind::Varint),
            _ => {}
        }
        let mut value = 0u64;
        for (i, &b) in bytes.iter().take(10).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                // A tenth byte holds only the 64th bit.
                if i == 9 && b > 1 {
                    return fail(at, Kind::Varint);
                }
                self.pos += i + 1;
                return Ok(value);
            }
        }
        fail(at, Kind::Varint)
    }

    fn take(&mut self, at: &'static str, len: u64) -> Result<Range<usize>> {
        if len > (self.end - self.pos) as u64 {
            return fail(at, Kind::Underflow);
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(start..self.pos)
    }

    fn expect(at: &'static str, wire: u8, expected: u8) -> Result<()> {
        if wire == expected {
            Ok(())
        } else {
            fail(
                at,
                Kind::WireType {
                    actual: wire,
                    expected,
                },
            )
        }
    }

    fn varint_field(&mut self, at: &'static str, wire: u8) -> Result<u64> {
        Self::expect(at, wire, VARINT)?;
        self.varint(at)
    }

    fn fixed64_field(&mut self, at: &'static str, wire: u8) -> Result<u64> {
        Self::expect(at, wire, FIXED64)?;
        let range = self.take(at, 8)?;
        let bytes: [u8; 8] = self.body[range].try_into().expect("8 bytes were taken");
        Ok(u64::from_le_bytes(bytes))
    }

    fn fixed32_field(&mut self, at: &'static str, wire: u8) -> Result<u32> {
        Self::expect(at, wire, FIXED32)?;
        let range = self.take(at, 4)?;
        let bytes: [u8; 4] = self.body[range].try_into().expect("4 bytes were taken");
        Ok(u32::from_le_bytes(bytes))
    }

    fn length_delimited(&mut self, at: &'static str, wire: u8) -> Result<Range<usize>> {
        Self::expect(at, wire, LENGTH_DELIMITED)?;
        let len = self.varint(at)?;
        self.take(at, len)
    }

    /// A nested message's reader, at `depth` (what prost's recursion count would be).
    fn message(&mut self, at: &'static str, wire: u8, depth: u32) -> Result<Reader<'a>> {
        let range = self.length_delimited(at, wire)?;
        if depth == 0 {
            return fail(at, Kind::RecursionLimit);
        }
        Ok(Reader::new(self.body, range))
    }

    fn bytes(&mut self, at: &'static str, wire: u8) -> Result<&'a [u8]> {
        let range = self.length_delimited(at, wire)?;
        Ok(&self.body[range])
    }

    fn str(&mut self, at: &'static str, wire: u8) -> Result<&'a str> {
        let range = self.length_delimited(at, wire)?;
        std::str::from_utf8(&self.body[range]).or_else(|_| fail(at, Kind::Utf8))
    }

    /// A string as a slice of the body, which it keeps alive.
    fn string(&mut self, at: &'static str, wire: u8) -> Result<Bytes> {
        let range = self.length_delimited(at, wire)?;
        if std::str::from_utf8(&self.body[range.clone()]).is_err() {
            return fail(at, Kind::Utf8);
        }
        Ok(if range.is_empty() {
            Bytes::new()
        } else {
            self.body.slice(range)
        })
    }

    /// Past a field the message does not define, as prost skips it.
    fn skip(&mut self, at: &'static str, tag: u32, wire: u8, depth: u32) -> Result<()> {
        if depth == 0 {
            return fail(at, Kind::RecursionLimit);
        }
        let len = match wire {
            VARINT => {
                self.varint(at)?;
                0
            }
            FIXED64 => 8,
            FIXED32 => 4,
            LENGTH_DELIMITED => self.varint(at)?,
            START_GROUP => loop {
                let Some((inner, inner_wire)) = self.key(at)? else {
                    // prost reads past the end of the message for the end of the group.
                    return fail(at, Kind::Varint);
                };
                if inner_wire == END_GROUP {
                    if inner != tag {
                        return fail(at, Kind::EndGroup);
                    }
                    break 0;
                }
                self.skip(at, inner, inner_wire, depth - 1)?;
            },
            _ => return fail(at, Kind::EndGroup),
        };
        self.take(at, len)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "otlp_wire_tests.rs"]
mod tests;
