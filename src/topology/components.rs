//! Making one component's queue and outputs, opening it and spawning its task: the steps
//! start and reload share.

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::wiring::{OutputKey, Wiring};
use super::TopologyError;
use crate::buffer::{BufferConfig, BufferType, WhenFull, DEFAULT_MEMORY_BYTES};
use crate::channel::{channel, BatchReceiver, BatchSender, Fanout};
use crate::config::{Graph, OutputRef};
use crate::pipeline::{AlertSpec, OpenedSource, SinkSpec, SourceSpec, TransformSpec};
use crate::sinks::{SinkContext, SinkMetrics};
use crate::sources::sockets::{Socket, Sockets};
use crate::sources::SourceContext;
use crate::telemetry;

/// The outputs `inputs` name.
pub(super) fn reads(inputs: &[OutputRef], graph: &Graph) -> Vec<OutputKey> {
    inputs
        .iter()
        .map(|input| (input.component.clone(), graph.output_index(input)))
        .collect()
}

/// A sink's input queue, sized and behaving as its `buffer` says.
pub(super) fn sink_queue(sink: &SinkSpec, graph: &Graph, wiring: &mut Wiring) -> BatchReceiver {
    let capacity = sink.buffer.memory_bytes(sink.sink.in_flight_bytes());
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
    stage_reader(wiring, &sink.id, &sink.id, &sink.inputs, graph, tx);
    rx
}

/// A default-sized memory queue reading `inputs`, for a transform (`key` its id) or a rule
/// set (`key` the set's, `tap_id` its first rule's).
pub(super) fn memory_queue(
    key: &str,
    tap_id: &str,
    inputs: &[OutputRef],
    graph: &Graph,
    wiring: &mut Wiring,
    gauges: bool,
) -> BatchReceiver {
    let queued = telemetry::counter("buffer_queued_bytes_total", &[("component_id", tap_id)]);
    let (tx, rx) = channel(DEFAULT_MEMORY_BYTES as usize, queued);
    if gauges {
        register_queue_gauges(tap_id, &tx, DEFAULT_MEMORY_BYTES as usize);
    }
    stage_reader(wiring, key, tap_id, inputs, graph, tx);
    rx
}

fn stage_reader(
    wiring: &mut Wiring,
    key: &str,
    tap_id: &str,
    inputs: &[OutputRef],
    graph: &Graph,
    tx: BatchSender,
) {
    #[cfg(feature = "store")]
    if let Some(taps) = wiring.taps.as_mut() {
        taps.reads(tap_id, inputs.iter().map(|i| i.to_string()).collect());
    }
    #[cfg(not(feature = "store"))]
    let _ = tap_id;
    wiring.stage_queue(key, reads(inputs, graph), tx);
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

fn output(wiring: &mut Wiring, graph: &Graph, id: &str, index: usize) -> Fanout {
    wiring.stage_output((id.to_string(), index), graph.output_name(id, index))
}

/// Binds `source` (the IO that can fail on what another process holds), or takes from
/// `sockets` what the instance it replaces holds at the same address; its task stops when
/// `stop` fires.
pub(super) async fn open_source(
    source: SourceSpec,
    graph: &Graph,
    wiring: &mut Wiring,
    stop: CancellationToken,
    sockets: &Sockets,
) -> Result<OpenedSource, TopologyError> {
    let ctx = SourceContext {
        id: Arc::from(source.id.as_str()),
        out: output(wiring, graph, &source.id, 0),
        dead_letter: output(wiring, graph, &source.id, 1),
        shutdown: stop,
    };
    source
        .source
        .open(ctx, sockets)
        .await
        .map_err(|error| TopologyError::Source {
            id: source.id.clone(),
            source: error,
        })
}

/// Whether a new source instance starts only once the one it replaces has ended: when it
/// took that instance's datagram socket, which one instance at a time reads, so that
/// datagrams keep their order. A listener is accepted on at once (the old instance's
/// connections come over as it stops).
pub(super) fn starts_after_predecessor(opened: &OpenedSource) -> bool {
    opened
        .sockets
        .iter()
        .any(|b| b.inherited && matches!(b.socket, Socket::Datagram(_)))
}

/// Opens `sink` on `rx` (its disk buffer, if any, spawned in between); returns its task and
/// the endpoints it serves.
pub(super) fn open_sink(
    sink: SinkSpec,
    rx: BatchReceiver,
    graph: &Graph,
    wiring: &mut Wiring,
    shutdown: &CancellationToken,
    streams_stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<crate::pipeline::OpenedSink, TopologyError> {
    let rx = match sink.buffer.kind {
        BufferType::Memory => rx,
        BufferType::Disk => spawn_disk_buffer(&sink, rx, shutdown, tasks)?,
    };
    let ctx = SinkContext {
        id: Arc::from(sink.id.as_str()),
        metrics: SinkMetrics::new(&sink.id),
        dead_letter: output(wiring, graph, &sink.id, 1),
        runtime: tokio::runtime::Handle::current(),
    };
    sink.sink
        .open(rx, ctx, streams_stop)
        .map_err(|e| TopologyError::Sink {
            id: sink.id.clone(),
            message: e.to_string(),
        })
}

/// A transform's task, its outputs made.
pub(super) fn transform_task(
    transform: TransformSpec,
    rx: BatchReceiver,
    graph: &Graph,
    wiring: &mut Wiring,
) -> impl Future<Output = ()> + Send + 'static {
    let names = std::iter::once(transform.id.clone()).chain(
        transform
            .transform
            .outputs
            .iter()
            .map(|n| format!("{}.{}", transform.id, n)),
    );
    let outputs: Vec<(String, Fanout)> = names
        .enumerate()
        .map(|(i, name)| (name, output(wiring, graph, &transform.id, i)))
        .collect();
    let named = transform.transform.outputs.len();
    super::transform_task::run_transform(
        transform.id,
        transform.transform.function,
        named,
        rx,
        outputs,
    )
}

/// A rule set's task, its outputs made. It runs on a thread of its own, not as a task among
/// the workers: a set is CPU-heavy, and as a task it competes with the sources for the
/// workers. With the runtime's LIFO slot on, the rules and their source took turns on one
/// core (100 rules: −31 %); with it off (`router_runtime` in main.rs), a task still cost 9 %
/// against a thread (1,133k against 1,240k events/s, benches/RESULTS.md).
pub(super) fn alert_task(
    set: Vec<AlertSpec>,
    rx: BatchReceiver,
    graph: &Graph,
    wiring: &mut Wiring,
    registry: crate::alert::Registry,
) -> impl Future<Output = ()> + Send + 'static {
    let outs = set
        .iter()
        .map(|alert| output(wiring, graph, &alert.id, 0))
        .collect();
    // The set's thread does not inherit the task's span: it gets its own.
    let span = tracing::info_span!("component", component_kind = "alert", component_id = %set[0].id, rules = set.len());
    let rules = crate::alert::RuleSet::new(set.into_iter().map(|a| a.rule).collect());
    let run = crate::alert::run_rules(rules, rx, outs, registry).instrument(span);
    async move {
        let runtime = tokio::runtime::Handle::current();
        if let Err(error) = tokio::task::spawn_blocking(move || runtime.block_on(run)).await {
            tracing::error!(%error, "alert rules stopped");
        }
    }
}

/// Spawns a component's task in a span naming it; it starts once every `after` has fired
/// (the instances it replaces have ended, so their events come out first). The token
/// returned fires when the task has ended.
pub(super) fn spawn(
    tasks: &mut JoinSet<()>,
    kind: &'static str,
    id: &str,
    after: Vec<CancellationToken>,
    run: impl Future<Output = ()> + Send + 'static,
) -> CancellationToken {
    let done = CancellationToken::new();
    let guard = done.clone().drop_guard();
    let span = tracing::info_span!("component", component_kind = kind, component_id = %id);
    tasks.spawn(
        async move {
            let _ended = guard;
            for before in after {
                before.cancelled().await;
            }
            run.await;
        }
        .instrument(span),
    );
    done
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
    let capacity = BufferConfig::disk_to_sink_bytes(sink.sink.in_flight_bytes());
    let (to_sink, sink_rx) = channel(capacity, queued);
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

/// Rules reading the same inputs share one queue and one task (a rule set): one consumer
/// of those outputs instead of one per rule, and one pass over each event.
pub(super) fn alert_sets(alerts: Vec<AlertSpec>) -> Vec<Vec<AlertSpec>> {
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

/// The consumer key of a rule set: its rules' ids.
pub(super) fn set_key(set: &[AlertSpec]) -> String {
    let mut ids: Vec<&str> = set.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    format!("alert rules {}", ids.join(" "))
}
