//! The edge: everything between the socket and a resolved (municipality, module, checked
//! path, caller). See "The edge" in docs/ARCHITECTURE.md.
//!
//! Every request enters through [`entry`]. Its origin decides what it may reach: a module
//! origin (`{module}--{lg_code}.{modules domain}`) reaches that one module and nothing
//! else; any other host name is the platform origin, with the console, the API, health,
//! and the path form `/{lg_code}/{module}/…` of modules for API clients (sandboxed in
//! browsers, and browser navigations are sent to the module's own origin). The path is
//! decoded and checked once ([`path::ModulePath`]); the gateway decides the route's auth
//! level on that value and hands the module exactly its canonical form. Response headers
//! are filtered on the way out ([`headers`]), and every refusal on the platform origin is
//! problem+json ([`problems`]).

pub mod headers;
pub mod origin;
pub mod pages;
pub mod path;
pub mod problems;

use crate::api::problem::Problem;
use crate::app::App;
use crate::lgcode::LgCode;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use origin::{Destination, ModuleOrigins};
use path::{ModulePath, PathError};
use std::sync::Arc;

/// `[edge]` in the settings file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeSettings {
    /// How browsers reach module origins, e.g. `https://modules.example.lg.jp`: each module
    /// of each municipality is served at `{scheme}://{module}--{lg_code}.{domain}[:port]/`.
    /// Default: `http://localhost:<listening port>` (`https` with `[tls]`); browsers resolve
    /// every `*.localhost` name to loopback. In production the domain must be a public
    /// suffix (Public Suffix List), or one module's page could set cookies for all of them.
    pub modules_url: Option<String>,
    /// Also serve modules at `/{lg_code}/{module}/…` on the platform's origin, for API
    /// clients and scripts. Safe by construction: those responses run sandboxed in an opaque
    /// origin in browsers, set no cookies, and browser navigations are redirected to the
    /// module's own origin. `false` answers 404 there instead.
    pub path_form: bool,
    /// Host names the console and the API answer on (e.g. `["platform.example.lg.jp"]`);
    /// other names get 421, which keeps a DNS-rebinding page from talking to them.
    /// Health and metrics answer on any name (probes use addresses). Default: the loopback
    /// names when listening on loopback, any name that is not a module's otherwise.
    pub platform_hosts: Option<Vec<String>>,
    /// How browsers reach the platform origin (sign-in pages, the console), e.g.
    /// `https://platform.example.lg.jp`. Default: `http://localhost:<listening port>`
    /// (`https` with `[tls]`).
    pub platform_url: Option<String>,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self { modules_url: None, path_form: true, platform_hosts: None, platform_url: None }
    }
}

/// The edge's view of this host's addresses.
pub struct Edge {
    pub origins: ModuleOrigins,
    pub path_form: bool,
    /// Lower-case host names of the platform; empty: any.
    platform_hosts: Vec<String>,
}

/// Paths that answer on any host name: probes and scrapers address hosts by IP.
const ANY_HOST_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

impl Edge {
    pub fn new(settings: &crate::settings::Settings) -> anyhow::Result<Self> {
        let edge = &settings.edge;
        let platform_hosts = match &edge.platform_hosts {
            Some(names) => names.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect(),
            None if settings.listen.ip().is_loopback() => vec!["127.0.0.1".into(), "localhost".into(), "[::1]".into()],
            None => {
                tracing::warn!("[edge] platform_hosts is not set: the console and the API answer on any host name; set it to the platform's own names");
                Vec::new()
            }
        };
        Ok(Self { origins: ModuleOrigins::new(edge.modules_url.as_deref(), edge.platform_url.as_deref(), settings.tls.is_some())?, path_form: edge.path_form, platform_hosts })
    }

    /// Whether the platform answers `path` on host `name`.
    fn serves_platform(&self, name: Option<&str>, path: &str) -> bool {
        self.platform_hosts.is_empty() || ANY_HOST_PATHS.contains(&path) || name.is_some_and(|n| self.platform_hosts.iter().any(|h| h == n))
    }
}

/// How a module is mounted for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// On its own origin: the module is the whole site.
    Origin,
    /// On the platform's origin under `base` (`/{lg_code}/{module}`).
    Path { base: String },
}

impl Mount {
    /// What the module reads from `x-nukisashi-base-path` to build links.
    pub fn base_path(&self) -> &str {
        match self {
            Mount::Origin => "",
            Mount::Path { base } => base,
        }
    }
}

/// A request the edge has resolved: which municipality and module, and the checked path.
#[derive(Debug)]
pub struct Target {
    pub lg_code: LgCode,
    pub module: String,
    pub path: ModulePath,
    pub mount: Mount,
}

/// Marks a response as already being what the client should see: a module's own answer (a
/// module's 404 page is the module's business) or a page sign-in shows people. The
/// platform's problem mapping leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct ModuleAnswer;

/// The first thing every request meets: which origin it is for. Every answer, the
/// platform's and the modules', is `nosniff`.
pub async fn entry(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = route(&app, request, next).await;
    response.headers_mut().entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    response
}

async fn route(app: &Arc<App>, request: Request, next: Next) -> Response {
    match app.edge.origins.destination(request.uri(), request.headers()) {
        Err(problem) => problem.into_response(),
        Ok(Destination::Module { lg_code, module }) => match ModulePath::parse(request.uri().path()) {
            // Decided on the canonical path: however it is spelt (`%2e`, capitals), the
            // platform's own namespace never reaches a module.
            Ok(path) if path.segments().first().is_some_and(|s| s.eq_ignore_ascii_case(crate::signin::RESERVED_SEGMENT)) => {
                crate::signin::module_origin(app, lg_code, module, request).await
            }
            Ok(path) => crate::api::gateway::serve(app, Target { lg_code, module, path, mount: Mount::Origin }, request).await,
            Err(e) => refused_path(e).into_response(),
        },
        Ok(Destination::Platform(name)) if !app.edge.serves_platform(name.as_deref(), request.uri().path()) => Problem::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected-request",
            "Misdirected request",
            format!("this host does not answer for `{}`; use the platform's own address", name.unwrap_or_default()),
        )
        .into_response(),
        Ok(Destination::Platform(_)) => problems::as_problem(next.run(request).await).await,
    }
}

/// The platform router's fallback: the path form of modules, or 404.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/{lg_code}/{module}/{rest}",
    tag = "modules",
    summary = "A module, in the path form",
    description = "What the module answers, or a refusal by the edge (problem+json). A browser's \
        navigation is redirected (307) to the module's own origin, `{module}--{lg_code}.{modules domain}`.",
    params(
        ("lg_code" = String, Path, pattern = "^[0-9]{6}$", description = "全国地方公共団体コード with its check digit", example = "131016"),
        ("module" = String, Path, pattern = "^[a-z0-9][a-z0-9-]{0,54}$", example = "furusato-tax"),
        ("rest" = String, Path, pattern = "^[A-Za-z0-9._~-]*$", description = "the module's own path (one segment here; any path in practice)"),
    ),
    responses((status = "default", description = "the module's answer, or the edge's refusal as problem+json"))
)]
pub async fn path_form(State(app): State<Arc<App>>, request: Request) -> Response {
    let (lg_code, module, path) = match parse_path_form(request.uri().path()) {
        Ok(Some(parts)) => parts,
        Ok(None) => return Problem::not_found("no-route", "no such path on this host").into_response(),
        Err(problem) => return problem.into_response(),
    };
    let origin = app.edge.origins.origin(&lg_code, &module);
    if !app.edge.path_form {
        return Problem::not_found("no-route", format!("modules are served on their own origin here: {origin}/")).into_response();
    }
    if is_navigation(&request) {
        // A browser opening a module's page: send it to the module's own origin.
        let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        let location = format!("{origin}{path}{query}");
        return match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response(),
            Err(_) => Problem::bad_request("invalid-query", "the query cannot be carried to the module's origin").into_response(),
        };
    }
    let base = format!("/{lg_code}/{module}");
    crate::api::gateway::serve(&app, Target { lg_code, module, path, mount: Mount::Path { base } }, request).await
}

/// A browser's navigation (not a script's fetch or an API client). A form post is one too:
/// `307` makes the browser send it again, to the module's own origin.
fn is_navigation(request: &Request) -> bool {
    request.headers().get("sec-fetch-mode").is_some_and(|v| v == "navigate")
}

/// `/{lg_code}/{module}{rest}` as written on the platform origin: `Ok(None)` when the path
/// does not start with a municipality code at all. The code and the module id are taken
/// as written (no percent-decoding, no case folding), so there is one spelling of each.
fn parse_path_form(raw: &str) -> Result<Option<(LgCode, String, ModulePath)>, Problem> {
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    let (code, rest) = raw.split_once('/').unwrap_or((raw, ""));
    if code.contains('%') {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "non-canonical-path", NON_CANONICAL, "write the municipality code without percent-encoding"));
    }
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let lg_code = crate::api::municipalities::parse_code(code)?;
    let (module, rest) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if module.is_empty() {
        return Err(Problem::not_found("no-route", format!("name a module after the municipality code: /{lg_code}/<module>/")));
    }
    if !crate::is_valid_module_id(module) {
        let lower = module.to_ascii_lowercase();
        let detail = if module.contains('%') {
            "write the module id without percent-encoding".to_string()
        } else if lower != module && crate::is_valid_module_id(&lower) {
            format!("module ids are lower-case: /{lg_code}/{lower}/")
        } else if module.ends_with('.') && crate::is_valid_module_id(module.trim_end_matches('.')) {
            format!("write the module id without the trailing dot: /{lg_code}/{}/", module.trim_end_matches('.'))
        } else {
            return Err(Problem::not_found("unknown-module", format!("`{module}` is not a module id (lower-case letters, digits and `-`)")));
        };
        return Err(Problem::new(StatusCode::BAD_REQUEST, "non-canonical-path", NON_CANONICAL, detail));
    }
    let path = ModulePath::parse(rest).map_err(refused_path)?;
    Ok(Some((lg_code, module.to_string(), path)))
}

/// The title of every `non-canonical-path` refusal.
const NON_CANONICAL: &str = "Path not accepted";

/// 400 (414 when too long) with what was wrong.
pub fn refused_path(error: PathError) -> Problem {
    let status = if error == PathError::TooLong { StatusCode::URI_TOO_LONG } else { StatusCode::BAD_REQUEST };
    Problem::new(status, "non-canonical-path", NON_CANONICAL, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Option<(String, String, String)> {
        parse_path_form(raw).unwrap().map(|(c, m, p)| (c.to_string(), m, p.as_str().to_string()))
    }

    fn refused(raw: &str) -> Problem {
        parse_path_form(raw).expect_err(raw)
    }

    #[test]
    fn the_path_form_has_one_spelling() {
        assert_eq!(parsed("/131016/guestbook"), Some(("131016".into(), "guestbook".into(), "/".into())));
        assert_eq!(parsed("/131016/guestbook/"), Some(("131016".into(), "guestbook".into(), "/".into())));
        assert_eq!(parsed("/131016/e-application/staff"), Some(("131016".into(), "e-application".into(), "/staff".into())));
        assert_eq!(parsed("/console/"), None);
        assert_eq!(parsed("/favicon.ico"), None);
        assert!(refused("/131016/Guestbook/").detail.contains("/131016/guestbook/"));
        assert!(refused("/131016/guestbook./").detail.contains("trailing dot"));
        assert!(refused("/131016/%67uestbook/").detail.contains("percent-encoding"));
        assert!(refused("/%31%33%31%30%31%36/guestbook/").detail.contains("percent-encoding"));
        assert_eq!(refused("/131016/e-application//staff").status, 400);
        assert_eq!(refused("/131017/guestbook/").status, 404);
    }
}
