//! The administrative routes: `POST /v1/reload` (load the pipeline file again and apply
//! the difference) and `POST /v1/reopen` (file sinks reopen their files, enrichment tables
//! reload theirs). Both need an `admin` token when the API has tokens.
//!
//! The API sits below the components and the topology, so what these routes do is handed
//! in as actions by the topology, which knows how to reload and reopen.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::{error, respond, Access, Endpoint, ResponseFuture};

pub const RELOAD_PATH: &str = "/v1/reload";
pub const REOPEN_PATH: &str = "/v1/reopen";

/// What an action answers: success with a JSON body, or failure with the error's text.
pub type ActionResult = Result<serde_json::Value, String>;

/// One administrative action, run once per request.
pub type Action = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ActionResult> + Send>> + Send + Sync>;

pub struct AdminEndpoint {
    pub reload: Action,
    pub reopen: Action,
}

impl Endpoint for AdminEndpoint {
    fn matches(&self, path: &str) -> bool {
        path == RELOAD_PATH || path == REOPEN_PATH
    }

    fn access(&self, _path: &str) -> Access {
        Access::Admin
    }

    fn handle(&self, request: Request<Incoming>) -> ResponseFuture {
        if request.method() != Method::POST {
            return Box::pin(async { error(StatusCode::METHOD_NOT_ALLOWED, "use POST") });
        }
        let action = if request.uri().path() == RELOAD_PATH {
            self.reload.clone()
        } else {
            self.reopen.clone()
        };
        Box::pin(async move {
            match action().await {
                Ok(body) => respond(StatusCode::OK, "application/json", body.to_string()),
                // The configuration is the client's to fix: 422 with the reason, the old
                // pipeline still running.
                Err(message) => error(StatusCode::UNPROCESSABLE_ENTITY, &message),
            }
        })
    }
}
