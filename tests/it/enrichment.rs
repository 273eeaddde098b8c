//! Enrichment tables in a router process: a CSV table and a GeoIP database (written here
//! by `mmdb-writer`) looked up by `enrich`; SIGUSR1 reloads, and a broken file keeps the
//! table in use; a CSV table looked up by `remap` (`get_enrichment_table_record`) and
//! reloaded when its file changes.

use std::io::Write;

use crate::util::{read_lines, sluice_up, spawn_router, tempdir, TIMEOUT};

fn write_city_database(path: &std::path::Path) {
    let mut writer = mmdb_writer::Writer::new("GeoIP2-City");
    for (net, city, country) in [
        ("81.2.69.0/24", "London", "GB"),
        ("2a02:cf40::/32", "Berlin", "DE"),
    ] {
        writer
            .insert(
                net.parse::<ipnet::IpNet>().unwrap(),
                &serde_json::json!({
                    "city": { "names": { "en": city } },
                    "country": { "iso_code": country },
                }),
            )
            .unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

/// Replaces `path` atomically, as an operator should.
fn replace(path: &std::path::Path, text: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

#[test]
fn enrich_looks_up_csv_and_geoip_tables_and_sigusr1_reloads() {
    let dir = tempdir();
    let owners = dir.path().join("owners.csv");
    let geo = dir.path().join("city.mmdb");
    let out = dir.path().join("out.log");
    std::fs::write(&owners, "app,team\nweb,front\napi,back\n").unwrap();
    write_city_database(&geo);
    let config = dir.path().join("enrich.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[enrichment_tables.owners]
type = "csv"
file = "{owners}"
key = "app"
reload_interval_secs = 0

[enrichment_tables.geo]
type = "geoip"
file = "{geo}"

[sources.in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[transforms.e]
type = "enrich"
inputs = ["in"]
lookups = [
  {{ table = "owners", key = "{{{{ app }}}}", into = "owner" }},
  {{ table = "geo", key = "{{{{ ip }}}}", into = "geo" }},
]

[sinks.out]
type = "file"
inputs = ["e"]
path = "{out}"
"#,
            owners = owners.display(),
            geo = geo.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let mut router = spawn_router(sluice_up(&config));
    let address = router.address_of("in").expect("tcp address");
    let mut sent = 0;
    // Sends one event and returns it as the sink wrote it.
    let mut send = |line: &str| -> serde_json::Value {
        let mut tcp = std::net::TcpStream::connect(&address).unwrap();
        writeln!(tcp, "{line}").unwrap();
        drop(tcp);
        sent += 1;
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let lines = read_lines(&out);
            if lines.len() == sent {
                return serde_json::from_str(&lines[sent - 1]).unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "{lines:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    let first = send(r#"{"app":"web","ip":"81.2.69.142"}"#);
    assert_eq!(
        first["owner"],
        serde_json::json!({"app":"web","team":"front"})
    );
    assert_eq!(
        first["geo"],
        serde_json::json!({"city_name":"London","country_code":"GB"})
    );
    let v6 = send(r#"{"app":"nope","ip":"2a02:cf40::1"}"#);
    assert_eq!(v6["geo"]["city_name"], "Berlin");
    assert!(v6.get("owner").is_none(), "a miss sets nothing: {v6}");

    // A broken file: the reload fails, the old table stays.
    replace(&owners, "team\nfront\n");
    router.signal("-USR1");
    assert!(router.wait_for_log(&["enrichment table reload failed", "table=owners"]));
    assert_eq!(send(r#"{"app":"web"}"#)["owner"]["team"], "front");

    replace(&owners, "app,team\nweb,platform\n");
    router.signal("-USR1");
    assert!(router.wait_for_log(&["enrichment table reloaded", "table=owners"]));
    assert_eq!(send(r#"{"app":"web"}"#)["owner"]["team"], "platform");
    assert!(send(r#"{"app":"api"}"#).get("owner").is_none());

    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
}

#[test]
fn a_table_that_cannot_be_loaded_fails_the_start() {
    let dir = tempdir();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "[enrichment_tables.owners]\ntype = \"csv\"\nfile = \"{}\"\nkey = \"app\"\n[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
            dir.path().join("missing.csv").display()
        ),
    )
    .unwrap();
    let output = sluice_up(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("enrichment table `owners`") && stderr.contains("missing.csv"),
        "{stderr}"
    );
}

/// Sends each line over its own TCP connection and returns the events the file sink has
/// written once it holds `expected` of them.
fn send_and_read(
    address: &str,
    out: &std::path::Path,
    line: &str,
    expected: usize,
) -> Vec<serde_json::Value> {
    let mut tcp = std::net::TcpStream::connect(address).unwrap();
    writeln!(tcp, "{line}").unwrap();
    drop(tcp);
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let lines = read_lines(out);
        if lines.len() >= expected {
            return lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        assert!(std::time::Instant::now() < deadline, "{lines:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn remap_looks_records_up_and_sees_a_csv_table_reloaded_on_change() {
    let dir = tempdir();
    let owners = dir.path().join("owners.csv");
    let out = dir.path().join("out.log");
    std::fs::write(&owners, "app,team,tier\nweb,front,1\napi,back,2\n").unwrap();
    let config = dir.path().join("remap.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[enrichment_tables.owners]
type = "csv"
file = "{owners}"
key = "app"
reload_interval_secs = 1

[sources.in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[transforms.r]
type = "remap"
inputs = ["in"]
source = '''
row, err = get_enrichment_table_record("owners", {{"app": .app}})
if err == null {{ .team = row.team }} else {{ .lookup_error = err }}
back = get_enrichment_table_record("owners", {{"team": "back"}}) ?? {{}}
.tier = back.tier
'''

[sinks.out]
type = "file"
inputs = ["r"]
path = "{out}"
"#,
            owners = owners.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let mut router = spawn_router(sluice_up(&config));
    let address = router.address_of("in").expect("tcp address");
    let events = send_and_read(&address, &out, r#"{"app":"web"}"#, 1);
    assert_eq!(events[0]["team"], "front", "{:?}", events[0]);
    assert_eq!(
        events[0]["tier"], "2",
        "a lookup by a column other than the key"
    );
    let events = send_and_read(&address, &out, r#"{"app":"nope"}"#, 2);
    assert_eq!(
        events[1]["lookup_error"],
        "`get_enrichment_table_record` failed: no record matches"
    );
    assert!(events[1].get("team").is_none(), "{:?}", events[1]);

    // Changed on disk, no signal: the file's stamp is checked every second.
    replace(&owners, "app,team,tier\nweb,platform,1\nnope,found,3\n");
    assert!(router.wait_for_log(&["enrichment table reloaded", "table=owners"]));
    let events = send_and_read(&address, &out, r#"{"app":"web"}"#, 3);
    assert_eq!(events[2]["team"], "platform", "{:?}", events[2]);
    assert!(
        events[2]["tier"].is_null(),
        "no row of team back any more: {:?}",
        events[2]
    );
    let events = send_and_read(&address, &out, r#"{"app":"nope"}"#, 4);
    assert_eq!(events[3]["team"], "found", "{:?}", events[3]);

    router.signal("-TERM");
    let (status, log) = router.finish();
    assert!(status.success(), "{log}");
}

#[test]
fn a_remap_naming_a_table_the_pipeline_lacks_fails_validation() {
    let dir = tempdir();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[sources.in]\ntype = \"stdin\"\n[transforms.r]\ntype = \"remap\"\ninputs = [\"in\"]\nsource = '.o = get_enrichment_table_record(\"owners\", {\"app\": .app}) ?? null'\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"r\"]\n",
    )
    .unwrap();
    let output = std::process::Command::new(crate::util::sluice_bin())
        .arg("validate")
        .arg(&config)
        .output()
        .expect("sluice validate runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("transform `r`")
            && stderr.contains("no enrichment table `owners`")
            && stderr.contains("line 6, column 44"),
        "{stderr}"
    );
}
