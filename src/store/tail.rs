//! Live tail: the store sink publishes every incoming batch here before indexing it, and
//! each `GET /v1/tail` client receives the matching events as server-sent events.
//!
//! A slow client never slows the pipeline: publishing only ever `try_send`s into the
//! client's bounded queue. When the queue is full the event is dropped for that client
//! alone, counted (`store_tail_dropped_events_total`), and the client is told in-band at its
//! next read with an `event: overflow` carrying the number dropped (like Logplex's L10
//! "buffer overflow" message).
//!
//! A tail never ends by itself, so it must end when shutdown starts: the API's graceful
//! shutdown waits for every response in progress, and an idle tail would hold the router up
//! for the whole `shutdown_timeout_secs`. Each stream watches a stop token; when it fires,
//! the stream sends what its queue already holds and ends.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::Frame;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::query::Query;
use crate::event::Event;
use crate::telemetry::{self, Counter};

/// Clients tailing one store at once; more get 503.
pub const MAX_SUBSCRIBERS: usize = 256;
/// A comment line sent when nothing else was, so idle connections stay open through proxies
/// and dead clients are noticed.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

pub struct TailHub {
    subscribers: Mutex<Vec<Subscriber>>,
    buffer_events: usize,
    dropped: Counter,
}

struct Subscriber {
    query: Query,
    tx: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
}

impl TailHub {
    pub fn new(id: &str, buffer_events: usize) -> Self {
        Self {
            subscribers: Mutex::new(Vec::new()),
            buffer_events: buffer_events.max(1),
            dropped: telemetry::counter("store_tail_dropped_events_total", &[("component_id", id)]),
        }
    }

    /// A new client for events matching `query`, whose stream ends when `stop` fires;
    /// `None` when too many are tailing.
    pub fn subscribe(&self, query: Query, stop: CancellationToken) -> Option<TailBody> {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|s| !s.tx.is_closed());
        if subscribers.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.buffer_events);
        let dropped = Arc::new(AtomicU64::new(0));
        subscribers.push(Subscriber {
            query,
            tx,
            dropped: dropped.clone(),
        });
        Some(TailBody {
            rx,
            dropped,
            stop: Box::pin(stop.cancelled_owned()),
            stopping: false,
            hello: true,
            keepalive: tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE),
        })
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| !s.tx.is_closed())
            .count()
    }

    /// Offers `events` to every client; never waits.
    pub fn publish(&self, events: &[Event]) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        if subscribers.is_empty() {
            return;
        }
        let mut closed = false;
        for event in events {
            let mut json: Option<Bytes> = None;
            for subscriber in subscribers.iter() {
                if !subscriber.query.matches(event) {
                    continue;
                }
                let line = json.get_or_insert_with(|| event_json(event)).clone();
                match subscriber.tx.try_send(line) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        subscriber.dropped.fetch_add(1, Ordering::Relaxed);
                        self.dropped.inc(1);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => closed = true,
                }
            }
        }
        if closed {
            subscribers.retain(|s| !s.tx.is_closed());
        }
    }
}

/// The event as tail clients see it: its fields, with the arrival time as `timestamp`
/// when it has none of its own (what the store would index it under).
fn event_json(event: &Event) -> Bytes {
    let source = serde_json::to_vec(&event.fields).unwrap_or_default();
    if super::index::event_timestamp(event).is_some() || event.meta.received_at == 0 {
        return Bytes::from(source);
    }
    Bytes::from(super::index::with_timestamp(
        &source,
        event.meta.received_at,
    ))
}

/// A `text/event-stream` body: `data: {event}` per event, `event: overflow` markers.
pub struct TailBody {
    rx: mpsc::Receiver<Bytes>,
    dropped: Arc<AtomicU64>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The stop token fired and the queue is closed: what it holds is sent, then the end.
    stopping: bool,
    hello: bool,
    keepalive: tokio::time::Interval,
}

/// Events coalesced into one body frame when several are waiting.
const MAX_EVENTS_PER_FRAME: usize = 256;

impl hyper::body::Body for TailBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if !this.stopping && this.stop.as_mut().poll(cx).is_ready() {
            // Closing refuses further events (the hub then forgets this client) but keeps
            // those already queued, so `poll_recv` yields them and then the end.
            this.stopping = true;
            this.rx.close();
        }
        if this.hello {
            // Sent at once, so the client knows the stream is live before any event.
            this.hello = false;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": tailing\n\n")))));
        }
        let dropped = this.dropped.swap(0, Ordering::AcqRel);
        if dropped > 0 {
            let marker = format!("event: overflow\ndata: {{\"dropped\":{dropped}}}\n\n");
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(marker)))));
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(first)) => {
                let mut out = BytesMut::with_capacity(first.len() + 8);
                push_event(&mut out, &first);
                for _ in 1..MAX_EVENTS_PER_FRAME {
                    match this.rx.try_recv() {
                        Ok(line) => push_event(&mut out, &line),
                        Err(_) => break,
                    }
                }
                this.keepalive.reset();
                Poll::Ready(Some(Ok(Frame::data(out.freeze()))))
            }
            // Stopping and drained, or the hub is gone: end the stream.
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

fn push_event(out: &mut BytesMut, json: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Map;
    use http_body_util::BodyExt;

    fn event(message: &str) -> Event {
        let mut fields = Map::new();
        fields.insert("message", message.into());
        Event::new(fields)
    }

    async fn next_text(body: &mut TailBody) -> String {
        let frame = body.frame().await.expect("frame").expect("ok");
        String::from_utf8(frame.into_data().expect("data").to_vec()).expect("utf8")
    }

    #[tokio::test]
    async fn a_full_client_loses_events_and_is_told() {
        let hub = TailHub::new("tail_test", 2);
        let mut slow = hub
            .subscribe(Query::All, CancellationToken::new())
            .expect("subscribes");
        let mut other = hub
            .subscribe(
                Query::parse("keep").expect("query"),
                CancellationToken::new(),
            )
            .expect("subscribes");
        let events: Vec<Event> = (0..5).map(|i| event(&format!("keep {i}"))).collect();
        hub.publish(&events);
        assert_eq!(next_text(&mut slow).await, ": tailing\n\n");
        let marker = next_text(&mut slow).await;
        assert_eq!(marker, "event: overflow\ndata: {\"dropped\":3}\n\n");
        let data = next_text(&mut slow).await;
        assert!(data.contains("keep 0") && data.contains("keep 1"), "{data}");
        // The other client was equally bounded, independently.
        assert_eq!(next_text(&mut other).await, ": tailing\n\n");
        assert!(next_text(&mut other).await.starts_with("event: overflow"));
        hub.publish(&[event("drop me")]);
        assert_eq!(hub.subscribers(), 2);
        drop(other);
        hub.publish(&[event("keep going")]);
        assert_eq!(hub.subscribers(), 1);
    }

    #[tokio::test]
    async fn a_stopped_stream_sends_what_it_holds_then_ends() {
        let hub = TailHub::new("tail_stop_test", 10);
        let stop = CancellationToken::new();
        let mut body = hub.subscribe(Query::All, stop.clone()).expect("subscribes");
        hub.publish(&[event("queued 0"), event("queued 1")]);
        stop.cancel();
        assert_eq!(next_text(&mut body).await, ": tailing\n\n");
        // The stream saw the stop: later events are refused and the client forgotten.
        hub.publish(&[event("too late")]);
        assert_eq!(hub.subscribers(), 0);
        let data = next_text(&mut body).await;
        assert!(
            data.contains("queued 0") && data.contains("queued 1"),
            "{data}"
        );
        assert!(!data.contains("too late"), "{data}");
        assert!(body.frame().await.is_none(), "the stream ended");
    }

    #[tokio::test]
    async fn an_idle_stream_ends_when_stopped() {
        let hub = TailHub::new("tail_idle_stop_test", 10);
        let stop = CancellationToken::new();
        let mut body = hub.subscribe(Query::All, stop.clone()).expect("subscribes");
        assert_eq!(next_text(&mut body).await, ": tailing\n\n");
        // Waiting with nothing queued, the stream is woken by the stop itself.
        let waiting = tokio::spawn(async move { body.frame().await.is_none() });
        tokio::task::yield_now().await;
        stop.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert!(matches!(ended, Ok(Ok(true))), "the stream ended");
    }
}
