//! The `loki` sink: events pushed to Grafana Loki (`POST /loki/api/v1/push`, JSON or
//! snappy-compressed protobuf, `protobuf.rs`), in
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

mod protobuf;
mod streams;

use std::collections::BTreeMap;

use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use super::batch::{self, invalid};
use super::options::{StoreDefaults, StoreOptions, Unknown};
use super::{Encoding, SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::delivery::http::HttpClient;
use crate::field_error::{at_least_one, FieldError};
use crate::telemetry;
use crate::template::Template;

/// `[sinks.ID] type = "loki"`
#[derive(Debug, Clone, Deserialize)]
pub struct LokiSinkConfig {
    /// `endpoint` (`/loki/api/v1/push` is added), `user` and `password` (basic
    /// authentication), ...; `request.concurrency` is 1 (see `Loki`).
    #[serde(flatten)]
    pub options: StoreOptions<Loki>,
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
    /// The push body: `json`, or `protobuf` (Loki's `logproto.PushRequest`, snappy
    /// compressed as Loki requires; smaller and cheaper for Loki to read).
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(flatten)]
    unknown: Unknown,
}

/// How a push is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Json,
    Protobuf,
}

/// The defaults of Loki's shared options.
#[derive(Debug, Clone)]
pub struct Loki;

impl StoreDefaults for Loki {
    const EXAMPLE: &'static str = "http://127.0.0.1:3100";
    const BATCH_MAX_EVENTS: usize = 1000;
    /// Loki's default `grpc_server_max_recv_msg_size` is 4 MiB; stay well below it.
    const BATCH_MAX_BYTES: usize = 1024 * 1024;
    /// Loki refuses an entry older than the newest of its stream (`entry out of order`),
    /// and requests in flight at once may land in any order.
    const MAX_CONCURRENCY: (usize, &'static str) =
        (1, " (pushes go one at a time to keep each stream's order)");
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

impl LokiSinkConfig {
    /// Checks the config syntactically (no IO).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.options.validate(&self.unknown)?;
        self.label_templates()?;
        at_least_one(&[("max_label_sets", self.max_label_sets as u64)])?;
        if self.protocol == Protocol::Protobuf
            && self.options.compression != crate::sinks::http::HttpCompression::None
        {
            return Err(FieldError::new(
                "compression",
                "must be none with protocol = \"protobuf\", whose body is snappy compressed",
            ));
        }
        self.fixed_headers()?;
        Ok(())
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
        let content_type = match self.protocol {
            Protocol::Json => "application/json",
            Protocol::Protobuf => "application/x-protobuf",
        };
        let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static(content_type))];
        if let Some(tenant) = &self.tenant_id {
            let value = HeaderValue::from_str(tenant)
                .map_err(|_| FieldError::new("tenant_id", "must be visible ASCII"))?;
            headers.push((HeaderName::from_static("x-scope-orgid"), value));
        }
        if let Some(credentials) = self.options.basic_auth()? {
            headers.push((AUTHORIZATION, credentials));
        }
        Ok(headers)
    }

    pub async fn run(
        self,
        client: HttpClient,
        mut rx: BatchReceiver,
        ctx: SinkContext,
    ) -> Result<(), SinkError> {
        let options = &self.options;
        let uri = batch::request_uri(format!(
            "{}/loki/api/v1/push",
            options.endpoint.trim_end_matches('/')
        ))
        .map_err(invalid)?;
        let headers = self.fixed_headers().map_err(invalid)?;
        let poster = options.poster(uri, headers, client, &ctx)?;
        let overflow = telemetry::counter(
            "component_label_overflow_events_total",
            &[("component_id", &ctx.id)],
        );
        let mut labeler = streams::Labeler::new(
            self.label_templates().map_err(invalid)?,
            self.max_label_sets,
            overflow,
        );
        let what = "loki refused the push";
        // One push at a time: see `StoreDefaults::MAX_CONCURRENCY` for `Loki`.
        let (max_events, linger, _) = options.gathering();
        while let Some(gathered) = batch::gather(&mut rx, max_events, linger).await {
            for chunk in batch::sized_chunks(gathered.events(), options.limits()) {
                let chunk: Vec<_> = chunk
                    .into_iter()
                    .map(|e| (e, labeler.label_set(e)))
                    .collect();
                let body = match self.protocol {
                    Protocol::Json => streams::push_body(&chunk, self.encoding),
                    Protocol::Protobuf => protobuf::push_body(&chunk, self.encoding),
                };
                poster.send(&chunk, body.into(), &ctx, what).await;
            }
            // Each event was stated delivered or rejected by `send`.
            gathered.settle();
        }
        Ok(())
    }
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
        assert!(config("protocol = \"protobuf\"").is_ok());
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
            (
                "protocol = \"protobuf\"\ncompression = \"gzip\"",
                "compression",
            ),
        ] {
            assert_eq!(config(extra).unwrap_err().field, field, "{extra}");
        }
    }
}
