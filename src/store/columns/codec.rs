//! How values are written inside a block's column: a tag byte, then the value's payload.
//! Integers are zigzag varints, times are varints of their difference from the row's event
//! time (usually 0), strings are a varint length and their bytes, arrays and objects nest.

use bytes::Bytes;
use compact_str::CompactString;

use crate::event::{Map, Value};

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INTEGER: u8 = 3;
const FLOAT: u8 = 4;
const BYTES: u8 = 5;
const TIMESTAMP: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;

/// Nesting deeper than this is written as its JSON text (a string), so decoding cannot
/// recurse without bound on a hostile event.
pub(super) const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("column data ends early or holds an unknown tag")]
pub(super) struct Truncated;

pub(super) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint at `bytes[*pos..]`, moving `pos` past it: for loops over a whole section,
/// where a [`Reader`]'s checks per call cost more than the decoding.
#[inline]
pub(super) fn varint_at(bytes: &[u8], pos: &mut usize) -> Result<u64, Truncated> {
    let mut n = 0u64;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(*pos).ok_or(Truncated)?;
        *pos += 1;
        if shift >= 64 {
            return Err(Truncated);
        }
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(n);
        }
        shift += 7;
    }
}

pub(super) fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

pub(super) fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Appends `value` (seen on a row whose event time is `row_ts`).
pub(super) fn put_value(out: &mut Vec<u8>, value: &Value, row_ts: i64, depth: usize) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Integer(i) => {
            out.push(INTEGER);
            put_varint(out, zigzag(*i));
        }
        Value::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Bytes(b) => put_bytes(out, b),
        Value::Timestamp(t) => {
            out.push(TIMESTAMP);
            put_varint(out, zigzag(t.wrapping_sub(row_ts)));
        }
        Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => {
            put_bytes(out, value.to_text().as_bytes());
        }
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item, row_ts, depth + 1);
            }
        }
        Value::Object(map) => {
            out.push(OBJECT);
            put_varint(out, map.len() as u64);
            for (key, inner) in map.iter() {
                put_varint(out, key.len() as u64);
                out.extend_from_slice(key.as_bytes());
                put_value(out, inner, row_ts, depth + 1);
            }
        }
    }
}

/// How a string value is encoded: what [`Reader::next_string_encoding`] returns for it.
pub(super) fn string_encoding(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 6);
    put_bytes(&mut out, text.as_bytes());
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(BYTES);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads values back from a decompressed column; strings are slices of `data`, not copies.
pub(super) struct Reader {
    data: Bytes,
    pos: usize,
}

impl Reader {
    pub(super) fn new(data: Bytes) -> Reader {
        Reader { data, pos: 0 }
    }

    pub(super) fn is_at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// The whole encoding (tag, length, bytes) of the next value when it is a string, read
    /// past; `None`, reading nothing, for any other value.
    pub(super) fn next_string_encoding(&mut self) -> Result<Option<&[u8]>, Truncated> {
        if self.data.get(self.pos) != Some(&BYTES) {
            return Ok(None);
        }
        let start = self.pos;
        let mut at = start + 1;
        let len = varint_at(&self.data, &mut at)? as usize;
        let end = at.checked_add(len).ok_or(Truncated)?;
        if end > self.data.len() {
            return Err(Truncated);
        }
        self.pos = end;
        Ok(Some(&self.data[start..end]))
    }

    /// Whether the next value depends on its row's time: a time (stored relative to it), or
    /// an array or object that may hold one.
    pub(super) fn next_needs_row_time(&self) -> bool {
        matches!(self.data.get(self.pos), Some(&(TIMESTAMP | ARRAY | OBJECT)))
    }

    /// The bytes not read yet.
    pub(super) fn rest(&self) -> Bytes {
        self.data.slice(self.pos.min(self.data.len())..)
    }

    #[inline]
    pub(super) fn varint(&mut self) -> Result<u64, Truncated> {
        varint_at(&self.data, &mut self.pos)
    }

    /// The next `len` bytes, without a copy.
    pub(super) fn take(&mut self, len: usize) -> Result<Bytes, Truncated> {
        let end = self.pos.checked_add(len).ok_or(Truncated)?;
        if end > self.data.len() {
            return Err(Truncated);
        }
        let out = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    fn advance(&mut self, len: usize) -> Result<(), Truncated> {
        let end = self.pos.checked_add(len).ok_or(Truncated)?;
        if end > self.data.len() {
            return Err(Truncated);
        }
        self.pos = end;
        Ok(())
    }

    /// Reads past a value without building it.
    pub(super) fn skip(&mut self, depth: usize) -> Result<(), Truncated> {
        if depth > MAX_DEPTH {
            return Err(Truncated);
        }
        let tag = *self.data.get(self.pos).ok_or(Truncated)?;
        self.pos += 1;
        match tag {
            NULL | FALSE | TRUE => Ok(()),
            INTEGER | TIMESTAMP => self.varint().map(drop),
            FLOAT => self.advance(8),
            BYTES => {
                let len = self.varint()? as usize;
                self.advance(len)
            }
            ARRAY => {
                for _ in 0..self.varint()? {
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            OBJECT => {
                for _ in 0..self.varint()? {
                    let len = self.varint()? as usize;
                    self.advance(len)?;
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            _ => Err(Truncated),
        }
    }

    pub(super) fn value(&mut self, row_ts: i64, depth: usize) -> Result<Value, Truncated> {
        if depth > MAX_DEPTH {
            return Err(Truncated);
        }
        let tag = *self.data.get(self.pos).ok_or(Truncated)?;
        self.pos += 1;
        Ok(match tag {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INTEGER => Value::Integer(unzigzag(self.varint()?)),
            FLOAT => {
                let raw = self.take(8)?;
                let mut le = [0u8; 8];
                le.copy_from_slice(&raw);
                Value::Float(f64::from_le_bytes(le))
            }
            BYTES => {
                let len = self.varint()? as usize;
                Value::Bytes(self.take(len)?)
            }
            TIMESTAMP => Value::Timestamp(row_ts.wrapping_add(unzigzag(self.varint()?))),
            ARRAY => {
                let n = self.varint()? as usize;
                // Each item takes at least a byte: a bad count cannot reserve beyond the data.
                let mut items = Vec::with_capacity(n.min(self.data.len() - self.pos));
                for _ in 0..n {
                    items.push(self.value(row_ts, depth + 1)?);
                }
                Value::Array(items)
            }
            OBJECT => {
                let n = self.varint()? as usize;
                let mut map = Map::with_capacity(n.min(self.data.len() - self.pos));
                for _ in 0..n {
                    let len = self.varint()? as usize;
                    let key = self.take(len)?;
                    let key = CompactString::from_utf8_lossy(&key);
                    let inner = self.value(row_ts, depth + 1)?;
                    map.push_unchecked(key, inner);
                }
                Value::Object(map)
            }
            _ => return Err(Truncated),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::test_event;

    #[test]
    fn every_kind_of_value_reads_back_as_written() {
        let event = test_event(
            r#"{"a":null,"b":true,"c":false,"d":-42,"e":1.5,"f":"text","g":[1,"x",{"h":2}],"i":{"j":{"k":"deep"}}}"#,
        );
        let mut out = Vec::new();
        let mut values: Vec<Value> = event.fields.iter().map(|(_, v)| v.clone()).collect();
        values.push(Value::Timestamp(1_700_000_000_123_456_789));
        values.push(Value::Integer(i64::MIN));
        for value in &values {
            put_value(&mut out, value, 1_700_000_000_000_000_000, 0);
        }
        let data = Bytes::from(out);
        let mut skipping = Reader::new(data.clone());
        for _ in &values {
            skipping.skip(0).unwrap();
        }
        assert!(skipping.is_at_end(), "skip reads exactly what value reads");
        let mut reader = Reader::new(data);
        for value in &values {
            assert_eq!(&reader.value(1_700_000_000_000_000_000, 0).unwrap(), value);
        }
        assert!(reader.is_at_end());
    }

    #[test]
    fn cut_or_garbled_data_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        put_value(
            &mut out,
            &test_event(r#"{"g":[1,"x",{"h":"yy"}]}"#)
                .fields
                .iter()
                .next()
                .unwrap()
                .1
                .clone(),
            0,
            0,
        );
        for cut in 0..out.len() {
            assert!(Reader::new(Bytes::copy_from_slice(&out[..cut]))
                .value(0, 0)
                .is_err());
        }
        for byte in 9..=255u8 {
            assert!(Reader::new(Bytes::from(vec![byte, 0, 0]))
                .value(0, 0)
                .is_err());
        }
        // A count far beyond the data reserves nothing it cannot fill.
        let mut huge = vec![ARRAY];
        put_varint(&mut huge, u64::MAX >> 1);
        assert!(Reader::new(Bytes::from(huge)).value(0, 0).is_err());
    }
}
