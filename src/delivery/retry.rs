//! The retry driver: attempts a delivery until it succeeds, fails for good or runs out of
//! attempts, with exponential backoff, jitter and a cap between attempts.
//!
//! Jitter matters when many routers retry the same recovering destination: without it they
//! retry in lockstep and knock it over again. Each delay is drawn uniformly from the upper
//! half of the current backoff ("equal jitter"), so it still grows exponentially.
//!
//! A destination that says when to come back (HTTP `Retry-After`) is not asked again
//! sooner, but the wait is capped by `max_backoff_secs`: a server's hint of an hour must not
//! park a sink for an hour.

use std::fmt::Display;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::telemetry::{self, Counter, LogLimiter};

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
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// May succeed later (disk full, destination down, timeout, HTTP 429).
    Retryable {
        message: String,
        /// How long the destination asked to be left alone.
        retry_after: Option<Duration>,
    },
    /// Will never succeed for these events (the path is a directory, the destination
    /// rejects the payload).
    Fatal(String),
}

impl Outcome {
    /// A retryable failure without a hint of when to retry.
    pub fn retryable(message: impl Into<String>) -> Self {
        Outcome::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Classifies a file-system error. Only errors about the destination's *shape* are
    /// fatal; full disks, permissions an operator can fix and IO errors are retried.
    pub fn from_io(error: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let text = error.to_string().to_lowercase();
        match error.kind() {
            IsADirectory | NotADirectory | InvalidFilename | InvalidInput | FileTooLarge => {
                Outcome::Fatal(text)
            }
            _ => Outcome::retryable(text),
        }
    }
}

/// A delivery failure, classified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// May succeed later: retry with backoff.
    #[error("{0}")]
    Retryable(String),
    /// Will never succeed for these events: send them to dead-letter.
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
}

/// Runs attempts with backoff for one component: failed attempts are counted in `errors`,
/// retries in `component_retries_total`, and retries are logged (rate-limited).
pub struct Retrier {
    config: RetryConfig,
    component_id: Option<Arc<str>>,
    errors: Counter,
    retries: Counter,
    /// Shared by a sink's requests in flight, so their retries are logged at one rate.
    limiter: std::sync::Mutex<LogLimiter>,
}

impl Retrier {
    /// Without a `component_id`, retries are neither counted nor logged: the shipper tells
    /// its user about an outage once, not once per retry.
    pub fn new(config: RetryConfig, component_id: Option<&Arc<str>>, errors: Counter) -> Self {
        let retries = component_id.map_or_else(Counter::default, |id| {
            telemetry::counter("component_retries_total", &[("component_id", id)])
        });
        Retrier {
            config,
            component_id: component_id.cloned(),
            errors,
            retries,
            limiter: std::sync::Mutex::new(LogLimiter::default()),
        }
    }

    /// Attempts until delivered, fatal, or out of attempts (`DeliveryError::Exhausted`).
    /// `destination` names where to in the log.
    pub async fn run<F, Fut>(
        &self,
        destination: &(dyn Display + Sync),
        mut attempt: F,
    ) -> Result<(), DeliveryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let mut backoff = self.config.backoff();
        loop {
            match self.next(&mut backoff, destination, attempt().await) {
                ControlFlow::Break(result) => return result,
                ControlFlow::Continue(delay) => tokio::time::sleep(delay).await,
            }
        }
    }

    /// [`Retrier::run`] for blocking attempts, on a thread of their own.
    pub fn run_blocking(
        &self,
        destination: &(dyn Display + Sync),
        mut attempt: impl FnMut() -> Outcome,
    ) -> Result<(), DeliveryError> {
        let mut backoff = self.config.backoff();
        loop {
            match self.next(&mut backoff, destination, attempt()) {
                ControlFlow::Break(result) => return result,
                // Backoff between attempts is the point here, not synchronisation.
                ControlFlow::Continue(delay) => std::thread::sleep(delay),
            }
        }
    }

    /// After an attempt: the result, or how long to wait before the next attempt.
    fn next(
        &self,
        backoff: &mut Backoff,
        destination: &(dyn Display + Sync),
        outcome: Outcome,
    ) -> ControlFlow<Result<(), DeliveryError>, Duration> {
        let (message, retry_after) = match outcome {
            Outcome::Delivered => return ControlFlow::Break(Ok(())),
            Outcome::Fatal(message) => {
                self.errors.inc(1);
                return ControlFlow::Break(Err(DeliveryError::Fatal(message)));
            }
            Outcome::Retryable {
                message,
                retry_after,
            } => (message, retry_after),
        };
        self.errors.inc(1);
        let Some(delay) = backoff.next_delay() else {
            return ControlFlow::Break(Err(DeliveryError::Exhausted(format!(
                "gave up after {} attempts: {message}",
                backoff.attempts()
            ))));
        };
        let cap = Duration::from_secs(self.config.max_backoff_secs);
        let delay = retry_after.map_or(delay, |after| delay.max(after.min(cap)));
        self.retries.inc(1);
        if let Some(component_id) = &self.component_id {
            let suppressed = self
                .limiter
                .lock()
                .map_or(None, |mut limiter| limiter.check());
            if let Some(suppressed) = suppressed {
                tracing::warn!(%component_id, %destination, error = %message, attempt = backoff.attempts(), retry_in_ms = delay.as_millis() as u64, suppressed, "delivery failed; retrying");
            }
        }
        ControlFlow::Continue(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(
        initial_backoff_ms: u64,
        max_backoff_secs: u64,
        max_attempts: Option<u32>,
    ) -> RetryConfig {
        RetryConfig {
            initial_backoff_ms,
            max_backoff_secs,
            max_attempts,
        }
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let mut backoff = config(100, 1, None).backoff();
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
    }

    #[test]
    fn attempts_run_out() {
        let mut backoff = config(100, 30, Some(3)).backoff();
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
            let classified = Outcome::from_io(&Error::new(kind, "x"));
            assert_eq!(matches!(classified, Outcome::Fatal(_)), fatal, "{kind:?}");
        }
    }

    /// Runs `script` through a blocking driver that neither counts nor logs; returns the result, the attempts made
    /// and the time taken.
    fn drive(
        config: RetryConfig,
        script: Vec<Outcome>,
    ) -> (Result<(), DeliveryError>, usize, Duration) {
        let retrier = Retrier::new(config, None, Counter::default());
        let mut script = script.into_iter();
        let mut attempts = 0;
        let started = std::time::Instant::now();
        let result = retrier.run_blocking(&"test", || {
            attempts += 1;
            script.next().unwrap_or(Outcome::Delivered)
        });
        (result, attempts, started.elapsed())
    }

    #[test]
    fn retries_until_delivered_or_fatal_or_out_of_attempts() {
        let retry = || Outcome::retryable("down");
        let (result, attempts, _) = drive(config(1, 1, None), vec![retry(), retry()]);
        assert_eq!((result, attempts), (Ok(()), 3));
        let (result, attempts, _) = drive(
            config(1, 1, None),
            vec![retry(), Outcome::Fatal("no".into())],
        );
        assert_eq!(
            (result, attempts),
            (Err(DeliveryError::Fatal("no".into())), 2)
        );
        let (result, attempts, _) = drive(config(1, 1, Some(2)), vec![retry(), retry()]);
        assert_eq!(
            (result, attempts),
            (
                Err(DeliveryError::Exhausted(
                    "gave up after 2 attempts: down".into()
                )),
                2
            )
        );
    }

    #[test]
    fn retry_after_is_a_minimum_capped_by_max_backoff() {
        let after = |secs| Outcome::Retryable {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(secs)),
        };
        // Asked for an hour, capped at the 1 s maximum backoff instead of the 1 ms one.
        let (result, attempts, elapsed) = drive(config(1, 1, None), vec![after(3600)]);
        assert_eq!((result, attempts), (Ok(()), 2));
        assert!(
            (Duration::from_millis(1000)..Duration::from_secs(5)).contains(&elapsed),
            "{elapsed:?}"
        );
        // Asked for no wait: the backoff still applies.
        let (_, _, elapsed) = drive(config(400, 1, None), vec![after(0)]);
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    }

    #[test]
    fn counts_failed_attempts_and_retries() {
        let errors = Counter::default();
        let id: Arc<str> = "retry_counting_test".into();
        let retrier = Retrier::new(config(1, 1, Some(3)), Some(&id), errors.clone());
        let result = retrier.run_blocking(&"test", || Outcome::retryable("down"));
        assert!(matches!(result, Err(DeliveryError::Exhausted(_))));
        assert_eq!(errors.get(), 3);
        assert_eq!(retrier.retries.get(), 2);
    }
}
