//! Checking a sink's `retry = { ... }`; the retry driver itself is `delivery::retry`, below
//! the sinks, where config errors cannot be made.

use crate::delivery::retry::RetryConfig;
use crate::field_error::{at_least_one, FieldError};

impl RetryConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        at_least_one(&[("retry.initial_backoff_ms", self.initial_backoff_ms)])?;
        if self.max_backoff_secs * 1000 < self.initial_backoff_ms {
            return Err(FieldError::new(
                "retry.max_backoff_secs",
                "must not be below initial_backoff_ms",
            ));
        }
        if self.max_attempts == Some(0) {
            return Err(FieldError::new("retry.max_attempts", "must be at least 1"));
        }
        Ok(())
    }
}
