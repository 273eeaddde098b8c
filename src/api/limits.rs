//! What one API caller may hold or spend: live-tail streams (in total and per token) and
//! the work one search may do. The API puts a [`TailAdmission`] and the [`QueryLimits`] in
//! every request it passes on; the store takes a [`TailPermit`] before it subscribes a tail
//! and bounds each search by the limits.
//!
//! A tail holds its permit for as long as its response body lives: hyper drops the body
//! when the client goes away, so a disconnected client's slot is free at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::{Request, StatusCode};

use super::guard::Refusal;
use crate::telemetry;

/// Default of `[api] max_tail_clients`.
pub const DEFAULT_MAX_TAIL_CLIENTS: usize = 64;
/// Default of `[api] max_tail_clients_per_token`.
pub const DEFAULT_MAX_TAIL_CLIENTS_PER_TOKEN: usize = 8;
/// Default of `[api] query_timeout_ms`.
pub const DEFAULT_QUERY_TIMEOUT_MS: u64 = 30_000;
/// Default of `[api] max_scanned_events`: high enough that the time bound is what a
/// default setup meets first (a chart of a large store's whole history still answers);
/// lower it for a bound that does not depend on the machine's speed.
pub const DEFAULT_MAX_SCANNED_EVENTS: u64 = 1_000_000_000;

/// How much one search, histogram or top-values request may do before it is cut off with
/// an error (503) saying which bound it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Wall-clock time for the whole request.
    pub timeout: Duration,
    /// Matching events collected (visited one by one) across every partition.
    pub max_scanned_events: u64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_millis(DEFAULT_QUERY_TIMEOUT_MS),
            max_scanned_events: DEFAULT_MAX_SCANNED_EVENTS,
        }
    }
}

/// The request's query limits as the API left them; the defaults for a request that did
/// not come through the API.
pub fn query_limits<B>(request: &Request<B>) -> QueryLimits {
    request
        .extensions()
        .get::<QueryLimits>()
        .copied()
        .unwrap_or_default()
}

/// Live-tail streams held, in total and per token.
pub struct TailSlots {
    max_total: usize,
    max_per_token: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    /// Per token (its line in the tokens file); callers without a token (no auth) are
    /// bounded by the total only.
    per_token: HashMap<usize, usize>,
}

impl TailSlots {
    pub fn new(max_total: usize, max_per_token: usize) -> Arc<TailSlots> {
        Arc::new(TailSlots {
            max_total,
            max_per_token,
            held: Mutex::new(Held::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Streams held now (for tests and the metrics probe).
    pub fn held(&self) -> usize {
        self.lock().total
    }
}

/// What the API hands an endpoint that streams: the slots and who is asking.
#[derive(Clone)]
pub struct TailAdmission {
    slots: Arc<TailSlots>,
    /// The caller's token, `None` without auth.
    token: Option<usize>,
}

impl TailAdmission {
    pub fn new(slots: Arc<TailSlots>, token: Option<usize>) -> TailAdmission {
        TailAdmission { slots, token }
    }

    /// A slot, or a 429 saying which cap is reached (counted in
    /// `api_refused_requests_total{reason}`).
    pub fn admit(&self) -> Result<TailPermit, Refusal> {
        let slots = &self.slots;
        let mut held = slots.lock();
        if held.total >= slots.max_total {
            drop(held);
            return Err(refuse(
                "tail_clients",
                format!(
                    "too many live tails on this router ({} at once, [api] max_tail_clients); try again later",
                    slots.max_total
                ),
            ));
        }
        if let Some(token) = self.token {
            let mine = held.per_token.entry(token).or_default();
            if *mine >= slots.max_per_token {
                drop(held);
                return Err(refuse(
                    "tail_clients_per_token",
                    format!(
                        "this token already has {} live tails open ([api] max_tail_clients_per_token); close one first",
                        slots.max_per_token
                    ),
                ));
            }
            *mine += 1;
        }
        held.total += 1;
        Ok(TailPermit {
            slots: slots.clone(),
            token: self.token,
        })
    }
}

fn refuse(reason: &str, message: String) -> Refusal {
    telemetry::counter("api_refused_requests_total", &[("reason", reason)]).inc(1);
    Refusal::new(StatusCode::TOO_MANY_REQUESTS, message)
}

/// One live tail's slot, given back when dropped.
pub struct TailPermit {
    slots: Arc<TailSlots>,
    token: Option<usize>,
}

impl Drop for TailPermit {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(token) = self.token {
            if let Some(mine) = held.per_token.get_mut(&token) {
                *mine = mine.saturating_sub(1);
                if *mine == 0 {
                    held.per_token.remove(&token);
                }
            }
        }
    }
}

/// A tail slot for `request`, or the refusal to answer with. A request that did not come
/// through the API has no admission and is refused (fails closed).
pub fn tail_permit<B>(request: &Request<B>) -> Result<TailPermit, Refusal> {
    match request.extensions().get::<TailAdmission>() {
        Some(admission) => admission.admit(),
        None => Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "live tail is served only through the api listener",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_total_and_per_token_and_frees_on_drop() {
        let slots = TailSlots::new(3, 2);
        let alice = TailAdmission::new(slots.clone(), Some(0));
        let bob = TailAdmission::new(slots.clone(), Some(1));
        let anonymous = TailAdmission::new(slots.clone(), None);
        let a1 = alice.admit().expect("first");
        let _a2 = alice.admit().expect("second");
        let refused = alice.admit().err().expect("third of one token");
        let response = refused.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let _b1 = bob.admit().expect("another token");
        assert!(anonymous.admit().is_err(), "the total cap holds for all");
        assert_eq!(slots.held(), 3);
        drop(a1);
        assert_eq!(slots.held(), 2);
        let _a3 = alice.admit().expect("a freed slot is reused");
        assert!(bob.admit().is_err(), "total reached again");
    }

    #[test]
    fn a_request_without_admission_is_refused() {
        let request = Request::new(());
        assert!(tail_permit(&request).is_err());
        assert_eq!(query_limits(&request), QueryLimits::default());
    }
}
