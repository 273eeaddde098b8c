//! Storing one object: a PUT, or for an object larger than `multipart_part_bytes` a
//! multipart upload (create, the parts, complete; aborted when it fails for good).
//!
//! Requests are signed by `rusty-s3` (AWS Signature Version 4 as presigned URLs, so the
//! payload need not be hashed: TLS protects it on the way) and sent on the shared HTTP
//! delivery client, each step retried on its own by the retry driver: a part that failed
//! is sent again, not the whole object. Every attempt is signed anew, so a long outage
//! never leaves a signature expired.
//!
//! S3 answers some transient conditions with a 4xx (`RequestTimeout` is a 400), and a
//! CompleteMultipartUpload can fail after its 200 has begun (an `<Error>` body): both are
//! retried.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, ETAG};
use hyper::{Method, Uri};
use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, PutObject, UploadPart,
};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

use crate::delivery::http::{Answer, HttpClient};
use crate::delivery::retry::{DeliveryError, Outcome, Retrier};
use crate::field_error::FieldError;
use crate::telemetry::Counter;

/// S3's most parts in one upload.
const MAX_PARTS: usize = 10_000;

/// Error codes S3 sends with a 4xx that are worth retrying.
const RETRYABLE_CODES: &[&str] = &[
    "<Code>RequestTimeout</Code>",
    "<Code>RequestTimeTooSkewed</Code>",
    "<Code>SlowDown</Code>",
    "<Code>InternalError</Code>",
];

/// Checks `endpoint`: `http://` or `https://` with a host, no query.
pub(super) fn parse_endpoint(text: &str) -> Result<Url, FieldError> {
    let field = |message: String| FieldError::new("endpoint", message);
    let url = Url::parse(text).map_err(|e| field(format!("invalid URL `{text}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(field(format!(
            "unsupported scheme `{}` (expected http:// or https://)",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(field(format!("`{text}` has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(field(format!("`{text}` must not have a query or fragment")));
    }
    Ok(url)
}

/// The bucket addressed at `endpoint` (or AWS's endpoint for `region`).
pub(super) fn bucket(
    endpoint: Option<&str>,
    path_style: bool,
    name: &str,
    region: &str,
) -> Result<Bucket, FieldError> {
    let endpoint = match endpoint {
        Some(endpoint) => parse_endpoint(endpoint)?,
        None => parse_endpoint(&format!("https://s3.{region}.amazonaws.com"))
            .map_err(|e| FieldError::new("region", e.message))?,
    };
    let style = if path_style {
        UrlStyle::Path
    } else {
        UrlStyle::VirtualHost
    };
    Bucket::new(endpoint, style, name.to_string(), region.to_string())
        .map_err(|e| FieldError::new("bucket", format!("cannot address bucket `{name}`: {e}")))
}

pub(super) struct Uploader {
    pub(super) client: HttpClient,
    pub(super) bucket: Bucket,
    pub(super) credentials: Credentials,
    pub(super) timeout: Duration,
    pub(super) part_bytes: usize,
    /// `Content-Type` and `Content-Encoding`, stored with the object.
    pub(super) content_headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) retrier: Retrier,
    pub(super) multipart_uploads: Counter,
}

impl Uploader {
    /// The headers stored with each object.
    pub(super) fn content_headers(
        content_type: &'static str,
        content_encoding: Option<&'static str>,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static(content_type))];
        if let Some(encoding) = content_encoding {
            headers.push((CONTENT_ENCODING, HeaderValue::from_static(encoding)));
        }
        headers
    }

    /// Stores `body` under `key`, retrying as configured.
    pub(super) async fn store(&self, key: &str, body: Bytes) -> Result<(), DeliveryError> {
        if body.len() <= self.part_bytes {
            let action = PutObject::new(&self.bucket, Some(&self.credentials), key);
            let headers = &self.content_headers;
            let put = |answer: Answer| s3_outcome(answer.outcome);
            return self
                .retried(key, &action, Method::PUT, headers, body, put)
                .await;
        }
        self.multipart_uploads.inc(1);
        let upload_id = self.create(key).await?;
        let result = self.upload_parts(key, &upload_id, body).await;
        if result.is_err() {
            self.abort(key, &upload_id).await;
        }
        result
    }

    /// One request of `action`, signed anew for each attempt and retried as configured
    /// while `judge` finds its answer worth retrying.
    async fn retried<'a>(
        &self,
        key: &str,
        action: &impl S3Action<'a>,
        method: Method,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        judge: impl Fn(Answer) -> Outcome,
    ) -> Result<(), DeliveryError> {
        let (client, timeout, judge) = (&self.client, self.timeout, &judge);
        self.retrier
            .run(&key, || {
                let signed = presign(action, timeout);
                let (method, body) = (method.clone(), body.clone());
                async move {
                    match signed {
                        Ok(uri) => {
                            judge(client.request(method, &uri, headers, body, timeout).await)
                        }
                        Err(outcome) => outcome,
                    }
                }
            })
            .await
    }

    async fn create(&self, key: &str) -> Result<String, DeliveryError> {
        let action = CreateMultipartUpload::new(&self.bucket, Some(&self.credentials), key);
        // Set by the attempt that succeeds (`Sync`, unlike a `RefCell`: the task must be `Send`).
        let upload_id = OnceLock::new();
        let read = |answer: Answer| {
            if answer.outcome != Outcome::Delivered {
                return s3_outcome(answer.outcome);
            }
            match CreateMultipartUpload::parse_response(&answer.body) {
                Ok(response) => {
                    let _ = upload_id.set(response.upload_id().to_string());
                    Outcome::Delivered
                }
                Err(error) => Outcome::retryable(format!(
                    "cannot read the answer to CreateMultipartUpload: {error}"
                )),
            }
        };
        let headers = &self.content_headers;
        self.retried(key, &action, Method::POST, headers, Bytes::new(), read)
            .await?;
        Ok(upload_id.into_inner().unwrap_or_default())
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        body: Bytes,
    ) -> Result<(), DeliveryError> {
        // Within S3's 10,000 parts whatever the object's size.
        let part_bytes = self.part_bytes.max(body.len().div_ceil(MAX_PARTS));
        let mut etags: Vec<String> = Vec::new();
        for (index, start) in (0..body.len()).step_by(part_bytes).enumerate() {
            let part = body.slice(start..(start + part_bytes).min(body.len()));
            // `index < MAX_PARTS`, so the part number fits.
            let number = u16::try_from(index + 1).unwrap_or(u16::MAX);
            let credentials = Some(&self.credentials);
            let action = UploadPart::new(&self.bucket, credentials, key, number, upload_id);
            let etag = OnceLock::new();
            let read = |answer: Answer| {
                if answer.outcome != Outcome::Delivered {
                    return s3_outcome(answer.outcome);
                }
                match answer.headers.get(ETAG).and_then(|v| v.to_str().ok()) {
                    Some(value) => {
                        let _ = etag.set(value.to_string());
                        Outcome::Delivered
                    }
                    None => Outcome::Fatal(format!("part {number} answered without an ETag")),
                }
            };
            self.retried(key, &action, Method::PUT, &[], part, read)
                .await?;
            etags.push(etag.into_inner().unwrap_or_default());
        }
        let etags = || etags.iter().map(String::as_str);
        let (bucket, credentials) = (&self.bucket, Some(&self.credentials));
        let complete = CompleteMultipartUpload::new(bucket, credentials, key, upload_id, etags());
        let xml = CompleteMultipartUpload::new(bucket, credentials, key, upload_id, etags());
        let xml = Bytes::from(xml.body());
        self.retried(key, &complete, Method::POST, &[], xml, complete_outcome)
            .await
    }

    /// Lets the store free the parts of an upload that failed for good (one attempt: a
    /// store that keeps them reclaims them by its lifecycle rules).
    async fn abort(&self, key: &str, upload_id: &str) {
        let action =
            AbortMultipartUpload::new(&self.bucket, Some(&self.credentials), key, upload_id);
        let outcome = match presign(&action, self.timeout) {
            Ok(uri) => {
                self.client
                    .request(Method::DELETE, &uri, &[], Bytes::new(), self.timeout)
                    .await
                    .outcome
            }
            Err(outcome) => outcome,
        };
        if outcome != Outcome::Delivered {
            tracing::warn!(%key, ?outcome, "could not abort a failed multipart upload; its parts stay until the bucket's lifecycle rules remove them");
        }
    }
}

/// The action's URL, signed to be valid for a little longer than one attempt may take.
fn presign<'a>(action: &impl S3Action<'a>, timeout: Duration) -> Result<Uri, Outcome> {
    let url = action.sign(timeout + Duration::from_secs(60));
    url.as_str()
        .parse()
        .map_err(|e| Outcome::Fatal(format!("signed URL is not a valid URI: {e}")))
}

/// S3's transient 4xx codes retried.
fn s3_outcome(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Fatal(message) if RETRYABLE_CODES.iter().any(|c| message.contains(c)) => {
            Outcome::retryable(message)
        }
        other => other,
    }
}

/// A CompleteMultipartUpload's 200 can still carry an `<Error>`: retried (S3's advice).
fn complete_outcome(answer: Answer) -> Outcome {
    if answer.outcome != Outcome::Delivered {
        return s3_outcome(answer.outcome);
    }
    if memchr::memmem::find(&answer.body, b"<Error>").is_some() {
        let quoted = String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]);
        return Outcome::retryable(format!("CompleteMultipartUpload failed: {}", quoted.trim()));
    }
    Outcome::Delivered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for (text, ok) in [
            ("http://127.0.0.1:8333", true),
            ("https://s3.eu-west-1.amazonaws.com", true),
            ("https://minio.example.com/prefix/", true),
            ("ftp://x", false),
            ("127.0.0.1:8333", false),
            ("http://x?a=b", false),
            ("", false),
        ] {
            assert_eq!(parse_endpoint(text).is_ok(), ok, "{text}");
        }
    }

    #[test]
    fn bucket_urls_by_style() {
        let path = bucket(Some("http://127.0.0.1:8333"), true, "logs", "us-east-1").unwrap();
        assert_eq!(path.base_url().as_str(), "http://127.0.0.1:8333/logs/");
        let host = bucket(None, false, "logs", "eu-west-1").unwrap();
        assert_eq!(
            host.base_url().as_str(),
            "https://logs.s3.eu-west-1.amazonaws.com/"
        );
    }

    #[test]
    fn transient_s3_codes_are_retried() {
        let fatal = |body: &str| Outcome::Fatal(format!("HTTP 400 Bad Request: {body}"));
        let retried = |o: &Outcome| matches!(o, Outcome::Retryable { .. });
        assert!(retried(&s3_outcome(fatal(
            "<Error><Code>RequestTimeout</Code></Error>"
        ))));
        assert!(!retried(&s3_outcome(fatal(
            "<Error><Code>NoSuchBucket</Code></Error>"
        ))));
        let ok = |body: &'static str| Answer {
            outcome: Outcome::Delivered,
            headers: Default::default(),
            body: Bytes::from_static(body.as_bytes()),
        };
        assert!(retried(&complete_outcome(ok(
            "<Error><Code>InternalError</Code></Error>"
        ))));
        assert_eq!(
            complete_outcome(ok("<CompleteMultipartUploadResult/>")),
            Outcome::Delivered
        );
    }
}
