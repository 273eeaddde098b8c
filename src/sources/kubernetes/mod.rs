//! The `kubernetes_logs` source: the `file` source on the kubelet's log files
//! (`/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`), read as CRI or
//! Docker lines, each event given a `kubernetes` object and an `app`.
//!
//! Everything about files (discovery, fingerprints, checkpoints moved by
//! acknowledgement, rotation, reading deleted files to their end, `container`,
//! `multiline`) is the file source's; this source adds an [`Annotate`] hook
//! ([`annotate`]) and, with `api`, a [`watch`] of the node's pods whose metadata the hook
//! reads from a bounded cache ([`pods`]). Because a deleted pod's files are read to their
//! end through their open descriptors (`rotate_wait_ms`) and its metadata is kept for
//! `deleted_pod_retention_secs`, a pod that lives for seconds loses no line and keeps its
//! labels.

mod annotate;
mod config;
mod path;
mod pods;
mod watch;

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use config::{ApiConfig, KubernetesLogsConfig};

use annotate::KubernetesAnnotate;
use config::SERVICE_ACCOUNT_DIR;
use pods::PodCache;
use watch::{Api, Watcher};

use super::{SourceContext, SourceError};
use crate::delivery::http::HttpClient;
use crate::sources::file::Annotate;

/// How long the start waits for the first pod list, so that files already there get their
/// labels from their first line. An API that refuses connections ends the wait at once.
const INITIAL_SYNC: Duration = Duration::from_secs(10);

/// The node's name when `node_name` is not set: the DaemonSet sets it from the downward
/// API (`spec.nodeName`).
const NODE_NAME_ENV: &str = "SLUICE_NODE_NAME";

/// What the start resolved: the API's address and client, the node.
pub struct OpenedKubernetes {
    api: Option<Api>,
    node: Option<String>,
}

fn start_error(field: &'static str, message: String) -> SourceError {
    SourceError::Field { field, message }
}

impl KubernetesLogsConfig {
    /// At start: creates the checkpoint directory and resolves the API (URL, CA file,
    /// node) from the options and the service account's defaults.
    pub fn open(&self, id: &str) -> Result<OpenedKubernetes, SourceError> {
        if let Some(file) = &self.file {
            file.open(id)?;
        }
        let node = self
            .node_name
            .clone()
            .or_else(|| std::env::var(NODE_NAME_ENV).ok().filter(|n| !n.is_empty()));
        let Some(api) = &self.api else {
            return Ok(OpenedKubernetes { api: None, node });
        };
        let base = match &api.url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => in_cluster_url().ok_or_else(|| {
                start_error(
                    "api.url",
                    "not set, and KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not in the environment (not in a pod?)".into(),
                )
            })?,
        };
        let account = Path::new(SERVICE_ACCOUNT_DIR);
        let token_file = api.token_file.clone().or_else(|| {
            let path = account.join("token");
            path.exists().then_some(path)
        });
        let https = base.starts_with("https://");
        let client = if https {
            let ca_file = api.ca_file.clone().or_else(|| {
                let path = account.join("ca.crt");
                path.exists().then_some(path)
            });
            HttpClient::with_tls(
                crate::tls::client_config(ca_file.as_deref(), true)
                    .map_err(|e| e.for_field("api.ca_file"))?,
            )
        } else {
            HttpClient::plain()
        };
        if node.is_none() {
            tracing::warn!(component_id = %id, "node_name not set and {NODE_NAME_ENV} not in the environment: watching the pods of every node");
        }
        Ok(OpenedKubernetes {
            api: Some(Api {
                client,
                base,
                token_file,
            }),
            node,
        })
    }

    pub async fn run(
        self,
        opened: OpenedKubernetes,
        ctx: SourceContext,
    ) -> Result<(), SourceError> {
        let Some(file) = self.file.clone() else {
            return Err(start_error(
                "type",
                "kubernetes_logs run without build".into(),
            ));
        };
        let node = opened.node;
        let cache = opened.api.map(|api| {
            let cache = Arc::new(RwLock::new(PodCache::new(
                self.max_pods,
                Duration::from_secs(self.deleted_pod_retention_secs),
            )));
            let watcher = Watcher::new(
                ctx.id.clone(),
                api,
                node.clone(),
                self.annotations.clone(),
                cache.clone(),
            );
            let (synced, first_list) = tokio::sync::oneshot::channel();
            let stop = ctx.shutdown.child_token();
            tokio::spawn(watcher.run(stop.clone(), synced));
            (cache, first_list, stop)
        });
        let (cache, stop) = match cache {
            Some((cache, first_list, stop)) => {
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => {}
                    _ = tokio::time::timeout(INITIAL_SYNC, first_list) => {}
                }
                (Some(cache), Some(stop))
            }
            None => (None, None),
        };
        let annotate: Arc<dyn Annotate> = Arc::new(KubernetesAnnotate {
            id: ctx.id.clone(),
            cache,
            node: node.map(crate::event::Value::from),
            app_labels: self.app_labels.clone(),
            include: self.include_selector.clone(),
            exclude: self.exclude_selector.clone(),
        });
        let result = file.run_annotated(ctx, Some(annotate)).await;
        if let Some(stop) = stop {
            stop.cancel();
        }
        result
    }
}

/// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, as every pod has.
fn in_cluster_url() -> Option<String> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").ok()?;
    let host = if host.contains(':') {
        format!("[{host}]") // IPv6
    } else {
        host
    };
    Some(format!("https://{host}:{port}"))
}
