//! Per-app tokens and rate limits for the `http` and `tcp` sources.
//!
//! Logplex's model: a token names an app. An HTTP request presents its token as
//! `Authorization: Bearer TOKEN`, as the user of HTTP basic auth (drain URLs such as
//! `https://TOKEN@router/v1/logs`, since Heroku drains cannot set headers), or as the
//! `token` query parameter. The token's app is written into every event's `app` field, so a
//! client cannot log under another app's name. On TCP, each event carries its token
//! (see `stream_auth.rs`).
//!
//! Rate limits are token buckets per app (events/s and bytes/s, one second of burst).
//! A batch larger than a bucket still passes when the bucket is full (the bucket goes into
//! debt), so a big batch is slowed, never refused forever.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, StatusCode, Uri};
use serde::Deserialize;

use crate::field_error::{at_least_one, FieldError};
use crate::telemetry::{self, Counter};

/// `rate_limit = { events_per_sec = 1000, bytes_per_sec = 1048576 }` on an `http` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub events_per_sec: Option<u64>,
    pub bytes_per_sec: Option<u64>,
    /// How many apps get a bucket of their own. Without tokens the app is whatever the
    /// sender writes, so beyond this apps share one overflow bucket (memory stays bounded
    /// and rotating the name gains nothing).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_max_keys() -> usize {
    10_000
}

/// Distinct apps that get their own series in per-app metrics; the rest are `_other`.
pub(crate) const MAX_APP_SERIES: usize = 200;

impl RateLimitConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        // An unset limit is no limit, not a zero one.
        at_least_one(&[
            (
                "rate_limit.events_per_sec",
                self.events_per_sec.unwrap_or(1),
            ),
            ("rate_limit.bytes_per_sec", self.bytes_per_sec.unwrap_or(1)),
            ("rate_limit.max_keys", self.max_keys as u64),
        ])?;
        if self.events_per_sec.is_none() && self.bytes_per_sec.is_none() {
            return Err(FieldError::new(
                "rate_limit",
                "set events_per_sec, bytes_per_sec or both",
            ));
        }
        Ok(())
    }
}

/// Checks `tokens = { ... }` and `rate_limit` of a source's config.
pub(crate) fn validate_tokens(
    tokens: &BTreeMap<String, String>,
    rate_limit: Option<&RateLimitConfig>,
) -> Result<(), FieldError> {
    if let Some((token, _)) = tokens.iter().find(|(t, a)| t.is_empty() || a.is_empty()) {
        return Err(FieldError::new(
            format!("tokens.{token}"),
            "tokens and app names must not be empty",
        ));
    }
    match rate_limit {
        Some(limit) => limit.validate(),
        None => Ok(()),
    }
}

/// The inline tokens plus those of `tokens_file`; a missing or malformed file stops the
/// start, like a port conflict.
pub(crate) fn load_tokens(
    inline: &BTreeMap<String, String>,
    tokens_file: Option<&PathBuf>,
) -> Result<Tokens, super::SourceError> {
    let from_file = match tokens_file {
        Some(path) => load_tokens_file(path).map_err(|message| {
            super::SourceError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                message,
            ))
        })?,
        None => Vec::new(),
    };
    Ok(Tokens::new(inline, from_file))
}

/// Reads `token app` lines (blank lines and `#` comments ignored) from a tokens file.
pub fn load_tokens_file(path: &PathBuf) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read tokens file {}: {e}", path.display()))?;
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(token), Some(app), None) => tokens.push((token.to_string(), app.to_string())),
            _ => {
                return Err(format!(
                    "{} line {}: expected `TOKEN APP`",
                    path.display(),
                    i + 1
                ))
            }
        }
    }
    Ok(tokens)
}

/// Maps tokens to apps. Empty means the source is open (no token required).
pub(crate) struct Tokens {
    apps: HashMap<String, Arc<str>>,
}

/// Why a request was refused before its body was read.
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: &'static str,
}

impl Tokens {
    pub(crate) fn new(inline: &BTreeMap<String, String>, from_file: Vec<(String, String)>) -> Self {
        let apps = inline
            .iter()
            .map(|(t, a)| (t.clone(), a.clone()))
            .chain(from_file)
            .map(|(t, a)| (t, Arc::from(a.as_str())))
            .collect();
        Self { apps }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// The app `token` names, if any.
    pub(crate) fn app_of(&self, token: &str) -> Option<&Arc<str>> {
        self.apps.get(token)
    }

    /// The app of the request's token; `Ok(None)` when no tokens are configured.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Option<Arc<str>>, Refusal> {
        if self.apps.is_empty() {
            return Ok(None);
        }
        let Some(token) = presented_token(headers, uri) else {
            return Err(Refusal {
                status: StatusCode::UNAUTHORIZED,
                message:
                    "a token is required (Authorization: Bearer TOKEN, basic-auth user, or ?token=)",
            });
        };
        match self.apps.get(&token) {
            Some(app) => Ok(Some(app.clone())),
            None => Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: "unknown token",
            }),
        }
    }
}

fn presented_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return Some(token.trim().to_string());
        }
        if let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            // Drain URLs put the token in the user part; some clients put it in the
            // password with an empty user.
            let (user, password) = text.split_once(':').unwrap_or((&text, ""));
            let token = if user.is_empty() { password } else { user };
            return (!token.is_empty()).then(|| token.to_string());
        }
    }
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

struct Bucket {
    events: f64,
    bytes: f64,
    last: Instant,
}

struct Buckets {
    per_app: lru::LruCache<Arc<str>, Bucket>,
    /// Shared by apps that arrive while every per-app bucket is in use.
    overflow: Bucket,
}

/// Token buckets per app, at most `max_keys` of them (least recently used first to go, and
/// only once its bucket has refilled, since a full bucket is what a new app gets anyway).
pub(crate) struct RateLimiter {
    events_per_sec: Option<f64>,
    bytes_per_sec: Option<f64>,
    buckets: Mutex<Buckets>,
    overflowed: Counter,
}

impl RateLimiter {
    pub(crate) fn new(config: &RateLimitConfig, component_id: &str) -> Self {
        let limiter = Self {
            events_per_sec: config.events_per_sec.map(|v| v as f64),
            bytes_per_sec: config.bytes_per_sec.map(|v| v as f64),
            buckets: Mutex::new(Buckets {
                per_app: lru::LruCache::new(
                    std::num::NonZeroUsize::new(config.max_keys)
                        .unwrap_or(std::num::NonZeroUsize::MIN),
                ),
                overflow: Bucket {
                    events: 0.0,
                    bytes: 0.0,
                    last: Instant::now(),
                },
            }),
            overflowed: telemetry::counter(
                "component_rate_limit_overflow_total",
                &[("component_id", component_id)],
            ),
        };
        {
            let mut buckets = limiter.buckets.lock().unwrap_or_else(|e| e.into_inner());
            buckets.overflow = limiter.full_bucket(Instant::now());
        }
        limiter
    }

    fn full_bucket(&self, now: Instant) -> Bucket {
        Bucket {
            events: self.events_per_sec.unwrap_or(0.0),
            bytes: self.bytes_per_sec.unwrap_or(0.0),
            last: now,
        }
    }

    /// Whether `bucket` has refilled by `now`.
    fn is_full(&self, bucket: &Bucket, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        let full =
            |level: f64, rate: Option<f64>| rate.is_none_or(|rate| level + elapsed * rate >= rate);
        full(bucket.events, self.events_per_sec) && full(bucket.bytes, self.bytes_per_sec)
    }

    /// Takes `events` and `bytes` from `app`'s buckets, or says how many seconds to wait.
    pub(crate) fn check(
        &self,
        app: &Arc<str>,
        events: u64,
        bytes: u64,
        now: Instant,
    ) -> Result<(), u64> {
        let mut guard = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let buckets = &mut *guard;
        if !buckets.per_app.contains(app) {
            let room = buckets.per_app.len() < buckets.per_app.cap().get()
                || buckets
                    .per_app
                    .peek_lru()
                    .is_some_and(|(_, oldest)| self.is_full(oldest, now));
            if room {
                let full = self.full_bucket(now);
                buckets.per_app.push(app.clone(), full);
            } else {
                self.overflowed.inc(events);
                return self.take(&mut buckets.overflow, events, bytes, now);
            }
        }
        let bucket = buckets
            .per_app
            .get_mut(app)
            .expect("the app's bucket was just found or made");
        self.take(bucket, events, bytes, now)
    }

    fn take(&self, bucket: &mut Bucket, events: u64, bytes: u64, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.last = now;
        let mut wait: f64 = 0.0;
        if let Some(rate) = self.events_per_sec {
            bucket.events = (bucket.events + elapsed * rate).min(rate);
            let need = (events as f64).min(rate);
            if bucket.events < need {
                wait = wait.max((need - bucket.events) / rate);
            }
        }
        if let Some(rate) = self.bytes_per_sec {
            bucket.bytes = (bucket.bytes + elapsed * rate).min(rate);
            let need = (bytes as f64).min(rate);
            if bucket.bytes < need {
                wait = wait.max((need - bucket.bytes) / rate);
            }
        }
        if wait > 0.0 {
            return Err(wait.ceil().max(1.0) as u64);
        }
        if self.events_per_sec.is_some() {
            bucket.events -= events as f64;
        }
        if self.bytes_per_sec.is_some() {
            bucket.bytes -= bytes as f64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_from_every_place_a_client_can_put_them() {
        let mut inline = BTreeMap::new();
        inline.insert("t0k3n".to_string(), "web".to_string());
        let tokens = Tokens::new(&inline, vec![("other".into(), "worker".into())]);
        let basic_user = base64::engine::general_purpose::STANDARD.encode("t0k3n:");
        let basic_password = base64::engine::general_purpose::STANDARD.encode(":other");
        let cases: [(Option<String>, &str, Result<&str, StatusCode>); 6] = [
            (Some("Bearer t0k3n".into()), "/v1/logs", Ok("web")),
            (Some(format!("Basic {basic_user}")), "/v1/logs", Ok("web")),
            (
                Some(format!("Basic {basic_password}")),
                "/v1/logs",
                Ok("worker"),
            ),
            (None, "/v1/logs?x=1&token=other", Ok("worker")),
            (None, "/v1/logs", Err(StatusCode::UNAUTHORIZED)),
            (
                Some("Bearer nope".into()),
                "/v1/logs",
                Err(StatusCode::FORBIDDEN),
            ),
        ];
        for (auth, uri, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(a) = &auth {
                headers.insert(AUTHORIZATION, a.parse().unwrap());
            }
            let got = tokens
                .authenticate(&headers, &uri.parse().unwrap())
                .map(|app| app.map(|a| a.to_string()).unwrap_or_default())
                .map_err(|r| r.status);
            assert_eq!(got.as_deref().map_err(|s| *s), expected, "{auth:?} {uri}");
        }
    }

    #[test]
    fn buckets_refill_and_big_batches_pass_when_full() {
        let limiter = RateLimiter::new(
            &RateLimitConfig {
                events_per_sec: Some(10),
                bytes_per_sec: None,
                max_keys: 10,
            },
            "limiter_refill",
        );
        let app: Arc<str> = Arc::from("web");
        let t0 = Instant::now();
        assert!(limiter.check(&app, 6, 0, t0).is_ok());
        assert_eq!(limiter.check(&app, 6, 0, t0), Err(1));
        assert!(limiter
            .check(&app, 6, 0, t0 + Duration::from_millis(200))
            .is_ok());
        // A batch above the whole bucket passes once the bucket is full, leaving a debt.
        assert!(limiter
            .check(&app, 50, 0, t0 + Duration::from_secs(5))
            .is_ok());
        assert!(limiter
            .check(&app, 1, 0, t0 + Duration::from_secs(6))
            .is_err());
        let other: Arc<str> = Arc::from("worker");
        assert!(
            limiter.check(&other, 10, 0, t0).is_ok(),
            "apps have separate buckets"
        );
    }

    /// Rotating the app name gains nothing: beyond `max_keys` busy apps, new names share one
    /// bucket; an app whose bucket has refilled makes room for a new one.
    #[test]
    fn apps_beyond_max_keys_share_one_bucket() {
        let limiter = RateLimiter::new(
            &RateLimitConfig {
                events_per_sec: Some(10),
                bytes_per_sec: None,
                max_keys: 2,
            },
            "limiter_overflow",
        );
        let t0 = Instant::now();
        let app = |name: &str| -> Arc<str> { Arc::from(name) };
        assert!(limiter.check(&app("a"), 10, 0, t0).is_ok());
        assert!(limiter.check(&app("b"), 10, 0, t0).is_ok());
        // Both buckets are empty and in use: the next names share the overflow bucket.
        assert!(limiter.check(&app("c"), 10, 0, t0).is_ok());
        assert_eq!(limiter.check(&app("d"), 1, 0, t0), Err(1));
        for i in 0..1000 {
            assert!(limiter.check(&app(&format!("x{i}")), 1, 0, t0).is_err());
        }
        assert_eq!(limiter.buckets.lock().unwrap().per_app.len(), 2);
        assert_eq!(
            telemetry::counter_value(
                "component_rate_limit_overflow_total",
                &[("component_id", "limiter_overflow")]
            ),
            1011
        );
        // A second later `a` has refilled, so a new app may take its place.
        let later = t0 + Duration::from_secs(1);
        assert!(limiter.check(&app("e"), 10, 0, later).is_ok());
        assert!(limiter.buckets.lock().unwrap().per_app.contains("e"));
    }
}
