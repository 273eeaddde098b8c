//! Live tail: the store sink publishes every incoming batch here before indexing it, and
//! each `GET /v1/tail` client receives the matching events as server-sent events.
//!
//! Neither a slow client nor a costly query slows the pipeline. Publishing hands the shared
//! batch to the hub's own matcher thread through a short bounded queue and never waits;
//! the matcher evaluates each client's query and only ever `try_send`s into the client's
//! bounded queue. When a client's queue is full the event is dropped for that client alone;
//! when the matcher itself is behind (many clients, costly wildcards) the whole batch is
//! dropped for every client. Either way it is counted (`store_tail_dropped_events_total`)
//! and each client is told in-band at its next read with an `event: overflow` carrying the
//! number it may have missed (like Logplex's L10 "buffer overflow" message). A batch waiting
//! in the matcher's queue holds its events' acknowledgement until it is matched: at most
//! [`MATCH_QUEUE_BATCHES`] batches' worth of matching.
//!
//! A tail never ends by itself, so it must end when shutdown starts: the API's graceful
//! shutdown waits for every response in progress, and an idle tail would hold the router up
//! for the whole `shutdown_timeout_secs`. Each stream watches a stop token; when it fires,
//! the stream sends what its queue already holds and ends.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::Frame;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::query::Query;
use crate::api::TailPermit;
use crate::event::{Event, SharedBatch};
use crate::telemetry::{self, Counter};

/// Clients tailing one store at once; more get 503.
pub const MAX_SUBSCRIBERS: usize = 256;
/// A comment line sent when nothing else was, so idle connections stay open through proxies
/// and dead clients are noticed.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// Batches waiting for the matcher thread; more are dropped for every client, counted.
pub const MATCH_QUEUE_BATCHES: usize = 16;

pub struct TailHub {
    clients: Arc<Clients>,
    /// The matcher thread's queue, started with the first client.
    matcher: Mutex<Option<std::sync::mpsc::SyncSender<SharedBatch>>>,
    buffer_events: usize,
}

/// What the hub and its matcher thread share.
struct Clients {
    subscribers: Mutex<Vec<Subscriber>>,
    /// Clients subscribed, so that publishing without any costs one atomic load.
    active: AtomicUsize,
    /// Events dropped for every client because the matcher was behind, not yet told.
    missed: AtomicU64,
    dropped: Counter,
}

struct Subscriber {
    query: Query,
    tx: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
}

impl TailHub {
    pub fn new(id: &str, buffer_events: usize) -> Self {
        Self::counting(
            telemetry::counter("store_tail_dropped_events_total", &[("component_id", id)]),
            buffer_events,
        )
    }

    /// A hub counting the events its clients miss in `dropped`.
    pub fn counting(dropped: Counter, buffer_events: usize) -> Self {
        Self {
            clients: Arc::new(Clients {
                subscribers: Mutex::new(Vec::new()),
                active: AtomicUsize::new(0),
                missed: AtomicU64::new(0),
                dropped,
            }),
            matcher: Mutex::new(None),
            buffer_events: buffer_events.max(1),
        }
    }

    /// A new client for events matching `query`, whose stream ends when `stop` fires;
    /// `None` when too many are tailing.
    pub fn subscribe(&self, query: Query, stop: CancellationToken) -> Option<TailBody> {
        Self::subscribe_to(&[self], query, stop)
    }

    /// One client for the events of every hub in `hubs` matching `query`, in one stream
    /// (a tap on several outputs); `None` when one of them has too many clients. Its queue
    /// is the first hub's size.
    pub fn subscribe_to(
        hubs: &[&TailHub],
        query: Query,
        stop: CancellationToken,
    ) -> Option<TailBody> {
        let first = hubs.first()?;
        let (tx, rx) = mpsc::channel(first.buffer_events);
        let dropped = Arc::new(AtomicU64::new(0));
        // Each hub once: its lock is held until the client is on every list.
        let mut unique: Vec<&TailHub> = Vec::with_capacity(hubs.len());
        for hub in hubs {
            if !unique.iter().any(|u| std::ptr::eq(*u, *hub)) {
                unique.push(hub);
            }
        }
        let mut locked = Vec::with_capacity(unique.len());
        for hub in unique {
            let mut subscribers = hub.clients.lock();
            hub.clients.forget_closed(&mut subscribers);
            if subscribers.len() >= MAX_SUBSCRIBERS {
                return None;
            }
            hub.start_matcher()?;
            locked.push((hub, subscribers));
        }
        for (hub, mut subscribers) in locked {
            subscribers.push(Subscriber {
                query: query.clone(),
                tx: tx.clone(),
                dropped: dropped.clone(),
            });
            hub.clients
                .active
                .store(subscribers.len(), Ordering::Release);
        }
        Some(TailBody {
            rx,
            dropped,
            stop: Box::pin(stop.cancelled_owned()),
            stopping: false,
            hello: true,
            keepalive: tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE),
            permit: None,
        })
    }

    pub fn subscribers(&self) -> usize {
        self.clients
            .lock()
            .iter()
            .filter(|s| !s.tx.is_closed())
            .count()
    }

    /// The matcher thread, started once; `None` when the system cannot start a thread
    /// (the client then gets a 503 like any refused one).
    fn start_matcher(&self) -> Option<()> {
        let mut matcher = self.matcher.lock().unwrap_or_else(|e| e.into_inner());
        if matcher.is_some() {
            return Some(());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<SharedBatch>(MATCH_QUEUE_BATCHES);
        let clients = self.clients.clone();
        let started = std::thread::Builder::new()
            .name("store-tail".into())
            .spawn(move || {
                // Ends when the hub (the queue's sender) is dropped.
                for batch in rx {
                    clients.offer(&batch.events);
                }
            });
        match started {
            Ok(_) => {
                *matcher = Some(tx);
                Some(())
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start the live tail's matcher thread");
                None
            }
        }
    }

    /// Hands `batch` to the matcher; never waits. When the matcher is behind, the batch
    /// is dropped for every client and each is told how many events it may have missed.
    pub fn publish(&self, batch: &SharedBatch) {
        if self.clients.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let matcher = self.matcher.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = matcher.as_ref() else {
            return;
        };
        if let Err(std::sync::mpsc::TrySendError::Full(batch)) = queue.try_send(batch.clone()) {
            // Told to the clients by the matcher, which holds their list (a full queue means
            // it has batches to go through, so it will be soon).
            self.clients
                .missed
                .fetch_add(batch.len() as u64, Ordering::AcqRel);
        }
    }

    /// Matches `events` against every client's query here and now (what the matcher thread
    /// does with each batch published).
    pub fn offer(&self, events: &[Event]) {
        self.clients.offer(events);
    }
}

/// A hub watching a component's output is a live tap on it.
impl crate::channel::BatchObserver for TailHub {
    fn observe(&self, batch: &SharedBatch) {
        self.publish(batch);
    }
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets clients that went away, so their queries are no longer evaluated.
    fn forget_closed(&self, subscribers: &mut Vec<Subscriber>) {
        subscribers.retain(|s| !s.tx.is_closed());
        self.active.store(subscribers.len(), Ordering::Release);
    }

    /// Offers `events` to every client; never waits for one.
    fn offer(&self, events: &[Event]) {
        let mut subscribers = self.lock();
        self.forget_closed(&mut subscribers);
        let missed = self.missed.swap(0, Ordering::AcqRel);
        if missed > 0 {
            for subscriber in subscribers.iter() {
                subscriber.dropped.fetch_add(missed, Ordering::Relaxed);
                self.dropped.inc(missed);
            }
        }
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
                // A client whose queue is full misses this event: told without encoding it,
                // so a stalled client costs the matcher (and the cores the pipeline shares
                // with it) a count per event, not a JSON encoding.
                if subscriber.tx.capacity() == 0 {
                    subscriber.dropped.fetch_add(1, Ordering::Relaxed);
                    self.dropped.inc(1);
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
            self.forget_closed(&mut subscribers);
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
    /// The API's slot for this stream, given back when the body is dropped (the client
    /// went away, or the stream ended).
    permit: Option<TailPermit>,
}

impl TailBody {
    /// Holds `permit` for as long as the stream lives.
    pub fn holding(mut self, permit: TailPermit) -> TailBody {
        self.permit = Some(permit);
        self
    }
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
        hub.offer(&events);
        assert_eq!(next_text(&mut slow).await, ": tailing\n\n");
        let marker = next_text(&mut slow).await;
        assert_eq!(marker, "event: overflow\ndata: {\"dropped\":3}\n\n");
        let data = next_text(&mut slow).await;
        assert!(data.contains("keep 0") && data.contains("keep 1"), "{data}");
        // The other client was equally bounded, independently.
        assert_eq!(next_text(&mut other).await, ": tailing\n\n");
        assert!(next_text(&mut other).await.starts_with("event: overflow"));
        hub.offer(&[event("drop me")]);
        assert_eq!(hub.subscribers(), 2);
        drop(other);
        hub.offer(&[event("keep going")]);
        assert_eq!(hub.subscribers(), 1);
    }

    #[tokio::test]
    async fn one_client_on_several_hubs_gets_each_hubs_events_once() {
        let (a, b) = (TailHub::new("tail_test", 16), TailHub::new("tail_test", 16));
        // `a` twice: a hub named twice (a tap on an output and on the inputs it feeds) is
        // subscribed once, and its lock is not taken twice.
        let mut body = TailHub::subscribe_to(&[&a, &b, &a], Query::All, CancellationToken::new())
            .expect("subscribes");
        assert_eq!((a.subscribers(), b.subscribers()), (1, 1));
        a.offer(&[event("from a")]);
        b.offer(&[event("from b")]);
        assert_eq!(next_text(&mut body).await, ": tailing\n\n");
        let data = next_text(&mut body).await;
        assert_eq!(data.matches("from a").count(), 1, "{data}");
        assert_eq!(data.matches("from b").count(), 1, "{data}");
    }

    fn batch(messages: &[&str]) -> SharedBatch {
        Arc::new(crate::event::Batch::new(
            messages.iter().map(|m| event(m)).collect(),
        ))
    }

    #[tokio::test]
    async fn published_batches_reach_clients_through_the_matcher() {
        let hub = TailHub::new("tail_matcher_test", 10);
        // Nobody tails: nothing is queued and no thread is started.
        hub.publish(&batch(&["unseen"]));
        assert!(hub.matcher.lock().expect("lock").is_none());
        let mut body = hub
            .subscribe(
                Query::parse("keep").expect("query"),
                CancellationToken::new(),
            )
            .expect("subscribes");
        hub.publish(&batch(&["keep 1", "skip 2", "keep 3"]));
        assert_eq!(next_text(&mut body).await, ": tailing\n\n");
        let mut data = String::new();
        while !data.contains("keep 3") {
            data.push_str(&next_text(&mut body).await);
        }
        assert!(
            data.contains("keep 1") && !data.contains("skip 2"),
            "{data}"
        );
        assert!(!data.contains("unseen"), "{data}");
    }

    /// The sink's side never waits for matching: while the matcher is held up (here by
    /// the test holding the clients' lock, as a costly query would), publishing returns at
    /// once, batches beyond the matcher's queue are dropped for every client, counted, and
    /// each client is told how many it may have missed.
    #[tokio::test]
    async fn a_matcher_behind_drops_whole_batches_and_tells_every_client() {
        let hub = TailHub::new("tail_behind_test", 10_000);
        let mut a = hub
            .subscribe(Query::All, CancellationToken::new())
            .expect("subscribes");
        let mut b = hub
            .subscribe(Query::All, CancellationToken::new())
            .expect("subscribes");
        let before = hub.clients.dropped.get();
        {
            let _held = hub.clients.lock();
            for _ in 0..MATCH_QUEUE_BATCHES + 3 {
                hub.publish(&batch(&["x", "y", "z"]));
            }
        }
        // At most one batch was taken off the queue before the matcher blocked, so at
        // least two of the three past the queue were dropped, for both clients.
        for body in [&mut a, &mut b] {
            assert_eq!(next_text(body).await, ": tailing\n\n");
            let marker = next_text(body).await;
            let missed: u64 = marker
                .strip_prefix("event: overflow\ndata: {\"dropped\":")
                .and_then(|rest| rest.strip_suffix("}\n\n"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("an overflow marker first: {marker}"));
            assert!(missed >= 2 * 3 && missed % 3 == 0, "{missed}");
            assert!(next_text(body).await.starts_with("data: "));
        }
        assert!(hub.clients.dropped.get() - before >= 2 * 2 * 3);
    }

    #[tokio::test]
    async fn a_stopped_stream_sends_what_it_holds_then_ends() {
        let hub = TailHub::new("tail_stop_test", 10);
        let stop = CancellationToken::new();
        let mut body = hub.subscribe(Query::All, stop.clone()).expect("subscribes");
        hub.offer(&[event("queued 0"), event("queued 1")]);
        stop.cancel();
        assert_eq!(next_text(&mut body).await, ": tailing\n\n");
        // The stream saw the stop: later events are refused and the client forgotten.
        hub.offer(&[event("too late")]);
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
