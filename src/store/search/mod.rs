//! Searching the store: the query tree translated to tantivy queries (`translate`), and
//! three fast-field collectors of our own: newest-first top-k with cursor paging (this
//! file), counts per interval split by a field (`histogram`), top values of a field (`top`).
//! Everything here blocks: callers in async code run it with `spawn_blocking`.

use std::collections::BinaryHeap;
use std::sync::Arc;

use base64::Engine;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::schema::Value as _;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument};

use super::index::Partition;
use super::query::Query;
use super::{Store, StoreError};
use crate::event::fields;

mod budget;
mod histogram;
mod top;
mod translate;

use budget::Bounded;
pub use budget::Budget;

pub use histogram::{keep_top_series, Histogram, HistogramRequest, MAX_SPLIT_SERIES};
pub use top::{TopRequest, TopValue, TopValues};
pub use translate::{max_seq, translate};
use translate::{overlaps, time_bounds, with_time, TimeBounds};

/// Most events one page may hold.
pub const MAX_LIMIT: usize = 10_000;
/// Most buckets one histogram may hold.
pub const MAX_BUCKETS: i64 = 10_000;

/// The sort key: event time, then partition, then arrival order; all descending.
pub type Key = (i64, i64, u64);

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    /// Event time range, nanoseconds: `[from, to)`.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: usize,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchPage {
    /// Matching events, newest first, as stored (JSON objects).
    pub events: Vec<serde_json::Value>,
    /// Every match in the time range (not only this page).
    pub total: u64,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Each event's sort key, in the order of `events`: a federating router merges pages
    /// of several nodes by them (`crate::federation`).
    #[serde(skip)]
    pub keys: Vec<Key>,
}

pub fn encode_cursor(key: Key) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}:{}:{}", key.0, key.1, key.2))
}

pub fn decode_cursor(cursor: &str) -> Result<Key, StoreError> {
    let bad = || StoreError::BadRequest("cursor is not one this store returned".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.split(':');
    let mut next = || parts.next().ok_or_else(bad);
    let ts = next()?.parse().map_err(|_| bad())?;
    let partition = next()?.parse().map_err(|_| bad())?;
    let seq = next()?.parse().map_err(|_| bad())?;
    Ok((ts, partition, seq))
}

struct NewestFirst {
    limit: usize,
    partition: i64,
    before: Option<Key>,
}

struct NewestFirstSegment {
    limit: usize,
    partition: i64,
    before: Option<Key>,
    segment: SegmentOrdinal,
    ts: Column<i64>,
    seq: Column<u64>,
    /// Min-heap (by `Reverse`) of the best `limit` keys seen.
    heap: BinaryHeap<std::cmp::Reverse<(Key, DocId)>>,
    count: u64,
}

impl Collector for NewestFirst {
    type Fruit = (Vec<(Key, DocAddress)>, u64);
    type Child = NewestFirstSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<NewestFirstSegment> {
        Ok(NewestFirstSegment {
            limit: self.limit,
            partition: self.partition,
            before: self.before,
            segment,
            ts: reader.fast_fields().i64(fields::TIMESTAMP)?,
            seq: reader.fast_fields().u64("_seq")?,
            heap: BinaryHeap::with_capacity(self.limit + 1),
            count: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<(Vec<(Key, DocAddress)>, u64)>,
    ) -> tantivy::Result<Self::Fruit> {
        let count = fruits.iter().map(|(_, c)| c).sum();
        let mut all: Vec<(Key, DocAddress)> = fruits.into_iter().flat_map(|(v, _)| v).collect();
        all.sort_by_key(|h| std::cmp::Reverse(h.0));
        all.truncate(self.limit);
        Ok((all, count))
    }
}

impl SegmentCollector for NewestFirstSegment {
    type Fruit = (Vec<(Key, DocAddress)>, u64);

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.count += 1;
        if self.limit == 0 {
            return;
        }
        let key = (
            self.ts.first(doc).unwrap_or(0),
            self.partition,
            self.seq.first(doc).unwrap_or(0),
        );
        if self.before.is_some_and(|b| key >= b) {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push(std::cmp::Reverse((key, doc)));
        } else if self.heap.peek().is_some_and(|min| key > min.0 .0) {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse((key, doc)));
        }
    }

    fn harvest(self) -> Self::Fruit {
        let segment = self.segment;
        let hits = self
            .heap
            .into_iter()
            .map(|std::cmp::Reverse((key, doc))| (key, DocAddress::new(segment, doc)))
            .collect();
        (hits, self.count)
    }
}

impl Store {
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage, StoreError> {
        self.search_within(request, &Budget::unlimited())
    }

    /// [`Store::search`] within `budget`: past it, [`StoreError::CostLimit`].
    pub fn search_within(
        &self,
        request: &SearchRequest,
        budget: &Budget,
    ) -> Result<SearchPage, StoreError> {
        if self.engine() == super::Engine::Columns {
            return super::columns::search(&self.column_partitions(), request, budget);
        }
        let limit = request.limit.min(MAX_LIMIT);
        let before = request.cursor.as_deref().map(decode_cursor).transpose()?;
        let base = translate(&self.fields, &request.query)?;
        let query = with_time(&self.fields, base, request.from, request.to);
        // Newest partitions first, so older ones can be counted without collecting once
        // the page is full of newer events.
        let mut partitions: Vec<(Arc<Partition>, TimeBounds)> = self
            .partitions()
            .into_iter()
            .map(|p| {
                let bounds = time_bounds(&p);
                (p, bounds)
            })
            .filter(|(_, b)| overlaps(*b, request.from, request.to))
            .collect();
        partitions.sort_by_key(|(_, b)| std::cmp::Reverse(b.map(|(_, hi)| hi)));
        let mut total = 0u64;
        let mut hits: Vec<(Key, Arc<Partition>, tantivy::Searcher, DocAddress)> = Vec::new();
        for (partition, bounds) in partitions {
            budget.check()?;
            let searcher = partition.reader.searcher();
            let floor = (hits.len() >= limit)
                .then(|| hits.last().map(|h| h.0))
                .flatten();
            let newest_here = bounds.map_or(i64::MIN, |(_, hi)| hi);
            if floor.is_some_and(|f| (newest_here, partition.start_secs, u64::MAX) < f) {
                // Only counted: tantivy's count answers many queries from posting-list
                // lengths without visiting a document, so it is not charged to the budget
                // (its time is, at the next partition).
                total += query.count(&searcher)? as u64;
                continue;
            }
            let collector = Bounded {
                inner: NewestFirst {
                    limit,
                    partition: partition.start_secs,
                    before,
                },
                budget,
            };
            let (found, count) = searcher.search(query.as_ref(), &collector)?;
            total += count;
            hits.extend(
                found
                    .into_iter()
                    .map(|(key, addr)| (key, partition.clone(), searcher.clone(), addr)),
            );
            hits.sort_by_key(|h| std::cmp::Reverse(h.0));
            hits.truncate(limit);
        }
        budget.check()?;
        let next_cursor = if hits.len() == limit && limit > 0 {
            hits.last().map(|h| encode_cursor(h.0))
        } else {
            None
        };
        let mut events = Vec::with_capacity(hits.len());
        for (_, _, searcher, addr) in &hits {
            let doc: TantivyDocument = searcher.doc(*addr)?;
            let source = doc
                .get_first(self.fields.source)
                .and_then(|v| v.as_bytes())
                .unwrap_or(b"{}");
            events.push(serde_json::from_slice(source).unwrap_or(serde_json::Value::Null));
        }
        Ok(SearchPage {
            events,
            total,
            next_cursor,
            keys: hits.iter().map(|h| h.0).collect(),
        })
    }

    /// Event time range over all committed events.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        self.partitions()
            .iter()
            .filter_map(|p| time_bounds(p))
            .chain(
                self.column_partitions()
                    .iter()
                    .filter_map(|p| p.time_bounds()),
            )
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let key = (1_764_136_800_000_000_123, 1_764_136_800, 42);
        assert_eq!(decode_cursor(&encode_cursor(key)).expect("decodes"), key);
        for bad in ["", "!!", "MTIz", "YTpiOmM"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
