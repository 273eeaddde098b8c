//! The `s3` sink against a real S3 server (SeaweedFS on 127.0.0.1, `seaweedfs.rs`), read
//! back with an independent client (boto3): templated keys, every event exactly once in
//! gzip, zstd and plain objects, a multipart upload, kill -9 of the router losing nothing
//! acknowledged, an outage retried until delivered, a refusal dead-lettered.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice::pipeline::Pipeline;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::certs::issue;
use crate::seaweedfs::{seaweed_available, shared_seaweed, Seaweed, ACCESS_KEY, SECRET_KEY};
use crate::util::{counter, read_lines, sluice_bin, tempdir, wait_until, Router, TIMEOUT};

async fn send_lines(addr: SocketAddr, lines: impl IntoIterator<Item = String>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut data = String::new();
    for line in lines {
        data.push_str(&line);
        data.push('\n');
    }
    stream.write_all(data.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
}

/// The sink options every test shares: the server, its credentials, path-style addressing.
fn server_options(server: &Seaweed, bucket: &str) -> String {
    format!(
        r#"bucket = "{bucket}"
endpoint = "{endpoint}"
force_path_style = true
access_key_id = "{ACCESS_KEY}"
secret_access_key = "{SECRET_KEY}""#,
        endpoint = server.endpoint()
    )
}

fn sent(id: &str) -> u64 {
    counter("component_sent_events_total", id, None)
}

/// Three apps over two hours of event time, through three sinks (gzip NDJSON, zstd NDJSON,
/// uncompressed text): each object's key is `PREFIX/APP/YYYY/MM/DD/HH/` of its events,
/// and across the objects of a sink every event appears exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_once_under_their_templated_keys() {
    if !seaweed_available() {
        return;
    }
    let server = shared_seaweed();
    let bucket = "keys";
    server.create_bucket(bucket);
    let options = server_options(server, bucket);
    let router = Router::start(&format!(
        r#"
[sources.s3k_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[transforms.s3k_time]
type = "remap"
inputs = ["s3k_in"]
source = '''
.timestamp = parse_timestamp(.ts) ?? now()
del(.ts)
'''

[sinks.s3k_gz]
type = "s3"
inputs = ["s3k_time"]
{options}
key_prefix = "gz/{{{{ app }}}}/%Y/%m/%d/%H/"
batch = {{ max_bytes = 20000, timeout_secs = 1 }}

[sinks.s3k_zst]
type = "s3"
inputs = ["s3k_time"]
{options}
key_prefix = "zst/{{{{ app }}}}/%Y/%m/%d/%H/"
compression = "zstd"
batch = {{ max_bytes = 20000, timeout_secs = 1 }}

[sinks.s3k_txt]
type = "s3"
inputs = ["s3k_time"]
{options}
key_prefix = "txt/{{{{ app }}}}/%Y/%m/%d/%H/"
compression = "none"
encoding = "text"
"#
    ))
    .await;
    let apps = ["web", "db", "queue"];
    let n = 3000;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let app = apps[i % 3];
            let hour = 3 + (i * 2 / n);
            let ts = format!("2026-01-02T{hour:02}:{:02}:00Z", i % 60);
            serde_json::json!({ "message": format!("{app} event {i}"), "app": app, "ts": ts })
                .to_string()
        })
        .collect();
    send_lines(router.addr("s3k_in"), lines).await;
    for id in ["s3k_gz", "s3k_zst", "s3k_txt"] {
        // The text sink's objects time out (300 s by default) only at shutdown.
        if id != "s3k_txt" {
            wait_until(&format!("{id} stores every event"), || sent(id) == n as u64).await;
        }
    }
    router.stop().await;
    assert_eq!(sent("s3k_txt"), n as u64);
    assert!(counter("s3_objects_total", "s3k_gz", Some("max_bytes")) > 0);

    for (prefix, encoding, content_type) in [
        ("gz/", "gzip", "application/x-ndjson"),
        ("zst/", "zstd", "application/x-ndjson"),
        ("txt/", "", "text/plain; charset=utf-8"),
    ] {
        let objects = server.objects(bucket, prefix);
        let mut seen: HashMap<String, u32> = HashMap::new();
        let mut keys = BTreeMap::new();
        for object in &objects {
            assert_eq!(object.content_encoding, encoding, "{}", object.key);
            assert_eq!(object.content_type, content_type, "{}", object.key);
            let levels: Vec<&str> = object.key.split('/').collect();
            let (app, hour) = (levels[1], levels[5]);
            assert_eq!(&levels[2..5], ["2026", "01", "02"], "{}", object.key);
            *keys.entry(format!("{app}/{hour}")).or_insert(0) += 1;
            for line in object.lines() {
                let message = if encoding.is_empty() {
                    line
                } else {
                    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
                    assert_eq!(event["app"], app, "{}", object.key);
                    let ts = event["timestamp"].as_str().unwrap();
                    assert_eq!(&ts[11..13], hour, "{} holds {ts}", object.key);
                    event["message"].as_str().unwrap().to_string()
                };
                assert!(message.starts_with(app), "{message} in {}", object.key);
                *seen.entry(message).or_default() += 1;
            }
        }
        // Three apps times hours 03 and 04.
        assert_eq!(keys.len(), 6, "{prefix}: {keys:?}");
        assert_eq!(seen.len(), n, "{prefix}: events missing");
        assert!(seen.values().all(|&c| c == 1), "{prefix}: duplicates");
        if prefix == "txt/" {
            // Closed only by the shutdown: one object per prefix.
            assert_eq!(objects.len(), 6);
        } else {
            assert!(objects.len() > 6, "{prefix}: max_bytes closes objects");
        }
    }
}

/// An object larger than `multipart_part_bytes` goes up in parts, and reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_is_a_multipart_upload() {
    if !seaweed_available() {
        return;
    }
    let server = shared_seaweed();
    let bucket = "multipart";
    server.create_bucket(bucket);
    let options = server_options(server, bucket);
    let router = Router::start(&format!(
        r#"
[sources.s3m_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.s3m_out]
type = "s3"
inputs = ["s3m_in"]
{options}
key_prefix = "big/"
compression = "none"
encoding = "text"
multipart_part_bytes = 5242880
batch = {{ max_bytes = 12000000, timeout_secs = 300 }}
"#
    ))
    .await;
    // 11.4 MB: three parts of at most 5 MiB.
    let n = 60_000;
    let padding = "x".repeat(180);
    let lines: Vec<String> = (0..n).map(|i| format!("{i:08} {padding}")).collect();
    send_lines(router.addr("s3m_in"), lines.clone()).await;
    // The object is stored at shutdown, once the source has read everything.
    wait_until("the source reads every line", || {
        counter("component_received_events_total", "s3m_in", None) == n as u64
    })
    .await;
    router.stop().await;
    assert_eq!(sent("s3m_out"), n as u64);
    assert_eq!(counter("s3_multipart_uploads_total", "s3m_out", None), 1);
    let objects = server.objects(bucket, "big/");
    assert_eq!(objects.len(), 1);
    // S3 (and SeaweedFS) give a multipart object the ETag `"MD5-OF-PART-MD5S-PARTS"`.
    assert!(
        objects[0].etag.trim_matches('"').ends_with("-3"),
        "etag {}",
        objects[0].etag
    );
    assert_eq!(objects[0].lines(), lines);
}

/// S3 down: the sink retries (counted), acknowledges nothing meanwhile, and delivers every
/// event once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_while_the_server_is_down_then_delivers() {
    if !seaweed_available() {
        return;
    }
    let mut server = Seaweed::start();
    let bucket = "outage";
    server.create_bucket(bucket);
    let options = server_options(&server, bucket);
    let router = Router::start(&format!(
        r#"
[sources.s3o_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.s3o_out]
type = "s3"
inputs = ["s3o_in"]
{options}
key_prefix = "o/"
timeout_secs = 5
batch = {{ max_bytes = 10000, timeout_secs = 1 }}
retry = {{ initial_backoff_ms = 50, max_backoff_secs = 1 }}
"#
    ))
    .await;
    server.kill();
    let n = 500;
    send_lines(
        router.addr("s3o_in"),
        (0..n).map(|i| format!("outage event {i}")),
    )
    .await;
    wait_until("retries while down", || {
        counter("component_retries_total", "s3o_out", None) >= 3
    })
    .await;
    assert_eq!(sent("s3o_out"), 0, "nothing stored while down");
    server.restart();
    wait_until("delivery after the restart", || sent("s3o_out") == n).await;
    router.stop().await;
    let mut seen: Vec<String> = server
        .objects(bucket, "o/")
        .iter()
        .flat_map(|o| o.lines())
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(&l).unwrap();
            e["message"].as_str().unwrap().to_string()
        })
        .collect();
    seen.sort();
    let mut expected: Vec<String> = (0..n).map(|i| format!("outage event {i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

/// A refusal (wrong secret: 403) is not retried: the object's events go to dead-letter,
/// read back from the object with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_object_goes_to_dead_letter() {
    if !seaweed_available() {
        return;
    }
    let server = shared_seaweed();
    server.create_bucket("refused");
    let dir = tempdir();
    let letters = dir.path().join("letters.log");
    let router = Router::start(&format!(
        r#"
[sources.s3r_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.s3r_out]
type = "s3"
inputs = ["s3r_in"]
bucket = "refused"
endpoint = "{endpoint}"
force_path_style = true
access_key_id = "{ACCESS_KEY}"
secret_access_key = "not-the-secret"
compression = "zstd"
batch = {{ max_bytes = 1000000, timeout_secs = 1 }}

[sinks.s3r_letters]
type = "file"
inputs = ["s3r_out.dead_letter"]
path = "{letters}"
"#,
        endpoint = server.endpoint(),
        letters = letters.display()
    ))
    .await;
    send_lines(
        router.addr("s3r_in"),
        (0..10).map(|i| format!("refused {i}")),
    )
    .await;
    wait_until("dead letters", || read_lines(&letters).len() == 10).await;
    router.stop().await;
    let letters: Vec<serde_json::Value> = read_lines(&letters)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, letter) in letters.iter().enumerate() {
        assert_eq!(letter["message"], format!("refused {i}"));
        assert_eq!(letter["dead_letter"]["reason_code"], "fatal");
        let reason = letter["dead_letter"]["reason"].as_str().unwrap();
        assert!(reason.contains("403"), "{reason}");
    }
    assert_eq!(counter("component_retries_total", "s3r_out", None), 0);
    assert_eq!(sent("s3r_out"), 0);
}

/// kill -9 of a router whose stdin source acknowledges through a checkpoint, several times
/// while objects are being filled and stored: everything before the checkpoint is in the
/// bucket at each kill (acknowledgement came only after the store), and after a last run
/// to the end every line is there.
#[test]
fn kill_9_loses_nothing_acknowledged() {
    if !seaweed_available() {
        return;
    }
    let server = shared_seaweed();
    let bucket = "crash";
    server.create_bucket(bucket);
    let dir = tempdir();
    let input = dir.path().join("input.log");
    let n = 200_000u64;
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for i in 0..n {
            writeln!(w, "seq={i:010} payload=abcdefghijklmnopqrstuvwxyz").unwrap();
        }
    }
    let checkpoint = dir.path().join("state/in.checkpoint");
    let config = dir.path().join("crash.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.in]
type = "stdin"
checkpoint_path = "{checkpoint}"

[sinks.archive]
type = "s3"
inputs = ["in"]
{options}
key_prefix = "crash/"
encoding = "text"
batch = {{ max_bytes = 200000, timeout_secs = 1 }}
"#,
            checkpoint = checkpoint.display(),
            options = server_options(server, bucket),
        ),
    )
    .unwrap();
    let log = dir.path().join("router.log");
    let spawn = || -> Child {
        Command::new(sluice_bin())
            .args(["up", "--config"])
            .arg(&config)
            .stdin(std::fs::File::open(&input).unwrap())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
            .spawn()
            .unwrap()
    };
    let acknowledged = || -> u64 {
        std::fs::read_to_string(&checkpoint)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["offset"].as_u64())
            .unwrap_or(0)
    };
    let line_bytes = "seq=0000000000 payload=abcdefghijklmnopqrstuvwxyz\n".len() as u64;
    let stored = || -> HashMap<u64, u32> {
        let mut seen = HashMap::new();
        for object in server.objects(bucket, "crash/") {
            for line in object.lines() {
                let seq: u64 = line[4..14].parse().expect("seq");
                *seen.entry(seq).or_default() += 1;
            }
        }
        seen
    };
    let mut kills = 0;
    let mut last = 0;
    while kills < 3 {
        let mut child = spawn();
        // Kill once more has been acknowledged: objects are being filled and stored then.
        let deadline = Instant::now() + TIMEOUT;
        let mut finished = false;
        while acknowledged() <= last {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no progress: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        if finished {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        last = acknowledged();
        let acked_lines = last / line_bytes;
        let seen = stored();
        let lost = (0..acked_lines).filter(|i| !seen.contains_key(i)).count();
        assert_eq!(
            lost, 0,
            "kill {kills}: {lost} of {acked_lines} acknowledged lines missing"
        );
        println!("kill {kills}: {acked_lines} lines acknowledged, all stored");
    }
    let mut child = spawn();
    let deadline = Instant::now() + TIMEOUT * 4;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "final run did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "final run failed: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let seen = stored();
    let gaps = (0..n).filter(|i| !seen.contains_key(i)).count();
    let duplicates: u32 = seen.values().map(|c| c - 1).sum();
    println!("s3 crash test: kills={kills} lines={n} gaps={gaps} duplicates={duplicates}");
    assert_eq!(gaps, 0);
}

/// An https endpoint whose certificate a private CA signed: trusted through `tls.ca_file`;
/// without it the handshake fails and is retried, storing and acknowledging nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca() {
    if !seaweed_available() {
        return;
    }
    let (ca, ca_cert, ca_key) = issue(&["s3 test ca"], None);
    let (cert, _, _) = issue(&["127.0.0.1"], Some((&ca_cert, &ca_key)));
    let server = Seaweed::start_tls(&cert.cert_pem, &cert.key_pem);
    server.create_bucket("tls");
    let dir = tempdir();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    let common = format!(
        r#"bucket = "tls"
endpoint = "{endpoint}"
force_path_style = true
access_key_id = "{ACCESS_KEY}"
secret_access_key = "{SECRET_KEY}"
batch = {{ max_bytes = 1000000, timeout_secs = 1 }}
retry = {{ initial_backoff_ms = 50, max_backoff_secs = 1 }}"#,
        endpoint = server.https_endpoint()
    );
    let router = Router::start(&format!(
        r#"
[sources.s3t_in]
type = "tcp"
address = "127.0.0.1:0"

[sinks.s3t_trusted]
type = "s3"
inputs = ["s3t_in"]
{common}
key_prefix = "trusted/"
tls = {{ ca_file = "{ca_file}" }}

[sinks.s3t_untrusted]
type = "s3"
inputs = ["s3t_in"]
{common}
key_prefix = "untrusted/"
"#,
        ca_file = ca_file.display()
    ))
    .await;
    send_lines(router.addr("s3t_in"), (0..20).map(|i| format!("tls {i}"))).await;
    wait_until("the trusted sink stores", || sent("s3t_trusted") == 20).await;
    wait_until("the untrusted sink retries", || {
        counter("component_retries_total", "s3t_untrusted", None) >= 2
    })
    .await;
    assert_eq!(sent("s3t_untrusted"), 0);
    drop(router);
    let objects = server.objects("tls", "");
    assert!(objects.iter().all(|o| o.key.starts_with("trusted/")));
    let lines: usize = objects.iter().map(|o| o.lines().len()).sum();
    assert_eq!(lines, 20);
}

/// Options are checked when the pipeline loads, each error naming its field.
#[test]
fn config_errors_name_the_field() {
    let error = |options: &str| -> String {
        let toml = format!(
            "[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"s3\"\ninputs = [\"in\"]\n{options}\n"
        );
        match Pipeline::from_str("s3.toml", &toml, |_| None) {
            Ok(_) => String::new(),
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    };
    assert_eq!(error("bucket = \"logs\""), "");
    for (options, field) in [
        ("bucket = \"\"", "bucket"),
        ("bucket = \"a/b\"", "bucket"),
        ("bucket = \"b\"\nkey_prefix = \"/abs/\"", "key_prefix"),
        ("bucket = \"b\"\nkey_prefix = \"{{ app\"", "key_prefix"),
        ("bucket = \"b\"\nendpoint = \"ftp://x\"", "endpoint"),
        ("bucket = \"b\"\ncompression = \"lz4\"", "compression"),
        (
            "bucket = \"b\"\nmultipart_part_bytes = 1000",
            "multipart_part_bytes",
        ),
        ("bucket = \"b\"\nmax_open_objects = 0", "max_open_objects"),
        (
            "bucket = \"b\"\nbatch = { max_bytes = 0 }",
            "batch.max_bytes",
        ),
        ("bucket = \"b\"\naccess_key_id = \"k\"", "secret_access_key"),
    ] {
        let message = error(options);
        assert!(message.contains(field), "{options}: {message}");
    }
}
