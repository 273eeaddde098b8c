//! The pods of this node as the API describes them (`v1.Pod`, only the fields used), and
//! the bounded in-memory cache the watch keeps and every file's annotator reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::event::{Map, Value};

/// `v1.Pod`, as much as is used; unknown fields are ignored, missing ones empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Pod {
    pub(super) metadata: ObjectMeta,
    pub(super) spec: PodSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ObjectMeta {
    pub(super) name: String,
    pub(super) namespace: String,
    pub(super) uid: String,
    pub(super) resource_version: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) annotations: BTreeMap<String, String>,
    pub(super) owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct OwnerReference {
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) controller: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct PodSpec {
    pub(super) node_name: String,
}

/// What is known of one pod, with the fields it adds to events built once.
#[derive(Debug)]
pub(super) struct PodMeta {
    pub(super) uid: String,
    pub(super) labels: BTreeMap<String, String>,
    /// `labels`, `annotations` (the listed ones), `node_name`, `owner_kind`, `owner_name`:
    /// merged into each event's `kubernetes` object.
    pub(super) fields: Map,
}

/// The controller that owns a pod, as a person would name it: a ReplicaSet named
/// `<deployment>-<pod-template-hash>` is reported as that Deployment.
pub(super) fn owner(pod: &Pod) -> Option<(String, String)> {
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .find(|o| o.controller)
        .or_else(|| pod.metadata.owner_references.first())?;
    if owner.kind == "ReplicaSet" {
        let hash = pod.metadata.labels.get("pod-template-hash");
        let trimmed = match hash {
            Some(hash) => owner
                .name
                .strip_suffix(hash.as_str())
                .and_then(|n| n.strip_suffix('-')),
            None => owner.name.rsplit_once('-').map(|(name, _)| name),
        };
        if let Some(deployment) = trimmed.filter(|n| !n.is_empty()) {
            return Some(("Deployment".into(), deployment.into()));
        }
    }
    Some((owner.kind.clone(), owner.name.clone()))
}

impl PodMeta {
    /// Keeps of `pod` what events get: the labels, the annotations in `annotations`, the
    /// node and the owner.
    pub(super) fn new(pod: Pod, annotations: &[String]) -> Self {
        let mut fields = Map::new();
        let labels: Map = pod
            .metadata
            .labels
            .iter()
            .map(|(k, v)| (k.as_str().into(), Value::from(v.as_str())))
            .collect();
        fields.insert("labels", Value::Object(labels));
        let kept: Map = annotations
            .iter()
            .filter_map(|k| {
                let v = pod.metadata.annotations.get(k)?;
                Some((k.as_str().into(), Value::from(v.as_str())))
            })
            .collect();
        if !kept.is_empty() {
            fields.insert("annotations", Value::Object(kept));
        }
        if !pod.spec.node_name.is_empty() {
            fields.insert("node_name", Value::from(pod.spec.node_name.as_str()));
        }
        if let Some((kind, name)) = owner(&pod) {
            fields.insert("owner_kind", Value::from(kind));
            fields.insert("owner_name", Value::from(name));
        }
        Self {
            uid: pod.metadata.uid,
            labels: pod.metadata.labels,
            fields,
        }
    }
}

/// The pods known, by UID. Bounded: at most `max_pods`; deleted pods are kept for
/// `retention` (their files are read to the end after they go), and are the first to
/// make room.
pub(super) struct PodCache {
    pods: HashMap<String, Entry>,
    max_pods: usize,
    retention: Duration,
}

struct Entry {
    meta: Arc<PodMeta>,
    deleted_at: Option<Instant>,
}

impl PodCache {
    pub(super) fn new(max_pods: usize, retention: Duration) -> Self {
        Self {
            pods: HashMap::new(),
            max_pods,
            retention,
        }
    }

    pub(super) fn get(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.pods.get(uid).map(|e| e.meta.clone())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.pods.len()
    }

    /// Adds or replaces a pod; false when the cache is full of live pods and it is new.
    pub(super) fn upsert(&mut self, meta: PodMeta, now: Instant) -> bool {
        if !self.pods.contains_key(&meta.uid) && self.pods.len() >= self.max_pods {
            self.expire(now);
            if self.pods.len() >= self.max_pods && !self.evict_oldest_deleted() {
                return false;
            }
        }
        let uid = meta.uid.clone();
        self.pods.insert(
            uid,
            Entry {
                meta: Arc::new(meta),
                deleted_at: None,
            },
        );
        true
    }

    /// Marks a pod deleted: its metadata stays for `retention`.
    pub(super) fn delete(&mut self, uid: &str, now: Instant) {
        if let Some(entry) = self.pods.get_mut(uid) {
            entry.deleted_at.get_or_insert(now);
        }
        self.expire(now);
    }

    /// After a new list: the pods it did not hold were deleted meanwhile.
    pub(super) fn mark_missing_deleted(&mut self, listed: &[String], now: Instant) {
        let listed: std::collections::HashSet<&str> = listed.iter().map(String::as_str).collect();
        for (uid, entry) in &mut self.pods {
            if !listed.contains(uid.as_str()) {
                entry.deleted_at.get_or_insert(now);
            }
        }
        self.expire(now);
    }

    /// Forgets the pods deleted longer than `retention` ago.
    pub(super) fn expire(&mut self, now: Instant) {
        let retention = self.retention;
        self.pods.retain(|_, e| {
            e.deleted_at
                .is_none_or(|at| now.saturating_duration_since(at) < retention)
        });
    }

    fn evict_oldest_deleted(&mut self) -> bool {
        let oldest = self
            .pods
            .iter()
            .filter_map(|(uid, e)| e.deleted_at.map(|at| (at, uid.clone())))
            .min();
        match oldest {
            Some((_, uid)) => self.pods.remove(&uid).is_some(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: &str) -> Pod {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn names_the_owner_as_people_do() {
        for (json, expected) in [
            (
                r#"{"metadata":{"labels":{"pod-template-hash":"7d4b9c8f6d"},"ownerReferences":[{"kind":"ReplicaSet","name":"web-7d4b9c8f6d","controller":true}]}}"#,
                Some(("Deployment", "web")),
            ),
            (
                r#"{"metadata":{"ownerReferences":[{"kind":"ReplicaSet","name":"my-web-5f6d","controller":true}]}}"#,
                Some(("Deployment", "my-web")),
            ),
            (
                r#"{"metadata":{"ownerReferences":[{"kind":"StatefulSet","name":"db","controller":true}]}}"#,
                Some(("StatefulSet", "db")),
            ),
            (
                r#"{"metadata":{"ownerReferences":[{"kind":"DaemonSet","name":"sluice","controller":true}]}}"#,
                Some(("DaemonSet", "sluice")),
            ),
            (
                r#"{"metadata":{"ownerReferences":[{"kind":"Job","name":"backup-28123","controller":true}]}}"#,
                Some(("Job", "backup-28123")),
            ),
            (r#"{"metadata":{}}"#, None),
        ] {
            let got = owner(&pod(json));
            assert_eq!(
                got,
                expected.map(|(k, n)| (k.to_string(), n.to_string())),
                "{json}"
            );
        }
    }

    #[test]
    fn keeps_only_listed_annotations() {
        let meta = PodMeta::new(
            pod(
                r#"{"metadata":{"uid":"u","labels":{"app":"web"},"annotations":{"a":"1","secret":"x"}},"spec":{"nodeName":"n1"}}"#,
            ),
            &["a".to_string(), "missing".to_string()],
        );
        let annotations = meta.fields.get("annotations").unwrap();
        assert_eq!(serde_json::to_string(annotations).unwrap(), r#"{"a":"1"}"#);
        assert_eq!(meta.fields.get("node_name").unwrap().as_str(), Some("n1"));
    }

    fn meta(uid: &str) -> PodMeta {
        PodMeta {
            uid: uid.into(),
            labels: BTreeMap::new(),
            fields: Map::new(),
        }
    }

    #[test]
    fn is_bounded_and_keeps_deleted_pods_for_a_while() {
        let now = Instant::now();
        let mut cache = PodCache::new(2, Duration::from_secs(60));
        assert!(cache.upsert(meta("a"), now));
        assert!(cache.upsert(meta("b"), now));
        assert!(!cache.upsert(meta("c"), now), "full of live pods");
        cache.delete("a", now);
        assert!(cache.get("a").is_some(), "kept after deletion");
        assert!(cache.upsert(meta("c"), now), "the deleted pod makes room");
        assert!(cache.get("a").is_none());
        cache.mark_missing_deleted(&["c".to_string()], now);
        assert!(cache.get("b").is_some());
        cache.expire(now + Duration::from_secs(61));
        assert!(cache.get("b").is_none());
        assert!(cache.get("c").is_some());
        assert_eq!(cache.len(), 1);
    }
}
