//! Searching the store: the query tree translated to tantivy queries, and three fast-field
//! collectors of our own (newest-first top-k with cursor paging, counts per interval split
//! by a field, top values of a field). Everything here blocks: callers in async code run it
//! with `spawn_blocking`.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use base64::Engine;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhraseQuery, Query as TantivyQuery, RangeQuery, RegexQuery,
    TermQuery,
};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument, Term};

use super::index::{Fields, Partition};
use super::query::Query;
use super::{Store, StoreError};
use crate::event::fields;

/// Most events one page may hold.
pub const MAX_LIMIT: usize = 10_000;
/// Most buckets one histogram may hold.
pub const MAX_BUCKETS: i64 = 10_000;

// === translation ===

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .build()
}

fn message_terms(fields: &Fields, text: &str) -> Vec<Term> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while stream.advance() {
        terms.push(Term::from_field_text(fields.message, &stream.token().text));
    }
    terms
}

fn glob_regex(pattern: &str) -> String {
    let mut out = String::new();
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

/// The tantivy query for `query` (no time range).
pub fn translate(fields: &Fields, query: &Query) -> Result<Box<dyn TantivyQuery>, StoreError> {
    Ok(match query {
        Query::All => Box::new(AllQuery),
        Query::And(parts) => {
            // `a -b` becomes one boolean query with a must-not clause, rather than a nested
            // "everything except b" (cheaper, and the shape tantivy's scorers expect).
            let positive = parts.iter().any(|q| !matches!(q, Query::Not(_)));
            let clauses = parts
                .iter()
                .map(|q| match q {
                    Query::Not(inner) if positive => {
                        Ok((Occur::MustNot, exclusion(fields, inner)?))
                    }
                    q => Ok((Occur::Must, translate(fields, q)?)),
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Box::new(BooleanQuery::new(clauses))
        }
        Query::Or(parts) => {
            let clauses = parts
                .iter()
                .map(|q| Ok((Occur::Should, translate(fields, q)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Box::new(BooleanQuery::new(clauses))
        }
        Query::Not(inner) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery)),
            (Occur::MustNot, exclusion(fields, inner)?),
        ])),
        Query::Term { field, value } | Query::Phrase { field, text: value } => {
            match field.as_deref() {
                None | Some(fields::MESSAGE) => {
                    let mut terms = message_terms(fields, value);
                    match terms.len() {
                        0 => Box::new(AllQuery),
                        1 => Box::new(TermQuery::new(terms.remove(0), IndexRecordOption::Basic)),
                        _ => Box::new(PhraseQuery::new(terms)),
                    }
                }
                Some(name) => Box::new(TermQuery::new(
                    keyword_term(fields, name, value),
                    IndexRecordOption::Basic,
                )),
            }
        }
        Query::Wildcard { field, pattern } => {
            let (field, regex) = match field.as_deref() {
                None | Some(fields::MESSAGE) => {
                    (fields.message, glob_regex(&pattern.to_lowercase()))
                }
                Some(name) => match fields.keyword(name) {
                    Some(f) => (f, glob_regex(pattern)),
                    None => (
                        fields.kv,
                        format!("{}={}", regex::escape(name), glob_regex(pattern)),
                    ),
                },
            };
            Box::new(
                RegexQuery::from_pattern(&regex, field)
                    .map_err(|e| StoreError::BadRequest(format!("bad wildcard: {e}")))?,
            )
        }
        Query::Range {
            field,
            lower,
            upper,
        } => {
            let term = |n: f64| {
                let mut t = Term::from_field_json_path(fields.num, field, false);
                t.append_type_and_fast_value(n);
                t
            };
            let lower = match (lower, upper) {
                (Bound::Unbounded, Bound::Unbounded) => Bound::Included(f64::MIN),
                _ => *lower,
            };
            Box::new(RangeQuery::new(lower.map(term), upper.map(term)))
        }
    })
}

/// A query used as a must-not clause. tantivy 0.27's phrase scorer cannot be an exclusion
/// set directly (it may be asked to seek backwards, which it asserts against), so excluded
/// message phrases go through a union, whose seeking is always safe.
fn exclusion(fields: &Fields, inner: &Query) -> Result<Box<dyn TantivyQuery>, StoreError> {
    let query = translate(fields, inner)?;
    if !has_message_phrase(inner) {
        return Ok(query);
    }
    Ok(Box::new(BooleanQuery::new(vec![
        (Occur::Should, query.box_clone()),
        (Occur::Should, query),
    ])))
}

/// Whether a message phrase (several tokens) is anywhere in `query`.
fn has_message_phrase(query: &Query) -> bool {
    match query {
        Query::Term { field, value } | Query::Phrase { field, text: value } => {
            matches!(field.as_deref(), None | Some(fields::MESSAGE))
                && super::query::tokens(value).nth(1).is_some()
        }
        Query::And(parts) | Query::Or(parts) => parts.iter().any(has_message_phrase),
        Query::Not(inner) => has_message_phrase(inner),
        Query::All | Query::Wildcard { .. } | Query::Range { .. } => false,
    }
}

fn keyword_term(fields: &Fields, name: &str, value: &str) -> Term {
    match fields.keyword(name) {
        Some(f) => Term::from_field_text(f, value),
        None => Term::from_field_text(fields.kv, &format!("{name}={value}")),
    }
}

/// The query restricted to event times in `[from, to)` (nanoseconds).
fn with_time(
    fields: &Fields,
    query: Box<dyn TantivyQuery>,
    from: Option<i64>,
    to: Option<i64>,
) -> Box<dyn TantivyQuery> {
    if from.is_none() && to.is_none() {
        return query;
    }
    let term = |n: i64| Term::from_field_i64(fields.timestamp, n);
    let range = RangeQuery::new(
        from.map_or(Bound::Unbounded, |f| Bound::Included(term(f))),
        to.map_or(Bound::Unbounded, |t| Bound::Excluded(term(t))),
    );
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, query),
        (Occur::Must, Box::new(range)),
    ]))
}

/// Lowest and highest event time, when there are events.
type TimeBounds = Option<(i64, i64)>;

/// Lowest and highest event time in a partition's committed segments.
fn time_bounds(partition: &Partition) -> Option<(i64, i64)> {
    let searcher = partition.reader.searcher();
    let mut bounds: Option<(i64, i64)> = None;
    for segment in searcher.segment_readers() {
        if segment.num_docs() == 0 {
            continue;
        }
        let Ok(column) = segment.fast_fields().i64(fields::TIMESTAMP) else {
            continue;
        };
        let (lo, hi) = (column.min_value(), column.max_value());
        bounds = Some(bounds.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    bounds
}

fn overlaps(bounds: Option<(i64, i64)>, from: Option<i64>, to: Option<i64>) -> bool {
    let Some((lo, hi)) = bounds else { return false };
    from.is_none_or(|f| hi >= f) && to.is_none_or(|t| lo < t)
}

/// Highest `_seq` in a partition, to continue numbering after a restart.
pub fn max_seq(partition: &Partition) -> Option<u64> {
    let searcher = partition.reader.searcher();
    searcher
        .segment_readers()
        .iter()
        .filter(|s| s.num_docs() > 0)
        .filter_map(|s| s.fast_fields().u64("_seq").ok())
        .map(|c| c.max_value())
        .max()
}

// === newest-first search with cursor paging ===

/// The sort key: event time, then partition, then arrival order; all descending.
type Key = (i64, i64, u64);

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
            let searcher = partition.reader.searcher();
            let floor = (hits.len() >= limit)
                .then(|| hits.last().map(|h| h.0))
                .flatten();
            let newest_here = bounds.map_or(i64::MIN, |(_, hi)| hi);
            if floor.is_some_and(|f| (newest_here, partition.start_secs, u64::MAX) < f) {
                total += query.count(&searcher)? as u64;
                continue;
            }
            let collector = NewestFirst {
                limit,
                partition: partition.start_secs,
                before,
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
        })
    }

    /// Event time range over all committed events.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        self.partitions()
            .iter()
            .filter_map(|p| time_bounds(p))
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    }
}

// === histogram ===

/// Which column a histogram split or a top-values count reads.
#[derive(Debug, Clone)]
enum FieldColumn {
    /// One of the keyword fields: its own string column.
    Keyword(String),
    /// Any other field: the `_kv` column, values with this `name=` prefix.
    Kv(String),
}

impl FieldColumn {
    fn for_field(fields: &Fields, name: &str) -> Result<FieldColumn, StoreError> {
        if name.is_empty() || name == fields::MESSAGE || name == fields::TIMESTAMP {
            return Err(StoreError::BadRequest(format!(
                "cannot count values of `{name}` (use a keyword field such as level or app)"
            )));
        }
        Ok(match fields.keyword(name) {
            Some(_) => FieldColumn::Keyword(name.to_string()),
            None => FieldColumn::Kv(format!("{name}=")),
        })
    }

    fn open(&self, reader: &SegmentReader) -> tantivy::Result<Option<StrColumn>> {
        match self {
            FieldColumn::Keyword(name) => reader.fast_fields().str(name),
            FieldColumn::Kv(_) => reader.fast_fields().str("_kv"),
        }
    }

    /// The field's value for a term of the column (`None` when the term belongs to another
    /// field of `_kv`).
    fn value<'a>(&self, term: &'a str) -> Option<&'a str> {
        match self {
            FieldColumn::Keyword(_) => Some(term),
            FieldColumn::Kv(prefix) => term.strip_prefix(prefix.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HistogramRequest {
    pub query: Query,
    pub from: i64,
    pub to: i64,
    pub interval: i64,
    pub split: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Histogram {
    /// Bucket start times, milliseconds since the epoch (what charting libraries take).
    pub times_ms: Vec<i64>,
    pub interval_ms: i64,
    /// Counts per bucket, per split value (`"all"` without a split; `""` for events
    /// without the field).
    pub series: BTreeMap<String, Vec<u64>>,
    pub total: u64,
}

struct HistogramCollector {
    from: i64,
    interval: i64,
    buckets: usize,
    split: Option<FieldColumn>,
}

struct HistogramSegment {
    from: i64,
    interval: i64,
    buckets: usize,
    ts: Column<i64>,
    split: Option<SplitColumn>,
    /// Counts per bucket, per split ordinal ([`NO_VALUE`] for events without the field).
    counts: HashMap<u64, Vec<u64>>,
    plain: Vec<u64>,
}

struct SplitColumn {
    field: FieldColumn,
    column: StrColumn,
    /// Per ordinal: 0 not looked at yet, 1 a value of the split field, 2 another field's.
    /// `_kv` holds every other field, so each distinct ordinal is resolved once.
    relevant: Vec<u8>,
    text: String,
}

impl SplitColumn {
    /// The first ordinal of `doc` that is a value of the split field.
    fn value_ord(&mut self, doc: DocId) -> Option<u64> {
        if let FieldColumn::Keyword(_) = self.field {
            return self.column.ords().first(doc);
        }
        for ord in self.column.term_ords(doc) {
            let Some(state) = self.relevant.get_mut(ord as usize) else {
                continue;
            };
            if *state == 0 {
                self.text.clear();
                let found = matches!(self.column.ord_to_str(ord, &mut self.text), Ok(true));
                *state = if found && self.field.value(&self.text).is_some() {
                    1
                } else {
                    2
                };
            }
            if *state == 1 {
                return Some(ord);
            }
        }
        None
    }
}

/// Per-segment fruit: series name → counts per bucket.
type SeriesFruit = HashMap<String, Vec<u64>>;

impl Collector for HistogramCollector {
    type Fruit = SeriesFruit;
    type Child = HistogramSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<HistogramSegment> {
        let split = match &self.split {
            Some(field) => field.open(reader)?.map(|column| SplitColumn {
                field: field.clone(),
                relevant: vec![0; column.num_terms()],
                column,
                text: String::new(),
            }),
            None => None,
        };
        let with_split = self.split.is_some();
        Ok(HistogramSegment {
            from: self.from,
            interval: self.interval,
            buckets: self.buckets,
            ts: reader.fast_fields().i64(fields::TIMESTAMP)?,
            split,
            counts: HashMap::new(),
            plain: if with_split {
                Vec::new()
            } else {
                vec![0; self.buckets]
            },
        })
        .map(|mut s| {
            if with_split && s.split.is_none() {
                // No segment column at all: every event lacks the field.
                s.counts.insert(NO_VALUE, vec![0; self.buckets]);
            }
            s
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<SeriesFruit>) -> tantivy::Result<SeriesFruit> {
        Ok(merge_series(fruits, self.buckets))
    }
}

fn merge_series(fruits: Vec<SeriesFruit>, buckets: usize) -> SeriesFruit {
    let mut merged: SeriesFruit = HashMap::new();
    for fruit in fruits {
        for (name, counts) in fruit {
            let into = merged.entry(name).or_insert_with(|| vec![0; buckets]);
            for (a, b) in into.iter_mut().zip(counts) {
                *a += b;
            }
        }
    }
    merged
}

const NO_VALUE: u64 = u64::MAX;

impl SegmentCollector for HistogramSegment {
    type Fruit = SeriesFruit;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let Some(ts) = self.ts.first(doc) else { return };
        let bucket = (ts - self.from).div_euclid(self.interval);
        if bucket < 0 || bucket as usize >= self.buckets {
            return;
        }
        let bucket = bucket as usize;
        let buckets = self.buckets;
        let Some(split) = self.split.as_mut() else {
            if self.plain.is_empty() {
                // A split was asked for but this segment has no column: no values.
                if let Some(counts) = self.counts.get_mut(&NO_VALUE) {
                    counts[bucket] += 1;
                }
            } else {
                self.plain[bucket] += 1;
            }
            return;
        };
        let key = split.value_ord(doc).unwrap_or(NO_VALUE);
        self.counts.entry(key).or_insert_with(|| vec![0; buckets])[bucket] += 1;
    }

    fn harvest(self) -> SeriesFruit {
        let mut out: SeriesFruit = HashMap::new();
        let Some(mut split) = self.split else {
            if self.plain.is_empty() {
                for (_, counts) in self.counts {
                    out.insert(String::new(), counts);
                }
            } else {
                out.insert("all".to_string(), self.plain);
            }
            return out;
        };
        for (ord, counts) in self.counts {
            let name = if ord == NO_VALUE {
                String::new()
            } else {
                split.text.clear();
                if !matches!(split.column.ord_to_str(ord, &mut split.text), Ok(true)) {
                    continue;
                }
                match split.field.value(&split.text) {
                    Some(v) => v.to_string(),
                    None => continue,
                }
            };
            let into = out.entry(name).or_insert_with(|| vec![0; self.buckets]);
            for (a, b) in into.iter_mut().zip(counts) {
                *a += b;
            }
        }
        out
    }
}

impl Store {
    pub fn histogram(&self, request: &HistogramRequest) -> Result<Histogram, StoreError> {
        if request.interval <= 0 || request.to <= request.from {
            return Err(StoreError::BadRequest(
                "histogram needs an interval above 0 and a time range".into(),
            ));
        }
        let buckets = (request.to - request.from + request.interval - 1) / request.interval;
        if buckets > MAX_BUCKETS {
            return Err(StoreError::BadRequest(format!(
                "{buckets} buckets is more than {MAX_BUCKETS}: use a longer interval"
            )));
        }
        let buckets = buckets as usize;
        let split = request
            .split
            .as_deref()
            .map(|s| FieldColumn::for_field(&self.fields, s))
            .transpose()?;
        let base = translate(&self.fields, &request.query)?;
        let query = with_time(&self.fields, base, Some(request.from), Some(request.to));
        let collector = HistogramCollector {
            from: request.from,
            interval: request.interval,
            buckets,
            split,
        };
        let mut fruits = Vec::new();
        for partition in self.partitions() {
            if !overlaps(
                time_bounds(&partition),
                Some(request.from),
                Some(request.to),
            ) {
                continue;
            }
            fruits.push(
                partition
                    .reader
                    .searcher()
                    .search(query.as_ref(), &collector)?,
            );
        }
        let mut series = merge_series(fruits, buckets);
        series.retain(|_, counts| counts.iter().any(|&n| n > 0));
        let total = series.values().flatten().sum();
        let times_ms = (0..buckets as i64)
            .map(|i| (request.from + i * request.interval).div_euclid(1_000_000))
            .collect();
        Ok(Histogram {
            times_ms,
            interval_ms: request.interval / 1_000_000,
            series: series.into_iter().collect(),
            total,
        })
    }
}

// === top values ===

#[derive(Debug, Clone)]
pub struct TopRequest {
    pub query: Query,
    pub field: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct TopValue {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TopValues {
    pub field: String,
    pub values: Vec<TopValue>,
    /// Matching events (with or without the field).
    pub total: u64,
}

struct TopCollector {
    field: FieldColumn,
}

struct TopSegment {
    field: FieldColumn,
    column: Option<StrColumn>,
    counts: Vec<u64>,
    total: u64,
}

impl Collector for TopCollector {
    type Fruit = (HashMap<String, u64>, u64);
    type Child = TopSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<TopSegment> {
        let column = self.field.open(reader)?;
        let terms = column.as_ref().map_or(0, |c| c.num_terms());
        Ok(TopSegment {
            field: self.field.clone(),
            column,
            counts: vec![0; terms],
            total: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<(HashMap<String, u64>, u64)>,
    ) -> tantivy::Result<Self::Fruit> {
        let mut merged = HashMap::new();
        let mut total = 0;
        for (fruit, n) in fruits {
            total += n;
            for (k, v) in fruit {
                *merged.entry(k).or_insert(0) += v;
            }
        }
        Ok((merged, total))
    }
}

impl SegmentCollector for TopSegment {
    type Fruit = (HashMap<String, u64>, u64);

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.total += 1;
        if let Some(column) = &self.column {
            for ord in column.term_ords(doc) {
                if let Some(slot) = self.counts.get_mut(ord as usize) {
                    *slot += 1;
                }
            }
        }
    }

    fn harvest(self) -> Self::Fruit {
        let mut out = HashMap::new();
        let Some(column) = self.column else {
            return (out, self.total);
        };
        let mut text = String::new();
        for (ord, count) in self.counts.into_iter().enumerate() {
            if count == 0 {
                continue;
            }
            text.clear();
            if !matches!(column.ord_to_str(ord as u64, &mut text), Ok(true)) {
                continue;
            }
            if let Some(value) = self.field.value(&text) {
                *out.entry(value.to_string()).or_insert(0) += count;
            }
        }
        (out, self.total)
    }
}

impl Store {
    pub fn top(&self, request: &TopRequest) -> Result<TopValues, StoreError> {
        let field = FieldColumn::for_field(&self.fields, &request.field)?;
        let base = translate(&self.fields, &request.query)?;
        let query = with_time(&self.fields, base, request.from, request.to);
        let collector = TopCollector { field };
        let mut merged: HashMap<String, u64> = HashMap::new();
        let mut total = 0;
        for partition in self.partitions() {
            if !overlaps(time_bounds(&partition), request.from, request.to) {
                continue;
            }
            let (counts, n) = partition
                .reader
                .searcher()
                .search(query.as_ref(), &collector)?;
            total += n;
            for (k, v) in counts {
                *merged.entry(k).or_insert(0) += v;
            }
        }
        let mut values: Vec<TopValue> = merged
            .into_iter()
            .map(|(value, count)| TopValue { value, count })
            .collect();
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        values.truncate(request.limit.min(MAX_LIMIT));
        Ok(TopValues {
            field: request.field.clone(),
            values,
            total,
        })
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

    #[test]
    fn glob_to_regex() {
        assert_eq!(glob_regex("web*"), "web.*");
        assert_eq!(glob_regex("a.b?"), "a\\.b.");
    }
}
