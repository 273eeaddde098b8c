//! What the batching sinks for log stores (`clickhouse`, `elasticsearch`, `loki`) share:
//! gathering queued batches into one request's worth, their endpoint and its delivery
//! client, and the request body's compression (which the `opentelemetry` sink uses too).

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use hyper::Uri;

use super::http::{parse_endpoint, HttpCompression};
use super::SinkError;
use crate::channel::BatchReceiver;
use crate::delivery::http::HttpClient;
use crate::event::Delivery;
use crate::field_error::FieldError;
use crate::tls::ClientTlsConfig;

/// Waits for a batch, then takes more until `max_events` are in hand or `linger` has passed
/// since the first: stores want few large writes (ClickHouse makes a part per insert), and
/// an upstream that trickles would otherwise cost one request per small batch. `None` once
/// the queue is closed and empty; what was gathered before that is returned first.
pub(crate) async fn gather(
    rx: &mut BatchReceiver,
    max_events: usize,
    linger: Duration,
) -> Option<Vec<Delivery>> {
    let first = rx.recv().await?;
    let mut queued = first.len();
    let mut batches = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while queued < max_events {
        let next = match rx.try_recv() {
            Some(batch) => Some(batch),
            None if linger.is_zero() => None,
            // `recv` is cancel-safe: a batch is either taken or left queued.
            None => tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten(),
        };
        let Some(batch) = next else { break };
        queued += batch.len();
        batches.push(batch);
    }
    Some(batches)
}

/// The delivery client for `uri`: plain for `http://`; for `https://` trusting the system's
/// CAs and `tls.ca_file`, presenting `tls.crt_file` if set. The files are read here, once,
/// when the sink opens.
pub(crate) fn client(uri: &Uri, tls: &ClientTlsConfig) -> Result<HttpClient, SinkError> {
    let https = uri.scheme_str() == Some("https");
    if !https {
        return Ok(HttpClient::plain());
    }
    let config = tls
        .client_config(https)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(HttpClient::with_tls(config))
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
