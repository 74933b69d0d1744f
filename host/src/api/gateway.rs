//! The gateway: `/{lg_code}/{module}/{*path}` into the module's `wasi:http` handler.
//!
//! Top to bottom: resolve the municipality → resolve the module's current version for it →
//! build the per-request platform state (caller, config, grants, limits) → strip the mount
//! prefix → run the request in a fresh instance → answer with the module's response or a
//! problem+json that names the limit or fault.

use super::municipalities::parse_code;
use super::problem::Problem;
use crate::app::App;
use crate::auth::{AccessLevel, AuthError};
use crate::capabilities::Caller;
use crate::linkage::audit::{self, AuditBuffer, AuditContext};
use crate::runtime::InvokeError;
use crate::telemetry::cpu::{self, CpuClock};
use crate::telemetry::metrics::ErrorKind;
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
    let Some(routed) = app.live.resolve(module, &lg_code) else {
        if let Some(reason) = app.db.module_suspension(module).await? {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "module-suspended",
                "Module suspended",
                format!("module `{module}` is suspended by the platform operator: {reason}"),
            ));
        }
        return Err(Problem::not_found(
            "unknown-module",
            format!("module `{module}` is not available for municipality {lg_code}"),
        ));
    };
    let version = &routed.version;
    let module_path = module_path(request.uri().path(), code, module)?;
    let Some((route, level)) = version.manifest.matched_route(&canonical(module_path)?) else {
        return Err(Problem::not_found("undeclared-route", format!("module `{module}` declares no route for {module_path}")));
    };
    // The declared route, not the path: paths can carry personal identifiers.
    let span = tracing::info_span!(
        "module_request",
        lg_code = %lg_code,
        module,
        version = %version.identity.version,
        route,
        http.method = %request.method(),
        request_id,
        http.status_code = tracing::field::Empty,
    );
    let principal = app.optional_principal(request.headers()).map_err(|e| e.into_problem())?;
    if level != AccessLevel::Public {
        match &principal {
            None => return Err(AuthError::Missing.into_problem()),
            Some(p) if !p.may_use(level, &lg_code) => {
                let e = AuthError::Forbidden(format!("this route needs {level:?} access to municipality {lg_code}"));
                tracing::warn!(parent: &span, subject = %p.subject, reason = %e, "refused module route");
                return Err(e.into_problem());
            }
            Some(_) => {}
        }
    }

    let audit_buffer = AuditBuffer::default();
    let audit_context = AuditContext {
        lg_code: lg_code.to_string(),
        module_id: version.identity.id.clone(),
        module_version: version.identity.version.clone(),
        request_id: request_id.to_string(),
        caller_subject: principal.as_ref().map(|p| p.subject.clone()),
        caller_role: principal.as_ref().map(|p| format!("{:?}", p.role).to_lowercase()).unwrap_or_else(|| "anonymous".into()),
    };
    let caller = principal.as_ref().map(|p| Caller::for_municipality(p, &lg_code)).unwrap_or_default();
    let platform = app.platform_state(municipality, &routed, caller, request_id.to_string(), audit_buffer.clone()).await?;
    let request = into_module_request(request, code, module, request_id)?;
    let peak_memory = platform.peak_memory.clone();
    let started = std::time::Instant::now();
    let cpu = CpuClock::default();

    let outcome = {
        let _in_use = app.metrics.instance_in_use(&version.identity.id);
        cpu::timed(app.runtime.invoke(version, platform, request), &cpu).instrument(span.clone()).await
    };
    let elapsed = started.elapsed();
    let error_kind = match &outcome {
        Ok(response) if response.status().is_server_error() => Some(ErrorKind::Module5xx),
        Ok(_) => None,
        Err(e) => Some(error_kind(e)),
    };
    let peak = peak_memory.load(std::sync::atomic::Ordering::Relaxed);
    app.meter.record(lg_code.as_str(), &version.identity.id, error_kind.is_some(), cpu.elapsed(), peak);
    // What the module read is on record before anything it produced leaves the host.
    let result = match audit::flush(&app.db, &audit_context, &audit_buffer).await {
        Err(e) => {
            tracing::error!(parent: &span, error = %format!("{e:#}"), "audit trail write failed; response withheld");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit-unavailable",
                "Audit trail unavailable",
                "the module read personal data but the audit trail could not be written, so its response was withheld",
            ))
        }
        Ok(reads) => {
            app.metrics.audited_reads(lg_code.as_str(), &version.identity.id, &reads);
            match outcome {
                Ok(response) => {
                    let mut response = from_module_response(response);
                    // Which version answered: operators and tests can see a swap take effect.
                    let served_by = format!("{}@{}", version.identity.id, version.identity.version);
                    if let Ok(value) = HeaderValue::from_str(&served_by) {
                        response.headers_mut().insert("x-nukisashi-version", value);
                    }
                    Ok(response)
                }
                Err(error) => {
                    tracing::warn!(parent: &span, error = %error, detail = ?error, "module request failed");
                    Err(problem_for(&error, &version.identity.id, &version.identity.version))
                }
            }
        }
    };
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(problem) => problem.status,
    };
    span.record("http.status_code", status);
    app.metrics.request(lg_code.as_str(), &version.identity.id, &version.identity.version, status, elapsed, error_kind);
    result
}

fn error_kind(error: &InvokeError) -> ErrorKind {
    match error {
        InvokeError::Deadline(_) => ErrorKind::Deadline,
        InvokeError::Memory(_) => ErrorKind::Memory,
        InvokeError::StackOverflow | InvokeError::Panic(_) | InvokeError::Trap(_) => ErrorKind::Trap,
        InvokeError::ResponseTooLarge(_) | InvokeError::NoResponse | InvokeError::ModuleError(_) => ErrorKind::Module5xx,
        InvokeError::Host(_) => ErrorKind::Host,
    }
}

/// The path inside the module: the raw URL path without `/{code}/{module}`.
fn module_path<'a>(path: &'a str, code: &str, module: &str) -> Result<&'a str, Problem> {
    let rest = path.strip_prefix('/').and_then(|p| p.strip_prefix(code)).and_then(|p| p.strip_prefix('/')).and_then(|p| p.strip_prefix(module));
    match rest {
        Some("") => Ok("/"),
        Some(rest) if rest.starts_with('/') => Ok(rest),
        _ => Err(Problem::bad_request("non-canonical-path", "write the municipality code and module id in the URL without percent-encoding")),
    }
}

/// The decoded path the route's auth level is decided on. Decoding before matching means
/// `/%61dmin` is checked as `/admin`; dot segments are refused because a module's router
/// might resolve them where the check did not.
fn canonical(module_path: &str) -> Result<String, Problem> {
    let decoded = percent_encoding::percent_decode_str(module_path).decode_utf8_lossy().into_owned();
    if decoded.split('/').any(|segment| segment == "." || segment == "..") || decoded.contains('\\') {
        return Err(Problem::bad_request("non-canonical-path", "paths with `.` or `..` segments or backslashes are not accepted"));
    }
    Ok(decoded)
}

/// The request as the module sees it: path relative to its mount point, the mount point in
/// `x-nukisashi-base-path`, the request id, and no platform credentials.
fn into_module_request(request: Request, code: &str, module: &str, request_id: &str) -> Result<Request, Problem> {
    let (mut parts, body) = request.into_parts();
    let prefix = format!("/{code}/{module}");
    let path = module_path(parts.uri.path(), code, module)?;
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
