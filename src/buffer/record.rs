//! A compact binary encoding of an [`Event`] for the disk buffer.
//!
//! JSON would lose what the buffer must keep: timestamps (they would come back as strings),
//! text that is not UTF-8, and the difference between `1` and `1.0`. This encoding keeps
//! each [`Value`] variant as it is.
//!
//! ```text
//! event   := version=1 u8 | flags u8 | received_at zigzag-varint
//!            [source: varint len | utf8]            (flags bit 0)
//!            [peer: 4 | ip 4 | port u16             (flags bit 1)
//!                 | 6 | ip 16 | port u16 | flowinfo u32 | scope_id u32]
//!            fields: map
//! map     := varint count | (varint len | utf8 key | value)*
//! value   := 0 null | 1 false | 2 true | 3 zigzag-varint integer | 4 f64 bits (8 bytes)
//!          | 5 varint len | bytes | 6 zigzag-varint timestamp | 7 varint count | value*
//!          | 8 map
//! ```
//! Fixed-width integers are little-endian. The acknowledgement token is not encoded: the
//! buffer itself is what acknowledges the source.
//!
//! Decoding is total: any input gives an event or an error. A length or count is never
//! trusted beyond the bytes that remain (every element takes at least one byte), and nesting
//! is limited to [`MAX_DEPTH`], so garbage can neither allocate much nor overflow the stack.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

use bytes::Bytes;
use compact_str::CompactString;

use crate::event::{Event, EventMeta, Map, Value};

const VERSION: u8 = 1;
const FLAG_SOURCE: u8 = 1;
const FLAG_PEER: u8 = 2;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INTEGER: u8 = 3;
const TAG_FLOAT: u8 = 4;
const TAG_BYTES: u8 = 5;
const TAG_TIMESTAMP: u8 = 6;
const TAG_ARRAY: u8 = 7;
const TAG_OBJECT: u8 = 8;

/// Deepest nesting of arrays and objects that is encoded and decoded. Twice what the JSON
/// parser accepts (128), so any parsed event round-trips; values nested deeper (only
/// possible for events built in code) are encoded as null, so that whatever is encoded can
/// be decoded.
pub const MAX_DEPTH: usize = 256;

/// Below this size a string is copied even when decoding from shared bytes: a small
/// allocation is cheaper than the two atomic reference-count updates a shared slice costs
/// (measured: 10 short fields decode in ~370 ns copied, ~420 ns shared).
const SHARE_MIN_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record ends early")]
    Truncated,
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    #[error("unknown value tag {0}")]
    UnknownTag(u8),
    #[error("unknown peer address kind {0}")]
    UnknownPeerKind(u8),
    #[error("varint longer than 64 bits")]
    VarintOverflow,
    #[error("text is not valid utf-8")]
    InvalidUtf8,
    #[error("values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0} bytes left over after the event")]
    TrailingBytes(usize),
}

// === encode ===

/// Appends the encoding of `event` to `out`.
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    let meta = &event.meta;
    let mut flags = 0;
    if meta.source.is_some() {
        flags |= FLAG_SOURCE;
    }
    if meta.peer.is_some() {
        flags |= FLAG_PEER;
    }
    out.push(VERSION);
    out.push(flags);
    put_varint(out, zigzag(meta.received_at));
    if let Some(source) = &meta.source {
        put_len_prefixed(out, source.as_bytes());
    }
    match meta.peer {
        Some(SocketAddr::V4(addr)) => {
            out.push(4);
            out.extend_from_slice(&addr.ip().octets());
            out.extend_from_slice(&addr.port().to_le_bytes());
        }
        Some(SocketAddr::V6(addr)) => {
            out.push(6);
            out.extend_from_slice(&addr.ip().octets());
            out.extend_from_slice(&addr.port().to_le_bytes());
            out.extend_from_slice(&addr.flowinfo().to_le_bytes());
            out.extend_from_slice(&addr.scope_id().to_le_bytes());
        }
        None => {}
    }
    put_map(out, &event.fields, 0);
}

fn put_map(out: &mut Vec<u8>, map: &Map, depth: usize) {
    put_varint(out, map.len() as u64);
    for (key, value) in map.iter() {
        put_len_prefixed(out, key.as_bytes());
        put_value(out, value, depth + 1);
    }
}

fn put_value(out: &mut Vec<u8>, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Integer(i) => {
            out.push(TAG_INTEGER);
            put_varint(out, zigzag(*i));
        }
        Value::Float(f) => {
            out.push(TAG_FLOAT);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Bytes(b) => {
            out.push(TAG_BYTES);
            put_len_prefixed(out, b);
        }
        Value::Timestamp(t) => {
            out.push(TAG_TIMESTAMP);
            put_varint(out, zigzag(*t));
        }
        Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => out.push(TAG_NULL),
        Value::Array(items) => {
            out.push(TAG_ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item, depth + 1);
            }
        }
        Value::Object(map) => {
            out.push(TAG_OBJECT);
            put_map(out, map, depth);
        }
    }
}

fn put_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

// === decode ===

/// Decodes an event, copying its strings out of `bytes`.
pub fn decode_event(bytes: &[u8]) -> Result<Event, RecordError> {
    Decoder {
        buf: bytes,
        pos: 0,
        shared: None,
    }
    .event()
}

/// Decodes an event whose long strings share `bytes` instead of being copied: the form
/// to use on records returned by the disk buffer's reader.
pub fn decode_event_shared(bytes: &Bytes) -> Result<Event, RecordError> {
    Decoder {
        buf: bytes,
        pos: 0,
        shared: Some(bytes),
    }
    .event()
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    shared: Option<&'a Bytes>,
}

impl<'a> Decoder<'a> {
    fn event(mut self) -> Result<Event, RecordError> {
        let version = self.u8()?;
        if version != VERSION {
            return Err(RecordError::UnknownVersion(version));
        }
        let flags = self.u8()?;
        let received_at = unzigzag(self.varint()?);
        let source = if flags & FLAG_SOURCE != 0 {
            let len = self.len()?;
            let text =
                std::str::from_utf8(self.take(len)?).map_err(|_| RecordError::InvalidUtf8)?;
            Some(Arc::<str>::from(text))
        } else {
            None
        };
        let peer = if flags & FLAG_PEER != 0 {
            Some(self.peer()?)
        } else {
            None
        };
        let fields = self.map(0)?;
        if self.pos != self.buf.len() {
            return Err(RecordError::TrailingBytes(self.buf.len() - self.pos));
        }
        Ok(Event {
            fields,
            meta: EventMeta {
                source,
                received_at,
                peer,
                ack: None,
            },
        })
    }

    fn peer(&mut self) -> Result<SocketAddr, RecordError> {
        match self.u8()? {
            4 => {
                let ip: [u8; 4] = self.array()?;
                let port = u16::from_le_bytes(self.array()?);
                Ok(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
            }
            6 => {
                let ip: [u8; 16] = self.array()?;
                let port = u16::from_le_bytes(self.array()?);
                let flowinfo = u32::from_le_bytes(self.array()?);
                let scope_id = u32::from_le_bytes(self.array()?);
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(ip),
                    port,
                    flowinfo,
                    scope_id,
                )))
            }
            kind => Err(RecordError::UnknownPeerKind(kind)),
        }
    }

    fn map(&mut self, depth: usize) -> Result<Map, RecordError> {
        let count = self.count()?;
        let mut map = Map::with_capacity(count);
        for _ in 0..count {
            let len = self.len()?;
            let key =
                CompactString::from_utf8(self.take(len)?).map_err(|_| RecordError::InvalidUtf8)?;
            let value = self.value(depth + 1)?;
            map.push_unchecked(key, value);
        }
        // Garbage may repeat a key; the map must still hold each key once.
        map.dedup_keep_last();
        Ok(map)
    }

    fn value(&mut self, depth: usize) -> Result<Value, RecordError> {
        Ok(match self.u8()? {
            TAG_NULL => Value::Null,
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            TAG_INTEGER => Value::Integer(unzigzag(self.varint()?)),
            TAG_FLOAT => Value::Float(f64::from_bits(u64::from_le_bytes(self.array()?))),
            TAG_BYTES => {
                let len = self.len()?;
                Value::Bytes(self.bytes(len)?)
            }
            TAG_TIMESTAMP => Value::Timestamp(unzigzag(self.varint()?)),
            TAG_ARRAY | TAG_OBJECT if depth >= MAX_DEPTH => return Err(RecordError::TooDeep),
            TAG_ARRAY => {
                let count = self.count()?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            TAG_OBJECT => Value::Object(self.map(depth)?),
            tag => return Err(RecordError::UnknownTag(tag)),
        })
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        let b = *self.buf.get(self.pos).ok_or(RecordError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(len).ok_or(RecordError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(RecordError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn bytes(&mut self, len: usize) -> Result<Bytes, RecordError> {
        let start = self.pos;
        let slice = self.take(len)?;
        Ok(match self.shared {
            Some(shared) if len >= SHARE_MIN_BYTES => shared.slice(start..start + len),
            _ => Bytes::copy_from_slice(slice),
        })
    }

    fn varint(&mut self) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            // The tenth byte may only carry the single remaining bit.
            if shift == 63 && b > 1 {
                return Err(RecordError::VarintOverflow);
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(RecordError::VarintOverflow)
    }

    /// A byte length: never more than what remains.
    fn len(&mut self) -> Result<usize, RecordError> {
        let len = self.varint()?;
        let remaining = (self.buf.len() - self.pos) as u64;
        if len > remaining {
            return Err(RecordError::Truncated);
        }
        Ok(len as usize)
    }

    /// An element count: each element takes at least one byte, so a count above the bytes
    /// left is a lie, and capacity is never reserved for it.
    fn count(&mut self) -> Result<usize, RecordError> {
        self.len()
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
