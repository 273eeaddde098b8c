//! Bad input never kills the router, and every bad frame is counted.
//!
//! Each test sends hostile bytes next to good ones and checks that (a) the good events
//! arrive intact, (b) the bad frame is counted under its reason, and (c) the router keeps
//! serving a fresh connection afterwards.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::util::{counter, read_lines, tempdir, wait_until, Router};

async fn router(id: &str, framing: &str, decoding: &str, out: &std::path::Path) -> Router {
    Router::start(&format!(
        r#"
[sources.{id}]
type = "tcp"
address = "127.0.0.1:0"
framing = {framing}
decoding = "{decoding}"

[sinks.{id}_out]
type = "file"
inputs = ["{id}"]
path = "{}"
encoding = "json"

[sinks.{id}_dead]
type = "file"
inputs = ["{id}.dead_letter"]
path = "{}"
"#,
        out.display(),
        dead_letter_path(out).display()
    ))
    .await
}

fn dead_letter_path(out: &std::path::Path) -> std::path::PathBuf {
    out.with_extension("dead.log")
}

async fn send(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
}

/// Sends `bad` between two good lines, then a good line on a new connection, and checks
/// the good ones arrive and `reason` was counted once.
async fn check(id: &str, framing: &str, decoding: &str, good: [&str; 3], bad: &[u8], reason: &str) {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let router = router(id, framing, decoding, &out).await;
    let addr = router.addr(id);
    let mut payload = Vec::new();
    payload.extend_from_slice(good[0].as_bytes());
    payload.extend_from_slice(bad);
    payload.extend_from_slice(good[1].as_bytes());
    send(addr, &payload).await;
    send(addr, good[2].as_bytes()).await;
    let sink = format!("{id}_out");
    wait_until("good events written", || {
        counter("component_sent_events_total", &sink, None) == 3
    })
    .await;
    wait_until("bad frame counted", || {
        counter("component_errors_total", id, Some(reason)) == 1
    })
    .await;
    let dead_sink = format!("{id}_dead");
    wait_until("dead letter written", || {
        counter("component_sent_events_total", &dead_sink, None) == 1
    })
    .await;
    router.stop().await;
    let dead = read_lines(&dead_letter_path(&out));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter: serde_json::Value = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(letter["reason_code"], reason, "{letter}");
    assert_eq!(letter["source"], id, "{letter}");
    assert!(
        letter["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{letter}"
    );
    assert!(
        letter["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{letter}"
    );
    let lines = read_lines(&out).join("\n");
    for g in good {
        let marker = g
            .split('"')
            .find(|s| s.starts_with("good"))
            .unwrap_or(g)
            .trim();
        assert!(lines.contains(marker), "{id}: missing {marker} in {lines}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabyte_line_is_skipped_and_counted() {
    let mut huge = vec![b'x'; 10 * 1024 * 1024];
    huge.push(b'\n');
    check(
        "bad_huge",
        "\"newline\"",
        "bytes",
        ["good one\n", "good two\n", "good three\n"],
        &huge,
        "oversized",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_json_is_counted_and_the_stream_continues() {
    check(
        "bad_utf8",
        "\"newline\"",
        "json",
        [
            "{\"m\":\"good one\"}\n",
            "{\"m\":\"good two\"}\n",
            "{\"m\":\"good three\"}\n",
        ],
        b"{\"m\":\"\xff\xfe\"}\n",
        "parse_error",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_ten_thousand_deep_is_counted_not_a_crash() {
    let mut deep = "[".repeat(10_000).into_bytes();
    deep.splice(0..0, b"{\"a\":".iter().copied());
    deep.extend_from_slice("]".repeat(10_000).as_bytes());
    deep.extend_from_slice(b"}\n");
    check(
        "bad_deep",
        "{ method = \"newline\", max_frame_bytes = 1048576 }",
        "json",
        [
            "{\"m\":\"good one\"}\n",
            "{\"m\":\"good two\"}\n",
            "{\"m\":\"good three\"}\n",
        ],
        &deep,
        "parse_error",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_octet_counted_frame_is_counted() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let id = "bad_trunc";
    let router = router(id, "\"octet_counting\"", "syslog", &out).await;
    let addr = router.addr(id);
    let good = "<13>1 2026-11-23T10:00:00Z host app - - - good one";
    send(
        addr,
        format!(
            "{} {good}\n100 <13>1 2026-11-23T10:00:00Z host app - - - cut",
            good.len()
        )
        .as_bytes(),
    )
    .await;
    send(addr, format!("{} {good}", good.len()).as_bytes()).await;
    wait_until("good events", || {
        counter("component_sent_events_total", "bad_trunc_out", None) == 2
    })
    .await;
    wait_until("truncated frame counted", || {
        counter("component_errors_total", id, Some("truncated")) == 1
    })
    .await;
    router.stop().await;
}

/// A connection that sends half a frame and then hangs holds up nobody: other connections'
/// events flow, and shutdown still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_frame_then_hang_blocks_nobody() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let id = "bad_hang";
    let router = router(id, "\"newline\"", "bytes", &out).await;
    let addr = router.addr(id);
    let mut hanging = TcpStream::connect(addr).await.unwrap();
    hanging
        .write_all(b"half a frame, never finished")
        .await
        .unwrap();
    for i in 0..3 {
        send(addr, format!("good {i}\n").as_bytes()).await;
    }
    wait_until("other connections' events", || {
        counter("component_sent_events_total", "bad_hang_out", None) == 3
    })
    .await;
    router.stop().await;
    drop(hanging);
    // On shutdown the unfinished frame is written as it stands rather than lost.
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[3].contains("half a frame"), "{lines:?}");
}
