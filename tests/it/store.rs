//! The store sink end to end: retention, damaged partitions, the HTTP query API with its
//! refusals, kill -9 during ingest, and `sluice query`. Live tail is in `tail.rs`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice::event::{Event, Map, Value};
use sluice::store::search::SearchRequest;
use sluice::store::{Engine, Query, Store, StoreOptions};

use crate::util::{
    counter, free_port, sluice_bin, sluice_up, spawn_router, tempdir, Router, TIMEOUT,
};

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
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
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

pub(crate) fn json(body: &str) -> serde_json::Value {
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

/// An event whose own time is implausible (year 9999, before 1970) is filed under its arrival,
/// the original kept as `original_timestamp` and counted, so one such line cannot stretch
/// every chart and time range of the store; a plausible time is kept as it is.
#[test]
fn implausible_event_times_are_filed_under_their_arrival() {
    implausible_event_times_with(Engine::Tantivy, "implausible");
}

#[test]
fn implausible_event_times_are_filed_under_their_arrival_on_columns() {
    implausible_event_times_with(Engine::Columns, "implausible_columns");
}

fn implausible_event_times_with(engine: Engine, id: &str) {
    let dir = tempdir();
    let options = StoreOptions {
        engine,
        ..StoreOptions::default()
    };
    let store = Store::open(id, dir.path(), options).expect("opens");
    let arrival = 1_764_115_200 * 1_000_000_000;
    let timed = |i: usize, time: &str| {
        let mut e = event(i);
        e.fields.insert("timestamp", Value::from(time));
        e
    };
    let events = [
        timed(1, "9999-01-01T00:00:00Z"),
        timed(2, "1960-01-01T00:00:00Z"),
        timed(3, "2025-11-26T00:00:05Z"),
    ];
    let mut writer = store.writer();
    writer.append(&events, arrival).expect("append");
    writer.commit().expect("commit");
    let page = store
        .search(&SearchRequest {
            query: Query::parse("").expect("q"),
            from: None,
            to: None,
            limit: 10,
            cursor: None,
        })
        .expect("search");
    let by_seq = |seq: i64| {
        page.events
            .iter()
            .find(|e| e["seq"] == seq)
            .unwrap_or_else(|| panic!("seq {seq} in {:?}", page.events))
    };
    for (seq, original) in [(1, "9999-01-01T00:00:00Z"), (2, "1960-01-01T00:00:00Z")] {
        let stored = by_seq(seq);
        assert_eq!(
            stored["timestamp"], "2025-11-26T00:00:00.000000Z",
            "{stored}"
        );
        assert_eq!(stored["original_timestamp"], original, "{stored}");
    }
    assert_eq!(by_seq(3)["timestamp"], "2025-11-26T00:00:05Z");
    assert!(by_seq(3).get("original_timestamp").is_none());
    assert_eq!(counter("store_implausible_timestamps_total", id, None), 2);
    let (lo, hi) = store.time_range().expect("a range");
    assert!(
        hi - lo < 10_000_000_000,
        "the store spans seconds, not millennia"
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

pub(crate) fn store_pipeline(data: &std::path::Path, extra: &str) -> String {
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
                // Times and intervals whose arithmetic would overflow: a 400 saying why.
                get("/v1/histogram?from=1960-01-01T00:00:00Z&to=2099-12-31T00:00:00Z"),
                get("/v1/histogram?since=1h&interval=9999999999w"),
                get("/v1/query?to=2150-01-01T00:00:00Z"),
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
    let reasons = [
        "position 9",
        "since",
        "limit",
        "cursor",
        "field",
        "buckets",
        "between 1970 and 2100",
        "interval",
        "between 1970 and 2100",
    ];
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

pub(crate) fn address_of(startup_log: &str, id: &str) -> SocketAddr {
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
    kill_9_during_ingest_with(Engine::Tantivy);
}

#[test]
fn kill_9_during_ingest_loses_no_acknowledged_event_on_columns() {
    kill_9_during_ingest_with(Engine::Columns);
}

fn kill_9_during_ingest_with(engine: Engine) {
    let dir = tempdir();
    let data = dir.path().join("store");
    let config = dir.path().join("router.toml");
    let extra = match engine {
        Engine::Columns => "engine = \"columns\"",
        Engine::Tantivy => "engine = \"tantivy\"",
        Engine::Auto => "",
    };
    std::fs::write(&config, store_pipeline(&data, extra)).expect("config");
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

    let options = StoreOptions {
        engine,
        ..StoreOptions::default()
    };
    let store = Store::open("reopened", &data, options).expect("reopens");
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

/// With no router at the address, `sluice query` and `sluice tail` say so and how to start
/// one.
#[test]
fn cli_says_how_to_start_a_router_when_none_answers() {
    let url = format!("127.0.0.1:{}", free_port());
    for command in ["query", "tail"] {
        let out = std::process::Command::new(sluice_bin())
            .args([command, "--url", &url])
            .output()
            .expect("sluice runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot reach http://{url}"))
                && stderr.contains("start one with: sluice up"),
            "{command}: {stderr}"
        );
    }
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

    // A negated query needs no `--`, and an address without a scheme means http://.
    let bare = api.to_string();
    let out = std::process::Command::new(sluice_bin())
        .args(["query", "--url", &bare, "-level:info"])
        .output()
        .expect("sluice query runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("disk full") && !table.contains("all good"),
        "{table}"
    );
    router.signal("-TERM");
    let _ = router.finish();
}

/// The store counts what it wrote like every sink: `component_sent_bytes_total` is the
/// bytes of the events' stored JSON, counted when the commit holding them returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_counts_the_bytes_it_stored() {
    let dir = tempdir();
    let toml = store_pipeline(dir.path(), "").replace("[sinks.store]", "[sinks.bytes_store]");
    let router = Router::start(&toml).await;
    let ingest = router.addr("in");
    let lines = r#"{"message":"one","app":"bytes"}
{"message":"two","app":"bytes"}
"#;
    let posted =
        tokio::task::spawn_blocking(move || http(ingest, "POST", "/v1/logs", lines.as_bytes()))
            .await
            .unwrap();
    assert_eq!(posted.0, 200, "{posted:?}");
    // Acknowledged means committed, and the commit is where the counters move.
    assert_eq!(
        counter("component_sent_events_total", "bytes_store", None),
        2
    );
    let bytes = counter("component_sent_bytes_total", "bytes_store", None);
    assert!(
        bytes >= (lines.len() - 2) as u64,
        "{bytes} bytes for {lines:?}"
    );
    router.stop().await;
}
