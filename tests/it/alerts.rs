//! Alert rules on the live stream and the notifier sinks, against real peers on loopback:
//! Prometheus Alertmanager (`alertmanager.rs`), and a recording HTTP server (`recorder.rs`)
//! for the webhook, Slack and PagerDuty formats. Windows are 2 s so each test takes seconds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::alertmanager::Alertmanager;
use crate::certs::issue;
use crate::recorder::Recorder;
use crate::util::{
    counter, free_port, get_json, have_tool, poll, read_lines, sluice_bin, tempdir, wait_until,
    Router,
};

/// Sends JSON lines on one TCP connection.
struct Feed(TcpStream);

impl Feed {
    async fn connect(addr: SocketAddr) -> Feed {
        Feed(TcpStream::connect(addr).await.unwrap())
    }

    async fn send(&mut self, app: &str, level: &str, n: usize) {
        let mut data = String::new();
        for i in 0..n {
            data.push_str(&format!(
                "{{\"app\":\"{app}\",\"level\":\"{level}\",\"message\":\"{level} {i} in {app}\"}}\n"
            ));
        }
        self.0.write_all(data.as_bytes()).await.unwrap();
        self.0.flush().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_receives_threshold_and_absence_alerts_and_their_resolution() {
    if !have_tool("prometheus-alertmanager") {
        return;
    }
    let am = Alertmanager::start().await;
    let dir = tempdir();
    let router = Router::start(&format!(
        r#"
[sources.am_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[transforms.am_only_c]
type = "filter"
inputs = ["am_in"]
condition = 'app == "C"'

[alerts.am_errors]
inputs = ["am_in"]
condition = 'level == "error"'
group_by = ["app"]
kind = "threshold"
window_secs = 2
threshold = 10
severity = "critical"
labels = {{ team = "{{{{ app }}}}-team" }}
annotations = {{ summary = "{{{{ value }}}} errors on {{{{ app }}}}" }}
state_path = "{dir}/am_errors.json"

[alerts.am_silent]
inputs = ["am_only_c"]
group_by = ["app"]
kind = "absence"
window_secs = 2
state_path = "{dir}/am_silent.json"

[sinks.am_out]
type = "alertmanager"
inputs = ["am_errors", "am_silent"]
url = "{url}"
resend_interval_secs = 1
"#,
        dir = dir.path().display(),
        url = am.url,
    ))
    .await;
    let addr = router.addr("am_in");

    // B errs steadily below the threshold (4 per 2 s window); C sends a heartbeat.
    let c_speaks = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let background = {
        let c_speaks = c_speaks.clone();
        tokio::spawn(async move {
            let mut feed = Feed::connect(addr).await;
            for tick in 0u64.. {
                if tick % 2 == 0 {
                    feed.send("B", "error", 1).await;
                }
                if c_speaks.load(std::sync::atomic::Ordering::SeqCst) {
                    feed.send("C", "info", 1).await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    // A burst of errors from A crosses the threshold.
    let mut feed = Feed::connect(addr).await;
    feed.send("A", "error", 30).await;
    let alert = poll("alertmanager lists am_errors for app A", || {
        am.active("am_errors", "A")
    })
    .await;
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["team"], "A-team");
    // The value is what the window held when the rule ticked: the burst, or most of it.
    let value: f64 = alert["annotations"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(value > 10.0, "{alert}");
    assert_eq!(
        alert["annotations"]["summary"],
        format!("{value} errors on A")
    );

    // A stops: the alert resolves (gone from the active list, or endsAt in the past).
    poll("am_errors for app A resolves", || async {
        am.active("am_errors", "A").await.is_none().then_some(())
    })
    .await;

    // C goes silent: the absence rule fires; C speaks again: it resolves.
    c_speaks.store(false, std::sync::atomic::Ordering::SeqCst);
    poll("alertmanager lists am_silent for app C", || {
        am.active("am_silent", "C")
    })
    .await;
    c_speaks.store(true, std::sync::atomic::Ordering::SeqCst);
    poll("am_silent for app C resolves", || async {
        am.active("am_silent", "C").await.is_none().then_some(())
    })
    .await;

    // B stayed below the threshold throughout, and only C was watched for silence.
    let all = am.alerts().await;
    assert!(
        !all.iter().any(|a| a["labels"]["app"] == "B"),
        "B never alerts: {all:?}"
    );
    assert!(
        !all.iter()
            .any(|a| a["labels"]["alertname"] == "am_silent" && a["labels"]["app"] != "C"),
        "{all:?}"
    );
    assert_eq!(
        crate::util::counter("alerts_fired_total", "am_errors", None),
        1,
        "A fired once"
    );
    background.abort();
    drop(feed);
    router.stop().await;
}

// === webhook, Slack, PagerDuty ===

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

// === restart ===

fn restart_pipeline(hook: SocketAddr, state: &Path) -> String {
    format!(
        r#"
[sources.rs_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[alerts.rs_errors]
inputs = ["rs_in"]
condition = 'level == "error"'
group_by = ["app"]
kind = "threshold"
window_secs = 2
threshold = 5
state_path = "{state}"

[sinks.rs_hook]
type = "webhook"
inputs = ["rs_errors"]
url = "http://{hook}/hook"
"#,
        state = state.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_firing_neither_refires_nor_forgets() {
    let (addr, recorder) = Recorder::start(&[]).await;
    let dir = tempdir();
    let state = dir.path().join("state/rs_errors.json");
    let statuses = || -> Vec<String> {
        recorder
            .bodies("/hook")
            .iter()
            .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
            .map(|a| a["status"].as_str().unwrap().to_string())
            .collect()
    };

    let router = Router::start(&restart_pipeline(addr, &state)).await;
    let mut feed = Feed::connect(router.addr("rs_in")).await;
    feed.send("A", "error", 20).await;
    wait_until("the firing notification", || statuses() == ["firing"]).await;
    wait_until("the state file lists the alert", || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("\"app\": \"A\""))
    })
    .await;
    drop(feed);
    router.stop().await;

    // A new router on the same state: the errors go on for a while, then stop.
    let router = Router::start(&restart_pipeline(addr, &state)).await;
    let mut feed = Feed::connect(router.addr("rs_in")).await;
    for _ in 0..4 {
        feed.send("A", "error", 10).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_until("the resolution", || statuses().len() == 2).await;
    assert_eq!(statuses(), ["firing", "resolved"], "no second firing");
    let bodies = recorder.bodies("/hook");
    assert_eq!(
        bodies[1]["alerts"][0]["starts_at"], bodies[0]["alerts"][0]["starts_at"],
        "the resolution belongs to the alert fired before the restart"
    );
    wait_until("the state file is empty again", || {
        std::fs::read_to_string(&state).is_ok_and(|s| !s.contains("\"app\""))
    })
    .await;
    drop(feed);
    router.stop().await;
}

// === GET /v1/alerts and `sluice alerts` ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_cli_list_pending_and_firing_alerts() {
    let dir = tempdir();
    let router = Router::start(&format!(
        r#"
[api]
address = "127.0.0.1:0"

[sources.ls_in]
type = "tcp"
address = "127.0.0.1:0"
decoding = "json"

[alerts.ls_fast]
inputs = ["ls_in"]
condition = 'level == "error"'
group_by = ["app"]
kind = "threshold"
window_secs = 60
threshold = 2
state_path = "{dir}/fast.json"

[alerts.ls_slow]
inputs = ["ls_in"]
condition = 'level == "error"'
group_by = ["app"]
kind = "ratio"
window_secs = 60
threshold = 0.5
for_secs = 3600
severity = "info"
state_path = "{dir}/slow.json"

[sinks.ls_out]
type = "blackhole"
inputs = ["ls_fast", "ls_slow"]
"#,
        dir = dir.path().display()
    ))
    .await;
    let mut feed = Feed::connect(router.addr("ls_in")).await;
    feed.send("web", "error", 5).await;
    let api = router.addr(sluice::topology::API_ID);
    let url = format!("http://{api}/v1/alerts");
    let alerts = poll("both alerts listed", || async {
        let body = get_json(&url).await?;
        let alerts = body["alerts"].as_array()?.clone();
        (alerts.len() == 2).then_some(alerts)
    })
    .await;
    assert_eq!(alerts[0]["rule"], "ls_fast");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["group"]["app"], "web");
    assert_eq!(alerts[0]["value"], 5.0);
    assert!(alerts[0]["since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(alerts[1]["rule"], "ls_slow");
    assert_eq!(alerts[1]["status"], "pending");
    assert_eq!(alerts[1]["value"], 1.0);

    // The table from an address without a scheme (http:// is implied), the JSON from a URL.
    let cli = move |args: &[&str]| {
        let output = std::process::Command::new(sluice_bin())
            .arg("alerts")
            .args(["--url", &api.to_string()])
            .args(args)
            .output()
            .expect("sluice alerts runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let table = tokio::task::spawn_blocking(move || cli(&[])).await.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("RULE"), "{table}");
    assert!(
        lines[1].contains("ls_fast") && lines[1].contains("firing") && lines[1].contains("app=web"),
        "{table}"
    );
    assert!(
        lines[2].contains("ls_slow") && lines[2].contains("pending"),
        "{table}"
    );
    let json = tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(sluice_bin())
            .args(["alerts", "--json", "--url", &format!("http://{api}")])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    })
    .await
    .unwrap();
    let parsed: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["alerts"].as_array().unwrap().len(), 2);
    drop(feed);
    router.stop().await;
}

#[test]
fn sluice_alerts_says_when_the_router_is_unreachable() {
    let output = std::process::Command::new(sluice_bin())
        .args([
            "alerts",
            "--url",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach"), "{stderr}");
    assert!(stderr.contains("start one with: sluice up"), "{stderr}");
}

// === config errors ===

#[test]
fn broken_alert_rules_name_file_rule_and_field() {
    let base = "[sources.in]\ntype = \"stdin\"\n";
    let cases: &[(&str, &[&str])] = &[
        (
            "[alerts.r]\ninputs = [\"in\"]\nkind = \"threshold\"\nwindow_secs = 60\n",
            &["alert `r`", "field `threshold`"],
        ),
        (
            "[alerts.r]\ninputs = [\"in\"]\nkind = \"often\"\nwindow_secs = 60\n",
            &["alert `r`", "field `kind`"],
        ),
        (
            "[alerts.r]\ninputs = [\"nope\"]\nkind = \"absence\"\nwindow_secs = 60\n",
            &["alert `r`", "field `inputs`", "`nope` does not exist"],
        ),
        (
            "[alerts.r]\ninputs = [\"in\"]\nkind = \"absence\"\nwindow_secs = 60\nwindow = 3\n",
            &["alert `r`", "field `window`"],
        ),
        (
            "[alerts.r]\ntype = \"threshold\"\ninputs = [\"in\"]\nkind = \"absence\"\nwindow_secs = 60\n",
            &["alert `r`", "field `type`"],
        ),
        (
            "[alerts.r]\ninputs = [\"in\"]\nkind = \"absence\"\nwindow_secs = 60\n[sinks.s]\ntype = \"pagerduty\"\ninputs = [\"r\"]\nrouting_key = \"k\"\nurl = \"ftp://events.example.com/v2/enqueue\"\n",
            &["sink `s`", "field `url`", "unsupported scheme `ftp`"],
        ),
        (
            "[alerts.r]\ninputs = [\"s.dead_letter\"]\nkind = \"absence\"\nwindow_secs = 60\n[sinks.s]\ntype = \"webhook\"\ninputs = [\"r\"]\nurl = \"http://127.0.0.1:1/\"\n",
            &["cycle"],
        ),
        (
            "[alerts.r]\ninputs = [\"in\"]\nkind = \"absence\"\nwindow_secs = 60\nstate_path = \"x.json\"\n[alerts.q]\ninputs = [\"in\"]\nkind = \"absence\"\nwindow_secs = 60\nstate_path = \"x.json\"\n",
            &["field `state_path`", "already the state file of alert"],
        ),
    ];
    for (text, needles) in cases {
        let toml = format!("{base}{text}");
        let errors = match sluice::config::Pipeline::from_str("broken.toml", &toml, |_| None) {
            Ok(_) => panic!("accepted: {toml}"),
            Err(errors) => errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        };
        assert!(errors.contains("broken.toml"), "{errors}");
        for needle in *needles {
            assert!(errors.contains(needle), "{needle:?} not in: {errors}");
        }
    }
}
