//! The `s3` sink: events archived as objects in any S3-compatible store (AWS S3, SeaweedFS,
//! MinIO, Ceph, R2...), docs/sinks/s3.md.
//!
//! Events join an open object per rendered `key_prefix` (`batch.rs`); an object is stored
//! when its encoded bytes reach `batch.max_bytes`, when it has been open
//! `batch.timeout_secs`, when a new prefix needs its place among `max_open_objects`, or
//! when the input ends. Storing is a PUT, or a multipart upload for a large object
//! (`upload.rs`), retried with backoff. Up to `request.concurrency` objects are stored at
//! once, each on its own; with that many in flight the sink takes no more batches, so while
//! the store is slow or down the queue (or disk buffer) in front of it fills. Memory: at
//! most `max_open_objects` objects being filled plus `request.concurrency` being stored.
//!
//! Acknowledgement waits for the store: an open object holds its events' tokens, and they
//! are stated delivered only after the PUT or CompleteMultipartUpload succeeded. An object
//! that fails for good (a 4xx such as AccessDenied or NoSuchBucket, or retries exhausted)
//! sends its events, read back from its content, to `ID.dead_letter`. A router killed with
//! open objects loses nothing acknowledged: their events were never acknowledged, so an
//! acknowledging source sends them again.

mod batch;
mod config;
mod credentials;
mod key;
mod upload;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};

use self::batch::{Batcher, Closed, Sealed};
use self::credentials::ProcessEnvironment;
use self::key::KeyTemplate;
use self::upload::Uploader;
use super::in_flight::Requests;
use super::{Encoding, SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::channel::BatchReceiver;
use crate::delivery::http::HttpClient;
use crate::delivery::retry::{DeliveryError, Retrier};
use crate::telemetry::{self, Counter};

pub use self::config::{BatchConfig, Compression, S3SinkConfig};
pub use self::credentials::CredentialsError;

/// A built `s3` sink: its options and compiled key template.
#[derive(Debug, Clone)]
pub struct S3Sink {
    config: S3SinkConfig,
    key: KeyTemplate,
}

/// An `s3` sink after the start's IO (credentials, region, TLS files).
pub struct OpenedS3Sink {
    config: S3SinkConfig,
    key: KeyTemplate,
    client: HttpClient,
    bucket: rusty_s3::Bucket,
    credentials: rusty_s3::Credentials,
}

fn start_error(message: String) -> SinkError {
    SinkError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        message,
    ))
}

impl S3Sink {
    /// Reads the credentials (options, environment, shared file), the region and the TLS
    /// files; a failure stops the start, naming what is missing.
    pub fn open(self) -> Result<OpenedS3Sink, SinkError> {
        let env = ProcessEnvironment;
        let credentials = credentials::resolve(&self.config, &env)
            .map_err(|e| start_error(format!("credentials: {e}")))?;
        let region = credentials::region(&self.config, &env);
        let bucket = upload::bucket(
            self.config.endpoint.as_deref(),
            self.config.force_path_style,
            &self.config.bucket,
            &region,
        )
        .map_err(|e| start_error(format!("{}: {}", e.field, e.message)))?;
        let https = bucket.base_url().scheme() == "https";
        let client = super::batch::client(https, &self.config.tls)?;
        Ok(OpenedS3Sink {
            config: self.config,
            key: self.key,
            client,
            bucket,
            credentials,
        })
    }
}

/// The sink's own counters, besides every sink's.
struct ObjectMetrics {
    /// Objects stored, per what closed them (in `Closed::ALL` order).
    stored: [Counter; 4],
    multipart_uploads: Counter,
}

impl ObjectMetrics {
    fn new(id: &str) -> Self {
        Self {
            stored: Closed::ALL.map(|closed| {
                telemetry::counter(
                    "s3_objects_total",
                    &[("component_id", id), ("reason", closed.as_str())],
                )
            }),
            multipart_uploads: telemetry::counter(
                "s3_multipart_uploads_total",
                &[("component_id", id)],
            ),
        }
    }
}

impl OpenedS3Sink {
    pub async fn run(self, mut rx: BatchReceiver, ctx: SinkContext) -> Result<(), SinkError> {
        let metrics = ObjectMetrics::new(&ctx.id);
        let config = self.config;
        let content_type = match config.encoding {
            Encoding::Json => "application/x-ndjson",
            Encoding::Text => "text/plain; charset=utf-8",
        };
        let extension = match config.encoding {
            Encoding::Json => ".ndjson",
            Encoding::Text => ".log",
        };
        let sink = Storer {
            uploader: Uploader {
                client: self.client,
                bucket: self.bucket,
                credentials: self.credentials,
                timeout: Duration::from_secs(config.timeout_secs),
                part_bytes: config.multipart_part_bytes,
                content_headers: Uploader::content_headers(
                    content_type,
                    config.compression.content_encoding(),
                ),
                retrier: Retrier::new(
                    config.retry.clone(),
                    Some(&ctx.id),
                    ctx.metrics.write_errors.clone(),
                ),
                multipart_uploads: metrics.multipart_uploads.clone(),
            },
            extension: format!("{extension}{}", config.compression.extension()),
            encoding: config.encoding,
            compression: config.compression,
            metrics,
            ctx,
        };
        let mut batcher = Batcher::new(
            self.key,
            config.encoding,
            config.compression,
            config.batch.max_bytes,
            config.max_open_objects,
            Duration::from_secs(config.batch.timeout_secs),
        )?;
        let requests = Requests::new(config.request.concurrency, &sink.ctx.id);
        let (sink, requests) = (&sink, &requests);
        // Objects being stored; at most `request.concurrency`, so that a slow store stops
        // the sink taking events.
        let mut storing = FuturesUnordered::new();
        let mut ready: Vec<Sealed> = Vec::new();
        loop {
            let deadline = batcher.next_deadline();
            // Far enough to never fire; only polled when an object is open.
            let wake = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let room = storing.len() < config.request.concurrency;
            tokio::select! {
                // Stores that completed first, then timed-out objects, so a steady input
                // cannot hold them back.
                biased;
                Some(()) = storing.next(), if !storing.is_empty() => {}
                () = tokio::time::sleep_until(wake.into()), if deadline.is_some() && room => {
                    ready.extend(batcher.expired(Instant::now()));
                }
                delivery = rx.recv(), if room => {
                    let Some(delivery) = delivery else { break };
                    for event in delivery.events.iter() {
                        batcher.add(event, &mut ready);
                    }
                    // The events' tokens are held by their open objects, which state
                    // their outcome once stored.
                    delivery.settle();
                }
            }
            storing.extend(
                ready
                    .drain(..)
                    .map(|sealed| requests.send(sink.store(sealed))),
            );
        }
        tracing::debug!(component_id = %sink.ctx.id, open = batcher.open_objects(), "input ended; storing the open objects");
        storing.extend(
            batcher
                .drain()
                .into_iter()
                .map(|sealed| requests.send(sink.store(sealed))),
        );
        while storing.next().await.is_some() {}
        Ok(())
    }
}

/// Stores closed objects and states their events' outcome.
struct Storer {
    uploader: Uploader,
    /// The key's extension: encoding, then compression (`.ndjson.gz`).
    extension: String,
    encoding: Encoding,
    compression: Compression,
    metrics: ObjectMetrics,
    ctx: SinkContext,
}

impl Storer {
    async fn store(&self, mut sealed: Sealed) {
        let key = key::object_key(&sealed.prefix, &self.extension);
        let body = Bytes::from(std::mem::take(&mut sealed.body));
        let result = match sealed.failed.take() {
            Some(message) => Err(DeliveryError::Fatal(message)),
            None => self.uploader.store(&key, body.clone()).await,
        };
        match result {
            Ok(()) => {
                let index = Closed::ALL
                    .iter()
                    .position(|c| *c == sealed.closed)
                    .unwrap_or_default();
                self.metrics.stored[index].inc(1);
                self.ctx.metrics.sent_events.inc(sealed.count as u64);
                self.ctx.metrics.sent_bytes.inc(body.len() as u64);
                tracing::debug!(component_id = %self.ctx.id, %key, events = sealed.count, bytes = body.len(), closed = sealed.closed.as_str(), "object stored");
                sealed.obligation.discharge(AckStatus::Delivered);
            }
            Err(error) => {
                tracing::error!(component_id = %self.ctx.id, %key, %error, events = sealed.count, "object not stored, for good; its events go to dead-letter");
                let events = sealed.events(&body, self.encoding, self.compression);
                let letters = super::dead_letters(events.iter(), &self.ctx.id, &error);
                drop(events);
                self.ctx.reject_async(letters).await;
                sealed.obligation.discharge(AckStatus::Rejected);
            }
        }
    }
}
