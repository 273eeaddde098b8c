//! Loki's protobuf push (`Content-Type: application/x-protobuf`): a `logproto.PushRequest`
//! (streams of entries, each stream's labels in Loki's `{name="value", ...}` form),
//! snappy-compressed in the block format, as Loki requires for this content type. The
//! messages are declared here with prost's derive, since they are three small messages of
//! Loki's own `push.proto`.

use super::streams::{entry_line, grouped};
use crate::event::Event;
use crate::sinks::Encoding;

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub(crate) streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub(crate) labels: String,
    #[prost(message, repeated, tag = "2")]
    pub(crate) entries: Vec<EntryAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub(crate) timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub(crate) line: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Timestamp {
    #[prost(int64, tag = "1")]
    pub(crate) seconds: i64,
    #[prost(int32, tag = "2")]
    pub(crate) nanos: i32,
}

/// The snappy-compressed protobuf push body for `events` with their label sets (as the
/// JSON objects `Labeler` makes), grouped and sorted as the JSON body is.
pub(super) fn push_body(events: &[(&Event, String)], encoding: Encoding) -> Vec<u8> {
    let mut line = Vec::new();
    let streams = grouped(events)
        .into_iter()
        .map(|(set, entries)| StreamAdapter {
            labels: loki_labels(set),
            entries: entries
                .into_iter()
                .map(|(time, event)| {
                    entry_line(event, encoding, &mut line);
                    EntryAdapter {
                        timestamp: Some(Timestamp {
                            seconds: time.div_euclid(1_000_000_000),
                            nanos: time.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: String::from_utf8_lossy(&line).into_owned(),
                    }
                })
                .collect(),
        })
        .collect();
    let encoded = prost::Message::encode_to_vec(&PushRequest { streams });
    // Compressing bytes in memory fails only if they exceed snappy's 4 GiB block limit,
    // far above any batch (`batch_max_bytes`).
    snap::raw::Encoder::new()
        .compress_vec(&encoded)
        .unwrap_or_default()
}

/// A label set as Loki's protobuf push reads it: `{app="web", job="sluice"}`, from the
/// JSON object the labeler made (names are `[a-zA-Z_][a-zA-Z0-9_]*`; values quoted as Go
/// quotes them, `\` and `"` escaped).
fn loki_labels(json_set: &str) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json_set).unwrap_or_default();
    let mut text = String::from("{");
    for (i, (name, value)) in map.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(name);
        text.push_str("=\"");
        for c in value.as_str().unwrap_or_default().chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '"' => text.push_str("\\\""),
                '\n' => text.push_str("\\n"),
                c => text.push(c),
            }
        }
        text.push('"');
    }
    text.push('}');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_in_loki_form() {
        assert_eq!(
            loki_labels(r#"{"app":"web","job":"say \"hi\"\\"}"#),
            r#"{app="web", job="say \"hi\"\\"}"#
        );
    }
}
