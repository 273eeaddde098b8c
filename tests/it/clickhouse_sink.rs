//! The `clickhouse` sink against a real ClickHouse: Debian's `clickhouse-server` (18.16,
//! which has no `DateTime64` and no `Map`, so the tables use `DateTime` and the sink's
//! `timestamp_format = "datetime"`), started by each test on loopback ports with its own
//! config under a temp dir, read back through its HTTP interface.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::util::{
    counter, free_port, have_tool, read_lines, tempdir, wait_until, Router, TIMEOUT,
};

/// A `clickhouse-server` of this test's own: its config, data and logs under `dir`.
struct ClickHouse {
    child: Option<std::process::Child>,
    dir: PathBuf,
    http_port: u16,
    tcp_port: u16,
}

impl ClickHouse {
    /// Starts a server on free loopback ports; `None` (the test skips) without the package.
    async fn start(dir: &Path) -> Option<ClickHouse> {
        if !have_tool("clickhouse-server") {
            return None;
        }
        let mut server = ClickHouse {
            child: None,
            dir: dir.to_path_buf(),
            http_port: free_port(),
            tcp_port: free_port(),
        };
        server.write_config();
        server.run().await;
        Some(server)
    }

    fn write_config(&self) {
        let d = self.dir.display();
        std::fs::write(
            self.dir.join("config.xml"),
            format!(
                r#"<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{d}/server.log</log>
        <errorlog>{d}/server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{}</http_port>
    <tcp_port>{}</tcp_port>
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <users_config>{d}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>67108864</mark_cache_size>
</yandex>
"#,
                self.http_port, self.tcp_port
            ),
        )
        .unwrap();
        // `default` for the test's own queries; `writer` with a password for the sink.
        std::fs::write(
            self.dir.join("users.xml"),
            r#"<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <writer>
            <password>s3cret</password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </writer>
    </users>
    <quotas><default></default></quotas>
</yandex>
"#,
        )
        .unwrap();
    }

    /// Starts the server process and waits until it answers `/ping`.
    async fn run(&mut self) {
        let log = std::fs::File::create(self.dir.join("stdout.log")).unwrap();
        let child = std::process::Command::new("clickhouse-server")
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("clickhouse-server starts");
        self.child = Some(child);
        let port = self.http_port;
        let deadline = Instant::now() + TIMEOUT;
        while http(port, "GET", "/ping", b"").map(|(s, _)| s) != Some(200) {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "clickhouse-server did not come up ({exited:?}): {}",
                std::fs::read_to_string(self.dir.join("server.err.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + TIMEOUT;
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Runs `sql` as `default`; panics unless the server answers 200.
    fn query(&self, sql: &str) -> String {
        let (status, body) = http(self.http_port, "POST", "/", sql.as_bytes()).expect("answers");
        assert_eq!(status, 200, "{sql}: {body}");
        body
    }

    /// The rows of a `SELECT`, as JSON objects.
    fn rows(&self, select: &str) -> Vec<Value> {
        self.query(&format!("{select} FORMAT JSONEachRow"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn count(&self, table: &str) -> usize {
        self.query(&format!("SELECT count() FROM {table}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port`; the status and body, `None` when nothing
/// answers.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

async fn send_lines(addr: std::net::SocketAddr, lines: impl Iterator<Item = String>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut data = Vec::new();
    for line in lines {
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        if data.len() > 1 << 20 {
            stream.write_all(&data).await.unwrap();
            data.clear();
        }
    }
    stream.write_all(&data).await.unwrap();
    stream.shutdown().await.unwrap();
}

/// Events arrive as rows with the mapped columns (renamed, a nested field selected, the
/// timestamp as `DateTime`); rows the server refuses go to dead-letter with its reason while
/// every other row of their inserts arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_arrive_mapped_and_refused_rows_go_to_dead_letter() {
    let dir = tempdir();
    let Some(server) = ClickHouse::start(dir.path()).await else {
        return;
    };
    server.query(
        "CREATE TABLE rows (ts DateTime, service String, level String, body String, status UInt16) \
         ENGINE = MergeTree ORDER BY ts",
    );
    server.query(
        "CREATE TABLE budget (ts DateTime, body String, status UInt16) ENGINE = MergeTree ORDER BY ts",
    );
    let dead = dir.path().join("dead.log");
    let budget_dead = dir.path().join("budget_dead.log");
    let router = Router::start(&format!(
        r#"
[sources.ch_rows_in]
type = "tcp"
address = "127.0.0.1:0"

[transforms.ch_rows_parse]
type = "parse"
inputs = ["ch_rows_in"]
format = "json"

[sinks.ch_rows]
type = "clickhouse"
inputs = ["ch_rows_parse"]
endpoint = "{endpoint}"
database = "default"
table = "rows"
user = "writer"
password = "s3cret"
timestamp_format = "datetime"
columns = {{ ts = "timestamp", service = "app", level = "level", body = "message", status = "http.status" }}
batch_timeout_ms = 200

[sinks.ch_rows_dead]
type = "file"
inputs = ["ch_rows.dead_letter"]
path = "{}"

# The same rows with a budget of 2 further inserts: isolation stops early, and the rows
# still in doubt go to dead-letter saying so.
[sinks.ch_budget]
type = "clickhouse"
inputs = ["ch_rows_parse"]
endpoint = "{endpoint}"
table = "budget"
user = "writer"
password = "s3cret"
timestamp_format = "datetime"
columns = {{ ts = "timestamp", body = "message", status = "http.status" }}
batch_timeout_ms = 200
max_isolation_inserts = 2

[sinks.ch_budget_dead]
type = "file"
inputs = ["ch_budget.dead_letter"]
path = "{}"
"#,
        dead.display(),
        budget_dead.display(),
        endpoint = server.endpoint(),
    ))
    .await;
    let n = 300;
    let bad = |i: usize| i % 100 == 37;
    let line = |i: usize| {
        let status = if bad(i) {
            Value::from("not a number")
        } else {
            Value::from(200 + i % 5)
        };
        serde_json::json!({
            "timestamp": format!("2026-12-06T10:{:02}:{:02}Z", i / 60, i % 60),
            "app": "shop",
            "level": if i % 3 == 0 { "error" } else { "info" },
            "message": format!("event {i}"),
            "http": { "status": status, "path": "/cart" },
            "user": "ada",
        })
        .to_string()
    };
    send_lines(router.addr("ch_rows_in"), (0..n).map(line)).await;
    wait_until("every event inserted or dead-lettered", || {
        ["ch_rows", "ch_budget"].iter().all(|id| {
            counter("component_sent_events_total", id, None)
                + counter("component_dead_lettered_events_total", id, None)
                == n as u64
        })
    })
    .await;
    router.stop().await;

    let rows = server.rows("SELECT toString(ts) AS ts, service, level, body, status FROM rows");
    let got: BTreeMap<String, Value> = rows
        .into_iter()
        .map(|r| (r["body"].as_str().unwrap().to_string(), r))
        .collect();
    let expected: BTreeMap<String, Value> = (0..n)
        .filter(|&i| !bad(i))
        .map(|i| {
            let row = serde_json::json!({
                "ts": format!("2026-12-06 10:{:02}:{:02}", i / 60, i % 60),
                "service": "shop",
                "level": if i % 3 == 0 { "error" } else { "info" },
                "body": format!("event {i}"),
                "status": 200 + i % 5,
            });
            (format!("event {i}"), row)
        })
        .collect();
    assert_eq!(got, expected);

    let letters: Vec<Value> = read_lines(&dead)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut messages: Vec<&str> = letters
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    messages.sort();
    assert_eq!(messages, ["event 137", "event 237", "event 37"]);
    for letter in &letters {
        let reason = letter["dead_letter"]["reason"].as_str().unwrap();
        assert!(reason.contains("Code: 27"), "{reason}");
        assert!(reason.contains("Cannot parse input"), "{reason}");
        assert_eq!(letter["dead_letter"]["reason_code"], "fatal");
        assert_eq!(letter["http"]["status"], "not a number");
    }
    assert_eq!(
        counter("component_sent_events_total", "ch_rows", None),
        (n - 3) as u64
    );

    // With a budget of 2: every bad row and some good ones in dead-letter, the good ones
    // saying isolation stopped; every row either in the table or in dead-letter.
    let budget_letters: Vec<Value> = read_lines(&budget_dead)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let inserted = server.count("budget");
    assert_eq!(inserted + budget_letters.len(), n);
    assert!(
        budget_letters.len() > 3,
        "{} dead letters",
        budget_letters.len()
    );
    for letter in &budget_letters {
        let message = letter["message"].as_str().unwrap();
        let i: usize = message[6..].parse().unwrap();
        let reason = letter["dead_letter"]["reason"].as_str().unwrap();
        assert!(reason.contains("Code: 27"), "{reason}");
        if !bad(i) {
            assert!(
                reason.contains("isolation stopped after 2 inserts"),
                "{reason}"
            );
        }
    }
    let bad_letters = budget_letters
        .iter()
        .filter(|l| bad(l["message"].as_str().unwrap()[6..].parse().unwrap()))
        .count();
    assert_eq!(bad_letters, 3);
}

/// The server is down when events come: the sink retries, the http source's client gets
/// no answer (its events are not acknowledged); once the server is back the rows are
/// inserted, and only then is the request answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_then_up_delivers_and_acknowledges_after_the_insert() {
    let dir = tempdir();
    let Some(mut server) = ClickHouse::start(dir.path()).await else {
        return;
    };
    server.query("CREATE TABLE acked (body String, n UInt32) ENGINE = MergeTree ORDER BY n");
    server.stop();
    let router = Router::start(&format!(
        r#"
[sources.ch_ack_in]
type = "http"
address = "127.0.0.1:0"
ack_timeout_secs = 120

[sinks.ch_ack]
type = "clickhouse"
inputs = ["ch_ack_in"]
endpoint = "{}"
table = "acked"
columns = {{ body = "message", n = "n" }}
compression = "none"
batch_timeout_ms = 10
retry = {{ initial_backoff_ms = 20, max_backoff_secs = 1 }}
"#,
        server.endpoint()
    ))
    .await;
    let ingest = router.addr("ch_ack_in").port();
    let n = 50;
    let body: String = (0..n)
        .map(|i| format!("{{\"message\":\"row {i}\",\"n\":{i}}}\n"))
        .collect();
    let post = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", ingest)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let head = format!(
            "POST /v1/logs HTTP/1.0\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    });
    wait_until("the sink retried twice", || {
        counter("component_retries_total", "ch_ack", None) >= 2
    })
    .await;
    assert!(!post.is_finished(), "answered before anything was inserted");

    server.run().await;
    let answer = tokio::time::timeout(TIMEOUT, post)
        .await
        .expect("answered once the server is back")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    // The answer came after the insert: every row is there already.
    assert_eq!(server.count("acked"), n);
    let rows = server.rows("SELECT body, n FROM acked ORDER BY n");
    let expected: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({ "body": format!("row {i}"), "n": i }))
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(
        counter("component_dead_lettered_events_total", "ch_ack", None),
        0
    );
    router.stop().await;
}

/// 500,000 events through a tcp source into the local server, every one inserted; the
/// rate is printed (`cargo test ... -- --nocapture`), and bounded below only loosely since
/// the machine is shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_into_the_local_server() {
    let dir = tempdir();
    let Some(server) = ClickHouse::start(dir.path()).await else {
        return;
    };
    server.query(
        "CREATE TABLE bulk (app String, level String, message String, n UInt64) \
         ENGINE = MergeTree ORDER BY n",
    );
    let compression = std::env::var("CH_COMPRESSION").unwrap_or_else(|_| "gzip".into());
    let router = Router::start(&format!(
        r#"
[sources.ch_bulk_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.ch_bulk]
type = "clickhouse"
inputs = ["ch_bulk_in"]
endpoint = "{}"
table = "bulk"
compression = "{compression}"
batch_max_events = 20000
batch_timeout_ms = 100
buffer = {{ type = "memory", max_bytes = 67108864 }}
"#,
        server.endpoint()
    ))
    .await;
    let n: u64 = 500_000;
    let started = Instant::now();
    send_lines(
        router.addr("ch_bulk_in"),
        (0..n).map(|i| {
            format!(
                r#"{{"app":"shop-{}","level":"info","message":"GET /cart/{i} 200 in 12ms","n":{i}}}"#,
                i % 7
            )
        }),
    )
    .await;
    wait_until("every event inserted", || {
        counter("component_sent_events_total", "ch_bulk", None) == n
    })
    .await;
    let elapsed = started.elapsed();
    router.stop().await;
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "clickhouse sink ({compression}): {n} events in {:.2}s, {rate:.0} events/s",
        elapsed.as_secs_f64()
    );
    assert_eq!(server.count("bulk"), n as usize);
    assert_eq!(
        server.query("SELECT sum(n) FROM bulk").trim(),
        (n * (n - 1) / 2).to_string()
    );
    assert!(rate > 10_000.0, "{rate:.0} events/s");

    // The same input into a blackhole sink: what the source and the machine allow, the
    // ceiling the rate above is to be read against.
    let router = Router::start(
        r#"
[sources.ch_ceiling_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.ch_ceiling]
type = "blackhole"
inputs = ["ch_ceiling_in"]
buffer = { type = "memory", max_bytes = 67108864 }
"#,
    )
    .await;
    let started = Instant::now();
    send_lines(
        router.addr("ch_ceiling_in"),
        (0..n).map(|i| {
            format!(
                r#"{{"app":"shop-{}","level":"info","message":"GET /cart/{i} 200 in 12ms","n":{i}}}"#,
                i % 7
            )
        }),
    )
    .await;
    wait_until("every event through the blackhole", || {
        counter("component_sent_events_total", "ch_ceiling", None) == n
    })
    .await;
    let ceiling = n as f64 / started.elapsed().as_secs_f64();
    router.stop().await;
    println!("same input into a blackhole sink: {ceiling:.0} events/s");
}
