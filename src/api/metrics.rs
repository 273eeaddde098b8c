//! Renders the telemetry registry in the Prometheus text exposition format (0.0.4).

use std::fmt::Write;

use crate::telemetry;

/// Every registered counter as `sluice_<name>{labels} value`, grouped by name with one
/// `# TYPE` line each, names and label sets in a stable order.
pub fn render_prometheus() -> String {
    let mut snapshot = telemetry::snapshot();
    snapshot.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut out = String::with_capacity(4096 + snapshot.len() * 96);
    let mut current = "";
    for (name, labels, value) in &snapshot {
        if *name != current {
            current = name;
            let _ = writeln!(out, "# HELP sluice_{name} {}", help(name));
            let _ = writeln!(out, "# TYPE sluice_{name} counter");
        }
        write_sample(&mut out, name, labels, value);
    }
    for (name, labels, value) in &telemetry::gauge_snapshot() {
        if *name != current {
            current = name;
            let _ = writeln!(out, "# HELP sluice_{name} {}", help(name));
            let _ = writeln!(out, "# TYPE sluice_{name} gauge");
        }
        write_sample(&mut out, name, labels, value);
    }
    out
}

fn write_sample(
    out: &mut String,
    name: &str,
    labels: &[(&'static str, String)],
    value: &dyn std::fmt::Display,
) {
    let _ = write!(out, "sluice_{name}");
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, val)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"");
            escape_label(val, out);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// One line of help per metric, as Prometheus tooling expects.
fn help(name: &str) -> &'static str {
    match name {
        "component_received_events_total" => "Events a component received.",
        "component_received_bytes_total" => "Raw bytes a source read.",
        "component_sent_events_total" => {
            "Events a component sent on (transforms: per output) or delivered (sinks)."
        }
        "component_sent_bytes_total" => "Bytes a sink wrote.",
        "component_errors_total" => "Errors by reason: bad frames, failed writes, buffer IO.",
        "component_discarded_events_total" => "Events dropped on purpose or by policy, by reason.",
        "component_dead_lettered_events_total" => {
            "Events a sink gave up on and sent to its dead_letter output."
        }
        "component_connections_accepted_total" => "Connections a network source accepted.",
        "component_throttle_overflow_events_total" => {
            "Events of new keys put in a throttle's shared overflow bucket."
        }
        "component_http_responses_total" => "HTTP responses of an http source, by status code.",
        "component_rate_limited_requests_total" => {
            "Requests refused with 429 because their app was over its rate limit."
        }
        "component_received_events_by_app_total" => "Events an http source accepted, per app.",
        "buffer_queued_bytes_total" => {
            "Estimated bytes of events ever queued in front of a component."
        }
        "buffer_written_events_total" => "Events appended to a disk buffer.",
        "buffer_damaged_records_total" => "Damaged disk-buffer records detected and skipped.",
        "kafka_consumer_lag_messages" => {
            "Messages a kafka source's partition is behind the broker's high watermark."
        }
        "kafka_commits_total" => "Offset commits a kafka source issued (ok) or saw fail (failed).",
        "kafka_committed_messages_total" => {
            "Messages whose offsets a kafka source committed (all sinks acknowledged them)."
        }
        _ => "A sluice metric.",
    }
}

/// Label values escape backslash, double quote and newline, as the format requires.
fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        telemetry::counter(
            "metrics_test_events_total",
            &[("component_id", "a\"b\\c\nd")],
        )
        .inc(7);
        let text = render_prometheus();
        assert!(
            text.contains("# TYPE sluice_metrics_test_events_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_metrics_test_events_total{component_id=\"a\\\"b\\\\c\\nd\"} 7\n"),
            "{text}"
        );
    }
}
