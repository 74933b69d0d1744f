//! Business units that link to each other, over HTTP against a real host: two vendors'
//! 収納 units provide `receipts` to a 滞納整理 unit, the municipality's administrator
//! chooses and switches between them (under load too), a provider that fails or
//! misbehaves leaves its consumer a clear `unavailable`, loops between providers are
//! refused when configured, a vendor's 住民記録 unit replaces the platform's registry,
//! and notices go between municipalities exactly once, across a restart.

use fantoccini::Locator;
use nukisashi_e2e::browser::Browser;
use nukisashi_e2e::{Backend, Host, HostSpec, cli, module, ok, publish, subscribe, vendor};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";
/// A 宛名番号 the 収納 units are given records for.
const RESIDENT: &str = "000000000042";

/// A manifest for a fixture published as `id` by `vendor`.
fn unit_manifest(dir: &Path, vendor: &str, id: &str, capabilities: &[&str], extra: &str) -> PathBuf {
    let caps: Vec<String> = capabilities.iter().map(|c| format!("\"{c}\"")).collect();
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            "id = \"{id}\"\nversion = \"1.0.0\"\nvendor = \"{vendor}\"\ncategory = \"収納\"\nname = {{ ja = \"{id}\", en = \"{id}\" }}\n\
             description = \"linked unit fixture\"\ncapabilities = [{}]\nwit_major = 1\n\
             routes = [{{ path = \"/\", auth = \"public\" }}, {{ path = \"/staff\", auth = \"staff\" }}]\n{extra}\n",
            caps.join(", ")
        ),
    )
    .unwrap();
    path
}

const VENDOR_A_PROVIDES: &str = r#"
[provides.receipts]
extension_items = [
    { name = "督促状発送日", type = "date", description = "督促状を発送した日" },
    { name = "調査メモ", type = "text", description = "財産調査の覚え書き" },
]
[provides.resident-registry]
"#;

const VENDOR_B_PROVIDES: &str = r#"
[provides.receipts]
extension_items = [{ name = "分納回数", type = "integer", description = "分納誓約の回数" }]
"#;

const CONSUMER_NOTICES: &str = r#"
[notices]
sends = ["test-notice"]
receives = ["test-notice"]
"#;

/// A host where vendor `alpha` publishes `receipts-a`, `beta` publishes `receipts-b` (the same
/// 収納 unit with other extension items) and `gamma` the 滞納整理 unit `arrears`, all
/// approved and subscribed by 千代田区.
async fn linked_host(backend: Backend, dir: &Path, settings: &str) -> Host {
    let host = HostSpec::new(backend, &dir.join("host"), &[]).await.unwrap().settings(settings).start().unwrap();
    for (vendor_id, id, caps, extra, component) in [
        ("alpha", "receipts-a", vec!["kv"], VENDOR_A_PROVIDES, "receipts-unit-fixture"),
        ("beta", "receipts-b", vec!["kv"], VENDOR_B_PROVIDES, "receipts-unit-fixture"),
        ("gamma", "arrears", vec!["kv", "receipts", "resident-registry", "notices"], CONSUMER_NOTICES, "arrears-unit-fixture"),
    ] {
        let key = vendor(&host, dir, vendor_id, true).await;
        let manifest = unit_manifest(dir, vendor_id, id, &caps, extra);
        ok(publish(&host, vendor_id, &key, &manifest, &module(component)));
        let r = subscribe(&host, CHIYODA, id, &caps, json!(null)).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    host
}

/// Records a 収納 unit keeps for [`RESIDENT`]: its unpaid installment (with its own extension
/// items) and a payment of `unpaid + 20000` (so a case mixing two units' answers shows).
async fn seed(host: &Host, provider: &str, unpaid: i64, extensions: Value) {
    let staff = host.token("staff", Some(CHIYODA));
    let arrear = json!([{"addressee_number": RESIDENT, "tax_item": "固定資産税", "fiscal_year": 2026, "installment": 2, "due_on": "2026-07-31",
        "amount_charged": 50000, "amount_unpaid": unpaid, "extensions": extensions}]);
    let (status, body) = host.call(Some(&staff), Method::POST, &format!("/{CHIYODA}/{provider}/staff/arrears"), Some(arrear)).await;
    assert_eq!(status, 201, "{body}");
    let payment = json!([{"addressee_number": RESIDENT, "tax_item": "固定資産税", "fiscal_year": 2026, "installment": 1, "amount": unpaid + 20000, "paid_on": "2026-04-30"}]);
    let (status, body) = host.call(Some(&staff), Method::POST, &format!("/{CHIYODA}/{provider}/staff/payments"), Some(payment)).await;
    assert_eq!(status, 201, "{body}");
}

async fn choose(host: &Host, interface: &str, module: Option<&str>) -> (u16, Value) {
    let admin = host.token("admin", Some(CHIYODA));
    host.call(Some(&admin), Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/providers/{interface}"), Some(json!({ "module": module }))).await
}

/// The 滞納整理 unit's case for a resident (a public route of the fixture).
async fn case(host: &Host, number: &str) -> (u16, Value) {
    host.call(None, Method::GET, &format!("/{CHIYODA}/arrears/arrears/{number}"), None).await
}

async fn audit(host: &Host, code: &str) -> Vec<Value> {
    let admin = host.token("admin", Some(code));
    let (status, rows) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{code}/audit?limit=1000"), None).await;
    assert_eq!(status, 200, "{rows}");
    rows.as_array().unwrap().clone()
}

#[tokio::test]
async fn the_administrator_switches_the_receipts_provider_and_the_consumer_follows() {
    let dir = tempfile::tempdir().unwrap();
    let host = linked_host(Backend::Sqlite, dir.path(), "").await;
    seed(&host, "receipts-a", 30000, json!([{"name": "督促状発送日", "type": "date", "value": "2026-08-20"}])).await;
    seed(&host, "receipts-b", 20000, json!([{"name": "分納回数", "type": "integer", "value": 3}])).await;

    // No 収納 data of the platform's own: until the administrator chooses, it is unavailable.
    let (status, body) = case(&host, RESIDENT).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("has not chosen a module to provide it"), "{body}");

    // The administrator sees who can provide it, with the extension items each adds.
    let admin = host.token("admin", Some(CHIYODA));
    let (status, listed) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/providers"), None).await;
    assert_eq!(status, 200, "{listed}");
    let receipts = listed.as_array().unwrap().iter().find(|i| i["interface"] == "receipts").unwrap();
    assert_eq!(receipts["chosen"], Value::Null);
    let items_of = |module: &str| -> Vec<String> {
        let candidate = receipts["candidates"].as_array().unwrap().iter().find(|c| c["module"] == module).unwrap_or_else(|| panic!("{module} in {receipts}"));
        candidate["extension_items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(items_of("receipts-a"), ["督促状発送日", "調査メモ"]);
    assert_eq!(items_of("receipts-b"), ["分納回数"]);

    // Vendor A's unit: the consumer reads the one extension item it knows.
    assert_eq!(choose(&host, "receipts", Some("receipts-a")).await.0, 200);
    let (status, a) = case(&host, RESIDENT).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!((a["unpaid"].as_i64(), a["reminder_sent"].as_str()), (Some(30000), Some("2026-08-20")), "{a}");
    assert_eq!(a["payments"].as_array().unwrap().len(), 1);

    // Switched to vendor B's: the same consumer, unchanged, gets B's records; B's extension
    // item is passed on, and the consumer, which does not know it, is unaffected.
    assert_eq!(choose(&host, "receipts", Some("receipts-b")).await.0, 200);
    let (status, b) = case(&host, RESIDENT).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!((b["unpaid"].as_i64(), &b["reminder_sent"]), (Some(20000), &Value::Null), "{b}");
    assert_eq!(b["arrears"][0]["extensions"], json!([{"name": "分納回数", "type": "integer", "value": 3}]));

    // Every record handed over is on record twice: read by the consumer, served by the provider.
    let rows = audit(&host, CHIYODA).await;
    let read_from = |provider: &str| rows.iter().filter(|r| r["module_id"] == "arrears" && r["interface"] == "receipts.arrears" && r["counterpart"] == format!("{provider}@1.0.0")).count();
    let served_to = |provider: &str| rows.iter().filter(|r| r["module_id"] == provider && r["interface"] == "receipts.arrears" && r["counterpart"] == "arrears@1.0.0").count();
    assert_eq!((read_from("receipts-a"), served_to("receipts-a")), (1, 1), "{rows:#?}");
    assert_eq!((read_from("receipts-b"), served_to("receipts-b")), (1, 1), "{rows:#?}");
    assert!(rows.iter().filter(|r| r["interface"] == "receipts.arrears").all(|r| r["records"] == json!([RESIDENT])), "{rows:#?}");

    // What cannot be chosen is refused with the reason; nothing changes.
    let (status, p) = choose(&host, "receipts", Some("arrears")).await;
    assert_eq!((status, p["type"].as_str()), (422, Some("urn:nukisashi:problem:does-not-provide")), "{p}");
    let (status, p) = choose(&host, "tax-collection", Some("receipts-a")).await;
    assert_eq!((status, p["type"].as_str()), (404, Some("urn:nukisashi:problem:unknown-interface")), "{p}");
    let (status, p) = choose(&host, "receipts", Some("guestbook")).await;
    assert_eq!((status, p["type"].as_str()), (422, Some("urn:nukisashi:problem:not-subscribed")), "{p}");
    let other_admin = host.token("admin", Some(SAPPORO));
    let (status, _) = host.call(Some(&other_admin), Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/providers/receipts"), Some(json!({"module": "receipts-a"}))).await;
    assert_eq!(status, 403, "another municipality's administrator chooses nothing here");
    assert_eq!(case(&host, RESIDENT).await.1["unpaid"], 20000);

    let (status, p) = host.call(Some(&admin), Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/providers/receipts"), Some(json!({}))).await;
    assert_eq!((status, p["type"].as_str()), (422, Some("urn:nukisashi:problem:module-required")), "a body without `module` changes nothing: {p}");

    // Vendor B releases 1.1.0, which no longer provides receipts: 千代田区 does not move to
    // it (its consumers would lose their provider), and cannot pin it while B is chosen.
    let key = dir.path().join("beta.key");
    let manifest_11 = unit_manifest(dir.path(), "beta", "receipts-b", &["kv"], "");
    std::fs::write(&manifest_11, std::fs::read_to_string(&manifest_11).unwrap().replace("version = \"1.0.0\"", "version = \"1.1.0\"")).unwrap();
    ok(publish(&host, "beta", &key, &manifest_11, &module("receipts-unit-fixture")));
    let (_, subscriptions) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions"), None).await;
    let b = subscriptions.as_array().unwrap().iter().find(|s| s["module_id"] == "receipts-b").unwrap().clone();
    assert_eq!(b["version"], "1.0.0", "{subscriptions}");
    let r = host.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions/receipts-b"), Some(&json!({"version": "1.1.0"}))).await;
    assert_eq!(r.status(), 409, "{}", r.text().await.unwrap());
    assert_eq!(case(&host, RESIDENT).await.1["unpaid"], 20000);

    // The chosen provider cannot be unplugged out from under its consumers.
    let (status, p) = host.call(Some(&admin), Method::DELETE, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions/receipts-b"), None).await;
    assert_eq!((status, p["type"].as_str()), (409, Some("urn:nukisashi:problem:module-provides")), "{p}");
    assert_eq!(case(&host, RESIDENT).await.0, 200);

    // The administrator's console shows each candidate's extension items and switches
    // the provider; the CLI lists the same.
    let browser = Browser::start().await.unwrap();
    browser.sign_in(&host.base, &admin).await.unwrap();
    let row = browser.wait_for("tr[data-interface=receipts]").await.unwrap();
    browser.wait_for_text("督促状発送日（date）督促状を発送した日").await.unwrap();
    assert!(row.text().await.unwrap().contains("分納回数（integer）分納誓約の回数"));
    row.find(Locator::Css("select[name=provider]")).await.unwrap().select_by_value("receipts-a").await.unwrap();
    row.find(Locator::Css("button")).await.unwrap().click().await.unwrap();
    browser.wait_for_text("収納の提供元を receipts-a にしました").await.unwrap();
    browser.screenshot("console-providers").await.unwrap();
    assert_eq!(case(&host, RESIDENT).await.1["unpaid"], 30000);
    let listed = ok(cli(&host, &admin, &["provider", "list", "--lg-code", CHIYODA]));
    assert!(listed.contains("receipts (収納): receipts-a") && listed.contains("could be receipts-b 1.0.0: 分納回数 (integer)"), "{listed}");

    // Back to none: unavailable again, clearly.
    ok(cli(&host, &admin, &["provider", "choose", "--lg-code", CHIYODA, "--interface", "receipts", "--none"]));
    assert_eq!(case(&host, RESIDENT).await.0, 503);
}

#[tokio::test]
async fn a_provider_that_fails_leaves_its_consumer_a_clear_unavailable_and_reaches_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    // A short deadline, so the looping provider's case is quick.
    let host = linked_host(Backend::Sqlite, dir.path(), "[limits]\ndeadline_ms = 2000\n").await;
    seed(&host, "receipts-a", 30000, json!([])).await;
    assert_eq!(choose(&host, "receipts", Some("receipts-a")).await.0, 200);

    for (number, says) in [
        ("999000000001", "did not answer within the request's deadline"),
        ("999000000002", "stopped with an error"),
        ("999000000003", "answered with items that do not match its manifest"),
        ("999000000004", "another resident's records"),
        ("999000000007", "answered more than one call may carry"),
    ] {
        let started = Instant::now();
        let (status, body) = case(&host, number).await;
        // The consumer answers itself (its own 503), within its own deadline: the provider
        // gets only part of the consumer's time.
        assert_eq!(status, 503, "{number}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(says), "{number}: {body}");
        assert!(!body["detail"].as_str().unwrap().contains("receipts-a"), "the consumer does not learn which vendor answers: {body}");
        assert!(started.elapsed() < Duration::from_millis(2500), "{number} took {:?}", started.elapsed());
    }
    // A provider's own refusal reaches the consumer in the platform's words, not the vendor's.
    let (status, body) = host.call(None, Method::GET, &format!("/{CHIYODA}/arrears/payments/999000000006"), None).await;
    assert_eq!(status, 400, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("refused the arguments as invalid") && !detail.contains("receipts-a") && !detail.contains("000000000042"), "{body}");
    // A provider without its own grant is unavailable, not the consumer's missing grant.
    let admin = host.token("admin", Some(CHIYODA));
    let ungranted = host.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions/receipts-a"), Some(&json!({"grants": []}))).await;
    assert_eq!(ungranted.status(), 200);
    let (status, body) = case(&host, RESIDENT).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("could not answer"), "{body}");
    assert_eq!(host.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions/receipts-a"), Some(&json!({"grants": ["kv"]}))).await.status(), 200);
    // The consumer kept working throughout.
    assert_eq!(case(&host, RESIDENT).await.1["unpaid"], 30000);
    // Nothing a failed provider answered was handed over, so nothing of it is on record.
    let rows = audit(&host, CHIYODA).await;
    assert!(!rows.iter().any(|r| r["records"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("999"))), "{rows:#?}");

    // A provider runs with its own storage: it cannot find what the consumer keeps.
    let staff = host.token("staff", Some(CHIYODA));
    assert_eq!(host.call(None, Method::POST, &format!("/{CHIYODA}/arrears/secret"), None).await.0, 200);
    assert_eq!(peek(&host).await, "nothing");
    assert_eq!(host.call(Some(&staff), Method::POST, &format!("/{CHIYODA}/receipts-a/staff/secret"), None).await.0, 200);
    assert_eq!(peek(&host).await, "the provider's own");

    // The provider's vendor sees its failures in its module log; the consumer's does not.
    let logs = ok(cli(&host, &host.token("vendor", Some("alpha")), &["module", "logs", "receipts-a"]));
    assert!(logs.contains("CALL receipts.arrears → 500"), "{logs}");
    assert!(logs.contains("CALL receipts.arrears → 502"), "{logs}");
    let refused = cli(&host, &host.token("vendor", Some("gamma")), &["module", "logs", "receipts-a"]);
    assert!(!refused.status.success());
}

/// What the 収納 unit finds under the key `secret` when asked about `999000000005`.
async fn peek(host: &Host) -> String {
    let (status, body) = case(host, "999000000005").await;
    assert_eq!(status, 200, "{body}");
    body["arrears"][0]["extensions"][0]["value"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn swapping_the_receipts_provider_under_load_fails_no_request_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let host = linked_host(Backend::Postgres, dir.path(), "").await;
    seed(&host, "receipts-a", 30000, json!([])).await;
    seed(&host, "receipts-b", 20000, json!([])).await;
    assert_eq!(choose(&host, "receipts", Some("receipts-a")).await.0, 200);

    let host = std::sync::Arc::new(host);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (host, stop) = (host.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Two calls of `receipts` in one request: both must come from one unit.
                let (status, body) = case(&host, RESIDENT).await;
                seen.push((status, body["unpaid"].as_i64(), body["payments"][0]["amount"].as_i64()));
            }
            seen
        }));
    }
    for round in 0..10 {
        let to = if round % 2 == 0 { "receipts-b" } else { "receipts-a" };
        let (status, body) = choose(&host, "receipts", Some(to)).await;
        assert_eq!(status, 200, "{body}");
        // Until the switch has been seen by a request, as a client would see it.
        let want = if to == "receipts-b" { 20000 } else { 30000 };
        assert_eq!(case(&host, RESIDENT).await.1["unpaid"], want);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        for (status, unpaid, paid) in client.await.unwrap() {
            assert_eq!(status, 200, "a request failed during a switch");
            assert!(matches!((unpaid, paid), (Some(30000), Some(50000)) | (Some(20000), Some(40000))), "one request mixed two units' answers: {unpaid:?} unpaid, {paid:?} paid");
            answered += 1;
        }
    }
    assert!(answered > 50, "only {answered} requests ran during the switches");
    // The last choice holds.
    assert_eq!(case(&host, RESIDENT).await.1["unpaid"], 30000);
}

#[tokio::test]
async fn loops_between_providers_are_refused_when_configured_and_a_vendors_registry_replaces_the_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let host = linked_host(Backend::Sqlite, dir.path(), "").await;
    let admin = host.token("admin", Some(CHIYODA));

    // A vendor's 住民記録 unit answers the registry instead of the platform's copy.
    let (_, platform_answer) = host.call(None, Method::GET, &format!("/{CHIYODA}/arrears/resident/1000000001"), None).await;
    assert!(platform_answer["name"].is_string(), "the demo registry answers first: {platform_answer}");
    let staff = host.token("staff", Some(CHIYODA));
    let resident = json!([{"addressee_number": "1000000001", "integrated_addressee_number": "900000000001", "household_number": "H1", "name": "住民記録 ベンダー版",
        "name_kana": "ジュウミン", "birth_date": "1980-01-01", "sex": "female", "relationship": "世帯主", "postal_code": "1000001", "address": "東京都千代田区1",
        "resident_since": "2000-01-01", "status": "resident", "status_changed_on": null, "status_reason": null}]);
    assert_eq!(host.call(Some(&staff), Method::POST, &format!("/{CHIYODA}/receipts-a/staff/residents"), Some(resident)).await.0, 201);
    assert_eq!(choose(&host, "resident-registry", Some("receipts-a")).await.0, 200);
    let (status, vendor_answer) = host.call(None, Method::GET, &format!("/{CHIYODA}/arrears/resident/1000000001"), None).await;
    assert_eq!((status, vendor_answer["name"].as_str()), (200, Some("住民記録 ベンダー版")), "{vendor_answer}");
    let rows = audit(&host, CHIYODA).await;
    assert!(rows.iter().any(|r| r["module_id"] == "arrears" && r["interface"] == "resident-registry.get" && r["counterpart"] == "receipts-a@1.0.0"), "{rows:#?}");

    // Two more 収納/住民記録 units, each consuming what the other provides.
    let key = dir.path().join("alpha.key");
    let c = unit_manifest(dir.path(), "alpha", "receipts-c", &["kv", "resident-registry"], "[provides.receipts]\n");
    let d = unit_manifest(dir.path(), "alpha", "registry-d", &["kv", "receipts"], "[provides.resident-registry]\n");
    for (id, manifest, grants) in [("receipts-c", &c, ["kv", "resident-registry"]), ("registry-d", &d, ["kv", "receipts"])] {
        ok(publish(&host, "alpha", &key, manifest, &module("receipts-unit-fixture")));
        let r = subscribe(&host, CHIYODA, id, &grants, json!(null)).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    // d answers the registry (it consumes receipts, which b provides: no loop).
    assert_eq!(choose(&host, "receipts", Some("receipts-b")).await.0, 200);
    assert_eq!(choose(&host, "resident-registry", Some("registry-d")).await.0, 200);
    // c for receipts would close the loop c → d → c: refused, naming it.
    let (status, p) = choose(&host, "receipts", Some("receipts-c")).await;
    assert_eq!((status, p["type"].as_str()), (409, Some("urn:nukisashi:problem:provider-cycle")), "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("(provided by `receipts-c`, which is granted `resident-registry`)") && detail.contains("(provided by `registry-d`, which is granted `receipts`)"),
        "{p}"
    );
    // Without d's grant there is no loop, and c may be chosen; granting it again is refused.
    assert_eq!(subscribe(&host, CHIYODA, "registry-d", &["kv"], json!(null)).await.status(), 200);
    assert_eq!(choose(&host, "receipts", Some("receipts-c")).await.0, 200);
    let r = subscribe(&host, CHIYODA, "registry-d", &["kv", "receipts"], json!(null)).await;
    assert_eq!(r.status(), 409, "granting d the receipts c provides closes the loop: {}", r.text().await.unwrap());
    // Nothing changed by the refusals.
    let (_, listed) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/providers"), None).await;
    let chosen: Vec<(String, Value)> = listed.as_array().unwrap().iter().map(|i| (i["interface"].as_str().unwrap().to_string(), i["chosen"].clone())).collect();
    assert_eq!(chosen, [("receipts".to_string(), json!("receipts-c")), ("resident-registry".to_string(), json!("registry-d"))]);

    // Back to the platform's own registry.
    assert_eq!(choose(&host, "resident-registry", None).await.0, 200);
    let (_, again) = host.call(None, Method::GET, &format!("/{CHIYODA}/arrears/resident/1000000001"), None).await;
    assert_eq!(again["name"], platform_answer["name"]);
}

/// 千代田区's 滞納整理 unit sends 札幌市 a `test-notice` carrying `n`.
async fn send(host: &Host, n: u32) -> (u16, Value) {
    let body = json!({"to": SAPPORO, "subject": null, "payload": {"n": n}});
    host.call(None, Method::POST, &format!("/{CHIYODA}/arrears/notices/send"), Some(body)).await
}

#[tokio::test]
async fn notices_go_only_where_accepted_exactly_once_in_order_and_survive_a_restart_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let spec = HostSpec::new(Backend::Postgres, &dir.path().join("host"), &[]).await.unwrap();
    let host = spec.start().unwrap();
    let key = vendor(&host, dir.path(), "gamma", true).await;
    let caps = ["kv", "receipts", "resident-registry", "notices"];
    ok(publish(&host, "gamma", &key, &unit_manifest(dir.path(), "gamma", "arrears", &caps, CONSUMER_NOTICES), &module("arrears-unit-fixture")));
    for code in [CHIYODA, SAPPORO] {
        assert_eq!(subscribe(&host, code, "arrears", &caps, json!(null)).await.status(), 200);
    }

    // Not accepted yet: refused, said so to the module, and on the sender's record.
    let (status, body) = send(&host, 0).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["not_accepted"].as_str().unwrap().contains("test-notice"), "{body}");
    let rows = audit(&host, CHIYODA).await;
    assert!(rows.iter().any(|r| r["interface"] == "notices.send" && r["query"].as_str().unwrap().contains("refused: not accepted") && r["counterpart"] == SAPPORO), "{rows:#?}");

    // Accepted into the module that declares the kind (and only such a module).
    let admin = host.token("admin", Some(SAPPORO));
    let accept = |module: &str| json!({ "module": module });
    let (status, p) = host.call(Some(&admin), Method::PUT, &format!("/api/v1/municipalities/{SAPPORO}/notices/other-kind"), Some(accept("arrears"))).await;
    assert_eq!((status, p["type"].as_str()), (422, Some("urn:nukisashi:problem:does-not-receive")), "{p}");
    let (status, p) = host.call(Some(&admin), Method::PUT, &format!("/api/v1/municipalities/{SAPPORO}/notices/test-notice"), Some(accept("arrears"))).await;
    assert_eq!(status, 200, "{p}");

    // 札幌市's unit refuses notices for now; three are sent, then the host is killed.
    assert_eq!(host.call(None, Method::POST, &format!("/{SAPPORO}/arrears/notices/hold"), None).await.0, 200);
    for n in 1..=3 {
        let (status, body) = send(&host, n).await;
        assert_eq!((status, body["sequence"].as_u64()), (201, Some(n as u64)), "{body}");
    }
    host.kill();

    let host = spec.start().unwrap();
    let (_, held) = host.call(None, Method::GET, &format!("/{SAPPORO}/arrears/notices/received"), None).await;
    assert_eq!(held, json!([]), "nothing is taken while the unit refuses");
    assert_eq!(host.call(None, Method::POST, &format!("/{SAPPORO}/arrears/notices/release"), None).await.0, 200);
    let admin = host.token("admin", Some(SAPPORO));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, deliveries) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/linkage/deliveries"), None).await;
        let done = deliveries.as_array().unwrap().iter().any(|d| d["feed"] == "notices" && d["module"] == "arrears" && d["delivered"] == 3);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the notices were not delivered: {deliveries}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, received) = host.call(None, Method::GET, &format!("/{SAPPORO}/arrears/notices/received"), None).await;
    let taken: Vec<(u64, i64, String, u64)> = received
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["notice"]["sequence"].as_u64().unwrap(), r["times"].as_i64().unwrap(), r["notice"]["from_lg_code"].as_str().unwrap().to_string(), serde_json::from_str::<Value>(r["notice"]["payload"].as_str().unwrap()).unwrap()["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(taken, [(1, 1, CHIYODA.to_string(), 1), (2, 1, CHIYODA.to_string(), 2), (3, 1, CHIYODA.to_string(), 3)], "each exactly once, in order");

    // Both municipalities' trails show each notice.
    let sent = audit(&host, CHIYODA).await.into_iter().filter(|r| r["interface"] == "notices.send" && r["counterpart"] == format!("{SAPPORO}/arrears")).count();
    let took = audit(&host, SAPPORO).await.into_iter().filter(|r| r["interface"] == "notice-handler.on-notice" && r["counterpart"] == format!("{CHIYODA}/arrears")).count();
    assert_eq!((sent, took), (3, 3));

    // A notice the module refuses for ever holds those behind it, until the administrator
    // passes over exactly that one (recorded with its reason).
    assert_eq!(host.call(None, Method::POST, &format!("/{SAPPORO}/arrears/notices/hold"), None).await.0, 200);
    assert_eq!(send(&host, 4).await.1["sequence"], 4);
    let skip = |sequence: i64| json!({"sequence": sequence, "reason": "送信元に電話で確認済み"});
    let (status, p) = host.call(Some(&admin), Method::POST, &format!("/api/v1/municipalities/{SAPPORO}/notices/queue/arrears/skip"), Some(skip(3))).await;
    assert_eq!((status, p["type"].as_str()), (409, Some("urn:nukisashi:problem:not-next")), "only the next one: {p}");
    let out = ok(cli(&host, &admin, &["notices", "skip", "--lg-code", SAPPORO, "--module", "arrears", "--sequence", "4", "--reason", "送信元に電話で確認済み"]));
    assert!(out.contains("notice 4 passed over"), "{out}");
    assert_eq!(host.call(None, Method::POST, &format!("/{SAPPORO}/arrears/notices/release"), None).await.0, 200);
    assert_eq!(send(&host, 5).await.1["sequence"], 5);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, received) = host.call(None, Method::GET, &format!("/{SAPPORO}/arrears/notices/received"), None).await;
        let sequences: Vec<u64> = received.as_array().unwrap().iter().map(|r| r["notice"]["sequence"].as_u64().unwrap()).collect();
        if sequences == [1, 2, 3, 5] {
            break;
        }
        assert!(Instant::now() < deadline && !sequences.contains(&4), "{sequences:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(audit(&host, SAPPORO).await.iter().any(|r| r["interface"] == "notices.skipped" && r["query"].as_str().unwrap().contains("sequence=4")));

    // A kind is only a name any vendor can declare: another module sending it is refused,
    // because 札幌市 accepted it only from `arrears` (the same service).
    let key = dir.path().join("gamma.key");
    ok(publish(&host, "gamma", &key, &unit_manifest(dir.path(), "gamma", "imitation", &caps, CONSUMER_NOTICES), &module("arrears-unit-fixture")));
    assert_eq!(subscribe(&host, CHIYODA, "imitation", &caps, json!(null)).await.status(), 200);
    let body = json!({"to": SAPPORO, "subject": null, "payload": {"n": 99}});
    let (status, refused) = host.call(None, Method::POST, &format!("/{CHIYODA}/imitation/notices/send"), Some(body)).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["not_accepted"].as_str().unwrap().contains("`imitation`"), "{refused}");

    // A version that stops taking the kind does not move to 札幌市 while it is accepted.
    let newer = unit_manifest(dir.path(), "gamma", "arrears", &caps, "[notices]\nsends = [\"test-notice\"]\n");
    std::fs::write(&newer, std::fs::read_to_string(&newer).unwrap().replace("version = \"1.0.0\"", "version = \"1.1.0\"")).unwrap();
    ok(publish(&host, "gamma", &key, &newer, &module("arrears-unit-fixture")));
    let (_, subscriptions) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/subscriptions"), None).await;
    assert_eq!(subscriptions.as_array().unwrap().iter().find(|s| s["module_id"] == "arrears").unwrap()["version"], "1.0.0", "{subscriptions}");

    // No longer accepted: refused again.
    let (status, _) = host.call(Some(&admin), Method::DELETE, &format!("/api/v1/municipalities/{SAPPORO}/notices/test-notice"), None).await;
    assert_eq!(status, 200);
    assert_eq!(send(&host, 6).await.0, 409);
    // Unplugging takes a module's acceptances with it: subscribing again does not bring
    // them back unasked.
    let (status, _) = host.call(Some(&admin), Method::PUT, &format!("/api/v1/municipalities/{SAPPORO}/notices/test-notice"), Some(accept("arrears"))).await;
    assert_eq!(status, 200);
    assert_eq!(host.call(Some(&admin), Method::DELETE, &format!("/api/v1/municipalities/{SAPPORO}/subscriptions/arrears"), None).await.0, 200);
    assert_eq!(subscribe(&host, SAPPORO, "arrears", &caps, json!(null)).await.status(), 200);
    let (_, here) = host.call(Some(&admin), Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/notices"), None).await;
    assert!(!here["accepted"].as_array().unwrap().iter().any(|a| a["kind"] == "test-notice"), "{here}");
}
