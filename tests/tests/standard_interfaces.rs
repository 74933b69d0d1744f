//! A module written for Spin's storage and settings interfaces (`wasi:keyvalue@0.2.0-draft2`,
//! `wasi:config/store@0.2.0-draft-2024-09-27`) runs here unchanged, on the same
//! per-(municipality, module) kv and config as the platform's own interfaces, behind the
//! same `kv` grant.

use nukisashi_e2e::{Backend, Host, HostSpec, module, ok, publish, subscribe, vendor, workspace_root};
use reqwest::Method;
use serde_json::json;

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";
const NAHA: &str = "472018";
const MODULE: &str = "standard-kv";

/// The status and text of one request to the module at `code`.
async fn send(host: &Host, method: Method, code: &str, path: &str, body: &str) -> (u16, String) {
    let r = host.client.request(method, host.url(&format!("/{code}/{MODULE}{path}"))).body(body.to_string()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get(host: &Host, code: &str, path: &str) -> (u16, String) {
    send(host, Method::GET, code, path, "").await
}

#[tokio::test]
async fn a_module_using_only_wasi_keyvalue_and_wasi_config_keeps_the_platforms_scoping_and_grants() {
    let dir = tempfile::tempdir().unwrap();
    let spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap();
    let host = spec.start().unwrap();
    let key = vendor(&host, dir.path(), "acme", true).await;
    let manifest = workspace_root().join("tests/fixtures/standard-kv/manifest.toml");
    let out = ok(publish(&host, "acme", &key, &manifest, &module("standard_kv_fixture")));
    assert!(out.contains("published standard-kv 1.0.0"), "{out}");
    for (code, grants, greeting) in [(CHIYODA, &["kv"][..], "ようこそ千代田"), (SAPPORO, &["kv"][..], "ようこそ札幌"), (NAHA, &[][..], "はいさい")] {
        let r = subscribe(&host, code, MODULE, grants, json!({"greeting": greeting})).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    // wasi:config answers the municipality's own settings and the platform's details.
    assert_eq!(get(&host, CHIYODA, "/config/greeting").await, (200, "ようこそ千代田".into()));
    assert_eq!(get(&host, SAPPORO, "/config/greeting").await, (200, "ようこそ札幌".into()));
    assert_eq!(get(&host, NAHA, "/config/greeting").await, (200, "はいさい".into()), "config needs no grant");
    assert_eq!(get(&host, CHIYODA, "/config/no-such-setting").await.0, 404);

    // wasi:keyvalue/store: each municipality has its own bucket under the same name.
    assert_eq!(send(&host, Method::PUT, CHIYODA, "/kv/motto", "千代田の値").await.0, 204);
    assert_eq!(send(&host, Method::PUT, SAPPORO, "/kv/motto", "札幌の値").await.0, 204);
    assert_eq!(get(&host, CHIYODA, "/kv/motto").await, (200, "千代田の値".into()));
    assert_eq!(get(&host, SAPPORO, "/kv/motto").await, (200, "札幌の値".into()));
    assert_eq!(get(&host, CHIYODA, "/exists/motto").await, (200, "true".into()));
    assert_eq!(get(&host, CHIYODA, "/exists/other").await, (200, "false".into()));
    // Only the default store (and the unnamed one) exists; no name reaches another's.
    assert_eq!(send(&host, Method::POST, CHIYODA, "/open/default", "").await, (200, "opened".into()));
    assert_eq!(send(&host, Method::POST, CHIYODA, "/open/", "").await, (200, "opened".into()));
    assert_eq!(send(&host, Method::POST, CHIYODA, &format!("/open/{SAPPORO}"), "").await, (404, "no-such-store".into()));

    // atomics: concurrent increments and compare-and-swaps lose nothing.
    let counts = futures::future::join_all((0..20).map(|_| send(&host, Method::POST, CHIYODA, "/count/visits", ""))).await;
    assert!(counts.iter().all(|(s, _)| *s == 200), "{counts:?}");
    let mut seen: Vec<u32> = counts.iter().map(|(_, n)| n.parse().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<_>>(), "every increment got its own number");
    let appends = futures::future::join_all((0..10).map(|_| send(&host, Method::POST, CHIYODA, "/cas/log", "x"))).await;
    assert!(appends.iter().all(|(s, _)| *s == 200), "{appends:?}");
    assert_eq!(get(&host, CHIYODA, "/kv/log").await, (200, "x".repeat(10)), "each swap saw the one before");
    assert_eq!(get(&host, SAPPORO, "/kv/visits").await.0, 404, "counters stay in their municipality");

    // batch, and listing with the cursor, over the platform's kv.
    assert_eq!(send(&host, Method::POST, SAPPORO, "/many/a.b.c", "").await.0, 204);
    assert_eq!(get(&host, SAPPORO, "/many/a.zz.c").await, (200, "a=set\nzz missing\nc=set".into()));
    assert_eq!(get(&host, SAPPORO, "/keys").await, (200, "a\nb\nc\nmotto".into()));
    assert_eq!(send(&host, Method::DELETE, SAPPORO, "/kv/a", "").await.0, 204);
    assert_eq!(get(&host, SAPPORO, "/keys").await, (200, "b\nc\nmotto".into()));
    // The platform's limits hold through the standard interface too.
    let (status, text) = send(&host, Method::PUT, CHIYODA, "/kv/big", &"x".repeat(2 << 20)).await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("kv values are limited to"), "{text}");

    // Without the grant, the bucket cannot be opened: access-denied, nothing stored.
    assert_eq!(send(&host, Method::PUT, NAHA, "/kv/motto", "那覇").await, (403, "access-denied".into()));
    assert_eq!(send(&host, Method::POST, NAHA, "/open/default", "").await, (403, "access-denied".into()));

    // What was written is kept across a restart.
    host.kill();
    let host = spec.start().unwrap();
    assert_eq!(get(&host, CHIYODA, "/kv/motto").await, (200, "千代田の値".into()));
    assert_eq!(send(&host, Method::POST, CHIYODA, "/count/visits", "").await, (200, "21".into()));
    assert_eq!(send(&host, Method::PUT, NAHA, "/kv/motto", "那覇").await.0, 403, "the grant is still missing after the restart");
}
