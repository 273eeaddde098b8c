//! gRPC's rich error details as OTLP uses them: a `google.rpc.Status` in the
//! `grpc-status-details-bin` trailer carrying a `google.rpc.RetryInfo`, the delay after which
//! a client may retry. The http source's gRPC listener writes it when it asks a client to
//! slow down (RESOURCE_EXHAUSTED, which OTLP exporters retry only with it); the
//! `opentelemetry` sink reads it from the statuses it gets. Three small messages, declared
//! here with prost rather than pulling in a crate of all of Google's API types.
//!
//! Both ends also share the method's path and `BytesCodec`, through which each passes
//! messages as their protobuf bytes.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// The one method of OTLP/gRPC for logs: what the source serves and the sink calls.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// `google.rpc.Status`
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`
#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`
#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The details of a status (`code`, `message`) saying "retry after `delay`".
pub fn retry_details(code: i32, message: &str, delay: Duration) -> Vec<u8> {
    let info = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    RpcStatus {
        code,
        message: message.to_string(),
        details: vec![Any {
            type_url: RETRY_INFO_TYPE.to_string(),
            value: info.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

/// The retry delay a status's details carry, if they hold a `RetryInfo` (anything that
/// does not decode is no delay).
pub fn retry_delay(details: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(details).ok()?;
    let info = status
        .details
        .iter()
        .find(|any| any.type_url == RETRY_INFO_TYPE)?;
    let delay = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    let seconds = u64::try_from(delay.seconds).ok()?;
    let nanos = u32::try_from(delay.nanos)
        .ok()
        .filter(|&n| n < 1_000_000_000)?;
    Some(Duration::new(seconds, nanos))
}

/// Messages as their protobuf bytes, rather than tonic's protobuf codec: the sink encodes a
/// request once and sends it on every attempt, and reads the answer with the code that reads
/// an OTLP/HTTP answer; the source decodes a request with the HTTP path's decoder (tonic's
/// codec answers a malformed message INTERNAL, OTLP wants INVALID_ARGUMENT) and encodes its
/// answer itself.
pub struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> Self::Encoder {
        BytesCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_delay_round_trips_and_junk_is_no_delay() {
        let details = retry_details(8, "slow down", Duration::from_millis(2_500));
        assert_eq!(retry_delay(&details), Some(Duration::from_millis(2_500)));
        let status = RpcStatus::decode(details.as_slice()).unwrap();
        assert_eq!((status.code, status.message.as_str()), (8, "slow down"));
        assert_eq!(retry_delay(b""), None);
        assert_eq!(retry_delay(b"\xff\xff"), None);
        let other = RpcStatus {
            code: 8,
            message: String::new(),
            details: vec![Any {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                value: vec![],
            }],
        };
        assert_eq!(retry_delay(&other.encode_to_vec()), None);
        let negative = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: -1,
                nanos: 0,
            }),
        };
        let wrapped = RpcStatus {
            code: 8,
            message: String::new(),
            details: vec![Any {
                type_url: RETRY_INFO_TYPE.into(),
                value: negative.encode_to_vec(),
            }],
        };
        assert_eq!(retry_delay(&wrapped.encode_to_vec()), None);
    }
}
