//! Finding the files to read: `include` globs minus `exclude` globs, evaluated again every
//! `glob_interval_ms` (polling, as Vector's file source does by default: it works on every
//! filesystem, NFS and overlay included, and a rotation is seen within one interval).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::telemetry::LogLimiter;

pub(super) struct Discovery {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
    limiter: LogLimiter,
}

impl Discovery {
    /// `include` and `exclude` were checked by the config's validation; a pattern that does
    /// not compile here is left out.
    pub(super) fn new(include: &[String], exclude: &[String]) -> Self {
        Self {
            include: include.to_vec(),
            exclude: exclude
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
            limiter: LogLimiter::default(),
        }
    }

    /// The paths the globs match now, sorted, without excluded ones. A directory that
    /// cannot be read is logged and skipped; the rest of the scan goes on.
    pub(super) fn scan(&mut self, id: &str) -> BTreeSet<PathBuf> {
        let mut found = BTreeSet::new();
        for pattern in &self.include {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for entry in paths {
                match entry {
                    Ok(path) => {
                        if !self.exclude.iter().any(|x| x.matches_path(&path)) {
                            found.insert(path);
                        }
                    }
                    Err(error) => {
                        if let Some(suppressed) = self.limiter.check() {
                            tracing::warn!(component_id = %id, %error, suppressed, "cannot read a directory the globs cover");
                        }
                    }
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_minus_excludes() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.log", "b.log", "b.log.1", "c.txt", "debug.log"] {
            std::fs::write(dir.path().join(name), "x\n").unwrap();
        }
        let d = dir.path().display();
        let mut discovery = Discovery::new(
            &[format!("{d}/*.log"), format!("{d}/*.log.*")],
            &[format!("{d}/debug.log"), "*.1".to_string()],
        );
        let names: Vec<_> = discovery
            .scan("t")
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.log", "b.log"]);
    }
}
