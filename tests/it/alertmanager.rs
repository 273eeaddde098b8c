//! A real Prometheus Alertmanager (Debian `prometheus-alertmanager`) on loopback for the
//! alert tests, with its own API read back.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::util::{free_port, get_json, poll, tempdir};

/// A real Alertmanager on loopback, killed on drop.
pub(crate) struct Alertmanager {
    child: std::process::Child,
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    pub(crate) async fn start() -> Alertmanager {
        let dir = tempdir();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: dummy\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: dummy\n",
        )
        .unwrap();
        let port = free_port();
        let child = std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Empty: no cluster listener, no gossip.
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("alertmanager starts");
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let ready = format!("{}/-/ready", am.url);
        poll("alertmanager ready", || async {
            let client: Client<_, Empty<Bytes>> =
                Client::builder(TokioExecutor::new()).build_http();
            let response = client.get(ready.parse().ok()?).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        am
    }

    /// Alertmanager's own list of alerts (`GET /api/v2/alerts`).
    pub(crate) async fn alerts(&self) -> Vec<Value> {
        match get_json(&format!("{}/api/v2/alerts", self.url)).await {
            Some(Value::Array(alerts)) => alerts,
            _ => Vec::new(),
        }
    }

    /// The alert named `name` for `app` that Alertmanager considers active (listed, with an
    /// `endsAt` in the future).
    pub(crate) async fn active(&self, name: &str, app: &str) -> Option<Value> {
        let now = chrono::Utc::now();
        self.alerts().await.into_iter().find(|a| {
            a["labels"]["alertname"] == name
                && a["labels"]["app"] == app
                && a["endsAt"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_none_or(|t| t > now)
        })
    }
}
