//! The `multiline` transform: joins the lines of one message (a stack trace) into one event,
//! per stream.
//!
//! ```toml
//! [transforms.traces]
//! type = "multiline"
//! inputs = ["app_logs"]
//! preset = "java"                 # or start_pattern + condition_pattern + mode (Vector's)
//! group_by = ["app", "instance"]  # default: path + stream, else app + instance + stream
//! timeout_ms = 1000               # an idle stream's group is sent after this
//! max_lines = 500                 # a longer group is cut; the rest starts a new one
//! ```
//!
//! The rules and their state per stream are `codec::multiline` (shared with the file
//! source's `multiline` option). An event joined from several keeps the first one's fields
//! and metadata, with `message` the lines joined by `\n`; its acknowledgement token stands
//! for every line's, so the joined event's outcome becomes each line's. Events whose
//! `message` is not a string pass untouched (after their stream's pending group, so order
//! is kept). Groups still pending when the input ends are sent then; cut groups
//! (`component_multiline_cut_events_total`) and groups sent because more than `max_streams` were
//! pending (`component_multiline_evicted_events_total`) are counted.

use std::time::{Duration, Instant};

use super::{FunctionTransform, Outputs, TransformContext};
use crate::ack::Obligation;
use crate::codec::multiline::{Flush, Joined, LineAggregator, MultilineConfig, Parts};
use crate::condition::{with_scalar_bytes, FieldPath};
use crate::event::{fields, Event, Value};
use crate::field_error::FieldError;
use crate::telemetry::{self, Counter};

/// The `[transforms.ID] type = "multiline"` table: the shared options plus `group_by`.
pub type MultilineTransformConfig = MultilineConfig;

/// The field the file source writes a line's path to.
const PATH: &str = "path";

/// How a stream is told apart.
#[derive(Debug)]
enum GroupBy {
    /// `path` and `stream` when the event has a path (a tailed file), else `app`, `instance`
    /// and `stream`: the stream a line was written to.
    Stream,
    Fields(Vec<FieldPath>),
}

/// The running `multiline` transform.
pub struct Multiline {
    group_by: GroupBy,
    aggregator: LineAggregator<Vec<u8>, Lines>,
    cut: Counter,
    evicted: Counter,
}

impl std::fmt::Debug for Multiline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multiline")
            .field("group_by", &self.group_by)
            .finish()
    }
}

/// What a pending group holds besides its bytes: the first event, and the duty to state the
/// outcome of every line's event (errored if the transform is dropped with it pending).
struct Lines {
    first: Event,
    tokens: Obligation,
}

impl Parts for Lines {
    fn absorb(&mut self, next: Self) {
        self.tokens.append(next.tokens);
    }
}

impl MultilineConfig {
    /// Checks the options, compiles the patterns and field paths. Does no IO.
    pub fn build_transform(&self, ctx: &TransformContext) -> Result<Multiline, FieldError> {
        let rules = self.build()?;
        let group_by = match &self.group_by {
            None => GroupBy::Stream,
            Some(list) if list.is_empty() => {
                return Err(FieldError::new(
                    "group_by",
                    "must name at least one field (leave it out to group by stream)",
                ))
            }
            Some(list) => GroupBy::Fields(
                list.iter()
                    .enumerate()
                    .map(|(i, f)| {
                        FieldPath::parse(f)
                            .map_err(|m| FieldError::new(format!("group_by[{i}]"), m))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let counter = |name| telemetry::counter(name, &[("component_id", &ctx.id)]);
        Ok(Multiline {
            group_by,
            aggregator: LineAggregator::new(rules),
            cut: counter("component_multiline_cut_events_total"),
            evicted: counter("component_multiline_evicted_events_total"),
        })
    }
}

/// Appends `value` to `key`, length-prefixed so that `("ab", "c")` and `("a", "bc")` differ;
/// a missing field is its own marker.
fn push_key_part(key: &mut Vec<u8>, value: Option<&Value>) {
    let pushed = value.and_then(|value| {
        with_scalar_bytes(value, |bytes| {
            key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            key.extend_from_slice(bytes);
        })
    });
    if pushed.is_none() {
        key.extend_from_slice(&u32::MAX.to_le_bytes());
    }
}

impl Multiline {
    fn key(&self, event: &Event) -> Vec<u8> {
        let mut key = Vec::with_capacity(64);
        // Two sources never share a stream, whatever their events' fields say.
        let source = event.meta.source.as_deref().unwrap_or("");
        key.extend_from_slice(&(source.len() as u32).to_le_bytes());
        key.extend_from_slice(source.as_bytes());
        match &self.group_by {
            GroupBy::Stream => {
                let names: &[&str] = if event.fields.contains_key(PATH) {
                    &[PATH, fields::STREAM]
                } else {
                    &[fields::APP, fields::INSTANCE, fields::STREAM]
                };
                for name in names {
                    push_key_part(&mut key, event.fields.get(name));
                }
            }
            GroupBy::Fields(paths) => {
                for path in paths {
                    push_key_part(&mut key, path.get(&event.fields));
                }
            }
        }
        key
    }

    fn emit(&self, joined: Joined<Lines>, out: &mut Outputs) {
        match joined.flush {
            Flush::Cut => self.cut.inc(1),
            Flush::Evicted => self.evicted.inc(1),
            Flush::Complete | Flush::Timeout | Flush::End => {}
        }
        let Lines { mut first, tokens } = joined.parts;
        if joined.lines > 1 {
            first.insert(fields::MESSAGE, Value::Bytes(joined.message));
        }
        first.meta.ack = tokens.into_token();
        out.push(first);
    }

    /// [`FunctionTransform::transform`] at a given time.
    fn transform_at(&mut self, event: Event, now: Instant, out: &mut Outputs) {
        let key = self.key(&event);
        let Some(line) = event.message().and_then(Value::as_bytes).cloned() else {
            let mut held = Vec::new();
            self.aggregator.flush_key(&key, &mut |j| held.push(j));
            for joined in held {
                self.emit(joined, out);
            }
            out.push(event);
            return;
        };
        let mut done = Vec::new();
        let lines = Lines {
            tokens: Obligation::of([event.meta.ack.as_ref()]),
            first: event,
        };
        self.aggregator
            .push(key, line, lines, now, &mut |j| done.push(j));
        for joined in done {
            self.emit(joined, out);
        }
    }

    fn tick_at(&mut self, now: Instant, out: &mut Outputs) {
        let mut done = Vec::new();
        self.aggregator.flush_idle(now, &mut |j| done.push(j));
        for joined in done {
            self.emit(joined, out);
        }
    }
}

impl FunctionTransform for Multiline {
    fn transform(&mut self, event: Event, out: &mut Outputs) {
        self.transform_at(event, Instant::now(), out);
    }

    /// A quarter of the timeout (10 ms to 250 ms): a group is sent at most that late.
    fn tick_interval(&self) -> Option<Duration> {
        Some(
            (self.aggregator.rules().timeout() / 4)
                .clamp(Duration::from_millis(10), Duration::from_millis(250)),
        )
    }

    fn tick(&mut self, out: &mut Outputs) {
        self.tick_at(Instant::now(), out);
    }

    fn finish(&mut self, out: &mut Outputs) {
        let mut done = Vec::new();
        self.aggregator.flush_all(&mut |j| done.push(j));
        for joined in done {
            self.emit(joined, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::ack::{AckStatus, AckToken};

    /// A line as an event of app `app`.
    fn line(app: &str, text: &str) -> Event {
        let mut event = Event::from_message(Bytes::from(text.to_string()));
        event.insert(fields::APP, app);
        event
    }

    fn build(toml: &str) -> Multiline {
        let config: MultilineConfig = toml::from_str(toml).unwrap();
        config
            .build_transform(&TransformContext { id: "ml".into() })
            .unwrap()
    }

    fn messages(out: &Outputs) -> Vec<String> {
        out.default_output()
            .iter()
            .map(|e| e.message().unwrap().to_text())
            .collect()
    }

    #[test]
    fn joins_per_stream_and_keeps_the_first_events_fields() {
        let mut ml = build(r#"preset = "java""#);
        let mut out = Outputs::new(0);
        let now = Instant::now();
        for (app, text) in [
            ("web", "java.lang.IllegalStateException: boom"),
            ("api", "plain api line"),
            ("web", "\tat Main.main(Main.java:3)"),
            ("api", "next api line"),
            ("web", "after"),
        ] {
            ml.transform_at(line(app, text), now, &mut out);
        }
        ml.finish(&mut out);
        assert_eq!(
            messages(&out),
            [
                "plain api line",
                "java.lang.IllegalStateException: boom\n\tat Main.main(Main.java:3)",
                "next api line",
                "after"
            ]
        );
        assert_eq!(
            out.default_output()[1].get("app"),
            Some(&Value::from("web"))
        );
    }

    #[test]
    fn group_by_names_the_stream_fields() {
        let mut ml = build(
            r#"preset = "ruby"
group_by = ["instance"]"#,
        );
        let mut out = Outputs::new(0);
        let now = Instant::now();
        // Different apps, one instance: one stream.
        ml.transform_at(
            line("a", "x.rb:1:in 'f': boom (RuntimeError)"),
            now,
            &mut out,
        );
        ml.transform_at(line("b", "\tfrom x.rb:2:in '<main>'"), now, &mut out);
        ml.finish(&mut out);
        assert_eq!(messages(&out).len(), 1);
        let err = MultilineConfig {
            group_by: Some(vec![]),
            ..toml::from_str(r#"preset = "ruby""#).unwrap()
        }
        .build_transform(&TransformContext { id: "ml".into() })
        .unwrap_err();
        assert_eq!(err.field, "group_by");
    }

    #[test]
    fn an_idle_stream_is_sent_on_a_tick_after_its_timeout() {
        let mut ml = build(r#"preset = "python""#);
        let mut out = Outputs::new(0);
        let t0 = Instant::now();
        ml.transform_at(
            line("web", "Traceback (most recent call last):"),
            t0,
            &mut out,
        );
        ml.transform_at(line("web", "  File \"x.py\", line 1"), t0, &mut out);
        ml.transform_at(line("web", "ValueError: boom"), t0, &mut out);
        ml.tick_at(t0 + Duration::from_millis(999), &mut out);
        assert!(out.default_output().is_empty());
        ml.tick_at(t0 + Duration::from_millis(1_000), &mut out);
        assert_eq!(
            messages(&out),
            ["Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom"]
        );
    }

    #[tokio::test]
    async fn a_joined_event_reports_to_every_lines_source_batch() {
        let mut ml = build(r#"preset = "java""#);
        let mut out = Outputs::new(0);
        let now = Instant::now();
        let (a, rx_a) = AckToken::new();
        let (b, rx_b) = AckToken::new();
        for (token, text) in [(&a, "E: boom"), (&b, "\tat x")] {
            let mut event = line("web", text);
            event.meta.ack = Some(token.clone());
            ml.transform_at(event, now, &mut out);
        }
        // The batches were passed on: the topology discharges their obligations.
        Obligation::of([Some(&a), Some(&b)]).discharge(AckStatus::Delivered);
        drop((a, b));
        ml.finish(&mut out);
        let joined: Vec<Event> = out.drain().flat_map(|(_, events)| events).collect();
        assert_eq!(joined.len(), 1);
        joined[0].ack(AckStatus::Rejected);
        drop(joined);
        assert_eq!(rx_a.await.unwrap(), AckStatus::Rejected);
        assert_eq!(rx_b.await.unwrap(), AckStatus::Rejected);
    }

    #[tokio::test]
    async fn lines_pending_when_the_transform_is_dropped_are_not_delivered() {
        let mut ml = build(r#"preset = "java""#);
        let mut out = Outputs::new(0);
        let (token, rx) = AckToken::new();
        let mut event = line("web", "E: boom");
        event.meta.ack = Some(token.clone());
        ml.transform_at(event, Instant::now(), &mut out);
        Obligation::of([Some(&token)]).discharge(AckStatus::Delivered);
        drop(token);
        drop(ml); // cancelled at the shutdown deadline
        assert_eq!(rx.await.unwrap(), AckStatus::Errored);
    }

    #[test]
    fn cuts_and_evictions_are_counted() {
        let config: MultilineConfig = toml::from_str(
            r#"preset = "java"
max_lines = 2
max_streams = 1"#,
        )
        .unwrap();
        let id = "ml_counted";
        let mut ml = config
            .build_transform(&TransformContext { id: id.into() })
            .unwrap();
        let mut out = Outputs::new(0);
        let now = Instant::now();
        for (app, text) in [("a", "E"), ("a", "\tat 1"), ("a", "\tat 2"), ("b", "F")] {
            ml.transform_at(line(app, text), now, &mut out);
        }
        let count = |name| telemetry::counter_value(name, &[("component_id", id)]);
        assert_eq!(count("component_multiline_cut_events_total"), 1);
        assert_eq!(count("component_multiline_evicted_events_total"), 1);
        assert_eq!(messages(&out), ["E\n\tat 1", "\tat 2"]);
    }

    #[test]
    fn an_event_without_a_text_message_passes_after_its_streams_group() {
        let mut ml = build(r#"preset = "java""#);
        let mut out = Outputs::new(0);
        let now = Instant::now();
        ml.transform_at(line("web", "E: boom"), now, &mut out);
        let mut odd = line("web", "");
        odd.insert(fields::MESSAGE, Value::Integer(7));
        ml.transform_at(odd, now, &mut out);
        let got: Vec<Value> = out
            .default_output()
            .iter()
            .map(|e| e.message().unwrap().clone())
            .collect();
        assert_eq!(got, [Value::from("E: boom"), Value::Integer(7)]);
    }
}
