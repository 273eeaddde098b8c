//! The dynamic value type carried in event fields.
//!
//! Strings are stored as [`Bytes`] so that a raw line cut out of a read buffer becomes a field
//! without a copy (the passthrough path never allocates per event for the message). Text that
//! is not valid UTF-8 is kept as it arrived and rendered lossily only when encoded as JSON.

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::fmt;

use super::map::Map;

/// One field value. Timestamps are UTC nanoseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    Bytes(Bytes),
    Timestamp(i64),
    Array(Vec<Value>),
    Object(Map),
}

impl Value {
    /// The value as UTF-8 text when it is a string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Timestamp(t) => Some(*t as f64),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// Renders the value as text the way a template or the text encoder shows it: strings
    /// without quotes, timestamps in RFC 3339, containers as JSON.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Value::Null => {}
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Value::Bytes(b) => out.push_str(&String::from_utf8_lossy(b)),
            Value::Timestamp(t) => out.push_str(&format_timestamp(*t)),
            Value::Array(_) | Value::Object(_) => {
                out.push_str(&serde_json::to_string(self).unwrap_or_default());
            }
        }
    }

    /// Approximate memory held by the value (its inline size plus what it owns on the
    /// heap), used to bound queues by bytes. It errs high rather than low, since the bound
    /// is a memory promise.
    pub fn size_estimate(&self) -> usize {
        std::mem::size_of::<Value>() + self.heap_size()
    }

    fn heap_size(&self) -> usize {
        match self {
            // Bytes may share a larger read buffer; the frame's own length is what this
            // event keeps alive once its neighbours are gone.
            Value::Bytes(b) => b.len(),
            Value::Array(a) => a.iter().map(Value::size_estimate).sum::<usize>(),
            Value::Object(m) => m.size_estimate(),
            _ => 0,
        }
    }
}

/// Formats nanoseconds since the epoch as RFC 3339 with microseconds, in UTC.
pub fn format_timestamp(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, sub) {
        Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        None => nanos.to_string(),
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Bytes(Bytes::from(s))
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bytes(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Object(m)
    }
}

// === impl Serialize ===

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Integer(i) => serializer.serialize_i64(*i),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => serializer.serialize_str(s),
                Err(_) => serializer.serialize_str(&String::from_utf8_lossy(b)),
            },
            Value::Timestamp(t) => serializer.serialize_str(&format_timestamp(*t)),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(map) => map.serialize(serializer),
        }
    }
}

impl Serialize for Map {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            out.serialize_entry(k.as_str(), v)?;
        }
        out.end()
    }
}

// === impl Deserialize ===
//
// Deserialising straight into `Value` (rather than through `serde_json::Value`) saves one
// full copy of every parsed event. serde_json's recursion limit (128) still applies, so a
// document nested 10,000 deep is an error, not a stack overflow.

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Integer))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v.as_bytes())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::from(v)))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::with_capacity(access.size_hint().unwrap_or(0).min(64));
        while let Some(key) = access.next_key::<compact_str::CompactString>()? {
            let value: Value = access.next_value()?;
            map.push_unchecked(key, value);
        }
        map.dedup_keep_last();
        Ok(Value::Object(map))
    }
}
