//! The cost bound of one search, histogram or top-values request: a deadline and a number
//! of matching events it may examine, shared by every partition and segment it reads.
//!
//! tantivy runs a collector over a segment's matches without a way to stop it, so
//! [`Bounded`] walks the matches itself, a block of [`COLLECT_BLOCK_BUFFER_LEN`] at a time,
//! and stops at the first block past the bound. The request then fails (503) rather than
//! answer from part of the store as if it were all of it: a count or a chart cut short
//! would be wrong without saying so.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::Weight;
use tantivy::{DocId, DocSet, SegmentOrdinal, SegmentReader, COLLECT_BLOCK_BUFFER_LEN};

use crate::api::QueryLimits;
use crate::store::StoreError;

const WITHIN: u8 = 0;
const OUT_OF_TIME: u8 = 1;
const OUT_OF_EVENTS: u8 = 2;

/// What one request may still spend.
pub struct Budget {
    started: Instant,
    timeout: Duration,
    max_scanned: u64,
    scanned: AtomicU64,
    state: AtomicU8,
}

impl Budget {
    pub fn new(limits: QueryLimits) -> Budget {
        Budget {
            started: Instant::now(),
            timeout: limits.timeout,
            max_scanned: limits.max_scanned_events,
            scanned: AtomicU64::new(0),
            state: AtomicU8::new(WITHIN),
        }
    }

    /// No bound (the store's own callers: tests, benches).
    pub fn unlimited() -> Budget {
        Budget::new(QueryLimits {
            timeout: Duration::MAX,
            max_scanned_events: u64::MAX,
        })
    }

    /// Counts `events` examined; false once the request is past either bound.
    pub(crate) fn spend(&self, events: u64) -> bool {
        let scanned = self
            .scanned
            .fetch_add(events, Ordering::Relaxed)
            .saturating_add(events);
        if scanned > self.max_scanned {
            self.exceed(OUT_OF_EVENTS);
        } else if self.started.elapsed() > self.timeout {
            self.exceed(OUT_OF_TIME);
        }
        self.state.load(Ordering::Relaxed) == WITHIN
    }

    fn exceed(&self, why: u8) {
        let _ = self
            .state
            .compare_exchange(WITHIN, why, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The request's error once a bound was reached; checked between partitions too, so
    /// that a request out of time does not open the next one.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.state.load(Ordering::Relaxed) == WITHIN && self.started.elapsed() > self.timeout {
            self.exceed(OUT_OF_TIME);
        }
        let scanned = self.scanned.load(Ordering::Relaxed);
        match self.state.load(Ordering::Relaxed) {
            WITHIN => Ok(()),
            OUT_OF_TIME => Err(StoreError::CostLimit(format!(
                "the query ran out of time ({} ms, [api] query_timeout_ms) after examining \
                 {scanned} events: narrow the time range or the query",
                self.timeout.as_millis()
            ))),
            _ => Err(StoreError::CostLimit(format!(
                "the query would examine more than {} events ([api] max_scanned_events): \
                 narrow the time range or the query",
                self.max_scanned
            ))),
        }
    }
}

/// `inner` collecting under `budget`.
pub(super) struct Bounded<'a, C> {
    pub(super) inner: C,
    pub(super) budget: &'a Budget,
}

impl<C: Collector> Collector for Bounded<'_, C> {
    type Fruit = C::Fruit;
    type Child = C::Child;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<C::Child> {
        self.inner.for_segment(segment, reader)
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(
        &self,
        fruits: Vec<<C::Child as SegmentCollector>::Fruit>,
    ) -> tantivy::Result<C::Fruit> {
        self.inner.merge_fruits(fruits)
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<<C::Child as SegmentCollector>::Fruit> {
        let mut child = self.inner.for_segment(segment, reader)?;
        if self.budget.check().is_err() {
            return Ok(child.harvest());
        }
        let mut scorer = weight.scorer(reader, 1.0)?;
        let alive = reader.alive_bitset();
        let mut block = [0 as DocId; COLLECT_BLOCK_BUFFER_LEN];
        loop {
            let filled = scorer.fill_buffer(&mut block);
            if filled == 0 {
                break;
            }
            let docs = &block[..filled];
            match alive {
                None => child.collect_block(docs),
                Some(alive) => {
                    for &doc in docs.iter().filter(|&&doc| alive.is_alive(doc)) {
                        child.collect(doc, 0.0);
                    }
                }
            }
            if !self.budget.spend(filled as u64) {
                break;
            }
        }
        Ok(child.harvest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_event_bound_the_error_says_which() {
        let budget = Budget::new(QueryLimits {
            timeout: Duration::from_secs(60),
            max_scanned_events: 100,
        });
        assert!(budget.spend(64));
        assert!(budget.check().is_ok());
        assert!(!budget.spend(64));
        let error = budget.check().expect_err("over").to_string();
        assert!(error.contains("max_scanned_events"), "{error}");
    }

    #[test]
    fn past_the_deadline_the_error_says_which() {
        let budget = Budget::new(QueryLimits {
            timeout: Duration::ZERO,
            max_scanned_events: u64::MAX,
        });
        std::thread::sleep(Duration::from_millis(2));
        let error = budget.check().expect_err("over").to_string();
        assert!(error.contains("query_timeout_ms"), "{error}");
        assert!(Budget::unlimited().spend(u64::MAX / 2));
    }
}
