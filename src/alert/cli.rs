//! `sluice alerts`: fetches `GET /v1/alerts` from a router and renders it.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};

use crate::delivery::http::{bearer, HttpClient};

/// Default router API address.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8686";

/// Answers bigger than this are refused (a router lists at most max_groups per rule).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AlertsCliError {
    #[error("invalid url `{0}`")]
    Url(String),
    #[error("cannot reach a router at {url}: {message}; {hint}", hint = crate::router_url::START_HINT)]
    Unreachable { url: String, message: String },
    #[error("cannot read the router's answer: {0}")]
    Answer(String),
    #[error("cannot start: {0}")]
    Runtime(String),
    #[error("the router answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the router's answer is not the expected JSON: {0}")]
    Json(String),
    #[error("cannot set up tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Fetches the active alerts from the router API at `base` (e.g. `http://127.0.0.1:8686`),
/// with `token` as a bearer token when the API asks for one; an `https://` base trusts the
/// system's CAs and `--ca-file`, presenting `--cert-file` when given.
pub fn fetch(
    base: &str,
    token: Option<&str>,
    tls: &crate::tls::CliTls,
) -> Result<serde_json::Value, AlertsCliError> {
    let url = format!(
        "{}/v1/alerts",
        crate::router_url::with_scheme(base).trim_end_matches('/')
    );
    let uri: hyper::Uri = url.parse().map_err(|_| AlertsCliError::Url(base.into()))?;
    let https = uri.scheme_str() == Some("https");
    if !(https || uri.scheme_str() == Some("http")) || uri.host().is_none() {
        return Err(AlertsCliError::Url(base.into()));
    }
    let client = if https {
        HttpClient::with_tls(tls.client_config()?)
    } else {
        HttpClient::plain()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AlertsCliError::Runtime(e.to_string()))?;
    runtime.block_on(async {
        let headers = bearer(token).map_err(|e| AlertsCliError::Runtime(e.into()))?;
        let response = client
            .get(&uri, &headers, Duration::from_secs(10))
            .await
            .map_err(|message| AlertsCliError::Unreachable {
                url: url.clone(),
                message,
            })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| AlertsCliError::Answer(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let mut body = String::from_utf8_lossy(&body).trim().to_string();
            if status == hyper::StatusCode::UNAUTHORIZED && token.is_none() {
                body.push_str(" (pass --token or set SLUICE_TOKEN)");
            }
            return Err(AlertsCliError::Status {
                status: status.as_u16(),
                body,
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| AlertsCliError::Json(e.to_string()))?;
        if !value["alerts"].is_array() {
            return Err(AlertsCliError::Json("no `alerts` array".into()));
        }
        Ok(value)
    })
}

/// The alerts as a table: RULE, STATUS, SEVERITY, GROUP, VALUE, SINCE.
pub fn render_table(answer: &serde_json::Value) -> String {
    let alerts = answer["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        return "no active alerts\n".into();
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut rows = vec![[
        "RULE".to_string(),
        "STATUS".into(),
        "SEVERITY".into(),
        "GROUP".into(),
        "VALUE".into(),
        "SINCE".into(),
    ]];
    for alert in &alerts {
        let group = match &alert["group"] {
            serde_json::Value::Object(map) if !map.is_empty() => map
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(" "),
            _ => "-".into(),
        };
        let value = match alert["value"].as_f64() {
            Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
            Some(v) => format!("{v:.3}"),
            None => text(&alert["value"]),
        };
        rows.push([
            text(&alert["rule"]),
            text(&alert["status"]),
            text(&alert["severity"]),
            group,
            value,
            text(&alert["since"]),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_table() {
        let answer = serde_json::json!({"alerts": [
            {"rule": "errors", "status": "firing", "severity": "critical", "group": {"app": "web"}, "value": 12.0, "since": "2026-11-26T07:00:00.000000Z"},
            {"rule": "ratio", "status": "pending", "severity": "info", "group": {}, "value": 0.25, "since": "2026-11-26T07:01:00.000000Z"},
        ]});
        let table = render_table(&answer);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("RULE    STATUS   SEVERITY  GROUP    VALUE  SINCE"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("errors  firing   critical  app=web  12 "),
            "{table}"
        );
        assert!(
            lines[2].contains("pending") && lines[2].contains("0.250"),
            "{table}"
        );
        assert_eq!(
            render_table(&serde_json::json!({"alerts": []})),
            "no active alerts\n"
        );
    }
}
