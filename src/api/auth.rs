//! Who may read what on the API listener: bearer tokens with roles and an optional app
//! scope, read from `[api] auth = { tokens_file = PATH }` at start.
//!
//! The tokens file has one token per line (blank lines and `#` comments ignored):
//!
//! ```text
//! # TOKEN                              ROLES         [apps=APP,APP]
//! 4f9c0d7e2b1a8c3f6e5d4c3b2a190817     read
//! 0a1b2c3d4e5f60718293a4b5c6d7e8f9     read          apps=web,worker
//! 9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b     metrics
//! 5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a     admin
//! ```
//!
//! A token may be written as its SHA-256 (`sha256:` and 64 hex digits, from
//! `printf %s "$TOKEN" | sha256sum`), so that the file holds nothing a reader could present.
//!
//! Roles (comma-separated to give several): `read` (query, histogram, top, tail, alerts),
//! `metrics` (`/metrics`), `admin` (everything, and the administrative routes `POST /v1/reload` and `/v1/reopen`). An
//! `apps=` scope limits every search, chart, top-values list, tail and alert list the token
//! sees to events whose `app` is one of those: the server adds the filter, so a scoped
//! token cannot see another app's events whatever query it sends.
//!
//! Tokens are compared in constant time (`subtle`), against every configured token, so the
//! answer's timing says nothing about how much of a guess was right; hashed ones by their
//! digests (`ring`'s SHA-256, already in the tree for rustls).

use std::path::Path;
use std::sync::Arc;

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use serde::Deserialize;
use subtle::{Choice, ConstantTimeEq};

/// Shortest token accepted: 16 bytes of a random alphabet are out of reach of guessing.
const MIN_TOKEN_BYTES: usize = 16;

/// `[api] auth = { tokens_file = "/etc/sluice/api-tokens" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The tokens file; an empty path means none, so that a pipeline can take it from an
    /// environment variable that may be unset (`"${SLUICE_API_TOKENS_FILE:-}"`).
    #[serde(default)]
    pub tokens_file: String,
}

impl AuthConfig {
    /// Whether this asks for authentication at all (a tokens file is named).
    pub fn is_enabled(&self) -> bool {
        !self.tokens_file.trim().is_empty()
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (`/health`, the web page's static files: they hold no data).
    Open,
    Read,
    Metrics,
    Admin,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Open => "none",
            Access::Read => "read",
            Access::Metrics => "metrics",
            Access::Admin => "admin",
        }
    }
}

/// Which apps' events a request may see; the API puts one in every request's extensions
/// before an endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Apps(Arc<[String]>),
}

impl Scope {
    /// Whether an event of `app` (absent: `None`) is visible.
    pub fn allows(&self, app: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Apps(apps) => app.is_some_and(|a| apps.iter().any(|s| s == a)),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Roles {
    read: bool,
    metrics: bool,
    admin: bool,
}

impl Roles {
    fn grants(self, access: Access) -> bool {
        self.admin
            || match access {
                Access::Open => true,
                Access::Read => self.read,
                Access::Metrics => self.metrics,
                Access::Admin => false,
            }
    }

    fn names(self) -> String {
        let mut names = Vec::new();
        for (on, name) in [
            (self.read, "read"),
            (self.metrics, "metrics"),
            (self.admin, "admin"),
        ] {
            if on {
                names.push(name);
            }
        }
        names.join(",")
    }
}

/// A configured token: as written, or its SHA-256.
#[derive(PartialEq, Eq)]
enum Secret {
    Plain(Vec<u8>),
    Sha256([u8; 32]),
}

struct Entry {
    secret: Secret,
    roles: Roles,
    scope: Scope,
}

/// The tokens of a tokens file.
pub struct ApiTokens {
    entries: Vec<Entry>,
}

/// Why a request was refused: 401 (no token, or one nobody issued) or 403 (a token whose
/// role does not cover the route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Unauthenticated(&'static str),
    Forbidden(String),
}

impl ApiTokens {
    /// Reads and checks a tokens file; the error names the file and line.
    pub fn load(path: &Path) -> Result<ApiTokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read api tokens file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<ApiTokens, String> {
        let mut entries: Vec<Entry> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |message: String| format!("line {}: {message}", i + 1);
            let mut parts = line.split_whitespace();
            let (Some(token), Some(roles)) = (parts.next(), parts.next()) else {
                return Err(at("expected `TOKEN ROLES [apps=APP,...]`".into()));
            };
            let secret = match token.strip_prefix("sha256:") {
                Some(hex) => Secret::Sha256(parse_sha256(hex).ok_or_else(|| {
                    at("`sha256:` must be followed by 64 hex digits (printf %s \"$TOKEN\" | sha256sum)".into())
                })?),
                None => Secret::Plain(token.as_bytes().to_vec()),
            };
            if matches!(secret, Secret::Plain(_)) && token.len() < MIN_TOKEN_BYTES {
                return Err(at(format!(
                    "token is {} bytes; use at least {MIN_TOKEN_BYTES} random characters (e.g. `openssl rand -hex 16`)",
                    token.len()
                )));
            }
            let mut parsed = Roles::default();
            for role in roles.split(',') {
                match role {
                    "read" => parsed.read = true,
                    "metrics" => parsed.metrics = true,
                    "admin" => parsed.admin = true,
                    other => {
                        return Err(at(format!(
                            "unknown role `{other}` (expected read, metrics or admin)"
                        )))
                    }
                }
            }
            let scope = match parts.next() {
                None => Scope::All,
                Some(apps) => {
                    let Some(list) = apps.strip_prefix("apps=") else {
                        return Err(at(format!("expected `apps=APP,...`, not `{apps}`")));
                    };
                    let apps: Vec<String> = list.split(',').map(str::to_string).collect();
                    if apps.iter().any(String::is_empty) {
                        return Err(at("an app name in `apps=` is empty".into()));
                    }
                    Scope::Apps(apps.into())
                }
            };
            if let Some(extra) = parts.next() {
                return Err(at(format!("unexpected `{extra}` after the app scope")));
            }
            if entries.iter().any(|e| e.secret == secret) {
                return Err(at("this token is already listed above".into()));
            }
            entries.push(Entry {
                secret,
                roles: parsed,
                scope,
            });
        }
        if entries.is_empty() {
            return Err("no tokens (each line: `TOKEN ROLES [apps=APP,...]`)".into());
        }
        Ok(ApiTokens { entries })
    }

    /// The scope of a request's bearer token for a route needing `access`.
    pub fn authorize(&self, headers: &HeaderMap, access: Access) -> Result<Scope, Denied> {
        self.authorize_token(headers, access)
            .map(|(scope, _)| scope)
    }

    /// [`ApiTokens::authorize`], with which token it was (its entry's position), so that
    /// per-token caps (live tails) can count by it.
    pub fn authorize_token(
        &self,
        headers: &HeaderMap,
        access: Access,
    ) -> Result<(Scope, usize), Denied> {
        let Some(presented) = bearer(headers) else {
            return Err(Denied::Unauthenticated(
                "a bearer token is required (Authorization: Bearer TOKEN)",
            ));
        };
        // Every entry is compared, matched or not: no early exit to time.
        let digest = ring::digest::digest(&ring::digest::SHA256, presented.as_bytes());
        let mut found: Option<(usize, &Entry)> = None;
        for (index, entry) in self.entries.iter().enumerate() {
            let same = match &entry.secret {
                Secret::Plain(token) => constant_time_eq(token, presented.as_bytes()),
                Secret::Sha256(hash) => hash.ct_eq(digest.as_ref()),
            };
            if bool::from(same) {
                found = Some((index, entry));
            }
        }
        let Some((index, entry)) = found else {
            return Err(Denied::Unauthenticated("unknown token"));
        };
        if !entry.roles.grants(access) {
            return Err(Denied::Forbidden(format!(
                "this token's role ({}) does not allow this route (it needs {})",
                entry.roles.names(),
                access.name()
            )));
        }
        Ok((entry.scope.clone(), index))
    }
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// `Authorization: Bearer TOKEN` only: tokens never travel in URLs, where logs and
/// browser history would keep them.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Equality whose time depends only on the configured token's length, never on where a
/// guess first differs nor on the guess's length.
fn constant_time_eq(configured: &[u8], presented: &[u8]) -> Choice {
    let same_length = (configured.len() as u64).ct_eq(&(presented.len() as u64));
    let mut same = Choice::from(1);
    for (i, byte) in configured.iter().enumerate() {
        let other = presented.get(i).copied().unwrap_or(!byte);
        same &= byte.ct_eq(&other);
    }
    same & same_length
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# comment
reader-token-0123456789 read
scoped-token-0123456789 read apps=web,worker
metrics-token-012345678 metrics
admin-token-01234567890 admin
both-token-012345678901 read,metrics
# sha256 of `hashed-token-0123456789`
sha256:HASH read
";

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(t) = token {
            headers.insert(AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        }
        headers
    }

    fn file() -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, b"hashed-token-0123456789");
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        FILE.replace("HASH", &hex)
    }

    #[test]
    fn roles_against_routes() {
        let tokens = ApiTokens::parse(&file()).expect("parses");
        use Access::*;
        let cases: Vec<(Option<&str>, Access, Result<(), &str>)> = vec![
            (Some("reader-token-0123456789"), Read, Ok(())),
            (Some("reader-token-0123456789"), Metrics, Err("403")),
            (Some("reader-token-0123456789"), Admin, Err("403")),
            (Some("metrics-token-012345678"), Metrics, Ok(())),
            (Some("metrics-token-012345678"), Read, Err("403")),
            (Some("admin-token-01234567890"), Read, Ok(())),
            (Some("admin-token-01234567890"), Metrics, Ok(())),
            (Some("admin-token-01234567890"), Admin, Ok(())),
            (Some("both-token-012345678901"), Read, Ok(())),
            (Some("both-token-012345678901"), Metrics, Ok(())),
            (Some("hashed-token-0123456789"), Read, Ok(())),
            (Some("hashed-token-0123456789"), Metrics, Err("403")),
            (Some("hashed-token-012345678"), Read, Err("401")),
            (Some("reader-token-012345678"), Read, Err("401")),
            (Some("reader-token-01234567890"), Read, Err("401")),
            (None, Read, Err("401")),
        ];
        for (token, access, expected) in cases {
            let got = tokens.authorize(&headers(token), access).map(|_| ());
            let got = match got {
                Ok(()) => Ok(()),
                Err(Denied::Unauthenticated(_)) => Err("401"),
                Err(Denied::Forbidden(_)) => Err("403"),
            };
            assert_eq!(got, expected, "{token:?} {access:?}");
        }
        assert!(matches!(
            tokens.authorize(&headers(None), Read),
            Err(Denied::Unauthenticated(m)) if m.contains("Authorization: Bearer")
        ));
    }

    #[test]
    fn scopes() {
        let tokens = ApiTokens::parse(&file()).expect("parses");
        let scope = tokens
            .authorize(&headers(Some("scoped-token-0123456789")), Access::Read)
            .expect("allowed");
        assert!(scope.allows(Some("web")) && scope.allows(Some("worker")));
        assert!(!scope.allows(Some("db")) && !scope.allows(None));
        let all = tokens
            .authorize(&headers(Some("reader-token-0123456789")), Access::Read)
            .expect("allowed");
        assert_eq!(all, Scope::All);
    }

    #[test]
    fn bad_files_say_which_line() {
        let cases = [
            ("", "no tokens"),
            ("short read\n", "line 1: token is 5 bytes"),
            (
                "\nreader-token-0123456789 write\n",
                "line 2: unknown role `write`",
            ),
            ("reader-token-0123456789\n", "line 1: expected `TOKEN ROLES"),
            ("reader-token-0123456789 read web\n", "expected `apps=APP"),
            ("reader-token-0123456789 read apps=a,\n", "empty"),
            (
                "reader-token-0123456789 read\nreader-token-0123456789 admin\n",
                "line 2: this token is already listed",
            ),
            (
                "sha256:abcd read\n",
                "line 1: `sha256:` must be followed by 64 hex digits",
            ),
            (
                "sha256:zz0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd read\n",
                "64 hex digits",
            ),
        ];
        for (text, expected) in cases {
            let error = ApiTokens::parse(text).err().expect(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn bearer_only() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Basic cmVhZGVyOg==".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        assert!(bool::from(constant_time_eq(b"abc", b"abc")));
        assert!(!bool::from(constant_time_eq(b"abc", b"abd")));
        assert!(!bool::from(constant_time_eq(b"abc", b"ab")));
        assert!(!bool::from(constant_time_eq(b"abc", b"abcd")));
    }
}
