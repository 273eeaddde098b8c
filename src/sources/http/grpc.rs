//! OTLP/gRPC on the http source's `grpc_address`: `LogsService/Export`, served over HTTP/2 by
//! hyper with tonic's gRPC framing, under the same limits, TLS, tokens and acknowledgement
//! as `POST /v1/logs` (the records are taken by `export.rs`, as the HTTP path takes them).
//!
//! The answer comes only once the events are acknowledged, with a `partial_success` when
//! some were rejected. Refusals are gRPC statuses:
//!
//! | case | status |
//! |---|---|
//! | not an export request (bad protobuf, bad compression) | INVALID_ARGUMENT |
//! | a message over `max_body_bytes` (before or after gzip), bodies in flight over `max_body_bytes_in_flight`, an app over its rate limit | RESOURCE_EXHAUSTED with a `RetryInfo` |
//! | no token, or an unknown one, when tokens are configured | UNAUTHENTICATED |
//! | the pipeline did not take or acknowledge the events within `ack_timeout_secs`, or is shutting down | UNAVAILABLE |
//! | another method | UNIMPLEMENTED |
//!
//! Each answer is counted in `component_grpc_responses_total{code}`.
//!
//! Listener limits: the `Acceptor`'s connection caps; the TLS handshake within the tls
//! module's limit; a connection without a request in flight for `header_timeout_secs` is
//! closed (GOAWAY: clients reconnect when they next export), as HTTP/1 keep-alive
//! connections are; a body slower than `min_body_bytes_per_sec` after `body_grace_secs`
//! fails; at most [`MAX_STREAMS`] requests at once per connection.
//!
//! tonic's own server is not used: its protobuf codec answers a malformed message INTERNAL,
//! and its listener knows nothing of our connection caps. The message is decoded here by
//! the same function as the HTTP path's.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Status};

use super::{NotTaken, State};
use crate::listen::{Acceptor, MinRateBody};
use crate::sources::otlp;
use crate::sources::otlp_status::{self, BytesCodec, EXPORT_PATH};
use crate::telemetry;

/// Requests in flight at once on one connection (HTTP/2 streams).
const MAX_STREAMS: u32 = 64;

/// How long a client asked to slow down is told to wait when no better figure is known.
const BUSY_RETRY: Duration = Duration::from_secs(1);

type GrpcResponse = Response<tonic::body::Body>;

/// Serves `listener` until `shutdown`, then lets the requests in progress finish.
pub(super) async fn serve(
    listener: Arc<TcpListener>,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    let limits = state.config.limits();
    let mut acceptor = Acceptor::new(listener, limits.connections, &state.ctx.id);
    // gRPC clients insist on HTTP/2 being chosen by ALPN.
    let tls = tls.map(|acceptor| {
        let mut config = (**acceptor.config()).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    });
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer, admission) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = acceptor.accept() => accepted,
        };
        // An answer is several HTTP/2 frames (headers, data, trailers) written apart: with
        // Nagle's algorithm the last waits for the client's delayed ACK, 40 ms a request.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let (state, shutdown, tls) = (state.clone(), shutdown.clone(), tls.clone());
        connections.spawn(async move {
            let _admission = admission;
            match tls {
                None => serve_connection(stream, peer, state, shutdown).await,
                Some(acceptor) => match crate::tls::accept(&acceptor, stream).await {
                    Ok(stream) => serve_connection(stream, peer, state, shutdown).await,
                    Err(error) => tracing::debug!(%peer, %error, "tls handshake refused"),
                },
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(acceptor);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let idle_after = Duration::from_secs(state.config.header_timeout_secs);
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        service_fn(move |request| {
            let (state, busy) = (state.clone(), activity.begin());
            async move {
                let response = state.grpc(request, peer).await;
                drop(busy);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(64 * 1024);
    let served = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "grpc connection ended");
            }
            return;
        }
        _ = shutdown.cancelled() => {}
        _ = activity.idle_for(idle_after) => {}
    }
    // GOAWAY, then the requests in progress finish; a client that never lets go is cut off.
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(idle_after, served).await;
}

/// Requests in flight on a connection, and since when it has had none.
struct Activity(Mutex<(usize, Instant)>);

/// A request in flight, counted until dropped.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Activity(Mutex::new((0, Instant::now())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Instant)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.lock().0 += 1;
        Busy(self.clone())
    }

    /// Resolves once the connection has had no request in flight for `after`.
    async fn idle_for(&self, after: Duration) {
        loop {
            let wake = {
                let (active, since) = *self.lock();
                if active == 0 && since.elapsed() >= after {
                    return;
                }
                if active == 0 {
                    since + after
                } else {
                    Instant::now() + after
                }
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.0 -= 1;
        state.1 = Instant::now();
    }
}

impl State {
    /// One gRPC request: its answer, counted by status code.
    async fn grpc(&self, request: Request<Incoming>, peer: SocketAddr) -> GrpcResponse {
        let response = self.grpc_export(request, peer).await;
        let code = Status::from_header_map(response.headers()).map_or(Code::Ok, |s| s.code());
        telemetry::counter(
            "component_grpc_responses_total",
            &[
                ("component_id", &self.ctx.id),
                ("code", &format!("{code:?}")),
            ],
        )
        .inc(1);
        response
    }

    async fn grpc_export(&self, request: Request<Incoming>, peer: SocketAddr) -> GrpcResponse {
        if request.uri().path() != EXPORT_PATH {
            return Status::unimplemented(format!(
                "no such method `{}` (this source serves {EXPORT_PATH})",
                request.uri().path()
            ))
            .into_http();
        }
        let app = match self.tokens.authenticate(request.headers(), request.uri()) {
            Ok(app) => app,
            Err(refusal) => return Status::unauthenticated(refusal.message).into_http(),
        };
        // gRPC clients send no length up front: each request holds the most it may send.
        let max = self.config.max_body_bytes;
        let Some(_reservation) = self.body_budget.try_reserve(max) else {
            self.refused("body_budget");
            return busy(
                "too many request bodies in flight; retry shortly",
                BUSY_RETRY,
            )
            .into_http();
        };
        let request = request.map(|body| MinRateBody::new(body, self.config.min_body_rate()));
        let mut grpc = tonic::server::Grpc::new(BytesCodec)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max);
        let export = Export {
            state: self,
            app,
            peer,
        };
        let response = grpc.unary(export, request).await;
        // tonic's own refusals, said in our terms.
        match Status::from_header_map(response.headers()) {
            Some(status) if status.code() == Code::OutOfRange => {
                self.refused("message_too_large");
                resource_exhausted(&format!(
                    "message exceeds max_body_bytes ({max} bytes): {}",
                    status.message()
                ))
                .into_http()
            }
            Some(status)
                if status.code() == Code::ResourceExhausted
                    && status.message().starts_with("Error decompressing") =>
            {
                self.refused("message_too_large");
                resource_exhausted(&format!(
                    "message inflates past max_body_bytes ({max} bytes)"
                ))
                .into_http()
            }
            Some(status) if status.code() == Code::Internal => {
                // Bad compression, a bad message prefix: the client's doing.
                self.refused("malformed");
                Status::invalid_argument(status.message().to_string()).into_http()
            }
            Some(status) if status.code() == Code::Unknown => {
                // The body failed to arrive: too slow, or the stream was reset.
                Status::cancelled(status.message().to_string()).into_http()
            }
            _ => response,
        }
    }
}

/// The export of one request: decoded as the HTTP path decodes, taken by `take_otlp`.
struct Export<'a> {
    state: &'a State,
    app: Option<Arc<str>>,
    peer: SocketAddr,
}

impl<'a> tonic::server::UnaryService<Bytes> for Export<'a> {
    /// The answer's protobuf bytes.
    type Response = Bytes;
    type Future =
        Pin<Box<dyn Future<Output = Result<tonic::Response<Self::Response>, Status>> + Send + 'a>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let (state, app, peer) = (self.state, self.app.take(), self.peer);
        Box::pin(async move {
            let body = request.into_inner();
            let records = otlp::decode_protobuf(&body).map_err(|e| {
                state.refused("malformed");
                Status::invalid_argument(format!("malformed export request, nothing accepted: {e}"))
            })?;
            match state.take_otlp(records, app, peer, body.len()).await {
                Ok(partial_success) => {
                    let answer = ExportLogsServiceResponse { partial_success };
                    Ok(tonic::Response::new(answer.encode_to_vec().into()))
                }
                Err(NotTaken::RateLimited { app, wait_secs }) => Err(busy(
                    &format!("app `{app}` is over its rate limit; retry in {wait_secs} s"),
                    Duration::from_secs(wait_secs),
                )),
                Err(NotTaken::Unavailable(message)) => Err(Status::unavailable(message)),
            }
        })
    }
}

/// RESOURCE_EXHAUSTED without a retry hint: the same request will not fit later either.
fn resource_exhausted(message: &str) -> Status {
    Status::resource_exhausted(message.to_string())
}

/// RESOURCE_EXHAUSTED with a `RetryInfo` (OTLP exporters retry it only with one).
fn busy(message: &str, retry_after: Duration) -> Status {
    let details = otlp_status::retry_details(Code::ResourceExhausted as i32, message, retry_after);
    Status::with_details(
        Code::ResourceExhausted,
        message.to_string(),
        Bytes::from(details),
    )
}
