//! The `kafka` sink: produces each event as one Kafka message, keyed (by default) by its
//! app so that an app's events land on one partition and keep their order.
//!
//! The producer is idempotent with `acks=all`: librdkafka retries a batch the broker did not
//! confirm without writing it twice, and keeps the order per partition while doing so.
//!
//! Acknowledgement: an event is acknowledged only from its delivery report, never when it
//! is enqueued. The sink keeps each batch taken from its queue (and so every event's
//! acknowledgement token) until every message of that batch has a report; only then is the
//! batch dropped, which is what reports it delivered to the source. A batch with failures is
//! kept while those messages are retried.
//!
//! Flow control: batches are enqueued into librdkafka as they arrive, while earlier ones are
//! still waiting for reports, up to `max_in_flight_bytes` of payload; librdkafka's own queue
//! is bounded by the same number. A full librdkafka queue (`QueueFull`) is backpressure: the
//! sink waits for the oldest batch in flight to complete and enqueues again, so nothing is
//! dropped and the sink's input queue fills up behind it.
//!
//! Errors are classified: a message too large, an invalid or unauthorised topic will never
//! succeed, so those events go to `ID.dead_letter` with the reason; anything else (a broker
//! down past `message.timeout.ms`, a network error) is retried with backoff, and only given
//! up (to dead-letter) when `retry.max_attempts` is set and used up.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use serde::Deserialize;

use super::{Encoding, SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::channel::BatchReceiver;
use crate::condition::FieldPath;
use crate::delivery::retry::{DeliveryError, RetryConfig};
use crate::event::{Delivery, Event, SharedBatch};
use crate::field_error::FieldError;
use crate::kafka::{client_config, ClientLog, LibrdkafkaOptions, SinkClientContext};
use crate::telemetry::{self, Counter, LogLimiter};
use crate::template::Template;

/// librdkafka settings that carry the delivery guarantee; `librdkafka_options` may not
/// override them.
const GUARDED_OPTIONS: &[&str] = &[
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
];

/// How long an enqueue waits for room before looking at the queue again, when no batch of
/// this sink is in flight to wait for (a single batch larger than librdkafka's queue).
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(2);

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
        if !(1..=1_000_000).contains(&self.batch_size) {
            return Err(FieldError::new(
                "batch_size",
                "must be between 1 and 1000000",
            ));
        }
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

type KafkaProducer = FutureProducer<SinkClientContext>;

fn create_producer(config: &ClientConfig, id: &str) -> Result<KafkaProducer, SinkError> {
    let context = SinkClientContext(ClientLog::new(id));
    config.create_with_context(context).map_err(|e| {
        SinkError::Io(std::io::Error::other(format!(
            "cannot create producer: {e}"
        )))
    })
}

struct KafkaSink {
    topic: Template,
    /// The topic when it has no placeholders: rendered once.
    static_topic: Option<String>,
    key: Template,
    encoding: Encoding,
    max_in_flight_bytes: usize,
    retry: RetryConfig,
    client_config: ClientConfig,
    producer: KafkaProducer,
    retries: Counter,
    limiter: LogLimiter,
}

/// A batch whose messages are enqueued, waiting for their delivery reports.
struct InFlight {
    batch: Delivery,
    bytes: usize,
    deliveries: Vec<(usize, DeliveryFuture)>,
    /// Events that failed to enqueue (fatal), with the reason.
    refused: Vec<(usize, DeliveryError)>,
}

/// An in-flight batch once every report is in.
struct Completed {
    batch: Delivery,
    bytes: usize,
    /// Index of each failed event, with the classified error.
    failed: Vec<(usize, DeliveryError)>,
}

impl InFlight {
    fn into_future(self) -> BoxFuture<'static, Completed> {
        async move {
            let mut failed = self.refused;
            for (index, delivery) in self.deliveries {
                let error = match delivery.await {
                    Ok(Ok(_)) => continue,
                    Ok(Err((error, _message))) => classify(&error),
                    // The producer was dropped (rebuilt after a fatal error) before reporting:
                    // the message may not have been written.
                    Err(_canceled) => {
                        DeliveryError::Retryable("producer closed before reporting".into())
                    }
                };
                failed.push((index, error));
            }
            failed.sort_by_key(|(index, _)| *index);
            Completed {
                batch: self.batch,
                bytes: self.bytes,
                failed,
            }
        }
        .boxed()
    }
}

/// Sorts a produce or delivery error into what a retry can fix and what it cannot.
fn classify(error: &KafkaError) -> DeliveryError {
    let code = match error {
        KafkaError::MessageProduction(code) => Some(*code),
        other => other.rdkafka_error_code(),
    };
    let message = error.to_string();
    match code {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::MessageBatchTooLarge,
        ) => DeliveryError::Fatal(message),
        _ => DeliveryError::Retryable(message),
    }
}

/// One event rendered for Kafka.
#[derive(Default)]
struct Rendered {
    topic: String,
    key: String,
    payload: Vec<u8>,
}

impl KafkaSink {
    async fn run(&mut self, mut rx: BatchReceiver, ctx: &SinkContext) {
        let mut in_flight: FuturesOrdered<BoxFuture<'static, Completed>> = FuturesOrdered::new();
        let mut in_flight_bytes = 0usize;
        enum Step {
            Done(Completed),
            Batch(Option<Delivery>),
        }
        loop {
            let room = in_flight_bytes < self.max_in_flight_bytes;
            let step = tokio::select! {
                biased;
                Some(done) = in_flight.next(), if !in_flight.is_empty() => Step::Done(done),
                batch = rx.recv(), if room => Step::Batch(batch),
            };
            match step {
                Step::Done(done) => {
                    in_flight_bytes -= done.bytes;
                    self.finish(done, ctx).await;
                }
                Step::Batch(Some(batch)) => {
                    let pending = self
                        .enqueue(batch, &mut in_flight, &mut in_flight_bytes, ctx)
                        .await;
                    in_flight_bytes += pending.bytes;
                    in_flight.push_back(pending.into_future());
                }
                Step::Batch(None) => break,
            }
        }
        // Input closed (shutdown): every report still comes in before the sink ends.
        while let Some(done) = in_flight.next().await {
            self.finish(done, ctx).await;
        }
    }

    fn render(&self, event: &Event, out: &mut Rendered) {
        out.topic.clear();
        match &self.static_topic {
            Some(topic) => out.topic.push_str(topic),
            None => self.topic.render(event, &mut out.topic),
        }
        out.key.clear();
        self.key.render(event, &mut out.key);
        out.payload.clear();
        self.encoding.encode(event, &mut out.payload);
        // Encodings end every event with a newline for line-oriented sinks; a Kafka message
        // is already one event.
        out.payload.pop();
    }

    /// Enqueues every event of `batch`, waiting on the batches in flight whenever
    /// librdkafka's queue is full.
    async fn enqueue(
        &mut self,
        batch: Delivery,
        in_flight: &mut FuturesOrdered<BoxFuture<'static, Completed>>,
        in_flight_bytes: &mut usize,
        ctx: &SinkContext,
    ) -> InFlight {
        let shared = batch.shared().clone();
        let mut pending = InFlight {
            deliveries: Vec::with_capacity(batch.len()),
            refused: Vec::new(),
            bytes: 0,
            batch,
        };
        let mut rendered = Rendered::default();
        for (index, event) in shared.events.iter().enumerate() {
            self.render(event, &mut rendered);
            pending.bytes += rendered.payload.len();
            loop {
                match self.try_send(&rendered) {
                    Ok(delivery) => {
                        pending.deliveries.push((index, delivery));
                        break;
                    }
                    Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                        // Backpressure: wait for the oldest batch in flight (its reports
                        // free room), or briefly when this batch alone filled the queue.
                        match in_flight.next().await {
                            Some(done) => {
                                *in_flight_bytes -= done.bytes;
                                self.finish(done, ctx).await;
                            }
                            None => tokio::time::sleep(QUEUE_FULL_WAIT).await,
                        }
                    }
                    Err(error) => {
                        pending.refused.push((index, self.classify_enqueue(&error)));
                        break;
                    }
                }
            }
        }
        pending
    }

    /// librdkafka refuses to enqueue only for reasons inherent to the message (an empty or
    /// invalid topic name, a message over `message.max.bytes`), or because the idempotent
    /// producer is in a fatal state; only the latter is worth retrying (with a new
    /// producer).
    fn classify_enqueue(&self, error: &KafkaError) -> DeliveryError {
        match classify(error) {
            DeliveryError::Retryable(message) if self.producer.client().fatal_error().is_none() => {
                DeliveryError::Fatal(message)
            }
            other => other,
        }
    }

    fn try_send(&self, rendered: &Rendered) -> Result<DeliveryFuture, KafkaError> {
        let mut record = FutureRecord::to(&rendered.topic).payload(&rendered.payload[..]);
        if !rendered.key.is_empty() {
            record = record.key(&rendered.key[..]);
        }
        self.producer
            .send_result(record)
            .map_err(|(error, _record)| error)
    }

    /// Settles a batch whose reports are all in: retries what may still succeed, sends
    /// what cannot to dead-letter, then states the rest delivered.
    async fn finish(&mut self, done: Completed, ctx: &SinkContext) {
        let Completed {
            batch,
            bytes,
            mut failed,
        } = done;
        let mut backoff = self.retry.backoff();
        let mut fatal: Vec<(usize, DeliveryError)> = Vec::new();
        while !failed.is_empty() {
            let (retry, given_up): (Vec<_>, Vec<_>) = failed
                .into_iter()
                .partition(|(_, error)| matches!(error, DeliveryError::Retryable(_)));
            fatal.extend(given_up);
            if retry.is_empty() {
                break;
            }
            ctx.metrics.write_errors.inc(retry.len() as u64);
            let first = retry[0].1.to_string();
            let Some(delay) = backoff.next_delay() else {
                let attempts = backoff.attempts();
                fatal.extend(retry.into_iter().map(|(index, error)| {
                    (
                        index,
                        DeliveryError::Exhausted(format!(
                            "gave up after {attempts} attempts: {error}"
                        )),
                    )
                }));
                break;
            };
            self.retries.inc(retry.len() as u64);
            if let Some(suppressed) = self.limiter.check() {
                tracing::warn!(component_id = %ctx.id, error = %first, events = retry.len(), attempt = backoff.attempts(), retry_in_ms = delay.as_millis() as u64, suppressed, "delivery failed; retrying");
            }
            tokio::time::sleep(delay).await;
            if backoff.attempts() % 4 == 2 {
                // The same messages failed twice. A broker that lost its producer state (a
                // restarted broker without persistent storage answers UNKNOWN_PRODUCER_ID,
                // which librdkafka retries until the messages time out) only accepts a new
                // producer id, so start a new producer for this attempt. Not at every
                // attempt: a new producer needs time to connect and get its id, and
                // replacing it again before it could would never let it succeed.
                self.replace_producer(ctx, "deliveries keep failing");
            } else if let Some((code, reason)) = self.producer.client().fatal_error() {
                // An idempotent producer in a fatal state refuses every message.
                tracing::error!(component_id = %ctx.id, ?code, %reason, "producer hit a fatal error");
                self.replace_producer(ctx, "fatal producer error");
            }
            failed = self.resend(batch.shared(), retry).await;
        }
        let failed_count = fatal.len();
        if !fatal.is_empty() {
            self.dead_letter(batch.shared(), fatal, ctx).await;
        }
        ctx.metrics
            .sent_events
            .inc((batch.len() - failed_count) as u64);
        ctx.metrics.sent_bytes.inc(bytes as u64);
        // Every report is in: what failed for good was stated rejected by `dead_letter`,
        // and the rest was written.
        batch.finish(AckStatus::Delivered);
    }

    /// Enqueues the events at `retry` again (waiting out a full queue) and collects their
    /// reports.
    async fn resend(
        &mut self,
        batch: &SharedBatch,
        retry: Vec<(usize, DeliveryError)>,
    ) -> Vec<(usize, DeliveryError)> {
        let mut rendered = Rendered::default();
        let mut deliveries = VecDeque::with_capacity(retry.len());
        let mut failed = Vec::new();
        for (index, _) in retry {
            let Some(event) = batch.events.get(index) else {
                continue;
            };
            self.render(event, &mut rendered);
            loop {
                match self.try_send(&rendered) {
                    Ok(delivery) => {
                        deliveries.push_back((index, delivery));
                        break;
                    }
                    Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                        tokio::time::sleep(QUEUE_FULL_WAIT).await;
                    }
                    Err(error) => {
                        failed.push((index, self.classify_enqueue(&error)));
                        break;
                    }
                }
            }
        }
        for (index, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => failed.push((index, classify(&error))),
                Err(_) => failed.push((
                    index,
                    DeliveryError::Retryable("producer closed before reporting".into()),
                )),
            }
        }
        failed.sort_by_key(|(index, _)| *index);
        failed
    }

    /// Swaps in a new producer (a new producer id and sequence). The old one is dropped on
    /// a blocking thread: dropping purges what it still holds, whose delivery reports (or
    /// cancelled futures) send those messages round again through the retry path.
    fn replace_producer(&mut self, ctx: &SinkContext, why: &str) {
        match create_producer(&self.client_config, &ctx.id) {
            Ok(producer) => {
                tracing::warn!(component_id = %ctx.id, why, "starting a new producer");
                let old = std::mem::replace(&mut self.producer, producer);
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(error) => {
                tracing::error!(component_id = %ctx.id, %error, "cannot create a new producer")
            }
        }
    }

    async fn dead_letter(
        &self,
        batch: &SharedBatch,
        failed: Vec<(usize, DeliveryError)>,
        ctx: &SinkContext,
    ) {
        if let Some((_, error)) = failed.first() {
            tracing::error!(component_id = %ctx.id, %error, events = failed.len(), "delivery failed for good; events go to dead-letter");
        }
        let letters = failed
            .iter()
            .filter_map(|(index, error)| {
                let event = batch.events.get(*index)?;
                Some(super::dead_letter_event(
                    event,
                    &ctx.id,
                    &error.to_string(),
                    error.code(),
                ))
            })
            .collect();
        // Marks the events rejected (the letters share their tokens).
        ctx.reject_async(letters).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
