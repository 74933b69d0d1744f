//! The runtime end to end: requests through the gateway, storage that survives restarts on
//! both backends, tenant isolation, and fault containment.

use nukisashi_e2e::{Backend, Host, HostSpec, problem};
use serde_json::{Value, json};

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";

async fn add_entry(host: &Host, code: &str, name: &str, message: &str) -> Value {
    let response = host.post_json(&format!("/{code}/guestbook/entries"), &json!({"name": name, "message": message})).await;
    assert_eq!(response.status(), 201, "{}", host.log());
    response.json().await.unwrap()
}

async fn entries(host: &Host, code: &str) -> Vec<Value> {
    let response = host.get(&format!("/{code}/guestbook/entries")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn kv_persists_across_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let spec = HostSpec::new(backend, dir.path(), &["guestbook"]).await.unwrap();
    let host = spec.start().unwrap();
    // 外字 (private use) and an IVS sequence must come back byte for byte.
    let name = "髙橋\u{E000}葛\u{E0100}";
    let created = add_entry(&host, CHIYODA, name, "再起動しても残る").await;
    assert_eq!(created["name"], name);
    host.kill();

    let host = spec.start().unwrap();
    let after = entries(&host, CHIYODA).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["name"], name);
    assert_eq!(after[0]["message"], "再起動しても残る");
    // The next id continues from the stored counter, not from scratch.
    assert_eq!(add_entry(&host, CHIYODA, "次", "二件目").await["id"], 2);
}

#[tokio::test]
async fn kv_persists_across_restart_on_sqlite() {
    kv_persists_across_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn kv_persists_across_restart_on_postgres() {
    kv_persists_across_restart(Backend::Postgres).await;
}

async fn municipalities_never_see_each_other(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(backend, dir.path(), &["guestbook"]).await.unwrap().start().unwrap();
    add_entry(&host, CHIYODA, "千代田の人", "千代田だけ").await;
    add_entry(&host, SAPPORO, "札幌の人", "札幌だけ").await;
    add_entry(&host, SAPPORO, "札幌の人", "札幌二件目").await;

    let chiyoda = entries(&host, CHIYODA).await;
    let sapporo = entries(&host, SAPPORO).await;
    assert_eq!(chiyoda.iter().map(|e| e["message"].as_str().unwrap()).collect::<Vec<_>>(), ["千代田だけ"]);
    assert_eq!(sapporo.iter().map(|e| e["message"].as_str().unwrap()).collect::<Vec<_>>(), ["札幌二件目", "札幌だけ"]);
    // Same key (`entry/…1`) in both stores, different values.
    assert_eq!(host.get(&format!("/{CHIYODA}/guestbook/entries/1")).await.json::<Value>().await.unwrap()["message"], "千代田だけ");
    assert_eq!(host.get(&format!("/{SAPPORO}/guestbook/entries/1")).await.json::<Value>().await.unwrap()["message"], "札幌だけ");
    // Chiyoda's counter is independent: its next entry is 2, not 3.
    assert_eq!(add_entry(&host, CHIYODA, "千代田の人", "二件目").await["id"], 2);
}

#[tokio::test]
async fn municipalities_never_see_each_other_on_sqlite() {
    municipalities_never_see_each_other(Backend::Sqlite).await;
}

#[tokio::test]
async fn municipalities_never_see_each_other_on_postgres() {
    municipalities_never_see_each_other(Backend::Postgres).await;
}

#[tokio::test]
async fn config_comes_from_the_municipality() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &["guestbook"]).await.unwrap().start().unwrap();
    let page = host.get(&format!("/{CHIYODA}/guestbook/")).await.text().await.unwrap();
    assert!(page.contains("<title>千代田区 みんなの掲示板</title>"), "{page}");
    let path = format!("/api/v1/municipalities/{CHIYODA}/modules/guestbook/config");
    let body = json!({"title": "区民の声 <試行>"});
    // Only 千代田区's admin (or an operator) may change it.
    assert_eq!(host.put_json(&path, &body).await.status(), 401);
    let sapporo_admin = host.token("admin", Some(SAPPORO));
    assert_eq!(host.send_as(&sapporo_admin, reqwest::Method::PUT, &path, Some(&body)).await.status(), 403);
    let admin = host.token("admin", Some(CHIYODA));
    assert_eq!(host.send_as(&admin, reqwest::Method::PUT, &path, Some(&body)).await.status(), 204);
    let page = host.get(&format!("/{CHIYODA}/guestbook/")).await.text().await.unwrap();
    assert!(page.contains("<h1>区民の声 &lt;試行&gt;</h1>"), "{page}");
    // 札幌's page keeps its own title.
    let page = host.get(&format!("/{SAPPORO}/guestbook/")).await.text().await.unwrap();
    assert!(page.contains("さっぽろ ゲストブック"), "{page}");
}

#[tokio::test]
async fn gateway_passes_the_request_through_intact() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &["fault-fixture"]).await.unwrap().start().unwrap();
    // A 3 MiB body sent as a stream of chunks.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..48).map(|i| Ok((0..65536u32).map(|j| ((i * 7 + j) % 251) as u8).collect())).collect();
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.as_ref().unwrap().clone()).collect();
    let expected_checksum = all.iter().fold(0u32, |acc, &b| acc.wrapping_mul(31).wrapping_add(b as u32));
    let response = host
        .client
        .put(host.url(&format!("/{CHIYODA}/fault-fixture/echo/a/b%20c?x=1&y=%E3%81%82")))
        .header("x-custom", "値")
        .bearer_auth(host.token("resident", None))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["path"], "/echo/a/b%20c");
    assert_eq!(seen["query"], "x=1&y=%E3%81%82");
    assert_eq!(seen["base_path"], format!("/{CHIYODA}/fault-fixture"));
    assert_eq!(seen["body_len"], all.len());
    assert_eq!(seen["body_checksum"], expected_checksum);
    let headers = seen["headers"].as_array().unwrap();
    assert!(headers.iter().any(|h| h[0] == "x-custom" && h[1] == "値"), "{headers:?}");
    // The platform's credentials never reach the module (it gets verified claims instead).
    assert!(!headers.iter().any(|h| h[0] == "authorization"), "{headers:?}");
}

#[tokio::test]
async fn unknown_municipality_or_module_is_a_404_problem() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &["guestbook"]).await.unwrap().start().unwrap();
    // Well-formed but not registered.
    let response = host.get("/011011/guestbook/").await;
    assert_eq!(response.status(), 404);
    let p = problem(response).await;
    assert_eq!(p["type"], "urn:nukisashi:problem:unknown-municipality");
    assert!(p["detail"].as_str().unwrap().contains("011011"));
    // Malformed code: the reason is in the detail.
    let p = problem(host.get("/131017/guestbook/").await).await;
    assert_eq!(p["status"], 404);
    assert!(p["detail"].as_str().unwrap().contains("check digit"), "{p}");
    // Registered municipality, unknown module.
    let p = problem(host.get(&format!("/{CHIYODA}/no-such-module/")).await).await;
    assert_eq!(p["type"], "urn:nukisashi:problem:unknown-module");
}

/// The versioning promise: a component built against `nukisashi:platform@1.0.0` (committed
/// as built before 1.1 existed) loads and serves on this 1.x host unchanged.
#[tokio::test]
async fn a_module_built_against_wit_1_0_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, dir.path(), &[]).await.unwrap();
    spec.plugins = vec![nukisashi_e2e::workspace_root().join("tests/fixtures/compat/guestbook-wit10.wasm")];
    let host = spec.start().unwrap();
    let created = host.post_json(&format!("/{CHIYODA}/guestbook-wit10/entries"), &json!({"name": "旧版", "message": "1.0 のまま"})).await;
    assert_eq!(created.status(), 201, "{}", host.log());
    let page = host.get(&format!("/{CHIYODA}/guestbook-wit10/")).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("1.0 のまま"));
}

/// `kv.increment` is atomic: concurrent posts to the guestbook get distinct, gap-free ids.
#[tokio::test]
async fn concurrent_requests_get_distinct_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &["guestbook"]).await.unwrap().start().unwrap();
    let posts = (0..40).map(|i| {
        let host = &host;
        async move { add_entry(host, CHIYODA, "同時", &format!("{i}")).await["id"].as_u64().unwrap() }
    });
    let mut ids = futures::future::join_all(posts).await;
    ids.sort();
    assert_eq!(ids, (1..=40).collect::<Vec<u64>>());
}
