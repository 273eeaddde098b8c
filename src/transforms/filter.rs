//! The `filter` transform: keeps the events that satisfy a condition and drops the rest.
//!
//! ```toml
//! [transforms.errors_only]
//! type = "filter"
//! inputs = ["app_logs"]
//! condition = 'level >= "error" or status >= 500'
//! ```
//!
//! A dropped event is counted as `component_discarded_events_total{reason="filtered"}`. It
//! is not an error: dropping its last copy acknowledges it as delivered, so a source never
//! retries what a filter removed on purpose.

use serde::Deserialize;

use super::{FunctionTransform, Outputs, TransformContext};
use crate::condition::Condition;
use crate::event::Event;
use crate::field_error::FieldError;
use crate::telemetry::{self, Counter};

/// Configuration of the `filter` transform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Events that satisfy this condition pass; the rest are dropped. See
    /// `docs/conditions.md` for the language.
    pub condition: String,
}

impl FilterConfig {
    /// Compiles the condition. Does no IO.
    pub fn build(&self, ctx: &TransformContext) -> Result<Filter, FieldError> {
        let condition = Condition::compile(&self.condition)
            .map_err(|e| FieldError::new("condition", e.to_string()))?;
        Ok(Filter {
            condition,
            discarded: telemetry::counter(
                "component_discarded_events_total",
                &[("component_id", &ctx.id), ("reason", "filtered")],
            ),
        })
    }
}

/// The running `filter` transform.
#[derive(Debug)]
pub struct Filter {
    condition: Condition,
    discarded: Counter,
}

impl FunctionTransform for Filter {
    fn transform(&mut self, event: Event, out: &mut Outputs) {
        if self.condition.check(&event) {
            out.push(event);
        } else {
            self.discarded.inc(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::test_event as event;

    fn build(id: &str, toml_src: &str) -> Result<Filter, FieldError> {
        let config: FilterConfig =
            toml::from_str(toml_src).unwrap_or_else(|e| panic!("bad test config: {e}"));
        config.build(&TransformContext { id: id.into() })
    }

    #[test]
    fn keeps_matching_events_and_counts_the_rest() {
        let cases: &[(&str, &[&str], &[usize])] = &[
            (
                r#"condition = 'status >= 500'"#,
                &[
                    r#"{"status":200}"#,
                    r#"{"status":503}"#,
                    r#"{"status":"500"}"#,
                    "{}",
                ],
                &[1, 2],
            ),
            (
                r#"condition = 'level >= "warn" and not app == "noisy"'"#,
                &[
                    r#"{"level":"error","app":"web"}"#,
                    r#"{"level":"error","app":"noisy"}"#,
                    r#"{"level":"info","app":"web"}"#,
                    r#"{"level":"warn"}"#,
                ],
                &[0, 3],
            ),
            ("condition = 'true'", &["{}", r#"{"a":1}"#], &[0, 1]),
        ];
        for (n, (config, inputs, kept)) in cases.iter().enumerate() {
            let id = format!("filter_test_{n}");
            let mut filter = build(&id, config).unwrap_or_else(|e| panic!("{config}: {e}"));
            let mut out = Outputs::new(0);
            for json in *inputs {
                filter.transform(event(json), &mut out);
            }
            let expected: Vec<Event> = kept.iter().map(|&i| event(inputs[i])).collect();
            let got: Vec<_> = out.default_output().iter().map(|e| &e.fields).collect();
            let want: Vec<_> = expected.iter().map(|e| &e.fields).collect();
            assert_eq!(got, want, "{config}");
            assert_eq!(
                telemetry::counter_value(
                    "component_discarded_events_total",
                    &[("component_id", &id), ("reason", "filtered")]
                ),
                (inputs.len() - kept.len()) as u64,
                "{config}"
            );
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (
                "condition = 'status >='",
                FieldError::new("condition", "at column 10: expected a value after `>=`"),
            ),
            (
                "condition = 'message matches /(/'",
                FieldError::new("condition", "at column 17: invalid regex: unclosed group"),
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(
                build("filter_err", config).err(),
                Some(expected),
                "{config}"
            );
        }
        assert!(toml::from_str::<FilterConfig>("condition = 'true'\nextra = 1").is_err());
        assert!(toml::from_str::<FilterConfig>("").is_err());
    }
}
