//! Who feeds whom, kept for the router's whole life so that a reload can change it while
//! everything runs.
//!
//! Every component's input is a queue; every output is a [`Fanout`] whose consumer list can
//! be replaced ([`FanoutHandle`]). The wiring knows, for each live queue, the outputs it
//! reads, and for each live output its handle; [`Wiring::commit`] recomputes every live
//! output's consumer list from that. It holds queues and outputs weakly: only the fan-outs'
//! lists keep a queue open, and only its producer keeps an output alive, so shutdown is
//! still channel closure, and a component taken out of the wiring sees its queue close once
//! its producers' sends in progress are done.
//!
//! A retired producer (removed, or replaced by a new instance) leaves the wiring but keeps
//! the consumer list it had: the events it still holds go where the configuration they
//! arrived under said, and the old consumers it feeds stay open until it has ended.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::channel::{BatchObserver, BatchSender, Fanout, FanoutHandle, WeakBatchSender};

/// A producer output: (component id, output index; 0 is the default output).
pub(super) type OutputKey = (String, usize);

struct Output {
    handle: FanoutHandle,
    observer: Option<Arc<dyn BatchObserver>>,
}

struct Queue {
    reads: Vec<OutputKey>,
    sender: WeakBatchSender,
}

#[derive(Default)]
pub(super) struct Wiring {
    outputs: HashMap<OutputKey, Output>,
    /// By consumer key: a component id, or a rule set's key.
    queues: HashMap<String, Queue>,
    staged_outputs: Vec<(OutputKey, Output)>,
    staged_queues: Vec<(String, Queue)>,
    /// What unchanged consumers read from the next commit on.
    staged_reads: Vec<(String, Vec<OutputKey>)>,
    /// Senders of staged queues, held until they are in their producers' lists.
    pending: Vec<BatchSender>,
    /// At start, new outputs are made tappable here (after start, a replaced output keeps
    /// its predecessor's tap; an output added by a reload is not tappable until a restart).
    #[cfg(feature = "store")]
    pub(super) taps: Option<crate::tap::Taps>,
}

impl Wiring {
    /// Stages the queue of `consumer`, reading `reads`.
    pub(super) fn stage_queue(
        &mut self,
        consumer: &str,
        reads: Vec<OutputKey>,
        sender: BatchSender,
    ) {
        let mut unique = Vec::with_capacity(reads.len());
        // Reading one output twice does not make it send twice.
        for key in reads {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        self.staged_queues.push((
            consumer.to_string(),
            Queue {
                reads: unique,
                sender: sender.downgrade(),
            },
        ));
        self.pending.push(sender);
    }

    /// Stages output `key` (shown to taps as `name`) and returns its fan-out, which has no
    /// consumers until [`Wiring::commit`].
    pub(super) fn stage_output(&mut self, key: OutputKey, name: String) -> Fanout {
        let mut fanout = Fanout::default();
        let inherited = self.outputs.get(&key).and_then(|o| o.observer.clone());
        if let Some(observer) = inherited {
            fanout = fanout.observed_by(observer);
        } else {
            #[cfg(feature = "store")]
            if let Some(taps) = self.taps.as_mut() {
                fanout = taps.observe(name, fanout);
            }
            #[cfg(not(feature = "store"))]
            let _ = name;
        }
        self.staged_outputs.push((
            key,
            Output {
                handle: fanout.handle(),
                observer: fanout.observer(),
            },
        ));
        fanout
    }

    /// Changes what an unchanged consumer reads, from the next commit on.
    pub(super) fn set_reads(&mut self, consumer: &str, reads: Vec<OutputKey>) {
        self.staged_reads.push((consumer.to_string(), reads));
    }

    /// Forgets what was staged (a reload that failed half-way); the staged queues close.
    pub(super) fn abort(&mut self) {
        self.staged_outputs.clear();
        self.staged_queues.clear();
        self.staged_reads.clear();
        self.pending.clear();
    }

    /// Takes retired consumers' queues and retired producers' outputs out, puts the staged
    /// ones in, and gives every live output its consumers.
    pub(super) fn commit(
        &mut self,
        retired_consumers: &HashSet<String>,
        retired_producers: &HashSet<String>,
    ) {
        self.queues.retain(|id, _| !retired_consumers.contains(id));
        for (consumer, reads) in self.staged_reads.drain(..) {
            if let Some(queue) = self.queues.get_mut(&consumer) {
                queue.reads.clear();
                for key in reads {
                    if !queue.reads.contains(&key) {
                        queue.reads.push(key);
                    }
                }
            }
        }
        self.outputs
            .retain(|(id, _), _| !retired_producers.contains(id));
        self.queues.extend(self.staged_queues.drain(..));
        self.outputs.extend(self.staged_outputs.drain(..));
        // Every live queue's sender is held here while the lists change, so that a queue
        // moving from one producer's list to another's never has no sender in between.
        let mut live: Vec<(&Vec<OutputKey>, BatchSender)> = Vec::new();
        let mut dead = Vec::new();
        for (id, queue) in &self.queues {
            match queue.sender.upgrade() {
                Some(sender) => live.push((&queue.reads, sender)),
                None => dead.push(id.clone()),
            }
        }
        let mut ended = Vec::new();
        for (key, output) in &self.outputs {
            let consumers = live
                .iter()
                .filter(|(reads, _)| reads.contains(key))
                .map(|(_, sender)| sender.clone())
                .collect();
            if !output.handle.set(consumers) {
                ended.push(key.clone());
            }
        }
        drop(live);
        self.pending.clear();
        for id in dead {
            self.queues.remove(&id);
        }
        for key in ended {
            self.outputs.remove(&key);
        }
    }
}
