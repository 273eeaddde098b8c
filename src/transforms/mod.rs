//! Transforms: per-event functions run by the topology on whole batches.
//!
//! Every transform implements [`FunctionTransform`]: it takes one owned event and pushes zero
//! or more events to its outputs. The topology drives it over a batch and sends each output's
//! events on as one batch, so a transform never sees channels, tasks or acknowledgements.

use std::time::Duration;

use crate::event::Event;

/// A transform that maps one event to zero or more output events.
///
/// A transform that holds events back (`multiline`, joining lines) also says how often it
/// wants [`tick`](Self::tick) called while no input arrives, to send what waited long
/// enough, and sends everything it holds in [`finish`](Self::finish) when its input ends.
pub trait FunctionTransform: Send + 'static {
    fn transform(&mut self, event: Event, out: &mut Outputs);

    /// How often [`tick`](Self::tick) is wanted; `None` (the default) for a transform that
    /// holds nothing back.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Sends what has waited long enough.
    fn tick(&mut self, _out: &mut Outputs) {}

    /// The input ended (shutdown drains the pipeline): sends everything held.
    fn finish(&mut self, _out: &mut Outputs) {}
}

/// What a transform needs from the topology at build time.
#[derive(Debug, Clone)]
pub struct TransformContext {
    /// The component id, used to label telemetry.
    pub id: String,
}

/// Collects the events a transform emits, per output.
///
/// Output 0 is the default output (addressed as `ID`); named outputs (addressed as
/// `ID.NAME`) are numbered from 1 in the order the transform's config lists them.
#[derive(Debug)]
pub struct Outputs {
    buffers: Vec<Vec<Event>>,
}

impl Outputs {
    /// Creates buffers for the default output plus `named` named outputs.
    pub fn new(named: usize) -> Self {
        Self {
            buffers: (0..=named).map(|_| Vec::new()).collect(),
        }
    }

    /// Makes room for `additional` events on the default output: a buffer grown push by
    /// push is copied each time it doubles.
    pub fn reserve_default(&mut self, additional: usize) {
        self.buffers[0].reserve(additional);
    }

    /// Sends `event` to the default output.
    pub fn push(&mut self, event: Event) {
        self.buffers[0].push(event);
    }

    /// Sends `event` to named output `index` (0-based over the named outputs).
    pub fn push_named(&mut self, index: usize, event: Event) {
        self.buffers[index + 1].push(event);
    }

    /// Takes the buffered events of every output (default first), leaving them empty.
    pub fn drain(&mut self) -> impl Iterator<Item = (usize, Vec<Event>)> + '_ {
        self.buffers
            .iter_mut()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, b)| (i, std::mem::take(b)))
    }

    /// Events buffered for the default output (tests read results through this).
    pub fn default_output(&self) -> &[Event] {
        &self.buffers[0]
    }

    /// Events buffered for named output `index`.
    pub fn named_output(&self, index: usize) -> &[Event] {
        &self.buffers[index + 1]
    }
}

pub mod dedupe;
pub mod enrich;
pub mod filter;
pub mod log_to_metric;
pub mod multiline;
pub mod parse;
pub mod parse_check;
pub mod redact;
pub mod remap;
pub mod route;
pub mod sample;
pub mod throttle;
