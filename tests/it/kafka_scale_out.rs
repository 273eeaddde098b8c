//! Scale-out through Kafka: three router processes share a consumer group on the tansu
//! broker while one of them is killed; every event arrives at least once, and the repeats
//! stay within what rebalances can explain. On a failure the run keeps what a post-mortem
//! needs (every router's log, the topic read back, the group's committed offsets).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kafka::seq_of;
use crate::tansu::{client, kafka_available, metric, shared_broker, unique};
use crate::util::{sluice_up, spawn_router, tempdir, RouterProcess, TIMEOUT};

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
