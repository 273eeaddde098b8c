//! Errors a component reports while its config is validated and built.

/// A problem with one field of one component's config. The config loader adds the file
/// name and the component id, so every error a user sees names all three.
///
/// An error found inside a field's text (a line of a remap program) carries its line and
/// column in that text, `at`; the loader shows it at its place in the pipeline file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{field}`: {}", self.located_in_value())]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// Line and column (from 1) inside the field's value.
    pub at: Option<(usize, usize)>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            at: None,
        }
    }

    /// This error, found at `line` and `column` (from 1) of the field's value.
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.at = Some((line, column));
        self
    }

    /// The message, preceded by its position inside the value when it has one.
    pub fn located_in_value(&self) -> String {
        match self.at {
            Some((line, column)) => format!("at line {line}, column {column}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// `value` of `field` is between 1 and `max`; it comes back for use, or the error says so.
pub fn between_one_and<T>(field: &str, value: T, max: T) -> Result<T, FieldError>
where
    T: PartialOrd + From<u8> + std::fmt::Display,
{
    if value >= T::from(1) && value <= max {
        return Ok(value);
    }
    Err(FieldError::new(
        field,
        format!("must be between 1 and {max}"),
    ))
}

/// Each of the `(field, value)` counts and durations is at least 1: the first that is 0 is
/// the error, `must be at least 1`, the same words for every component.
pub fn at_least_one(fields: &[(&str, u64)]) -> Result<(), FieldError> {
    match fields.iter().find(|(_, value)| *value == 0) {
        Some((field, _)) => Err(FieldError::new(*field, "must be at least 1")),
        None => Ok(()),
    }
}
