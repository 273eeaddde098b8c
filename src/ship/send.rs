//! The sender: takes the spool's oldest batch, POSTs it until the router answers 2xx, then
//! deletes it. Connection errors, timeouts, 408, 429 and 5xx are retried with backoff and
//! jitter (`Retry-After` is honoured as a minimum); other 4xx answers can never succeed, so
//! the batch is moved to the spool's `damaged/` directory and reported on stderr.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{ShipConfig, ShipError, Spool};
use crate::delivery::retry::DeliveryError;

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
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let mut backoff = config.retry.backoff();
    let mut down = false;
    loop {
        let entry = spool.front().await;
        let body = match spool.read(&entry) {
            Ok(body) => body,
            Err(reason) => {
                spool.remove_front(&entry, Some(&reason));
                continue;
            }
        };
        loop {
            match post(&client, &target, body.clone(), config.request_timeout).await {
                Ok(()) => {
                    if down {
                        eprintln!(
                            "sluice ship: router {} reachable again; sending the spool",
                            target.uri
                        );
                        down = false;
                    }
                    backoff.reset();
                    spool.remove_front(&entry, None);
                    break;
                }
                Err((DeliveryError::Fatal(reason), _)) => {
                    eprintln!(
                        "sluice ship: the router refused a batch of {} lines for good ({reason})",
                        entry.lines
                    );
                    spool.remove_front(&entry, Some(&reason));
                    break;
                }
                Err((error, retry_after)) => {
                    if !down {
                        let pending = spool.pending();
                        eprintln!(
                            "sluice ship: cannot deliver to {} ({error}); retrying, {} lines spooled in {}",
                            target.uri,
                            pending.lines,
                            spool.dir().display()
                        );
                        down = true;
                    }
                    let delay = backoff.next_delay().unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(delay.max(retry_after.unwrap_or_default())).await;
                }
            }
        }
    }
}

type Failure = (DeliveryError, Option<Duration>);

async fn post(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    target: &Target,
    body: Bytes,
    timeout: Duration,
) -> Result<(), Failure> {
    let retryable = |s: String| (DeliveryError::Retryable(s), None);
    let request = Request::builder()
        .method(Method::POST)
        .uri(target.uri.clone())
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(Full::new(body))
        .map_err(|e| (DeliveryError::Fatal(e.to_string()), None))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| retryable(connect_error_text(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(60)));
        let text = match response.into_body().collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned()
            }
            Err(e) => return Err(retryable(format!("reading the answer: {e}"))),
        };
        if status.is_success() {
            return Ok(());
        }
        let reason = format!("{status}: {}", text.trim());
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            Err((DeliveryError::Retryable(reason), retry_after))
        } else {
            Err((DeliveryError::Fatal(reason), None))
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(retryable(format!(
            "no answer within {} s",
            timeout.as_secs()
        ))),
    }
}

/// hyper-util's error says only "client error (Connect)"; the cause says why.
fn connect_error_text(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
