//! A field's column as stored: its values one after another ([`codec`](super::codec)), or,
//! when the block holds at most [`MAX_DICT_VALUES`] distinct scalar values of the field, a
//! dictionary of them and a one-byte code per value. Level, app, method, status and the like
//! are dictionaries: a query compares a code per row instead of a value.
//!
//! ```text
//! plain: 0 | values...
//! dict:  1 | varint n | n values | n varint counts | one code byte per value
//! ```

use std::collections::HashMap;

use bytes::Bytes;

use super::block::RawSection;
use super::codec::{put_varint, Reader, Truncated};
use crate::event::Value;

const PLAIN: u8 = 0;
const DICT: u8 = 1;
pub(super) const MAX_DICT_VALUES: usize = 255;

/// Tags of values a dictionary may hold: scalars whose bytes do not depend on the row (a
/// time is stored relative to its row's).
fn is_dictionary_tag(tag: u8) -> bool {
    tag <= 5
}

/// Columns smaller than this stay in one page: decompressing them whole is cheap, and
/// pages would only cost their table and zstd's lost context.
const MIN_PAGED_BYTES: usize = 16 << 10;

/// A column's bytes as the builder writes them: the plain tag, then the values.
pub(super) fn new_plain(capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity.max(1));
    out.push(PLAIN);
    out
}

/// The section to store for column `name`, whose bytes (from [`new_plain`]) are `plain` and
/// whose pages after the first begin at `page_starts`: a dictionary when it qualifies (in
/// one page: a byte per row), else the plain bytes as they are.
pub(super) fn encode(name: &str, plain: Bytes, page_starts: Vec<usize>) -> RawSection {
    if let Some(dict) = dictionary(&plain) {
        return RawSection::whole(name, dict);
    }
    RawSection {
        name: name.to_string(),
        page_starts: if plain.len() >= MIN_PAGED_BYTES {
            page_starts
        } else {
            Vec::new()
        },
        bytes: plain,
    }
}

fn dictionary(plain: &Bytes) -> Option<Vec<u8>> {
    if plain.first() != Some(&PLAIN) {
        return None;
    }
    let raw = &plain[1..];
    let mut reader = Reader::new(plain.slice(1..));
    let mut codes: HashMap<&[u8], u8> = HashMap::new();
    let mut order: Vec<&[u8]> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let mut row_codes = Vec::with_capacity(raw.len() / 2);
    let mut start = 0;
    while !reader.is_at_end() {
        if !is_dictionary_tag(raw[start]) {
            return None;
        }
        reader.skip(0).ok()?;
        let end = reader.position();
        let value = &raw[start..end];
        let code = match codes.get(value) {
            Some(&code) => code,
            None => {
                if order.len() >= MAX_DICT_VALUES {
                    return None;
                }
                let code = order.len() as u8;
                codes.insert(value, code);
                order.push(value);
                counts.push(0);
                code
            }
        };
        counts[code as usize] += 1;
        row_codes.push(code);
        start = end;
    }
    let mut out = Vec::with_capacity(row_codes.len() + 64);
    out.push(DICT);
    put_varint(&mut out, order.len() as u64);
    for value in &order {
        out.extend_from_slice(value);
    }
    for count in counts {
        put_varint(&mut out, count);
    }
    out.extend_from_slice(&row_codes);
    Some(out)
}

/// A column being read.
pub(super) enum Column {
    Plain(Reader),
    Dict {
        values: Vec<Value>,
        counts: Vec<u64>,
        codes: Bytes,
        next: usize,
    },
}

impl Column {
    /// A page after the first of a plain column: values only.
    pub(super) fn plain_page(data: Bytes) -> Column {
        Column::Plain(Reader::new(data))
    }

    pub(super) fn open(data: Bytes) -> Result<Column, Truncated> {
        let kind = *data.first().ok_or(Truncated)?;
        let mut reader = Reader::new(data.slice(1..));
        match kind {
            PLAIN => Ok(Column::Plain(reader)),
            DICT => {
                let n = reader.varint()? as usize;
                if n > MAX_DICT_VALUES {
                    return Err(Truncated);
                }
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(reader.value(0, 0)?);
                }
                let mut counts = Vec::with_capacity(n);
                for _ in 0..n {
                    counts.push(reader.varint()?);
                }
                let codes = reader.rest();
                if codes.iter().any(|&c| c as usize >= n) {
                    return Err(Truncated);
                }
                Ok(Column::Dict {
                    values,
                    counts,
                    codes,
                    next: 0,
                })
            }
            _ => Err(Truncated),
        }
    }

    /// The next value, read with its row's time (for times stored relative to it).
    pub(super) fn value(&mut self, row_ts: i64) -> Result<Value, Truncated> {
        match self {
            Column::Plain(reader) => reader.value(row_ts, 0),
            Column::Dict { .. } => self.with_next(row_ts, |v| v.clone()),
        }
    }

    pub(super) fn skip(&mut self) -> Result<(), Truncated> {
        match self {
            Column::Plain(reader) => reader.skip(0),
            Column::Dict { codes, next, .. } => {
                if *next >= codes.len() {
                    return Err(Truncated);
                }
                *next += 1;
                Ok(())
            }
        }
    }

    /// The next value's encoding when the column is plain and the value a string, read
    /// past; `None`, reading nothing, otherwise.
    pub(super) fn next_string_encoding(&mut self) -> Result<Option<&[u8]>, Truncated> {
        match self {
            Column::Plain(reader) => reader.next_string_encoding(),
            Column::Dict { .. } => Ok(None),
        }
    }

    /// Whether the next value needs its row's time to be read (a dictionary's never do).
    pub(super) fn next_needs_row_time(&self) -> bool {
        match self {
            Column::Plain(reader) => reader.next_needs_row_time(),
            Column::Dict { .. } => false,
        }
    }

    /// Calls `f` with the next value: a dictionary's is lent, not copied.
    pub(super) fn with_next<T>(
        &mut self,
        row_ts: i64,
        f: impl FnOnce(&Value) -> T,
    ) -> Result<T, Truncated> {
        match self {
            Column::Plain(reader) => Ok(f(&reader.value(row_ts, 0)?)),
            Column::Dict {
                values,
                codes,
                next,
                ..
            } => {
                let code = *codes.get(*next).ok_or(Truncated)?;
                *next += 1;
                Ok(f(&values[code as usize]))
            }
        }
    }

    /// The dictionary's values and how many times each occurs, for a dictionary column.
    pub(super) fn dictionary(&self) -> Option<(&[Value], &[u64])> {
        match self {
            Column::Plain(_) => None,
            Column::Dict { values, counts, .. } => Some((values, counts)),
        }
    }

    /// The next code of a dictionary column.
    pub(super) fn next_code(&mut self) -> Result<u8, Truncated> {
        match self {
            Column::Plain(_) => Err(Truncated),
            Column::Dict { codes, next, .. } => {
                let code = *codes.get(*next).ok_or(Truncated)?;
                *next += 1;
                Ok(code)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::put_value;
    use super::*;

    fn raw(values: &[Value]) -> Bytes {
        let mut out = new_plain(0);
        for v in values {
            put_value(&mut out, v, 0, 0);
        }
        Bytes::from(out)
    }

    fn stored(values: &[Value]) -> Bytes {
        encode("f", raw(values), Vec::new()).bytes
    }

    #[test]
    fn few_distinct_values_become_a_dictionary_and_read_back() {
        let values: Vec<Value> = (0..1000)
            .map(|i| match i % 3 {
                0 => Value::from("info"),
                1 => Value::Integer(200),
                _ => Value::Null,
            })
            .collect();
        let stored = stored(&values);
        assert_eq!(stored[0], DICT);
        assert!(stored.len() < 1100, "{} bytes", stored.len());
        let mut column = Column::open(stored).expect("opens");
        let (dict, counts) = column.dictionary().expect("a dictionary");
        assert_eq!(dict.len(), 3);
        assert_eq!(counts.iter().sum::<u64>(), 1000);
        for value in &values {
            assert_eq!(&column.value(0).expect("value"), value);
        }
        assert!(column.value(0).is_err(), "no more values");
    }

    #[test]
    fn many_distinct_values_or_times_stay_plain() {
        let many: Vec<Value> = (0..300).map(Value::Integer).collect();
        assert_eq!(stored(&many)[0], PLAIN);
        let times = vec![Value::Timestamp(5); 10];
        assert_eq!(stored(&times)[0], PLAIN);
        let mut column = Column::open(stored(&many)).expect("opens");
        for value in &many {
            assert_eq!(&column.value(0).expect("value"), value);
        }
    }

    #[test]
    fn a_code_beyond_the_dictionary_is_an_error() {
        let mut stored = stored(&[Value::from("a"), Value::from("b")]).to_vec();
        let last = stored.len() - 1;
        stored[last] = 9;
        assert!(Column::open(Bytes::from(stored)).is_err());
    }
}
