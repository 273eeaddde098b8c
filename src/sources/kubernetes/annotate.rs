//! What each event of a container's log file gets: the `kubernetes` object (from the path,
//! then from the pod's metadata once the API told it) and `app`; and the label selectors,
//! which leave out the events of pods they exclude once those pods' labels are known.

use std::path::Path;
use std::sync::{Arc, RwLock};

use super::path::PodPath;
use super::pods::{PodCache, PodMeta};
use crate::ack::AckStatus;
use crate::event::{fields, Event, Map, Value};
use crate::sources::file::{Annotate, FileAnnotator};
use crate::telemetry::{self, Counter};

/// The event field holding what Kubernetes says about the container.
pub(super) const KUBERNETES: &str = "kubernetes";

pub(super) struct KubernetesAnnotate {
    pub(super) id: Arc<str>,
    /// `None` without `api`.
    pub(super) cache: Option<Arc<RwLock<PodCache>>>,
    /// This node's name (`node_name`, `$SLUICE_NODE_NAME`), known without the API.
    pub(super) node: Option<Value>,
    pub(super) app_labels: Vec<String>,
    pub(super) include: Vec<(String, String)>,
    pub(super) exclude: Vec<(String, String)>,
}

impl Annotate for KubernetesAnnotate {
    fn file(&self, path: &Path) -> Box<dyn FileAnnotator> {
        let pod = PodPath::parse(path);
        if pod.is_none() {
            tracing::warn!(component_id = %self.id, path = %path.display(), "not laid out as <namespace>_<pod>_<uid>/<container>/<restart>.log; read without kubernetes fields");
        }
        let base = pod.as_ref().map(|p| {
            let mut m = Map::new();
            m.insert("namespace", Value::from(p.namespace.as_str()));
            m.insert("pod_name", Value::from(p.pod_name.as_str()));
            m.insert("pod_uid", Value::from(p.pod_uid.as_str()));
            m.insert("container_name", Value::from(p.container_name.as_str()));
            if let Some(n) = p.restart_count {
                m.insert("restart_count", Value::from(n));
            }
            if let Some(node) = &self.node {
                m.insert("node_name", node.clone());
            }
            m
        });
        let mut annotator = FileKubernetes {
            cache: self.cache.clone(),
            app_labels: self.app_labels.clone(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            discarded: telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", &self.id), ("reason", "label_selector")],
            ),
            uid: pod.as_ref().map(|p| p.pod_uid.clone()),
            container: pod.map(|p| p.container_name),
            base,
            seen: None,
            fields: None,
            app: None,
            keep: true,
        };
        annotator.rebuild(None);
        Box::new(annotator)
    }
}

struct FileKubernetes {
    cache: Option<Arc<RwLock<PodCache>>>,
    app_labels: Vec<String>,
    include: Vec<(String, String)>,
    exclude: Vec<(String, String)>,
    discarded: Counter,
    uid: Option<String>,
    container: Option<String>,
    /// What the path says.
    base: Option<Map>,
    /// The pod's metadata the fields below were built from.
    seen: Option<Arc<PodMeta>>,
    /// The `kubernetes` object every event gets.
    fields: Option<Value>,
    app: Option<Value>,
    /// False when the selectors leave the pod out.
    keep: bool,
}

impl FileKubernetes {
    fn rebuild(&mut self, meta: Option<Arc<PodMeta>>) {
        self.fields = self.base.as_ref().map(|base| {
            let mut m = base.clone();
            if let Some(meta) = &meta {
                for (k, v) in meta.fields.iter() {
                    m.insert(k.clone(), v.clone());
                }
            }
            Value::Object(m)
        });
        let labels = meta.as_ref().map(|m| &m.labels);
        let from_label = labels.and_then(|labels| {
            self.app_labels
                .iter()
                .find_map(|key| labels.get(key).filter(|v| !v.is_empty()))
        });
        self.app = from_label
            .or(self.container.as_ref())
            .map(|app| Value::from(app.as_str()));
        // Without labels (no API, or the pod not known yet), nothing is left out: losing
        // logs for want of metadata is worse than keeping some too many.
        self.keep = labels.is_none_or(|labels| {
            self.include.iter().all(|(k, v)| labels.get(k) == Some(v))
                && !self.exclude.iter().any(|(k, v)| labels.get(k) == Some(v))
        });
        self.seen = meta;
    }
}

impl FileAnnotator for FileKubernetes {
    fn annotate(&mut self, events: &mut Vec<Event>) {
        if let (Some(cache), Some(uid)) = (&self.cache, &self.uid) {
            let meta = cache.read().unwrap_or_else(|e| e.into_inner()).get(uid);
            let same = match (&meta, &self.seen) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                self.rebuild(meta);
            }
        }
        if !self.keep {
            self.discarded.inc(events.len() as u64);
            for event in events.drain(..) {
                event.ack(AckStatus::Delivered); // left out on purpose
            }
            return;
        }
        for event in events.iter_mut() {
            if let Some(fields) = &self.fields {
                event.fields.insert(KUBERNETES, fields.clone());
            }
            if let Some(app) = &self.app {
                if event.fields.get(fields::APP).is_none() {
                    event.fields.insert(fields::APP, app.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use super::*;

    const PATH: &str = "/var/log/pods/shop_web-1_u1/nginx/3.log";

    fn annotate(cache: Option<Arc<RwLock<PodCache>>>) -> KubernetesAnnotate {
        KubernetesAnnotate {
            id: "annotate_test".into(),
            cache,
            node: Some(Value::from("node-1")),
            app_labels: vec!["app.kubernetes.io/name".into(), "app".into()],
            include: vec![("team".into(), "shop".into())],
            exclude: vec![("logging".into(), "off".into())],
        }
    }

    fn cache_with(labels: &[(&str, &str)]) -> Arc<RwLock<PodCache>> {
        let mut cache = PodCache::new(10, Duration::from_secs(60));
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cache.upsert(
            PodMeta {
                uid: "u1".into(),
                labels,
                fields: Map::new(),
            },
            Instant::now(),
        );
        Arc::new(RwLock::new(cache))
    }

    /// The `app` of one event read from [`PATH`], or `None` when it was left out.
    fn app_of(cache: Option<Arc<RwLock<PodCache>>>) -> Option<String> {
        let mut annotator = annotate(cache).file(std::path::Path::new(PATH));
        let mut events = vec![Event::from_message("x".into())];
        annotator.annotate(&mut events);
        let event = events.pop()?;
        let k = event.fields.get(KUBERNETES).unwrap();
        let Value::Object(k) = k else { panic!("{k:?}") };
        assert_eq!(k.get("namespace").unwrap().as_str(), Some("shop"));
        assert_eq!(k.get("restart_count"), Some(&Value::from(3)));
        assert_eq!(k.get("node_name").unwrap().as_str(), Some("node-1"));
        event
            .fields
            .get(fields::APP)
            .unwrap()
            .as_str()
            .map(str::to_string)
    }

    #[test]
    fn app_and_selectors() {
        for (labels, expected) in [
            (None, Some("nginx")), // no API: the container, nothing left out
            (Some(&[("team", "shop")][..]), Some("nginx")),
            (Some(&[("team", "shop"), ("app", "web")][..]), Some("web")),
            (
                Some(
                    &[
                        ("team", "shop"),
                        ("app", "web"),
                        ("app.kubernetes.io/name", "shop-web"),
                    ][..],
                ),
                Some("shop-web"),
            ),
            (Some(&[("app", "web")][..]), None), // not in include_labels
            (Some(&[("team", "shop"), ("logging", "off")][..]), None), // exclude_labels
        ] {
            let cache = labels.map(cache_with);
            assert_eq!(app_of(cache).as_deref(), expected, "{labels:?}");
        }
        // The pod not known (yet): nothing left out.
        let unknown = Arc::new(RwLock::new(PodCache::new(10, Duration::from_secs(60))));
        assert_eq!(app_of(Some(unknown)).as_deref(), Some("nginx"));
    }
}
