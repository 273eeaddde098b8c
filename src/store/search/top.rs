//! The top values of a field among matching events: a fast-field collector.

use std::collections::HashMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::histogram::FieldColumn;
use super::translate::{overlaps, time_bounds, translate, with_time};
use super::{Bounded, Budget, MAX_LIMIT};
use crate::store::query::Query;
use crate::store::{Store, StoreError};

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

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
        self.top_within(request, &Budget::unlimited())
    }

    /// [`Store::top`] within `budget`: past it, [`StoreError::CostLimit`].
    pub fn top_within(
        &self,
        request: &TopRequest,
        budget: &Budget,
    ) -> Result<TopValues, StoreError> {
        let field = FieldColumn::for_field(&self.fields, &request.field)?;
        let (merged, total) = if self.engine() == crate::store::Engine::Columns {
            crate::store::columns::top_counts(&self.column_partitions(), request, budget)?
        } else {
            self.top_counts(request, field, budget)?
        };
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

    /// The tantivy engine's counts per value, and the matching events.
    fn top_counts(
        &self,
        request: &TopRequest,
        field: FieldColumn,
        budget: &Budget,
    ) -> Result<(HashMap<String, u64>, u64), StoreError> {
        let base = translate(&self.fields, &request.query)?;
        let query = with_time(&self.fields, base, request.from, request.to);
        let collector = Bounded {
            inner: TopCollector { field },
            budget,
        };
        let mut merged: HashMap<String, u64> = HashMap::new();
        let mut total = 0;
        for partition in self.partitions() {
            if !overlaps(time_bounds(&partition), request.from, request.to) {
                continue;
            }
            budget.check()?;
            let (counts, n) = partition
                .reader
                .searcher()
                .search(query.as_ref(), &collector)?;
            total += n;
            for (k, v) in counts {
                *merged.entry(k).or_insert(0) += v;
            }
        }
        budget.check()?;
        Ok((merged, total))
    }
}
