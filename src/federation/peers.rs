//! The peers a federating router asks: a fixed list (`[api] peers`), or one peer per address
//! of a DNS name (`peers_dns`, a Kubernetes headless Service has one per ready pod),
//! resolved again every `peers_refresh_secs` with tokio's resolver so that pods joining and
//! leaving are followed without a restart.
//!
//! A failed resolution keeps the last list (a DNS hiccup must not empty every query), is
//! counted (`federation_dns_failures_total`) and logged at most once a minute.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::PeerSource;
use crate::telemetry::LogLimiter;

/// What the peers are known to be: a list, or why there is none yet.
#[derive(Debug, Clone)]
enum Known {
    /// Not resolved yet (the first resolution is under way).
    Pending,
    List(Arc<Vec<String>>),
    /// The name never resolved; the reason of the last attempt.
    Unresolved(String),
}

/// The current peer list, shared by every request.
#[derive(Clone)]
pub(super) struct Peers {
    rx: watch::Receiver<Known>,
}

impl Peers {
    /// Peers from `source`; a DNS name is resolved at once and then every `refresh` until
    /// `stop`.
    pub(super) fn start(source: PeerSource, refresh: Duration, stop: CancellationToken) -> Peers {
        match source {
            PeerSource::List(list) => {
                let (_tx, rx) = watch::channel(Known::List(Arc::new(list)));
                Peers { rx }
            }
            PeerSource::Dns { scheme, host, port } => {
                let (tx, rx) = watch::channel(Known::Pending);
                tokio::spawn(resolve_loop(scheme, host, port, refresh, tx, stop));
                Peers { rx }
            }
        }
    }

    /// The peers now; before the first resolution, waits for it up to `wait`.
    pub(super) async fn current(&self, wait: Duration) -> Result<Arc<Vec<String>>, String> {
        let mut rx = self.rx.clone();
        let known =
            match tokio::time::timeout(wait, rx.wait_for(|k| !matches!(k, Known::Pending))).await {
                Ok(Ok(known)) => known.clone(),
                Ok(Err(_)) => return Err("the peer resolver stopped".into()),
                Err(_) => return Err("the peers' name is not resolved yet".into()),
            };
        match known {
            Known::List(list) if list.is_empty() => Err("no peers".into()),
            Known::List(list) => Ok(list),
            Known::Unresolved(reason) => Err(reason),
            Known::Pending => Err("the peers' name is not resolved yet".into()),
        }
    }
}

async fn resolve_loop(
    scheme: String,
    host: String,
    port: u16,
    refresh: Duration,
    tx: watch::Sender<Known>,
    stop: CancellationToken,
) {
    let mut warnings = LogLimiter::new(Duration::from_secs(60));
    let failures = crate::telemetry::counter("federation_dns_failures_total", &[]);
    loop {
        match resolve(&scheme, &host, port).await {
            Ok(list) => {
                tx.send_if_modified(|known| match known {
                    Known::List(old) if **old == list => false,
                    _ => {
                        tracing::info!(peers = ?list, name = %host, "federation peers resolved");
                        *known = Known::List(Arc::new(list));
                        true
                    }
                });
            }
            Err(reason) => {
                failures.inc(1);
                if let Some(suppressed) = warnings.check() {
                    tracing::warn!(name = %host, %reason, suppressed, "cannot resolve the federation peers; keeping the last list");
                }
                tx.send_if_modified(|known| match known {
                    Known::List(_) => false,
                    _ => {
                        *known = Known::Unresolved(format!("cannot resolve {host}: {reason}"));
                        true
                    }
                });
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(refresh) => {}
        }
    }
}

/// `scheme://ADDRESS:PORT` for each address `host` resolves to, sorted, so that a list
/// that did not change compares equal.
async fn resolve(scheme: &str, host: &str, port: u16) -> Result<Vec<String>, String> {
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let mut list: Vec<String> = addresses.map(|a| format!("{scheme}://{a}")).collect();
    list.sort();
    list.dedup();
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_resolves_to_one_peer_per_address() {
        let stop = CancellationToken::new();
        let peers = Peers::start(
            PeerSource::Dns {
                scheme: "http".into(),
                host: "127.0.0.1".into(),
                port: 8686,
            },
            Duration::from_secs(30),
            stop.clone(),
        );
        let list = peers
            .current(Duration::from_secs(10))
            .await
            .expect("resolves");
        assert_eq!(*list, ["http://127.0.0.1:8686"]);
        stop.cancel();
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_says_so() {
        let stop = CancellationToken::new();
        let peers = Peers::start(
            PeerSource::Dns {
                scheme: "http".into(),
                host: "no-such-host.invalid".into(),
                port: 8686,
            },
            Duration::from_secs(30),
            stop.clone(),
        );
        let error = peers
            .current(Duration::from_secs(10))
            .await
            .expect_err("no such name");
        assert!(error.contains("no-such-host.invalid"), "{error}");
        stop.cancel();
    }
}
