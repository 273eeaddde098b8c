//! The store's routes on the API listener: `GET /v1/query`, `/v1/histogram`, `/v1/top`,
//! `/v1/tail` (server-sent events), and the web page (`/` and `/assets/...`, embedded in
//! the binary). Searches block, so they run on `spawn_blocking`.
//!
//! The API's guard has checked the token before a request gets here; what it may see is the
//! request's [`Scope`], ANDed into the query by [`scoped`] before any search, chart,
//! top-values list or tail sees it. The page's files are open: they hold no data.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::search::{encode_cursor, Budget, HistogramRequest, SearchRequest, TopRequest};
// Times asked for lie in the range the store believes event times in (1970–2100), so no
// arithmetic on them (spans, bucket counts) can overflow.
use super::index::MAX_EVENT_TIME_NANOS;
use super::{parse_duration, Query, Store, StoreError};
use crate::api::{
    error, respond, Access, Endpoint, HttpResponse, QueryLimits, Refusal, ResponseFuture, Scope,
    TailPermit,
};
use crate::event::now_nanos;

/// Events per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Buckets a histogram aims for when no `interval` is given.
const TARGET_BUCKETS: i64 = 60;

pub struct StoreEndpoint {
    store: Arc<Store>,
    /// Fires when shutdown starts; tails end then (see `tail.rs`).
    streams_stop: CancellationToken,
}

impl StoreEndpoint {
    pub fn new(store: Arc<Store>, streams_stop: CancellationToken) -> Self {
        Self {
            store,
            streams_stop,
        }
    }
}

const ROUTES: [&str; 4] = ["/v1/query", "/v1/histogram", "/v1/top", "/v1/tail"];

impl Endpoint for StoreEndpoint {
    fn matches(&self, path: &str) -> bool {
        ROUTES.contains(&path) || asset(path).is_some()
    }

    /// The page's files hold no data, so a browser can load them before it has a token;
    /// the searches it then makes need one.
    fn access(&self, path: &str) -> Access {
        if asset(path).is_some() {
            Access::Open
        } else {
            Access::Read
        }
    }

    fn handle(&self, request: Request<Incoming>) -> ResponseFuture {
        let store = self.store.clone();
        let streams_stop = self.streams_stop.clone();
        Box::pin(async move {
            if request.method() != Method::GET {
                return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
            }
            let path = request.uri().path().to_string();
            let params = Params::parse(request.uri().query().unwrap_or(""));
            if let Some((content_type, body)) = asset(&path) {
                let mut response = respond(StatusCode::OK, content_type, body);
                response.headers_mut().insert(
                    CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(PAGE_POLICY),
                );
                return response;
            }
            let scope = crate::api::scope_of(&request);
            let asked = Asked {
                path: &path,
                params,
                scope: &scope,
                limits: crate::api::query_limits(&request),
            };
            let tail_permit = || crate::api::tail_permit(&request);
            match answer(store, asked, tail_permit, streams_stop).await {
                Ok(response) => response,
                Err(StoreError::Index(e)) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("index error: {e}"),
                ),
                Err(StoreError::CostLimit(message)) => {
                    crate::telemetry::counter(
                        "api_refused_requests_total",
                        &[("reason", "query_cost")],
                    )
                    .inc(1);
                    error(StatusCode::SERVICE_UNAVAILABLE, &message)
                }
                Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
            }
        })
    }
}

/// One request to answer: its route, parameters, scope and cost limits.
struct Asked<'a> {
    path: &'a str,
    params: Params,
    scope: &'a Scope,
    limits: QueryLimits,
}

async fn answer(
    store: Arc<Store>,
    asked: Asked<'_>,
    tail_permit: impl FnOnce() -> Result<TailPermit, Refusal>,
    streams_stop: CancellationToken,
) -> Result<HttpResponse, StoreError> {
    let Asked {
        path,
        params,
        scope,
        limits,
    } = asked;
    let query = scoped(Query::parse(params.get("q").unwrap_or(""))?, scope);
    let now = now_nanos();
    match path {
        "/v1/tail" => {
            if streams_stop.is_cancelled() {
                return Ok(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the router is shutting down",
                ));
            }
            let permit = match tail_permit() {
                Ok(permit) => permit,
                Err(refusal) => return Ok(refusal.into_response()),
            };
            let Some(body) = store.tail.subscribe(query, streams_stop) else {
                return Ok(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many tail clients",
                ));
            };
            let mut response = Response::new(body.holding(permit).boxed());
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(response)
        }
        "/v1/query" => {
            let (from, to) = params.time_range(now)?;
            let request = SearchRequest {
                query,
                from,
                to,
                limit: params.number("limit", DEFAULT_LIMIT)?,
                cursor: params.get("cursor").map(str::to_string),
            };
            let page =
                blocking(move || store.search_within(&request, &Budget::new(limits))).await?;
            if !is_local(&params) {
                return Ok(json(&page));
            }
            // For the federating router: each event's cursor, by which it merges pages.
            let cursors: Vec<String> = page.keys.iter().map(|k| encode_cursor(*k)).collect();
            Ok(json(&LocalPage {
                page: &page,
                cursors,
            }))
        }
        "/v1/histogram" => {
            let (from, to) = params.time_range(now)?;
            // The span, and whether it says anything about the data (an empty store asked
            // without a range charts the last hour, which is no span of its events).
            let ((from, to), known) = match from {
                Some(f) => ((f, to.unwrap_or(now)), true),
                None => {
                    // No range: the whole store (what the page shows first).
                    let s = store.clone();
                    let data = blocking(move || Ok(s.time_range())).await?;
                    (whole_span(data, to, now), data.is_some())
                }
            };
            let span = known.then_some((from, to));
            let (from, interval) = bucket_layout(&params, from, to)?;
            let request = HistogramRequest {
                query,
                from,
                to,
                interval,
                split: params
                    .get("split")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                split_limit: params.number("split_limit", 10)?,
            };
            let histogram =
                blocking(move || store.histogram_within(&request, &Budget::new(limits))).await?;
            if !is_local(&params) {
                return Ok(json(&histogram));
            }
            // For the federating router: the span this node's data covers, from which it
            // lays out the buckets of all nodes' data.
            Ok(json(&LocalHistogram {
                histogram: &histogram,
                span_ns: span,
            }))
        }
        "/v1/top" => {
            let Some(field) = params.get("field").filter(|f| !f.is_empty()) else {
                return Err(StoreError::BadRequest("`field` is required".into()));
            };
            let (from, to) = params.time_range(now)?;
            let request = TopRequest {
                query,
                field: field.to_string(),
                from,
                to,
                limit: params.number("limit", 10)?,
            };
            let top = blocking(move || store.top_within(&request, &Budget::new(limits))).await?;
            Ok(json(&top))
        }
        _ => Ok(error(StatusCode::NOT_FOUND, "no such endpoint")),
    }
}

/// `query` limited to the scope's apps: the one place a token's scope reaches the store,
/// before any search, chart, top-values list or tail sees the query.
pub fn scoped(query: Query, scope: &Scope) -> Query {
    match scope {
        Scope::All => query,
        Scope::Apps(apps) => {
            let only = Query::Or(
                apps.iter()
                    .map(|app| Query::Term {
                        field: Some(crate::event::fields::APP.to_string()),
                        value: app.clone(),
                    })
                    .collect(),
            );
            Query::And(vec![only, query])
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::BadRequest(format!("search failed: {e}")))?
}

fn json<T: serde::Serialize>(value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => respond(StatusCode::OK, "application/json", body),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A bucket width giving about [`TARGET_BUCKETS`] buckets over `span` nanoseconds.
pub fn auto_interval(span: i64) -> i64 {
    const STEPS_SECS: [i64; 14] = [
        1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200, 86_400, 604_800,
    ];
    let wanted = span / TARGET_BUCKETS;
    STEPS_SECS
        .iter()
        .map(|s| s * 1_000_000_000)
        .find(|&n| n >= wanted)
        .unwrap_or(604_800_000_000_000)
}

/// The query parameter that marks a request a federating router forwarded
/// (`crate::federation`): this node answers from its own store, never scatters it again,
/// and adds what the federating router merges by.
pub const LOCAL_PARAM: &str = "local";

/// Whether a request asks this node alone ([`LOCAL_PARAM`]`=1`).
pub fn is_local(params: &Params) -> bool {
    params.get(LOCAL_PARAM) == Some("1")
}

#[derive(serde::Serialize)]
struct LocalPage<'a> {
    #[serde(flatten)]
    page: &'a super::search::SearchPage,
    cursors: Vec<String>,
}

#[derive(serde::Serialize)]
struct LocalHistogram<'a> {
    #[serde(flatten)]
    histogram: &'a super::search::Histogram,
    span_ns: Option<(i64, i64)>,
}

/// The span of a histogram asked without `from` or `since`: the stored events' (`data`,
/// their oldest and newest times) up to `to`, or the last hour of an empty store.
pub fn whole_span(data: Option<(i64, i64)>, to: Option<i64>, now: i64) -> (i64, i64) {
    match data {
        Some((lo, hi)) => (
            lo.clamp(0, MAX_EVENT_TIME_NANOS),
            to.unwrap_or(hi.clamp(0, MAX_EVENT_TIME_NANOS - 1) + 1),
        ),
        None => (now - 3_600_000_000_000, now),
    }
}

/// The buckets of a histogram over `[from, to)`: `from` moved back to a multiple of the
/// width, and the width (`interval`, else about [`TARGET_BUCKETS`] buckets).
pub fn bucket_layout(params: &Params, from: i64, to: i64) -> Result<(i64, i64), StoreError> {
    if to <= from {
        return Err(StoreError::BadRequest("`to` must be after `from`".into()));
    }
    let interval = match params.get("interval") {
        Some(text) => parse_duration(text)
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .filter(|n| *n > 0 && *n <= MAX_EVENT_TIME_NANOS)
            .ok_or_else(|| {
                StoreError::BadRequest(format!(
                    "interval `{text}` is not a duration between 1ms and 100 years (e.g. 1m, 5m, 1h)"
                ))
            })?,
        None => auto_interval(to.saturating_sub(from)),
    };
    // Buckets start on interval boundaries, so charts line up across refreshes (and the
    // buckets of several nodes line up with each other).
    Ok((from.div_euclid(interval) * interval, interval))
}

// === query-string parameters ===

/// A request's query string, percent-decoded, in order (a key may repeat).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: &str) -> Params {
        Params(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn number(&self, key: &str, default: usize) -> Result<usize, StoreError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                StoreError::BadRequest(format!("`{key}` must be a whole number, not `{text}`"))
            }),
        }
    }

    /// `since` (a duration back from now) or `from`/`to` (RFC 3339), in nanoseconds.
    pub fn time_range(&self, now: i64) -> Result<(Option<i64>, Option<i64>), StoreError> {
        let time = |key: &str| -> Result<Option<i64>, StoreError> {
            match self.get(key).filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(text) => super::index::parse_rfc3339(text).map(Some).ok_or_else(|| {
                    StoreError::BadRequest(format!(
                        "`{key}` must be an RFC 3339 time (e.g. 2026-11-26T06:00:00Z), not `{text}`"
                    ))
                }),
            }
        };
        let from = time("from")?;
        let to = time("to")?;
        for (key, value) in [("from", from), ("to", to)] {
            if value.is_some_and(|t| !(0..=MAX_EVENT_TIME_NANOS).contains(&t)) {
                return Err(StoreError::BadRequest(format!(
                    "`{key}` must be between 1970 and 2100"
                )));
            }
        }
        match self.get("since").filter(|s| !s.is_empty()) {
            Some(_) if from.is_some() => Err(StoreError::BadRequest(
                "give `since` or `from`, not both".into(),
            )),
            Some(text) => {
                let since = parse_duration(text).ok_or_else(|| {
                    StoreError::BadRequest(format!(
                        "`since` must be a duration such as 15m, 2h or 7d, not `{text}`"
                    ))
                })?;
                let back = i64::try_from(since.as_nanos()).unwrap_or(i64::MAX);
                Ok((Some(now.saturating_sub(back).max(0)), to))
            }
            None => Ok((from, to)),
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// === the web page ===

/// The page loads its own files and talks to its own API, nothing else: no inline script,
/// no other origin, no framing. An injected `<script>` in a field would not run even if
/// some rendering path ever failed to treat it as text.
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    Some(match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            include_bytes!("../../assets/index.html"),
        ),
        "/assets/app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/app.js"),
        ),
        "/assets/chart.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/chart.js"),
        ),
        "/assets/app.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../assets/app.css"),
        ),
        "/assets/vendor/uplot/uPlot.iife.min.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/vendor/uplot/uPlot.iife.min.js"),
        ),
        "/assets/vendor/uplot/uPlot.min.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../assets/vendor/uplot/uPlot.min.css"),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode() {
        let p = Params::parse("q=app%3Aweb+level%3Aerror&limit=5&x");
        assert_eq!(p.get("q"), Some("app:web level:error"));
        assert_eq!(p.number("limit", 1).expect("number"), 5);
        assert_eq!(p.get("x"), Some(""));
        assert!(p.number("q", 1).is_err());
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn time_ranges() {
        let now = 10_000_000_000_000;
        type Range = (Option<i64>, Option<i64>);
        let cases: Vec<(&str, Result<Range, ()>)> = vec![
            ("", Ok((None, None))),
            ("since=15m", Ok((Some(now - 900_000_000_000), None))),
            ("from=1970-01-01T00:00:01Z", Ok((Some(1_000_000_000), None))),
            (
                "from=1970-01-01T00:00:01Z&to=1970-01-01T00:00:02Z",
                Ok((Some(1_000_000_000), Some(2_000_000_000))),
            ),
            ("since=soon", Err(())),
            ("from=yesterday", Err(())),
            ("since=1m&from=1970-01-01T00:00:01Z", Err(())),
        ];
        for (query, expected) in cases {
            let got = Params::parse(query).time_range(now).map_err(|_| ());
            assert_eq!(got, expected, "{query}");
        }
    }

    #[test]
    fn auto_intervals() {
        let s = 1_000_000_000i64;
        assert_eq!(auto_interval(60 * s), s);
        assert_eq!(auto_interval(3600 * s), 60 * s);
        assert_eq!(auto_interval(86_400 * s), 1800 * s);
    }
}
