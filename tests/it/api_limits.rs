//! What one API caller may hold or spend (issue 15): live tails capped per token and in
//! total (429 saying which cap, counted, the slot given back when the client leaves), and
//! searches, histograms and top-values lists cut off past `max_scanned_events` with a 503
//! saying so, while a narrower request is answered.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::api_auth::send;
use crate::store::json;
use crate::util::{tempdir, Router, TIMEOUT};

const ALICE: &str = "alice-token-aaaaaaaaaaaa";
const BOB: &str = "bob-token-bbbbbbbbbbbbbb";

/// `api_refused_requests_total{reason}`.
fn refused(reason: &str) -> u64 {
    sluice::telemetry::counter_value("api_refused_requests_total", &[("reason", reason)])
}

/// Opens a live tail with `token`; the stream (kept open) and its status line's code.
fn open_tail(api: SocketAddr, token: &str) -> (TcpStream, u16, String) {
    let mut stream = TcpStream::connect(api).expect("connects");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    write!(
        stream,
        "GET /v1/tail?q=app:capped HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .expect("request");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // A stream is established once its first comment is in; a refusal ends with its body.
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if n == 0 || text.contains(": tailing") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (stream, status, body)
}

async fn limited_router(dir: &std::path::Path, api_extra: &str) -> Router {
    limited_router_on(dir, api_extra, "").await
}

/// As [`limited_router`], the store's table ending with `store_extra`.
async fn limited_router_on(dir: &std::path::Path, api_extra: &str, store_extra: &str) -> Router {
    let tokens = dir.join("api-tokens");
    std::fs::write(&tokens, format!("{ALICE} read\n{BOB} read\n")).expect("tokens");
    Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"
auth = {{ tokens_file = "{}" }}
{api_extra}

[sources.al_in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[sinks.al_store]
type = "store"
inputs = ["al_in"]
path = "{}"
commit_interval_ms = 20
{store_extra}
"#,
        tokens.display(),
        dir.join("store").display(),
    ))
    .await
}

fn post(ingest: SocketAddr, body: &str) -> u16 {
    send(
        ingest,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/x-ndjson")],
        body,
        false,
    )
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tails_are_capped_per_token_and_in_total() {
    let dir = tempdir();
    let router = limited_router(
        dir.path(),
        "max_tail_clients = 3\nmax_tail_clients_per_token = 2",
    )
    .await;
    let (ingest, api) = (router.addr("al_in"), router.addr("api"));
    tokio::task::spawn_blocking(move || {
        let per_token_before = refused("tail_clients_per_token");
        let total_before = refused("tail_clients");
        let (alice_1, status, _) = open_tail(api, ALICE);
        assert_eq!(status, 200);
        let (_alice_2, status, _) = open_tail(api, ALICE);
        assert_eq!(status, 200);
        let (_, status, body) = open_tail(api, ALICE);
        assert_eq!(status, 429, "a third tail of one token: {body}");
        assert!(
            json(&body)["error"]
                .as_str()
                .is_some_and(|e| e.contains("max_tail_clients_per_token")),
            "{body}"
        );
        let (_bob_1, status, _) = open_tail(api, BOB);
        assert_eq!(status, 200, "another token has its own allowance");
        let (_, status, body) = open_tail(api, BOB);
        assert_eq!(status, 429, "the total cap: {body}");
        assert!(body.contains("max_tail_clients"), "{body}");
        assert_eq!(refused("tail_clients_per_token"), per_token_before + 1);
        assert_eq!(refused("tail_clients"), total_before + 1);
        // Searches are not tails: they are answered whatever the tails hold.
        let query = send(
            api,
            "GET",
            "/v1/query?q=",
            &[("Authorization", &format!("Bearer {BOB}"))],
            "",
            false,
        );
        assert_eq!(query.status, 200);
        // A client that leaves gives its slot back once the router notices (the next
        // event it would have been sent, at the latest).
        drop(alice_1);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert_eq!(
                post(ingest, "{\"app\":\"capped\",\"message\":\"nudge\"}\n"),
                200
            );
            let (stream, status, _) = open_tail(api, ALICE);
            if status == 200 {
                drop(stream);
                break;
            }
            assert!(Instant::now() < deadline, "the slot was never given back");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .expect("tails");
    router.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_their_scan_bound_get_503() {
    scan_bound_with("").await;
}

/// The same bound, the same answers, on the tantivy engine: both count matching events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_their_scan_bound_get_503_on_tantivy() {
    scan_bound_with(r#"engine = "tantivy""#).await;
}

async fn scan_bound_with(store_extra: &str) {
    let dir = tempdir();
    let router = limited_router_on(dir.path(), "max_scanned_events = 100", store_extra).await;
    let (ingest, api) = (router.addr("al_in"), router.addr("api"));
    tokio::task::spawn_blocking(move || {
        let mut body = String::new();
        for i in 0..300 {
            let app = if i % 30 == 0 { "rare" } else { "common" };
            body.push_str(&format!(
                "{{\"app\":\"{app}\",\"level\":\"info\",\"message\":\"event {i}\"}}\n"
            ));
        }
        assert_eq!(post(ingest, &body), 200);
        let bearer = format!("Bearer {ALICE}");
        let get = |path: &str| send(api, "GET", path, &[("Authorization", &bearer)], "", false);
        let before = refused("query_cost");
        for path in [
            "/v1/query?q=",
            "/v1/query?q=app:common&limit=5",
            "/v1/histogram?q=",
            "/v1/top?field=app",
        ] {
            let answer = get(path);
            assert_eq!(answer.status, 503, "{path}: {answer:?}");
            assert!(
                answer.error().contains("max_scanned_events"),
                "{path}: {}",
                answer.error()
            );
        }
        assert_eq!(refused("query_cost"), before + 4);
        // Ten matches are within the bound.
        let narrow = get("/v1/query?q=app:rare");
        assert_eq!(narrow.status, 200, "{narrow:?}");
        let top = get("/v1/top?field=level&q=app:rare");
        assert_eq!(top.status, 200, "{top:?}");
    })
    .await
    .expect("queries");
    router.stop().await;
}
