//! Listener limits shared by every TCP and HTTP listener (the API, the `http` and `tcp`
//! sources), so no client can take the router's descriptors, memory or attention:
//!
//! - [`Acceptor`] accepts under a total connection cap and a per-peer-IP cap. A connection
//!   over either is closed at once and counted in
//!   `component_connections_refused_total{reason}`; it is never queued, so a crowd of idle
//!   connections cannot lock out new senders. Accept errors (EMFILE when descriptors run
//!   out) are backed off, 10 ms doubling to 1 s, and logged at most once a second with
//!   the count of those not logged.
//! - [`MinRateBody`] bounds how slowly a request body may arrive (408 past it), and
//!   [`BodyBudget`] how many body bytes a listener holds at once (503 past it).
//! - [`IdleTimeout`] closes a stream that sends nothing for too long.
//! - [`raise_descriptor_limit`] lifts the soft `RLIMIT_NOFILE` to the hard one at start.
//!
//! Defaults and their reasons: docs/security.md, "Listener limits".

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use hyper::body::{Body, Frame, SizeHint};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use crate::field_error::{at_least_one, FieldError};
use crate::telemetry::{self, Counter, LogLimiter};

/// Default per-peer-IP connection cap of every listener.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default total connection cap of an HTTP listener.
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 1024;
/// Default time a client has to send a request's headers; also how long an idle
/// keep-alive connection is kept (hyper starts the clock when it waits for the next
/// request).
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default time a request body may take before [`DEFAULT_MIN_BODY_BYTES_PER_SEC`] applies.
pub const DEFAULT_BODY_GRACE_SECS: u64 = 10;
/// Default slowest accepted average body rate after the grace period.
pub const DEFAULT_MIN_BODY_BYTES_PER_SEC: u64 = 1024;
/// Default request-body bytes an HTTP source holds at once across its connections.
pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: usize = 100 * 1024 * 1024;

const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How many connections a listener holds, in total and per peer IP.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

impl ConnectionLimits {
    pub fn validate(&self) -> Result<(), FieldError> {
        at_least_one(&[
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
        ])?;
        Ok(())
    }
}

/// What an HTTP listener enforces on its connections (the body rate is applied by the
/// handler that reads the body, with [`MinRateBody`]).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub connections: ConnectionLimits,
    /// Time to send a request's headers, and the most an idle keep-alive connection waits
    /// for its next request.
    pub header_timeout: Duration,
}

impl HttpLimits {
    pub fn validate(&self) -> Result<(), FieldError> {
        self.connections.validate()?;
        if self.header_timeout.is_zero() {
            return Err(FieldError::new("header_timeout_secs", "must be at least 1"));
        }
        Ok(())
    }
}

/// Connections held, in total and per IP; shared with every [`Admission`].
#[derive(Default)]
struct Held {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A held connection's place under the caps, given back when dropped.
pub struct Admission {
    held: Arc<Mutex<Held>>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut held = lock(&self.held);
        held.total -= 1;
        if let Some(n) = held.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.per_ip.remove(&self.ip);
            }
        }
    }
}

fn lock(held: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    // The counts stay consistent under a panic elsewhere: each update is one step.
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Accepts connections on a listener under [`ConnectionLimits`].
pub struct Acceptor {
    /// Shared: a source replaced by a reload passes its listener on to its new instance
    /// (`sources::sockets`).
    listener: Arc<TcpListener>,
    limits: ConnectionLimits,
    held: Arc<Mutex<Held>>,
    component_id: String,
    refused_total: Counter,
    refused_per_ip: Counter,
    accepted: Counter,
    errors: LogLimiter,
    backoff: Duration,
}

impl Acceptor {
    /// `component_id` labels the metrics and logs (`api` for the API listener).
    pub fn new(
        listener: impl Into<Arc<TcpListener>>,
        limits: ConnectionLimits,
        component_id: &str,
    ) -> Self {
        let refused = |reason| {
            telemetry::counter(
                "component_connections_refused_total",
                &[("component_id", component_id), ("reason", reason)],
            )
        };
        Self {
            listener: listener.into(),
            limits,
            held: Arc::default(),
            component_id: component_id.to_string(),
            refused_total: refused("max_connections"),
            refused_per_ip: refused("max_connections_per_ip"),
            accepted: telemetry::counter(
                "component_connections_accepted_total",
                &[("component_id", component_id)],
            ),
            errors: LogLimiter::new(Duration::from_secs(1)),
            backoff: BACKOFF_FIRST,
        }
    }

    /// The next connection within the caps. Cancel-safe: a connection is never lost by
    /// dropping this future (tokio's `accept` is cancel-safe, and refusals are final).
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, Admission) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = BACKOFF_FIRST;
                    accepted
                }
                Err(error) => {
                    // EMFILE and the like: retrying at once would spin on the same error.
                    if let Some(suppressed) = self.errors.check() {
                        tracing::warn!(
                            component_id = %self.component_id,
                            %error,
                            suppressed,
                            retry_in_ms = self.backoff.as_millis() as u64,
                            "accept failed"
                        );
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            match self.admit(peer.ip()) {
                Ok(admission) => {
                    self.accepted.inc(1);
                    return (stream, peer, admission);
                }
                // Dropping the stream closes it: the client sees the refusal at once.
                Err(reason) => {
                    tracing::debug!(component_id = %self.component_id, %peer, reason, "connection refused");
                }
            }
        }
    }

    /// Counts a connection accepted elsewhere (by the instance this one replaces) under
    /// the caps, without refusing it: it is already open, and closing it would lose what
    /// its sender has in flight.
    pub fn adopt(&self, ip: IpAddr) -> Admission {
        let mut held = lock(&self.held);
        *held.per_ip.entry(ip).or_insert(0) += 1;
        held.total += 1;
        Admission {
            held: self.held.clone(),
            ip,
        }
    }

    fn admit(&self, ip: IpAddr) -> Result<Admission, &'static str> {
        let mut held = lock(&self.held);
        if held.total >= self.limits.max_connections {
            self.refused_total.inc(1);
            return Err("max_connections");
        }
        let of_ip = held.per_ip.entry(ip).or_insert(0);
        if *of_ip >= self.limits.max_connections_per_ip {
            self.refused_per_ip.inc(1);
            return Err("max_connections_per_ip");
        }
        *of_ip += 1;
        held.total += 1;
        Ok(Admission {
            held: self.held.clone(),
            ip,
        })
    }
}

/// The minimum rate a request body must keep: after `grace`, a body that has delivered
/// fewer than `bytes_per_sec` per second beyond it (on average, since the request began)
/// fails with [`BodyTooSlow`]. A client declaring a `Content-Length` larger than what it
/// sends therefore fails too instead of holding the connection forever.
#[derive(Debug, Clone, Copy)]
pub struct MinRate {
    pub grace: Duration,
    pub bytes_per_sec: u64,
}

impl MinRate {
    pub fn validate(&self) -> Result<(), FieldError> {
        at_least_one(&[("min_body_bytes_per_sec", self.bytes_per_sec)])?;
        Ok(())
    }
}

/// The error of a body slower than its [`MinRate`]; answer 408.
#[derive(Debug, thiserror::Error)]
#[error("request body arrived slower than {bytes_per_sec} bytes/s")]
pub struct BodyTooSlow {
    pub bytes_per_sec: u64,
}

/// A request body under a [`MinRate`].
pub struct MinRateBody<B> {
    inner: B,
    rate: MinRate,
    start: Instant,
    received: u64,
    /// Fires when `received` falls behind the rate, if nothing arrives before.
    deadline: Pin<Box<Sleep>>,
}

impl<B> MinRateBody<B> {
    pub fn new(inner: B, rate: MinRate) -> Self {
        let start = Instant::now();
        Self {
            inner,
            rate,
            start,
            received: 0,
            deadline: Box::pin(tokio::time::sleep_until(start + rate.grace)),
        }
    }

    /// When `received` bytes stop being enough.
    fn due(&self) -> Instant {
        let per_sec = self.rate.bytes_per_sec.max(1);
        let allowed = Duration::from_secs_f64(self.received as f64 / per_sec as f64);
        self.start + self.rate.grace + allowed
    }
}

impl<B> Body for MinRateBody<B>
where
    B: Body + Unpin,
    B::Data: Buf,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.remaining() as u64;
                    let due = this.due();
                    this.deadline.as_mut().reset(due);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow {
                    bytes_per_sec: this.rate.bytes_per_sec,
                })))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Request-body bytes a listener holds at once, across all its connections. A request
/// reserves its declared `Content-Length` (the most it may send, without one) before its
/// body is read, and gives it back when answered; over the budget it is answered 503 with
/// `Retry-After` instead of growing memory.
#[derive(Clone)]
pub struct BodyBudget(Arc<tokio::sync::Semaphore>);

/// Bytes reserved from a [`BodyBudget`], returned when dropped.
pub struct BodyReservation {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let bytes = bytes.min(tokio::sync::Semaphore::MAX_PERMITS);
        Self(Arc::new(tokio::sync::Semaphore::new(bytes)))
    }

    /// `bytes` reserved, or `None` when the budget has not that much left.
    pub fn try_reserve(&self, bytes: usize) -> Option<BodyReservation> {
        if bytes == 0 {
            return Some(BodyReservation { _permit: None });
        }
        let bytes = u32::try_from(bytes).ok()?;
        let permit = self.0.clone().try_acquire_many_owned(bytes).ok()?;
        Some(BodyReservation {
            _permit: Some(permit),
        })
    }
}

/// A stream closed (read fails with `TimedOut`) once one read has waited `idle` for bytes
/// (never with `idle` `None`).
/// Only time spent waiting counts: while the reader is held back (a full pipeline), the
/// peer is not idle, it is being made to wait.
pub struct IdleTimeout<S> {
    inner: S,
    idle: Option<Duration>,
    /// Armed when a read starts waiting; `None` between reads.
    deadline: Option<Pin<Box<Sleep>>>,
    closed: Counter,
}

impl<S> IdleTimeout<S> {
    /// `closed` counts the connections this closes.
    pub fn new(inner: S, idle: Option<Duration>, closed: Counter) -> Self {
        Self {
            inner,
            idle,
            deadline: None,
            closed,
        }
    }
}

impl<S> IdleTimeout<S> {
    /// The stream, without its timeout (to be wrapped again under other settings).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let Some(idle) = this.idle else {
                    return Poll::Pending;
                };
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.deadline = None;
                        this.closed.inc(1);
                        Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("nothing received for {} s", idle.as_secs()),
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises the soft limit on open descriptors to the hard limit, so the caps above, not
/// the default 1024, decide how many clients the router holds. Returns the limit now in
/// force (`None`: unlimited).
pub fn raise_descriptor_limit() -> std::io::Result<Option<u64>> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return Ok(limit.current);
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised)?;
    Ok(limit.maximum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_total_and_per_ip_and_frees_on_drop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let limits = ConnectionLimits {
            max_connections: 3,
            max_connections_per_ip: 2,
        };
        let acceptor = Acceptor::new(listener, limits, "listen_test_caps");
        let a = "127.0.0.1".parse().unwrap();
        let b = "127.0.0.2".parse().unwrap();
        let first = acceptor.admit(a).unwrap();
        let _second = acceptor.admit(a).unwrap();
        assert_eq!(acceptor.admit(a).err(), Some("max_connections_per_ip"));
        let _third = acceptor.admit(b).unwrap();
        assert_eq!(acceptor.admit(b).err(), Some("max_connections"));
        drop(first);
        assert!(
            acceptor.admit(a).is_ok(),
            "a dropped admission frees its slot"
        );
        assert_eq!(acceptor.refused_per_ip.get(), 1);
        assert_eq!(acceptor.refused_total.get(), 1);
    }

    /// A body fed by a channel, as a slow client would send it.
    struct Fed(tokio::sync::mpsc::Receiver<bytes::Bytes>);

    impl Body for Fed {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<bytes::Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|d| d.map(|d| Ok(Frame::data(d))))
        }
    }

    #[tokio::test]
    async fn min_rate_body_fails_a_stalled_body() {
        use http_body_util::BodyExt;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let rate = MinRate {
            grace: Duration::from_millis(300),
            bytes_per_sec: 1000,
        };
        let reader = tokio::spawn(async move { MinRateBody::new(Fed(rx), rate).collect().await });
        tx.send(bytes::Bytes::from(vec![b'x'; 100])).await.unwrap();
        // 100 bytes buy 100 ms past the grace: the body fails at 400 ms, not before.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!reader.is_finished());
        let Err(error) = reader.await.unwrap() else {
            panic!("a stalled body fails");
        };
        assert!(error.is::<BodyTooSlow>(), "{error}");
        drop(tx);
    }

    #[tokio::test]
    async fn min_rate_body_passes_a_steady_body() {
        use http_body_util::BodyExt;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let rate = MinRate {
            grace: Duration::from_millis(100),
            bytes_per_sec: 1000,
        };
        let reader = tokio::spawn(async move { MinRateBody::new(Fed(rx), rate).collect().await });
        for _ in 0..10 {
            tx.send(bytes::Bytes::from(vec![b'x'; 150])).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(tx);
        let body = reader.await.unwrap().expect("a body above the rate passes");
        assert_eq!(body.to_bytes().len(), 1500);
    }

    #[tokio::test]
    async fn idle_timeout_counts_only_time_spent_waiting() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut peer, stream) = tokio::io::duplex(64);
        let closed = telemetry::counter(
            "component_connections_closed_total",
            &[
                ("component_id", "listen_test_idle"),
                ("reason", "idle_timeout"),
            ],
        );
        let idle = Duration::from_millis(200);
        let mut stream = IdleTimeout::new(stream, Some(idle), closed.clone());
        // Not reading for longer than `idle` (a reader held back) is not idleness.
        peer.write_all(b"hi").await.unwrap();
        tokio::time::sleep(idle * 2).await;
        let mut buf = [0u8; 8];
        assert_eq!(stream.read(&mut buf).await.unwrap(), 2);
        // A read that waits `idle` for nothing fails, and is counted.
        let started = std::time::Instant::now();
        let error = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= idle);
        assert_eq!(closed.get(), 1);
    }
}
