//! The running pipeline: one task per component, connected by bounded batch channels.
//!
//! Building happens in three steps: make one input queue per transform and sink; group the
//! queue senders by the producer output that feeds them (a [`Fanout`] per output); spawn
//! sinks, then transforms, then sources, each inside a tracing span carrying its id.
//!
//! Shutdown needs no coordination beyond channel closure: sources stop (at EOF or when the
//! shutdown token fires) and drop their senders; a transform ends when its queue is closed
//! and empty, dropping its own senders; a sink ends when its queue is closed and empty. So
//! every event read before shutdown reaches every sink before the router exits.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ack::AckStatus;
use crate::buffer::{BufferType, WhenFull, DEFAULT_MEMORY_BYTES};
use crate::channel::{channel, BatchReceiver, BatchSender, Fanout};
use crate::config::{Graph, OutputRef};
use crate::event::Batch;
use crate::pipeline::{AlertSpec, Pipeline, SinkSpec};
use crate::sinks::{SinkContext, SinkMetrics};
use crate::sources::{SourceContext, SourceError};
use crate::telemetry::{self, LogLimiter};
use crate::transforms::{FunctionTransform, Outputs};

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
    tasks: JoinSet<()>,
    api_task: Option<tokio::task::JoinHandle<()>>,
    api_stop: CancellationToken,
    /// Ends the API's long-lived streams (live tail). A child of the shutdown token, so
    /// they end as soon as shutdown starts; `wait` fires it too, for pipelines that end
    /// at EOF without a shutdown.
    streams_stop: CancellationToken,
    /// Addresses the network sources actually bound (useful with port 0 in tests).
    pub bound: HashMap<String, std::net::SocketAddr>,
}

impl RunningTopology {
    pub async fn wait(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "component task panicked");
            }
        }
        // The API drains its requests in progress before it returns, and a stream is never
        // done by itself: streams end first.
        self.streams_stop.cancel();
        self.api_stop.cancel();
        if let Some(api) = self.api_task.take() {
            let _ = api.await;
        }
    }
}

/// The key under which [`RunningTopology::bound`] reports the API listener's address.
pub const API_ID: &str = "api";

/// Queue senders per producer output: (component id, output index; 0 = default output),
/// and the live taps on those outputs.
struct Consumers {
    queues: HashMap<(String, usize), Vec<BatchSender>>,
    graph: Graph,
    #[cfg(feature = "store")]
    taps: crate::tap::Taps,
}

impl Consumers {
    fn new(graph: &Graph) -> Self {
        Self {
            queues: HashMap::new(),
            graph: graph.clone(),
            #[cfg(feature = "store")]
            taps: crate::tap::Taps::default(),
        }
    }

    /// Registers `queue`, component `id`'s input, as a consumer of each of `inputs`.
    fn subscribe(&mut self, id: &str, inputs: &[OutputRef], queue: &BatchSender) {
        for input in inputs {
            let key = (input.component.clone(), self.graph.output_index(input));
            self.queues.entry(key).or_default().push(queue.clone());
        }
        #[cfg(feature = "store")]
        self.taps
            .reads(id, inputs.iter().map(|i| i.to_string()).collect());
        #[cfg(not(feature = "store"))]
        let _ = id;
    }

    /// The fan-out of output `index` of `id` (empty when nothing reads it), tappable.
    fn take(&mut self, id: &str, index: usize) -> Fanout {
        let fanout = Fanout::new(
            self.queues
                .remove(&(id.to_string(), index))
                .unwrap_or_default(),
        );
        #[cfg(feature = "store")]
        let fanout = self.taps.observe(self.graph.output_name(id, index), fanout);
        fanout
    }
}

/// Starts `pipeline`: makes every queue, does the start's IO (binds sources and the API
/// first, so a port conflict fails the start before a store or disk buffer creates files),
/// then spawns every component.
pub async fn start(
    pipeline: Pipeline,
    shutdown: CancellationToken,
) -> Result<RunningTopology, TopologyError> {
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
    let mut consumers = Consumers::new(&graph);

    // Every queue exists before any task starts, so nothing can send into a missing one.
    let sink_queues: Vec<_> = sinks
        .iter()
        .map(|sink| sink_queue(sink, &mut consumers))
        .collect();
    let transform_queues: Vec<_> = transforms
        .iter()
        .map(|t| memory_queue(&t.id, &t.inputs, &mut consumers, true))
        .collect();
    let alert_sets = alert_sets(alerts);
    // A rule set's queue is named after its first rule.
    let alert_queues: Vec<_> = alert_sets
        .iter()
        .map(|set| memory_queue(&set[0].id, &set[0].inputs, &mut consumers, false))
        .collect();

    // IO that can fail on what another process holds: every listener is bound before
    // anything creates files or starts.
    let mut bound = HashMap::new();
    let mut source_tasks = Vec::new();
    for source in sources {
        let ctx = SourceContext {
            id: Arc::from(source.id.as_str()),
            out: consumers.take(&source.id, 0),
            dead_letter: consumers.take(&source.id, 1),
            shutdown: shutdown.clone(),
        };
        if ctx.out.is_empty() {
            tracing::warn!(component_id = %source.id, "source has no consumers; its events are discarded");
        }
        let opened = source
            .source
            .open(ctx)
            .await
            .map_err(|error| TopologyError::Source {
                id: source.id.clone(),
                source: error,
            })?;
        if let Some(address) = opened.address {
            bound.insert(source.id.clone(), address);
        }
        source_tasks.push((source.id, opened.task));
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

    for (sink, rx) in sinks.into_iter().zip(sink_queues) {
        let rx = match sink.buffer.kind {
            BufferType::Memory => rx,
            BufferType::Disk => spawn_disk_buffer(&sink, rx, &shutdown, &mut tasks)?,
        };
        let ctx = SinkContext {
            id: Arc::from(sink.id.as_str()),
            metrics: SinkMetrics::new(&sink.id),
            dead_letter: consumers.take(&sink.id, 1),
            runtime: tokio::runtime::Handle::current(),
        };
        let opened = sink
            .sink
            .open(rx, ctx, &streams_stop)
            .map_err(|e| TopologyError::Sink {
                id: sink.id.clone(),
                message: e.to_string(),
            })?;
        endpoints.extend(opened.endpoints);
        let id = sink.id;
        let span = tracing::info_span!("component", component_kind = "sink", component_id = %id);
        let task = opened.task;
        tasks.spawn(
            async move {
                if let Err(error) = task.await {
                    tracing::error!(component_id = %id, %error, "sink stopped");
                }
            }
            .instrument(span),
        );
    }

    for (transform, rx) in transforms.into_iter().zip(transform_queues) {
        let outputs: Vec<(String, Fanout)> = std::iter::once(transform.id.clone())
            .chain(
                transform
                    .transform
                    .outputs
                    .iter()
                    .map(|n| format!("{}.{}", transform.id, n)),
            )
            .enumerate()
            .map(|(i, name)| (name, consumers.take(&transform.id, i)))
            .collect();
        let span = tracing::info_span!("component", component_kind = "transform", component_id = %transform.id);
        let named = transform.transform.outputs.len();
        tasks.spawn(
            run_transform(
                transform.id,
                transform.transform.function,
                named,
                rx,
                outputs,
            )
            .instrument(span),
        );
    }

    let registry = crate::alert::Registry::default();
    endpoints.push(Arc::new(crate::alert::AlertsEndpoint {
        registry: registry.clone(),
    }));
    for (set, rx) in alert_sets.into_iter().zip(alert_queues) {
        let outs = set
            .iter()
            .map(|alert| consumers.take(&alert.id, 0))
            .collect();
        let span = tracing::info_span!("component", component_kind = "alert", component_id = %set[0].id, rules = set.len());
        let rules = crate::alert::RuleSet::new(set.into_iter().map(|a| a.rule).collect());
        // A thread of its own, not a task among the workers: a set is CPU-heavy, and as a
        // task it competes with the sources for the workers. With the runtime's LIFO slot
        // on, the rules and their source took turns on one core (100 rules: −31 %); with it
        // off (`router_runtime` in main.rs), a task still cost 9 % against a thread
        // (1,133k against 1,240k events/s, benches/RESULTS.md).
        let run = crate::alert::run_rules(rules, rx, outs, registry.clone()).instrument(span);
        let runtime = tokio::runtime::Handle::current();
        tasks.spawn(async move {
            if let Err(error) = tokio::task::spawn_blocking(move || runtime.block_on(run)).await {
                tracing::error!(%error, "alert rules stopped");
            }
        });
    }

    for (id, task) in source_tasks {
        let span = tracing::info_span!("component", component_kind = "source", component_id = %id);
        tasks.spawn(
            async move {
                if let Err(error) = task.await {
                    tracing::error!(component_id = %id, %error, "source stopped");
                }
            }
            .instrument(span),
        );
    }
    #[cfg(feature = "store")]
    endpoints.push(Arc::new(crate::tap::TapEndpoint::new(
        std::mem::take(&mut consumers.taps),
        streams_stop.clone(),
    )));
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
    // Outputs nobody consumes keep no senders alive; everything left here is dropped now so
    // that queues close once their producers finish.
    drop(consumers);
    Ok(RunningTopology {
        tasks,
        bound,
        api_task,
        api_stop,
        streams_stop,
    })
}

/// A sink's input queue, sized and behaving as its `buffer` says.
fn sink_queue(sink: &SinkSpec, consumers: &mut Consumers) -> BatchReceiver {
    let capacity = sink.buffer.memory_bytes();
    let queued = telemetry::counter("buffer_queued_bytes_total", &[("component_id", &sink.id)]);
    let (tx, rx) = channel(capacity, queued);
    register_queue_gauges(&sink.id, &tx, capacity);
    // A disk buffer applies `when_full` to the disk; its staging queue always waits.
    let tx = match (sink.buffer.kind, sink.buffer.when_full) {
        (BufferType::Disk, _) | (_, WhenFull::Block) => tx,
        (BufferType::Memory, WhenFull::DropNewest) => tx.drop_newest(telemetry::counter(
            "component_discarded_events_total",
            &[("component_id", &sink.id), ("reason", "buffer_full")],
        )),
    };
    consumers.subscribe(&sink.id, &sink.inputs, &tx);
    rx
}

/// A default-sized memory queue reading `inputs`, for a transform or a rule set.
fn memory_queue(
    id: &str,
    inputs: &[OutputRef],
    consumers: &mut Consumers,
    gauges: bool,
) -> BatchReceiver {
    let queued = telemetry::counter("buffer_queued_bytes_total", &[("component_id", id)]);
    let (tx, rx) = channel(DEFAULT_MEMORY_BYTES as usize, queued);
    if gauges {
        register_queue_gauges(id, &tx, DEFAULT_MEMORY_BYTES as usize);
    }
    consumers.subscribe(id, inputs, &tx);
    rx
}

/// Rules reading the same inputs share one queue and one task (a rule set): one consumer
/// of those outputs instead of one per rule, and one pass over each event.
fn alert_sets(alerts: Vec<AlertSpec>) -> Vec<Vec<AlertSpec>> {
    let mut sets: Vec<Vec<AlertSpec>> = Vec::new();
    for alert in alerts {
        let same = |set: &&mut Vec<AlertSpec>| {
            let first = &set[0].inputs;
            first.len() == alert.inputs.len() && alert.inputs.iter().all(|i| first.contains(i))
        };
        match sets.iter_mut().find(same) {
            Some(set) => set.push(alert),
            None => sets.push(vec![alert]),
        }
    }
    sets
}

/// Puts a disk buffer between a sink's queue and the sink; returns the sink's new input.
fn spawn_disk_buffer(
    sink: &SinkSpec,
    rx: BatchReceiver,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<BatchReceiver, TopologyError> {
    let queued = telemetry::counter(
        "buffer_queued_bytes_total",
        &[("component_id", &sink.id), ("stage", "disk_to_sink")],
    );
    let (to_sink, sink_rx) = channel(DEFAULT_MEMORY_BYTES as usize, queued);
    let (writer, reader) = crate::buffer::spawn_disk_buffer(
        Arc::from(sink.id.as_str()),
        &sink.buffer,
        rx,
        to_sink,
        shutdown.clone(),
    )
    .map_err(|e| TopologyError::Buffer {
        id: sink.id.clone(),
        message: e.to_string(),
    })?;
    tasks.spawn(async move {
        let _ = writer.await;
    });
    tasks.spawn(async move {
        let _ = reader.await;
    });
    Ok(sink_rx)
}

/// `buffer_usage_bytes` and `buffer_capacity_bytes` of the memory queue in front of `id`.
fn register_queue_gauges(id: &str, queue: &BatchSender, capacity: usize) {
    let labels = [("component_id", id), ("buffer", "memory")];
    telemetry::register_gauge("buffer_usage_bytes", &labels, queue.usage_probe());
    let alive = queue.usage_probe();
    telemetry::register_gauge(
        "buffer_capacity_bytes",
        &labels,
        Box::new(move || alive().map(|_| capacity as u64)),
    );
}

async fn run_transform(
    id: String,
    mut function: Box<dyn FunctionTransform>,
    named: usize,
    mut rx: BatchReceiver,
    outputs: Vec<(String, Fanout)>,
) {
    let received = telemetry::counter("component_received_events_total", &[("component_id", &id)]);
    let mut sender = TransformOutputs::new(&id, outputs);
    let mut buffers = Outputs::new(named);
    // A transform that holds events back (`multiline`) is woken to send what waited long
    // enough even when no input arrives.
    let mut ticks = function.tick_interval().map(|period| {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        let next = tokio::select! {
            delivery = rx.recv() => delivery,
            _ = async {
                match ticks.as_mut() {
                    Some(ticks) => ticks.tick().await,
                    None => std::future::pending().await,
                }
            } => {
                function.tick(&mut buffers);
                sender.send(&mut buffers).await;
                continue;
            }
        };
        let Some(delivery) = next else {
            break;
        };
        // The input's events are ours until every output has queued its share; cancelled
        // before that, the obligation reports them not delivered.
        let (batch, obligation) = delivery.into_owned();
        received.inc(batch.len() as u64);
        for event in batch.events {
            function.transform(event, &mut buffers);
        }
        sender.send(&mut buffers).await;
        // What was sent on is the consumers' to state now; what the transform dropped
        // (filtered, sampled) or nothing consumes was dropped on purpose; what it holds
        // back holds its events' tokens, which report errored if dropped unsent.
        obligation.discharge(AckStatus::Delivered);
    }
    // The input ended: what the transform still holds goes out before its outputs close.
    function.finish(&mut buffers);
    sender.send(&mut buffers).await;
}

/// A transform's outputs with their counters.
struct TransformOutputs {
    id: String,
    outputs: Vec<(String, Fanout)>,
    sent: Vec<telemetry::Counter>,
    unconsumed: telemetry::Counter,
    limiter: LogLimiter,
}

impl TransformOutputs {
    fn new(id: &str, outputs: Vec<(String, Fanout)>) -> Self {
        let sent = outputs
            .iter()
            .map(|(name, _)| {
                telemetry::counter(
                    "component_sent_events_total",
                    &[("component_id", id), ("output", name)],
                )
            })
            .collect();
        Self {
            id: id.to_string(),
            outputs,
            sent,
            unconsumed: telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", id), ("reason", "unconsumed_output")],
            ),
            limiter: LogLimiter::default(),
        }
    }

    /// Sends each output's buffered events on as one batch.
    async fn send(&mut self, buffers: &mut Outputs) {
        for (index, events) in buffers.drain() {
            let (name, fanout) = &mut self.outputs[index];
            let n = events.len() as u64;
            if fanout.is_empty() {
                // Dropped on purpose; stated here too for events a transform held back,
                // whose input batches were discharged long ago.
                for event in &events {
                    event.ack(AckStatus::Delivered);
                }
            }
            if fanout.is_empty() || fanout.send(Batch::new(events)).await.is_err() {
                // Events sent to an output that nothing consumes (e.g. `parse.failed` with
                // `reroute_failed = true` but no sink) are counted, never silently lost.
                self.unconsumed.inc(n);
                if let Some(suppressed) = self.limiter.check() {
                    tracing::warn!(component_id = %self.id, output = %name, suppressed, "events discarded: output has no consumers");
                }
            } else {
                self.sent[index].inc(n);
            }
        }
    }
}
