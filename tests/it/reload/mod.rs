//! Hot reload under load (docs/reload.md): a router process fed by TCP connections, UDP and
//! HTTP at a steady rate is reloaded 20 times (a transform changed each time, a sink added
//! and removed, a route changed, one invalid file refused in the middle); every event must
//! arrive once, where the configuration it went through says, in order per sender. Also
//! SIGUSR1 reopening files, and the time a 50-component reload takes. `handoff.rs`: a
//! changed source keeps its socket.

mod handoff;

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    read_lines, sluice_bin, sluice_up, spawn_router, tempdir, RouterProcess, TIMEOUT,
};

const TCP_CONNECTIONS: usize = 3;
const RELOADS: u64 = 20;

/// Generation `gen` of the pipeline: `tag` stamps `gen` (so it changes every time),
/// `split` picks the events of TCP connection `gen % 3` (a changed route), and the sink
/// `extra` exists in odd generations only (added, removed).
fn pipeline(dir: &Path, gen: u64) -> String {
    let extra = if gen % 2 == 1 {
        format!(
            "[sinks.extra]\ntype = \"file\"\ninputs = [\"tag\"]\npath = \"{}\"\n",
            dir.join("extra.log").display()
        )
    } else {
        String::new()
    };
    format!(
        r#"
[api]
address = "127.0.0.1:0"

[sources.tcp]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[sources.udp]
type = "udp"
address = "127.0.0.1:0"
decoding = "json"

[sources.http]
type = "http"
address = "127.0.0.1:0"
decoding = "json"

[transforms.tag]
type = "remap"
inputs = ["tcp", "udp", "http"]
source = '.gen = {gen}'

[transforms.split]
type = "route"
inputs = ["tag"]
routes = {{ picked = 'conn == "tcp{picked}"' }}

[sinks.all]
type = "file"
inputs = ["tag"]
path = "{all}"

[sinks.picked]
type = "file"
inputs = ["split.picked"]
path = "{picked_path}"

{extra}
"#,
        picked = gen % 3,
        all = dir.join("all.log").display(),
        picked_path = dir.join("picked.log").display(),
    )
}

/// `sluice reload --url API`: exit status, stdout, stderr.
fn sluice_reload(api: &str) -> (bool, String, String) {
    let out = Command::new(sluice_bin())
        .args(["reload", "--url", api])
        .env_remove("SLUICE_TOKEN")
        .output()
        .expect("sluice reload runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (conn, seq, gen) of every line of a file sink's output.
fn events(path: &Path) -> Vec<(String, u64, u64)> {
    read_lines(path)
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["conn"].as_str().unwrap_or_default().to_string(),
                v["seq"].as_u64().expect("seq"),
                v["gen"].as_u64().expect("gen"),
            )
        })
        .collect()
}

/// Sends `{"conn":NAME,"seq":N}` lines at a steady rate until `stop`; returns how many.
fn spawn_sender(
    name: String,
    stop: Arc<AtomicBool>,
    send: impl FnMut(&[u8]) + Send + 'static,
) -> std::thread::JoinHandle<u64> {
    let mut send = send;
    std::thread::spawn(move || {
        let mut seq = 0;
        while !stop.load(Ordering::Relaxed) {
            // Five events every 2 ms: about 2,500 events/s per sender.
            let mut chunk = Vec::new();
            for _ in 0..5 {
                writeln!(chunk, r#"{{"conn":"{name}","seq":{seq}}}"#).unwrap();
                seq += 1;
            }
            send(&chunk);
            std::thread::sleep(Duration::from_millis(2));
        }
        seq
    })
}

fn http_post(address: &str, body: &[u8]) {
    http_post_as(address, "application/x-ndjson", body)
}

/// Posts `body` as `content_type` on a new connection; panics unless answered 200.
fn http_post_as(address: &str, content_type: &str, body: &[u8]) {
    let mut stream = std::net::TcpStream::connect(address).expect("http connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "POST /v1/logs HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut status = String::new();
    std::io::BufReader::new(&mut stream)
        .read_line(&mut status)
        .expect("http answer");
    assert!(status.contains(" 200 "), "http source answered {status}");
    let _ = stream.read_to_end(&mut Vec::new());
}

fn metric(api: &str, name: &str) -> u64 {
    let mut stream = std::net::TcpStream::connect(api).expect("api");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find(|l| {
            l.strip_prefix("sluice_")
                .is_some_and(|l| l.starts_with(name))
        })
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

/// Polls `condition` every 5 ms until it holds; panics after [`TIMEOUT`].
fn wait_blocking(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn start(dir: &Path, config: &Path) -> (RouterProcess, String) {
    std::fs::write(config, pipeline(dir, 0)).unwrap();
    let router = spawn_router(sluice_up(config));
    let api = router.address_of("api").expect("api address");
    (router, api)
}

#[test]
fn twenty_reloads_under_load_lose_nothing_and_route_by_the_configuration_in_force() {
    let dir = tempdir();
    let config = dir.path().join("pipeline.toml");
    let (router, api) = start(dir.path(), &config);
    let tcp = router.address_of("tcp").expect("tcp address");
    let udp = router.address_of("udp").expect("udp address");
    let http = router.address_of("http").expect("http address");

    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for i in 0..TCP_CONNECTIONS {
        let mut stream = std::net::TcpStream::connect(&tcp).expect("tcp connect");
        senders.push(spawn_sender(format!("tcp{i}"), stop.clone(), move |b| {
            stream
                .write_all(b)
                .expect("the tcp connection stays open across reloads")
        }));
    }
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(&udp).unwrap();
    senders.push(spawn_sender("udp".into(), stop.clone(), move |b| {
        for line in b.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            socket.send(line).expect("udp send");
        }
    }));
    senders.push(spawn_sender("http".into(), stop.clone(), move |b| {
        http_post(&http, b)
    }));

    let all = dir.path().join("all.log");
    let mut took = Vec::new();
    for gen in 1..=RELOADS {
        // Let events flow under each generation.
        let before = read_lines(&all).len();
        wait_blocking("events under the current generation", || {
            read_lines(&all).len() > before + 200
        });
        if gen == RELOADS / 2 {
            // An invalid file in the middle: refused, reported, nothing changes.
            let invalid = pipeline(dir.path(), gen).replace("\"remap\"", "\"no_such_type\"");
            std::fs::write(&config, invalid).unwrap();
            let (ok, _, stderr) = sluice_reload(&api);
            assert!(!ok, "an invalid pipeline must make `sluice reload` fail");
            assert!(
                stderr.contains("no_such_type"),
                "the refusal says why: {stderr}"
            );
            assert_eq!(metric(&api, "config_reload_failures_total"), 1);
        }
        std::fs::write(&config, pipeline(dir.path(), gen)).unwrap();
        if gen == 3 {
            // One reload by signal; the log says when it is applied.
            router.signal("-HUP");
            wait_blocking("the reload SIGHUP asked for", || {
                metric(&api, "config_reloads_total") == gen
            });
            continue;
        }
        let (ok, stdout, stderr) = sluice_reload(&api);
        assert!(ok, "reload {gen} applied: {stdout} {stderr}");
        let answer: Value = serde_json::from_str(stdout.trim()).expect("json answer");
        assert!(answer["changed"].to_string().contains("tag"), "{answer}");
        took.push(answer["took_ms"].as_f64().unwrap());
    }
    assert_eq!(metric(&api, "config_reloads_total"), RELOADS);
    assert_eq!(metric(&api, "config_reload_failures_total"), 1);
    let extra_before_last = events(&dir.path().join("extra.log")).len();

    stop.store(true, Ordering::Relaxed);
    let sent: Vec<u64> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    let total: u64 = sent.iter().sum();
    wait_blocking("every event in the `all` sink", || {
        read_lines(&all).len() as u64 >= total
    });
    router.signal("-TERM");
    let (status, _) = router.finish();
    assert!(status.success());

    // Every event once, in order per sender, generations never going back.
    let all = events(&all);
    assert_eq!(all.len() as u64, total, "no event lost or duplicated");
    let names: Vec<String> = (0..TCP_CONNECTIONS)
        .map(|i| format!("tcp{i}"))
        .chain(["udp".to_string(), "http".to_string()])
        .collect();
    for (name, sent) in names.iter().zip(&sent) {
        let mine: Vec<&(String, u64, u64)> = all.iter().filter(|e| &e.0 == name).collect();
        let seqs: Vec<u64> = mine.iter().map(|e| e.1).collect();
        assert_eq!(
            seqs,
            (0..*sent).collect::<Vec<_>>(),
            "{name}: every event, in order"
        );
        assert!(
            mine.windows(2).all(|w| w[0].2 <= w[1].2),
            "{name}: generations in order"
        );
    }
    let gens: std::collections::BTreeSet<u64> = all.iter().map(|e| e.2).collect();
    assert_eq!(
        gens,
        (0..=RELOADS).collect(),
        "events went through every generation"
    );
    // The route of an event's generation picked it, and only it.
    let picked = events(&dir.path().join("picked.log"));
    let expected: Vec<_> = all
        .iter()
        .filter(|e| e.0 == format!("tcp{}", e.2 % 3))
        .cloned()
        .collect();
    let mut sorted = picked.clone();
    sorted.sort();
    let mut expected_sorted = expected;
    expected_sorted.sort();
    assert_eq!(sorted, expected_sorted, "routed by the generation in force");
    // The sink present in odd generations got exactly their events.
    let mut extra = events(&dir.path().join("extra.log"));
    assert!(extra_before_last > 0);
    extra.sort();
    let mut odd: Vec<_> = all.iter().filter(|e| e.2 % 2 == 1).cloned().collect();
    odd.sort();
    assert_eq!(
        extra, odd,
        "an added sink gets its generations' events, a removed one drains"
    );
    took.sort_by(f64::total_cmp);
    println!(
        "reloads applied in {:.1} ms median, {:.1} ms max ({} reloads, 3-component change)",
        took[took.len() / 2],
        took[took.len() - 1],
        took.len()
    );
}

#[test]
fn sigusr1_and_post_reopen_make_file_sinks_reopen_their_files() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\naddress = \"127.0.0.1:0\"\n\n[sources.tcp]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"tcp\"]\npath = \"{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let mut router = spawn_router(sluice_up(&config));
    let api = router.address_of("api").unwrap();
    let mut tcp = std::net::TcpStream::connect(router.address_of("tcp").unwrap()).unwrap();
    let rotated = dir.path().join("out.log.1");
    for (round, reopen) in ["signal", "api"].iter().enumerate() {
        writeln!(tcp, "before {round}").unwrap();
        wait_blocking("the first line", || {
            out.exists() && read_lines(&out).len() == 1
        });
        std::fs::rename(&out, &rotated).unwrap();
        if *reopen == "signal" {
            router.signal("-USR1");
            assert!(router.wait_for_log(&["sigusr1"]));
        } else {
            let (ok, _, stderr) = {
                let out = Command::new("curl")
                    .args(["-sf", "-X", "POST", &format!("http://{api}/v1/reopen")])
                    .output()
                    .expect("curl");
                (
                    out.status.success(),
                    (),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            };
            assert!(ok, "POST /v1/reopen: {stderr}");
        }
        writeln!(tcp, "after {round}").unwrap();
        wait_blocking("the line after reopening in a new file", || {
            read_lines(&out)
                .iter()
                .any(|l| l.contains(&format!("after {round}")))
        });
        assert_eq!(
            read_lines(&rotated).len(),
            1,
            "the rotated file kept its line"
        );
        std::fs::remove_file(&rotated).unwrap();
        std::fs::remove_file(&out).unwrap();
        // The next round's first line goes to a file reopened again.
        router.signal("-USR1");
        assert!(router.wait_for_log(&["sigusr1"]));
    }
    // SIGHUP no longer reopens: it reloads (here nothing changed).
    router.signal("-HUP");
    assert!(router.wait_for_log(&["reload applied"]));
}

/// 50 components: a source, 24 transforms in a chain, 25 sinks; one transform in the middle
/// changes. The time the reload took is what the router reports.
#[test]
fn a_fifty_component_reload_applies_quickly() {
    let dir = tempdir();
    let config = dir.path().join("pipeline.toml");
    let write = |gen: u64| {
        let mut text = String::from(
            "[api]\naddress = \"127.0.0.1:0\"\n\n[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\ndecoding = \"json\"\n\n",
        );
        for i in 0..24 {
            let input = if i == 0 {
                "in".to_string()
            } else {
                format!("t{}", i - 1)
            };
            let value = if i == 12 { gen } else { 0 };
            text.push_str(&format!(
                "[transforms.t{i}]\ntype = \"remap\"\ninputs = [\"{input}\"]\nsource = '.f{i} = {value}'\n\n"
            ));
        }
        for i in 0..25 {
            text.push_str(&format!(
                "[sinks.s{i}]\ntype = \"blackhole\"\ninputs = [\"t{}\"]\n\n",
                i % 24
            ));
        }
        std::fs::write(&config, text).unwrap();
    };
    write(0);
    let mut router = spawn_router(sluice_up(&config));
    let api = router.address_of("api").unwrap();
    let mut took = Vec::new();
    for gen in 1..=5 {
        write(gen);
        let (ok, stdout, stderr) = sluice_reload(&api);
        assert!(ok, "{stdout} {stderr}");
        let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(answer["changed"], serde_json::json!(["t12"]));
        assert_eq!(answer["unchanged"], 49);
        took.push(answer["took_ms"].as_f64().unwrap());
    }
    assert!(router.wait_for_log(&["reload applied in"]));
    took.sort_by(f64::total_cmp);
    println!(
        "50-component reload applied in {:.1} ms (median of 5; max {:.1} ms)",
        took[2], took[4]
    );
    // Includes reading and checking the file; a debug build on a loaded machine.
    assert!(took[2] < 100.0, "50-component reload took {took:?} ms");
}

/// An alert rule untouched by a reload keeps its window: the count goes on from where it
/// was. Applied in process through `RunningTopology::reloader`.
#[tokio::test]
async fn an_unrelated_change_keeps_an_alert_rules_window() {
    use tokio::io::AsyncWriteExt;
    let dir = tempdir();
    let config = |extra: &str| {
        format!(
            r#"
[api]
address = "127.0.0.1:0"

[sources.in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[alerts.errors]
inputs = ["in"]
condition = 'level == "error"'
group_by = ["app"]
kind = "threshold"
window_secs = 600
threshold = 2
state_path = "{dir}/errors.json"

[sinks.alerts_out]
type = "blackhole"
inputs = ["errors"]
{extra}
"#,
            dir = dir.path().display()
        )
    };
    let router = crate::util::Router::start(&config("")).await;
    let api = router.addr(sluice::topology::API_ID);
    let mut tcp = tokio::net::TcpStream::connect(router.addr("in"))
        .await
        .unwrap();
    let value = |want: f64| {
        let url = format!("http://{api}/v1/alerts");
        async move {
            crate::util::poll(&format!("the alert's value at {want}"), || async {
                let body = crate::util::get_json(&url).await?;
                (body["alerts"][0]["value"].as_f64()? == want).then_some(())
            })
            .await
        }
    };
    let errors =
        |n: usize| r#"{"app":"web","level":"error"}"#.repeat(n).replace("}{", "}\n{") + "\n";
    tcp.write_all(errors(3).as_bytes()).await.unwrap();
    value(3.0).await;

    let reloader = router.running.as_ref().unwrap().reloader();
    let next = sluice::pipeline::Pipeline::from_str(
        "test.toml",
        &config("[sinks.more]\ntype = \"blackhole\"\ninputs = [\"in\"]\n"),
        |_| None,
    )
    .unwrap();
    let applied = reloader.apply(next).await.expect("applied");
    assert_eq!(applied.added, ["more"]);
    assert_eq!(applied.unchanged, 3, "{applied:?}");
    tcp.write_all(errors(1).as_bytes()).await.unwrap();
    value(4.0).await;
    drop(tcp);
    router.stop().await;
}

/// With tokens, reloading and reopening take an admin token: a read token is refused, and
/// `sluice reload --token` passes one.
#[test]
fn reload_and_reopen_need_an_admin_token() {
    let dir = tempdir();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        "reader-token-0123456789 read\nadmin-token-01234567890 admin\n",
    )
    .unwrap();
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\naddress = \"127.0.0.1:0\"\nauth = {{ tokens_file = \"{}\" }}\n\n[sources.in]\ntype = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"in\"]\n",
            tokens.display()
        ),
    )
    .unwrap();
    let router = spawn_router(sluice_up(&config));
    let api = router.address_of("api").unwrap();
    let post = |path: &str, token: &str| {
        let mut stream = std::net::TcpStream::connect(&api).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    };
    for path in ["/v1/reload", "/v1/reopen"] {
        assert!(
            post(path, "reader-token-0123456789").contains(" 403 "),
            "{path}"
        );
        assert!(
            post(path, "admin-token-01234567890").contains(" 200 "),
            "{path}"
        );
    }
    let (ok, _, stderr) = sluice_reload(&api);
    assert!(!ok && stderr.contains("401"), "no token: {stderr}");
    let out = Command::new(sluice_bin())
        .args([
            "reload",
            "--url",
            &api,
            "--token",
            "admin-token-01234567890",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"status\":\"applied\""));
}

/// Sources by reload, with `--watch-config`: an added source binds and feeds its sinks; a
/// changed source that keeps its address keeps its socket and its connections; one whose
/// address changes binds the new one before it lets the old one go (an address in use
/// refuses the reload, and the old one keeps serving); a removed source stops listening
/// while the other keeps its connection.
#[test]
fn watched_config_adds_changes_and_removes_sources() {
    let dir = tempdir();
    let out = dir.path().join("out.log");
    let config = dir.path().join("pipeline.toml");
    let (a, b, c) = (
        crate::util::free_port(),
        crate::util::free_port(),
        crate::util::free_port(),
    );
    let write = |sources: &[(&str, u16, &str)]| {
        let mut text = String::new();
        for (id, port, decoding) in sources {
            text.push_str(&format!(
                "[sources.{id}]\ntype = \"tcp\"\naddress = \"127.0.0.1:{port}\"\ndecoding = \"{decoding}\"\n\n"
            ));
        }
        let inputs: Vec<String> = sources.iter().map(|s| format!("\"{}\"", s.0)).collect();
        text.push_str(&format!(
            "[sinks.out]\ntype = \"file\"\ninputs = [{}]\npath = \"{}\"\n",
            inputs.join(", "),
            out.display()
        ));
        std::fs::write(&config, text).unwrap();
    };
    write(&[("a", a, "bytes")]);
    let mut command = sluice_up(&config);
    command.arg("--watch-config");
    let mut router = spawn_router(command);
    let mut to_a = std::net::TcpStream::connect(("127.0.0.1", a)).unwrap();
    let lines = || read_lines(&out).join("\n");

    write(&[("a", a, "bytes"), ("b", b, "bytes")]);
    assert!(router.wait_for_log(&["reload applied", "added=[\"b\"]"]));
    let mut to_b = std::net::TcpStream::connect(("127.0.0.1", b)).unwrap();
    writeln!(to_b, "via b").unwrap();
    writeln!(to_a, "via a, kept").unwrap();
    wait_blocking("both lines", || {
        lines().contains("via b") && lines().contains("via a, kept")
    });

    // Same address, new decoding: the connection is kept and read the new way.
    write(&[("a", a, "json"), ("b", b, "bytes")]);
    assert!(router.wait_for_log(&["reload applied", "changed=[\"a\"]"]));
    writeln!(to_a, r#"{{"said":"via a, read as json"}}"#).unwrap();
    wait_blocking("a read the new way", || {
        lines().contains(r#""said":"via a, read as json""#)
    });
    let mut again = std::net::TcpStream::connect(("127.0.0.1", a)).unwrap();
    writeln!(again, r#"{{"said":"a new connection to a"}}"#).unwrap();
    wait_blocking("a new connection", || {
        lines().contains("a new connection to a")
    });

    // A new address held by another process: refused before the old one is touched.
    let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken = held.local_addr().unwrap().port();
    write(&[("a", taken, "json"), ("b", b, "bytes")]);
    assert!(router.wait_for_log(&["reload refused", "source `a`"]));
    writeln!(to_a, r#"{{"said":"via a, still"}}"#).unwrap();
    wait_blocking("a still serving", || lines().contains("via a, still"));
    drop(held);

    // A new address: bound, then the old one let go.
    write(&[("a", c, "json"), ("b", b, "bytes")]);
    assert!(router.wait_for_log(&["reload applied", "changed=[\"a\"]"]));
    let mut to_c = std::net::TcpStream::connect(("127.0.0.1", c)).unwrap();
    writeln!(to_c, r#"{{"said":"via c"}}"#).unwrap();
    wait_blocking("a at its new address", || lines().contains("via c"));
    wait_blocking("a's old address no longer listening", || {
        std::net::TcpStream::connect(("127.0.0.1", a)).is_err()
    });

    write(&[("b", b, "bytes")]);
    assert!(router.wait_for_log(&["reload applied", "removed=[\"a\"]"]));
    wait_blocking("a no longer listening", || {
        std::net::TcpStream::connect(("127.0.0.1", c)).is_err()
    });
    writeln!(to_b, "via b, kept").unwrap();
    wait_blocking("b kept its connection", || lines().contains("via b, kept"));
}
