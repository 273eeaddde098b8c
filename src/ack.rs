//! Acknowledgement by ownership.
//!
//! A source that can acknowledge creates one [`AckToken`] per batch it reads and attaches a
//! clone to each event. Every copy of an event (fan-out shares batches, transforms may clone)
//! holds the token; the code that knows an outcome records it with [`AckToken::update`]. When
//! the last copy is dropped the merged status (the most severe one seen) is sent once to the
//! source on a oneshot channel.
//!
//! Delivery is never assumed: a token whose copies all dropped without anyone stating an
//! outcome resolves [`AckStatus::Errored`], and every consumer's hold on a batch (an
//! [`Obligation`], or a `Delivery` on a queue) reports its events errored when it is dropped
//! without being settled, as when a task is cancelled at the shutdown deadline with batches in
//! hand. An event dropped on purpose (filtered, sampled, `when_full = "drop_newest"`) is
//! stated delivered by the code that dropped it.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::telemetry::Histogram;

/// Outcome of delivering an event, ordered by severity: merging keeps the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum AckStatus {
    /// Written durably (or dropped on purpose by the pipeline).
    Delivered = 1,
    /// A transient failure: the source should retry or not commit.
    Errored = 2,
    /// A permanent failure: retrying will not help (sent to dead-letter where configured).
    Rejected = 3,
}

/// A token's state before anyone has stated an outcome: below every status, so that the
/// first update replaces it.
const UNSTATED: u8 = 0;

impl AckStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            // Nobody said the events were delivered: they were not.
            UNSTATED => AckStatus::Errored,
            1 => AckStatus::Delivered,
            2 => AckStatus::Errored,
            _ => AckStatus::Rejected,
        }
    }
}

#[derive(Debug)]
struct AckShared {
    status: AtomicU8,
    notify: Option<oneshot::Sender<AckStatus>>,
    /// When the batch was read, and where to record how long acknowledgement took.
    latency: Option<(Instant, Histogram)>,
    /// For a token standing for several (an event joined from many, by `multiline`): the
    /// tokens it stands for, each told this token's outcome when it resolves.
    parents: Vec<AckToken>,
    /// Where a source that answers per record (OTLP's `partial_success`) counts the events
    /// stated rejected.
    rejections: Option<RejectedCount>,
}

impl Drop for AckShared {
    fn drop(&mut self) {
        if let Some((read_at, histogram)) = &self.latency {
            histogram.observe(read_at.elapsed());
        }
        if !self.parents.is_empty() {
            let status = AckStatus::from_u8(self.status.load(Ordering::Acquire));
            for parent in &self.parents {
                parent.update(status);
            }
        }
        if let Some(tx) = self.notify.take() {
            // The source may have stopped waiting (shutdown); nothing to report to then.
            let _ = tx.send(AckStatus::from_u8(self.status.load(Ordering::Acquire)));
        }
    }
}

/// A drop-based acknowledgement token shared by every copy of the events of one batch.
#[derive(Debug, Clone)]
pub struct AckToken(Arc<AckShared>);

/// The source's end: resolves with the merged status once every copy is dropped.
pub type AckReceiver = oneshot::Receiver<AckStatus>;

impl AckToken {
    pub fn new() -> (AckToken, AckReceiver) {
        let (tx, rx) = oneshot::channel();
        let shared = AckShared {
            status: AtomicU8::new(UNSTATED),
            notify: Some(tx),
            latency: None,
            parents: Vec::new(),
            rejections: None,
        };
        (AckToken(Arc::new(shared)), rx)
    }

    /// A token that records, when it resolves, the time since now in `latency`.
    pub fn timed(latency: &Histogram) -> (AckToken, AckReceiver) {
        let (tx, rx) = oneshot::channel();
        let shared = AckShared {
            status: AtomicU8::new(UNSTATED),
            notify: Some(tx),
            latency: Some((Instant::now(), latency.clone())),
            parents: Vec::new(),
            rejections: None,
        };
        (AckToken(Arc::new(shared)), rx)
    }

    /// [`AckToken::timed`], also counting the events stated rejected one by one
    /// ([`AckToken::update_event`]). A fan-out where two sinks reject the same event
    /// counts it twice: the count is the most that were rejected, not an exact number.
    pub fn timed_counting(latency: &Histogram) -> (AckToken, AckReceiver, RejectedCount) {
        let (tx, rx) = oneshot::channel();
        let rejections = RejectedCount::default();
        let shared = AckShared {
            status: AtomicU8::new(UNSTATED),
            notify: Some(tx),
            latency: Some((Instant::now(), latency.clone())),
            parents: Vec::new(),
            rejections: Some(rejections.clone()),
        };
        (AckToken(Arc::new(shared)), rx, rejections)
    }

    /// [`AckToken::update`] for one event's outcome, counted when the token counts
    /// rejections.
    pub fn update_event(&self, status: AckStatus) {
        if status == AckStatus::Rejected {
            if let Some(count) = &self.0.rejections {
                count.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.update(status);
    }

    /// Merges `status` into the token: the most severe status wins.
    pub fn update(&self, status: AckStatus) {
        self.0.status.fetch_max(status as u8, Ordering::AcqRel);
    }

    /// Whether both are copies of one token (the same source batch).
    pub fn same_as(&self, other: &AckToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The events of a token stated rejected, readable once the token resolved.
#[derive(Debug, Clone, Default)]
pub struct RejectedCount(Arc<AtomicU32>);

impl RejectedCount {
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

/// A consumer's duty to state what became of some events after it has taken them apart
/// (a transform owns its input's events while it sends them on). Dropped without
/// [`Obligation::discharge`], it reports them errored.
#[derive(Debug, Default)]
#[must_use = "dropping an obligation reports its events not delivered"]
pub struct Obligation {
    tokens: Vec<AckToken>,
}

impl Obligation {
    /// The distinct tokens of `tokens`, in order. Events of one source batch share a token
    /// and travel together, so comparing with the previous one finds nearly all repeats;
    /// a rare repeat further apart is only updated twice.
    pub fn of<'a>(tokens: impl IntoIterator<Item = Option<&'a AckToken>>) -> Self {
        let mut distinct: Vec<AckToken> = Vec::new();
        for token in tokens.into_iter().flatten() {
            if distinct.last().is_some_and(|last| last.same_as(token)) {
                continue;
            }
            distinct.push(token.clone());
        }
        Self { tokens: distinct }
    }

    /// Adds `token` to the tokens held (once, when it repeats the last one).
    pub fn push(&mut self, token: Option<&AckToken>) {
        if let Some(token) = token {
            if !self.tokens.last().is_some_and(|last| last.same_as(token)) {
                self.tokens.push(token.clone());
            }
        }
    }

    /// Takes on the tokens `other` holds.
    pub fn append(&mut self, mut other: Obligation) {
        for token in std::mem::take(&mut other.tokens) {
            self.push(Some(&token));
        }
    }

    /// Hands the duty on to one token for an event made of the events held (lines joined by
    /// `multiline`): the token itself when they all had one, else a token that, when it
    /// resolves, states its outcome for each of theirs, so the joined event's fate becomes
    /// every part's. `None` when none of them had a token.
    pub fn into_token(mut self) -> Option<AckToken> {
        let mut tokens = std::mem::take(&mut self.tokens);
        match tokens.len() {
            0 => None,
            1 => tokens.pop(),
            _ => Some(AckToken(Arc::new(AckShared {
                status: AtomicU8::new(UNSTATED),
                notify: None,
                latency: None,
                parents: tokens,
                rejections: None,
            }))),
        }
    }

    /// States `status` for every event held, and releases them.
    pub fn discharge(mut self, status: AckStatus) {
        for token in std::mem::take(&mut self.tokens) {
            token.update(status);
        }
    }
}

impl Drop for Obligation {
    fn drop(&mut self) {
        for token in &self.tokens {
            token.update(AckStatus::Errored);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_once_when_last_copy_drops() {
        let (token, mut rx) = AckToken::new();
        let copy = token.clone();
        token.update(AckStatus::Delivered);
        drop(token);
        assert!(rx.try_recv().is_err(), "must wait for every copy");
        drop(copy);
        assert_eq!(rx.await.unwrap(), AckStatus::Delivered);
    }

    #[tokio::test]
    async fn dropped_without_an_outcome_is_not_delivered() {
        let (token, rx) = AckToken::new();
        let copy = token.clone();
        drop(token);
        drop(copy);
        assert_eq!(rx.await.unwrap(), AckStatus::Errored);
    }

    #[tokio::test]
    async fn an_obligation_dropped_unsettled_overrides_another_copys_delivery() {
        // Two consumers of one batch: one delivered, the other was cancelled.
        let (token, rx) = AckToken::new();
        token.update(AckStatus::Delivered);
        let cancelled = Obligation::of([Some(&token), Some(&token), None]);
        assert_eq!(
            cancelled.tokens.len(),
            1,
            "repeats of one token are held once"
        );
        drop(cancelled);
        drop(token);
        assert_eq!(rx.await.unwrap(), AckStatus::Errored);
    }

    #[tokio::test]
    async fn a_counting_token_counts_the_events_stated_rejected() {
        let latency = crate::telemetry::histogram("metrics_test_ack_count_seconds", &[]);
        let (token, rx, rejected) = AckToken::timed_counting(&latency);
        let copies = [token.clone(), token.clone(), token.clone()];
        copies[0].update_event(AckStatus::Delivered);
        copies[1].update_event(AckStatus::Rejected);
        copies[2].update_event(AckStatus::Rejected);
        // A whole-token update (a buffer's) says nothing about how many events.
        token.update(AckStatus::Rejected);
        drop((token, copies));
        assert_eq!(rx.await.unwrap(), AckStatus::Rejected);
        assert_eq!(rejected.get(), 2);
    }

    #[tokio::test]
    async fn a_discharged_obligation_states_its_outcome() {
        let (token, rx) = AckToken::new();
        Obligation::of([Some(&token)]).discharge(AckStatus::Delivered);
        drop(token);
        assert_eq!(rx.await.unwrap(), AckStatus::Delivered);
    }

    #[tokio::test]
    async fn a_joined_token_tells_every_part_its_outcome() {
        for (stated, expected) in [
            (Some(AckStatus::Delivered), AckStatus::Delivered),
            (Some(AckStatus::Rejected), AckStatus::Rejected),
            // Nobody said the joined event was delivered: no part was.
            (None, AckStatus::Errored),
        ] {
            let (a, rx_a) = AckToken::new();
            let (b, rx_b) = AckToken::new();
            let mut parts = Obligation::default();
            for token in [&a, &a, &b] {
                parts.push(Some(token));
            }
            // The parts' own batches were passed on and discharged by the transform.
            Obligation::of([Some(&a), Some(&b)]).discharge(AckStatus::Delivered);
            drop((a, b));
            let joined = parts.into_token().expect("two tokens held");
            if let Some(status) = stated {
                joined.update(status);
            }
            drop(joined);
            assert_eq!(rx_a.await.unwrap(), expected);
            assert_eq!(rx_b.await.unwrap(), expected);
        }
    }

    #[tokio::test]
    async fn one_part_keeps_its_own_token_and_none_gives_none() {
        let (a, rx) = AckToken::new();
        let mut parts = Obligation::default();
        parts.push(Some(&a));
        parts.push(None);
        let token = parts.into_token().expect("one token held");
        assert!(token.same_as(&a));
        drop(a);
        token.update(AckStatus::Delivered);
        drop(token);
        assert_eq!(rx.await.unwrap(), AckStatus::Delivered);
        assert!(Obligation::default().into_token().is_none());
    }

    #[tokio::test]
    async fn merges_by_severity() {
        let table = [
            (vec![AckStatus::Delivered], AckStatus::Delivered),
            (
                vec![AckStatus::Errored, AckStatus::Delivered],
                AckStatus::Errored,
            ),
            (
                vec![AckStatus::Rejected, AckStatus::Errored],
                AckStatus::Rejected,
            ),
        ];
        for (updates, expected) in table {
            let (token, rx) = AckToken::new();
            for status in updates {
                token.clone().update(status);
            }
            drop(token);
            assert_eq!(rx.await.unwrap(), expected);
        }
    }
}
