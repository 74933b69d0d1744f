//! The gateway: `/{lg_code}/{module}/{*path}` into the module's `wasi:http` handler.
//!
//! Top to bottom: resolve the municipality → resolve the module's current version for it →
//! build the per-request platform state (caller, config, grants, limits) → strip the mount
//! prefix → run the request in a fresh instance → answer with the module's response or a
//! problem+json that names the limit or fault.

use super::municipalities::parse_code;
use super::problem::Problem;
use crate::app::App;
use crate::capabilities::{Caller, Capability, PlatformState};
use crate::runtime::InvokeError;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tracing::Instrument;

/// Headers that describe one hop, not the message; never passed through.
const HOP_BY_HOP: &[&str] = &["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"];

pub async fn handle_root(state: State<Arc<App>>, Path((code, module)): Path<(String, String)>, request: Request) -> Response {
    serve(state, code, module, request).await
}

pub async fn handle(
    state: State<Arc<App>>,
    Path((code, module, _path)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    serve(state, code, module, request).await
}

async fn serve(State(app): State<Arc<App>>, code: String, module: String, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    match route(&app, &code, &module, &request_id, request).await {
        Ok(mut response) => {
            if let Ok(id) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert("x-request-id", id);
            }
            response
        }
        Err(problem) => problem.with_request_id(&request_id).into_response(),
    }
}

async fn route(app: &App, code: &str, module: &str, request_id: &str, request: Request) -> Result<Response, Problem> {
    let lg_code = parse_code(code)?;
    let municipality = app.require_municipality(&lg_code)?;
    let Some(version) = app.live.resolve(module, &lg_code) else {
        return Err(Problem::not_found(
            "unknown-module",
            format!("module `{module}` is not available for municipality {lg_code}"),
        ));
    };
    let span = tracing::info_span!("module_request", lg_code = %lg_code, module, version = %version.identity.version, request_id);

    let platform = PlatformState {
        municipality,
        module: version.identity.clone(),
        caller: Caller::default(),
        request_id: request_id.to_string(),
        config: app.module_config(&lg_code, module).await?,
        granted: Capability::ALL.into_iter().collect(),
        db: app.db.clone(),
        host_call_bytes: app.runtime.limits().host_call_bytes,
        log_lines_left: app.runtime.limits().log_lines,
    };
    let request = into_module_request(request, code, module, request_id)?;

    match app.runtime.invoke(&version, platform, request).instrument(span.clone()).await {
        Ok(response) => Ok(from_module_response(response)),
        Err(error) => {
            tracing::warn!(parent: &span, error = %error, detail = ?error, "module request failed");
            Err(problem_for(&error, &version.identity.id, &version.identity.version))
        }
    }
}

/// The request as the module sees it: path relative to its mount point, the mount point in
/// `x-nukisashi-base-path`, the request id, and no platform credentials.
fn into_module_request(request: Request, code: &str, module: &str, request_id: &str) -> Result<Request, Problem> {
    let (mut parts, body) = request.into_parts();
    let prefix = format!("/{code}/{module}");
    let path = parts.uri.path().strip_prefix(&prefix).unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let authority = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| Problem::bad_request("invalid-uri", format!("the request URI cannot be passed on: {e}")))?;
    // The platform's bearer token is for the host; the module gets verified claims instead.
    parts.headers.remove(axum::http::header::AUTHORIZATION);
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    parts.headers.insert("x-nukisashi-base-path", HeaderValue::from_str(&prefix).expect("validated code and module"));
    parts.headers.insert("x-request-id", HeaderValue::from_str(request_id).expect("uuid"));
    Ok(Request::from_parts(parts, body))
}

fn from_module_response(response: http::Response<bytes::Bytes>) -> Response {
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn problem_for(error: &InvokeError, module: &str, version: &str) -> Problem {
    let (status, slug, title) = match error {
        InvokeError::Deadline(_) => (StatusCode::GATEWAY_TIMEOUT, "deadline-exceeded", "Module deadline exceeded"),
        InvokeError::Memory(_) => (StatusCode::INSUFFICIENT_STORAGE, "memory-limit-exceeded", "Module memory limit exceeded"),
        InvokeError::StackOverflow => (StatusCode::INTERNAL_SERVER_ERROR, "stack-overflow", "Module stack overflow"),
        InvokeError::Panic(_) => (StatusCode::INTERNAL_SERVER_ERROR, "module-panic", "Module panicked"),
        InvokeError::Trap(_) => (StatusCode::INTERNAL_SERVER_ERROR, "module-trap", "Module trapped"),
        InvokeError::ResponseTooLarge(_) => (StatusCode::BAD_GATEWAY, "response-too-large", "Module response too large"),
        InvokeError::NoResponse => (StatusCode::BAD_GATEWAY, "no-response", "Module sent no response"),
        InvokeError::ModuleError(_) => (StatusCode::BAD_GATEWAY, "module-error", "Module failed"),
        InvokeError::Host(_) => (StatusCode::INTERNAL_SERVER_ERROR, "host-error", "Host error"),
    };
    // Panic and trap details stay in the host log (they may quote data); the caller gets
    // which limit or fault, and the request id to find the rest.
    let detail = match error {
        InvokeError::Panic(_) | InvokeError::Trap(_) | InvokeError::Host(_) => {
            format!("{error} ({module} {version}); the host log has details under this request id")
        }
        _ => format!("{error} ({module} {version})"),
    };
    Problem::new(status, slug, title, detail)
}
