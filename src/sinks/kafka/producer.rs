//! The kafka sink's delivery: enqueueing, delivery reports, retries and dead letters.
//!
//! Acknowledgement: an event is acknowledged only from its delivery report, never when it
//! is enqueued. The sink keeps each batch taken from its queue (its `Delivery`, and so every
//! event's acknowledgement token) until every message of that batch has a report; only then
//! does it state the batch delivered (and the messages it gave up on rejected). A batch with
//! failures is kept while those messages are retried.
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

use crate::ack::AckStatus;
use crate::channel::BatchReceiver;
use crate::delivery::retry::{DeliveryError, RetryConfig};
use crate::event::{Delivery, Event, SharedBatch};
use crate::kafka::{ClientLog, SinkClientContext};
use crate::sinks::{Encoding, SinkContext, SinkError};
use crate::telemetry::{Counter, LogLimiter};
use crate::template::Template;

/// How long an enqueue waits for room before looking at the queue again, when no batch of
/// this sink is in flight to wait for (a single batch larger than librdkafka's queue).
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(2);

pub(super) type KafkaProducer = FutureProducer<SinkClientContext>;

pub(super) fn create_producer(config: &ClientConfig, id: &str) -> Result<KafkaProducer, SinkError> {
    let context = SinkClientContext(ClientLog::new(id));
    config.create_with_context(context).map_err(|e| {
        SinkError::Io(std::io::Error::other(format!(
            "cannot create producer: {e}"
        )))
    })
}

pub(super) struct KafkaSink {
    pub(super) topic: Template,
    /// The topic when it has no placeholders: rendered once.
    pub(super) static_topic: Option<String>,
    pub(super) key: Template,
    pub(super) encoding: Encoding,
    pub(super) max_in_flight_bytes: usize,
    pub(super) retry: RetryConfig,
    pub(super) client_config: ClientConfig,
    pub(super) producer: KafkaProducer,
    pub(super) retries: Counter,
    pub(super) limiter: LogLimiter,
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
pub(super) fn classify(error: &KafkaError) -> DeliveryError {
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
    pub(super) async fn run(&mut self, mut rx: BatchReceiver, ctx: &SinkContext) {
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
                Some(crate::sinks::dead_letter_event(
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
