//! The firing alerts of one rule, kept in a small JSON file across restarts.
//!
//! Written on every change (fire, repeat, resolve) as a temporary file that is fsynced and
//! renamed over the old one, so a crash leaves either the old or the new state, never half
//! of one. A missing file is an empty state; a damaged one is reported and treated as empty
//! (a crash loop over an alert state file would be worse than one repeated notification).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::event::Value;

/// Bumped when the layout changes incompatibly; other versions are ignored with a warning.
pub(super) const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    pub rule: String,
    pub alerts: Vec<PersistedAlert>,
}

/// One firing alert.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistedAlert {
    /// The group's fields, an object.
    pub group: Value,
    pub fingerprint: String,
    /// Nanoseconds since the Unix epoch.
    pub starts_at: i64,
    pub last_notified: i64,
    pub value: f64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum StateError {
    #[error("cannot read alert state {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("alert state {path} is damaged, starting without it: {message}")]
    Damaged { path: String, message: String },
    #[error("cannot write alert state {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Reads the state; a missing file is an empty state.
pub(super) fn load(path: &Path) -> Result<Option<StateFile>, StateError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let state: StateFile = serde_json::from_slice(&text).map_err(|e| StateError::Damaged {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if state.version != STATE_VERSION {
        return Err(StateError::Damaged {
            path: path.display().to_string(),
            message: format!("unknown version {}", state.version),
        });
    }
    Ok(Some(state))
}

/// Replaces the state atomically (write a temporary file, fsync, rename, fsync the directory).
pub(super) fn save(path: &Path, state: &StateFile) -> Result<(), StateError> {
    let fail = |source| StateError::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // Serialising our own types cannot fail.
    let body = serde_json::to_vec_pretty(state).unwrap_or_default();
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(&body).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Map;

    #[test]
    fn round_trips_and_reports_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/rule.json");
        assert!(load(&path).unwrap().is_none());
        let mut group = Map::new();
        group.insert("app", Value::from("A"));
        let state = StateFile {
            version: STATE_VERSION,
            rule: "r".into(),
            alerts: vec![PersistedAlert {
                group: Value::Object(group),
                fingerprint: "00ff".into(),
                starts_at: 5,
                last_notified: 6,
                value: 12.0,
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
            }],
        };
        save(&path, &state).unwrap();
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back.alerts.len(), 1);
        assert_eq!(
            match &back.alerts[0].group {
                Value::Object(g) => g.get("app"),
                _ => None,
            },
            Some(&Value::from("A"))
        );
        assert_eq!(back.alerts[0].last_notified, 6);
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(matches!(load(&path), Err(StateError::Damaged { .. })));
    }
}
