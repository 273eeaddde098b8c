//! What the batching sinks for log stores (`clickhouse`, `elasticsearch`, `loki`) share:
//! gathering queued batches into one request's worth, their endpoint and its delivery
//! client, the request body's compression, and one request sent with retries then
//! acknowledged or dead-lettered (`Poster`; the `http` and `opentelemetry` sinks' too).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING};
use hyper::Uri;
use tokio_rustls::rustls::ClientConfig;

use super::http::{parse_endpoint, parse_headers, HttpCompression};
use super::{SinkContext, SinkError};
use crate::ack::AckStatus;
use crate::channel::{BatchReceiver, Held};
use crate::delivery::http::HttpClient;
use crate::delivery::retry::{DeliveryError, Retrier, RetryConfig};
use crate::event::{Delivery, Event};
use crate::field_error::FieldError;
use crate::tls::ClientTlsConfig;

/// Queued batches gathered into one request's worth; their room in the queue stays taken
/// until this is dropped, so requests in flight count against the queue's byte bound.
pub(crate) struct Gathered {
    pub(crate) batches: Vec<Delivery>,
    _held: Held,
}

impl Gathered {
    /// Settles the batches, every event's outcome having been stated.
    pub(crate) fn settle(self) {
        self.batches.into_iter().for_each(Delivery::settle);
    }

    pub(crate) fn events(&self) -> impl Iterator<Item = &Event> {
        self.batches.iter().flat_map(|b| b.events.iter())
    }
}

/// Waits for a batch, then takes more until `max_events` are in hand or `linger` has passed
/// since the first: stores want few large writes (ClickHouse makes a part per insert), and
/// an upstream that trickles would otherwise cost one request per small batch. `None` once
/// the queue is closed and empty; what was gathered before that is returned first.
pub(crate) async fn gather(
    rx: &mut BatchReceiver,
    max_events: usize,
    linger: Duration,
) -> Option<Gathered> {
    let (first, mut held) = rx.recv_held().await?;
    let mut queued = first.len();
    let mut batches = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while queued < max_events {
        let next = match rx.try_recv_held() {
            Some(batch) => Some(batch),
            None if linger.is_zero() => None,
            // `recv` is cancel-safe: a batch is either taken or left queued.
            None => tokio::time::timeout_at(deadline, rx.recv_held())
                .await
                .ok()
                .flatten(),
        };
        let Some((batch, room)) = next else { break };
        queued += batch.len();
        batches.push(batch);
        held.join(room);
    }
    Some(Gathered {
        batches,
        _held: held,
    })
}

/// A request's worth of encoded events: their encodings back to back in `body`, event
/// `i`'s ending at `ends[i]`.
pub(crate) struct Chunk<'a> {
    pub(crate) events: Vec<&'a Event>,
    pub(crate) body: Vec<u8>,
    pub(crate) ends: Vec<usize>,
}

/// Cuts `events` into requests of at most `max_events` events and `max_bytes` encoded
/// bytes (a single bigger event goes alone), encoding each event with `encode`.
pub(crate) fn chunks<'a>(
    mut events: impl Iterator<Item = &'a Event>,
    (max_events, max_bytes): (usize, usize),
    mut encode: impl FnMut(&Event, &mut Vec<u8>),
) -> impl Iterator<Item = Chunk<'a>> {
    // The event that did not fit the last chunk, already encoded in `row`.
    let mut carried: Option<&'a Event> = None;
    let mut row = Vec::new();
    std::iter::from_fn(move || {
        let mut chunk = Chunk {
            events: Vec::new(),
            body: Vec::new(),
            ends: Vec::new(),
        };
        loop {
            let event = match carried.take() {
                Some(event) => event,
                None => match events.next() {
                    Some(event) => {
                        row.clear();
                        encode(event, &mut row);
                        event
                    }
                    None => return (!chunk.events.is_empty()).then_some(chunk),
                },
            };
            let full = chunk.events.len() >= max_events
                || (!chunk.events.is_empty() && chunk.body.len() + row.len() > max_bytes);
            if full {
                carried = Some(event);
                return Some(chunk);
            }
            chunk.body.extend_from_slice(&row);
            chunk.ends.push(chunk.body.len());
            chunk.events.push(event);
        }
    })
}

/// `chunks` by events' size in memory (close to their encoded size), for sinks that encode
/// a request as a whole.
pub(crate) fn sized_chunks<'a>(
    mut events: impl Iterator<Item = &'a Event>,
    (max_events, max_bytes): (usize, usize),
) -> impl Iterator<Item = Vec<&'a Event>> {
    let mut carried = None;
    std::iter::from_fn(move || {
        let (mut chunk, mut bytes) = (Vec::new(), 0);
        while let Some(event) = carried.take().or_else(|| events.next()) {
            let size = event.size_estimate();
            if chunk.len() >= max_events || (!chunk.is_empty() && bytes + size > max_bytes) {
                carried = Some(event);
                break;
            }
            chunk.push(event);
            bytes += size;
        }
        (!chunk.is_empty()).then_some(chunk)
    })
}

/// An item of a request, for the step after it: the event to acknowledge or dead-letter.
pub(crate) trait Letter {
    fn event(&self) -> &Event;
}

impl Letter for &Event {
    fn event(&self) -> &Event {
        self
    }
}

impl<T> Letter for (&Event, T) {
    fn event(&self) -> &Event {
        self.0
    }
}

/// One store's requests: where to, with which headers, retried how.
pub(crate) struct Poster {
    pub(crate) uri: Uri,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) client: HttpClient,
    pub(crate) timeout: Duration,
    pub(crate) retrier: Retrier,
    pub(crate) compression: HttpCompression,
}

/// A sink's request options: compression, the configured headers, `timeout_secs`, retries.
pub(crate) type RequestOptions<'a> = (HttpCompression, &'a BTreeMap<String, String>, u64);

impl Poster {
    /// Posts to `uri` with the sink's own `headers`, `Content-Encoding`, configured ones.
    pub(crate) fn new(
        (uri, mut headers, client): (Uri, Vec<(HeaderName, HeaderValue)>, HttpClient),
        (compression, configured, timeout_secs): RequestOptions<'_>,
        retry: &RetryConfig,
        ctx: &SinkContext,
    ) -> Result<Self, SinkError> {
        if compression == HttpCompression::Gzip {
            headers.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        }
        headers.extend(parse_headers(configured).map_err(invalid)?);
        let errors = ctx.metrics.write_errors.clone();
        Ok(Poster {
            uri,
            headers,
            client,
            timeout: Duration::from_secs(timeout_secs),
            retrier: Retrier::new(retry.clone(), Some(&ctx.id), errors),
            compression,
        })
    }

    /// Sends `body` (compressed as configured), retrying; then acknowledges `items` as
    /// delivered, or hands them to dead-letter (`what` says what refused them, in the log).
    pub(crate) async fn send<T: Letter>(
        &self,
        items: &[T],
        body: Cow<'_, [u8]>,
        ctx: &SinkContext,
        what: &str,
    ) {
        let payload = match compress(body, self.compression) {
            Ok(payload) => payload,
            // Compressing into memory does not fail in practice; treat it as fatal.
            Err(error) => {
                let error = DeliveryError::Fatal(error.to_string());
                return self.dead_letter(items, error, ctx, what).await;
            }
        };
        match self.post(&payload).await {
            Ok(()) => {
                ctx.metrics.sent_events.inc(items.len() as u64);
                ctx.metrics.sent_bytes.inc(payload.len() as u64);
                for item in items {
                    item.event().ack(AckStatus::Delivered);
                }
            }
            Err(error) => self.dead_letter(items, error, ctx, what).await,
        }
    }

    /// Sends `payload` as it is, retrying.
    pub(crate) async fn post(&self, payload: &Bytes) -> Result<(), DeliveryError> {
        self.retrier
            .run(&self.uri, || {
                self.client
                    .post(&self.uri, &self.headers, payload.clone(), self.timeout)
            })
            .await
    }

    pub(crate) async fn dead_letter<T: Letter>(
        &self,
        items: &[T],
        error: DeliveryError,
        ctx: &SinkContext,
        what: &str,
    ) {
        tracing::error!(component_id = %ctx.id, uri = %self.uri, %error, events = items.len(), "{what}; events go to dead-letter");
        let letters = super::dead_letters(items.iter().map(Letter::event), &ctx.id, &error);
        ctx.reject_async(letters).await;
    }
}

/// The delivery client: plain for `http://`; for `https://` trusting the system's CAs and
/// `tls.ca_file`, presenting `tls.crt_file` if set. The files are read here, once, when the
/// sink opens.
pub(crate) fn client(https: bool, tls: &ClientTlsConfig) -> Result<HttpClient, SinkError> {
    Ok(match client_tls(https, tls)? {
        Some(config) => HttpClient::with_tls(config),
        None => HttpClient::plain(),
    })
}

/// For `https`, the TLS client config from `tls`, its files read (a start's IO: a missing or
/// bad file stops the start, naming the field); `None` for plain HTTP.
pub(crate) fn client_tls(
    https: bool,
    tls: &ClientTlsConfig,
) -> Result<Option<ClientConfig>, SinkError> {
    if !https {
        return Ok(None);
    }
    let config = tls
        .client_config(https)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(Some(config))
}

/// A request URL a sink built from its `endpoint` (a path, a query added); an error names
/// `endpoint`, since that is where a bad one comes from.
pub(crate) fn request_uri(text: String) -> Result<Uri, FieldError> {
    text.parse()
        .map_err(|e| FieldError::new("endpoint", format!("invalid URL `{text}`: {e}")))
}

/// The `endpoint` option: http:// or https:// with a host, and no query string, since the
/// sink writes its own (`example` shows a good value in the error; `note` says why).
pub(crate) fn endpoint_uri(uri: &str, example: &str, note: &str) -> Result<Uri, FieldError> {
    let parsed = parse_endpoint(uri, "endpoint", &["http", "https"], example)?;
    if parsed.query().is_some() {
        return Err(FieldError::new(
            "endpoint",
            format!("must not have a query string{note}"),
        ));
    }
    Ok(parsed)
}

/// A config error found when the sink opens, as the error its task ends with.
pub(crate) fn invalid(e: FieldError) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{}: {}", e.field, e.message),
    )
}

/// The request body, gzip'd when asked (fast level: these bodies are sent once and thrown
/// away); an owned body is not copied when sent as it is.
pub(crate) fn compress(raw: Cow<'_, [u8]>, compression: HttpCompression) -> std::io::Result<Bytes> {
    Ok(match compression {
        HttpCompression::None => match raw {
            Cow::Owned(raw) => Bytes::from(raw),
            Cow::Borrowed(raw) => Bytes::copy_from_slice(raw),
        },
        HttpCompression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 4),
                flate2::Compression::fast(),
            );
            gz.write_all(&raw)?;
            Bytes::from(gz.finish()?)
        }
    })
}

/// Appends `text` to `out` percent-encoded for a URL's query string (everything but RFC
/// 3986's unreserved characters).
pub(crate) fn percent_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encodes_a_query() {
        let mut out = String::new();
        percent_encode("INSERT INTO `db`.`t` FORMAT JSONEachRow", &mut out);
        assert_eq!(
            out,
            "INSERT%20INTO%20%60db%60.%60t%60%20FORMAT%20JSONEachRow"
        );
    }
}
