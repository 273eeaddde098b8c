//! A federated `/v1/tail`: every peer's live tail merged into one stream of server-sent
//! events, in the order they arrive (a live stream has no global order to wait for).
//!
//! One task per peer follows that peer's tail (`local=1`), cuts it into whole messages and
//! passes on those that carry data (events, overflow markers); its keepalives stay behind,
//! this stream sends its own. A peer that cannot be reached, refuses, ends its stream or
//! falls silent for three keepalive periods is retried with backoff (1 s doubling to 30 s)
//! while the client stays. Whenever the set of missing peers changes, an
//! `event: partial` message says which are missing and why (`{"partial": false, ...}` once
//! every peer answers again).
//!
//! Bounded: the client's queue holds [`QUEUE_MESSAGES`] messages; a peer task waits when it
//! is full, so a slow client slows the peers' streams to it, and each peer's own tail hub
//! then drops for this client and says so in-band (`event: overflow`), as it does for any
//! slow client. A message longer than [`MAX_MESSAGE_BYTES`] ends that peer's stream.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::scatter::Scatter;
use crate::api::{HttpResponse, TailPermit};
use crate::store::tail::KEEPALIVE;

/// Messages queued for the client.
const QUEUE_MESSAGES: usize = 1024;
/// The longest message taken from a peer's stream.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The peers' states, rendered into `event: partial` messages when they change.
#[derive(Default)]
struct Missing {
    /// Peer → why it is missing; peers that answer are not in it.
    reasons: BTreeMap<String, String>,
}

impl Missing {
    fn message(&self) -> Bytes {
        let missing: Vec<serde_json::Value> = self
            .reasons
            .iter()
            .map(|(peer, reason)| serde_json::json!({"peer": peer, "reason": reason}))
            .collect();
        let data = serde_json::json!({"partial": !missing.is_empty(), "missing": missing});
        Bytes::from(format!("event: partial\ndata: {data}\n\n"))
    }
}

/// The streamed answer: peers' messages merged, with this stream's keepalives.
pub(super) fn merged_tail(
    scatter: Scatter,
    peers: &[String],
    path_and_query: String,
    auth: Option<HeaderValue>,
    permit: TailPermit,
    stop: CancellationToken,
) -> HttpResponse {
    let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
    let missing = Arc::new(Mutex::new(Missing::default()));
    let mut tasks = JoinSet::new();
    for peer in peers {
        tasks.spawn(follow_peer(
            scatter.clone(),
            peer.clone(),
            path_and_query.clone(),
            auth.clone(),
            tx.clone(),
            missing.clone(),
            stop.clone(),
        ));
    }
    let body = MergedTail {
        rx,
        hello: true,
        keepalive: tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE),
        _tasks: tasks,
        _permit: permit,
    };
    let mut response = Response::new(body.boxed());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Follows one peer's tail until `stop` or the client leaves (the queue closes),
/// reconnecting with backoff.
async fn follow_peer(
    scatter: Scatter,
    peer: String,
    path_and_query: String,
    auth: Option<HeaderValue>,
    tx: mpsc::Sender<Bytes>,
    missing: Arc<Mutex<Missing>>,
    stop: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let opened = tokio::select! {
            _ = stop.cancelled() => return,
            opened = scatter.open(&peer, &path_and_query, auth.as_ref(), scatter.timeout()) => opened,
        };
        let reason = match opened {
            Err(failure) => failure.reason,
            Ok(response) if response.status() != StatusCode::OK => {
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                format!("answered {status}: {}", super::scatter::error_text(&body))
            }
            Ok(response) => {
                if !set_missing(&missing, &peer, None, &tx).await {
                    return;
                }
                backoff = FIRST_BACKOFF;
                match relay(response, &tx, &stop).await {
                    Relayed::Stopped => return,
                    Relayed::Ended(reason) => reason,
                }
            }
        };
        crate::telemetry::counter("federation_peer_failures_total", &[("reason", "tail")]).inc(1);
        if !set_missing(&missing, &peer, Some(reason), &tx).await {
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tx.closed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Records `peer` as answering (`None`) or missing, and tells the client when that changed
/// the set. False when the client is gone.
async fn set_missing(
    missing: &Mutex<Missing>,
    peer: &str,
    reason: Option<String>,
    tx: &mpsc::Sender<Bytes>,
) -> bool {
    let message = {
        let mut state = missing.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match reason {
            None => state.reasons.remove(peer).is_some(),
            Some(reason) => {
                let was_missing = state.reasons.contains_key(peer);
                state.reasons.insert(peer.to_string(), reason);
                !was_missing
            }
        };
        changed.then(|| state.message())
    };
    match message {
        Some(message) => tx.send(message).await.is_ok(),
        None => !tx.is_closed(),
    }
}

enum Relayed {
    /// Shutdown started or the client left.
    Stopped,
    /// The peer's stream ended or broke, for this reason.
    Ended(String),
}

/// Passes one peer's data messages on until its stream ends.
async fn relay(
    response: hyper::Response<hyper::body::Incoming>,
    tx: &mpsc::Sender<Bytes>,
    stop: &CancellationToken,
) -> Relayed {
    let silence = KEEPALIVE * 3;
    let mut body = response.into_body();
    let mut pending = BytesMut::new();
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => return Relayed::Stopped,
            _ = tx.closed() => return Relayed::Stopped,
            frame = tokio::time::timeout(silence, body.frame()) => frame,
        };
        let data = match frame {
            Err(_) => {
                return Relayed::Ended(format!("nothing received for {} s", silence.as_secs()))
            }
            Ok(None) => return Relayed::Ended("the peer ended its stream".into()),
            Ok(Some(Err(error))) => return Relayed::Ended(crate::error_chain::error_chain(&error)),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        pending.extend_from_slice(&data);
        while let Some(end) = find_message_end(&pending) {
            let message = pending.split_to(end + 2).freeze();
            // Comments (`: keepalive`) are this hop's business; data goes on.
            let carries_data = message
                .split(|&b| b == b'\n')
                .any(|line| line.starts_with(b"data:") || line.starts_with(b"event:"));
            if carries_data && tx.send(message).await.is_err() {
                return Relayed::Stopped;
            }
        }
        if pending.len() > MAX_MESSAGE_BYTES {
            return Relayed::Ended(format!("a message longer than {MAX_MESSAGE_BYTES} bytes"));
        }
    }
}

/// Where the first message in `buffer` ends (the index of its blank line's first `\n`).
fn find_message_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|w| w == b"\n\n")
}

/// The body sent to the client.
struct MergedTail {
    rx: mpsc::Receiver<Bytes>,
    hello: bool,
    keepalive: tokio::time::Interval,
    /// Dropping the body (the client left) aborts the peer tasks, closing their streams.
    _tasks: JoinSet<()>,
    /// The API's slot for this stream.
    _permit: TailPermit,
}

impl hyper::body::Body for MergedTail {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.hello {
            this.hello = false;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": tailing\n\n")))));
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(first)) => {
                let mut out = BytesMut::from(&first[..]);
                while out.len() < 64 * 1024 {
                    match this.rx.try_recv() {
                        Ok(next) => out.extend_from_slice(&next),
                        Err(_) => break,
                    }
                }
                this.keepalive.reset();
                Poll::Ready(Some(Ok(Frame::data(out.freeze()))))
            }
            // Every peer task ended (shutdown started): the stream ends.
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.keepalive.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                    b": keepalive\n\n",
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_end_at_a_blank_line() {
        assert_eq!(find_message_end(b"data: {}\n\nda"), Some(8));
        assert_eq!(find_message_end(b"data: {}\n"), None);
        let mut missing = Missing::default();
        assert!(String::from_utf8_lossy(&missing.message()).contains("\"partial\":false"));
        missing
            .reasons
            .insert("http://a:1".into(), "refused".into());
        let text = String::from_utf8_lossy(&missing.message()).into_owned();
        assert!(text.starts_with("event: partial\ndata: {"), "{text}");
        assert!(
            text.contains("\"peer\":\"http://a:1\"") && text.ends_with("\n\n"),
            "{text}"
        );
    }
}
