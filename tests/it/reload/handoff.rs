//! A changed source that keeps its address keeps its socket across a reload
//! (src/sources/sockets.rs): its `decoding` changes while senders keep sending, and the
//! reload must be applied with no connection refused, no datagram dropped, every event
//! once and in order per sender, read the old way before the switch and the new way after.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::{http_post_as, metric, sluice_reload, spawn_sender, wait_blocking};
use crate::util::{free_port, read_lines, sluice_up, spawn_router, tempdir, RouterProcess};

/// One source `in` of `kind` at `address` reading `decoding` (and `options`, TOML lines),
/// into the file `out`.
fn pipeline(kind: &str, address: &str, options: &str, decoding: &str, out: &Path) -> String {
    format!(
        "[api]\naddress = \"127.0.0.1:0\"\n\n[sources.in]\ntype = \"{kind}\"\naddress = \"{address}\"\ndecoding = \"{decoding}\"\n{options}\n[sinks.out]\ntype = \"file\"\ninputs = [\"in\"]\npath = \"{}\"\n",
        out.display()
    )
}

/// (sender, seq, read the new way) of every event written: senders send JSON lines, read
/// as fields under `json` (old) and as a `message` holding the line under `bytes` (new).
fn decoded(out: &Path) -> Vec<(String, u64, bool)> {
    read_lines(out)
        .iter()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("a json line");
            let (fields, new) = match event["message"].as_str() {
                Some(raw) => (serde_json::from_str(raw).expect("the sent line"), true),
                None => (event, false),
            };
            let conn = fields["conn"].as_str().expect("conn").to_string();
            (conn, fields["seq"].as_u64().expect("seq"), new)
        })
        .collect()
}

/// Every sender's events once and in order, read the old way and then the new way (never
/// back); both ways seen.
fn check(events: &[(String, u64, bool)], sent: &[(String, u64)]) {
    let total: u64 = sent.iter().map(|s| s.1).sum();
    assert_eq!(events.len() as u64, total, "no event lost or duplicated");
    let mut by_sender: std::collections::HashMap<&str, Vec<(u64, bool)>> = Default::default();
    for (conn, seq, new) in events {
        by_sender.entry(conn).or_default().push((*seq, *new));
    }
    for (name, n) in sent {
        let mine = by_sender.get(name.as_str()).cloned().unwrap_or_default();
        let seqs: Vec<u64> = mine.iter().map(|e| e.0).collect();
        assert_eq!(
            seqs,
            (0..*n).collect::<Vec<_>>(),
            "{name}: every event, in order"
        );
        assert!(
            mine.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: read the old way, then the new way"
        );
    }
    assert!(events.iter().any(|e| !e.2), "events read before the reload");
    assert!(events.iter().any(|e| e.2), "events read after the reload");
}

/// Starts the router on `pipeline(kind, address, options, "json")`; returns it and its API address.
fn start(kind: &str, address: &str, options: &str, dir: &Path) -> (RouterProcess, String) {
    let config = dir.join("pipeline.toml");
    std::fs::write(
        &config,
        pipeline(kind, address, options, "json", &dir.join("out.log")),
    )
    .unwrap();
    let router = spawn_router(sluice_up(&config));
    let api = router.address_of("api").expect("api address");
    (router, api)
}

/// Lets events flow, changes `in`'s decoding to `bytes` by `sluice reload` (which must be
/// applied, as a change of `in` only), and lets events flow the new way.
fn reload_decoding(kind: &str, address: &str, options: &str, dir: &Path, api: &str) {
    let out = dir.join("out.log");
    wait_blocking("events before the reload", || read_lines(&out).len() > 500);
    std::fs::write(
        dir.join("pipeline.toml"),
        pipeline(kind, address, options, "bytes", &out),
    )
    .unwrap();
    let (ok, stdout, stderr) = sluice_reload(api);
    assert!(ok, "the reload is applied: {stdout} {stderr}");
    let answer: Value = serde_json::from_str(stdout.trim()).expect("json answer");
    assert_eq!(answer["changed"], serde_json::json!(["in"]), "{answer}");
    wait_blocking("events read the new way", || {
        read_lines(&out)
            .iter()
            .filter(|l| l.contains("\"message\""))
            .count()
            > 500
    });
}

/// Waits for `total` events, stops the router, and returns what it wrote.
fn finish(router: RouterProcess, dir: &Path, total: u64) -> Vec<(String, u64, bool)> {
    let out = dir.join("out.log");
    wait_blocking("every event written", || {
        read_lines(&out).len() as u64 >= total
    });
    router.signal("-TERM");
    let (status, _) = router.finish();
    assert!(status.success());
    decoded(&out)
}

#[test]
fn a_tcp_source_changed_at_its_address_keeps_its_listener_and_connections() {
    let dir = tempdir();
    let address = format!("127.0.0.1:{}", free_port());
    let (router, api) = start("tcp", &address, "", dir.path());

    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for i in 0..3 {
        let mut stream = std::net::TcpStream::connect(&address).expect("tcp connect");
        senders.push(spawn_sender(format!("tcp{i}"), stop.clone(), move |b| {
            stream
                .write_all(b)
                .expect("the connection stays open across the reload")
        }));
    }
    // A fourth sender opens a connection for every 5 events: none may be refused.
    let churn = {
        let (stop, address) = (stop.clone(), address.clone());
        std::thread::spawn(move || {
            let mut connections = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut stream = std::net::TcpStream::connect(&address)
                    .expect("no connection refused during the reload");
                let lines: String = (0..5)
                    .map(|seq| format!("{{\"conn\":\"new{connections}\",\"seq\":{seq}}}\n"))
                    .collect();
                stream.write_all(lines.as_bytes()).expect("write");
                connections += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            connections
        })
    };

    reload_decoding("tcp", &address, "", dir.path(), &api);
    stop.store(true, Ordering::Relaxed);
    let mut sent: Vec<(String, u64)> = senders
        .into_iter()
        .enumerate()
        .map(|(i, s)| (format!("tcp{i}"), s.join().unwrap()))
        .collect();
    let connections = churn.join().unwrap();
    sent.extend((0..connections).map(|k| (format!("new{k}"), 5)));
    let total = sent.iter().map(|s| s.1).sum();
    let events = finish(router, dir.path(), total);
    check(&events, &sent);
    // A connection opened after one read the new way is read the new way too.
    let first_new = (0..connections)
        .find(|k| events.iter().any(|e| e.0 == format!("new{k}") && e.2))
        .expect("a new connection read the new way");
    assert!(
        events.iter().all(|e| {
            let k = e.0.strip_prefix("new").and_then(|k| k.parse::<u64>().ok());
            k.is_none_or(|k| k <= first_new || e.2)
        }),
        "connections after the switch are read the new way"
    );
    println!("tcp: {total} events over 3 kept connections and {connections} new ones, one reload");
}

/// The kernel's count of datagrams dropped at the UDP socket bound to `port` (its receive
/// buffer full), from /proc/net/udp.
fn kernel_drops(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .find(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(&local))
        })
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

#[test]
fn a_udp_source_changed_at_its_address_keeps_its_socket() {
    let dir = tempdir();
    let port = loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            break port;
        }
    };
    let address = format!("127.0.0.1:{port}");
    let (router, api) = start("udp", &address, "", dir.path());

    let stop = Arc::new(AtomicBool::new(false));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(&address).unwrap();
    // One datagram per event, about 2,500 a second.
    let sender = spawn_sender("udp".into(), stop.clone(), move |b| {
        for line in b.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            socket.send(line).expect("udp send");
        }
    });
    reload_decoding("udp", &address, "", dir.path(), &api);
    stop.store(true, Ordering::Relaxed);
    let sent = vec![("udp".to_string(), sender.join().unwrap())];
    let total = sent[0].1;
    // Loopback drops a datagram only when the socket's receive buffer is full: the router
    // did not read for the time the buffer holds (about 100 ms at this rate). That is what
    // this test is about, so it must be zero; the count says so when the total is short.
    let out = dir.path().join("out.log");
    let deadline = std::time::Instant::now() + crate::util::TIMEOUT;
    while (read_lines(&out).len() as u64) < total && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let drops = kernel_drops(port);
    let received = metric(&api, "component_received_events_total");
    assert_eq!(
        drops,
        Some(0),
        "datagrams dropped at the socket (the router stopped reading); the router received {received} of {total}"
    );
    let events = finish(router, dir.path(), total);
    check(&events, &sent);
    println!("udp: {total} datagrams, one reload, none dropped");
}

#[test]
fn an_http_source_changed_at_its_address_keeps_its_listener() {
    let dir = tempdir();
    let address = format!("127.0.0.1:{}", free_port());
    // Its OTLP/gRPC listener passes on too (binding it again would refuse the reload).
    let grpc = format!("grpc_address = \"127.0.0.1:{}\"\n", free_port());
    let (router, api) = start("http", &address, &grpc, dir.path());

    let stop = Arc::new(AtomicBool::new(false));
    // A request per 5 events, each on a new connection, answered 200 once delivered;
    // octet-stream bodies are read with the source's `decoding`.
    let senders: Vec<_> = (0..3)
        .map(|i| {
            let address = address.clone();
            spawn_sender(format!("http{i}"), stop.clone(), move |b| {
                http_post_as(&address, "application/octet-stream", b)
            })
        })
        .collect();
    reload_decoding("http", &address, &grpc, dir.path(), &api);
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<(String, u64)> = senders
        .into_iter()
        .enumerate()
        .map(|(i, s)| (format!("http{i}"), s.join().unwrap()))
        .collect();
    let total = sent.iter().map(|s| s.1).sum();
    let events = finish(router, dir.path(), total);
    check(&events, &sent);
    println!("http: {total} events in requests of 5, one reload");
}
