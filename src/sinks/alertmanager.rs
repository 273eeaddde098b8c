//! The `alertmanager` notifier: Prometheus Alertmanager's API v2 (`POST /api/v2/alerts`).
//!
//! ```toml
//! [sinks.am]
//! type = "alertmanager"
//! inputs = ["high_errors"]
//! url = "http://127.0.0.1:9093"
//! ```
//!
//! Each alert becomes `{labels, annotations, startsAt, endsAt?}`; its labels are
//! `alertname` (the rule id), `severity`, the group fields and the rule's `labels`.
//! Alertmanager itself groups, deduplicates, silences and routes them.
//!
//! Alertmanager forgets a firing alert it has not heard about for its `resolve_timeout`
//! (5 minutes by default), the way Prometheus expects to be re-told. So the sink keeps the
//! set of firing alerts and sends all of them again every `resend_interval_secs` (default
//! 60, keep it below `resolve_timeout`); a resolution is sent with `endsAt` = when it
//! resolved, and drops the alert from the set. Alerts restored from a rule's state file
//! after a restart join the set (Alertmanager deduplicates them by their labels).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use super::notify::{self, Endpoint, Notification, Poster};
use super::{dead_letter_event, SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::event::{format_timestamp, Event};
use crate::field_error::{at_least_one, FieldError};
use crate::telemetry::LogLimiter;

/// Most alerts in one request.
const MAX_ALERTS_PER_REQUEST: usize = 500;

/// `[sinks.ID] type = "alertmanager"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL, e.g. `http://127.0.0.1:9093` (the sink appends
    /// `/api/v2/alerts`).
    pub url: String,
    /// How often the firing alerts are sent again.
    #[serde(default = "default_resend_interval_secs")]
    pub resend_interval_secs: u64,
    /// Added to every alert's `generatorURL` field when set (e.g. a link to the web page).
    #[serde(default)]
    pub generator_url: Option<String>,
    #[serde(flatten)]
    pub endpoint: Endpoint,
}

fn default_resend_interval_secs() -> u64 {
    60
}

impl AlertmanagerConfig {
    fn alerts_url(&self) -> String {
        format!("{}/api/v2/alerts", self.url.trim_end_matches('/'))
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        notify::parse_url(&self.url)?;
        notify::parse_url(&self.alerts_url())?;
        at_least_one(&[("resend_interval_secs", self.resend_interval_secs)])?;
        self.endpoint.validate()
    }

    pub async fn run(self, mut rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let mut poster = Poster::new(&self.alerts_url(), &self.endpoint, &ctx)?;
        // Firing alerts by fingerprint, as last sent.
        let mut firing: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        let mut resend = tokio::time::interval(Duration::from_secs(self.resend_interval_secs));
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resend.tick().await;
        let mut limiter = LogLimiter::default();
        loop {
            tokio::select! {
                batch = rx.recv() => {
                    let Some(first) = batch else { break };
                    let mut batches = vec![first];
                    while let Some(more) = rx.try_recv() {
                        batches.push(more);
                        if batches.len() >= 64 {
                            break;
                        }
                    }
                    let mut alerts: Vec<(&Event, serde_json::Value)> = Vec::new();
                    let mut rejected = Vec::new();
                    for event in batches.iter().flat_map(|b| b.events.iter()) {
                        match Notification::from_event(event) {
                            Ok(n) => {
                                let json = self.alert_json(&n);
                                if n.firing {
                                    firing.insert(n.fingerprint.clone(), json.clone());
                                } else {
                                    firing.remove(&n.fingerprint);
                                }
                                alerts.push((event, json));
                            }
                            Err(reason) => rejected.push(dead_letter_event(event, &ctx.id, &reason, "not_an_alert")),
                        }
                    }
                    if !rejected.is_empty() {
                        ctx.reject_async(rejected).await;
                    }
                    for chunk in alerts.chunks(MAX_ALERTS_PER_REQUEST) {
                        let body: Vec<&serde_json::Value> = chunk.iter().map(|(_, j)| j).collect();
                        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                        let events: Vec<&Event> = chunk.iter().map(|(e, _)| *e).collect();
                        notify::deliver(&mut poster, body, &events, &ctx).await;
                    }
                    drop(alerts);
                    // Each event was stated delivered or rejected above.
                    batches.into_iter().for_each(crate::event::Delivery::settle);
                }
                _ = resend.tick(), if !firing.is_empty() => {
                    let all: Vec<&serde_json::Value> = firing.values().collect();
                    for chunk in all.chunks(MAX_ALERTS_PER_REQUEST) {
                        let body = Bytes::from(serde_json::to_vec(chunk).unwrap_or_default());
                        // Nothing to dead-letter: the events were delivered already. A
                        // failure is counted and logged; the next resend tries again.
                        if let Err(error) = poster.post(body, &ctx).await {
                            if let Some(suppressed) = limiter.check() {
                                tracing::warn!(component_id = %ctx.id, %error, suppressed, "resending firing alerts failed");
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One alert in Alertmanager's `postableAlert` shape.
    fn alert_json(&self, n: &Notification) -> serde_json::Value {
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in n.group.iter() {
            labels.insert(label_name(name), value.to_text());
        }
        for (name, value) in &n.labels {
            labels.insert(label_name(name), value.clone());
        }
        labels.insert("severity".into(), n.severity.clone());
        labels.insert("alertname".into(), n.alert.clone());
        let mut annotations = n.annotations.clone();
        annotations
            .entry("summary".into())
            .or_insert_with(|| n.message.clone());
        annotations.insert("value".into(), n.value.to_string());
        let mut alert = serde_json::json!({
            "labels": labels,
            "annotations": annotations,
            "startsAt": format_timestamp(n.starts_at),
        });
        if let Some(ends_at) = n.ends_at {
            alert["endsAt"] = format_timestamp(ends_at).into();
        }
        if let Some(url) = &self.generator_url {
            alert["generatorURL"] = url.clone().into();
        }
        alert
    }
}

/// Alertmanager label names are `[a-zA-Z_][a-zA-Z0-9_]*`; other characters become `_`.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_names_are_sanitised() {
        for (name, label) in [
            ("app", "app"),
            ("http.status", "http_status"),
            ("1x", "_1x"),
            ("", "_"),
        ] {
            assert_eq!(super::label_name(name), label);
        }
    }
}
