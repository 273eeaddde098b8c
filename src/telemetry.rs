//! Internal telemetry: counters labelled by component, and rate-limited warnings.
//!
//! Counters live in one process-wide registry so that `/metrics` (a later issue) can render
//! them all. Handles are cheap atomic counters resolved once at build time, never looked up
//! per event.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A monotonically increasing counter.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

type Labels = Vec<(&'static str, String)>;

fn registry() -> &'static Mutex<BTreeMap<(&'static str, Labels), Counter>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<(&'static str, Labels), Counter>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Returns the counter `name` with `labels`, registering it on first use.
pub fn counter(name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
    let key = (
        name,
        labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
    );
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    reg.entry(key).or_default().clone()
}

/// A snapshot of every registered counter: (name, labels, value).
pub fn snapshot() -> Vec<(&'static str, Labels, u64)> {
    let reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    reg.iter()
        .map(|((name, labels), c)| (*name, labels.clone(), c.get()))
        .collect()
}

/// The value of counter `name` summed over every label set that contains `labels`.
pub fn counter_value(name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot()
        .into_iter()
        .filter(|(n, l, _)| {
            *n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// A value that goes up and down, such as a Kafka consumer's lag.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn gauge_registry() -> &'static Mutex<BTreeMap<(&'static str, Labels), Gauge>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<(&'static str, Labels), Gauge>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Returns the gauge `name` with `labels`, registering it on first use.
pub fn gauge(name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
    let key = (
        name,
        labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
    );
    let mut reg = gauge_registry().lock().unwrap_or_else(|e| e.into_inner());
    reg.entry(key).or_default().clone()
}

/// A snapshot of every registered gauge: (name, labels, value), in a stable order.
pub fn gauge_snapshot() -> Vec<(&'static str, Labels, i64)> {
    let reg = gauge_registry().lock().unwrap_or_else(|e| e.into_inner());
    reg.iter()
        .map(|((name, labels), g)| (*name, labels.clone(), g.get()))
        .collect()
}

/// Lets a warning through at most once per interval and says how many were suppressed, so
/// that a flood of bad input cannot flood the router's own log.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Returns `Some(suppressed_since_last)` when a message may be logged now.
    pub fn check(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}
