//! The `tcp` source: many concurrent connections, each framed and decoded independently.
//!
//! Each connection runs in its own task and sends its own batches, so events of one
//! connection stay in order all the way to each sink. When a downstream queue is full the
//! connection's task waits in `send`, stops reading, and TCP flow control pushes back on the
//! sender: nothing is dropped. A connection that sends half a frame and goes quiet costs at
//! most one frame of memory and blocks nobody else.
//!
//! An instance replaced by a reload (its address the same) passes its listener and its open
//! connections, each with its unfinished frame, to the new instance (`sockets.rs`), so
//! senders stay connected and their next events are read with the new settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use serde::Deserialize;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::auth::{validate_tokens, RateLimitConfig, RateLimiter};
use super::sockets::{Handover, Sockets};
use super::stream_auth::StreamAuth;
use super::{
    finish_stream, read_until_stopped, BoundListener, FrameIngest, SourceContext, SourceError,
    StreamEnd,
};
use crate::codec::{DecodingConfig, FramingConfig};
use crate::field_error::FieldError;
use crate::listen::{Acceptor, Admission, ConnectionLimits, IdleTimeout};
use crate::telemetry;
use crate::tls::TlsConfig;

/// `[sources.ID] type = "tcp"`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// Address to listen on, e.g. `0.0.0.0:5140`.
    pub address: String,
    #[serde(default)]
    pub framing: FramingConfig,
    #[serde(default)]
    pub decoding: DecodingConfig,
    /// Connections held at once; more are closed at once and counted
    /// (`component_connections_refused_total{reason="max_connections"}`), never queued.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections held at once from one IP address (`reason="max_connections_per_ip"`).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// A connection that sends nothing for this long is closed and counted
    /// (`component_connections_closed_total{reason="idle_timeout"}`); 0 keeps idle
    /// connections forever. Time spent held back by a full pipeline does not count.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Serve TLS (optionally requiring client certificates).
    pub tls: Option<TlsConfig>,
    /// Per-app tokens, Logplex-style: `tokens = { "TOKEN" = "app" }`. With any token
    /// configured (here or in `tokens_file`), every event must carry a known one (a
    /// `[TOKEN@PEN]` syslog structured-data element or a `token` field); see
    /// `stream_auth.rs`.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
    /// A file of `TOKEN APP` lines, read at start.
    pub tokens_file: Option<PathBuf>,
    /// Per-app token-bucket limits; over them the app's connections are read more slowly.
    pub rate_limit: Option<RateLimitConfig>,
}

fn default_max_connections() -> usize {
    4096
}

fn default_max_connections_per_ip() -> usize {
    crate::listen::DEFAULT_MAX_CONNECTIONS_PER_IP
}

/// Generous: syslog senders keep quiet connections open and reconnect when closed, while
/// an attacker's idle connections are bounded by the per-IP cap meanwhile.
fn default_idle_timeout_secs() -> u64 {
    600
}

impl TcpConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        parse_address(&self.address)?;
        self.limits().validate()?;
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        validate_tokens(&self.tokens, self.rate_limit.as_ref())?;
        self.framing.validate()
    }

    fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
        }
    }

    /// Does the start's IO once: reads the tokens and TLS files and binds the listener (or
    /// takes the one the instance this one replaces holds at the same address, and becomes
    /// where that instance passes its connections once stopped).
    pub async fn bind(&self, sockets: &Sockets, source: &str) -> Result<TcpBound, SourceError> {
        let listener = BoundListener::bind(
            sockets,
            source,
            &self.address,
            &self.tokens,
            self.tokens_file.as_ref(),
            self.tls.as_ref(),
        )
        .await?;
        // Now, not when the task first runs: the old instance is stopped before that.
        let passed = listener.handover.succeed();
        Ok(TcpBound { listener, passed })
    }

    pub async fn run(self, bound: TcpBound, ctx: SourceContext) -> Result<(), SourceError> {
        let TcpBound {
            listener:
                BoundListener {
                    listener,
                    handover,
                    tls,
                    tokens,
                    ..
                },
            mut passed,
        } = bound;
        let mut acceptor = Acceptor::new(listener, self.limits(), &ctx.id);
        let limiter = self
            .rate_limit
            .as_ref()
            .map(|config| RateLimiter::new(config, &ctx.id));
        let shared = Arc::new(Connections {
            idle_timeout: (self.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(self.idle_timeout_secs)),
            idle_closed: telemetry::counter(
                "component_connections_closed_total",
                &[("component_id", &ctx.id), ("reason", "idle_timeout")],
            ),
            auth: StreamAuth::new(ctx.id.clone(), tokens, limiter),
            handshake_failures: telemetry::counter(
                "component_errors_total",
                &[("component_id", &ctx.id), ("reason", "tls_handshake")],
            ),
            handover,
            tls,
            framing: self.framing.clone(),
            decoding: self.decoding,
        });
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                accepted = acceptor.accept() => {
                    let (stream, peer, admission) = accepted;
                    let stream = IdleTimeout::new(stream, shared.idle_timeout, shared.idle_closed.clone());
                    let run = shared.clone().accepted(stream, peer, admission, child(&ctx));
                    connections.spawn(run);
                }
                Some(connection) = passed.recv() => {
                    let admission = acceptor.adopt(connection.peer.ip());
                    connections.spawn(shared.clone().resume(connection, admission, child(&ctx)));
                }
            }
            // Reap finished connections so the set does not grow with history.
            while connections.try_join_next().is_some() {}
        }
        // Connections passed to this instance but not yet taken are passed on in turn (or,
        // without a successor, their rest is decoded and they are closed).
        passed.close();
        while let Some(connection) = passed.recv().await {
            let admission = acceptor.adopt(connection.peer.ip());
            connections.spawn(shared.clone().resume(connection, admission, child(&ctx)));
        }
        drop(acceptor);
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

/// A `tcp` source after the start's IO.
pub struct TcpBound {
    pub listener: BoundListener,
    /// Connections the instance this one replaces passes on.
    passed: mpsc::UnboundedReceiver<Passed>,
}

/// A connection's own context: the source's outputs and stop.
fn child(ctx: &SourceContext) -> SourceContext {
    SourceContext {
        id: ctx.id.clone(),
        out: ctx.out.clone(),
        dead_letter: ctx.dead_letter.clone(),
        shutdown: ctx.shutdown.clone(),
    }
}

/// An open connection passed from a stopped instance to the one replacing it.
pub struct Passed {
    stream: PassedStream,
    peer: SocketAddr,
    /// Read and not yet decoded: the start of an unfinished frame.
    rest: BytesMut,
}

enum PassedStream {
    /// Wrapped again in the new instance's idle timeout.
    Plain(TcpStream),
    /// A TLS session cannot change hands between configurations: it keeps the
    /// certificate it was opened with and its idle timeout.
    Tls(Box<TlsStream<IdleTimeout<TcpStream>>>),
}

/// What every connection of one instance shares.
struct Connections {
    idle_timeout: Option<Duration>,
    idle_closed: telemetry::Counter,
    auth: Option<StreamAuth>,
    handshake_failures: telemetry::Counter,
    handover: Arc<Handover>,
    tls: Option<TlsAcceptor>,
    framing: FramingConfig,
    decoding: DecodingConfig,
}

impl Connections {
    /// A connection this instance accepted: the TLS handshake, then reading.
    async fn accepted(
        self: Arc<Self>,
        stream: IdleTimeout<TcpStream>,
        peer: SocketAddr,
        admission: Admission,
        mut ctx: SourceContext,
    ) {
        let _admission = admission;
        let rest = BytesMut::new();
        let Some(acceptor) = &self.tls else {
            let plain = |s: IdleTimeout<TcpStream>| PassedStream::Plain(s.into_inner());
            return self.read(stream, peer, rest, &mut ctx, plain).await;
        };
        match crate::tls::accept(acceptor, stream).await {
            Ok(tls_stream) => {
                let tls = |s| PassedStream::Tls(Box::new(s));
                self.read(tls_stream, peer, rest, &mut ctx, tls).await
            }
            Err(error) => {
                self.handshake_failures.inc(1);
                tracing::debug!(component_id = %ctx.id, %peer, %error, "tls handshake refused");
            }
        }
    }

    /// A connection passed on by the instance this one replaces: read on from where it
    /// stopped, with this instance's settings.
    async fn resume(self: Arc<Self>, passed: Passed, admission: Admission, mut ctx: SourceContext) {
        let _admission = admission;
        let Passed { stream, peer, rest } = passed;
        match stream {
            PassedStream::Plain(stream) => {
                let stream = IdleTimeout::new(stream, self.idle_timeout, self.idle_closed.clone());
                let plain = |s: IdleTimeout<TcpStream>| PassedStream::Plain(s.into_inner());
                self.read(stream, peer, rest, &mut ctx, plain).await
            }
            PassedStream::Tls(stream) => {
                let tls = |s| PassedStream::Tls(Box::new(s));
                self.read(*stream, peer, rest, &mut ctx, tls).await
            }
        }
    }

    /// Reads `stream` (after the undecoded `rest`) until its end, or until the source stops;
    /// then passes it to the instance replacing this one, if any, or decodes what is left
    /// and closes it.
    async fn read<R: AsyncRead + Unpin>(
        &self,
        stream: R,
        peer: SocketAddr,
        rest: BytesMut,
        ctx: &mut SourceContext,
        pass: impl FnOnce(R) -> PassedStream,
    ) {
        let mut ingest = FrameIngest::new(ctx.id.clone(), &self.framing, self.decoding);
        let auth = self.auth.as_ref();
        let from = Some(peer);
        let result = match read_until_stopped(stream, rest, &mut ingest, ctx, from, auth).await {
            Ok(StreamEnd::Eof) => Ok(()),
            Ok(StreamEnd::Stopped(stream, rest)) => {
                // Everything decoded so far is sent: the successor's events come after.
                // (A framer in the middle of skipping an oversized frame passes without
                // that state: the successor reads the frame's tail as a frame of its own.
                // It takes a reload during such a frame, and none of the sender's other
                // events is lost.)
                let passed = Passed {
                    stream: pass(stream),
                    peer,
                    rest,
                };
                match self.handover.pass(passed) {
                    Ok(()) => Ok(()),
                    Err(passed) => finish_stream(passed.rest, &mut ingest, ctx, from, auth).await,
                }
            }
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::debug!(component_id = %ctx.id, %peer, %error, "connection ended");
        }
    }
}

pub(crate) fn parse_address(address: &str) -> Result<SocketAddr, FieldError> {
    address.parse().map_err(|_| {
        FieldError::new(
            "address",
            format!("`{address}` is not an ip:port socket address (e.g. 0.0.0.0:5140)"),
        )
    })
}
