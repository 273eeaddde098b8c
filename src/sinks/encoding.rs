//! How a sink turns an event into bytes.

use serde::Deserialize;

use crate::event::{fields, Event, Value};

/// `encoding = "json" | "text"`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One JSON object per line with every field.
    #[default]
    Json,
    /// The `message` field as it arrived, one per line: with `decoding = "bytes"` this is a
    /// byte-exact passthrough. An event without a `message` is written as JSON rather than
    /// as an empty line, so no data disappears.
    Text,
}

impl Encoding {
    /// Appends the encoded event and a newline to `out`.
    pub fn encode(self, event: &Event, out: &mut Vec<u8>) {
        match (self, event.fields.get(fields::MESSAGE)) {
            (Encoding::Text, Some(Value::Bytes(message))) => out.extend_from_slice(message),
            (Encoding::Text, Some(other)) => out.extend_from_slice(other.to_text().as_bytes()),
            (Encoding::Json, _) | (Encoding::Text, None) => {
                // Serialising our own value type into a Vec cannot fail: every key is a
                // string and non-UTF-8 bytes are rendered lossily.
                let _ = serde_json::to_writer(&mut *out, &event.fields);
            }
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Map;
    use bytes::Bytes;

    #[test]
    fn encodes_table() {
        let raw = Event::from_message(Bytes::from_static(b"raw \xff line\r"));
        let mut fields = Map::new();
        fields.insert("status", Value::Integer(500));
        fields.insert("msg", Value::from("x"));
        let no_message = Event::new(fields);
        let table: [(Encoding, &Event, &[u8]); 4] = [
            (Encoding::Text, &raw, b"raw \xff line\r\n"),
            (
                Encoding::Json,
                &raw,
                "{\"message\":\"raw \u{fffd} line\\r\"}\n".as_bytes(),
            ),
            (
                Encoding::Text,
                &no_message,
                b"{\"status\":500,\"msg\":\"x\"}\n",
            ),
            (
                Encoding::Json,
                &no_message,
                b"{\"status\":500,\"msg\":\"x\"}\n",
            ),
        ];
        for (encoding, event, expected) in table {
            let mut out = Vec::new();
            encoding.encode(event, &mut out);
            assert_eq!(out, expected, "{encoding:?}");
        }
    }
}
