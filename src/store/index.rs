//! On-disk layout: one tantivy index per time partition, and how an event becomes a
//! tantivy document.
//!
//! ```text
//! <path>/
//!   20261126T060000Z/      one partition: events that ARRIVED in [06:00, 07:00) UTC
//!     meta.json, *.idx, ...  (tantivy's files; a commit atomically replaces meta.json)
//!   20261126T070000Z/
//!   damaged/               partitions that failed to open, moved aside (never deleted)
//! ```
//!
//! Partitions are cut by arrival time, not by the event's own timestamp: replayed or
//! badly-clocked events cannot spray thousands of partitions, there is only ever one
//! partition being written, and retention by age means "what arrived in the last N". Queries
//! filter on the events' own `timestamp` and skip partitions whose timestamp column's
//! min/max lies outside the range.

use std::path::{Path, PathBuf};

use tantivy::schema::{
    Field, IndexRecordOption, JsonObjectOptions, NumericOptions, OwnedValue, Schema,
    TextFieldIndexing, TextOptions, FAST, STORED,
};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{Index, IndexReader, IndexSettings, ReloadPolicy, TantivyDocument};

use super::query::number;
use crate::event::{fields, Event, Value};

/// Top-level fields indexed as their own keyword columns (exact match, fast top values and
/// histogram splits).
pub const KEYWORD_FIELDS: [&str; 5] = [
    fields::LEVEL,
    fields::APP,
    fields::INSTANCE,
    fields::HOST,
    fields::STREAM,
];

/// Handles on the schema's fields.
#[derive(Clone)]
pub struct Fields {
    pub schema: Schema,
    /// Event time, nanoseconds since the epoch (fast: sorting, ranges, histograms).
    pub timestamp: Field,
    /// Arrival order within a partition: with `timestamp` and the partition, a stable key
    /// for cursor paging (doc ids change when segments merge; this does not).
    pub seq: Field,
    pub keywords: Vec<(&'static str, Field)>,
    /// Full text, positions kept for phrases.
    pub message: Field,
    /// Every other field as the keyword `name=value` (nested objects flattened with dots),
    /// a column only: see [`kv_options`].
    pub kv: Field,
    /// Every other numeric field, by name, for ranges.
    pub num: Field,
    /// The whole event as JSON, returned by queries.
    pub source: Field,
}

impl Fields {
    pub fn new() -> Fields {
        Self::with_options(false, kv_options())
    }

    /// `norms`: whether keywords and the message keep field norms, as partitions written
    /// before they were dropped do.
    fn with_options(norms: bool, kv_options: TextOptions) -> Fields {
        let mut builder = Schema::builder();
        let timestamp =
            builder.add_i64_field(fields::TIMESTAMP, NumericOptions::default().set_fast());
        let seq = builder.add_u64_field("_seq", NumericOptions::default().set_fast());
        let keywords = KEYWORD_FIELDS
            .iter()
            .map(|name| (*name, builder.add_text_field(name, keyword_options(norms))))
            .collect();
        let message = builder.add_text_field(
            fields::MESSAGE,
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions)
                    .set_fieldnorms(norms),
            ),
        );
        let kv = builder.add_text_field("_kv", kv_options);
        let num = builder.add_json_field("_num", JsonObjectOptions::default().set_fast("raw"));
        let source = builder.add_bytes_field("_source", STORED);
        Fields {
            schema: builder.build(),
            timestamp,
            seq,
            keywords,
            message,
            kv,
            num,
            source,
        }
    }

    /// Whether a partition written with `schema` can be read with these handles: the same
    /// fields in the same order and of the same types. Options may differ, as `_kv`'s do
    /// between partitions written before and after it lost its inverted index; queries on
    /// `_kv` work on both (see `search::translate`).
    pub fn reads(&self, schema: &Schema) -> bool {
        let ours: Vec<_> = self.schema.fields().collect();
        let theirs: Vec<_> = schema.fields().collect();
        ours.len() == theirs.len()
            && ours.iter().zip(&theirs).all(|((a, ea), (b, eb))| {
                a == b
                    && ea.name() == eb.name()
                    && ea.field_type().value_type() == eb.field_type().value_type()
            })
    }

    pub fn keyword(&self, name: &str) -> Option<Field> {
        self.keywords
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    /// The document for `event`, the bytes of its stored JSON, and whether its own time was
    /// set aside as implausible; `fallback_ts` (its arrival) is used when it has no
    /// timestamp, or one that does not parse or lies outside 1970–2100, which is then kept as
    /// `original_timestamp` (a year-0 or year-9999 time would stretch every chart and
    /// histogram of the store to millennia).
    pub fn document(
        &self,
        event: &Event,
        seq: u64,
        fallback_ts: i64,
    ) -> (TantivyDocument, usize, bool) {
        let mut doc = TantivyDocument::new();
        let (ts, implausible) = store_time(event, fallback_ts);
        doc.add_i64(self.timestamp, ts);
        doc.add_u64(self.seq, seq);
        let mut numbers: Vec<(String, OwnedValue)> = Vec::new();
        // One buffer for every text added: tantivy copies each into the document.
        let mut text = String::with_capacity(128);
        for (key, value) in event.fields.iter() {
            let key = key.as_str();
            if key == fields::TIMESTAMP {
                continue;
            }
            if key == fields::MESSAGE {
                text.clear();
                value.write_text(&mut text);
                doc.add_text(self.message, text.as_str());
                continue;
            }
            if let Some(field) = self.keyword(key) {
                if !matches!(value, Value::Null) {
                    text.clear();
                    value.write_text(&mut text);
                    doc.add_text(field, text.as_str());
                }
                continue;
            }
            self.add_other(&mut doc, &mut numbers, &mut text, key, value, 0);
        }
        if !numbers.is_empty() {
            doc.add_field_value(self.num, &OwnedValue::Object(numbers));
        }
        let source = if implausible {
            let mut kept = event.fields.clone();
            if let Some(original) = kept.remove(fields::TIMESTAMP) {
                kept.insert(ORIGINAL_TIMESTAMP, original);
            }
            kept.insert(fields::TIMESTAMP, Value::Timestamp(ts));
            serde_json::to_vec(&kept).unwrap_or_default()
        } else {
            let mut source = Vec::with_capacity(256);
            if serde_json::to_writer(&mut source, &event.fields).is_err() {
                source.clear();
            }
            if event.fields.get(fields::TIMESTAMP).is_none() {
                // Keep the time the event was indexed under, so results show it.
                with_timestamp(&source, ts)
            } else {
                source
            }
        };
        doc.add_bytes(self.source, &source);
        (doc, source.len(), implausible)
    }

    /// Adds `value` under `path` to `_kv` (and `_num` when it is a number); `term` is a
    /// scratch buffer.
    fn add_other(
        &self,
        doc: &mut TantivyDocument,
        numbers: &mut Vec<(String, OwnedValue)>,
        term: &mut String,
        path: &str,
        value: &Value,
        depth: usize,
    ) {
        match value {
            Value::Null => {}
            Value::Object(map) if depth < 4 => {
                for (key, inner) in map.iter() {
                    let path = format!("{path}.{key}");
                    self.add_other(doc, numbers, term, &path, inner, depth + 1);
                }
            }
            Value::Array(items) if depth < 4 => {
                for item in items.iter().take(64) {
                    self.add_other(doc, numbers, term, path, item, depth + 1);
                }
            }
            _ => {
                if let Some(n) = number(value) {
                    numbers.push((path.to_string(), OwnedValue::F64(n)));
                }
                term.clear();
                term.push_str(path);
                term.push('=');
                let value_start = term.len();
                value.write_text(term);
                // Keywords are for exact matching; very long values only bloat the terms.
                if term.len() - value_start > MAX_KEYWORD_BYTES {
                    let mut end = value_start + MAX_KEYWORD_BYTES;
                    while !term.is_char_boundary(end) {
                        end -= 1;
                    }
                    term.truncate(end);
                }
                doc.add_text(self.kv, term.as_str());
            }
        }
    }
}

impl Default for Fields {
    fn default() -> Self {
        Self::new()
    }
}

const MAX_KEYWORD_BYTES: usize = 256;

/// Keywords: exact terms and a column. New partitions keep no field norms (a byte per event
/// per field): they serve relevance scoring, and every query here sorts by time.
fn keyword_options(norms: bool) -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic)
        .set_fieldnorms(norms);
    TextOptions::default().set_indexing_options(indexing) | FAST
}

/// `_kv` is a column (a dictionary of its `name=value` terms and each event's ordinals), not
/// an inverted index. Its values are the high-cardinality ones (request ids, users, paths,
/// sizes), and a second dictionary with posting lists for them took about 40 % of the
/// store's CPU per event and a fifth of its disk (benches/RESULTS.md, issue 18). A term
/// query on it scans the column's ordinals instead of reading a posting list: one pass over
/// a bit-packed column per segment, and it is usually intersected with cheaper clauses.
fn kv_options() -> TextOptions {
    TextOptions::default() | FAST
}

/// 2100-01-01T00:00:00Z: event times at or after it (or before 1970) are not believed.
pub const MAX_EVENT_TIME_NANOS: i64 = 4_102_444_800_000_000_000;

/// Where an event's implausible time is kept when the store files it under its arrival.
pub const ORIGINAL_TIMESTAMP: &str = "original_timestamp";

/// When `event` arrived: the time its source received it, or `now` for an event that has
/// none. An event without a plausible time of its own is filed under this.
pub fn arrival(event: &Event, now: i64) -> i64 {
    if event.meta.received_at != 0 {
        event.meta.received_at
    } else {
        now
    }
}

/// The time an event is filed under, and whether its own was set aside as implausible:
/// its own when that parses and lies in 1970–2100, else `fallback` (its arrival).
pub fn store_time(event: &Event, fallback: i64) -> (i64, bool) {
    let plausible = event_timestamp(event).filter(|t| (0..MAX_EVENT_TIME_NANOS).contains(t));
    // A time field that does not parse (or lies beyond what nanoseconds can hold) is as
    // little to be believed as one outside the range.
    let implausible = event.fields.get(fields::TIMESTAMP).is_some() && plausible.is_none();
    (plausible.unwrap_or(fallback), implausible)
}

/// The event's own time: a timestamp value, or an RFC 3339 string.
pub fn event_timestamp(event: &Event) -> Option<i64> {
    match event.fields.get(fields::TIMESTAMP)? {
        Value::Timestamp(t) => Some(*t),
        Value::Bytes(b) => parse_rfc3339(std::str::from_utf8(b).ok()?),
        Value::Integer(i) => Some(i.saturating_mul(1_000_000_000)),
        _ => None,
    }
}

pub fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()?
        .timestamp_nanos_opt()
}

pub(crate) fn with_timestamp(source: &[u8], ts: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(source.len() + 48);
    out.extend_from_slice(b"{\"timestamp\":\"");
    out.extend_from_slice(crate::event::format_timestamp(ts).as_bytes());
    out.push(b'"');
    if source.len() > 2 {
        out.push(b',');
        out.extend_from_slice(&source[1..]);
    } else {
        out.push(b'}');
    }
    out
}

// === impl Partition ===

/// One partition: a tantivy index covering an arrival-time interval.
pub struct Partition {
    /// Start of the interval, seconds since the epoch (UTC).
    pub start_secs: i64,
    pub dir: PathBuf,
    pub index: Index,
    pub reader: IndexReader,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("start_secs", &self.start_secs)
            .field("dir", &self.dir)
            .finish()
    }
}

const NAME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

pub fn partition_name(start_secs: i64) -> String {
    chrono::DateTime::from_timestamp(start_secs, 0)
        .map(|t| t.format(NAME_FORMAT).to_string())
        .unwrap_or_else(|| format!("{start_secs}"))
}

pub fn parse_partition_name(name: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(name, NAME_FORMAT)
        .ok()
        .map(|t| t.and_utc().timestamp())
}

impl Partition {
    /// Opens the partition in `dir`, creating it when `create` is set.
    pub fn open(
        dir: &Path,
        start_secs: i64,
        fields: &Fields,
        create: bool,
    ) -> tantivy::Result<Self> {
        let index = if create && !dir.join("meta.json").exists() {
            std::fs::create_dir_all(dir)?;
            Index::builder()
                .schema(fields.schema.clone())
                .settings(index_settings())
                .create_in_dir(dir)?
        } else {
            Index::open_in_dir(dir)?
        };
        if !fields.reads(&index.schema()) {
            return Err(tantivy::TantivyError::SchemaError(
                "partition was written with a different schema".into(),
            ));
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        // Touch every segment's fast fields now, so damage is found at open, not at query time.
        for segment in reader.searcher().segment_readers() {
            segment.fast_fields().i64(fields::TIMESTAMP)?;
        }
        Ok(Partition {
            start_secs,
            dir: dir.to_path_buf(),
            index,
            reader,
        })
    }

    /// Bytes on disk (all files in the directory).
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }
}

/// How new partitions store `_source`: zstd in 64 KiB blocks. Log events of one partition
/// repeat their field names and most values, and zstd over larger blocks finds those
/// repeats (measured in benches/RESULTS.md, issue 18); a query's page decompresses at most
/// one block per event shown. Partitions keep the settings they were created with.
fn index_settings() -> IndexSettings {
    IndexSettings {
        docstore_compression: Compressor::Zstd(ZstdCompressor {
            compression_level: Some(3),
        }),
        docstore_blocksize: 64 * 1024,
        ..IndexSettings::default()
    }
}

pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        for secs in [0, 1_764_136_800, 1_764_140_400] {
            assert_eq!(parse_partition_name(&partition_name(secs)), Some(secs));
        }
        assert_eq!(partition_name(1_764_136_800), "20251126T060000Z");
        assert_eq!(parse_partition_name("damaged"), None);
    }

    /// Partitions written while `_kv` also had an inverted index (`STRING | FAST`) and the
    /// keywords and message kept field norms open, and their terms, wildcards and phrases are
    /// found like those of new partitions.
    #[test]
    fn partitions_with_an_indexed_kv_and_norms_still_open_and_answer() {
        use crate::store::search::SearchRequest;
        use crate::store::{Query, Store, StoreOptions};
        use tantivy::schema::STRING;

        let dir = tempfile::tempdir().expect("tempdir");
        let start = 1_764_136_800;
        let legacy = Fields::with_options(true, STRING | FAST);
        let part = dir.path().join(partition_name(start));
        std::fs::create_dir_all(&part).expect("mkdir");
        let index = Index::create_in_dir(&part, legacy.schema.clone()).expect("index");
        let mut writer: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 16 << 20).expect("writer");
        for i in 0..20u64 {
            let mut event = Event::from_message(format!("line {i}").into());
            event.insert("user", format!("u{}", i % 4));
            event.insert("level", if i % 5 == 0 { "error" } else { "info" });
            let (doc, _, _) = legacy.document(&event, i, start * 1_000_000_000);
            writer.add_document(doc).expect("add");
        }
        writer.commit().expect("commit");
        drop(writer);
        assert!(legacy.schema.get_field_entry(legacy.kv).is_indexed());
        assert!(legacy
            .schema
            .get_field_entry(legacy.message)
            .has_fieldnorms());

        let store = Store::open("legacy", dir.path(), StoreOptions::default()).expect("opens");
        assert_eq!(store.damaged_partitions(), 0);
        let count = |q: &str| {
            store
                .search(&SearchRequest {
                    query: Query::parse(q).expect("query"),
                    from: None,
                    to: None,
                    limit: 1,
                    cursor: None,
                })
                .expect("search")
                .total
        };
        assert_eq!(count("user:u1"), 5);
        assert_eq!(count("user:u*"), 20);
        assert_eq!(count("user:*3"), 5);
        assert_eq!(count("user:u9"), 0);
        assert_eq!(count("level:error"), 4);
        assert_eq!(count("line"), 20);
        assert_eq!(count("\"line 7\""), 1);
    }

    #[test]
    fn source_gets_the_indexed_timestamp() {
        let out = with_timestamp(br#"{"a":1}"#, 0);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["a"], 1);
        assert!(v["timestamp"]
            .as_str()
            .is_some_and(|t| t.starts_with("1970-01-01T00:00:00")));
        let out = with_timestamp(b"{}", 0);
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    }
}
