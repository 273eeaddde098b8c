//! What a rule tells the world: transitions (firing, repeat, resolved), each becoming one
//! alert event, the pending or firing groups `GET /v1/alerts` lists, and how an alert's
//! message, labels and annotations are rendered.

use std::collections::BTreeMap;

use super::{AlertKind, RuleSpec};
use crate::event::{fields, Event, Map, Value};

/// `firing` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One notification-worthy change of one group: becomes one alert event.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: Status,
    /// A repeat of a firing alert (`repeat_interval_secs` passed).
    pub repeat: bool,
    /// A firing alert restored from disk at start: not a new notification. Notifiers that
    /// need the set of firing alerts (Alertmanager) take it; others skip it.
    pub restored: bool,
    pub group: Map,
    pub fingerprint: String,
    pub value: f64,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub message: String,
}

/// A pending or firing group, for `GET /v1/alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub group: Map,
    pub fingerprint: String,
    pub firing: bool,
    pub value: f64,
    pub since: i64,
}

// === impl Transition ===

impl Transition {
    /// The alert event (fields documented in docs/alerts.md).
    pub fn to_event(&self, spec: &RuleSpec, now: i64) -> Event {
        let mut f = Map::with_capacity(16);
        f.insert(fields::TIMESTAMP, Value::Timestamp(now));
        f.insert("alert", Value::from(spec.id.as_str()));
        f.insert("status", Value::from(self.status.as_str()));
        f.insert("kind", Value::from(spec.kind.as_str()));
        f.insert("severity", Value::from(spec.severity.as_str()));
        f.insert("group", Value::Object(self.group.clone()));
        f.insert("labels", Value::Object(string_map(&self.labels)));
        f.insert("annotations", Value::Object(string_map(&self.annotations)));
        f.insert("value", Value::Float(self.value));
        if spec.kind != AlertKind::Absence {
            f.insert("threshold", Value::Float(spec.threshold));
        }
        f.insert(
            "window_secs",
            Value::Integer(spec.window_nanos / 1_000_000_000),
        );
        f.insert("starts_at", Value::Timestamp(self.starts_at));
        if let Some(ends_at) = self.ends_at {
            f.insert("ends_at", Value::Timestamp(ends_at));
        }
        f.insert("fingerprint", Value::from(self.fingerprint.as_str()));
        f.insert("repeat", Value::Bool(self.repeat));
        f.insert("restored", Value::Bool(self.restored));
        f.insert(fields::MESSAGE, Value::from(self.message.as_str()));
        Event::new(f)
    }
}

fn string_map(map: &BTreeMap<String, String>) -> Map {
    map.iter()
        .map(|(k, v)| (k.as_str().into(), Value::from(v.as_str())))
        .collect()
}

// === rendering (what fire and resolve say) ===

/// The event templates are rendered against: the sample event's fields, then the group
/// fields, `value`, `alert` and `severity` over them.
pub(super) fn template_context(
    spec: &RuleSpec,
    fields: &Map,
    value: f64,
    sample: Option<&Map>,
) -> Event {
    let mut context = sample.cloned().unwrap_or_default();
    for (name, value) in fields.iter() {
        context.insert(name.clone(), value.clone());
    }
    context.insert("value", Value::Float(value));
    context.insert("alert", Value::from(spec.id.as_str()));
    context.insert("severity", Value::from(spec.severity.as_str()));
    Event::new(context)
}

pub(super) fn message(
    spec: &RuleSpec,
    fields: &Map,
    value: f64,
    annotations: &BTreeMap<String, String>,
    status: Status,
) -> String {
    if status == Status::Firing {
        if let Some(summary) = annotations.get("summary").filter(|s| !s.is_empty()) {
            return summary.clone();
        }
    }
    let group = if fields.is_empty() {
        String::new()
    } else {
        let pairs: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_text()))
            .collect();
        format!(" for {}", pairs.join(" "))
    };
    let window = spec.window_nanos / 1_000_000_000;
    let detail = match (status, spec.kind) {
        (Status::Resolved, _) => String::new(),
        (_, AlertKind::Threshold) => format!(
            ": {value} matching events in {window}s (threshold {})",
            spec.threshold
        ),
        (_, AlertKind::Ratio) => format!(
            ": ratio {value:.3} in {window}s (threshold {})",
            spec.threshold
        ),
        (_, AlertKind::Absence) => format!(": no matching event for {value}s"),
    };
    format!("{} {}{group}{detail}", spec.id, status.as_str())
}

pub(super) fn render(
    templates: &[(String, crate::template::Template)],
    context: &Event,
) -> BTreeMap<String, String> {
    templates
        .iter()
        .map(|(name, template)| {
            let mut text = String::new();
            template.render(context, &mut text);
            (name.clone(), text)
        })
        .collect()
}
