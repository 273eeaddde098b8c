//! The `clickhouse` sink: events as rows, inserted in batches over ClickHouse's HTTP
//! interface (`INSERT INTO db.table FORMAT JSONEachRow`) into a table the user made
//! (docs/clickhouse.md gives a schema).
//!
//! Rows are encoded by `encode.rs` (which fields become which columns, how timestamps are
//! written) and inserted by `insert.rs` on the shared HTTP delivery client and retry driver,
//! one insert after the other so rows keep their order. Queued batches are gathered for
//! up to `batch_timeout_ms` into inserts of at most `batch_max_events` rows and
//! `batch_max_bytes` bytes: ClickHouse makes a part per insert and wants few large ones.
//! Events are acknowledged once the insert that holds them was answered 200; rows the server
//! refuses go to `ID.dead_letter` with its reason while the others are inserted.

mod encode;
mod insert;

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING};
use hyper::Uri;
use serde::Deserialize;

use super::batch::invalid;
use super::http::{parse_headers, HttpCompression};
use super::{batch, SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::condition::FieldPath;
use crate::delivery::http::HttpClient;
use crate::delivery::retry::{Retrier, RetryConfig};
use crate::event::{Delivery, Event};
use crate::field_error::FieldError;
use crate::tls::ClientTlsConfig;

pub use encode::TimestampFormat;

/// ClickHouse inserts atomically up to `max_insert_block_size` rows (1,048,576 by default);
/// a larger insert could be half taken when it fails.
const MAX_BATCH_EVENTS: usize = 1_000_000;

/// `[sinks.ID] type = "clickhouse"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickhouseSinkConfig {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123` or `https://ch.example.com:8443`.
    pub endpoint: String,
    /// The database (default: the user's default database).
    pub database: Option<String>,
    /// The table to insert into; it must exist.
    pub table: String,
    /// Sent as `X-ClickHouse-User`.
    pub user: Option<String>,
    /// Sent as `X-ClickHouse-Key` (use `${ENV}` to keep it out of the file).
    pub password: Option<String>,
    /// `column = "field.path"`: the columns of a row and the fields they are read from.
    /// Unset: every top-level field, under its own name.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// A column (e.g. a `Map(String, String)`) that receives every top-level field no
    /// column took, values as text. Needs `columns`.
    pub other_fields_column: Option<String>,
    /// How timestamps are written; see `TimestampFormat`.
    #[serde(default)]
    pub timestamp_format: TimestampFormat,
    /// Asks the server to ignore fields the table has no column for
    /// (`input_format_skip_unknown_fields`), rather than refuse the row.
    #[serde(default = "default_true")]
    pub skip_unknown_fields: bool,
    /// Further settings for each insert, e.g. `{ async_insert = "1" }`, sent as URL
    /// parameters.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// For `https://`: CAs trusted besides the system's, and a client certificate.
    #[serde(default)]
    pub tls: ClientTlsConfig,
    /// `none` or `gzip` (the request body, sent with `Content-Encoding: gzip`).
    #[serde(default = "default_compression")]
    pub compression: HttpCompression,
    /// Most rows in one insert (at most 1,000,000).
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Most encoded (uncompressed) bytes in one insert; a single bigger row is sent alone.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// How long to wait for more events before inserting fewer than `batch_max_events`.
    #[serde(default = "default_batch_timeout_ms")]
    pub batch_timeout_ms: u64,
    /// Time allowed for one insert, from connecting to reading the answer; a timeout is
    /// retried.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Further inserts allowed per refused insert to find the rows the server refuses.
    #[serde(default = "default_max_isolation_inserts")]
    pub max_isolation_inserts: usize,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Backoff for retryable failures; fatal failures and exhausted retries go to
    /// `ID.dead_letter`.
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_true() -> bool {
    true
}

fn default_compression() -> HttpCompression {
    HttpCompression::Gzip
}

fn default_batch_max_events() -> usize {
    10_000
}

fn default_batch_max_bytes() -> usize {
    10 * 1024 * 1024
}

fn default_batch_timeout_ms() -> u64 {
    1000
}

fn default_timeout_secs() -> u64 {
    30
}

/// Halving finds one refused row among 10,000 in about 28 inserts (two per level), so this
/// isolates four or so per insert before the rest in doubt is given up on.
fn default_max_isolation_inserts() -> usize {
    128
}

impl ClickhouseSinkConfig {
    /// Checks the config syntactically (no IO).
    pub fn validate(&self) -> Result<(), FieldError> {
        parse_uri(&self.endpoint)?;
        identifier("table", &self.table)?;
        if let Some(database) = &self.database {
            identifier("database", database)?;
        }
        self.columns()?;
        if let Some(other) = &self.other_fields_column {
            if self.columns.is_empty() {
                return Err(FieldError::new(
                    "other_fields_column",
                    "needs `columns`: without them every field is a column already",
                ));
            }
            if self.columns.contains_key(other) {
                return Err(FieldError::new(
                    "other_fields_column",
                    format!("`{other}` is also in `columns`"),
                ));
            }
        }
        if !(1..=MAX_BATCH_EVENTS).contains(&self.batch_max_events) {
            return Err(FieldError::new(
                "batch_max_events",
                format!("must be between 1 and {MAX_BATCH_EVENTS} (an insert is atomic only up to the server's max_insert_block_size)"),
            ));
        }
        if self.batch_max_bytes == 0 {
            return Err(FieldError::new("batch_max_bytes", "must be at least 1"));
        }
        if self.timeout_secs == 0 {
            return Err(FieldError::new("timeout_secs", "must be at least 1"));
        }
        self.credentials()?;
        parse_headers(&self.headers)?;
        self.tls.validate()?;
        self.retry.validate()
    }

    fn columns(&self) -> Result<Vec<(String, FieldPath)>, FieldError> {
        self.columns
            .iter()
            .map(|(column, field)| {
                let path = FieldPath::parse(field)
                    .map_err(|e| FieldError::new(format!("columns.{column}"), e))?;
                Ok((column.clone(), path))
            })
            .collect()
    }

    fn credentials(&self) -> Result<Vec<(HeaderName, HeaderValue)>, FieldError> {
        let mut headers = Vec::new();
        for (field, header, value) in [
            ("user", "x-clickhouse-user", &self.user),
            ("password", "x-clickhouse-key", &self.password),
        ] {
            if let Some(value) = value {
                let mut value = HeaderValue::from_str(value)
                    .map_err(|_| FieldError::new(field, "must be visible ASCII"))?;
                value.set_sensitive(true);
                headers.push((HeaderName::from_static(header), value));
            }
        }
        Ok(headers)
    }

    /// The insert's URL: the endpoint with the query and settings as parameters.
    fn insert_uri(&self) -> Result<Uri, FieldError> {
        let endpoint = parse_uri(&self.endpoint)?;
        let mut query = String::from("INSERT INTO ");
        if let Some(database) = &self.database {
            query.push_str(&format!("`{database}`."));
        }
        query.push_str(&format!("`{}` FORMAT JSONEachRow", self.table));
        let mut text = self.endpoint.trim_end_matches('/').to_string();
        if endpoint.path() == "/" {
            text.push('/');
        }
        text.push_str("?query=");
        batch::percent_encode(&query, &mut text);
        let mut settings = self.settings.clone();
        if self.skip_unknown_fields {
            settings
                .entry("input_format_skip_unknown_fields".into())
                .or_insert_with(|| "1".into());
        }
        for (name, value) in &settings {
            text.push('&');
            batch::percent_encode(name, &mut text);
            text.push('=');
            batch::percent_encode(value, &mut text);
        }
        text.parse()
            .map_err(|e| FieldError::new("endpoint", format!("invalid URL `{text}`: {e}")))
    }

    /// The delivery client, its TLS files read (the start's IO: a missing or bad file stops
    /// the start, naming the field).
    pub fn client(&self) -> Result<HttpClient, SinkError> {
        batch::client(&parse_uri(&self.endpoint).map_err(invalid)?, &self.tls)
    }

    pub async fn run(
        self,
        client: HttpClient,
        mut rx: BatchReceiver,
        ctx: SinkContext,
    ) -> Result<(), SinkError> {
        let mut headers = self.credentials().map_err(invalid)?;
        if self.compression == HttpCompression::Gzip {
            headers.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        }
        headers.extend(parse_headers(&self.headers).map_err(invalid)?);
        let encoder = encode::RowEncoder::new(
            self.columns().map_err(invalid)?,
            self.other_fields_column.as_deref(),
            self.timestamp_format,
        );
        let mut inserter = insert::Inserter {
            uri: self.insert_uri().map_err(invalid)?,
            headers,
            client,
            timeout: Duration::from_secs(self.timeout_secs),
            retrier: Retrier::new(
                self.retry.clone(),
                Some(&ctx.id),
                ctx.metrics.write_errors.clone(),
            ),
            compression: self.compression,
            max_isolation_inserts: self.max_isolation_inserts,
        };
        let linger = Duration::from_millis(self.batch_timeout_ms);
        let mut body = Vec::new();
        let mut ends = Vec::new();
        let mut row = Vec::new();
        while let Some(mut batches) = batch::gather(&mut rx, self.batch_max_events, linger).await {
            let mut chunk: Vec<&Event> = Vec::new();
            for event in batches.iter().flat_map(|b| b.events.iter()) {
                row.clear();
                encoder.encode(event, &mut row);
                let full = chunk.len() >= self.batch_max_events
                    || (!chunk.is_empty() && body.len() + row.len() > self.batch_max_bytes);
                if full {
                    inserter.insert(&chunk, &body, &ends, &ctx).await;
                    chunk.clear();
                    body.clear();
                    ends.clear();
                }
                body.extend_from_slice(&row);
                ends.push(body.len());
                chunk.push(event);
            }
            if !chunk.is_empty() {
                inserter.insert(&chunk, &body, &ends, &ctx).await;
            }
            drop(chunk);
            body.clear();
            ends.clear();
            // Each event was stated delivered or rejected by `insert`.
            batches.drain(..).for_each(Delivery::settle);
        }
        Ok(())
    }
}

/// A table or database name, quoted with backquotes in the query: it may hold anything but
/// a backquote, a backslash or a control character.
fn identifier(field: &str, name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '`' | '\\') || c.is_control())
    {
        return Err(FieldError::new(
            field,
            format!("`{name}` holds {c:?}, which a ClickHouse name may not"),
        ));
    }
    Ok(())
}

fn parse_uri(uri: &str) -> Result<Uri, FieldError> {
    batch::endpoint_uri(
        uri,
        "http://127.0.0.1:8123",
        " (database and settings are options)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<ClickhouseSinkConfig, FieldError> {
        let text = format!("endpoint = \"http://127.0.0.1:8123\"\ntable = \"logs\"\n{extra}");
        let config: ClickhouseSinkConfig = toml::from_str(&text).expect("parses");
        config.validate().map(|()| config)
    }

    #[test]
    fn validates_its_options() {
        assert!(config("").is_ok());
        assert!(config(
            "columns = { ts = \"timestamp\", body = \"message\" }\nother_fields_column = \"attrs\""
        )
        .is_ok());
        for (extra, field) in [
            ("batch_max_events = 0", "batch_max_events"),
            ("batch_max_events = 2000000", "batch_max_events"),
            ("other_fields_column = \"attrs\"", "other_fields_column"),
            (
                "columns = { attrs = \"x\" }\nother_fields_column = \"attrs\"",
                "other_fields_column",
            ),
            ("columns = { ts = \"\" }", "columns.ts"),
            ("database = \"a`b\"", "database"),
            ("password = \"p\\n\"", "password"),
            ("timeout_secs = 0", "timeout_secs"),
        ] {
            assert_eq!(config(extra).unwrap_err().field, field, "{extra}");
        }
        let bad_table: ClickhouseSinkConfig =
            toml::from_str("endpoint = \"http://h:8123\"\ntable = \"\"").unwrap();
        assert_eq!(bad_table.validate().unwrap_err().field, "table");
        let query: ClickhouseSinkConfig =
            toml::from_str("endpoint = \"http://h:8123/?database=x\"\ntable = \"t\"").unwrap();
        assert_eq!(query.validate().unwrap_err().field, "endpoint");
    }

    #[test]
    fn builds_the_insert_url() {
        let c = config("database = \"web logs\"\nsettings = { async_insert = \"1\" }").unwrap();
        assert_eq!(
            c.insert_uri().unwrap().to_string(),
            "http://127.0.0.1:8123/?query=INSERT%20INTO%20%60web%20logs%60.%60logs%60%20FORMAT%20JSONEachRow&async_insert=1&input_format_skip_unknown_fields=1"
        );
        let mut c = config("skip_unknown_fields = false").unwrap();
        c.endpoint = "https://proxy.example.com/clickhouse/".into();
        assert_eq!(
            c.insert_uri().unwrap().to_string(),
            "https://proxy.example.com/clickhouse?query=INSERT%20INTO%20%60logs%60%20FORMAT%20JSONEachRow"
        );
    }
}
