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
use crate::config::{OutputRef, Pipeline, SinkConfig, SourceConfig};
use crate::event::Batch;
use crate::sinks::{SinkContext, SinkMetrics, SINK_OUTPUTS};
use crate::sources::{SourceContext, SourceError, SOURCE_OUTPUTS};
use crate::telemetry::{self, LogLimiter};
use crate::transforms::{FunctionTransform, Outputs, TransformContext};

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("source `{id}`: {source}")]
    Source { id: String, source: SourceError },
    #[error("transform `{id}`: {message}")]
    Build { id: String, message: String },
    #[error("api: cannot bind {address}: {source}")]
    Api {
        address: String,
        source: std::io::Error,
    },
    #[error("sink `{id}`: cannot open disk buffer: {message}")]
    Buffer { id: String, message: String },
    #[error("sink `{id}`: {message}")]
    Sink { id: String, message: String },
}

/// Runs `pipeline` until every source has ended (EOF, or `shutdown` fired) and every event
/// has drained into the sinks. Fails before running anything if a source cannot bind.
pub async fn run(pipeline: &Pipeline, shutdown: CancellationToken) -> Result<(), TopologyError> {
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

/// Key of a producer output: component id and output index (0 = default output).
type OutputKey = (String, usize);

pub async fn start(
    pipeline: &Pipeline,
    shutdown: CancellationToken,
) -> Result<RunningTopology, TopologyError> {
    let mut consumers: HashMap<OutputKey, Vec<BatchSender>> = HashMap::new();
    let output_index = |component: &str, output: &Option<String>| -> usize {
        let Some(name) = output else { return 0 };
        let named = match pipeline.transforms.iter().find(|t| t.id == component) {
            Some(t) => t.config.outputs(),
            None if pipeline.alerts.iter().any(|a| a.id == component) => Vec::new(),
            None if pipeline.sinks.iter().any(|s| s.id == component) => {
                SINK_OUTPUTS.iter().map(|s| s.to_string()).collect()
            }
            None => SOURCE_OUTPUTS.iter().map(|s| s.to_string()).collect(),
        };
        // Validation guarantees the name exists.
        named.iter().position(|o| o == name).map_or(0, |i| i + 1)
    };
    // Every queue that reads `inputs` is registered as a consumer of each of them.
    let subscribe = |consumers: &mut HashMap<OutputKey, Vec<BatchSender>>,
                     inputs: &[OutputRef],
                     tx: &BatchSender| {
        for input in inputs {
            consumers
                .entry((
                    input.component.clone(),
                    output_index(&input.component, &input.output),
                ))
                .or_default()
                .push(tx.clone());
        }
    };

    let mut tasks = JoinSet::new();
    // Endpoints components add to the API listener (query, tail, alerts).
    let mut endpoints: Vec<Arc<dyn crate::api::Endpoint>> = Vec::new();
    let api_stop = CancellationToken::new();
    let streams_stop = shutdown.child_token();
    let mut api_task = None;

    // Every queue exists before any task starts, so nothing can send into a missing one.
    let mut sink_inputs = Vec::new();
    for sink in &pipeline.sinks {
        let queued = telemetry::counter("buffer_queued_bytes_total", &[("component_id", &sink.id)]);
        let (tx, rx) = channel(sink.buffer.memory_bytes(), queued);
        register_queue_gauges(&sink.id, &tx, sink.buffer.memory_bytes());
        // A disk buffer applies `when_full` to the disk; its staging queue always waits.
        let tx = match (sink.buffer.kind, sink.buffer.when_full) {
            (BufferType::Disk, _) | (_, WhenFull::Block) => tx,
            (BufferType::Memory, WhenFull::DropNewest) => tx.drop_newest(telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", &sink.id), ("reason", "buffer_full")],
            )),
        };
        subscribe(&mut consumers, &sink.inputs, &tx);
        sink_inputs.push(rx);
    }

    let mut transform_inputs = Vec::new();
    for transform in &pipeline.transforms {
        let queued = telemetry::counter(
            "buffer_queued_bytes_total",
            &[("component_id", &transform.id)],
        );
        let (tx, rx) = channel(DEFAULT_MEMORY_BYTES as usize, queued);
        register_queue_gauges(&transform.id, &tx, DEFAULT_MEMORY_BYTES as usize);
        subscribe(&mut consumers, &transform.inputs, &tx);
        transform_inputs.push(rx);
    }

    // Rules reading the same inputs share one queue and one task (a rule set): one
    // consumer of those outputs instead of one per rule, and one pass over each event.
    let mut alert_sets: Vec<Vec<&crate::config::AlertSpec>> = Vec::new();
    for alert in &pipeline.alerts {
        let same = |set: &&mut Vec<&crate::config::AlertSpec>| {
            let first = &set[0].inputs;
            first.len() == alert.inputs.len() && alert.inputs.iter().all(|i| first.contains(i))
        };
        match alert_sets.iter_mut().find(same) {
            Some(set) => set.push(alert),
            None => alert_sets.push(vec![alert]),
        }
    }
    let mut alert_inputs = Vec::new();
    for set in &alert_sets {
        // The queue is named after the set's first rule.
        let queued =
            telemetry::counter("buffer_queued_bytes_total", &[("component_id", &set[0].id)]);
        let (tx, rx) = channel(DEFAULT_MEMORY_BYTES as usize, queued);
        subscribe(&mut consumers, &set[0].inputs, &tx);
        alert_inputs.push(rx);
    }

    for (sink, rx) in pipeline.sinks.iter().zip(sink_inputs) {
        let rx = match sink.buffer.kind {
            BufferType::Memory => rx,
            BufferType::Disk => {
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
                sink_rx
            }
        };
        let dead_letter = Fanout::new(consumers.remove(&(sink.id.clone(), 1)).unwrap_or_default());
        let ctx = SinkContext {
            id: Arc::from(sink.id.as_str()),
            metrics: SinkMetrics::new(&sink.id),
            dead_letter,
            runtime: tokio::runtime::Handle::current(),
        };
        let span =
            tracing::info_span!("component", component_kind = "sink", component_id = %sink.id);
        let id = sink.id.clone();
        let config = sink.config.clone();
        // The store opens here (its partitions are IO), and adds its query routes to the API.
        #[cfg(feature = "store")]
        let store = match &config {
            SinkConfig::Store(c) => {
                let store = c.open(&sink.id).map_err(|e| TopologyError::Sink {
                    id: sink.id.clone(),
                    message: e.to_string(),
                })?;
                endpoints.push(Arc::new(crate::store::http::StoreEndpoint::new(
                    store.clone(),
                    streams_stop.clone(),
                )));
                Some(store)
            }
            _ => None,
        };
        tasks.spawn(
            async move {
                let result = match config {
                    SinkConfig::Console(c) => c.run(rx, ctx).await,
                    SinkConfig::File(c) => c.run(rx, ctx).await,
                    SinkConfig::Blackhole(c) => c.run(rx, ctx).await,
                    SinkConfig::Http(c) => c.run(rx, ctx).await,
                    #[cfg(feature = "store")]
                    SinkConfig::Store(c) => match store {
                        Some(store) => c.run(store, rx, ctx).await,
                        None => Ok(()),
                    },
                    SinkConfig::Notify(c) => c.run(rx, ctx).await,
                    #[cfg(feature = "kafka")]
                    SinkConfig::Kafka(c) => c.run(rx, ctx).await,
                };
                if let Err(error) = result {
                    tracing::error!(component_id = %id, %error, "sink stopped");
                }
            }
            .instrument(span),
        );
    }

    for (transform, rx) in pipeline.transforms.iter().zip(transform_inputs) {
        let ctx = TransformContext {
            id: transform.id.clone(),
        };
        let function = transform
            .config
            .build(&ctx)
            .map_err(|e| TopologyError::Build {
                id: transform.id.clone(),
                message: e.to_string(),
            })?;
        let named = transform.config.outputs();
        let outputs: Vec<(String, Fanout)> = std::iter::once(transform.id.clone())
            .chain(named.iter().map(|n| format!("{}.{}", transform.id, n)))
            .enumerate()
            .map(|(i, name)| {
                let senders = consumers
                    .remove(&(transform.id.clone(), i))
                    .unwrap_or_default();
                (name, Fanout::new(senders))
            })
            .collect();
        let span = tracing::info_span!("component", component_kind = "transform", component_id = %transform.id);
        tasks.spawn(
            run_transform(transform.id.clone(), function, named.len(), rx, outputs)
                .instrument(span),
        );
    }

    let alerts = crate::alert::Registry::default();
    endpoints.push(Arc::new(crate::alert::AlertsEndpoint {
        registry: alerts.clone(),
    }));
    for (set, rx) in alert_sets.iter().zip(alert_inputs) {
        let outs = set
            .iter()
            .map(|alert| Fanout::new(consumers.remove(&(alert.id.clone(), 0)).unwrap_or_default()))
            .collect();
        let rules = crate::alert::RuleSet::new(set.iter().map(|a| a.rule.clone()).collect());
        let span = tracing::info_span!("component", component_kind = "alert", component_id = %set[0].id, rules = set.len());
        // A thread of its own, not a task among the workers: a set is CPU-heavy, and as a
        // task it competes with the sources for the workers. With the runtime's LIFO slot
        // on, the rules and their source took turns on one core (100 rules: −31 %); with it
        // off (`router_runtime` in main.rs), a task still cost 9 % against a thread
        // (1,133k against 1,240k events/s, benches/RESULTS.md).
        let run = crate::alert::run_rules(rules, rx, outs, alerts.clone()).instrument(span);
        let runtime = tokio::runtime::Handle::current();
        tasks.spawn(async move {
            if let Err(error) = tokio::task::spawn_blocking(move || runtime.block_on(run)).await {
                tracing::error!(%error, "alert rules stopped");
            }
        });
    }

    // Bind every network source before starting any, so a port conflict fails the start.
    let mut bound = HashMap::new();
    let mut starts = Vec::new();
    for source in &pipeline.sources {
        let out = Fanout::new(
            consumers
                .remove(&(source.id.clone(), 0))
                .unwrap_or_default(),
        );
        let dead_letter = Fanout::new(
            consumers
                .remove(&(source.id.clone(), 1))
                .unwrap_or_default(),
        );
        if out.is_empty() {
            tracing::warn!(component_id = %source.id, "source has no consumers; its events are discarded");
        }
        let ctx = SourceContext {
            id: Arc::from(source.id.as_str()),
            out,
            dead_letter,
            shutdown: shutdown.clone(),
        };
        let bind_err = |source_err| TopologyError::Source {
            id: source.id.clone(),
            source: source_err,
        };
        let task: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), SourceError>> + Send>,
        > = match source.config.clone() {
            SourceConfig::Stdin(c) => Box::pin(c.run(ctx)),
            SourceConfig::Tcp(c) => {
                let listener = c.bind().await.map_err(bind_err)?;
                if let Ok(addr) = listener.local_addr() {
                    bound.insert(source.id.clone(), addr);
                }
                Box::pin(c.run(listener, ctx))
            }
            SourceConfig::Udp(c) => {
                let socket = c.bind().await.map_err(bind_err)?;
                if let Ok(addr) = socket.local_addr() {
                    bound.insert(source.id.clone(), addr);
                }
                Box::pin(c.run(socket, ctx))
            }
            SourceConfig::Http(c) => {
                let listener = c.bind().await.map_err(bind_err)?;
                if let Ok(addr) = listener.local_addr() {
                    bound.insert(source.id.clone(), addr);
                }
                Box::pin(c.run(listener, ctx))
            }
            #[cfg(feature = "kafka")]
            SourceConfig::Kafka(c) => {
                // Creating the consumer (no connection yet) fails the start on a bad setup.
                let consumer = c.connect(&source.id).map_err(bind_err)?;
                Box::pin(c.run(consumer, ctx))
            }
        };
        starts.push((source.id.clone(), task));
    }
    for (id, task) in starts {
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
    if let Some(api) = &pipeline.api {
        let listener = tokio::net::TcpListener::bind(&api.address)
            .await
            .map_err(|source| TopologyError::Api {
                address: api.address.clone(),
                source,
            })?;
        if let Ok(addr) = listener.local_addr() {
            bound.insert(API_ID.to_string(), addr);
        }
        let endpoints = crate::api::Endpoints::new(std::mem::take(&mut endpoints));
        let span = tracing::info_span!("component", component_kind = "api", component_id = API_ID);
        // The API answers (health, metrics) while the pipeline drains, and stops after it.
        api_task = Some(tokio::spawn(
            crate::api::serve(listener, None, api_stop.clone(), move |request, _peer| {
                let endpoints = endpoints.clone();
                async move { crate::api::handle(request, &endpoints).await }
            })
            .instrument(span),
        ));
    }
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
    mut outputs: Vec<(String, Fanout)>,
) {
    let received = telemetry::counter("component_received_events_total", &[("component_id", &id)]);
    let sent: Vec<_> = outputs
        .iter()
        .map(|(name, _)| {
            telemetry::counter(
                "component_sent_events_total",
                &[("component_id", &id), ("output", name)],
            )
        })
        .collect();
    let unconsumed = telemetry::counter(
        "component_discarded_events_total",
        &[("component_id", &id), ("reason", "unconsumed_output")],
    );
    let mut limiter = LogLimiter::default();
    let mut buffers = Outputs::new(named);
    while let Some(delivery) = rx.recv().await {
        // The input's events are ours until every output has queued its share; cancelled
        // before that, the obligation reports them not delivered.
        let (batch, obligation) = delivery.into_owned();
        received.inc(batch.len() as u64);
        for event in batch.events {
            function.transform(event, &mut buffers);
        }
        for (index, events) in buffers.drain() {
            let (name, fanout) = &mut outputs[index];
            let n = events.len() as u64;
            if fanout.is_empty() || fanout.send(Batch::new(events)).await.is_err() {
                // Events sent to an output that nothing consumes (e.g. `parse.failed` with
                // `reroute_failed = true` but no sink) are counted, never silently lost.
                unconsumed.inc(n);
                if let Some(suppressed) = limiter.check() {
                    tracing::warn!(component_id = %id, output = %name, suppressed, "events discarded: output has no consumers");
                }
            } else {
                sent[index].inc(n);
            }
        }
        // What was sent on is the consumers' to state now; what the transform dropped
        // (filtered, sampled) or nothing consumes was dropped on purpose.
        obligation.discharge(AckStatus::Delivered);
    }
}
