//! The web console: a few static files compiled into the binary and served at
//! `/console/`. The console is a client of the REST API like any other (the user's
//! token, the same authorization), so this module only serves files, and the list of
//! identity providers it may sign in with.

use crate::app::App;
use crate::auth::SignIn;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

/// (file name, content type, contents)
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../console/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../console/app.js")),
    ("i18n.js", "text/javascript; charset=utf-8", include_str!("../../console/i18n.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../console/style.css")),
];

/// Scripts and styles only from this host; no inline script; the API on the same origin,
/// and the sign-in providers' token endpoints.
fn csp(sign_in: &[SignIn]) -> String {
    let mut connect = String::from("'self'");
    for provider in sign_in {
        connect.push(' ');
        connect.push_str(&provider.token_origin());
    }
    format!("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
}

pub async fn index(app: State<Arc<App>>) -> Response {
    file(app, Path("index.html".to_string())).await
}

/// The identity providers the sign-in page offers (nothing secret: a public client's
/// endpoints and id).
pub async fn sign_in_providers(State(app): State<Arc<App>>) -> Json<Vec<SignIn>> {
    Json(app.auth.sign_in.clone())
}

pub async fn redirect() -> Redirect {
    Redirect::permanent("/console/")
}

pub async fn file(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(file, _, _)| *file == name) else {
        return super::problem::Problem::not_found("no-console-file", format!("the console has no file `{name}`")).into_response();
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Origins are ASCII-serialized, so the header is valid; were it not, no provider is allowed.
    let policy = HeaderValue::from_str(&csp(&app.auth.sign_in)).unwrap_or_else(|_| HeaderValue::from_str(&csp(&[])).expect("static policy"));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // The files change with the binary; revalidate rather than serve a stale console.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
