//! Every refusal on the platform origin is problem+json: handlers answer with
//! [`Problem`]s, and what the framework answers by itself (an unmatched method, a body it
//! could not read, a missing extension) is turned into one here, keeping the status, the
//! headers that go with it (`Allow`, `WWW-Authenticate`) and the framework's explanation.
//! A module's own answers are left alone.

use super::ModuleAnswer;
use crate::api::problem::Problem;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The most of a framework error body kept as the problem's detail.
const DETAIL_BYTES: usize = 1024;

pub async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem || response.extensions().get::<ModuleAnswer>().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let (slug, title) = kind_of(status);
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        text.chars().take(DETAIL_BYTES).collect()
    };
    let mut problem = Problem::new(status, slug, title, detail).into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::CONNECTION] {
        if let Some(value) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body was not read: the connection cannot carry another request.
        problem.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    problem
}

/// The problem `type` slug and title for a refusal the framework made with `status`.
pub fn kind_of(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("bad-request", "Bad request"),
        StatusCode::NOT_FOUND => ("no-route", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", "Request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("invalid-body", "Invalid request body"),
        StatusCode::LENGTH_REQUIRED => ("length-required", "Length required"),
        s if s.is_server_error() => ("internal", "Internal error"),
        _ => ("refused", "Request refused"),
    }
}

/// Marks a module's response so [`as_problem`] passes it through.
pub fn mark_module_answer(response: &mut Response<Body>) {
    response.extensions_mut().insert(ModuleAnswer);
}

/// Marks a page for people (sign-in's) so [`as_problem`] passes it through.
pub fn mark_page(response: &mut Response<Body>) {
    response.extensions_mut().insert(ModuleAnswer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn framework_refusals_become_problems_and_module_answers_stay() {
        let plain = (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")], "").into_response();
        let mapped = as_problem(plain).await;
        assert_eq!(mapped.status(), 405);
        assert_eq!(mapped.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(mapped.headers()[header::ALLOW], "GET");
        let body = axum::body::to_bytes(mapped.into_body(), 4096).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "urn:nukisashi:problem:method-not-allowed");

        let mut module = (StatusCode::NOT_FOUND, "<h1>ページがありません</h1>").into_response();
        mark_module_answer(&mut module);
        let kept = as_problem(module).await;
        assert_ne!(kept.headers().get(header::CONTENT_TYPE).unwrap(), "application/problem+json");
    }
}
