//! The sender: takes the spool's oldest batch, POSTs it until the router answers 2xx, then
//! deletes it. It uses the shared HTTP delivery client and retry driver (`delivery`):
//! connection errors, timeouts, 408, 429 and 5xx are retried with backoff and jitter (a
//! `Retry-After` is honoured, capped by the maximum backoff); other 4xx answers can never
//! succeed, so the batch is moved to the spool's `damaged/` directory and reported on
//! stderr.

use std::cell::Cell;
use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Uri;

use super::{ShipConfig, ShipError, Spool};
use crate::delivery::http::HttpClient;
use crate::delivery::retry::{DeliveryError, Outcome, Retrier};
use crate::telemetry::Counter;

pub(super) struct Target {
    uri: Uri,
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Target, ShipError> {
        let bad = |reason: &str| ShipError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(bad("only http:// is supported")),
            None => return Err(bad("needs http://HOST:PORT/PATH")),
        }
        if uri.host().is_none() {
            return Err(bad("no host"));
        }
        Ok(Target { uri })
    }
}

/// Runs the send loop on its own single-threaded runtime, forever (the process exits when
/// the drain is over).
pub(super) fn run(target: Target, spool: Arc<Spool>, config: ShipConfig) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("sluice ship: cannot start the sender: {error}");
            return;
        }
    };
    runtime.block_on(send_loop(target, spool, config));
}

async fn send_loop(target: Target, spool: Arc<Spool>, config: ShipConfig) {
    let client = HttpClient::plain();
    let headers = [(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    )];
    // An outage is reported below, once when it starts and once when it ends.
    let mut retrier = Retrier::new(config.retry.clone(), None, Counter::default());
    let down = Cell::new(false);
    loop {
        let entry = spool.front().await;
        let body = match spool.read(&entry) {
            Ok(body) => body,
            Err(reason) => {
                spool.remove_front(&entry, Some(&reason));
                continue;
            }
        };
        let sent = retrier
            .run(&target.uri, || async {
                let outcome = client
                    .post(&target.uri, &headers, body.clone(), config.request_timeout)
                    .await;
                if let Outcome::Retryable { message, .. } = &outcome {
                    if !down.replace(true) {
                        let pending = spool.pending();
                        eprintln!(
                            "sluice ship: cannot deliver to {} ({message}); retrying, {} lines spooled in {}",
                            target.uri,
                            pending.lines,
                            spool.dir().display()
                        );
                    }
                }
                outcome
            })
            .await;
        match sent {
            Ok(()) => {
                if down.replace(false) {
                    eprintln!(
                        "sluice ship: router {} reachable again; sending the spool",
                        target.uri
                    );
                }
                spool.remove_front(&entry, None);
            }
            Err(DeliveryError::Fatal(reason)) => {
                eprintln!(
                    "sluice ship: the router refused a batch of {} lines for good ({reason})",
                    entry.lines
                );
                spool.remove_front(&entry, Some(&reason));
            }
            // Only with `max_attempts` set: the batch stays first in the spool and is tried
            // again.
            Err(_) => {}
        }
    }
}
