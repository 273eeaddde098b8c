//! The `http` source: `POST /v1/logs` batch ingest, answered only once the events are
//! acknowledged by every sink (delivered, durably buffered or dead-lettered).
//!
//! Bodies, by `Content-Type`:
//! - `application/x-ndjson` or `application/json`: one JSON object per line;
//! - `application/octet-stream` or no content type (also `text/plain` and curl's default
//!   `application/x-www-form-urlencoded`, when `content_types` lists them): lines,
//!   decoded with the source's `decoding`;
//! - `application/logplex-1`: a Heroku drain body (octet-counted syslog without structured
//!   data). `Logplex-Msg-Count` is checked, and a `Logplex-Frame-Id` already accepted is
//!   answered 200 without ingesting it again (Heroku retries frames it did not see
//!   acknowledged).
//!
//! Browser-safe by default: a web page can post `text/plain`,
//! `application/x-www-form-urlencoded` and `multipart/form-data` to any address without
//! the browser asking first (a CORS "simple request"), so those types are refused (415)
//! unless `content_types` names them; and a request carrying an `Origin` (every
//! cross-origin post a browser makes) is refused (403) unless `allowed_origins` lists it.
//! Both refusals are counted in `component_refused_requests_total{reason}`.
//!
//! `Content-Encoding` gzip and zstd are accepted. Every refusal says why: 400 for a malformed body
//! (nothing of it is ingested, so the client can fix and resend the whole batch), 413 over
//! `max_body_bytes` (compressed or not), 415 for an unsupported type or encoding, 503 with
//! `Retry-After` when backpressure or acknowledgement outlasts `ack_timeout_secs`.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN, RETRY_AFTER,
};
use hyper::{Method, Request, StatusCode};

mod body;
mod config;
mod export;
mod grpc;

use config::READABLE_CONTENT_TYPES;
pub use config::{HttpConfig, DEFAULT_CONTENT_TYPES};

use body::{
    body_kind, decompress, essence, is_otlp_json, BodyKind, Compression, DecompressError,
    OtlpEncoding,
};

use super::auth::{RateLimiter, Tokens};
use super::sockets::{Bound, Sockets};
use super::{BoundListener, Decoded, FrameIngest, SourceContext, SourceError};
use crate::ack::{AckReceiver, AckStatus, AckToken};
use crate::api::{error, preflight, respond, HttpResponse, Refusal};
use crate::codec::{DecodingConfig, FrameLimits, FramingConfig, OversizePolicy};
use crate::listen::{BodyBudget, BodyReservation, BodyTooSlow, MinRateBody};
use crate::telemetry;

/// Frame ids remembered for Heroku's retries.
const FRAME_IDS_REMEMBERED: usize = 10_000;

impl HttpConfig {
    /// Does the start's IO once: reads the tokens and TLS files and binds the listeners
    /// (or takes those the instance this one replaces holds at the same addresses; its
    /// connections finish their requests, and clients' next ones come on new connections).
    pub async fn bind(
        &self,
        sockets: &Sockets,
        source: &str,
    ) -> Result<HttpListeners, SourceError> {
        let BoundListener {
            listener,
            bound,
            tls,
            tokens,
            ..
        } = BoundListener::bind(
            sockets,
            source,
            &self.address,
            &self.tokens,
            self.tokens_file.as_ref(),
            self.tls.as_ref(),
        )
        .await?;
        let mut sockets_bound = vec![bound];
        let grpc = match &self.grpc_address {
            None => None,
            Some(address) => {
                let (listener, _, bound) =
                    super::sockets::stream(sockets, source, "grpc_address", address).await?;
                if let Ok(local) = listener.local_addr() {
                    tracing::info!(address = %local, "serving OTLP/gRPC");
                }
                sockets_bound.push(bound);
                Some(listener)
            }
        };
        Ok(HttpListeners {
            listener,
            grpc,
            tls,
            tokens,
            bound: sockets_bound,
        })
    }

    pub async fn run(self, bound: HttpListeners, ctx: SourceContext) -> Result<(), SourceError> {
        let HttpListeners {
            listener,
            grpc,
            tls,
            tokens,
            ..
        } = bound;
        let shutdown = ctx.shutdown.clone();
        let limits = self.limits();
        let id = ctx.id.clone();
        let state = Arc::new(State {
            body_budget: BodyBudget::new(self.max_body_bytes_in_flight),
            frame_ids: Mutex::new(FrameIds::default()),
            tokens,
            limiter: self
                .rate_limit
                .as_ref()
                .map(|config| RateLimiter::new(config, &ctx.id)),
            anonymous: Arc::from("_anonymous"),
            ack_latency: telemetry::histogram(
                "acknowledgement_latency_seconds",
                &[("component_id", &ctx.id)],
            ),
            config: self,
            ctx,
        });
        let grpc = grpc
            .map(|listener| grpc::serve(listener, tls.clone(), state.clone(), shutdown.clone()));
        let http = crate::api::serve(
            listener,
            limits,
            &id,
            tls,
            shutdown,
            move |request, peer| {
                let state = state.clone();
                async move { state.handle(request, peer).await }
            },
        );
        match grpc {
            None => http.await,
            Some(grpc) => {
                tokio::join!(http, grpc);
            }
        }
        Ok(())
    }
}

/// The http source's listeners after the start's IO: HTTP, and OTLP/gRPC if configured,
/// sharing one TLS acceptor and one set of tokens.
pub struct HttpListeners {
    pub listener: Arc<tokio::net::TcpListener>,
    grpc: Option<Arc<tokio::net::TcpListener>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tokens: Tokens,
    /// The sockets as the topology keeps them.
    pub bound: Vec<Bound>,
}

/// Why a decoded request was not taken; each protocol answers it its own way.
enum NotTaken {
    /// The app is over its rate limit for `wait_secs`.
    RateLimited { app: Arc<str>, wait_secs: u64 },
    /// The pipeline did not take or acknowledge the events in time: retry later.
    Unavailable(&'static str),
}

struct State {
    config: HttpConfig,
    ctx: SourceContext,
    body_budget: BodyBudget,
    frame_ids: Mutex<FrameIds>,
    tokens: Tokens,
    limiter: Option<RateLimiter>,
    /// The rate-limit key of requests without a token.
    anonymous: Arc<str>,
    ack_latency: telemetry::Histogram,
}

/// A bounded set of recently accepted Logplex frame ids.
#[derive(Default)]
struct FrameIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl FrameIds {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > FRAME_IDS_REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

impl State {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        let response = match self.reserve_body(&request) {
            Some(_reservation) => self.ingest(request, peer).await,
            None => {
                self.refused("body_budget");
                unavailable("too many request bodies in flight; retry shortly")
            }
        };
        telemetry::counter(
            "component_http_responses_total",
            &[
                ("component_id", &self.ctx.id),
                ("code", response.status().as_str()),
            ],
        )
        .inc(1);
        response
    }

    async fn ingest(&self, request: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        if request.uri().path() != "/v1/logs" {
            return error(StatusCode::NOT_FOUND, "no such endpoint (POST /v1/logs)");
        }
        let origin = match self.origin(request.headers()) {
            Ok(origin) => origin,
            Err(message) => return error(StatusCode::FORBIDDEN, &message),
        };
        if request.method() == Method::OPTIONS && origin.is_some() {
            return preflight(
                "POST",
                "authorization, content-type, content-encoding",
                origin,
            );
        }
        if request.method() != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        }
        crate::api::with_cors(self.ingest_post(request, peer).await, origin)
    }

    /// The request's share of the body budget, held until it is answered: its declared
    /// length (at most `max_body_bytes`, which refuses more), or `max_body_bytes` for a
    /// body of unknown length. `None`: over the budget.
    fn reserve_body(&self, request: &Request<Incoming>) -> Option<BodyReservation> {
        use hyper::body::Body as _;
        let max = self.config.max_body_bytes;
        let bytes = match request.body().size_hint().exact() {
            Some(n) => usize::try_from(n).unwrap_or(max).min(max),
            None => max,
        };
        self.body_budget.try_reserve(bytes)
    }

    /// The allowed `Origin` to echo back (`None` without one), or why one is refused (403).
    fn origin(&self, headers: &hyper::HeaderMap) -> Result<Option<HeaderValue>, String> {
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(None);
        };
        let text = origin.to_str().unwrap_or("");
        let allowed = self
            .config
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(text));
        if allowed {
            return Ok(Some(origin.clone()));
        }
        self.refused("origin");
        Err(format!(
            "requests from web pages are refused: origin `{text}` is not in this source's allowed_origins"
        ))
    }

    fn refused(&self, reason: &str) {
        telemetry::counter(
            "component_refused_requests_total",
            &[("component_id", &self.ctx.id), ("reason", reason)],
        )
        .inc(1);
    }

    async fn ingest_post(&self, request: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        let headers = request.headers();
        let app = match self.tokens.authenticate(headers, request.uri()) {
            Ok(app) => app,
            // Answered as the API answers its refusals (a 401 names the scheme).
            Err(refusal) => return Refusal::new(refusal.status, refusal.message).into_response(),
        };
        let essence = essence(headers.get(CONTENT_TYPE));
        if !essence.is_empty() && !self.accepts(&essence) {
            self.refused("content_type");
            let message = if READABLE_CONTENT_TYPES.contains(&essence.as_str()) {
                format!(
                    "content-type `{essence}` is refused: web pages can send it from anywhere; \
                     send application/x-ndjson or application/octet-stream, or list it in the \
                     source's content_types"
                )
            } else {
                format!(
                    "unsupported content-type `{essence}` (use application/x-ndjson, application/octet-stream or application/logplex-1)"
                )
            };
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &message);
        }
        let kind = match body_kind(&essence) {
            Ok(kind) => kind,
            Err(message) => return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &message),
        };
        let encoding = match headers
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?"))
        {
            None | Some("identity") => None,
            Some("gzip") => Some(Compression::Gzip),
            Some("zstd") => Some(Compression::Zstd),
            Some(other) => {
                return error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    &format!("unsupported content-encoding `{other}` (use gzip, zstd or none)"),
                )
            }
        };
        let max = self.config.max_body_bytes;
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return too_large(max);
        }
        let frame_id = header_text(headers, "logplex-frame-id");
        let msg_count = header_text(headers, "logplex-msg-count");
        if let Some(id) = &frame_id {
            if kind == BodyKind::Logplex && self.lock_frame_ids().contains(id) {
                // Heroku retried a frame we already acknowledged: acknowledge it again.
                return accepted(0, true);
            }
        }

        let body = MinRateBody::new(request.into_body(), self.config.min_body_rate());
        let body = match Limited::new(body, max).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(max),
            Err(e) if e.is::<BodyTooSlow>() => {
                self.refused("body_too_slow");
                return error(StatusCode::REQUEST_TIMEOUT, &e.to_string());
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")),
        };
        let body = match encoding {
            None => body,
            Some(compression) => match decompress(compression, &body, max) {
                Ok(b) => b,
                Err(DecompressError::TooLarge) => return too_large(max),
                Err(DecompressError::Invalid(e)) => {
                    let name = compression.name();
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("invalid {name} body: {e}"),
                    );
                }
            },
        };

        // OTLP/HTTP posts to the same path; its JSON form is told from NDJSON by its one key.
        let kind = match kind {
            BodyKind::Ndjson if is_otlp_json(&body) => BodyKind::Otlp(OtlpEncoding::Json),
            kind => kind,
        };
        if let BodyKind::Otlp(encoding) = kind {
            let parsed = match encoding {
                OtlpEncoding::Protobuf => super::otlp::decode_protobuf(&body),
                OtlpEncoding::Json => super::otlp::decode_json(&body),
            };
            return match parsed {
                Ok(records) => match self.take_otlp(records, app, peer, body.len()).await {
                    Ok(partial) => export::answer(encoding, partial),
                    Err(not_taken) => self.not_taken(not_taken),
                },
                Err(e) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("malformed body, nothing accepted: {e}"),
                ),
            };
        }
        let limits = self.config.framing.limits();
        let (framing, decoding) = match kind {
            BodyKind::Ndjson | BodyKind::Otlp(_) => {
                (FramingConfig::Newline(limits), DecodingConfig::Json)
            }
            BodyKind::Text => (self.config.framing.clone(), self.config.decoding),
            BodyKind::Logplex => (
                FramingConfig::OctetCounting(FrameLimits {
                    max_frame_bytes: limits.max_frame_bytes,
                    oversize: OversizePolicy::Skip,
                }),
                DecodingConfig::Syslog,
            ),
        };
        let mut ingest = FrameIngest::new(self.ctx.id.clone(), &framing, decoding);
        let body_bytes = body.len() as u64;
        ingest.count_bytes(body.len());
        let (token, ack) = AckToken::timed(&self.ack_latency);
        let mut decoded = Decoded::default();
        // Zero-copy when the body is not shared (the common case), a copy otherwise.
        let mut buf = BytesMut::from(body);
        ingest.decode_with_ack(&mut buf, true, Some(peer), Some(&token), &mut decoded);
        drop(token);
        if kind != BodyKind::Text {
            if let Some(first) = decoded.dead.first() {
                let reason = first
                    .fields
                    .get(super::dead_letter::REASON)
                    .map(|v| v.to_text())
                    .unwrap_or_default();
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("malformed body, nothing accepted: {reason}"),
                );
            }
        }
        if let Some(count) = msg_count.filter(|_| kind == BodyKind::Logplex) {
            if count.parse::<usize>().ok() != Some(decoded.events.len()) {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "logplex-msg-count says {count} but the body holds {} messages",
                        decoded.events.len()
                    ),
                );
            }
        }
        let events = decoded.events.len();
        if let Err(not_taken) = self.deliver(decoded, app, body_bytes, ack).await {
            return self.not_taken(not_taken);
        }
        if let (Some(id), BodyKind::Logplex) = (frame_id, kind) {
            self.lock_frame_ids().insert(id);
        }
        accepted(events, false)
    }

    /// What every request shares once decoded: the app's rate limit, its `app` stamped
    /// on the events, their count, their sending, and the wait for their acknowledgement,
    /// all within `ack_timeout_secs`. The status is delivered or rejected (some events
    /// dead-lettered); anything else is not taken.
    async fn deliver(
        &self,
        mut decoded: Decoded,
        app: Option<Arc<str>>,
        body_bytes: u64,
        ack: AckReceiver,
    ) -> Result<AckStatus, NotTaken> {
        let events = decoded.events.len();
        let key = app.as_ref().unwrap_or(&self.anonymous);
        if let Some(limiter) = &self.limiter {
            if let Err(wait_secs) = limiter.check(key, events as u64, body_bytes, Instant::now()) {
                telemetry::counter(
                    "component_rate_limited_requests_total",
                    &[("component_id", &self.ctx.id), ("app", key)],
                )
                .inc(1);
                return Err(NotTaken::RateLimited {
                    app: key.clone(),
                    wait_secs,
                });
            }
        }
        if let Some(app) = &app {
            for event in &mut decoded.events {
                event.insert(crate::event::fields::APP, crate::event::Value::from(&**app));
            }
        }
        telemetry::counter(
            "component_received_events_by_app_total",
            &[("component_id", &self.ctx.id), ("app", key)],
        )
        .inc(events as u64);
        let deadline = Instant::now() + Duration::from_secs(self.config.ack_timeout_secs);
        let mut ctx = SourceContext {
            id: self.ctx.id.clone(),
            out: self.ctx.out.clone(),
            dead_letter: self.ctx.dead_letter.clone(),
            shutdown: self.ctx.shutdown.clone(),
        };
        match tokio::time::timeout_at(deadline.into(), decoded.send(&mut ctx)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(NotTaken::Unavailable("the pipeline is shutting down")),
            Err(_) => {
                return Err(NotTaken::Unavailable(
                    "the pipeline is backed up; retry later",
                ))
            }
        }
        match tokio::time::timeout_at(deadline.into(), ack).await {
            Ok(Ok(status @ (AckStatus::Delivered | AckStatus::Rejected))) => Ok(status),
            Ok(_) => Err(NotTaken::Unavailable(
                "a sink could not deliver the events; retry",
            )),
            Err(_) => Err(NotTaken::Unavailable(
                "acknowledgement timed out; retry later",
            )),
        }
    }

    /// The HTTP answer to a request not taken: 429 with `Retry-After`, or 503.
    fn not_taken(&self, not_taken: NotTaken) -> HttpResponse {
        match not_taken {
            NotTaken::RateLimited { app, wait_secs } => {
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("app `{app}` is over its rate limit; retry in {wait_secs} s"),
                );
                if let Ok(value) = HeaderValue::from_str(&wait_secs.to_string()) {
                    response.headers_mut().insert(RETRY_AFTER, value);
                }
                response
            }
            NotTaken::Unavailable(message) => unavailable(message),
        }
    }

    fn accepts(&self, essence: &str) -> bool {
        match &self.config.content_types {
            Some(list) => list.iter().any(|t| t.eq_ignore_ascii_case(essence)),
            None => DEFAULT_CONTENT_TYPES.contains(&essence),
        }
    }

    fn lock_frame_ids(&self) -> std::sync::MutexGuard<'_, FrameIds> {
        self.frame_ids.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn header_text(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn too_large(max: usize) -> HttpResponse {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("body exceeds max_body_bytes ({max} bytes)"),
    )
}

fn unavailable(message: &str) -> HttpResponse {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn accepted(events: usize, duplicate: bool) -> HttpResponse {
    let body = if duplicate {
        serde_json::json!({ "accepted": 0, "duplicate": true })
    } else {
        serde_json::json!({ "accepted": events })
    };
    respond(StatusCode::OK, "application/json", body.to_string())
}
