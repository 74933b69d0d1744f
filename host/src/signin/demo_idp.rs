//! A development identity provider for `--demo` on loopback, so a newcomer can sign in as
//! a resident (from the generated registry: the 宛名番号 comes from the claim), a clerk or
//! an administrator of each demo municipality without setting up an IdP. It is marked as
//! a demo on every page, served under `/demo-idp/` only when the host was started with
//! `--demo` on a loopback address, and signs its ID tokens with an Ed25519 key kept in the
//! data directory. Its ID tokens are for this host's sign-in only (their audience is the
//! demo client), not bearer tokens for the API.

use super::oidc::OidcProvider;
use crate::edge::pages::{self, escape};
use crate::app::App;
use crate::auth::{Claims, Provider, Role};
use crate::lgcode::LgCode;
use anyhow::Result;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Its issuer (not a URL: nothing but this host reads it).
pub const ISSUER: &str = "urn:nukisashi:demo-idp";
const CLIENT_ID: &str = "nukisashi-demo";
const PREFIX: &str = "/demo-idp";
/// How long a code is good for.
const CODE_SECONDS: i64 = 60;
/// Demo residents offered per municipality.
const RESIDENTS_SHOWN: u32 = 6;

pub struct DemoIdp {
    signing: jsonwebtoken::EncodingKey,
    verifying: jsonwebtoken::DecodingKey,
    /// Signs codes: a code carries what it was issued for, so issuing one stores nothing
    /// (and no flood of them can crowd out anyone's sign-in).
    code_keys: (jsonwebtoken::EncodingKey, jsonwebtoken::DecodingKey),
    /// Codes exchanged, until they expire: each is good once.
    used: Mutex<HashMap<String, i64>>,
}

/// What a code carries.
#[derive(serde::Serialize, Deserialize)]
struct Code {
    aud: String,
    exp: i64,
    jti: String,
    challenge: String,
    redirect_uri: String,
    claims: Claims,
}

const CODE_AUDIENCE: &str = "urn:nukisashi:demo-idp:code";

impl DemoIdp {
    /// Reads (or creates, 0600) the demo provider's key in `data_dir`.
    pub fn new(data_dir: &std::path::Path) -> Result<Self> {
        let path = data_dir.join("demo-idp.key");
        let seed = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => bytes,
            _ => {
                std::fs::create_dir_all(data_dir)?;
                let _ = std::fs::remove_file(&path);
                let mut seed = vec![0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for the demo key: {e}"))?;
                crate::auth::write_private(&path, &seed)?;
                seed
            }
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display()))?;
        let signing_key = ed25519_dalek::SigningKey::from_bytes(&seed);
        // PKCS#8 v1 for an Ed25519 private key: a fixed prefix, then the 32-byte seed.
        let mut pkcs8 = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        pkcs8.extend_from_slice(&seed);
        Ok(Self {
            signing: jsonwebtoken::EncodingKey::from_ed_der(&pkcs8),
            verifying: jsonwebtoken::DecodingKey::from_ed_der(signing_key.verifying_key().as_bytes()),
            code_keys: {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for the demo codes: {e}"))?;
                (jsonwebtoken::EncodingKey::from_secret(&key), jsonwebtoken::DecodingKey::from_secret(&key))
            },
            used: Mutex::default(),
        })
    }

    /// The provider the host signs in with: residents, staff and admins of the demo
    /// municipalities.
    pub fn provider(&self) -> Result<OidcProvider> {
        let allowance = Provider {
            issuer: ISSUER.into(),
            audience: CLIENT_ID.into(),
            algorithm: "EdDSA".into(),
            roles: vec![Role::Resident, Role::Staff, Role::Admin],
            lg_codes: crate::demo::codes().map(str::to_string).collect(),
            vendors: Vec::new(),
            pem_file: None,
            jwks_file: None,
            sign_in: None,
            browser: None,
        };
        OidcProvider::platform_hosted(ISSUER, "デモ用ログイン（開発用・本番では使えません）", CLIENT_ID, PREFIX, self.verifying.clone(), &allowance)
    }
}

pub fn routes() -> axum::Router<Arc<App>> {
    use axum::routing::{get, post};
    axum::Router::new().route("/demo-idp/authorize", get(authorize).post(choose)).route("/demo-idp/token", post(token))
}

fn demo(app: &App) -> Option<&DemoIdp> {
    app.sign_in.demo.as_ref()
}

fn not_here() -> Response {
    pages::refusal(StatusCode::NOT_FOUND, "デモ用ログインは、このホストでは動いていません。", "`nukisashi serve --demo` をループバックアドレスで起動したときだけ使えます。", None)
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    code_challenge: String,
    code_challenge_method: String,
}

/// The municipality whose callback `redirect_uri` is, if it is this host's.
fn callback_municipality(app: &App, redirect_uri: &str) -> Option<LgCode> {
    let platform = app.edge.origins.platform_origin();
    let code = redirect_uri.strip_prefix(&format!("{platform}/signin/"))?.strip_suffix("/callback")?;
    LgCode::parse(code).ok().filter(|c| crate::demo::codes().any(|d| d == c.as_str()))
}

fn checked(app: &App, q: &AuthorizeQuery) -> Result<LgCode, Response> {
    let bad = |what: &str| pages::refusal(StatusCode::BAD_REQUEST, what, "サービスのページからログインし直してください。", None);
    if q.response_type != "code" || q.client_id != CLIENT_ID || q.code_challenge_method != "S256" || q.code_challenge.len() != 43 || q.state.len() > 256 || q.nonce.len() > 256 {
        return Err(bad("デモ用ログインへの要求が正しくありません（response_type=code、PKCE S256 が必要です）。"));
    }
    callback_municipality(app, &q.redirect_uri).ok_or_else(|| bad("戻り先が、このホストのデモ自治体のログインではありません。"))
}

/// The people one can be, as buttons.
async fn authorize(State(app): State<Arc<App>>, Query(q): Query<AuthorizeQuery>) -> Response {
    if demo(&app).is_none() {
        return not_here();
    }
    let lg_code = match checked(&app, &q) {
        Ok(code) => code,
        Err(refused) => return refused,
    };
    let name = app.tenants.get(&lg_code).map(|m| m.name.clone()).unwrap_or_default();
    let residents = app.db.residents_page(lg_code.as_str(), "", RESIDENTS_SHOWN).await.unwrap_or_default();
    let hidden: String = [
        ("response_type", &q.response_type),
        ("client_id", &q.client_id),
        ("redirect_uri", &q.redirect_uri),
        ("state", &q.state),
        ("nonce", &q.nonce),
        ("code_challenge", &q.code_challenge),
        ("code_challenge_method", &q.code_challenge_method),
    ]
    .iter()
    .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", escape(v)))
    .collect();
    let button = |who: &str, label: &str| format!("<li><form method=\"post\" class=\"inline\">{hidden}<button type=\"submit\" name=\"who\" value=\"{}\">{}</button></form></li>", escape(who), escape(label));
    let people: String = residents.iter().map(|(r, _)| button(&format!("resident:{}", r.addressee_number), &format!("住民 {}（宛名番号 {}）", r.name, r.addressee_number))).collect();
    let staff = button("staff", &format!("{name} 職員（デモ）"));
    let admin = button("admin", &format!("{name} 管理者（デモ）"));
    let body = format!(
        "<p><strong>これは開発用のデモです。</strong>本物の本人確認は行いません。本番の自治体では、その自治体の認証サービスでログインします。</p>\
<h2>住民としてログイン</h2><ul>{people}</ul><h2>職員としてログイン</h2><ul>{staff}{admin}</ul>"
    );
    pages::page(StatusCode::OK, &format!("デモ用ログイン — {name}"), &body)
}

#[derive(Deserialize)]
struct Choice {
    #[serde(flatten)]
    request: AuthorizeQuery,
    who: String,
}

/// The person chosen: a code, back to the host's callback.
async fn choose(State(app): State<Arc<App>>, headers: HeaderMap, Form(choice): Form<Choice>) -> Response {
    let Some(idp) = demo(&app) else { return not_here() };
    let platform = app.edge.origins.platform_origin();
    if headers.get(header::ORIGIN).is_some_and(|o| o.as_bytes() != platform.as_bytes()) {
        return pages::refusal(StatusCode::FORBIDDEN, "ほかのサイトからの送信は受け付けません。", "このページから選び直してください。", None);
    }
    let q = choice.request;
    let lg_code = match checked(&app, &q) {
        Ok(code) => code,
        Err(refused) => return refused,
    };
    let town = app.tenants.get(&lg_code).map(|m| m.name.clone()).unwrap_or_default();
    let (sub, role, name, addressee_number) = match choice.who.split_once(':') {
        Some(("resident", number)) => match app.db.resident(lg_code.as_str(), number).await {
            Ok(Some(r)) => (format!("resident-{lg_code}-{number}"), Role::Resident, r.name, Some(number.to_string())),
            _ => return pages::refusal(StatusCode::BAD_REQUEST, "その住民はデモの住民記録にいません。", "一覧から選び直してください。", None),
        },
        None if choice.who == "staff" => (format!("staff-{lg_code}"), Role::Staff, format!("{town} 職員（デモ）"), None),
        None if choice.who == "admin" => (format!("admin-{lg_code}"), Role::Admin, format!("{town} 管理者（デモ）"), None),
        _ => return pages::refusal(StatusCode::BAD_REQUEST, "選ばれた人がわかりません。", "一覧から選び直してください。", None),
    };
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub,
        role,
        vendor_id: None,
        lg_code: Some(lg_code.to_string()),
        name: Some(name),
        addressee_number,
        iss: ISSUER.into(),
        aud: CLIENT_ID.into(),
        exp: 0,
        iat: 0,
        nonce: Some(q.nonce.clone()),
    };
    let issued = Code { aud: CODE_AUDIENCE.into(), exp: now + CODE_SECONDS, jti: super::secret(), challenge: q.code_challenge, redirect_uri: q.redirect_uri.clone(), claims };
    let Ok(code) = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &issued, &idp.code_keys.0) else {
        return pages::refusal(StatusCode::INTERNAL_SERVER_ERROR, "デモ用ログインでエラーが発生しました。", "もう一度お試しください。", None);
    };
    let Ok(back) = url::Url::parse_with_params(&q.redirect_uri, [("code", code.as_str()), ("state", q.state.as_str())]) else {
        return pages::refusal(StatusCode::BAD_REQUEST, "戻り先のアドレスが正しくありません。", "サービスのページからログインし直してください。", None);
    };
    super::see_other(back.as_str())
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: String,
    code_verifier: String,
}

/// The token endpoint: code + PKCE verifier → an ID token.
async fn token(State(app): State<Arc<App>>, Form(form): Form<TokenForm>) -> Response {
    let refuse = |error: &str| (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "error": error }))).into_response();
    let Some(idp) = demo(&app) else { return refuse("invalid_request") };
    if form.grant_type != "authorization_code" || form.client_id != CLIENT_ID {
        return refuse("unsupported_grant_type");
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[CODE_AUDIENCE]);
    validation.leeway = 0;
    let Ok(issued) = jsonwebtoken::decode::<Code>(&form.code, &idp.code_keys.1, &validation).map(|d| d.claims) else { return refuse("invalid_grant") };
    let now = chrono::Utc::now().timestamp();
    {
        let mut used = idp.used.lock().expect("used demo codes");
        used.retain(|_, exp| *exp >= now);
        // Once only, whether or not this attempt succeeds.
        if used.insert(issued.jti.clone(), issued.exp).is_some() {
            return refuse("invalid_grant");
        }
    }
    if issued.redirect_uri != form.redirect_uri || super::oidc::pkce_challenge(&form.code_verifier) != issued.challenge {
        return refuse("invalid_grant");
    }
    let claims = Claims { iat: now, exp: now + 300, ..issued.claims };
    match jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA), &claims, &idp.signing) {
        Ok(id_token) => axum::Json(serde_json::json!({ "id_token": id_token, "token_type": "Bearer", "expires_in": 300 })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the demo provider cannot sign");
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(serde_json::json!({ "error": "server_error" }))).into_response()
        }
    }
}
