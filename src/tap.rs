//! Live taps (`sluice tap`, `GET /v1/tap`): the events leaving any output of any source,
//! transform or alert rule as they pass, with the live tail's delivery (bounded per client,
//! overflow told in-band, ended when shutdown starts).
//!
//! Every output's fan-out is observed by a [`TailHub`] of its own. While nobody taps an
//! output, observing a batch costs one atomic load and copies nothing; a tap's matching runs
//! on the hub's own thread and only ever `try_send`s to its client, so a slow or costly tap
//! costs only itself, never the pipeline (`tap_dropped_events_total` counts what taps
//! missed). A tapped batch is held by the hub until it is matched, so while a tap is open a
//! transform downstream that takes its batch apart copies it first.

use std::collections::HashMap;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::api::{error, Endpoint, ResponseFuture};
use crate::channel::Fanout;
use crate::store::http::{scoped, Params};
use crate::store::tail::TailHub;
use crate::store::Query;
use crate::telemetry::{self, Counter};

/// Events queued for one tap client before it starts missing some.
pub const TAP_BUFFER_EVENTS: usize = 4096;

/// The tappable outputs of a running pipeline, by name (`ID` or `ID.OUTPUT`), and what
/// each component reads (for `inputs_of`).
pub struct Taps {
    outputs: HashMap<String, Arc<TailHub>>,
    inputs: HashMap<String, Vec<String>>,
    dropped: Counter,
}

impl Default for Taps {
    fn default() -> Self {
        Self {
            outputs: HashMap::new(),
            inputs: HashMap::new(),
            dropped: telemetry::counter("tap_dropped_events_total", &[]),
        }
    }
}

impl Taps {
    /// `fanout`, made tappable as output `name`.
    pub fn observe(&mut self, name: String, fanout: Fanout) -> Fanout {
        let hub = Arc::new(TailHub::counting(self.dropped.clone(), TAP_BUFFER_EVENTS));
        self.outputs.insert(name, hub.clone());
        fanout.observed_by(hub)
    }

    /// Records that component `id` reads `inputs` (output names).
    pub fn reads(&mut self, id: &str, inputs: Vec<String>) {
        self.inputs.insert(id.to_string(), inputs);
    }

    /// The hubs of the outputs named, and of every output the `inputs_of` components read.
    fn resolve(&self, names: &[&str], inputs_of: &[&str]) -> Result<Vec<&TailHub>, String> {
        let mut wanted: Vec<&str> = Vec::new();
        for name in names
            .iter()
            .flat_map(|n| n.split(','))
            .filter(|n| !n.is_empty())
        {
            wanted.push(name);
        }
        for id in inputs_of
            .iter()
            .flat_map(|n| n.split(','))
            .filter(|n| !n.is_empty())
        {
            let inputs = self
                .inputs
                .get(id)
                .ok_or_else(|| format!("no component `{id}` reads inputs"))?;
            wanted.extend(inputs.iter().map(String::as_str));
        }
        if wanted.is_empty() {
            return Err("name an output to tap: `component=ID[.OUTPUT]` or `inputs_of=ID`".into());
        }
        wanted
            .into_iter()
            .map(|name| {
                self.outputs
                    .get(name)
                    .map(|hub| hub.as_ref())
                    .ok_or_else(|| {
                        let mut known: Vec<&str> =
                            self.outputs.keys().map(String::as_str).collect();
                        known.sort_unstable();
                        format!(
                            "no output `{name}` to tap; outputs are: {}",
                            known.join(", ")
                        )
                    })
            })
            .collect()
    }
}

/// `GET /v1/tap?component=ID[.OUTPUT]&inputs_of=ID&q=QUERY` on the API listener.
pub struct TapEndpoint {
    taps: Arc<Taps>,
    streams_stop: CancellationToken,
}

impl TapEndpoint {
    pub fn new(taps: Taps, streams_stop: CancellationToken) -> Self {
        Self {
            taps: Arc::new(taps),
            streams_stop,
        }
    }
}

impl Endpoint for TapEndpoint {
    fn matches(&self, path: &str) -> bool {
        path == "/v1/tap"
    }

    fn handle(&self, request: Request<Incoming>) -> ResponseFuture {
        let taps = self.taps.clone();
        let stop = self.streams_stop.clone();
        Box::pin(async move {
            if request.method() != Method::GET {
                return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
            }
            if stop.is_cancelled() {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the router is shutting down",
                );
            }
            let params = Params::parse(request.uri().query().unwrap_or(""));
            let query = match Query::parse(params.get("q").unwrap_or("")) {
                Ok(query) => scoped(query, &crate::api::scope_of(&request)),
                Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            let hubs = match taps.resolve(&params.all("component"), &params.all("inputs_of")) {
                Ok(hubs) => hubs,
                Err(message) => return error(StatusCode::BAD_REQUEST, &message),
            };
            // A tap is a live stream like a tail, and counts against the same caps.
            let permit = match crate::api::tail_permit(&request) {
                Ok(permit) => permit,
                Err(refusal) => return refusal.into_response(),
            };
            let Some(body) = TailHub::subscribe_to(&hubs, query, stop) else {
                return error(StatusCode::SERVICE_UNAVAILABLE, "too many tap clients");
            };
            let mut response = Response::new(body.holding(permit).boxed());
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        })
    }
}
