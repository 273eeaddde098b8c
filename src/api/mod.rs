//! The router's HTTP API listener (top-level `[api] address = "..."`): `GET /health` and
//! `GET /metrics` (Prometheus text format). Later issues add query, tail and the web page
//! to the same listener.
//!
//! [`handle`] maps a request to a response without a socket, so tests can call the API
//! directly; [`serve`] runs any such handler on a listener (the `http` source reuses it).

mod metrics;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use metrics::render_prometheus;

use crate::config::FieldError;

/// `[api]` in a pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the API listener, e.g. `127.0.0.1:8686`.
    pub address: String,
}

impl ApiConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        self.address.parse::<SocketAddr>().map(|_| ()).map_err(|_| {
            FieldError::new(
                "address",
                format!(
                    "`{}` is not an ip:port socket address (e.g. 127.0.0.1:8686)",
                    self.address
                ),
            )
        })
    }
}

pub type HttpResponse = Response<Full<Bytes>>;

/// A response with a body and content type.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON error body `{"error": "..."}`: every 4xx/5xx says why.
pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    let body = serde_json::json!({ "error": message }).to_string();
    respond(status, "application/json", body)
}

/// The API's routes.
pub async fn handle(request: Request<Incoming>) -> HttpResponse {
    route(request.method(), request.uri().path())
}

fn route(method: &Method, path: &str) -> HttpResponse {
    match (method, path) {
        (&Method::GET, "/health") => {
            respond(StatusCode::OK, "application/json", r#"{"status":"ok"}"#)
        }
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render_prometheus(),
        ),
        (_, "/health" | "/metrics") => error(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        _ => error(
            StatusCode::NOT_FOUND,
            "no such endpoint (try /health or /metrics)",
        ),
    }
}

/// Serves `handler` on `listener` (over TLS with `tls`) until `shutdown`; then stops
/// accepting, lets requests in progress finish (their answers may depend on
/// acknowledgements), and returns.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(request, peer).await) }
            });
            match tls {
                None => serve_connection(stream, service, peer, shutdown).await,
                Some(acceptor) => match crate::tls::accept(&acceptor, stream).await {
                    Ok(tls_stream) => serve_connection(tls_stream, service, peer, shutdown).await,
                    Err(error) => tracing::debug!(%peer, %error, "tls handshake refused"),
                },
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<IO, S>(io: IO, service: S, peer: SocketAddr, shutdown: CancellationToken)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Full<Bytes>> + Send,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "http connection ended");
            }
        }
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_table() {
        let cases = [
            (Method::GET, "/health", StatusCode::OK),
            (Method::GET, "/metrics", StatusCode::OK),
            (Method::POST, "/metrics", StatusCode::METHOD_NOT_ALLOWED),
            (Method::GET, "/nope", StatusCode::NOT_FOUND),
        ];
        for (method, path, status) in cases {
            assert_eq!(route(&method, path).status(), status, "{method} {path}");
        }
    }
}
