//! Typed deserialisation of one TOML table, with errors that name the field.

use serde::de::DeserializeOwned;

use crate::field_error::FieldError;

/// Deserialises `table` into `T`, turning serde's error into the field it is about (a
/// dotted path such as `framing.max_frame_bytes`).
pub fn deserialize<T: DeserializeOwned>(table: toml::Table) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string().trim_end().replace('\n', " ");
        // Depending on the container, serde reports an unknown field at its parent or at the
        // field itself; name the field itself, once.
        let field = match message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(name) if path == "." => name.to_string(),
            Some(name) if path == name || path.ends_with(&format!(".{name}")) => path,
            Some(name) => format!("{path}.{name}"),
            None if path == "." => message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
                .unwrap_or("(table)")
                .to_string(),
            None => path,
        };
        FieldError::new(field, message)
    })
}
