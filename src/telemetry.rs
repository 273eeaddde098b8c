//! Internal telemetry: counters, gauges and histograms labelled by component, and
//! rate-limited warnings.
//!
//! Metrics live in process-wide registries so that `/metrics` can render them all. Handles
//! are cheap atomics resolved once at build time, never looked up per event. Gauges are
//! probes read at render time (a queue's fill level is already known to the queue, so
//! nothing is updated per event to report it).

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

pub type Labels = Vec<(&'static str, String)>;

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

/// Reads a gauge's current value; `None` once what it measures is gone (the gauge is then
/// dropped from the registry).
pub type GaugeProbe = Box<dyn Fn() -> Option<u64> + Send + Sync>;

type GaugeRegistry = BTreeMap<(&'static str, Labels), GaugeProbe>;

fn gauges() -> &'static Mutex<GaugeRegistry> {
    static GAUGES: OnceLock<Mutex<GaugeRegistry>> = OnceLock::new();
    GAUGES.get_or_init(Default::default)
}

/// Registers gauge `name` with `labels`, replacing an earlier probe with the same labels (a
/// restarted pipeline measures its new queues).
pub fn register_gauge(name: &'static str, labels: &[(&'static str, &str)], probe: GaugeProbe) {
    let key = (
        name,
        labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
    );
    gauges()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, probe);
}

/// A gauge set by its owner, for values nothing else keeps (a Kafka consumer's lag).
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

/// Registers a settable gauge `name` with `labels` (reported as 0 while negative).
pub fn gauge(name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
    let gauge = Gauge::default();
    let reading = gauge.clone();
    register_gauge(
        name,
        labels,
        Box::new(move || Some(reading.get().max(0) as u64)),
    );
    gauge
}

/// Every live gauge's current value: (name, labels, value). Gauges whose subject is gone
/// are removed.
pub fn gauge_snapshot() -> Vec<(&'static str, Labels, u64)> {
    let mut reg = gauges().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::with_capacity(reg.len());
    reg.retain(|(name, labels), probe| match probe() {
        Some(value) => {
            out.push((*name, labels.clone(), value));
            true
        }
        None => false,
    });
    out
}

/// Upper bounds (seconds) of the latency histogram buckets: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct HistogramCells {
    /// Per bucket (not cumulative), plus one for +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A latency histogram with fixed buckets ([`LATENCY_BUCKETS`]).
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<HistogramCells>);

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.0.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Cumulative bucket counts (the last is +Inf, i.e. the total count) and the sum in
    /// seconds.
    pub fn read(&self) -> ([u64; LATENCY_BUCKETS.len() + 1], f64) {
        let mut cumulative = [0; LATENCY_BUCKETS.len() + 1];
        let mut running = 0;
        for (slot, cell) in cumulative.iter_mut().zip(&self.0.buckets) {
            running += cell.load(Ordering::Relaxed);
            *slot = running;
        }
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (cumulative, sum)
    }
}

type HistogramRegistry = BTreeMap<(&'static str, Labels), Histogram>;

fn histograms() -> &'static Mutex<HistogramRegistry> {
    static HISTOGRAMS: OnceLock<Mutex<HistogramRegistry>> = OnceLock::new();
    HISTOGRAMS.get_or_init(Default::default)
}

/// Returns the histogram `name` with `labels`, registering it on first use.
pub fn histogram(name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
    let key = (
        name,
        labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
    );
    let mut reg = histograms().lock().unwrap_or_else(|e| e.into_inner());
    reg.entry(key).or_default().clone()
}

/// Every registered histogram: (name, labels, handle).
pub fn histogram_snapshot() -> Vec<(&'static str, Labels, Histogram)> {
    let reg = histograms().lock().unwrap_or_else(|e| e.into_inner());
    reg.iter()
        .map(|((name, labels), h)| (*name, labels.clone(), h.clone()))
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

/// The label a sender-chosen value (an app name) shares once [`BoundedLabels`] is full.
pub const OTHER_LABEL: &str = "_other";

/// Label values chosen by senders: the first `max` distinct values keep their own series,
/// later ones share [`OTHER_LABEL`], so rotating a field cannot grow `/metrics` (or the
/// registry's memory) without bound.
#[derive(Debug)]
pub struct BoundedLabels {
    max: usize,
    seen: Mutex<std::collections::HashSet<Arc<str>>>,
}

impl BoundedLabels {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            seen: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// `value`, or [`OTHER_LABEL`] when `max` other values came first.
    pub fn label<'a>(&self, value: &'a str) -> &'a str {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(value) {
            return value;
        }
        if seen.len() < self.max {
            seen.insert(Arc::from(value));
            return value;
        }
        OTHER_LABEL
    }
}

/// What a metric family is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FamilyKind {
    Counter,
    Gauge,
    Histogram,
}

/// One series' reading in a [`Family`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Number(f64),
    /// Cumulative counts per upper bound (ascending, +Inf left implicit: it is `count`).
    Histogram {
        buckets: Vec<(f64, u64)>,
        count: u64,
        sum: f64,
    },
}

/// A metric family whose name and labels are chosen by configuration rather than by the
/// code (the `log_to_metric` transform's): rendered after the built-in metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name after the `sluice_` prefix.
    pub name: String,
    pub help: String,
    pub kind: FamilyKind,
    pub series: Vec<(Vec<(String, String)>, Reading)>,
}

/// Appends the families it reads; `false` once what it reads is gone (it is then dropped).
pub type FamilyProbe = Box<dyn Fn(&mut Vec<Family>) -> bool + Send + Sync>;

fn family_probes() -> &'static Mutex<Vec<FamilyProbe>> {
    static PROBES: OnceLock<Mutex<Vec<FamilyProbe>>> = OnceLock::new();
    PROBES.get_or_init(Default::default)
}

/// Registers a probe read at every scrape.
pub fn register_families(probe: FamilyProbe) {
    family_probes()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(probe);
}

/// Every live probe's families, sorted by name (stable for families of one name). Probes
/// whose subject is gone are removed.
pub fn family_snapshot() -> Vec<Family> {
    let mut out = Vec::new();
    family_probes()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|probe| probe(&mut out));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
