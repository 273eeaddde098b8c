//! The `clickhouse` sink: events as rows, inserted in batches over ClickHouse's HTTP
//! interface (`INSERT INTO db.table FORMAT JSONEachRow`) into a table the user made
//! (docs/clickhouse.md gives a schema).
//!
//! Rows are encoded by `encode.rs` (which fields become which columns, how timestamps are
//! written) and inserted by `insert.rs` on the shared HTTP delivery client and retry driver,
//! up to `request.concurrency` inserts in flight at once (`in_flight.rs`). Queued batches are gathered for
//! up to `batch_timeout_ms` into inserts of at most `batch_max_events` rows and
//! `batch_max_bytes` bytes: ClickHouse makes a part per insert and wants few large ones.
//! Events are acknowledged once the insert that holds them was answered 200; rows the server
//! refuses go to `ID.dead_letter` with its reason while the others are inserted.

mod encode;
mod insert;

use std::collections::BTreeMap;

use hyper::header::{HeaderName, HeaderValue};
use hyper::Uri;
use serde::Deserialize;

use super::batch::{invalid, Gathered};
use super::http::HttpCompression;
use super::in_flight::{self, Requests};
use super::options::{StoreDefaults, StoreOptions, Unknown};
use super::{batch, SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::condition::FieldPath;
use crate::delivery::http::HttpClient;
use crate::event::Event;
use crate::field_error::FieldError;

pub use encode::TimestampFormat;

/// `[sinks.ID] type = "clickhouse"`
#[derive(Debug, Clone, Deserialize)]
pub struct ClickhouseSinkConfig {
    /// `endpoint`, `user` and `password` (as `X-ClickHouse-User` and `X-ClickHouse-Key`)...
    #[serde(flatten)]
    pub options: StoreOptions<Clickhouse>,
    /// The database (default: the user's default database).
    pub database: Option<String>,
    /// The table to insert into; it must exist.
    pub table: String,
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
    /// Further inserts allowed per refused insert to find the rows the server refuses.
    #[serde(default = "default_max_isolation_inserts")]
    pub max_isolation_inserts: usize,
    #[serde(flatten)]
    unknown: Unknown,
}

/// The defaults of ClickHouse's shared options.
#[derive(Debug, Clone)]
pub struct Clickhouse;

impl StoreDefaults for Clickhouse {
    const EXAMPLE: &'static str = "http://127.0.0.1:8123";
    const QUERY_NOTE: &'static str = " (database and settings are options)";
    const COMPRESSION: HttpCompression = HttpCompression::Gzip;
    const BATCH_MAX_EVENTS: usize = 10_000;
    /// ClickHouse inserts atomically up to `max_insert_block_size` rows (1,048,576 by
    /// default); a larger insert could be half taken when it fails.
    const MAX_BATCH_EVENTS: (usize, &'static str) = (
        1_000_000,
        " (an insert is atomic only up to the server's max_insert_block_size)",
    );
    const BATCH_MAX_BYTES: usize = 10 * 1024 * 1024;
}

fn default_true() -> bool {
    true
}

/// Halving finds one refused row among 10,000 in about 28 inserts (two per level), so this
/// isolates four or so per insert before the rest in doubt is given up on.
fn default_max_isolation_inserts() -> usize {
    128
}

impl ClickhouseSinkConfig {
    /// Checks the config syntactically (no IO).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.options.validate(&self.unknown)?;
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
        self.credentials()?;
        Ok(())
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
            ("user", "x-clickhouse-user", &self.options.user),
            ("password", "x-clickhouse-key", &self.options.password),
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
        let endpoint = self.options.uri()?;
        let mut query = String::from("INSERT INTO ");
        if let Some(database) = &self.database {
            query.push_str(&format!("`{database}`."));
        }
        query.push_str(&format!("`{}` FORMAT JSONEachRow", self.table));
        let mut text = self.options.endpoint.trim_end_matches('/').to_string();
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
        batch::request_uri(text)
    }

    pub async fn run(
        self,
        client: HttpClient,
        mut rx: BatchReceiver,
        ctx: SinkContext,
    ) -> Result<(), SinkError> {
        let options = &self.options;
        let headers = self.credentials().map_err(invalid)?;
        let uri = self.insert_uri().map_err(invalid)?;
        let encoder = encode::RowEncoder::new(
            self.columns().map_err(invalid)?,
            self.other_fields_column.as_deref(),
            self.timestamp_format,
        );
        let inserter = insert::Inserter {
            poster: options.poster(uri, headers, client, &ctx)?,
            max_isolation_inserts: self.max_isolation_inserts,
        };
        let requests = Requests::new(options.request.concurrency, &ctx.id);
        let (inserter, encoder, ctx, requests) = (&inserter, &encoder, &ctx, &requests);
        let send = |gathered: Gathered| async move {
            let encode = |event: &Event, row: &mut Vec<u8>| encoder.encode(event, row);
            let chunks: Vec<_> =
                batch::chunks(gathered.events(), options.limits(), encode).collect();
            let inserts: Vec<_> = chunks
                .iter()
                .map(|c| inserter.insert(&c.events, &c.body, &c.ends, ctx))
                .collect();
            requests.send_all(inserts).await;
            drop(chunks);
            // Each event was stated delivered or rejected by `insert`.
            gathered.settle();
        };
        in_flight::run(&mut rx, options.gathering(), send).await;
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
        c.options.endpoint = "https://proxy.example.com/clickhouse/".into();
        assert_eq!(
            c.insert_uri().unwrap().to_string(),
            "https://proxy.example.com/clickhouse?query=INSERT%20INTO%20%60logs%60%20FORMAT%20JSONEachRow"
        );
    }
}
