//! Federated query (docs/federation.md): three routers on loopback, each holding part of
//! the events and naming all three (itself included) as `[api] peers`, and a fourth holding
//! every event. Every query (paged to the end with the cursors, across the end of one
//! peer's data), histogram and top-values list asked through any of the three must equal the
//! fourth's answer. Then a live tail through one of them sees events stored by the others,
//! and with one peer stopped the answer is partial, names it, and holds exactly the others'
//! data; `sluice query` says so on stderr.
//!
//! `SLUICE_FEDERATION_EVENTS=300000` runs it at the issue's size and holds the timings
//! (federated first page and histogram against the single node) to 1.5×.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::store::{http, json};
use crate::util::{sluice_bin, tempdir, Router, TIMEOUT};

const APPS: [&str; 7] = ["web", "api", "db", "worker", "auth", "cache", "queue"];
const LEVELS: [&str; 6] = ["info", "info", "info", "warn", "error", "debug"];
/// 2026-11-01T00:00:00Z.
const BASE_NANOS: i64 = 1_793_491_200_000_000_000;

fn events() -> usize {
    std::env::var("SLUICE_FEDERATION_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30_000)
}

/// Event `i`: a distinct time about a second after the previous one (so a node's order
/// and the merged order agree on ties, there being none), fields with few and many values.
fn event(i: usize) -> String {
    let ts = BASE_NANOS + i as i64 * 1_000_000_007;
    let time = chrono::DateTime::from_timestamp(ts / 1_000_000_000, (ts % 1_000_000_000) as u32)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let app = APPS[(i * 13) % APPS.len()];
    let level = LEVELS[(i * 7) % LEVELS.len()];
    let status = [200, 200, 200, 404, 500][i % 5];
    // Skewed: low numbers far more often, over about 1,000 values.
    let user = (i * i + 7 * i) % (1 + i % 1_000);
    serde_json::json!({
        "timestamp": time,
        "app": app,
        "level": level,
        "status": status,
        "user": format!("u{user}"),
        "message": format!("request {i} handled by {app} in {} ms", i % 250),
    })
    .to_string()
}

/// Which of the three routers holds event `i`: the older half on the first two only, the
/// newer half on all three, so paging newest first runs past the end of the third's data.
fn holder(i: usize, n: usize) -> usize {
    if i < n / 2 {
        i % 2
    } else {
        i % 3
    }
}

fn pipeline(data: &std::path::Path, port: u16, peers: &[u16]) -> String {
    let peers: Vec<String> = peers
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}\""))
        .collect();
    let peers = if peers.is_empty() {
        String::new()
    } else {
        format!("peers = [{}]", peers.join(", "))
    };
    format!(
        r#"
[api]
address = "127.0.0.1:{port}"
{peers}

[sources.in]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[sinks.store]
type = "store"
inputs = ["in"]
path = "{}"
commit_interval_ms = 20
"#,
        data.display()
    )
}

async fn get(api: SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || http(api, "GET", &path, b""))
        .await
        .expect("request")
}

async fn get_ok(api: SocketAddr, path: &str) -> Value {
    let (status, body) = get(api, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    json(&body)
}

async fn post_events(ingest: SocketAddr, lines: Vec<String>) {
    for chunk in lines.chunks(5_000) {
        let body = chunk.join("\n") + "\n";
        let (status, answer) =
            tokio::task::spawn_blocking(move || http(ingest, "POST", "/v1/logs", body.as_bytes()))
                .await
                .expect("post");
        assert_eq!(status, 200, "{answer}");
    }
}

/// Every page of `query` (which holds its `limit`), newest first, following the cursors.
async fn all_pages(api: SocketAddr, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let path = match &cursor {
            Some(c) => format!("/v1/query?{query}&cursor={c}"),
            None => format!("/v1/query?{query}"),
        };
        let page = get_ok(api, &path).await;
        events.extend(page["events"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return events,
        }
    }
    panic!("{query}: more than 1,000 pages");
}

/// The fields of an answer a single store also gives.
fn core(answer: &Value, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), answer[*k].clone()))
            .collect(),
    )
}

/// Median time of `runs` GETs of `path`.
async fn median_time(api: SocketAddr, path: &str, runs: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        get_ok(api, path).await;
        times.push(started.elapsed());
    }
    times.sort();
    times[runs / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_answer_as_one_store_and_say_when_one_is_missing() {
    let n = events();
    let dirs: Vec<_> = (0..4).map(|_| tempdir()).collect();
    let ports: Vec<u16> = (0..4).map(|_| crate::util::free_port()).collect();
    let peers = &ports[..3];
    let mut routers = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let peer_list: &[u16] = if i < 3 { peers } else { &[] };
        routers.push(Router::start(&pipeline(dir.path(), ports[i], peer_list)).await);
    }
    let apis: Vec<SocketAddr> = routers.iter().map(|r| r.addr("api")).collect();
    let mut parts: Vec<Vec<String>> = vec![Vec::new(); 3];
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        let line = event(i);
        parts[holder(i, n)].push(line.clone());
        all.push(line);
    }
    let counts: Vec<usize> = parts.iter().map(Vec::len).chain([n]).collect();
    for (router, lines) in routers.iter().zip(parts.into_iter().chain([all])) {
        post_events(router.addr("in"), lines).await;
    }
    // Each store has committed its share (asked alone, `local=1`).
    for (api, count) in apis.iter().zip(&counts) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let page = get_ok(*api, "/v1/query?limit=0&local=1").await;
            if page["total"].as_u64() == Some(*count as u64) {
                break;
            }
            assert!(Instant::now() < deadline, "{api} stored {page}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let single = apis[3];

    // First pages, through each of the three.
    let first_pages = [
        "q=&limit=100",
        "q=level:error&limit=37",
        "q=app:web%20AND%20status:%3E%3D500&limit=50",
        "q=handled&from=2026-11-01T02:00:00Z&to=2026-11-01T03:00:00.5Z&limit=200",
    ];
    for query in first_pages {
        let expected = get_ok(single, &format!("/v1/query?{query}")).await;
        for api in &apis[..3] {
            let got = get_ok(*api, &format!("/v1/query?{query}")).await;
            assert_eq!(
                got["partial"], false,
                "{query} through {api}: {}",
                got["missing"]
            );
            assert_eq!(got["answered"].as_array().map(Vec::len), Some(3));
            assert_eq!(
                core(&got, &["events", "total"]),
                core(&expected, &["events", "total"]),
                "{query} through {api}"
            );
            assert_eq!(
                got["next_cursor"].is_string(),
                expected["next_cursor"].is_string(),
                "{query}"
            );
        }
    }
    // Every page to the end: the newest-first order runs past the third peer's oldest event
    // (half-way) and past the end of everything.
    for (query, via) in [
        ("q=level:error&limit=700", 1),
        ("q=&limit=4999", 2),
        (
            "q=app:db%20OR%20app:auth&limit=1000&from=2026-11-01T01:00:00Z",
            0,
        ),
    ] {
        let expected = all_pages(single, query).await;
        let got = all_pages(apis[via], query).await;
        assert_eq!(got.len(), expected.len(), "{query}");
        assert!(got == expected, "{query}: paged events differ");
    }
    // A node's own cursor is not a federated one.
    let local = get_ok(apis[0], "/v1/query?limit=1&local=1").await;
    let (status, body) = get(
        apis[0],
        &format!(
            "/v1/query?limit=1&cursor={}",
            local["next_cursor"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Histograms: over the whole data (each peer charts its own span at its own width),
    // split, with a range and an interval.
    for query in [
        "",
        "split=level",
        "q=status:500&split=app&split_limit=3",
        "split=status&split_limit=2",
        "from=2026-11-01T01:00:00Z&to=2026-11-01T05:30:00Z&interval=10m&split=level",
        "q=level:warn&from=2026-11-01T03:00:00Z",
    ] {
        let expected = get_ok(single, &format!("/v1/histogram?{query}")).await;
        let keys = ["times_ms", "interval_ms", "series", "total"];
        for api in &apis[..3] {
            let got = get_ok(*api, &format!("/v1/histogram?{query}")).await;
            assert_eq!(got["partial"], false);
            if query.contains("from=") && !query.contains("to=") {
                // Up to now: the nodes' clocks read a moment apart; the counts agree.
                assert_eq!(
                    core(&got, &["series", "total"])["total"],
                    expected["total"],
                    "{query}"
                );
                continue;
            }
            assert_eq!(
                core(&got, &keys),
                core(&expected, &keys),
                "histogram {query} through {api}"
            );
        }
    }
    // Top values: few values, many values (the first lists are full, so the peers are asked
    // again for all of theirs), a field outside the keyword columns.
    for query in [
        "field=app",
        "field=level&q=app:web",
        "field=user&limit=5",
        "field=user&limit=20&q=level:error",
        "field=status",
    ] {
        let expected = get_ok(single, &format!("/v1/top?{query}")).await;
        for api in &apis[..3] {
            let got = get_ok(*api, &format!("/v1/top?{query}")).await;
            assert_eq!(got["exact"], true, "top {query}: {got}");
            assert_eq!(
                core(&got, &["field", "values", "total"]),
                core(&expected, &["field", "values", "total"]),
                "top {query} through {api}"
            );
        }
    }

    // Timings: the federated first page and chart against the single node's, measured
    // alternately so that load from elsewhere falls on both alike.
    let timed = [
        ("first page", "/v1/query?q=&limit=100"),
        ("histogram", "/v1/histogram?split=level"),
    ];
    let mut ratios = Vec::new();
    for (what, path) in timed {
        let (mut federated, mut one, mut alone) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..9 {
            federated.push(median_time(apis[0], path, 1).await);
            one.push(median_time(single, path, 1).await);
            alone.push(median_time(apis[0], &format!("{path}&local=1"), 1).await);
        }
        for times in [&mut federated, &mut one, &mut alone] {
            times.sort();
        }
        let ratio = federated[4].as_secs_f64() / one[4].as_secs_f64().max(1e-6);
        eprintln!(
            "federation over {n} events, {what}: federated {:?}, single node {:?} ({ratio:.2}x), one peer alone {:?}",
            federated[4], one[4], alone[4]
        );
        ratios.push((what, ratio));
    }
    if std::env::var_os("SLUICE_FEDERATION_EVENTS").is_some() {
        for (what, ratio) in ratios {
            assert!(ratio <= 1.5, "{what}: {ratio:.2}x a single node");
        }
    }

    // A live tail through the first sees what the other two store.
    let tail = tokio::task::spawn_blocking({
        let api = apis[0];
        move || read_tail(api, "tailmarker", 4)
    });
    // The tail is open on every peer before the events are sent: poll until a sent marker
    // shows (each round sends new ones, so none is missed while the streams open).
    let mut round = 0;
    while !tail.is_finished() {
        assert!(round < 500, "the tail saw too few events");
        for (j, router) in routers[1..3].iter().enumerate() {
            let line = format!(r#"{{"message":"tailmarker {round} {j}","app":"tailer"}}"#);
            post_events(router.addr("in"), vec![line]).await;
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = tail.await.expect("tail");
    assert!(
        seen.iter().any(|m| m.ends_with(" 0")) && seen.iter().any(|m| m.ends_with(" 1")),
        "{seen:?}"
    );

    // One peer stopped: partial, naming it, the others' data exact.
    let stopped = routers.remove(2);
    let stopped_url = format!("http://127.0.0.1:{}", ports[2]);
    stopped.stop().await;
    let page = get_ok(apis[0], "/v1/query?q=&limit=100").await;
    assert_eq!(page["partial"], true);
    assert_eq!(page["missing"][0]["peer"], stopped_url.as_str(), "{page}");
    assert!(page["missing"][0]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    let mut expected: Vec<Value> = Vec::new();
    let mut total = 0;
    for api in &apis[..2] {
        let local = get_ok(*api, "/v1/query?q=&limit=100&local=1").await;
        total += local["total"].as_u64().unwrap();
        expected.extend(local["events"].as_array().cloned().unwrap());
    }
    expected.sort_by_key(|e| std::cmp::Reverse(e["timestamp"].as_str().unwrap().to_string()));
    expected.truncate(100);
    assert_eq!(page["total"].as_u64(), Some(total));
    assert!(
        page["events"].as_array() == Some(&expected),
        "the two peers' newest events"
    );
    let chart = get_ok(
        apis[1],
        "/v1/histogram?from=2026-11-01T00:00:00Z&to=2026-11-30T00:00:00Z",
    )
    .await;
    assert_eq!(chart["partial"], true);
    let before_tail = counts[0] + counts[1];
    assert_eq!(chart["total"].as_u64(), Some(before_tail as u64));

    // The CLI shows the partial answer and says so on stderr.
    let output = tokio::task::spawn_blocking({
        let url = format!("http://{}", apis[0]);
        move || {
            std::process::Command::new(sluice_bin())
                .args(["query", "--url", &url, "--limit", "3", "level:error"])
                .output()
                .expect("runs")
        }
    })
    .await
    .expect("cli");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("partial result") && stderr.contains(&stopped_url),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        5,
        "header, 3 rows, total"
    );

    for router in routers {
        router.stop().await;
    }
}

/// Reads `/v1/tail?q=WORD` until `want` events carried it; their messages.
fn read_tail(api: SocketAddr, word: &str, want: usize) -> Vec<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(api).expect("connects");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    write!(
        stream,
        "GET /v1/tail?q={word} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .expect("writes");
    let mut text = String::new();
    let mut buffer = [0u8; 8192];
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let messages: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["message"].as_str().map(str::to_string))
            .filter(|m| m.contains(word))
            .collect();
        if messages.len() >= want {
            return messages;
        }
        assert!(Instant::now() < deadline, "tail saw {messages:?}");
        let n = stream.read(&mut buffer).expect("reads");
        assert!(n > 0, "the tail ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
}

/// GET with `Authorization: Bearer token`.
async fn get_with_token(api: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let (path, token) = (path.to_string(), token.to_string());
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(api).expect("connects");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .expect("writes");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    })
    .await
    .expect("request")
}

/// Tokens pass through: each peer checks the caller's token and applies its scope, so a
/// token scoped to one app sees that app's events from every peer and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_token_and_its_scope_reach_every_peer() {
    const READ: &str = "fedreadfedreadfedread00";
    const WEB: &str = "fedwebonlyfedwebonly000";
    const ONLY_HERE: &str = "fedonlyonthefirst000000";
    let dirs: Vec<_> = (0..2).map(|_| tempdir()).collect();
    let ports: Vec<u16> = (0..2).map(|_| crate::util::free_port()).collect();
    let mut routers = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let tokens = dir.path().join("tokens");
        let mut lines = format!("{READ} read\n{WEB} read apps=web\n");
        if i == 0 {
            // A token the first router knows and its peer does not.
            lines.push_str(&format!("{ONLY_HERE} read\n"));
        }
        std::fs::write(&tokens, lines).expect("tokens");
        let toml = pipeline(dir.path(), ports[i], &ports).replace(
            "[sources.in]",
            &format!(
                "auth = {{ tokens_file = \"{}\" }}\n\n[sources.in]",
                tokens.display()
            ),
        );
        routers.push(Router::start(&toml).await);
    }
    let apis: Vec<SocketAddr> = routers.iter().map(|r| r.addr("api")).collect();
    // web and db on each router.
    for (i, router) in routers.iter().enumerate() {
        let lines = (0..20)
            .map(|j| {
                let app = if j % 4 == 0 { "web" } else { "db" };
                format!(r#"{{"message":"m{i}-{j}","app":"{app}"}}"#)
            })
            .collect();
        post_events(router.addr("in"), lines).await;
    }
    for api in &apis {
        let deadline = Instant::now() + TIMEOUT;
        while get_with_token(*api, "/v1/query?limit=0&local=1", READ)
            .await
            .1["total"]
            != 20
        {
            assert!(Instant::now() < deadline, "{api} did not store 20");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (status, all) = get_with_token(apis[0], "/v1/query?limit=100", READ).await;
    assert_eq!(
        (status, all["total"].as_u64(), all["partial"].as_bool()),
        (200, Some(40), Some(false)),
        "{all}"
    );
    let (status, web) = get_with_token(apis[1], "/v1/query?limit=100", WEB).await;
    assert_eq!((status, web["total"].as_u64()), (200, Some(10)), "{web}");
    assert!(
        web["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["app"] == "web"),
        "{web}"
    );
    let (_, top) = get_with_token(apis[0], "/v1/top?field=app", WEB).await;
    assert_eq!(
        top["values"],
        serde_json::json!([{"value": "web", "count": 10}])
    );
    // Without a token the federating router refuses before asking anyone.
    let (status, _) = get(apis[0], "/v1/query").await;
    assert_eq!(status, 401);
    // A token its peer does not know: that peer is missing, and says why.
    let (status, partial) = get_with_token(apis[0], "/v1/query?limit=100", ONLY_HERE).await;
    assert_eq!(status, 200);
    assert_eq!(partial["total"], 20);
    assert_eq!(
        partial["missing"][0]["peer"],
        format!("http://127.0.0.1:{}", ports[1])
    );
    assert!(
        partial["missing"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{partial}"
    );
    for router in routers {
        router.stop().await;
    }
}
