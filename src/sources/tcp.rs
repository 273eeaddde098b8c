//! The `tcp` source: many concurrent connections, each framed and decoded independently.
//!
//! Each connection runs in its own task and sends its own batches, so events of one
//! connection stay in order all the way to each sink. When a downstream queue is full the
//! connection's task waits in `send`, stops reading, and TCP flow control pushes back on the
//! sender: nothing is dropped. A connection that sends half a frame and goes quiet costs at
//! most one frame of memory and blocks nobody else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinSet;

use super::auth::{validate_tokens, RateLimitConfig, RateLimiter};
use super::stream_auth::StreamAuth;
use super::{read_stream, BoundListener, FrameIngest, SourceContext, SourceError};
use crate::codec::{DecodingConfig, FramingConfig};
use crate::field_error::FieldError;
use crate::listen::{Acceptor, ConnectionLimits, IdleTimeout};
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

    /// Does the start's IO once: reads the tokens and TLS files and binds the listener.
    pub async fn bind(&self) -> Result<BoundListener, SourceError> {
        BoundListener::bind(
            &self.address,
            &self.tokens,
            self.tokens_file.as_ref(),
            self.tls.as_ref(),
        )
        .await
    }

    pub async fn run(self, bound: BoundListener, ctx: SourceContext) -> Result<(), SourceError> {
        let BoundListener {
            listener,
            tls,
            tokens,
        } = bound;
        let mut acceptor = Acceptor::new(listener, self.limits(), &ctx.id);
        let idle_timeout =
            (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs));
        let idle_closed = telemetry::counter(
            "component_connections_closed_total",
            &[("component_id", &ctx.id), ("reason", "idle_timeout")],
        );
        let limiter = self
            .rate_limit
            .as_ref()
            .map(|config| RateLimiter::new(config, &ctx.id));
        let auth = StreamAuth::new(ctx.id.clone(), tokens, limiter).map(Arc::new);
        let handshake_failures = telemetry::counter(
            "component_errors_total",
            &[("component_id", &ctx.id), ("reason", "tls_handshake")],
        );
        let mut connections = JoinSet::new();
        loop {
            let (stream, peer, admission) = tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                accepted = acceptor.accept() => accepted,
            };
            let stream = IdleTimeout::new(stream, idle_timeout, idle_closed.clone());
            let mut ingest = FrameIngest::new(ctx.id.clone(), &self.framing, self.decoding);
            let mut conn_ctx = SourceContext {
                id: ctx.id.clone(),
                out: ctx.out.clone(),
                dead_letter: ctx.dead_letter.clone(),
                shutdown: ctx.shutdown.clone(),
            };
            let id = ctx.id.clone();
            let tls = tls.clone();
            let handshake_failures = handshake_failures.clone();
            let auth = auth.clone();
            connections.spawn(async move {
                let _admission = admission;
                let (ingest, ctx, from, auth) =
                    (&mut ingest, &mut conn_ctx, Some(peer), auth.as_deref());
                let result = match tls {
                    None => read_stream(stream, ingest, ctx, from, auth).await,
                    Some(acceptor) => match crate::tls::accept(&acceptor, stream).await {
                        Ok(tls_stream) => read_stream(tls_stream, ingest, ctx, from, auth).await,
                        Err(error) => {
                            handshake_failures.inc(1);
                            tracing::debug!(component_id = %id, %peer, %error, "tls handshake refused");
                            Ok(())
                        }
                    },
                };
                if let Err(error) = result {
                    tracing::debug!(component_id = %id, %peer, %error, "connection ended");
                }
            });
            // Reap finished connections so the set does not grow with history.
            while connections.try_join_next().is_some() {}
        }
        drop(acceptor);
        while connections.join_next().await.is_some() {}
        Ok(())
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
