//! What `sluice test` prints: one line per test, and under a failed one what was expected
//! and the events that came out, as JSON; then a summary.

use std::io::Write;

use crate::event::Event;

use super::harness::{Failure, Outcome};

/// At most this many events are printed per failure; the rest are counted.
const MAX_EVENTS_SHOWN: usize = 10;

/// `test NAME ... passed|failed`, then each failure, indented.
pub(super) fn write_outcome(
    out: &mut impl Write,
    name: &str,
    outcome: &Outcome,
) -> std::io::Result<()> {
    let verdict = if outcome.passed() { "passed" } else { "failed" };
    writeln!(out, "test {name} ... {verdict}")?;
    for failure in &outcome.failures {
        match failure {
            Failure::NoEvents { output } => {
                writeln!(out, "  no events came out of `{output}`")?;
            }
            Failure::Conditions {
                output,
                held,
                events,
            } => {
                let n = events.len();
                let events_word = if n == 1 { "event" } else { "events" };
                let never_held: Vec<_> = held.iter().filter(|(_, count)| *count == 0).collect();
                for (condition, _) in &never_held {
                    writeln!(
                        out,
                        "  condition failed on `{output}`: {condition} (held for 0 of {n} {events_word})"
                    )?;
                }
                if never_held.is_empty() {
                    let each: Vec<String> = held
                        .iter()
                        .map(|(c, count)| format!("{c} (held for {count} of {n})"))
                        .collect();
                    writeln!(
                        out,
                        "  conditions failed on `{output}`: no one event satisfied all of them: {}",
                        each.join(", ")
                    )?;
                }
                writeln!(out, "  {n} {events_word} came out of `{output}`:")?;
                write_events(out, events)?;
            }
            Failure::UnexpectedEvents { output, events } => {
                writeln!(
                    out,
                    "  expected no events from `{output}`, but {} came out:",
                    events.len()
                )?;
                write_events(out, events)?;
            }
        }
    }
    for note in &outcome.notes {
        writeln!(out, "  {note}")?;
    }
    if !outcome.passed() {
        if outcome.came_out.is_empty() {
            writeln!(out, "  no event came out of any transform")?;
        } else {
            let list: Vec<String> = outcome
                .came_out
                .iter()
                .map(|(output, n)| format!("{output} ({n})"))
                .collect();
            writeln!(out, "  outputs that sent events: {}", list.join(", "))?;
        }
    }
    Ok(())
}

fn write_events(out: &mut impl Write, events: &[Event]) -> std::io::Result<()> {
    for event in events.iter().take(MAX_EVENTS_SHOWN) {
        let json = serde_json::to_string(&event.fields)
            .unwrap_or_else(|e| format!("(cannot show the event: {e})"));
        writeln!(out, "    {json}")?;
    }
    if events.len() > MAX_EVENTS_SHOWN {
        writeln!(out, "    ... and {} more", events.len() - MAX_EVENTS_SHOWN)?;
    }
    Ok(())
}

/// Counts of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

impl Summary {
    pub(super) fn add(&mut self, outcome: &Outcome) {
        if outcome.passed() {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// `N tests: P passed, F failed`.
pub(super) fn write_summary(out: &mut impl Write, summary: Summary) -> std::io::Result<()> {
    let total = summary.passed + summary.failed;
    let tests = if total == 1 { "test" } else { "tests" };
    writeln!(
        out,
        "\n{total} {tests}: {} passed, {} failed",
        summary.passed, summary.failed
    )
}
