//! Counts per interval, optionally split by a field's values: a fast-field collector.

use std::collections::{BTreeMap, HashMap};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::translate::{overlaps, time_bounds, translate, with_time};
use super::{Bounded, Budget, MAX_BUCKETS};
use crate::event::fields;
use crate::store::index::Fields;
use crate::store::query::Query;
use crate::store::{Store, StoreError};

/// Which column a histogram split or a top-values count reads.
#[derive(Debug, Clone)]
pub(super) enum FieldColumn {
    /// One of the keyword fields: its own string column.
    Keyword(String),
    /// Any other field: the `_kv` column, values with this `name=` prefix.
    Kv(String),
}

impl FieldColumn {
    pub(super) fn for_field(fields: &Fields, name: &str) -> Result<FieldColumn, StoreError> {
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

    pub(super) fn open(&self, reader: &SegmentReader) -> tantivy::Result<Option<StrColumn>> {
        match self {
            FieldColumn::Keyword(name) => reader.fast_fields().str(name),
            FieldColumn::Kv(_) => reader.fast_fields().str("_kv"),
        }
    }

    /// The field's value for a term of the column (`None` when the term belongs to another
    /// field of `_kv`).
    pub(super) fn value<'a>(&self, term: &'a str) -> Option<&'a str> {
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
    /// With `split`: the series kept, by total (the rest are summed as [`OTHER_SERIES`]).
    pub split_limit: usize,
}

/// The series that sums a split's values beyond `split_limit`.
const OTHER_SERIES: &str = "_other";
/// The most series a split may ask for.
pub const MAX_SPLIT_SERIES: usize = 100;

/// Keeps the `limit` series with the largest totals and sums the others into
/// [`OTHER_SERIES`], so a field with many values (a request id) cannot make a chart of
/// thousands of series.
pub fn keep_top_series(series: &mut SeriesFruit, limit: usize, buckets: usize) {
    if series.len() <= limit {
        return;
    }
    let mut by_total: Vec<(u64, String)> = series
        .iter()
        .map(|(name, counts)| (counts.iter().sum(), name.clone()))
        .collect();
    // Largest first; equal totals by name, so the answer does not depend on hash order.
    by_total.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut other = vec![0u64; buckets];
    for (_, name) in by_total.into_iter().skip(limit) {
        if let Some(counts) = series.remove(&name) {
            for (a, b) in other.iter_mut().zip(counts) {
                *a += b;
            }
        }
    }
    series
        .entry(OTHER_SERIES.to_string())
        .and_modify(|counts| counts.iter_mut().zip(&other).for_each(|(a, b)| *a += b))
        .or_insert(other);
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
        let Some(offset) = ts.checked_sub(self.from) else {
            return;
        };
        let bucket = offset.div_euclid(self.interval);
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
        self.histogram_within(request, &Budget::unlimited())
    }

    /// [`Store::histogram`] within `budget`: past it, [`StoreError::CostLimit`].
    pub fn histogram_within(
        &self,
        request: &HistogramRequest,
        budget: &Budget,
    ) -> Result<Histogram, StoreError> {
        if request.interval <= 0 || request.to <= request.from {
            return Err(StoreError::BadRequest(
                "histogram needs an interval above 0 and a time range".into(),
            ));
        }
        // In i128: no range of i64 times can overflow it.
        let span = i128::from(request.to) - i128::from(request.from);
        let buckets = (span + i128::from(request.interval) - 1) / i128::from(request.interval);
        if buckets > i128::from(MAX_BUCKETS) {
            return Err(StoreError::BadRequest(format!(
                "{buckets} buckets is more than {MAX_BUCKETS}: use a longer interval"
            )));
        }
        let buckets = buckets as usize;
        let split_limit = request.split_limit.clamp(1, MAX_SPLIT_SERIES);
        let split = request
            .split
            .as_deref()
            .map(|s| FieldColumn::for_field(&self.fields, s))
            .transpose()?;
        let mut series = if self.engine() == crate::store::Engine::Columns {
            crate::store::columns::histogram_series(
                &self.column_partitions(),
                request,
                buckets,
                budget,
            )?
        } else {
            self.histogram_series(request, buckets, split, budget)?
        };
        series.retain(|_, counts| counts.iter().any(|&n| n > 0));
        if request.split.is_some() {
            keep_top_series(&mut series, split_limit, buckets);
        }
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

    /// The tantivy engine's counts per bucket and series.
    fn histogram_series(
        &self,
        request: &HistogramRequest,
        buckets: usize,
        split: Option<FieldColumn>,
        budget: &Budget,
    ) -> Result<SeriesFruit, StoreError> {
        let base = translate(&self.fields, &request.query)?;
        let query = with_time(&self.fields, base, Some(request.from), Some(request.to));
        let collector = Bounded {
            inner: HistogramCollector {
                from: request.from,
                interval: request.interval,
                buckets,
                split,
            },
            budget,
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
            budget.check()?;
            fruits.push(
                partition
                    .reader
                    .searcher()
                    .search(query.as_ref(), &collector)?,
            );
        }
        budget.check()?;
        Ok(merge_series(fruits, buckets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_keeps_its_largest_series_and_sums_the_rest() {
        let mut series: SeriesFruit = [
            ("a", vec![5, 5]),
            ("b", vec![1, 0]),
            ("c", vec![0, 3]),
            ("d", vec![2, 0]),
            ("", vec![4, 4]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        keep_top_series(&mut series, 2, 2);
        let mut names: Vec<&str> = series.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["", "_other", "a"]);
        assert_eq!(series["_other"], [3, 3], "b + c + d");
        let total: u64 = series.values().flatten().sum();
        assert_eq!(total, 24, "nothing lost");
    }
}
