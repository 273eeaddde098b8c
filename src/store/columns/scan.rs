//! Queries on the column engine: blocks skipped by time range and bloom filter, the rest
//! read row by row and matched with [`Query::matches`] (the live tail's semantics, which the
//! tantivy engine's search is tested to equal).

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;

use super::block::{BlockMeta, BLOOM_SECTION, FLAG_DEEP, FLAG_REPEATED_KEYS};
use super::bloom;
use super::column::Column;
use super::fetch::rows_at;
use super::filter::field_clause;
use super::filter::BlockView;
use super::rows::{times, Rows};
use super::tokens::TokenIndex;
use super::Partition;
use crate::event::{fields, Event, Map, Value};
use crate::store::query::{tokens, Query};
use crate::store::search::{
    decode_cursor, encode_cursor, Budget, Key, SearchPage, SearchRequest, MAX_LIMIT,
};
use crate::store::StoreError;

/// Whether a block (flags `flags`) whose bloom filter answers `may_contain` may hold a
/// match: false only when a term the query requires is surely absent.
fn may_match(query: &Query, flags: u32, may_contain: &mut impl FnMut(u64) -> bool) -> bool {
    match query {
        Query::All | Query::Not(_) | Query::Wildcard { .. } | Query::Range { .. } => true,
        Query::And(parts) => parts.iter().all(|q| may_match(q, flags, may_contain)),
        Query::Or(parts) => parts.iter().any(|q| may_match(q, flags, may_contain)),
        Query::Term { field, value } | Query::Phrase { field, text: value } => {
            match field.as_deref() {
                None | Some(fields::MESSAGE) => {
                    tokens(value).all(|t| may_contain(bloom::hash(t.as_bytes())))
                }
                Some(fields::TIMESTAMP) => true,
                Some(name) => {
                    // Arrays and objects as a whole are not in the filter, nor are paths
                    // deeper than it looks.
                    value.starts_with(['[', '{'])
                        || (flags & FLAG_DEEP != 0 && name.contains('.'))
                        || may_contain(bloom::hash_pair(name, value.as_bytes()))
                }
            }
        }
    }
}

/// The blocks of `partitions` whose times meet `[from, to)`, with their partition's start.
pub(super) fn blocks_in(
    partitions: &[Arc<Partition>],
    from: Option<i64>,
    to: Option<i64>,
) -> Vec<(i64, Arc<BlockMeta>)> {
    partitions
        .iter()
        .flat_map(|p| p.blocks().into_iter().map(|b| (p.start_secs, b)))
        .filter(|(_, b)| from.is_none_or(|f| b.max_ts >= f) && to.is_none_or(|t| b.min_ts < t))
        .collect()
}

fn in_range(ts: i64, from: Option<i64>, to: Option<i64>) -> bool {
    from.is_none_or(|f| ts >= f) && to.is_none_or(|t| ts < t)
}

/// Whether every row of `block` is in `[from, to)`, by its header's time range.
pub(super) fn wholly_inside(block: &BlockMeta, from: Option<i64>, to: Option<i64>) -> bool {
    in_range(block.min_ts, from, to) && in_range(block.max_ts, from, to)
}

/// Whether the block may hold a match: reads the pages of its bloom filter that the query's
/// terms pick (none for `All`).
pub(super) fn worth_reading(query: &Query, block: &BlockMeta) -> Result<bool, StoreError> {
    if matches!(query, Query::All) {
        return Ok(true);
    }
    let section = &block.sections[BLOOM_SECTION];
    let pages = if block.is_paged() {
        bloom::pages_for(section.raw_bytes())
    } else {
        1
    };
    let mut read: Vec<(usize, bytes::Bytes)> = Vec::new();
    let mut failed = None;
    let may = may_match(query, block.flags, &mut |h| {
        let page = bloom::page_of(h, pages);
        if let Some((_, bits)) = read.iter().find(|(p, _)| *p == page) {
            return bloom::may_contain(bits, h);
        }
        match block.read_page(section, page) {
            Ok((bits, _)) => {
                let may = bloom::may_contain(&bits, h);
                read.push((page, bits));
                may
            }
            Err(e) => {
                failed = Some(e);
                true
            }
        }
    });
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(may),
    }
}

/// The rows of `block` in `[from, to)` that match, with their times, in row order. Charges
/// the matches to `budget`, as the tantivy engine charges the matches it visits (`[api]
/// max_scanned_events` bounds matching events; the time bound, the rest).
pub(super) fn matching_rows(
    block: &BlockMeta,
    query: &Query,
    from: Option<i64>,
    to: Option<i64>,
    budget: &Budget,
) -> Result<Vec<(usize, i64)>, StoreError> {
    budget.check()?;
    let rows = block_matches(block, query, from, to)?;
    budget.spend(rows.len() as u64);
    budget.check()?;
    Ok(rows)
}

/// The rows of `block` in `[from, to)` that match, with their times, in row order. Reads
/// only the columns the query names when it can ([`BlockView`]), whole rows otherwise.
fn block_matches(
    block: &BlockMeta,
    query: &Query,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Vec<(usize, i64)>, StoreError> {
    if !worth_reading(query, block)? {
        return Ok(Vec::new());
    }
    if matches!(query, Query::All) {
        return Ok(times(block)?
            .into_iter()
            .enumerate()
            .filter(|&(_, ts)| in_range(ts, from, to))
            .collect());
    }
    let mut view = BlockView::open(block)?;
    if let Some(bits) = view.matches(query)? {
        let mut out = Vec::new();
        for (row, _) in bits.iter().enumerate().filter(|(_, &hit)| hit) {
            let ts = view.time_of(row)?;
            if in_range(ts, from, to) {
                out.push((row, ts));
            }
        }
        return Ok(out);
    }
    let mut rows = Rows::open(block)?;
    let mut event = Event::default();
    let mut out = Vec::new();
    while let Some(row) = rows.next_row() {
        let (row, ts, map) = row.map_err(|()| block.damaged("rows"))?;
        if !in_range(ts, from, to) {
            continue;
        }
        event.fields = map;
        if query.matches(&event) {
            out.push((row, ts));
        }
    }
    Ok(out)
}

/// The block's matches for a query on one field whose column is a dictionary, counted
/// from the dictionary's counts without reading a row: `None` for any other query.
fn dictionary_count(block: &BlockMeta, query: &Query) -> Result<Option<u64>, StoreError> {
    let Some((name, test)) = field_clause(query) else {
        return Ok(None);
    };
    dictionary_of(block, name, |values, counts| {
        values
            .iter()
            .zip(counts)
            .filter(|(v, _)| !matches!(v, Value::Null) && test(v))
            .map(|(_, n)| n)
            .sum()
    })
}

/// `read(values, counts)` on field `name`'s dictionary in `block`, with the rows holding
/// each value, from the block's counts without reading a row (no values when no row holds
/// the field); `None` for a plain column, a dotted path, or a block whose counts may
/// include repeated keys.
pub(super) fn dictionary_of<T>(
    block: &BlockMeta,
    name: &str,
    read: impl FnOnce(&[Value], &[u64]) -> T,
) -> Result<Option<T>, StoreError> {
    if name.contains('.') || block.flags & FLAG_REPEATED_KEYS != 0 {
        return Ok(None);
    }
    let Some(section) = block.columns().iter().find(|s| s.name == name) else {
        return Ok(Some(read(&[], &[])));
    };
    let column = Column::open(block.read(section)?).map_err(|_| block.damaged("column"))?;
    Ok(column
        .dictionary()
        .map(|(values, counts)| read(values, counts)))
}

/// The block's matches for a one-word query on the message, from its word index: `None`
/// when the word is not in it (or the query is anything else).
fn word_count(block: &BlockMeta, query: &Query) -> Result<Option<u64>, StoreError> {
    let (Query::Term { field, value } | Query::Phrase { field, text: value }) = query else {
        return Ok(None);
    };
    if !matches!(field.as_deref(), None | Some(fields::MESSAGE))
        || block.flags & FLAG_REPEATED_KEYS != 0
    {
        return Ok(None);
    }
    let mut words = tokens(value);
    let (Some(word), None) = (words.next(), words.next()) else {
        return Ok(None);
    };
    Ok(TokenIndex::open(block)?.count(&word)?.map(u64::from))
}

/// The block's matches for a query answered column by column, counted from the bits
/// without reading a row's time (for a block wholly inside the time range that is only
/// counted): `None` when the query needs whole rows.
fn bit_count(block: &BlockMeta, query: &Query, budget: &Budget) -> Result<Option<u64>, StoreError> {
    budget.check()?;
    if !worth_reading(query, block)? {
        return Ok(Some(0));
    }
    let Some(bits) = BlockView::open(block)?.matches(query)? else {
        return Ok(None);
    };
    let n = bits.iter().filter(|&&hit| hit).count() as u64;
    budget.spend(n);
    Ok(Some(n))
}

/// Most blocks a search reads at once before its page is full (their matches are held
/// together: at most 16 MB of rows and times).
const MAX_CHUNK_BLOCKS: usize = 16;

/// A page of the newest matches and their exact total, as `Store::search` answers.
pub fn search(
    partitions: &[Arc<Partition>],
    request: &SearchRequest,
    budget: &Budget,
) -> Result<SearchPage, StoreError> {
    let limit = request.limit.min(MAX_LIMIT);
    let before = request.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut blocks = blocks_in(partitions, request.from, request.to);
    // Newest first, so once the page is full older blocks are only counted.
    blocks.sort_by_key(|(p, b)| std::cmp::Reverse((b.max_ts, *p, b.last_seq())));
    let mut total = 0u64;
    // Min-heap of the best `limit` keys: the block they are in, their row, their fields
    // when they were read.
    let mut heap: BinaryHeap<std::cmp::Reverse<Hit>> = BinaryHeap::with_capacity(limit + 1);
    let (mut next, mut chunk) = (0, 1);
    while next < blocks.len() {
        let (start, block) = &blocks[next];
        let floor = (heap.len() >= limit)
            .then(|| heap.peek().map(|h| h.0.key))
            .flatten();
        let newest_here = (block.max_ts, *start, block.last_seq());
        if limit == 0 || floor.is_some_and(|f| newest_here < f) {
            // Blocks are in order of their newest key, so no later block holds a key above
            // the floor either: the rest are only counted, on every core.
            total += blocks[next..]
                .par_iter()
                .map(|(_, block)| count_block(block, request, budget))
                .try_reduce(|| 0, |a, b| Ok(a + b))?;
            break;
        }
        // The newest block alone (it usually fills the page); while the page is not full,
        // twice as many blocks each time, read on every core (a rare term skips most blocks
        // by their filters, and waking the threads for each pair would cost more).
        let end = (next + chunk).min(blocks.len());
        chunk = (chunk * 2).min(MAX_CHUNK_BLOCKS);
        let found = blocks[next..end]
            .par_iter()
            .map(|(_, block)| {
                matching_rows(block, &request.query, request.from, request.to, budget)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (block_index, rows) in (next..end).zip(found) {
            let (start, block) = &blocks[block_index];
            total += rows.len() as u64;
            for (row, ts) in rows {
                let key = (ts, *start, block.first_seq + row as u64);
                if before.is_some_and(|b| key >= b) {
                    continue;
                }
                if heap.len() < limit || heap.peek().is_some_and(|min| key > min.0.key) {
                    heap.push(std::cmp::Reverse(Hit {
                        key,
                        block: block_index,
                        row,
                        fields: None,
                    }));
                    if heap.len() > limit {
                        heap.pop();
                    }
                }
            }
        }
        next = end;
    }
    budget.check()?;
    let mut hits: Vec<Hit> = heap.into_iter().map(|h| h.0).collect();
    hits.sort_by_key(|h| std::cmp::Reverse(h.key));
    fill_fields(&blocks, &mut hits)?;
    let next_cursor = if hits.len() == limit && limit > 0 {
        hits.last().map(|h| encode_cursor(h.key))
    } else {
        None
    };
    let keys = hits.iter().map(|h| h.key).collect();
    let events = hits
        .into_iter()
        .map(|h| serde_json::to_value(h.fields.unwrap_or_default()).unwrap_or_default())
        .collect();
    Ok(SearchPage {
        events,
        total,
        next_cursor,
        keys,
    })
}

/// The matches of `request` in `block`: from its header, a dictionary's counts, the word
/// index or the bits when the block is wholly inside the time range, else row by row.
fn count_block(
    block: &BlockMeta,
    request: &SearchRequest,
    budget: &Budget,
) -> Result<u64, StoreError> {
    if wholly_inside(block, request.from, request.to) {
        if matches!(request.query, Query::All) {
            budget.check()?;
            return Ok(u64::from(block.rows));
        }
        let counted = match dictionary_count(block, &request.query)? {
            Some(n) => Some(n),
            None => match word_count(block, &request.query)? {
                Some(n) => Some(n),
                None => bit_count(block, &request.query, budget)?,
            },
        };
        if let Some(n) = counted {
            budget.check()?;
            return Ok(n);
        }
    }
    let rows = matching_rows(block, &request.query, request.from, request.to, budget)?;
    Ok(rows.len() as u64)
}

struct Hit {
    key: Key,
    block: usize,
    row: usize,
    fields: Option<Map>,
}

impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Hit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// Reads the fields of the hits found by their times alone (once per block, only the pages
/// holding them).
fn fill_fields(blocks: &[(i64, Arc<BlockMeta>)], hits: &mut [Hit]) -> Result<(), StoreError> {
    let mut wanted: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, hit) in hits.iter().enumerate() {
        if hit.fields.is_none() {
            wanted.entry(hit.block).or_default().push(i);
        }
    }
    let mut wanted: Vec<(usize, Vec<usize>)> = wanted.into_iter().collect();
    for (_, hit_indexes) in &mut wanted {
        hit_indexes.sort_by_key(|&i| hits[i].row);
    }
    // Each block's rows are read on their own (a page of a rare term's hits spans many
    // blocks), on every core.
    let read = wanted
        .par_iter()
        .map(|(block_index, hit_indexes)| {
            let rows: Vec<usize> = hit_indexes.iter().map(|&i| hits[i].row).collect();
            rows_at(&blocks[*block_index].1, &rows)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for ((_, hit_indexes), maps) in wanted.into_iter().zip(read) {
        for (i, map) in hit_indexes.into_iter().zip(maps) {
            hits[i].fields = Some(map);
        }
    }
    Ok(())
}
