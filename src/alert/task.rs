//! The task of a set of rules reading the same inputs: counts the events of their input
//! queue, ticks the lifecycles on a timer, sends each rule's alert events to that rule's
//! output and persists each rule's firing alerts.
//!
//! Rules are not `FunctionTransform`s: they must act when no event arrives (absence,
//! resolution, `for_secs`), so the task owns a timer. Input events are consumed here (they
//! are acknowledged as delivered by being dropped, like a filter's); the outputs carry only
//! alert events, which have no acknowledgement token.

use std::path::PathBuf;
use std::time::Duration;

use super::transition::Status;
use super::{state, Registry, RuleSet, Transition};
use crate::ack::AckStatus;
use crate::channel::{BatchReceiver, Fanout};
use crate::event::{now_nanos, Batch};
use crate::telemetry::{self, Counter, LogLimiter};

/// How often the lifecycle runs: one bucket width of the shortest window, between 100 ms
/// and 1 s. This is the latency of a firing or resolution after the condition changed.
fn tick_period(window_nanos: i64) -> Duration {
    let bucket = Duration::from_nanos((window_nanos / super::window::BUCKETS as i64) as u64);
    bucket.clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Transitions logged one by one per tick; more are counted in one line.
const LOGGED_PER_TICK: usize = 20;

/// What the task keeps per rule: its output and its telemetry.
struct RuleIo {
    id: String,
    path: PathBuf,
    out: Fanout,
    received: Counter,
    sent: Counter,
    overflow: Counter,
    fired: Counter,
    resolved: Counter,
    unconsumed: Counter,
    overflow_log: LogLimiter,
    state_log: LogLimiter,
}

impl RuleIo {
    fn new(id: &str, path: PathBuf, out: Fanout) -> Self {
        let labels = [("component_id", id)];
        Self {
            id: id.to_string(),
            path,
            out,
            received: telemetry::counter("component_received_events_total", &labels),
            sent: telemetry::counter("component_sent_events_total", &labels),
            overflow: telemetry::counter("alert_group_overflow_events_total", &labels),
            fired: telemetry::counter("alerts_fired_total", &labels),
            resolved: telemetry::counter("alerts_resolved_total", &labels),
            unconsumed: telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", id), ("reason", "unconsumed_output")],
            ),
            overflow_log: LogLimiter::default(),
            state_log: LogLimiter::default(),
        }
    }
}

/// Runs `set`; `outs[i]` is the output of rule `i`.
pub async fn run_rules(
    mut set: RuleSet,
    mut rx: BatchReceiver,
    outs: Vec<Fanout>,
    registry: Registry,
) {
    let mut rules: Vec<RuleIo> = outs
        .into_iter()
        .enumerate()
        .map(|(i, out)| {
            let spec = set.spec(i);
            RuleIo::new(&spec.id, spec.state_path.clone(), out)
        })
        .collect();

    for (i, io) in rules.iter_mut().enumerate() {
        match state::load(&io.path) {
            Ok(Some(saved)) if saved.rule != io.id => {
                // Two rules must not share a file (validation refuses it); a file left by a
                // renamed rule belongs to no one here.
                tracing::warn!(component_id = %io.id, path = %io.path.display(), owner = %saved.rule, "alert state belongs to another rule; ignored");
            }
            Ok(Some(saved)) => {
                let restored = set.restore(i, saved, now_nanos());
                if !restored.is_empty() {
                    tracing::info!(component_id = %io.id, alerts = restored.len(), path = %io.path.display(), "restored firing alerts");
                }
                emit(&set, i, io, restored, now_nanos()).await;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(component_id = %io.id, %error, "alert state not restored")
            }
        }
        registry.update(&io.id, Registry::active(&set, i));
    }

    let shortest = (0..set.len())
        .map(|i| set.spec(i).window_nanos)
        .min()
        .unwrap_or(i64::MAX);
    let mut interval = tokio::time::interval(tick_period(shortest));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(batch) = batch else { break };
                let now = now_nanos();
                for event in &batch.events {
                    set.observe(event, now);
                }
                for io in &rules {
                    io.received.inc(batch.len() as u64);
                }
                // Counted: the rules consume events, they do not pass them on.
                batch.finish(AckStatus::Delivered);
            }
            _ = interval.tick() => tick(&mut set, &mut rules, &registry).await,
        }
    }
    // The input closed (shutdown): firing alerts stay in the state files, unresolved, for
    // the next start.
    for io in &rules {
        registry.update(&io.id, Vec::new());
    }
}

async fn tick(set: &mut RuleSet, rules: &mut [RuleIo], registry: &Registry) {
    let now = now_nanos();
    let mut by_rule: Vec<Vec<Transition>> = vec![Vec::new(); rules.len()];
    let (mut logged, mut unlogged) = (0usize, 0u64);
    for (i, t) in set.tick(now) {
        let io = &rules[i];
        match t.status {
            Status::Firing if !t.repeat => io.fired.inc(1),
            Status::Resolved => io.resolved.inc(1),
            _ => {}
        }
        // One line per transition, but not a flood: when many groups fire at once (100 rules
        // over 1,000 apps can fire 50,000 alerts in one tick) the rest is summed up below;
        // each one is still an alert event on the rule's output.
        if logged < LOGGED_PER_TICK {
            logged += 1;
            tracing::info!(component_id = %io.id, status = t.status.as_str(), repeat = t.repeat, fingerprint = %t.fingerprint, message = %t.message, "alert");
        } else {
            unlogged += 1;
        }
        by_rule[i].push(t);
    }
    if unlogged > 0 {
        tracing::info!(
            transitions = unlogged,
            "more alert transitions this tick than are logged one by one; every one is an alert event on its rule's output"
        );
    }
    for (i, (io, transitions)) in rules.iter_mut().zip(by_rule).enumerate() {
        emit(set, i, io, transitions, now).await;
        let overflow = set.take_overflow(i);
        if overflow > 0 {
            io.overflow.inc(overflow);
            if let Some(suppressed) = io.overflow_log.check() {
                tracing::warn!(component_id = %io.id, max_groups = set.spec(i).max_groups, suppressed, "alert rule group table is full; events of new groups are not counted");
            }
        }
        if set.take_dirty(i) {
            let snapshot = set.snapshot(i);
            let path = io.path.clone();
            let saved = tokio::task::spawn_blocking(move || state::save(&path, &snapshot)).await;
            if let Ok(Err(error)) = saved {
                if let Some(suppressed) = io.state_log.check() {
                    tracing::error!(component_id = %io.id, %error, suppressed, "alert state not saved");
                }
            }
        }
        registry.update(&io.id, Registry::active(set, i));
    }
}

async fn emit(set: &RuleSet, rule: usize, io: &mut RuleIo, transitions: Vec<Transition>, now: i64) {
    if transitions.is_empty() {
        return;
    }
    let spec = set.spec(rule);
    let events: Vec<_> = transitions.iter().map(|t| t.to_event(spec, now)).collect();
    let n = events.len() as u64;
    if io.out.is_empty() || io.out.send(Batch::new(events)).await.is_err() {
        io.unconsumed.inc(n);
    } else {
        io.sent.inc(n);
    }
}
