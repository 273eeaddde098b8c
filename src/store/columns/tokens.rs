//! A block's index of message words: each word that occurs twice or more in the block, with
//! the rows holding it. A one-word query reads its rows (or, for a block only counted, its
//! count) instead of every message; a phrase reads the rows holding all of its words and
//! checks only those messages. Words seen once (ids, numbers) are left to the
//! bloom filter and a read of the column: they are most of a block's distinct words and few
//! of its occurrences.
//!
//! The section is paged ([`block`](super::block)): the first page is a directory, so that
//! counting a word (every block only counted does) decompresses only it, and the words'
//! rows follow in pages of about [`ROWS_PAGE_BYTES`], each word's within one page.
//!
//! ```text
//! directory: varint row pages | per row page: varint its first word's number |
//!            varint n | n × (varint length | word | varint rows | varint row bytes)
//! row pages: per word, in the directory's order: its rows as varint differences
//! ```
//!
//! Blocks written before pages hold the first layout, read whole:
//! `varint n | n × (varint length | word | varint rows | rows as varint differences)`.

use std::collections::HashMap;

use bytes::Bytes;

use super::block::{BlockError, BlockMeta, RawSection, MAX_PAGES, TOKENS, TOKENS_SECTION};
use super::bloom;
use super::codec::{put_varint, Reader, Truncated};
use super::terms::HashSetOfHashes;
use crate::event::Value;
use crate::store::query::tokens;

/// Row pages are cut at the first word's end past this many bytes (or more, to stay within
/// [`MAX_PAGES`]).
const ROWS_PAGE_BYTES: usize = 64 << 10;

/// The index of `message`, the message column's values (after its tag), whose n-th value is
/// on row `message_rows[n]`; `repeated` holds the hashes of the block's words seen twice or
/// more.
pub(super) fn build(
    message: Bytes,
    message_rows: &[u32],
    repeated: &HashSetOfHashes,
) -> RawSection {
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut rows: Vec<Vec<u32>> = Vec::new();
    let mut index: HashMap<u64, usize, foldhash::fast::RandomState> = HashMap::default();
    let mut reader = Reader::new(message);
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
    let mut row_bytes = Vec::with_capacity(words.len());
    let mut all_rows = Vec::new();
    for list in &rows {
        let before = all_rows.len();
        let mut prev = 0;
        for &row in list {
            put_varint(&mut all_rows, u64::from(row - prev));
            prev = row;
        }
        row_bytes.push(all_rows.len() - before);
    }
    let page_bytes = ROWS_PAGE_BYTES.max(all_rows.len().div_ceil(MAX_PAGES - 1));
    // Each row page's first word, and where the page starts among the rows.
    let mut firsts: Vec<(usize, usize)> = Vec::new();
    let mut in_page = page_bytes;
    let mut at = 0;
    for (i, &n) in row_bytes.iter().enumerate() {
        if in_page >= page_bytes {
            firsts.push((i, at));
            in_page = 0;
        }
        in_page += n;
        at += n;
    }
    let mut out = Vec::with_capacity(all_rows.len() + words.len() * 12 + 16);
    put_varint(&mut out, firsts.len() as u64);
    for &(word, _) in &firsts {
        put_varint(&mut out, word as u64);
    }
    put_varint(&mut out, words.len() as u64);
    for ((word, list), n) in words.iter().zip(&rows).zip(&row_bytes) {
        put_varint(&mut out, word.len() as u64);
        out.extend_from_slice(word);
        put_varint(&mut out, list.len() as u64);
        put_varint(&mut out, *n as u64);
    }
    let directory = out.len();
    out.extend_from_slice(&all_rows);
    RawSection {
        name: TOKENS.to_string(),
        bytes: Bytes::from(out),
        page_starts: firsts.iter().map(|&(_, at)| directory + at).collect(),
    }
}

/// Where a word's rows are: how many, in which row page, at which bytes of it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    count: u32,
    page: usize,
    start: usize,
    len: usize,
}

/// A directory, read: looked up by a walk through it (a few words per query), with no map
/// of every word built.
struct Directory {
    data: Bytes,
    /// Each row page's first word.
    firsts: Vec<u64>,
    /// Where the entries begin.
    entries: usize,
}

impl Directory {
    fn open(data: Bytes) -> Result<Directory, Truncated> {
        let mut reader = Reader::new(data.clone());
        let pages = reader.varint()? as usize;
        if pages >= MAX_PAGES {
            return Err(Truncated);
        }
        let mut firsts = Vec::with_capacity(pages);
        for _ in 0..pages {
            firsts.push(reader.varint()?);
        }
        Ok(Directory {
            data,
            firsts,
            entries: reader.position(),
        })
    }

    fn find(&self, word: &[u8]) -> Result<Option<Entry>, Truncated> {
        let mut reader = Reader::new(self.data.slice(self.entries..));
        let n = reader.varint()?;
        let mut page = 0;
        let mut start = 0;
        for i in 0..n {
            if self.firsts.get(page + 1) == Some(&i) {
                page += 1;
                start = 0;
            }
            let len = reader.varint()? as usize;
            let this = reader.take(len)?;
            let count = u32::try_from(reader.varint()?).map_err(|_| Truncated)?;
            let bytes = reader.varint()? as usize;
            if this == word {
                return Ok(Some(Entry {
                    count,
                    page,
                    start,
                    len: bytes,
                }));
            }
            start = start.checked_add(bytes).ok_or(Truncated)?;
        }
        Ok(None)
    }
}

/// `count` rows as varint differences.
fn decode_rows(data: Bytes, count: u32) -> Result<Vec<u32>, Truncated> {
    let mut reader = Reader::new(data);
    let mut rows = Vec::with_capacity(count as usize);
    let mut row = 0u32;
    for _ in 0..count {
        let delta = reader.varint()?;
        row = row.saturating_add(u32::try_from(delta).unwrap_or(u32::MAX));
        rows.push(row);
    }
    Ok(rows)
}

/// A block's word index, read.
pub(super) struct TokenIndex<'a> {
    block: &'a BlockMeta,
    layout: Layout,
}

enum Layout {
    Paged(Directory),
    /// The first layout, read whole: each word's row count and where its rows lie.
    Whole {
        data: Bytes,
        words: HashMap<Bytes, (u32, usize), foldhash::fast::RandomState>,
    },
}

impl Layout {
    fn whole(data: Bytes) -> Result<Layout, Truncated> {
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
        Ok(Layout::Whole { data, words })
    }
}

impl<'a> TokenIndex<'a> {
    /// The block's index: only its directory is read.
    pub(super) fn open(block: &'a BlockMeta) -> Result<TokenIndex<'a>, BlockError> {
        let section = &block.sections[TOKENS_SECTION];
        let damaged = || block.damaged("word index");
        let layout = if block.is_paged() {
            let (data, _) = block.read_page(section, 0)?;
            Layout::Paged(Directory::open(data).map_err(|_| damaged())?)
        } else {
            Layout::whole(block.read(section)?).map_err(|_| damaged())?
        };
        Ok(TokenIndex { block, layout })
    }

    fn damaged(&self) -> BlockError {
        self.block.damaged("word index")
    }

    /// Rows holding `word` (lowercase), when the index has it.
    pub(super) fn count(&self, word: &str) -> Result<Option<u32>, BlockError> {
        match &self.layout {
            Layout::Paged(directory) => Ok(directory
                .find(word.as_bytes())
                .map_err(|_| self.damaged())?
                .map(|e| e.count)),
            Layout::Whole { words, .. } => Ok(words.get(word.as_bytes()).map(|&(n, _)| n)),
        }
    }

    /// The rows holding `word`, in order, when the index has it.
    pub(super) fn rows(&self, word: &str) -> Result<Option<Vec<u32>>, BlockError> {
        let (data, count) = match &self.layout {
            Layout::Paged(directory) => {
                let found = directory.find(word.as_bytes());
                let Some(entry) = found.map_err(|_| self.damaged())? else {
                    return Ok(None);
                };
                let section = &self.block.sections[TOKENS_SECTION];
                let (page, _) = self.block.read_page(section, 1 + entry.page)?;
                let end = entry.start.saturating_add(entry.len);
                if end > page.len() {
                    return Err(self.damaged());
                }
                (page.slice(entry.start..end), entry.count)
            }
            Layout::Whole { data, words } => match words.get(word.as_bytes()) {
                Some(&(count, at)) => (data.slice(at..), count),
                None => return Ok(None),
            },
        };
        decode_rows(data, count)
            .map(Some)
            .map_err(|_| self.damaged())
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::put_value;
    use super::super::terms::TermHashes;
    use super::*;

    /// The index of `messages`, the n-th on row `rows[n]`, as its pages.
    fn pages_of(messages: &[String], rows: &[u32]) -> Vec<Bytes> {
        let mut raw = Vec::new();
        let mut terms = TermHashes::new();
        for m in messages {
            put_value(&mut raw, &Value::from(m.as_str()), 0, 0);
            for word in tokens(m) {
                terms.word(bloom::hash(word.as_bytes()));
            }
        }
        let repeated = terms.seal().repeated;
        let section = build(Bytes::from(raw), rows, &repeated);
        let mut bounds = vec![0];
        bounds.extend(&section.page_starts);
        bounds.push(section.bytes.len());
        bounds
            .windows(2)
            .map(|w| section.bytes.slice(w[0]..w[1]))
            .collect()
    }

    fn lookup(pages: &[Bytes], word: &str) -> Option<Vec<u32>> {
        let directory = Directory::open(pages[0].clone()).expect("directory");
        let entry = directory.find(word.as_bytes()).expect("reads")?;
        let page = &pages[1 + entry.page];
        let rows = decode_rows(
            page.slice(entry.start..entry.start + entry.len),
            entry.count,
        )
        .expect("rows");
        assert_eq!(rows.len() as u32, entry.count);
        Some(rows)
    }

    #[test]
    fn words_seen_twice_or_more_are_indexed_with_their_rows() {
        let messages = [
            "Timeout on DB",
            "db ok",
            "timeout again",
            "unique Ünïcode word",
            "timeout",
        ]
        .map(String::from);
        let pages = pages_of(&messages, &[0, 3, 4, 7, 9]);
        assert_eq!(pages.len(), 2, "the directory and one page of rows");
        assert_eq!(lookup(&pages, "timeout"), Some(vec![0, 4, 9]));
        assert_eq!(lookup(&pages, "db"), Some(vec![0, 3]));
        assert_eq!(lookup(&pages, "unique"), None, "seen once");
        assert_eq!(lookup(&pages, "ünïcode"), None, "seen once");
        assert_eq!(lookup(&pages, "nothing"), None);
    }

    #[test]
    fn a_large_index_is_cut_into_pages_at_word_ends() {
        let n = 30_000u32;
        let messages: Vec<String> = (0..2 * n)
            .map(|i| format!("w{} x{}", i % n, i % 7))
            .collect();
        let rows: Vec<u32> = (0..2 * n).collect();
        let pages = pages_of(&messages, &rows);
        assert!(pages.len() > 3, "{} pages", pages.len());
        assert!(pages.len() <= MAX_PAGES);
        for i in [0, 1, n / 2, n - 1] {
            assert_eq!(lookup(&pages, &format!("w{i}")), Some(vec![i, i + n]));
        }
        let sevens: Vec<u32> = (0..2 * n).filter(|r| r % 7 == 3).collect();
        assert_eq!(lookup(&pages, "x3"), Some(sevens));
    }
}
