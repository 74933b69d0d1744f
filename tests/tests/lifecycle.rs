//! The module lifecycle over HTTP: publish → review → subscribe → serve → staged swap →
//! rollback → unplug → export; swaps under load; every bad upload refused cleanly; restart.

use nukisashi_e2e::{Backend, Host, HostSpec, binary, cli, manifest, module, ok, problem, publish, vendor};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";

/// The version that answered (the module's answer may itself be a refusal).
async fn served_by(host: &Host, code: &str) -> String {
    let r = host.get(&format!("/{code}/guestbook/")).await;
    let Some(version) = r.headers().get("x-nukisashi-version") else {
        panic!("no module answered ({}): {}", r.status(), host.log());
    };
    version.to_str().unwrap().to_string()
}

async fn subscribe(host: &Host, code: &str, body: Value) -> reqwest::Response {
    let admin = host.token("admin", Some(code));
    host.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{code}/subscriptions/guestbook"), Some(&body)).await
}

/// Starts a host with demo municipalities and no modules outside the catalog.
async fn start(backend: Backend, dir: &Path) -> (HostSpec, Host) {
    let spec = HostSpec::new(backend, &dir.join("host"), &[]).await.unwrap();
    let host = spec.start().unwrap();
    (spec, host)
}

#[tokio::test]
async fn the_whole_lifecycle_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let (_spec, host) = start(Backend::Sqlite, dir.path()).await;
    let key = vendor(&host, dir.path(), "acme", false).await;
    let component = module("guestbook");
    let operator = host.token("operator", None);

    // Vendor publishes v1: admitted, waiting for review, not routable.
    let out = ok(publish(&host, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "1.0.0", ""), &component));
    assert!(out.contains("published guestbook 1.0.0: pending"), "{out}");
    let pending: Vec<Value> = host.send_as(&operator, Method::GET, "/api/v1/reviews", None).await.json().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(subscribe(&host, CHIYODA, json!({"grants": ["kv"]})).await.status(), 404, "unapproved versions are not in the catalog");

    // Operator approves; the catalog lists it with its capabilities.
    ok(cli(&host, &operator, &["module", "approve", "guestbook", "1.0.0", "--reason", "審査済み"]));
    let admin = host.token("admin", Some(CHIYODA));
    let catalog: Vec<Value> = host.send_as(&admin, Method::GET, "/api/v1/catalog?category=電子申請", None).await.json().await.unwrap();
    assert_eq!(catalog.len(), 1);
    assert_eq!(catalog[0]["capabilities"], json!(["kv"]));
    assert!(catalog[0]["capability_explanations"]["kv"].as_str().unwrap().contains("データ保存"), "grants are explained in plain words");
    let none: Vec<Value> = host.send_as(&admin, Method::GET, "/api/v1/catalog?category=福祉", None).await.json().await.unwrap();
    assert!(none.is_empty());

    // Municipalities subscribe with grants and their own config.
    let r = subscribe(&host, CHIYODA, json!({"grants": ["kv"], "config": {"title": "千代田区 区民の声"}})).await;
    assert_eq!(r.status(), 200, "{}", host.log());
    assert_eq!(subscribe(&host, SAPPORO, json!({"grants": ["kv"]})).await.status(), 200);
    let page = host.get(&format!("/{CHIYODA}/guestbook/")).await.text().await.unwrap();
    assert!(page.contains("千代田区 区民の声"), "{page}");
    // A municipality that never configured the module gets the manifest's default.
    let hakodate = json!({"lg_code": "012025", "name": "函館市", "population": 240000});
    assert_eq!(host.send_as(&operator, Method::POST, "/api/v1/municipalities", Some(&hakodate)).await.status(), 201);
    assert_eq!(subscribe(&host, "012025", json!({"grants": ["kv"]})).await.status(), 200);
    let page = host.get("/012025/guestbook/").await.text().await.unwrap();
    assert!(page.contains("<title>ゲストブック</title>"), "the manifest default applies: {page}");

    // Residents use it; the manifest's auth levels are enforced before the module runs.
    assert_eq!(host.get(&format!("/{SAPPORO}/guestbook/entries")).await.status(), 401);
    let resident = host.token("resident", None);
    let entry = json!({"name": "札幌 花子", "message": "雪まつり"});
    let r = host.send_as(&resident, Method::POST, &format!("/{SAPPORO}/guestbook/entries"), Some(&entry)).await;
    assert_eq!(r.status(), 201);
    let vendor_token = host.token("vendor", Some("acme"));
    let r = host.send_as(&vendor_token, Method::GET, &format!("/{SAPPORO}/guestbook/entries"), None).await;
    assert_eq!(r.status(), 403, "a vendor is not a resident");

    // v2, approved without releasing it: staged rollout to 千代田区 only.
    ok(publish(&host, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "1.1.0", ""), &component));
    ok(cli(&host, &operator, &["module", "approve", "guestbook", "1.1.0", "--no-release"]));
    assert_eq!(served_by(&host, CHIYODA).await, "guestbook@1.0.0");
    let out = ok(cli(&host, &operator, &["module", "swap", "guestbook", "1.1.0", "--lg-code", CHIYODA]));
    assert!(out.contains("guestbook → 1.1.0"), "{out}");
    assert_eq!(served_by(&host, CHIYODA).await, "guestbook@1.1.0");
    assert_eq!(served_by(&host, SAPPORO).await, "guestbook@1.0.0");

    // Roll back in one call.
    ok(cli(&host, &operator, &["module", "rollback", "guestbook", "--lg-code", CHIYODA]));
    assert_eq!(served_by(&host, CHIYODA).await, "guestbook@1.0.0");

    // Unplug 札幌市: later requests get 404, its data stays exportable.
    let sapporo_admin = host.token("admin", Some(SAPPORO));
    let r = host.send_as(&sapporo_admin, Method::DELETE, &format!("/api/v1/municipalities/{SAPPORO}/subscriptions/guestbook"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(host.get(&format!("/{SAPPORO}/guestbook/")).await.status(), 404);
    let export = host.send_as(&sapporo_admin, Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/modules/guestbook/export"), None).await;
    assert_eq!(export.status(), 200);
    let lines = export.text().await.unwrap();
    assert!(lines.lines().any(|l| l.contains("雪まつり")), "{lines}");
    // 千代田区's admin cannot export 札幌市's data.
    let r = host.send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{SAPPORO}/modules/guestbook/export"), None).await;
    assert_eq!(r.status(), 403);

    // Kill switch: 503 everywhere until resumed; residents are told it is unavailable, the
    // operator's reason stays in the API.
    ok(cli(&host, &operator, &["module", "suspend", "guestbook", "--reason", "脆弱性の調査中"]));
    let p = problem(host.get(&format!("/{CHIYODA}/guestbook/")).await).await;
    assert_eq!(p["status"], 503);
    assert_eq!(p["type"], "urn:nukisashi:problem:module-unavailable");
    assert!(!p["detail"].as_str().unwrap().contains("脆弱性"), "{p}");
    let versions: Value = host.send_as(&operator, Method::GET, "/api/v1/modules/guestbook/versions", None).await.json().await.unwrap();
    assert_eq!(versions["suspended"], "脆弱性の調査中");
    ok(cli(&host, &operator, &["module", "resume", "guestbook"]));
    assert_eq!(served_by(&host, CHIYODA).await, "guestbook@1.0.0");

    // The API describes itself.
    let openapi: Value = host.get("/api/v1/openapi.json").await.json().await.unwrap();
    for path in ["/modules", "/modules/{id}/swap", "/modules/{id}/rollback", "/municipalities/{lg_code}/subscriptions/{module}", "/catalog", "/municipalities/{lg_code}/linkage/{layout}/import", "/municipalities/{lg_code}/audit", "/municipalities/{lg_code}/cost", "/cost-policies/{month}"] {
        assert!(openapi["paths"].get(format!("/api/v1{path}")).is_some(), "{path} is documented");
    }

    // Every decision was recorded with who and when.
    let view: Value = host.send_as(&vendor_token, Method::GET, "/api/v1/modules/guestbook/versions", None).await.json().await.unwrap();
    let reviews = view["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 2);
    assert_eq!(reviews[0]["reviewer"], "test-operator");
    assert_eq!(reviews[0]["reason"], "審査済み");
}

#[tokio::test]
async fn swaps_under_load_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    // One municipality takes all the load: this is about swaps, not its request rate.
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().settings("[limits.admission]\nrequests_per_second = 0\n").start().unwrap();
    let key = vendor(&host, dir.path(), "acme", true).await;
    let component = module("guestbook");
    ok(publish(&host, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "1.0.0", ""), &component));
    assert_eq!(subscribe(&host, CHIYODA, json!({"grants": ["kv"]})).await.status(), 200);
    // Auto-approved vendor; keep followers on 1.0.0 by pinning nothing and swapping explicitly.
    ok(publish(&host, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "2.0.0", ""), &component));
    let operator = host.token("operator", None);

    let stop = Instant::now() + Duration::from_secs(60);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = host.client.clone();
            let url = host.url(&format!("/{CHIYODA}/guestbook/"));
            tokio::spawn(async move {
                let (mut ok, mut failed, mut versions) = (0u32, Vec::new(), std::collections::BTreeSet::new());
                while Instant::now() < stop {
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == 200 => {
                            let served = r.headers().get_all("x-nukisashi-version").iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>();
                            assert_eq!(served.len(), 1, "exactly one version answers");
                            versions.insert(served[0].clone());
                            r.text().await.unwrap();
                            ok += 1;
                        }
                        Ok(r) => failed.push(format!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                        Err(e) => failed.push(e.to_string()),
                    }
                    if ok > 5000 {
                        break;
                    }
                }
                (ok, failed, versions)
            })
        })
        .collect();

    let mut swap_times = Vec::new();
    for i in 0..60 {
        let (path, body) = if i % 2 == 0 {
            ("/api/v1/modules/guestbook/swap", json!({"version": "2.0.0", "lg_codes": [CHIYODA]}))
        } else {
            ("/api/v1/modules/guestbook/rollback", json!({"lg_codes": [CHIYODA]}))
        };
        let r = host.send_as(&operator, Method::POST, path, Some(&body)).await;
        assert_eq!(r.status(), 200, "swap {i}");
        let v: Value = r.json().await.unwrap();
        swap_times.push(v["elapsed_us"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let mut total = 0;
    let mut seen = std::collections::BTreeSet::new();
    for w in workers {
        let (ok, failed, versions) = w.await.unwrap();
        assert!(failed.is_empty(), "requests failed during swaps: {failed:?}");
        total += ok;
        seen.extend(versions);
    }
    assert!(total > 100, "load ran ({total} requests)");
    assert_eq!(seen, ["guestbook@1.0.0".to_string(), "guestbook@2.0.0".to_string()].into_iter().collect());
    swap_times.sort();
    eprintln!("{total} requests, 60 swaps/rollbacks; swap p50 {} µs, max {} µs", swap_times[30], swap_times[59]);
}

#[tokio::test]
async fn bad_uploads_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_spec, host) = start(Backend::Sqlite, dir.path()).await;
    let key = vendor(&host, dir.path(), "acme", false).await;
    let other_key = vendor(&host, dir.path(), "other", false).await;
    let token = host.token("vendor", Some("acme"));
    let good_manifest = std::fs::read(manifest(dir.path(), "acme", "guestbook", "1.0.0", "")).unwrap();
    let component = std::fs::read(module("guestbook")).unwrap();

    let sign = |key: &Path, manifest: &[u8], component: &[u8]| -> String {
        let (m, c) = (dir.path().join("sign.toml"), dir.path().join("sign.wasm"));
        std::fs::write(&m, manifest).unwrap();
        std::fs::write(&c, component).unwrap();
        let out = Command::new(binary()).args(["module", "sign", "--key"]).arg(key).arg("--manifest").arg(&m).arg("--component").arg(&c).output().unwrap();
        ok(out).trim().to_string()
    };
    let upload = |manifest: Vec<u8>, component: Vec<u8>, signature: Option<String>| {
        let (host, token) = (&host, &token);
        async move {
            let mut form = reqwest::multipart::Form::new()
                .part("manifest", reqwest::multipart::Part::bytes(manifest))
                .part("component", reqwest::multipart::Part::bytes(component));
            if let Some(s) = signature {
                form = form.text("signature", s);
            }
            host.client.post(host.url("/api/v1/modules")).bearer_auth(token).multipart(form).send().await.unwrap()
        }
    };
    let signed = |manifest: Vec<u8>, component: Vec<u8>| {
        let signature = sign(&key, &manifest, &component);
        upload(manifest, component, Some(signature))
    };

    let not_wasm = b"MZ this is not wasm".to_vec();
    let core = b"\0asm\x01\0\0\0".to_vec();
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    let bad_import = std::fs::read(module("bad-import-fixture")).unwrap();
    let unknown_cap = String::from_utf8(good_manifest.clone()).unwrap().replace("capabilities = [\"kv\"]", "capabilities = [\"teleport\"]").into_bytes();
    let mut tampered = component.clone();
    let signature_of_good = sign(&key, &good_manifest, &component);
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    let other_vendor_sig = sign(&other_key, &good_manifest, &component);

    let cases: Vec<(&str, reqwest::Response, u16, &str, &str)> = vec![
        ("not wasm", signed(good_manifest.clone(), not_wasm).await, 422, "not-wasm", "not a WebAssembly file"),
        ("core module", signed(good_manifest.clone(), core).await, 422, "not-a-component", "core WebAssembly module"),
        ("wrong world", signed(good_manifest.clone(), empty_component).await, 422, "wrong-world", "incoming-handler"),
        ("unknown imports", signed(good_manifest.clone(), bad_import).await, 422, "forbidden-import", "`fixture:bad-import/vault`, `fixture:bad-import/ledger`"),
        ("unknown capability", signed(unknown_cap, component.clone()).await, 422, "invalid-manifest", "teleport"),
        ("missing signature", upload(good_manifest.clone(), component.clone(), None).await, 422, "missing-signature", "no signature"),
        ("bad signature", upload(good_manifest.clone(), component.clone(), Some("c2lnbmF0dXJl".into())).await, 422, "bad-signature", "64 bytes"),
        ("other vendor's key", upload(good_manifest.clone(), component.clone(), Some(other_vendor_sig)).await, 422, "bad-signature", "does not match"),
        ("tampered bytes", upload(good_manifest.clone(), tampered, Some(signature_of_good.clone())).await, 422, "bad-signature", "does not match"),
        ("oversized", upload(good_manifest.clone(), vec![0u8; 34 << 20], Some(signature_of_good.clone())).await, 413, "upload-too-large", "the upload limit is 33554432 bytes"),
        ("malformed manifest", signed(b"id = [broken".to_vec(), component.clone()).await, 422, "invalid-manifest", "TOML"),
    ];
    for (case, response, status, slug, detail) in cases {
        assert_eq!(response.status(), status, "{case}");
        let p = problem(response).await;
        assert_eq!(p["type"], format!("urn:nukisashi:problem:{slug}"), "{case}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(detail), "{case}: {p}");
    }

    // Nothing was recorded by any refusal.
    let operator = host.token("operator", None);
    let pending: Vec<Value> = host.send_as(&operator, Method::GET, "/api/v1/reviews", None).await.json().await.unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    assert_eq!(host.send_as(&operator, Method::GET, "/api/v1/modules/guestbook/versions", None).await.status(), 404);

    // The good upload goes through once; the same version again is a duplicate.
    assert_eq!(upload(good_manifest.clone(), component.clone(), Some(signature_of_good.clone())).await.status(), 201);
    let duplicate = upload(good_manifest.clone(), component.clone(), Some(signature_of_good)).await;
    assert_eq!(duplicate.status(), 409);
    assert_eq!(problem(duplicate).await["type"], "urn:nukisashi:problem:duplicate-version");
    // A vendor cannot publish under another vendor's name or module.
    let other_token = host.token("vendor", Some("other"));
    let form = reqwest::multipart::Form::new()
        .part("manifest", reqwest::multipart::Part::bytes(good_manifest.clone()))
        .part("component", reqwest::multipart::Part::bytes(component.clone()))
        .text("signature", "x");
    let r = host.client.post(host.url("/api/v1/modules")).bearer_auth(&other_token).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = host.send_as(&other_token, Method::GET, "/api/v1/modules/guestbook/versions", None).await;
    assert_eq!(r.status(), 403, "a vendor sees only its own modules");
    let pending: Vec<Value> = host.send_as(&operator, Method::GET, "/api/v1/reviews", None).await.json().await.unwrap();
    assert_eq!(pending.len(), 1);
}

async fn state_survives_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (spec, host) = start(backend, dir.path()).await;
    let key = vendor(&host, dir.path(), "acme", true).await;
    let component = module("guestbook");
    ok(publish(&host, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "1.0.0", ""), &component));
    ok(publish(&host, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "1.1.0", ""), &component));
    // 千代田区 pins 1.0.0 with its own title; 札幌市 follows the latest (1.1.0).
    assert_eq!(subscribe(&host, CHIYODA, json!({"grants": ["kv"], "version": "1.0.0", "config": {"title": "固定版"}})).await.status(), 200);
    assert_eq!(subscribe(&host, SAPPORO, json!({"grants": []})).await.status(), 200);
    let resident = host.token("resident", None);
    let r = host.send_as(&resident, Method::POST, &format!("/{CHIYODA}/guestbook/entries"), Some(&json!({"name": "a", "message": "残る"}))).await;
    assert_eq!(r.status(), 201);
    // No kv grant for 札幌市: the module gets a clear refusal, not partial data.
    let r = host.send_as(&resident, Method::POST, &format!("/{SAPPORO}/guestbook/entries"), Some(&json!({"name": "a", "message": "b"}))).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("`kv` capability"));
    host.kill();

    let host = spec.start().unwrap();
    assert_eq!(served_by(&host, CHIYODA).await, "guestbook@1.0.0");
    assert_eq!(served_by(&host, SAPPORO).await, "guestbook@1.1.0");
    assert!(host.get(&format!("/{CHIYODA}/guestbook/")).await.text().await.unwrap().contains("固定版"));
    let r = host.send_as(&resident, Method::GET, &format!("/{CHIYODA}/guestbook/entries"), None).await;
    assert!(r.text().await.unwrap().contains("残る"));
    let r = host.send_as(&resident, Method::GET, &format!("/{SAPPORO}/guestbook/entries"), None).await;
    assert_eq!(r.status(), 403, "grants survive the restart too");
    // No compile was repeated: every version came from the artifact cache.
    let log = host.log();
    let loads: Vec<&str> = log.lines().filter(|l| l.contains("module version loaded")).collect();
    assert!(!loads.is_empty());
    assert!(loads.iter().all(|l| l.contains("cached=true")), "{loads:#?}");
}

#[tokio::test]
async fn state_survives_restart_on_sqlite() {
    state_survives_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn state_survives_restart_on_postgres() {
    state_survives_restart(Backend::Postgres).await;
}

/// The versions the catalog lists for `guestbook`, with their status.
async fn listed_versions(host: &Host) -> Vec<(String, String)> {
    let operator = host.token("operator", None);
    let r = host.send_as(&operator, Method::GET, "/api/v1/modules/guestbook/versions", None).await;
    assert_eq!(r.status(), 200);
    let view: Value = r.json().await.unwrap();
    view["versions"].as_array().unwrap().iter().map(|v| (v["version"].as_str().unwrap().to_string(), v["status"].as_str().unwrap_or_default().to_string())).collect()
}

/// kill -9 while vendors publish: after the restart every acknowledged version is in the
/// catalog, approved and served, and every version the catalog lists is whole (it loads
/// and answers; none is quarantined).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_publishing_loses_no_acknowledged_version_and_shows_no_half_one() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, host) = start(Backend::Sqlite, dir.path()).await;
    let key = vendor(&host, dir.path(), "acme", true).await;
    let component = module("guestbook");
    let (tx, mut acknowledged) = tokio::sync::mpsc::unbounded_channel();
    let publishers: Vec<_> = (0..8)
        .map(|i| {
            let version = format!("1.{i}.0");
            let (manifest, component, key, tx) = (manifest(dir.path(), "acme", "guestbook", &version, ""), component.clone(), key.clone(), tx.clone());
            let token = host.token("vendor", Some("acme"));
            let base = host.base.clone();
            std::thread::spawn(move || {
                let output = Command::new(binary())
                    .args(["module", "publish", "--key"])
                    .arg(&key)
                    .arg("--manifest")
                    .arg(&manifest)
                    .arg("--component")
                    .arg(&component)
                    .args(["--server", &base])
                    .env("NUKISASHI_TOKEN", token)
                    .output()
                    .unwrap();
                if output.status.success() {
                    let _ = tx.send(version);
                }
            })
        })
        .collect();
    drop(tx);
    // Killed as soon as two are acknowledged, with the others in flight.
    let mut acked = vec![acknowledged.recv().await.expect("a publish succeeds"), acknowledged.recv().await.expect("two publishes succeed")];
    host.kill();
    for p in publishers {
        p.join().unwrap();
    }
    while let Ok(v) = acknowledged.try_recv() {
        acked.push(v);
    }
    assert!(acked.len() < 8, "every publish finished before the kill: the test did not test a crash");

    let host = spec.start().unwrap();
    let listed = listed_versions(&host).await;
    for version in &acked {
        assert!(listed.iter().any(|(v, status)| v == version && status == "approved"), "acknowledged {version} is lost: {listed:?}");
    }
    let admin = host.token("admin", Some(CHIYODA));
    for (version, status) in &listed {
        assert_eq!(status, "approved", "{version} is half-written: {listed:?}\n{}", host.log());
        let r = host.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions/guestbook"), Some(&json!({"grants": ["kv"], "version": version}))).await;
        assert_eq!(r.status(), 200, "{version}: {}", r.text().await.unwrap());
        assert_eq!(served_by(&host, CHIYODA).await, format!("guestbook@{version}"));
    }
    assert!(!host.log().contains("quarantined"), "{}", host.log());
}

/// kill -9 while an operator swaps two municipalities back and forth: after the restart
/// both are on the same version (a swap is one transaction), it is the last acknowledged
/// swap's or the one in flight, and what serves is what the database says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_swap_leaves_routing_equal_to_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, host) = start(Backend::Sqlite, dir.path()).await;
    let key = vendor(&host, dir.path(), "acme", true).await;
    let component = module("guestbook");
    ok(publish(&host, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "1.0.0", ""), &component));
    for code in [CHIYODA, SAPPORO] {
        assert_eq!(subscribe(&host, code, json!({"grants": ["kv"]})).await.status(), 200);
    }
    for version in ["2.0.0", "3.0.0"] {
        ok(publish(&host, "acme", &key, &manifest(dir.path(), "acme", "guestbook", version, ""), &component));
    }
    let operator = host.token("operator", None);
    // Three versions in turn: a state left from an earlier swap is neither of the last two.
    let (mut last_acknowledged, mut in_flight) = (None, String::new());
    for i in 0..40 {
        in_flight = ["1.0.0", "2.0.0", "3.0.0"][i % 3].to_string();
        let body = json!({"version": in_flight, "lg_codes": [CHIYODA, SAPPORO]});
        let swap = host.client.post(host.url("/api/v1/modules/guestbook/swap")).bearer_auth(&operator).json(&body).send();
        if i == 25 {
            // The host dies with the 26th swap sent: it commits whole or not at all. (The
            // millisecond is where the fault lands, not a wait for anything.)
            let swap = tokio::spawn(swap);
            tokio::time::sleep(Duration::from_millis(1)).await;
            host.kill();
            let _ = swap.await;
            break;
        }
        assert_eq!(swap.await.unwrap().status(), 200);
        last_acknowledged = Some(in_flight.clone());
    }

    let host = spec.start().unwrap();
    let admin = host.token("admin", Some(CHIYODA));
    let mut versions = Vec::new();
    for code in [CHIYODA, SAPPORO] {
        let admin = if code == CHIYODA { admin.clone() } else { host.token("admin", Some(code)) };
        let list: Vec<Value> = host.send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{code}/subscriptions"), None).await.json().await.unwrap();
        let version = list.iter().find(|s| s["module_id"] == "guestbook").unwrap()["version"].as_str().unwrap().to_string();
        assert_eq!(served_by(&host, code).await, format!("guestbook@{version}"), "what serves is what the database says");
        versions.push(version);
    }
    assert_eq!(versions[0], versions[1], "one swap moved both or neither");
    assert!(Some(&versions[0]) == last_acknowledged.as_ref() || versions[0] == in_flight, "{versions:?} is neither the acknowledged swap nor the one in flight");
}
