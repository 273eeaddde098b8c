//! The checks an API request passes before a route answers: its `Host` (against DNS
//! rebinding), its `Origin` (CORS, off unless `cors_origins` lists some) and its bearer
//! token (`auth.rs`). Built once at start, when the tokens file is read.
//!
//! Why the Host check: a web page on `evil.example` can make its own name resolve to
//! 127.0.0.1 after loading (DNS rebinding); the browser then sends the page's requests to
//! the router as same-origin requests and hands it the answers. They still carry
//! `Host: evil.example`, which no allowed name matches. It matters for an API without
//! tokens; with tokens it is checked only when `allowed_hosts` is set.

use std::net::SocketAddr;

use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, HOST, ORIGIN, VARY, WWW_AUTHENTICATE,
};
use hyper::{HeaderMap, StatusCode};

use super::auth::{Access, ApiTokens, Denied, Scope};
use super::{error, ApiConfig, HttpResponse};
use crate::telemetry;

/// Why the guard (or a cap, `limits.rs`) refused a request; [`Refusal::into_response`] is
/// its answer.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// The JSON error; a 401 says which scheme to use (`WWW-Authenticate`).
    pub fn into_response(self) -> HttpResponse {
        let mut response = error(self.status, &self.message);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sluice\""),
            );
        }
        response
    }
}

/// The API listener's request checks.
pub struct Guard {
    /// `None`: no authentication (a loopback listener, or `insecure_no_auth`).
    tokens: Option<ApiTokens>,
    /// `None`: any host (`allowed_hosts = ["*"]`).
    hosts: Option<Vec<String>>,
    cors_origins: Vec<String>,
}

impl Guard {
    /// Reads the tokens file, if any; `bound` is the listener's address, whose IP is an
    /// allowed host by default.
    pub fn open(config: &ApiConfig, bound: SocketAddr) -> Result<Guard, String> {
        let tokens = match &config.auth {
            Some(auth) if auth.is_enabled() => Some(ApiTokens::load(std::path::Path::new(
                auth.tokens_file.trim(),
            ))?),
            _ => None,
        };
        // With tokens, a rebinding page gains nothing: it has no token, and a browser never
        // attaches a bearer token by itself as it does cookies. So any name is answered
        // unless `allowed_hosts` says otherwise (Prometheus scrapes a pod by its IP, which
        // no file can list in advance).
        let hosts = match (&config.allowed_hosts, &tokens) {
            (None, Some(_)) => None,
            (configured, _) => allowed_hosts(configured.as_deref(), bound),
        };
        Ok(Guard {
            tokens,
            hosts,
            cors_origins: config.cors_origins.clone(),
        })
    }

    /// A guard that lets everything through (tests calling routes directly).
    pub fn open_to_all() -> Guard {
        Guard {
            tokens: None,
            hosts: None,
            cors_origins: Vec::new(),
        }
    }

    /// Refuses a `Host` no allowed name matches. A request without one (HTTP/1.0 tools)
    /// passes: browsers always send it, and only browsers are fooled by rebinding.
    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let (Some(hosts), Some(value)) = (&self.hosts, headers.get(HOST)) else {
            return Ok(());
        };
        let name = value.to_str().map(host_name).unwrap_or_default();
        if hosts.contains(&name) {
            return Ok(());
        }
        refused("host");
        Err(Refusal::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "host `{name}` is not one this router answers to (add it to [api] allowed_hosts)"
            ),
        ))
    }

    /// The request's `Origin` when `cors_origins` lists it (the value to echo back).
    pub fn cors_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.cors_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(text))
            .then(|| origin.clone())
    }

    /// The answer to a CORS preflight (`OPTIONS` with an `Origin`).
    pub fn preflight(&self, origin: Option<HeaderValue>) -> HttpResponse {
        let Some(origin) = origin else {
            refused("origin");
            return error(
                StatusCode::FORBIDDEN,
                "cross-origin requests are not allowed from this origin (see [api] cors_origins)",
            );
        };
        preflight("GET", "authorization", Some(origin))
    }

    /// The scope of a request for a route needing `access` and the token it came with
    /// (`None` without auth or on an open route), or its refusal: 401 with
    /// `WWW-Authenticate` for a missing or unknown token, 403 for a role that does not
    /// cover the route.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        access: Access,
    ) -> Result<(Scope, Option<usize>), Refusal> {
        let Some(tokens) = &self.tokens else {
            return Ok((Scope::All, None));
        };
        if access == Access::Open {
            return Ok((Scope::All, None));
        }
        match tokens.authorize_token(headers, access) {
            Ok((scope, token)) => Ok((scope, Some(token))),
            Err(Denied::Unauthenticated(message)) => {
                refused("token");
                Err(Refusal::new(StatusCode::UNAUTHORIZED, message))
            }
            Err(Denied::Forbidden(message)) => {
                refused("role");
                Err(Refusal::new(StatusCode::FORBIDDEN, message))
            }
        }
    }
}

/// Adds `Access-Control-Allow-Origin` for an allowed origin; nothing otherwise.
pub fn with_cors(mut response: HttpResponse, origin: Option<HeaderValue>) -> HttpResponse {
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// The answer to a CORS preflight from `origin` (allowed, or `None`): these `methods` and
/// request `headers` may be used, for ten minutes.
pub fn preflight(
    methods: &'static str,
    headers: &'static str,
    origin: Option<HeaderValue>,
) -> HttpResponse {
    let mut response = super::respond(StatusCode::NO_CONTENT, "text/plain", "");
    let allowed = response.headers_mut();
    allowed.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    allowed.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(headers),
    );
    allowed.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    with_cors(response, origin)
}

fn refused(reason: &str) {
    telemetry::counter("api_refused_requests_total", &[("reason", reason)]).inc(1);
}

/// The allowed host names, lowercased without port; `None` for any. The default (an API
/// without tokens) is the loopback names plus the listener's own IP (unless it listens on
/// every address).
fn allowed_hosts(configured: Option<&[String]>, bound: SocketAddr) -> Option<Vec<String>> {
    match configured {
        Some(list) if list.iter().any(|h| h == "*") => None,
        Some(list) => Some(list.iter().map(|h| host_name(h)).collect()),
        None => {
            let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
                .iter()
                .map(|h| h.to_string())
                .collect();
            if !bound.ip().is_unspecified() {
                hosts.push(bound.ip().to_string());
            }
            Some(hosts)
        }
    }
}

/// The name of a `Host` value: lowercased, without port, brackets or trailing dot.
pub(crate) fn host_name(value: &str) -> String {
    let value = value.trim();
    let name = if let Some(rest) = value.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match value.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => value,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let cases = [
            ("127.0.0.1:8686", "127.0.0.1"),
            ("LocalHost", "localhost"),
            ("[::1]:8686", "::1"),
            ("example.com.:80", "example.com"),
            ("evil.example", "evil.example"),
        ];
        for (value, name) in cases {
            assert_eq!(host_name(value), name, "{value}");
        }
    }

    #[test]
    fn default_hosts_are_loopback_and_the_bound_ip() {
        let check = |hosts: Option<Vec<String>>, host: &str| {
            let guard = Guard {
                tokens: None,
                hosts,
                cors_origins: Vec::new(),
            };
            let mut headers = HeaderMap::new();
            headers.insert(HOST, host.parse().unwrap());
            guard.check_host(&headers).is_ok()
        };
        let bound: SocketAddr = "10.1.2.3:8686".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8686".parse().unwrap();
        let cases = [
            (allowed_hosts(None, bound), "localhost:8686", true),
            (allowed_hosts(None, bound), "127.0.0.1:8686", true),
            (allowed_hosts(None, bound), "[::1]:8686", true),
            (allowed_hosts(None, bound), "10.1.2.3:8686", true),
            (allowed_hosts(None, bound), "evil.example:8686", false),
            (allowed_hosts(None, any), "0.0.0.0:8686", false),
            (
                allowed_hosts(Some(&["Logs.Example.com".into()]), any),
                "logs.example.com",
                true,
            ),
            (
                allowed_hosts(Some(&["logs.example.com".into()]), any),
                "localhost",
                false,
            ),
            (allowed_hosts(Some(&["*".into()]), any), "anything", true),
        ];
        for (hosts, host, ok) in cases {
            assert_eq!(check(hosts.clone(), host), ok, "{host} against {hosts:?}");
        }
    }
}
