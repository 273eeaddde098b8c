use std::sync::Arc;

use super::*;
use crate::event::test_event;
use crate::store::search::{Budget, SearchRequest};
use crate::store::{Engine, Query, Store, StoreOptions};

const ARRIVAL: i64 = 1_764_115_200 * 1_000_000_000;

fn columns() -> StoreOptions {
    StoreOptions {
        engine: Engine::Columns,
        ..StoreOptions::default()
    }
}

fn tantivy() -> StoreOptions {
    StoreOptions::default()
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| match i % 4 {
            0 => test_event(&format!(
                r#"{{"timestamp":"2025-11-26T00:00:{:02}.{i:06}Z","level":"info","app":"web","message":"GET /api/users/{i} took {}ms","status":200,"req_id":"r{i}"}}"#,
                i % 60,
                i % 97
            )),
            1 => test_event(&format!(
                r#"{{"message":"plain line {i} with Ünïcode","app":"worker","http":{{"status":{},"path":"/p/{i}"}},"tags":["a","b{}"]}}"#,
                400 + i % 3,
                i % 5
            )),
            2 => test_event(&format!(
                r#"{{"level":"error","message":"payment failed for order {i}","amount":{}.5,"ok":false,"none":null,"timestamp":"9999-01-01T00:00:00Z"}}"#,
                i % 1000
            )),
            _ => test_event(&format!(
                r#"{{"app":"web","message":"cache miss","deep":{{"a":{{"b":{{"c":{{"d":{{"e":{{"f":{{"g":{{"h":{{"i":"bottom{i}"}}}}}}}}}}}}}}}}}},"dup":1,"dup":2}}"#
            )),
        })
        .collect()
}

fn fill(
    id: &str,
    options: StoreOptions,
    events: &[Event],
    per_commit: usize,
) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(id, dir.path(), options).expect("opens");
    let mut writer = store.writer();
    for chunk in events.chunks(per_commit) {
        writer.append(chunk, ARRIVAL).expect("append");
        writer.commit().expect("commit");
    }
    // Merges finished: the partition in its lasting shape.
    writer.close().expect("close");
    (dir, store)
}

fn page(
    store: &Store,
    q: &str,
    limit: usize,
    cursor: Option<String>,
) -> crate::store::search::SearchPage {
    store
        .search_within(
            &SearchRequest {
                query: Query::parse(q).expect(q),
                from: None,
                to: None,
                limit,
                cursor,
            },
            &Budget::unlimited(),
        )
        .expect(q)
}

/// Every event, paged through with cursors.
fn all_pages(
    store: &Store,
    q: &str,
    limit: usize,
) -> Vec<(crate::store::search::Key, serde_json::Value)> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let p = page(store, q, limit, cursor);
        out.extend(p.keys.into_iter().zip(p.events));
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[test]
fn the_column_engine_answers_as_the_tantivy_engine_does() {
    let events = events(1000);
    let (_a, reference) = fill("columns_reference", tantivy(), &events, 100);
    let (_b, store) = fill("columns_answers", columns(), &events, 100);
    assert_eq!(store.num_events(), 1000);
    for q in [
        "",
        "app:web",
        "level:error",
        "took",
        "\"payment failed\"",
        "http.status:401",
        "tags:b3",
        "unicode OR ünïcode",
        "req_id:r8",
        "status:>=200 app:web",
        "amount:[10 TO 20]",
        "dup:2",
        "nosuchword",
        "NOT app:web",
        "app:w*",
    ] {
        let want = page(&reference, q, 50, None);
        let got = page(&store, q, 50, None);
        assert_eq!(got.total, want.total, "total of {q}");
        assert_eq!(got.keys, want.keys, "keys of {q}");
        assert_eq!(got.events, want.events, "events of {q}");
    }
    // Deeper than the tantivy engine flattens (4 levels): the column engine answers as the
    // live tail's matcher does.
    let deep = "deep.a.b.c.d.e.f.g.h.i:bottom7";
    let query = Query::parse(deep).expect("parses");
    let matching = events.iter().filter(|e| query.matches(e)).count() as u64;
    assert_eq!(matching, 1);
    assert_eq!(page(&store, deep, 50, None).total, matching);
    // Every event once, in the same order, across pages.
    assert_eq!(all_pages(&store, "", 37), all_pages(&reference, "", 37));
    assert_eq!(store.time_range(), reference.time_range());
}

#[test]
fn small_commits_are_merged_and_nothing_is_lost_or_reordered() {
    let events = events(300);
    let (dir, store) = fill("columns_merges", columns(), &events, 3);
    let partition = &store.column_partitions()[0];
    let blocks = partition.blocks();
    assert!(
        blocks.len() < 20,
        "{} blocks after 100 commits",
        blocks.len()
    );
    let seqs: Vec<(u64, u64)> = blocks.iter().map(|b| (b.first_seq, b.last_seq())).collect();
    assert_eq!(seqs[0].0, 0);
    assert!(seqs.windows(2).all(|w| w[0].1 + 1 == w[1].0), "{seqs:?}");
    assert_eq!(seqs.last().map(|s| s.1), Some(299));
    let (_r, reference) = fill("columns_reference", tantivy(), &events, 3);
    assert_eq!(all_pages(&store, "", 1000), all_pages(&reference, "", 1000));
    // Only the blocks in the list are on disk.
    let files = std::fs::read_dir(&partition.dir).expect("dir").count();
    assert_eq!(files, blocks.len());
    drop(dir);
}

#[test]
fn a_reopened_store_finds_its_events_and_continues_their_sequence() {
    let events = events(100);
    let (dir, store) = fill("columns_reopen", columns(), &events[..60], 60);
    drop(store);
    let store = Store::open("columns_reopen", dir.path(), columns()).expect("reopens");
    assert_eq!(store.num_events(), 60);
    let mut writer = store.writer();
    writer.append(&events[60..], ARRIVAL).expect("append");
    writer.commit().expect("commit");
    let keys: Vec<u64> = all_pages(&store, "", 1000)
        .iter()
        .map(|(k, _)| k.2)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<u64>>());
}

#[test]
fn an_interrupted_merge_leaves_no_event_twice() {
    let events = events(40);
    let (dir, store) = fill("columns_interrupted", columns(), &events, 5);
    let partition_dir = store.column_partitions()[0].dir.clone();
    let blocks = store.column_partitions()[0].blocks();
    assert_eq!(blocks.len(), 1, "eight blocks of five merged into one");
    drop(store);
    // As if the merge had renamed its output in and died before deleting its inputs.
    let mut builder = Builder::new(0);
    for event in &events[..5] {
        builder.begin_row(ARRIVAL);
        for (k, v) in event.fields.iter() {
            builder.field(k, v);
        }
        builder.end_row();
    }
    block::write(&partition_dir, builder.finish()).expect("write");
    std::fs::write(
        partition_dir.join("00000000000000000099-00000000000000000100.tmp"),
        b"torn",
    )
    .expect("tmp");
    let store = Store::open("columns_interrupted", dir.path(), columns()).expect("reopens");
    assert_eq!(store.num_events(), 40);
    assert_eq!(std::fs::read_dir(&partition_dir).expect("dir").count(), 1);
}

#[test]
fn a_damaged_block_is_moved_aside_and_counted() {
    let events = events(100);
    let (dir, store) = fill("columns_damage", columns(), &events, 50);
    let blocks = store.column_partitions()[0].blocks();
    assert_eq!(blocks.len(), 2);
    drop(store);
    let mut bytes = std::fs::read(&blocks[0].path).expect("read");
    bytes[20] ^= 0xff;
    std::fs::write(&blocks[0].path, bytes).expect("write");
    let store = Store::open("columns_damage", dir.path(), columns()).expect("reopens");
    assert_eq!(store.damaged_partitions(), 1);
    assert_eq!(store.num_events(), 50);
    assert!(
        dir.path()
            .join("damaged")
            .read_dir()
            .expect("aside")
            .count()
            == 1
    );
    // A section damaged after opening is an error for a query that reads it, not a panic.
    let block = &store.column_partitions()[0].blocks()[0];
    let last_column = block.columns().last().expect("columns").name.clone();
    let mut bytes = std::fs::read(&block.path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&block.path, bytes).expect("write");
    assert!(store
        .search(&SearchRequest {
            query: Query::parse(&format!("{last_column}:*")).expect("q"),
            from: None,
            to: None,
            limit: 10,
            cursor: None,
        })
        .is_err());
}

#[test]
fn a_term_absent_from_a_blocks_filter_skips_the_block() {
    let events = events(400);
    let (_dir, store) = fill("columns_bloom", columns(), &events, 100);
    let blocks = store.column_partitions()[0].blocks();
    let may = |q: &str| scan::worth_reading(&Query::parse(q).expect(q), &blocks[0]).expect(q);
    assert!(may("took"));
    assert!(may("app:web"));
    assert!(may("http.status:401"));
    assert!(may("tags:b3"));
    assert!(may("ünïcode"));
    assert!(
        may("deep.a.b.c.d.e.f.g.h.i:bottom7"),
        "deeper than the filter looks"
    );
    assert!(!may("nosuchword"));
    assert!(!may("app:nosuchapp"));
    assert!(!may("took AND nosuchword"));
    assert!(may("took OR nosuchword"));
    assert!(may("NOT nosuchword"));
}

#[test]
fn retention_drops_whole_partitions_of_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        retention_age_secs: Some(2 * 3600),
        ..columns()
    };
    let store = Store::open("columns_retention", dir.path(), options).expect("opens");
    let hour = 3_600_000_000_000i64;
    let mut writer = store.writer();
    for h in 0..4 {
        writer
            .append(&events(10), ARRIVAL + h * hour)
            .expect("append");
        writer.commit().expect("commit");
    }
    let t0 = ARRIVAL / 1_000_000_000;
    let starts =
        |s: &Store| -> Vec<i64> { s.column_partitions().iter().map(|p| p.start_secs).collect() };
    assert_eq!(starts(&store), [t0, t0 + 3600, t0 + 7200, t0 + 10800]);
    let dropped = store.enforce_retention(t0 + 3 * 3600 + 600, Some(t0 + 10800));
    assert_eq!(dropped, [t0]);
    assert_eq!(starts(&store), [t0 + 3600, t0 + 7200, t0 + 10800]);
    assert!(!dir.path().join("20251126T000000Z").exists());
    assert_eq!(store.num_events(), 30);
    assert_eq!(page(&store, "", 100, None).total, 30);
}

#[test]
fn each_engine_leaves_the_others_partitions_alone() {
    let events = events(20);
    let (dir, store) = fill("columns_other_engine", columns(), &events, 20);
    drop(store);
    let tantivy = Store::open("columns_other_engine", dir.path(), tantivy()).expect("opens");
    assert_eq!(tantivy.num_events(), 0);
    assert_eq!(tantivy.damaged_partitions(), 0, "not taken for damage");
    drop(tantivy);
    let store = Store::open("columns_other_engine", dir.path(), columns()).expect("reopens");
    assert_eq!(store.num_events(), 20);
}

#[test]
fn a_block_that_cannot_be_written_fails_the_next_commit() {
    let (_dir, store) = fill("columns_lost", columns(), &events(10), 10);
    let partition = store.column_partitions()[0].clone();
    let mut writer = PartitionWriter::new(partition.clone());
    // A full block is written while appending; it fails (a file stands where its directory
    // was). The next commit must say so even though its own rows are written fine.
    let many: Vec<Event> = events(4).into_iter().cycle().take(MAX_BLOCK_ROWS).collect();
    std::fs::remove_dir_all(&partition.dir).expect("remove");
    std::fs::write(&partition.dir, b"in the way").expect("a file");
    writer.append(&many, ARRIVAL).expect("append");
    writer.finish_writing();
    std::fs::remove_file(&partition.dir).expect("remove the file");
    std::fs::create_dir_all(&partition.dir).expect("recreate");
    writer.append(&events(3), ARRIVAL).expect("append");
    let error = writer.commit().expect_err("rows were lost");
    assert!(
        error.to_string().contains("could not be written"),
        "{error}"
    );
    // Only that commit fails: the next one, with its own rows, succeeds.
    writer.append(&events(3), ARRIVAL).expect("append");
    writer.commit().expect("commit");
}

/// A block of `events` written directly, and its metadata.
fn write_block(dir: &std::path::Path, events: &[Event]) -> block::BlockMeta {
    let mut builder = Builder::new(0);
    for (i, event) in events.iter().enumerate() {
        builder.begin_row(ARRIVAL + i as i64);
        for (k, v) in event.fields.iter() {
            builder.field(k, v);
        }
        builder.end_row();
    }
    block::write(dir, builder.finish()).expect("write")
}

/// Events over several pages: a field first seen in the third page, and one that a row
/// holds twice.
fn paged_events() -> Vec<Event> {
    let mut events = events(3 * block::PAGE_ROWS + 123);
    for (i, event) in events.iter_mut().enumerate().skip(2 * block::PAGE_ROWS + 5) {
        let late = format!("{i} is a value long enough to page its column");
        event.fields.insert("late", Value::from(late.as_str()));
    }
    events
}

#[test]
fn rows_read_by_their_pages_equal_rows_read_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = paged_events();
    let meta = write_block(dir.path(), &events);
    let message = meta
        .columns()
        .iter()
        .find(|s| s.name == "message")
        .expect("message");
    let late = meta
        .columns()
        .iter()
        .find(|s| s.name == "late")
        .expect("late");
    for section in [message, late] {
        assert_eq!(meta.read_page(section, 1).expect("page").1, 4, "paged");
    }
    assert!(meta.read_page(late, 1).expect("page").0.is_empty());
    // Times decode whole and a page at a time, each page's differences counted from 0.
    let want_times: Vec<i64> = (0..events.len()).map(|i| ARRIVAL + i as i64).collect();
    assert_eq!(rows::times(&meta).expect("times"), want_times);
    let mut times = rows::Times::new(&meta);
    for row in (0..events.len()).rev().step_by(409) {
        assert_eq!(times.get(row).expect("time"), want_times[row]);
    }
    assert!(times.get(events.len()).is_err());
    let mut whole = Vec::new();
    let mut rows = rows::Rows::open(&meta).expect("opens");
    while let Some(row) = rows.next_row() {
        whole.push(row.expect("row").2);
    }
    assert_eq!(whole.len(), events.len());
    let page = block::PAGE_ROWS;
    let edges: Vec<usize> = (0..4)
        .flat_map(|p| [p * page, p * page + 1, (p + 1) * page - 1])
        .filter(|&r| r < events.len())
        .collect();
    for wanted in [
        (0..events.len()).collect::<Vec<_>>(),
        (0..events.len()).step_by(997).collect(),
        edges,
        vec![events.len() - 1],
        vec![2 * page + 4, 2 * page + 5, 3 * page + 7],
    ] {
        let got = fetch::rows_at(&meta, &wanted).expect("reads");
        let want: Vec<_> = wanted.iter().map(|&r| whole[r].clone()).collect();
        assert_eq!(got, want, "rows {:?}", &wanted[..wanted.len().min(8)]);
    }
    assert!(fetch::rows_at(&meta, &[5, 5]).is_err(), "a row twice");
    assert!(
        fetch::rows_at(&meta, &[events.len()]).is_err(),
        "past the end"
    );
}

/// Copies a directory tree (a fixture store into a test's own directory).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn blocks_written_before_pages_are_still_read() {
    // A block of the first layout, written by a build of 8e58132
    // (tests/corpus/store/make_columns_v1.py).
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/store");
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture.join("columns-v1"), dir.path());
    std::fs::remove_file(dir.path().join("EVENTS")).expect("not a partition");
    let store = Store::open("columns_v1", dir.path(), columns()).expect("opens");
    assert_eq!(store.num_events(), 4000);
    assert!(!store.column_partitions()[0].blocks()[0].is_paged());
    let everything: Vec<serde_json::Value> = all_pages(&store, "", 700)
        .into_iter()
        .map(|(_, event)| event)
        .collect();
    let seqs = |events: &[serde_json::Value]| -> Vec<i64> {
        let mut seqs: Vec<i64> = events
            .iter()
            .map(|e| e["seq"].as_i64().expect("seq"))
            .collect();
        seqs.sort_unstable();
        seqs
    };
    assert_eq!(seqs(&everything), (0..4000).collect::<Vec<i64>>());
    for q in [
        "level:error",
        "timeout",
        "\"talking to db\"",
        "user:u5",
        "u5",
        "http.path:/api/items/1*",
        "http.tags:b2",
        "status:>=500",
        "dur_ms:[10 TO 20]",
        "NOT app:web",
        "nosuchword",
    ] {
        let query = Query::parse(q).expect(q);
        let want: Vec<serde_json::Value> = everything
            .iter()
            .filter(|e| query.matches(&test_event(&e.to_string())))
            .cloned()
            .collect();
        let got: Vec<serde_json::Value> = all_pages(&store, q, 300)
            .into_iter()
            .map(|(_, event)| event)
            .collect();
        assert_eq!(seqs(&got), seqs(&want), "{q}");
        assert_eq!(page(&store, q, 10, None).total, want.len() as u64, "{q}");
    }
}

#[test]
fn words_whose_rows_lie_in_later_pages_of_the_index_are_found() {
    let n = 25_000;
    let events: Vec<Event> = (0..2 * n)
        .map(|i| test_event(&format!(r#"{{"message":"w{} and x{}"}}"#, i % n, i % 7)))
        .collect();
    let (_dir, store) = fill("columns_word_pages", columns(), &events, events.len());
    let block = &store.column_partitions()[0].blocks()[0];
    let pages = block
        .read_page(&block.sections[block::TOKENS_SECTION], 0)
        .expect("directory")
        .1;
    assert!(pages > 2, "{pages} pages");
    for q in ["w0", "w24999", "w12345", "x3", "\"w7 and x0\"", "w3 x3"] {
        let query = Query::parse(q).expect(q);
        let matching: Vec<&Event> = events.iter().filter(|e| query.matches(e)).collect();
        let got = page(&store, q, 10, None);
        assert_eq!(got.total, matching.len() as u64, "total of {q}");
        let newest = matching.last().expect("a match");
        assert_eq!(
            got.events[0]["message"],
            newest.fields.get("message").expect("message").to_text(),
            "newest of {q}"
        );
    }
}

#[test]
fn times_inside_values_are_read_with_their_rows_time() {
    // A time in a field is stored relative to its row's: a column walk must read that
    // row's time for it (and only for it).
    let n = block::PAGE_ROWS + 1000;
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let mut event = test_event(&format!(r#"{{"message":"m{i}","n":{i}}}"#));
            let seen = Value::Timestamp(ARRIVAL + (i as i64) * 1_000_000_007);
            event.fields.insert("seen", seen.clone());
            event
                .fields
                .insert("pair", Value::Array(vec![Value::from("x"), seen]));
            event
        })
        .collect();
    let (_dir, store) = fill("columns_times_in_values", columns(), &events, n);
    for i in [0, 17, block::PAGE_ROWS - 1, block::PAGE_ROWS, n - 1] {
        let text = events[i].fields.get("seen").expect("seen").to_text();
        for q in [format!("seen:\"{text}\""), format!("pair:\"{text}\"")] {
            let query = Query::parse(&q).expect("parses");
            assert_eq!(events.iter().filter(|e| query.matches(e)).count(), 1, "{q}");
            let got = page(&store, &q, 10, None);
            assert_eq!(got.total, 1, "{q}");
            assert_eq!(got.events[0]["n"], i as i64, "{q}");
        }
    }
}

#[test]
fn auto_keeps_the_engine_a_store_was_written_with_and_starts_new_stores_on_columns() {
    let auto = || StoreOptions {
        engine: Engine::Auto,
        ..StoreOptions::default()
    };
    let fresh = tempfile::tempdir().expect("tempdir");
    let store = Store::open("auto_fresh", fresh.path(), auto()).expect("opens");
    assert_eq!(store.engine(), Engine::Columns);
    let events = events(50);
    for (options, engine) in [(tantivy(), Engine::Tantivy), (columns(), Engine::Columns)] {
        let (dir, written) = fill("auto_existing", options, &events, 25);
        drop(written);
        let store = Store::open("auto_existing", dir.path(), auto()).expect("reopens");
        assert_eq!(store.engine(), engine);
        assert_eq!(store.num_events(), 50, "{engine:?}");
    }
}

#[test]
fn histograms_and_top_values_answer_as_the_tantivy_engine_does() {
    use crate::store::search::{HistogramRequest, TopRequest};
    let events = events(3000);
    let (_a, reference) = fill("aggregate_reference", tantivy(), &events, 700);
    let (_b, store) = fill("aggregate_answers", columns(), &events, 700);
    let (first, last) = store.time_range().expect("a time range");
    assert_eq!(reference.time_range(), Some((first, last)));
    let interval = ((last - first) / 7).max(1);
    // The whole range, and one cutting blocks in two (blocks counted row by row).
    for (from, to) in [(first, last + 1), (first + interval, last - interval)] {
        for q in ["", "app:web", "took", "NOT level:error"] {
            for split in [
                None,
                Some("level"),
                Some("app"),
                Some("req_id"),
                Some("http.status"),
            ] {
                let request = HistogramRequest {
                    query: Query::parse(q).expect(q),
                    from,
                    to,
                    interval,
                    split: split.map(str::to_string),
                    split_limit: 100,
                };
                let want = reference.histogram(&request).expect("histogram");
                let got = store.histogram(&request).expect("histogram");
                assert_eq!(got, want, "q={q:?} split={split:?} from={from} to={to}");
            }
            for field in [
                "level",
                "app",
                "status",
                "req_id",
                "tags",
                "http.status",
                "ok",
            ] {
                for (from, to) in [(None, None), (Some(from), Some(to))] {
                    let request = TopRequest {
                        query: Query::parse(q).expect(q),
                        field: field.into(),
                        from,
                        to,
                        limit: 1000,
                    };
                    let want = reference.top(&request).expect("top");
                    let got = store.top(&request).expect("top");
                    assert_eq!(got, want, "q={q:?} field={field} from={from:?} to={to:?}");
                }
            }
        }
    }
}
