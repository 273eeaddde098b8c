//! Alert rules on the live stream, against a real Prometheus Alertmanager on loopback
//! (`alertmanager.rs`): lifecycle, restarts, the API and the CLI. The webhook, Slack and
//! PagerDuty notifiers are tested in `notifiers.rs`. Windows are 2 s so each test takes
//! seconds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::alertmanager::Alertmanager;
use crate::recorder::Recorder;
use crate::util::{free_port, get_json, have_tool, poll, sluice_bin, tempdir, wait_until, Router};

/// Sends JSON lines on one TCP connection.
pub(crate) struct Feed(TcpStream);

impl Feed {
    pub(crate) async fn connect(addr: SocketAddr) -> Feed {
        Feed(TcpStream::connect(addr).await.unwrap())
    }

    pub(crate) async fn send(&mut self, app: &str, level: &str, n: usize) {
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
        let errors = match sluice::pipeline::Pipeline::from_str("broken.toml", &toml, |_| None) {
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
