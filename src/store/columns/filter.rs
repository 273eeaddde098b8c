//! A query evaluated on a block column by column: only the columns the query names are
//! decompressed and read, into one bit per row. The semantics are
//! [`Query::matches`](crate::store::Query::matches)'s, checked against it by the tests; a
//! query on a dotted path (which may descend into objects) answers `None` here and the
//! caller matches whole rows instead.

use std::collections::HashMap;

use bytes::Bytes;

use super::block::{BlockError, BlockMeta, FIXED_SECTIONS, FLAG_REPEATED_KEYS};
use super::codec::{string_encoding, Truncated};
use super::column::Column;
use super::rows::{read_shapes, shape_ids, Times};
use super::tokens::TokenIndex;
use crate::event::{fields, Value};
use crate::store::query::{glob_matches, in_range, number, tokens, Query};

/// A block opened for column-wise evaluation: its rows' shapes, and the columns read so far.
pub(super) struct BlockView<'a> {
    block: &'a BlockMeta,
    /// Rows' times, read a page at a time as values or results need them.
    times: Times<'a>,
    shape_ids: Vec<u32>,
    shapes: Vec<Vec<u32>>,
    columns: HashMap<usize, Bytes>,
    tokens: Option<TokenIndex<'a>>,
}

impl<'a> BlockView<'a> {
    pub(super) fn open(block: &'a BlockMeta) -> Result<BlockView<'a>, BlockError> {
        let shapes = read_shapes(block, block.section(2)?)?;
        let shape_ids = shape_ids(block, block.section(1)?, shapes.len())?;
        Ok(BlockView {
            block,
            times: Times::new(block),
            shape_ids,
            shapes,
            columns: HashMap::new(),
            tokens: None,
        })
    }

    fn rows(&self) -> usize {
        self.shape_ids.len()
    }

    /// Row `row`'s time.
    pub(super) fn time_of(&mut self, row: usize) -> Result<i64, BlockError> {
        self.times.get(row)
    }

    /// [`walk`](Self::walk) with the rows' times at hand, for values stored relative to
    /// them (the times are taken out while the walk borrows the view, and put back).
    fn walk_timed(
        &mut self,
        index: usize,
        column: Column,
        mut first: impl FnMut(usize, &mut Column, &mut RowTimes<'a>) -> Result<(), Truncated>,
    ) -> Result<(), BlockError> {
        let mut times = RowTimes {
            times: std::mem::replace(&mut self.times, Times::new(self.block)),
            failed: None,
        };
        let walked = self.walk(index, column, |row, column| first(row, column, &mut times));
        self.times = times.times;
        times.failed.map_or(walked, Err)
    }

    fn column_index(&self, name: &str) -> Option<usize> {
        self.block.columns().iter().position(|s| s.name == name)
    }

    fn open_column(&mut self, index: usize) -> Result<Column, BlockError> {
        let data = match self.columns.get(&index) {
            Some(data) => data.clone(),
            None => {
                let data = self.block.section(FIXED_SECTIONS + index)?;
                self.columns.insert(index, data.clone());
                data
            }
        };
        Column::open(data).map_err(|_| self.damaged())
    }

    fn damaged(&self) -> BlockError {
        BlockError::Damaged {
            path: self.block.path.clone(),
            what: "column",
        }
    }

    /// Walks the rows holding column `index`, opened as `column`: `first(row, column)`
    /// reads the row's first value of it (a repeated key's first, as `Map::get` finds it);
    /// the rest are skipped.
    fn walk(
        &mut self,
        index: usize,
        mut column: Column,
        mut first: impl FnMut(usize, &mut Column) -> Result<(), Truncated>,
    ) -> Result<(), BlockError> {
        let wanted = index as u32;
        let per_shape: Vec<usize> = self
            .shapes
            .iter()
            .map(|s| s.iter().filter(|&&c| c == wanted).count())
            .collect();
        let walked = (|| {
            for (row, &shape) in self.shape_ids.iter().enumerate() {
                let n = per_shape[shape as usize];
                if n == 0 {
                    continue;
                }
                first(row, &mut column)?;
                for _ in 1..n {
                    column.skip()?;
                }
            }
            Ok(())
        })();
        walked.map_err(|_: Truncated| self.damaged())
    }

    /// Calls `each(row, value)` for the first value of column `index` on every row holding
    /// it.
    fn each_value(
        &mut self,
        index: usize,
        mut each: impl FnMut(usize, &Value),
    ) -> Result<(), BlockError> {
        let column = self.open_column(index)?;
        self.walk_timed(index, column, |row, column, times| {
            let ts = times.for_next(column, row)?;
            column.with_next(ts, |value| each(row, value))
        })
    }

    /// Rows whose column `index` has a value `test` accepts: on a dictionary, `test` runs
    /// once per distinct value and each row compares a code.
    fn test_values(
        &mut self,
        index: usize,
        test: impl Fn(&Value) -> bool,
    ) -> Result<Vec<bool>, BlockError> {
        let column = self.open_column(index)?;
        self.test_column(index, column, test)
    }

    /// [`test_values`](Self::test_values) on column `index` already opened as `column`.
    fn test_column(
        &mut self,
        index: usize,
        column: Column,
        test: impl Fn(&Value) -> bool,
    ) -> Result<Vec<bool>, BlockError> {
        let mut bits = vec![false; self.rows()];
        if let Some((dict, _)) = column.dictionary() {
            let accepted: Vec<bool> = dict.iter().map(&test).collect();
            self.walk(index, column, |row, column| {
                bits[row] = accepted[column.next_code()? as usize];
                Ok(())
            })?;
        } else {
            self.walk_timed(index, column, |row, column, times| {
                let ts = times.for_next(column, row)?;
                bits[row] = column.with_next(ts, &test)?;
                Ok(())
            })?;
        }
        Ok(bits)
    }

    /// Calls `each(row, value)` for the first value of field `name` on every row holding it.
    pub(super) fn each_value_of(
        &mut self,
        name: &str,
        each: impl FnMut(usize, &Value),
    ) -> Result<(), BlockError> {
        match self.column_index(name) {
            Some(index) => self.each_value(index, each),
            None => Ok(()),
        }
    }

    /// For field `name` stored as a dictionary: calls `each(row, code)` with the code of the
    /// first value on every row holding it, and answers the dictionary's values (none when
    /// no row holds the field); `None`, reading no row, when the column is plain.
    pub(super) fn each_code_of(
        &mut self,
        name: &str,
        mut each: impl FnMut(usize, u8),
    ) -> Result<Option<Vec<Value>>, BlockError> {
        let Some(index) = self.column_index(name) else {
            return Ok(Some(Vec::new()));
        };
        let column = self.open_column(index)?;
        let Some(values) = column.dictionary().map(|(values, _)| values.to_vec()) else {
            return Ok(None);
        };
        self.walk(index, column, |row, column| {
            each(row, column.next_code()?);
            Ok(())
        })?;
        Ok(Some(values))
    }

    /// One bit per row: whether the row matches `query`; `None` when the query needs whole
    /// rows.
    pub(super) fn matches(&mut self, query: &Query) -> Result<Option<Vec<bool>>, BlockError> {
        if !supported(query) {
            return Ok(None);
        }
        self.eval(query).map(Some)
    }

    fn eval(&mut self, query: &Query) -> Result<Vec<bool>, BlockError> {
        let rows = self.rows();
        Ok(match query {
            Query::All => vec![true; rows],
            Query::And(parts) => {
                let mut bits = vec![true; rows];
                for part in parts {
                    if !bits.iter().any(|&b| b) {
                        break;
                    }
                    let more = self.eval(part)?;
                    bits.iter_mut().zip(more).for_each(|(a, b)| *a &= b);
                }
                bits
            }
            Query::Or(parts) => {
                let mut bits = vec![false; rows];
                for part in parts {
                    let more = self.eval(part)?;
                    bits.iter_mut().zip(more).for_each(|(a, b)| *a |= b);
                }
                bits
            }
            Query::Not(inner) => {
                let mut bits = self.eval(inner)?;
                bits.iter_mut().for_each(|b| *b = !*b);
                bits
            }
            Query::Term { field, value } | Query::Phrase { field, text: value }
                if text_field(field).is_some() && !value.contains('\u{FFFD}') =>
            {
                self.field_equals(text_field(field).unwrap_or_default(), value)?
            }
            _ => match field_clause(query) {
                Some((name, test)) => self.field_values(name, test)?,
                None => match query {
                    Query::Wildcard { pattern, .. } => {
                        let pattern = pattern.to_lowercase();
                        self.message_rows(|m| {
                            tokens(&m.to_text()).any(|t| glob_matches(&pattern, &t))
                        })?
                    }
                    Query::Term { value, .. } | Query::Phrase { text: value, .. } => {
                        self.message_phrase(value)?
                    }
                    _ => vec![false; self.rows()],
                },
            },
        })
    }

    /// Rows whose field `name` holds a value (or, for an array, an item) that `test` accepts.
    fn field_values(
        &mut self,
        name: &str,
        test: impl Fn(&Value) -> bool,
    ) -> Result<Vec<bool>, BlockError> {
        let Some(index) = self.column_index(name) else {
            return Ok(vec![false; self.rows()]);
        };
        self.test_values(index, |value| match value {
            Value::Null => false,
            Value::Array(items) => items.iter().any(&test),
            other => test(other),
        })
    }

    /// Rows whose field `name` holds `text` (or, for an array, an item that is): as
    /// [`field_values`](Self::field_values) with [`text_equals`], but a string in a plain
    /// column is compared as it is encoded, without building its value. (Exact for `text`
    /// without U+FFFD: a string that is not UTF-8 reads as text holding one.)
    fn field_equals(&mut self, name: &str, text: &str) -> Result<Vec<bool>, BlockError> {
        let Some(index) = self.column_index(name) else {
            return Ok(vec![false; self.rows()]);
        };
        let equals = |value: &Value| match value {
            Value::Null => false,
            Value::Array(items) => items.iter().any(|item| text_equals(item, text)),
            other => text_equals(other, text),
        };
        let column = self.open_column(index)?;
        if column.dictionary().is_some() {
            return self.test_column(index, column, equals);
        }
        let needle = string_encoding(text);
        let mut bits = vec![false; self.rows()];
        self.walk_timed(index, column, |row, column, times| {
            if let Some(encoded) = column.next_string_encoding()? {
                bits[row] = encoded == needle.as_slice();
                return Ok(());
            }
            let ts = times.for_next(column, row)?;
            bits[row] = column.with_next(ts, equals)?;
            Ok(())
        })?;
        Ok(bits)
    }

    fn message_rows(&mut self, test: impl Fn(&Value) -> bool) -> Result<Vec<bool>, BlockError> {
        let Some(index) = self.column_index(fields::MESSAGE) else {
            return Ok(vec![false; self.rows()]);
        };
        self.test_values(index, test)
    }

    /// Rows whose message holds `words`' tokens consecutively (every row when `words` has
    /// none, as the matcher says).
    fn message_phrase(&mut self, words: &str) -> Result<Vec<bool>, BlockError> {
        let wanted: Vec<String> = tokens(words).collect();
        if wanted.is_empty() {
            return Ok(vec![true; self.rows()]);
        }
        let ascii = wanted.iter().all(|w| w.is_ascii());
        let Some(index) = self.column_index(fields::MESSAGE) else {
            return Ok(vec![false; self.rows()]);
        };
        let found = std::cell::RefCell::new(Vec::<(usize, usize)>::new());
        let holds = |value: &Value| match value {
            Value::Bytes(text) if ascii && text.is_ascii() => {
                ascii_phrase(text, &wanted, &mut found.borrow_mut())
            }
            other => {
                let have: Vec<String> = tokens(&other.to_text()).collect();
                have.windows(wanted.len()).any(|w| w == wanted.as_slice())
            }
        };
        let Some(candidates) = self.indexed_rows(&wanted)? else {
            return self.test_values(index, holds);
        };
        if wanted.len() == 1 {
            // One word: the index's rows are the answer.
            return Ok(candidates);
        }
        // Rows holding every word: only their messages are checked for the phrase.
        let mut bits = vec![false; self.rows()];
        let column = self.open_column(index)?;
        self.walk_timed(index, column, |row, column, times| {
            if candidates[row] {
                let ts = times.for_next(column, row)?;
                bits[row] = column.with_next(ts, holds)?;
                Ok(())
            } else {
                column.skip()
            }
        })?;
        Ok(bits)
    }

    /// Rows holding every one of `words` by the block's word index; `None` when a word is
    /// not in it (seen once in the block, or not at all) or the index cannot be used.
    fn indexed_rows(&mut self, words: &[String]) -> Result<Option<Vec<bool>>, BlockError> {
        if self.block.flags & FLAG_REPEATED_KEYS != 0 {
            // A row's second message would count, where the matcher reads its first.
            return Ok(None);
        }
        if self.tokens.is_none() {
            self.tokens = Some(TokenIndex::open(self.block)?);
        }
        let Some(index) = &self.tokens else {
            return Ok(None);
        };
        let rows = self.shape_ids.len();
        let mut bits: Option<Vec<bool>> = None;
        for word in words {
            let Some(list) = index.rows(word)? else {
                return Ok(None);
            };
            let mut these = vec![false; rows];
            for row in list {
                if let Some(slot) = these.get_mut(row as usize) {
                    *slot = true;
                }
            }
            bits = Some(match bits {
                None => these,
                Some(mut all) => {
                    all.iter_mut().zip(these).for_each(|(a, b)| *a &= b);
                    all
                }
            });
        }
        Ok(bits)
    }
}

/// A block's times during a column walk, and the first failure to read them (the walk
/// itself only knows a value could not be read).
struct RowTimes<'a> {
    times: Times<'a>,
    failed: Option<BlockError>,
}

impl RowTimes<'_> {
    /// The time to read `column`'s next value (on row `row`) with: its row's when the value
    /// needs it, else 0 (no time is read).
    fn for_next(&mut self, column: &Column, row: usize) -> Result<i64, Truncated> {
        if !column.next_needs_row_time() {
            return Ok(0);
        }
        self.times.get(row).map_err(|e| {
            self.failed = Some(e);
            Truncated
        })
    }
}

/// Whether the query can be answered column by column: dotted paths may descend into
/// objects, so those go row by row.
fn supported(query: &Query) -> bool {
    match query {
        Query::All => true,
        Query::And(parts) | Query::Or(parts) => parts.iter().all(supported),
        Query::Not(inner) => supported(inner),
        Query::Term { field, .. } | Query::Phrase { field, .. } | Query::Wildcard { field, .. } => {
            field.as_deref().is_none_or(plain_name)
        }
        Query::Range { field, .. } => plain_name(field),
    }
}

fn plain_name(name: &str) -> bool {
    !name.contains('.')
}

/// `None` when the field is the message text (bare words and `message:`).
fn text_field(field: &Option<String>) -> Option<&str> {
    match field.as_deref() {
        None | Some(fields::MESSAGE) => None,
        Some(name) => Some(name),
    }
}

/// A test of one value, as a query's clause on a field makes it.
pub(super) type ValueTest<'a> = Box<dyn Fn(&Value) -> bool + 'a>;

/// A clause on one field other than the message text, as the field's name and a test of
/// one of its values (an array's items are each tested); `None` for a message clause or a
/// compound query.
pub(super) fn field_clause(query: &Query) -> Option<(&str, ValueTest<'_>)> {
    match query {
        Query::Term { field, value } | Query::Phrase { field, text: value } => {
            let name = text_field(field)?;
            Some((name, Box::new(move |v: &Value| text_equals(v, value))))
        }
        Query::Wildcard { field, pattern } => {
            let name = text_field(field)?;
            Some((
                name,
                Box::new(move |v: &Value| match v.as_str() {
                    Some(text) => glob_matches(pattern, text),
                    None => glob_matches(pattern, &v.to_text()),
                }),
            ))
        }
        Query::Range {
            field,
            lower,
            upper,
        } => Some((
            field,
            Box::new(move |v: &Value| number(v).is_some_and(|n| in_range(n, *lower, *upper))),
        )),
        _ => None,
    }
}

/// `value.to_text() == text`, without building the text for strings and integers.
pub(super) fn text_equals(value: &Value, text: &str) -> bool {
    match value {
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s == text,
            Err(_) => String::from_utf8_lossy(b) == text,
        },
        Value::Integer(i) => {
            let mut buf = itoa_buffer();
            buf.format(*i) == text
        }
        other => other.to_text() == text,
    }
}

fn itoa_buffer() -> IntText {
    IntText([0; 20])
}

/// Decimal text of an i64 in a stack buffer.
struct IntText([u8; 20]);

impl IntText {
    fn format(&mut self, n: i64) -> &str {
        let mut at = self.0.len();
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            self.0[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            // 20 digits is u64::MAX's length; i64's magnitude has at most 19, so a sign fits.
            at -= 1;
            self.0[at] = b'-';
        }
        std::str::from_utf8(&self.0[at..]).unwrap_or("")
    }
}

/// Whether ASCII `text`'s tokens (runs of alphanumerics, compared without case) hold
/// `wanted` (lowercase) consecutively; `found` is scratch for the tokens' ranges.
fn ascii_phrase(text: &[u8], wanted: &[String], found: &mut Vec<(usize, usize)>) -> bool {
    found.clear();
    let mut start = None;
    for (i, b) in text.iter().enumerate() {
        match (b.is_ascii_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                found.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        found.push((s, text.len()));
    }
    found.windows(wanted.len()).any(|window| {
        window
            .iter()
            .zip(wanted)
            .all(|(&(s, e), want)| text[s..e].eq_ignore_ascii_case(want.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_as_their_decimal_text() {
        for n in [0, 7, -7, 1234567890, i64::MAX, i64::MIN] {
            assert_eq!(IntText([0; 20]).format(n), n.to_string());
        }
    }
}
