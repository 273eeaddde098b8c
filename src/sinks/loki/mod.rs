//! The `loki` sink: events pushed to Grafana Loki (`POST /loki/api/v1/push`, JSON), in
//! batches, one request after the other on the shared HTTP delivery client and retry
//! driver.
//!
//! `streams.rs` turns events into streams: labels from the `labels` templates with a guard
//! on their number, entries sorted by time within each stream. Loki answers 204; 429, 5xx
//! and connection errors are retried; a 400 is Loki refusing entries (`entry out of
//! order`, `entry too far behind`, `greater than max allowed`, a line too long, a bad
//! label), which no retry changes: the request's events go to `ID.dead_letter` with Loki's
//! text. Loki may have kept the request's other entries (it ignores only the entries it
//! names), so a dead letter here means "possibly not stored", not "surely lost".

mod streams;

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::Uri;
use serde::Deserialize;

use super::batch::invalid;
use super::http::{parse_headers, HttpCompression};
use super::{batch, Encoding, SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::channel::BatchReceiver;
use crate::delivery::http::HttpClient;
use crate::delivery::retry::{DeliveryError, Retrier, RetryConfig};
use crate::event::{Delivery, Event};
use crate::field_error::FieldError;
use crate::telemetry;
use crate::template::Template;
use crate::tls::ClientTlsConfig;

/// `[sinks.ID] type = "loki"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiSinkConfig {
    /// Loki's base URL, e.g. `http://loki:3100` (`/loki/api/v1/push` is added).
    pub endpoint: String,
    /// `label = "template"`: each event's stream labels (an empty value leaves the label
    /// out). Default: `app` and `level`.
    #[serde(default = "default_labels")]
    pub labels: BTreeMap<String, String>,
    /// Most distinct label sets; events beyond go under the fallback set.
    #[serde(default = "default_max_label_sets")]
    pub max_label_sets: usize,
    /// Sent as `X-Scope-OrgID` (multi-tenant Loki).
    pub tenant_id: Option<String>,
    /// Each entry's line: `json` (the whole event) or `text` (its `message`).
    #[serde(default)]
    pub encoding: Encoding,
    /// Basic authentication (Grafana Cloud: the instance id and a token).
    pub user: Option<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub tls: ClientTlsConfig,
    #[serde(default)]
    pub compression: HttpCompression,
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    #[serde(default = "default_batch_timeout_ms")]
    pub batch_timeout_ms: u64,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".into(), "{{ app }}".into()),
        ("level".into(), "{{ level }}".into()),
    ])
}

fn default_max_label_sets() -> usize {
    1000
}

fn default_batch_max_events() -> usize {
    1000
}

fn default_batch_max_bytes() -> usize {
    // Loki's default `grpc_server_max_recv_msg_size` is 4 MiB; stay well below it.
    1024 * 1024
}

fn default_batch_timeout_ms() -> u64 {
    1000
}

fn default_timeout_secs() -> u64 {
    30
}

impl LokiSinkConfig {
    /// Checks the config syntactically (no IO).
    pub fn validate(&self) -> Result<(), FieldError> {
        parse_uri(&self.endpoint)?;
        self.label_templates()?;
        if self.max_label_sets == 0 {
            return Err(FieldError::new("max_label_sets", "must be at least 1"));
        }
        if self.batch_max_events == 0 {
            return Err(FieldError::new("batch_max_events", "must be at least 1"));
        }
        if self.batch_max_bytes == 0 {
            return Err(FieldError::new("batch_max_bytes", "must be at least 1"));
        }
        if self.timeout_secs == 0 {
            return Err(FieldError::new("timeout_secs", "must be at least 1"));
        }
        self.fixed_headers()?;
        parse_headers(&self.headers)?;
        self.tls.validate()?;
        self.retry.validate()
    }

    fn label_templates(&self) -> Result<Vec<(String, Template)>, FieldError> {
        if self.labels.is_empty() {
            return Err(FieldError::new("labels", "Loki needs at least one label"));
        }
        self.labels
            .iter()
            .map(|(name, template)| {
                let field = || format!("labels.{name}");
                let valid = name.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                });
                if !valid || name.is_empty() || name.starts_with("__") {
                    return Err(FieldError::new(
                        field(),
                        "a label name is [a-zA-Z_][a-zA-Z0-9_]* and does not start with `__`",
                    ));
                }
                let template = Template::parse(template)
                    .map_err(|e| FieldError::new(field(), e.to_string()))?;
                Ok((name.clone(), template))
            })
            .collect()
    }

    /// `X-Scope-OrgID` and `Authorization`, from `tenant_id`, `user` and `password`.
    fn fixed_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, FieldError> {
        use base64::Engine;
        let mut headers = Vec::new();
        if let Some(tenant) = &self.tenant_id {
            let value = HeaderValue::from_str(tenant)
                .map_err(|_| FieldError::new("tenant_id", "must be visible ASCII"))?;
            headers.push((HeaderName::from_static("x-scope-orgid"), value));
        }
        match (&self.user, &self.password) {
            (None, None) => {}
            (None, Some(_)) => return Err(FieldError::new("user", "password needs a user")),
            (Some(user), password) => {
                let pair = format!("{user}:{}", password.as_deref().unwrap_or(""));
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| FieldError::new("password", "must be visible ASCII"))?;
                value.set_sensitive(true);
                headers.push((AUTHORIZATION, value));
            }
        }
        Ok(headers)
    }

    /// The delivery client, its TLS files read (the start's IO).
    pub fn client(&self) -> Result<HttpClient, SinkError> {
        batch::client(&parse_uri(&self.endpoint).map_err(invalid)?, &self.tls)
    }

    pub async fn run(
        self,
        client: HttpClient,
        mut rx: BatchReceiver,
        ctx: SinkContext,
    ) -> Result<(), SinkError> {
        let uri: Uri = format!("{}/loki/api/v1/push", self.endpoint.trim_end_matches('/'))
            .parse()
            .map_err(|e| invalid(FieldError::new("endpoint", format!("{e}"))))?;
        let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        if self.compression == HttpCompression::Gzip {
            headers.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        }
        headers.extend(self.fixed_headers().map_err(invalid)?);
        headers.extend(parse_headers(&self.headers).map_err(invalid)?);
        let overflow = telemetry::counter(
            "component_label_overflow_events_total",
            &[("component_id", &ctx.id)],
        );
        let mut labeler = streams::Labeler::new(
            self.label_templates().map_err(invalid)?,
            self.max_label_sets,
            overflow,
        );
        let mut sink = LokiSink {
            uri,
            headers,
            client,
            timeout: Duration::from_secs(self.timeout_secs),
            retrier: Retrier::new(
                self.retry.clone(),
                Some(&ctx.id),
                ctx.metrics.write_errors.clone(),
            ),
            compression: self.compression,
            encoding: self.encoding,
        };
        let linger = Duration::from_millis(self.batch_timeout_ms);
        while let Some(mut batches) = batch::gather(&mut rx, self.batch_max_events, linger).await {
            let mut chunk: Vec<(&Event, String)> = Vec::new();
            let mut bytes = 0;
            for event in batches.iter().flat_map(|b| b.events.iter()) {
                let size = event.size_estimate();
                let full = chunk.len() >= self.batch_max_events
                    || (!chunk.is_empty() && bytes + size > self.batch_max_bytes);
                if full {
                    sink.send(&chunk, &ctx).await;
                    chunk.clear();
                    bytes = 0;
                }
                chunk.push((event, labeler.label_set(event)));
                bytes += size;
            }
            if !chunk.is_empty() {
                sink.send(&chunk, &ctx).await;
            }
            drop(chunk);
            // Each event was stated delivered or rejected by `send`.
            batches.drain(..).for_each(Delivery::settle);
        }
        Ok(())
    }
}

struct LokiSink {
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    client: HttpClient,
    timeout: Duration,
    retrier: Retrier,
    compression: HttpCompression,
    encoding: Encoding,
}

impl LokiSink {
    async fn send(&mut self, events: &[(&Event, String)], ctx: &SinkContext) {
        let body = streams::push_body(events, self.encoding);
        let payload = match batch::compress(body.into(), self.compression) {
            Ok(payload) => payload,
            Err(error) => {
                self.dead_letter(events, DeliveryError::Fatal(error.to_string()), ctx)
                    .await;
                return;
            }
        };
        let delivered = self
            .retrier
            .run(&self.uri, || {
                self.client
                    .post(&self.uri, &self.headers, payload.clone(), self.timeout)
            })
            .await;
        match delivered {
            Ok(()) => {
                ctx.metrics.sent_events.inc(events.len() as u64);
                ctx.metrics.sent_bytes.inc(payload.len() as u64);
                for (event, _) in events {
                    event.ack(AckStatus::Delivered);
                }
            }
            Err(error) => self.dead_letter(events, error, ctx).await,
        }
    }

    async fn dead_letter(
        &self,
        events: &[(&Event, String)],
        error: DeliveryError,
        ctx: &SinkContext,
    ) {
        tracing::error!(component_id = %ctx.id, uri = %self.uri, %error, events = events.len(), "loki refused the push; events go to dead-letter");
        let letters = super::dead_letters(events.iter().map(|(e, _)| *e), &ctx.id, &error);
        ctx.reject_async(letters).await;
    }
}

fn parse_uri(uri: &str) -> Result<Uri, FieldError> {
    batch::endpoint_uri(uri, "http://127.0.0.1:3100", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<LokiSinkConfig, FieldError> {
        let text = format!("endpoint = \"http://127.0.0.1:3100\"\n{extra}");
        let config: LokiSinkConfig = toml::from_str(&text).expect("parses");
        config.validate().map(|()| config)
    }

    #[test]
    fn validates_its_options() {
        assert!(config("").is_ok());
        assert!(config(
            "labels = { job = \"sluice\", app = \"{{ app }}\" }\ntenant_id = \"team-a\""
        )
        .is_ok());
        for (extra, field) in [
            ("labels = {}", "labels"),
            ("labels = { \"1x\" = \"a\" }", "labels.1x"),
            ("labels = { __name__ = \"a\" }", "labels.__name__"),
            ("labels = { \"a-b\" = \"a\" }", "labels.a-b"),
            ("labels = { app = \"{{ \" }", "labels.app"),
            ("max_label_sets = 0", "max_label_sets"),
            ("tenant_id = \"a\\nb\"", "tenant_id"),
            ("password = \"p\"", "user"),
        ] {
            assert_eq!(config(extra).unwrap_err().field, field, "{extra}");
        }
    }
}
