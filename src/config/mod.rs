mod error;
pub use error::FieldError;
