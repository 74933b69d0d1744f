//! Bearer tokens at the API edge: the `Caller` extractor, and the refusal log.

use super::problem::Problem;
use crate::app::App;
use crate::auth::{AuthError, Principal};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::sync::Arc;

/// A verified principal; extracting it refuses the request (401) when the token is
/// missing or invalid, and logs why.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        match app.optional_principal(&parts.headers) {
            Ok(Some(principal)) => Ok(Caller(principal)),
            Ok(None) => {
                tracing::warn!(path = %parts.uri.path(), reason = "no bearer token", "refused request");
                Err(AuthError::Missing.into_problem())
            }
            Err(e) => Err(e.into_problem()),
        }
    }
}

impl App {
    /// The verified caller if the request carries a bearer token; an error (logged with
    /// its reason) if the token is present but invalid.
    pub fn optional_principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, AuthError> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| AuthError::Invalid("the Authorization header is not `Bearer <token>`".into()));
        let result = token.and_then(|t| self.auth.verify(t.trim()));
        match result {
            Ok(principal) => Ok(Some(principal)),
            Err(e) => {
                tracing::warn!(reason = %e, "failed login: token refused");
                Err(e)
            }
        }
    }
}

/// Logs an authorization refusal and turns it into a problem.
pub fn refused(principal: &Principal, error: AuthError) -> Problem {
    tracing::warn!(subject = %principal.subject, role = ?principal.role, reason = %error, "refused authorization");
    error.into_problem()
}
