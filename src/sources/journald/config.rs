//! `[sources.ID] type = "journald"`: the options, their check (no IO), and the
//! `journalctl` command line they make.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::Deserialize;

use crate::field_error::{at_least_one, between_one_and, FieldError};

/// The largest `max_entry_bytes` accepted: an entry is held whole while it is parsed.
const MAX_ENTRY_BYTES_LIMIT: usize = 64 * 1024 * 1024;

/// Reads the systemd journal through `journalctl -o json --follow`, with a checkpoint (the
/// journal's cursor) that moves only over acknowledged entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldConfig {
    /// Only these units' entries (`nginx.service`; a name without a dot gets `.service`,
    /// as `journalctl --unit` does). Empty: every unit.
    #[serde(default)]
    pub units: Vec<String>,
    /// Only entries with these field values (`FIELD=value`, as journalctl matches: the same
    /// field twice is an OR, different fields an AND).
    #[serde(default)]
    pub matches: Vec<String>,
    /// Read the journal files in this directory (another machine's, a container's) instead
    /// of the local journal: `journalctl --directory`.
    pub journal_directory: Option<PathBuf>,
    /// Only entries of the current boot (`journalctl --boot`; with `journal_directory`, the
    /// latest boot in those files), as Vector does by default. `false` reads every boot
    /// (`--merge`).
    #[serde(default = "default_true")]
    pub current_boot_only: bool,
    /// On a first start (no checkpoint), only entries written from now on. The default,
    /// Vector's too, reads the journal from its beginning (within `current_boot_only`).
    #[serde(default)]
    pub since_now: bool,
    /// The `journalctl` program: a path, or a name looked up in `PATH`.
    #[serde(default = "default_journalctl_path")]
    pub journalctl_path: PathBuf,
    /// Entries per batch at most: a batch is also sent as soon as journalctl has nothing
    /// more to say, so quiet journals add no latency.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// An entry's JSON longer than this is skipped and counted
    /// (`component_errors_total{reason = "oversized"}`); it bounds the memory one entry
    /// takes (journalctl runs with `--all`, so large fields are printed whole).
    #[serde(default = "default_max_entry_bytes")]
    pub max_entry_bytes: usize,
    /// The directory where the checkpoint is kept (`ID/cursor.json` inside it). Without it
    /// nothing is remembered: every start is a first start.
    pub data_dir: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}

fn default_journalctl_path() -> PathBuf {
    PathBuf::from("journalctl")
}

fn default_batch_size() -> usize {
    1_000
}

fn default_max_entry_bytes() -> usize {
    1024 * 1024
}

impl JournaldConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        for (i, unit) in self.units.iter().enumerate() {
            if unit.is_empty() || unit.contains('=') {
                return Err(FieldError::new(
                    format!("units[{i}]"),
                    format!("`{unit}` is not a unit name"),
                ));
            }
        }
        for (i, m) in self.matches.iter().enumerate() {
            let valid = m.split_once('=').is_some_and(|(field, _)| {
                !field.is_empty()
                    && field
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            });
            if !valid {
                return Err(FieldError::new(
                    format!("matches[{i}]"),
                    format!("`{m}` is not FIELD=value (field names are upper case, digits and _)"),
                ));
            }
        }
        for (field, path) in [
            ("journal_directory", self.journal_directory.as_ref()),
            ("data_dir", self.data_dir.as_ref()),
            ("journalctl_path", Some(&self.journalctl_path)),
        ] {
            if path.is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(FieldError::new(field, "must not be empty"));
            }
        }
        at_least_one(&[("batch_size", self.batch_size as u64)])?;
        between_one_and(
            "max_entry_bytes",
            self.max_entry_bytes,
            MAX_ENTRY_BYTES_LIMIT,
        )?;
        Ok(())
    }

    /// journalctl's arguments, resuming after `cursor` when there is one.
    pub(super) fn args(&self, cursor: Option<&str>) -> Vec<OsString> {
        // `--all` prints fields longer than 4 KiB (and unprintable ones) instead of null;
        // `--no-pager` in case journalctl thinks it has a terminal.
        let mut args: Vec<OsString> = ["--output=json", "--follow", "--all", "--no-pager"]
            .into_iter()
            .map(OsString::from)
            .collect();
        if let Some(dir) = &self.journal_directory {
            let mut arg = OsString::from("--directory=");
            arg.push(dir);
            args.push(arg);
        }
        // journalctl's `--follow` alone implies `--boot`; `--merge` lifts that, showing
        // every boot's entries interleaved by time.
        args.push(
            if self.current_boot_only {
                "--boot"
            } else {
                "--merge"
            }
            .into(),
        );
        // `--follow` alone shows only the last 10 entries, even after a cursor: `--no-tail`
        // shows every one.
        match cursor {
            Some(cursor) => {
                args.push(format!("--after-cursor={cursor}").into());
                args.push("--no-tail".into());
            }
            None if self.since_now => args.push("--lines=0".into()),
            None => args.push("--no-tail".into()),
        }
        for unit in &self.units {
            args.push(format!("--unit={unit}").into());
        }
        // Positional matches after the options; `--` keeps a value starting with `-` a match.
        if !self.matches.is_empty() {
            args.push("--".into());
            args.extend(self.matches.iter().map(OsString::from));
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Result<JournaldConfig, String> {
        let config: JournaldConfig = toml::from_str(toml).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn checks_options_by_field() {
        for (toml, field) in [
            ("units = ['']", "units[0]"),
            ("matches = ['nope']", "matches[0]"),
            ("matches = ['lower=x']", "matches[0]"),
            ("batch_size = 0", "batch_size"),
            ("max_entry_bytes = 0", "max_entry_bytes"),
            ("journalctl_path = ''", "journalctl_path"),
            ("data_dir = ''", "data_dir"),
            ("journal_directory = ''", "journal_directory"),
        ] {
            let error = config(toml).expect_err(toml);
            assert!(error.contains(field), "{toml}: {error}");
        }
        assert!(config("bogus = 1").is_err());
        assert!(config("matches = ['_SYSTEMD_UNIT=a.service', 'PRIORITY=3']").is_ok());
    }

    #[test]
    fn command_line() {
        let c = config(
            "units = ['a.service']\nmatches = ['PRIORITY=3']\njournal_directory = '/j'\ncurrent_boot_only = false",
        )
        .unwrap();
        let text = |args: Vec<OsString>| {
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            text(c.args(None)),
            "--output=json --follow --all --no-pager --directory=/j --merge --no-tail --unit=a.service -- PRIORITY=3"
        );
        assert_eq!(
            text(c.args(Some("s=1;i=2"))),
            "--output=json --follow --all --no-pager --directory=/j --merge --after-cursor=s=1;i=2 --no-tail --unit=a.service -- PRIORITY=3"
        );
        let c = config("since_now = true").unwrap();
        assert_eq!(
            text(c.args(None)),
            "--output=json --follow --all --no-pager --boot --lines=0"
        );
    }
}
