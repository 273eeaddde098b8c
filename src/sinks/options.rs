//! The options the sinks for log stores (`clickhouse`, `elasticsearch`, `loki`) share, which
//! each flattens into its own (`#[serde(flatten)]`), defaults per store by a marker type;
//! and what a sink builds from them when it starts (the client, `Poster`).
//!
//! serde ignores `deny_unknown_fields` on a struct that flattens another, so each sink's
//! struct keeps the leftovers (`Unknown`) and `validate` refuses the first by name.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use hyper::Uri;
use serde::Deserialize;

use super::batch::{self, invalid, Poster};
use super::http::{parse_headers, HttpCompression};
use super::{SinkContext, SinkError};
use crate::delivery::http::HttpClient;
use crate::delivery::retry::RetryConfig;
use crate::field_error::{at_least_one, FieldError};
use crate::tls::ClientTlsConfig;

/// What differs between the stores' shared options: defaults and limits.
pub trait StoreDefaults {
    /// A good `endpoint`, shown in its errors, and why it takes no query string.
    const EXAMPLE: &'static str;
    const QUERY_NOTE: &'static str = "";
    const COMPRESSION: HttpCompression = HttpCompression::None;
    const BATCH_MAX_EVENTS: usize;
    /// The most `batch_max_events` may be, and why.
    const MAX_BATCH_EVENTS: (usize, &'static str) = (usize::MAX, "");
    const BATCH_MAX_BYTES: usize;
    const TIMEOUT_SECS: u64 = 30;
    /// The most requests in flight at once; 1 where the store needs them in order.
    const MAX_CONCURRENCY: (usize, &'static str) = (MAX_CONCURRENCY, "");
}

/// More requests in flight than this would hold more batches than a queue usually does.
const MAX_CONCURRENCY: usize = 64;

/// The shared options; `D` names the store and so the defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound = "D: StoreDefaults")]
pub struct StoreOptions<D> {
    /// The store's URL, e.g. `http://127.0.0.1:8123`; its path is kept, a query refused.
    pub endpoint: String,
    /// Credentials; each store sends them its own way.
    pub user: Option<String>,
    pub password: Option<String>,
    /// For `https://`: CAs trusted besides the system's, and a client certificate.
    #[serde(default)]
    pub tls: ClientTlsConfig,
    /// `none` or `gzip` (the request body, sent with `Content-Encoding: gzip`).
    #[serde(default = "compression::<D>")]
    pub compression: HttpCompression,
    /// Most events in one request.
    #[serde(default = "batch_max_events::<D>")]
    pub batch_max_events: usize,
    /// Most encoded (uncompressed) bytes in one request; a bigger event goes alone.
    #[serde(default = "batch_max_bytes::<D>")]
    pub batch_max_bytes: usize,
    /// How long to wait for more events before sending fewer than `batch_max_events`.
    #[serde(default = "batch_timeout_ms")]
    pub batch_timeout_ms: u64,
    /// One request, from connecting to reading the answer; a timeout is retried.
    #[serde(default = "timeout_secs::<D>")]
    pub timeout_secs: u64,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Backoff; fatal failures and exhausted retries go to `ID.dead_letter`.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `request = { concurrency = N }`: requests in flight at once (Vector's name).
    #[serde(default = "request::<D>")]
    pub request: RequestConfig,
    #[serde(skip)]
    store: PhantomData<D>,
}

/// `request = { ... }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// Requests in flight at once; each holds its batches, inside the queue's byte bound.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
        }
    }
}

impl RequestConfig {
    /// `concurrency` is at least 1 and at most `max` (and `MAX_CONCURRENCY`), for `why`.
    pub fn validate(&self, (max, why): (usize, &str)) -> Result<(), FieldError> {
        let max = max.min(MAX_CONCURRENCY);
        if !(1..=max).contains(&self.concurrency) {
            let message = format!("must be between 1 and {max}{why}");
            return Err(FieldError::new("request.concurrency", message));
        }
        Ok(())
    }
}

fn default_concurrency() -> usize {
    4
}

fn request<D: StoreDefaults>() -> RequestConfig {
    RequestConfig {
        concurrency: default_concurrency().min(D::MAX_CONCURRENCY.0),
    }
}

fn compression<D: StoreDefaults>() -> HttpCompression {
    D::COMPRESSION
}

fn batch_max_events<D: StoreDefaults>() -> usize {
    D::BATCH_MAX_EVENTS
}

fn batch_max_bytes<D: StoreDefaults>() -> usize {
    D::BATCH_MAX_BYTES
}

fn batch_timeout_ms() -> u64 {
    1000
}

fn timeout_secs<D: StoreDefaults>() -> u64 {
    D::TIMEOUT_SECS
}

/// The options a sink's struct did not know, which `flatten` hands over instead of refusing.
pub(crate) type Unknown = BTreeMap<String, toml::Value>;

impl<D: StoreDefaults> StoreOptions<D> {
    /// Checks the shared options syntactically (no IO); `unknown`: those nobody took.
    pub fn validate(&self, unknown: &Unknown) -> Result<(), FieldError> {
        if let Some(name) = unknown.keys().next() {
            return Err(FieldError::new(
                name.as_str(),
                format!("unknown field `{name}`"),
            ));
        }
        self.uri()?;
        let (max_events, why) = D::MAX_BATCH_EVENTS;
        if !(1..=max_events).contains(&self.batch_max_events) {
            let message = match max_events {
                usize::MAX => "must be at least 1".to_string(),
                max => format!("must be between 1 and {max}{why}"),
            };
            return Err(FieldError::new("batch_max_events", message));
        }
        at_least_one(&[
            ("batch_max_bytes", self.batch_max_bytes as u64),
            ("timeout_secs", self.timeout_secs),
        ])?;
        self.request.validate(D::MAX_CONCURRENCY)?;
        parse_headers(&self.headers)?;
        self.tls.validate()?;
        self.retry.validate()
    }

    pub fn uri(&self) -> Result<Uri, FieldError> {
        batch::endpoint_uri(&self.endpoint, D::EXAMPLE, D::QUERY_NOTE)
    }

    /// The delivery client, its TLS files read (the start's IO).
    pub fn client(&self) -> Result<HttpClient, SinkError> {
        let https = self.uri().map_err(invalid)?.scheme_str() == Some("https");
        batch::client(https, &self.tls)
    }

    /// `user` and `password` as `Authorization: Basic`, if set.
    pub fn basic_auth(&self) -> Result<Option<HeaderValue>, FieldError> {
        use base64::Engine;
        let pair = match (&self.user, &self.password) {
            (None, None) => return Ok(None),
            (None, Some(_)) => return Err(FieldError::new("user", "password needs a user")),
            (Some(user), password) => format!("{user}:{}", password.as_deref().unwrap_or("")),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| FieldError::new("password", "must be visible ASCII"))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// What a sink sends with: to `uri`, the store's own `headers` first, retried.
    pub(crate) fn poster(
        &self,
        uri: Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        client: HttpClient,
        ctx: &SinkContext,
    ) -> Result<Poster, SinkError> {
        let request = (self.compression, &self.headers, self.timeout_secs);
        Poster::new((uri, headers, client), request, &self.retry, ctx)
    }

    /// Most events and bytes in one request.
    pub fn limits(&self) -> (usize, usize) {
        (self.batch_max_events, self.batch_max_bytes)
    }

    /// Most events gathered at once, how long to wait for more, requests at once.
    pub fn gathering(&self) -> (usize, Duration, usize) {
        let linger = Duration::from_millis(self.batch_timeout_ms);
        (self.batch_max_events, linger, self.request.concurrency)
    }
}
