//! What a request body is and how to read it: its kind by content type (NDJSON, text,
//! Heroku logplex, OTLP), and its decompression within the size limit.

use std::io::Read;

use bytes::Bytes;
use hyper::header::HeaderValue;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyKind {
    /// An OpenTelemetry logs export request (OTLP/HTTP), protobuf or JSON.
    Otlp(OtlpEncoding),
    Ndjson,
    Text,
    Logplex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OtlpEncoding {
    Protobuf,
    Json,
}

/// The content type without parameters, lowercased; empty when there is none.
pub(super) fn essence(content_type: Option<&HeaderValue>) -> String {
    let text = content_type
        .map(|v| v.to_str().unwrap_or("?").to_ascii_lowercase())
        .unwrap_or_default();
    text.split(';').next().unwrap_or("").trim().to_string()
}

/// The answer to a CORS preflight from an allowed origin.
/// Whether a JSON body is an OTLP export request: an object whose first key is
/// `resourceLogs` (an NDJSON event would not be named so).
pub(super) fn is_otlp_json(body: &[u8]) -> bool {
    let rest = body.trim_ascii_start();
    rest.strip_prefix(b"{")
        .map(<[u8]>::trim_ascii_start)
        .is_some_and(|r| r.starts_with(b"\"resourceLogs\""))
}

pub(super) fn body_kind(essence: &str) -> Result<BodyKind, String> {
    match essence {
        "application/x-ndjson" | "application/ndjson" | "application/json" | "application/jsonlines" => {
            Ok(BodyKind::Ndjson)
        }
        // curl's --data-binary sends form-urlencoded unless told otherwise; shippers that
        // post raw lines that way mean plain text.
        "text/plain" | "application/x-www-form-urlencoded" | "application/octet-stream" | "" => {
            Ok(BodyKind::Text)
        }
        "application/logplex-1" => Ok(BodyKind::Logplex),
        "application/x-protobuf" => Ok(BodyKind::Otlp(OtlpEncoding::Protobuf)),
        other => Err(format!(
            "unsupported content-type `{other}` (use application/x-ndjson, text/plain, application/logplex-1 or OTLP's application/x-protobuf)"
        )),
    }
}

pub(super) enum DecompressError {
    TooLarge,
    Invalid(std::io::Error),
}

/// A `Content-Encoding` the source accepts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

/// Decompresses at most `max` bytes: a small body must not expand into gigabytes.
pub(super) fn decompress(
    compression: Compression,
    body: &[u8],
    max: usize,
) -> Result<Bytes, DecompressError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let limit = max as u64 + 1;
    match compression {
        Compression::Gzip => flate2::read::GzDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out),
        Compression::Zstd => zstd::stream::read::Decoder::new(body)
            .and_then(|decoder| decoder.take(limit).read_to_end(&mut out)),
    }
    .map_err(DecompressError::Invalid)?;
    if out.len() > max {
        return Err(DecompressError::TooLarge);
    }
    Ok(Bytes::from(out))
}
