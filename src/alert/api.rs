//! `GET /v1/alerts`: the pending and firing alerts of every rule.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Serialize;

use crate::api::{self, Endpoint, ResponseFuture};
use crate::event::{format_timestamp, Map};

/// One pending or firing alert as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveAlert {
    pub rule: String,
    /// `pending` (condition true, waiting for `for_secs`) or `firing`.
    pub status: &'static str,
    pub severity: String,
    pub group: Map,
    pub value: f64,
    /// RFC 3339: when it became pending or started firing.
    pub since: String,
    pub fingerprint: String,
}

/// The active alerts of every rule, updated by the rule tasks on each tick.
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<BTreeMap<String, Vec<ActiveAlert>>>>);

impl Registry {
    /// Replaces what `rule` reports.
    pub fn update(&self, rule: &str, alerts: Vec<ActiveAlert>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if alerts.is_empty() {
            map.remove(rule);
        } else {
            map.insert(rule.to_string(), alerts);
        }
    }

    /// Every active alert, by rule, firing first, then oldest first.
    pub fn list(&self) -> Vec<ActiveAlert> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<ActiveAlert> = map.values().flatten().cloned().collect();
        all.sort_by(|a, b| {
            (a.rule.as_str(), a.status != "firing", a.since.as_str()).cmp(&(
                b.rule.as_str(),
                b.status != "firing",
                b.since.as_str(),
            ))
        });
        all
    }

    pub(super) fn active(set: &super::RuleSet, rule: usize) -> Vec<ActiveAlert> {
        let spec = set.spec(rule);
        set.active(rule)
            .into_iter()
            .map(|a| ActiveAlert {
                rule: spec.id.clone(),
                status: if a.firing { "firing" } else { "pending" },
                severity: spec.severity.clone(),
                group: a.group,
                value: a.value,
                since: format_timestamp(a.since),
                fingerprint: a.fingerprint,
            })
            .collect()
    }
}

/// The endpoint on the API listener.
pub struct AlertsEndpoint {
    pub registry: Registry,
}

const ALERTS_PATH: &str = "/v1/alerts";

impl Endpoint for AlertsEndpoint {
    fn matches(&self, path: &str) -> bool {
        path == ALERTS_PATH
    }

    fn handle(&self, request: Request<Incoming>) -> ResponseFuture {
        let response = if request.method() == Method::GET {
            // A token scoped to some apps sees the alerts of groups with one of those apps.
            let scope = api::scope_of(&request);
            let alerts: Vec<ActiveAlert> = self
                .registry
                .list()
                .into_iter()
                .filter(|a| {
                    let app = a.group.get(crate::event::fields::APP).map(|v| v.to_text());
                    scope.allows(app.as_deref())
                })
                .collect();
            let body = serde_json::json!({ "alerts": alerts });
            api::respond(StatusCode::OK, "application/json", body.to_string())
        } else {
            api::error(StatusCode::METHOD_NOT_ALLOWED, "use GET")
        };
        Box::pin(async move { response })
    }
}
