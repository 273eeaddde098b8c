//! `type = "geoip"`: a MaxMind DB (`.mmdb`: GeoIP2, GeoLite2, DB-IP…) looked up by IP
//! address, read with the `maxminddb` crate.
//!
//! ```toml
//! [enrichment_tables.geo]
//! type = "geoip"
//! file = "/var/lib/GeoIP/GeoLite2-City.mmdb"
//! locale = "en"                  # which of the `names` to use
//! reload_interval_secs = 10
//! ```
//!
//! A City or Country record is flattened as Vector's `geoip` table does: `city_name`,
//! `continent_code`, `country_code`, `country_name`, `region_code`, `region_name`,
//! `postal_code`, `latitude`, `longitude`, `timezone`, `metro_code` (those present). Other
//! databases (ASN, ISP, anonymous IP) give their record as it is stored.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::csv::MAX_TABLE_BYTES;
use super::{read_bounded, LoadError, Loader, LookupError, Record, Table};
use crate::event::{Map, Value};
use crate::field_error::{between_one_and, FieldError};

/// `[enrichment_tables.ID] type = "geoip"`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipTableConfig {
    pub file: PathBuf,
    #[serde(default = "default_locale")]
    pub locale: String,
    #[serde(default = "super::csv::default_reload_interval_secs")]
    pub reload_interval_secs: u64,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_locale() -> String {
    "en".into()
}

fn default_max_bytes() -> u64 {
    256 << 20
}

impl GeoipTableConfig {
    /// Checks the options without reading the file.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.file.as_os_str().is_empty() {
            return Err(FieldError::new("file", "must name a .mmdb file"));
        }
        if self.locale.is_empty() {
            return Err(FieldError::new("locale", "must name a locale, e.g. \"en\""));
        }
        between_one_and("max_bytes", self.max_bytes, MAX_TABLE_BYTES)?;
        Ok(())
    }
}

impl Loader for GeoipTableConfig {
    fn path(&self) -> &Path {
        &self.file
    }

    fn reload_interval(&self) -> Duration {
        Duration::from_secs(self.reload_interval_secs)
    }

    fn load(&self) -> Result<Box<dyn Table>, LoadError> {
        let bytes = read_bounded(&self.file, self.max_bytes)?;
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| LoadError::Invalid {
            path: self.file.clone(),
            message: e.to_string(),
        })?;
        Ok(Box::new(GeoipTable {
            reader,
            locale: self.locale.clone(),
        }))
    }
}

/// A loaded MaxMind database.
pub struct GeoipTable {
    reader: maxminddb::Reader<Vec<u8>>,
    locale: String,
}

impl std::fmt::Debug for GeoipTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoipTable")
            .field("database_type", &self.reader.metadata().database_type)
            .finish_non_exhaustive()
    }
}

impl Table for GeoipTable {
    fn get(&self, key: &str) -> Option<Record> {
        let ip: IpAddr = key.trim().parse().ok()?;
        // A damaged record reads as a miss: the database is input like any other.
        let record = self.reader.lookup(ip).ok()?.decode::<Value>().ok()??;
        let Value::Object(map) = record else {
            return None;
        };
        Some(Arc::new(flatten(map, &self.locale)))
    }

    fn find(&self, conditions: &[(&str, &str)]) -> Result<Record, LookupError> {
        match conditions {
            [("ip", ip)] => self.get(ip).ok_or(LookupError::NotFound),
            [(other, _), ..] if *other != "ip" => {
                Err(LookupError::UnsupportedCondition(other.to_string()))
            }
            _ => Err(LookupError::UnsupportedCondition(
                "anything but one `ip`".into(),
            )),
        }
    }
}

const LOCATION_KEYS: [&str; 6] = [
    "city",
    "continent",
    "country",
    "location",
    "postal",
    "subdivisions",
];

/// A City/Country record in Vector's flat shape; any other record as it is.
fn flatten(record: Map, locale: &str) -> Map {
    if !LOCATION_KEYS.iter().any(|k| record.contains_key(k)) {
        return record;
    }
    let at = |path: &[&str]| -> Option<Value> {
        let mut value = record.get(path[0])?;
        for segment in &path[1..] {
            value = match value {
                Value::Object(map) => map.get(segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(value.clone())
    };
    let mut flat = Map::new();
    let fields: [(&str, &[&str]); 11] = [
        ("city_name", &["city", "names", locale]),
        ("continent_code", &["continent", "code"]),
        ("country_code", &["country", "iso_code"]),
        ("country_name", &["country", "names", locale]),
        ("region_code", &["subdivisions", "0", "iso_code"]),
        ("region_name", &["subdivisions", "0", "names", locale]),
        ("postal_code", &["postal", "code"]),
        ("latitude", &["location", "latitude"]),
        ("longitude", &["location", "longitude"]),
        ("timezone", &["location", "time_zone"]),
        ("metro_code", &["location", "metro_code"]),
    ];
    for (name, path) in fields {
        if let Some(value) = at(path) {
            flat.insert(name, value);
        }
    }
    flat
}
