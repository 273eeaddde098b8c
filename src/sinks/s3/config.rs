//! The `s3` sink's options and their check (no IO: credentials and TLS files are read when
//! the sink opens, in `credentials.rs` and `mod.rs`).

use serde::Deserialize;

use super::key::KeyTemplate;
use crate::delivery::retry::RetryConfig;
use crate::field_error::{at_least_one, FieldError};
use crate::sinks::options::RequestConfig;
use crate::sinks::Encoding;
use crate::tls::ClientTlsConfig;

/// S3's smallest part of a multipart upload (all but the last part).
pub(super) const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
/// S3's largest part.
const MAX_PART_BYTES: usize = 5 * 1024 * 1024 * 1024;

/// `[sinks.ID] type = "s3"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3SinkConfig {
    /// The bucket objects are written to (it must exist).
    pub bucket: String,
    /// Object key prefix, a template: `{{ field }}` placeholders (sanitised: a value cannot
    /// add a `/` level or a `..`) and strftime date tokens from the event's timestamp
    /// (UTC). A unique name is appended to it per object.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Region for request signing. Unset: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then
    /// `us-east-1`.
    pub region: Option<String>,
    /// The S3 endpoint of a store that is not AWS (SeaweedFS, MinIO, Ceph, R2...), e.g.
    /// `http://127.0.0.1:8333`. Unset: `https://s3.REGION.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Address the bucket in the path (`ENDPOINT/BUCKET/KEY`) rather than as a host name
    /// (`BUCKET.ENDPOINT/KEY`); most self-hosted stores need this.
    #[serde(default)]
    pub force_path_style: bool,
    /// `json` (NDJSON: one JSON object per line) or `text` (the `message` field per line).
    #[serde(default)]
    pub encoding: Encoding,
    /// `gzip` (the default), `zstd` or `none`.
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub batch: BatchConfig,
    /// Most objects being filled at once (one per distinct rendered `key_prefix`). A new
    /// prefix beyond it stores the oldest open object first (counted as
    /// `s3_objects_total{reason="max_open_objects"}`), so event fields that choose keys
    /// cannot make the sink hold unbounded memory.
    #[serde(default = "default_max_open_objects")]
    pub max_open_objects: usize,
    /// Objects larger than this (compressed) are sent as a multipart upload of parts this
    /// large (at least 5 MiB, S3's minimum).
    #[serde(default = "default_multipart_part_bytes")]
    pub multipart_part_bytes: usize,
    /// Static credentials; unset, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
    /// `AWS_SESSION_TOKEN`, then the shared credentials file.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// The profile read from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or
    /// `~/.aws/credentials`). Unset: `AWS_PROFILE`, then `default`.
    pub profile: Option<String>,
    /// Time allowed for one request (one PUT, one part), from connecting to the answer.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// For `https://` endpoints: CAs trusted besides the system's, a client certificate.
    #[serde(default)]
    pub tls: ClientTlsConfig,
    /// Backoff for failed requests; fatal answers and exhausted retries send the object's
    /// events to `ID.dead_letter`.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `request = { concurrency = N }`: objects being stored at once.
    #[serde(default)]
    pub request: RequestConfig,
}

/// `batch = { max_bytes, timeout_secs }`: when an open object is stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Encoded bytes (before compression) at which an object is stored.
    #[serde(default = "default_batch_max_bytes")]
    pub max_bytes: usize,
    /// Seconds after its first event at which an object is stored however small. The
    /// events' acknowledgement waits for the store, so this is also the longest a sender
    /// waiting for acknowledgement (the http source's answer) waits on this sink.
    #[serde(default = "default_batch_timeout_secs")]
    pub timeout_secs: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_bytes: default_batch_max_bytes(),
            timeout_secs: default_batch_timeout_secs(),
        }
    }
}

/// `compression = "gzip" | "zstd" | "none"`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// The object's `Content-Encoding` and the key's extension.
    pub(super) fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::None => None,
        }
    }

    pub(super) fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::None => "",
        }
    }
}

fn default_key_prefix() -> String {
    "logs/%Y/%m/%d/%H/".into()
}

fn default_max_open_objects() -> usize {
    64
}

fn default_multipart_part_bytes() -> usize {
    16 * 1024 * 1024
}

fn default_batch_max_bytes() -> usize {
    10 * 1024 * 1024
}

fn default_batch_timeout_secs() -> u64 {
    300
}

fn default_timeout_secs() -> u64 {
    60
}

impl S3SinkConfig {
    /// Checks the options and compiles the key template (no IO).
    pub fn build(self) -> Result<super::S3Sink, FieldError> {
        if self.bucket.is_empty() {
            return Err(FieldError::new("bucket", "must not be empty"));
        }
        if self.bucket.contains('/') {
            return Err(FieldError::new(
                "bucket",
                "is a bucket name, without `/` (put key levels in key_prefix)",
            ));
        }
        let key = KeyTemplate::parse(&self.key_prefix)?;
        if self.region.as_deref() == Some("") {
            return Err(FieldError::new("region", "must not be empty"));
        }
        if let Some(endpoint) = &self.endpoint {
            super::upload::parse_endpoint(endpoint)?;
        }
        at_least_one(&[
            ("batch.max_bytes", self.batch.max_bytes as u64),
            ("batch.timeout_secs", self.batch.timeout_secs),
            ("max_open_objects", self.max_open_objects as u64),
            ("timeout_secs", self.timeout_secs),
        ])?;
        if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&self.multipart_part_bytes) {
            return Err(FieldError::new(
                "multipart_part_bytes",
                format!("must be between {MIN_PART_BYTES} (5 MiB) and {MAX_PART_BYTES} (5 GiB)"),
            ));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => {
                return Err(FieldError::new(
                    "secret_access_key",
                    "is required with access_key_id",
                ))
            }
            (None, Some(_)) => {
                return Err(FieldError::new(
                    "access_key_id",
                    "is required with secret_access_key",
                ))
            }
            _ => {}
        }
        if self.session_token.is_some() && self.access_key_id.is_none() {
            return Err(FieldError::new(
                "session_token",
                "goes with access_key_id and secret_access_key",
            ));
        }
        self.request.validate((usize::MAX, ""))?;
        self.tls.validate()?;
        self.retry.validate()?;
        Ok(super::S3Sink { config: self, key })
    }
}
