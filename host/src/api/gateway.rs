//! The gateway: a request the edge resolved into the module's `wasi:http` handler.
//!
//! Top to bottom: resolve the municipality → resolve the module's current version for it →
//! decide the route's auth level on the checked path and verify the caller → build the
//! per-request platform state (caller scoped to the municipality, config, grants, limits)
//! → hand the module the canonical path → run the request in a fresh instance → write the
//! audit rows → answer with the module's response (headers filtered at the edge) or a
//! problem+json that names the limit or fault.

use super::problem::Problem;
use crate::app::App;
use crate::auth::{AccessLevel, AuthError};
use crate::capabilities::Caller;
use crate::edge::{Mount, Target, headers, problems};
use crate::linkage::audit::{AuditBuffer, AuditContext};
use crate::runtime::InvokeError;
use crate::telemetry::cpu::{self, CpuClock};
use crate::telemetry::metrics::ErrorKind;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

/// Serves one request the edge resolved; every answer carries its request id.
pub async fn serve(app: &App, target: Target, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    // A person in a browser on the module's origin gets the refusal as a Japanese page.
    let for_a_person = target.mount == Mount::Origin && crate::edge::pages::wants_html(request.headers());
    let mut response = match route(app, &target, &request_id, request).await {
        Ok(response) => response,
        Err(problem) if for_a_person => crate::edge::pages::problem_page(&problem, &request_id),
        Err(problem) => return problem.with_request_id(&request_id).into_response(),
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

/// The methods modules are served with (the `Allow` of a refusal); CONNECT (a tunnel),
/// TRACE (an echo of the request) and extension methods are the platform's to refuse, not
/// a module's to interpret.
const MODULE_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

async fn route(app: &App, target: &Target, request_id: &str, request: Request) -> Result<Response, Problem> {
    let Target { lg_code, module, path, mount } = target;
    use axum::http::Method;
    if !matches!(*request.method(), Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::OPTIONS) {
        return Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("{} is not served to modules; use one of {MODULE_METHODS}", request.method()),
        )
        .with_header(axum::http::header::ALLOW, MODULE_METHODS));
    }
    if !app.is_ready() {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "starting", "Starting", "the host is starting; try again shortly").with_header(axum::http::header::RETRY_AFTER, "1"));
    }
    let municipality = app.require_municipality(lg_code).await?;
    let Some(routed) = app.live.resolve(module, lg_code) else {
        if app.routes.is_quarantined(module) || app.db.module_suspension(module).await?.is_some() {
            // The operator's reason is for the operators (the API has it), not for residents.
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "module-unavailable",
                "Service unavailable",
                format!("module `{module}` is not available at the moment; please try again later"),
            ));
        }
        return Err(Problem::not_found(
            "unknown-module",
            format!("module `{module}` is not available for municipality {lg_code}"),
        ));
    };
    let version = &routed.version;
    // The auth level is decided on the checked path, and the module receives exactly it.
    let Some((route, level)) = version.manifest.matched_route(path) else {
        return Err(Problem::not_found("undeclared-route", format!("module `{module}` declares no route for {path}")));
    };
    // The declared route, not the path: paths can carry personal identifiers.
    let span = tracing::info_span!(
        "module_request",
        lg_code = %lg_code,
        module = module.as_str(),
        version = %version.identity.version,
        route,
        http.method = %request.method(),
        request_id,
        http.status_code = tracing::field::Empty,
    );
    // A bearer token, else (on the module's own origin) the browser's sign-in session.
    let mut form_token = None;
    let principal = match app.optional_principal(request.headers()).map_err(|e| e.into_problem())? {
        Some(p) => Some(p),
        None if *mount == Mount::Origin => crate::signin::browser_session(app, target, request.method(), request.headers()).await?.map(|session| {
            form_token = Some(session.form_token);
            session.principal
        }),
        None => None,
    };
    if level != AccessLevel::Public {
        match &principal {
            // A browser is sent to sign in (and back); an API client gets the 401.
            None => return crate::signin::send_to_sign_in(app, target, request).await?.ok_or_else(|| AuthError::Missing.into_problem()),
            Some(p) if !p.may_use(level, lg_code) => {
                let e = AuthError::Forbidden(format!("this route needs {level:?} access to municipality {lg_code}"));
                tracing::warn!(parent: &span, subject = %p.subject, reason = %e, "refused module route");
                return Err(e.into_problem());
            }
            Some(_) => {}
        }
    }
    let caller = match &principal {
        None => Caller::default(),
        Some(p) => {
            let (caller, anonymous_because) = Caller::for_municipality(p, lg_code);
            if let Some(reason) = anonymous_because {
                tracing::info!(parent: &span, subject = %p.subject, role = ?p.role, reason, "caller treated as anonymous in this municipality");
            }
            caller
        }
    };

    let audit_buffer = AuditBuffer::default();
    let audit_context = std::sync::Arc::new(AuditContext {
        lg_code: lg_code.to_string(),
        module_id: version.identity.id.clone(),
        module_version: version.identity.version.clone(),
        request_id: request_id.to_string(),
        caller_subject: principal.as_ref().map(|p| p.subject.clone()),
        caller_role: format!("{:?}", caller.role).to_lowercase(),
    });
    // The whole body is here before an instance is taken: a slow client holds a
    // connection and a bounded buffer, never an instance. Then an instance, fairly.
    let request = read_body(app, lg_code, request).await?;
    let _instance = app.governor.admit(lg_code, module).await.inspect_err(|p| refused(app, p))?;
    let platform = app.platform_state(municipality, &routed, caller, audit_context, audit_buffer.clone()).await?;
    let authority = app.edge.origins.authority(lg_code, module);
    let method = request.method().clone();
    let request = into_module_request(request, path, mount, &authority, request_id, form_token.as_deref())?;
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
    // What the module read is on record already: each read's row was written before its
    // data was handed over.
    app.metrics.audited_reads(lg_code.as_str(), &version.identity.id, &audit_buffer.take());
    // What went wrong, for the vendor's log: the module's own error, not the caller's page.
    let failure = match &outcome {
        Err(error) => Some(error.to_string()),
        Ok(_) => None,
    };
    let result = match outcome {
        Ok(response) => {
            // Held until the client has read it: a client that does not read cannot make
            // the host keep answers without bound.
            let mut held = None;
            match app.governor.responses.reserve(lg_code, response.body().len() as u64, &mut held) {
                Err(p) => {
                    refused(app, &p);
                    Err(p)
                }
                Ok(()) => {
                    let mut response = from_module_response(response, mount, held, &span);
                    // Which version answered: operators and tests can see a swap take effect.
                    let served_by = format!("{}@{}", version.identity.id, version.identity.version);
                    if let Ok(value) = HeaderValue::from_str(&served_by) {
                        response.headers_mut().insert("x-nukisashi-version", value);
                    }
                    Ok(response)
                }
            }
        }
        Err(error) => {
            if let InvokeError::Resources(_) = error {
                app.governor.refused("resources");
            }
            tracing::warn!(parent: &span, error = %error, detail = ?error, "module request failed");
            Err(problem_for(&error, &version.identity.id, &version.identity.version))
        }
    };
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(problem) => problem.status,
    };
    span.record("http.status_code", status);
    let source = crate::telemetry::module_logs::Source { module: &version.identity.id, version: &version.identity.version, lg_code: lg_code.as_str(), request_id };
    // The declared route, as in the trace: paths can carry personal identifiers.
    app.module_logs.request(source, method.as_str(), route, status, elapsed, failure);
    app.metrics.request(lg_code.as_str(), &version.identity.id, &version.identity.version, status, elapsed, error_kind);
    result
}

/// The request with its body read whole, within `[limits] request_body_bytes` and
/// `[limits.connections] body_read_ms`; the buffer is released when the body is.
pub(crate) async fn read_body(app: &App, lg_code: &crate::lgcode::LgCode, request: Request) -> Result<Request, Problem> {
    let (parts, body) = request.into_parts();
    let declared = parts.headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let limits = &app.governor.limits;
    let within = std::time::Duration::from_millis(limits.connections.body_read_ms);
    let (bytes, held) = app.governor.bodies.read(lg_code, body, declared, limits.request_body_bytes, within).await.inspect_err(|p| refused(app, p))?;
    Ok(Request::from_parts(parts, Body::new(crate::governor::body::HeldBody::new(bytes, held))))
}

/// Counts a governor's refusal by the limit its problem names.
fn refused(app: &App, problem: &Problem) {
    app.governor.refused(problem.kind.trim_start_matches("urn:nukisashi:problem:"));
}

fn error_kind(error: &InvokeError) -> ErrorKind {
    match error {
        InvokeError::Deadline(_) => ErrorKind::Deadline,
        InvokeError::Memory(_) | InvokeError::Resources(_) => ErrorKind::Memory,
        InvokeError::StackOverflow | InvokeError::Panic(_) | InvokeError::Trap(_) => ErrorKind::Trap,
        InvokeError::ResponseTooLarge(_) | InvokeError::NoResponse | InvokeError::ModuleError(_) => ErrorKind::Module5xx,
        InvokeError::Host(_) | InvokeError::NoSlot(_) => ErrorKind::Host,
    }
}

/// The request as the module sees it: the checked path in its canonical form (relative to
/// the mount point), its own origin as the authority (never what the client wrote in
/// `Host`), the mount point in `x-nukisashi-base-path`, the request id, the browser
/// session's form token if it came with one, and no platform credentials.
fn into_module_request(request: Request, path: &crate::edge::path::ModulePath, mount: &Mount, authority: &str, request_id: &str, form_token: Option<&str>) -> Result<Request, Problem> {
    let (mut parts, body) = request.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| Problem::bad_request("invalid-uri", format!("the request URI cannot be passed on: {e}")))?;
    headers::scrub_request(&mut parts.headers, mount);
    parts.headers.insert(axum::http::header::HOST, HeaderValue::from_str(authority).expect("a module origin is a valid authority"));
    parts.headers.insert("x-nukisashi-base-path", HeaderValue::from_str(mount.base_path()).expect("a validated code and module id"));
    parts.headers.insert("x-request-id", HeaderValue::from_str(request_id).expect("uuid"));
    if let Some(token) = form_token {
        parts.headers.insert(crate::signin::FORM_TOKEN_HEADER, HeaderValue::from_str(token).expect("URL-safe base64"));
    }
    Ok(Request::from_parts(parts, body))
}

/// The module's response as the browser gets it: headers filtered at the edge, marked as
/// the module's own answer.
fn from_module_response(response: http::Response<bytes::Bytes>, mount: &Mount, held: Option<crate::governor::body::Held>, span: &tracing::Span) -> Response {
    let (mut parts, body) = response.into_parts();
    let dropped = headers::filter_response(&mut parts.headers, mount);
    if !dropped.is_empty() {
        tracing::warn!(parent: span, dropped = ?dropped, "module response headers dropped at the edge");
    }
    let mut response = Response::from_parts(parts, Body::new(crate::governor::body::HeldBody::new(body, held)));
    problems::mark_module_answer(&mut response);
    response
}

fn problem_for(error: &InvokeError, module: &str, version: &str) -> Problem {
    if let InvokeError::NoSlot(_) = error {
        return crate::governor::over_capacity("pool", format!("no instance was free for {module} {version}; try again shortly"));
    }
    let (status, slug, title) = match error {
        InvokeError::Deadline(_) => (StatusCode::GATEWAY_TIMEOUT, "deadline-exceeded", "Module deadline exceeded"),
        InvokeError::Memory(_) => (StatusCode::INSUFFICIENT_STORAGE, "memory-limit-exceeded", "Module memory limit exceeded"),
        InvokeError::Resources(_) => (StatusCode::INSUFFICIENT_STORAGE, "resource-limit-exceeded", "Module resource limit exceeded"),
        InvokeError::StackOverflow => (StatusCode::INTERNAL_SERVER_ERROR, "stack-overflow", "Module stack overflow"),
        InvokeError::Panic(_) => (StatusCode::INTERNAL_SERVER_ERROR, "module-panic", "Module panicked"),
        InvokeError::Trap(_) => (StatusCode::INTERNAL_SERVER_ERROR, "module-trap", "Module trapped"),
        InvokeError::ResponseTooLarge(_) => (StatusCode::BAD_GATEWAY, "response-too-large", "Module response too large"),
        InvokeError::NoResponse => (StatusCode::BAD_GATEWAY, "no-response", "Module sent no response"),
        InvokeError::ModuleError(_) => (StatusCode::BAD_GATEWAY, "module-error", "Module failed"),
        InvokeError::Host(_) | InvokeError::NoSlot(_) => (StatusCode::INTERNAL_SERVER_ERROR, "host-error", "Host error"),
    };
    // Panic messages, trap backtraces and host errors stay in the host log (they may quote
    // data and name the module's functions); the caller gets which limit or fault, and the
    // request id to find the rest.
    let detail = match error {
        InvokeError::Panic(_) => format!("the module panicked ({module} {version}); the host log has details under this request id"),
        InvokeError::Trap(_) => format!("the module trapped ({module} {version}); the host log has details under this request id"),
        InvokeError::ModuleError(_) => format!("the module answered with an error ({module} {version}); the host log has details under this request id"),
        InvokeError::Host(_) | InvokeError::NoSlot(_) => format!("the host could not run the module ({module} {version}); the host log has details under this request id"),
        _ => format!("{error} ({module} {version})"),
    };
    Problem::new(status, slug, title, detail)
}
