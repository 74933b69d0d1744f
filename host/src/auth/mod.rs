//! Who may do what: JWT bearer tokens, verified once at the edge, turned into a
//! [`Principal`] with a role bound to a vendor or a municipality.
//!
//! Keys: an HS256 secret the host creates on first run (for laptops and the CLI's
//! `token mint`), plus any number of external identity providers (RS256/ES256 keys from a
//! PEM or JWKS file) with their own issuer and audience. Each key only accepts its own
//! algorithm, so `alg: none` and HS/RS confusion fail verification. Every refusal is logged
//! with its reason.

mod keys;
mod policy;

pub use keys::{AuthSettings, Authenticator, Claims, LOCAL_AUDIENCE, LOCAL_ISSUER, Provider, SignIn, local_secret, mint, provider_keys, write_private};
pub use policy::{AccessLevel, Principal, Role};
pub(crate) use keys::{Assertions, refusal_reason, validation, verified_principal};

use crate::api::problem::Problem;
use axum::http::StatusCode;

/// Why a request was refused authentication or authorization; logged, then answered.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
}

impl AuthError {
    /// The refusal as problem+json, with the RFC 6750 `WWW-Authenticate` challenge that
    /// tells a client what to do (sign in, or get another token).
    pub fn into_problem(self) -> Problem {
        let www = axum::http::header::WWW_AUTHENTICATE;
        match self {
            AuthError::Missing => Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Sign-in required", "this endpoint needs a bearer token")
                .with_header(www, "Bearer realm=\"nukisashi\""),
            AuthError::Invalid(why) => {
                let challenge = format!("Bearer realm=\"nukisashi\", error=\"invalid_token\", error_description=\"{}\"", challenge_text(&why));
                Problem::new(StatusCode::UNAUTHORIZED, "invalid-token", "Invalid token", format!("the bearer token was refused: {why}")).with_header(www, &challenge)
            }
            AuthError::Forbidden(why) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", why).with_header(www, "Bearer realm=\"nukisashi\", error=\"insufficient_scope\"")
            }
        }
    }
}

/// Text for a quoted-string in a challenge: printable ASCII without quotes or backslashes.
fn challenge_text(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').filter(|c| !matches!(c, '"' | '\\')).take(200).collect()
}
