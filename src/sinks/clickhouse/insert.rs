//! One insert of rows into ClickHouse, and what to do when the server refuses it.
//!
//! ClickHouse takes or refuses an insert whole: a row it cannot parse (a bad date, text in
//! a number column) fails every row sent with it, and no status says which row it was.
//! Release 18.16 answers such an error with a 500 (current releases with a 400), so the
//! exception code in the answer (`Code: 27`) decides, not the status: parse and type errors
//! mean "these rows", and the rows are then isolated: the error's `(at row N)`, when the
//! quoted answer has it, splits the insert into the rows before (inserted again), row N
//! alone (to confirm it) and the rows after; without it the rows are halved. The delivery
//! client quotes 200 bytes of the answer, and 18.16 puts the input it choked on before the
//! row number, so with rows of some 100 bytes the number is usually cut off and halving
//! does the work. Isolation
//! stops after `max_isolation_inserts` further inserts per request: the rows still in
//! doubt then go to dead-letter with the server's reason, so a batch that is bad throughout
//! (a wrong table schema) costs a bounded number of requests.
//!
//! Other errors are classified by code too: a missing table or database, a syntax error,
//! authentication and access errors are fatal (the rows go to dead-letter); memory limits,
//! too many parts or queries, timeouts and network errors are retried. Any other code
//! keeps its status's meaning (5xx retried, 4xx fatal).
//!
//! An insert is atomic only up to the server's `max_insert_block_size` (1,048,576 rows by
//! default), which is why `batch_max_events` may not exceed 1,000,000.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use super::super::batch::{self, Poster};
use super::super::SinkContext;
use crate::ack::AckStatus;
use crate::delivery::retry::{DeliveryError, Outcome};
use crate::event::Event;

/// Exception codes about the rows' data: parse and type errors.
const ROW_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    25,  // CANNOT_PARSE_ESCAPE_SEQUENCE
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA (an unknown field, without skip_unknown_fields)
    130, // CANNOT_READ_ARRAY_FROM_TEXT
    131, // TOO_LARGE_STRING_SIZE
    321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    386, // NO_COMMON_TYPE
    457, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE (newer)
];

/// Exception codes no retry can fix: the table, the query or the credentials are wrong.
const FATAL_CODES: &[u32] = &[
    16,  // NO_SUCH_COLUMN_IN_TABLE
    47,  // UNKNOWN_IDENTIFIER
    60,  // UNKNOWN_TABLE
    62,  // SYNTAX_ERROR
    73,  // UNKNOWN_FORMAT
    81,  // UNKNOWN_DATABASE
    115, // UNKNOWN_SETTING
    164, // READONLY
    192, // UNKNOWN_USER
    193, // WRONG_PASSWORD
    194, // REQUIRED_PASSWORD
    195, // IP_ADDRESS_NOT_ALLOWED
    497, // ACCESS_DENIED
    516, // AUTHENTICATION_FAILED
];

/// Exception codes of a server that is busy or unwell, whatever the status.
const RETRY_CODES: &[u32] = &[
    159, // TIMEOUT_EXCEEDED
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY (ZooKeeper away)
    252, // TOO_MANY_PARTS
    999, // KEEPER_EXCEPTION
];

/// How the server answered one insert, after retries.
#[derive(Debug, PartialEq)]
enum Answer {
    Delivered,
    /// The server could not take these rows' data; the reason quotes its error.
    Refused(String),
    /// Fatal for another reason, or retries ran out: every row of the insert goes.
    Failed(DeliveryError),
}

pub(super) struct Inserter {
    /// Credentials, `Content-Encoding` if compressed, then the configured headers.
    pub(super) poster: Poster,
    pub(super) max_isolation_inserts: usize,
}

impl Inserter {
    /// Inserts `events`, whose rows are `body` with row `i` ending at `ends[i]`; every event
    /// is then acknowledged delivered or handed to dead-letter.
    pub(super) async fn insert(
        &self,
        events: &[&Event],
        body: &[u8],
        ends: &[usize],
        ctx: &SinkContext,
    ) {
        let start_of = |row: usize| if row == 0 { 0 } else { ends[row - 1] };
        // Row ranges still to insert, in order, each with why its parent insert failed.
        let mut pending: VecDeque<(Range<usize>, Option<String>)> = VecDeque::new();
        pending.push_back((0..events.len(), None));
        let mut extra_inserts = 0;
        while let Some((rows, parent)) = pending.pop_front() {
            if rows.is_empty() {
                continue;
            }
            if let Some(reason) = &parent {
                if extra_inserts >= self.max_isolation_inserts {
                    let reason = format!("{reason} (one of {} rows refused together; isolation stopped after {} inserts)", rows.len(), self.max_isolation_inserts);
                    self.dead_letter(&events[rows], DeliveryError::Fatal(reason), ctx)
                        .await;
                    continue;
                }
                extra_inserts += 1;
            }
            let bytes = &body[start_of(rows.start)..ends[rows.end - 1]];
            match self.attempt(bytes).await {
                Answer::Delivered => {
                    ctx.metrics.sent_events.inc(rows.len() as u64);
                    ctx.metrics.sent_bytes.inc(bytes.len() as u64);
                    for event in &events[rows] {
                        event.ack(AckStatus::Delivered);
                    }
                }
                Answer::Failed(error) => self.dead_letter(&events[rows], error, ctx).await,
                Answer::Refused(reason) if rows.len() == 1 => {
                    self.dead_letter(&events[rows], DeliveryError::Fatal(reason), ctx)
                        .await;
                }
                Answer::Refused(reason) => {
                    for part in split(rows, at_row(&reason)).into_iter().rev() {
                        pending.push_front((part, Some(reason.clone())));
                    }
                }
            }
        }
    }

    /// One insert of `rows`, retried while the failure is worth retrying.
    async fn attempt(&self, rows: &[u8]) -> Answer {
        let p = &self.poster;
        let payload = match batch::compress(rows.into(), p.compression) {
            Ok(payload) => payload,
            // Compressing into memory does not fail in practice; treat it as fatal.
            Err(error) => return Answer::Failed(DeliveryError::Fatal(error.to_string())),
        };
        let refused = AtomicBool::new(false);
        let result = p
            .retrier
            .run(&p.uri, || async {
                let outcome = p
                    .client
                    .post(&p.uri, &p.headers, payload.clone(), p.timeout)
                    .await;
                let outcome = classify(outcome);
                refused.store(
                    matches!(&outcome, Outcome::Fatal(m) if row_error(m)),
                    Ordering::Relaxed,
                );
                outcome
            })
            .await;
        match result {
            Ok(()) => Answer::Delivered,
            Err(DeliveryError::Fatal(reason)) if refused.load(Ordering::Relaxed) => {
                Answer::Refused(reason)
            }
            Err(error) => Answer::Failed(error),
        }
    }

    async fn dead_letter(&self, events: &[&Event], error: DeliveryError, ctx: &SinkContext) {
        let what = "clickhouse refused rows";
        self.poster.dead_letter(events, error, ctx, what).await;
    }
}

/// Where to cut a refused range: around the row the server named (1-based within the
/// range), else in halves.
fn split(rows: Range<usize>, named: Option<usize>) -> Vec<Range<usize>> {
    match named {
        Some(n) if (1..=rows.len()).contains(&n) => {
            let bad = rows.start + n - 1;
            vec![rows.start..bad, bad..bad + 1, bad + 1..rows.end]
        }
        _ => {
            let mid = rows.start + rows.len() / 2;
            vec![rows.start..mid, mid..rows.end]
        }
    }
}

/// The exception code an answer quotes (`Code: 27, e.displayText() = ...` on 18.16,
/// `Code: 27. DB::Exception: ...` today).
fn code(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + 6..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The row a parse error names: `(at row 2)`.
fn at_row(message: &str) -> Option<usize> {
    let rest = &message[message.find("(at row ")? + 8..];
    let end = rest.find(')')?;
    rest[..end].trim().parse().ok()
}

fn row_error(message: &str) -> bool {
    code(message).is_some_and(|c| ROW_CODES.contains(&c))
}

/// The delivery client's outcome, corrected by the exception code the answer carries.
fn classify(outcome: Outcome) -> Outcome {
    let message = match &outcome {
        Outcome::Delivered => return outcome,
        Outcome::Retryable { message, .. } | Outcome::Fatal(message) => message,
    };
    match code(message) {
        Some(c) if ROW_CODES.contains(&c) || FATAL_CODES.contains(&c) => {
            Outcome::Fatal(message.clone())
        }
        Some(c) if RETRY_CODES.contains(&c) => match outcome {
            Outcome::Fatal(message) => Outcome::retryable(message),
            retryable => retryable,
        },
        _ => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "HTTP 500 Internal Server Error: Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected , before: level\":\"info\"}: (at row 2)";
    const NEW: &str = "HTTP 400 Bad Request: Code: 27. DB::Exception: Cannot parse input: expected '\"' before: 'garbage': (while reading the value of key timestamp): (at row 7)";

    #[test]
    fn reads_the_code_and_the_row() {
        assert_eq!(code(OLD), Some(27));
        assert_eq!(code(NEW), Some(27));
        assert_eq!(at_row(OLD), Some(2));
        assert_eq!(at_row(NEW), Some(7));
        assert_eq!(code("HTTP 502 Bad Gateway: upstream down"), None);
        assert_eq!(at_row("Code: 27. cut short (at row 1"), None);
    }

    #[test]
    fn classifies_by_exception_code() {
        let retry = |m: &str| Outcome::retryable(m);
        let cases = [
            (retry(OLD), "fatal"),
            (Outcome::Fatal(NEW.into()), "fatal"),
            (
                retry("HTTP 500: Code: 60, e.displayText() = DB::Exception: Table default.nope doesn't exist."),
                "fatal",
            ),
            (
                Outcome::Fatal("HTTP 401: Code: 193, e.displayText() = Wrong password".into()),
                "fatal",
            ),
            (
                Outcome::Fatal("HTTP 400: Code: 252. DB::Exception: Too many parts".into()),
                "retry",
            ),
            (retry("HTTP 500: Code: 241. Memory limit exceeded"), "retry"),
            (retry("connection refused"), "retry"),
            (Outcome::Fatal("HTTP 403: Forbidden".into()), "fatal"),
            (Outcome::Delivered, "delivered"),
        ];
        for (outcome, expected) in cases {
            let got = match classify(outcome.clone()) {
                Outcome::Delivered => "delivered",
                Outcome::Retryable { .. } => "retry",
                Outcome::Fatal(_) => "fatal",
            };
            assert_eq!(got, expected, "{outcome:?}");
        }
        assert!(row_error(OLD));
        assert!(!row_error(
            "HTTP 500: Code: 60, Table default.nope doesn't exist."
        ));
    }

    #[test]
    fn splits_around_the_named_row_or_in_halves() {
        assert_eq!(split(10..20, Some(1)), vec![10..10, 10..11, 11..20]);
        assert_eq!(split(10..20, Some(4)), vec![10..13, 13..14, 14..20]);
        assert_eq!(split(10..20, Some(10)), vec![10..19, 19..20, 20..20]);
        // A row outside the range (a count over a larger insert) is not trusted.
        assert_eq!(split(10..20, Some(11)), vec![10..15, 15..20]);
        assert_eq!(split(10..20, Some(0)), vec![10..15, 15..20]);
        assert_eq!(split(10..13, None), vec![10..11, 11..13]);
    }
}
