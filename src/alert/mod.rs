//! Alert rules evaluated on the live stream (`[alerts.ID]` in a pipeline).
//!
//! A rule is a component with inputs whose output is its alert events: each firing,
//! repeat and resolution is an [`Event`](crate::event::Event) with the fields documented in
//! docs/alerts.md, routed like any other event (to a notifier sink, a file, the store).
//!
//! ```toml
//! [alerts.high_errors]
//! inputs = ["parse"]
//! condition = 'level >= "error"'
//! group_by = ["app"]
//! kind = "threshold"      # or "ratio", "absence"
//! window_secs = 60
//! threshold = 100         # matching events in the window (a ratio 0..1 for `ratio`)
//! for_secs = 30
//! severity = "critical"
//! labels = { team = "{{ app }}-oncall" }
//! annotations = { summary = "{{ value }} errors a minute on {{ app }}" }
//! ```
//!
//! Rules reading the same inputs run together in one task, as a [`RuleSet`]: one pass checks
//! every condition, and rules that also share `group_by` and window form a cluster with one
//! group table, counting each event once for all of them (see `set` for why).
//!
//! Module map: `window` (bucketed sliding windows, many counters per group: O(1) per event),
//! `cluster` (a group table shared by rules and each group's lifecycle per rule, driven by
//! an injected clock so it is tested without sleeping), `set` (the rules of one task),
//! `transition` (alert events and active alerts), `state` (the persisted firing alerts),
//! `task` (the task: input queue, a tick timer, one output per rule), `api`
//! (`GET /v1/alerts`), `fingerprint`.

mod api;
pub mod cli;
mod cluster;
mod evaluate;
mod fingerprint;
mod set;
mod state;
mod task;
mod transition;
mod window;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub use api::{ActiveAlert, AlertsEndpoint, Registry};
pub use fingerprint::fingerprint;
pub use set::RuleSet;
pub use task::run_rules;
pub use transition::{Active, Status, Transition};

use crate::condition::{Condition, FieldPath};
use crate::field_error::{at_least_one, FieldError};
use crate::template::Template;

/// Longest window accepted (one week): buckets are window / [`window::BUCKETS`] wide.
const MAX_WINDOW_SECS: u64 = 7 * 24 * 3600;

/// `[alerts.ID]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Which events count (the routing condition language). Default: every event.
    #[serde(default)]
    pub condition: Option<String>,
    /// Fields whose values make a group; each group alerts on its own. Events without
    /// every one of them are not counted. Empty: one group for the whole stream.
    #[serde(default)]
    pub group_by: Vec<String>,
    pub kind: AlertKind,
    /// Length of the sliding window.
    pub window_secs: u64,
    /// `threshold`: fire when more than this many matching events fall in the window.
    /// `ratio`: fire when matching / all events in the window exceeds this (0..1).
    /// `absence`: unused.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// `ratio` only: fewer events than this in the window never fire (a ratio of 1 out of
    /// 1 says little). Default 1.
    #[serde(default = "default_min_events")]
    pub min_events: u64,
    /// How long the condition must hold before the alert fires. Default 0.
    #[serde(default)]
    pub for_secs: u64,
    /// A firing alert is notified again this often. Default 4 hours.
    #[serde(default = "default_repeat_interval_secs")]
    pub repeat_interval_secs: u64,
    /// `absence`: a group not seen for this long is forgotten (unless its alert fires).
    /// Default 10 × window.
    #[serde(default)]
    pub forget_after_secs: Option<u64>,
    /// Copied to every alert event and, as the `severity` label, to notifiers.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Templates rendered from the group fields, `value` and a sample event.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Most groups tracked at once; events of further groups are counted as overflow.
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
    /// Where the firing alerts are kept across restarts. Default `data/alerts/ID.json`.
    #[serde(default)]
    pub state_path: Option<PathBuf>,
}

/// `kind = "threshold" | "ratio" | "absence"`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Threshold,
    Ratio,
    Absence,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Threshold => "threshold",
            AlertKind::Ratio => "ratio",
            AlertKind::Absence => "absence",
        }
    }
}

fn default_min_events() -> u64 {
    1
}

fn default_repeat_interval_secs() -> u64 {
    4 * 3600
}

fn default_severity() -> String {
    "warning".into()
}

fn default_max_groups() -> usize {
    10_000
}

/// Everything compiled from an [`AlertConfig`]: what the rule evaluates.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub id: String,
    pub condition: Option<Condition>,
    pub group_by: Vec<FieldPath>,
    pub kind: AlertKind,
    pub window_nanos: i64,
    pub threshold: f64,
    pub min_events: u64,
    pub for_nanos: i64,
    pub repeat_nanos: i64,
    pub forget_nanos: i64,
    pub severity: String,
    pub labels: Vec<(String, Template)>,
    pub annotations: Vec<(String, Template)>,
    pub max_groups: usize,
    pub state_path: PathBuf,
}

const NANOS: i64 = 1_000_000_000;

impl AlertConfig {
    /// Compiles the condition and templates and checks the numbers. Does no IO.
    pub fn build(&self, id: &str) -> Result<RuleSpec, FieldError> {
        let condition = self
            .condition
            .as_deref()
            .map(Condition::compile)
            .transpose()
            .map_err(|e| FieldError::new("condition", e.to_string()))?;
        let group_by = self
            .group_by
            .iter()
            .enumerate()
            .map(|(i, f)| {
                FieldPath::parse(f).map_err(|m| FieldError::new(format!("group_by[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !(1..=MAX_WINDOW_SECS).contains(&self.window_secs) {
            return Err(FieldError::new(
                "window_secs",
                format!("must be between 1 and {MAX_WINDOW_SECS} (one week)"),
            ));
        }
        let threshold = match (self.kind, self.threshold) {
            (AlertKind::Absence, None) => 0.0,
            (AlertKind::Absence, Some(_)) => {
                return Err(FieldError::new(
                    "threshold",
                    "an absence rule has no threshold (it fires after window_secs of silence)",
                ))
            }
            (_, None) => return Err(FieldError::new("threshold", "missing field `threshold`")),
            (AlertKind::Threshold, Some(t)) if !(t.is_finite() && t >= 0.0) => {
                return Err(FieldError::new(
                    "threshold",
                    "must be a count of events (0 or more)",
                ))
            }
            (AlertKind::Ratio, Some(t)) if !(0.0..1.0).contains(&t) => {
                return Err(FieldError::new(
                    "threshold",
                    "a ratio threshold must be at least 0 and below 1 (e.g. 0.05 for 5%)",
                ))
            }
            (_, Some(t)) => t,
        };
        at_least_one(&[("min_events", self.min_events)])?;
        if self.for_secs > MAX_WINDOW_SECS {
            return Err(FieldError::new(
                "for_secs",
                format!("must be at most {MAX_WINDOW_SECS}"),
            ));
        }
        if !(1..=365 * 24 * 3600).contains(&self.repeat_interval_secs) {
            return Err(FieldError::new(
                "repeat_interval_secs",
                "must be between 1 and one year",
            ));
        }
        let forget_secs = self.forget_after_secs.unwrap_or(self.window_secs * 10);
        if forget_secs < self.window_secs || forget_secs > 10 * MAX_WINDOW_SECS {
            return Err(FieldError::new(
                "forget_after_secs",
                "must be at least window_secs and at most ten weeks",
            ));
        }
        at_least_one(&[("max_groups", self.max_groups as u64)])?;
        if self.severity.is_empty() {
            return Err(FieldError::new("severity", "must not be empty"));
        }
        let templates = |field: &str, map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(name, text)| {
                    if name.is_empty() {
                        return Err(FieldError::new(field, "names must not be empty"));
                    }
                    Template::parse(text)
                        .map(|t| (name.clone(), t))
                        .map_err(|e| FieldError::new(format!("{field}.{name}"), e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let labels = templates("labels", &self.labels)?;
        let annotations = templates("annotations", &self.annotations)?;
        if let Some(path) = &self.state_path {
            if path.as_os_str().is_empty() {
                return Err(FieldError::new("state_path", "must not be empty"));
            }
        }
        Ok(RuleSpec {
            id: id.to_string(),
            condition,
            group_by,
            kind: self.kind,
            window_nanos: self.window_secs as i64 * NANOS,
            threshold,
            min_events: self.min_events,
            for_nanos: self.for_secs as i64 * NANOS,
            repeat_nanos: self.repeat_interval_secs as i64 * NANOS,
            forget_nanos: forget_secs as i64 * NANOS,
            severity: self.severity.clone(),
            labels,
            annotations,
            max_groups: self.max_groups,
            state_path: self
                .state_path
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("data/alerts/{id}.json"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<RuleSpec, FieldError> {
        let config: AlertConfig =
            toml::from_str(toml_text).map_err(|e| FieldError::new("(toml)", e.to_string()))?;
        config.build("r")
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            ("kind = \"threshold\"\nwindow_secs = 60", Some("threshold")),
            ("kind = \"threshold\"\nwindow_secs = 0\nthreshold = 1", Some("window_secs")),
            ("kind = \"ratio\"\nwindow_secs = 60\nthreshold = 1.5", Some("threshold")),
            ("kind = \"absence\"\nwindow_secs = 60\nthreshold = 3", Some("threshold")),
            ("kind = \"absence\"\nwindow_secs = 60", None),
            ("kind = \"threshold\"\nwindow_secs = 60\nthreshold = 5\ncondition = 'level =='", Some("condition")),
            ("kind = \"threshold\"\nwindow_secs = 60\nthreshold = 5\nlabels = { a = \"{{ app\" }", Some("labels.a")),
            ("kind = \"threshold\"\nwindow_secs = 60\nthreshold = 5\nmax_groups = 0", Some("max_groups")),
            ("kind = \"absence\"\nwindow_secs = 60\nforget_after_secs = 5", Some("forget_after_secs")),
            ("kind = \"ratio\"\nwindow_secs = 60\nthreshold = 0.1\ngroup_by = [\"app\", \"host\"]", None),
        ];
        for (text, field) in cases {
            let got = parse(text).err().map(|e| e.field);
            assert_eq!(got.as_deref(), field, "{text}");
        }
    }

    #[test]
    fn default_state_path_is_under_data() {
        let spec = parse("kind = \"absence\"\nwindow_secs = 60").unwrap();
        assert_eq!(spec.state_path, PathBuf::from("data/alerts/r.json"));
        assert_eq!(spec.forget_nanos, 600 * NANOS);
    }
}
