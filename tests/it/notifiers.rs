//! The webhook, Slack and PagerDuty notifier sinks, fed by real alert rules, against a
//! recording HTTP server (`recorder.rs`): their documented formats, retries and
//! `Retry-After`, and HTTPS to a trusted CA. Windows are 2 s so each test takes seconds.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::alerts::Feed;
use crate::certs::issue;
use crate::recorder::Recorder;
use crate::util::{counter, read_lines, tempdir, wait_until, Router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_slack_and_pagerduty_get_one_documented_notification_per_firing() {
    // Every endpoint fails its first request with a 500: the sinks retry.
    let (addr, recorder) = Recorder::start(&[
        ("/hook", 500, "{}"),
        ("/slack", 500, "{}"),
        ("/pd", 500, "{}"),
    ])
    .await;
    let dir = tempdir();
    let router = Router::start(&format!(
        r##"
[sources.nt_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[alerts.nt_errors]
inputs = ["nt_in"]
condition = 'level == "error"'
group_by = ["app"]
kind = "threshold"
window_secs = 2
threshold = 5
severity = "critical"
annotations = {{ summary = "{{{{ value }}}} errors on {{{{ app }}}}" }}
state_path = "{dir}/nt_errors.json"

[sinks.nt_hook]
type = "webhook"
inputs = ["nt_errors"]
url = "http://{addr}/hook"
retry = {{ initial_backoff_ms = 20 }}

[sinks.nt_slack]
type = "slack"
inputs = ["nt_errors"]
url = "http://{addr}/slack"
channel = "#ops"
retry = {{ initial_backoff_ms = 20 }}

[sinks.nt_pd]
type = "pagerduty"
inputs = ["nt_errors"]
url = "http://{addr}/pd"
routing_key = "R0UT1NG"
retry = {{ initial_backoff_ms = 20 }}

# Alerts are events too: archived in a file.
[sinks.nt_archive]
type = "file"
inputs = ["nt_errors"]
path = "{dir}/alerts.log"
encoding = "json"

# A notifier fed plain log events rejects them to its dead-letter output.
[sinks.nt_wrong]
type = "webhook"
inputs = ["nt_in"]
url = "http://{addr}/wrong"

[sinks.nt_dead]
type = "file"
inputs = ["nt_wrong.dead_letter"]
path = "{dir}/dead.log"
encoding = "json"
"##,
        dir = dir.path().display(),
    ))
    .await;
    let mut feed = Feed::connect(router.addr("nt_in")).await;
    feed.send("A", "error", 20).await;
    feed.send("B", "error", 2).await;
    wait_until("one firing notification at each endpoint", || {
        ["/hook", "/slack", "/pd"]
            .iter()
            .all(|p| !recorder.bodies(p).is_empty())
    })
    .await;
    // More errors while it fires: deduplicated, no new notification.
    feed.send("A", "error", 20).await;
    wait_until("the resolution at each endpoint", || {
        ["/hook", "/slack", "/pd"]
            .iter()
            .all(|p| recorder.bodies(p).len() >= 2)
    })
    .await;

    // Webhook: the documented JSON, firing then resolved, one alert each.
    let hook = recorder.bodies("/hook");
    assert_eq!(hook.len(), 2, "{hook:?}");
    assert_eq!(recorder.attempts("/hook"), 3, "one retry after the 500");
    let firing = &hook[0];
    assert_eq!(firing["version"], "1");
    assert_eq!(firing["receiver"], "nt_hook");
    let alert = &firing["alerts"][0];
    assert_eq!(firing["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(alert["alert"], "nt_errors");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["repeat"], false);
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["group"]["app"], "A");
    let value = alert["value"].as_f64().unwrap();
    assert!(value > 5.0, "{alert}");
    assert_eq!(alert["message"], format!("{value} errors on A"));
    assert_eq!(alert["ends_at"], Value::Null);
    let fingerprint = alert["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fingerprint.len(), 16);
    let resolved = &hook[1]["alerts"][0];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["fingerprint"], fingerprint.as_str());
    assert_eq!(resolved["starts_at"], alert["starts_at"]);
    assert!(resolved["ends_at"].as_str().unwrap() > alert["starts_at"].as_str().unwrap());

    // Slack: an incoming-webhook message with text and blocks.
    let slack = recorder.bodies("/slack");
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert_eq!(recorder.attempts("/slack"), 3);
    assert_eq!(slack[0]["channel"], "#ops");
    let text = slack[0]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("[FIRING] nt_errors: {value} errors on A")),
        "{text}"
    );
    assert_eq!(slack[0]["blocks"][0]["type"], "section");
    assert_eq!(slack[0]["blocks"][1]["type"], "context");
    let context = slack[0]["blocks"][1]["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        context.contains("severity: critical") && context.contains("app=A"),
        "{context}"
    );
    assert!(slack[1]["text"].as_str().unwrap().contains("[RESOLVED]"));

    // PagerDuty Events API v2: trigger, then resolve, with the fingerprint as dedup_key.
    let pd = recorder.bodies("/pd");
    assert_eq!(pd.len(), 2, "{pd:?}");
    assert_eq!(recorder.attempts("/pd"), 3);
    assert_eq!(pd[0]["routing_key"], "R0UT1NG");
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["dedup_key"], fingerprint.as_str());
    assert_eq!(pd[0]["payload"]["summary"], format!("{value} errors on A"));
    assert_eq!(pd[0]["payload"]["source"], "app=A");
    assert_eq!(pd[0]["payload"]["severity"], "critical");
    assert_eq!(pd[0]["payload"]["custom_details"]["group"]["app"], "A");
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(pd[1]["dedup_key"], fingerprint.as_str());

    // The retries were counted.
    assert!(crate::util::counter("component_retries_total", "nt_pd", None) >= 1);

    // Plain events reached no endpoint through the misrouted notifier; they were
    // dead-lettered with the reason.
    assert!(recorder.bodies("/wrong").is_empty());
    let dead = dir.path().join("dead.log");
    wait_until("dead letters", || read_lines(&dead).len() == 42).await;
    let letter: Value = serde_json::from_str(&read_lines(&dead)[0]).unwrap();
    let reason = letter["dead_letter"]["reason"].as_str().unwrap();
    assert!(reason.contains("not an alert event"), "{reason}");

    router.stop().await;
    // The archive holds the same two alert events.
    let archived: Vec<Value> = read_lines(&dir.path().join("alerts.log"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<&str> = archived
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    assert_eq!(archived[0]["alert"], "nt_errors");
}

// === https ===

/// A notifier answered 429 waits as long as `Retry-After` asks (the recorder asks for an
/// hour), capped by `max_backoff_secs`, instead of its 1 ms backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifiers_honour_retry_after_up_to_the_cap() {
    let (addr, recorder) = Recorder::start(&[("/later", 429, "slow down")]).await;
    let dir = tempdir();
    let router = Router::start(&format!(
        r#"
[sources.ra_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[alerts.ra_errors]
inputs = ["ra_in"]
condition = 'level == "error"'
kind = "threshold"
window_secs = 2
threshold = 1
state_path = "{dir}/ra_errors.json"

[sinks.ra_hook]
type = "webhook"
inputs = ["ra_errors"]
url = "http://{addr}/later"
retry = {{ initial_backoff_ms = 1, max_backoff_secs = 1 }}
"#,
        dir = dir.path().display(),
    ))
    .await;
    let mut feed = Feed::connect(router.addr("ra_in")).await;
    feed.send("A", "error", 3).await;
    wait_until("the notification delivered after the 429", || {
        !recorder.bodies("/later").is_empty()
    })
    .await;
    let arrivals = recorder.arrival_times("/later");
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(950),
        "retried {gap:?} after the 429, before Retry-After (capped at 1 s)"
    );
    assert_eq!(counter("component_retries_total", "ra_hook", None), 1);
    drop(feed);
    router.stop().await;
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
fn issue_certs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (ca, ca_cert, ca_key) = issue(&["alerts test ca"], None);
    let (server, _, _) = issue(&["127.0.0.1"], Some((&ca_cert, &ca_key)));
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    (
        write("ca.pem", ca.cert_pem),
        write("server.pem", server.cert_pem),
        write("server.key", server.key_pem),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifiers_post_over_https_to_a_trusted_ca() {
    let dir = tempdir();
    let (ca, crt, key) = issue_certs(dir.path());
    let acceptor = sluice::tls::TlsConfig {
        crt_file: crt,
        key_file: key,
        ca_file: None,
    }
    .acceptor()
    .unwrap();
    let (addr, recorder) = Recorder::start_with(&[], Some(acceptor)).await;
    let router = Router::start(&format!(
        r#"
[sources.tls_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[alerts.tls_errors]
inputs = ["tls_in"]
condition = 'level == "error"'
kind = "threshold"
window_secs = 2
threshold = 1
state_path = "{dir}/tls_errors.json"

[sinks.tls_slack]
type = "slack"
inputs = ["tls_errors"]
url = "https://{addr}/slack"
tls = {{ ca_file = "{ca}" }}

# Without the private CA the handshake fails; retries run out and the alert is dead-lettered.
[sinks.tls_untrusted]
type = "pagerduty"
inputs = ["tls_errors"]
url = "https://{addr}/pd"
routing_key = "k"
retry = {{ initial_backoff_ms = 10, max_attempts = 2 }}

[sinks.tls_dead]
type = "file"
inputs = ["tls_untrusted.dead_letter"]
path = "{dir}/dead.log"
"#,
        dir = dir.path().display(),
        ca = ca.display(),
    ))
    .await;
    let mut feed = Feed::connect(router.addr("tls_in")).await;
    feed.send("A", "error", 3).await;
    wait_until("the slack message over https", || {
        !recorder.bodies("/slack").is_empty()
    })
    .await;
    assert!(recorder.bodies("/slack")[0]["text"]
        .as_str()
        .unwrap()
        .contains("[FIRING] tls_errors"));
    let dead = dir.path().join("dead.log");
    wait_until("the untrusted notification dead-lettered", || {
        !read_lines(&dead).is_empty()
    })
    .await;
    let letter: Value = serde_json::from_str(&read_lines(&dead)[0]).unwrap();
    let reason = letter["dead_letter"]["reason"].as_str().unwrap();
    assert!(reason.contains("gave up after 2 attempts"), "{reason}");
    assert!(recorder.bodies("/pd").is_empty());
    drop(feed);
    router.stop().await;
}
