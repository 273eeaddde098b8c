//! What the `kafka` source and sink share: the client configuration (`bootstrap_servers`,
//! the `librdkafka_options` passthrough and the settings Sluice manages itself), checked
//! without IO, and the telemetry of the librdkafka client.
//!
//! librdkafka options are checked at validation time by building a native configuration
//! object: that only parses the properties (no thread, no socket), so a misspelt option or a
//! bad value is a config error naming the field instead of a component that fails to start.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, ClientContext};
use serde::Deserialize;

use crate::field_error::FieldError;
use crate::telemetry::LogLimiter;

/// A value in `librdkafka_options`: librdkafka takes strings, TOML users write numbers and
/// booleans too.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::String(s) => f.write_str(s),
            OptionValue::Integer(i) => write!(f, "{i}"),
            OptionValue::Float(x) => write!(f, "{x}"),
            OptionValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// `librdkafka_options = { "socket.keepalive.enable" = true, ... }`
pub type LibrdkafkaOptions = BTreeMap<String, OptionValue>;

/// Builds a client configuration: Sluice's own settings (`managed`, in order), then the
/// user's passthrough options. Keys listed in `guarded` carry a delivery guarantee and may
/// not be overridden; `bootstrap.servers` has its own field.
pub(crate) fn client_config(
    bootstrap_servers: &str,
    managed: &[(&str, String)],
    options: &LibrdkafkaOptions,
    guarded: &[&str],
) -> Result<ClientConfig, FieldError> {
    if bootstrap_servers.trim().is_empty() {
        return Err(FieldError::new(
            "bootstrap_servers",
            "must name at least one broker, e.g. \"127.0.0.1:9092\"",
        ));
    }
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers);
    // librdkafka's own log lines go through the `log` facade, which Sluice does not wire;
    // errors reach us as error callbacks and delivery reports instead.
    config.set_log_level(RDKafkaLogLevel::Warning);
    for (key, value) in managed {
        config.set(*key, value);
    }
    for (key, value) in options {
        let field = || format!("librdkafka_options.{key}");
        if key == "bootstrap.servers" {
            return Err(FieldError::new(field(), "set `bootstrap_servers` instead"));
        }
        if guarded.contains(&key.as_str()) {
            return Err(FieldError::new(
                field(),
                "is managed by sluice (it carries the delivery guarantee) and cannot be overridden",
            ));
        }
        config.set(key, value.to_string());
    }
    // Parses every property without creating a client (no IO): unknown keys and bad values
    // are reported here.
    config.create_native_config().map_err(|error| {
        FieldError::new(
            "librdkafka_options",
            format!("rejected by librdkafka: {error}"),
        )
    })?;
    Ok(config)
}

/// librdkafka's log lines and global errors for one component, through one rate limiter:
/// while a broker is down librdkafka reports every failed reconnect, which must not flood
/// the router's own log.
pub struct ClientLog {
    id: Arc<str>,
    limiter: Mutex<LogLimiter>,
}

impl ClientLog {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: Arc::from(id),
            limiter: Mutex::new(LogLimiter::default()),
        }
    }

    fn allow(&self) -> Option<u64> {
        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check()
    }

    pub(crate) fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let Some(suppressed) = self.allow() else {
            return;
        };
        let id = &*self.id;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                tracing::warn!(
                    component_id = id,
                    facility,
                    suppressed,
                    "librdkafka: {message}"
                )
            }
            _ => tracing::debug!(component_id = id, facility, "librdkafka: {message}"),
        }
    }

    pub(crate) fn error(&self, error: &KafkaError, reason: &str) {
        if let Some(suppressed) = self.allow() {
            tracing::warn!(component_id = %self.id, %error, reason, suppressed, "kafka client error");
        }
    }
}

/// The client context of the kafka sink: rate-limited logging, nothing else.
pub struct SinkClientContext(pub(crate) ClientLog);

impl ClientContext for SinkClientContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.0.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(&error, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, OptionValue)]) -> LibrdkafkaOptions {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn checks_options_without_io() {
        use OptionValue::*;
        let table: Vec<(&str, LibrdkafkaOptions, Option<&str>)> = vec![
            ("127.0.0.1:9092", options(&[]), None),
            (
                "127.0.0.1:9092",
                options(&[
                    ("socket.keepalive.enable", Bool(true)),
                    ("message.max.bytes", Integer(2_000_000)),
                    ("client.id", String("edge".into())),
                ]),
                None,
            ),
            (" ", options(&[]), Some("bootstrap_servers")),
            (
                "127.0.0.1:9092",
                options(&[("no.such.option", Bool(true))]),
                Some("librdkafka_options"),
            ),
            (
                "127.0.0.1:9092",
                options(&[("message.max.bytes", String("lots".into()))]),
                Some("librdkafka_options"),
            ),
            (
                "127.0.0.1:9092",
                options(&[("acks", Integer(1))]),
                Some("librdkafka_options.acks"),
            ),
            (
                "127.0.0.1:9092",
                options(&[("bootstrap.servers", String("x:1".into()))]),
                Some("librdkafka_options.bootstrap.servers"),
            ),
        ];
        for (servers, opts, error_field) in table {
            let result = client_config(servers, &[], &opts, &["acks"]);
            assert_eq!(
                result.err().map(|e| e.field),
                error_field.map(str::to_string),
                "{servers} {opts:?}"
            );
        }
    }
}
