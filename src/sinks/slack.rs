//! The `slack` notifier: one incoming-webhook message per alert.
//!
//! ```toml
//! [sinks.chat]
//! type = "slack"
//! inputs = ["high_errors"]
//! url = "https://hooks.slack.com/services/T000/B000/XXXX"
//! ```
//!
//! The message has a plain `text` (what notifications and old clients show) and Block Kit
//! `blocks`: a section with the status and the alert's message, and a context line with the
//! severity, group, value and start time.

use serde::Deserialize;

use super::notify::{self, Endpoint, Format, Notification, Poster};
use super::{SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::event::format_timestamp;
use crate::field_error::FieldError;

/// `[sinks.ID] type = "slack"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL.
    pub url: String,
    /// Overrides of the webhook's defaults, where the workspace allows them.
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(flatten)]
    pub endpoint: Endpoint,
}

impl SlackConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        notify::parse_url(&self.url)?;
        self.endpoint.validate()
    }

    pub async fn run(self, rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let poster = Poster::new(&self.url, &self.endpoint, &ctx)?;
        notify::run_notifier(rx, ctx, poster, self).await;
        Ok(())
    }
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Format for SlackConfig {
    fn max_batch(&self) -> usize {
        1
    }

    fn body(&self, alerts: &[&Notification]) -> serde_json::Value {
        let Some(n) = alerts.first() else {
            return serde_json::json!({});
        };
        let (icon, status) = match (n.firing, n.repeat) {
            (true, false) => (":red_circle:", "FIRING"),
            (true, true) => (":red_circle:", "STILL FIRING"),
            (false, _) => (":large_green_circle:", "RESOLVED"),
        };
        let text = format!("{icon} [{status}] {}: {}", n.alert, n.message);
        let mut context = format!("severity: {}", n.severity);
        if !n.group.is_empty() {
            context.push_str(&format!(" · {}", n.group_text()));
        }
        context.push_str(&format!(
            " · value: {} · since {}",
            n.value,
            format_timestamp(n.starts_at)
        ));
        if let Some(ends_at) = n.ends_at {
            context.push_str(&format!(" · ended {}", format_timestamp(ends_at)));
        }
        let mut body = serde_json::json!({
            "text": escape(&text),
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": format!("{icon} *[{status}] {}*\n{}", escape(&n.alert), escape(&n.message)),
                    },
                },
                {
                    "type": "context",
                    "elements": [{ "type": "mrkdwn", "text": escape(&context) }],
                },
            ],
        });
        if let Some(channel) = &self.channel {
            body["channel"] = channel.clone().into();
        }
        if let Some(username) = &self.username {
            body["username"] = username.clone().into();
        }
        body
    }
}
