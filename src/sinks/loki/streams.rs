//! Events into Loki streams: each event's labels rendered from the `labels` templates,
//! events of one label set gathered into one stream with their entries in time order (what
//! Loki requires within a stream), and the push request's JSON body.
//!
//! Every distinct label set is a stream Loki indexes, so a template over a field with many
//! values (a request id) would flood it. The guard remembers up to `max_label_sets` sets;
//! an event whose set would be one more goes out under the fallback set instead (the
//! static labels plus `sluice_overflow="true"`) and is counted.

use std::collections::{HashMap, HashSet};

use crate::event::{fields, now_nanos, Event, Value};
use crate::sinks::Encoding;
use crate::telemetry::Counter;
use crate::template::Template;

pub(super) struct Labeler {
    labels: Vec<(String, Template)>,
    /// The label set of events beyond the guard, as rendered JSON.
    fallback: String,
    seen: HashSet<String>,
    max_label_sets: usize,
    overflow: Counter,
}

impl Labeler {
    pub(super) fn new(
        labels: Vec<(String, Template)>,
        max_label_sets: usize,
        overflow: Counter,
    ) -> Self {
        let mut fallback = String::from("{");
        for (name, template) in labels.iter().filter(|(_, t)| t.is_static()) {
            let mut value = String::new();
            template.render(&Event::default(), &mut value);
            push_label(&mut fallback, name, &value);
        }
        push_label(&mut fallback, "sluice_overflow", "true");
        fallback.push('}');
        Self {
            labels,
            fallback,
            seen: HashSet::new(),
            max_label_sets,
            overflow,
        }
    }

    /// The label set of `event`, as the JSON object Loki reads (labels with an empty value
    /// are left out, as Loki drops them).
    pub(super) fn label_set(&mut self, event: &Event) -> String {
        let mut set = String::from("{");
        let mut value = String::new();
        for (name, template) in &self.labels {
            value.clear();
            template.render(event, &mut value);
            if !value.is_empty() {
                push_label(&mut set, name, &value);
            }
        }
        set.push('}');
        if self.seen.contains(&set) {
            return set;
        }
        if self.seen.len() >= self.max_label_sets {
            self.overflow.inc(1);
            return self.fallback.clone();
        }
        self.seen.insert(set.clone());
        set
    }
}

fn push_label(set: &mut String, name: &str, value: &str) {
    if set.len() > 1 {
        set.push(',');
    }
    // Names were checked to be `[a-zA-Z_][a-zA-Z0-9_]*`; values are escaped.
    set.push('"');
    set.push_str(name);
    set.push_str("\":");
    set.push_str(&serde_json::to_string(value).unwrap_or_default());
}

/// The time of an entry: the event's `timestamp`, else now.
fn entry_time(event: &Event) -> i64 {
    match event.fields.get(fields::TIMESTAMP) {
        Some(Value::Timestamp(nanos)) => *nanos,
        _ => now_nanos(),
    }
}

/// `events` grouped by label set: streams in order of first appearance, each stream's
/// entries sorted by time (stable: equal times keep their order).
pub(super) fn grouped<'a>(
    events: &'a [(&'a Event, String)],
) -> Vec<(&'a str, Vec<(i64, &'a Event)>)> {
    let mut order: Vec<&str> = Vec::new();
    let mut streams: HashMap<&str, Vec<(i64, &Event)>> = HashMap::new();
    for (event, set) in events {
        let entries = streams.entry(set.as_str()).or_insert_with(|| {
            order.push(set.as_str());
            Vec::new()
        });
        entries.push((entry_time(event), event));
    }
    order
        .into_iter()
        .map(|set| {
            let mut entries = streams.remove(set).unwrap_or_default();
            entries.sort_by_key(|(time, _)| *time);
            (set, entries)
        })
        .collect()
}

/// An entry's line: the event encoded as `encoding` says, without the final newline.
pub(super) fn entry_line(event: &Event, encoding: Encoding, line: &mut Vec<u8>) {
    line.clear();
    encoding.encode(event, line);
    line.pop(); // the newline `encode` ends with
}

/// The JSON push body for `events` with their label sets: `{"streams":[{"stream":{...},
/// "values":[["NANOS","LINE"],...]},...]}`, grouped as [`grouped`] says.
pub(super) fn push_body(events: &[(&Event, String)], encoding: Encoding) -> Vec<u8> {
    let mut body = Vec::with_capacity(events.len() * 128);
    body.extend_from_slice(b"{\"streams\":[");
    let mut line = Vec::new();
    for (i, (set, entries)) in grouped(events).into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"stream\":");
        body.extend_from_slice(set.as_bytes());
        body.extend_from_slice(b",\"values\":[");
        for (j, (time, event)) in entries.iter().enumerate() {
            if j > 0 {
                body.push(b',');
            }
            entry_line(event, encoding, &mut line);
            body.extend_from_slice(format!("[\"{time}\",").as_bytes());
            let text = String::from_utf8_lossy(&line);
            let _ = serde_json::to_writer(&mut body, text.as_ref());
            body.push(b']');
        }
        body.extend_from_slice(b"]}");
    }
    body.extend_from_slice(b"]}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(app: &str, time: i64, message: &str) -> Event {
        let mut event = Event::default();
        event.fields.insert("app", Value::from(app));
        event.fields.insert("message", Value::from(message));
        event.fields.insert("timestamp", Value::Timestamp(time));
        event
    }

    fn labeler(max: usize) -> Labeler {
        let labels = vec![
            ("app".to_string(), Template::parse("{{ app }}").unwrap()),
            ("env".to_string(), Template::parse("prod").unwrap()),
        ];
        Labeler::new(labels, max, Counter::default())
    }

    #[test]
    fn labels_with_a_cardinality_guard() {
        let mut labeler = labeler(2);
        let sets: Vec<String> = ["a", "b", "a", "c", "d", ""]
            .iter()
            .map(|app| labeler.label_set(&event(app, 1, "m")))
            .collect();
        let fallback = r#"{"env":"prod","sluice_overflow":"true"}"#;
        assert_eq!(
            sets,
            [
                r#"{"app":"a","env":"prod"}"#,
                r#"{"app":"b","env":"prod"}"#,
                r#"{"app":"a","env":"prod"}"#,
                fallback,
                fallback,
                fallback,
            ]
        );
        assert_eq!(labeler.overflow.get(), 3);
    }

    #[test]
    fn streams_with_sorted_entries() {
        let mut labeler = labeler(10);
        let events = [
            event("a", 30, "a3"),
            event("b", 5, "b1"),
            event("a", 10, "a1"),
            event("a", 20, "a2 \"quoted\""),
        ];
        let labelled: Vec<(&Event, String)> =
            events.iter().map(|e| (e, labeler.label_set(e))).collect();
        let body = String::from_utf8(push_body(&labelled, Encoding::Text)).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"streams":[{"stream":{"app":"a","env":"prod"},"values":[["10","a1"],["20","a2 \"quoted\""],["30","a3"]]},"#,
                r#"{"stream":{"app":"b","env":"prod"},"values":[["5","b1"]]}]}"#
            )
        );
    }
}
