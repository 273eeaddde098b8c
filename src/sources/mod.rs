//! Sources: where events enter the router.
//!
//! Every source turns bytes into events with the same machinery: a [`FrameIngest`] owns the
//! composed codec decoder, stamps metadata (source id, receive time, peer) on each event,
//! counts bad frames by reason and logs them at a limited rate. Events read in one go travel
//! as one batch, so a busy connection sends few, large batches and a quiet one sends small
//! batches without waiting to fill them (no added latency).

pub mod stdin;
pub mod tcp;
pub mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use crate::codec::{Decoded, Decoder, DecodingConfig, FramingConfig};
use crate::event::{now_nanos, Batch, Event, EventMeta};
use crate::telemetry::{self, Counter, LogLimiter};
use crate::topology::{Closed, Fanout};

/// Bytes requested per read. Large reads amortise the per-read cost over many events.
pub(crate) const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What a source task gets from the topology.
pub struct SourceContext {
    pub id: Arc<str>,
    pub out: Fanout,
    pub shutdown: CancellationToken,
}

/// Errors that stop a source from starting (binding a socket, for example).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot bind {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Turns raw bytes into events for one stream (a connection, stdin, a datagram).
pub(crate) struct FrameIngest {
    source: Arc<str>,
    decoder: Decoder,
    received_events: Counter,
    received_bytes: Counter,
    bad_frames: HashMap<&'static str, Counter>,
    truncated: Counter,
    limiter: LogLimiter,
}

impl FrameIngest {
    pub(crate) fn new(source: Arc<str>, framing: &FramingConfig, decoding: DecodingConfig) -> Self {
        let id: &str = &source;
        Self {
            decoder: Decoder::new(framing.build(), decoding.build()),
            received_events: telemetry::counter(
                "component_received_events_total",
                &[("component_id", id)],
            ),
            received_bytes: telemetry::counter(
                "component_received_bytes_total",
                &[("component_id", id)],
            ),
            truncated: telemetry::counter(
                "component_errors_total",
                &[("component_id", id), ("reason", "truncated_frame")],
            ),
            bad_frames: HashMap::new(),
            limiter: LogLimiter::default(),
            source,
        }
    }

    /// Decodes every complete frame in `buf` (and the remainder when `eof`) into `events`.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
        peer: Option<SocketAddr>,
        events: &mut Vec<Event>,
    ) {
        let received_at = now_nanos();
        let before = events.len();
        let Self {
            source,
            decoder,
            bad_frames,
            truncated,
            limiter,
            ..
        } = self;
        decoder.decode_all(buf, eof, |decoded| match decoded {
            Decoded::Fields {
                fields,
                truncated: was_truncated,
            } => {
                if was_truncated {
                    truncated.inc(1);
                }
                events.push(Event {
                    fields,
                    meta: EventMeta {
                        source: Some(source.clone()),
                        received_at,
                        peer,
                        ack: None,
                    },
                });
            }
            Decoded::Bad(bad) => {
                let label = bad.reason_label();
                bad_frames
                    .entry(label)
                    .or_insert_with(|| {
                        telemetry::counter(
                            "component_errors_total",
                            &[("component_id", source), ("reason", label)],
                        )
                    })
                    .inc(1);
                if let Some(suppressed) = limiter.check() {
                    tracing::warn!(
                        component_id = %source,
                        reason = label,
                        detail = %bad.reason(),
                        peer = ?peer,
                        suppressed,
                        "bad frame skipped"
                    );
                }
            }
        });
        self.received_events.inc((events.len() - before) as u64);
    }

    pub(crate) fn count_bytes(&self, n: usize) {
        self.received_bytes.inc(n as u64);
    }
}

/// Reads `reader` to its end (or until shutdown), sending one batch per read.
pub(crate) async fn read_stream<R: AsyncRead + Unpin>(
    mut reader: R,
    ingest: &mut FrameIngest,
    out: &mut Fanout,
    shutdown: &CancellationToken,
    peer: Option<SocketAddr>,
) -> Result<(), SourceError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        buf.reserve(READ_CHUNK_BYTES);
        let n = tokio::select! {
            biased;
            _ = shutdown.cancelled() => 0,
            n = reader.read_buf(&mut buf) => n?,
        };
        ingest.count_bytes(n);
        let eof = n == 0;
        let mut events = Vec::new();
        ingest.decode(&mut buf, eof, peer, &mut events);
        if !events.is_empty() && out.send(Batch::new(events)).await.is_err() {
            // Every consumer stopped: nothing downstream can take events any more.
            return Err(SourceError::Io(std::io::Error::other(Closed)));
        }
        if eof {
            return Ok(());
        }
    }
}
