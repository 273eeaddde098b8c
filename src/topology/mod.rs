//! The running pipeline: one task per component, connected by bounded batch channels.
//!
//! Starting happens in three steps: make one input queue per transform, sink and rule set;
//! make every output's [`Fanout`] and give each its consumers (`wiring.rs`); spawn the
//! components, each inside a tracing span carrying its id. One controller task
//! (`reload.rs`) owns the component tasks and applies reloads while they run.
//!
//! Shutdown needs no coordination beyond channel closure: sources stop (at EOF or when the
//! shutdown token fires) and drop their senders; a transform ends when its queue is closed
//! and empty, dropping its own senders; a sink ends when its queue is closed and empty. So
//! every event read before shutdown reaches every sink before the router exits.

pub mod client;
mod components;
mod reload;
mod transform_task;
pub mod watch;
mod wiring;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::pipeline::Pipeline;
use crate::sources::sockets::Sockets;
use crate::sources::SourceError;

pub use reload::{Applied, ReloadError, Reloader};

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("source `{id}`: {source}")]
    Source { id: String, source: SourceError },
    #[error("api: cannot bind {address}: {source}")]
    Api {
        address: String,
        source: std::io::Error,
    },
    #[error("api: {message}")]
    ApiAuth { message: String },
    #[error("api: {0}")]
    ApiTls(#[from] crate::tls::TlsError),
    #[error("sink `{id}`: cannot open disk buffer: {message}")]
    Buffer { id: String, message: String },
    #[error("sink `{id}`: {message}")]
    Sink { id: String, message: String },
    #[error("enrichment table `{id}`: {message}")]
    EnrichmentTable { id: String, message: String },
}

/// Runs `pipeline` until every source has ended (EOF, or `shutdown` fired) and every event
/// has drained into the sinks. Fails before running anything if a source cannot bind.
pub async fn run(pipeline: Pipeline, shutdown: CancellationToken) -> Result<(), TopologyError> {
    let running = start(pipeline, shutdown).await?;
    running.wait().await;
    Ok(())
}

/// A started pipeline; [`RunningTopology::wait`] resolves when it has drained.
pub struct RunningTopology {
    controller: tokio::task::JoinHandle<()>,
    api_task: Option<tokio::task::JoinHandle<()>>,
    api_stop: CancellationToken,
    /// Ends the API's long-lived streams (live tail). A child of the shutdown token, so
    /// they end as soon as shutdown starts; `wait` fires it too, for pipelines that end
    /// at EOF without a shutdown.
    streams_stop: CancellationToken,
    reloader: Reloader,
    /// Addresses the network sources actually bound (useful with port 0 in tests).
    pub bound: HashMap<String, std::net::SocketAddr>,
}

impl RunningTopology {
    /// Asks for reloads of the running pipeline (SIGHUP, `--watch-config`, tests).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    pub async fn wait(self) {
        if let Err(error) = self.controller.await {
            tracing::error!(%error, "topology controller panicked");
        }
        // The API drains its requests in progress before it returns, and a stream is never
        // done by itself: streams end first.
        self.streams_stop.cancel();
        self.api_stop.cancel();
        if let Some(api) = self.api_task {
            let _ = api.await;
        }
    }
}

/// The key under which [`RunningTopology::bound`] reports the API listener's address.
pub const API_ID: &str = "api";

/// File sinks reopen their files and enrichment tables reload theirs (SIGUSR1,
/// `POST /v1/reopen`; after logrotate).
pub fn reopen() {
    crate::sinks::file::request_reopen();
    crate::enrichment::request_reload();
}

/// Starts `pipeline`: makes every queue, does the start's IO (binds sources and the API
/// first, so a port conflict fails the start before a store or disk buffer creates files),
/// then spawns every component.
pub async fn start(
    pipeline: Pipeline,
    shutdown: CancellationToken,
) -> Result<RunningTopology, TopologyError> {
    let mut current = reload::Current::default();
    current.describe(&pipeline);
    let path = std::path::PathBuf::from(&pipeline.file);
    let Pipeline {
        api,
        sources,
        transforms,
        sinks,
        alerts,
        graph,
        enrichment_tables,
        ..
    } = pipeline;
    let mut wiring = wiring::Wiring::default();
    #[cfg(feature = "store")]
    {
        wiring.taps = Some(crate::tap::Taps::default());
    }

    // Every queue exists before any task starts, so nothing can send into a missing one.
    let sink_queues: Vec<_> = sinks
        .iter()
        .map(|sink| components::sink_queue(sink, &graph, &mut wiring))
        .collect();
    let transform_queues: Vec<_> = transforms
        .iter()
        .map(|t| components::memory_queue(&t.id, &t.id, &t.inputs, &graph, &mut wiring, true))
        .collect();
    let alert_sets = components::alert_sets(alerts);
    let alert_queues: Vec<_> = alert_sets
        .iter()
        .map(|set| {
            let key = components::set_key(set);
            components::memory_queue(&key, &set[0].id, &set[0].inputs, &graph, &mut wiring, false)
        })
        .collect();
    let consumed: HashSet<String> = transforms
        .iter()
        .flat_map(|t| &t.inputs)
        .chain(sinks.iter().flat_map(|s| &s.inputs))
        .chain(alert_sets.iter().flat_map(|set| &set[0].inputs))
        .filter(|i| i.output.is_none())
        .map(|i| i.component.clone())
        .collect();

    // IO that can fail on what another process holds: every listener is bound before
    // anything creates files or starts.
    let mut bound = HashMap::new();
    let mut source_tasks = Vec::new();
    let mut sockets = Sockets::default();
    for source in sources {
        if !consumed.contains(&source.id) {
            tracing::warn!(component_id = %source.id, "source has no consumers; its events are discarded");
        }
        let id = source.id.clone();
        let stop = shutdown.child_token();
        let opened =
            components::open_source(source, &graph, &mut wiring, stop.clone(), &sockets).await?;
        if let Some(address) = opened.address {
            bound.insert(id.clone(), address);
        }
        sockets.set(&id, opened.sockets);
        source_tasks.push((id, stop, opened.task));
    }
    let api_listener = match &api {
        None => None,
        Some(api) => {
            let listener = tokio::net::TcpListener::bind(&api.address)
                .await
                .map_err(|source| TopologyError::Api {
                    address: api.address.clone(),
                    source,
                })?;
            let addr = listener.local_addr().map_err(|source| TopologyError::Api {
                address: api.address.clone(),
                source,
            })?;
            bound.insert(API_ID.to_string(), addr);
            // The tokens file is read once, here: a missing or malformed one stops the start.
            let guard = crate::api::Guard::open(api, addr)
                .map_err(|message| TopologyError::ApiAuth { message })?;
            // The certificate and key are read once, here, like the tokens file.
            let tls = crate::tls::optional_acceptor(api.tls.as_ref())?;
            let authenticated = api.auth.as_ref().is_some_and(|a| a.is_enabled());
            if authenticated && tls.is_none() && !addr.ip().is_loopback() {
                tracing::warn!(
                    address = %addr,
                    "the api listens beyond loopback with tokens but without tls: tokens and logs \
                     cross the network in clear text; set [api] tls = {{ crt_file, key_file }} \
                     or put a TLS proxy in front (docs/security.md)"
                );
            }
            Some((
                listener,
                Arc::new(guard),
                api.limits(),
                tls,
                api.request_caps(),
            ))
        }
    };

    // Tables are read before any transform runs: one that cannot be loaded fails the start.
    let mut table_watchers = Vec::new();
    for spec in enrichment_tables {
        let loader = spec
            .table
            .open(&spec.handle)
            .map_err(|e| TopologyError::EnrichmentTable {
                id: spec.id.clone(),
                message: e.to_string(),
            })?;
        table_watchers.push((spec.handle, loader));
    }

    let mut tasks = JoinSet::new();
    let api_stop = CancellationToken::new();
    let streams_stop = shutdown.child_token();
    // Watchers reload changed files until the pipeline has drained or shutdown starts.
    for (handle, loader) in table_watchers {
        let span = tracing::info_span!("component", component_kind = "enrichment_table", component_id = %handle.id());
        tokio::spawn(handle.watch(loader, streams_stop.clone()).instrument(span));
    }
    // Endpoints components add to the API listener (query, tail, alerts).
    let mut endpoints: Vec<Arc<dyn crate::api::Endpoint>> = Vec::new();
    // Components to spawn once every output has its consumers.
    type Spawn = (
        &'static str,
        String,
        Option<CancellationToken>,
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    );
    let mut spawns: Vec<Spawn> = Vec::new();

    for (sink, rx) in sinks.into_iter().zip(sink_queues) {
        let id = sink.id.clone();
        let opened = components::open_sink(
            sink,
            rx,
            &graph,
            &mut wiring,
            &shutdown,
            &streams_stop,
            &mut tasks,
        )?;
        endpoints.extend(opened.endpoints);
        let task = opened.task;
        let name = id.clone();
        spawns.push((
            "sink",
            id,
            None,
            Box::pin(async move {
                if let Err(error) = task.await {
                    tracing::error!(component_id = %name, %error, "sink stopped");
                }
            }),
        ));
    }
    for (transform, rx) in transforms.into_iter().zip(transform_queues) {
        let id = transform.id.clone();
        let task = components::transform_task(transform, rx, &graph, &mut wiring);
        spawns.push(("transform", id, None, Box::pin(task)));
    }
    let registry = crate::alert::Registry::default();
    endpoints.push(Arc::new(crate::alert::AlertsEndpoint {
        registry: registry.clone(),
    }));
    for (set, rx) in alert_sets.into_iter().zip(alert_queues) {
        let key = components::set_key(&set);
        current
            .sets
            .insert(key.clone(), set.iter().map(|a| a.id.clone()).collect());
        let task = components::alert_task(set, rx, &graph, &mut wiring, registry.clone());
        spawns.push(("alert", key, None, Box::pin(task)));
    }
    for (id, stop, task) in source_tasks {
        let name = id.clone();
        spawns.push((
            "source",
            id,
            Some(stop),
            Box::pin(async move {
                if let Err(error) = task.await {
                    tracing::error!(component_id = %name, %error, "source stopped");
                }
            }),
        ));
    }

    // Every output gets its consumers, then everything runs.
    wiring.commit(&HashSet::new(), &HashSet::new());
    for (kind, id, stop, task) in spawns {
        let done = components::spawn(&mut tasks, kind, &id, Vec::new(), task);
        current
            .instances
            .insert(id, reload::Instance { done, stop });
    }

    let (reloader, requests) = reload::requests();
    endpoints.push(Arc::new(admin_endpoint(reloader.clone())));
    #[cfg(feature = "store")]
    if let Some(taps) = wiring.taps.take() {
        endpoints.push(Arc::new(crate::tap::TapEndpoint::new(
            taps,
            streams_stop.clone(),
        )));
    }
    // With peers, a federating endpoint answers the store's routes for every peer.
    #[cfg(feature = "store")]
    let endpoints = match &api {
        Some(api) => crate::federation::wrap(api, endpoints, &streams_stop)
            .map_err(|crate::federation::FederationError::Tls(e)| TopologyError::ApiTls(e))?,
        None => endpoints,
    };
    let api_task = api_listener.map(|(listener, guard, limits, tls, caps)| {
        let endpoints = crate::api::Endpoints::new(endpoints);
        let span = tracing::info_span!("component", component_kind = "api", component_id = API_ID);
        // The API answers (health, metrics) while the pipeline drains, and stops after it.
        tokio::spawn(
            crate::api::serve(
                listener,
                limits,
                API_ID,
                tls,
                api_stop.clone(),
                move |request, _peer| {
                    let endpoints = endpoints.clone();
                    let guard = guard.clone();
                    let caps = caps.clone();
                    async move { crate::api::handle(request, &endpoints, &guard, &caps).await }
                },
            )
            .instrument(span),
        )
    });
    let controller = reload::Controller {
        path,
        tasks,
        wiring,
        current,
        shutdown,
        streams_stop: streams_stop.clone(),
        registry,
        sockets,
    };
    let controller = tokio::spawn(controller.run(requests));
    Ok(RunningTopology {
        controller,
        bound,
        api_task,
        api_stop,
        streams_stop,
        reloader,
    })
}

/// `POST /v1/reload` and `POST /v1/reopen`.
fn admin_endpoint(reloader: Reloader) -> crate::api::admin::AdminEndpoint {
    use crate::api::admin::{Action, ActionResult};
    let reload: Action = Arc::new(move || {
        let reloader = reloader.clone();
        Box::pin(async move {
            let result: ActionResult = match reloader.reload().await {
                Ok(applied) => serde_json::to_value(&applied)
                    .map(|mut v| {
                        v["status"] = "applied".into();
                        v
                    })
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            result
        })
    });
    let reopen: Action = Arc::new(|| {
        Box::pin(async {
            reopen();
            Ok(serde_json::json!({ "status": "reopening" }))
        })
    });
    crate::api::admin::AdminEndpoint { reload, reopen }
}
