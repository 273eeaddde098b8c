//! The pods of this node from the Kubernetes API: a list, then a watch from the list's
//! `resourceVersion` (`GET /api/v1/pods?fieldSelector=spec.nodeName=NODE`, then the same
//! with `watch=1`), kept in the [`PodCache`].
//!
//! The API is a help, not a dependency: while it cannot be reached, answers an error or
//! sends what is not JSON, the source keeps reading files with what their paths say; each
//! failure is counted (`component_kubernetes_api_errors_total{reason}`) and logged at a
//! limited rate, and the list is tried again after a backoff growing to 30 s. A watch that
//! ends (the server's `timeoutSeconds`) is resumed from the last version seen; one the
//! server says is too old (410 Gone) starts again from a list.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http_body_util::{BodyExt, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::Uri;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::pods::{Pod, PodCache, PodMeta};
use crate::delivery::http::{bearer, HttpClient};
use crate::delivery::retry::{Backoff, RetryConfig};
use crate::telemetry::{self, Counter, LogLimiter};

/// A list answer longer than this is abandoned: a node's pods take far less (110 pods of
/// 20 KiB are 2 MiB), and the router's memory stays bounded whatever the server sends.
const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;
/// The same for one watch event (one pod).
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;
/// How long a request may wait for the answer's head, and a list for its body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The server ends a watch after this (we ask it to), so a silently dead connection is
/// noticed; with bookmarks, an idle watch still hears from the server every minute.
const WATCH_TIMEOUT_SECS: u64 = 290;
/// A watch that sends nothing for this long is given up and resumed.
const WATCH_IDLE: Duration = Duration::from_secs(WATCH_TIMEOUT_SECS + 60);

#[derive(Debug, thiserror::Error)]
pub(super) enum ApiError {
    #[error("cannot reach the kubernetes api: {0}")]
    Request(String),
    #[error("kubernetes api answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the watch's version is too old (410 gone)")]
    Gone,
    #[error("invalid json from the kubernetes api: {0}")]
    Json(String),
    #[error("kubernetes api answer longer than {0} bytes")]
    TooLong(usize),
    #[error("cannot read token file {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ApiError {
    /// The `reason` label of the error counter.
    fn reason(&self) -> &'static str {
        match self {
            ApiError::Request(_) => "request",
            ApiError::Status { .. } | ApiError::Gone => "status",
            ApiError::Json(_) => "invalid_json",
            ApiError::TooLong(_) => "too_long",
            ApiError::Token { .. } => "token",
        }
    }
}

/// `{"metadata": {"resourceVersion"}, "items": [...]}`; items are read one by one, so one
/// bad pod does not lose the others.
#[derive(Deserialize)]
struct PodList {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<serde_json::Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default)]
    resource_version: String,
}

/// One line of a watch: `{"type": "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR",
/// "object": ...}`.
#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

/// The object of an `ERROR` watch event (a `v1.Status`).
#[derive(Default, Deserialize)]
#[serde(default)]
struct Status {
    code: u16,
    message: String,
}

/// Where and how to reach the API, resolved at start.
pub(super) struct Api {
    pub(super) client: HttpClient,
    /// `https://host:port`, no trailing slash.
    pub(super) base: String,
    pub(super) token_file: Option<PathBuf>,
}

pub(super) struct Watcher {
    pub(super) id: Arc<str>,
    pub(super) api: Api,
    pub(super) node: Option<String>,
    pub(super) annotations: Vec<String>,
    pub(super) cache: Arc<RwLock<PodCache>>,
    limiter: LogLimiter,
    events: Counter,
}

impl Watcher {
    pub(super) fn new(
        id: Arc<str>,
        api: Api,
        node: Option<String>,
        annotations: Vec<String>,
        cache: Arc<RwLock<PodCache>>,
    ) -> Self {
        let events = telemetry::counter(
            "component_kubernetes_watch_events_total",
            &[("component_id", &id)],
        );
        Self {
            id,
            api,
            node,
            annotations,
            cache,
            limiter: LogLimiter::default(),
            events,
        }
    }

    /// Lists and watches until `shutdown`; `synced` is answered after the first list (and
    /// dropped if it fails, so the source does not wait for an API that is down).
    pub(super) async fn run(mut self, shutdown: CancellationToken, synced: oneshot::Sender<()>) {
        let mut synced = Some(synced);
        let mut backoff = new_backoff();
        loop {
            let error = tokio::select! {
                _ = shutdown.cancelled() => return,
                error = self.list_and_watch(&mut synced, &mut backoff) => error,
            };
            synced = None;
            self.failed(&error);
            let delay = backoff.next_delay().unwrap_or(Duration::from_secs(30));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn failed(&mut self, error: &ApiError) {
        telemetry::counter(
            "component_kubernetes_api_errors_total",
            &[("component_id", &self.id), ("reason", error.reason())],
        )
        .inc(1);
        if let Some(suppressed) = self.limiter.check() {
            tracing::warn!(component_id = %self.id, %error, suppressed, "kubernetes api: events keep the fields their path gives until it answers");
        }
    }

    /// Returns only on an error (a watch that ends normally is resumed).
    async fn list_and_watch(
        &mut self,
        synced: &mut Option<oneshot::Sender<()>>,
        backoff: &mut Backoff,
    ) -> ApiError {
        let mut version = match self.list().await {
            Ok(version) => version,
            Err(error) => return error,
        };
        if let Some(tx) = synced.take() {
            let _ = tx.send(());
        }
        *backoff = new_backoff();
        loop {
            version = match self.watch(version).await {
                Ok(version) => version,
                Err(error) => return error,
            };
        }
    }

    fn uri(&self, watch: Option<&str>) -> Result<Uri, ApiError> {
        let mut query = Vec::new();
        if let Some(node) = &self.node {
            query.push(format!("fieldSelector=spec.nodeName%3D{}", encode(node)));
        }
        if let Some(version) = watch {
            query.push(format!(
                "watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={WATCH_TIMEOUT_SECS}",
                encode(version)
            ));
        }
        let uri = format!("{}/api/v1/pods?{}", self.api.base, query.join("&"));
        uri.parse()
            .map_err(|e| ApiError::Request(format!("invalid url {uri}: {e}")))
    }

    fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        let Some(path) = &self.api.token_file else {
            return Ok(Vec::new());
        };
        // Read at each request: projected service account tokens are rotated on disk.
        let token = std::fs::read_to_string(path).map_err(|source| ApiError::Token {
            path: path.clone(),
            source,
        })?;
        bearer(Some(token.trim())).map_err(|_| ApiError::Token {
            path: path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a valid header value",
            ),
        })
    }

    async fn get(
        &self,
        watch: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ApiError> {
        let uri = self.uri(watch)?;
        let headers = self.headers()?;
        let response = self
            .api
            .client
            .get(&uri, &headers, REQUEST_TIMEOUT)
            .await
            .map_err(ApiError::Request)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.as_u16() == 410 {
            return Err(ApiError::Gone);
        }
        let body = Limited::new(response.into_body(), 1024)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        Err(ApiError::Status {
            status: status.as_u16(),
            body,
        })
    }

    /// Lists the pods, replaces what the cache knows; the list's version.
    async fn list(&mut self) -> Result<String, ApiError> {
        let response = self.get(None).await?;
        let body = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Limited::new(response.into_body(), MAX_LIST_BYTES).collect(),
        )
        .await
        .map_err(|_| ApiError::Request("list not read within the timeout".into()))?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::TooLong(MAX_LIST_BYTES)
            } else {
                ApiError::Request(e.to_string())
            }
        })?
        .to_bytes();
        let list: PodList =
            serde_json::from_slice(&body).map_err(|e| ApiError::Json(e.to_string()))?;
        let now = Instant::now();
        let mut listed = Vec::with_capacity(list.items.len());
        let mut metas = Vec::with_capacity(list.items.len());
        for item in list.items {
            match serde_json::from_value::<Pod>(item) {
                Ok(pod) if pod.metadata.uid.is_empty() => {
                    self.failed(&ApiError::Json("a pod without metadata.uid".into()))
                }
                Ok(pod) => metas.push(PodMeta::new(pod, &self.annotations)),
                Err(e) => self.failed(&ApiError::Json(e.to_string())),
            }
        }
        let mut full = 0;
        {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            for meta in metas {
                listed.push(meta.uid.clone());
                if !cache.upsert(meta, now) {
                    full += 1;
                }
            }
            cache.mark_missing_deleted(&listed, now);
        }
        self.warn_full(full);
        tracing::info!(component_id = %self.id, pods = listed.len(), version = %list.metadata.resource_version, "kubernetes api: pods listed");
        Ok(list.metadata.resource_version)
    }

    fn warn_full(&mut self, full: usize) {
        if full > 0 {
            if let Some(suppressed) = self.limiter.check() {
                tracing::warn!(component_id = %self.id, pods = full, suppressed, "kubernetes api: pod cache full (max_pods); their events get the fields their path gives");
            }
        }
    }

    /// Follows the watch from `version` until the server ends it; the last version seen.
    async fn watch(&mut self, mut version: String) -> Result<String, ApiError> {
        let response = self.get(Some(&version)).await?;
        let mut body = response.into_body();
        let mut buf = BytesMut::new();
        loop {
            let frame = match tokio::time::timeout(WATCH_IDLE, body.frame()).await {
                Err(_) => return Ok(version), // silent too long: resumed
                Ok(None) => return Ok(version),
                Ok(Some(Err(e))) => return Err(ApiError::Request(e.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            buf.extend_from_slice(&data);
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line = buf.split_to(end + 1);
                self.apply(&line[..end], &mut version)?;
            }
            if buf.len() > MAX_EVENT_BYTES {
                return Err(ApiError::TooLong(MAX_EVENT_BYTES));
            }
        }
    }

    /// Applies one watch event. Invalid JSON is counted and skipped; an `ERROR` event
    /// ends the watch.
    fn apply(&mut self, line: &[u8], version: &mut String) -> Result<(), ApiError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let event: WatchEvent = match serde_json::from_slice(line) {
            Ok(event) => event,
            Err(e) => {
                self.failed(&ApiError::Json(e.to_string()));
                return Ok(());
            }
        };
        let now = Instant::now();
        match event.kind.as_str() {
            "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" => {
                let pod = match serde_json::from_value::<Pod>(event.object) {
                    Ok(pod) => pod,
                    Err(e) => {
                        self.failed(&ApiError::Json(e.to_string()));
                        return Ok(());
                    }
                };
                if event.kind != "BOOKMARK" && pod.metadata.uid.is_empty() {
                    self.failed(&ApiError::Json("a pod without metadata.uid".into()));
                    return Ok(());
                }
                if !pod.metadata.resource_version.is_empty() {
                    version.clone_from(&pod.metadata.resource_version);
                }
                let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
                match event.kind.as_str() {
                    "DELETED" => cache.delete(&pod.metadata.uid, now),
                    "BOOKMARK" => {}
                    _ => {
                        let full = !cache.upsert(PodMeta::new(pod, &self.annotations), now);
                        drop(cache);
                        self.warn_full(usize::from(full));
                    }
                }
            }
            "ERROR" => {
                let status: Status = serde_json::from_value(event.object).unwrap_or_default();
                return Err(match status.code {
                    410 => ApiError::Gone,
                    code => ApiError::Status {
                        status: code,
                        body: status.message,
                    },
                });
            }
            other => self.failed(&ApiError::Json(format!(
                "unknown watch event type `{other}`"
            ))),
        }
        // Counted once applied: tests wait on it before writing what must see the change.
        self.events.inc(1);
        Ok(())
    }
}

fn new_backoff() -> Backoff {
    RetryConfig {
        initial_backoff_ms: 500,
        max_backoff_secs: 30,
        max_attempts: None,
    }
    .backoff()
}

/// Percent-encodes what is not unreserved in a query value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watcher(id: &str) -> Watcher {
        Watcher::new(
            id.into(),
            Api {
                client: HttpClient::plain(),
                base: "http://127.0.0.1:1".into(),
                token_file: None,
            },
            Some("node-1".into()),
            Vec::new(),
            Arc::new(RwLock::new(PodCache::new(10, Duration::from_secs(60)))),
        )
    }

    fn errors(id: &str, reason: &str) -> u64 {
        telemetry::counter_value(
            "component_kubernetes_api_errors_total",
            &[("component_id", id), ("reason", reason)],
        )
    }

    #[test]
    fn bad_watch_lines_are_counted_never_fatal() {
        let id = "watch_bad_lines";
        let mut w = watcher(id);
        let mut version = "1".to_string();
        let deep = "[".repeat(10_000);
        for line in [
            "{not json",
            "[]",
            r#"{"type":"ADDED"}"#,
            r#"{"type":"ADDED","object":[]}"#,
            r#"{"type":"ADDED","object":{"metadata":{"uid":"u","labels":{"a":1}}}}"#,
            r#"{"type":"SURPRISE","object":{}}"#,
            deep.as_str(),
        ] {
            assert!(w.apply(line.as_bytes(), &mut version).is_ok(), "{line}");
        }
        assert_eq!(errors(id, "invalid_json"), 7);
        assert_eq!(version, "1");
        assert_eq!(w.cache.read().unwrap().len(), 0);

        let added = r#"{"type":"ADDED","object":{"metadata":{"uid":"u","resourceVersion":"7","labels":{"a":"b"}}}}"#;
        w.apply(added.as_bytes(), &mut version).unwrap();
        assert_eq!(version, "7");
        assert_eq!(w.cache.read().unwrap().get("u").unwrap().labels["a"], "b");
        let bookmark =
            r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9"}}}"#;
        w.apply(bookmark.as_bytes(), &mut version).unwrap();
        assert_eq!(version, "9");
        for (line, gone) in [
            (
                r#"{"type":"ERROR","object":{"code":410,"message":"too old"}}"#,
                true,
            ),
            (
                r#"{"type":"ERROR","object":{"code":500,"message":"boom"}}"#,
                false,
            ),
            (r#"{"type":"ERROR","object":"?"}"#, false),
        ] {
            let error = w.apply(line.as_bytes(), &mut version).unwrap_err();
            assert_eq!(matches!(error, ApiError::Gone), gone, "{line}: {error}");
        }
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("node-1.example"), "node-1.example");
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
