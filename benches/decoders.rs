//! Per-line cost of the format parsers and of normalisation.
//!
//! Lines are generated here, deterministically, in the shapes `shared/bench/gen_logs.py`
//! writes (JSON, logfmt, combined access log, plain text with a leading timestamp), so the
//! bench needs no files. Throughput is in lines: criterion's "elem/s" is lines per second.
//! The router's end-to-end target is 400k JSON lines/s per core, so `json_normalize` must
//! stay well under 2.5 µs per line.
//!
//! `text_layouts/auto_normalize` runs the lines of `tests/corpus/formats` (plain-text layouts).
//! `layout_stream/<layout>` runs one of those files as one stream, through `auto` alone and
//! through the parse transform: what a file or container repeating that layout costs a line.
//!
//! `cargo bench --bench decoders -- --warm-up-time 1 --measurement-time 3`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::event::Event;
use sluice::parse;
use sluice::transforms::parse::ParseConfig;
use sluice::transforms::{FunctionTransform, Outputs, TransformContext};

const LINES: usize = 1_000;

const LEVELS: [&str; 20] = [
    "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info",
    "info", "info", "debug", "debug", "debug", "warn", "warn", "error",
];
const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const STATUSES: [u16; 8] = [200, 200, 200, 201, 304, 404, 429, 503];
const PATHS: [&str; 6] = [
    "/api/orders",
    "/api/users/{id}",
    "/api/cart/items",
    "/healthz",
    "/api/search",
    "/metrics",
];
const MSGS: [&str; 6] = [
    "request completed",
    "cache miss",
    "db query slow",
    "upstream timeout",
    "order created",
    "connection reset by peer",
];
const APPS: [&str; 4] = ["checkout", "orders", "users", "gateway"];
const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
    "curl/8.5.0",
    "python-requests/2.31.0",
];

/// splitmix64: a tiny, fixed-seed generator, so every run benches the same lines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Json,
    Logfmt,
    Text,
}

/// `n` lines of one kind; `Text` alternates access-log and plain lines as gen_logs does.
fn lines(kind: Kind, n: usize) -> Vec<Bytes> {
    let mut rng = Rng(42);
    (0..n)
        .map(|i| {
            let ms = i * 3;
            let ts = format!("2024-05-01T00:{:02}:{:02}.{:03}Z", ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
            let level = rng.pick(&LEVELS);
            let app = rng.pick(&APPS);
            let msg = rng.pick(&MSGS);
            let method = rng.pick(&METHODS);
            let path = rng.pick(&PATHS).replace("{id}", &rng.below(99_999).to_string());
            let status = rng.pick(&STATUSES);
            let dur = rng.below(3000);
            let user = format!("u{}", rng.below(200_000));
            let rid = format!("{:016x}", rng.next());
            let line = match kind {
                Kind::Json => format!(
                    r#"{{"ts":"{ts}","level":"{level}","svc":"{app}","msg":"{msg}","method":"{method}","path":"{path}","status":{status},"dur_ms":{dur},"bytes":{},"user":"{user}","req_id":"{rid}"}}"#,
                    rng.below(65_536)
                ),
                Kind::Logfmt => format!(
                    r#"ts={ts} level={level} svc={app} msg="{msg}" method={method} path={path} status={status} dur_ms={dur} user={user} req_id={rid}"#
                ),
                Kind::Text if i % 2 == 0 => format!(
                    r#"10.{}.{}.{} - {user} [01/May/2024:00:00:{:02} +0000] "{method} {path} HTTP/1.1" {status} {} "-" "{}""#,
                    rng.below(256),
                    rng.below(256),
                    rng.below(255) + 1,
                    ms / 1000 % 60,
                    rng.below(65_536),
                    rng.pick(&AGENTS)
                ),
                Kind::Text => format!(
                    "{ts} {} [{app}] worker-{} processed batch of {} items in {dur}ms (queue depth {}, req {rid})",
                    level.to_ascii_uppercase(),
                    rng.below(32),
                    rng.below(5000),
                    rng.below(900)
                ),
            };
            Bytes::from(line)
        })
        .collect()
}

/// The mix gen_logs.py writes by default: 50% JSON, 25% logfmt, 25% text/access log.
fn mixed(n: usize) -> Vec<Bytes> {
    let (json, logfmt, text) = (
        lines(Kind::Json, n),
        lines(Kind::Logfmt, n),
        lines(Kind::Text, n),
    );
    (0..n)
        .map(|i| match i % 4 {
            0 | 1 => json[i].clone(),
            2 => logfmt[i].clone(),
            _ => text[i].clone(),
        })
        .collect()
}

fn decoders(c: &mut Criterion) {
    let json_lines = lines(Kind::Json, LINES);
    let logfmt_lines = lines(Kind::Logfmt, LINES);
    let mixed_lines = mixed(LINES);
    let parsed_json: Vec<Event> = json_lines
        .iter()
        .map(|l| Event::new(parse::json(l).expect("generated json parses")))
        .collect();

    let mut group = c.benchmark_group("decoders");
    group.throughput(Throughput::Elements(LINES as u64));

    group.bench_function("json", |b| {
        b.iter(|| {
            for line in &json_lines {
                std::hint::black_box(parse::json_bytes(line).ok());
            }
        })
    });
    group.bench_function("logfmt", |b| {
        b.iter(|| {
            for line in &logfmt_lines {
                std::hint::black_box(parse::logfmt_bytes(line).ok());
            }
        })
    });
    group.bench_function("auto_mixed", |b| {
        b.iter(|| {
            for line in &mixed_lines {
                std::hint::black_box(parse::auto(line.clone()));
            }
        })
    });
    group.bench_function("normalize", |b| {
        b.iter_batched(
            || parsed_json.clone(),
            |mut events| {
                for event in &mut events {
                    std::hint::black_box(parse::normalize(event));
                }
                events
            },
            BatchSize::LargeInput,
        )
    });
    // The hot path of a `format = "json"` parse transform, allocation of the event included.
    group.bench_function("json_normalize", |b| {
        b.iter(|| {
            for line in &json_lines {
                if let Ok(fields) = parse::json_bytes(line) {
                    let mut event = Event::new(fields);
                    parse::normalize(&mut event);
                    std::hint::black_box(event);
                }
            }
        })
    });
    group.bench_function("auto_normalize_mixed", |b| {
        b.iter(|| {
            for line in &mixed_lines {
                let mut event = Event::new(parse::auto(line.clone()));
                parse::normalize(&mut event);
                std::hint::black_box(event);
            }
        })
    });
    group.finish();

    // Plain-text layouts (issue 17): every line of tests/corpus/formats, the layouts
    // interleaved, through auto + normalisation with a receive time set, as the parse
    // transform runs them.
    let text_lines = corpus_text_lines();
    let mut group = c.benchmark_group("text_layouts");
    group.throughput(Throughput::Elements(text_lines.len() as u64));
    group.bench_function("auto_normalize", |b| {
        b.iter(|| {
            for line in &text_lines {
                let mut event = Event::new(parse::auto(line.clone()));
                event.meta.received_at = RECEIVED_AT;
                parse::normalize(&mut event);
                std::hint::black_box(event);
            }
        })
    });
    group.finish();

    // One stream of one layout through the `parse` transform (auto + normalisation), as a
    // file or container of that program reaches it; `auto` alone for comparison.
    for layout in STREAM_LAYOUTS {
        let lines = corpus_file_lines(layout);
        let events: Vec<Event> = lines
            .iter()
            .map(|line| {
                let mut event = Event::from_message(line.clone());
                event.meta.received_at = RECEIVED_AT;
                event.meta.source = Some("app_logs".into());
                event
            })
            .collect();
        let mut group = c.benchmark_group(format!("layout_stream/{layout}"));
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_function("auto", |b| {
            b.iter(|| {
                for line in &lines {
                    std::hint::black_box(parse::detect(line.clone()));
                }
            })
        });
        let mut transform = parse_transform("");
        group.bench_function("transform", |b| {
            b.iter_batched(
                || (events.clone(), Outputs::new(ParseConfig::outputs().len())),
                |(events, mut out)| {
                    // As the transform task drives it: room for a batch's events first.
                    out.reserve_default(events.len());
                    for event in events {
                        transform.transform(event, &mut out);
                    }
                    out
                },
                BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

/// Layouts benched as a single stream: a few common text layouts of different shapes, and
/// those whose time is not the first token or is missing (the time is then searched word by
/// word through the first 128 bytes, the one step a remembered layout might have skipped).
const STREAM_LAYOUTS: [&str; 12] = [
    "nginx_error",
    "glog",
    "log4j",
    "postgresql",
    "python_default",
    "logcat_brief",
    "log4net",
    "java_util_logging",
    "no_level",
    "redis_documented",
    "ruby_logger",
    "apache22_error",
];

fn parse_transform(config: &str) -> sluice::transforms::parse::Parse {
    toml::from_str::<ParseConfig>(config)
        .expect("bench config parses")
        .build(&TransformContext {
            id: "app_logs".to_string(),
        })
        .expect("bench config builds")
}

/// 2026-12-06T12:00:00Z.
const RECEIVED_AT: i64 = 1_796_558_400_000_000_000;

/// The lines of `tests/corpus/formats/<layout>.tsv` (third column).
fn corpus_file_lines(layout: &str) -> Vec<Bytes> {
    let path = format!(
        "{}/tests/corpus/formats/{layout}.tsv",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .expect("corpus file is readable")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.splitn(3, '\t').nth(2))
        .map(|l| Bytes::from(l.to_string()))
        .collect()
}

/// The lines of every `tests/corpus/formats/*.tsv` (third column), taken round-robin so
/// that each layout is spread over the run.
fn corpus_text_lines() -> Vec<Bytes> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/formats");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/corpus/formats exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
        .collect();
    files.sort();
    let per_file: Vec<Vec<Bytes>> = files
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .expect("corpus file is readable")
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.splitn(3, '\t').nth(2))
                .map(|l| Bytes::from(l.to_string()))
                .collect()
        })
        .collect();
    let longest = per_file.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| per_file.iter().filter_map(move |f| f.get(i).cloned()))
        .collect()
}

criterion_group!(benches, decoders);
criterion_main!(benches);
