//! The `kafka` source: consumes topics as a member of a consumer group and commits offsets
//! only behind what every sink acknowledged.
//!
//! Why it polls the way it does: librdkafka fetches in the background and hands messages
//! over from its queue. The source takes one message (waiting), then whatever else is
//! already queued, up to a chunk of [`CHUNK_MESSAGES`] messages or [`CHUNK_BYTES`] of payload,
//! so a busy topic travels in large batches and a quiet one is not delayed to fill them.
//! Each message's payload goes through the same framing and decoding as every other
//! source's bytes (bad frames are counted and dead-lettered). The messages of one partition
//! in one chunk share an acknowledgement token.
//!
//! Auto-commit and librdkafka's offset store are off: an offset is committed only once
//! every event of that message and of every earlier message of its partition came back
//! from the sinks (see `kafka_offsets`), every `commit_interval_ms`, at shutdown after the
//! pipeline drained, and for revoked partitions in the rebalance callback (what is done so
//! far; the new owner reads the rest again). After a crash the group resumes from the last
//! commit: events read since then are delivered again (at-least-once), never skipped.
//!
//! While the pipeline pushes back, the source stops taking messages; librdkafka's queue
//! (bounded by `queued.max.messages.kbytes`) fills and fetching pauses. A sink blocked for
//! longer than `max.poll.interval.ms` makes the consumer leave the group, and its
//! partitions move to another member, from the last commit.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};
use serde::Deserialize;

use super::kafka_offsets::{AckOutcome, ChunkId, OffsetTracker, PartitionKey};
use super::{Decoded, FrameIngest, SourceContext, SourceError};
use crate::ack::{AckStatus, AckToken};
use crate::codec::{DecodingConfig, FramingConfig};
use crate::field_error::{at_least_one, FieldError};
use crate::kafka::{client_config, ClientLog, LibrdkafkaOptions};
use crate::telemetry::{self, Counter, LogLimiter};

/// Most messages taken from librdkafka's queue into one batch.
const CHUNK_MESSAGES: usize = 1024;

/// Most payload bytes taken into one batch.
const CHUNK_BYTES: usize = 1024 * 1024;

/// How long shutdown waits for the sinks to acknowledge what was read, before committing.
const SHUTDOWN_ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// librdkafka settings that carry the commit guarantee.
const GUARDED_OPTIONS: &[&str] = &[
    "enable.auto.commit",
    "enable.auto.offset.store",
    "group.id",
    "auto.offset.reset",
];

/// `[sources.ID] type = "kafka"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Brokers to bootstrap from, comma-separated `host:port`.
    pub bootstrap_servers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// The consumer group; routers with the same group share the partitions.
    pub group_id: String,
    /// Where a group without a committed offset starts: `earliest` (default) or `latest`.
    #[serde(default)]
    pub auto_offset_reset: AutoOffsetReset,
    /// How a message's payload is cut into frames (default: newline, so a message holding
    /// one line is one event).
    #[serde(default)]
    pub framing: FramingConfig,
    /// How each frame becomes fields (default: bytes).
    #[serde(default)]
    pub decoding: DecodingConfig,
    /// How often acknowledged offsets are committed.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// Any other librdkafka consumer property, passed through (e.g. `session.timeout.ms`).
    #[serde(default)]
    pub librdkafka_options: LibrdkafkaOptions,
}

/// `auto_offset_reset = "earliest" | "latest"`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoOffsetReset {
    #[default]
    Earliest,
    Latest,
}

fn default_commit_interval_ms() -> u64 {
    1000
}

impl KafkaSourceConfig {
    /// Checks the config, including every librdkafka property, without IO.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.client_config().map(|_| ())?;
        self.framing.validate()
    }

    fn client_config(&self) -> Result<ClientConfig, FieldError> {
        if self.topics.is_empty() {
            return Err(FieldError::new("topics", "must name at least one topic"));
        }
        if let Some(i) = self.topics.iter().position(|t| t.trim().is_empty()) {
            return Err(FieldError::new(format!("topics[{i}]"), "must not be empty"));
        }
        if self.group_id.trim().is_empty() {
            return Err(FieldError::new("group_id", "must not be empty"));
        }
        at_least_one(&[("commit_interval_ms", self.commit_interval_ms)])?;
        let reset = match self.auto_offset_reset {
            AutoOffsetReset::Earliest => "earliest",
            AutoOffsetReset::Latest => "latest",
        };
        let managed = [
            ("group.id", self.group_id.clone()),
            ("enable.auto.commit", "false".to_string()),
            ("enable.auto.offset.store", "false".to_string()),
            ("auto.offset.reset", reset.to_string()),
            // Incremental rebalancing: a member joining or leaving moves only the
            // partitions that change owner, instead of stopping every member's consumption
            // (and it is the protocol tansu's coordinator handles a lost member best with).
            (
                "partition.assignment.strategy",
                "cooperative-sticky".to_string(),
            ),
            // Lag comes from librdkafka's statistics.
            ("statistics.interval.ms", "5000".to_string()),
            // librdkafka's prefetch queue, per partition; the default (64 MiB) is a lot of
            // memory for a router with many partitions.
            ("queued.max.messages.kbytes", "16384".to_string()),
        ];
        client_config(
            &self.bootstrap_servers,
            &managed,
            &self.librdkafka_options,
            GUARDED_OPTIONS,
        )
    }

    /// Creates the consumer and subscribes (connecting happens in the background), so that
    /// a broken client setup fails the router's start like a port conflict does.
    pub fn connect(&self, id: &str) -> Result<KafkaConsumer, SourceError> {
        let config = self.client_config().map_err(|e| {
            SourceError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: {}", e.field, e.message),
            ))
        })?;
        let context = SourceConsumerContext {
            id: Arc::from(id),
            tracker: Arc::new(Mutex::new(OffsetTracker::default())),
            metrics: CommitMetrics::new(id),
            log: ClientLog::new(id),
        };
        let consumer: StreamConsumer<SourceConsumerContext> =
            config
                .create_with_context(context)
                .map_err(|e| kafka_error("cannot create consumer", e))?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| kafka_error("cannot subscribe", e))?;
        Ok(KafkaConsumer(Arc::new(consumer)))
    }

    pub async fn run(self, consumer: KafkaConsumer, ctx: SourceContext) -> Result<(), SourceError> {
        let mut source = KafkaSource {
            ingest: FrameIngest::new(ctx.id.clone(), &self.framing, self.decoding),
            acks: FuturesUnordered::new(),
            limiter: LogLimiter::default(),
            commit_interval: Duration::from_millis(self.commit_interval_ms),
        };
        source.run(&consumer.0, ctx).await
    }
}

fn kafka_error(what: &str, error: rdkafka::error::KafkaError) -> SourceError {
    SourceError::Io(std::io::Error::other(format!("{what}: {error}")))
}

/// A subscribed consumer, made by [`KafkaSourceConfig::connect`].
pub struct KafkaConsumer(Arc<StreamConsumer<SourceConsumerContext>>);

struct CommitMetrics {
    ok: Counter,
    failed: Counter,
    committed_messages: Counter,
    /// Messages read but not acknowledged when their partition was revoked.
    reread: Counter,
    assigned: telemetry::Gauge,
}

impl CommitMetrics {
    fn new(id: &str) -> Self {
        let commits = |outcome| {
            telemetry::counter(
                "kafka_commits_total",
                &[("component_id", id), ("outcome", outcome)],
            )
        };
        Self {
            ok: commits("ok"),
            failed: commits("failed"),
            committed_messages: telemetry::counter(
                "kafka_committed_messages_total",
                &[("component_id", id)],
            ),
            reread: telemetry::counter(
                "kafka_revoked_unacknowledged_messages_total",
                &[("component_id", id)],
            ),
            assigned: telemetry::gauge("kafka_assigned_partitions", &[("component_id", id)]),
        }
    }
}

/// Runs inside librdkafka's callbacks, which fire while the source polls the consumer
/// (never concurrently with the source's own use of the tracker, which never holds the
/// lock across a poll or an await).
pub struct SourceConsumerContext {
    id: Arc<str>,
    tracker: Arc<Mutex<OffsetTracker>>,
    metrics: CommitMetrics,
    log: ClientLog,
}

impl SourceConsumerContext {
    fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for SourceConsumerContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // librdkafka reports -1 for the internal "unassigned" partition and for a
                // lag it does not know yet.
                if p.partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                let partition = partition.to_string();
                telemetry::gauge(
                    "kafka_consumer_lag_messages",
                    &[
                        ("component_id", &self.id),
                        ("topic", topic),
                        ("partition", &partition),
                    ],
                )
                .set(p.consumer_lag);
            }
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }
}

impl ConsumerContext for SourceConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        // Commit what the sinks acknowledged before the partitions go: the next owner then
        // starts right after it. Whatever is still in flight here is read again by the next
        // owner (duplicates, bounded by what one router has in flight).
        let mut commits = TopicPartitionList::new();
        let mut covered = 0;
        let mut unacknowledged = 0;
        {
            let mut tracker = self.tracker();
            for element in revoked.elements() {
                let key: PartitionKey = (Arc::from(element.topic()), element.partition());
                let done = tracker.revoke(&key);
                unacknowledged += done.unacknowledged;
                if let Some((offset, messages)) = done.commit {
                    covered += messages;
                    let _ = commits.add_partition_offset(
                        element.topic(),
                        element.partition(),
                        Offset::Offset(offset),
                    );
                }
            }
            self.metrics.assigned.set(tracker.assigned_count() as i64);
        }
        self.metrics.reread.inc(unacknowledged);
        tracing::info!(component_id = %self.id, partitions = %partition_list(revoked), committing = %partition_list(&commits), unacknowledged, "partitions revoked");
        if commits.count() > 0 {
            match consumer.commit(&commits, CommitMode::Sync) {
                Ok(()) => {
                    self.metrics.ok.inc(1);
                    self.metrics.committed_messages.inc(covered);
                }
                Err(error) => {
                    self.metrics.failed.inc(1);
                    tracing::warn!(component_id = %self.id, %error, "commit on revocation failed; the next owner re-reads from the previous commit");
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let mut tracker = self.tracker();
            for element in assigned.elements() {
                tracker.assign((Arc::from(element.topic()), element.partition()));
            }
            self.metrics.assigned.set(tracker.assigned_count() as i64);
            drop(tracker);
            tracing::info!(component_id = %self.id, partitions = %partition_list(assigned), "partitions assigned");
        }
    }

    /// Reports asynchronous commit failures (successes are counted when the commit is
    /// issued): the offsets are offered again at the next interval.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {}
            Err(error) => {
                self.metrics.failed.inc(1);
                tracing::warn!(component_id = %self.id, %error, "offset commit failed; retrying at the next interval");
                let mut tracker = self.tracker();
                for element in offsets.elements() {
                    if let Offset::Offset(offset) = element.offset() {
                        let key: PartitionKey = (Arc::from(element.topic()), element.partition());
                        tracker.commit_failed(&key, offset);
                    }
                }
            }
        }
    }
}

/// `topic/partition[@offset]` for each element, for the rebalance log lines: which
/// partitions moved, and from which offset the next owner starts, is what a post-mortem of a
/// rebalance needs. A group's partition count is small (the list stays short).
fn partition_list(list: &TopicPartitionList) -> String {
    let mut text = String::new();
    for element in list.elements() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("{}/{}", element.topic(), element.partition()));
        if let Offset::Offset(offset) = element.offset() {
            text.push_str(&format!("@{offset}"));
        }
    }
    text
}

type AckFuture = BoxFuture<'static, (ChunkId, AckStatus)>;

type KafkaStream = StreamConsumer<SourceConsumerContext>;

struct KafkaSource {
    ingest: FrameIngest,
    acks: FuturesUnordered<AckFuture>,
    limiter: LogLimiter,
    commit_interval: Duration,
}

/// The messages of one partition within a chunk.
struct PartitionChunk {
    topic: Arc<str>,
    partition: i32,
    first: i64,
    last: i64,
    token: AckToken,
    receiver: crate::ack::AckReceiver,
}

impl KafkaSource {
    async fn run(
        &mut self,
        consumer: &Arc<KafkaStream>,
        mut ctx: SourceContext,
    ) -> Result<(), SourceError> {
        let mut commit_tick = tokio::time::interval(self.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = BytesMut::new();
        let mut stream = consumer.stream();
        enum Step<M> {
            Stop,
            Ack(ChunkId, AckStatus),
            Commit,
            Message(M),
        }
        loop {
            let step = tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => Step::Stop,
                Some((id, status)) = self.acks.next(), if !self.acks.is_empty() => Step::Ack(id, status),
                _ = commit_tick.tick() => Step::Commit,
                message = stream.next() => Step::Message(message),
            };
            match step {
                Step::Stop => break,
                Step::Ack(id, status) => acked(consumer, &id, status, &ctx.id),
                Step::Commit => commit(consumer, &ctx.id).await,
                Step::Message(None) => break,
                Step::Message(Some(first)) => {
                    let mut messages = vec![first];
                    let mut bytes = 0;
                    while messages.len() < CHUNK_MESSAGES && bytes < CHUNK_BYTES {
                        match stream.next().now_or_never() {
                            Some(Some(message)) => {
                                if let Ok(m) = &message {
                                    bytes += m.payload_len();
                                }
                                messages.push(message);
                            }
                            _ => break,
                        }
                    }
                    let (decoded, chunks) = self.decode(consumer, messages, &mut buf, &ctx.id);
                    for chunk in chunks {
                        self.track(consumer, chunk);
                    }
                    if decoded.send(&mut ctx).await.is_err() {
                        return Err(SourceError::Io(std::io::Error::other(
                            crate::channel::Closed,
                        )));
                    }
                }
            }
        }
        drop(stream);
        self.drain(consumer, ctx).await;
        Ok(())
    }

    /// Decodes a chunk of messages into events stamped with one token per partition.
    fn decode(
        &mut self,
        consumer: &KafkaStream,
        messages: Vec<KafkaResult<BorrowedMessage<'_>>>,
        buf: &mut BytesMut,
        id: &str,
    ) -> (Decoded, Vec<PartitionChunk>) {
        let mut decoded = Decoded::default();
        let mut chunks: Vec<PartitionChunk> = Vec::new();
        for message in messages {
            let message = match message {
                Ok(m) => m,
                Err(error) => {
                    // Broker or network trouble; librdkafka reconnects and refetches itself.
                    if let Some(suppressed) = self.limiter.check() {
                        tracing::warn!(component_id = %id, %error, suppressed, "kafka consume error");
                    }
                    continue;
                }
            };
            let (topic, partition, offset) =
                (message.topic(), message.partition(), message.offset());
            let index = match chunks
                .iter()
                .position(|c| c.partition == partition && &*c.topic == topic)
            {
                Some(i) => {
                    chunks[i].last = offset;
                    i
                }
                None if !consumer.context().tracker().is_assigned(topic, partition) => {
                    // Polled just before its partition was revoked: the next owner reads
                    // it (and it must not be committed from here).
                    continue;
                }
                None => {
                    let (token, receiver) = AckToken::new();
                    chunks.push(PartitionChunk {
                        topic: Arc::from(topic),
                        partition,
                        first: offset,
                        last: offset,
                        token,
                        receiver,
                    });
                    chunks.len() - 1
                }
            };
            let payload = message.payload().unwrap_or_default();
            self.ingest.count_bytes(payload.len());
            buf.clear();
            buf.extend_from_slice(payload);
            let token = &chunks[index].token;
            // Each message is complete in itself: decode it to its end.
            self.ingest
                .decode_with_ack(buf, true, None, Some(token), &mut decoded);
        }
        (decoded, chunks)
    }

    /// Records a partition's chunk and waits (in the background) for its acknowledgement.
    fn track(&mut self, consumer: &KafkaStream, chunk: PartitionChunk) {
        let PartitionChunk {
            topic,
            partition,
            first,
            last,
            token,
            receiver,
        } = chunk;
        let id = consumer
            .context()
            .tracker()
            .read((topic, partition), first, last);
        // The events hold their own copies; this one must not keep the chunk pending.
        drop(token);
        self.acks.push(
            async move {
                // The sender always reports before it goes; a closed channel means the
                // pipeline went away without delivering.
                let status = receiver.await.unwrap_or(AckStatus::Errored);
                (id, status)
            }
            .boxed(),
        );
    }

    /// After shutdown: lets the pipeline drain, waits for the acknowledgements of what was
    /// read, and commits them, so a restart neither loses nor repeats them.
    async fn drain(&mut self, consumer: &Arc<KafkaStream>, ctx: SourceContext) {
        // Closing the outputs lets the downstream tasks finish once their queues are empty.
        drop(ctx.out);
        drop(ctx.dead_letter);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_ACK_TIMEOUT;
        while !self.acks.is_empty() {
            match tokio::time::timeout_at(deadline, self.acks.next()).await {
                Ok(Some((id, status))) => acked(consumer, &id, status, &ctx.id),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(component_id = %ctx.id, pending = consumer.context().tracker().pending_chunks(), "shutdown: not every event was acknowledged in time; they will be read again");
                    break;
                }
            }
        }
        commit(consumer, &ctx.id).await;
    }
}

fn acked(consumer: &KafkaStream, id: &ChunkId, status: AckStatus, source: &str) {
    let outcome = consumer.context().tracker().acked(id, status);
    if let AckOutcome::Rewind(offset) = outcome {
        let (topic, partition) = &id.partition;
        tracing::warn!(component_id = %source, %topic, partition, offset, "a sink failed to deliver events; reading the partition again from the first of them");
        if let Err(error) = consumer.seek(topic, *partition, Offset::Offset(offset), Duration::ZERO)
        {
            // Without the rewind the partition's commit stays behind the failed events,
            // so the next owner (or a restart) reads them again.
            tracing::error!(component_id = %source, %error, "cannot rewind the partition");
        }
    }
}

/// Commits what the tracker allows, synchronously on a blocking thread: the result (a
/// stale group generation, the coordinator moving) is known here and counted, and a failed
/// commit is offered again at the next interval, while the source task keeps polling.
async fn commit(consumer: &Arc<KafkaStream>, source: &str) {
    let commits = consumer.context().tracker().take_commits();
    if commits.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    let mut covered = 0;
    for ((topic, partition), offset, messages) in &commits {
        covered += messages;
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    tracing::debug!(component_id = %source, offsets = %partition_list(&list), "committing");
    let metrics = &consumer.context().metrics;
    let committer = consumer.clone();
    let result = match tokio::task::spawn_blocking(move || {
        committer.commit(&list, CommitMode::Sync)
    })
    .await
    {
        Ok(result) => result,
        Err(error) => {
            tracing::error!(component_id = %source, %error, "commit thread failed");
            Err(KafkaError::Canceled)
        }
    };
    match result {
        Ok(()) => {
            metrics.ok.inc(1);
            metrics.committed_messages.inc(covered);
        }
        Err(error) => {
            metrics.failed.inc(1);
            tracing::warn!(component_id = %source, %error, "offset commit failed; retrying at the next interval");
            let mut tracker = consumer.context().tracker();
            for ((topic, partition), offset, _) in commits {
                tracker.commit_failed(&(topic, partition), offset);
            }
        }
    }
}
