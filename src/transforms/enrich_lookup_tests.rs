//! `enrich`'s lookups in enrichment tables.

use super::*;
use crate::enrichment::csv::CsvTableConfig;

use crate::event::test_event as event;

fn owners_table(dir: &std::path::Path, text: &str) -> (TableHandle, CsvTableConfig) {
    let file = dir.join("owners.csv");
    std::fs::write(&file, text).unwrap();
    let config = CsvTableConfig {
        file,
        key: "app".into(),
        delimiter: ',',
        reload_interval_secs: 0,
        max_bytes: 1 << 20,
    };
    let handle = TableHandle::new("owners");
    handle.open(&config).unwrap();
    (handle, config)
}

fn build(config: &str, tables: &Tables) -> Result<Enrich, FieldError> {
    let config: EnrichConfig = toml::from_str(config).unwrap_or_else(|e| panic!("{e}"));
    config.build_with_tables(&TransformContext { id: "e".into() }, tables)
}

fn run(enrich: &mut Enrich, input: &str) -> serde_json::Value {
    let mut out = Outputs::new(0);
    enrich.transform(event(input), &mut out);
    serde_json::to_value(&out.default_output()[0].fields).unwrap()
}

#[test]
fn lookups_set_the_record_on_a_hit_and_nothing_on_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, config) = owners_table(dir.path(), "app,owner\nweb,ann\napi,bob\n");
    let mut tables = Tables::default();
    tables.insert(handle.clone());
    let mut enrich = build(
        r#"lookups = [{ table = "owners", key = "{{ app }}", into = "meta.owner", cache_size = 2 }]"#,
        &tables,
    )
    .unwrap();
    let cases = [
        (
            r#"{"app":"web"}"#,
            serde_json::json!({"app":"web","meta":{"owner":{"app":"web","owner":"ann"}}}),
        ),
        (r#"{"app":"nope"}"#, serde_json::json!({"app":"nope"})),
        (r#"{"other":1}"#, serde_json::json!({"other":1})),
        (
            r#"{"app":"api"}"#,
            serde_json::json!({"app":"api","meta":{"owner":{"app":"api","owner":"bob"}}}),
        ),
        // Cached now, and still right.
        (
            r#"{"app":"web"}"#,
            serde_json::json!({"app":"web","meta":{"owner":{"app":"web","owner":"ann"}}}),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(run(&mut enrich, input), expected, "{input}");
    }
    assert!(enrich.lookups[0].cache.len() <= 2, "the cache is bounded");

    // A reload replaces what the cache remembered, misses included.
    std::fs::write(&config.file, "app,owner\nweb,cy\nnope,dee\n").unwrap();
    assert!(handle.reload(&config));
    assert_eq!(
        run(&mut enrich, r#"{"app":"web"}"#)["meta"]["owner"]["owner"],
        "cy"
    );
    assert_eq!(
        run(&mut enrich, r#"{"app":"nope"}"#)["meta"]["owner"]["owner"],
        "dee"
    );
}

#[test]
fn lookup_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, _) = owners_table(dir.path(), "app,owner\n");
    let mut tables = Tables::default();
    let none = build(
        r#"lookups = [{ table = "owners", key = "x", into = "o" }]"#,
        &tables,
    )
    .unwrap_err();
    assert_eq!(none.field, "lookups[0].table");
    assert!(none.message.contains("none is defined"), "{none:?}");
    tables.insert(handle);
    let cases = [
        (
            r#"{ table = "owner", key = "x", into = "o" }"#,
            "lookups[0].table",
            "expected one of: owners",
        ),
        (
            r#"{ table = "owners", key = "{{ x", into = "o" }"#,
            "lookups[0].key",
            "unclosed",
        ),
        (
            r#"{ table = "owners", key = "x", into = "a..b" }"#,
            "lookups[0].into",
            "invalid field path",
        ),
        (
            r#"{ table = "owners", key = "x", into = "o", cache_size = 0 }"#,
            "lookups[0].cache_size",
            "between",
        ),
    ];
    for (lookup, field, message) in cases {
        let err = build(&format!("lookups = [{lookup}]"), &tables).unwrap_err();
        assert_eq!(err.field, field, "{lookup}");
        assert!(err.message.contains(message), "{lookup}: {err:?}");
    }
}
