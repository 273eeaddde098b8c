//! The `kafka` sink and source against a real Kafka-protocol broker (tansu, started here on
//! 127.0.0.1), checked with an independent client (confluent-kafka, tests/kafka_client.py):
//! the sink's messages as the client reads them, the client's messages through the source,
//! a broker restart mid-stream, and three router processes sharing a consumer group while
//! one of them is killed.
//!
//! One broker serves every test of this module that does not restart it (each test uses
//! its own topics and groups); the restart test starts its own. The broker and the client
//! are in tansu.rs.

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::tansu::{
    client, consume, kafka_available, metric, produce, shared_broker, unique, Broker, Read,
};
use crate::util::{
    counter, read_lines, sluice_up, spawn_router, tempdir, wait_until, Router, RouterProcess,
    TIMEOUT,
};

/// The `seq` field of a JSON event line.
fn seq_of(line: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    value["seq"].as_u64().expect("seq")
}

/// The lines of a file a router is writing, or was killed writing: only those ended by a
/// newline, since the last may be cut mid-write (its event was not acknowledged, so the
/// partition's next owner reads it again).
fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let end = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&text[..end])
        .lines()
        .map(str::to_string)
        .collect()
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
fn scale_out_three_routers_one_killed() {
    if !kafka_available() {
        return;
    }
    let bootstrap = shared_broker().bootstrap();
    let topic = unique("scale");
    let group = unique("aggregators");
    const PARTITIONS: u32 = 6;
    shared_broker().create_topic(&topic, PARTITIONS);
    const N: usize = 30_000;
    const RATE: usize = 6_000;
    const COMMIT_INTERVAL_MS: u64 = 200;
    let dir = tempdir();
    let outputs: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("out{i}.log")))
        .collect();
    let mut routers: Vec<_> = outputs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            let config = dir.path().join(format!("aggregator{i}.toml"));
            std::fs::write(
                &config,
                format!(
                    r#"
[api]
address = "127.0.0.1:0"

[sources.kafka]
type = "kafka"
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "{group}"
decoding = "json"
commit_interval_ms = {COMMIT_INTERVAL_MS}
librdkafka_options = {{ "session.timeout.ms" = 6000, "heartbeat.interval.ms" = 500 }}

[sinks.out]
type = "file"
inputs = ["kafka"]
path = "{}"
"#,
                    out.display()
                ),
            )
            .unwrap();
            // Commits at debug: a post-mortem of a loss needs each router's commits.
            let mut command = sluice_up(&config);
            command.env("SLUICE_LOG", "info,sluice::sources::kafka=debug");
            Some(spawn_router(command))
        })
        .collect();
    let apis: Vec<String> = routers
        .iter()
        .map(|r| {
            r.as_ref()
                .and_then(|r| r.address.clone())
                .expect("api address")
        })
        .collect();
    // The group is settled when its members own every partition exactly once between them
    // (tansu's coordinator can briefly hand a partition to two members while they join).
    let assigned = |apis: &[String]| -> Vec<i64> {
        apis.iter()
            .map(|a| metric(a, "sluice_kafka_assigned_partitions"))
            .collect()
    };
    let settled = |apis: &[String]| {
        let a = assigned(apis);
        a.iter().all(|n| *n >= 1) && a.iter().sum::<i64>() == PARTITIONS as i64
    };
    let deadline = Instant::now() + TIMEOUT;
    while !settled(&apis) {
        assert!(
            Instant::now() < deadline,
            "the group never settled: {:?}",
            assigned(&apis)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let producer = {
        let (b, t) = (bootstrap.clone(), topic.clone());
        std::thread::spawn(move || {
            client(&[
                "produce",
                &b,
                &t,
                &N.to_string(),
                "--apps",
                "12",
                "--rate",
                &RATE.to_string(),
            ])
        })
    };
    let total = |outputs: &[PathBuf]| {
        outputs
            .iter()
            .map(|o| complete_lines(o).len())
            .sum::<usize>()
    };
    // Kill one aggregator while the stream flows, once it has written a share and its offset
    // commits cover that share: duplicates can only be bounded from its last commit, and on a
    // loaded machine the first commit can come late.
    let committed = |api: &str| metric(api, "sluice_kafka_committed_messages_total");
    let deadline = Instant::now() + TIMEOUT;
    while complete_lines(&outputs[0]).len() < N / 10 || committed(&apis[0]) < (N / 10) as i64 {
        assert!(
            Instant::now() < deadline,
            "aggregator 0 never wrote and committed {} events: wrote {}, committed {}",
            N / 10,
            complete_lines(&outputs[0]).len(),
            committed(&apis[0])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Read before the kill: commits made after this only lower the duplicates.
    let committed_before_kill = committed(&apis[0]);
    let reread = |api: &str| metric(api, "sluice_kafka_revoked_unacknowledged_messages_total");
    let reread_by_killed = reread(&apis[0]);
    let before_kill = assigned(&apis);
    let killed = routers[0].take().expect("router 0");
    killed.signal("-KILL");
    let (_, killed_log) = killed.finish();
    let produced = producer.join().expect("producer");
    assert!(
        produced.contains(&format!("\"delivered\": {N}")),
        "{produced}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let union = |outputs: &[PathBuf]| -> BTreeMap<u64, usize> {
        let mut seen = BTreeMap::new();
        for o in outputs {
            for line in complete_lines(o) {
                *seen.entry(seq_of(&line)).or_insert(0) += 1;
            }
        }
        seen
    };
    while union(&outputs).len() < N {
        if Instant::now() >= deadline {
            let seen = union(&outputs);
            let missing: Vec<u64> = (0..N as u64)
                .filter(|s| !seen.contains_key(s))
                .take(20)
                .collect();
            let assigned_now = assigned(&apis[1..]);
            let kept = dir.keep();
            let placed = post_mortem(
                &kept,
                &bootstrap,
                &topic,
                &group,
                &missing,
                routers.drain(..).flatten().collect(),
                &killed_log,
            );
            panic!(
                "the survivors never caught up: {} of {N}, first missing {missing:?}; \
                 assigned {assigned_now:?}; {placed}; outputs and logs kept in {}",
                seen.len(),
                kept.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every event is written: what the survivors re-read at their own rebalances is known.
    let reread_by_survivors: i64 = apis[1..].iter().map(|a| reread(a)).sum();
    for router in routers.iter_mut().flatten() {
        router.signal("-TERM");
    }
    let mut logs = vec![killed_log];
    for router in routers.into_iter().flatten() {
        let (status, log) = router.finish();
        assert!(status.success(), "a surviving router exits cleanly");
        logs.push(log);
    }
    let seen = union(&outputs);
    assert_eq!(
        seen.keys().copied().collect::<BTreeSet<_>>(),
        (0..N as u64).collect(),
        "every event at least once"
    );
    let duplicates = total(&outputs) - N;
    // The bound. The killed router's partitions move, and their new owners start at its last
    // commit: at most what it wrote past the commits it had made before the kill is repeated.
    // Other partitions move only in rebalances (tansu's coordinator can also move survivors'
    // partitions while the group settles); a revoked partition is committed up to what was
    // acknowledged, and what was read past that is counted by the router that let it go.
    let written_by_killed = complete_lines(&outputs[0]).len();
    let past_commits = written_by_killed.saturating_sub(committed_before_kill as usize);
    let reread = (reread_by_killed + reread_by_survivors) as usize;
    let bound = past_commits + reread;
    println!(
        "scale-out: {N} events, {duplicates} duplicates (bound {bound}: the killed router wrote \
         {written_by_killed} and had committed {committed_before_kill}, on {} partitions; \
         {reread} read but unacknowledged at revocations), outputs {:?}",
        before_kill[0],
        outputs
            .iter()
            .map(|o| complete_lines(o).len())
            .collect::<Vec<_>>()
    );
    if duplicates > bound {
        let kept = dir.keep();
        for (i, log) in logs.iter().enumerate() {
            std::fs::write(kept.join(format!("router{i}.log")), log).unwrap();
        }
        let repeated: Vec<u64> = seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(s, _)| *s)
            .take(10)
            .collect();
        panic!(
            "{duplicates} duplicates exceed the bound {bound} ({past_commits} written by the \
             killed router past its commits, {reread} unacknowledged at revocations); first \
             repeated {repeated:?}; outputs and logs kept in {}",
            kept.display()
        );
    }
}

/// Places the events a scale-out run lost: stops the survivors (their full logs, with every
/// rebalance and commit, go to `dir`), reads the whole topic back with an independent client
/// to say in which partition and at which offset each missing event sits (or that the broker
/// does not have it), and records the group's committed offsets.
fn post_mortem(
    dir: &Path,
    bootstrap: &str,
    topic: &str,
    group: &str,
    missing: &[u64],
    survivors: Vec<RouterProcess>,
    killed_log: &str,
) -> String {
    std::fs::write(dir.join("router0.log"), killed_log).unwrap();
    for router in &survivors {
        router.signal("-TERM");
    }
    for (i, router) in survivors.into_iter().enumerate() {
        let (_, log) = router.finish();
        std::fs::write(dir.join(format!("router{}.log", i + 1)), log).unwrap();
    }
    let topic_dump = client(&["consume", bootstrap, topic, "1000000", "--timeout", "5"]);
    std::fs::write(dir.join("topic.jsonl"), &topic_dump).unwrap();
    let committed = client(&["committed", bootstrap, topic, group]);
    std::fs::write(dir.join("committed.jsonl"), &committed).unwrap();
    let mut places = Vec::new();
    for seq in missing {
        let place = topic_dump
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|m| {
                m["value"]
                    .as_str()
                    .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
                    .is_some_and(|v| v["seq"].as_u64() == Some(*seq))
            })
            .map(|m| {
                format!(
                    "seq {seq} at partition {} offset {}",
                    m["partition"], m["offset"]
                )
            })
            .unwrap_or_else(|| format!("seq {seq} is not in the topic"));
        places.push(place);
    }
    format!(
        "{}; committed offsets {}",
        places.join(", "),
        committed.trim().replace('\n', " ")
    )
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
