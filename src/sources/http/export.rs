//! OpenTelemetry log export requests on the http source, whichever way they came (OTLP/HTTP
//! on `POST /v1/logs`, OTLP/gRPC on `grpc_address`): their records taken into the pipeline
//! on one acknowledgement token, and the `partial_success` of the answer. Only the framing
//! of the answer differs by protocol.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::StatusCode;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use prost::Message;

use super::body::OtlpEncoding;
use super::{NotTaken, State};
use crate::ack::{AckStatus, AckToken};
use crate::api::{respond, HttpResponse};
use crate::codec::{DecodingConfig, FramingConfig};
use crate::sources::otlp::{self, Records};
use crate::sources::{Decoded, FrameIngest};

impl State {
    /// Takes a request's records (those unmappable to dead-letter, rejected in the answer)
    /// and waits for their acknowledgement: the answer's `partial_success`, or why the
    /// request was not taken.
    pub(super) async fn take_otlp(
        &self,
        records: Records,
        app: Option<Arc<str>>,
        peer: SocketAddr,
        body_bytes: usize,
    ) -> Result<Option<ExportLogsPartialSuccess>, NotTaken> {
        let framing = FramingConfig::Newline(self.config.framing.limits());
        let mut ingest = FrameIngest::new(self.ctx.id.clone(), &framing, DecodingConfig::Json);
        ingest.count_bytes(body_bytes);
        let (token, ack, rejections) = AckToken::timed_counting(&self.ack_latency);
        let mut decoded = Decoded::default();
        let unmappable = records.unmappable.len();
        for (event, reason) in records.unmappable {
            let letter = ingest.rejected_record(event, "unmappable_record", reason, Some(peer));
            decoded.dead.push(letter);
        }
        ingest.push_with_ack(records.events, Some(peer), Some(&token), &mut decoded);
        drop(token);
        let events = decoded.events.len();
        let status = self.deliver(decoded, app, body_bytes as u64, ack).await?;
        // Records a sink gave up on (dead-lettered) are counted on the token; OTLP does not
        // say which, so the count is what the answer carries.
        let downstream = match status {
            AckStatus::Rejected => (rejections.get() as usize).clamp(1, events.max(1)),
            _ => 0,
        };
        Ok(otlp::partial_success(
            events + unmappable,
            unmappable,
            downstream,
        ))
    }
}

/// The OTLP/HTTP answer: an `ExportLogsServiceResponse`, empty or with a `partial_success`,
/// in the request's encoding.
pub(super) fn answer(
    encoding: OtlpEncoding,
    partial: Option<ExportLogsPartialSuccess>,
) -> HttpResponse {
    match encoding {
        OtlpEncoding::Protobuf => {
            let response = ExportLogsServiceResponse {
                partial_success: partial,
            };
            respond(
                StatusCode::OK,
                "application/x-protobuf",
                response.encode_to_vec(),
            )
        }
        OtlpEncoding::Json => {
            // OTLP's JSON mapping writes 64-bit integers as strings.
            let body = match partial {
                None => serde_json::json!({}),
                Some(p) => serde_json::json!({ "partialSuccess": {
                    "rejectedLogRecords": p.rejected_log_records.to_string(),
                    "errorMessage": p.error_message,
                }}),
            };
            respond(StatusCode::OK, "application/json", body.to_string())
        }
    }
}
