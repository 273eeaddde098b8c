//! Where a store's bytes go, per field and per kind of structure (issue 18's "reported per
//! field class"): a measuring tool, run by hand on a store a bench left behind:
//!
//! ```text
//! SLUICE_STORE_DIR=/tmp/bench/kept/store cargo test --release --test it store_usage -- --ignored --nocapture
//! ```
//!
//! It reads every partition with tantivy's own accounting and prints bytes per event for
//! each field's term dictionary, postings, positions, columns (fast fields) and norms, and
//! for the document store (`_source`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use tantivy::Index;

#[test]
#[ignore = "a measuring tool: needs SLUICE_STORE_DIR"]
fn bytes_per_event_by_field_and_structure() {
    let dir = PathBuf::from(std::env::var("SLUICE_STORE_DIR").expect("SLUICE_STORE_DIR"));
    let mut rows: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let (mut docs, mut total) = (0u64, 0u64);
    for entry in std::fs::read_dir(&dir).expect("the store directory") {
        let path = entry.expect("an entry").path();
        if !path.join("meta.json").exists() {
            continue;
        }
        let index = Index::open_in_dir(&path).expect("a partition");
        let searcher = index.reader().expect("a reader").searcher();
        let usage = searcher.space_usage().expect("space usage");
        total += usage.total().get_bytes();
        for segment in usage.segments() {
            docs += u64::from(segment.num_docs());
            let kinds = [
                ("terms", segment.termdict()),
                ("postings", segment.postings()),
                ("positions", segment.positions()),
                ("columns", segment.fast_fields()),
                ("norms", segment.fieldnorms()),
            ];
            for (kind, per_field) in kinds {
                for field in per_field.fields() {
                    let key = (field.field_name().to_string(), kind);
                    *rows.entry(key).or_default() += field.total().get_bytes();
                    // A string column is a dictionary of its values and their ordinals.
                    if let Some(dictionary) = field.dictionary_num_bytes() {
                        let key = (field.field_name().to_string(), "column's dictionary");
                        *rows.entry(key).or_default() += dictionary.get_bytes();
                    }
                }
            }
            let store = segment.store().total().get_bytes();
            *rows.entry(("_source".into(), "doc store")).or_default() += store;
        }
    }
    assert!(docs > 0, "no events under {}", dir.display());
    println!(
        "{docs} events, {:.1} bytes per event in all",
        total as f64 / docs as f64
    );
    let mut by_size: Vec<_> = rows.into_iter().filter(|(_, bytes)| *bytes > 0).collect();
    by_size.sort_by_key(|row| std::cmp::Reverse(row.1));
    for ((field, kind), bytes) in by_size {
        println!("{field:>12} {kind:<20} {:>7.2}", bytes as f64 / docs as f64);
    }
}

/// The same for a store of the column engine: bytes per event of each section (field
/// columns, the times, the rows' shapes, the bloom filters), over every block.
#[test]
#[ignore = "a measuring tool: needs SLUICE_STORE_DIR"]
fn bytes_per_event_by_section_on_columns() {
    use sluice::store::{Engine, Store, StoreOptions};
    let dir = PathBuf::from(std::env::var("SLUICE_STORE_DIR").expect("SLUICE_STORE_DIR"));
    let options = StoreOptions {
        engine: Engine::Columns,
        ..StoreOptions::default()
    };
    let store = Store::open("usage", &dir, options).expect("the store");
    let events = store.num_events();
    assert!(events > 0, "no events under {}", dir.display());
    println!(
        "{events} events, {:.1} bytes per event in all",
        store.disk_bytes() as f64 / events as f64
    );
    let mut rows: BTreeMap<String, u64> = BTreeMap::new();
    for partition in store.column_partitions() {
        for (name, bytes) in partition.section_bytes() {
            *rows.entry(name).or_default() += bytes;
        }
    }
    let mut by_size: Vec<_> = rows.into_iter().collect();
    by_size.sort_by_key(|row| std::cmp::Reverse(row.1));
    for (name, bytes) in by_size {
        println!("{name:>20} {:>7.2}", bytes as f64 / events as f64);
    }
}
