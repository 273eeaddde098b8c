//! OTLP protobuf bodies: the source's wire reader against prost's messages.

use bytes::Bytes;
use sluice::sources::otlp::{decode_protobuf, decode_protobuf_with_prost};

/// An `ExportLogsServiceRequest` body of arbitrary bytes: the wire reader refuses what
/// prost refuses, and reads anything else into the events (and unmappable records) that
/// prost's messages map to.
pub fn otlp_protobuf(data: &[u8]) {
    let ours = decode_protobuf(&Bytes::copy_from_slice(data));
    let reference = decode_protobuf_with_prost(data);
    match (ours, reference) {
        (Ok(ours), Ok(reference)) => assert_eq!(ours.as_text(), reference.as_text()),
        (Err(_), Err(_)) => {}
        (ours, reference) => panic!(
            "wire reader {:?}, prost {:?}",
            ours.map(|r| r.as_text()),
            reference.map(|r| r.as_text())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> Bytes {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds/otlp_protobuf")
            .join(name);
        Bytes::from(std::fs::read(path).expect("readable seed"))
    }

    /// The seeds reach past the refusals: a request read into an event, and a record that
    /// is unmappable.
    #[test]
    fn the_seeds_are_read_as_written() {
        let records = decode_protobuf(&seed("request")).expect("a valid request");
        assert_eq!(records.events.len(), 1);
        let fields = &records.events[0].fields;
        assert_eq!(fields.get("app").and_then(|v| v.as_str()), Some("api"));
        assert_eq!(
            fields.get("message").and_then(|v| v.as_str()),
            Some("hello")
        );
        let records = decode_protobuf(&seed("unmappable")).expect("a valid request");
        assert_eq!((records.events.len(), records.unmappable.len()), (0, 1));
        assert!(decode_protobuf(&seed("truncated")).is_err());
    }
}
