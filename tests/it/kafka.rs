//! The `kafka` sink and source against a real Kafka-protocol broker (tansu, started here on
//! 127.0.0.1), checked with an independent client (confluent-kafka, tests/kafka_client.py):
//! the sink's messages as the client reads them, the client's messages through the source,
//! and a broker restart mid-stream (three routers sharing a group: kafka_scale_out.rs).
//!
//! One broker serves every test of this module that does not restart it (each test uses
//! its own topics and groups); the restart test starts its own. The broker and the client
//! are in tansu.rs.

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::tansu::{consume, kafka_available, produce, shared_broker, unique, Broker, Read};
use crate::util::{counter, read_lines, tempdir, wait_until, Router, TIMEOUT};

/// The `seq` field of a JSON event line.
pub(crate) fn seq_of(line: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    value["seq"].as_u64().expect("seq")
}

/// Sends `lines` to a TCP source.
async fn send_lines(addr: std::net::SocketAddr, lines: impl Iterator<Item = String>) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for line in lines {
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    }
    stream.write_all(&buf).await.unwrap();
    stream.shutdown().await.unwrap();
}

fn event_line(seq: usize, apps: usize) -> String {
    format!(
        r#"{{"app":"app{}","seq":{seq},"message":"event {seq}"}}"#,
        seq % apps
    )
}

/// tcp (JSON lines) → kafka sink `id` (ids differ per test: counters are per process).
fn sink_pipeline(id: &str, bootstrap: &str, topic: &str, extra: &str) -> String {
    format!(
        r#"
[sources.in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.{id}]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{bootstrap}"
topic = "{topic}"
{extra}
"#
    )
}

/// Checks what the client read against events `seqs`: each exactly once (or at least
/// once with `dups_allowed`), keyed by app, one partition per app, and (exactly once) in
/// order per app.
fn check_read(read: &[Read], seqs: std::ops::Range<u64>, apps: usize, dups_allowed: bool) {
    let mut seen = BTreeMap::new();
    let mut partition_of_app: HashMap<String, i32> = HashMap::new();
    let mut last_seq: HashMap<String, (i64, u64)> = HashMap::new();
    let mut sorted: Vec<&Read> = read.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    for r in sorted {
        let value: serde_json::Value = serde_json::from_str(&r.value).expect("JSON value");
        let app = value["app"].as_str().expect("app").to_string();
        let seq = value["seq"].as_u64().expect("seq");
        assert_eq!(r.key.as_deref(), Some(app.as_str()), "keyed by app: {r:?}");
        let p = *partition_of_app.entry(app.clone()).or_insert(r.partition);
        assert_eq!(p, r.partition, "one app, one partition: {r:?}");
        if let Some((offset, previous)) = last_seq.get(&app) {
            assert!(
                dups_allowed || seq > *previous,
                "app {app} out of order: seq {seq} at offset {} after seq {previous} at {offset}",
                r.offset
            );
        }
        last_seq.insert(app, (r.offset, seq));
        *seen.entry(seq).or_insert(0) += 1;
    }
    let expected: BTreeSet<u64> = seqs.collect();
    let got: BTreeSet<u64> = seen.keys().copied().collect();
    let missing: Vec<_> = expected.difference(&got).take(10).collect();
    assert!(missing.is_empty(), "missing events, e.g. {missing:?}");
    assert_eq!(got, expected, "no events beyond those sent");
    assert!(partition_of_app.len() == apps);
    if !dups_allowed {
        assert!(seen.values().all(|n| *n == 1), "each event exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_messages_read_by_an_independent_client() {
    if !kafka_available() {
        return;
    }
    let bootstrap = shared_broker().bootstrap();
    let topic = unique("sink");
    shared_broker().create_topic(&topic, 3);
    const N: usize = 5000;
    const APPS: usize = 5;
    let router = Router::start(&sink_pipeline("k", &bootstrap, &topic, "")).await;
    send_lines(router.addr("in"), (0..N).map(|i| event_line(i, APPS))).await;
    wait_until("every event acknowledged by the sink", || {
        counter("component_sent_events_total", "k", None) >= N as u64
    })
    .await;
    router.stop().await;
    let read = tokio::task::spawn_blocking(move || consume(&bootstrap, &topic, N))
        .await
        .unwrap();
    assert_eq!(read.len(), N, "the client reads exactly the events sent");
    check_read(&read, 0..N as u64, APPS, false);
    assert_eq!(
        counter("component_dead_lettered_events_total", "k", None),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_delivers_every_message_and_commits_behind_the_sink() {
    if !kafka_available() {
        return;
    }
    let bootstrap = shared_broker().bootstrap();
    let topic = unique("source");
    let group = unique("group");
    shared_broker().create_topic(&topic, 3);
    const N: usize = 3000;
    {
        let (b, t) = (bootstrap.clone(), topic.clone());
        tokio::task::spawn_blocking(move || produce(&b, &t, N, 0))
            .await
            .unwrap();
    }
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let pipeline = |id: &str, path: &Path| {
        format!(
            r#"
[sources.{id}]
type = "kafka"
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "{group}"
decoding = "json"
commit_interval_ms = 100

[sinks.out_{id}]
type = "file"
inputs = ["{id}"]
path = "{path}"
"#,
            path = path.display()
        )
    };
    let router = Router::start(&pipeline("kin", &out)).await;
    wait_until("every message in the file", || read_lines(&out).len() >= N).await;
    router.stop().await;
    let seqs: Vec<u64> = read_lines(&out).iter().map(|l| seq_of(l)).collect();
    assert_eq!(seqs.len(), N, "each message once");
    assert_eq!(
        seqs.iter().copied().collect::<BTreeSet<_>>(),
        (0..N as u64).collect(),
        "every message arrives"
    );
    assert_eq!(
        counter("kafka_committed_messages_total", "kin", None),
        N as u64,
        "everything delivered is committed at shutdown"
    );
    assert!(
        sluice::telemetry::counter_value(
            "kafka_commits_total",
            &[("component_id", "kin"), ("outcome", "ok")]
        ) > 0
    );

    // A second router of the same group starts after the commits: it reads only what was
    // produced since, so the commits were real.
    {
        let (b, t) = (bootstrap.clone(), topic.clone());
        tokio::task::spawn_blocking(move || produce(&b, &t, 100, N))
            .await
            .unwrap();
    }
    let out2 = dir.path().join("out2.log");
    let router = Router::start(&pipeline("kin2", &out2)).await;
    wait_until("the new messages", || read_lines(&out2).len() >= 100).await;
    // Give a wrongly uncommitted partition time to show up again before stopping.
    tokio::time::sleep(Duration::from_millis(500)).await;
    router.stop().await;
    let seqs: BTreeSet<u64> = read_lines(&out2).iter().map(|l| seq_of(l)).collect();
    assert_eq!(seqs, (N as u64..N as u64 + 100).collect());
}

/// The broker is SIGKILLed mid-stream and started again on the same port. tansu's
/// persistent engines need PostgreSQL or S3, and the memory engine loses everything on a
/// restart, so "no acknowledged event lost" is checked on each side of the restart: every
/// event the sink acknowledged before the kill is on the broker before the kill, nothing is
/// acknowledged while the broker is down, and every event sent during the outage is
/// delivered (and acknowledged) once the broker is back, by the same producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_survives_a_broker_restart_mid_stream() {
    if !kafka_available() {
        return;
    }
    let mut broker = Broker::start("memory://tansu/");
    let bootstrap = broker.bootstrap();
    let topic = unique("restart");
    broker.create_topic(&topic, 3);
    const HALF: usize = 2000;
    const APPS: usize = 4;
    let router = Router::start(&sink_pipeline(
        "rk",
        &bootstrap,
        &topic,
        "librdkafka_options = { \"message.timeout.ms\" = 2000 }\n\
         retry = { initial_backoff_ms = 50, max_backoff_secs = 1 }",
    ))
    .await;
    let addr = router.addr("in");
    send_lines(addr, (0..HALF).map(|i| event_line(i, APPS))).await;
    wait_until("the first half acknowledged", || {
        counter("component_sent_events_total", "rk", None) >= HALF as u64
    })
    .await;
    let before = {
        let (b, t) = (bootstrap.clone(), topic.clone());
        tokio::task::spawn_blocking(move || consume(&b, &t, HALF))
            .await
            .unwrap()
    };
    check_read(&before, 0..HALF as u64, APPS, false);

    broker.kill();
    send_lines(addr, (HALF..2 * HALF).map(|i| event_line(i, APPS))).await;
    wait_until("deliveries failing while the broker is down", || {
        counter("component_retries_total", "rk", None) > 0
    })
    .await;
    assert_eq!(
        counter("component_sent_events_total", "rk", None),
        HALF as u64,
        "nothing is acknowledged while the broker is down"
    );
    broker.restart();
    broker.create_topic(&topic, 3);
    wait_until("every event acknowledged after the restart", || {
        counter("component_sent_events_total", "rk", None) >= 2 * HALF as u64
    })
    .await;
    router.stop().await;
    let after = tokio::task::spawn_blocking(move || consume(&bootstrap, &topic, HALF))
        .await
        .unwrap();
    // A produce retried across the outage may be written twice.
    check_read(&after, HALF as u64..2 * HALF as u64, APPS, true);
    assert_eq!(
        counter("component_dead_lettered_events_total", "rk", None),
        0
    );
}

#[test]
fn config_errors_name_the_field() {
    let table = [
        (
            "[sources.k]\ntype = \"kafka\"\nbootstrap_servers = \"x:1\"\ntopics = []\ngroup_id = \"g\"\n[sinks.o]\ntype = \"console\"\ninputs = [\"k\"]",
            "topics",
        ),
        (
            "[sources.k]\ntype = \"kafka\"\nbootstrap_servers = \"x:1\"\ntopics = [\"t\"]\ngroup_id = \"g\"\nlibrdkafka_options = { \"enable.auto.commit\" = true }\n[sinks.o]\ntype = \"console\"\ninputs = [\"k\"]",
            "librdkafka_options.enable.auto.commit",
        ),
        (
            "[sources.s]\ntype = \"stdin\"\n[sinks.k]\ntype = \"kafka\"\ninputs = [\"s\"]\nbootstrap_servers = \"x:1\"\ntopic = \"t\"\ncompression = \"snappy\"",
            "compression",
        ),
        (
            "[sources.s]\ntype = \"stdin\"\n[sinks.k]\ntype = \"kafka\"\ninputs = [\"s\"]\nbootstrap_servers = \"x:1\"\ntopic = \"t\"\nlibrdkafka_options = { \"acks\" = 1 }",
            "librdkafka_options.acks",
        ),
    ];
    for (toml, field) in table {
        let errors = sluice::pipeline::Pipeline::from_str("k.toml", toml, |_| None)
            .err()
            .unwrap_or_else(|| panic!("{toml} must be refused"));
        let text = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        assert!(text.contains(field), "{text} should name {field}");
    }
}

/// A fast check that runs without tansu: librdkafka's built-in mock cluster between
/// sluice's sink and source in one pipeline (tcp → kafka sink; kafka source → file). The
/// real-broker tests above are the ones that count; this one catches wiring mistakes early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_round_trip() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("mock", 4, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempdir();
    let out = dir.path().join("out.log");
    const N: usize = 2000;
    let pipeline = format!(
        r#"
[sources.in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.mock_k]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{bootstrap}"
topic = "mock"

[sources.mock_kin]
type = "kafka"
bootstrap_servers = "{bootstrap}"
topics = ["mock"]
group_id = "mock-group"
decoding = "json"
commit_interval_ms = 50

# Drops a third of the events: a filtered-out event counts as done, so the commits still
# cover every message.
[transforms.not_app0]
type = "filter"
inputs = ["mock_kin"]
condition = 'app != "app0"'

[sinks.out]
type = "file"
inputs = ["not_app0"]
path = "{}"
"#,
        out.display()
    );
    let router = Router::start(&pipeline).await;
    send_lines(router.addr("in"), (0..N).map(|i| event_line(i, 3))).await;
    let kept = (0..N).filter(|i| i % 3 != 0).count();
    wait_until("every kept event through the mock cluster", || {
        read_lines(&out).len() >= kept
    })
    .await;
    wait_until("offsets committed, filtered-out events included", || {
        counter("kafka_committed_messages_total", "mock_kin", None) >= N as u64
    })
    .await;
    router.stop().await;
    let seqs: BTreeSet<u64> = read_lines(&out).iter().map(|l| seq_of(l)).collect();
    assert_eq!(seqs, (0..N as u64).filter(|i| i % 3 != 0).collect());
    assert_eq!(
        counter("component_sent_events_total", "mock_k", None),
        N as u64
    );
}

/// A message over `message.max.bytes` can never be produced: it goes to the sink's
/// dead-letter output with the reason, while its neighbours are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_too_large_goes_to_dead_letter() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("mock-large", 1, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempdir();
    let dead = dir.path().join("dead.log");
    let pipeline = format!(
        r#"
[sources.in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.large_k]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{bootstrap}"
topic = "mock-large"
librdkafka_options = {{ "message.max.bytes" = 2000 }}

[sinks.dead]
type = "file"
inputs = ["large_k.dead_letter"]
path = "{}"
"#,
        dead.display()
    );
    let router = Router::start(&pipeline).await;
    let big = "x".repeat(5000);
    send_lines(
        router.addr("in"),
        [
            event_line(0, 1),
            format!(r#"{{"app":"app0","seq":1,"message":"{big}"}}"#),
            event_line(2, 1),
        ]
        .into_iter(),
    )
    .await;
    wait_until("the large event dead-lettered", || {
        !read_lines(&dead).is_empty()
    })
    .await;
    wait_until("its neighbours delivered", || {
        counter("component_sent_events_total", "large_k", None) >= 2
    })
    .await;
    router.stop().await;
    let letters = read_lines(&dead);
    assert_eq!(letters.len(), 1);
    let letter: serde_json::Value = serde_json::from_str(&letters[0]).unwrap();
    assert_eq!(letter["seq"], 1);
    assert_eq!(letter["dead_letter"]["reason_code"], "fatal");
    assert!(
        letter["dead_letter"]["reason"]
            .as_str()
            .unwrap()
            .contains("too large"),
        "{letter}"
    );
}

/// A broker refusing every produce for longer than `message.timeout.ms`: librdkafka gives
/// the messages up with a timeout, and the sink produces them again (with backoff) until
/// the broker takes them. Nothing is acknowledged meanwhile, nothing is lost or
/// dead-lettered. (The outage is a retriable error on every Produce request rather than
/// `broker_down`: bringing a mock broker back up rebinds its old port, which another test's
/// socket may have taken meanwhile, and librdkafka then aborts the whole test process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_outage_past_the_message_timeout_is_retried() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("mock-outage", 2, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let pipeline = format!(
        r#"
[sources.in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sinks.outage_k]
type = "kafka"
inputs = ["in"]
bootstrap_servers = "{bootstrap}"
topic = "mock-outage"
librdkafka_options = {{ "message.timeout.ms" = 1500 }}
retry = {{ initial_backoff_ms = 50, max_backoff_secs = 1 }}
"#
    );
    let router = Router::start(&pipeline).await;
    let addr = router.addr("in");
    send_lines(addr, (0..10).map(|i| event_line(i, 2))).await;
    wait_until("the first events delivered", || {
        counter("component_sent_events_total", "outage_k", None) >= 10
    })
    .await;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 100_000],
    );
    send_lines(addr, (10..110).map(|i| event_line(i, 2))).await;
    wait_until("deliveries timed out and were retried", || {
        counter("component_retries_total", "outage_k", None) > 0
    })
    .await;
    assert_eq!(
        counter("component_sent_events_total", "outage_k", None),
        10,
        "nothing acknowledged while the broker is down"
    );
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    let deadline = Instant::now() + TIMEOUT;
    while counter("component_sent_events_total", "outage_k", None) < 110 {
        assert!(
            Instant::now() < deadline,
            "not every event delivered after the outage: sent {}, retries {}, errors {}",
            counter("component_sent_events_total", "outage_k", None),
            counter("component_retries_total", "outage_k", None),
            counter("component_errors_total", "outage_k", Some("write_failed")),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    router.stop().await;
    assert_eq!(
        counter("component_dead_lettered_events_total", "outage_k", None),
        0
    );
}
