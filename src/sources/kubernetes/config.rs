//! `[sources.ID] type = "kubernetes_logs"`: the options and their check (no IO).

use std::path::PathBuf;

use serde::Deserialize;

use crate::codec::container::ContainerFormat;
use crate::codec::multiline::MultilineConfig;
use crate::codec::DecodingConfig;
use crate::field_error::{at_least_one, FieldError};
use crate::sources::file::{FileSourceConfig, ReadFrom};

/// Where the service account's files are mounted in every pod.
pub(super) const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Tails the kubelet's container logs and adds each pod's metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesLogsConfig {
    /// Where the kubelet keeps the logs: `<pods_root>/*/*/*.log` are read.
    #[serde(default = "default_pods_root")]
    pub pods_root: PathBuf,
    /// Namespaces whose containers' logs are not read.
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    /// `key=value`: only pods having every one of these labels are read (once their
    /// labels are known from the API; before, and without `api`, every pod is).
    #[serde(default)]
    pub include_labels: Vec<String>,
    /// `key=value`: pods having any of these labels are left out (once known).
    #[serde(default)]
    pub exclude_labels: Vec<String>,
    /// The labels whose value becomes the event's `app`, first found first; without any
    /// (or without the API) the container's name.
    #[serde(default = "default_app_labels")]
    pub app_labels: Vec<String>,
    /// Annotations copied to `kubernetes.annotations` (none unless listed: they can be
    /// large, and hold what was never meant for logs).
    #[serde(default)]
    pub annotations: Vec<String>,
    /// The node this agent runs on, whose pods are watched; default `$SLUICE_NODE_NAME`.
    pub node_name: Option<String>,
    /// The Kubernetes API, for labels, annotations, node and owner. Without it only what
    /// the path says is added.
    pub api: Option<ApiConfig>,
    /// At most this many pods' metadata are kept (pods deleted the longest ago go first).
    #[serde(default = "default_max_pods")]
    pub max_pods: usize,
    /// How long a deleted pod's metadata is kept, for its files read after it went.
    #[serde(default = "default_deleted_pod_retention_secs")]
    pub deleted_pod_retention_secs: u64,
    /// The runtime's log format (default `auto`: CRI or Docker's json-file, per file).
    #[serde(default = "default_container")]
    pub container: ContainerFormat,
    // The file source's options, passed on (docs/file-source.md).
    #[serde(default)]
    pub read_from: ReadFrom,
    pub glob_interval_ms: Option<u64>,
    pub max_line_bytes: Option<usize>,
    #[serde(default)]
    pub decoding: DecodingConfig,
    pub multiline: Option<MultilineConfig>,
    pub ignore_older_secs: Option<u64>,
    pub rotate_wait_ms: Option<u64>,
    pub data_dir: Option<PathBuf>,
    /// The file source this one runs, built from the options above.
    #[serde(skip)]
    pub(super) file: Option<FileSourceConfig>,
    #[serde(skip)]
    pub(super) include_selector: Vec<(String, String)>,
    #[serde(skip)]
    pub(super) exclude_selector: Vec<(String, String)>,
}

/// `api = { url, token_file, ca_file }`; each defaults to the pod's service account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Default `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    pub url: Option<String>,
    /// A bearer token, read at each connection (projected tokens are rotated). Default the
    /// service account's, if that file exists.
    pub token_file: Option<PathBuf>,
    /// CA certificates of the API server. Default the service account's `ca.crt`.
    pub ca_file: Option<PathBuf>,
}

fn default_pods_root() -> PathBuf {
    PathBuf::from("/var/log/pods")
}

fn default_app_labels() -> Vec<String> {
    vec!["app.kubernetes.io/name".into(), "app".into()]
}

fn default_max_pods() -> usize {
    2_000
}

fn default_deleted_pod_retention_secs() -> u64 {
    600
}

fn default_container() -> ContainerFormat {
    ContainerFormat::Auto
}

/// A namespace name as Kubernetes allows it (an RFC 1123 label): also safe in a glob.
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn selector(field: &str, items: &[String]) -> Result<Vec<(String, String)>, FieldError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(FieldError::new(
                format!("{field}[{i}]"),
                format!("`{item}` is not `key=value`"),
            )),
        })
        .collect()
}

impl KubernetesLogsConfig {
    /// Checks the options and builds the file source it runs. Does no IO.
    pub fn build(mut self) -> Result<Self, FieldError> {
        if self.pods_root.as_os_str().is_empty() {
            return Err(FieldError::new("pods_root", "must not be empty"));
        }
        let root = self.pods_root.to_string_lossy().into_owned();
        if glob::Pattern::escape(&root) != root {
            return Err(FieldError::new(
                "pods_root",
                "must not hold glob characters (`*`, `?`, `[`, `]`)",
            ));
        }
        for (i, ns) in self.exclude_namespaces.iter().enumerate() {
            if !is_dns_label(ns) {
                return Err(FieldError::new(
                    format!("exclude_namespaces[{i}]"),
                    format!("`{ns}` is not a namespace name (lowercase letters, digits, `-`)"),
                ));
            }
        }
        self.include_selector = selector("include_labels", &self.include_labels)?;
        self.exclude_selector = selector("exclude_labels", &self.exclude_labels)?;
        at_least_one(&[("max_pods", self.max_pods as u64)])?;
        if let Some(url) = self.api.as_ref().and_then(|a| a.url.as_deref()) {
            let ok = url.parse::<hyper::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !ok {
                return Err(FieldError::new(
                    "api.url",
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
        }
        if self.node_name.as_deref() == Some("") {
            return Err(FieldError::new("node_name", "must not be empty"));
        }
        let root = root.trim_end_matches('/');
        let mut file = FileSourceConfig::with_include(vec![format!("{root}/*/*/*.log")]);
        // Namespaces are left out by their directories, so their files are never opened.
        file.exclude = self
            .exclude_namespaces
            .iter()
            .map(|ns| format!("{root}/{ns}_*/*/*.log"))
            .collect();
        file.read_from = self.read_from;
        if let Some(ms) = self.glob_interval_ms {
            file.glob_interval_ms = ms;
        }
        file.max_line_bytes = self.max_line_bytes;
        file.decoding = self.decoding;
        file.container = Some(self.container);
        file.multiline = self.multiline.clone();
        file.ignore_older_secs = self.ignore_older_secs;
        if let Some(ms) = self.rotate_wait_ms {
            file.rotate_wait_ms = ms;
        }
        file.data_dir = self.data_dir.clone();
        self.file = Some(file.build()?);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<KubernetesLogsConfig, FieldError> {
        let config: KubernetesLogsConfig =
            toml::from_str(toml).map_err(|e| FieldError::new("toml", e.to_string()))?;
        config.build()
    }

    #[test]
    fn defaults_read_the_kubelet_directory_as_cri_or_docker() {
        let c = parse("").unwrap();
        let file = c.file.unwrap();
        assert_eq!(file.include, ["/var/log/pods/*/*/*.log"]);
        assert_eq!(file.container, Some(ContainerFormat::Auto));
        assert_eq!(c.app_labels, ["app.kubernetes.io/name", "app"]);
        let c = parse(
            r#"pods_root = "/host/pods/"
exclude_namespaces = ["kube-system"]
include_labels = ["team = shop"]"#,
        )
        .unwrap();
        let file = c.file.unwrap();
        assert_eq!(file.include, ["/host/pods/*/*/*.log"]);
        assert_eq!(file.exclude, ["/host/pods/kube-system_*/*/*.log"]);
        assert_eq!(c.include_selector, [("team".into(), "shop".into())]);
    }

    #[test]
    fn errors_name_the_field() {
        for (toml, field) in [
            (r#"pods_root = """#, "pods_root"),
            (r#"pods_root = "/a/*""#, "pods_root"),
            (
                r#"exclude_namespaces = ["ok", "Bad_ns"]"#,
                "exclude_namespaces[1]",
            ),
            (r#"include_labels = ["app"]"#, "include_labels[0]"),
            (r#"exclude_labels = ["=x"]"#, "exclude_labels[0]"),
            ("max_pods = 0", "max_pods"),
            (r#"api = { url = "kubernetes:443" }"#, "api.url"),
            (r#"node_name = """#, "node_name"),
            ("glob_interval_ms = 0", "glob_interval_ms"),
            (
                "multiline = { preset = \"java\", max_lines = 0 }",
                "multiline.max_lines",
            ),
        ] {
            let err = parse(toml).unwrap_err();
            assert_eq!(err.field, field, "{toml}: {err}");
        }
        assert!(
            parse(r#"api = { token = "x" }"#).is_err(),
            "unknown api field"
        );
    }
}
