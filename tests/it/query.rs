//! Query semantics of the store, table-driven, over a store filled from the loghub corpus
//! (real system logs, see its LICENSE; read in place, not copied).
//!
//! Every query's stored-search count is checked against an independent count: the query
//! evaluated event by event in memory (the tail's matcher), and for some, a count written
//! out by hand from the corpus. Paging, time ranges, histograms and top values are checked
//! against the same in-memory truth.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sluice::event::{Event, Value};
use sluice::store::index::event_timestamp;
use sluice::store::search::{HistogramRequest, SearchRequest, TopRequest};
use sluice::store::{Engine, Query, Store, StoreOptions};
use sluice::transforms::parse::ParseConfig;
use sluice::transforms::{FunctionTransform, Outputs, TransformContext};

use crate::util::tempdir;

pub(crate) fn corpus_dir() -> PathBuf {
    let beside = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/loghub"
    ));
    if beside.is_dir() {
        beside.to_path_buf()
    } else {
        PathBuf::from("/work/shared/corpus/loghub")
    }
}

/// Every corpus line, parsed as a `format = "auto"` pipeline would, with `app` set to the
/// corpus name and `line` to the line number (a numeric field for ranges).
pub(crate) fn corpus_events() -> Vec<Event> {
    let mut transform = ParseConfig::default()
        .build(&TransformContext { id: "q".into() })
        .expect("parse builds");
    let mut names: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus present")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    let mut events = Vec::new();
    for dir in names {
        let app = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let log = dir.join(format!("{app}_2k.log"));
        let Ok(raw) = std::fs::read(&log) else {
            continue;
        };
        for (i, line) in raw.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let mut out = Outputs::new(ParseConfig::outputs().len());
            transform.transform(Event::from_message(Bytes::copy_from_slice(line)), &mut out);
            for mut event in out.default_output().iter().cloned() {
                event.insert("app", app.as_str());
                if event_timestamp(&event).is_none() {
                    // A fixed time for lines without one, so time ranges have one truth.
                    event.insert("timestamp", Value::Timestamp(1_000_000_000_000_000_000));
                }
                event.insert("line", Value::Integer(i as i64 + 1));
                events.push(event);
            }
        }
    }
    events
}

fn fill(dir: &Path, events: &[Event], engine: Engine) -> Arc<Store> {
    let options = StoreOptions {
        engine,
        ..StoreOptions::default()
    };
    let store = Store::open("query_test", dir, options).expect("store opens");
    let mut writer = store.writer();
    let now = sluice::event::now_nanos();
    for chunk in events.chunks(1000) {
        writer.append(chunk, now).expect("append");
        writer.commit().expect("commit");
    }
    store
}

fn search(store: &Store, q: &str, from: Option<i64>, to: Option<i64>, limit: usize) -> u64 {
    store
        .search(&SearchRequest {
            query: Query::parse(q).expect(q),
            from,
            to,
            limit,
            cursor: None,
        })
        .expect(q)
        .total
}

#[test]
fn query_semantics_on_loghub() {
    query_semantics_on_loghub_with(Engine::Tantivy);
}

/// The same on the column engine (`engine = "columns"`).
#[test]
fn query_semantics_on_loghub_on_columns() {
    query_semantics_on_loghub_with(Engine::Columns);
}

fn query_semantics_on_loghub_with(engine: Engine) {
    let events = corpus_events();
    assert!(events.len() > 10_000, "corpus has {} events", events.len());
    let dir = tempdir();
    let store = fill(dir.path(), &events, engine);
    assert_eq!(store.num_events(), events.len() as u64);

    // (query, a count known from the corpus files themselves, when there is one)
    let table: Vec<(&str, Option<u64>)> = vec![
        ("", Some(events.len() as u64)),
        ("app:Linux", Some(2000)),
        ("app:HDFS", Some(2000)),
        ("app:Linux OR app:HDFS", Some(4000)),
        ("app:Linux AND app:HDFS", Some(0)),
        ("-app:Linux", Some(events.len() as u64 - 2000)),
        ("NOT app:Linux", Some(events.len() as u64 - 2000)),
        ("app:Lin*", Some(2000)),
        ("app:?pache", Some(2000)),
        ("line:<=10", Some(60)),
        ("line:[1 TO 10] app:Spark", Some(10)),
        ("line:>1990 AND app:HDFS", Some(10)),
        ("line:[1995 TO *]", None),
        ("authentication", None),
        ("AUTHENTICATION failure", None),
        ("\"authentication failure\"", None),
        ("\"failure authentication\"", None),
        ("authenticat*", None),
        ("message:\"session opened\"", None),
        ("level:error", None),
        ("level:info app:Spark", None),
        ("level:warn OR level:error", None),
        ("(app:Linux OR app:OpenSSH) AND (sshd OR session)", None),
        ("app:OpenSSH -\"Failed password\"", None),
        ("app:OpenSSH -(\"Failed password\" AND root)", None),
        (
            "app:OpenSSH AND NOT (session OR \"authentication failure\")",
            None,
        ),
        ("nosuchwordanywhere", Some(0)),
        ("nosuchfield:x", Some(0)),
    ];
    for (q, known) in &table {
        let query = Query::parse(q).expect(q);
        let in_memory = events.iter().filter(|e| query.matches(e)).count() as u64;
        let stored = search(&store, q, None, None, 10);
        assert_eq!(
            stored, in_memory,
            "{q:?}: stored search vs in-memory evaluation"
        );
        if let Some(known) = known {
            assert_eq!(stored, *known, "{q:?}");
        }
    }
    // The phrase order matters and some words are really there.
    assert!(search(&store, "\"authentication failure\"", None, None, 1) > 100);
    assert_eq!(
        search(&store, "\"failure authentication\"", None, None, 1),
        0
    );

    // Time ranges: [from, to) on the events' own timestamps.
    let mut times: Vec<i64> = events.iter().filter_map(event_timestamp).collect();
    times.sort();
    let (lo, hi) = (times[times.len() / 4], times[times.len() * 3 / 4]);
    for (q, from, to) in [
        ("", Some(lo), Some(hi)),
        ("", Some(lo), None),
        ("", None, Some(hi)),
        ("app:Linux", Some(lo), Some(hi)),
    ] {
        let query = Query::parse(q).expect(q);
        let expected = events
            .iter()
            .filter(|e| query.matches(e))
            .filter_map(event_timestamp)
            .filter(|t| from.is_none_or(|f| *t >= f) && to.is_none_or(|t2| *t < t2))
            .count() as u64;
        assert_eq!(
            search(&store, q, from, to, 5),
            expected,
            "{q:?} {from:?}..{to:?}"
        );
    }
}

#[test]
fn paging_histogram_and_top_on_loghub() {
    paging_histogram_and_top_on_loghub_with(Engine::Tantivy);
}

/// The same on the column engine (`engine = "columns"`).
#[test]
fn paging_histogram_and_top_on_loghub_on_columns() {
    paging_histogram_and_top_on_loghub_with(Engine::Columns);
}

fn paging_histogram_and_top_on_loghub_with(engine: Engine) {
    let events = corpus_events();
    let dir = tempdir();
    let store = fill(dir.path(), &events, engine);

    // Paging: newest first, every event exactly once, across many pages.
    for (q, limit) in [("app:Linux", 300), ("", 997), ("level:info", 1)] {
        let query = Query::parse(q).expect(q);
        let expected = events.iter().filter(|e| query.matches(e)).count();
        if limit == 1 && expected > 3000 {
            continue;
        }
        let mut cursor = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = store
                .search(&SearchRequest {
                    query: query.clone(),
                    from: None,
                    to: None,
                    limit,
                    cursor: cursor.take(),
                })
                .expect("page");
            assert_eq!(page.total as usize, expected, "{q}");
            assert!(page.events.len() <= limit);
            seen.extend(page.events);
            pages += 1;
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
            assert!(pages <= expected / limit + 2, "{q}: paging does not end");
        }
        assert_eq!(seen.len(), expected, "{q}: every event once");
        let keys: HashSet<String> = seen
            .iter()
            .map(|e| format!("{}/{}", e["app"], e["line"]))
            .collect();
        assert_eq!(keys.len(), expected, "{q}: no event twice");
        let times: Vec<i64> = seen
            .iter()
            .map(|e| {
                sluice::store::index::parse_rfc3339(e["timestamp"].as_str().unwrap_or(""))
                    .expect("every stored event has a timestamp")
            })
            .collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{q}: newest first");
    }

    // Histogram per hour, split by level: the series add up to the matches, per level too.
    let mut times: Vec<i64> = events.iter().filter_map(event_timestamp).collect();
    times.sort();
    let hour = 3_600_000_000_000i64;
    let from = times[0].div_euclid(hour) * hour;
    let to = times[times.len() - 1] + 1;
    let buckets_wanted = (to - from + hour - 1) / hour;
    if buckets_wanted <= sluice::store::search::MAX_BUCKETS {
        let histogram = store
            .histogram(&HistogramRequest {
                query: Query::parse("app:OpenSSH OR app:Linux").expect("q"),
                from,
                to,
                interval: hour,
                split: Some("level".into()),
                split_limit: 10,
            })
            .expect("histogram");
        let query = Query::parse("app:OpenSSH OR app:Linux").expect("q");
        let matching: Vec<&Event> = events.iter().filter(|e| query.matches(e)).collect();
        assert_eq!(histogram.total as usize, matching.len());
        let mut per_level: HashMap<String, u64> = HashMap::new();
        for e in &matching {
            let level = e.get("level").map(|v| v.to_text()).unwrap_or_default();
            *per_level.entry(level).or_default() += 1;
        }
        for (level, counts) in &histogram.series {
            assert_eq!(
                counts.iter().sum::<u64>(),
                per_level.get(level).copied().unwrap_or(0),
                "level {level:?}"
            );
        }
        assert_eq!(histogram.times_ms.len() as i64, buckets_wanted);
    }
    // One bucket per minute over one day of the Linux logs, no split.
    let linux_times: Vec<i64> = events
        .iter()
        .filter(|e| e.get("app").and_then(Value::as_str) == Some("Linux"))
        .filter_map(event_timestamp)
        .collect();
    let start = linux_times.iter().min().copied().expect("linux times");
    let minute = 60_000_000_000i64;
    let day_from = start.div_euclid(minute) * minute;
    let day_to = day_from + 24 * 60 * minute;
    let histogram = store
        .histogram(&HistogramRequest {
            query: Query::parse("app:Linux").expect("q"),
            from: day_from,
            to: day_to,
            interval: minute,
            split: None,
            split_limit: 10,
        })
        .expect("histogram");
    let in_day = linux_times
        .iter()
        .filter(|t| **t >= day_from && **t < day_to)
        .count() as u64;
    assert_eq!(histogram.series["all"].iter().sum::<u64>(), in_day);
    assert_eq!(histogram.times_ms.len(), 24 * 60);

    // Top values: per app exactly the corpus sizes; a split on a field of `_kv` (line).
    let top = store
        .top(&TopRequest {
            query: Query::All,
            field: "app".into(),
            from: None,
            to: None,
            limit: 3,
        })
        .expect("top");
    assert_eq!(top.values.len(), 3);
    assert_eq!(top.total, events.len() as u64);
    assert!(top.values.iter().all(|v| v.count == 2000));
    let top = store
        .top(&TopRequest {
            query: Query::parse("line:<=2").expect("q"),
            field: "line".into(),
            from: None,
            to: None,
            limit: 10,
        })
        .expect("top");
    let got: Vec<(String, u64)> = top
        .values
        .iter()
        .map(|v| (v.value.clone(), v.count))
        .collect();
    assert_eq!(got, vec![("1".to_string(), 6), ("2".to_string(), 6)]);
    assert!(store
        .top(&TopRequest {
            query: Query::All,
            field: "message".into(),
            from: None,
            to: None,
            limit: 1
        })
        .is_err());
}

/// Random queries built from the language's pieces: the stored search and the in-memory
/// matcher must agree on every one (deterministic seed, 300 queries).
#[test]
fn random_queries_agree_with_the_in_memory_matcher() {
    random_queries_agree_with_the_in_memory_matcher_with(Engine::Tantivy);
}

/// The same on the column engine (`engine = "columns"`).
#[test]
fn random_queries_agree_with_the_in_memory_matcher_on_columns() {
    random_queries_agree_with_the_in_memory_matcher_with(Engine::Columns);
}

fn random_queries_agree_with_the_in_memory_matcher_with(engine: Engine) {
    let events: Vec<Event> = corpus_events()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 7 == 0)
        .map(|(_, e)| e)
        .collect();
    let dir = tempdir();
    let store = fill(dir.path(), &events, engine);
    let atoms = [
        "app:Linux",
        "app:OpenSSH",
        "app:H*",
        "level:error",
        "level:info",
        "level:warn",
        "level:>=warn",
        "level:<info",
        "session",
        "failure",
        "\"authentication failure\"",
        "\"session opened\"",
        "user",
        "line:<100",
        "line:>=1500",
        "line:[500 TO 900]",
        "auth*",
        "nosuchword",
        "message:\"connection closed\"",
        "root",
        // Fields of `_kv` (a column without an inverted index): terms and wildcards.
        "line:7",
        "line:1?",
        "line:19*",
        "line:*00",
    ];
    for kv_atom in ["line:7", "line:1?", "line:19*", "line:*00"] {
        let query = Query::parse(kv_atom).expect("parses");
        assert!(
            events.iter().any(|e| query.matches(e)),
            "{kv_atom} matches nothing"
        );
    }
    let mut rng = fastrand::Rng::with_seed(7);
    fn build(rng: &mut fastrand::Rng, atoms: &[&str], depth: usize) -> String {
        if depth == 0 || rng.u8(0..3) == 0 {
            return atoms[rng.usize(0..atoms.len())].to_string();
        }
        let a = build(rng, atoms, depth - 1);
        let b = build(rng, atoms, depth - 1);
        match rng.u8(0..5) {
            0 => format!("({a} AND {b})"),
            1 => format!("({a} OR {b})"),
            2 => format!("NOT ({a})"),
            3 => format!("{a} -{b}"),
            _ => format!("{a} {b}"),
        }
    }
    for _ in 0..300 {
        let q = build(&mut rng, &atoms, 3);
        let query = Query::parse(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let in_memory = events.iter().filter(|e| query.matches(e)).count() as u64;
        assert_eq!(search(&store, &q, None, None, 3), in_memory, "{q}");
    }
}
