//! Rows into a block: each field's values appended to its column as they come, the row's
//! shape (which columns, in which order) remembered, and its bloom terms gathered.

use std::collections::HashMap;

use compact_str::CompactString;

use bytes::Bytes;

use super::block::{self, Encoded, RawSection, FLAG_DEEP, FLAG_REPEATED_KEYS, PAGE_ROWS};
use super::bloom;
use super::codec::{put_value, put_varint, zigzag};
use super::column;
use super::terms::TermHashes;
use super::tokens;
use crate::event::{fields, Value};

/// Nested objects deeper than this add no `name=value` terms to the bloom filter (the block
/// is flagged, and dotted field terms do not skip it).
const BLOOM_DEPTH: usize = 8;

pub(super) struct Builder {
    first_seq: u64,
    rows: u32,
    min_ts: i64,
    max_ts: i64,
    prev_ts: i64,
    flags: u32,
    ts: Vec<u8>,
    /// Where the times of each page after the first begin in `ts`.
    ts_page_starts: Vec<usize>,
    shape_ids: Vec<u8>,
    shapes: Vec<Vec<u32>>,
    shape_index: HashMap<Vec<u32>, u32, foldhash::fast::RandomState>,
    names: Vec<CompactString>,
    name_index: HashMap<CompactString, u32, foldhash::fast::RandomState>,
    /// Bytes each column took in the previous block, to size this block's buffers once.
    hints: HashMap<CompactString, usize, foldhash::fast::RandomState>,
    columns: Vec<Vec<u8>>,
    /// Per column, where its pages after the first begin (one per [`PAGE_ROWS`] rows).
    page_starts: Vec<Vec<usize>>,
    terms: TermHashes,
    /// The row being built: its event time, its columns so far.
    row_ts: i64,
    row_shape: Vec<u32>,
    /// The column the n-th field of the last row went to: rows of one source repeat their
    /// layout, so most lookups are one comparison.
    last_columns: Vec<u32>,
    text: String,
    path: String,
    /// The row of each value of the message column, for the word index.
    message_rows: Vec<u32>,
}

impl Builder {
    pub(super) fn new(first_seq: u64) -> Builder {
        Builder {
            first_seq,
            rows: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            prev_ts: 0,
            flags: 0,
            ts: Vec::with_capacity(4096),
            ts_page_starts: Vec::new(),
            shape_ids: Vec::with_capacity(4096),
            shapes: Vec::new(),
            shape_index: HashMap::default(),
            names: Vec::new(),
            name_index: HashMap::default(),
            hints: HashMap::default(),
            columns: Vec::new(),
            page_starts: Vec::new(),
            terms: TermHashes::new(),
            row_ts: 0,
            row_shape: Vec::new(),
            last_columns: Vec::new(),
            text: String::with_capacity(128),
            path: String::with_capacity(64),
            message_rows: Vec::new(),
        }
    }

    /// The next block's builder, its buffers sized as this block's were.
    pub(super) fn successor(&self, first_seq: u64) -> Builder {
        let mut next = Builder::new(first_seq);
        next.ts.reserve(self.ts.len());
        next.shape_ids.reserve(self.shape_ids.len());
        next.terms.reserve_like(&self.terms);
        next.message_rows.reserve(self.message_rows.len());
        next.hints = self
            .names
            .iter()
            .zip(&self.columns)
            .map(|(name, column)| (name.clone(), column.len()))
            .collect();
        next
    }

    pub(super) fn rows(&self) -> usize {
        self.rows as usize
    }

    pub(super) fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Bytes held, to bound a block by memory as well as by rows.
    pub(super) fn bytes(&self) -> usize {
        self.columns.iter().map(Vec::len).sum::<usize>() + self.ts.len() + self.terms.len() * 8
    }

    pub(super) fn begin_row(&mut self, ts: i64) {
        if self.rows > 0 && self.rows as usize % PAGE_ROWS == 0 {
            for (starts, column) in self.page_starts.iter_mut().zip(&self.columns) {
                starts.push(column.len());
            }
            // Each page's times count from 0, so that a page decodes on its own.
            self.ts_page_starts.push(self.ts.len());
            self.prev_ts = 0;
        }
        self.row_ts = ts;
        self.row_shape.clear();
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        put_varint(&mut self.ts, zigzag(ts.wrapping_sub(self.prev_ts)));
        self.prev_ts = ts;
    }

    pub(super) fn field(&mut self, name: &str, value: &Value) {
        if name == fields::MESSAGE {
            self.message_rows.push(self.rows);
        }
        let column = self.column(name);
        self.row_shape.push(column);
        put_value(&mut self.columns[column as usize], value, self.row_ts, 0);
        self.add_terms(name, value);
    }

    pub(super) fn end_row(&mut self) {
        let id = match self.shape_index.get(&self.row_shape) {
            Some(&id) => id,
            None => {
                let mut sorted = self.row_shape.clone();
                sorted.sort_unstable();
                if sorted.windows(2).any(|w| w[0] == w[1]) {
                    self.flags |= FLAG_REPEATED_KEYS;
                }
                let id = self.shapes.len() as u32;
                self.shapes.push(self.row_shape.clone());
                self.shape_index.insert(self.row_shape.clone(), id);
                id
            }
        };
        put_varint(&mut self.shape_ids, u64::from(id));
        self.rows += 1;
    }

    fn column(&mut self, name: &str) -> u32 {
        let n = self.row_shape.len();
        if let Some(&last) = self.last_columns.get(n) {
            if self.names[last as usize] == name {
                return last;
            }
        }
        let column = match self.name_index.get(name) {
            Some(&c) => c,
            None => {
                let c = self.names.len() as u32;
                self.names.push(name.into());
                self.name_index.insert(name.into(), c);
                let size = self.hints.get(name).copied().unwrap_or(1024);
                self.columns.push(column::new_plain(size));
                // The pages begun before this column's first value hold none of it.
                let pages_begun = self.rows as usize / PAGE_ROWS;
                self.page_starts.push(vec![1; pages_begun]);
                c
            }
        };
        if n < self.last_columns.len() {
            self.last_columns[n] = column;
        } else {
            self.last_columns.push(column);
        }
        column
    }

    /// What a term query may ask of this field: the message's tokens, or `name=value` for
    /// the field and every nested path (as `Map::get_path` reaches them; an array's items
    /// each).
    fn add_terms(&mut self, name: &str, value: &Value) {
        if name == fields::TIMESTAMP {
            return;
        }
        if name == fields::MESSAGE {
            // The usual message, UTF-8 text: its words are read where they lie, not copied.
            match value.as_str() {
                Some(text) => add_tokens(&mut self.terms, text),
                None => {
                    self.text.clear();
                    value.write_text(&mut self.text);
                    add_tokens(&mut self.terms, &self.text);
                }
            }
            if !matches!(value, Value::Object(_)) {
                return;
            }
        }
        self.path.clear();
        self.path.push_str(name);
        let mut path = std::mem::take(&mut self.path);
        self.add_pairs(&mut path, value, 0);
        self.path = path;
    }

    fn add_pairs(&mut self, path: &mut String, value: &Value, depth: usize) {
        match value {
            Value::Null => {}
            Value::Object(map) => {
                if depth >= BLOOM_DEPTH {
                    self.flags |= FLAG_DEEP;
                    return;
                }
                let len = path.len();
                for (key, inner) in map.iter() {
                    path.push('.');
                    path.push_str(key);
                    self.add_pairs(path, inner, depth + 1);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for item in items {
                    if !matches!(item, Value::Array(_) | Value::Object(_)) {
                        self.add_pair(path, item);
                    }
                }
            }
            _ => self.add_pair(path, value),
        }
    }

    fn add_pair(&mut self, path: &str, value: &Value) {
        let h = match value.as_str() {
            Some(text) => bloom::hash_pair(path, text.as_bytes()),
            None => {
                self.text.clear();
                value.write_text(&mut self.text);
                bloom::hash_pair(path, self.text.as_bytes())
            }
        };
        self.terms.pair(h);
    }

    pub(super) fn finish(self) -> Encoded {
        let mut sections = Vec::with_capacity(block::FIXED_SECTIONS + self.columns.len());
        sections.push(RawSection {
            name: block::TS.to_string(),
            bytes: Bytes::from(self.ts),
            page_starts: self.ts_page_starts,
        });
        sections.push(RawSection::whole(block::SHAPE, self.shape_ids));
        sections.push(RawSection::whole(
            block::SHAPES,
            block::encode_shapes(&self.shapes),
        ));
        let terms = self.terms.seal();
        let filter = bloom::build(&terms.all, terms.all.len());
        let page_bytes = filter.len() / bloom::pages_for(filter.len());
        sections.push(RawSection {
            name: block::BLOOM.to_string(),
            page_starts: (page_bytes..filter.len()).step_by(page_bytes).collect(),
            bytes: Bytes::from(filter),
        });
        let columns: Vec<Bytes> = self.columns.into_iter().map(Bytes::from).collect();
        let message = self
            .names
            .iter()
            .position(|n| n == fields::MESSAGE)
            .map(|c| columns[c].slice(1..))
            .unwrap_or_default();
        sections.push(tokens::build(message, &self.message_rows, &terms.repeated));
        for ((name, column), starts) in self.names.iter().zip(columns).zip(self.page_starts) {
            sections.push(column::encode(name, column, starts));
        }
        Encoded {
            rows: self.rows,
            first_seq: self.first_seq,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            flags: self.flags,
            sections,
        }
    }
}

/// The message's tokens as [`tokens`](crate::store::query::tokens) cuts them (runs of
/// alphanumerics, lowercased), hashed without a string per token when the text is ASCII.
pub(super) fn add_tokens(terms: &mut TermHashes, text: &str) {
    if !text.is_ascii() {
        for token in crate::store::query::tokens(text) {
            terms.word(bloom::hash(token.as_bytes()));
        }
        return;
    }
    let mut token = [0u8; 64];
    for word in text
        .as_bytes()
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = if word.len() <= token.len() {
            let lower = &mut token[..word.len()];
            lower.copy_from_slice(word);
            lower.make_ascii_lowercase();
            bloom::hash(lower)
        } else {
            bloom::hash(word.to_ascii_lowercase().as_slice())
        };
        terms.word(h);
    }
}
