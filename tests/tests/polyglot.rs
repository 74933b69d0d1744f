//! Vendors in other languages: the guestbook written in Python (componentize-py) and in
//! JavaScript (componentize-js), built by `cargo xtask test` as a vendor builds them,
//! published as signed uploads, subscribed by municipalities with their own config and
//! called over HTTP like the Rust one.

use nukisashi_e2e::{Backend, Host, HostSpec, ok, publish, vendor, workspace_root};
use reqwest::Method;
use serde_json::{Value, json};

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";
const NAHA: &str = "472018";

/// A component built by `cargo xtask test` into target/polyglot.
fn polyglot(name: &str) -> std::path::PathBuf {
    let path = workspace_root().join("target/polyglot").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run the suite with `cargo xtask test` (it builds the Python and JavaScript examples)", path.display());
    path
}

async fn subscribe(host: &Host, code: &str, module: &str, body: Value) {
    let admin = host.token("admin", Some(code));
    let r = host.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{code}/subscriptions/{module}"), Some(&body)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn sign_as_vendor_publish_and_approve(host: &Host, dir: &std::path::Path, module: &str) {
    // The examples' manifests name vendor `acme`.
    let key = dir.join("acme.key");
    let key = if key.exists() { key } else { vendor(host, dir, "acme", false).await };
    let manifest = workspace_root().join("examples").join(module).join("manifest.toml");
    let out = ok(publish(host, "acme", &key, &manifest, &polyglot(module)));
    assert!(out.contains(&format!("published {module} 1.0.0: pending")), "{out}");
    let operator = host.token("operator", None);
    let r = host.send_as(&operator, Method::POST, &format!("/api/v1/modules/{module}/versions/1.0.0/approve"), Some(&json!({"reason": "審査済み"}))).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Posts an entry as a resident; the status and the body.
async fn post(host: &Host, code: &str, module: &str, message: &str) -> (u16, Value) {
    let resident = host.token("resident", None);
    host.call(Some(&resident), Method::POST, &format!("/{code}/{module}/entries"), Some(json!({"name": "住民", "message": message}))).await
}

async fn messages(host: &Host, code: &str, module: &str) -> Vec<String> {
    let resident = host.token("resident", None);
    let (status, entries) = host.call(Some(&resident), Method::GET, &format!("/{code}/{module}/entries"), None).await;
    assert_eq!(status, 200, "{entries}");
    entries.as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn python_and_javascript_guestbooks_are_published_and_keep_each_municipalitys_data() {
    let dir = tempfile::tempdir().unwrap();
    let spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap();
    let host = spec.start().unwrap();
    for module in ["guestbook-python", "guestbook-js"] {
        sign_as_vendor_publish_and_approve(&host, dir.path(), module).await;
        // Two municipalities with their own title, a third without the kv grant.
        subscribe(&host, CHIYODA, module, json!({"grants": ["kv"], "config": {"title": "千代田 みんなの声"}})).await;
        subscribe(&host, SAPPORO, module, json!({"grants": ["kv"]})).await;
        subscribe(&host, NAHA, module, json!({"grants": []})).await;

        let page = host.get(&format!("/{CHIYODA}/{module}/")).await;
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["x-nukisashi-version"].to_str().unwrap(), format!("{module}@1.0.0"));
        let page = page.text().await.unwrap();
        assert!(page.contains("<h1>千代田 みんなの声</h1>") && page.contains("千代田区 (131016)"), "config and context reach the module: {page}");
        let page = host.get(&format!("/{SAPPORO}/{module}/")).await.text().await.unwrap();
        assert!(page.contains("<h1>札幌市 ゲストブック</h1>"), "without a title, the default from the municipality's name: {page}");

        let (status, entry) = post(&host, CHIYODA, module, &format!("{module} 千代田から")).await;
        assert_eq!(status, 201, "{entry}");
        assert_eq!(entry["id"], 1);
        assert_eq!(post(&host, SAPPORO, module, &format!("{module} 札幌から")).await.0, 201);
        assert_eq!(messages(&host, CHIYODA, module).await, [format!("{module} 千代田から")], "each municipality sees only its own entries");
        assert_eq!(messages(&host, SAPPORO, module).await, [format!("{module} 札幌から")]);
        // Without the grant the platform refuses the call, and the module says which.
        let (status, refused) = post(&host, NAHA, module, "届かない").await;
        assert_eq!(status, 403, "{refused}");
        assert!(refused["detail"].as_str().unwrap().contains("`kv` capability"), "{refused}");
        // The module's own refusals and routes, in the same terms as the Rust guestbook.
        let (status, refused) = post(&host, CHIYODA, module, "  ").await;
        assert_eq!(status, 422, "{refused}");
        let resident = host.token("resident", None);
        let (status, one) = host.call(Some(&resident), Method::GET, &format!("/{CHIYODA}/{module}/entries/1"), None).await;
        assert_eq!((status, one["message"].as_str()), (200, Some(format!("{module} 千代田から").as_str())));
        let (status, _) = host.call(Some(&resident), Method::GET, &format!("/{CHIYODA}/{module}/entries/x"), None).await;
        assert_eq!(status, 400);
        // A form post from a browser goes back to the page.
        let form = nukisashi_e2e::client_without_redirects()
            .post(host.url(&format!("/{CHIYODA}/{module}/entries")))
            .bearer_auth(&resident)
            .form(&[("name", "窓口"), ("message", "フォームから")])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 303);
        assert_eq!(form.headers()["location"].to_str().unwrap(), format!("/{CHIYODA}/{module}/"));
    }

    // Everything is still there after a restart, from the compiled artifacts.
    host.kill();
    let host = spec.start().unwrap();
    for module in ["guestbook-python", "guestbook-js"] {
        assert_eq!(messages(&host, CHIYODA, module).await, ["フォームから".to_string(), format!("{module} 千代田から")]);
        assert_eq!(messages(&host, SAPPORO, module).await, [format!("{module} 札幌から")]);
        assert_eq!(post(&host, NAHA, module, "届かない").await.0, 403, "grants survive the restart");
    }
}

#[tokio::test]
async fn a_python_module_for_the_standard_proxy_world_runs_and_is_denied_every_authority() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap();
    spec.plugins = vec![polyglot("probe-python")];
    let host = spec.start().unwrap();
    let r = host.client.get(format!("{}/", host.origin(CHIYODA, "probe-python"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let report = r.text().await.unwrap();
    nukisashi_e2e::assert_every_attempt_denied(&report);
    // Python's own words for each denial reach the module.
    assert!(report.contains("udp: denied (PermissionError"), "{report}");
    assert!(report.contains("file: denied (FileNotFoundError"), "{report}");
}
