//! One consumer's hold on a shared batch.
//!
//! Every consumer of a batch (each queue of a fan-out) gets its own [`Delivery`]. The
//! consumer states what became of the events and then settles it; a delivery dropped
//! unsettled (its task cancelled at the shutdown deadline or panicking with batches in hand,
//! a queue dropped with batches still in it, a fan-out cancelled half-way) reports every
//! event errored. Another consumer's success cannot cover for it: the merged status is the
//! worst one.

use std::ops::Deref;

use crate::ack::{AckStatus, Obligation};

use super::{Batch, SharedBatch};

#[must_use = "dropping a delivery unsettled reports its events not delivered"]
pub struct Delivery {
    /// `None` once settled.
    batch: Option<SharedBatch>,
}

impl Delivery {
    pub fn new(batch: SharedBatch) -> Self {
        Self { batch: Some(batch) }
    }

    /// The shared batch (to keep it, e.g. while waiting for a commit, keep the delivery).
    pub fn shared(&self) -> &SharedBatch {
        self.batch
            .as_ref()
            .expect("a delivery holds its batch until settled")
    }

    /// States `status` for every event, and settles.
    pub fn finish(mut self, status: AckStatus) {
        if let Some(batch) = self.batch.take() {
            batch.ack_all(status);
        }
    }

    /// Settles a delivery whose events' outcomes were already stated one by one.
    pub fn settle(mut self) {
        self.batch = None;
    }

    /// Lets go of the events but keeps the duty to state their outcome: for a consumer that
    /// has written them somewhere that is not yet durable (the store until its commit), so
    /// that what waits is their tokens, not the events.
    pub fn into_obligation(mut self) -> Obligation {
        let batch = self
            .batch
            .take()
            .expect("a delivery holds its batch until settled");
        Obligation::of(batch.events.iter().map(|event| event.meta.ack.as_ref()))
    }

    /// Takes the events (cloning them only if another consumer still holds the batch),
    /// with the duty to state their outcome once they have been passed on.
    pub fn into_owned(mut self) -> (Batch, Obligation) {
        let batch = self
            .batch
            .take()
            .expect("a delivery holds its batch until settled");
        let obligation = Obligation::of(batch.events.iter().map(|event| event.meta.ack.as_ref()));
        (super::into_owned(batch), obligation)
    }
}

impl Deref for Delivery {
    type Target = Batch;

    fn deref(&self) -> &Batch {
        self.shared()
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(batch) = self.batch.take() {
            batch.ack_all(AckStatus::Errored);
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("events", &self.batch.as_ref().map(|b| b.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::AckToken;
    use crate::event::Event;
    use bytes::Bytes;
    use std::sync::Arc;

    fn batch_with(token: &AckToken) -> SharedBatch {
        let mut event = Event::from_message(Bytes::from_static(b"x"));
        event.meta.ack = Some(token.clone());
        Arc::new(Batch::new(vec![event.clone(), event]))
    }

    #[tokio::test]
    async fn one_consumer_dropping_unsettled_fails_the_batch_the_other_delivered() {
        let (token, rx) = AckToken::new();
        let shared = batch_with(&token);
        drop(token);
        let (delivered, cancelled) = (Delivery::new(shared.clone()), Delivery::new(shared));
        delivered.finish(AckStatus::Delivered);
        drop(cancelled);
        assert_eq!(rx.await.unwrap(), AckStatus::Errored);
    }

    /// The events go at once; the outcome waits for the obligation, and an obligation
    /// dropped undischarged (the store's task cancelled before its commit) is not delivered.
    #[tokio::test]
    async fn an_obligation_keeps_the_outcome_not_the_events() {
        for (discharge, expected) in [(true, AckStatus::Delivered), (false, AckStatus::Errored)] {
            let (token, mut rx) = AckToken::new();
            let shared = batch_with(&token);
            drop(token);
            let weak = Arc::downgrade(&shared);
            let obligation = Delivery::new(shared).into_obligation();
            assert!(weak.upgrade().is_none(), "the events are released");
            assert!(
                rx.try_recv().is_err(),
                "no outcome before the obligation says"
            );
            if discharge {
                obligation.discharge(AckStatus::Delivered);
            } else {
                drop(obligation);
            }
            assert_eq!(rx.await.unwrap(), expected);
        }
    }

    #[tokio::test]
    async fn every_consumer_finishing_delivers() {
        let (token, rx) = AckToken::new();
        let shared = batch_with(&token);
        drop(token);
        Delivery::new(shared.clone()).finish(AckStatus::Delivered);
        let (owned, obligation) = Delivery::new(shared).into_owned();
        drop(owned);
        obligation.discharge(AckStatus::Delivered);
        assert_eq!(rx.await.unwrap(), AckStatus::Delivered);
    }

    #[tokio::test]
    async fn settling_keeps_the_outcomes_stated_per_event() {
        let (token, rx) = AckToken::new();
        let delivery = Delivery::new(batch_with(&token));
        drop(token);
        delivery.events[0].ack(AckStatus::Delivered);
        delivery.events[1].ack(AckStatus::Rejected);
        delivery.settle();
        assert_eq!(rx.await.unwrap(), AckStatus::Rejected);
    }
}
