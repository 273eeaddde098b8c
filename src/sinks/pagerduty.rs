//! The `pagerduty` notifier: PagerDuty Events API v2, one event per alert.
//!
//! ```toml
//! [sinks.pager]
//! type = "pagerduty"
//! inputs = ["high_errors"]
//! routing_key = "${PAGERDUTY_ROUTING_KEY}"
//! url = "https://events.pagerduty.com/v2/enqueue"
//! ```
//!
//! A firing alert is a `trigger`, a resolution a `resolve`, both with the alert's
//! fingerprint as `dedup_key`, so PagerDuty groups repeats into one incident and resolves
//! the right one.

use serde::Deserialize;

use super::notify::{self, Endpoint, Format, Notification, Poster};
use super::{SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::event::format_timestamp;
use crate::field_error::FieldError;

/// PagerDuty limits `payload.summary` to 1024 characters.
const MAX_SUMMARY_CHARS: usize = 1024;

/// `[sinks.ID] type = "pagerduty"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    /// The integration key of the service.
    pub routing_key: String,
    /// The Events API v2 endpoint (`.../v2/enqueue`).
    pub url: String,
    /// `payload.source`; default: the group (`app=web`), or `sluice` without one.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(flatten)]
    pub endpoint: Endpoint,
}

impl PagerdutyConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.routing_key.trim().is_empty() {
            return Err(FieldError::new("routing_key", "must not be empty"));
        }
        notify::parse_url(&self.url)?;
        self.endpoint.validate()
    }

    pub async fn run(self, rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let poster = Poster::new(&self.url, &self.endpoint, &ctx)?;
        notify::run_notifier(rx, ctx, poster, self).await;
        Ok(())
    }
}

/// PagerDuty's severities are `critical`, `error`, `warning` and `info`.
fn severity(ours: &str) -> &'static str {
    match ours.to_ascii_lowercase().as_str() {
        "critical" | "crit" | "fatal" | "emergency" | "emerg" | "alert" | "page" => "critical",
        "error" | "err" | "high" => "error",
        "info" | "informational" | "notice" | "low" | "debug" => "info",
        _ => "warning",
    }
}

impl Format for PagerdutyConfig {
    fn max_batch(&self) -> usize {
        1
    }

    fn body(&self, alerts: &[&Notification]) -> serde_json::Value {
        let Some(n) = alerts.first() else {
            return serde_json::json!({});
        };
        if !n.firing {
            return serde_json::json!({
                "routing_key": self.routing_key,
                "event_action": "resolve",
                "dedup_key": n.fingerprint,
            });
        }
        let source = match &self.source {
            Some(s) => s.clone(),
            None if n.group.is_empty() => "sluice".to_string(),
            None => n.group_text(),
        };
        let summary: String = n.message.chars().take(MAX_SUMMARY_CHARS).collect();
        serde_json::json!({
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": n.fingerprint,
            "payload": {
                "summary": summary,
                "source": source,
                "severity": severity(&n.severity),
                "timestamp": format_timestamp(n.starts_at),
                "class": n.alert,
                "custom_details": {
                    "group": n.group,
                    "labels": n.labels,
                    "annotations": n.annotations,
                    "value": n.value,
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn maps_severities() {
        for (ours, theirs) in [
            ("critical", "critical"),
            ("ERROR", "error"),
            ("warning", "warning"),
            ("info", "info"),
            ("odd", "warning"),
        ] {
            assert_eq!(super::severity(ours), theirs);
        }
    }
}
