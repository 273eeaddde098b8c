//! The store sink end to end: retention, damaged partitions, the HTTP query API with its
//! refusals, live tail with a stalled client, kill -9 during ingest, and the CLI.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice::event::{Event, Map, Value};
use sluice::store::search::SearchRequest;
use sluice::store::{Query, Store, StoreOptions};

use crate::util::{sluice_bin, sluice_up, spawn_router, tempdir, Router, TIMEOUT};

const HOUR: i64 = 3_600_000_000_000;

fn event(i: usize) -> Event {
    let mut fields = Map::new();
    fields.insert("message", Value::from(format!("event number {i}").as_str()));
    fields.insert("seq", Value::Integer(i as i64));
    Event::new(fields)
}

/// One HTTP/1.0 exchange (the connection closes after it); returns status and body.
pub(crate) fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: test\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("writes");
    stream.write_all(body).expect("writes");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not json ({e}): {body}"))
}

#[test]
fn retention_drops_the_oldest_partitions_by_age_and_by_size() {
    let dir = tempdir();
    let options = StoreOptions {
        retention_age_secs: Some(2 * 3600),
        ..StoreOptions::default()
    };
    let store = Store::open("retention_age", dir.path(), options).expect("opens");
    let t0 = 1_764_115_200 * 1_000_000_000i64; // an hour boundary
    let mut writer = store.writer();
    for hour in 0..4 {
        let events: Vec<Event> = (0..100).map(|i| event(hour * 100 + i)).collect();
        writer
            .append(&events, t0 + hour as i64 * HOUR)
            .expect("append");
        writer.commit().expect("commit");
    }
    let starts = |s: &Store| -> Vec<i64> { s.partitions().iter().map(|p| p.start_secs).collect() };
    let t0s = t0 / 1_000_000_000;
    assert_eq!(
        starts(&store),
        vec![t0s, t0s + 3600, t0s + 7200, t0s + 10800]
    );
    let before = crate::util::counter(
        "store_partitions_dropped_total",
        "retention_age",
        Some("age"),
    );
    // At 03:10, a 2 h retention keeps what arrived after 01:10: the 00:00 hour goes whole.
    let dropped = store.enforce_retention(t0s + 3 * 3600 + 600, Some(t0s + 10800));
    assert_eq!(dropped, vec![t0s]);
    assert_eq!(starts(&store), vec![t0s + 3600, t0s + 7200, t0s + 10800]);
    assert!(!dir.path().join("20251126T000000Z").exists());
    assert_eq!(store.num_events(), 300);
    assert_eq!(
        crate::util::counter(
            "store_partitions_dropped_total",
            "retention_age",
            Some("age")
        ),
        before + 1
    );
    // Nothing more at the same time; the partition being written is never dropped.
    assert!(store
        .enforce_retention(t0s + 3 * 3600 + 600, Some(t0s + 10800))
        .is_empty());
    assert!(
        store
            .enforce_retention(t0s + 100 * 3600, Some(t0s + 10800))
            .len()
            == 2
    );
    assert_eq!(starts(&store), vec![t0s + 10800]);
    drop(writer);
    drop(store);

    // By size: reopened with room for about two partitions, the oldest go first.
    let dir = tempdir();
    let store = Store::open("retention_size", dir.path(), StoreOptions::default()).expect("opens");
    let mut writer = store.writer();
    for hour in 0..4 {
        let events: Vec<Event> = (0..500).map(|i| event(hour * 500 + i)).collect();
        writer
            .append(&events, t0 + hour as i64 * HOUR)
            .expect("append");
        writer.commit().expect("commit");
    }
    drop(writer);
    let sizes: Vec<u64> = store.partitions().iter().map(|p| p.disk_bytes()).collect();
    drop(store);
    let budget = sizes[2] + sizes[3] + sizes[1] / 2;
    let options = StoreOptions {
        retention_age_secs: None,
        retention_bytes: Some(budget),
        ..StoreOptions::default()
    };
    let store = Store::open("retention_size", dir.path(), options).expect("reopens");
    assert_eq!(store.num_events(), 2000);
    let dropped = store.enforce_retention(t0s + 4 * 3600, None);
    assert_eq!(dropped, vec![t0s, t0s + 3600]);
    assert_eq!(starts(&store), vec![t0s + 7200, t0s + 10800]);
    assert_eq!(store.num_events(), 1000);
    assert!(store.disk_bytes() <= budget);
    assert_eq!(
        crate::util::counter(
            "store_partitions_dropped_total",
            "retention_size",
            Some("size")
        ),
        2
    );
}

#[test]
fn a_damaged_partition_is_moved_aside_and_the_rest_opens() {
    let dir = tempdir();
    let store = Store::open("damage", dir.path(), StoreOptions::default()).expect("opens");
    let mut writer = store.writer();
    writer
        .append(&[event(1), event(2)], 1_764_115_200 * 1_000_000_000)
        .expect("append");
    writer.commit().expect("commit");
    drop(writer);
    drop(store);
    let bad = dir.path().join("20251126T010000Z");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join("meta.json"), b"{ not json").expect("write");
    let store = Store::open("damage", dir.path(), StoreOptions::default()).expect("still opens");
    assert_eq!(store.damaged_partitions(), 1);
    assert_eq!(store.num_events(), 2);
    assert!(!bad.exists());
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("damaged"))
        .expect("damaged dir")
        .collect();
    assert_eq!(aside.len(), 1);
}

fn store_pipeline(data: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[api]
address = "127.0.0.1:0"

[sources.in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[sinks.store]
type = "store"
inputs = ["in"]
path = "{}"
commit_interval_ms = 20
{extra}
"#,
        data.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_queries_and_refuses_bad_parameters() {
    let dir = tempdir();
    let router = Router::start(&store_pipeline(dir.path(), "")).await;
    let (ingest, api) = (router.addr("in"), router.addr("api"));
    let answers = tokio::task::spawn_blocking(move || {
        let mut body = String::new();
        for i in 0..50 {
            let level = if i % 5 == 0 { "error" } else { "info" };
            body.push_str(&format!(
                r#"{{"message":"request {i} done","level":"{level}","app":"web","status":{}}}"#,
                if i % 5 == 0 { 500 } else { 200 }
            ));
            body.push('\n');
        }
        let posted = http(ingest, "POST", "/v1/logs", body.as_bytes());
        let get = |path: &str| http(api, "GET", path, b"");
        (
            posted,
            [
                get("/v1/query?q=level:error&limit=3"),
                get("/v1/query?q=status:%3E%3D500&since=1h"),
                get("/v1/histogram?since=1h&interval=1m&split=level"),
                get("/v1/top?field=level"),
                get("/v1/query?q=app:web&limit=200"),
            ],
            [
                get("/v1/query?q=(unclosed"),
                get("/v1/query?since=soon"),
                get("/v1/query?limit=many"),
                get("/v1/query?cursor=garbage"),
                get("/v1/top"),
                get("/v1/histogram?since=1h&interval=1ms"),
            ],
            get("/"),
            get("/assets/vendor/uplot/uPlot.iife.min.js"),
        )
    })
    .await
    .expect("requests");
    let (posted, oks, bads, page, uplot) = answers;
    assert_eq!(posted.0, 200, "{posted:?}");
    for (status, body) in &oks {
        assert_eq!(*status, 200, "{body}");
    }
    let first = json(&oks[0].1);
    assert_eq!(first["total"], 10);
    assert_eq!(first["events"].as_array().map(Vec::len), Some(3));
    assert!(first["next_cursor"].is_string());
    assert_eq!(json(&oks[1].1)["total"], 10);
    let histogram = json(&oks[2].1);
    let sum = |level: &str| -> u64 {
        histogram["series"][level]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n.as_u64()).sum())
            .unwrap_or(0)
    };
    assert_eq!((sum("error"), sum("info")), (10, 40));
    assert_eq!(histogram["interval_ms"], 60_000);
    let top = json(&oks[3].1);
    assert_eq!(top["values"][0]["value"], "info");
    assert_eq!(top["values"][0]["count"], 40);
    assert_eq!(json(&oks[4].1)["events"].as_array().map(Vec::len), Some(50));
    let reasons = ["position 9", "since", "limit", "cursor", "field", "buckets"];
    for ((status, body), reason) in bads.iter().zip(reasons) {
        assert_eq!(*status, 400, "{body}");
        let error = json(body)["error"].as_str().unwrap_or("").to_string();
        assert!(error.contains(reason), "{error:?} should mention {reason}");
    }
    assert_eq!(page.0, 200);
    assert!(page.1.contains("uPlot"), "the page loads uPlot");
    assert_eq!(uplot.0, 200);
    assert!(uplot.1.len() > 10_000);
    router.stop().await;
}

/// Reads the SSE stream of `stream` (an HTTP/1.0 response: close-delimited) until `done`
/// says so or the deadline passes.
fn read_sse_until(
    stream: &mut std::net::TcpStream,
    seen: &mut String,
    mut done: impl FnMut(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    while !done(seen) {
        if Instant::now() > deadline {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => return done(seen),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("tail read failed: {e}"),
        }
    }
    true
}

/// Opens `GET /v1/tail`; `recv_buffer` makes the socket's receive buffer small before
/// connecting, so a stalled client holds little in the kernel and the router's per-client
/// queue is what fills.
fn open_tail(api: SocketAddr, query: &str, recv_buffer: Option<u32>) -> std::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut stream = runtime
        .block_on(async move {
            let stream = socket.connect(api).await?;
            stream.into_std()
        })
        .expect("tail connects");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let request = format!("GET /v1/tail?q={query} HTTP/1.0\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_a_stalled_client_overflows_alone() {
    const BATCHES: usize = 100;
    const PER_BATCH: usize = 100;
    let dir = tempdir();
    let router = Router::start(&store_pipeline(dir.path(), "tail_buffer_events = 500")).await;
    let (ingest, api) = (router.addr("in"), router.addr("api"));
    let result = tokio::task::spawn_blocking(move || {
        let mut live = open_tail(api, "app:tailtest", None);
        let mut stalled = open_tail(api, "app:tailtest", Some(4096));
        // Both streams are established (the hub sends a comment first) before ingesting.
        let mut live_seen = String::new();
        assert!(read_sse_until(&mut live, &mut live_seen, |s| s.contains(": tailing")));
        let mut stalled_seen = String::new();
        assert!(read_sse_until(&mut stalled, &mut stalled_seen, |s| s.contains(": tailing")));
        let padding = "x".repeat(1000);
        let reader = std::thread::spawn(move || {
            let last = format!("\"seq\":{}}}", BATCHES * PER_BATCH - 1);
            let ok = read_sse_until(&mut live, &mut live_seen, |s| s.contains(&last));
            (ok, live_seen)
        });
        for b in 0..BATCHES {
            let mut body = String::new();
            for i in 0..PER_BATCH {
                body.push_str(&format!(
                    r#"{{"app":"tailtest","message":"{padding}","seq":{}}}"#,
                    b * PER_BATCH + i
                ));
                body.push('\n');
            }
            let (status, text) = http(ingest, "POST", "/v1/logs", body.as_bytes());
            assert_eq!(status, 200, "{text}");
        }
        // Every POST was answered 200, i.e. committed: the pipeline never waited for the
        // stalled client. The store holds them all.
        let (_, counted) = http(api, "GET", "/v1/query?q=app:tailtest&limit=1", b"");
        let (live_ok, live_seen) = reader.join().expect("reader");
        // Now the stalled client reads again and hears about its loss.
        let got_marker = read_sse_until(&mut stalled, &mut stalled_seen, |s| {
            s.contains("event: overflow")
        });
        (counted, live_ok, live_seen, got_marker, stalled_seen)
    })
    .await
    .expect("tail test");
    let (counted, live_ok, live_seen, got_marker, stalled_seen) = result;
    assert_eq!(json(&counted)["total"], (BATCHES * PER_BATCH) as u64);
    assert!(live_ok, "the live client saw the last event");
    assert_eq!(
        live_seen.matches("data: {").count(),
        BATCHES * PER_BATCH,
        "the live client got every event"
    );
    assert!(!live_seen.contains("event: overflow"));
    assert!(got_marker, "the stalled client was told of its overflow");
    let marker = stalled_seen
        .split("event: overflow\ndata: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("marker data");
    let dropped = json(marker)["dropped"].as_u64().expect("dropped count");
    assert!(dropped > 0);
    assert!(crate::util::counter("store_tail_dropped_events_total", "store", None) >= dropped);
    router.stop().await;
}

/// An idle `GET /v1/tail` client must not hold up shutdown: its stream ends when SIGTERM
/// starts the drain, so the router drains and exits 0. A stream outliving the shutdown holds
/// the API listener, and with it the router, until the deadline (exit 1, "events still in
/// flight", though none are).
#[test]
fn an_idle_tail_client_does_not_hold_up_shutdown() {
    let dir = tempdir();
    let config = dir.path().join("router.toml");
    let pipeline = store_pipeline(&dir.path().join("store"), "");
    // With nothing in flight, only a stream that outlives the shutdown can make the router
    // reach this deadline; it would then exit 1 saying so.
    std::fs::write(&config, format!("shutdown_timeout_secs = 20\n{pipeline}")).expect("config");
    let mut router = spawn_router(sluice_up(&config));
    let api = address_of(&router.startup_log, "api");
    let mut tail = open_tail(api, "", None);
    let mut seen = String::new();
    assert!(read_sse_until(&mut tail, &mut seen, |s| s.contains(": tailing")));
    router.signal("-TERM");
    assert!(
        router.wait_for_log(&["router stopped; all in-flight events drained"]),
        "the router did not drain within {TIMEOUT:?}"
    );
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
    assert!(!log.contains("shutdown deadline passed"), "{log}");
    // The client saw its stream end (HTTP/1.0: the connection closes).
    let mut rest = [0u8; 1024];
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match tail.read(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("tail read failed: {e}"),
        }
        assert!(Instant::now() < deadline, "the tail stream stayed open");
    }
}

fn address_of(startup_log: &str, id: &str) -> SocketAddr {
    startup_log
        .lines()
        .find(|l| l.contains("listening") && l.contains(&format!("component_id={id}")))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("address="))
        })
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address for {id} in {startup_log}"))
}

#[test]
fn kill_9_during_ingest_loses_no_acknowledged_event() {
    let dir = tempdir();
    let data = dir.path().join("store");
    let config = dir.path().join("router.toml");
    std::fs::write(&config, store_pipeline(&data, "")).expect("config");
    let router = spawn_router(sluice_up(&config));
    let ingest = address_of(&router.startup_log, "in");
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let posters: Vec<_> = (0..2)
        .map(|t| {
            let acknowledged = acknowledged.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut batch = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ids: Vec<usize> =
                        (0..50).map(|i| (t * 1_000_000) + batch * 50 + i).collect();
                    let body: String = ids
                        .iter()
                        .map(|id| format!("{{\"message\":\"crash test\",\"seq\":{id}}}\n"))
                        .collect();
                    match std::panic::catch_unwind(|| {
                        http(ingest, "POST", "/v1/logs", body.as_bytes())
                    }) {
                        Ok((200, _)) => acknowledged.lock().expect("lock").extend(ids),
                        _ => break,
                    }
                    batch += 1;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    while acknowledged.lock().expect("lock").len() < 5000 {
        assert!(Instant::now() < deadline, "ingest too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    router.signal("-KILL");
    let _ = router.finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in posters {
        let _ = p.join();
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();

    let store = Store::open("reopened", &data, StoreOptions::default()).expect("reopens");
    assert_eq!(store.damaged_partitions(), 0);
    let page = store
        .search(&SearchRequest {
            query: Query::parse("crash").expect("q"),
            from: None,
            to: None,
            limit: sluice::store::search::MAX_LIMIT,
            cursor: None,
        })
        .expect("search");
    assert!(page.total as usize >= acknowledged.len());
    let mut stored = std::collections::HashSet::new();
    let mut cursor = None;
    loop {
        let page = store
            .search(&SearchRequest {
                query: Query::All,
                from: None,
                to: None,
                limit: sluice::store::search::MAX_LIMIT,
                cursor,
            })
            .expect("page");
        stored.extend(page.events.iter().filter_map(|e| e["seq"].as_u64()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(&(**id as u64)))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    drop(store);

    // The router starts again on the same store and keeps writing into it.
    let router = spawn_router(sluice_up(&config));
    let ingest = address_of(&router.startup_log, "in");
    let api = address_of(&router.startup_log, "api");
    let (status, _) = http(
        ingest,
        "POST",
        "/v1/logs",
        b"{\"message\":\"after the crash\"}\n",
    );
    assert_eq!(status, 200);
    let (_, body) = http(api, "GET", "/v1/query?q=%22after+the+crash%22", b"");
    assert_eq!(json(&body)["total"], 1);
    router.signal("-TERM");
    let (status, _) = router.finish();
    assert!(status.success());
}

#[test]
fn cli_query_prints_a_table_and_json() {
    let dir = tempdir();
    let config = dir.path().join("router.toml");
    std::fs::write(&config, store_pipeline(&dir.path().join("store"), "")).expect("config");
    let router = spawn_router(sluice_up(&config));
    let ingest = address_of(&router.startup_log, "in");
    let api = address_of(&router.startup_log, "api");
    let body = "{\"message\":\"disk full\",\"level\":\"error\",\"app\":\"db\"}\n{\"message\":\"all good\",\"level\":\"info\",\"app\":\"web\"}\n";
    assert_eq!(http(ingest, "POST", "/v1/logs", body.as_bytes()).0, 200);
    let url = format!("http://{api}");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(sluice_bin())
            .arg("query")
            .args(["--url", &url])
            .args(args)
            .output()
            .expect("sluice query runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, table, err) = run(&["--since", "1h", "level:error"]);
    assert!(ok, "{err}");
    assert!(table.starts_with("TIME"), "{table}");
    assert!(table.contains("error") && table.contains("db") && table.contains("disk full"));
    assert!(!table.contains("all good"));
    let (ok, lines, err) = run(&["--json", ""]);
    assert!(ok, "{err}");
    let events: Vec<serde_json::Value> = lines.lines().map(json).collect();
    assert_eq!(events.len(), 2);
    let (ok, _, err) = run(&["app:(broken"]);
    assert!(!ok);
    assert!(err.contains("query error"), "{err}");

    // `sluice tail` prints live events as they arrive (JSON lines with --json).
    let mut tail = std::process::Command::new(sluice_bin())
        .args(["tail", "--url", &url, "--json", "app:clitail"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sluice tail runs");
    let stdout = tail.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    // Posted until one arrives: events sent before the tail connected are not live.
    let line = loop {
        let event = b"{\"app\":\"clitail\",\"message\":\"live one\"}\n{\"app\":\"other\",\"message\":\"not this\"}\n";
        assert_eq!(http(ingest, "POST", "/v1/logs", event).0, 200);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            break line;
        }
        assert!(Instant::now() < deadline, "sluice tail printed nothing");
    };
    assert_eq!(json(&line)["message"], "live one");
    let _ = tail.kill();
    let _ = tail.wait();
    router.signal("-TERM");
    let _ = router.finish();
}
