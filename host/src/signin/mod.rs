//! Browser sign-in at the edge: once per municipality, for every module of it. See
//! "Browser sign-in" in docs/ARCHITECTURE.md.
//!
//! Each module is its own origin, so no one cookie can serve them all. The municipality's
//! session lives on the platform origin (cookie `nukisashi_signin`, path `/signin/{lg_code}/`);
//! each module origin gets a cookie of its own (`nukisashi_session`), which the database maps
//! to (session, origin) and which is good on that origin only. Every cookie is HttpOnly,
//! SameSite=Lax, host-only, and Secure under https; the database keeps only their SHA-256.
//!
//! 1. A browser asking a signed-in route with no session is sent (303) to
//!    `{module origin}/.nukisashi/signin?return_to=` (a form it posted is kept, see step 5),
//!    which sets the origin's pending-sign-in cookie and sends it on to
//!    `{platform}/signin/{lg_code}/`.
//! 2. There, a valid platform session gets a one-time handoff code (60 s) to the module
//!    origin at once. Otherwise the host runs the authorization-code flow with PKCE, `state`
//!    and `nonce` against the municipality's provider ([`oidc`]). The flow is kept in the
//!    browser that started it, in a flow cookie signed with the host's secret, so an
//!    anonymous client makes the host store nothing; the callback checks `state` against
//!    it, deletes it, exchanges the code server-side and verifies the ID token; a flow
//!    makes one session at most, so a kept copy of its cookie is good for nothing.
//! 3. `{module origin}/.nukisashi/session?code=` takes the handoff code (single use, bound to
//!    that origin and to the pending-sign-in cookie of the browser that started, so nobody can
//!    sign another browser in as themselves), sets the origin's cookie and returns to the page.
//! 4. The gateway then finds the principal from the cookie ([`browser_session`]); modules
//!    see only the verified claims through `identity`, never a cookie or a token. A
//!    state-changing request with a session cookie must come from the module's own origin
//!    (exactly one `Origin`, or `Sec-Fetch-Site: same-origin`), on top of SameSite=Lax.
//!    The module also gets the session's form token ([`FORM_TOKEN_HEADER`]), which the SDK
//!    puts in every form it renders and checks on every form posted with the session.
//! 5. A form posted from the module's own pages before sign-in (urlencoded, bounded) is
//!    kept for ten minutes and posted again from the module origin after sign-in, by the
//!    browser that posted it. A cross-site post is never kept: it would be a way round 4.
//! 6. `POST {module origin}/.nukisashi/signout` deletes the session: every origin and every
//!    replica refuse its cookies from then on. Sessions end after `[sign_in] idle_seconds`
//!    without a request and `absolute_seconds` after sign-in.

pub mod demo_idp;
pub mod oidc;

use crate::api::problem::Problem;
use crate::app::App;
use crate::auth::Principal;
use crate::edge::Target;
use crate::lgcode::LgCode;
use crate::store::sign_in::{Handoff, Replay};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crate::edge::pages;
use oidc::OidcProvider;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// `[sign_in]` in the settings file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignInSettings {
    /// A session ends after this long without a request (30 minutes).
    pub idle_seconds: i64,
    /// … and this long after sign-in, however busy (8 hours: a working day).
    pub absolute_seconds: i64,
}

impl Default for SignInSettings {
    fn default() -> Self {
        Self { idle_seconds: 30 * 60, absolute_seconds: 8 * 3600 }
    }
}

/// The platform origin's session cookie (path `/signin/{lg_code}/`).
const PLATFORM_COOKIE: &str = "nukisashi_signin";
/// The flow in progress, kept by the browser that started it (path `/signin/{lg_code}/`).
const FLOW_COOKIE: &str = "nukisashi_flow";
/// The audience of flow cookies: no API takes one for a bearer token.
const FLOW_AUDIENCE: &str = "urn:nukisashi:sign-in-flow";
/// A module origin's session cookie.
const ORIGIN_COOKIE: &str = "nukisashi_session";
/// A module origin's pending-sign-in cookie (path `/.nukisashi/`).
const PENDING_COOKIE: &str = "nukisashi_pending";
/// Where sign-in lives on module origins; modules never see these paths (nor any path
/// whose first segment is this one in another spelling: the host answers those with 404).
pub const RESERVED_PREFIX: &str = "/.nukisashi/";
pub const RESERVED_SEGMENT: &str = ".nukisashi";
/// The request header that gives a module the form token of the browser's session on its
/// origin (the SDK's `Request::form_token_field`); set by the host only, never by a client.
pub const FORM_TOKEN_HEADER: &str = "x-nukisashi-form-token";
/// The form field the SDK puts the token in (the host's replay page sets it too).
const FORM_TOKEN_FIELD: &str = "nukisashi_form_token";

/// How long a flow may take at the provider.
const FLOW_SECONDS: i64 = 600;
/// How long a handoff code is good for.
const HANDOFF_SECONDS: i64 = 60;
/// How long a form posted before sign-in is kept.
const REPLAY_SECONDS: i64 = 600;
/// The largest form kept for after sign-in.
const REPLAY_BYTES: usize = 16 * 1024;
/// Forms kept per module origin (what anonymous clients can make the database hold), and
/// handoff codes open per session.
const WAITING_REPLAYS: i64 = 1_000;
const OPEN_HANDOFFS: i64 = 20;
/// The idle clock is written at most this often.
const TOUCH_SECONDS: i64 = 60;

/// The identity providers browsers sign in with, and the session lifetimes.
pub struct SignIn {
    providers: Vec<OidcProvider>,
    settings: SignInSettings,
    /// Signs and checks flow cookies (HS256 with the host's secret, which replicas share).
    flow_keys: (jsonwebtoken::EncodingKey, jsonwebtoken::DecodingKey),
    /// Derives form tokens (HMAC-SHA256 with the host's secret, so every replica agrees).
    form_key: Vec<u8>,
    /// When this host last deleted expired sessions.
    last_swept: std::sync::atomic::AtomicI64,
    /// The development provider, with `--demo` on loopback only.
    pub demo: Option<demo_idp::DemoIdp>,
}

impl SignIn {
    pub fn new(settings: &crate::settings::Settings) -> anyhow::Result<Self> {
        let mut providers = Vec::new();
        for provider in &settings.auth.providers {
            if let Some(browser) = &provider.browser {
                providers.push(OidcProvider::from_settings(provider, browser, crate::auth::provider_keys(provider)?)?);
            }
        }
        let demo = match (settings.demo, settings.listen.ip().is_loopback()) {
            (true, true) => {
                let demo = demo_idp::DemoIdp::new(&settings.data_dir)?;
                providers.push(demo.provider()?);
                Some(demo)
            }
            (true, false) => {
                tracing::warn!("the demo identity provider is only offered on loopback; listening on {} it is off", settings.listen);
                None
            }
            _ => None,
        };
        let s = &settings.sign_in;
        if s.idle_seconds < 60 || s.absolute_seconds < s.idle_seconds {
            anyhow::bail!("[sign_in] idle_seconds must be at least 60 and absolute_seconds at least idle_seconds");
        }
        let secret = crate::auth::local_secret(&settings.data_dir)?;
        let flow_keys = (jsonwebtoken::EncodingKey::from_secret(&secret), jsonwebtoken::DecodingKey::from_secret(&secret));
        Ok(Self { providers, settings: s.clone(), flow_keys, form_key: secret.to_vec(), last_swept: Default::default(), demo })
    }

    fn offered_at(&self, lg_code: &LgCode) -> Vec<(usize, &OidcProvider)> {
        self.providers.iter().enumerate().filter(|(_, p)| p.lg_codes.contains(lg_code)).collect()
    }

    fn by_issuer(&self, issuer: &str) -> Option<&OidcProvider> {
        self.providers.iter().find(|p| p.issuer == issuer)
    }

    fn sign_flow(&self, flow: &FlowCookie) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), flow, &self.flow_keys.0)?)
    }

    /// The flow the browser's cookie carries, if this host signed it and it has not expired.
    fn read_flow(&self, cookie: &str) -> Option<FlowCookie> {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&[FLOW_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<FlowCookie>(cookie, &self.flow_keys.1, &validation).ok().map(|d| d.claims)
    }

    /// The form token of a module origin's session cookie (by its digest): the same for
    /// every page of that origin while the session lasts, unguessable from elsewhere, and
    /// different on every other origin.
    fn form_token(&self, origin_cookie_digest: &str) -> String {
        use base64::Engine as _;
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.form_key).expect("HMAC takes a key of any length");
        mac.update(b"nukisashi form token\0");
        mac.update(origin_cookie_digest.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether expired sessions should be swept now (at most once a minute per host).
    fn time_to_forget(&self, now: i64) -> bool {
        let last = self.last_swept.load(std::sync::atomic::Ordering::Relaxed);
        now - last >= 60 && self.last_swept.compare_exchange(last, now, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed).is_ok()
    }

    /// Whether a session seen at `now` is still good.
    fn alive(&self, last_seen: i64, expires_at: i64, now: i64) -> bool {
        now <= expires_at && now - last_seen <= self.settings.idle_seconds
    }
}

/// An authorization-code flow in progress, as its cookie carries it.
#[derive(Debug, Serialize, Deserialize)]
struct FlowCookie {
    aud: String,
    exp: i64,
    state: String,
    nonce: String,
    code_verifier: String,
    lg_code: String,
    /// The identity provider's issuer.
    provider: String,
    /// Where to hand the session to: the module, its path, and the module origin's
    /// pending-sign-in binding.
    module: String,
    return_path: String,
    binding: String,
}

/// A random secret for a cookie, a state, a nonce or a code: 256 bits, URL-safe.
pub fn secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a secret.
fn digest(secret: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// What [`secret`] makes: 43 URL-safe base64 characters.
fn is_secret_shaped(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The query's parameters (the first of each name).
fn params(query: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned() {
        out.entry(k).or_insert(v);
    }
    out
}

/// Whether a request comes from a page of `origin` itself.
fn from_own_origin(headers: &HeaderMap, origin: &str) -> bool {
    let mut sent = headers.get_all(header::ORIGIN).iter();
    match (sent.next(), sent.next()) {
        (Some(only), None) => only.as_bytes() == origin.as_bytes(),
        (None, _) => headers.get("sec-fetch-site").is_some_and(|v| v == "same-origin"),
        (Some(_), Some(_)) => false,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The value of cookie `name` the request carries (the first, if several).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` for the platform's cookies: host-only, HttpOnly, SameSite=Lax, Secure
/// under https; `max_age` 0 deletes it, `None` makes it last as long as the browser session.
fn set_cookie(name: &str, value: &str, path: &str, secure: bool, max_age: Option<i64>) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax{secure}{max_age}")).expect("cookie values are URL-safe base64")
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => {
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => pages::refusal(StatusCode::BAD_REQUEST, "戻り先のアドレスが正しくありません。", "はじめのページからやり直してください。", None),
    }
}

/// `{module}--{lg_code}`: how the database names a module origin.
fn origin_key(lg_code: &LgCode, module: &str) -> String {
    format!("{module}--{lg_code}")
}

fn platform_is_https(app: &App) -> bool {
    app.edge.origins.platform_origin().starts_with("https://")
}

fn internal(e: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "sign-in failed on the database");
    pages::refusal(StatusCode::SERVICE_UNAVAILABLE, "ただいまログインを受け付けられません。", "しばらくしてからもう一度お試しください。", None)
}

// ---- the gateway's part -------------------------------------------------------------

/// Why a session-authenticated request was refused before the module saw it.
fn cross_site(origin: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "cross-site-request",
        "Cross-site request",
        format!("a signed-in browser may change data only from the module's own pages ({origin}); this request came from elsewhere"),
    )
}

/// A browser's sign-in session on a module origin, as the gateway uses it.
pub struct BrowserSession {
    pub principal: Principal,
    /// For the module, in [`FORM_TOKEN_HEADER`].
    pub form_token: String,
}

/// The session of the module origin's session cookie, if it is valid here. A
/// state-changing request that carries it must come from the module's own origin.
pub async fn browser_session(app: &App, target: &Target, method: &Method, headers: &HeaderMap) -> Result<Option<BrowserSession>, Problem> {
    let Some(value) = cookie(headers, ORIGIN_COOKIE) else { return Ok(None) };
    let cookie_digest = digest(&value);
    let Some(session) = app.db.origin_session(&cookie_digest, &origin_key(&target.lg_code, &target.module)).await? else {
        return Ok(None);
    };
    let now = now();
    if !app.sign_in.alive(session.last_seen, session.expires_at, now) {
        return Ok(None);
    }
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let origin = app.edge.origins.origin(&target.lg_code, &target.module);
        if !from_own_origin(headers, &origin) {
            return Err(cross_site(&origin));
        }
    }
    if now - session.last_seen >= TOUCH_SECONDS {
        app.db.touch_sign_in_session(&session.id_hash, now).await?;
    }
    Ok(Some(BrowserSession { principal: session.principal, form_token: app.sign_in.form_token(&cookie_digest) }))
}

/// A browser is asking a signed-in route without a session: where to send it, with a form
/// it posted kept for after sign-in. `None` where there is no such way on: API clients (401
/// problem+json), the path form, and posts that are not urlencoded forms (a browser gets
/// the 401 as a page with a 「ログイン」 link).
pub async fn send_to_sign_in(app: &App, target: &Target, request: Request) -> Result<Option<Response>, Problem> {
    if target.mount != crate::edge::Mount::Origin || !pages::wants_html(request.headers()) {
        return Ok(None);
    }
    let path = match request.uri().query() {
        Some(q) => format!("{}?{q}", target.path.as_str()),
        None => target.path.as_str().to_string(),
    };
    match *request.method() {
        Method::GET | Method::HEAD => Ok(Some(see_other(&signin_link(&path)))),
        Method::POST => {
            let is_form = request.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().to_ascii_lowercase().starts_with(b"application/x-www-form-urlencoded"));
            if !is_form {
                return Ok(None);
            }
            // Only a form from the module's own pages is kept: a cross-site post (which
            // SameSite=Lax sends without the session cookie) replayed after sign-in would be
            // exactly the request the same-origin check refuses.
            let own = app.edge.origins.origin(&target.lg_code, &target.module);
            if !from_own_origin(request.headers(), &own) {
                return Err(cross_site(&own));
            }
            let origin = origin_key(&target.lg_code, &target.module);
            let secure = app.edge.origins.is_https();
            let pending = cookie(request.headers(), PENDING_COOKIE).filter(|v| is_secret_shaped(v)).unwrap_or_else(secret);
            let request = crate::api::gateway::read_body(app, &target.lg_code, request).await?;
            let body = axum::body::to_bytes(request.into_body(), REPLAY_BYTES + 1).await.unwrap_or_default();
            let now = now();
            if body.len() > REPLAY_BYTES || app.db.waiting_sign_in_replays(&origin, now).await? >= WAITING_REPLAYS {
                // Too much to keep: sign in first, then send it again.
                return Ok(Some(see_other(&signin_link(&path))));
            }
            let Ok(body) = String::from_utf8(body.to_vec()) else { return Err(Problem::bad_request("invalid-form", "the form is not UTF-8")) };
            let id = secret();
            let replay = Replay { binding: digest(&pending), origin, path, body, expires_at: now + REPLAY_SECONDS };
            app.db.insert_sign_in_replay(&digest(&id), &replay).await?;
            let mut response = see_other(&signin_link(&format!("{RESERVED_PREFIX}replay?id={id}")));
            response.headers_mut().append(header::SET_COOKIE, set_cookie(PENDING_COOKIE, &pending, RESERVED_PREFIX, secure, Some(FLOW_SECONDS)));
            Ok(Some(response))
        }
        _ => Ok(None),
    }
}

/// The module origin's own link that starts sign-in and comes back to `return_to` (a path).
pub fn signin_link(return_to: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("return_to", return_to).finish();
    format!("{RESERVED_PREFIX}signin?{query}")
}

// ---- the module origin's part (`/.nukisashi/…`) -------------------------------------------

/// Serves the reserved paths on a module origin.
pub async fn module_origin(app: &Arc<App>, lg_code: LgCode, module: String, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let params = params(request.uri().query());
    let result = match (request.method().clone(), path.strip_prefix(RESERVED_PREFIX).unwrap_or("")) {
        (Method::GET, "signin") => Ok(begin_at_origin(app, &lg_code, &module, request.headers(), params.get("return_to").map(String::as_str))),
        (Method::GET, "session") => arrive(app, &lg_code, &module, request.headers(), params.get("code").map(String::as_str).unwrap_or("")).await,
        (Method::GET, "replay") => replay(app, &lg_code, &module, request.headers(), params.get("id").map(String::as_str).unwrap_or("")).await,
        (Method::POST, "signout") => sign_out(app, &lg_code, &module, request.headers()).await,
        (Method::GET, "signout") => Ok(pages::page(
            StatusCode::OK,
            "ログアウト",
            "<p>この自治体のすべてのサービスからログアウトします。</p><form method=\"post\" action=\"/.nukisashi/signout\"><button type=\"submit\">ログアウトする</button></form>",
        )),
        _ => Ok(pages::page(StatusCode::NOT_FOUND, "ページが見つかりません", "<p>このアドレスはありません。</p><p><a href=\"/\">はじめのページへ</a></p>")),
    };
    result.unwrap_or_else(internal)
}

/// `/.nukisashi/signin?return_to=/path`: marks this browser as the one signing in (the
/// pending cookie), then on to the platform's sign-in for the municipality.
fn begin_at_origin(app: &App, lg_code: &LgCode, module: &str, headers: &HeaderMap, return_to: Option<&str>) -> Response {
    let return_to = return_to.filter(|p| is_local_path(p)).unwrap_or("/");
    let pending = cookie(headers, PENDING_COOKIE).filter(|v| is_secret_shaped(v)).unwrap_or_else(secret);
    let origin = app.edge.origins.origin(lg_code, module);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &format!("{origin}{return_to}"))
        .append_pair("binding", &digest(&pending))
        .finish();
    let mut response = see_other(&format!("{}/signin/{lg_code}/?{query}", app.edge.origins.platform_origin()));
    response.headers_mut().append(header::SET_COOKIE, set_cookie(PENDING_COOKIE, &pending, RESERVED_PREFIX, app.edge.origins.is_https(), Some(FLOW_SECONDS)));
    response
}

/// The longest path a sign-in returns to (it travels in the flow cookie).
const MAX_RETURN_PATH: usize = 1024;

/// A path on this origin (not `//host`, not a scheme, no backslashes or controls).
fn is_local_path(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//") && !path.bytes().any(|b| b == b'\\' || b.is_ascii_control()) && path.len() <= MAX_RETURN_PATH
}

/// `/.nukisashi/session?code=`: the handoff from the platform origin.
async fn arrive(app: &App, lg_code: &LgCode, module: &str, headers: &HeaderMap, code: &str) -> anyhow::Result<Response> {
    let origin = origin_key(lg_code, module);
    let pending = cookie(headers, PENDING_COOKIE).map(|p| digest(&p)).unwrap_or_default();
    let Some(handoff) = app.db.take_sign_in_handoff(&digest(code), &origin, &pending, now()).await? else {
        tracing::warn!(origin, "a sign-in handoff was refused: unknown, used, expired, another origin's, or not the browser that started it");
        return Ok(pages::refusal(StatusCode::BAD_REQUEST, "このログインは無効か、期限が切れています。", "もう一度ログインしてください。", Some("/")));
    };
    let value = secret();
    app.db.insert_sign_in_origin(&digest(&value), &handoff.session_hash, &origin).await?;
    let mut response = see_other(&handoff.return_path);
    response.headers_mut().append(header::SET_COOKIE, set_cookie(ORIGIN_COOKIE, &value, "/", app.edge.origins.is_https(), None));
    Ok(response)
}

/// `/.nukisashi/replay?id=`: the form this browser posted before signing in, posted again
/// from this origin (by script, or by the person pressing the button).
async fn replay(app: &App, lg_code: &LgCode, module: &str, headers: &HeaderMap, id: &str) -> anyhow::Result<Response> {
    // Only this browser, on this origin, takes it: anyone else's attempt leaves it be.
    let pending = cookie(headers, PENDING_COOKIE).map(|p| digest(&p)).unwrap_or_default();
    let Some(replay) = app.db.take_sign_in_replay(&digest(id), &origin_key(lg_code, module), &pending, now()).await? else {
        return Ok(pages::page(
            StatusCode::NOT_FOUND,
            "送信を続けられません",
            "<p>送信しようとした内容は見つかりませんでした（期限切れか、送信済みか、このブラウザーで入力されたものではありません）。</p><p>お手数ですが、もう一度入力してください。</p><p><a href=\"/\">はじめのページへ</a></p>",
        ));
    };
    // The form was posted before there was a session, so it carries no form token: it gets
    // this session's (this browser proved it posted the form, by the pending cookie).
    let token = cookie(headers, ORIGIN_COOKIE).map(|c| app.sign_in.form_token(&digest(&c))).unwrap_or_default();
    let fields: String = url::form_urlencoded::parse(replay.body.as_bytes())
        .filter(|(k, _)| k != FORM_TOKEN_FIELD)
        .chain([(FORM_TOKEN_FIELD.into(), token.into())])
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", pages::escape(&k), pages::escape(&v)))
        .collect();
    let body = format!(
        "<p>ログインしました。入力された内容を送信します。</p><form id=\"replay\" method=\"post\" action=\"{}\">{fields}<button type=\"submit\">送信を続ける</button></form>",
        pages::escape(&replay.path)
    );
    Ok(pages::page_with_script(StatusCode::OK, "送信を続けます", &body, Some("document.getElementById('replay').submit();")))
}

/// `POST /.nukisashi/signout`: ends the session everywhere.
async fn sign_out(app: &App, lg_code: &LgCode, module: &str, headers: &HeaderMap) -> anyhow::Result<Response> {
    let origin = app.edge.origins.origin(lg_code, module);
    if headers.get(header::ORIGIN).is_some_and(|o| o.as_bytes() != origin.as_bytes()) {
        return Ok(cross_site(&origin).into_response());
    }
    if let Some(value) = cookie(headers, ORIGIN_COOKIE) {
        if let Some(session) = app.db.origin_session(&digest(&value), &origin_key(lg_code, module)).await? {
            app.db.end_sign_in_session(&session.id_hash).await?;
            tracing::info!(lg_code = %lg_code, subject = %session.principal.subject, "signed out");
        }
    }
    let mut response = pages::page(
        StatusCode::OK,
        "ログアウトしました",
        "<p>ログアウトしました。この自治体のすべてのサービスからログアウトしています。</p><p><a href=\"/\">はじめのページへ</a></p>",
    );
    response.headers_mut().append(header::SET_COOKIE, set_cookie(ORIGIN_COOKIE, "", "/", app.edge.origins.is_https(), Some(0)));
    Ok(response)
}

// ---- the platform origin's part (`/signin/{lg_code}/…`) --------------------------------

/// The sign-in routes on the platform origin (and the demo provider's, when it runs).
pub fn routes() -> axum::Router<Arc<App>> {
    use axum::routing::get;
    let router = axum::Router::new().route("/signin/{lg_code}/", get(begin)).route("/signin/{lg_code}/callback", get(callback));
    router.merge(demo_idp::routes())
}

/// `GET /signin/{lg_code}/?return_to=&binding=[&provider=]`: hand the platform session to
/// the module origin, or start signing in with the municipality's provider.
async fn begin(State(app): State<Arc<App>>, Path(lg_code): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let q = params(query.as_deref());
    let Ok(lg_code) = LgCode::parse(&lg_code) else {
        return pages::refusal(StatusCode::NOT_FOUND, "この自治体コードは正しくありません。", "アドレスを確かめてください。", None);
    };
    if app.require_municipality(&lg_code).await.is_err() {
        return pages::refusal(StatusCode::NOT_FOUND, "この自治体はこの基盤に登録されていません。", "アドレスを確かめてください。", None);
    }
    let Some((module, return_path)) = q.get("return_to").and_then(|r| module_return(&app, &lg_code, r)) else {
        return pages::refusal(StatusCode::BAD_REQUEST, "ログイン後の戻り先が、この自治体のサービスではありません。", "サービスのページにある「ログイン」から始めてください。", None);
    };
    let Some(binding) = q.get("binding").filter(|b| b.len() == 64 && b.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))) else {
        return pages::refusal(StatusCode::BAD_REQUEST, "ログインの手続きが途中から始まっています。", "サービスのページにある「ログイン」から始めてください。", None);
    };
    let chosen = q.get("provider").and_then(|p| p.parse::<usize>().ok());
    let back = format!("{}{return_path}", app.edge.origins.origin(&lg_code, &module));
    match begin_inner(&app, &lg_code, &module, &return_path, binding, chosen, &headers).await {
        Ok(response) => response,
        Err(Refused::Busy(why)) => {
            tracing::warn!(lg_code = %lg_code, reason = %why, "sign-in refused");
            pages::refusal(StatusCode::TOO_MANY_REQUESTS, "ログインの手続きが多すぎます。", "開いているログイン画面を閉じて、しばらくしてからもう一度お試しください。", Some(&back))
        }
        Err(Refused::Provider(why)) => {
            tracing::warn!(lg_code = %lg_code, reason = %why, "sign-in could not start: the identity provider");
            pages::refusal(StatusCode::BAD_GATEWAY, "認証サービスにつながりませんでした。", "しばらくしてからもう一度お試しください。", Some(&back))
        }
        Err(Refused::Host(e)) => internal(e),
    }
}

/// Why sign-in could not go on.
enum Refused {
    /// Too many handoffs open for the session.
    Busy(String),
    /// The identity provider could not be reached or understood.
    Provider(String),
    /// This host's database.
    Host(anyhow::Error),
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Refused::Host(e)
    }
}

async fn begin_inner(app: &App, lg_code: &LgCode, module: &str, return_path: &str, binding: &str, chosen: Option<usize>, headers: &HeaderMap) -> Result<Response, Refused> {
    let now = now();
    // Signed in at this municipality already: straight back, with a handoff code.
    if let Some(value) = cookie(headers, PLATFORM_COOKIE) {
        if let Some(session) = app.db.sign_in_session(&digest(&value), lg_code.as_str()).await? {
            if app.sign_in.alive(session.last_seen, session.expires_at, now) {
                return handoff(app, lg_code, module, &session.id_hash, return_path, binding).await;
            }
        }
    }
    let offered = app.sign_in.offered_at(lg_code);
    let provider = match (offered.as_slice(), chosen) {
        ([], _) => {
            return Ok(pages::refusal(StatusCode::SERVICE_UNAVAILABLE, "この自治体では、まだブラウザーでのログインを利用できません。", "自治体の窓口にお問い合わせください。", None));
        }
        ([(_, only)], None) => *only,
        (_, Some(index)) => match offered.iter().find(|(i, _)| *i == index) {
            Some((_, p)) => *p,
            None => return Ok(pages::refusal(StatusCode::BAD_REQUEST, "選ばれた認証サービスは、この自治体では使えません。", "一覧から選び直してください。", None)),
        },
        (several, None) => return Ok(choose_provider(app, lg_code, module, return_path, binding, several)),
    };
    let platform = app.edge.origins.platform_origin();
    let endpoints = provider.endpoints(&platform).await.map_err(Refused::Provider)?;
    let flow = FlowCookie {
        aud: FLOW_AUDIENCE.into(),
        exp: now + FLOW_SECONDS,
        state: secret(),
        nonce: secret(),
        code_verifier: secret(),
        lg_code: lg_code.to_string(),
        provider: provider.issuer.clone(),
        module: module.to_string(),
        return_path: return_path.to_string(),
        binding: binding.to_string(),
    };
    let redirect_uri = format!("{platform}/signin/{lg_code}/callback");
    let location = provider.authorization_url(&endpoints, &redirect_uri, &flow.state, &flow.nonce, &flow.code_verifier).map_err(Refused::Provider)?;
    let mut response = see_other(&location);
    let value = app.sign_in.sign_flow(&flow)?;
    response.headers_mut().append(header::SET_COOKIE, set_cookie(FLOW_COOKIE, &value, &format!("/signin/{lg_code}/"), platform_is_https(app), Some(FLOW_SECONDS)));
    Ok(response)
}

/// The module and path of a `return_to` URL on one of `lg_code`'s module origins.
fn module_return(app: &App, lg_code: &LgCode, return_to: &str) -> Option<(String, String)> {
    let url = url::Url::parse(return_to).ok()?;
    let host = url.host_str()?;
    let label = host.split('.').next()?;
    let (module, code) = label.rsplit_once("--")?;
    if code != lg_code.as_str() || !crate::is_valid_module_id(module) {
        return None;
    }
    if url.origin().ascii_serialization() != app.edge.origins.origin(lg_code, module) || app.live.resolve(module, lg_code).is_none() {
        return None;
    }
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    is_local_path(&path).then(|| (module.to_string(), path))
}

fn choose_provider(app: &App, lg_code: &LgCode, module: &str, return_path: &str, binding: &str, offered: &[(usize, &OidcProvider)]) -> Response {
    let return_to = format!("{}{return_path}", app.edge.origins.origin(lg_code, module));
    let items: String = offered
        .iter()
        .map(|(i, p)| {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &return_to)
                .append_pair("binding", binding)
                .append_pair("provider", &i.to_string())
                .finish();
            format!("<li><a href=\"/signin/{lg_code}/?{}\">{}</a></li>", pages::escape(&query), pages::escape(&p.name))
        })
        .collect();
    let name = app.tenants.get(lg_code).map(|m| m.name.clone()).unwrap_or_default();
    pages::page(StatusCode::OK, &format!("{name} ログイン"), &format!("<p>ログインに使うサービスを選んでください。</p><ul>{items}</ul>"))
}

/// Makes a one-time code that carries `session_hash` to the module origin, and sends the
/// browser there.
async fn handoff(app: &App, lg_code: &LgCode, module: &str, session_hash: &str, return_path: &str, binding: &str) -> Result<Response, Refused> {
    let now = now();
    if app.db.open_sign_in_handoffs(session_hash, now).await? >= OPEN_HANDOFFS {
        return Err(Refused::Busy(format!("{OPEN_HANDOFFS} handoff codes are open for one session")));
    }
    let code = secret();
    let origin = origin_key(lg_code, module);
    let handoff = Handoff { session_hash: session_hash.to_string(), origin, return_path: return_path.to_string(), binding: binding.to_string(), expires_at: now + HANDOFF_SECONDS };
    app.db.insert_sign_in_handoff(&digest(&code), &handoff).await?;
    Ok(see_other(&format!("{}{RESERVED_PREFIX}session?code={code}", app.edge.origins.origin(lg_code, module))))
}

/// `GET /signin/{lg_code}/callback?code=&state=`: the provider's answer. Whatever the
/// outcome, the flow cookie is deleted: a flow ends once.
async fn callback(State(app): State<Arc<App>>, Path(lg_code): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let mut response = finish(&app, &lg_code, params(query.as_deref()), &headers).await;
    if let Ok(lg_code) = LgCode::parse(&lg_code) {
        response.headers_mut().append(header::SET_COOKIE, set_cookie(FLOW_COOKIE, "", &format!("/signin/{lg_code}/"), platform_is_https(&app), Some(0)));
    }
    response
}

async fn finish(app: &App, lg_code: &str, q: HashMap<String, String>, headers: &HeaderMap) -> Response {
    let again = |what: &str| pages::refusal(StatusCode::BAD_REQUEST, what, "サービスのページから、もう一度ログインしてください。", None);
    let Ok(lg_code) = LgCode::parse(lg_code) else { return again("この自治体コードは正しくありません。") };
    let Some(state) = q.get("state") else { return again("認証サービスからの応答に state がありません。") };
    let flow = cookie(headers, FLOW_COOKIE).and_then(|c| app.sign_in.read_flow(&c));
    let Some(flow) = flow.filter(|f| &f.state == state && f.lg_code == lg_code.as_str()) else {
        tracing::warn!(lg_code = %lg_code, "sign-in callback refused: no flow of this browser with that state (forged, replayed, another browser's, or expired)");
        return again("このログインは無効か、すでに使われたか、このブラウザーで始めたものではありません。");
    };
    let back = format!("{}{}", app.edge.origins.origin(&lg_code, &flow.module), flow.return_path);
    if let Some(error) = q.get("error") {
        tracing::info!(lg_code = %lg_code, error, "the identity provider ended the sign-in");
        return pages::refusal(StatusCode::BAD_REQUEST, "ログインは完了しませんでした（取り消されたか、認証サービスが断りました）。", "もう一度お試しください。", Some(&back));
    }
    let Some(provider) = app.sign_in.by_issuer(&flow.provider) else { return again("この認証サービスは、いまは使えません。") };
    let platform = app.edge.origins.platform_origin();
    let redirect_uri = format!("{platform}/signin/{lg_code}/callback");
    let principal = async {
        let endpoints = provider.endpoints(&platform).await?;
        provider.finish(&endpoints, q.get("code").map(String::as_str).unwrap_or(""), &redirect_uri, &flow.code_verifier, &flow.nonce).await
    };
    let principal = match principal.await {
        Ok(p) => p,
        Err(why) => {
            tracing::warn!(lg_code = %lg_code, issuer = %provider.issuer, reason = %why, "sign-in refused");
            return pages::refusal(StatusCode::BAD_REQUEST, "認証サービスからの応答を確認できませんでした。", "もう一度ログインしてください。", Some(&back));
        }
    };
    let value = secret();
    let now = now();
    let signed_in = async {
        if app.sign_in.time_to_forget(now) {
            app.db.forget_expired_sign_ins(now, now - app.sign_in.settings.idle_seconds).await?;
        }
        app.db.insert_sign_in_session(&digest(&value), &digest(&flow.state), lg_code.as_str(), &principal, now, now + app.sign_in.settings.absolute_seconds).await
    };
    match signed_in.await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(lg_code = %lg_code, "sign-in callback refused: its flow had signed in already (a flow cookie used again)");
            return again("このログインは無効か、すでに使われたか、このブラウザーで始めたものではありません。");
        }
        Err(e) => return internal(e),
    }
    tracing::info!(lg_code = %lg_code, subject = %principal.subject, role = ?principal.role, "signed in");
    let mut response = match handoff(app, &lg_code, &flow.module, &digest(&value), &flow.return_path, &flow.binding).await {
        Ok(response) => response,
        Err(Refused::Host(e)) => return internal(e),
        Err(Refused::Busy(_) | Refused::Provider(_)) => return again("ログインの手続きが多すぎます。"),
    };
    response.headers_mut().append(header::SET_COOKIE, set_cookie(PLATFORM_COOKIE, &value, &format!("/signin/{lg_code}/"), platform_is_https(app), None));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_on_the_origin() {
        assert!(is_local_path("/donations?x=1"));
        assert!(!is_local_path("//evil.example/"));
        assert!(!is_local_path("/\\evil.example"));
        assert!(!is_local_path("https://evil.example/"));
        assert!(!is_local_path("/a\nb"));
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("nukisashi_session_x=1; nukisashi_session=abc; other=2"));
        assert_eq!(cookie(&headers, ORIGIN_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
        let set = set_cookie(ORIGIN_COOKIE, "v", "/", true, Some(0));
        assert_eq!(set, "nukisashi_session=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=0");
    }
}

