//! One `_bulk` request and the retries of its items.
//!
//! The request's failures as a whole are the delivery client's (connection errors, 429 and
//! 5xx retried; a 400, 401 or 413 fatal for every item). A 200 is read item by item
//! (`bulk.rs`): stored items are done, rejected ones go to dead-letter with their reason,
//! and the retryable ones alone make up the next attempt's body, after the retry driver's
//! backoff, until none is left or the attempts run out.

use std::sync::Mutex;

use super::super::batch::{self, Poster};
use super::super::SinkContext;
use super::bulk::{read_answer, ItemOutcome};
use crate::ack::AckStatus;
use crate::delivery::retry::Outcome;
use crate::event::Event;

/// A bulk answer is read up to this size: with `filter_path` an item that succeeded costs
/// some 20 bytes and one that failed a few hundred, so this covers the largest request
/// (`batch_max_events` is capped at 10,000) failing throughout.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Sends `_bulk` requests with the poster's client and retry driver, not its `send`: a retry
/// sends again only the items that asked for it.
pub(super) struct BulkSender(pub(super) Poster);

/// Items still in play during one request's attempts.
#[derive(Default)]
struct Progress {
    /// Indexes of the items the next attempt sends.
    pending: Vec<usize>,
    stored: Vec<usize>,
    rejected: Vec<(usize, String)>,
}

impl BulkSender {
    /// Sends `events`, whose items are `body` with item `i` ending at `ends[i]`; every event
    /// is then acknowledged delivered or handed to dead-letter.
    pub(super) async fn send(
        &self,
        events: &[&Event],
        body: &[u8],
        ends: &[usize],
        ctx: &SinkContext,
    ) {
        let progress = Mutex::new(Progress {
            pending: (0..events.len()).collect(),
            ..Progress::default()
        });
        let lock = || progress.lock().unwrap_or_else(|e| e.into_inner());
        let p = &self.0;
        let result = p
            .retrier
            .run(&p.uri, || async {
                let (payload, sent) = {
                    let progress = lock();
                    let mut raw = Vec::with_capacity(body.len());
                    for &i in &progress.pending {
                        raw.extend_from_slice(&body[if i == 0 { 0 } else { ends[i - 1] }..ends[i]]);
                    }
                    (raw, progress.pending.len())
                };
                let bytes = payload.len();
                let payload = match batch::compress(payload.into(), p.compression) {
                    Ok(payload) => payload,
                    Err(error) => return Outcome::Fatal(error.to_string()),
                };
                let (outcome, answer) = p
                    .client
                    .post_for_long_answer(&p.uri, &p.headers, payload, p.timeout, MAX_ANSWER_BYTES)
                    .await;
                if outcome != Outcome::Delivered {
                    return outcome;
                }
                let outcomes = match read_answer(&answer, sent) {
                    Ok(outcomes) => outcomes,
                    // The items' fate is unknown: sending them again may store some twice
                    // (`create` with an `_id` would answer 409 instead).
                    Err(error) => return Outcome::retryable(error.to_string()),
                };
                ctx.metrics.sent_bytes.inc(bytes as u64);
                let mut progress = lock();
                let pending = std::mem::take(&mut progress.pending);
                let mut retry_reason = None;
                for (i, outcome) in pending.into_iter().zip(outcomes) {
                    match outcome {
                        ItemOutcome::Stored => progress.stored.push(i),
                        ItemOutcome::Rejected(reason) => progress.rejected.push((i, reason)),
                        ItemOutcome::Retry(reason) => {
                            progress.pending.push(i);
                            retry_reason.get_or_insert(reason);
                        }
                    }
                }
                match retry_reason {
                    None => Outcome::Delivered,
                    Some(reason) => Outcome::retryable(format!(
                        "{} of {sent} items to send again, e.g. {reason}",
                        progress.pending.len()
                    )),
                }
            })
            .await;
        let progress = progress.into_inner().unwrap_or_else(|e| e.into_inner());
        ctx.metrics.sent_events.inc(progress.stored.len() as u64);
        for &i in &progress.stored {
            events[i].ack(AckStatus::Delivered);
        }
        let mut letters = Vec::new();
        for (i, reason) in &progress.rejected {
            letters.push(super::super::dead_letter_event(
                events[*i], &ctx.id, reason, "rejected",
            ));
        }
        if let Err(error) = &result {
            let reason = error.to_string();
            for &i in &progress.pending {
                letters.push(super::super::dead_letter_event(
                    events[i],
                    &ctx.id,
                    &reason,
                    error.code(),
                ));
            }
        }
        if !letters.is_empty() {
            let reason = progress
                .rejected
                .first()
                .map(|(_, reason)| reason.clone())
                .or_else(|| result.as_ref().err().map(|e| e.to_string()))
                .unwrap_or_default();
            tracing::error!(component_id = %ctx.id, uri = %p.uri, events = letters.len(), %reason, "elasticsearch refused documents; they go to dead-letter");
            ctx.reject_async(letters).await;
        }
    }
}
