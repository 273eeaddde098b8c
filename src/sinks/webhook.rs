//! The `webhook` notifier: POSTs alert events as documented JSON (docs/alerts.md).
//!
//! ```toml
//! [sinks.hook]
//! type = "webhook"
//! inputs = ["high_errors"]
//! url = "http://127.0.0.1:9000/alerts"
//! ```
//!
//! Body: `{"version": "1", "receiver": "<sink id>", "alerts": [<alert event>, ...]}`, each
//! alert being the alert event's fields as the rule emitted them.

use serde::Deserialize;

use super::notify::{self, Endpoint, Format, Notification, Poster};
use super::{SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::event::format_timestamp;
use crate::field_error::{at_least_one, FieldError};

/// `[sinks.ID] type = "webhook"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST, `http://...` or `https://...`.
    pub url: String,
    /// Most alerts in one request.
    #[serde(default = "default_max_alerts")]
    pub max_alerts_per_request: usize,
    #[serde(flatten)]
    pub endpoint: Endpoint,
}

fn default_max_alerts() -> usize {
    100
}

impl WebhookConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        notify::parse_url(&self.url)?;
        at_least_one(&[("max_alerts_per_request", self.max_alerts_per_request as u64)])?;
        self.endpoint.validate()
    }

    pub async fn run(self, rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let poster = Poster::new(&self.url, &self.endpoint, &ctx)?;
        let format = WebhookFormat {
            receiver: ctx.id.to_string(),
            max: self.max_alerts_per_request,
        };
        notify::run_notifier(rx, ctx, poster, format).await;
        Ok(())
    }
}

struct WebhookFormat {
    receiver: String,
    max: usize,
}

/// One alert in a webhook body.
pub fn alert_json(n: &Notification) -> serde_json::Value {
    serde_json::json!({
        "alert": n.alert,
        "status": if n.firing { "firing" } else { "resolved" },
        "repeat": n.repeat,
        "severity": n.severity,
        "group": n.group,
        "labels": n.labels,
        "annotations": n.annotations,
        "value": n.value,
        "starts_at": format_timestamp(n.starts_at),
        "ends_at": n.ends_at.map(format_timestamp),
        "fingerprint": n.fingerprint,
        "message": n.message,
    })
}

impl Format for WebhookFormat {
    fn max_batch(&self) -> usize {
        self.max
    }

    fn body(&self, alerts: &[&Notification]) -> serde_json::Value {
        serde_json::json!({
            "version": "1",
            "receiver": self.receiver,
            "alerts": alerts.iter().map(|n| alert_json(n)).collect::<Vec<_>>(),
        })
    }
}
