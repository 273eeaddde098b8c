//! Federated query (docs/federation.md): with `[api] peers` or `peers_dns`, this router
//! answers `/v1/query`, `/v1/histogram`, `/v1/top` and `/v1/tail` for every peer's store at
//! once. It scatters the request to every peer (`scatter.rs`) with the caller's token, each
//! within the peer timeout, and merges what comes back: pages newest first with a cursor
//! that spans nodes (`query.rs`), histogram buckets summed (`histogram.rs`), top values
//! merged exactly by over-fetching (`top.rs`), tails interleaved (`tail.rs`). A peer that
//! fails makes the answer partial (`partial`, `answered`, `missing` with each reason), never
//! an error of the whole request; only when no peer answers is the request refused.
//!
//! Forwarded requests carry `local=1`: a peer answers them from its own store and never
//! scatters them again, so a peer list that includes this router (the same list on every
//! node, or a headless Service's every pod) cannot loop. Tokens pass through, so each peer
//! checks the token and applies its scope itself.
//!
//! The endpoint sits in front of the store's own (`wrap`): the API's guard has run before
//! it, and it hands `local=1` requests and the page's files to the endpoints behind it.

mod histogram;
mod peers;
mod query;
mod scatter;
mod tail;
mod top;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::api::{error, respond, ApiConfig, Endpoint, HttpResponse, ResponseFuture};
use crate::delivery::http::HttpClient;
use crate::store::http::{bucket_layout, is_local, whole_span, Params, DEFAULT_LIMIT, LOCAL_PARAM};
use crate::store::query::Query;
use crate::store::search::{MAX_LIMIT, MAX_SPLIT_SERIES};
use crate::store::StoreError;

use peers::Peers;
use scatter::{PeerFailure, Scatter};

const ROUTES: [&str; 4] = ["/v1/query", "/v1/histogram", "/v1/top", "/v1/tail"];

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("api.peers_tls: cannot set up tls for https peers: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// `endpoints` with the federating endpoint in front when `api` names peers; unchanged
/// otherwise. DNS peers are resolved until `stop`.
pub fn wrap(
    api: &ApiConfig,
    endpoints: Vec<Arc<dyn Endpoint>>,
    stop: &CancellationToken,
) -> Result<Vec<Arc<dyn Endpoint>>, FederationError> {
    let Some(source) = api.peer_source() else {
        return Ok(endpoints);
    };
    let https = match &source {
        crate::api::PeerSource::List(list) => list.iter().any(|p| p.starts_with("https://")),
        crate::api::PeerSource::Dns { scheme, .. } => scheme == "https",
    };
    let client = if https {
        // The files are read here, once, when the API starts.
        HttpClient::with_tls(api.peers_tls.client_config(true)?)
    } else {
        HttpClient::plain()
    };
    let federated = FederatedEndpoint {
        peers: Peers::start(
            source,
            Duration::from_secs(api.peers_refresh_secs),
            stop.clone(),
        ),
        scatter: Scatter::new(client, Duration::from_millis(api.peer_timeout_ms)),
        local: endpoints.clone(),
        streams_stop: stop.clone(),
    };
    let mut all: Vec<Arc<dyn Endpoint>> = vec![Arc::new(federated)];
    all.extend(endpoints);
    Ok(all)
}

struct FederatedEndpoint {
    peers: Peers,
    scatter: Scatter,
    /// The endpoints behind this one: the store's answers `local=1`.
    local: Vec<Arc<dyn Endpoint>>,
    streams_stop: CancellationToken,
}

impl Endpoint for FederatedEndpoint {
    fn matches(&self, path: &str) -> bool {
        ROUTES.contains(&path)
    }

    fn handle(&self, request: Request<Incoming>) -> ResponseFuture {
        let path = request.uri().path().to_string();
        let params = Params::parse(request.uri().query().unwrap_or(""));
        if is_local(&params) {
            return match self.local.iter().find(|e| e.matches(&path)) {
                Some(endpoint) => endpoint.handle(request),
                None => Box::pin(async {
                    error(
                        StatusCode::NOT_FOUND,
                        "this router has no store sink to answer from",
                    )
                }),
            };
        }
        let peers = self.peers.clone();
        let scatter = self.scatter.clone();
        let stop = self.streams_stop.clone();
        Box::pin(async move {
            if request.method() != Method::GET {
                return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
            }
            let peer_list = match peers.current(scatter.timeout()).await {
                Ok(list) => list,
                Err(reason) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("no peers to ask: {reason}"),
                    )
                }
            };
            let auth = request.headers().get(AUTHORIZATION).cloned();
            let asked = Asked {
                params,
                peers: &peer_list,
                auth: auth.as_ref(),
                scatter: &scatter,
            };
            let answer = match path.as_str() {
                "/v1/query" => asked.query().await,
                "/v1/histogram" => asked.histogram().await,
                "/v1/top" => asked.top().await,
                "/v1/tail" => {
                    if stop.is_cancelled() {
                        return error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the router is shutting down",
                        );
                    }
                    let permit = match crate::api::tail_permit(&request) {
                        Ok(permit) => permit,
                        Err(refusal) => return refusal.into_response(),
                    };
                    if let Err(e) = Query::parse(asked.params.get("q").unwrap_or("")) {
                        return error(StatusCode::BAD_REQUEST, &e.to_string());
                    }
                    let forwarded = forward(&asked.params, &["q"], &[]);
                    return tail::merged_tail(
                        scatter.clone(),
                        &peer_list,
                        format!("/v1/tail?{forwarded}"),
                        auth.clone(),
                        permit,
                        stop,
                    );
                }
                _ => Ok(error(StatusCode::NOT_FOUND, "no such endpoint")),
            };
            match answer {
                Ok(response) => response,
                Err(Refused::BadRequest(message)) => error(StatusCode::BAD_REQUEST, &message),
                Err(Refused::Status(status, message)) => error(status, &message),
            }
        })
    }
}

/// Why a federated request gets no answer at all.
enum Refused {
    /// The request itself is wrong (checked here, before any peer is asked).
    BadRequest(String),
    /// No peer answered: every peer's same refusal, or 503.
    Status(StatusCode, String),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Refused {
        Refused::BadRequest(error.to_string())
    }
}

/// One federated request.
struct Asked<'a> {
    params: Params,
    peers: &'a [String],
    auth: Option<&'a HeaderValue>,
    scatter: &'a Scatter,
}

/// Which peers answered and which did not, and why.
struct Gathered<T> {
    answers: Vec<(String, T)>,
    missing: Vec<(String, PeerFailure)>,
}

impl<T> Gathered<T> {
    /// Refused when no peer answered: with the peers' own status when they all refused
    /// alike (a token no peer knows: 401), else 503 naming each peer's reason.
    fn check(&self) -> Result<(), Refused> {
        if !self.answers.is_empty() {
            return Ok(());
        }
        let first = self.missing.first().and_then(|(_, f)| f.status);
        if let Some(status) = first.filter(|s| s.is_client_error()) {
            if self.missing.iter().all(|(_, f)| f.status == Some(status)) {
                let reason = &self.missing[0].1.reason;
                return Err(Refused::Status(status, reason.clone()));
            }
        }
        let reasons: Vec<String> = self
            .missing
            .iter()
            .map(|(peer, f)| format!("{peer}: {}", f.reason))
            .collect();
        Err(Refused::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no peer answered ({})", reasons.join("; ")),
        ))
    }

    /// The answers, and the report of who answered.
    fn split(self) -> (Vec<(String, T)>, Report) {
        let report = Report {
            answered: self.answers.iter().map(|(peer, _)| peer.clone()).collect(),
            missing: self.missing,
        };
        (self.answers, report)
    }
}

/// Which peers an answer holds, and which are missing and why.
struct Report {
    answered: Vec<String>,
    missing: Vec<(String, PeerFailure)>,
}

impl Report {
    /// `answer` with `partial`, `answered` and `missing`.
    fn respond(&self, mut answer: serde_json::Value) -> HttpResponse {
        if !self.missing.is_empty() {
            crate::telemetry::counter("federation_partial_answers_total", &[]).inc(1);
        }
        answer["partial"] = serde_json::Value::Bool(!self.missing.is_empty());
        answer["answered"] = self.answered.iter().cloned().collect();
        answer["missing"] = self
            .missing
            .iter()
            .map(|(peer, f)| serde_json::json!({"peer": peer, "reason": f.reason}))
            .collect();
        match serde_json::to_vec(&answer) {
            Ok(body) => respond(StatusCode::OK, "application/json", body),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
}

/// Peers' answers parsed as `T`; one that does not parse is missing.
fn gather<T: DeserializeOwned>(
    peers: &[String],
    answers: Vec<Result<Bytes, PeerFailure>>,
) -> Gathered<T> {
    let mut gathered = Gathered {
        answers: Vec::new(),
        missing: Vec::new(),
    };
    for (peer, answer) in peers.iter().zip(answers) {
        match answer.and_then(|body| {
            serde_json::from_slice::<T>(&body).map_err(|e| PeerFailure {
                status: None,
                reason: format!("answer not understood: {e}"),
            })
        }) {
            Ok(value) => gathered.answers.push((peer.clone(), value)),
            Err(failure) => gathered.missing.push((peer.clone(), failure)),
        }
    }
    gathered
}

impl Asked<'_> {
    /// The query and time range checked here, with a `since` turned into an absolute
    /// `from` (and `to` fixed to now where a chart needs an end), so that every peer
    /// answers for the same range.
    fn range(&self, now: i64) -> Result<(Option<i64>, Option<i64>), Refused> {
        Query::parse(self.params.get("q").unwrap_or(""))
            .map_err(|e| Refused::BadRequest(e.to_string()))?;
        Ok(self.params.time_range(now)?)
    }

    async fn query(&self) -> Result<HttpResponse, Refused> {
        let now = crate::event::now_nanos();
        let (from, to) = self.range(now)?;
        let limit = self.params.number("limit", DEFAULT_LIMIT)?.min(MAX_LIMIT);
        let after = self
            .params
            .get("cursor")
            .filter(|c| !c.is_empty())
            .map(query::decode_merged_cursor)
            .transpose()?;
        let base = forward(&self.params, &["q"], &time_params(from, to));
        let requests = self
            .peers
            .iter()
            .map(|peer| {
                let mut path = format!("/v1/query?{base}&limit={limit}");
                if let Some(after) = &after {
                    path.push_str(&format!("&cursor={}", query::peer_cursor(after, peer)));
                }
                (peer.clone(), path)
            })
            .collect();
        let answers = self.scatter.get_each(requests, self.auth).await;
        let gathered = gather::<query::PeerPage>(self.peers, answers);
        gathered.check()?;
        let (pages, report) = gathered.split();
        let merged = query::merge_pages(pages, limit)
            .map_err(|e| Refused::Status(StatusCode::BAD_GATEWAY, e))?;
        Ok(report.respond(serde_json::json!({
            "events": merged.events,
            "total": merged.total,
            "next_cursor": merged.next_cursor,
        })))
    }

    async fn histogram(&self) -> Result<HttpResponse, Refused> {
        let now = crate::event::now_nanos();
        let (from, to) = self.range(now)?;
        // With a range, every peer gets the same absolute one; a chart needs an end.
        let given = from.map(|f| (f, to.unwrap_or(now)));
        if let Some((f, t)) = given {
            bucket_layout(&self.params, f, t)?;
        }
        let split = self.params.get("split").filter(|s| !s.is_empty());
        let split_limit = self.params.number("split_limit", 10)?;
        let mut extra = match given {
            Some((f, t)) => time_params(Some(f), Some(t)),
            None => time_params(None, to),
        };
        if split.is_some() {
            extra.push(("split_limit", MAX_SPLIT_SERIES.to_string()));
        }
        let path = format!(
            "/v1/histogram?{}",
            forward(&self.params, &["q", "interval", "split"], &extra)
        );
        let answers = self.scatter.get_all(self.peers, &path, self.auth).await;
        let gathered = gather::<histogram::PeerHistogram>(self.peers, answers);
        gathered.check()?;
        let (histograms, report) = gathered.split();
        let histograms: Vec<histogram::PeerHistogram> =
            histograms.into_iter().map(|(_, h)| h).collect();
        let (span_from, span_to) = match given {
            Some(span) => span,
            None => {
                // The union of the peers' data, as `whole_span` reads a store's: its end
                // is one past the newest event.
                let union = histogram::union_span(&histograms);
                whole_span(union.map(|(lo, end)| (lo, end - 1)), to, now)
            }
        };
        let (aligned, interval) = bucket_layout(&self.params, span_from, span_to)?;
        let layout =
            histogram::Layout::new(aligned, span_to, interval).map_err(Refused::BadRequest)?;
        let merged = histogram::merge_histograms(
            histograms,
            layout,
            split.map(|_| split_limit.clamp(1, MAX_SPLIT_SERIES)),
        );
        Ok(report.respond(merged))
    }

    async fn top(&self) -> Result<HttpResponse, Refused> {
        let now = crate::event::now_nanos();
        let (from, to) = self.range(now)?;
        let Some(field) = self.params.get("field").filter(|f| !f.is_empty()) else {
            return Err(Refused::BadRequest("`field` is required".into()));
        };
        let limit = self.params.number("limit", 10)?.min(MAX_LIMIT);
        let base = forward(&self.params, &["q", "field"], &time_params(from, to));
        let ask = |n: usize| format!("/v1/top?{base}&limit={n}");
        let first = top::first_fetch(limit);
        let answers = self
            .scatter
            .get_all(self.peers, &ask(first), self.auth)
            .await;
        let gathered = gather::<top::PeerTop>(self.peers, answers);
        gathered.check()?;
        let (answers, report) = gathered.split();
        let mut lists: Vec<top::Listed> = answers
            .into_iter()
            .map(|(_, top)| top::Listed { asked: first, top })
            .collect();
        let (mut values, mut exact) = top::merge_top(&lists, limit);
        if !exact {
            // Ask the peers whose lists were full for all their values, and merge again.
            let again: Vec<usize> = (0..lists.len())
                .filter(|&i| lists[i].is_full() && lists[i].asked < MAX_LIMIT)
                .collect();
            let peers: Vec<String> = again.iter().map(|&i| report.answered[i].clone()).collect();
            let answers = self
                .scatter
                .get_all(&peers, &ask(MAX_LIMIT), self.auth)
                .await;
            for (&i, answer) in again.iter().zip(answers) {
                // A peer that fails now keeps its first list: the merge then says whether
                // that still proves the answer.
                if let Ok(top) = answer.and_then(|body| {
                    serde_json::from_slice::<top::PeerTop>(&body).map_err(|e| PeerFailure {
                        status: None,
                        reason: e.to_string(),
                    })
                }) {
                    lists[i] = top::Listed {
                        asked: MAX_LIMIT,
                        top,
                    };
                }
            }
            (values, exact) = top::merge_top(&lists, limit);
        }
        let total: u64 = lists.iter().map(|l| l.top.total).sum();
        let values: Vec<serde_json::Value> = values
            .drain(..)
            .map(|(value, count)| serde_json::json!({"value": value, "count": count}))
            .collect();
        Ok(report.respond(serde_json::json!({
            "field": field,
            "values": values,
            "total": total,
            "exact": exact,
        })))
    }
}

/// The parameters to send a peer: `keep` copied from the request, then `extra`, then
/// `local=1`.
fn forward(params: &Params, keep: &[&str], extra: &[(&'static str, String)]) -> String {
    let mut pairs: Vec<String> = keep
        .iter()
        .filter_map(|key| params.get(key).map(|v| (key, v)))
        .map(|(key, value)| format!("{key}={}", crate::store::client::encode(value)))
        .collect();
    pairs.extend(
        extra
            .iter()
            .map(|(key, value)| format!("{key}={}", crate::store::client::encode(value))),
    );
    pairs.push(format!("{LOCAL_PARAM}=1"));
    pairs.join("&")
}

/// `from` and `to` as RFC 3339 to the nanosecond.
fn time_params(from: Option<i64>, to: Option<i64>) -> Vec<(&'static str, String)> {
    [("from", from), ("to", to)]
        .into_iter()
        .filter_map(|(key, t)| t.map(|t| (key, rfc3339(t))))
        .collect()
}

fn rfc3339(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, sub)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default()
}
