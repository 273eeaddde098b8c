//! `type = "csv"`: a CSV file with a header row, indexed by its `key` column.
//!
//! ```toml
//! [enrichment_tables.owners]
//! type = "csv"
//! file = "/etc/sluice/owners.csv"
//! key = "app"                    # the column `enrich` lookups match
//! delimiter = ","
//! reload_interval_secs = 10      # 0: reload only on SIGUSR1
//! max_bytes = 67108864
//! ```
//!
//! Every value is a string. When two rows share a key, the first one is the key's record.
//! Lookups by other columns (`get_enrichment_table_record`) scan the rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{read_bounded, LoadError, Loader, LookupError, Record, Table};
use crate::event::{Map, Value};
use crate::field_error::{between_one_and, FieldError};

/// `[enrichment_tables.ID] type = "csv"`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvTableConfig {
    pub file: PathBuf,
    /// The column lookups by key match.
    pub key: String,
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    #[serde(default = "default_reload_interval_secs")]
    pub reload_interval_secs: u64,
    /// A larger file is refused (at start) or not reloaded (the old table stays).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_delimiter() -> char {
    ','
}

pub(super) fn default_reload_interval_secs() -> u64 {
    10
}

fn default_max_bytes() -> u64 {
    64 << 20
}

/// The largest `max_bytes`: a table is held in memory whole.
pub const MAX_TABLE_BYTES: u64 = 1 << 30;

impl CsvTableConfig {
    /// Checks the options without reading the file.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.file.as_os_str().is_empty() {
            return Err(FieldError::new("file", "must name a CSV file"));
        }
        if self.key.is_empty() {
            return Err(FieldError::new("key", "must name a column"));
        }
        if !self.delimiter.is_ascii() || self.delimiter == '"' || self.delimiter == '\n' {
            return Err(FieldError::new(
                "delimiter",
                "must be one ASCII character other than `\"` and newline",
            ));
        }
        between_one_and("max_bytes", self.max_bytes, MAX_TABLE_BYTES)?;
        Ok(())
    }
}

impl Loader for CsvTableConfig {
    fn path(&self) -> &Path {
        &self.file
    }

    fn reload_interval(&self) -> Duration {
        Duration::from_secs(self.reload_interval_secs)
    }

    fn load(&self) -> Result<Box<dyn Table>, LoadError> {
        let bytes = read_bounded(&self.file, self.max_bytes)?;
        let invalid = |message: String| LoadError::Invalid {
            path: self.file.clone(),
            message,
        };
        let mut reader = ::csv::ReaderBuilder::new()
            .delimiter(self.delimiter as u8)
            .from_reader(bytes.as_slice());
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| invalid(format!("header row: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        for (i, column) in columns.iter().enumerate() {
            if column.is_empty() || columns[..i].contains(column) {
                return Err(invalid(format!(
                    "header row: column {} is empty or repeated",
                    i + 1
                )));
            }
        }
        let key_column = columns
            .iter()
            .position(|c| *c == self.key)
            .ok_or_else(|| invalid(format!("no column `{}` (the key)", self.key)))?;
        let mut rows = Vec::new();
        let mut index = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| invalid(e.to_string()))?;
            let mut row = Map::new();
            for (column, value) in columns.iter().zip(record.iter()) {
                row.insert(column.as_str(), Value::from(value));
            }
            let key = record.get(key_column).unwrap_or_default();
            index.entry(Box::from(key)).or_insert(rows.len());
            rows.push(Arc::new(row));
        }
        Ok(Box::new(CsvTable {
            key: self.key.clone(),
            columns,
            rows,
            index,
        }))
    }
}

/// A loaded CSV file.
#[derive(Debug)]
pub struct CsvTable {
    key: String,
    columns: Vec<String>,
    rows: Vec<Record>,
    /// Key → the first row with it.
    index: HashMap<Box<str>, usize>,
}

impl Table for CsvTable {
    fn get(&self, key: &str) -> Option<Record> {
        self.index.get(key).map(|&row| self.rows[row].clone())
    }

    fn find(&self, conditions: &[(&str, &str)]) -> Result<Record, LookupError> {
        if let [(column, value)] = conditions {
            if *column == self.key {
                return self.get(value).ok_or(LookupError::NotFound);
            }
        }
        if let Some((column, _)) = conditions
            .iter()
            .find(|(column, _)| !self.columns.iter().any(|c| c == column))
        {
            return Err(LookupError::UnsupportedCondition(column.to_string()));
        }
        let mut matches = self.rows.iter().filter(|row| {
            conditions
                .iter()
                .all(|(column, value)| row.get(column).and_then(Value::as_str) == Some(*value))
        });
        match (matches.next(), matches.next()) {
            (None, _) => Err(LookupError::NotFound),
            (Some(row), None) => Ok(row.clone()),
            (Some(_), Some(_)) => Err(LookupError::Ambiguous),
        }
    }
}
