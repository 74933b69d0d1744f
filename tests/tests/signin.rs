//! Browser sign-in at the edge (host/src/signin), tried the way browsers and attackers
//! would: over real HTTP against a real host and an OpenID Connect provider on loopback
//! (discovery, PKCE, state, nonce), with cookies kept per host name like a browser's.

use nukisashi_e2e::browser::{Browser, screenshot_dir};
use nukisashi_e2e::idp::{CLIENT_ID, IdentityProvider};
use nukisashi_e2e::web::{Page, Web};
use nukisashi_e2e::{Backend, Host, HostSpec, business_plugin};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const CHIYODA: &str = "131016";
const PROVIDER: &str = "千代田区 共通認証";

fn resident(sub: &str, name: &str, issuer: &str) -> Value {
    json!({ "iss": issuer, "aud": "nukisashi", "sub": sub, "role": "resident", "lg_code": CHIYODA, "name": name })
}

/// An RSA key pair for the provider, `idp.key` and `idp.pub` in `dir`.
fn provider_keys(dir: &Path) {
    for args in [&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "idp.key"][..], &["pkey", "-in", "idp.key", "-pubout", "-out", "idp.pub"]] {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The provider on loopback, signing in `user`, and a host (with the demo's municipalities,
/// ふるさと納税 and 電子申請) that offers it at 千代田区 besides the demo provider.
async fn provider_and_host(dir: &Path, backend: Backend, user: impl FnOnce(&str) -> Value) -> (IdentityProvider, HostSpec) {
    provider_keys(dir);
    let idp = IdentityProvider::start(&std::fs::read(dir.join("idp.key")).unwrap(), json!({})).await.unwrap();
    idp.sign_in_as(user(&idp.base));
    let settings = format!(
        "[[auth.providers]]\nissuer = \"{}\"\naudience = \"nukisashi\"\nalgorithm = \"RS256\"\npem_file = \"{}\"\n\
         roles = [\"resident\", \"staff\", \"admin\"]\nlg_codes = [\"{CHIYODA}\"]\n\
         [auth.providers.browser]\nname = \"{PROVIDER}\"\nclient_id = \"{CLIENT_ID}\"\n",
        idp.base,
        dir.join("idp.pub").display()
    );
    let mut spec = HostSpec::new(backend, &dir.join("host"), &[]).await.unwrap().settings(&settings);
    spec.plugins = vec![business_plugin(dir, "furusato-tax"), business_plugin(dir, "e-application")];
    (idp, spec)
}

/// The link to our provider on the municipality's choice of providers.
fn provider_link(page: &str) -> String {
    let link = page.split("<a href=\"").skip(1).find(|a| a.contains(PROVIDER)).and_then(|a| a.split('"').next()).expect("a link to the provider");
    link.replace("&amp;", "&")
}

/// Opens `url` and, where the municipality offers several providers, picks ours.
async fn sign_in_and_open(web: &Web, url: &str) -> Page {
    let page = web.open(url).await;
    if !page.body.contains(PROVIDER) || !page.url.contains("/signin/") {
        return page;
    }
    let link = provider_link(&page.body);
    let next = reqwest::Url::parse(&page.url).unwrap().join(&link).unwrap();
    let mut signed_in = web.open(next.as_str()).await;
    let mut hops = page.hops;
    hops.append(&mut signed_in.hops);
    signed_in.hops = hops;
    signed_in
}

fn furusato(host: &Host, path: &str) -> String {
    format!("{}{path}", host.origin(CHIYODA, "furusato-tax"))
}

/// What an API client gets (JSON), with this browser's cookies.
async fn api_json(web: &Web, url: &str) -> Value {
    web.send(reqwest::Method::GET, url, None, &[("accept", "application/json")]).await.json().await.unwrap()
}

async fn api_status(web: &Web, url: &str) -> u16 {
    web.send(reqwest::Method::GET, url, None, &[("accept", "application/json")]).await.status().as_u16()
}

#[tokio::test]
async fn a_resident_signs_in_once_for_every_module_and_signing_out_ends_it_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (idp, spec) = provider_and_host(dir.path(), Backend::Postgres, |iss| resident("ichiro", "千代田 一郎", iss)).await;
    let host = spec.start().unwrap();
    let replica = spec.replica(&dir.path().join("replica")).start().unwrap();
    let web = Web::default();

    // An API client still gets 401 problem+json, not a redirect.
    let api = web.send(reqwest::Method::GET, &furusato(&host, "/donations/mine"), None, &[("accept", "application/json")]).await;
    assert_eq!(api.status(), 401);
    assert!(api.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"));

    // Pages offer sign-in to a visitor, coming back to the same page.
    let catalogue = web.open(&furusato(&host, "/")).await;
    assert!(catalogue.body.contains("<a href=\"/.nukisashi/signin?return_to=/\">ログイン</a>"), "{}", catalogue.body);

    // A browser is sent to sign in, and back to the page it asked for.
    let page = sign_in_and_open(&web, &furusato(&host, "/donations/mine")).await;
    assert_eq!((page.status, page.url.as_str()), (200, furusato(&host, "/donations/mine").as_str()), "{page:?}");
    assert!(page.body.contains("自分の寄附") && page.body.contains("まだ寄附はありません"), "{}", page.body);
    assert_eq!(idp.tokens_issued(), 1);
    let authorize = page.hops.iter().find(|h| h.starts_with(&format!("{}/authorize", idp.base))).expect("the provider was asked");
    for part in ["code_challenge_method=S256", "code_challenge=", "nonce=", "state=", &format!("client_id={CLIENT_ID}")] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    assert!(page.hops.iter().all(|h| !h.contains("id_token") && !h.contains("access_token")), "tokens never travel through the browser");

    let catalogue = web.open(&furusato(&host, "/")).await;
    assert!(catalogue.body.contains("千代田 一郎 さん") && catalogue.body.contains("ログアウト"), "{}", catalogue.body);

    // Another module of the municipality: no second trip to the provider.
    let e_application = format!("{}/applications/mine", host.origin(CHIYODA, "e-application"));
    let page = web.open(&e_application).await;
    assert_eq!((page.status, page.url.as_str()), (200, e_application.as_str()), "{page:?}");
    assert_eq!(idp.tokens_issued(), 1, "signed in once for every module");

    // The replica shares the session (browsers send cookies to every port of a host name).
    let on_replica = format!("{}/donations/mine", replica.origin(CHIYODA, "furusato-tax"));
    assert_eq!(api_status(&web, &on_replica).await, 200);

    // The module origin's cookie is good on its own origin only.
    let stolen = web.cookie(&furusato(&host, "/"), "nukisashi_session").expect("a session cookie");
    let elsewhere = Web::default();
    let other_module = format!("{}/applications/mine", host.origin(CHIYODA, "e-application"));
    elsewhere.set_cookie(&other_module, "nukisashi_session", &stolen);
    assert_eq!(api_status(&elsewhere, &other_module).await, 401);

    // Signing out from a page on the host ends the session everywhere, the replica included.
    let origin = host.origin(CHIYODA, "furusato-tax");
    let out = web.submit(&format!("{origin}/.nukisashi/signout"), &origin, &[]).await;
    assert_eq!(out.status, 200);
    assert!(out.body.contains("ログアウトしました"));
    let thief = Web::default();
    thief.set_cookie(&on_replica, "nukisashi_session", &stolen);
    assert_eq!(api_status(&thief, &on_replica).await, 401, "the replica refuses the ended session");
    assert_eq!(api_status(&web, &e_application).await, 401, "every module's cookie ended with it");
}

#[tokio::test]
async fn forged_callbacks_replayed_codes_and_wrong_nonces_sign_no_one_in() {
    let dir = tempfile::tempdir().unwrap();
    let (idp, spec) = provider_and_host(dir.path(), Backend::Sqlite, |iss| resident("jiro", "千代田 次郎", iss)).await;
    let host = spec.start().unwrap();
    let mine = furusato(&host, "/donations/mine");

    // A callback with a state this host never made.
    let web = Web::default();
    let forged = web.open(&host.url(&format!("/signin/{CHIYODA}/callback?code=stolen&state=forged"))).await;
    assert_eq!(forged.status, 400);
    assert!(forged.body.contains("lang=\"ja\"") && forged.body.contains("無効"), "{}", forged.body);
    assert_eq!(idp.tokens_issued(), 0);

    // The provider's answer delivered to another browser (login CSRF): the flow is bound to
    // the browser that started it.
    let victim = Web::default();
    let attacker = Web::default();
    let started = sign_in_and_open(&attacker, &mine).await;
    assert_eq!(started.status, 200);
    let callback = started.hops.iter().find(|h| h.contains("/callback?")).expect("the callback").clone();
    let replayed = attacker.open(&callback).await;
    assert_eq!(replayed.status, 400, "a used state is refused: {replayed:?}");
    let victim_page = victim.open(&callback).await;
    assert_eq!(victim_page.status, 400);
    assert_eq!(api_status(&victim, &mine).await, 401);

    // The code again, under a fresh state of the attacker's own: the provider refuses it.
    let fresh = Web::default();
    let page = fresh.open(&mine).await;
    let choice = provider_link(&page.body);
    let to_provider = fresh.send(reqwest::Method::GET, &host.url(&choice), None, &[]).await;
    let authorize = to_provider.headers()["location"].to_str().unwrap().to_string();
    let state = reqwest::Url::parse(&authorize).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.to_string();
    let old_code = reqwest::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let issued = idp.tokens_issued();
    let page = fresh.open(&host.url(&format!("/signin/{CHIYODA}/callback?code={old_code}&state={state}"))).await;
    assert_eq!(page.status, 400, "{page:?}");
    assert_eq!(idp.tokens_issued(), issued, "a used code gets no token");
    assert_eq!(api_status(&fresh, &mine).await, 401);

    // A flow cookie kept and used again after its sign-in, with a fresh code: one flow, one
    // session.
    let keeper = Web::default();
    let page = keeper.open(&mine).await;
    let choice = provider_link(&page.body);
    let platform = format!("http://localhost:{}", host.port());
    let to_provider = keeper.send(reqwest::Method::GET, &format!("{platform}{choice}"), None, &[]).await;
    let authorize = to_provider.headers()["location"].to_str().unwrap().to_string();
    let kept = keeper.cookie(&platform, "nukisashi_flow").expect("a flow cookie");
    assert_eq!(keeper.open(&authorize).await.status, 200, "the first sign-in with it succeeds");
    keeper.set_cookie(&platform, "nukisashi_flow", &kept);
    let fresh_code = keeper.send(reqwest::Method::GET, &authorize, None, &[]).await.headers()["location"].to_str().unwrap().to_string();
    let again = keeper.open(&fresh_code).await;
    assert_eq!(again.status, 400, "{again:?}");
    assert!(again.body.contains("すでに使われた"), "{}", again.body);
    assert!(host.log().contains("a flow cookie used again"), "refused as a second use of its flow");

    // An ID token answering another sign-in's nonce.
    idp.answer_wrong_nonce(true);
    let web = Web::default();
    let page = sign_in_and_open(&web, &mine).await;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.body.contains("確認できませんでした"));
    assert_eq!(api_status(&web, &mine).await, 401);
    assert!(host.log().contains("nonce"), "the reason is in the host log");
    idp.answer_wrong_nonce(false);

    // A handoff code made for one browser does not sign another in: the attacker, signed in,
    // asks for a code for a page of another module and sends it to the victim.
    let attacker = Web::default();
    assert_eq!(sign_in_and_open(&attacker, &mine).await.status, 200);
    let e_application = host.origin(CHIYODA, "e-application");
    let start = attacker.send(reqwest::Method::GET, &format!("{e_application}/.nukisashi/signin?return_to=/applications/mine"), None, &[]).await;
    let to_platform = start.headers()["location"].to_str().unwrap().to_string();
    let handed = attacker.send(reqwest::Method::GET, &to_platform, None, &[]).await;
    let code_url = handed.headers()["location"].to_str().unwrap().to_string();
    assert!(code_url.starts_with(&format!("{e_application}/.nukisashi/session?code=")), "{code_url}");
    let victim = Web::default();
    assert!(victim.open(&format!("{e_application}/applications/mine")).await.url.contains("/signin/"), "the victim has a pending sign-in of its own");
    let taken = victim.open(&code_url).await;
    assert_eq!(taken.status, 400, "{taken:?}");
    assert_eq!(api_status(&victim, &format!("{e_application}/applications/mine")).await, 401);
    // The refused attempt leaves the code to the browser it was made for, once.
    assert_eq!(attacker.open(&code_url).await.status, 200);
    assert_eq!(attacker.open(&code_url).await.status, 400);
}

#[tokio::test]
async fn expired_sessions_and_cross_site_posts_are_refused_and_a_posted_form_survives_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let (_idp, spec) = provider_and_host(dir.path(), Backend::Sqlite, |iss| resident("saburo", "千代田 三郎", iss)).await;
    let host = spec.start().unwrap();
    let origin = host.origin(CHIYODA, "furusato-tax");
    let mine = furusato(&host, "/donations/mine");

    // A cross-site form post before sign-in is refused, not kept for after it (SameSite=Lax
    // sends it without the session cookie, so keeping it would replay it as the victim).
    let victim = Web::default();
    let forged = victim.submit(&furusato(&host, "/donations"), "https://evil.example", &[("amount", "999999"), ("name", "攻撃者")]).await;
    assert_eq!(forged.status, 403, "{forged:?}");
    assert!(forged.hops.iter().all(|h| !h.contains("/signin")), "{:?}", forged.hops);

    // Starting sign-ins anonymously stores nothing on the host: the flow is in the browser.
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", host.data_dir.join("nukisashi.db").display())).await.unwrap();
    let rows = || async {
        let mut n = 0i64;
        for table in ["sign_in_sessions", "sign_in_origins", "sign_in_handoffs", "sign_in_replays"] {
            n += sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&db).await.unwrap();
        }
        n
    };
    let before = rows().await;
    for _ in 0..20 {
        let anonymous = Web::default();
        let page = anonymous.open(&mine).await;
        let link = provider_link(&page.body);
        let started = anonymous.send(reqwest::Method::GET, &host.url(&link), None, &[]).await;
        assert_eq!(started.status(), 303);
    }
    assert_eq!(rows().await, before, "twenty sign-ins started, nothing stored");

    // A resident fills in the donation form before signing in: what they typed survives.
    let web = Web::default();
    let form = [("amount", "10000"), ("name", "千代田 三郎"), ("postal_code", "100-0001"), ("address", "東京都千代田区千代田1-1"), ("phone", "03-0000-0000")];
    let posted = web.send(reqwest::Method::POST, &furusato(&host, "/donations"), Some(&form), &[("accept", "text/html"), ("origin", &origin)]).await;
    assert_eq!(posted.status(), 303);
    let to_sign_in = reqwest::Url::parse(&origin).unwrap().join(posted.headers()["location"].to_str().unwrap()).unwrap();
    let kept = to_sign_in.query_pairs().find(|(k, _)| k == "return_to").map(|(_, v)| v.into_owned()).expect("sign-in comes back to the kept form");
    // Another browser that learns the link gets nothing, and takes nothing away.
    assert_eq!(Web::default().open(&format!("{origin}{kept}")).await.status, 404);
    let page = sign_in_and_open(&web, to_sign_in.as_str()).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.url.starts_with(&format!("{origin}/.nukisashi/replay?id=")), "{}", page.url);
    for (name, value) in form {
        assert!(page.body.contains(&format!("name=\"{name}\" value=\"{value}\"")), "{name} kept: {}", page.body);
    }
    // The page posts it again from the module's own origin, with this session's form
    // token added (the form was rendered before there was a session).
    let replayed = page.hidden_fields();
    assert!(replayed.iter().any(|(k, v)| k == "nukisashi_form_token" && v.len() == 43), "{replayed:?}");
    let replayed: Vec<(&str, &str)> = replayed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Without the token, from the right origin and with the session, the module refuses it.
    let tokenless = web.submit(&furusato(&host, "/donations"), &origin, &form).await;
    assert_eq!(tokenless.status, 403, "{tokenless:?}");
    assert!(tokenless.body.contains("lang=\"ja\"") && tokenless.body.contains("ページを開き直して"), "{}", tokenless.body);
    let sent = web.submit(&furusato(&host, "/donations"), &origin, &replayed).await;
    assert!(sent.status < 300, "{sent:?}");
    let donations: Value = api_json(&web, &mine).await;
    assert_eq!(donations.as_array().map(Vec::len), Some(1), "{donations}");
    // A replay link is good once.
    let again = web.open(&page.url).await;
    assert_eq!(again.status, 404);

    // A cross-site form post with the session cookie (SameSite aside), and one without any
    // Origin: refused before the module sees them; a browser is told in Japanese.
    let own: &str = &origin;
    for headers in [vec![("origin", "http://evil.localhost:1")], vec![("origin", "null")], vec![("origin", own), ("origin", "http://evil.localhost:1")], vec![]] {
        let mut all = vec![("accept", "application/json")];
        all.extend(headers.clone());
        let r = web.send(reqwest::Method::POST, &furusato(&host, "/donations"), Some(&form), &all).await;
        assert_eq!(r.status(), 403);
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["type"], "urn:nukisashi:problem:cross-site-request");
        let mut all = vec![("accept", "text/html")];
        all.extend(headers);
        let r = web.send(reqwest::Method::POST, &furusato(&host, "/donations"), Some(&form), &all).await;
        assert_eq!(r.status(), 403);
        let page = r.text().await.unwrap();
        assert!(page.contains("lang=\"ja\"") && page.contains("この操作はできません"), "{page}");
    }
    let donations: Value = api_json(&web, &mine).await;
    assert_eq!(donations.as_array().map(Vec::len), Some(1), "nothing was donated cross-site");

    // The platform's other refusals reach a browser as Japanese pages too.
    let missing = web.open(&format!("{}/", host.origin(CHIYODA, "no-such-module"))).await;
    assert_eq!(missing.status, 404);
    assert!(missing.content_type.starts_with("text/html") && missing.body.contains("ページが見つかりません"), "{missing:?}");
    let api = web.send(reqwest::Method::GET, &format!("{}/", host.origin(CHIYODA, "no-such-module")), None, &[("accept", "application/json")]).await;
    assert!(api.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"));

    // Idle for longer than allowed, and past the absolute expiry: signed out.
    sqlx::query("UPDATE sign_in_sessions SET last_seen = last_seen - 3600").execute(&db).await.unwrap();
    assert_eq!(api_status(&web, &mine).await, 401, "idle past [sign_in] idle_seconds");
    sqlx::query("UPDATE sign_in_sessions SET last_seen = $1, expires_at = $1 - 1").bind(chrono::Utc::now().timestamp()).execute(&db).await.unwrap();
    assert_eq!(api_status(&web, &mine).await, 401, "past [sign_in] absolute_seconds");
    // The browser is sent to sign in again, not shown an error.
    let page = web.open(&mine).await;
    assert!(page.url.contains("/signin/") || page.url == mine, "{page:?}");
}

#[tokio::test]
async fn a_newcomer_signs_in_with_the_demo_provider_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap();
    spec.plugins = vec![business_plugin(dir.path(), "furusato-tax")];
    let host = spec.start().unwrap();
    let browser = Browser::start().await.unwrap();
    let mine = furusato(&host, "/donations/mine");
    browser.client.goto(&mine).await.unwrap();
    // The demo provider: clearly marked, with residents from the generated registry.
    browser.wait_for_text("開発用のデモ").await.unwrap();
    let page = browser.client.source().await.unwrap();
    assert!(page.contains("宛名番号"), "residents are offered with their 宛名番号");
    std::fs::create_dir_all(screenshot_dir()).unwrap();
    browser.screenshot("signin-demo-provider").await.unwrap();
    let first = browser.wait_for("button[name=who][value^='resident:']").await.unwrap();
    first.click().await.unwrap();
    browser.wait_for_text("まだ寄附はありません").await.unwrap();
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.as_str(), mine, "back on the page asked for");
}
