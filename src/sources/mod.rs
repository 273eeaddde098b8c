//! Sources: where events enter the router.
//!
//! Every source turns bytes into events with the same machinery: a [`FrameIngest`] owns the
//! composed codec decoder, stamps metadata (source id, receive time, peer) on each event,
//! counts bad frames by reason and logs them at a limited rate. Events read in one go travel
//! as one batch, so a busy connection sends few, large batches and a quiet one sends small
//! batches without waiting to fill them (no added latency).

pub mod auth;
pub mod checkpoint;
pub mod file;
pub mod http;
pub mod journald;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
mod kafka_offsets;
pub mod kubernetes;
pub mod otlp;
pub mod otlp_status;
pub mod otlp_wire;
pub mod sockets;
pub mod stdin;
mod stream_auth;
pub mod tcp;
pub mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use crate::ack::{AckStatus, AckToken};
use crate::channel::{Closed, Fanout};
use crate::codec::{self, Decoder, DecodingConfig, FramingConfig};
use crate::event::{fields, now_nanos, Batch, Event, EventMeta, Map, Value};
use crate::telemetry::{self, Counter, LogLimiter};

/// Bytes requested per read. Large reads amortise the per-read cost over many events.
pub(crate) const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Named outputs every source offers: `ID.dead_letter` carries frames that could not become
/// events (oversized, truncated, unparsable), with the reason, for any sink to keep.
pub const SOURCE_OUTPUTS: &[&str] = &["dead_letter"];

/// Fields of a dead-letter event.
pub mod dead_letter {
    /// Human-readable reason, e.g. "invalid json at column 17: …".
    pub const REASON: &str = "reason";
    /// Short reason code, the same label as on `component_errors_total{reason}`.
    pub const REASON_CODE: &str = "reason_code";
    /// The source component the frame arrived at.
    pub const SOURCE: &str = "source";
    /// The sender's address, for network sources.
    pub const PEER: &str = "peer";
}

/// A listening source after the start's IO: its socket, its TLS acceptor and its tokens,
/// each read once per instance (a reload's new instance reads the files again, and takes
/// its predecessor's socket when the address is the same: `sockets.rs`).
pub struct BoundListener {
    pub listener: Arc<tokio::net::TcpListener>,
    /// Where a stopped `tcp` source passes its connections.
    pub(crate) handover: Arc<sockets::Handover>,
    /// The socket as the topology keeps it.
    pub bound: sockets::Bound,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) tokens: auth::Tokens,
}

impl BoundListener {
    /// Reads the tokens and TLS files, then takes the socket `source` holds at `address` or
    /// binds it: an error here (a port conflict, a missing or malformed file) stops the
    /// router from starting, or refuses the reload.
    pub(crate) async fn bind(
        sockets: &sockets::Sockets,
        source: &str,
        address: &str,
        tokens: &std::collections::BTreeMap<String, String>,
        tokens_file: Option<&std::path::PathBuf>,
        tls: Option<&crate::tls::TlsConfig>,
    ) -> Result<Self, SourceError> {
        let tokens = auth::load_tokens(tokens, tokens_file)?;
        let tls = crate::tls::optional_acceptor(tls)?;
        let (listener, handover, bound) =
            sockets::stream(sockets, source, "address", address).await?;
        Ok(Self {
            listener,
            handover,
            bound,
            tls,
            tokens,
        })
    }
}

/// What a source task gets from the topology.
pub struct SourceContext {
    pub id: Arc<str>,
    pub out: Fanout,
    /// Consumers of `ID.dead_letter` (often none).
    pub dead_letter: Fanout,
    pub shutdown: CancellationToken,
}

/// Events decoded from one read, and dead letters for the frames that failed.
#[derive(Default)]
pub(crate) struct Decoded {
    pub(crate) events: Vec<Event>,
    pub(crate) dead: Vec<Event>,
}

impl Decoded {
    /// Sends what was decoded; `Err` when no consumer of the main output is left.
    pub(crate) async fn send(self, ctx: &mut SourceContext) -> Result<(), Closed> {
        if !self.dead.is_empty() {
            if ctx.dead_letter.is_empty() {
                // Counted and logged as bad frames; retrying them cannot help.
                for event in &self.dead {
                    event.ack(AckStatus::Rejected);
                }
            } else {
                // A dead-letter consumer that stopped must not stop the source.
                let _ = ctx.dead_letter.send(Batch::new(self.dead)).await;
            }
        }
        if self.events.is_empty() {
            return Ok(());
        }
        ctx.out.send(Batch::new(self.events)).await
    }
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
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// An option that could only be checked at start (against the environment).
    #[error("field `{field}`: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
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

    /// Decodes every complete frame in `buf` (and the remainder when `eof`) into `out`.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
        peer: Option<SocketAddr>,
        out: &mut Decoded,
    ) {
        self.decode_with_ack(buf, eof, peer, None, out)
    }

    /// Like [`FrameIngest::decode`], stamping every event (and dead letter) with `ack`, for
    /// sources that acknowledge what they read.
    pub(crate) fn decode_with_ack(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
        peer: Option<SocketAddr>,
        ack: Option<&AckToken>,
        out: &mut Decoded,
    ) {
        let received_at = now_nanos();
        let before = out.events.len();
        let dead_before = out.dead.len();
        while let Some(decoded) = self.decoder.next(buf, eof) {
            match decoded {
                codec::Decoded::Fields { fields, truncated } => {
                    if truncated {
                        self.truncated.inc(1);
                    }
                    out.events.push(self.stamp(fields, received_at, peer, ack));
                }
                codec::Decoded::Bad(bad) => {
                    let dead = self.bad_frame(bad, received_at, peer, ack);
                    out.dead.push(dead);
                }
            }
        }
        self.received_events.inc((out.events.len() - before) as u64);
        if let Some(token) =
            ack.filter(|_| out.events.len() == before && out.dead.len() == dead_before)
        {
            // Nothing in this read to deliver (half a line, an empty body or message): say so,
            // or the token would resolve "not delivered" and hold up the source.
            token.update(AckStatus::Delivered);
        }
    }

    /// The next frame in `buf`, not decoded: for a source that runs stages of its own
    /// between framing and decoding (the file source's `container` and `multiline`).
    pub(crate) fn next_frame(&mut self, buf: &mut BytesMut, eof: bool) -> Option<codec::Frame> {
        self.decoder.next_frame(buf, eof)
    }

    /// Decodes a message its stages produced with the source's decoding: an event (counted
    /// as received, and as truncated with `truncated`), or a dead letter (counted as a bad
    /// frame).
    pub(crate) fn decode_message(
        &mut self,
        message: bytes::Bytes,
        truncated: bool,
        received_at: i64,
        ack: Option<&AckToken>,
    ) -> Result<Event, Event> {
        match self.decoder.decode_frame(message, truncated) {
            codec::Decoded::Fields { fields, truncated } => {
                if truncated {
                    self.truncated.inc(1);
                }
                self.received_events.inc(1);
                Ok(self.stamp(fields, received_at, None, ack))
            }
            codec::Decoded::Bad(bad) => Err(self.bad_frame(bad, received_at, None, ack)),
        }
    }

    fn stamp(
        &self,
        fields: Map,
        received_at: i64,
        peer: Option<SocketAddr>,
        ack: Option<&AckToken>,
    ) -> Event {
        Event {
            fields,
            meta: EventMeta {
                source: Some(self.source.clone()),
                received_at,
                peer,
                ack: ack.cloned(),
            },
        }
    }

    /// Counts a bad frame by reason, logs it (rate-limited), and makes its dead letter.
    pub(crate) fn bad_frame(
        &mut self,
        bad: codec::BadFrame,
        received_at: i64,
        peer: Option<SocketAddr>,
        ack: Option<&AckToken>,
    ) -> Event {
        let source = &self.source;
        let label = bad.reason_label();
        self.bad_frames
            .entry(label)
            .or_insert_with(|| {
                telemetry::counter(
                    "component_errors_total",
                    &[("component_id", source), ("reason", label)],
                )
            })
            .inc(1);
        if let Some(suppressed) = self.limiter.check() {
            tracing::warn!(
                component_id = %source,
                reason = label,
                detail = %bad.reason(),
                peer = ?peer,
                suppressed,
                "bad frame skipped"
            );
        }
        let mut fields = Map::with_capacity(5);
        fields.insert(dead_letter::REASON, Value::from(bad.reason().to_string()));
        fields.insert(dead_letter::REASON_CODE, Value::from(label));
        fields.insert(dead_letter::SOURCE, Value::from(&**source));
        if let Some(peer) = peer {
            fields.insert(dead_letter::PEER, Value::from(peer.to_string()));
        }
        fields.insert(fields::MESSAGE, Value::Bytes(bad.into_parts().1));
        self.stamp(fields, received_at, peer, ack)
    }

    /// Stamps events a source decoded itself (OTLP requests) as [`FrameIngest::decode_with_ack`]
    /// stamps frames, and counts them.
    pub(crate) fn push_with_ack(
        &mut self,
        events: Vec<Event>,
        peer: Option<SocketAddr>,
        ack: Option<&AckToken>,
        out: &mut Decoded,
    ) {
        let received_at = now_nanos();
        self.received_events.inc(events.len() as u64);
        if events.is_empty() {
            if let Some(token) = ack {
                token.update(AckStatus::Delivered);
            }
        }
        out.events.extend(events.into_iter().map(|mut event| {
            event.meta = EventMeta {
                source: Some(self.source.clone()),
                received_at,
                peer,
                ack: ack.cloned(),
            };
            event
        }));
    }

    /// Counts a record the source decoded but cannot take (`code` is its
    /// `component_errors_total` reason), logs it (rate-limited) and makes its dead letter:
    /// the record's fields with the reason. The dead letter carries no acknowledgement
    /// token: the sender is told of the rejection in the answer, whatever becomes of it.
    pub(crate) fn rejected_record(
        &mut self,
        event: Event,
        code: &'static str,
        reason: &str,
        peer: Option<SocketAddr>,
    ) -> Event {
        let source = &self.source;
        self.bad_frames
            .entry(code)
            .or_insert_with(|| {
                telemetry::counter(
                    "component_errors_total",
                    &[("component_id", source), ("reason", code)],
                )
            })
            .inc(1);
        if let Some(suppressed) = self.limiter.check() {
            tracing::warn!(component_id = %source, reason = code, detail = reason, peer = ?peer, suppressed, "record rejected");
        }
        let mut fields = event.fields;
        fields.insert(dead_letter::REASON, Value::from(reason));
        fields.insert(dead_letter::REASON_CODE, Value::from(code));
        fields.insert(dead_letter::SOURCE, Value::from(&**source));
        if let Some(peer) = peer {
            fields.insert(dead_letter::PEER, Value::from(peer.to_string()));
        }
        self.stamp(fields, now_nanos(), peer, None)
    }

    /// True while an oversized frame is being dropped: the bytes consumed end inside it.
    pub(crate) fn is_discarding(&self) -> bool {
        self.decoder.is_discarding()
    }

    pub(crate) fn count_bytes(&self, n: usize) {
        self.received_bytes.inc(n as u64);
    }
}

/// Reads `reader` to its end (or until shutdown), sending one batch per read.
pub(crate) async fn read_stream<R: AsyncRead + Unpin>(
    reader: R,
    ingest: &mut FrameIngest,
    ctx: &mut SourceContext,
    peer: Option<SocketAddr>,
    auth: Option<&stream_auth::StreamAuth>,
) -> Result<(), SourceError> {
    let buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    match read_until_stopped(reader, buf, ingest, ctx, peer, auth).await? {
        StreamEnd::Eof => Ok(()),
        StreamEnd::Stopped(_, rest) => finish_stream(rest, ingest, ctx, peer, auth).await,
    }
}

/// How reading a stream ended.
pub(crate) enum StreamEnd<R> {
    Eof,
    /// Stopped: the reader, and the bytes read but not yet decoded (an unfinished frame).
    Stopped(R, BytesMut),
}

/// Reads `reader`, starting with the bytes in `buf`, until its end or until the source is
/// stopped; every complete frame read is sent before this returns.
pub(crate) async fn read_until_stopped<R: AsyncRead + Unpin>(
    mut reader: R,
    mut buf: BytesMut,
    ingest: &mut FrameIngest,
    ctx: &mut SourceContext,
    peer: Option<SocketAddr>,
    auth: Option<&stream_auth::StreamAuth>,
) -> Result<StreamEnd<R>, SourceError> {
    let mut auth_log = LogLimiter::default();
    loop {
        buf.reserve(READ_CHUNK_BYTES);
        let n = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return Ok(StreamEnd::Stopped(reader, buf)),
            n = reader.read_buf(&mut buf) => n?,
        };
        ingest.count_bytes(n);
        let eof = n == 0;
        decode_and_send(&mut buf, eof, ingest, ctx, peer, auth, &mut auth_log).await?;
        if eof {
            return Ok(StreamEnd::Eof);
        }
    }
}

/// Decodes and sends what is left of a stream that will not be read further, its last
/// frame taken as ended.
pub(crate) async fn finish_stream(
    mut rest: BytesMut,
    ingest: &mut FrameIngest,
    ctx: &mut SourceContext,
    peer: Option<SocketAddr>,
    auth: Option<&stream_auth::StreamAuth>,
) -> Result<(), SourceError> {
    let mut auth_log = LogLimiter::default();
    decode_and_send(&mut rest, true, ingest, ctx, peer, auth, &mut auth_log).await
}

async fn decode_and_send(
    buf: &mut BytesMut,
    eof: bool,
    ingest: &mut FrameIngest,
    ctx: &mut SourceContext,
    peer: Option<SocketAddr>,
    auth: Option<&stream_auth::StreamAuth>,
    auth_log: &mut LogLimiter,
) -> Result<(), SourceError> {
    let mut decoded = Decoded::default();
    ingest.decode(buf, eof, peer, &mut decoded);
    if let Some(auth) = auth {
        auth.admit(&mut decoded, auth_log, &ctx.shutdown).await;
    }
    if decoded.send(ctx).await.is_err() {
        // Every consumer stopped: nothing downstream can take events any more.
        return Err(SourceError::Io(std::io::Error::other(Closed)));
    }
    Ok(())
}
