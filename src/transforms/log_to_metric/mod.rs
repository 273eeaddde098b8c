//! The `log_to_metric` transform: counters, gauges, histograms and sets computed from
//! events, exposed at `/metrics` as `sluice_log_<name>`.
//!
//! ```toml
//! [transforms.http_metrics]
//! type = "log_to_metric"
//! inputs = ["parsed"]
//! drop_events = false              # true: only the metrics are kept
//! metrics = [
//!   { type = "counter", name = "http_requests_total",
//!     tags = { app = "{{ app }}", status = "{{ status }}" } },
//!   { type = "histogram", field = "duration_ms", name = "http_request_duration_ms",
//!     buckets = [5, 10, 25, 50, 100, 250, 500, 1000], tags = { app = "{{ app }}" } },
//! ]
//! ```
//!
//! As in Vector's `log_to_metric`: a counter counts events (those having `field`, when it
//! is given) or, with `increment_by_value`, adds the field's value; a gauge is set to the
//! last value; a histogram observes values into `buckets` (Prometheus' defaults when not
//! given); a set counts the distinct values of `field` (at most `max_set_values` per
//! series). Tags are templates rendered per event; a missing field renders empty.
//!
//! Each tag set is a series, and tag values come from senders, so each metric keeps at
//! most `max_series` of them: events of further tag sets are counted in one overflow series
//! whose tags are all `_other`, and in `component_metric_overflow_events_total{reason}`.
//! Every series also carries `component_id`, so two transforms declaring one name do not
//! clash. Events pass on unchanged, or are dropped (`drop_events`, counted as
//! `component_discarded_events_total{reason="converted_to_metric"}`).

mod series;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use serde::Deserialize;

use self::series::{Cells, Exposed, Kind};
use super::route::OrderedTable;
use super::{FunctionTransform, Outputs, TransformContext};
use crate::condition::FieldPath;
use crate::event::{Event, Value};
use crate::field_error::{between_one_and, FieldError};
use crate::telemetry::{self, Counter, LogLimiter, OTHER_LABEL};
use crate::template::Template;

/// Configuration of the `log_to_metric` transform.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogToMetricConfig {
    pub metrics: Vec<MetricConfig>,
    /// Drop the events once counted, rather than passing them on.
    #[serde(default)]
    pub drop_events: bool,
}

/// One metric of a `log_to_metric` transform.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    #[serde(rename = "type")]
    pub kind: MetricType,
    /// The field read; counters without one count every event.
    #[serde(default)]
    pub field: Option<String>,
    /// The name after `sluice_log_`; defaults to `field`.
    #[serde(default)]
    pub name: Option<String>,
    /// Label → template, e.g. `{ app = "{{ app }}" }`.
    #[serde(default)]
    pub tags: OrderedTable,
    /// Counters: add the field's value instead of one.
    #[serde(default)]
    pub increment_by_value: bool,
    /// Histograms: the buckets' upper bounds, ascending.
    #[serde(default)]
    pub buckets: Option<Vec<f64>>,
    /// The most series (tag sets) kept; later tag sets share the overflow series.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// Sets: the most distinct values remembered per series.
    #[serde(default = "default_max_set_values")]
    pub max_set_values: usize,
    /// The `# HELP` text.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Set,
}

fn default_max_series() -> usize {
    1000
}

fn default_max_set_values() -> usize {
    1000
}

/// Prometheus' default buckets.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const MAX_SERIES: usize = 100_000;
const MAX_SET_VALUES: usize = 100_000;
const MAX_BUCKETS: usize = 64;
/// Longest tag value kept, in bytes: a longer one is cut (at a character boundary).
const MAX_TAG_VALUE_BYTES: usize = 256;
/// The prefix of every metric this transform exposes, after `sluice_`.
pub const NAME_PREFIX: &str = "log_";

impl LogToMetricConfig {
    /// Checks every metric and compiles its tags. Does no IO.
    pub fn build(&self, ctx: &TransformContext) -> Result<LogToMetric, FieldError> {
        if self.metrics.is_empty() {
            return Err(FieldError::new("metrics", "must list at least one metric"));
        }
        let mut metrics = Vec::with_capacity(self.metrics.len());
        for (i, config) in self.metrics.iter().enumerate() {
            let metric = config
                .build(ctx)
                .map_err(|e| FieldError::new(format!("metrics[{i}].{}", e.field), e.message))?;
            let name = &metric.exposed.name;
            if metrics.iter().any(|m: &Metric| m.exposed.name == *name) {
                return Err(FieldError::new(
                    format!("metrics[{i}].name"),
                    format!(
                        "`{}` is already a metric of this transform",
                        &name[NAME_PREFIX.len()..]
                    ),
                ));
            }
            metrics.push(metric);
        }
        let exposed = Arc::new(metrics.iter().map(|m| m.exposed.clone()).collect());
        series::register(&exposed);
        Ok(LogToMetric {
            metrics,
            drop_events: self.drop_events,
            discarded: telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", &ctx.id), ("reason", "converted_to_metric")],
            ),
            invalid_values: telemetry::counter(
                "component_errors_total",
                &[("component_id", &ctx.id), ("reason", "metric_value")],
            ),
            warn_limiter: LogLimiter::default(),
            id: ctx.id.clone(),
            _exposed: exposed,
        })
    }
}

impl MetricConfig {
    fn build(&self, ctx: &TransformContext) -> Result<Metric, FieldError> {
        let field = self
            .field
            .as_deref()
            .map(|f| FieldPath::parse(f).map_err(|m| FieldError::new("field", m)))
            .transpose()?;
        let kind = match (self.kind, self.increment_by_value) {
            (MetricType::Counter, false) => Kind::Count,
            (MetricType::Counter, true) => Kind::Sum,
            (_, true) => {
                return Err(FieldError::new(
                    "increment_by_value",
                    "only counters increment by a value",
                ))
            }
            (MetricType::Gauge, _) => Kind::Gauge,
            (MetricType::Histogram, _) => Kind::Histogram,
            (MetricType::Set, _) => Kind::Set,
        };
        if field.is_none() && kind != Kind::Count {
            return Err(FieldError::new(
                "field",
                "required: the field whose value this metric reads",
            ));
        }
        let name = match (&self.name, &self.field) {
            (Some(name), _) => name.clone(),
            (None, Some(field)) => field.clone(),
            (None, None) => {
                return Err(FieldError::new(
                    "name",
                    "required for a counter without `field`",
                ))
            }
        };
        if !is_metric_name(&name) {
            return Err(FieldError::new(
                "name",
                format!("`{name}` is not a metric name (letters, digits, `_` and `:`, not starting with a digit)"),
            ));
        }
        let bounds: Arc<[f64]> = match (&self.buckets, kind) {
            (None, _) => DEFAULT_BUCKETS.into(),
            (Some(_), k) if k != Kind::Histogram => {
                return Err(FieldError::new("buckets", "only histograms have buckets"))
            }
            (Some(b), _) => {
                let ascending = b.windows(2).all(|w| w[0] < w[1]);
                if b.is_empty()
                    || b.len() > MAX_BUCKETS
                    || !ascending
                    || b.iter().any(|x| !x.is_finite())
                {
                    return Err(FieldError::new(
                        "buckets",
                        format!("expected 1 to {MAX_BUCKETS} finite bounds in ascending order"),
                    ));
                }
                b.as_slice().into()
            }
        };
        between_one_and("max_series", self.max_series, MAX_SERIES)?;
        between_one_and("max_set_values", self.max_set_values, MAX_SET_VALUES)?;
        let mut tags = Vec::with_capacity(self.tags.0.len());
        for (label, template) in self.tags.iter() {
            let at = || format!("tags.{label}");
            if !is_label_name(label)
                || label.starts_with("__")
                || label == "le"
                || label == "component_id"
            {
                return Err(FieldError::new(
                    at(),
                    "not a usable label name (letters, digits and `_`, not starting with a digit or `__`; `le` and `component_id` are taken)",
                ));
            }
            let template =
                Template::parse(template).map_err(|e| FieldError::new(at(), e.to_string()))?;
            tags.push((label.to_string(), template));
        }
        let exposed = Arc::new(Exposed {
            name: format!("{NAME_PREFIX}{name}"),
            help: self.description.clone().unwrap_or_else(|| {
                format!("Metric from events (log_to_metric transform `{}`).", ctx.id)
            }),
            kind,
            bounds,
            series: Default::default(),
        });
        Ok(Metric {
            field,
            tags,
            max_series: self.max_series,
            max_set_values: self.max_set_values,
            index: HashMap::default(),
            cells: Vec::new(),
            overflow: None,
            key: String::new(),
            ends: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
            overflow_series: telemetry::counter(
                "component_metric_overflow_events_total",
                &[
                    ("component_id", &ctx.id),
                    ("metric", &name),
                    ("reason", "series"),
                ],
            ),
            overflow_set_values: telemetry::counter(
                "component_metric_overflow_events_total",
                &[
                    ("component_id", &ctx.id),
                    ("metric", &name),
                    ("reason", "set_values"),
                ],
            ),
            component_id: ctx.id.clone(),
            exposed,
        })
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, Prometheus' metric names.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, Prometheus' label names.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The running `log_to_metric` transform.
pub struct LogToMetric {
    metrics: Vec<Metric>,
    drop_events: bool,
    discarded: Counter,
    invalid_values: Counter,
    warn_limiter: LogLimiter,
    id: String,
    /// Held so that `/metrics` reads these metrics as long as the transform lives.
    _exposed: Arc<Vec<Arc<Exposed>>>,
}

impl std::fmt::Debug for LogToMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogToMetric")
            .field("id", &self.id)
            .field("metrics", &self.metrics.len())
            .field("drop_events", &self.drop_events)
            .finish()
    }
}

struct Metric {
    field: Option<FieldPath>,
    tags: Vec<(String, Template)>,
    max_series: usize,
    max_set_values: usize,
    /// Rendered tag values (each ended by NUL) → the series' place in `cells`.
    index: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// Every series' cells (shared with `/metrics`), indexed, so that an update touches
    /// no reference count.
    cells: Vec<Arc<Cells>>,
    /// The series of tag sets beyond `max_series`, created when first needed.
    overflow: Option<usize>,
    /// Reused buffer for the rendered tag values, and where each one ends.
    key: String,
    ends: Vec<usize>,
    hasher: foldhash::fast::RandomState,
    overflow_series: Counter,
    overflow_set_values: Counter,
    component_id: String,
    exposed: Arc<Exposed>,
}

/// What an event does to a metric.
enum Update {
    Count,
    Number(f64),
    Member(u64),
}

/// Why an event's value could not be used.
#[derive(Debug)]
struct InvalidValue(&'static str);

impl Metric {
    /// Updates the metric from `event`; an unusable value is returned as an error.
    fn record(&mut self, event: &Event) -> Result<(), InvalidValue> {
        let value = match &self.field {
            Some(path) => match path.get(&event.fields) {
                None | Some(Value::Null) => return Ok(()),
                Some(value) => Some(value),
            },
            None => None,
        };
        let update = match (self.exposed.kind, value) {
            (Kind::Count, _) => Update::Count,
            (_, None) => return Ok(()),
            (Kind::Set, Some(value)) => {
                self.key.clear();
                value.write_text(&mut self.key);
                Update::Member(self.hasher.hash_one(self.key.as_str()))
            }
            (kind, Some(value)) => match value.as_f64() {
                Some(n) if n.is_finite() && (kind != Kind::Sum || n >= 0.0) => Update::Number(n),
                Some(_) if kind == Kind::Sum => {
                    return Err(InvalidValue("not a finite number of 0 or more"))
                }
                _ => return Err(InvalidValue("not a finite number")),
            },
        };
        let at = self.series(event);
        let cells = &self.cells[at];
        match update {
            Update::Count => cells.count(),
            Update::Number(n) => match self.exposed.kind {
                Kind::Sum => cells.add(n),
                Kind::Gauge => cells.set(n),
                _ => cells.observe(&self.exposed.bounds, n),
            },
            Update::Member(hash) => {
                if !cells.insert(hash, self.max_set_values) {
                    self.overflow_set_values.inc(1);
                }
            }
        }
        Ok(())
    }

    /// The cells of the event's tag set, created if new and within `max_series`.
    fn series(&mut self, event: &Event) -> usize {
        self.key.clear();
        self.ends.clear();
        for (_, template) in &self.tags {
            let start = self.key.len();
            template.render(event, &mut self.key);
            if self.key.len() - start > MAX_TAG_VALUE_BYTES {
                let mut end = start + MAX_TAG_VALUE_BYTES;
                while !self.key.is_char_boundary(end) {
                    end -= 1;
                }
                self.key.truncate(end);
            }
            // NUL ends each value in the key, so a value must not hold one.
            if self.key[start..].contains('\0') {
                let cleaned = self.key[start..].replace('\0', "\u{fffd}");
                self.key.truncate(start);
                self.key.push_str(&cleaned);
            }
            self.key.push('\0');
            self.ends.push(self.key.len() - 1);
        }
        if let Some(&at) = self.index.get(self.key.as_str()) {
            return at;
        }
        if self.index.len() >= self.max_series {
            self.overflow_series.inc(1);
            return self.overflow_cells();
        }
        let mut start = 0;
        let mut labels = Vec::with_capacity(self.tags.len() + 1);
        labels.push(("component_id".to_string(), self.component_id.clone()));
        for ((label, _), end) in self.tags.iter().zip(&self.ends) {
            labels.push((label.clone(), self.key[start..*end].to_string()));
            start = end + 1;
        }
        let at = self.add_series(labels);
        self.index.insert(self.key.as_str().into(), at);
        at
    }

    fn overflow_cells(&mut self) -> usize {
        if let Some(at) = self.overflow {
            return at;
        }
        let mut labels = vec![("component_id".to_string(), self.component_id.clone())];
        labels.extend(
            self.tags
                .iter()
                .map(|(label, _)| (label.clone(), OTHER_LABEL.to_string())),
        );
        let at = self.add_series(labels);
        self.overflow = Some(at);
        at
    }

    fn add_series(&mut self, labels: Vec<(String, String)>) -> usize {
        let cells = Arc::new(Cells::new(self.exposed.kind, self.exposed.bounds.len()));
        self.exposed.add_series(labels, cells.clone());
        self.cells.push(cells);
        self.cells.len() - 1
    }
}

impl FunctionTransform for LogToMetric {
    fn transform(&mut self, event: Event, out: &mut Outputs) {
        for metric in &mut self.metrics {
            if let Err(InvalidValue(why)) = metric.record(&event) {
                self.invalid_values.inc(1);
                if let Some(suppressed) = self.warn_limiter.check() {
                    tracing::warn!(
                        component_id = %self.id,
                        metric = %&metric.exposed.name[NAME_PREFIX.len()..],
                        suppressed,
                        "value of a metric's field ignored: {why}"
                    );
                }
            }
        }
        if self.drop_events {
            self.discarded.inc(1);
        } else {
            out.push(event);
        }
    }
}
