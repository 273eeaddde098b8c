//! The HTTP delivery client shared by the `http` sink, the alert notifiers and the shipper:
//! one POST on a pooled hyper-util client, its answer read up to a bound and classified
//! for the retry driver.
//!
//! 2xx delivers; 408, 429, 5xx, connection errors and timeouts are worth retrying (with
//! the answer's `Retry-After` in seconds, if any); any other status is fatal and reported
//! with the status and the start of the answer's body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls::ClientConfig;

use super::retry::Outcome;
use crate::error_chain::error_chain;

/// How much of an error answer's body is quoted in the failure.
const REASON_BODY_BYTES: usize = 200;

/// Answer bodies are read (so the connection can be reused) up to this size; a longer one
/// is abandoned with its connection rather than held in memory.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Idle pooled connections are dropped after this rather than hyper-util's 90 s, so that
/// fewer requests go out on a connection the server has closed meanwhile (such a request
/// fails and is retried).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled client for one destination's requests.
pub struct HttpClient {
    inner: Inner,
}

enum Inner {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl HttpClient {
    /// A client for `http://` URLs only.
    pub fn plain() -> HttpClient {
        HttpClient {
            inner: Inner::Plain(builder().build(tcp())),
        }
    }

    /// A client for `http://` and `https://` URLs, trusting the servers that `tls` trusts.
    pub fn with_tls(tls: ClientConfig) -> HttpClient {
        let mut tcp = tcp();
        // The TLS layer handles `https://`; the TCP connector must let it through.
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        HttpClient {
            inner: Inner::Tls(builder().build(connector)),
        }
    }

    /// POSTs `body` with `headers` (in order, appended) and classifies the answer. `timeout`
    /// covers everything from connecting to reading the answer.
    pub async fn post(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout: Duration,
    ) -> Outcome {
        self.post_for_answer(uri, headers, body, timeout).await.0
    }

    /// [`HttpClient::post`], also returning the body of a 2xx answer (empty otherwise, and
    /// when longer than 64 KiB), for protocols that answer with more than a status (OTLP's
    /// `partial_success`).
    pub async fn post_for_answer(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout: Duration,
    ) -> (Outcome, Bytes) {
        let answer = self
            .request(Method::POST, uri, headers, body, timeout)
            .await;
        (answer.outcome, answer.body)
    }

    /// [`HttpClient::post_for_answer`] reading up to `max_answer_bytes` of the answer, for
    /// protocols whose answer grows with the request (Elasticsearch's `_bulk` has an item
    /// per document); a longer 2xx answer comes back empty.
    pub async fn post_for_long_answer(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout: Duration,
        max_answer_bytes: usize,
    ) -> (Outcome, Bytes) {
        let answer = self
            .request_limited(Method::POST, uri, headers, body, timeout, max_answer_bytes)
            .await;
        (answer.outcome, answer.body)
    }

    /// [`HttpClient::post`] with any method, also returning the headers and body (up to
    /// 64 KiB) of a 2xx answer, for protocols that answer in both (S3's `ETag` and XML).
    pub async fn request(
        &self,
        method: Method,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout: Duration,
    ) -> Answer {
        self.request_limited(method, uri, headers, body, timeout, MAX_RESPONSE_BYTES)
            .await
    }

    async fn request_limited(
        &self,
        method: Method,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout: Duration,
        max_answer_bytes: usize,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(error) => {
                return Answer::failed(Outcome::Fatal(format!("cannot build request: {error}")))
            }
        };
        let exchange = async {
            let response = match &self.inner {
                Inner::Plain(client) => client.request(request),
                Inner::Tls(client) => client.request(request),
            }
            .await?;
            let status = response.status();
            let retry_after = retry_after(response.headers());
            let (parts, body) = response.into_parts();
            // A body that fails to read or is too long only shortens what a failure quotes.
            let body = Limited::new(body, max_answer_bytes)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let outcome = classify(status, retry_after, &body);
            Ok::<_, hyper_util::client::legacy::Error>(if outcome == Outcome::Delivered {
                Answer {
                    outcome,
                    headers: parts.headers,
                    body,
                }
            } else {
                Answer::failed(outcome)
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Answer::failed(Outcome::retryable(format!(
                "request timed out after {}s",
                timeout.as_secs()
            ))),
            Ok(Err(error)) => Answer::failed(Outcome::retryable(error_chain(&error))),
            Ok(Ok(answer)) => answer,
        }
    }
}

/// The headers of a request made with `token`, if one was given: `Authorization: Bearer
/// TOKEN`; or why the token cannot be sent.
pub fn bearer(token: Option<&str>) -> Result<Vec<(HeaderName, HeaderValue)>, &'static str> {
    let Some(token) = token else {
        return Ok(Vec::new());
    };
    match HeaderValue::from_str(&format!("Bearer {token}")) {
        Ok(value) => Ok(vec![(AUTHORIZATION, value)]),
        Err(_) => Err("the token holds characters a header cannot carry"),
    }
}

/// What [`HttpClient::request`] got: headers and body only for a 2xx answer.
pub struct Answer {
    pub outcome: Outcome,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    fn failed(outcome: Outcome) -> Answer {
        Answer {
            outcome,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }
}

impl HttpClient {
    /// GETs `uri` and returns the answer once its head is in (within `timeout`), its body
    /// unread: the caller streams it (a Kubernetes watch) and bounds what it keeps.
    pub async fn get(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let mut request = Request::builder().method(Method::GET).uri(uri.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("cannot build request: {e}"))?;
        let response = match &self.inner {
            Inner::Plain(client) => client.request(request),
            Inner::Tls(client) => client.request(request),
        };
        match tokio::time::timeout(timeout, response).await {
            Err(_) => Err(format!("no answer within {}s", timeout.as_secs())),
            Ok(Err(error)) => Err(error_chain(&error)),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

fn builder() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(POOL_IDLE_TIMEOUT);
    builder
}

fn tcp() -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp
}

/// `Retry-After` in seconds; the HTTP-date form is ignored (the backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// 2xx delivers; 408, 429 and 5xx are worth retrying; any other status is fatal.
fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let quoted = String::from_utf8_lossy(&body[..body.len().min(REASON_BODY_BYTES)]);
    let message = format!("HTTP {status}: {}", quoted.trim());
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Outcome::Retryable {
            message,
            retry_after,
        }
    } else {
        Outcome::Fatal(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        for (code, expected) in [
            (200, "delivered"),
            (202, "delivered"),
            (204, "delivered"),
            (408, "retry"),
            (429, "retry"),
            (500, "retry"),
            (503, "retry"),
            (400, "fatal"),
            (404, "fatal"),
            (413, "fatal"),
            (301, "fatal"),
        ] {
            let got = match classify(StatusCode::from_u16(code).unwrap(), None, b"nope") {
                Outcome::Delivered => "delivered",
                Outcome::Fatal(message) => {
                    assert!(message.contains(&code.to_string()), "{message}");
                    "fatal"
                }
                Outcome::Retryable { .. } => "retry",
            };
            assert_eq!(got, expected, "{code}");
        }
    }

    #[test]
    fn quotes_at_most_200_bytes_of_the_body() {
        let body = vec![b'x'; 1000];
        let Outcome::Fatal(message) = classify(StatusCode::BAD_REQUEST, None, &body) else {
            panic!("400 is fatal");
        };
        assert_eq!(message.matches('x').count(), REASON_BODY_BYTES);
    }

    #[test]
    fn reads_retry_after_in_seconds() {
        for (value, expected) in [
            ("120", Some(120)),
            (" 7 ", Some(7)),
            ("Wed, 21 Oct 2015 07:28:00 GMT", None),
            ("-1", None),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
            assert_eq!(
                retry_after(&headers),
                expected.map(Duration::from_secs),
                "{value}"
            );
        }
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
