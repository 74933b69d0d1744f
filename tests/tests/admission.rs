//! Loading modules and validating municipality codes, as an operator sees it.

use nukisashi_e2e::{Backend, HostSpec, binary, module, problem};
use serde_json::json;
use std::process::Command;

#[test]
fn a_module_importing_what_the_host_lacks_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--plugin")
        .arg(module("bad-import-fixture"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!output.status.success(), "the host must not start with a module it cannot serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Every offending import in one refusal, and what a module may import instead.
    assert!(stderr.contains("`fixture:bad-import/vault`, `fixture:bad-import/ledger`"), "the error names both imports: {stderr}");
    assert!(stderr.contains("a module may import the nukisashi:platform interfaces"), "{stderr}");
    assert!(stderr.contains("bad_import_fixture.wasm"), "the error names the file: {stderr}");
}

#[tokio::test]
async fn what_toolchains_import_is_linked_and_grants_nothing() {
    // The probe imports wasi:http/outgoing-handler and (through Rust's std) wasi:sockets,
    // wasi:filesystem and wasi:cli, as componentize-py and componentize-js components do.
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, dir.path(), &[]).await.unwrap();
    spec.plugins = vec![module("probe-fixture")];
    let host = spec.start().unwrap();
    let r = host.client.get(format!("{}/", host.origin("131016", "probe-fixture"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    nukisashi_e2e::assert_every_attempt_denied(&r.text().await.unwrap());
}

#[test]
fn a_file_that_is_not_a_component_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "これはWebAssemblyではありません").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    for (file, reason) in [(&not_wasm, "not a WebAssembly file"), (&core, "core WebAssembly module, not a component")] {
        let output = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--plugin")
            .arg(file)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(reason), "{stderr}");
    }
}

#[tokio::test]
async fn municipality_codes_are_validated_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, dir.path(), &["guestbook"]).await.unwrap();
    spec.demo = false;
    let host = spec.start().unwrap();
    let operator = host.token("operator", None);
    let post = |body: serde_json::Value| {
        let (host, operator) = (&host, &operator);
        async move { host.send_as(operator, reqwest::Method::POST, "/api/v1/municipalities", Some(&body)).await }
    };

    // Registering municipalities is the operator's job.
    assert_eq!(host.post_json("/api/v1/municipalities", &json!({"lg_code": "131016", "name": "千代田区"})).await.status(), 401);
    let staff = host.token("staff", Some("131016"));
    assert_eq!(host.send_as(&staff, reqwest::Method::POST, "/api/v1/municipalities", Some(&json!({"lg_code": "131016", "name": "千代田区"}))).await.status(), 403);

    let created = post(json!({"lg_code": "131016", "name": "千代田区", "population": 68000})).await;
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = created.json().await.unwrap();
    assert_eq!(body["prefecture"], "東京都");

    let duplicate = post(json!({"lg_code": "131016", "name": "千代田区"})).await;
    assert_eq!(duplicate.status(), 409);
    assert_eq!(problem(duplicate).await["type"], "urn:nukisashi:problem:municipality-exists");

    for (code, reason) in [
        ("131017", "check digit 7, but the first five digits give 6"),
        ("13101", "6 digits, `13101` has 5"),
        ("1310166", "6 digits, `1310166` has 7"),
        ("13a016", "digits only"),
        ("001007", "prefecture 00"),
        ("481009", "prefecture 48"),
    ] {
        let response = post(json!({"lg_code": code, "name": "テスト町"})).await;
        assert_eq!(response.status(), 422, "{code}");
        let p = problem(response).await;
        assert_eq!(p["type"], "urn:nukisashi:problem:invalid-lg-code");
        assert!(p["detail"].as_str().unwrap().contains(reason), "{code}: {p}");
    }
    let malformed = host
        .client
        .post(host.url("/api/v1/municipalities"))
        .bearer_auth(&operator)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(problem(malformed).await["type"], "urn:nukisashi:problem:invalid-body");

    // Only the one valid municipality was stored.
    let list: Vec<serde_json::Value> = host.get("/api/v1/municipalities").await.json().await.unwrap();
    assert_eq!(list.len(), 1);

    // The CLI talks to the same API and says what is wrong in a sentence.
    let cli = |args: &[&str]| Command::new(binary()).args(args).args(["--server", &host.base]).env("NUKISASHI_TOKEN", &operator).output().unwrap();
    let ok = cli(&["municipality", "add", "--lg-code", "011002", "--name", "札幌市", "--population", "1960000"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("011002 札幌市 (北海道)"));
    let bad = cli(&["municipality", "add", "--lg-code", "011003", "--name", "札幌市"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("check digit 3"), "{}", String::from_utf8_lossy(&bad.stderr));
    let listed = cli(&["municipality", "list"]);
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(out.contains("011002\t北海道\t札幌市") && out.contains("131016\t東京都\t千代田区"), "{out}");
}

#[tokio::test]
async fn every_module_in_a_plugin_directory_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(module("guestbook"), plugins.join("guestbook.wasm")).unwrap();
    std::fs::copy(module("fault-fixture"), plugins.join("fault_fixture.wasm")).unwrap();
    std::fs::write(plugins.join("README.txt"), "not a module").unwrap();
    let settings = format!("plugins_dir = \"{}\"\n", plugins.display());
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().settings(&settings).start().unwrap();
    let modules: Vec<serde_json::Value> = host.get("/api/v1/modules").await.json().await.unwrap();
    let ids: Vec<&str> = modules.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["fault-fixture", "guestbook"]);
    assert_eq!(host.get("/131016/fault-fixture/ok").await.text().await.unwrap(), "ok");
    assert_eq!(host.get("/131016/guestbook/entries").await.status(), 200);
}
