//! What the kubelet's log path says about a container:
//! `/var/log/pods/<namespace>_<pod name>_<pod uid>/<container name>/<restart count>.log`.
//!
//! Namespace and pod names are DNS labels and subdomains and a UID is hex and dashes, so
//! none holds an `_`: the directory splits in exactly three. Rotated files
//! (`0.log.20241006-101500`) keep their directory and count as the same restart.

use std::path::Path;

/// The pod and container a log file belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PodPath {
    pub(super) namespace: String,
    pub(super) pod_name: String,
    pub(super) pod_uid: String,
    pub(super) container_name: String,
    pub(super) restart_count: Option<i64>,
}

impl PodPath {
    /// Reads the last three components of `path`; `None` when they are not laid out as
    /// the kubelet lays them out.
    pub(super) fn parse(path: &Path) -> Option<Self> {
        let file = path.file_name()?.to_str()?;
        let container = path.parent()?;
        let pod = container.parent()?.file_name()?.to_str()?;
        let container_name = container.file_name()?.to_str()?;
        let mut parts = pod.split('_');
        let (namespace, pod_name, pod_uid) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || [namespace, pod_name, pod_uid, container_name]
                .iter()
                .any(|s| s.is_empty())
        {
            return None;
        }
        let restart_count = file.split('.').next().and_then(|n| n.parse::<i64>().ok());
        Some(Self {
            namespace: namespace.to_string(),
            pod_name: pod_name.to_string(),
            pod_uid: pod_uid.to_string(),
            container_name: container_name.to_string(),
            restart_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kubelet_layout() {
        let p = PodPath::parse(Path::new(
            "/var/log/pods/default_web-7d4b9c8f6d-x2x7k_3c1f6a2e-8d7b-4b9e-9f64-2a1d0c5e7b11/nginx/2.log",
        ))
        .unwrap();
        assert_eq!(
            p,
            PodPath {
                namespace: "default".into(),
                pod_name: "web-7d4b9c8f6d-x2x7k".into(),
                pod_uid: "3c1f6a2e-8d7b-4b9e-9f64-2a1d0c5e7b11".into(),
                container_name: "nginx".into(),
                restart_count: Some(2),
            }
        );
        let rotated = PodPath::parse(Path::new(
            "/x/kube-system_coredns-1_u1/coredns/0.log.20241006-101500",
        ))
        .unwrap();
        assert_eq!(rotated.restart_count, Some(0));
        for bad in [
            "/var/log/pods/default_web/nginx/0.log",
            "/var/log/pods/a_b_c_d/nginx/0.log",
            "/var/log/pods/_b_c/nginx/0.log",
            "0.log",
        ] {
            assert_eq!(PodPath::parse(Path::new(bad)), None, "{bad}");
        }
    }
}
