//! Per-app tokens and rate limits on stream sources (`tcp`), where there are no request
//! headers: each event carries its own token.
//!
//! Where the token goes follows what senders can already do:
//! - syslog: a structured-data element whose ID is `TOKEN@PEN` (the convention of hosted
//!   syslog services, which rsyslog and syslog-ng templates emit), e.g.
//!   `<14>1 2026-11-26T10:00:00Z host app - - [s3cr3t@41058] message`;
//! - JSON or logfmt: a top-level `token` field.
//!
//! The token is removed from the event and its app written into `app`, so a sender cannot
//! log under another app's name. An event without a known token is counted and sent to the
//! source's dead letters (reason `unauthorized`). Over its rate limit, an app is slowed
//! rather than refused: the connection stops being read until the bucket refills, and TCP
//! flow control pushes back on the sender. Those waits are counted per app.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::auth::{RateLimiter, Tokens, MAX_APP_SERIES};
use super::{dead_letter, Decoded};
use crate::event::{fields, Event, Map, Value};
use crate::telemetry::{self, BoundedLabels, Counter, LogLimiter};

/// Structured data, as the syslog decoder stores it.
const SD_FIELD: &str = "sd";
/// The token field of JSON and logfmt events.
const TOKEN_FIELD: &str = "token";

/// Shared by every connection of one source.
pub(crate) struct StreamAuth {
    source: Arc<str>,
    tokens: Tokens,
    limiter: Option<RateLimiter>,
    unauthorized: Counter,
    /// Per-app series: without tokens the app is the sender's choice.
    app_labels: BoundedLabels,
}

impl StreamAuth {
    /// `None` when there is nothing to check (no tokens, no rate limit).
    pub(crate) fn new(
        source: Arc<str>,
        tokens: Tokens,
        limiter: Option<RateLimiter>,
    ) -> Option<Self> {
        if tokens.is_empty() && limiter.is_none() {
            return None;
        }
        let unauthorized = telemetry::counter(
            "component_errors_total",
            &[("component_id", &source), ("reason", "unauthorized")],
        );
        Some(Self {
            source,
            tokens,
            limiter,
            unauthorized,
            app_labels: BoundedLabels::new(MAX_APP_SERIES),
        })
    }

    /// Stamps each event's app from its token, moves events without a known token to the
    /// dead letters, then waits while an app of this read is over its rate limit (until
    /// `shutdown`).
    pub(crate) async fn admit(
        &self,
        decoded: &mut Decoded,
        log: &mut LogLimiter,
        shutdown: &CancellationToken,
    ) {
        // (app, events, bytes) of this read: few apps per connection, so a short vector.
        let mut per_app: Vec<(Arc<str>, u64, u64)> = Vec::new();
        let mut admitted = Vec::with_capacity(decoded.events.len());
        for mut event in decoded.events.drain(..) {
            let token_app = if self.tokens.is_empty() {
                None
            } else {
                match take_token(&self.tokens, &mut event.fields) {
                    Ok(app) => {
                        event.fields.insert(fields::APP, Value::from(&*app));
                        Some(app)
                    }
                    Err(reason) => {
                        self.unauthorized.inc(1);
                        if let Some(suppressed) = log.check() {
                            tracing::warn!(component_id = %self.source, peer = ?event.meta.peer, reason, suppressed, "event refused");
                        }
                        decoded.dead.push(unauthorized(event, reason, &self.source));
                        continue;
                    }
                }
            };
            // Without tokens the rate-limit key is the event's own `app`; an `Arc` is made
            // once per app and read, not per event.
            let app: &str = match &token_app {
                Some(app) => app,
                None => event
                    .fields
                    .get(fields::APP)
                    .and_then(Value::as_str)
                    .unwrap_or("_anonymous"),
            };
            let bytes = event.fields.size_estimate() as u64;
            match per_app.iter_mut().find(|(a, _, _)| &**a == app) {
                Some(entry) => {
                    entry.1 += 1;
                    entry.2 += bytes;
                }
                None => {
                    let app = token_app.clone().unwrap_or_else(|| Arc::from(app));
                    per_app.push((app, 1, bytes));
                }
            }
            admitted.push(event);
        }
        decoded.events = admitted;
        for (app, events, bytes) in &per_app {
            let label = self.app_labels.label(app);
            telemetry::counter(
                "component_received_events_by_app_total",
                &[("component_id", &self.source), ("app", label)],
            )
            .inc(*events);
            let Some(limiter) = &self.limiter else {
                continue;
            };
            while let Err(wait_secs) = limiter.check(app, *events, *bytes, Instant::now()) {
                telemetry::counter(
                    "component_rate_limited_events_total",
                    &[("component_id", &self.source), ("app", label)],
                )
                .inc(*events);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(wait_secs)) => {}
                }
            }
        }
    }
}

/// The app of the event's token, removing the token from the event.
fn take_token(tokens: &Tokens, fields: &mut Map) -> Result<Arc<str>, &'static str> {
    if let Some(value) = fields.get(TOKEN_FIELD) {
        let app = value
            .as_str()
            .and_then(|token| tokens.app_of(token))
            .cloned();
        fields.remove(TOKEN_FIELD);
        return app.ok_or("unknown token");
    }
    let Some(Value::Object(sd)) = fields.get_mut(SD_FIELD) else {
        return Err("missing token (a [TOKEN@PEN] structured-data element or a `token` field)");
    };
    let mut found = None;
    for id in sd.keys() {
        let Some((name, pen)) = id.split_once('@') else {
            continue;
        };
        if pen.is_empty() || !pen.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match tokens.app_of(name) {
            Some(app) => {
                found = Some((id.to_string(), app.clone()));
                break;
            }
            // Looks like a token element but is not one we know: refuse rather than
            // accept the event as some other app.
            None => found = found.or(Some((id.to_string(), Arc::from("")))),
        }
    }
    let Some((id, app)) = found else {
        return Err("missing token (a [TOKEN@PEN] structured-data element or a `token` field)");
    };
    sd.remove(&id);
    if sd.is_empty() {
        fields.remove(SD_FIELD);
    }
    if app.is_empty() {
        Err("unknown token")
    } else {
        Ok(app)
    }
}

/// The dead letter of a refused event: its fields plus why.
fn unauthorized(mut event: Event, reason: &str, source: &str) -> Event {
    let fields = &mut event.fields;
    fields.insert(dead_letter::REASON, Value::from(reason.to_string()));
    fields.insert(dead_letter::REASON_CODE, Value::from("unauthorized"));
    fields.insert(dead_letter::SOURCE, Value::from(source));
    if let Some(peer) = event.meta.peer {
        fields.insert(dead_letter::PEER, Value::from(peer.to_string()));
    }
    event
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn tokens() -> Tokens {
        let mut inline = BTreeMap::new();
        inline.insert("s3cr3t".to_string(), "billing".to_string());
        Tokens::new(&inline, Vec::new())
    }

    fn sd(ids: &[&str]) -> Map {
        let mut sd = Map::new();
        for id in ids {
            sd.insert(*id, Value::Object(Map::new()));
        }
        let mut fields = Map::new();
        fields.insert(SD_FIELD, Value::Object(sd));
        fields.insert(fields::MESSAGE, Value::from("hello"));
        fields
    }

    #[test]
    fn tokens_from_structured_data_or_a_field() {
        let tokens = tokens();
        let mut json = Map::new();
        json.insert(TOKEN_FIELD, Value::from("s3cr3t"));
        let mut wrong_json = Map::new();
        wrong_json.insert(TOKEN_FIELD, Value::from("nope"));
        let cases: Vec<(&str, Map, Result<&str, &str>)> = vec![
            ("sd token", sd(&["s3cr3t@41058"]), Ok("billing")),
            (
                "sd token among others",
                sd(&["timeQuality", "s3cr3t@41058"]),
                Ok("billing"),
            ),
            (
                "unknown sd token",
                sd(&["guess@41058"]),
                Err("unknown token"),
            ),
            ("sd without pen", sd(&["s3cr3t"]), Err("missing token")),
            ("json token", json, Ok("billing")),
            ("wrong json token", wrong_json, Err("unknown token")),
            ("nothing", Map::new(), Err("missing token")),
        ];
        for (name, mut fields, expected) in cases {
            let got = take_token(&tokens, &mut fields);
            let accepted = got.is_ok();
            match (got, expected) {
                (Ok(app), Ok(want)) => assert_eq!(&*app, want, "{name}"),
                (Err(reason), Err(want)) => assert!(reason.starts_with(want), "{name}: {reason}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
            // A token field never stays in the event, nor does an accepted token element.
            assert!(fields.get(TOKEN_FIELD).is_none(), "{name}");
            if let (true, Some(Value::Object(sd))) = (accepted, fields.get(SD_FIELD)) {
                assert!(
                    sd.keys().all(|k| !k.starts_with("s3cr3t")),
                    "{name}: token left in sd"
                );
            }
        }
    }
}
