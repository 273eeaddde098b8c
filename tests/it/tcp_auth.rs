//! Per-app tokens and rate limits on the tcp source: util-linux `logger` sends the token as
//! an RFC 5424 structured-data element (`--sd-id TOKEN@PEN`), a JSON sender as a `token`
//! field; events without a known token go to dead letters; an app over its rate limit is
//! slowed, not dropped.

use std::process::Command;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::util::{counter, have_tool, read_lines, tempdir, wait_until, Router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_events_carry_their_token_and_apps_are_rate_limited() {
    if !have_tool("logger") {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("accepted.log");
    let refused = dir.path().join("refused.log");
    let router = Router::start(&format!(
        r#"
[sources.tok_syslog]
type = "tcp"
address = "127.0.0.1:0"
framing = "octet_counting"
decoding = "syslog"
tokens = {{ "s3cr3t" = "billing" }}

[sources.tok_json]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"
tokens = {{ "w0rk" = "worker" }}
rate_limit = {{ events_per_sec = 5 }}

[sinks.tok_out]
type = "file"
inputs = ["tok_syslog", "tok_json"]
path = "{}"

[sinks.tok_refused]
type = "file"
inputs = ["tok_syslog.dead_letter", "tok_json.dead_letter"]
path = "{}"
"#,
        out.display(),
        refused.display()
    ))
    .await;
    let port = router.addr("tok_syslog").port().to_string();
    // The tag claims another app; the token decides.
    for (sd_id, message) in [
        (Some("s3cr3t@41058"), "charged card 1"),
        (Some("guess@41058"), "forged"),
        (None, "anonymous"),
    ] {
        let mut logger = Command::new("logger");
        logger
            .args(["--tcp", "--octet-count", "--rfc5424", "-n", "127.0.0.1"])
            .args(["-P", &port, "-t", "imposter"]);
        if let Some(sd_id) = sd_id {
            // logger leaves out an element without parameters.
            logger.args(["--sd-id", sd_id, "--sd-param", "tag=\"checkout\""]);
        }
        assert!(logger.arg(message).status().unwrap().success());
    }

    // JSON: two reads of 10 events each against a 5 events/s bucket. The first passes
    // (a full bucket lets a big read through, into debt); the second waits for a refill.
    let mut json = TcpStream::connect(router.addr("tok_json")).await.unwrap();
    let batch = |from: usize| -> String {
        (from..from + 10)
            .map(|i| format!("{{\"token\":\"w0rk\",\"seq\":{i}}}\n"))
            .collect()
    };
    json.write_all(batch(0).as_bytes()).await.unwrap();
    wait_until("first json read delivered", || {
        counter("component_received_events_by_app_total", "tok_json", None) == 10
    })
    .await;
    json.write_all(batch(10).as_bytes()).await.unwrap();
    json.write_all(b"{\"token\":\"nope\",\"seq\":99}\n")
        .await
        .unwrap();
    json.shutdown().await.unwrap();

    wait_until("every accepted event written", || {
        counter("component_sent_events_total", "tok_out", None) == 21
    })
    .await;
    wait_until("every refused event dead-lettered", || {
        counter("component_sent_events_total", "tok_refused", None) == 3
    })
    .await;
    router.stop().await;

    assert_eq!(
        counter("component_rate_limited_events_total", "tok_json", None),
        10,
        "the second read waited for its bucket"
    );
    assert_eq!(
        counter("component_errors_total", "tok_syslog", Some("unauthorized")),
        2
    );
    assert_eq!(
        counter("component_errors_total", "tok_json", Some("unauthorized")),
        1
    );
    let accepted: Vec<serde_json::Value> = read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let syslog: Vec<_> = accepted
        .iter()
        .filter(|e| e.get("message").is_some())
        .collect();
    assert_eq!(syslog.len(), 1, "{accepted:#?}");
    assert_eq!(syslog[0]["message"], "charged card 1");
    assert_eq!(syslog[0]["app"], "billing", "the token's app, not the tag");
    assert!(
        !read_lines(&out).join("\n").contains("s3cr3t")
            && !read_lines(&out).join("\n").contains("w0rk"),
        "tokens are removed from events"
    );
    let seqs: Vec<i64> = accepted
        .iter()
        .filter(|e| e["app"] == "worker")
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>(), "in order, none dropped");
    let refused: Vec<serde_json::Value> = read_lines(&refused)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = refused
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.starts_with("unknown token"))
            .count(),
        2,
        "{refused:#?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.starts_with("missing token"))
            .count(),
        1,
        "{refused:#?}"
    );
    assert!(refused.iter().all(|e| e["reason_code"] == "unauthorized"));
}

/// Without tokens the app is whatever the sender writes: 1,000 names make at most 200 series
/// plus `_other`, every event is still counted, and the rate limiter keeps at most
/// `max_keys` buckets (tested in auth.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_chosen_apps_cannot_grow_the_metrics() {
    let dir = tempdir();
    let out = dir.path().join("apps.log");
    let router = Router::start(&format!(
        r#"
[sources.many_apps]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"
rate_limit = {{ events_per_sec = 1000000, max_keys = 50 }}

[sinks.many_apps_out]
type = "file"
inputs = ["many_apps"]
path = "{}"
"#,
        out.display()
    ))
    .await;
    let mut stream = TcpStream::connect(router.addr("many_apps")).await.unwrap();
    let lines: String = (0..1000)
        .map(|i| format!("{{\"app\":\"app-{i}\",\"seq\":{i}}}\n"))
        .collect();
    stream.write_all(lines.as_bytes()).await.unwrap();
    drop(stream);
    wait_until("every event written", || read_lines(&out).len() == 1000).await;
    let series: Vec<(String, u64)> = sluice::telemetry::snapshot()
        .into_iter()
        .filter(|(name, labels, _)| {
            *name == "component_received_events_by_app_total"
                && labels
                    .iter()
                    .any(|(k, v)| *k == "component_id" && v == "many_apps")
        })
        .map(|(_, labels, value)| {
            let app = labels.iter().find(|(k, _)| *k == "app").unwrap().1.clone();
            (app, value)
        })
        .collect();
    assert!(series.len() <= 201, "{} series", series.len());
    assert!(series.iter().any(|(app, _)| app == "_other"));
    assert_eq!(series.iter().map(|(_, n)| n).sum::<u64>(), 1000);
}
