//! The `elasticsearch` sink: events as documents, written in batches with the `_bulk` API
//! of Elasticsearch or OpenSearch (NDJSON: an action line, then the document).
//!
//! Each event's index is rendered from the `index` template (`logs-%Y.%m.%d` from the
//! event's time, `{{ field }}` placeholders), its `_id` from `id_field` if set; `bulk.rs`
//! writes the items and reads the answer's per-item statuses, `send.rs` sends a request and
//! then again only its retryable items (429, 5xx), sending rejected ones (a
//! `mapper_parsing_exception`) to `ID.dead_letter` with their reason. Up to
//! `request.concurrency` requests are in flight at once on the shared HTTP delivery client
//! and retry driver (`in_flight.rs`); events are
//! acknowledged once their item was stored. Index templates and mappings are the
//! operator's (docs/elasticsearch.md recommends one).

mod bulk;
mod send;

use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::Uri;
use serde::Deserialize;

use super::batch::{invalid, Gathered};
use super::in_flight::{self, Requests};
use super::options::{StoreDefaults, StoreOptions, Unknown};
use super::{batch, SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::condition::FieldPath;
use crate::delivery::http::HttpClient;
use crate::event::Event;
use crate::field_error::FieldError;
use crate::template::Template;

/// Characters an index name may not hold (Elasticsearch's list), replaced by `_` where a
/// field's value brings them in.
const INDEX_FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];

/// `[sinks.ID] type = "elasticsearch"`
#[derive(Debug, Clone, Deserialize)]
pub struct ElasticsearchSinkConfig {
    /// `endpoint` (`/_bulk` is added), `user` and `password` (basic authentication)...
    #[serde(flatten)]
    pub options: StoreOptions<Elasticsearch>,
    /// The index (or data stream) of each event: a template with `{{ field }}`
    /// placeholders and `%Y`, `%m`, `%d`, `%H` from the event's `timestamp` (UTC).
    #[serde(default = "default_index")]
    pub index: String,
    /// `create` (default; what data streams accept, and an existing `_id` is not
    /// overwritten) or `index` (a document with an existing `_id` is replaced).
    #[serde(default)]
    pub action: BulkAction,
    /// A field whose value is the document's `_id` (retries then cannot store an event
    /// twice); unset: the cluster picks ids.
    pub id_field: Option<String>,
    /// The name the event's `timestamp` gets in the document (`@timestamp`, what data
    /// streams require); `""` keeps `timestamp`.
    #[serde(default = "default_timestamp_field")]
    pub timestamp_field: String,
    /// An ingest pipeline to run the documents through.
    pub pipeline: Option<String>,
    /// `Authorization: ApiKey ...` (the base64 form the cluster gave).
    pub api_key: Option<String>,
    #[serde(flatten)]
    unknown: Unknown,
}

/// The defaults of Elasticsearch's shared options.
#[derive(Debug, Clone)]
pub struct Elasticsearch;

impl StoreDefaults for Elasticsearch {
    const EXAMPLE: &'static str = "http://127.0.0.1:9200";
    const BATCH_MAX_EVENTS: usize = 1000;
    /// The answer to a request of more items might not fit what `send.rs` reads of it.
    const MAX_BATCH_EVENTS: (usize, &'static str) = (10_000, "");
    const BATCH_MAX_BYTES: usize = 10 * 1024 * 1024;
    const TIMEOUT_SECS: u64 = 60;
}

/// `action = "create" | "index"`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    #[default]
    Create,
    Index,
}

fn default_index() -> String {
    "logs-%Y.%m.%d".into()
}

fn default_timestamp_field() -> String {
    "@timestamp".into()
}

impl ElasticsearchSinkConfig {
    /// Checks the config syntactically (no IO).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.options.validate(&self.unknown)?;
        self.index_template()?;
        if let Some(field) = &self.id_field {
            FieldPath::parse(field).map_err(|e| FieldError::new("id_field", e))?;
        }
        self.credentials()?;
        Ok(())
    }

    fn index_template(&self) -> Result<Template, FieldError> {
        let template =
            Template::parse(&self.index).map_err(|e| FieldError::new("index", e.to_string()))?;
        // The literal parts must already be a valid name: lowercase, none of the forbidden
        // characters, not starting with `-`, `_` or `+`. Rendered for an empty event, dates
        // become digits and placeholders `_`, leaving the literal parts to check.
        let literal: String = {
            let mut out = String::new();
            template.render_path(&Event::default(), &mut out);
            out
        };
        if self.index.is_empty() {
            return Err(FieldError::new("index", "must not be empty"));
        }
        if let Some(c) = literal
            .chars()
            .find(|c| c.is_uppercase() || INDEX_FORBIDDEN.contains(c))
        {
            return Err(FieldError::new(
                "index",
                format!("`{}` holds {c:?}, which an index name may not (names are lowercase, without \\ / * ? \" < > | , # : or spaces)", self.index),
            ));
        }
        if self.index.starts_with(['-', '_', '+']) {
            return Err(FieldError::new(
                "index",
                "an index name may not start with `-`, `_` or `+`",
            ));
        }
        Ok(template)
    }

    /// `Authorization`: basic from `user` and `password`, or `ApiKey`, not both.
    fn credentials(&self) -> Result<Option<HeaderValue>, FieldError> {
        let Some(key) = &self.api_key else {
            return self.options.basic_auth();
        };
        if self.options.user.is_some() || self.options.password.is_some() {
            return Err(FieldError::new(
                "api_key",
                "set either api_key or user and password",
            ));
        }
        let mut value = HeaderValue::from_str(&format!("ApiKey {key}"))
            .map_err(|_| FieldError::new("api_key", "must be visible ASCII"))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// `ENDPOINT/_bulk`, with the answer trimmed to what is read of it (`filter_path`).
    fn bulk_uri(&self) -> Result<Uri, FieldError> {
        let mut text = self.options.endpoint.trim_end_matches('/').to_string();
        text.push_str("/_bulk?filter_path=errors,items.*.status,items.*.error");
        if let Some(pipeline) = &self.pipeline {
            text.push_str("&pipeline=");
            batch::percent_encode(pipeline, &mut text);
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
        let mut headers: Vec<(HeaderName, HeaderValue)> = vec![(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )];
        if let Some(credentials) = self.credentials().map_err(invalid)? {
            headers.push((AUTHORIZATION, credentials));
        }
        let index = &self.index_template().map_err(invalid)?;
        let id_field = &match &self.id_field {
            Some(field) => {
                Some(FieldPath::parse(field).map_err(|e| invalid(FieldError::new("id_field", e)))?)
            }
            None => None,
        };
        let action = match self.action {
            BulkAction::Create => "create",
            BulkAction::Index => "index",
        };
        let uri = self.bulk_uri().map_err(invalid)?;
        let sender = &send::BulkSender(options.poster(uri, headers, client, &ctx)?);
        let timestamp_field = self.timestamp_field.as_str();
        let requests = Requests::new(options.request.concurrency, &ctx.id);
        let (ctx, requests) = (&ctx, &requests);
        let send = |gathered: Gathered| async move {
            let (mut name, mut id) = (String::new(), String::new());
            let encode = |event: &Event, item: &mut Vec<u8>| {
                name.clear();
                index_name(index, event, &mut name);
                let id = id_field.as_ref().and_then(|path| {
                    id.clear();
                    path.get(&event.fields)?.write_text(&mut id);
                    Some(id.as_str())
                });
                bulk::write_item(event, action, &name, id, timestamp_field, item);
            };
            let chunks: Vec<_> =
                batch::chunks(gathered.events(), options.limits(), encode).collect();
            let bulks: Vec<_> = chunks
                .iter()
                .map(|c| sender.send(&c.events, &c.body, &c.ends, ctx))
                .collect();
            requests.send_all(bulks).await;
            drop(chunks);
            // Each event was stated delivered or rejected by `send`.
            gathered.settle();
        };
        in_flight::run(&mut rx, options.gathering(), send).await;
        Ok(())
    }
}

/// Renders the index of `event`: placeholders' values sanitised (no `/`, `..`) and lowered,
/// characters an index name may not hold replaced by `_`.
fn index_name(template: &Template, event: &Event, out: &mut String) {
    let mut raw = String::new();
    template.render_path(event, &mut raw);
    out.extend(raw.chars().flat_map(char::to_lowercase).map(|c| {
        if INDEX_FORBIDDEN.contains(&c) {
            '_'
        } else {
            c
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    fn config(extra: &str) -> Result<ElasticsearchSinkConfig, FieldError> {
        let text = format!("endpoint = \"http://127.0.0.1:9200\"\n{extra}");
        let config: ElasticsearchSinkConfig = toml::from_str(&text).expect("parses");
        config.validate().map(|()| config)
    }

    #[test]
    fn validates_its_options() {
        assert!(config("").is_ok());
        assert!(
            config("index = \"logs-{{ app }}-%Y.%m\"\naction = \"index\"\nid_field = \"id\"")
                .is_ok()
        );
        for (extra, field) in [
            ("index = \"Logs\"", "index"),
            ("index = \"_logs\"", "index"),
            ("index = \"logs {{ app }}\"", "index"),
            ("index = \"logs-{{ \"", "index"),
            ("batch_max_events = 20000", "batch_max_events"),
            ("user = \"u\"\napi_key = \"k\"", "api_key"),
            ("password = \"p\"", "user"),
            ("id_field = \"\"", "id_field"),
        ] {
            assert_eq!(config(extra).unwrap_err().field, field, "{extra}");
        }
    }

    #[test]
    fn renders_index_names() {
        let template = Template::parse("logs-{{ app }}-%Y.%m.%d").unwrap();
        let mut event = Event::default();
        event.fields.insert("app", Value::from("Web Shop/#1"));
        event
            .fields
            .insert("timestamp", Value::Timestamp(1_796_551_872_000_000_000));
        let mut out = String::new();
        index_name(&template, &event, &mut out);
        assert_eq!(out, "logs-web_shop__1-2026.12.06");
    }

    #[test]
    fn builds_the_bulk_url_and_credentials() {
        let c =
            config("pipeline = \"geo ip\"\nuser = \"elastic\"\npassword = \"changeme\"").unwrap();
        assert_eq!(
            c.bulk_uri().unwrap().to_string(),
            "http://127.0.0.1:9200/_bulk?filter_path=errors,items.*.status,items.*.error&pipeline=geo%20ip"
        );
        assert_eq!(
            c.credentials().unwrap().unwrap(),
            "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="
        );
    }
}
