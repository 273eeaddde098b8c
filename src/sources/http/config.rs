//! The http source's options: their defaults and their checks, done without IO.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::super::auth::{validate_tokens, RateLimitConfig};
use crate::codec::{DecodingConfig, FramingConfig};
use crate::field_error::{at_least_one, FieldError};
use crate::listen::{ConnectionLimits, HttpLimits, MinRate};
use crate::tls::TlsConfig;

/// `[sources.ID] type = "http"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, e.g. `0.0.0.0:8080`.
    pub address: String,
    /// A second address on which to serve OTLP/gRPC (`LogsService/Export`), e.g.
    /// `0.0.0.0:4317`, under the same tokens, TLS, limits and acknowledgement.
    pub grpc_address: Option<String>,
    /// Largest request body accepted, before and after decompression.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How lines of a `text/plain` body (and of NDJSON, for `max_frame_bytes`) are framed.
    #[serde(default)]
    pub framing: FramingConfig,
    /// How lines of a `text/plain` body become fields.
    #[serde(default)]
    pub decoding: DecodingConfig,
    /// How long a request may wait for room in the pipeline and for its acknowledgement
    /// before it is answered 503 (the client retries; the events may still be delivered,
    /// which at-least-once allows).
    #[serde(default = "default_ack_timeout_secs")]
    pub ack_timeout_secs: u64,
    /// Per-app tokens, Logplex-style: `tokens = { "TOKEN" = "app" }`. With any token
    /// configured (here or in `tokens_file`), requests without a valid one are refused and
    /// every accepted event's `app` is the token's app.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
    /// A file of `TOKEN APP` lines, read at start.
    pub tokens_file: Option<PathBuf>,
    /// Per-app token-bucket limits; over them a request is answered 429 with Retry-After.
    pub rate_limit: Option<RateLimitConfig>,
    /// Serve HTTPS (optionally requiring client certificates).
    pub tls: Option<TlsConfig>,
    /// Content types accepted (without parameters). Default: [`DEFAULT_CONTENT_TYPES`],
    /// which leaves out those a web page may send cross-origin without the browser asking.
    pub content_types: Option<Vec<String>>,
    /// Origins (`https://app.example.com`, or `"*"`) whose pages may post here. A request
    /// with any other `Origin` header is refused; requests without one (non-browser
    /// clients) are not concerned.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Connections held at once; more are closed at once and counted
    /// (`component_connections_refused_total{reason}`).
    #[serde(default = "crate::api::default_max_connections")]
    pub max_connections: usize,
    /// Connections held at once from one IP address.
    #[serde(default = "crate::api::default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept.
    #[serde(default = "crate::api::default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// Time a request body may take before `min_body_bytes_per_sec` applies.
    #[serde(default = "default_body_grace_secs")]
    pub body_grace_secs: u64,
    /// Slowest average rate a body may arrive at after `body_grace_secs` (a client that
    /// declares more than it sends is answered 408 as well).
    #[serde(default = "default_min_body_bytes_per_sec")]
    pub min_body_bytes_per_sec: u64,
    /// Request-body bytes held at once across all connections (each request counts its
    /// `Content-Length`, or `max_body_bytes` without one); over it: 503 with `Retry-After`.
    #[serde(default = "default_max_body_bytes_in_flight")]
    pub max_body_bytes_in_flight: usize,
}

fn default_max_body_bytes_in_flight() -> usize {
    crate::listen::DEFAULT_MAX_BODY_BYTES_IN_FLIGHT
}

fn default_body_grace_secs() -> u64 {
    crate::listen::DEFAULT_BODY_GRACE_SECS
}

fn default_min_body_bytes_per_sec() -> u64 {
    crate::listen::DEFAULT_MIN_BODY_BYTES_PER_SEC
}

/// The content types accepted unless `content_types` says otherwise: every type the source
/// reads except `text/plain` and `application/x-www-form-urlencoded`, which browsers send
/// cross-origin without a preflight. A request without a `Content-Type` is read as text.
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/json",
    "application/jsonlines",
    "application/octet-stream",
    "application/logplex-1",
    "application/x-protobuf",
];

/// Every content type the source can read (what `content_types` may list).
pub(super) const READABLE_CONTENT_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/json",
    "application/jsonlines",
    "application/octet-stream",
    "application/logplex-1",
    "application/x-protobuf",
    "text/plain",
    "application/x-www-form-urlencoded",
];

fn default_max_body_bytes() -> usize {
    10 * 1024 * 1024
}

fn default_ack_timeout_secs() -> u64 {
    30
}

impl HttpConfig {
    /// The listener's connection caps and header timeout.
    pub(super) fn limits(&self) -> HttpLimits {
        HttpLimits {
            connections: ConnectionLimits {
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
            },
            header_timeout: Duration::from_secs(self.header_timeout_secs),
        }
    }

    pub(super) fn min_body_rate(&self) -> MinRate {
        MinRate {
            grace: Duration::from_secs(self.body_grace_secs),
            bytes_per_sec: self.min_body_bytes_per_sec,
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        super::super::tcp::parse_address(&self.address)?;
        if let Some(address) = &self.grpc_address {
            super::super::tcp::parse_address(address).map_err(|e| FieldError {
                field: "grpc_address".into(),
                ..e
            })?;
        }
        self.limits().validate()?;
        self.min_body_rate().validate()?;
        if self.max_body_bytes_in_flight < self.max_body_bytes {
            return Err(FieldError::new(
                "max_body_bytes_in_flight",
                format!(
                    "must be at least max_body_bytes ({}), or no full-size request could ever be read",
                    self.max_body_bytes
                ),
            ));
        }
        at_least_one(&[
            ("max_body_bytes", self.max_body_bytes as u64),
            ("ack_timeout_secs", self.ack_timeout_secs),
        ])?;
        validate_tokens(&self.tokens, self.rate_limit.as_ref())?;
        for (i, content_type) in self.content_types.iter().flatten().enumerate() {
            if !READABLE_CONTENT_TYPES.contains(&content_type.to_ascii_lowercase().as_str()) {
                return Err(FieldError::new(
                    format!("content_types[{i}]"),
                    format!(
                        "`{content_type}` is not a type this source reads (one of: {})",
                        READABLE_CONTENT_TYPES.join(", ")
                    ),
                ));
            }
        }
        if let Some((i, origin)) = self.allowed_origins.iter().enumerate().find(|(_, o)| {
            o.as_str() != "*" && !(o.starts_with("http://") || o.starts_with("https://"))
        }) {
            return Err(FieldError::new(
                format!("allowed_origins[{i}]"),
                format!("`{origin}` is not an origin (scheme://host[:port], or \"*\")"),
            ));
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        self.framing.validate()
    }
}
