//! Syslog over real senders: util-linux `logger` (RFC 5424 octet-counted over TCP, RFC 3164
//! over UDP), Debian's rsyslog relaying with `omfwd`, and raw UDP datagrams.

use std::process::Command;

use crate::util::{counter, have_tool, read_lines, tempdir, wait_until, Router};

/// util-linux `logger`, a real syslog sender, over TCP with RFC 6587 octet counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_sends_octet_counted_syslog_over_tcp() {
    if !have_tool("logger") {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("syslog.log");
    let router = Router::start(&format!(
        r#"
[sources.e2e_logger]
type = "tcp"
address = "127.0.0.1:0"
framing = "octet_counting"
decoding = "syslog"

[transforms.e2e_logger_parse]
type = "parse"
inputs = ["e2e_logger"]
format = "auto"

[sinks.e2e_logger_out]
type = "file"
inputs = ["e2e_logger_parse"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let port = router.addr("e2e_logger").port().to_string();
    for (i, priority) in ["user.err", "daemon.info", "local0.warning"]
        .iter()
        .enumerate()
    {
        let status = Command::new("logger")
            .args(["--tcp", "--octet-count", "-n", "127.0.0.1", "-P", &port])
            .args(["-t", "billing", "-p", priority, "--rfc5424"])
            .arg(format!("payment {i} processed"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    wait_until("three syslog events", || {
        counter("component_sent_events_total", "e2e_logger_out", None) == 3
    })
    .await;
    router.stop().await;
    let lines = read_lines(&out);
    let mut events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each logger run is its own connection: order across connections is not defined.
    events.sort_by_key(|e| e["message"].as_str().unwrap_or_default().to_string());
    let expect_levels = ["error", "info", "warn"];
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event["message"],
            format!("payment {i} processed"),
            "{event}"
        );
        assert_eq!(event["app"], "billing", "{event}");
        assert_eq!(event["level"], expect_levels[i], "{event}");
        assert!(
            event["timestamp"].as_str().is_some_and(|t| t.len() >= 20),
            "{event}"
        );
    }
}

/// UDP datagrams, one and several lines each, each event stamped with the sender's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_become_events() {
    let dir = tempdir();
    let out = dir.path().join("udp.log");
    let router = Router::start(&format!(
        r#"
[sources.e2e_udp]
type = "udp"
address = "127.0.0.1:0"
decoding = "auto"

[sinks.e2e_udp_out]
type = "file"
inputs = ["e2e_udp"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let addr = router.addr("e2e_udp");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(
            b"<11>Nov 23 10:00:00 web1 nginx[12]: upstream timed out",
            addr,
        )
        .await
        .unwrap();
    socket
        .send_to(b"level=info msg=\"two\"\nlevel=warn msg=\"three\"\n", addr)
        .await
        .unwrap();
    wait_until("three udp events", || {
        counter("component_sent_events_total", "e2e_udp_out", None) == 3
    })
    .await;
    router.stop().await;
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].contains("upstream timed out") && lines[0].contains("\"app\":\"nginx\""),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("\"msg\":\"two\""), "{}", lines[1]);
    assert!(lines[2].contains("\"msg\":\"three\""), "{}", lines[2]);
}

/// util-linux `logger` over UDP in RFC 3164 format, parsed and normalised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_sends_rfc3164_over_udp() {
    if !have_tool("logger") {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("udp3164.log");
    let router = Router::start(&format!(
        r#"
[sources.e2e_udp3164]
type = "udp"
address = "127.0.0.1:0"
decoding = "auto"

[transforms.e2e_udp3164_parse]
type = "parse"
inputs = ["e2e_udp3164"]

[sinks.e2e_udp3164_out]
type = "file"
inputs = ["e2e_udp3164_parse"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let port = router.addr("e2e_udp3164").port().to_string();
    let status = Command::new("logger")
        .args(["--udp", "--rfc3164", "-n", "127.0.0.1", "-P", &port])
        .args(["-t", "cron", "-p", "cron.warning"])
        .arg("job took too long")
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the syslog event", || {
        counter("component_sent_events_total", "e2e_udp3164_out", None) == 1
    })
    .await;
    router.stop().await;
    let event: serde_json::Value = serde_json::from_str(&read_lines(&out)[0]).unwrap();
    assert_eq!(event["message"], "job took too long", "{event}");
    assert_eq!(event["app"], "cron", "{event}");
    assert_eq!(event["level"], "warn", "{event}");
    assert_eq!(event["facility"], "cron", "{event}");
}

/// Debian's rsyslog relays what it receives to the TCP source with `omfwd`, once as RFC 5424
/// with octet-counted framing and once in its traditional forwarding format with newline
/// framing; one source takes both, since a frame is octet-counted only when it starts
/// `LEN <`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_forwards_with_omfwd_in_both_framings() {
    if !have_tool("rsyslogd") || !have_tool("logger") {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("rsyslog.log");
    let router = Router::start(&format!(
        r#"
[sources.rsys_in]
type = "tcp"
address = "127.0.0.1:0"
framing = "octet_counting"
decoding = "syslog"

[transforms.rsys_parse]
type = "parse"
inputs = ["rsys_in"]
format = "auto"

[sinks.rsys_out]
type = "file"
inputs = ["rsys_parse"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let sluice_port = router.addr("rsys_in").port();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let port_file = dir.path().join("imtcp.port");
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="{port_file}" ruleset="relay")
ruleset(name="relay") {{
  action(type="omfwd" target="127.0.0.1" port="{sluice_port}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="{sluice_port}" protocol="tcp"
         template="RSYSLOG_ForwardFormat")
}}
"#,
            work = work.display(),
            port_file = port_file.display(),
        ),
    )
    .unwrap();
    let mut rsyslogd = KillOnDrop(
        Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("rsyslog listening", || {
        std::fs::read_to_string(&port_file).is_ok_and(|p| p.trim().parse::<u16>().is_ok())
    })
    .await;
    let rsyslog_port = std::fs::read_to_string(&port_file).unwrap();
    let messages = ["disk 91% full", "order 17 shipped", "cache miss storm"];
    for (message, priority) in messages
        .iter()
        .zip(["user.warning", "local3.info", "daemon.err"])
    {
        let status = Command::new("logger")
            // RFC 3164 in, as local programs log: rsyslog's tag is then `inventory:`.
            .args(["--tcp", "--octet-count", "--rfc3164", "-n", "127.0.0.1"])
            .args(["-P", rsyslog_port.trim(), "-t", "inventory", "-p", priority])
            .arg(message)
            .status()
            .unwrap();
        assert!(status.success());
    }
    wait_until("each message relayed twice", || {
        counter("component_sent_events_total", "rsys_out", None) == 6
    })
    .await;
    router.stop().await;
    assert_eq!(counter("component_errors_total", "rsys_in", None), 0);
    let _ = rsyslogd.0.kill();
    let _ = rsyslogd.0.wait();

    let events: Vec<serde_json::Value> = read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (message, level) in messages.iter().zip(["warn", "info", "error"]) {
        let copies: Vec<_> = events.iter().filter(|e| e["message"] == *message).collect();
        assert_eq!(copies.len(), 2, "{message}: {events:#?}");
        for event in copies {
            assert_eq!(event["app"], "inventory", "{event}");
            assert_eq!(event["level"], level, "{event}");
            assert!(event["timestamp"].is_string(), "{event}");
        }
    }
}

/// Kills a helper process when a test ends, even by a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
