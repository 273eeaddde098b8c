//! The `kafka` sink: produces each event as one Kafka message, keyed (by default) by its
//! app so that an app's events land on one partition and keep their order. This file is
//! its configuration and checks; `producer.rs` delivers.
//!
//! The producer is idempotent with `acks=all`: librdkafka retries a batch the broker did not
//! confirm without writing it twice, and keeps the order per partition while doing so.

mod producer;

use rdkafka::ClientConfig;
use serde::Deserialize;

use super::{Encoding, SinkContext, SinkError};
use crate::channel::BatchReceiver;
use crate::condition::FieldPath;
use crate::delivery::retry::RetryConfig;
use crate::field_error::{between_one_and, FieldError};
use crate::kafka::{client_config, LibrdkafkaOptions};
use crate::telemetry::{self, LogLimiter};
use crate::template::Template;
use producer::{create_producer, KafkaSink};

/// librdkafka settings that carry the delivery guarantee; `librdkafka_options` may not
/// override them.
const GUARDED_OPTIONS: &[&str] = &[
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
];

/// `[sinks.ID] type = "kafka"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Brokers to bootstrap from, comma-separated `host:port`.
    pub bootstrap_servers: String,
    /// Topic, a template: `logs` or `logs-{{ app }}`.
    pub topic: String,
    /// Message key, a template (`{{ app }}-{{ instance }}`); events with the same key go
    /// to the same partition, in order. An empty rendering sends no key (librdkafka then
    /// spreads those messages). Without `key` or `key_field`: `{{ app }}`.
    #[serde(default)]
    pub key: Option<String>,
    /// Message key, the value of this field (a dotted path), as `key_field` means in
    /// Vector and in the `sample` and `throttle` transforms. Exclusive with `key`.
    #[serde(default)]
    pub key_field: Option<String>,
    /// `zstd` (default), `lz4` or `none`.
    #[serde(default)]
    pub compression: KafkaCompression,
    /// Most messages librdkafka puts in one produce request (`batch.num.messages`).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// How long librdkafka waits to fill a produce request (`linger.ms`).
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Message value: `json` (every field) or `text` (the `message` field).
    #[serde(default)]
    pub encoding: Encoding,
    /// Most payload bytes enqueued and not yet confirmed by the broker; also bounds
    /// librdkafka's producer queue.
    #[serde(default = "default_max_in_flight_bytes")]
    pub max_in_flight_bytes: usize,
    /// Any other librdkafka producer property, passed through (e.g. `message.timeout.ms`,
    /// `security.protocol`). The guarantee-carrying ones (`acks`, `enable.idempotence`) are
    /// refused.
    #[serde(default)]
    pub librdkafka_options: LibrdkafkaOptions,
    /// Backoff for messages whose delivery failed with a retryable error.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// `compression = "zstd" | "lz4" | "none"`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaCompression {
    #[default]
    Zstd,
    Lz4,
    None,
}

impl KafkaCompression {
    fn codec(self) -> &'static str {
        match self {
            KafkaCompression::Zstd => "zstd",
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::None => "none",
        }
    }
}

/// The key when none is configured: an app's events share a partition and keep their
/// order.
const DEFAULT_KEY: &str = "{{ app }}";

fn default_batch_size() -> u32 {
    10_000
}

fn default_linger_ms() -> u64 {
    5
}

fn default_max_in_flight_bytes() -> usize {
    64 * 1024 * 1024
}

/// The field a template-like `key_field` most likely meant: its one placeholder, or `app`.
fn suggested_field(template: &str) -> String {
    Template::parse(template)
        .ok()
        .and_then(|t| t.single_field().map(|p| p.as_str().to_string()))
        .unwrap_or_else(|| "app".to_string())
}

impl KafkaSinkConfig {
    /// Checks the config, including every librdkafka property, without IO.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.templates()?;
        self.client_config().map(|_| ())
    }

    fn templates(&self) -> Result<(Template, Template), FieldError> {
        if self.topic.is_empty() {
            return Err(FieldError::new("topic", "must not be empty"));
        }
        let topic =
            Template::parse(&self.topic).map_err(|e| FieldError::new("topic", e.to_string()))?;
        Ok((topic, self.key_template()?))
    }

    /// `key` and `key_field` as one template. A `{{` in `key_field` is a template written
    /// under the field option's name (as configs for earlier Sluice versions did), so the
    /// error names the option that takes it.
    fn key_template(&self) -> Result<Template, FieldError> {
        match (&self.key, &self.key_field) {
            (Some(_), Some(_)) => Err(FieldError::new(
                "key_field",
                "set either key (a template) or key_field (a field), not both",
            )),
            (Some(key), None) => {
                Template::parse(key).map_err(|e| FieldError::new("key", e.to_string()))
            }
            (None, Some(field)) if field.contains("{{") => Err(FieldError::new(
                "key_field",
                format!(
                    "names a field, not a template: use key = \"{field}\" for a template, or key_field = \"{}\" for a field",
                    suggested_field(field)
                ),
            )),
            (None, Some(field)) => FieldPath::parse(field)
                .map(Template::field)
                .map_err(|m| FieldError::new("key_field", m)),
            (None, None) => Template::parse(DEFAULT_KEY)
                .map_err(|e| FieldError::new("key", e.to_string())),
        }
    }

    fn client_config(&self) -> Result<ClientConfig, FieldError> {
        between_one_and("batch_size", self.batch_size, 1_000_000)?;
        if self.linger_ms > 900_000 {
            return Err(FieldError::new("linger_ms", "must be at most 900000"));
        }
        if self.max_in_flight_bytes < 1024 * 1024 {
            return Err(FieldError::new(
                "max_in_flight_bytes",
                "must be at least 1 MiB",
            ));
        }
        self.retry.validate()?;
        let queue_kbytes = (self.max_in_flight_bytes / 1024).clamp(1, 2_097_151);
        let managed = [
            ("enable.idempotence", "true".to_string()),
            ("acks", "all".to_string()),
            ("compression.codec", self.compression.codec().to_string()),
            ("batch.num.messages", self.batch_size.to_string()),
            ("linger.ms", self.linger_ms.to_string()),
            ("queue.buffering.max.kbytes", queue_kbytes.to_string()),
        ];
        client_config(
            &self.bootstrap_servers,
            &managed,
            &self.librdkafka_options,
            GUARDED_OPTIONS,
        )
    }

    pub async fn run(self, rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let invalid = |e: FieldError| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: {}", e.field, e.message),
            )
        };
        let (topic, key) = self.templates().map_err(invalid)?;
        let client_config = self.client_config().map_err(invalid)?;
        let producer = create_producer(&client_config, &ctx.id)?;
        let mut sink = KafkaSink {
            retries: telemetry::counter("component_retries_total", &[("component_id", &ctx.id)]),
            static_topic: topic.is_static().then(|| topic.source().to_string()),
            topic,
            key,
            encoding: self.encoding,
            max_in_flight_bytes: self.max_in_flight_bytes,
            retry: self.retry,
            client_config,
            producer,
            limiter: LogLimiter::default(),
        };
        sink.run(rx, &ctx).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::producer::classify;
    use super::*;
    use crate::delivery::retry::DeliveryError;
    use crate::event::Event;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    fn config(toml: &str) -> Result<KafkaSinkConfig, String> {
        toml::from_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn validates_fields() {
        let base = "bootstrap_servers = \"127.0.0.1:9092\"\ntopic = \"logs\"\n";
        let table: &[(&str, Option<&str>)] = &[
            ("", None),
            (
                "compression = \"lz4\"\nbatch_size = 500\nlinger_ms = 0",
                None,
            ),
            ("key = \"{{ app }}-{{ instance }}\"", None),
            ("key_field = \"app\"", None),
            (
                "librdkafka_options = { \"message.timeout.ms\" = 30000 }",
                None,
            ),
            ("batch_size = 0", Some("batch_size")),
            ("max_in_flight_bytes = 10", Some("max_in_flight_bytes")),
            ("key = \"{{ app\"", Some("key")),
            ("key_field = \"{{ app }}\"", Some("key_field")),
            (
                "librdkafka_options = { \"enable.idempotence\" = false }",
                Some("librdkafka_options.enable.idempotence"),
            ),
            (
                "librdkafka_options = { \"linger.mss\" = 1 }",
                Some("librdkafka_options"),
            ),
        ];
        for (extra, error_field) in table {
            let config = config(&format!("{base}{extra}")).expect(extra);
            assert_eq!(
                config.validate().err().map(|e| e.field),
                error_field.map(str::to_string),
                "{extra}"
            );
        }
        let empty_topic = config("bootstrap_servers = \"x:1\"\ntopic = \"\"").unwrap();
        assert_eq!(empty_topic.validate().unwrap_err().field, "topic");
        assert!(
            config("bootstrap_servers = \"x:1\"\ntopic = \"t\"\ncompression = \"gzip2\"").is_err()
        );
    }

    /// `key` is a template, `key_field` a field (as in Vector and the transforms); the old
    /// template meaning of `key_field` is refused with the fix, never read as a field name.
    #[test]
    fn key_is_a_template_and_key_field_a_field() {
        let base = "bootstrap_servers = \"127.0.0.1:9092\"\ntopic = \"logs\"\n";
        let event = match serde_json::from_str(
            r#"{"app":"web","instance":"web.1","http":{"host":"h1"},"n":3}"#,
        ) {
            Ok(crate::event::Value::Object(map)) => Event::new(map),
            other => panic!("not an object: {other:?}"),
        };
        let fix = |template: &str, field: &str| {
            format!(
                "use key = \"{template}\" for a template, or key_field = \"{field}\" for a field"
            )
        };
        // The rendered key, or the error's field and part of its message.
        type Expected = Result<&'static str, (&'static str, String)>;
        let table: &[(&str, Expected)] = &[
            ("", Ok("web")),
            ("key = \"{{ app }}-{{ instance }}\"", Ok("web-web.1")),
            ("key = \"fixed\"", Ok("fixed")),
            ("key = \"\"", Ok("")),
            ("key_field = \"app\"", Ok("web")),
            ("key_field = \"http.host\"", Ok("h1")),
            ("key_field = \"n\"", Ok("3")),
            ("key_field = \"missing\"", Ok("")),
            (
                "key_field = \"{{ app }}\"",
                Err(("key_field", fix("{{ app }}", "app"))),
            ),
            (
                "key_field = \"{{ http.host }}\"",
                Err(("key_field", fix("{{ http.host }}", "http.host"))),
            ),
            (
                "key_field = \"{{ app }}-{{ instance }}\"",
                Err(("key_field", fix("{{ app }}-{{ instance }}", "app"))),
            ),
            (
                "key = \"{{ app }}\"\nkey_field = \"app\"",
                Err(("key_field", "not both".into())),
            ),
            ("key = \"{{ app\"", Err(("key", "unclosed".into()))),
            (
                "key_field = \"a b\"",
                Err(("key_field", "invalid field path".into())),
            ),
        ];
        for (extra, expected) in table {
            let config = config(&format!("{base}{extra}")).expect(extra);
            match (config.key_template(), expected) {
                (Ok(key), Ok(rendered)) => {
                    let mut out = String::new();
                    key.render(&event, &mut out);
                    assert_eq!(out, *rendered, "{extra}");
                }
                (Err(error), Err((field, message))) => {
                    assert_eq!(error.field, *field, "{extra}");
                    assert!(
                        error.message.contains(message.as_str()),
                        "{extra}: {error:?}"
                    );
                }
                (got, _) => panic!("{extra}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn classifies_errors() {
        use RDKafkaErrorCode::*;
        let table = [
            (MessageSizeTooLarge, true),
            (InvalidTopic, true),
            (TopicAuthorizationFailed, true),
            (UnknownTopic, true),
            (MessageTimedOut, false),
            (NotEnoughReplicas, false),
            (BrokerTransportFailure, false),
            (LeaderNotAvailable, false),
        ];
        for (code, fatal) in table {
            let got = classify(&KafkaError::MessageProduction(code));
            assert_eq!(matches!(got, DeliveryError::Fatal(_)), fatal, "{code:?}");
        }
    }
}
