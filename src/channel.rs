//! Bounded channels between component tasks, bounded by bytes as well as by count.
//!
//! A count bound alone lets a queue of large events grow without limit in memory, so each
//! batch takes permits for its estimated size from a semaphore before it is queued and gives
//! them back when the receiver takes it. A batch larger than the whole bound takes all the
//! permits (it waits for an empty queue) rather than deadlocking.
//!
//! Architecture invariant: there is no unbounded channel on the data path.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use crate::ack::AckStatus;
use crate::event::{Batch, Delivery, SharedBatch};
use crate::telemetry::Counter;

/// How many batches a queue may hold regardless of their size. Batches are usually a few
/// hundred events, so this is far above what the byte bound lets through in practice; it only
/// stops floods of tiny batches.
const MAX_QUEUED_BATCHES: usize = 1024;

struct Queued {
    delivery: Delivery,
    permits: u32,
}

/// The sending half; cloned for every upstream output that feeds the same component.
#[derive(Clone)]
pub struct BatchSender {
    tx: mpsc::Sender<Queued>,
    bytes: Arc<Semaphore>,
    max_bytes: u32,
    queued_bytes: Counter,
    /// `Some` with `when_full = "drop_newest"`: counts events discarded because the queue
    /// was full, instead of waiting.
    drop_when_full: Option<Counter>,
}

pub struct BatchReceiver {
    rx: mpsc::Receiver<Queued>,
    bytes: Arc<Semaphore>,
    queued_bytes: Counter,
    released: u64,
}

/// The downstream component has stopped; its queue is gone.
#[derive(Debug, thiserror::Error)]
#[error("downstream component stopped")]
pub struct Closed;

/// Creates a queue holding at most `max_bytes` of events. `queued_bytes` counts bytes ever
/// queued; the receiver keeps its own count of released bytes, and the difference is the
/// current usage reported as a gauge.
pub fn channel(max_bytes: usize, queued_bytes: Counter) -> (BatchSender, BatchReceiver) {
    let max_bytes = max_bytes.clamp(1, u32::MAX as usize >> 1) as u32;
    let (tx, rx) = mpsc::channel(MAX_QUEUED_BATCHES);
    let bytes = Arc::new(Semaphore::new(max_bytes as usize));
    (
        BatchSender {
            tx,
            bytes: bytes.clone(),
            max_bytes,
            queued_bytes: queued_bytes.clone(),
            drop_when_full: None,
        },
        BatchReceiver {
            rx,
            bytes,
            queued_bytes,
            released: 0,
        },
    )
}

impl BatchSender {
    /// Switches this sender to `when_full = "drop_newest"`: a batch that does not fit is
    /// discarded and its events counted on `dropped`.
    pub fn drop_newest(mut self, dropped: Counter) -> Self {
        self.drop_when_full = Some(dropped);
        self
    }

    /// Queues a batch, waiting while the queue is full (this is how backpressure reaches
    /// the source: its read loop awaits here and stops reading its socket).
    /// A gauge probe of the bytes queued now; `None` once the queue is gone.
    pub fn usage_probe(&self) -> crate::telemetry::GaugeProbe {
        let bytes = Arc::downgrade(&self.bytes);
        let max = self.max_bytes as usize;
        Box::new(move || {
            let bytes = bytes.upgrade()?;
            Some(max.saturating_sub(bytes.available_permits()) as u64)
        })
    }

    pub async fn send(&self, batch: SharedBatch) -> Result<(), Closed> {
        let size = batch.size_estimate();
        self.send_sized(Delivery::new(batch), size).await
    }

    /// [`BatchSender::send`] of a consumer's delivery with the batch's size already
    /// estimated (a fan-out estimates once for all its consumers: the estimate walks every
    /// field of every event). A delivery that cannot be queued is dropped, which reports its
    /// events not delivered.
    pub async fn send_sized(&self, delivery: Delivery, size_estimate: usize) -> Result<(), Closed> {
        let size = size_estimate.clamp(1, self.max_bytes as usize) as u32;
        let permit = match &self.drop_when_full {
            None => self
                .bytes
                .clone()
                .acquire_many_owned(size)
                .await
                .map_err(|_| Closed)?,
            Some(dropped) => match self.bytes.clone().try_acquire_many_owned(size) {
                Ok(permit) => permit,
                Err(tokio::sync::TryAcquireError::Closed) => return Err(Closed),
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    // Dropped on purpose by configuration: stated delivered so that an
                    // acknowledging source is not stalled by a policy that chose
                    // availability over delivery.
                    dropped.inc(delivery.len() as u64);
                    delivery.finish(AckStatus::Delivered);
                    return Ok(());
                }
            },
        };
        // The receiver returns the permits when it takes the batch.
        permit.forget();
        self.queued_bytes.inc(u64::from(size));
        self.tx
            .send(Queued {
                delivery,
                permits: size,
            })
            .await
            .map_err(|_| Closed)
    }
}

impl BatchReceiver {
    /// The next batch, as this consumer's [`Delivery`]: settle it once its events'
    /// outcomes are stated.
    pub async fn recv(&mut self) -> Option<Delivery> {
        let queued = self.rx.recv().await?;
        Some(self.take(queued, 0).0)
    }

    /// Takes a queued batch if there is one, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        let queued = self.rx.try_recv().ok()?;
        Some(self.take(queued, 0).0)
    }

    /// `recv`, keeping the batch's room in the queue until the [`Held`] is dropped.
    pub async fn recv_held(&mut self) -> Option<(Delivery, Held)> {
        let queued = self.rx.recv().await?;
        Some(self.take(queued, u32::MAX))
    }

    /// [`BatchReceiver::try_recv`] keeping the batch's room, as `recv_held`.
    pub fn try_recv_held(&mut self) -> Option<(Delivery, Held)> {
        let queued = self.rx.try_recv().ok()?;
        Some(self.take(queued, u32::MAX))
    }

    /// Counts the batch out of the queue, giving back all but `hold` of its permits.
    fn take(&mut self, queued: Queued, hold: u32) -> (Delivery, Held) {
        let held = queued.permits.min(hold);
        self.bytes.add_permits((queued.permits - held) as usize);
        self.released += u64::from(queued.permits);
        let held = Held {
            bytes: self.bytes.clone(),
            permits: held as usize,
        };
        (queued.delivery, held)
    }

    /// Blocking receive for sinks that run on their own thread (file writes block).
    pub fn blocking_recv(&mut self) -> Option<Delivery> {
        let queued = self.rx.blocking_recv()?;
        Some(self.take(queued, 0).0)
    }

    /// Whether no batch is waiting right now (a sink can commit while its input is idle).
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes.get().saturating_sub(self.released)
    }
}

/// The queue room taken batches still hold, given back when dropped.
#[must_use = "dropping it gives the room back at once"]
pub struct Held {
    bytes: Arc<Semaphore>,
    permits: usize,
}

impl Held {
    /// Holds `other`'s room too, until this one is dropped.
    pub fn join(&mut self, mut other: Held) {
        self.permits += std::mem::take(&mut other.permits);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.bytes.add_permits(self.permits);
    }
}

/// One output of a component, feeding every component that lists it as an input.
///
/// Sending shares one `Arc<Batch>` between all consumers, so fan-out never deep-copies an
/// event. Sends go to consumers in turn; a full consumer queue holds up the rest, which is
/// what makes a slow sink slow its source instead of dropping events.
///
/// The consumer list is shared by every clone (a TCP source's connections each hold one)
/// and can be replaced while the producer runs ([`FanoutHandle::set`], a configuration
/// reload). Each send takes a snapshot of the list, so a batch goes either to the old
/// consumers or to the new ones, never half to each; the producer's next batch sees the new
/// list. Only the list (and a send in progress) holds the consumers' senders, so a consumer
/// taken out of every list sees its queue close once the sends in progress are done.
#[derive(Clone, Default)]
pub struct Fanout {
    consumers: Arc<Consumers>,
    /// Sees every batch this output sends (a live tap), before the consumers do.
    observer: Option<Arc<dyn BatchObserver>>,
}

#[derive(Default)]
struct Consumers {
    list: std::sync::Mutex<Arc<Vec<BatchSender>>>,
}

impl Consumers {
    fn snapshot(&self) -> Arc<Vec<BatchSender>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, senders: Vec<BatchSender>) {
        *self.list.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(senders);
    }

    /// Takes a consumer whose queue is gone out of the list, so later sends skip it.
    fn forget(&self, closed: &BatchSender) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if list.iter().any(|s| s.same_queue(closed)) {
            let kept = list
                .iter()
                .filter(|s| !s.same_queue(closed))
                .cloned()
                .collect();
            *list = Arc::new(kept);
        }
    }
}

/// A weak hold on a [`Fanout`]'s consumer list: it replaces the list while the producer
/// runs, and keeps nothing alive once the producer has ended (so queues still close).
#[derive(Clone)]
pub struct FanoutHandle(std::sync::Weak<Consumers>);

impl FanoutHandle {
    /// Replaces the consumers; false when the producer has ended.
    pub fn set(&self, senders: Vec<BatchSender>) -> bool {
        match self.0.upgrade() {
            Some(consumers) => {
                consumers.set(senders);
                true
            }
            None => false,
        }
    }

    pub fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

/// A weak hold on a queue's sending side: it makes a sender again while some producer
/// still feeds the queue, and does not keep the queue open by itself.
#[derive(Clone)]
pub struct WeakBatchSender {
    tx: mpsc::WeakSender<Queued>,
    bytes: Arc<Semaphore>,
    max_bytes: u32,
    queued_bytes: Counter,
    drop_when_full: Option<Counter>,
}

impl WeakBatchSender {
    pub fn upgrade(&self) -> Option<BatchSender> {
        Some(BatchSender {
            tx: self.tx.upgrade()?,
            bytes: self.bytes.clone(),
            max_bytes: self.max_bytes,
            queued_bytes: self.queued_bytes.clone(),
            drop_when_full: self.drop_when_full.clone(),
        })
    }
}

impl BatchSender {
    pub fn downgrade(&self) -> WeakBatchSender {
        WeakBatchSender {
            tx: self.tx.downgrade(),
            bytes: self.bytes.clone(),
            max_bytes: self.max_bytes,
            queued_bytes: self.queued_bytes.clone(),
            drop_when_full: self.drop_when_full.clone(),
        }
    }

    /// Whether both send into the same queue.
    pub fn same_queue(&self, other: &BatchSender) -> bool {
        self.tx.same_channel(&other.tx)
    }
}

/// Watches the batches leaving one output. `observe` runs on the sender's path for every
/// batch, so it must never wait, and it should cost one atomic load while nobody watches.
pub trait BatchObserver: Send + Sync {
    fn observe(&self, batch: &SharedBatch);
}

impl Fanout {
    pub fn new(senders: Vec<BatchSender>) -> Self {
        let fanout = Self::default();
        fanout.consumers.set(senders);
        fanout
    }

    /// This fan-out, with `observer` shown every batch it sends.
    pub fn observed_by(mut self, observer: Arc<dyn BatchObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The observer this fan-out shows its batches to, if any (a reload hands a replaced
    /// component's tap to its successor).
    pub fn observer(&self) -> Option<Arc<dyn BatchObserver>> {
        self.observer.clone()
    }

    /// A handle that replaces this fan-out's consumers (and its clones') at run time.
    pub fn handle(&self) -> FanoutHandle {
        FanoutHandle(Arc::downgrade(&self.consumers))
    }

    pub fn is_empty(&self) -> bool {
        self.consumers.snapshot().is_empty()
    }

    /// Sends to every consumer. Fails only if every consumer has stopped; callers check
    /// [`Fanout::is_empty`] first, since an output nobody consumes discards its events.
    pub async fn send(&mut self, batch: Batch) -> Result<(), Closed> {
        if batch.is_empty() {
            return Ok(());
        }
        let senders = self.consumers.snapshot();
        if senders.is_empty() {
            return Err(Closed);
        }
        let size = batch.size_estimate();
        // The last consumer gets this delivery; the others a copy made as they are reached.
        // Until then it stands for every consumer not yet reached: a send cancelled half-way
        // drops it unsettled, which reports the events not delivered.
        let mut rest = Some(Delivery::new(Arc::new(batch)));
        if let (Some(observer), Some(delivery)) = (&self.observer, &rest) {
            observer.observe(delivery.shared());
        }
        let mut delivered = false;
        for (i, sender) in senders.iter().enumerate() {
            let delivery = if i + 1 == senders.len() {
                rest.take().expect("taken only for the last consumer")
            } else {
                let shared = rest
                    .as_ref()
                    .expect("kept until the last consumer")
                    .shared();
                Delivery::new(shared.clone())
            };
            match sender.send_sized(delivery, size).await {
                Ok(()) => delivered = true,
                // A consumer that stopped (its task ended on a fatal error) is dropped from
                // the fan-out so that the others keep flowing.
                Err(Closed) => self.consumers.forget(sender),
            }
        }
        if delivered {
            Ok(())
        } else {
            Err(Closed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use bytes::Bytes;

    fn batch_of(n: usize, line_len: usize) -> Batch {
        Batch::new(
            (0..n)
                .map(|_| Event::from_message(Bytes::from(vec![b'x'; line_len])))
                .collect(),
        )
    }

    #[tokio::test]
    async fn an_observer_sees_every_batch_sent_before_the_consumers() {
        struct Seen(std::sync::Mutex<Vec<usize>>);
        impl BatchObserver for Seen {
            fn observe(&self, batch: &SharedBatch) {
                self.0.lock().unwrap().push(batch.len());
            }
        }
        let seen = Arc::new(Seen(std::sync::Mutex::new(Vec::new())));
        let (tx, mut rx) = channel(1 << 20, Counter::default());
        let mut out = Fanout::new(vec![tx]).observed_by(seen.clone());
        out.send(batch_of(3, 10)).await.unwrap();
        out.send(batch_of(0, 10)).await.unwrap();
        out.send(batch_of(2, 10)).await.unwrap();
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![3, 2],
            "empty batches are not sent"
        );
        assert_eq!(rx.recv().await.expect("first").shared().len(), 3);
    }

    #[tokio::test]
    async fn consumers_replaced_at_run_time_take_the_next_batch_and_a_dropped_one_closes() {
        let (a_tx, mut a_rx) = channel(1 << 20, Counter::default());
        let (b_tx, mut b_rx) = channel(1 << 20, Counter::default());
        let weak_b = b_tx.downgrade();
        let mut out = Fanout::new(vec![a_tx]);
        let clone = out.clone();
        let handle = clone.handle();
        out.send(batch_of(1, 10)).await.unwrap();
        // Every clone sees the new list; the old consumer's queue closes once no list
        // holds its sender.
        assert!(handle.set(vec![b_tx]));
        out.send(batch_of(2, 10)).await.unwrap();
        assert_eq!(a_rx.recv().await.expect("before").shared().len(), 1);
        assert!(
            a_rx.recv().await.is_none(),
            "a consumer taken out sees its queue close"
        );
        assert_eq!(b_rx.recv().await.expect("after").shared().len(), 2);
        assert!(weak_b.upgrade().is_some(), "the list keeps the queue open");
        drop((out, clone));
        assert!(!handle.is_alive(), "the handle keeps nothing alive");
        assert!(weak_b.upgrade().is_none());
        assert!(b_rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn send_waits_while_bytes_are_full_and_resumes_after_recv() {
        let one = batch_of(10, 100).size_estimate();
        let (tx, mut rx) = channel(one * 2, Counter::default());
        tx.send(Arc::new(batch_of(10, 100))).await.unwrap();
        tx.send(Arc::new(batch_of(10, 100))).await.unwrap();
        let blocked = tx.send(Arc::new(batch_of(10, 100)));
        tokio::pin!(blocked);
        assert!(
            futures_poll_once(blocked.as_mut()).await.is_none(),
            "third batch must wait for room"
        );
        assert_eq!(rx.queued_bytes(), 2 * one as u64);
        rx.recv().await.unwrap().settle();
        blocked.await.unwrap();
        assert_eq!(rx.queued_bytes(), 2 * one as u64);
    }

    #[tokio::test]
    async fn drop_newest_discards_and_counts_instead_of_waiting() {
        let one = batch_of(10, 100).size_estimate();
        let dropped = Counter::default();
        let (tx, mut rx) = channel(one, Counter::default());
        let tx = tx.drop_newest(dropped.clone());
        tx.send(Arc::new(batch_of(10, 100))).await.unwrap();
        tx.send(Arc::new(batch_of(10, 100))).await.unwrap();
        assert_eq!(dropped.get(), 10);
        assert_eq!(rx.recv().await.unwrap().len(), 10);
        tx.send(Arc::new(batch_of(10, 100))).await.unwrap();
        assert_eq!(
            dropped.get(),
            10,
            "room again after the receiver took a batch"
        );
    }

    #[tokio::test]
    async fn oversized_batch_waits_for_empty_queue_instead_of_deadlocking() {
        let (tx, mut rx) = channel(1024, Counter::default());
        tx.send(Arc::new(batch_of(100, 100))).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 100);
    }

    #[tokio::test]
    async fn fanout_shares_one_batch_between_consumers() {
        let (a_tx, mut a_rx) = channel(1 << 20, Counter::default());
        let (b_tx, mut b_rx) = channel(1 << 20, Counter::default());
        let mut fanout = Fanout::new(vec![a_tx, b_tx]);
        fanout.send(batch_of(3, 10)).await.unwrap();
        let a = a_rx.recv().await.unwrap();
        let b = b_rx.recv().await.unwrap();
        assert!(
            Arc::ptr_eq(a.shared(), b.shared()),
            "fan-out must not copy the batch"
        );
    }

    #[tokio::test]
    async fn fanout_drops_stopped_consumer_and_keeps_feeding_the_rest() {
        let (a_tx, a_rx) = channel(1 << 20, Counter::default());
        let (b_tx, mut b_rx) = channel(1 << 20, Counter::default());
        drop(a_rx);
        let mut fanout = Fanout::new(vec![a_tx, b_tx]);
        fanout.send(batch_of(1, 10)).await.unwrap();
        assert_eq!(b_rx.recv().await.unwrap().len(), 1);
    }

    fn acked_batch() -> (Batch, crate::ack::AckReceiver) {
        let (token, rx) = crate::ack::AckToken::new();
        let mut batch = batch_of(2, 10);
        for event in &mut batch.events {
            event.meta.ack = Some(token.clone());
        }
        (batch, rx)
    }

    #[tokio::test]
    async fn batches_left_in_a_dropped_queue_are_not_delivered() {
        let (tx, rx) = channel(1 << 20, Counter::default());
        let (batch, ack) = acked_batch();
        tx.send(Arc::new(batch)).await.unwrap();
        drop(rx);
        assert_eq!(ack.await.unwrap(), AckStatus::Errored);
    }

    #[tokio::test]
    async fn a_fanout_consumer_that_stopped_fails_what_the_others_delivered() {
        let (a_tx, mut a_rx) = channel(1 << 20, Counter::default());
        let (b_tx, b_rx) = channel(1 << 20, Counter::default());
        drop(b_rx);
        let mut fanout = Fanout::new(vec![a_tx, b_tx]);
        let (batch, ack) = acked_batch();
        fanout.send(batch).await.unwrap();
        drop(fanout);
        a_rx.recv().await.unwrap().finish(AckStatus::Delivered);
        assert_eq!(ack.await.unwrap(), AckStatus::Errored);
    }

    #[tokio::test]
    async fn a_cancelled_fanout_send_fails_the_consumers_it_did_not_reach() {
        let one = batch_of(2, 10).size_estimate();
        let (a_tx, mut a_rx) = channel(1 << 20, Counter::default());
        // Full: the send to `b` waits, and is cancelled there.
        let (b_tx, mut b_rx) = channel(one, Counter::default());
        b_tx.send(Arc::new(batch_of(2, 10))).await.unwrap();
        let mut fanout = Fanout::new(vec![a_tx, b_tx]);
        let (batch, ack) = acked_batch();
        {
            let send = fanout.send(batch);
            tokio::pin!(send);
            assert!(futures_poll_once(send.as_mut()).await.is_none());
        }
        a_rx.recv().await.unwrap().finish(AckStatus::Delivered);
        b_rx.recv().await.unwrap().settle();
        drop(fanout);
        assert_eq!(ack.await.unwrap(), AckStatus::Errored);
    }

    #[tokio::test]
    async fn drop_newest_states_what_it_drops_delivered() {
        let one = batch_of(2, 10).size_estimate();
        let (tx, mut rx) = channel(one, Counter::default());
        let tx = tx.drop_newest(Counter::default());
        tx.send(Arc::new(batch_of(2, 10))).await.unwrap();
        let (batch, ack) = acked_batch();
        tx.send(Arc::new(batch)).await.unwrap();
        assert_eq!(ack.await.unwrap(), AckStatus::Delivered);
        rx.recv().await.unwrap().settle();
    }

    /// Polls a future once; `None` if it is still pending.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(move |cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
