//! `sluice query` and `sluice tail`: clients of a router's store API, printing a table
//! (time, level, app, message) or, with `--json`, one event per line.

use std::io::Write;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::{StatusCode, Uri};

use crate::delivery::http::{bearer, HttpClient};

/// Where the CLI looks for a router unless told otherwise (the default `[api] address`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8686";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad url `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot reach {url}: {reason}; {hint}", hint = crate::router_url::START_HINT)]
    Connect { url: String, reason: String },
    #[error("the router answered {status}: {message}")]
    Refused { status: StatusCode, message: String },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot start: {0}")]
    Runtime(String),
    #[error("cannot set up tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// How long the router has to answer a request's head (a search's whole answer is bounded
/// by the same time again).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// What `sluice query` asks for.
#[derive(Debug, Clone, Default)]
pub struct QueryArgs {
    pub url: String,
    pub query: String,
    pub since: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: usize,
    pub json: bool,
    /// The API token (`--token` or `SLUICE_TOKEN`), sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// For `https://`: the CA trusted besides the system's, and the client certificate to
    /// present (`--ca-file`, `--cert-file`, `--key-file`).
    pub tls: crate::tls::CliTls,
}

/// `text` percent-encoded for a query string.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn endpoint(base: &str, path: &str, params: &[(&str, &str)]) -> Result<Uri, ClientError> {
    let query: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let url = format!(
        "{}{path}?{}",
        crate::router_url::with_scheme(base).trim_end_matches('/'),
        query.join("&")
    );
    let bad = |reason: String| ClientError::Url {
        url: base.to_string(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(bad("expected http://HOST:PORT or https://HOST:PORT".into()));
    }
    Ok(uri)
}

/// The client for `uri`: plain for `http://`; for `https://`, trusting the system's CAs and
/// `--ca-file`, presenting `--cert-file` when given.
fn client(uri: &Uri, tls: &crate::tls::CliTls) -> Result<HttpClient, ClientError> {
    if uri.scheme_str() != Some("https") {
        return Ok(HttpClient::plain());
    }
    Ok(HttpClient::with_tls(tls.client_config()?))
}

fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Runtime(e.to_string()))
}

async fn get(
    client: &HttpClient,
    uri: Uri,
    token: Option<&str>,
) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
    let url = uri.to_string();
    let headers = bearer(token).map_err(|e| ClientError::Runtime(e.into()))?;
    let response = client
        .get(&uri, &headers, ANSWER_TIMEOUT)
        .await
        .map_err(|reason| ClientError::Connect {
            url: url.clone(),
            reason,
        })?;
    if response.status() != StatusCode::OK {
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let message = match (status, token) {
            (StatusCode::UNAUTHORIZED, None) => {
                format!("{message} (pass --token or set SLUICE_TOKEN)")
            }
            _ => message,
        };
        return Err(ClientError::Refused { status, message });
    }
    Ok(response)
}

/// Runs `sluice query`, printing to `out`.
pub fn run_query(args: &QueryArgs, out: &mut dyn Write) -> Result<(), ClientError> {
    let limit = args.limit.to_string();
    let uri = endpoint(
        &args.url,
        "/v1/query",
        &[
            ("q", &args.query),
            ("since", args.since.as_deref().unwrap_or("")),
            ("from", args.from.as_deref().unwrap_or("")),
            ("to", args.to.as_deref().unwrap_or("")),
            ("limit", &limit),
        ],
    )?;
    let body = runtime()?.block_on(async {
        let client = client(&uri, &args.tls)?;
        let response = get(&client, uri, args.token.as_deref()).await?;
        tokio::time::timeout(ANSWER_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| ClientError::Runtime("the answer did not arrive within 60 s".into()))?
            .map(|b| b.to_bytes())
            .map_err(|e| ClientError::Runtime(e.to_string()))
    })?;
    let page: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ClientError::Runtime(e.to_string()))?;
    let events = page["events"].as_array().cloned().unwrap_or_default();
    if let Some(line) = partial_line(&page) {
        eprintln!("sluice query: {line}");
    }
    if args.json {
        for event in &events {
            writeln!(out, "{event}")?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<30}  {:<7}  {:<12}  MESSAGE",
        "TIME", "LEVEL", "APP"
    )?;
    for event in &events {
        writeln!(out, "{}", table_row(event))?;
    }
    let total = page["total"].as_u64().unwrap_or(0);
    writeln!(out, "-- {} of {total} matching events", events.len())?;
    Ok(())
}

/// What a federated answer that lacks some peers says on stderr (docs/federation.md):
/// `partial result: http://agg-2:8686 (no answer within 5000 ms), ...`; `None` for a whole
/// answer.
pub fn partial_line(answer: &serde_json::Value) -> Option<String> {
    let missing = answer["missing"].as_array().filter(|m| !m.is_empty())?;
    let peers: Vec<String> = missing
        .iter()
        .map(|m| {
            format!(
                "{} ({})",
                m["peer"].as_str().unwrap_or("?"),
                m["reason"].as_str().unwrap_or("no reason given")
            )
        })
        .collect();
    Some(format!(
        "partial result: {} of {} peers missing: {}",
        missing.len(),
        missing.len() + answer["answered"].as_array().map_or(0, Vec::len),
        peers.join(", ")
    ))
}

fn table_row(event: &serde_json::Value) -> String {
    let text = |key: &str| match &event[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut message = text("message");
    if message.is_empty() {
        // An event without a message (`sluice run`'s start and exit events, say) shows its
        // other fields rather than a blank.
        if let Some(fields) = event.as_object() {
            let shown = ["timestamp", "level", "app", "message"];
            message = fields
                .iter()
                .filter(|(key, _)| !shown.contains(&key.as_str()))
                .map(|(key, value)| match value {
                    serde_json::Value::String(s) => format!("{key}={s}"),
                    other => format!("{key}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    let message = message
        .replace('\n', "\\n")
        .replace('\t', "\\t")
        .replace('\r', "\\r");
    format!(
        "{}  {}  {}  {message}",
        cell(&text("timestamp"), 27),
        cell(&text("level"), 8),
        cell(&text("app"), 16)
    )
}

/// `text` in exactly `width` columns: control characters (tabs) as spaces, padded, or cut
/// with an ellipsis, so that a long level or app does not push the columns after it.
fn cell(text: &str, width: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() > width {
        let mut cut: String = clean.chars().take(width - 1).collect();
        cut.push('…');
        cut
    } else {
        format!("{clean:<width$}")
    }
}

/// What `sluice tail` asks for.
#[derive(Debug, Clone, Default)]
pub struct TailArgs {
    pub url: String,
    pub query: String,
    pub json: bool,
    /// Exit when the stream ends instead of reconnecting.
    pub no_retry: bool,
    /// The API token (`--token` or `SLUICE_TOKEN`), sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// For `https://`: the CA trusted besides the system's and the client certificate.
    pub tls: crate::tls::CliTls,
    /// `sluice tap`: the outputs (`ID[.OUTPUT]`) to follow instead of the store...
    pub taps: Vec<String>,
    /// ...and the components whose inputs to follow.
    pub inputs_of: Vec<String>,
}

impl TailArgs {
    fn is_tap(&self) -> bool {
        !self.taps.is_empty() || !self.inputs_of.is_empty()
    }

    /// The command, as its messages on stderr name it.
    fn command(&self) -> &'static str {
        if self.is_tap() {
            "sluice tap"
        } else {
            "sluice tail"
        }
    }
}

/// Waits between reconnection attempts: the first, doubled after each failure up to the
/// last, and back to the first once a stream is established.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Silence after which the connection counts as lost: the router sends a keepalive comment
/// every [`super::tail::KEEPALIVE`], so three missed ones mean a router (or a network path)
/// that went away without closing the connection.
const SILENCE_LIMIT: Duration = Duration::from_secs(3 * super::tail::KEEPALIVE.as_secs());

/// Runs `sluice tail` until interrupted: each time the stream ends it says so on stderr and
/// reconnects with backoff; with `no_retry`, it returns when the stream ends. Only the first
/// connection must succeed (a wrong URL or a bad query is an error, not something to wait
/// out); later, a router that cannot be reached or answers 5xx is retried, and only a
/// refusal that no retry can change (4xx) ends the tail.
pub fn run_tail(args: &TailArgs, out: &mut dyn Write) -> Result<(), ClientError> {
    let uri = if args.is_tap() {
        let mut params = vec![("q", args.query.as_str())];
        params.extend(args.taps.iter().map(|t| ("component", t.as_str())));
        params.extend(args.inputs_of.iter().map(|t| ("inputs_of", t.as_str())));
        endpoint(&args.url, "/v1/tap", &params)?
    } else {
        endpoint(&args.url, "/v1/tail", &[("q", &args.query)])?
    };
    let command = args.command();
    runtime()?.block_on(async {
        let token = args.token.as_deref();
        let client = client(&uri, &args.tls)?;
        let mut response = get(&client, uri.clone(), token).await?;
        loop {
            match follow(response, args.json, command, out).await? {
                StreamEnd::Closed => eprintln!("{command}: router closed the stream"),
                StreamEnd::Lost(reason) => {
                    eprintln!("{command}: lost the connection to the router: {reason}")
                }
            }
            if args.no_retry {
                return Ok(());
            }
            response = reconnect(&client, &uri, token, command).await?;
            eprintln!("{command}: reconnected to {}", args.url);
        }
    })
}

/// Connects again, waiting [`FIRST_BACKOFF`] first and doubling the wait after each failure.
async fn reconnect(
    client: &HttpClient,
    uri: &Uri,
    token: Option<&str>,
    command: &str,
) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
    let mut backoff = FIRST_BACKOFF;
    eprintln!(
        "{command}: reconnecting in {} s (--no-retry exits instead)",
        backoff.as_secs()
    );
    loop {
        tokio::time::sleep(backoff).await;
        match get(client, uri.clone(), token).await {
            Ok(response) => return Ok(response),
            Err(error) if worth_retrying(&error) => {
                backoff = (backoff * 2).min(MAX_BACKOFF);
                eprintln!("{command}: {error}; retrying in {} s", backoff.as_secs());
            }
            Err(error) => return Err(error),
        }
    }
}

/// A router that is down, restarting (503 while it shuts down) or overloaded may answer
/// later; a 4xx says the request itself is refused.
fn worth_retrying(error: &ClientError) -> bool {
    match error {
        ClientError::Connect { .. } => true,
        ClientError::Refused { status, .. } => {
            status.is_server_error()
                || *status == StatusCode::REQUEST_TIMEOUT
                || *status == StatusCode::TOO_MANY_REQUESTS
        }
        _ => false,
    }
}

/// How one tail stream ended.
enum StreamEnd {
    /// The router ended it (it is shutting down).
    Closed,
    /// The connection broke or fell silent.
    Lost(String),
}

/// Prints the events of one tail stream until it ends.
async fn follow(
    response: hyper::Response<hyper::body::Incoming>,
    json: bool,
    command: &str,
    out: &mut dyn Write,
) -> Result<StreamEnd, ClientError> {
    let mut body = response.into_body();
    let mut pending = Vec::<u8>::new();
    let mut event_kind = String::new();
    loop {
        let frame = match tokio::time::timeout(SILENCE_LIMIT, body.frame()).await {
            Err(_) => {
                let secs = SILENCE_LIMIT.as_secs();
                return Ok(StreamEnd::Lost(format!("nothing received for {secs} s")));
            }
            Ok(None) => return Ok(StreamEnd::Closed),
            Ok(Some(Err(error))) => return Ok(StreamEnd::Lost(error.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if let Some(kind) = line.strip_prefix("event: ") {
                event_kind = kind.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let value: serde_json::Value =
                    serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
                if event_kind == "partial" {
                    match partial_line(&value) {
                        Some(line) => eprintln!("{command}: {line}"),
                        None => eprintln!("{command}: every peer answers again"),
                    }
                } else if event_kind == "overflow" {
                    eprintln!(
                        "{command}: {} events dropped (this client fell behind)",
                        value["dropped"]
                    );
                } else if json {
                    writeln!(out, "{data}")?;
                } else {
                    writeln!(out, "{}", table_row(&value))?;
                }
                out.flush()?;
            } else if line.is_empty() {
                event_kind.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_endpoints() {
        let uri = endpoint(
            "http://127.0.0.1:8686/",
            "/v1/query",
            &[("q", "app:web \"a b\""), ("since", "")],
        )
        .expect("uri");
        assert_eq!(
            uri.to_string(),
            "http://127.0.0.1:8686/v1/query?q=app%3Aweb%20%22a%20b%22"
        );
        assert_eq!(
            endpoint("127.0.0.1:8686", "/v1/tail", &[])
                .expect("uri")
                .to_string(),
            "http://127.0.0.1:8686/v1/tail?"
        );
        assert!(endpoint("https://x", "/v1/query", &[]).is_ok());
        assert!(endpoint("ftp://x", "/v1/query", &[]).is_err());
        assert!(endpoint("no host", "/v1/query", &[]).is_err());
    }

    #[test]
    fn table_columns_stay_aligned_and_no_row_is_blank() {
        let rows = [
            (
                serde_json::json!({"timestamp": "2026-11-26T06:00:00.000000Z", "level": "error", "app": "web", "message": "short"}),
                "short",
            ),
            (
                serde_json::json!({"timestamp": "2026-11-26T06:00:00.000001Z", "level": "emergency-ish", "app": "a-very-long-application-name", "message": "long"}),
                "long",
            ),
            (
                serde_json::json!({"timestamp": "2026-11-26T06:00:00.000002Z", "level": "in\tfo", "app": "t\tab", "message": "x\ty"}),
                "x\\ty",
            ),
        ];
        // Where the message starts, in characters: the same on every row.
        let starts: Vec<usize> = rows
            .iter()
            .map(|(event, shown)| {
                let row = table_row(event);
                assert!(!row.contains('\t'), "{row}");
                let at = row
                    .rfind(shown)
                    .unwrap_or_else(|| panic!("{shown} in {row}"));
                row[..at].chars().count()
            })
            .collect();
        assert!(
            starts.windows(2).all(|w| w[0] == w[1]),
            "message columns {starts:?}"
        );
        let exit = serde_json::json!({"timestamp": "2026-11-26T06:00:00Z", "app": "job", "event": "exit", "code": 3});
        let row = table_row(&exit);
        assert!(
            row.contains("event=exit") && row.contains("code=3"),
            "{row}"
        );
    }

    #[test]
    fn table_rows() {
        let event = serde_json::json!({"timestamp": "2026-11-26T06:00:00Z", "level": "error", "app": "web", "message": "a\nb", "status": 500});
        let row = table_row(&event);
        assert!(row.starts_with("2026-11-26T06:00:00Z"), "{row}");
        assert!(row.ends_with("a\\nb"), "{row}");
    }

    #[test]
    fn reconnects_only_when_a_retry_can_help() {
        let refused = |code: u16| ClientError::Refused {
            status: StatusCode::from_u16(code).expect("status"),
            message: String::new(),
        };
        let connect = ClientError::Connect {
            url: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        let cases = [
            (connect, true),
            (refused(503), true),
            (refused(500), true),
            (refused(429), true),
            (refused(408), true),
            (refused(400), false),
            (refused(404), false),
            (ClientError::Runtime("no runtime".into()), false),
        ];
        for (error, retry) in cases {
            assert_eq!(worth_retrying(&error), retry, "{error}");
        }
    }
}
