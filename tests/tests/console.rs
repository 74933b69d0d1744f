//! The web console in a real headless Chromium: a municipality admin subscribes to a
//! module and sees it answer; an operator approves a version and rolls it back; a vendor's
//! upload of a bad module shows the admission error. Screenshots of the main pages go to
//! target/console-screenshots/.

use fantoccini::Locator;
use nukisashi_e2e::browser::Browser;
use nukisashi_e2e::idp::{CLIENT_ID, IdentityProvider};
use nukisashi_e2e::{Backend, Host, HostSpec, binary, manifest, module, ok, publish, vendor};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";

/// A host with the demo municipalities, an empty catalog and vendor `acme` (its key).
async fn host_with_vendor(dir: &Path) -> (Host, PathBuf) {
    let host = HostSpec::new(Backend::Sqlite, &dir.join("host"), &[]).await.unwrap().start().unwrap();
    let key = vendor(&host, dir, "acme", false).await;
    (host, key)
}

/// The same with acme's guestbook 1.0.0 approved in the catalog.
async fn host_with_guestbook(dir: &Path) -> (Host, PathBuf) {
    let (host, key) = host_with_vendor(dir).await;
    approved_guestbook(&host, dir, &key, "1.0.0").await;
    (host, key)
}

/// Publishes guestbook `version` as vendor `acme` and approves it through the API.
async fn approved_guestbook(host: &Host, dir: &Path, key: &Path, version: &str) {
    ok(publish(host, "acme", key, &manifest(dir, "acme", "guestbook", version, ""), &module("guestbook")));
    let operator = host.token("operator", None);
    let path = format!("/api/v1/modules/guestbook/versions/{version}/approve");
    let (status, body) = host.call(Some(&operator), reqwest::Method::POST, &path, Some(json!({"reason": "審査済み"}))).await;
    assert_eq!(status, 200, "{body}");
}

/// The vendor's signature of a version, made with the CLI as a vendor would.
fn sign(key: &Path, manifest: &Path, component: &Path) -> String {
    let args = ["module", "sign", "--key", &key.display().to_string(), "--manifest", &manifest.display().to_string(), "--component", &component.display().to_string()].map(String::from);
    ok(Command::new(binary()).args(args).output().unwrap())
}

/// The version each subscribed municipality is routed to, from `GET /api/v1/modules`.
async fn routed_version(host: &Host, module: &str, code: &str) -> Option<String> {
    let (_, modules) = host.call(None, reqwest::Method::GET, "/api/v1/modules", None).await;
    modules.as_array()?.iter().find(|m| m["id"] == module)?["municipalities"][code].as_str().map(String::from)
}

#[tokio::test]
async fn municipality_admin_subscribes_in_the_console_and_the_module_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (host, _vendor_key) = host_with_guestbook(dir.path()).await;

    let browser = Browser::start().await.unwrap();
    browser.sign_in(&host.base, &host.token("admin", Some(CHIYODA))).await.unwrap();
    let card = browser.wait_for("article[data-module=guestbook]").await.unwrap();
    let text = browser.wait_for_text("サービスカタログ").await.unwrap();
    assert!(text.contains("ゲストブック") && text.contains("acme"), "the catalog shows the module and its vendor:\n{text}");
    assert!(text.contains("利用中のサービスはまだありません"), "nothing is subscribed yet");
    browser.screenshot("municipality-catalog").await.unwrap();

    // Category filter and search narrow the catalog.
    browser.client.find(Locator::Css("#search")).await.unwrap().send_keys("存在しないサービス").await.unwrap();
    browser.wait_for_text("条件に合うサービスはありません").await.unwrap();
    browser.client.find(Locator::Css("#search")).await.unwrap().clear().await.unwrap();
    browser.client.find(Locator::Css("#search")).await.unwrap().send_keys("記帳").await.unwrap();
    let card = browser.wait_for("article[data-module=guestbook]").await.unwrap_or(card);

    // Subscribe: open the form, grant kv explicitly, set the title, submit.
    card.find(Locator::Css("summary")).await.unwrap().click().await.unwrap();
    // The form shows the municipality's current settings (the demo's guestbook title).
    browser.wait_for("article[data-module=guestbook] form[data-filled=done]").await.unwrap();
    let title = card.find(Locator::Css("input[name='config:title']")).await.unwrap();
    assert_eq!(title.prop("value").await.unwrap().as_deref(), Some("千代田区 みんなの掲示板"));
    let grant = card.find(Locator::Css("input[name=grant][value=kv]")).await.unwrap();
    assert_eq!(grant.prop("checked").await.unwrap().as_deref(), Some("false"), "no capability is granted without the admin ticking it");
    grant.click().await.unwrap();
    title.clear().await.unwrap();
    title.send_keys("千代田区 区民の声").await.unwrap();
    card.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("guestbook の利用を始めました").await.unwrap();

    // The subscription is real: the API has it with exactly the granted capability …
    let admin = host.token("admin", Some(CHIYODA));
    let (_, subscriptions) = host.call(Some(&admin), reqwest::Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions"), None).await;
    let subscription = subscriptions.as_array().unwrap().iter().find(|s| s["module_id"] == "guestbook").expect("subscribed");
    assert_eq!(subscription["grants"], json!(["kv"]));
    // … and the console links to the module on its own origin, which answers with the
    // configured title.
    let link = browser.wait_for("a[data-open=guestbook]").await.unwrap();
    let href = link.attr("href").await.unwrap().unwrap();
    assert_eq!(href, format!("{}/", host.origin(CHIYODA, "guestbook")));
    browser.screenshot("municipality-subscribed").await.unwrap();
    browser.client.goto(&href).await.unwrap();
    browser.wait_for_text("千代田区 区民の声").await.unwrap();

    // English is one click away and remembered.
    browser.client.goto(&format!("{}/console/", host.base)).await.unwrap();
    browser.wait_for("#lang").await.unwrap().click().await.unwrap();
    browser.wait_for_text("Service catalog").await.unwrap();
    assert_eq!(browser.client.find(Locator::Css("html")).await.unwrap().attr("lang").await.unwrap().as_deref(), Some("en"));
}

#[tokio::test]
async fn operator_approves_a_version_and_rolls_it_back_in_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let (host, key) = host_with_guestbook(dir.path()).await;
    let admin = host.token("admin", Some(CHIYODA));
    let (status, body) = host.call(Some(&admin), reqwest::Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions/guestbook"), Some(json!({"grants": ["kv"]}))).await;
    assert_eq!(status, 200, "{body}");
    let sapporo_admin = host.token("admin", Some(SAPPORO));
    let (status, body) = host.call(Some(&sapporo_admin), reqwest::Method::PUT, &format!("/api/v1/municipalities/{SAPPORO}/subscriptions/guestbook"), Some(json!({"grants": ["kv"]}))).await;
    assert_eq!(status, 200, "{body}");
    ok(publish(&host, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "1.1.0", ""), &module("guestbook")));

    let browser = Browser::start().await.unwrap();
    browser.sign_in(&host.base, &host.token("operator", None)).await.unwrap();
    let row = browser.wait_for("tr[data-review='guestbook@1.1.0']").await.unwrap();
    browser.wait_for("[data-module=guestbook]").await.unwrap();
    browser.screenshot("operator-review-queue").await.unwrap();
    row.find(Locator::Css("input[name=reason]")).await.unwrap().send_keys("脆弱性修正を確認").await.unwrap();
    row.find(Locator::Css("button")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("guestbook 1.1.0 を承認しました").await.unwrap();
    assert_eq!(routed_version(&host, "guestbook", CHIYODA).await.as_deref(), Some("1.1.0"), "approval releases the version to municipalities following the latest");
    let operator = host.token("operator", None);
    let (_, versions) = host.call(Some(&operator), reqwest::Method::GET, "/api/v1/modules/guestbook/versions", None).await;
    assert!(versions["reviews"].as_array().unwrap().iter().any(|r| r["version"] == "1.1.0" && r["reason"] == "脆弱性修正を確認"), "the reason typed in the console is recorded: {versions}");

    // Roll back from the module's panel: every municipality goes back.
    // The panel shows where 1.1.0 runs (the page redraws after the approval).
    browser.wait_for_text("2 自治体: 011002, 131016").await.unwrap();
    let panel = browser.wait_for("[data-module=guestbook]").await.unwrap();
    panel.find(Locator::XPath(".//button[text()='ロールバック']")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("guestbook を前のバージョンに戻しました").await.unwrap();
    assert_eq!(routed_version(&host, "guestbook", CHIYODA).await.as_deref(), Some("1.0.0"));
    assert_eq!(routed_version(&host, "guestbook", SAPPORO).await.as_deref(), Some("1.0.0"));

    // Staged rollout: 1.1.0 again, to 札幌市 only.
    let panel = browser.wait_for("[data-module=guestbook]").await.unwrap();
    panel.find(Locator::Css("select[name=version]")).await.unwrap().select_by_value("1.1.0").await.unwrap();
    panel.find(Locator::Css("input[name=lg_codes]")).await.unwrap().send_keys(SAPPORO).await.unwrap();
    panel.find(Locator::XPath(".//button[text()='切り替え']")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("guestbook を 1.1.0 に切り替えました").await.unwrap();
    assert_eq!(routed_version(&host, "guestbook", SAPPORO).await.as_deref(), Some("1.1.0"));
    assert_eq!(routed_version(&host, "guestbook", CHIYODA).await.as_deref(), Some("1.0.0"), "a staged swap leaves the other municipalities alone");
    let (status, _) = host.call(None, reqwest::Method::GET, &format!("/{CHIYODA}/guestbook/"), None).await;
    assert_eq!(status, 200, "the module keeps answering after the rollback");

    // The cost report with its chart.
    browser.wait_for("form button[type=submit]").await.unwrap();
    let calculate = browser.client.find(Locator::XPath("//button[text()='計算']")).await.unwrap();
    calculate.click().await.unwrap();
    browser.wait_for("svg.chart rect").await.unwrap();
    let text = browser.wait_for_text("千代田区").await.unwrap();
    assert!(text.contains("円"), "amounts are shown in yen:\n{text}");
    browser.scroll_to_bottom().await.unwrap();
    browser.screenshot("operator-after-rollback").await.unwrap();

    // Published, the policy gives each municipality its own amount on its page.
    browser.client.find(Locator::XPath("//button[text()='この方針を各自治体に公開']")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("の費用按分の方針を公開しました").await.unwrap();
    let (status, cost) = host.call(Some(&admin), reqwest::Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/cost"), None).await;
    assert_eq!(status, 200, "{cost}");
    let amount = cost["share"]["amount"].as_i64().unwrap();
    assert!(amount > 0, "{cost}");
    browser.client.find(Locator::Css("#signout")).await.unwrap().click().await.unwrap();
    browser.sign_in(&host.base, &admin).await.unwrap();
    browser.wait_for_text(&format!("今月の負担額（見込み）: {} 円", thousands(amount))).await.unwrap();
    browser.scroll_to_bottom().await.unwrap();
    browser.screenshot("municipality-cost").await.unwrap();
}

/// `1234567` as `1,234,567`, as the console's Japanese number format writes it.
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::test]
async fn vendor_upload_of_a_bad_module_shows_the_admission_error() {
    let dir = tempfile::tempdir().unwrap();
    let (host, key) = host_with_vendor(dir.path()).await;
    // A correctly signed upload whose component imports an interface the platform does not offer.
    let manifest_file = manifest(dir.path(), "acme", "guestbook", "1.0.0", "");
    let component = module("bad-import-fixture");
    let signature = sign(&key, &manifest_file, &component);
    let signature_file = dir.path().join("guestbook.sig");
    std::fs::write(&signature_file, signature.trim()).unwrap();

    let browser = Browser::start().await.unwrap();
    browser.sign_in(&host.base, &host.token("vendor", Some("acme"))).await.unwrap();
    browser.wait_for("#publish").await.unwrap();
    for (field, file) in [("manifest", &manifest_file), ("component", &component), ("signature", &signature_file)] {
        let input = browser.client.find(Locator::Css(&format!("#publish input[name={field}]"))).await.unwrap();
        input.send_keys(&file.canonicalize().unwrap().display().to_string()).await.unwrap();
    }
    browser.client.find(Locator::Css("#publish button[type=submit]")).await.unwrap().click().await.unwrap();
    let error = browser.wait_for("#publish-result .error").await.unwrap().text().await.unwrap();
    browser.screenshot("vendor-admission-error").await.unwrap();

    // The console shows the API's own refusal, word for word.
    let token = host.token("vendor", Some("acme"));
    let form = reqwest::multipart::Form::new()
        .part("manifest", reqwest::multipart::Part::bytes(std::fs::read(&manifest_file).unwrap()))
        .part("component", reqwest::multipart::Part::bytes(std::fs::read(&component).unwrap()))
        .text("signature", signature.trim().to_string());
    let response = reqwest::Client::new().post(host.url("/api/v1/modules")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert!(error.contains(problem["detail"].as_str().unwrap()), "the console shows {error:?}, the API says {problem}");
    assert!(error.contains(problem["title"].as_str().unwrap()));
    // Nothing was admitted.
    let (_, modules) = host.call(Some(&token), reqwest::Method::GET, "/api/v1/vendors/acme/modules", None).await;
    assert_eq!(modules, json!([]), "a refused upload leaves nothing behind");

    // The good module goes through, and the page lists it as waiting for review.
    let signature = sign(&key, &manifest_file, &module("guestbook"));
    std::fs::write(&signature_file, signature.trim()).unwrap();
    browser.client.refresh().await.unwrap();
    browser.wait_for("#publish").await.unwrap();
    for (field, file) in [("manifest", &manifest_file), ("component", &module("guestbook")), ("signature", &signature_file)] {
        let input = browser.client.find(Locator::Css(&format!("#publish input[name={field}]"))).await.unwrap();
        input.send_keys(&file.canonicalize().unwrap().display().to_string()).await.unwrap();
    }
    browser.client.find(Locator::Css("#publish button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("guestbook 1.0.0 を受け付けました（状態: 審査待ち）").await.unwrap();
    let listed = browser.wait_for("[data-vendor-module=guestbook]").await.unwrap().text().await.unwrap();
    assert!(listed.contains("1.0.0") && listed.contains("審査待ち"), "the vendor sees the version waiting for review: {listed}");
    browser.screenshot("vendor-published").await.unwrap();
}

#[tokio::test]
async fn municipality_admin_signs_in_through_the_identity_provider() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "idp.key"][..], &["pkey", "-in", "idp.key", "-pubout", "-out", "idp.pub"]] {
        let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let issuer = "https://idp.example.lg.jp";
    let user = json!({ "iss": issuer, "aud": "nukisashi", "sub": "chiyoda-clerk-7", "role": "admin", "lg_code": CHIYODA, "name": "千代田 花子" });
    let idp = IdentityProvider::start(&std::fs::read(dir.path().join("idp.key")).unwrap(), user).await.unwrap();
    let settings = format!(
        "[[auth.providers]]\nissuer = \"{issuer}\"\naudience = \"nukisashi\"\nalgorithm = \"RS256\"\npem_file = \"{}\"\n\
         roles = [\"admin\", \"staff\"]\nlg_codes = [\"{CHIYODA}\"]\n\
         [auth.providers.sign_in]\nname = \"千代田区 統合認証\"\nauthorization_endpoint = \"{}/authorize\"\ntoken_endpoint = \"{}/token\"\nclient_id = \"{CLIENT_ID}\"\n",
        dir.path().join("idp.pub").display(),
        idp.base,
        idp.base
    );
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().settings(&settings).start().unwrap();

    let browser = Browser::start().await.unwrap();
    // An answer that was not started from this tab is refused, and nobody is signed in.
    browser.client.goto(&format!("{}/console/?code=stolen&state=forged", host.base)).await.unwrap();
    browser.wait_for_text("一致しません").await.unwrap();
    assert_eq!(idp.tokens_issued(), 0);

    // The provider's button: round trip to the provider and back, signed in as its user.
    browser.client.goto(&format!("{}/console/", host.base)).await.unwrap();
    // The page lists the providers once /console/sign-in.json has answered.
    let button = browser.wait_for("p.providers button").await.unwrap();
    assert_eq!(button.text().await.unwrap(), "千代田区 統合認証 でサインイン");
    button.click().await.unwrap();
    browser.wait_for_text("千代田 花子").await.unwrap();
    browser.wait_for_text("自治体の管理画面 131016").await.unwrap();
    assert_eq!(idp.tokens_issued(), 1);
    let url = browser.client.current_url().await.unwrap();
    assert!(!url.as_str().contains("code="), "the code leaves the address bar: {url}");
    // The host accepts the provider's token: the page's API calls succeed (a refused token
    // would send the console back to the sign-in form).
    browser.wait_for_text("サービスカタログ").await.unwrap();
    assert!(browser.client.find(Locator::Css("#token")).await.is_err(), "still on the sign-in form");
    browser.screenshot("municipality-signed-in-through-idp").await.unwrap();
}
