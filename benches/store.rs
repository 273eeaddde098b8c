//! The store at scale: fills a store with N synthetic events (default 10,000,000) through
//! `StoreWriter` (what the sink does: batches of 1,000, a commit every 100,000), then times
//! a term query's first page, per-minute histograms, top values, and reports disk bytes
//! per event. Numbers go to benches/RESULTS.md.
//!
//! `cargo bench --bench store -- 10000000 [DIR]` (DIR defaults to a temporary directory);
//! `cargo test --all-targets` runs it on 20,000 events as a smoke test. The engine is
//! tantivy unless `SLUICE_STORE_ENGINE=columns`. With `SLUICE_STORE_BENCH_QUERY=q` it times
//! only that query's first page, 50 times (to profile one query).

use std::time::{Duration, Instant};

use sluice::event::{Event, Map, Value};
use sluice::store::search::{HistogramRequest, SearchRequest, TopRequest};
use sluice::store::{Engine, Query, Store, StoreOptions};

/// The allocator the router ships with (src/main.rs), so that query times are those of the
/// binary: glibc's malloc, with the query's threads in arenas of their own, maps and unmaps
/// a block's buffers on every read here.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const BATCH: usize = 1_000;
const COMMIT_EVERY: usize = 100_000;
/// Event times spread over one day, so a per-minute histogram has 1,440 buckets.
const SPAN_NANOS: i64 = 86_400_000_000_000;

const WORDS: [&str; 24] = [
    "request",
    "completed",
    "user",
    "session",
    "timeout",
    "connection",
    "refused",
    "cache",
    "miss",
    "hit",
    "payment",
    "declined",
    "order",
    "created",
    "shipped",
    "retry",
    "upstream",
    "latency",
    "slow",
    "query",
    "database",
    "login",
    "logout",
    "token",
];
const APPS: [&str; 8] = [
    "checkout", "orders", "users", "gateway", "billing", "search", "auth", "mailer",
];

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn event(rng: &mut Rng, start: i64, i: usize, n: usize) -> Event {
    let level = match rng.next() % 100 {
        0..=69 => "info",
        70..=84 => "debug",
        85..=94 => "warn",
        _ => "error",
    };
    let mut message = String::with_capacity(80);
    for w in 0..6 {
        if w > 0 {
            message.push(' ');
        }
        message.push_str(rng.pick(&WORDS));
    }
    message.push_str(&format!(" id={}", rng.next() % 100_000));
    let mut fields = Map::with_capacity(8);
    let ts = start + (i as i64) * (SPAN_NANOS / n as i64);
    fields.insert("timestamp", Value::Timestamp(ts));
    fields.insert("level", Value::from(level));
    fields.insert("app", Value::from(rng.pick(&APPS)));
    fields.insert(
        "host",
        Value::from(format!("host-{}", rng.next() % 16).as_str()),
    );
    fields.insert("message", Value::from(message.as_str()));
    let status = [200, 200, 200, 201, 304, 404, 500, 503][(rng.next() % 8) as usize];
    fields.insert("status", Value::Integer(status));
    fields.insert("duration_ms", Value::Integer((rng.next() % 2000) as i64));
    // A high-cardinality field (a user per 10 events), from the event's number so that the
    // generator's other values stay as they were.
    let user = format!(
        "u{}",
        (i as u64).wrapping_mul(2_654_435_761) % (n as u64 / 10).max(1)
    );
    fields.insert("user", Value::from(user.as_str()));
    Event::new(fields)
}

fn time<T>(what: &str, runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        out = Some(r);
    }
    println!(
        "{what:<58} {:>10.1} ms (best of {runs})",
        best.as_secs_f64() * 1e3
    );
    (best, out.expect("at least one run"))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this is a smoke run.
    let benching = std::env::args().any(|a| a == "--bench");
    let default_n = if benching { 10_000_000 } else { 20_000 };
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(default_n);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = args
        .get(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().join("store"));
    let options = match std::env::var("SLUICE_STORE_ENGINE").as_deref() {
        Ok("columns") => StoreOptions {
            engine: Engine::Columns,
            ..StoreOptions::default()
        },
        _ => StoreOptions::default(),
    };
    println!("engine: {:?}", options.engine);
    let store = Store::open("bench", &dir, options).expect("store opens");
    let start = 1_764_115_200_000_000_000i64;
    let now = sluice::event::now_nanos();

    if store.num_events() < n as u64 {
        let mut writer = store.writer();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut indexing = Duration::ZERO;
        let mut batch = Vec::with_capacity(BATCH);
        let wall = Instant::now();
        for i in 0..n {
            batch.push(event(&mut rng, start, i, n));
            if batch.len() == BATCH || i + 1 == n {
                let t = Instant::now();
                writer.append(&batch, now).expect("append");
                if (i + 1) % COMMIT_EVERY == 0 || i + 1 == n {
                    writer.commit().expect("commit");
                }
                indexing += t.elapsed();
                batch.clear();
            }
        }
        let t = Instant::now();
        writer.close().expect("close");
        let merging = t.elapsed();
        println!(
            "ingest: {n} events, {:.0} events/s indexing+commit ({:.1} s), {:.1} s wall with generation, then {:.1} s final merges",
            n as f64 / indexing.as_secs_f64(),
            indexing.as_secs_f64(),
            wall.elapsed().as_secs_f64(),
            merging.as_secs_f64()
        );
    }
    let stored = store.num_events();
    let bytes = store.disk_bytes();
    println!(
        "stored: {stored} events, {:.1} MiB on disk, {:.1} bytes/event",
        bytes as f64 / 1048576.0,
        bytes as f64 / stored as f64
    );

    let page = |q: &str, cursor: Option<String>| {
        store
            .search(&SearchRequest {
                query: Query::parse(q).expect("query"),
                from: None,
                to: None,
                limit: 100,
                cursor,
            })
            .expect("search")
    };
    if let Ok(q) = std::env::var("SLUICE_STORE_BENCH_QUERY") {
        // One query's first page, many times over: what `perf record` is pointed at.
        let (_, result) = time(&format!("first page of 100, q={q:?}"), 50, || {
            page(&q, None)
        });
        println!("{:<58} {:>10} matches", "", result.total);
        return;
    }
    for q in [
        "level:error",
        "app:checkout level:error",
        "timeout",
        "\"connection refused\"",
        "status:>=500 app:billing",
        "app:check* -level:debug",
        "user:u4242",
        "",
    ] {
        let (_, result) = time(&format!("first page of 100, q={q:?}"), 5, || page(q, None));
        println!("{:<58} {:>10} matches", "", result.total);
    }
    let cursor = page("level:error", None).next_cursor;
    let (_, second) = time("cursor: second page of level:error", 5, || {
        page("level:error", cursor.clone())
    });
    assert_eq!(second.events.len(), 100);

    let minute = 60_000_000_000;
    for (q, split) in [
        ("", None),
        ("", Some("level")),
        ("timeout", Some("level")),
        ("", Some("app")),
    ] {
        let request = HistogramRequest {
            query: Query::parse(q).expect("q"),
            from: start,
            to: start + SPAN_NANOS,
            interval: minute,
            split: split.map(str::to_string),
            split_limit: 10,
        };
        let (_, h) = time(
            &format!("per-minute histogram (1440 buckets), q={q:?} split={split:?}"),
            3,
            || store.histogram(&request).expect("histogram"),
        );
        assert_eq!(h.total, if q.is_empty() { stored } else { h.total });
    }
    for field in ["app", "status"] {
        let request = TopRequest {
            query: Query::All,
            field: field.into(),
            from: None,
            to: None,
            limit: 10,
        };
        time(
            &format!("top 10 values of {field} over all events"),
            3,
            || store.top(&request).expect("top"),
        );
    }
}
