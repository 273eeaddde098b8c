//! Reading a server's `partial_success`: an `ExportLogsServiceResponse` that says how many
//! records of an accepted request it rejected, and why.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;

use crate::telemetry::{self, Counter, LogLimiter};

/// What became of a request the server answered with a 2xx.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Every record, or all but the ones counted as rejected (which OTLP does not name).
    Accepted,
    /// The server rejected every record, for this reason.
    AllRejected(String),
}

/// Counts and logs the records servers said they rejected.
pub(super) struct PartialSuccesses {
    component_id: Arc<str>,
    /// `component_discarded_events_total{reason="partial_success"}`.
    rejected: Counter,
    /// Answers that were not an `ExportLogsServiceResponse`.
    invalid: Counter,
    limiter: LogLimiter,
}

impl PartialSuccesses {
    pub(super) fn new(component_id: &Arc<str>) -> Self {
        Self {
            component_id: component_id.clone(),
            rejected: telemetry::counter(
                "component_discarded_events_total",
                &[
                    ("component_id", component_id),
                    ("reason", "partial_success"),
                ],
            ),
            invalid: telemetry::counter(
                "component_errors_total",
                &[
                    ("component_id", component_id),
                    ("reason", "invalid_response"),
                ],
            ),
            limiter: LogLimiter::default(),
        }
    }

    /// Reads the answer to a request of `records` records. An empty answer is a full
    /// success; one that cannot be read is counted and taken as one too, since the server
    /// said 2xx.
    pub(super) fn check(&mut self, answer: &[u8], records: usize) -> Verdict {
        let response = match ExportLogsServiceResponse::decode(answer) {
            Ok(response) => response,
            Err(error) => {
                self.invalid.inc(1);
                if let Some(suppressed) = self.limiter.check() {
                    tracing::warn!(component_id = %self.component_id, %error, suppressed, "the server's answer is not an OTLP export response; taken as a success");
                }
                return Verdict::Accepted;
            }
        };
        let Some(partial) = response.partial_success else {
            return Verdict::Accepted;
        };
        let rejected = usize::try_from(partial.rejected_log_records).unwrap_or(0);
        if rejected == 0 {
            // A warning without rejections (the spec allows it): logged only.
            if !partial.error_message.is_empty() {
                if let Some(suppressed) = self.limiter.check() {
                    tracing::warn!(component_id = %self.component_id, message = %partial.error_message, suppressed, "the server accepted every record with a warning");
                }
            }
            return Verdict::Accepted;
        }
        let reason = if partial.error_message.is_empty() {
            format!("the server rejected {rejected} of {records} records")
        } else {
            format!(
                "the server rejected {rejected} of {records} records: {}",
                partial.error_message
            )
        };
        if rejected >= records {
            return Verdict::AllRejected(reason);
        }
        self.rejected.inc(rejected as u64);
        if let Some(suppressed) = self.limiter.check() {
            tracing::warn!(component_id = %self.component_id, %reason, suppressed, "records rejected by the server (OTLP does not say which); counted as discarded");
        }
        Verdict::Accepted
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;

    use super::*;

    fn answer(rejected: i64, message: &str) -> Vec<u8> {
        ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message.to_string(),
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn counts_rejected_records_and_dead_letters_a_request_rejected_whole() {
        let id: Arc<str> = Arc::from("partial_test");
        let mut partial = PartialSuccesses::new(&id);
        assert_eq!(partial.check(b"", 3), Verdict::Accepted);
        assert_eq!(partial.check(&answer(0, "slow down"), 3), Verdict::Accepted);
        assert_eq!(
            partial.check(&answer(2, "bad record"), 3),
            Verdict::Accepted
        );
        assert_eq!(partial.rejected.get(), 2);
        let Verdict::AllRejected(reason) = partial.check(&answer(3, "bad records"), 3) else {
            panic!("every record was rejected");
        };
        assert_eq!(reason, "the server rejected 3 of 3 records: bad records");
        assert_eq!(partial.rejected.get(), 2, "dead letters are counted apart");
        assert_eq!(partial.check(b"\xff\xff\xff", 3), Verdict::Accepted);
        assert_eq!(partial.invalid.get(), 1);
    }
}
