//! What the notifier sinks (`alertmanager`, `webhook`, `slack`, `pagerduty`) share: reading
//! alert events back into [`Notification`]s, the HTTP poster with retries, and the batching
//! loop.
//!
//! A notifier takes the output of an `[alerts.ID]` rule. Each batch taken from the queue
//! (plus whatever else is already queued) becomes one request per `max_batch` alerts (1 for
//! Slack and PagerDuty, whose APIs take one message per request). Requests go through the
//! shared HTTP delivery client and retry driver (`delivery`), as the `http` sink's do: 2xx
//! delivers; 408, 429, 5xx, connection errors and timeouts are retried with backoff (a
//! `Retry-After` in seconds is honoured, capped by `max_backoff_secs`); anything else is
//! fatal and the alert events go to `ID.dead_letter`. An event that is not an alert is
//! rejected to dead-letter with a reason.
//! `restored` alerts (firing alerts a rule took back from its state file at start) are not
//! new notifications: they are acknowledged without a request, except by Alertmanager,
//! which needs to hear about every firing alert.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Uri;
use serde::Deserialize;

use super::batch::{self, invalid};
use super::http::HttpCompression;
use super::{dead_letter_event, SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::channel::BatchReceiver;
use crate::delivery::http::HttpClient;
use crate::delivery::retry::{DeliveryError, RetryConfig};
use crate::event::{Delivery, Event, Map, Value};
use crate::field_error::{at_least_one, FieldError};

use super::alertmanager::AlertmanagerConfig;
use super::pagerduty::PagerdutyConfig;
use super::slack::SlackConfig;
use super::webhook::WebhookConfig;

/// The notifier sink types, one `[sinks.ID] type = ...` each.
#[derive(Debug, Clone)]
pub enum NotifyConfig {
    Alertmanager(AlertmanagerConfig),
    Webhook(WebhookConfig),
    Slack(SlackConfig),
    Pagerduty(PagerdutyConfig),
}

impl NotifyConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            Self::Alertmanager(c) => c.validate(),
            Self::Webhook(c) => c.validate(),
            Self::Slack(c) => c.validate(),
            Self::Pagerduty(c) => c.validate(),
        }
    }

    pub async fn run(self, rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        match self {
            Self::Alertmanager(c) => c.run(rx, ctx).await,
            Self::Webhook(c) => c.run(rx, ctx).await,
            Self::Slack(c) => c.run(rx, ctx).await,
            Self::Pagerduty(c) => c.run(rx, ctx).await,
        }
    }
}

// === Notification ===

/// An alert event, read back from its fields (docs/alerts.md).
#[derive(Debug, Clone)]
pub struct Notification {
    pub alert: String,
    pub firing: bool,
    pub repeat: bool,
    pub restored: bool,
    pub severity: String,
    pub group: Map,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub fingerprint: String,
    pub message: String,
}

impl Notification {
    /// Reads an alert event; the error says what is missing.
    pub fn from_event(event: &Event) -> Result<Notification, String> {
        let f = &event.fields;
        let text = |name: &str| -> Result<String, String> {
            f.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    format!("not an alert event: no `{name}` string (notifier sinks take the output of an [alerts.ID] rule)")
                })
        };
        let alert = text("alert")?;
        let firing = match text("status")?.as_str() {
            "firing" => true,
            "resolved" => false,
            other => return Err(format!("not an alert event: unknown status `{other}`")),
        };
        let time = |name: &str| match f.get(name) {
            Some(Value::Timestamp(t)) | Some(Value::Integer(t)) => Some(*t),
            Some(Value::Bytes(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .and_then(|t| t.timestamp_nanos_opt()),
            _ => None,
        };
        let strings = |name: &str| -> BTreeMap<String, String> {
            match f.get(name) {
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_text()))
                    .collect(),
                _ => BTreeMap::new(),
            }
        };
        let flag = |name: &str| matches!(f.get(name), Some(Value::Bool(true)));
        Ok(Notification {
            firing,
            repeat: flag("repeat"),
            restored: flag("restored"),
            severity: text("severity").unwrap_or_else(|_| "warning".into()),
            group: match f.get("group") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            },
            labels: strings("labels"),
            annotations: strings("annotations"),
            value: f.get("value").and_then(Value::as_f64).unwrap_or(0.0),
            starts_at: time("starts_at")
                .ok_or_else(|| "not an alert event: no `starts_at` timestamp".to_string())?,
            ends_at: time("ends_at"),
            fingerprint: text("fingerprint")?,
            message: text("message").unwrap_or_else(|_| alert.clone()),
            alert,
        })
    }

    /// The group as `k=v k=v`, for human-readable notifiers.
    pub fn group_text(&self) -> String {
        self.group
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_text()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

// === Poster ===

/// `url`, `headers`, `timeout_secs` and `retry`: how a notifier reaches its endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Time allowed for one request; a timeout is retried.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub retry: RetryConfig,
    /// For `https://` URLs: `tls = { ca_file = "..." }` trusts these PEM CA certificates as
    /// well as the system's (e.g. a private CA in front of a relay).
    #[serde(default)]
    pub tls: ClientTls,
}

/// `tls = { ca_file }` on a notifier.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    pub ca_file: Option<PathBuf>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self {
            headers: BTreeMap::new(),
            timeout_secs: default_timeout_secs(),
            retry: RetryConfig::default(),
            tls: ClientTls::default(),
        }
    }
}

fn default_timeout_secs() -> u64 {
    10
}

impl Endpoint {
    pub fn validate(&self) -> Result<(), FieldError> {
        at_least_one(&[("timeout_secs", self.timeout_secs)])?;
        super::http::parse_headers(&self.headers)?;
        if self
            .tls
            .ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(FieldError::new("tls.ca_file", "must not be empty"));
        }
        self.retry.validate()
    }
}

/// Parses an `http://` or `https://` URL (field `url`).
pub fn parse_url(url: &str) -> Result<Uri, FieldError> {
    super::http::parse_endpoint(url, "url", &["http", "https"], "http://127.0.0.1:9093")
}

/// POSTs JSON bodies to one URL with retries: the log stores' poster, its headers
/// `Content-Type: application/json` then the configured ones, bodies sent uncompressed.
pub struct Poster(batch::Poster);

impl Poster {
    pub fn new(url: &str, endpoint: &Endpoint, ctx: &SinkContext) -> Result<Poster, SinkError> {
        let uri = parse_url(url).map_err(invalid)?;
        let https = uri.scheme_str() == Some("https");
        let tls = crate::tls::client_config(endpoint.tls.ca_file.as_deref(), https)
            .map_err(|e| invalid(FieldError::new("tls", e.to_string())))?;
        let headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        let client = HttpClient::with_tls(tls);
        let request = (
            HttpCompression::None,
            &endpoint.headers,
            endpoint.timeout_secs,
        );
        batch::Poster::new((uri, headers, client), request, &endpoint.retry, ctx).map(Poster)
    }

    /// POSTs `body` until it is accepted, refused for good, or the retries run out.
    pub async fn post(&mut self, body: Bytes, ctx: &SinkContext) -> Result<(), DeliveryError> {
        self.0.post(&body).await?;
        ctx.metrics.sent_bytes.inc(body.len() as u64);
        Ok(())
    }
}

// === the loop ===

/// How one notifier turns alerts into request bodies.
pub trait Format: Send {
    /// Most alerts in one request.
    fn max_batch(&self) -> usize;
    /// The JSON body for `alerts` (at most `max_batch`).
    fn body(&self, alerts: &[&Notification]) -> serde_json::Value;
}

/// Runs a notifier: alert events in, one request per `max_batch` alerts out.
pub async fn run_notifier(
    mut rx: BatchReceiver,
    ctx: SinkContext,
    mut poster: Poster,
    format: impl Format,
) {
    let mut batches: Vec<Delivery> = Vec::new();
    while let Some(first) = rx.recv().await {
        batches.push(first);
        while let Some(more) = rx.try_recv() {
            batches.push(more);
            if batches.len() >= 64 {
                break;
            }
        }
        let mut alerts: Vec<(&Event, Notification)> = Vec::new();
        let mut rejected = Vec::new();
        for event in batches.iter().flat_map(|b| b.events.iter()) {
            match Notification::from_event(event) {
                // Not a new notification (see the module docs): done.
                Ok(n) if n.restored => event.ack(AckStatus::Delivered),
                Ok(n) => alerts.push((event, n)),
                Err(reason) => {
                    rejected.push(dead_letter_event(event, &ctx.id, &reason, "not_an_alert"))
                }
            }
        }
        if !rejected.is_empty() {
            ctx.reject_async(rejected).await;
        }
        for chunk in alerts.chunks(format.max_batch().max(1)) {
            let notifications: Vec<&Notification> = chunk.iter().map(|(_, n)| n).collect();
            let body = Bytes::from(format.body(&notifications).to_string());
            let events: Vec<&Event> = chunk.iter().map(|(e, _)| *e).collect();
            deliver(&mut poster, body, &events, &ctx).await;
        }
        drop(alerts);
        // Each event was stated delivered or rejected above.
        batches.drain(..).for_each(Delivery::settle);
    }
}

/// POSTs `body` for `events`, then acknowledges them or hands them to dead-letter.
pub async fn deliver(poster: &mut Poster, body: Bytes, events: &[&Event], ctx: &SinkContext) {
    match poster.post(body, ctx).await {
        Ok(()) => {
            ctx.metrics.sent_events.inc(events.len() as u64);
            for event in events {
                event.ack(AckStatus::Delivered);
            }
        }
        Err(error) => {
            tracing::error!(component_id = %ctx.id, %error, alerts = events.len(), "notification failed for good; alert events go to dead-letter");
            let letters = super::dead_letters(events.iter().copied(), &ctx.id, &error);
            ctx.reject_async(letters).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert_event() -> Event {
        let spec = crate::alert::AlertConfig {
            condition: None,
            group_by: vec!["app".into()],
            kind: crate::alert::AlertKind::Threshold,
            window_secs: 10,
            threshold: Some(0.0),
            min_events: 1,
            for_secs: 0,
            repeat_interval_secs: 60,
            forget_after_secs: None,
            severity: "critical".into(),
            labels: [("team".to_string(), "{{ app }}".to_string())].into(),
            annotations: BTreeMap::new(),
            max_groups: 10,
            state_path: None,
        }
        .build("errors")
        .unwrap();
        let mut rules = crate::alert::RuleSet::new(vec![spec.clone()]);
        let mut fields = Map::new();
        fields.insert("app", Value::from("A"));
        rules.observe(&Event::new(fields), 7);
        rules.tick(7)[0].1.to_event(&spec, 7)
    }

    #[test]
    fn reads_back_an_alert_event() {
        let n = Notification::from_event(&alert_event()).unwrap();
        assert_eq!(n.alert, "errors");
        assert!(n.firing && !n.repeat && !n.restored);
        assert_eq!(n.severity, "critical");
        assert_eq!(n.group_text(), "app=A");
        assert_eq!(n.labels["team"], "A");
        assert_eq!(n.starts_at, 7);
        assert_eq!(n.ends_at, None);
        assert_eq!(n.value, 1.0);
        // The same after a JSON round trip (an alert read back from a file or Kafka).
        let json = serde_json::to_string(&alert_event().fields).unwrap();
        let back: Value = serde_json::from_str(&json).unwrap();
        let Value::Object(fields) = back else {
            panic!()
        };
        let n2 = Notification::from_event(&Event::new(fields)).unwrap();
        assert_eq!(n2.fingerprint, n.fingerprint);
        assert_eq!(n2.starts_at, 0, "microsecond precision: 7 ns rounds to 0");
    }

    #[test]
    fn rejects_other_events_with_a_reason() {
        let err = Notification::from_event(&Event::from_message("hello".into())).unwrap_err();
        assert!(err.contains("not an alert event"), "{err}");
    }
}
