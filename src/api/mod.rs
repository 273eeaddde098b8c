//! The router's HTTP API listener (top-level `[api] address = "..."`): `GET /health` and
//! `GET /metrics` (Prometheus text format). Later issues add query, tail and the web page
//! to the same listener.
//!
//! [`handle`] maps a request to a response without a socket, so tests can call the API
//! directly; [`serve`] runs any such handler on a listener (the `http` source reuses it).
//!
//! Components add their own endpoints (the store's query and tail, the alert list) as
//! [`Endpoint`]s collected by the topology at start; the built-in routes answer first.
//!
//! Every request but `/health` passes the [`Guard`] first (Host, CORS, bearer token and
//! role; docs/security.md), which hands the endpoint the token's [`Scope`] of apps.

pub mod admin;
mod auth;
mod guard;
mod limits;
mod metrics;
mod peers;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, ORIGIN};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use auth::{Access, ApiTokens, AuthConfig, Scope};
pub use guard::{preflight, with_cors, Guard, Refusal};
pub use limits::{
    query_limits, tail_permit, QueryLimits, TailAdmission, TailPermit, TailSlots,
    DEFAULT_MAX_SCANNED_EVENTS, DEFAULT_MAX_TAIL_CLIENTS, DEFAULT_MAX_TAIL_CLIENTS_PER_TOKEN,
    DEFAULT_QUERY_TIMEOUT_MS,
};
pub use metrics::render_prometheus;
pub use peers::PeerSource;
use peers::{default_peer_timeout_ms, default_peers_refresh_secs, peer_list};

use crate::field_error::{at_least_one, FieldError};
use crate::listen::{Acceptor, Admission, ConnectionLimits, HttpLimits};
use crate::tls::{ClientTlsConfig, TlsConfig};

/// `[api]` in a pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the API listener, e.g. `127.0.0.1:8686`.
    pub address: String,
    /// Bearer tokens with roles and app scopes (`auth.rs`); required when the listener
    /// is reachable from other machines.
    pub auth: Option<AuthConfig>,
    /// Serve a non-loopback address without auth: every stored log to anyone who can
    /// reach the port. Only an explicit `true` allows that.
    #[serde(default)]
    pub insecure_no_auth: bool,
    /// `Host` names (port ignored) the API answers; `["*"]` for any. Default without
    /// `auth`: localhost, 127.0.0.1, ::1 and the listener's own IP; with `auth`: any (a
    /// rebinding page has no token to send).
    pub allowed_hosts: Option<Vec<String>>,
    /// Origins (`https://logs.example.com`) allowed to call the API from their pages; no
    /// CORS header is sent to any other.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Connections held at once; more are closed at once and counted
    /// (`component_connections_refused_total{reason}`).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections held at once from one IP address.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept.
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// Serve HTTPS: `tls = { crt_file, key_file, ca_file }` as on the sources (`ca_file`
    /// makes clients present a certificate signed by it).
    pub tls: Option<TlsConfig>,
    /// Live tails open at once on this listener; more get 429.
    #[serde(default = "default_max_tail_clients")]
    pub max_tail_clients: usize,
    /// Live tails open at once with one token; more get 429.
    #[serde(default = "default_max_tail_clients_per_token")]
    pub max_tail_clients_per_token: usize,
    /// Time one search, histogram or top-values request may take; past it, a 503 that
    /// says so.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
    /// Matching events one such request may examine; past it, a 503 that says so.
    #[serde(default = "default_max_scanned_events")]
    pub max_scanned_events: u64,
    /// The routers a query, chart, top-values list or tail is answered from
    /// (docs/federation.md): every router whose store it should see, this one included if
    /// it has one, as `http://HOST:PORT`. A list, or one string of comma-separated URLs (so
    /// that an environment variable can hold it).
    #[serde(default, deserialize_with = "peer_list")]
    pub peers: Vec<String>,
    /// Instead of `peers`: `[http[s]://]NAME:PORT`, one peer per address NAME resolves to
    /// (a Kubernetes headless Service has one per pod), resolved again every
    /// `peers_refresh_secs`. Empty: none.
    #[serde(default)]
    pub peers_dns: Option<String>,
    /// Time one peer has to answer; past it the answer is partial and says so.
    #[serde(default = "default_peer_timeout_ms")]
    pub peer_timeout_ms: u64,
    /// How often `peers_dns` is resolved again.
    #[serde(default = "default_peers_refresh_secs")]
    pub peers_refresh_secs: u64,
    /// For `https://` peers: CAs trusted besides the system's (peers on a private CA), and
    /// the certificate presented to peers whose API requires one (`tls.ca_file`).
    #[serde(default)]
    pub peers_tls: ClientTlsConfig,
}

fn default_max_tail_clients() -> usize {
    DEFAULT_MAX_TAIL_CLIENTS
}

fn default_max_tail_clients_per_token() -> usize {
    DEFAULT_MAX_TAIL_CLIENTS_PER_TOKEN
}

fn default_query_timeout_ms() -> u64 {
    DEFAULT_QUERY_TIMEOUT_MS
}

fn default_max_scanned_events() -> u64 {
    DEFAULT_MAX_SCANNED_EVENTS
}

pub fn default_max_connections() -> usize {
    crate::listen::DEFAULT_HTTP_MAX_CONNECTIONS
}

pub fn default_max_connections_per_ip() -> usize {
    crate::listen::DEFAULT_MAX_CONNECTIONS_PER_IP
}

pub fn default_header_timeout_secs() -> u64 {
    crate::listen::DEFAULT_HEADER_TIMEOUT_SECS
}

impl ApiConfig {
    /// The listener's connection caps and header timeout.
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            connections: ConnectionLimits {
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
            },
            header_timeout: Duration::from_secs(self.header_timeout_secs),
        }
    }

    /// The per-request bounds [`handle`] hands the endpoints.
    pub fn request_caps(&self) -> RequestCaps {
        RequestCaps {
            tails: TailSlots::new(self.max_tail_clients, self.max_tail_clients_per_token),
            query: QueryLimits {
                timeout: Duration::from_millis(self.query_timeout_ms),
                max_scanned_events: self.max_scanned_events,
            },
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        self.limits().validate()?;
        self.validate_peers()?;
        self.peers_tls.validate().map_err(|e| {
            // Its errors name `tls.*`, which here is the listener's.
            FieldError::new(format!("peers_{}", e.field), e.message)
        })?;
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        at_least_one(&[
            ("max_tail_clients", self.max_tail_clients as u64),
            (
                "max_tail_clients_per_token",
                self.max_tail_clients_per_token as u64,
            ),
            ("query_timeout_ms", self.query_timeout_ms),
            ("max_scanned_events", self.max_scanned_events),
        ])?;
        let address = self.address.parse::<SocketAddr>().map_err(|_| {
            FieldError::new(
                "address",
                format!(
                    "`{}` is not an ip:port socket address (e.g. 127.0.0.1:8686)",
                    self.address
                ),
            )
        })?;
        let authenticated = self.auth.as_ref().is_some_and(AuthConfig::is_enabled);
        if authenticated && self.insecure_no_auth {
            return Err(FieldError::new(
                "insecure_no_auth",
                "contradicts `auth`: remove one of them",
            ));
        }
        if !authenticated && !self.insecure_no_auth && !address.ip().is_loopback() {
            return Err(FieldError::new(
                "auth",
                format!(
                    "the api listens on {address}, which other machines can reach, without auth: \
                     anyone reaching it could read every stored log; set \
                     auth = {{ tokens_file = \"PATH\" }} (docs/security.md), or \
                     insecure_no_auth = true to accept that"
                ),
            ));
        }
        if let Some(hosts) = &self.allowed_hosts {
            if hosts.is_empty() || hosts.iter().any(|h| h.trim().is_empty()) {
                return Err(FieldError::new(
                    "allowed_hosts",
                    "list host names (e.g. [\"logs.example.com\"]), or [\"*\"] for any",
                ));
            }
        }
        for (i, origin) in self.cors_origins.iter().enumerate() {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            if !rest.is_some_and(|r| !r.is_empty() && !r.contains('/')) {
                return Err(FieldError::new(
                    format!("cors_origins[{i}]"),
                    format!("`{origin}` is not an origin (scheme://host[:port], no path)"),
                ));
            }
        }
        Ok(())
    }
}

/// A response body: whole (most answers) or streamed (server-sent events).
pub type Body = BoxBody<Bytes, Infallible>;
pub type HttpResponse = Response<Body>;

/// A response with a body and content type.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()).boxed());
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

/// The future an [`Endpoint`] answers with.
pub type ResponseFuture = Pin<Box<dyn Future<Output = HttpResponse> + Send>>;

/// An endpoint a component adds to the API listener.
///
/// [`serve`]'s graceful shutdown waits for every response in progress, so a response that
/// streams until the client leaves (live tail) must also end on the topology's stop token
/// for streams, which fires when shutdown starts.
///
/// A request reaches [`Endpoint::handle`] only once its token covers what
/// [`Endpoint::access`] asks for, with the token's [`Scope`] in its extensions: an endpoint
/// showing events shows only those the scope allows.
pub trait Endpoint: Send + Sync + 'static {
    /// Whether this endpoint answers `path` (any method: it says 405 itself).
    fn matches(&self, path: &str) -> bool;
    /// What a token needs for `path`; reading by default, so a new route is never open by
    /// oversight.
    fn access(&self, _path: &str) -> Access {
        Access::Read
    }
    fn handle(&self, request: Request<Incoming>) -> ResponseFuture;
}

/// The endpoints components added, in pipeline order; the first match answers.
#[derive(Clone, Default)]
pub struct Endpoints(Arc<Vec<Arc<dyn Endpoint>>>);

impl Endpoints {
    pub fn new(endpoints: Vec<Arc<dyn Endpoint>>) -> Self {
        Self(Arc::new(endpoints))
    }
}

/// The request's scope, as the API left it; an endpoint called some other way sees none
/// (`Scope::Apps` of nothing), so a missing guard fails closed.
pub fn scope_of<B>(request: &Request<B>) -> Scope {
    request
        .extensions()
        .get::<Scope>()
        .cloned()
        .unwrap_or_else(|| Scope::Apps(Vec::new().into()))
}

/// What [`handle`] puts in each request it passes on: the live-tail slots (shared by every
/// request) and the query limits.
#[derive(Clone)]
pub struct RequestCaps {
    pub tails: Arc<TailSlots>,
    pub query: QueryLimits,
}

impl Default for RequestCaps {
    fn default() -> Self {
        RequestCaps {
            tails: TailSlots::new(DEFAULT_MAX_TAIL_CLIENTS, DEFAULT_MAX_TAIL_CLIENTS_PER_TOKEN),
            query: QueryLimits::default(),
        }
    }
}

/// The API's routes, behind the guard: built-in first, then the components' endpoints.
pub async fn handle(
    mut request: Request<Incoming>,
    endpoints: &Endpoints,
    guard: &Guard,
    caps: &RequestCaps,
) -> HttpResponse {
    let path = request.uri().path().to_string();
    // Probes (Kubernetes, load balancers) reach /health by any name, with no token: it
    // tells nothing but "up".
    if path == "/health" {
        if let Some(response) = route(request.method(), &path) {
            return response;
        }
    }
    if let Err(refusal) = guard.check_host(request.headers()) {
        return refusal.into_response();
    }
    let origin = guard.cors_origin(request.headers());
    if request.method() == Method::OPTIONS && request.headers().contains_key(ORIGIN) {
        return guard.preflight(origin);
    }
    let endpoint = endpoints.0.iter().find(|e| e.matches(&path));
    let access = match path.as_str() {
        "/metrics" => Access::Metrics,
        _ => endpoint.map_or(Access::Open, |e| e.access(&path)),
    };
    let (scope, token) = match guard.authorize(request.headers(), access) {
        Ok(granted) => granted,
        Err(refusal) => return with_cors(refusal.into_response(), origin),
    };
    let extensions = request.extensions_mut();
    extensions.insert(scope);
    extensions.insert(TailAdmission::new(caps.tails.clone(), token));
    extensions.insert(caps.query);
    let response = match (route(request.method(), &path), endpoint) {
        (Some(response), _) => response,
        (None, Some(endpoint)) => endpoint.handle(request).await,
        (None, None) => not_found(&path),
    };
    with_cors(response, origin)
}

/// What the embedded store serves; a router without a store sink says so instead of a bare
/// "no such endpoint", and shows a person at `/` a page rather than JSON.
const STORE_ROUTES: &[&str] = &["/v1/query", "/v1/histogram", "/v1/top", "/v1/tail"];

const NO_STORE_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>Sluice</title></head>\
<body style=\"font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em\">\
<h1>Sluice</h1><p>This router has no store sink, so there is nothing to search, chart or \
tail here.</p><p>To keep events searchable, add one to the pipeline:</p>\
<pre>[sinks.store]\ntype = \"store\"\ninputs = [\"...\"]\npath = \"data/store\"</pre>\
<p>This listener still answers <a href=\"/metrics\">/metrics</a> (Prometheus), \
<a href=\"/health\">/health</a> and <a href=\"/v1/alerts\">/v1/alerts</a>.</p></body></html>\n";

fn not_found(path: &str) -> HttpResponse {
    if path == "/" || path == "/index.html" {
        return respond(
            StatusCode::NOT_FOUND,
            "text/html; charset=utf-8",
            NO_STORE_PAGE,
        );
    }
    if STORE_ROUTES.contains(&path) {
        return error(
            StatusCode::NOT_FOUND,
            "this router has no store sink: add one (type = \"store\") to its pipeline to search, chart and tail",
        );
    }
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint (try /health or /metrics)",
    )
}

fn route(method: &Method, path: &str) -> Option<HttpResponse> {
    Some(match (method, path) {
        (&Method::GET, "/health") => {
            respond(StatusCode::OK, "application/json", r#"{"status":"ok"}"#)
        }
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render_prometheus(),
        ),
        (_, "/health" | "/metrics") => error(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        _ => return None,
    })
}

/// Serves `handler` on `listener` (over TLS with `tls`) under `limits` until `shutdown`;
/// then stops accepting, lets requests in progress finish (their answers may depend on
/// acknowledgements), and returns. `component_id` labels the listener's metrics.
pub async fn serve<H, F>(
    listener: impl Into<Arc<TcpListener>>,
    limits: HttpLimits,
    component_id: &str,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let mut acceptor = Acceptor::new(listener, limits.connections, component_id);
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer, admission) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = acceptor.accept() => accepted,
        };
        // Answers are written whole: without this, Nagle's algorithm holds an answer's last
        // partial segment until the client acknowledges the earlier ones, which a client
        // on a kept-alive connection (a federating router) delays by up to 40 ms.
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let requested = CancellationToken::new();
            let first = requested.clone();
            let service = service_fn(move |request| {
                first.cancel();
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(request, peer).await) }
            });
            let connection = Connection {
                peer,
                header_timeout: limits.header_timeout,
                requested,
                _admission: admission,
            };
            match tls {
                None => serve_connection(stream, service, connection, shutdown).await,
                Some(acceptor) => match crate::tls::accept(&acceptor, stream).await {
                    Ok(tls_stream) => {
                        serve_connection(tls_stream, service, connection, shutdown).await
                    }
                    Err(error) => tracing::debug!(%peer, %error, "tls handshake refused"),
                },
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(acceptor);
    while connections.join_next().await.is_some() {}
}

/// One accepted connection: its peer, its header timeout, whether a request came, and its
/// place under the caps (given back when the connection ends).
struct Connection {
    peer: SocketAddr,
    header_timeout: Duration,
    /// Fires when the first request's headers have been read.
    requested: CancellationToken,
    _admission: Admission,
}

/// How long a connection with no request yet may still send its first one once the
/// listener stops (at most its header timeout).
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

async fn serve_connection<IO, S>(
    io: IO,
    service: S,
    connection: Connection,
    shutdown: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Body> + Send,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let peer = connection.peer;
    // hyper starts the header timeout when it waits for a request's first byte, so it
    // also closes a keep-alive connection idle that long.
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(connection.header_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "http connection ended");
            }
        }
        _ = shutdown.cancelled() => {
            // hyper closes a connection that has not sent a request yet at once; one
            // accepted just before the stop (a reload passing the listener on) usually has
            // its request on the way, and its client would see the connection closed
            // unanswered. So it gets a short while to send it.
            let grace = FIRST_REQUEST_GRACE.min(connection.header_timeout);
            let first = tokio::time::timeout(grace, connection.requested.cancelled());
            tokio::select! {
                result = served.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "http connection ended");
                    }
                    return;
                }
                _ = first => {}
            }
            served.as_mut().graceful_shutdown();
            let _ = served.await;
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
        ];
        for (method, path, status) in cases {
            let response = route(&method, path).expect("built-in route");
            assert_eq!(response.status(), status, "{method} {path}");
        }
        assert!(route(&Method::GET, "/nope").is_none());
    }

    #[test]
    fn api_config_checks() {
        let config = |toml: &str| -> ApiConfig { toml::from_str(toml).expect("parses") };
        let cases = [
            ("address = \"127.0.0.1:8686\"", Ok(())),
            ("address = \"[::1]:8686\"", Ok(())),
            ("address = \"0.0.0.0:8686\"", Err("auth")),
            ("address = \"10.0.0.5:8686\"", Err("auth")),
            (
                "address = \"0.0.0.0:8686\"\nauth = { tokens_file = \"\" }",
                Err("auth"),
            ),
            (
                "address = \"0.0.0.0:8686\"\nauth = { tokens_file = \"/t\" }",
                Ok(()),
            ),
            ("address = \"0.0.0.0:8686\"\ninsecure_no_auth = true", Ok(())),
            (
                "address = \"0.0.0.0:8686\"\ninsecure_no_auth = true\nauth = { tokens_file = \"/t\" }",
                Err("insecure_no_auth"),
            ),
            ("address = \"127.0.0.1:1\"\nallowed_hosts = []", Err("allowed_hosts")),
            (
                "address = \"127.0.0.1:1\"\ncors_origins = [\"https://a.example/\"]",
                Err("cors_origins[0]"),
            ),
            (
                "address = \"127.0.0.1:1\"\ncors_origins = [\"a.example\"]",
                Err("cors_origins[0]"),
            ),
            (
                "address = \"127.0.0.1:1\"\ncors_origins = [\"https://a.example:8443\"]",
                Ok(()),
            ),
            ("address = \"127.0.0.1:1\"\nmax_connections = 0", Err("max_connections")),
            (
                "address = \"127.0.0.1:1\"\nmax_connections_per_ip = 0",
                Err("max_connections_per_ip"),
            ),
            (
                "address = \"127.0.0.1:1\"\nheader_timeout_secs = 0",
                Err("header_timeout_secs"),
            ),
            (
                "address = \"127.0.0.1:1\"\ntls = { crt_file = \"/c\", key_file = \"/k\" }",
                Ok(()),
            ),
            (
                "address = \"127.0.0.1:1\"\ntls = { crt_file = \"\", key_file = \"/k\" }",
                Err("tls.crt_file"),
            ),
            ("address = \"127.0.0.1:1\"\nmax_tail_clients = 0", Err("max_tail_clients")),
            (
                "address = \"127.0.0.1:1\"\nmax_tail_clients_per_token = 0",
                Err("max_tail_clients_per_token"),
            ),
            ("address = \"127.0.0.1:1\"\nquery_timeout_ms = 0", Err("query_timeout_ms")),
            ("address = \"127.0.0.1:1\"\nmax_scanned_events = 0", Err("max_scanned_events")),
            (
                "address = \"127.0.0.1:1\"\npeers = [\"http://a:8686\", \"https://b:8686/\"]",
                Ok(()),
            ),
            ("address = \"127.0.0.1:1\"\npeers = \"\"", Ok(())),
            ("address = \"127.0.0.1:1\"\npeers = [\"a:8686\"]", Err("peers[0]")),
            (
                "address = \"127.0.0.1:1\"\npeers = \"http://a:1,http://b:1/x\"",
                Err("peers[1]"),
            ),
            ("address = \"127.0.0.1:1\"\npeers_dns = \"aggs.ns.svc:8686\"", Ok(())),
            ("address = \"127.0.0.1:1\"\npeers_dns = \"\"", Ok(())),
            ("address = \"127.0.0.1:1\"\npeers_dns = \"aggs\"", Err("peers_dns")),
            ("address = \"127.0.0.1:1\"\npeers_dns = \"ftp://aggs:1\"", Err("peers_dns")),
            (
                "address = \"127.0.0.1:1\"\npeers_dns = \"a:1\"\npeers = [\"http://a:1\"]",
                Err("peers_dns"),
            ),
            ("address = \"127.0.0.1:1\"\npeer_timeout_ms = 0", Err("peer_timeout_ms")),
        ];
        for (toml, expected) in cases {
            let got = config(toml).validate().map_err(|e| e.field);
            assert_eq!(got, expected.map_err(str::to_string), "{toml}");
        }
    }
}
