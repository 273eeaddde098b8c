//! `sluice reload` (and the same call for `/v1/reopen`): asks a running router's API to
//! reload its pipeline file, and says what it changed or why it refused.

use std::time::Duration;

use bytes::Bytes;

use crate::delivery::http::{bearer, HttpClient};
use crate::delivery::retry::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum AdminCliError {
    #[error("invalid url `{0}`")]
    Url(String),
    #[error("cannot start: {0}")]
    Runtime(String),
    #[error("cannot set up tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The router answered with a failure: the reload was refused (422, its reason), the
    /// token lacks the admin role, or the router could not be reached.
    #[error("{0}")]
    Failed(String),
}

/// POSTs `path` (`/v1/reload`, `/v1/reopen`) to the router at `base`; the answer's JSON on
/// success. Long enough a timeout for a reload that waits on the file system.
pub fn post(
    base: &str,
    path: &str,
    token: Option<&str>,
    tls: &crate::tls::CliTls,
) -> Result<serde_json::Value, AdminCliError> {
    let url = format!(
        "{}{path}",
        crate::router_url::with_scheme(base).trim_end_matches('/')
    );
    let uri: hyper::Uri = url.parse().map_err(|_| AdminCliError::Url(base.into()))?;
    let https = uri.scheme_str() == Some("https");
    if !(https || uri.scheme_str() == Some("http")) || uri.host().is_none() {
        return Err(AdminCliError::Url(base.into()));
    }
    let client = if https {
        HttpClient::with_tls(tls.client_config()?)
    } else {
        HttpClient::plain()
    };
    let headers = bearer(token).map_err(|e| AdminCliError::Runtime(e.into()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AdminCliError::Runtime(e.to_string()))?;
    let (outcome, body) = runtime.block_on(client.post_for_answer(
        &uri,
        &headers,
        Bytes::new(),
        Duration::from_secs(60),
    ));
    match outcome {
        Outcome::Delivered => serde_json::from_slice(&body)
            .map_err(|e| AdminCliError::Failed(format!("the router's answer is not JSON: {e}"))),
        Outcome::Retryable { message, .. } | Outcome::Fatal(message) => {
            Err(AdminCliError::Failed(format!("{url}: {message}")))
        }
    }
}
