//! The `opentelemetry` sink over OTLP/gRPC (`protocol = "grpc"`): one `LogsService/Export`
//! call per request on a tonic channel (HTTP/2, reconnected as needed), gzip when
//! `compression = "gzip"`, the configured `headers` as metadata. For an `https://` uri the
//! channel connects through rustls with the sink's `tls` (tonic's own TLS features would
//! bring a second TLS stack's settings), offering only `h2` by ALPN, as gRPC servers insist.
//!
//! A status is classified as OTLP says: UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED,
//! DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE and DATA_LOSS are retried (after the delay of a
//! `RetryInfo` in the status's details when there is one, up to `max_backoff_secs`); any
//! other is fatal and sends the request's events to dead-letter. An OK answer's
//! `partial_success` is read as for OTLP/HTTP.
//!
//! The request is encoded once and sent as bytes on every attempt, and the answer read as
//! bytes by the same code as the HTTP answer's, hence a codec of bytes rather than tonic's
//! protobuf one.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_rustls::rustls::ClientConfig;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::delivery::retry::Outcome;
use crate::field_error::FieldError;
use crate::sources::otlp_status::{retry_delay, BytesCodec, EXPORT_PATH};

pub(super) struct GrpcExporter {
    client: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
}

impl GrpcExporter {
    /// A client for `uri` (`http://host:port`, or `https://` with `tls`); it connects on
    /// first use.
    pub(super) fn new(
        uri: &Uri,
        gzip: bool,
        headers: &BTreeMap<String, String>,
        timeout: Duration,
        tls: Option<ClientConfig>,
    ) -> Result<Self, FieldError> {
        let endpoint = Endpoint::from_shared(uri.to_string())
            .map_err(|e| FieldError::new("uri", format!("not a gRPC endpoint: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = match tls {
            None => endpoint.connect_lazy(),
            Some(mut tls) => {
                tls.alpn_protocols = vec![b"h2".to_vec()];
                let mut tcp = HttpConnector::new();
                // The TLS layer handles `https://`; the TCP connector must let it through.
                tcp.enforce_http(false);
                tcp.set_nodelay(true);
                tcp.set_connect_timeout(Some(timeout));
                endpoint.connect_with_connector_lazy(HttpsConnector::from((tcp, tls)))
            }
        };
        let mut client =
            tonic::client::Grpc::new(channel).accept_compressed(CompressionEncoding::Gzip);
        if gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        Ok(Self {
            client,
            metadata: metadata(headers)?,
        })
    }

    /// One attempt: the outcome, and the answer's bytes when it succeeded.
    pub(super) async fn export(&self, payload: Bytes) -> (Outcome, Bytes) {
        // A clone shares the channel (its connection): cheap.
        let mut client = self.client.clone();
        if let Err(error) = client.ready().await {
            let message = crate::error_chain::error_chain(&error);
            return (
                Outcome::retryable(format!("cannot connect: {message}")),
                Bytes::new(),
            );
        }
        let mut request = tonic::Request::new(payload);
        *request.metadata_mut() = self.metadata.clone();
        let path = hyper::http::uri::PathAndQuery::from_static(EXPORT_PATH);
        match client.unary(request, path, BytesCodec).await {
            Ok(response) => (Outcome::Delivered, response.into_inner()),
            Err(status) => (outcome(&status), Bytes::new()),
        }
    }
}

/// How a failed call is handled, by its status code (OTLP's list of retryable codes).
pub(super) fn outcome(status: &Status) -> Outcome {
    let message = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Outcome::Retryable {
            message,
            retry_after: retry_delay(status.details()),
        },
        _ => Outcome::Fatal(message),
    }
}

pub(super) fn metadata(headers: &BTreeMap<String, String>) -> Result<MetadataMap, FieldError> {
    let mut map = MetadataMap::new();
    for (name, value) in headers {
        let field = || format!("headers.{name}");
        let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| FieldError::new(field(), "not a valid gRPC metadata name"))?;
        let value = MetadataValue::try_from(value.as_str())
            .map_err(|_| FieldError::new(field(), "not a valid gRPC metadata value"))?;
        map.insert(key, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_retried_as_otlp_says_with_their_retry_info() {
        let details = crate::sources::otlp_status::retry_details(
            Code::ResourceExhausted as i32,
            "slow down",
            Duration::from_secs(3),
        );
        let busy = Status::with_details(Code::ResourceExhausted, "slow down", details.into());
        assert_eq!(
            outcome(&busy),
            Outcome::Retryable {
                message: "ResourceExhausted: slow down".into(),
                retry_after: Some(Duration::from_secs(3)),
            }
        );
        assert!(matches!(
            outcome(&Status::unavailable("down")),
            Outcome::Retryable {
                retry_after: None,
                ..
            }
        ));
        for fatal in [
            Status::invalid_argument("bad"),
            Status::unauthenticated("who"),
            Status::permission_denied("no"),
            Status::unimplemented("what"),
            Status::internal("oops"),
        ] {
            assert!(matches!(outcome(&fatal), Outcome::Fatal(_)), "{fatal:?}");
        }
    }

    #[test]
    fn headers_become_metadata_or_a_field_error() {
        let ok = BTreeMap::from([("Authorization".to_string(), "Bearer t".to_string())]);
        assert_eq!(
            metadata(&ok).unwrap().get("authorization").unwrap(),
            "Bearer t"
        );
        let bad = BTreeMap::from([("bad key".to_string(), "v".to_string())]);
        assert_eq!(metadata(&bad).unwrap_err().field, "headers.bad key");
    }
}
