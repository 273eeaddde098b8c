//! The series a `log_to_metric` metric keeps: atomic cells the transform updates without a
//! lock, listed (behind a lock taken only when a series is created or scraped) for the
//! `/metrics` probe.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::telemetry::{self, Family, FamilyKind, Reading};

/// What one metric does with an event's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// One per event.
    Count,
    /// The event's value added (`increment_by_value`).
    Sum,
    /// The last value seen.
    Gauge,
    Histogram,
    /// How many distinct values were seen, up to a bound.
    Set,
}

/// One series' state.
#[derive(Debug)]
pub(super) enum Cells {
    Count(AtomicU64),
    /// `f64` bits: the sum for [`Kind::Sum`], the last value for [`Kind::Gauge`].
    Number(AtomicU64),
    Histogram {
        /// Per bucket (not cumulative), plus one for +Inf.
        buckets: Box<[AtomicU64]>,
        /// `f64` bits.
        sum: AtomicU64,
    },
    /// Hashes of the values seen, at most `max_set_values` of them.
    Set(Mutex<HashSet<u64>>),
}

impl Cells {
    pub(super) fn new(kind: Kind, bounds: usize) -> Self {
        match kind {
            Kind::Count => Cells::Count(AtomicU64::new(0)),
            Kind::Sum | Kind::Gauge => Cells::Number(AtomicU64::new(0f64.to_bits())),
            Kind::Histogram => Cells::Histogram {
                buckets: (0..=bounds).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0f64.to_bits()),
            },
            Kind::Set => Cells::Set(Mutex::new(HashSet::new())),
        }
    }

    pub(super) fn count(&self) {
        if let Cells::Count(n) = self {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn add(&self, value: f64) {
        if let Cells::Number(bits) = self {
            add_f64(bits, value);
        }
    }

    pub(super) fn set(&self, value: f64) {
        if let Cells::Number(bits) = self {
            bits.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    pub(super) fn observe(&self, bounds: &[f64], value: f64) {
        if let Cells::Histogram { buckets, sum } = self {
            // The first bound at or above the value: Prometheus buckets are `le`.
            let bucket = bounds.partition_point(|bound| *bound < value);
            if let Some(cell) = buckets.get(bucket) {
                cell.fetch_add(1, Ordering::Relaxed);
            }
            add_f64(sum, value);
        }
    }

    /// Remembers a value's hash; `false` when the set is full and the value new to it.
    pub(super) fn insert(&self, hash: u64, max_values: usize) -> bool {
        let Cells::Set(values) = self else {
            return true;
        };
        let mut values = values.lock().unwrap_or_else(|e| e.into_inner());
        if values.len() < max_values || values.contains(&hash) {
            values.insert(hash);
            true
        } else {
            false
        }
    }

    fn read(&self, bounds: &[f64]) -> Reading {
        match self {
            Cells::Count(n) => Reading::Number(n.load(Ordering::Relaxed) as f64),
            Cells::Number(bits) => Reading::Number(f64::from_bits(bits.load(Ordering::Relaxed))),
            Cells::Histogram { buckets, sum } => {
                let mut running = 0;
                let mut cumulative = Vec::with_capacity(bounds.len());
                for (bound, cell) in bounds.iter().zip(buckets.iter()) {
                    running += cell.load(Ordering::Relaxed);
                    cumulative.push((*bound, running));
                }
                let inf = buckets.last().map_or(0, |c| c.load(Ordering::Relaxed));
                Reading::Histogram {
                    buckets: cumulative,
                    count: running + inf,
                    sum: f64::from_bits(sum.load(Ordering::Relaxed)),
                }
            }
            Cells::Set(values) => {
                Reading::Number(values.lock().unwrap_or_else(|e| e.into_inner()).len() as f64)
            }
        }
    }
}

/// Adds to an `f64` kept as bits; uncontended (one transform writes), so the loop runs once.
fn add_f64(bits: &AtomicU64, value: f64) {
    let _ = bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
        Some((f64::from_bits(current) + value).to_bits())
    });
}

/// Each series' labels and cells, in the order they were created.
type SeriesList = Vec<(Vec<(String, String)>, Arc<Cells>)>;

/// A metric as `/metrics` sees it: its name, type and every series created so far.
#[derive(Debug)]
pub(super) struct Exposed {
    /// The name after `sluice_`.
    pub(super) name: String,
    pub(super) help: String,
    pub(super) kind: Kind,
    pub(super) bounds: Arc<[f64]>,
    pub(super) series: Mutex<SeriesList>,
}

impl Exposed {
    pub(super) fn add_series(&self, labels: Vec<(String, String)>, cells: Arc<Cells>) {
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((labels, cells));
    }

    pub(super) fn family(&self) -> Family {
        let kind = match self.kind {
            Kind::Count | Kind::Sum => FamilyKind::Counter,
            Kind::Gauge | Kind::Set => FamilyKind::Gauge,
            Kind::Histogram => FamilyKind::Histogram,
        };
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        Family {
            name: self.name.clone(),
            help: self.help.clone(),
            kind,
            series: series
                .iter()
                .map(|(labels, cells)| (labels.clone(), cells.read(&self.bounds)))
                .collect(),
        }
    }
}

/// Lets `/metrics` read the transform's metrics for as long as the transform exists.
pub(super) fn register(metrics: &Arc<Vec<Arc<Exposed>>>) {
    let weak: Weak<Vec<Arc<Exposed>>> = Arc::downgrade(metrics);
    telemetry::register_families(Box::new(move |out| match weak.upgrade() {
        Some(metrics) => {
            out.extend(metrics.iter().map(|m| m.family()));
            true
        }
        None => false,
    }));
}
