//! The `http` sink: POSTs batches of events to an HTTP endpoint, typically another router's
//! `POST /v1/logs` (router-to-router forwarding).
//!
//! Runs as an async task on a hyper client with connection reuse. Each batch taken from the
//! queue (plus whatever else is already queued) is cut into requests of at most
//! `batch_max_events` events and `batch_max_bytes` encoded bytes, sent one after the other so
//! the events keep their order. An event bigger than `batch_max_bytes` is sent alone.
//!
//! Responses are classified like the file sink's write errors: a 2xx acknowledges the
//! request's events as delivered; 408, 429, 5xx, connection errors and timeouts are retried
//! with backoff (a `Retry-After` in seconds is honoured, capped by `max_backoff_secs`); any
//! other status is fatal and the events go to `ID.dead_letter` with the status and the start
//! of the response body in the reason.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::{SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::config::FieldError;
use crate::delivery::retry::{DeliveryError, RetryConfig};
use crate::event::{Delivery, Event};
use crate::telemetry::{self, Counter, LogLimiter};
use crate::topology::BatchReceiver;

/// How much of an error response's body is quoted in a dead letter's reason.
const REASON_BODY_BYTES: usize = 200;

/// Response bodies are read (so the connection can be reused) up to this size.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// `[sinks.ID] type = "http"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where to POST, e.g. `http://10.0.0.2:8080/v1/logs` (another router's http source).
    /// Only `http://` for now.
    pub uri: String,
    /// Request body format: `ndjson` (one JSON object per line, `application/x-ndjson`,
    /// what a Sluice http source reads) or `json_array` (one JSON array,
    /// `application/json`).
    #[serde(default)]
    pub encoding: HttpEncoding,
    /// `none` or `gzip` (sent with `Content-Encoding: gzip`).
    #[serde(default)]
    pub compression: HttpCompression,
    /// Most events in one request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Most encoded (uncompressed) bytes in one request; a single bigger event is sent alone.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// Time allowed for one request, from connecting to reading the response; a timeout is
    /// retried.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Extra request headers, e.g. `headers = { authorization = "Bearer ..." }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Backoff for retryable failures; fatal failures and exhausted retries go to
    /// `ID.dead_letter`.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// `encoding = "ndjson" | "json_array"`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpEncoding {
    #[default]
    Ndjson,
    JsonArray,
}

/// `compression = "none" | "gzip"`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpCompression {
    #[default]
    None,
    Gzip,
}

fn default_batch_max_events() -> usize {
    1000
}

fn default_batch_max_bytes() -> usize {
    1024 * 1024
}

fn default_timeout_secs() -> u64 {
    30
}

impl HttpSinkConfig {
    /// Checks the config syntactically (no IO).
    pub fn validate(&self) -> Result<(), FieldError> {
        parse_uri(&self.uri)?;
        if self.batch_max_events == 0 {
            return Err(FieldError::new("batch_max_events", "must be at least 1"));
        }
        if self.batch_max_bytes == 0 {
            return Err(FieldError::new("batch_max_bytes", "must be at least 1"));
        }
        if self.timeout_secs == 0 {
            return Err(FieldError::new("timeout_secs", "must be at least 1"));
        }
        parse_headers(&self.headers)?;
        self.retry.validate()
    }

    pub async fn run(self, rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let invalid = |e: FieldError| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: {}", e.field, e.message),
            )
        };
        let uri = parse_uri(&self.uri).map_err(invalid)?;
        let headers = parse_headers(&self.headers).map_err(invalid)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let retries = telemetry::counter("component_retries_total", &[("component_id", &ctx.id)]);
        let mut sink = HttpSink {
            config: self,
            uri,
            headers,
            client,
            retries,
            limiter: LogLimiter::default(),
        };
        sink.run(rx, ctx).await;
        Ok(())
    }
}

fn parse_uri(uri: &str) -> Result<Uri, FieldError> {
    parse_endpoint(uri, "uri", &["http"], "http://127.0.0.1:8080/v1/logs")
}

/// Parses the URL in config field `field`: one of `schemes`, with a host. Shared by the
/// `http` sink and the alert notifiers.
pub(crate) fn parse_endpoint(
    text: &str,
    field: &str,
    schemes: &[&str],
    example: &str,
) -> Result<Uri, FieldError> {
    let parsed: Uri = text
        .parse()
        .map_err(|e| FieldError::new(field, format!("invalid URL `{text}`: {e}")))?;
    match parsed.scheme_str() {
        Some(scheme) if schemes.contains(&scheme) => {}
        Some(other) => {
            let expected: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
            return Err(FieldError::new(
                field,
                format!(
                    "unsupported scheme `{other}` (expected {})",
                    expected.join(" or ")
                ),
            ));
        }
        None => {
            return Err(FieldError::new(
                field,
                format!("`{text}` needs a scheme and host, e.g. {example}"),
            ))
        }
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err(FieldError::new(field, format!("`{text}` has no host")));
    }
    Ok(parsed)
}

/// Checks `headers = { ... }` (field `headers.NAME`).
pub(crate) fn parse_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, FieldError> {
    headers
        .iter()
        .map(|(name, value)| {
            let field = || format!("headers.{name}");
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| FieldError::new(field(), format!("invalid header name: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| FieldError::new(field(), format!("invalid header value: {e}")))?;
            Ok((name, value))
        })
        .collect()
}

struct HttpSink {
    config: HttpSinkConfig,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    client: Client<HttpConnector, Full<Bytes>>,
    retries: Counter,
    limiter: LogLimiter,
}

impl HttpSink {
    async fn run(&mut self, mut rx: BatchReceiver, ctx: SinkContext) {
        let mut batches: Vec<Delivery> = Vec::new();
        let mut body = Vec::new();
        let mut line = Vec::new();
        while let Some(first) = rx.recv().await {
            // Take what is already queued too, up to one request's worth of events, so small
            // upstream batches are not sent one request each.
            let mut queued = first.len();
            batches.push(first);
            while queued < self.config.batch_max_events {
                match rx.try_recv() {
                    Some(batch) => {
                        queued += batch.len();
                        batches.push(batch);
                    }
                    None => break,
                }
            }
            let mut chunk: Vec<&Event> = Vec::with_capacity(queued);
            for event in batches.iter().flat_map(|b| b.events.iter()) {
                line.clear();
                // Serialising our own value type cannot fail (see `Encoding::encode`).
                let _ = serde_json::to_writer(&mut line, &event.fields);
                let full = chunk.len() >= self.config.batch_max_events
                    || (!chunk.is_empty()
                        && body.len() + line.len() + 2 > self.config.batch_max_bytes);
                if full {
                    self.send(&chunk, &body, &ctx).await;
                    chunk.clear();
                    body.clear();
                }
                match self.config.encoding {
                    HttpEncoding::Ndjson => {
                        body.extend_from_slice(&line);
                        body.push(b'\n');
                    }
                    HttpEncoding::JsonArray => {
                        body.push(if chunk.is_empty() { b'[' } else { b',' });
                        body.extend_from_slice(&line);
                    }
                }
                chunk.push(event);
            }
            if !chunk.is_empty() {
                self.send(&chunk, &body, &ctx).await;
            }
            drop(chunk);
            body.clear();
            // Each event was stated delivered or rejected by `send`.
            batches.drain(..).for_each(Delivery::settle);
        }
    }

    /// Sends one request's events (encoded in `body`), retrying, then acknowledges them or
    /// hands them to dead-letter.
    async fn send(&mut self, events: &[&Event], body: &[u8], ctx: &SinkContext) {
        let payload = match self.payload(body) {
            Ok(p) => p,
            Err(error) => {
                // Compressing into memory does not fail in practice; treat it as fatal.
                self.dead_letter(events, DeliveryError::Fatal(error.to_string()), ctx)
                    .await;
                return;
            }
        };
        match self.deliver(&payload, ctx).await {
            Ok(()) => {
                ctx.metrics.sent_events.inc(events.len() as u64);
                ctx.metrics.sent_bytes.inc(payload.len() as u64);
                for event in events {
                    event.ack(AckStatus::Delivered);
                }
            }
            Err(error) => self.dead_letter(events, error, ctx).await,
        }
    }

    async fn dead_letter(&self, events: &[&Event], error: DeliveryError, ctx: &SinkContext) {
        tracing::error!(component_id = %ctx.id, uri = %self.uri, %error, events = events.len(), "request failed for good; events go to dead-letter");
        let reason = error.to_string();
        let letters = events
            .iter()
            .map(|event| super::dead_letter_event(event, &ctx.id, &reason, error.code()))
            .collect();
        ctx.reject_async(letters).await;
    }

    /// The request body: the encoded events, closed and compressed as configured.
    fn payload(&self, body: &[u8]) -> std::io::Result<Bytes> {
        let closing: &[u8] = match self.config.encoding {
            HttpEncoding::Ndjson => b"",
            HttpEncoding::JsonArray => b"]",
        };
        Ok(match self.config.compression {
            HttpCompression::None => {
                let mut out = Vec::with_capacity(body.len() + closing.len());
                out.extend_from_slice(body);
                out.extend_from_slice(closing);
                Bytes::from(out)
            }
            HttpCompression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::fast(),
                );
                gz.write_all(body)?;
                gz.write_all(closing)?;
                Bytes::from(gz.finish()?)
            }
        })
    }

    /// POSTs `payload` until it is accepted, refused for good, or the retries run out.
    async fn deliver(&mut self, payload: &Bytes, ctx: &SinkContext) -> Result<(), DeliveryError> {
        let mut backoff = self.config.retry.backoff();
        let cap = Duration::from_secs(self.config.retry.max_backoff_secs);
        loop {
            let (message, retry_after) = match self.attempt(payload.clone()).await {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(message)) => {
                    ctx.metrics.write_errors.inc(1);
                    return Err(DeliveryError::Fatal(message));
                }
                Err(Failure::Retryable {
                    message,
                    retry_after,
                }) => (message, retry_after),
            };
            ctx.metrics.write_errors.inc(1);
            let Some(delay) = backoff.next_delay() else {
                return Err(DeliveryError::Exhausted(format!(
                    "gave up after {} attempts: {message}",
                    backoff.attempts()
                )));
            };
            let delay = retry_after.map_or(delay, |after| after.min(cap));
            self.retries.inc(1);
            if let Some(suppressed) = self.limiter.check() {
                tracing::warn!(component_id = %ctx.id, uri = %self.uri, error = %message, attempt = backoff.attempts(), retry_in_ms = delay.as_millis() as u64, suppressed, "request failed; retrying");
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One request, classified.
    async fn attempt(&self, payload: Bytes) -> Result<(), Failure> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(
                CONTENT_TYPE,
                match self.config.encoding {
                    HttpEncoding::Ndjson => "application/x-ndjson",
                    HttpEncoding::JsonArray => "application/json",
                },
            );
        if self.config.compression == HttpCompression::Gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(payload))
            .map_err(|e| Failure::Fatal(format!("cannot build request: {e}")))?;
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // A body that fails to read or is too long only shortens the quoted reason.
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, body))
        };
        let (status, retry_after, body) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Err(Failure::Retryable {
                    message: format!("request timed out after {}s", self.config.timeout_secs),
                    retry_after: None,
                })
            }
            Ok(Err(error)) => {
                let mut message = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    message.push_str(": ");
                    message.push_str(&cause.to_string());
                    source = cause.source();
                }
                return Err(Failure::Retryable {
                    message,
                    retry_after: None,
                });
            }
            Ok(Ok(response)) => response,
        };
        classify(status, retry_after, &body)
    }
}

enum Failure {
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    Fatal(String),
}

fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Result<(), Failure> {
    if status.is_success() {
        return Ok(());
    }
    let quoted = String::from_utf8_lossy(&body[..body.len().min(REASON_BODY_BYTES)]);
    let message = format!("HTTP {status}: {}", quoted.trim());
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Err(Failure::Retryable {
            message,
            retry_after,
        })
    } else {
        Err(Failure::Fatal(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        let table = [
            (200, Some(true)),
            (204, Some(true)),
            (408, None),
            (429, None),
            (500, None),
            (503, None),
            (400, Some(false)),
            (404, Some(false)),
            (413, Some(false)),
            (301, Some(false)),
        ];
        for (code, expected) in table {
            let status = StatusCode::from_u16(code).unwrap();
            let got = match classify(status, None, b"nope") {
                Ok(()) => Some(true),
                Err(Failure::Fatal(message)) => {
                    assert!(message.contains(&code.to_string()), "{message}");
                    Some(false)
                }
                Err(Failure::Retryable { .. }) => None,
            };
            assert_eq!(got, expected, "{code}");
        }
    }

    #[test]
    fn quotes_at_most_200_bytes_of_the_body() {
        let body = vec![b'x'; 1000];
        let Err(Failure::Fatal(message)) = classify(StatusCode::BAD_REQUEST, None, &body) else {
            panic!("400 is fatal");
        };
        assert_eq!(message.matches('x').count(), REASON_BODY_BYTES);
    }

    #[test]
    fn validates_uri() {
        for (uri, ok) in [
            ("http://127.0.0.1:8080/v1/logs", true),
            ("http://logs.example.com", true),
            ("https://logs.example.com", false),
            ("127.0.0.1:8080", false),
            ("not a uri", false),
            ("", false),
        ] {
            assert_eq!(parse_uri(uri).is_ok(), ok, "{uri}");
        }
    }
}
