//! Delivery retries: exponential backoff with jitter and a cap, and the split between
//! errors worth retrying and errors no retry can fix.
//!
//! Jitter matters when many routers retry the same recovering destination: without it they
//! retry in lockstep and knock it over again. Each delay is drawn uniformly from the upper
//! half of the current backoff ("equal jitter"), so it still grows exponentially.

use std::time::Duration;

use serde::Deserialize;

/// `retry = { initial_backoff_ms, max_backoff_secs, max_attempts }` on a sink. Its
/// `validate` is in `sinks/retry.rs`, with the other config checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// Attempts before a retryable failure is given up and the events go to the sink's
    /// dead-letter output. Unset: retry for as long as it takes (backpressure builds up
    /// behind the sink, or in its disk buffer), which is what a log pipeline usually wants.
    pub max_attempts: Option<u32>,
}

fn default_initial_backoff_ms() -> u64 {
    100
}

fn default_max_backoff_secs() -> u64 {
    30
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_secs: default_max_backoff_secs(),
            max_attempts: None,
        }
    }
}

impl RetryConfig {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            next: Duration::from_millis(self.initial_backoff_ms),
            initial: Duration::from_millis(self.initial_backoff_ms),
            cap: Duration::from_secs(self.max_backoff_secs),
            attempts: 0,
            max_attempts: self.max_attempts,
        }
    }
}

/// The state of one run of retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    initial: Duration,
    cap: Duration,
    attempts: u32,
    max_attempts: Option<u32>,
}

impl Backoff {
    /// The delay before the next attempt, or `None` when the attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.attempts += 1;
        if self.max_attempts.is_some_and(|max| self.attempts >= max) {
            return None;
        }
        let current = self.next.min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        let half = current / 2;
        let jitter = Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64));
        Some(half + jitter)
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
        self.attempts = 0;
    }
}

/// A delivery failure, classified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// May succeed later (disk full, destination down, timeout): retry with backoff.
    #[error("{0}")]
    Retryable(String),
    /// Will never succeed for these events (the path is a directory, the destination
    /// rejects the payload): send them to dead-letter.
    #[error("{0}")]
    Fatal(String),
    /// Retryable, but `max_attempts` ran out.
    #[error("{0}")]
    Exhausted(String),
}

impl DeliveryError {
    /// Short code for dead letters and counters.
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryError::Retryable(_) => "retryable",
            DeliveryError::Fatal(_) => "fatal",
            DeliveryError::Exhausted(_) => "retries_exhausted",
        }
    }

    /// Classifies a file-system error. Only errors about the destination's *shape* are
    /// fatal; full disks, permissions an operator can fix and IO errors are retried.
    pub fn from_io(error: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let text = error.to_string().to_lowercase();
        match error.kind() {
            IsADirectory | NotADirectory | InvalidFilename | InvalidInput | FileTooLarge => {
                DeliveryError::Fatal(text)
            }
            _ => DeliveryError::Retryable(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let config = RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_secs: 1,
            max_attempts: None,
        };
        let mut backoff = config.backoff();
        let bounds_ms = [
            (50, 100),
            (100, 200),
            (200, 400),
            (400, 800),
            (500, 1000),
            (500, 1000),
        ];
        for (low, high) in bounds_ms {
            let d = backoff.next_delay().unwrap().as_millis() as u64;
            assert!((low..=high).contains(&d), "{d} not in {low}..={high}");
        }
        backoff.reset();
        assert!(backoff.next_delay().unwrap() <= Duration::from_millis(100));
    }

    #[test]
    fn attempts_run_out() {
        let mut backoff = RetryConfig {
            max_attempts: Some(3),
            ..Default::default()
        }
        .backoff();
        assert!(backoff.next_delay().is_some());
        assert!(backoff.next_delay().is_some());
        assert!(backoff.next_delay().is_none());
    }

    #[test]
    fn classifies_io_errors() {
        use std::io::{Error, ErrorKind};
        let table = [
            (ErrorKind::IsADirectory, true),
            (ErrorKind::InvalidInput, true),
            (ErrorKind::StorageFull, false),
            (ErrorKind::PermissionDenied, false),
            (ErrorKind::Other, false),
        ];
        for (kind, fatal) in table {
            let classified = DeliveryError::from_io(&Error::new(kind, "x"));
            assert_eq!(
                matches!(classified, DeliveryError::Fatal(_)),
                fatal,
                "{kind:?}"
            );
        }
    }
}
