//! The `enrich` transform: sets, renames and removes fields.
//!
//! ```toml
//! [transforms.tag]
//! type = "enrich"
//! inputs = ["app_logs"]
//! set = { environment = "production", service = "{{ app }}-{{ instance }}" }
//! rename = { msg = "message", "http.code" = "http.status" }
//! remove = ["password", "headers.authorization"]
//! add_host = true
//! overwrite = true
//! lookups = [{ table = "owners", key = "{{ app }}", into = "owner" }]
//! ```
//!
//! Steps run in this order, each seeing the result of the one before: `set` (entries in
//! config order, then `add_host`), `lookups` (in config order), `rename` (in config
//! order), `remove`.
//!
//! A lookup renders `key` and sets `into` to the record an enrichment table
//! (`[enrichment_tables.ID]`, docs/enrichment.md) holds for it, as an object; a miss or an
//! empty key sets nothing. Each lookup remembers up to `cache_size` keys' answers (misses
//! too), forgotten whenever the table is reloaded.
//!
//! Field names are paths as in conditions (`http.status`, `labels."app.kubernetes.io/name"`).
//! A dotted name addresses a top-level key spelled exactly that way if the event has one,
//! else the nested field; `set` creates missing parent objects. `set` values are templates:
//! text with `{{ field }}` placeholders rendered from the event (a missing field renders
//! as nothing). A value that is exactly one placeholder copies the field with its type
//! (`"{{ status }}"` stays a number) and sets nothing when the field is missing.

use serde::Deserialize;

use std::num::NonZeroUsize;

use lru::LruCache;

use super::route::OrderedTable;
use super::{FunctionTransform, Outputs, TransformContext};
use crate::condition::FieldPath;
use crate::enrichment::{Record, TableHandle, Tables};
use crate::event::{fields, Event, Map, Value};
use crate::field_error::FieldError;
use crate::template::Template;

/// Configuration of the `enrich` transform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Field → value template, e.g. `{ env = "prod", service = "{{ app }}-web" }`.
    #[serde(default)]
    pub set: OrderedTable,
    /// Old field → new field. A missing old field is skipped; an existing new field is
    /// replaced. The renamed field moves to the end of its object.
    #[serde(default)]
    pub rename: OrderedTable,
    /// Fields to delete.
    #[serde(default)]
    pub remove: Vec<String>,
    /// When the event has no `host` field, set it to this machine's host name (looked up
    /// once, when the transform is built).
    #[serde(default)]
    pub add_host: bool,
    /// Whether `set` replaces fields the event already has. When false, `set` only fills
    /// in absent fields. `rename` always replaces its target.
    #[serde(default = "default_overwrite")]
    pub overwrite: bool,
    /// Records looked up in enrichment tables.
    #[serde(default)]
    pub lookups: Vec<LookupConfig>,
}

fn default_overwrite() -> bool {
    true
}

/// One lookup of `enrich`: `{ table = "owners", key = "{{ app }}", into = "owner" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// The enrichment table's id.
    pub table: String,
    /// Template of the key: a CSV table's key column value, a GeoIP table's IP address.
    pub key: String,
    /// The field the record is set to.
    pub into: String,
    /// How many keys' answers are remembered.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
}

fn default_cache_size() -> usize {
    10_000
}

const MAX_CACHE_SIZE: usize = 1_000_000;
/// Longer keys are looked up every time rather than remembered.
const MAX_CACHED_KEY_BYTES: usize = 256;

impl EnrichConfig {
    /// [`EnrichConfig::build_with_tables`] for a pipeline without enrichment tables.
    pub fn build(&self, ctx: &TransformContext) -> Result<Enrich, FieldError> {
        self.build_with_tables(ctx, &Tables::default())
    }

    /// Parses every path and template, resolves lookups' tables in `tables`, and reads the
    /// host name when `add_host` is set (a system call, not IO).
    pub fn build_with_tables(
        &self,
        _ctx: &TransformContext,
        tables: &Tables,
    ) -> Result<Enrich, FieldError> {
        let mut set = Vec::with_capacity(self.set.0.len());
        for (name, template) in self.set.iter() {
            let field = || format!("set.{name}");
            let path = FieldPath::parse(name).map_err(|m| FieldError::new(field(), m))?;
            let template =
                Template::parse(template).map_err(|e| FieldError::new(field(), e.to_string()))?;
            let value = if let Some(source) = template.single_field() {
                SetValue::Copy(source.clone())
            } else if template.is_static() {
                SetValue::Static(Value::from(template.source()))
            } else {
                SetValue::Render(template)
            };
            set.push((path, value));
        }
        if self.add_host {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            if !host.is_empty() {
                set.push((
                    FieldPath::parse(fields::HOST).map_err(|m| FieldError::new("add_host", m))?,
                    SetValue::HostIfAbsent(Value::from(host)),
                ));
            }
        }
        let mut rename = Vec::with_capacity(self.rename.0.len());
        for (old, new) in self.rename.iter() {
            let field = || format!("rename.{old}");
            let from = FieldPath::parse(old).map_err(|m| FieldError::new(field(), m))?;
            let to = FieldPath::parse(new).map_err(|m| FieldError::new(field(), m))?;
            rename.push((from, to));
        }
        let remove = self
            .remove
            .iter()
            .enumerate()
            .map(|(i, name)| {
                FieldPath::parse(name).map_err(|m| FieldError::new(format!("remove[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lookups = self
            .lookups
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.build(tables)
                    .map_err(|e| FieldError::new(format!("lookups[{i}].{}", e.field), e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Enrich {
            set,
            lookups,
            rename,
            remove,
            overwrite: self.overwrite,
            scratch: String::new(),
        })
    }
}

impl LookupConfig {
    fn build(&self, tables: &Tables) -> Result<Lookup, FieldError> {
        let handle = tables.get(&self.table).cloned().ok_or_else(|| {
            let ids = tables.ids();
            let known = if ids.is_empty() {
                "none is defined; add [enrichment_tables.ID]".to_string()
            } else {
                format!("expected one of: {}", ids.join(", "))
            };
            FieldError::new(
                "table",
                format!("no enrichment table `{}` ({known})", self.table),
            )
        })?;
        let key = Template::parse(&self.key).map_err(|e| FieldError::new("key", e.to_string()))?;
        let into = FieldPath::parse(&self.into).map_err(|m| FieldError::new("into", m))?;
        let cache_size = NonZeroUsize::new(self.cache_size)
            .filter(|n| n.get() <= MAX_CACHE_SIZE)
            .ok_or_else(|| {
                FieldError::new(
                    "cache_size",
                    format!("must be between 1 and {MAX_CACHE_SIZE}"),
                )
            })?;
        Ok(Lookup {
            generation: handle.generation(),
            handle,
            key,
            into,
            cache: LruCache::new(cache_size),
        })
    }
}

/// One lookup, with its cache of answers for the table's current generation.
struct Lookup {
    handle: TableHandle,
    key: Template,
    into: FieldPath,
    cache: LruCache<Box<str>, Option<Record>>,
    generation: u64,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup")
            .field("table", &self.handle.id())
            .field("key", &self.key.source())
            .field("into", &self.into.as_str())
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Lookup {
    fn find(&mut self, key: &str) -> Option<Record> {
        let generation = self.handle.generation();
        if generation != self.generation {
            self.cache.clear();
            self.generation = generation;
        }
        if let Some(answer) = self.cache.get(key) {
            return answer.clone();
        }
        let answer = self.handle.get(key);
        if key.len() <= MAX_CACHED_KEY_BYTES {
            self.cache.put(key.into(), answer.clone());
        }
        answer
    }
}

/// The running `enrich` transform.
#[derive(Debug)]
pub struct Enrich {
    set: Vec<(FieldPath, SetValue)>,
    lookups: Vec<Lookup>,
    rename: Vec<(FieldPath, FieldPath)>,
    remove: Vec<FieldPath>,
    overwrite: bool,
    /// Reused buffer for rendering templates.
    scratch: String,
}

#[derive(Debug)]
enum SetValue {
    /// A template without placeholders, rendered once; setting it clones a `Bytes` handle.
    Static(Value),
    /// A template that is one placeholder: copy the field, keeping its type.
    Copy(FieldPath),
    Render(Template),
    /// `add_host`: set only when absent, whatever `overwrite` says.
    HostIfAbsent(Value),
}

impl FunctionTransform for Enrich {
    fn transform(&mut self, mut event: Event, out: &mut Outputs) {
        for (path, value) in &self.set {
            let overwrite = self.overwrite && !matches!(value, SetValue::HostIfAbsent(_));
            if !overwrite && path.get(&event.fields).is_some() {
                continue;
            }
            let value = match value {
                SetValue::Static(v) | SetValue::HostIfAbsent(v) => v.clone(),
                SetValue::Copy(source) => match source.get(&event.fields) {
                    Some(v) => v.clone(),
                    None => continue,
                },
                SetValue::Render(template) => {
                    self.scratch.clear();
                    template.render(&event, &mut self.scratch);
                    Value::from(self.scratch.as_str())
                }
            };
            insert_path(&mut event.fields, path, value, overwrite);
        }
        for lookup in &mut self.lookups {
            self.scratch.clear();
            lookup.key.render(&event, &mut self.scratch);
            if self.scratch.is_empty() {
                continue;
            }
            if let Some(record) = lookup.find(&self.scratch) {
                let value = Value::Object(Map::clone(&record));
                insert_path(&mut event.fields, &lookup.into, value, self.overwrite);
            }
        }
        for (from, to) in &self.rename {
            if let Some(value) = remove_path(&mut event.fields, from) {
                insert_path(&mut event.fields, to, value, true);
            }
        }
        for path in &self.remove {
            remove_path(&mut event.fields, path);
        }
        out.push(event);
    }
}

/// Sets `path` to `value`, resolving it as lookups do: an existing top-level key spelled
/// as the whole dotted path first, else nested objects, created where missing. Without
/// `overwrite` nothing that exists is replaced, including a non-object in the way.
fn insert_path(map: &mut Map, path: &FieldPath, value: Value, overwrite: bool) {
    if let Some(exact) = path.exact_key() {
        if let Some(slot) = map.get_mut(exact) {
            if overwrite {
                *slot = value;
            }
            return;
        }
    }
    insert_segments(map, path.segments(), value, overwrite);
}

fn insert_segments(
    map: &mut Map,
    segments: &[compact_str::CompactString],
    value: Value,
    overwrite: bool,
) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        if overwrite || !map.contains_key(first) {
            map.insert(first.as_str(), value);
        }
        return;
    }
    match map.get_mut(first) {
        Some(Value::Object(child)) => insert_segments(child, rest, value, overwrite),
        Some(_) if !overwrite => {}
        // A scalar where an object is needed: the user asked for the nested field, so the
        // scalar gives way.
        Some(slot) => {
            let mut child = Map::new();
            insert_segments(&mut child, rest, value, overwrite);
            *slot = Value::Object(child);
        }
        None => {
            let mut child = Map::new();
            insert_segments(&mut child, rest, value, overwrite);
            map.insert(first.as_str(), Value::Object(child));
        }
    }
}

/// Removes and returns the field at `path`, resolved as lookups do.
fn remove_path(map: &mut Map, path: &FieldPath) -> Option<Value> {
    if let Some(exact) = path.exact_key() {
        if let Some(value) = map.remove(exact) {
            return Some(value);
        }
    }
    let (last, parents) = path.segments().split_last()?;
    let mut current = map;
    for segment in parents {
        match current.get_mut(segment)? {
            Value::Object(child) => current = child,
            _ => return None,
        }
    }
    current.remove(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::test_event as event;

    fn build(toml_src: &str) -> Result<Enrich, FieldError> {
        let config: EnrichConfig =
            toml::from_str(toml_src).unwrap_or_else(|e| panic!("bad test config: {e}"));
        config.build(&TransformContext {
            id: "enrich".into(),
        })
    }

    /// Runs one event through `config` and returns the output as JSON text.
    fn run(config: &str, input: &str) -> String {
        let mut enrich = build(config).unwrap_or_else(|e| panic!("{config}: {e}"));
        let mut out = Outputs::new(0);
        enrich.transform(event(input), &mut out);
        assert_eq!(out.default_output().len(), 1);
        serde_json::to_string(&out.default_output()[0].fields).unwrap_or_default()
    }

    #[test]
    fn set_rename_remove() {
        let cases = [
            // set: literals and templates, typed copies, nested paths.
            (
                r#"set = { env = "prod" }"#,
                r#"{"a":1}"#,
                r#"{"a":1,"env":"prod"}"#,
            ),
            (
                r#"set = { svc = "{{ app }}-{{ n }}" }"#,
                r#"{"app":"web","n":2}"#,
                r#"{"app":"web","n":2,"svc":"web-2"}"#,
            ),
            (r#"set = { svc = "{{ app }}!" }"#, "{}", r#"{"svc":"!"}"#),
            (
                r#"set = { code = "{{ status }}" }"#,
                r#"{"status":503}"#,
                r#"{"status":503,"code":503}"#,
            ),
            (r#"set = { code = "{{ status }}" }"#, "{}", "{}"),
            (
                r#"set = { "http.status" = "1" }"#,
                "{}",
                r#"{"http":{"status":"1"}}"#,
            ),
            (
                r#"set = { "http.status" = "1" }"#,
                r#"{"http":{"method":"GET"}}"#,
                r#"{"http":{"method":"GET","status":"1"}}"#,
            ),
            (
                r#"set = { "http.status" = "1" }"#,
                r#"{"http.status":0}"#,
                r#"{"http.status":"1"}"#,
            ),
            (
                r#"set = { "http.status" = "1" }"#,
                r#"{"http":"x"}"#,
                r#"{"http":{"status":"1"}}"#,
            ),
            (r#"set = { '."a.b"' = "1" }"#, "{}", r#"{"a.b":"1"}"#),
            // Later entries see earlier ones.
            (
                r#"set = { a = "x", b = "{{ a }}y" }"#,
                "{}",
                r#"{"a":"x","b":"xy"}"#,
            ),
            // overwrite.
            (
                r#"set = { env = "prod" }"#,
                r#"{"env":"dev"}"#,
                r#"{"env":"prod"}"#,
            ),
            (
                "set = { env = \"prod\", new = \"1\" }\noverwrite = false",
                r#"{"env":"dev"}"#,
                r#"{"env":"dev","new":"1"}"#,
            ),
            (
                "set = { \"http.status\" = \"1\" }\noverwrite = false",
                r#"{"http":"x"}"#,
                r#"{"http":"x"}"#,
            ),
            // rename: in order, replacing the target, skipping missing sources.
            (
                r#"rename = { msg = "message" }"#,
                r#"{"msg":"hi","a":1}"#,
                r#"{"a":1,"message":"hi"}"#,
            ),
            (
                r#"rename = { msg = "message" }"#,
                r#"{"msg":"hi","message":"old"}"#,
                r#"{"message":"hi"}"#,
            ),
            (
                r#"rename = { msg = "message" }"#,
                r#"{"a":1}"#,
                r#"{"a":1}"#,
            ),
            (
                r#"rename = { a = "b", b = "c" }"#,
                r#"{"a":1}"#,
                r#"{"c":1}"#,
            ),
            (
                r#"rename = { "http.code" = "status" }"#,
                r#"{"http":{"code":200,"m":"GET"}}"#,
                r#"{"http":{"m":"GET"},"status":200}"#,
            ),
            // remove.
            (
                r#"remove = ["password", "headers.authorization", "missing"]"#,
                r#"{"password":"x","headers":{"authorization":"y","accept":"*/*"},"a":1}"#,
                r#"{"headers":{"accept":"*/*"},"a":1}"#,
            ),
            (
                r#"remove = ["a.b"]"#,
                r#"{"a":"scalar"}"#,
                r#"{"a":"scalar"}"#,
            ),
            // Order: set, then rename, then remove.
            (
                "set = { tmp = \"{{ a }}\" }\nrename = { tmp = \"b\" }\nremove = [\"a\"]",
                r#"{"a":1}"#,
                r#"{"b":1}"#,
            ),
            // Nothing configured: the event passes unchanged.
            ("", r#"{"a":1}"#, r#"{"a":1}"#),
        ];
        for (config, input, expected) in cases {
            let got: serde_json::Value =
                serde_json::from_str(&run(config, input)).unwrap_or_default();
            let want: serde_json::Value = serde_json::from_str(expected).unwrap_or_default();
            assert_eq!(got, want, "{config} on {input}");
        }
    }

    #[test]
    fn add_host_fills_only_an_absent_host() {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let cases = [
            (
                "add_host = true",
                "{}".to_string(),
                format!(r#"{{"host":"{host}"}}"#),
            ),
            (
                "add_host = true",
                r#"{"host":"a"}"#.into(),
                r#"{"host":"a"}"#.into(),
            ),
            ("add_host = false", "{}".into(), "{}".into()),
            // An explicit `set` wins over add_host.
            (
                "add_host = true\nset = { host = \"b\" }",
                "{}".into(),
                r#"{"host":"b"}"#.into(),
            ),
        ];
        for (config, input, expected) in cases {
            let got: serde_json::Value =
                serde_json::from_str(&run(config, &input)).unwrap_or_default();
            let want: serde_json::Value = serde_json::from_str(&expected).unwrap_or_default();
            assert_eq!(got, want, "{config} on {input}");
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (
                r#"set = { app = "{{ app" }"#,
                FieldError::new("set.app", "at column 1: unclosed `{{` (expected `}}`)"),
            ),
            (
                r#"set = { "a b" = "x" }"#,
                FieldError::new("set.a b", "invalid field path `a b`: unexpected ` `"),
            ),
            (
                r#"rename = { old = "" }"#,
                FieldError::new("rename.old", "invalid field path ``: expected a field name"),
            ),
            (
                r#"remove = ["ok", "a..b"]"#,
                FieldError::new(
                    "remove[1]",
                    "invalid field path `a..b`: expected a field name after `.`",
                ),
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(build(config).err(), Some(expected), "{config}");
        }
        for bad in [
            "set = { a = 1 }",
            "remove = \"a\"",
            "overwrite = true\nextra = 1",
        ] {
            assert!(toml::from_str::<EnrichConfig>(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
#[path = "enrich_lookup_tests.rs"]
mod lookup_tests;
