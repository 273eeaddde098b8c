//! The `opentelemetry` sink: events as OTLP log export requests (protobuf, optionally gzip)
//! over OTLP/HTTP or OTLP/gRPC (`grpc.rs`) to a collector, a backend or another router's
//! http source.
//!
//! The events are mapped back by the semantic conventions (`encode.rs`, the exact reverse
//! of the source's mapping) and grouped by resource, so that the events of one
//! app, instance and host share one `ResourceLogs`. Up to `request.concurrency` requests
//! are in flight at once (`in_flight.rs`, as for the stores' sinks), each through the
//! shared retry driver and acknowledged or dead-lettered on its own; over HTTP on the
//! shared delivery client, like the `http` sink's (over gRPC, the statuses are classified
//! in `grpc.rs`): a 2xx
//! acknowledges the request's events; 408, 429, 5xx, connection errors and timeouts are
//! retried with backoff (`Retry-After` honoured up to `max_backoff_secs`); any other status
//! sends the events to `ID.dead_letter`.
//!
//! A 2xx answer may carry a `partial_success` (`partial.rs`): records the server rejected
//! are counted and logged, and when it rejected all of them they go to dead-letter with its
//! reason. OTLP does not say which records of a partly rejected request were refused, so
//! those stay acknowledged as delivered.

mod encode;
mod grpc;
mod partial;
mod wire;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Uri;
use serde::Deserialize;

use super::batch::{self, invalid, Gathered, Poster};
use super::http::{parse_endpoint, parse_headers, HttpCompression};
use super::in_flight::{self, Requests};
use super::options::RequestConfig;
use super::{SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::channel::BatchReceiver;
use crate::delivery::http::HttpClient;
use crate::delivery::retry::{DeliveryError, Outcome, RetryConfig};
use crate::event::Event;
use crate::field_error::{at_least_one, FieldError};
use crate::tls::ClientTlsConfig;

pub use encode::request;

/// `[sinks.ID] type = "opentelemetry"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpentelemetrySinkConfig {
    /// The OTLP/HTTP logs endpoint, e.g. `http://collector:4318/v1/logs`, or with
    /// `protocol = "grpc"` the OTLP/gRPC server, e.g. `http://collector:4317`; `https://`
    /// for either over TLS.
    pub uri: String,
    /// `http` (OTLP/HTTP with protobuf bodies) or `grpc` (OTLP/gRPC, `LogsService/Export`).
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// `none` or `gzip` (`Content-Encoding: gzip`, or gRPC's gzip message encoding).
    #[serde(default)]
    pub compression: HttpCompression,
    /// Most log records in one request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Most bytes of events (their size in memory, close to their encoded size) in one
    /// request; a single bigger event is sent alone.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// Time allowed for one request, from connecting to reading the answer; a timeout is
    /// retried.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Extra request headers (gRPC metadata), e.g. `headers = { authorization = "Bearer ..." }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Backoff for retryable failures; fatal failures and exhausted retries go to
    /// `ID.dead_letter`.
    #[serde(default)]
    pub retry: RetryConfig,
    /// For `https://`: CAs trusted besides the system's, and a client certificate.
    #[serde(default)]
    pub tls: ClientTlsConfig,
    /// `request = { concurrency = N }`: export requests in flight at once (Vector's name).
    #[serde(default)]
    pub request: RequestConfig,
}

/// `protocol = "http" | "grpc"`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    #[default]
    Http,
    Grpc,
}

fn default_batch_max_events() -> usize {
    1000
}

fn default_batch_max_bytes() -> usize {
    4 * 1024 * 1024
}

fn default_timeout_secs() -> u64 {
    30
}

impl OpentelemetrySinkConfig {
    /// Checks the config syntactically (no IO).
    pub fn validate(&self) -> Result<(), FieldError> {
        let uri = parse_uri(&self.uri)?;
        if self.protocol == OtlpProtocol::Grpc && !matches!(uri.path(), "" | "/") {
            return Err(FieldError::new(
                "uri",
                format!(
                    "an OTLP/gRPC uri has no path (the method is always {}): use e.g. http://{}:4317",
                    "LogsService/Export",
                    uri.host().unwrap_or("collector")
                ),
            ));
        }
        at_least_one(&[
            ("batch_max_events", self.batch_max_events as u64),
            ("batch_max_bytes", self.batch_max_bytes as u64),
            ("timeout_secs", self.timeout_secs),
        ])?;
        parse_headers(&self.headers)?;
        if self.protocol == OtlpProtocol::Grpc {
            grpc::metadata(&self.headers)?;
        }
        // A collector takes export requests in any order: OTLP records carry their own time.
        self.request.validate((usize::MAX, ""))?;
        self.tls.validate()?;
        self.retry.validate()
    }

    pub async fn run(self, mut rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let uri = parse_uri(&self.uri).map_err(invalid)?;
        let headers = vec![(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        )];
        let gzip = self.compression == HttpCompression::Gzip;
        let https = uri.scheme_str() == Some("https");
        let (grpc, client) = match self.protocol {
            OtlpProtocol::Http => (None, batch::client(https, &self.tls)?),
            OtlpProtocol::Grpc => {
                let timeout = Duration::from_secs(self.timeout_secs);
                // The files are read here, once, when the sink opens.
                let tls = batch::client_tls(https, &self.tls)?;
                let exporter = grpc::GrpcExporter::new(&uri, gzip, &self.headers, timeout, tls)
                    .map_err(invalid)?;
                // Only the retry driver and dead letters of the poster are used.
                (Some(exporter), HttpClient::plain())
            }
        };
        // Over gRPC, tonic compresses the message.
        let compression = match grpc {
            Some(_) => HttpCompression::None,
            None => self.compression,
        };
        let request = (compression, &self.headers, self.timeout_secs);
        let sink = OtlpSink {
            poster: Poster::new((uri, headers, client), request, &self.retry, &ctx)?,
            grpc,
            partial: Mutex::new(partial::PartialSuccesses::new(&ctx.id)),
        };
        let requests = Requests::new(self.request.concurrency, &ctx.id);
        let (sink, ctx, requests) = (&sink, &ctx, &requests);
        let limits = (self.batch_max_events, self.batch_max_bytes);
        let send = |gathered: Gathered| async move {
            let exports: Vec<_> = batch::sized_chunks(gathered.events(), limits)
                .map(|chunk| async move { sink.send(&chunk, ctx).await })
                .collect();
            requests.send_all(exports).await;
            // Each event was stated delivered or rejected by `send`.
            gathered.settle();
        };
        // What is already queued is taken too, up to one request's worth, so small upstream
        // batches are not sent one request each; nothing is waited for.
        let gathering = (
            self.batch_max_events,
            Duration::ZERO,
            self.request.concurrency,
        );
        in_flight::run(&mut rx, gathering, send).await;
        Ok(())
    }
}

fn parse_uri(uri: &str) -> Result<Uri, FieldError> {
    parse_endpoint(
        uri,
        "uri",
        &["http", "https"],
        "http://127.0.0.1:4318/v1/logs",
    )
}

struct OtlpSink {
    /// For OTLP/HTTP, or only its retry driver and dead letters with `grpc`.
    poster: Poster,
    grpc: Option<grpc::GrpcExporter>,
    /// Shared by the requests in flight; held only to read an answer.
    partial: Mutex<partial::PartialSuccesses>,
}

impl OtlpSink {
    /// Sends one request's events, retrying, then acknowledges them or hands them to
    /// dead-letter.
    async fn send(&self, events: &[&Event], ctx: &SinkContext) {
        let what = "export failed for good";
        let p = &self.poster;
        let encoded = request(events);
        let payload = match batch::compress(encoded.into(), p.compression) {
            Ok(payload) => payload,
            // Compressing into memory does not fail in practice; treat it as fatal.
            Err(error) => {
                let error = DeliveryError::Fatal(error.to_string());
                return p.dead_letter(events, error, ctx, what).await;
            }
        };
        let answer = Mutex::new(Bytes::new());
        let delivered = p
            .retrier
            .run(&p.uri, || async {
                let (outcome, body) = match &self.grpc {
                    None => {
                        p.client
                            .post_for_answer(&p.uri, &p.headers, payload.clone(), p.timeout)
                            .await
                    }
                    Some(exporter) => exporter.export(payload.clone()).await,
                };
                if outcome == Outcome::Delivered {
                    *answer.lock().unwrap_or_else(|e| e.into_inner()) = body;
                }
                outcome
            })
            .await;
        let answer = answer.into_inner().unwrap_or_else(|e| e.into_inner());
        match delivered {
            Ok(()) => match self.check(&answer, events.len()) {
                partial::Verdict::Accepted => {
                    ctx.metrics.sent_events.inc(events.len() as u64);
                    ctx.metrics.sent_bytes.inc(payload.len() as u64);
                    for event in events {
                        event.ack(AckStatus::Delivered);
                    }
                }
                partial::Verdict::AllRejected(reason) => {
                    let error = DeliveryError::Fatal(reason);
                    p.dead_letter(events, error, ctx, what).await;
                }
            },
            Err(error) => p.dead_letter(events, error, ctx, what).await,
        }
    }

    fn check(&self, answer: &[u8], records: usize) -> partial::Verdict {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        partial.check(answer, records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<(), FieldError> {
        let text = format!("uri = \"http://127.0.0.1:4318/v1/logs\"\n{extra}");
        let config: OpentelemetrySinkConfig = toml::from_str(&text).expect("parses");
        config.validate()
    }

    #[test]
    fn validates_its_options() {
        assert!(config("").is_ok());
        assert!(config("compression = \"gzip\"").is_ok());
        // OTLP/gRPC has no path: the method is fixed.
        let grpc = config("protocol = \"grpc\"").unwrap_err();
        assert_eq!(grpc.field, "uri");
        assert!(grpc.message.contains("no path"), "{}", grpc.message);
        let text = "uri = \"http://127.0.0.1:4317\"\nprotocol = \"grpc\"";
        let grpc: OpentelemetrySinkConfig = toml::from_str(text).expect("parses");
        assert!(grpc.validate().is_ok());
        assert_eq!(
            config("batch_max_events = 0").unwrap_err().field,
            "batch_max_events"
        );
        assert!(config("request = { concurrency = 16 }").is_ok());
        for bad in [
            "request = { concurrency = 0 }",
            "request = { concurrency = 65 }",
        ] {
            assert_eq!(
                config(bad).unwrap_err().field,
                "request.concurrency",
                "{bad}"
            );
        }
        assert!(parse_uri("https://collector:4318/v1/logs").is_ok());
        assert_eq!(
            parse_uri("ftp://collector:4318/v1/logs").unwrap_err().field,
            "uri"
        );
        assert_eq!(
            config("tls = { crt_file = \"c.pem\" }").unwrap_err().field,
            "tls.key_file"
        );
    }
}
