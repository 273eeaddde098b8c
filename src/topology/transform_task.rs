//! A transform's task: its input queue through the function to its outputs' fan-outs.

use crate::ack::AckStatus;
use crate::channel::{BatchReceiver, Fanout};
use crate::event::Batch;
use crate::telemetry::{self, LogLimiter};
use crate::transforms::{FunctionTransform, Outputs};

pub(super) async fn run_transform(
    id: String,
    mut function: Box<dyn FunctionTransform>,
    named: usize,
    mut rx: BatchReceiver,
    outputs: Vec<(String, Fanout)>,
) {
    let received = telemetry::counter("component_received_events_total", &[("component_id", &id)]);
    let mut sender = TransformOutputs::new(&id, outputs);
    let mut buffers = Outputs::new(named);
    let mut passed = 0;
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
        // Room for as many as the last batch sent on: a batch for a transform that passes
        // every event, little for one that drops most (an output batch's spare room is
        // memory its queue's byte bound does not see).
        buffers.reserve_default(passed.min(batch.len()));
        for event in batch.events {
            function.transform(event, &mut buffers);
        }
        passed = buffers.default_output().len();
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
