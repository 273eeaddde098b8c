//! Browser-safe ingest (issue 15, item 3): the http source refuses what a web page could
//! post without the browser asking first (text/plain, form types) and requests from origins
//! it does not list, each counted.

use std::net::SocketAddr;

use crate::api_auth::send;
use crate::util::{counter, tempdir, wait_until, Router};

/// The http source refuses what a web page can post without the browser asking first
/// (text/plain, form types) and requests from origins it does not list, each counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_source_refuses_what_a_web_page_could_post() {
    let dir = tempdir();
    let router = Router::start(&format!(
        r#"
[sources.aa_web_default]
type = "http"
address = "127.0.0.1:0"

[sources.aa_web_open]
type = "http"
address = "127.0.0.1:0"
content_types = ["text/plain", "application/x-ndjson"]
allowed_origins = ["https://app.example.com"]

[sinks.aa_web_out]
type = "file"
inputs = ["aa_web_default", "aa_web_open"]
path = "{}"
"#,
        dir.path().join("out.log").display()
    ))
    .await;
    let (default, open) = (router.addr("aa_web_default"), router.addr("aa_web_open"));
    tokio::task::spawn_blocking(move || {
        let post = |addr, headers: &[(&str, &str)]| {
            send(addr, "POST", "/v1/logs", headers, "a line\n", false)
        };
        type Headers<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(SocketAddr, Headers, u16, &str)> = vec![
            (
                default,
                vec![("Content-Type", "text/plain")],
                415,
                "web pages",
            ),
            (
                default,
                vec![("Content-Type", "text/plain; charset=utf-8")],
                415,
                "content_types",
            ),
            (
                default,
                vec![("Content-Type", "application/x-www-form-urlencoded")],
                415,
                "web pages",
            ),
            (
                default,
                vec![("Content-Type", "multipart/form-data; boundary=x")],
                415,
                "unsupported",
            ),
            (
                default,
                vec![("Content-Type", "application/octet-stream")],
                200,
                "",
            ),
            (default, vec![], 200, ""),
            (
                default,
                vec![
                    ("Content-Type", "application/x-ndjson"),
                    ("Origin", "https://evil.example"),
                ],
                403,
                "allowed_origins",
            ),
            (
                default,
                vec![
                    ("Content-Type", "application/octet-stream"),
                    ("Origin", "null"),
                ],
                403,
                "origin",
            ),
            (open, vec![("Content-Type", "text/plain")], 200, ""),
            (
                open,
                vec![("Content-Type", "application/octet-stream")],
                415,
                "content_types",
            ),
            (
                open,
                vec![
                    ("Content-Type", "text/plain"),
                    ("Origin", "https://app.example.com"),
                ],
                200,
                "",
            ),
            (
                open,
                vec![
                    ("Content-Type", "text/plain"),
                    ("Origin", "https://evil.example"),
                ],
                403,
                "origin",
            ),
        ];
        for (addr, headers, status, reason) in cases {
            let answer = post(addr, &headers);
            assert_eq!(answer.status, status, "{headers:?}: {answer:?}");
            if status != 200 {
                assert!(
                    answer.error().contains(reason),
                    "{headers:?}: {}",
                    answer.error()
                );
            }
        }
        // An allowed origin gets its CORS answers; a refused one none.
        let allowed = post(
            open,
            &[
                ("Content-Type", "text/plain"),
                ("Origin", "https://app.example.com"),
            ],
        );
        assert_eq!(
            allowed.header("access-control-allow-origin").as_deref(),
            Some("https://app.example.com")
        );
        let preflight = send(
            open,
            "OPTIONS",
            "/v1/logs",
            &[
                ("Origin", "https://app.example.com"),
                ("Access-Control-Request-Method", "POST"),
            ],
            "",
            false,
        );
        assert_eq!(preflight.status, 204, "{preflight:?}");
        assert!(preflight
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("content-type")));
    })
    .await
    .expect("requests");
    let refused =
        |id: &str, reason: &str| counter("component_refused_requests_total", id, Some(reason));
    assert_eq!(refused("aa_web_default", "content_type"), 4);
    assert_eq!(refused("aa_web_default", "origin"), 2);
    assert_eq!(refused("aa_web_open", "content_type"), 1);
    assert_eq!(refused("aa_web_open", "origin"), 1);
    wait_until("accepted lines written", || {
        counter("component_sent_events_total", "aa_web_out", None) == 5
    })
    .await;
    router.stop().await;
}
