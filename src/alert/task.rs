//! The component task of one rule: counts the events of its input queue, ticks the
//! lifecycle on a timer, sends alert events to its output and persists its firing alerts.
//!
//! A rule is not a `FunctionTransform`: it must act when no event arrives (absence,
//! resolution, `for_secs`), so it owns a timer. Its input events are consumed here (they are
//! acknowledged as delivered by being dropped, like a filter's); its output carries only
//! alert events, which have no acknowledgement token.

use std::time::Duration;

use super::{state, Registry, Rule, Transition};
use crate::event::{now_nanos, Batch};
use crate::telemetry::{self, LogLimiter};
use crate::topology::{BatchReceiver, Fanout};

/// How often the lifecycle runs: one bucket width, between 100 ms and 1 s. This is the
/// latency of a firing or resolution after the condition changed.
fn tick_period(window_nanos: i64) -> Duration {
    let bucket = Duration::from_nanos((window_nanos / super::window::BUCKETS as i64) as u64);
    bucket.clamp(Duration::from_millis(100), Duration::from_secs(1))
}

pub async fn run_rule(mut rule: Rule, mut rx: BatchReceiver, mut out: Fanout, registry: Registry) {
    let id = rule.spec().id.clone();
    let path = rule.spec().state_path.clone();
    let received = telemetry::counter("component_received_events_total", &[("component_id", &id)]);
    let sent = telemetry::counter("component_sent_events_total", &[("component_id", &id)]);
    let overflow = telemetry::counter(
        "alert_group_overflow_events_total",
        &[("component_id", &id)],
    );
    let fired = telemetry::counter("alerts_fired_total", &[("component_id", &id)]);
    let resolved = telemetry::counter("alerts_resolved_total", &[("component_id", &id)]);
    let unconsumed = telemetry::counter(
        "component_discarded_events_total",
        &[("component_id", &id), ("reason", "unconsumed_output")],
    );
    let mut overflow_log = LogLimiter::default();
    let mut state_log = LogLimiter::default();

    match state::load(&path) {
        Ok(Some(saved)) if saved.rule != id => {
            // Two rules must not share a file (validation refuses it); a file left by a
            // renamed rule belongs to no one here.
            tracing::warn!(component_id = %id, path = %path.display(), owner = %saved.rule, "alert state belongs to another rule; ignored");
        }
        Ok(Some(saved)) => {
            let restored = rule.restore(saved, now_nanos());
            if !restored.is_empty() {
                tracing::info!(component_id = %id, alerts = restored.len(), path = %path.display(), "restored firing alerts");
            }
            emit(&rule, restored, &mut out, now_nanos(), &sent, &unconsumed).await;
        }
        Ok(None) => {}
        Err(error) => tracing::error!(component_id = %id, %error, "alert state not restored"),
    }
    registry.update(&id, Registry::active(&rule));

    let mut interval = tokio::time::interval(tick_period(rule.spec().window_nanos));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(batch) = batch else { break };
                let now = now_nanos();
                for event in &batch.events {
                    rule.observe(event, now);
                }
                received.inc(batch.len() as u64);
            }
            _ = interval.tick() => {
                let now = now_nanos();
                let transitions = rule.tick(now);
                for t in &transitions {
                    match t.status {
                        super::rule::Status::Firing if !t.repeat => fired.inc(1),
                        super::rule::Status::Resolved => resolved.inc(1),
                        _ => {}
                    }
                    tracing::info!(component_id = %id, status = t.status.as_str(), repeat = t.repeat, fingerprint = %t.fingerprint, message = %t.message, "alert");
                }
                emit(&rule, transitions, &mut out, now, &sent, &unconsumed).await;
                if rule.overflow > 0 {
                    overflow.inc(std::mem::take(&mut rule.overflow));
                    if let Some(suppressed) = overflow_log.check() {
                        tracing::warn!(component_id = %id, max_groups = rule.spec().max_groups, suppressed, "alert rule group table is full; events of new groups are not counted");
                    }
                }
                if rule.take_dirty() {
                    let snapshot = rule.snapshot();
                    let path = path.clone();
                    let saved = tokio::task::spawn_blocking(move || state::save(&path, &snapshot)).await;
                    if let Ok(Err(error)) = saved {
                        if let Some(suppressed) = state_log.check() {
                            tracing::error!(component_id = %id, %error, suppressed, "alert state not saved");
                        }
                    }
                }
                registry.update(&id, Registry::active(&rule));
            }
        }
    }
    // The input closed (shutdown): firing alerts stay in the state file, unresolved, for
    // the next start.
    registry.update(&id, Vec::new());
}

async fn emit(
    rule: &Rule,
    transitions: Vec<Transition>,
    out: &mut Fanout,
    now: i64,
    sent: &telemetry::Counter,
    unconsumed: &telemetry::Counter,
) {
    if transitions.is_empty() {
        return;
    }
    let events: Vec<_> = transitions
        .iter()
        .map(|t| t.to_event(rule.spec(), now))
        .collect();
    let n = events.len() as u64;
    if out.is_empty() || out.send(Batch::new(events)).await.is_err() {
        unconsumed.inc(n);
    } else {
        sent.inc(n);
    }
}
