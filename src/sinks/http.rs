//! The `http` sink: POSTs batches of events to an HTTP endpoint, typically another router's
//! `POST /v1/logs` (router-to-router forwarding).
//!
//! Runs as an async task on the shared HTTP delivery client and retry driver (`delivery`).
//! Each batch taken from the queue (plus whatever else is already queued) is cut into
//! requests of at most `batch_max_events` events and `batch_max_bytes` encoded bytes, sent
//! one after the other so the events keep their order. An event bigger than
//! `batch_max_bytes` is sent alone.
//!
//! Responses are classified like the file sink's write errors: a 2xx acknowledges the
//! request's events as delivered; 408, 429, 5xx, connection errors and timeouts are retried
//! with backoff (a `Retry-After` in seconds is honoured, capped by `max_backoff_secs`); any
//! other status is fatal and the events go to `ID.dead_letter` with the status and the start
//! of the response body in the reason.
//!
//! `https://` URIs are verified against the system's CAs and `tls.ca_file`; with
//! `tls.crt_file` and `tls.key_file` the sink presents a client certificate (mutual TLS).
//! The files are read once, when the sink opens. A server whose certificate is not trusted
//! fails the handshake, which is retried like any connection error: the events stay
//! unacknowledged, each attempt is counted and logged with the reason.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::Uri;
use serde::Deserialize;

use super::batch::{self, invalid, Poster};
use super::{SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::delivery::http::HttpClient;
use crate::delivery::retry::RetryConfig;
use crate::event::Event;
use crate::field_error::{at_least_one, FieldError};
use crate::tls::ClientTlsConfig;

/// `[sinks.ID] type = "http"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where to POST, e.g. `http://10.0.0.2:8080/v1/logs` (another router's http source)
    /// or `https://...`.
    pub uri: String,
    /// For `https://`: CAs trusted besides the system's, and a client certificate.
    #[serde(default)]
    pub tls: ClientTlsConfig,
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
        at_least_one(&[
            ("batch_max_events", self.batch_max_events as u64),
            ("batch_max_bytes", self.batch_max_bytes as u64),
            ("timeout_secs", self.timeout_secs),
        ])?;
        parse_headers(&self.headers)?;
        self.tls.validate()?;
        self.retry.validate()
    }

    /// The delivery client, its TLS files read (the start's IO: a missing or bad file stops
    /// the start, naming the field).
    pub fn client(&self) -> Result<HttpClient, SinkError> {
        let uri = parse_uri(&self.uri).map_err(invalid)?;
        batch::client(uri.scheme_str() == Some("https"), &self.tls)
    }

    pub async fn run(
        self,
        client: HttpClient,
        mut rx: BatchReceiver,
        ctx: SinkContext,
    ) -> Result<(), SinkError> {
        let uri = parse_uri(&self.uri).map_err(invalid)?;
        let content_type = match self.encoding {
            HttpEncoding::Ndjson => "application/x-ndjson",
            HttpEncoding::JsonArray => "application/json",
        };
        let headers = vec![(CONTENT_TYPE, HeaderValue::from_static(content_type))];
        let request = (self.compression, &self.headers, self.timeout_secs);
        let poster = Poster::new((uri, headers, client), request, &self.retry, &ctx)?;
        // What is already queued is taken too, up to one request's worth, so small upstream
        // batches are not sent one request each; nothing is waited for.
        let max_events = self.batch_max_events;
        while let Some(gathered) = batch::gather(&mut rx, max_events, Duration::ZERO).await {
            let encode = |event: &Event, row: &mut Vec<u8>| {
                if self.encoding == HttpEncoding::JsonArray {
                    row.push(b',');
                }
                // Serialising our own value type cannot fail (see `Encoding::encode`).
                let _ = serde_json::to_writer(&mut *row, &event.fields);
                if self.encoding == HttpEncoding::Ndjson {
                    row.push(b'\n');
                }
            };
            // One byte kept for the closing `]` of `json_array`.
            let limits = (max_events, self.batch_max_bytes - 1);
            for mut chunk in batch::chunks(gathered.events(), limits, encode) {
                if self.encoding == HttpEncoding::JsonArray {
                    chunk.body[0] = b'[';
                    chunk.body.push(b']');
                }
                let what = "request failed for good";
                poster
                    .send(&chunk.events, chunk.body.into(), &ctx, what)
                    .await;
            }
            // Each event was stated delivered or rejected by `send`.
            gathered.settle();
        }
        Ok(())
    }
}

fn parse_uri(uri: &str) -> Result<Uri, FieldError> {
    parse_endpoint(
        uri,
        "uri",
        &["http", "https"],
        "http://127.0.0.1:8080/v1/logs",
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_uri() {
        for (uri, ok) in [
            ("http://127.0.0.1:8080/v1/logs", true),
            ("http://logs.example.com", true),
            ("https://logs.example.com", true),
            ("ftp://logs.example.com", false),
            ("127.0.0.1:8080", false),
            ("not a uri", false),
            ("", false),
        ] {
            assert_eq!(parse_uri(uri).is_ok(), ok, "{uri}");
        }
    }
}
