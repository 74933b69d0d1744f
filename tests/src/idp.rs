//! An OAuth 2.0 / OpenID Connect identity provider on loopback for the sign-in tests: the
//! authorization endpoint signs in the configured user at once (as when the user already
//! has a session at the municipality's provider) and redirects back with a code; the token
//! endpoint checks the code, the redirect URI, the client and the PKCE verifier (S256) and
//! answers an RS256 access token with the platform's claims, and, when the request had a
//! `nonce`, an ID token for the client carrying it. Discovery is served at
//! `/.well-known/openid-configuration` with the provider's base URL as its issuer. CORS is
//! open, as public-client token endpoints are.

use anyhow::Result;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "nukisashi-console";

/// A running provider; stops with the test's runtime.
pub struct IdentityProvider {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// How many tokens the token endpoint has issued.
    issued: Arc<Mutex<u32>>,
    claims: Arc<Mutex<Value>>,
    wrong_nonce: Arc<Mutex<bool>>,
}

struct Issuer {
    key: EncodingKey,
    base: String,
    /// The signed-in user's claims (iss, aud, sub, role, lg_code …); iat and exp are added.
    claims: Arc<Mutex<Value>>,
    /// code → (PKCE challenge, redirect URI, nonce)
    codes: Mutex<HashMap<String, (String, String, Option<String>)>>,
    issued: Arc<Mutex<u32>>,
    wrong_nonce: Arc<Mutex<bool>>,
}

impl IdentityProvider {
    /// Starts a provider signing with the PEM RSA private key `key_pem` for the user `claims`.
    pub async fn start(key_pem: &[u8], claims: Value) -> Result<Self> {
        let issued = Arc::new(Mutex::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (claims, wrong_nonce) = (Arc::new(Mutex::new(claims)), Arc::new(Mutex::new(false)));
        let issuer = Arc::new(Issuer {
            key: EncodingKey::from_rsa_pem(key_pem)?,
            base: base.clone(),
            claims: claims.clone(),
            codes: Mutex::default(),
            issued: issued.clone(),
            wrong_nonce: wrong_nonce.clone(),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(issuer);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { base, issued, claims, wrong_nonce })
    }

    pub fn tokens_issued(&self) -> u32 {
        *self.issued.lock().unwrap()
    }

    /// Signs in another user from now on.
    pub fn sign_in_as(&self, claims: Value) {
        *self.claims.lock().unwrap() = claims;
    }

    /// Answers ID tokens with a nonce other than the one asked for (a replayed ID token).
    pub fn answer_wrong_nonce(&self, wrong: bool) {
        *self.wrong_nonce.lock().unwrap() = wrong;
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
    code_challenge_method: String,
    nonce: Option<String>,
}

async fn discovery(State(issuer): State<Arc<Issuer>>) -> Response {
    let base = &issuer.base;
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn authorize(State(issuer): State<Arc<Issuer>>, Query(q): Query<AuthorizeQuery>) -> Response {
    if q.response_type != "code" || q.client_id != CLIENT_ID || q.code_challenge_method != "S256" {
        return (StatusCode::BAD_REQUEST, "unsupported authorization request").into_response();
    }
    let code = uuid::Uuid::new_v4().to_string();
    issuer.codes.lock().unwrap().insert(code.clone(), (q.code_challenge, q.redirect_uri.clone(), q.nonce));
    let back = reqwest::Url::parse_with_params(&q.redirect_uri, [("code", code.as_str()), ("state", q.state.as_str())]).unwrap();
    Redirect::to(back.as_str()).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: String,
    code_verifier: String,
}

async fn token(State(issuer): State<Arc<Issuer>>, Form(f): Form<TokenForm>) -> Response {
    let cors = || [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    let refuse = |why: &str| (StatusCode::BAD_REQUEST, cors(), axum::Json(json!({ "error": "invalid_grant", "error_description": why }))).into_response();
    if f.grant_type != "authorization_code" || f.client_id != CLIENT_ID {
        return refuse("unsupported grant or client");
    }
    // A code is good once.
    let Some((challenge, redirect_uri, nonce)) = issuer.codes.lock().unwrap().remove(&f.code) else { return refuse("unknown or used code") };
    if redirect_uri != f.redirect_uri {
        return refuse("redirect_uri differs from the authorization request");
    }
    if B64.encode(Sha256::digest(f.code_verifier.as_bytes())) != challenge {
        return refuse("code_verifier does not match the challenge");
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = issuer.claims.lock().unwrap().clone();
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 600);
    let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &issuer.key).unwrap();
    let mut answer = json!({ "access_token": jwt, "token_type": "Bearer", "expires_in": 600 });
    if let Some(nonce) = nonce {
        claims["aud"] = json!(f.client_id);
        claims["nonce"] = json!(if *issuer.wrong_nonce.lock().unwrap() { "a-nonce-from-another-sign-in".to_string() } else { nonce });
        answer["id_token"] = json!(jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &issuer.key).unwrap());
    }
    *issuer.issued.lock().unwrap() += 1;
    (cors(), axum::Json(answer)).into_response()
}
