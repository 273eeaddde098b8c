//! A block's index of message words: each word that occurs twice or more in the block, with
//! the rows holding it. A one-word query reads its rows (or, for a block only counted, its
//! count) instead of every message; a phrase reads the rows holding all of its words and
//! checks only those messages. Words seen once (ids, numbers) are left to the
//! bloom filter and a read of the column: they are most of a block's distinct words and few
//! of its occurrences.
//!
//! ```text
//! varint n | n × (varint length | word | varint rows | rows as varint differences)
//! ```

use std::collections::HashMap;

use bytes::Bytes;

use super::bloom;
use super::codec::{put_varint, Reader, Truncated};
use super::terms::HashSetOfHashes;
use crate::event::Value;
use crate::store::query::tokens;

/// The index of `message`, the raw message column whose n-th value is on row
/// `message_rows[n]`; `repeated` holds the hashes of the block's words seen twice or more.
pub(super) fn build(message: &[u8], message_rows: &[u32], repeated: &HashSetOfHashes) -> Vec<u8> {
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut rows: Vec<Vec<u32>> = Vec::new();
    let mut index: HashMap<u64, usize, foldhash::fast::RandomState> = HashMap::default();
    let mut reader = Reader::new(Bytes::copy_from_slice(message));
    let mut lower = Vec::with_capacity(64);
    let mut add = |word: &[u8], row: u32| {
        let h = bloom::hash(word);
        if !repeated.contains(&h) {
            return;
        }
        let at = *index.entry(h).or_insert_with(|| {
            words.push(word.to_vec());
            rows.push(Vec::new());
            words.len() - 1
        });
        // A hash shared by two words would mix their rows: keep the first word's only.
        if words[at] == word && rows[at].last() != Some(&row) {
            rows[at].push(row);
        }
    };
    for &row in message_rows {
        let Ok(value) = reader.value(0, 0) else {
            break;
        };
        match &value {
            Value::Bytes(text) if text.is_ascii() => {
                for word in text
                    .split(|b| !b.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    lower.clear();
                    lower.extend_from_slice(word);
                    lower.make_ascii_lowercase();
                    add(&lower, row);
                }
            }
            other => {
                for word in tokens(&other.to_text()) {
                    add(word.as_bytes(), row);
                }
            }
        }
    }
    let mut out = Vec::new();
    put_varint(&mut out, words.len() as u64);
    for (word, rows) in words.iter().zip(&rows) {
        put_varint(&mut out, word.len() as u64);
        out.extend_from_slice(word);
        put_varint(&mut out, rows.len() as u64);
        let mut prev = 0;
        for &row in rows {
            put_varint(&mut out, u64::from(row - prev));
            prev = row;
        }
    }
    out
}

/// A block's word index, read: each word's row count and where its rows lie.
pub(super) struct TokenIndex {
    data: Bytes,
    words: HashMap<Bytes, (u32, usize), foldhash::fast::RandomState>,
}

impl TokenIndex {
    pub(super) fn open(data: Bytes) -> Result<TokenIndex, Truncated> {
        let mut reader = Reader::new(data.clone());
        let n = reader.varint()? as usize;
        let mut words = HashMap::with_capacity_and_hasher(
            n.min(data.len()),
            foldhash::fast::RandomState::default(),
        );
        for _ in 0..n {
            let len = reader.varint()? as usize;
            let word = reader.take(len)?;
            let count = u32::try_from(reader.varint()?).map_err(|_| Truncated)?;
            words.insert(word, (count, reader.position()));
            for _ in 0..count {
                reader.varint()?;
            }
        }
        Ok(TokenIndex { data, words })
    }

    /// Rows holding `word` (lowercase), when the index has it.
    pub(super) fn count(&self, word: &str) -> Option<u32> {
        self.words.get(word.as_bytes()).map(|&(count, _)| count)
    }

    pub(super) fn rows(&self, word: &str) -> Option<Result<Vec<u32>, Truncated>> {
        let &(count, at) = self.words.get(word.as_bytes())?;
        let mut reader = Reader::new(self.data.slice(at..));
        let mut rows = Vec::with_capacity(count as usize);
        let mut row = 0u32;
        for _ in 0..count {
            match reader.varint() {
                Ok(delta) => {
                    row = row.saturating_add(u32::try_from(delta).unwrap_or(u32::MAX));
                    rows.push(row);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::put_value;
    use super::super::terms::TermHashes;
    use super::*;

    #[test]
    fn words_seen_twice_or_more_are_indexed_with_their_rows() {
        let messages = [
            "Timeout on DB",
            "db ok",
            "timeout again",
            "unique Ünïcode word",
            "timeout",
        ];
        let mut raw = Vec::new();
        let mut terms = TermHashes::new();
        for m in messages {
            put_value(&mut raw, &Value::from(m), 0, 0);
            for word in tokens(m) {
                terms.word(bloom::hash(word.as_bytes()));
            }
        }
        let repeated = terms.seal().repeated;
        let rows = [0u32, 3, 4, 7, 9];
        let index = TokenIndex::open(Bytes::from(build(&raw, &rows, &repeated))).expect("opens");
        assert_eq!(index.count("timeout"), Some(3));
        assert_eq!(
            index.rows("timeout").expect("indexed").expect("reads"),
            [0, 4, 9]
        );
        assert_eq!(index.rows("db").expect("indexed").expect("reads"), [0, 3]);
        assert_eq!(index.count("unique"), None, "seen once");
        assert_eq!(index.count("ünïcode"), None, "seen once");
        assert_eq!(index.count("nothing"), None);
    }
}
