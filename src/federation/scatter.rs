//! Scatter and gather: one GET to every peer at once, each bounded by the peer timeout
//! (connecting, the answer's head and its body) and by [`MAX_ANSWER_BYTES`], gathered in
//! peer order. A peer that fails is a [`PeerFailure`] with its reason, never an error of
//! the whole request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use hyper::{StatusCode, Uri};
use tokio::task::JoinSet;

use crate::delivery::http::HttpClient;

/// The largest answer read from one peer: a page of 10,000 events of a few KiB each.
pub(super) const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Why a peer is missing from an answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PeerFailure {
    /// The peer's status when it answered with an error.
    pub(super) status: Option<StatusCode>,
    pub(super) reason: String,
}

impl PeerFailure {
    fn new(kind: &'static str, reason: String) -> PeerFailure {
        crate::telemetry::counter("federation_peer_failures_total", &[("reason", kind)]).inc(1);
        PeerFailure {
            status: None,
            reason,
        }
    }
}

/// Asks peers for their part of an answer.
#[derive(Clone)]
pub(super) struct Scatter {
    client: Arc<HttpClient>,
    timeout: Duration,
}

impl Scatter {
    pub(super) fn new(client: HttpClient, timeout: Duration) -> Scatter {
        Scatter {
            client: Arc::new(client),
            timeout,
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET peer + path_and_query` from every peer at once, with the caller's
    /// `Authorization` (each peer checks it and applies its scope itself). The answers
    /// come back in `peers`' order.
    pub(super) async fn get_all(
        &self,
        peers: &[String],
        path_and_query: &str,
        auth: Option<&HeaderValue>,
    ) -> Vec<Result<Bytes, PeerFailure>> {
        let requests = peers
            .iter()
            .map(|peer| (peer.clone(), path_and_query.to_string()))
            .collect();
        self.get_each(requests, auth).await
    }

    /// Like [`Scatter::get_all`], with a path and query of its own per peer (a query's
    /// cursor differs per peer).
    pub(super) async fn get_each(
        &self,
        requests: Vec<(String, String)>,
        auth: Option<&HeaderValue>,
    ) -> Vec<Result<Bytes, PeerFailure>> {
        let mut set = JoinSet::new();
        let count = requests.len();
        for (i, (peer, path)) in requests.into_iter().enumerate() {
            let this = self.clone();
            let auth = auth.cloned();
            set.spawn(async move { (i, this.get(&peer, &path, auth.as_ref()).await) });
        }
        let mut answers: Vec<Option<Result<Bytes, PeerFailure>>> = vec![None; count];
        while let Some(joined) = set.join_next().await {
            if let Ok((i, answer)) = joined {
                answers[i] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(PeerFailure::new("task", "request failed".into()))))
            .collect()
    }

    /// One peer's whole answer to a GET, or why there is none.
    pub(super) async fn get(
        &self,
        peer: &str,
        path_and_query: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Bytes, PeerFailure> {
        let exchange = async {
            let response = self.open(peer, path_and_query, auth, self.timeout).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| {
                    PeerFailure::new("body", format!("answer unreadable or too long: {e}"))
                })?;
            if status != StatusCode::OK {
                crate::telemetry::counter(
                    "federation_peer_failures_total",
                    &[("reason", "status")],
                )
                .inc(1);
                return Err(PeerFailure {
                    status: Some(status),
                    reason: format!("answered {status}: {}", error_text(&body)),
                });
            }
            Ok(body)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(PeerFailure::new(
                "timeout",
                format!("no answer within {} ms", self.timeout.as_millis()),
            )),
        }
    }

    /// Sends a GET and returns the answer once its head is in (within `timeout`), its body
    /// unread (a tail streams it).
    pub(super) async fn open(
        &self,
        peer: &str,
        path_and_query: &str,
        auth: Option<&HeaderValue>,
        timeout: Duration,
    ) -> Result<hyper::Response<hyper::body::Incoming>, PeerFailure> {
        let uri: Uri = format!("{peer}{path_and_query}")
            .parse()
            .map_err(|e| PeerFailure::new("url", format!("bad peer url: {e}")))?;
        let headers: Vec<(HeaderName, HeaderValue)> = auth
            .map(|value| (AUTHORIZATION, value.clone()))
            .into_iter()
            .collect();
        self.client
            .get(&uri, &headers, timeout)
            .await
            .map_err(|reason| PeerFailure::new("connect", reason))
    }
}

/// The `error` of a JSON error body, else the body's start.
pub(super) fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}
