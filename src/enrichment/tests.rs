use std::collections::BTreeMap;
use std::time::Instant;

use super::csv::CsvTableConfig;
use super::geoip::GeoipTableConfig;
use super::*;
use crate::event::Value;

fn csv_config(file: &Path, reload_interval_secs: u64) -> CsvTableConfig {
    CsvTableConfig {
        file: file.to_path_buf(),
        key: "app".into(),
        delimiter: ',',
        reload_interval_secs,
        max_bytes: 1 << 20,
    }
}

fn field(record: &Record, name: &str) -> Option<String> {
    record.get(name).and_then(Value::as_str).map(str::to_string)
}

fn owner(handle: &TableHandle, app: &str) -> Option<String> {
    field(&handle.get(app)?, "owner")
}

const OWNERS: &str = "app,owner,team\nweb,ann,front\napi,bob,back\nweb,zed,dup\njobs,bob,back\n";

#[test]
fn csv_lookups_hit_and_miss() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owners.csv");
    std::fs::write(&file, OWNERS).unwrap();
    let handle = TableHandle::new("csv_lookups");
    assert_eq!(handle.get("web"), None, "empty until opened");
    handle.open(&csv_config(&file, 0)).unwrap();
    let web = handle.get("web").unwrap();
    assert_eq!(
        field(&web, "owner").as_deref(),
        Some("ann"),
        "the first row of a key"
    );
    assert_eq!(field(&web, "team").as_deref(), Some("front"));
    assert_eq!(field(&web, "app").as_deref(), Some("web"));
    assert_eq!(handle.get("nope"), None);
    assert_eq!(handle.get(""), None);

    let mut tables = Tables::default();
    tables.insert(handle);
    let find = |conditions: &[(&str, &str)]| {
        get_enrichment_table_record(&tables, "csv_lookups", conditions)
            .map(|r| field(&r, "app").unwrap_or_default())
    };
    assert_eq!(find(&[("app", "api")]), Ok("api".into()));
    assert_eq!(
        find(&[("team", "back"), ("app", "jobs")]),
        Ok("jobs".into())
    );
    assert_eq!(find(&[("team", "back")]), Err(LookupError::Ambiguous));
    assert_eq!(find(&[("team", "none")]), Err(LookupError::NotFound));
    assert_eq!(
        find(&[("color", "red")]),
        Err(LookupError::UnsupportedCondition("color".into()))
    );
    assert_eq!(
        get_enrichment_table_record(&tables, "missing", &[("app", "web")]).err(),
        Some(LookupError::UnknownTable("missing".into()))
    );
}

#[test]
fn csv_files_that_cannot_be_loaded_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.csv");
    let cases = [
        ("owner,team\nann,front\n", "no column `app`"),
        ("app,app\nweb,web\n", "empty or repeated"),
        ("app,owner\nweb,ann,extra\n", "found record with 3 fields"),
    ];
    for (text, expected) in cases {
        std::fs::write(&file, text).unwrap();
        let error = csv_config(&file, 0).load().unwrap_err().to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
    let big = format!("app,owner\n{}", "web,ann\n".repeat(200_000));
    std::fs::write(&file, big).unwrap();
    let error = csv_config(&file, 0).load().unwrap_err();
    assert!(matches!(error, LoadError::TooLarge { .. }), "{error}");
    let missing = csv_config(&dir.path().join("none.csv"), 0)
        .load()
        .unwrap_err();
    assert!(matches!(missing, LoadError::Read { .. }), "{missing}");
}

#[test]
fn a_broken_file_keeps_the_old_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owners.csv");
    std::fs::write(&file, OWNERS).unwrap();
    let config = csv_config(&file, 0);
    let handle = TableHandle::new("csv_broken");
    handle.open(&config).unwrap();
    let generation = handle.generation();
    std::fs::write(&file, "owner\nann\n").unwrap();
    assert!(!handle.reload(&config));
    assert_eq!(owner(&handle, "web").as_deref(), Some("ann"));
    assert_eq!(
        handle.generation(),
        generation,
        "caches keep what they hold"
    );
    let count = |result| {
        telemetry::counter_value(
            "enrichment_table_reloads_total",
            &[("table", "csv_broken"), ("result", result)],
        )
    };
    assert_eq!((count("ok"), count("failed")), (0, 1));
    std::fs::write(&file, "app,owner\nweb,cy\n").unwrap();
    assert!(handle.reload(&config));
    assert_eq!(owner(&handle, "web").as_deref(), Some("cy"));
    assert_eq!(owner(&handle, "api"), None);
    assert!(handle.generation() > generation);
    assert_eq!((count("ok"), count("failed")), (1, 1));
}

/// Polls `condition` until it holds or 20 s pass.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_changed_file_is_reloaded_and_sighup_forces_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("owners.csv");
    std::fs::write(&file, OWNERS).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();

    let polled: Arc<dyn Loader> = Arc::new(csv_config(&file, 1));
    let handle = TableHandle::new("csv_watched");
    handle.open(&*polled).unwrap();
    let watcher = tokio::spawn(handle.clone().watch(polled, stop.clone()));
    // A different length: the change shows even on a file system with coarse mtimes.
    std::fs::write(&file, "app,owner\nweb,dee\n").unwrap();
    eventually("the changed file", || {
        owner(&handle, "web").as_deref() == Some("dee")
    })
    .await;

    // Reloading only on SIGHUP: a change is not looked for, the signal reloads.
    let other = dir.path().join("other.csv");
    std::fs::write(&other, OWNERS).unwrap();
    let on_signal: Arc<dyn Loader> = Arc::new(csv_config(&other, 0));
    let signalled = TableHandle::new("csv_signalled");
    signalled.open(&*on_signal).unwrap();
    let signal_watcher = tokio::spawn(signalled.clone().watch(on_signal, stop.clone()));
    std::fs::write(&other, "app,owner\nweb,eve\n").unwrap();
    assert_eq!(owner(&signalled, "web").as_deref(), Some("ann"));
    request_reload();
    eventually("the reload SIGHUP asked for", || {
        owner(&signalled, "web").as_deref() == Some("eve")
    })
    .await;

    stop.cancel();
    watcher.await.unwrap();
    signal_watcher.await.unwrap();
}

/// A City database and an ASN database written by `mmdb-writer`, read back through the
/// table.
#[test]
fn geoip_looks_up_ipv4_and_ipv6_addresses() {
    #[derive(serde::Serialize)]
    struct Names {
        names: BTreeMap<&'static str, &'static str>,
    }
    #[derive(serde::Serialize)]
    struct Location {
        latitude: f64,
        longitude: f64,
        time_zone: &'static str,
    }
    #[derive(serde::Serialize)]
    struct City {
        city: Names,
        country: serde_json::Value,
        continent: serde_json::Value,
        location: Location,
        subdivisions: Vec<serde_json::Value>,
    }
    let city = |name, country_code, country, lat, lon| City {
        city: Names {
            names: [("en", name), ("de", "x")].into(),
        },
        country: serde_json::json!({ "iso_code": country_code, "names": { "en": country } }),
        continent: serde_json::json!({ "code": "EU" }),
        location: Location {
            latitude: lat,
            longitude: lon,
            time_zone: "Europe/London",
        },
        subdivisions: vec![serde_json::json!({ "iso_code": "ENG", "names": { "en": "England" } })],
    };
    let mut writer = mmdb_writer::Writer::new("GeoIP2-City");
    writer
        .insert(
            "81.2.69.0/24".parse::<ipnet::IpNet>().unwrap(),
            &city("London", "GB", "United Kingdom", 51.5142, -0.0931),
        )
        .unwrap();
    writer
        .insert(
            "2a02:cf40::/32".parse::<ipnet::IpNet>().unwrap(),
            &city("Berlin", "DE", "Germany", 52.52, 13.40),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("city.mmdb");
    std::fs::write(&file, writer.to_bytes().unwrap()).unwrap();
    let config = GeoipTableConfig {
        file: file.clone(),
        locale: "en".into(),
        reload_interval_secs: 0,
        max_bytes: 1 << 20,
    };
    config.validate().unwrap();
    let handle = TableHandle::new("geo");
    handle.open(&config).unwrap();

    let london = handle.get("81.2.69.142").expect("an IPv4 hit");
    let got: serde_json::Value = serde_json::to_value(&*london).unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "city_name": "London",
            "continent_code": "EU",
            "country_code": "GB",
            "country_name": "United Kingdom",
            "region_code": "ENG",
            "region_name": "England",
            "latitude": 51.5142,
            "longitude": -0.0931,
            "timezone": "Europe/London",
        })
    );
    let berlin = handle.get("2a02:cf40::17").expect("an IPv6 hit");
    assert_eq!(field(&berlin, "city_name").as_deref(), Some("Berlin"));
    assert_eq!(field(&berlin, "country_code").as_deref(), Some("DE"));
    assert_eq!(
        field(
            &handle.get("::ffff:81.2.69.1").expect("IPv4-mapped"),
            "city_name"
        )
        .as_deref(),
        Some("London")
    );
    for miss in ["81.2.70.1", "2a03::1", "not an address", ""] {
        assert_eq!(handle.get(miss), None, "{miss}");
    }
    let mut tables = Tables::default();
    tables.insert(handle);
    assert!(get_enrichment_table_record(&tables, "geo", &[("ip", "81.2.69.1")]).is_ok());
    assert_eq!(
        get_enrichment_table_record(&tables, "geo", &[("addr", "81.2.69.1")]).err(),
        Some(LookupError::UnsupportedCondition("addr".into()))
    );

    // Another kind of database: its record as stored.
    let mut asn = mmdb_writer::Writer::new("GeoLite2-ASN");
    asn.insert(
        "81.2.69.0/24".parse::<ipnet::IpNet>().unwrap(),
        &serde_json::json!({ "autonomous_system_number": 20712, "autonomous_system_organization": "Andrews & Arnold" }),
    )
    .unwrap();
    std::fs::write(&file, asn.to_bytes().unwrap()).unwrap();
    let asn_table = TableHandle::new("asn");
    asn_table.open(&config).unwrap();
    let record = asn_table.get("81.2.69.3").unwrap();
    assert_eq!(
        record.get("autonomous_system_number"),
        Some(&Value::Integer(20712))
    );

    std::fs::write(&file, b"not a database").unwrap();
    assert!(matches!(config.load(), Err(LoadError::Invalid { .. })));
}
