//! The `route` transform: sends each event to the named outputs whose condition it meets.
//!
//! ```toml
//! [transforms.by_severity]
//! type = "route"
//! inputs = ["app_logs"]
//! routes.errors = 'level >= "error"'
//! routes.slow = "duration_ms > 1000"
//!
//! [sinks.pager]
//! inputs = ["by_severity.errors"]
//! ```
//!
//! Each route is a named output `ID.NAME`. An event that meets several conditions goes to
//! each of them (cloned for all but the last, which takes the original); an event that
//! meets none goes to `ID._unmatched`. Nothing is sent to the default output `ID`.
//!
//! Named outputs are numbered in the order the config lists the routes, then
//! `_unmatched`. That order comes from the TOML document: the config loader parses with
//! toml's `preserve_order`, and [`OrderedTable`] keeps the order it is given.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::{FunctionTransform, Outputs, TransformContext};
use crate::condition::Condition;
use crate::event::Event;
use crate::field_error::FieldError;

/// The named output for events no route matched.
pub const UNMATCHED: &str = "_unmatched";

/// Configuration of the `route` transform.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Route name → condition. An event is sent to every route whose condition it meets.
    /// Names must be non-empty, contain no `.`, and not be `_unmatched`.
    pub routes: OrderedTable,
}

impl RouteConfig {
    /// The named outputs, in the order `push_named` indexes them: the routes in config
    /// order, then `_unmatched`.
    pub fn outputs(&self) -> Vec<String> {
        self.routes
            .0
            .iter()
            .map(|(name, _)| name.clone())
            .chain(std::iter::once(UNMATCHED.to_string()))
            .collect()
    }

    /// Checks the route names and compiles the conditions. Does no IO.
    pub fn build(&self, _ctx: &TransformContext) -> Result<Route, FieldError> {
        if self.routes.0.is_empty() {
            return Err(FieldError::new("routes", "at least one route is required"));
        }
        let mut conditions = Vec::with_capacity(self.routes.0.len());
        for (name, source) in &self.routes.0 {
            let problem = if name.is_empty() {
                Some("a route name must not be empty")
            } else if name.contains('.') {
                Some("a route name must not contain `.` (outputs are addressed as `ID.NAME`)")
            } else if name == UNMATCHED {
                Some("`_unmatched` is reserved for events no route matches")
            } else {
                None
            };
            if let Some(message) = problem {
                return Err(FieldError::new(format!("routes.{name}"), message));
            }
            let condition = Condition::compile(source)
                .map_err(|e| FieldError::new(format!("routes.{name}"), e.to_string()))?;
            conditions.push(condition);
        }
        Ok(Route {
            unmatched: conditions.len(),
            conditions,
        })
    }
}

/// The running `route` transform.
#[derive(Debug)]
pub struct Route {
    /// One per named output, in `outputs()` order.
    conditions: Vec<Condition>,
    /// Index of `_unmatched` among the named outputs.
    unmatched: usize,
}

impl FunctionTransform for Route {
    fn transform(&mut self, event: Event, out: &mut Outputs) {
        // Hold back the latest match so that the last one takes the original event and
        // only earlier matches pay for a clone.
        let mut pending = None;
        for (index, condition) in self.conditions.iter().enumerate() {
            if condition.check(&event) {
                if let Some(previous) = pending.replace(index) {
                    out.push_named(previous, event.clone());
                }
            }
        }
        out.push_named(pending.unwrap_or(self.unmatched), event);
    }
}

// === impl OrderedTable ===

/// A TOML table of string values that keeps its keys in the order it was given, for
/// configs where order is meaningful (route outputs, enrich steps). Duplicate keys are
/// rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderedTable(pub Vec<(String, String)>);

impl OrderedTable {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for OrderedTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;

        impl<'de> Visitor<'de> for TableVisitor {
            type Value = OrderedTable;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<OrderedTable, A::Error> {
                let mut entries: Vec<(String, String)> = Vec::new();
                while let Some((key, value)) = access.next_entry::<String, String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    entries.push((key, value));
                }
                Ok(OrderedTable(entries))
            }
        }

        deserializer.deserialize_map(TableVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::test_event as event;

    fn config(toml_src: &str) -> RouteConfig {
        toml::from_str(toml_src).unwrap_or_else(|e| panic!("bad test config: {e}"))
    }

    fn ctx() -> TransformContext {
        TransformContext {
            id: "router".into(),
        }
    }

    const CONFIG: &str = r#"
        [routes]
        slow = "duration_ms > 1000"
        errors = 'level >= "error"'
        web = 'app == "web"'
    "#;

    #[test]
    fn outputs_follow_config_order_then_unmatched() {
        assert_eq!(
            config(CONFIG).outputs(),
            ["slow", "errors", "web", "_unmatched"]
        );
        // Also through `toml::Value`, which is how the config loader hands tables over.
        let value: toml::Value = toml::from_str(CONFIG).unwrap_or_else(|e| panic!("{e}"));
        let via_value: RouteConfig = value.try_into().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(via_value.outputs(), ["slow", "errors", "web", "_unmatched"]);
    }

    #[test]
    fn events_go_to_every_matching_route_or_unmatched() {
        let config = config(CONFIG);
        let names = config.outputs();
        let mut route = config.build(&ctx()).unwrap_or_else(|e| panic!("{e}"));
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"app":"web","level":"error","duration_ms":5000}"#,
                &["slow", "errors", "web"],
            ),
            (r#"{"app":"web","level":"info"}"#, &["web"]),
            (r#"{"app":"api","level":"critical"}"#, &["errors"]),
            (r#"{"app":"api","duration_ms":"1500"}"#, &["slow"]),
            (r#"{"app":"api","level":"info"}"#, &["_unmatched"]),
            ("{}", &["_unmatched"]),
        ];
        for (json, expected) in cases {
            let mut out = Outputs::new(names.len());
            route.transform(event(json), &mut out);
            let got: Vec<&str> = (0..names.len())
                .filter(|&i| !out.named_output(i).is_empty())
                .map(|i| names[i].as_str())
                .collect();
            assert_eq!(&got, expected, "{json}");
            for (i, name) in names.iter().enumerate() {
                assert!(
                    out.named_output(i).len() <= 1,
                    "{json}: duplicate on {name}"
                );
                for e in out.named_output(i) {
                    assert_eq!(e.fields, event(json).fields, "{json}");
                }
            }
            assert!(out.default_output().is_empty(), "{json}");
        }
    }

    #[test]
    fn config_errors_name_the_route() {
        let cases = [
            (
                "routes = {}",
                FieldError::new("routes", "at least one route is required"),
            ),
            (
                r#"routes = { "" = "true" }"#,
                FieldError::new("routes.", "a route name must not be empty"),
            ),
            (
                r#"routes = { "a.b" = "true" }"#,
                FieldError::new(
                    "routes.a.b",
                    "a route name must not contain `.` (outputs are addressed as `ID.NAME`)",
                ),
            ),
            (
                r#"routes = { _unmatched = "true" }"#,
                FieldError::new(
                    "routes._unmatched",
                    "`_unmatched` is reserved for events no route matches",
                ),
            ),
            (
                r#"routes = { ok = "true", bad = "level >" }"#,
                FieldError::new("routes.bad", "at column 8: expected a value after `>`"),
            ),
        ];
        for (src, expected) in cases {
            assert_eq!(config(src).build(&ctx()).err(), Some(expected), "{src}");
        }
        for bad in [
            "",
            "routes = { a = 1 }",
            "routes = {}\nextra = true",
            "routes = []",
        ] {
            assert!(toml::from_str::<RouteConfig>(bad).is_err(), "{bad:?}");
        }
        // serde_json hands duplicate keys to the visitor; toml rejects them itself.
        assert!(
            serde_json::from_str::<RouteConfig>(r#"{"routes":{"a":"true","a":"false"}}"#).is_err()
        );
    }
}
