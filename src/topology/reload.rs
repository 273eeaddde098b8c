//! Reloading a running pipeline: load and check the file again, and apply only the
//! difference (docs/reload.md).
//!
//! One controller task owns every component task and the [`Wiring`]; reload requests
//! (SIGHUP, `POST /v1/reload`, `--watch-config`) reach it through a [`Reloader`] and are
//! applied one at a time. A reload is all or nothing: everything that can fail (the file,
//! its check, a change reload cannot apply, binding a new source, opening a new sink) is
//! done before anything running is touched, and a failure leaves the old pipeline as it was.
//!
//! Applied, a reload leaves unchanged components running untouched (their queues, buffers,
//! connections and rule windows), changes what they read in place, retires removed and
//! changed components (they drain what they hold to their consumers of before and end), and
//! starts new instances of changed components only once their predecessors have ended, so
//! the old instance's events come out first and order per connection holds.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::components::{self, reads, set_key};
use super::wiring::Wiring;
use super::TopologyError;
use crate::config::{ComponentKind, OutputRef};
use crate::pipeline::{Pipeline, Sink};
use crate::sources::sockets::Sockets;
use crate::telemetry;

/// What a reload changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Applied {
    /// From the request to the new components spawned (the file's load and check included).
    pub took_ms: f64,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Components left running as they were.
    pub unchanged: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("invalid pipeline: {0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
    #[error("cannot apply: {0}")]
    Open(#[from] TopologyError),
    #[error("the router is shutting down")]
    ShuttingDown,
}

enum What {
    File,
    Pipeline(Box<Pipeline>),
}

pub(super) struct Request {
    what: What,
    reply: oneshot::Sender<Result<Applied, ReloadError>>,
}

/// Asks the running pipeline to reload.
#[derive(Clone)]
pub struct Reloader {
    tx: mpsc::Sender<Request>,
}

impl Reloader {
    /// Loads the pipeline file the router started from again and applies it.
    pub async fn reload(&self) -> Result<Applied, ReloadError> {
        self.ask(What::File).await
    }

    /// Applies `pipeline` (already loaded and checked).
    pub async fn apply(&self, pipeline: Pipeline) -> Result<Applied, ReloadError> {
        self.ask(What::Pipeline(Box::new(pipeline))).await
    }

    async fn ask(&self, what: What) -> Result<Applied, ReloadError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { what, reply })
            .await
            .map_err(|_| ReloadError::ShuttingDown)?;
        answer.await.map_err(|_| ReloadError::ShuttingDown)?
    }
}

/// One running instance of a component (or of a rule set).
pub(super) struct Instance {
    /// Fires when its task has ended.
    pub(super) done: CancellationToken,
    /// A source's own stop.
    pub(super) stop: Option<CancellationToken>,
}

/// What runs now, as the last applied configuration said.
#[derive(Default)]
pub(super) struct Current {
    pub(super) fingerprints: HashMap<String, String>,
    pub(super) api_fingerprint: String,
    pub(super) kinds: HashMap<String, ComponentKind>,
    /// Alert rules' inputs (rule sets are keyed by them).
    pub(super) inputs: HashMap<String, Vec<OutputRef>>,
    pub(super) disk_sinks: HashSet<String>,
    /// Sinks that serve API routes (the store): their routes are fixed at start.
    pub(super) endpoint_sinks: HashSet<String>,
    /// Rule sets by key: their rules' ids.
    pub(super) sets: HashMap<String, Vec<String>>,
    /// By component id, or rule set key.
    pub(super) instances: HashMap<String, Instance>,
}

impl Current {
    /// Records what `pipeline` is made of (its components are being started).
    pub(super) fn describe(&mut self, pipeline: &Pipeline) {
        self.fingerprints = pipeline.fingerprints.clone();
        self.api_fingerprint = pipeline.api_fingerprint.clone();
        self.kinds.clear();
        let mut kind = |id: &str, kind| {
            self.kinds.insert(id.to_string(), kind);
        };
        pipeline
            .sources
            .iter()
            .for_each(|c| kind(&c.id, ComponentKind::Source));
        pipeline
            .transforms
            .iter()
            .for_each(|c| kind(&c.id, ComponentKind::Transform));
        pipeline
            .sinks
            .iter()
            .for_each(|c| kind(&c.id, ComponentKind::Sink));
        pipeline
            .alerts
            .iter()
            .for_each(|c| kind(&c.id, ComponentKind::Alert));
        pipeline
            .enrichment_tables
            .iter()
            .for_each(|c| kind(&c.id, ComponentKind::EnrichmentTable));
        self.inputs = pipeline
            .alerts
            .iter()
            .map(|a| (a.id.clone(), a.inputs.clone()))
            .collect();
        self.disk_sinks = pipeline
            .sinks
            .iter()
            .filter(|s| s.buffer.kind == crate::buffer::BufferType::Disk)
            .map(|s| s.id.clone())
            .collect();
        self.endpoint_sinks = pipeline
            .sinks
            .iter()
            .filter(|s| serves_routes(&s.sink))
            .map(|s| s.id.clone())
            .collect();
    }

    fn status(&self, id: &str, new: &HashMap<String, String>) -> Status {
        match (self.fingerprints.get(id), new.get(id)) {
            (None, _) => Status::Added,
            (Some(old), Some(new)) if old == new => Status::Unchanged,
            _ => Status::Changed,
        }
    }
}

fn serves_routes(sink: &Sink) -> bool {
    #[cfg(feature = "store")]
    if matches!(sink, Sink::Store(_)) {
        return true;
    }
    let _ = sink;
    false
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Added,
    Changed,
    Unchanged,
}

pub(super) struct Controller {
    pub(super) path: PathBuf,
    pub(super) tasks: JoinSet<()>,
    pub(super) wiring: Wiring,
    pub(super) current: Current,
    pub(super) shutdown: CancellationToken,
    pub(super) streams_stop: CancellationToken,
    pub(super) registry: crate::alert::Registry,
    /// The sockets the running sources listen on, so that a source replaced at the same
    /// address passes its socket on instead of binding again (`sources::sockets`).
    pub(super) sockets: Sockets,
}

impl Controller {
    /// Runs until every component task has ended, applying reload requests meanwhile.
    pub(super) async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let reloads = telemetry::counter("config_reloads_total", &[]);
        let failures = telemetry::counter("config_reload_failures_total", &[]);
        let mut open = true;
        loop {
            tokio::select! {
                request = requests.recv(), if open => {
                    let Some(request) = request else {
                        open = false;
                        continue;
                    };
                    let result = self.handle(request.what).await;
                    match &result {
                        Ok(applied) => {
                            reloads.inc(1);
                            tracing::info!(
                                added = ?applied.added,
                                changed = ?applied.changed,
                                removed = ?applied.removed,
                                unchanged = applied.unchanged,
                                "reload applied in {:.1} ms", applied.took_ms
                            );
                        }
                        Err(error) => {
                            failures.inc(1);
                            tracing::error!(%error, "reload refused; the running pipeline is unchanged");
                        }
                    }
                    let _ = request.reply.send(result);
                }
                joined = self.tasks.join_next() => match joined {
                    None => break,
                    Some(Err(error)) => tracing::error!(%error, "component task panicked"),
                    Some(Ok(())) => {}
                },
            }
        }
    }

    async fn handle(&mut self, what: What) -> Result<Applied, ReloadError> {
        let started = Instant::now();
        if self.shutdown.is_cancelled() {
            return Err(ReloadError::ShuttingDown);
        }
        let pipeline = match what {
            What::Pipeline(pipeline) => *pipeline,
            What::File => {
                let path = self.path.clone();
                tokio::task::spawn_blocking(move || Pipeline::load(&path))
                    .await
                    .map_err(|e| ReloadError::Invalid(e.to_string()))?
                    .map_err(|errors| {
                        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                        ReloadError::Invalid(text.join("; "))
                    })?
            }
        };
        let mut applied = self.apply(pipeline).await?;
        applied.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(applied)
    }

    /// Applies `new`'s difference from what runs; nothing running is touched unless every
    /// new part could be opened.
    async fn apply(&mut self, new: Pipeline) -> Result<Applied, ReloadError> {
        self.refuse(&new)?;
        let result = self.stage_and_commit(new).await;
        if result.is_err() {
            self.wiring.abort();
        }
        result
    }

    /// Changes reload cannot apply (yet): said before anything is done.
    fn refuse(&self, new: &Pipeline) -> Result<(), ReloadError> {
        let cur = &self.current;
        let refuse = |what: String| {
            Err(ReloadError::Refused(format!(
                "{what}; restart the router to apply it"
            )))
        };
        if new.api_fingerprint != cur.api_fingerprint {
            return refuse("[api] changed: the API listener is kept as started".into());
        }
        let tables: HashSet<&str> = new
            .enrichment_tables
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        for (id, kind) in &cur.kinds {
            let status = cur.status(id, &new.fingerprints);
            let gone = !new.fingerprints.contains_key(id);
            if *kind == ComponentKind::EnrichmentTable && (gone || status != Status::Unchanged) {
                return refuse(format!("enrichment table `{id}` changed or removed"));
            }
            if cur.endpoint_sinks.contains(id) && (gone || status != Status::Unchanged) {
                return refuse(format!(
                    "sink `{id}` serves API routes (store) and changed or was removed"
                ));
            }
            if cur.disk_sinks.contains(id) && (gone || status != Status::Unchanged) {
                return refuse(format!(
                    "sink `{id}` has a disk buffer and changed or was removed"
                ));
            }
        }
        for id in tables {
            if !cur.kinds.contains_key(id) {
                return refuse(format!("enrichment table `{id}` added"));
            }
        }
        for sink in &new.sinks {
            if serves_routes(&sink.sink)
                && cur.status(&sink.id, &new.fingerprints) != Status::Unchanged
            {
                return refuse(format!(
                    "sink `{}` serves API routes (store) and was added or changed",
                    sink.id
                ));
            }
        }
        Ok(())
    }

    async fn stage_and_commit(&mut self, new: Pipeline) -> Result<Applied, ReloadError> {
        let mut next = Current::default();
        next.describe(&new);
        let Pipeline {
            sources,
            transforms,
            sinks,
            alerts,
            graph,
            enrichment_tables,
            fingerprints,
            ..
        } = new;
        let cur = &self.current;
        let mut applied = Applied::default();
        let mut retired_consumers = HashSet::new();
        let mut retired_producers = HashSet::new();
        // Components to spawn: kind, id (or set key), the instances to wait for, the task.
        type Pending = (
            &'static str,
            String,
            Vec<CancellationToken>,
            std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        );
        let mut pending: Vec<Pending> = Vec::new();
        let mut new_sources = Vec::new();
        let after = |id: &str| -> Vec<CancellationToken> {
            cur.instances
                .get(id)
                .map(|i| i.done.clone())
                .into_iter()
                .collect()
        };
        let note = |id: &str, status: Status, applied: &mut Applied, retired: &mut Vec<String>| {
            match status {
                Status::Added => applied.added.push(id.to_string()),
                Status::Changed => {
                    applied.changed.push(id.to_string());
                    retired.push(id.to_string());
                }
                Status::Unchanged => applied.unchanged += 1,
            }
        };
        let mut changed = Vec::new();

        // New transforms look tables up through the new pipeline's handles, filled here.
        let mut watchers = Vec::new();
        let any_new_transform = transforms
            .iter()
            .any(|t| cur.status(&t.id, &fingerprints) != Status::Unchanged);
        if any_new_transform {
            for spec in enrichment_tables {
                let loader =
                    spec.table
                        .open(&spec.handle)
                        .map_err(|e| TopologyError::EnrichmentTable {
                            id: spec.id.clone(),
                            message: e.to_string(),
                        })?;
                watchers.push((spec.handle, loader));
            }
        }

        // Queues first: every new instance's, and what unchanged ones read now.
        let mut sink_rxs = Vec::new();
        for sink in sinks {
            let status = cur.status(&sink.id, &fingerprints);
            note(&sink.id, status, &mut applied, &mut changed);
            if status == Status::Unchanged {
                self.wiring.set_reads(&sink.id, reads(&sink.inputs, &graph));
            } else {
                let rx = components::sink_queue(&sink, &graph, &mut self.wiring);
                sink_rxs.push((sink, rx, status));
            }
        }
        let mut transform_rxs = Vec::new();
        for transform in transforms {
            let status = cur.status(&transform.id, &fingerprints);
            note(&transform.id, status, &mut applied, &mut changed);
            if status == Status::Unchanged {
                self.wiring
                    .set_reads(&transform.id, reads(&transform.inputs, &graph));
            } else {
                let rx = components::memory_queue(
                    &transform.id,
                    &transform.id,
                    &transform.inputs,
                    &graph,
                    &mut self.wiring,
                    true,
                );
                transform_rxs.push((transform, rx));
            }
        }
        // A rule set is kept when the same rules, unchanged and reading the same inputs,
        // make it up; otherwise it starts anew once the sets that held its rules ended.
        let mut kept_sets = HashSet::new();
        let mut set_rxs = Vec::new();
        for set in components::alert_sets(alerts) {
            let key = set_key(&set);
            let same = cur.sets.contains_key(&key)
                && set.iter().all(|a| {
                    cur.status(&a.id, &fingerprints) == Status::Unchanged
                        && cur.inputs.get(&a.id) == Some(&a.inputs)
                });
            if same {
                applied.unchanged += set.len();
                kept_sets.insert(key);
                continue;
            }
            for alert in &set {
                match cur.kinds.contains_key(&alert.id) {
                    true => applied.changed.push(alert.id.clone()),
                    false => applied.added.push(alert.id.clone()),
                }
            }
            let rx = components::memory_queue(
                &key,
                &set[0].id,
                &set[0].inputs,
                &graph,
                &mut self.wiring,
                false,
            );
            set_rxs.push((key, set, rx));
        }
        let mut retired_sets = Vec::new();
        for (key, ids) in &cur.sets {
            if !kept_sets.contains(key) {
                retired_consumers.insert(key.clone());
                retired_producers.extend(ids.iter().cloned());
                retired_sets.push((key.clone(), ids.clone()));
            }
        }

        // The IO that can fail, before anything running changes: bind new sources (a
        // changed source's new address is bound while the old one still listens; at the
        // same address, the new instance takes the old one's socket), open new sinks.
        let mut sockets = Sockets::default();
        for source in sources {
            let status = cur.status(&source.id, &fingerprints);
            note(&source.id, status, &mut applied, &mut changed);
            if status == Status::Unchanged {
                sockets.set(&source.id, self.sockets.get(&source.id).to_vec());
                continue;
            }
            let stop = self.shutdown.child_token();
            let id = source.id.clone();
            let opened = components::open_source(
                source,
                &graph,
                &mut self.wiring,
                stop.clone(),
                &self.sockets,
            )
            .await?;
            if let Some(address) = opened.address {
                tracing::info!(component_id = %id, %address, "listening");
            }
            let waits = match components::starts_after_predecessor(&opened) {
                true => after(&id),
                false => Vec::new(),
            };
            sockets.set(&id, opened.sockets);
            new_sources.push((id, stop, waits, opened.task));
        }
        for (sink, rx, _) in sink_rxs {
            let id = sink.id.clone();
            let opened = components::open_sink(
                sink,
                rx,
                &graph,
                &mut self.wiring,
                &self.shutdown,
                &self.streams_stop,
                &mut self.tasks,
            )?;
            let task = opened.task;
            // A changed sink, or one added back while its removed instance still drains, starts
            // once that instance has ended: they may write to the same place.
            let waits = after(&id);
            let name = id.clone();
            pending.push((
                "sink",
                id,
                waits,
                Box::pin(async move {
                    if let Err(error) = task.await {
                        tracing::error!(component_id = %name, %error, "sink stopped");
                    }
                }),
            ));
        }
        for (transform, rx) in transform_rxs {
            let id = transform.id.clone();
            let task = components::transform_task(transform, rx, &graph, &mut self.wiring);
            pending.push(("transform", id.clone(), after(&id), Box::pin(task)));
        }
        for (key, set, rx) in set_rxs {
            let ids: Vec<String> = set.iter().map(|a| a.id.clone()).collect();
            let waits = retired_sets
                .iter()
                .filter(|(_, old)| old.iter().any(|id| ids.contains(id)))
                .filter_map(|(old_key, _)| cur.instances.get(old_key).map(|i| i.done.clone()))
                .collect();
            let task =
                components::alert_task(set, rx, &graph, &mut self.wiring, self.registry.clone());
            next.sets.insert(key.clone(), ids);
            pending.push(("alert", key, waits, Box::pin(task)));
        }
        for key in kept_sets {
            if let Some(ids) = cur.sets.get(&key) {
                next.sets.insert(key, ids.clone());
            }
        }

        // Removed components: out of the wiring, their queues close, they drain and end.
        for (id, kind) in &cur.kinds {
            if !fingerprints.contains_key(id) && *kind != ComponentKind::Alert {
                applied.removed.push(id.clone());
                retired_consumers.insert(id.clone());
                retired_producers.insert(id.clone());
            }
            if *kind == ComponentKind::Alert && !next.kinds.contains_key(id) {
                applied.removed.push(id.clone());
            }
        }

        retired_consumers.extend(changed.iter().cloned());
        retired_producers.extend(changed);

        // Nothing failed: the switch.
        self.wiring.commit(&retired_consumers, &retired_producers);
        let mut instances = std::mem::take(&mut self.current.instances);
        for id in &retired_producers {
            if let Some(instance) = instances.get(id) {
                if let Some(stop) = &instance.stop {
                    stop.cancel();
                }
            }
        }
        for (kind, id, waits, task) in pending {
            let done = components::spawn(&mut self.tasks, kind, &id, waits, task);
            instances.insert(id, Instance { done, stop: None });
        }
        for (id, stop, waits, task) in new_sources {
            let name = id.clone();
            let done = components::spawn(&mut self.tasks, "source", &id, waits, async move {
                if let Err(error) = task.await {
                    tracing::error!(component_id = %name, %error, "source stopped");
                }
            });
            instances.insert(
                id,
                Instance {
                    done,
                    stop: Some(stop),
                },
            );
        }
        for (handle, loader) in watchers {
            tokio::spawn(handle.watch(loader, self.streams_stop.clone()));
        }
        // Instances of what no longer runs are kept until they have drained, so that one
        // added back under the same id waits for them.
        instances.retain(|id, instance| {
            next.kinds.contains_key(id)
                || next.sets.contains_key(id)
                || !instance.done.is_cancelled()
        });
        next.instances = instances;
        self.current = next;
        // Sockets of removed sources, and old addresses of changed ones, close once their
        // last instance has ended.
        self.sockets = sockets;
        Ok(applied)
    }
}

/// A reloader and the receiving end its controller reads.
pub(super) fn requests() -> (Reloader, mpsc::Receiver<Request>) {
    let (tx, rx) = mpsc::channel(8);
    (Reloader { tx }, rx)
}
