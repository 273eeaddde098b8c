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

/// Where a router's `http` source takes lines.
const INGEST_PATH: &str = "/v1/logs";

pub(super) struct Target {
    uri: Uri,
}

impl Target {
    /// The ingest endpoint for `url`: a router's base URL (`http://router:8080`, with no
    /// path) means its `/v1/logs`, which is what a user pointing the shipper at a router
    /// wants; a URL with a path is used as given (a proxy may mount the router elsewhere).
    pub(super) fn parse(url: &str) -> Result<Target, ShipError> {
        let bad = |reason: &str| ShipError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = crate::router_url::with_scheme(url)
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        if uri.host().is_none() {
            return Err(bad("no host"));
        }
        if !matches!(uri.path(), "" | "/") {
            return Ok(Target { uri });
        }
        let path = match uri.query() {
            Some(query) => format!("{INGEST_PATH}?{query}"),
            None => INGEST_PATH.to_string(),
        };
        let mut parts = uri.into_parts();
        parts.path_and_query = Some(path.parse().map_err(|_| bad("invalid query"))?);
        let uri = Uri::from_parts(parts).map_err(|e| bad(&e.to_string()))?;
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
    let retrier = Retrier::new(config.retry.clone(), None, Counter::default());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_means_the_routers_ingest_endpoint() {
        let table = [
            ("http://router:8080", "http://router:8080/v1/logs"),
            ("http://router:8080/", "http://router:8080/v1/logs"),
            ("router:8080", "http://router:8080/v1/logs"),
            (
                "http://router:8080?token=t",
                "http://router:8080/v1/logs?token=t",
            ),
            ("http://router:8080/v1/logs", "http://router:8080/v1/logs"),
            ("http://proxy/sluice/ingest", "http://proxy/sluice/ingest"),
        ];
        for (given, expected) in table {
            let target = Target::parse(given).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(target.uri.to_string(), expected, "{given}");
        }
        for refused in ["https://router:8080", "http://", "http://a b"] {
            assert!(Target::parse(refused).is_err(), "{refused}");
        }
    }
}
