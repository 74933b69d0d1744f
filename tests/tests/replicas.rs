//! Three host processes on one PostgreSQL database: a swap, a rollback and a config change
//! made through one host reach every host within a second; a host killed and restarted
//! comes back serving the current version; load spread over the hosts (skipping the one
//! that is down, as a load balancer would) sees no failed request.

use nukisashi_e2e::{Backend, Host, HostSpec, manifest, module, ok, publish, vendor};
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";
/// A short reconciliation period, so the test of a missed notification is quick.
const RECONCILE: &str = "[replicas]\nreconcile_ms = 500\n";

/// A host on the same database as `first`, with the same token secret (as replicas behind
/// one load balancer share it).
fn replica(first: &HostSpec, dir: &Path) -> HostSpec {
    std::fs::create_dir_all(dir).unwrap();
    let secret = dir.join("jwt-secret");
    if !secret.exists() {
        std::fs::copy(first.data_dir.join("jwt-secret"), secret).unwrap();
    }
    HostSpec { data_dir: dir.to_path_buf(), database_url: first.database_url.clone(), plugins: Vec::new(), settings: RECONCILE.into(), demo: false, env: Vec::new(), ca: None }
}

async fn served_by(base: &str, client: &reqwest::Client) -> Option<String> {
    let r = client.get(format!("{base}/{CHIYODA}/guestbook/")).send().await.ok()?;
    r.headers().get("x-nukisashi-version").map(|v| v.to_str().unwrap().to_string())
}

/// Time until every host answers with `version`; panics after 5 s.
async fn converge(hosts: &[&Host], version: &str) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for host in hosts {
            all &= served_by(&host.base, &host.client).await.as_deref() == Some(version);
        }
        if all {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "hosts did not converge on {version}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgres_converge_and_fail_no_request() {
    if std::env::var("NUKISASHI_TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: needs PostgreSQL (cargo xtask test starts one)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = HostSpec::new(Backend::Postgres, &dir.path().join("r1"), &[]).await.unwrap().settings(RECONCILE);
    let r1 = first.start().unwrap();
    let (spec2, spec3) = (replica(&first, &dir.path().join("r2")), replica(&first, &dir.path().join("r3")));
    let r2 = spec2.start().unwrap();
    let mut r3 = spec3.start().unwrap();

    // Published and subscribed through different hosts.
    let key = vendor(&r1, dir.path(), "acme", true).await;
    ok(publish(&r1, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "1.0.0", ""), &module("guestbook")));
    let admin = r2.token("admin", Some(CHIYODA));
    let r = r2.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/subscriptions/guestbook"), Some(&json!({"grants": ["kv"]}))).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let subscribed = converge(&[&r1, &r2, &r3], "guestbook@1.0.0").await;
    ok(publish(&r1, "acme", &key, &manifest(dir.path(), "acme", "guestbook", "2.0.0", ""), &module("guestbook")));

    // Load through every host that is up (a restarted host gets a new port: the "load
    // balancer" learns it).
    let bases: Arc<std::sync::Mutex<Vec<String>>> = Arc::new(std::sync::Mutex::new([&r1, &r2, &r3].iter().map(|h| h.base.clone()).collect()));
    let up: Arc<Vec<AtomicBool>> = Arc::new((0..3).map(|_| AtomicBool::new(true)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (bases, up, stop, client) = (bases.clone(), up.clone(), stop.clone(), r1.client.clone());
            tokio::spawn(async move {
                let (mut served, mut failed) = (0u32, Vec::new());
                let mut i = w;
                while !stop.load(Ordering::SeqCst) {
                    i = (i + 1) % 3;
                    if !up[i].load(Ordering::SeqCst) {
                        continue;
                    }
                    let base = bases.lock().unwrap()[i].clone();
                    match client.get(format!("{base}/{CHIYODA}/guestbook/")).send().await {
                        Ok(r) if r.status() == 200 => {
                            r.bytes().await.unwrap();
                            served += 1;
                        }
                        Ok(r) => failed.push(format!("host {i}: {} {}", r.status(), r.text().await.unwrap_or_default())),
                        Err(e) => failed.push(format!("host {i}: {e}")),
                    }
                }
                (served, failed)
            })
        })
        .collect();

    // A swap and a rollback through one host reach all of them within a second.
    let operator = r1.token("operator", None);
    let r = r1.send_as(&operator, Method::POST, "/api/v1/modules/guestbook/swap", Some(&json!({"version": "2.0.0", "lg_codes": [CHIYODA]}))).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let swapped = converge(&[&r1, &r2, &r3], "guestbook@2.0.0").await;
    let r = r1.send_as(&operator, Method::POST, "/api/v1/modules/guestbook/rollback", Some(&json!({"lg_codes": [CHIYODA]}))).await;
    assert_eq!(r.status(), 200);
    let rolled_back = converge(&[&r1, &r2, &r3], "guestbook@1.0.0").await;

    // One host dies and comes back: it serves the current version as soon as it listens.
    up[2].store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    r3.kill();
    let r = r2.send_as(&operator, Method::POST, "/api/v1/modules/guestbook/swap", Some(&json!({"version": "2.0.0", "lg_codes": [CHIYODA]}))).await;
    assert_eq!(r.status(), 200);
    converge(&[&r1, &r2], "guestbook@2.0.0").await;
    r3 = spec3.start().unwrap();
    assert_eq!(r3.get("/readyz").await.status(), 200);
    assert_eq!(served_by(&r3.base, &r3.client).await.as_deref(), Some("guestbook@2.0.0"), "a restarted host serves the current version");
    bases.lock().unwrap()[2] = r3.base.clone();
    up[2].store(true, Ordering::SeqCst);

    // Config changed through one host shows on the others.
    let r = r3.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{CHIYODA}/modules/guestbook/config"), Some(&json!({"title": "区民の声 (replicated)"}))).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let started = Instant::now();
    for host in [&r1, &r2] {
        loop {
            let page = host.get(&format!("/{CHIYODA}/guestbook/")).await.text().await.unwrap();
            if page.contains("区民の声 (replicated)") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "config did not reach {}", host.base);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let config_reached = started.elapsed();

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for w in workers {
        let (served, failed) = w.await.unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}\n--- r1 ---\n{}\n--- r2 ---\n{}\n--- r3 ---\n{}", r1.log(), r2.log(), r3.log());
        total += served;
    }
    assert!(total > 100, "only {total} requests were served");
    // A change no host announced (as if the notification were lost) is picked up by the
    // periodic reconciliation.
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(first.database_url.as_deref().unwrap()).await.unwrap();
    sqlx::query("UPDATE subscriptions SET version = '1.0.0', previous_version = '2.0.0' WHERE lg_code = $1 AND module_id = 'guestbook'")
        .bind(CHIYODA)
        .execute(&db)
        .await
        .unwrap();
    let unannounced = converge(&[&r1, &r2, &r3], "guestbook@1.0.0").await;
    assert!(unannounced < Duration::from_millis(1500), "an unannounced change took {unannounced:?} (reconciling every 500 ms)");

    eprintln!("converged: subscribe {subscribed:?}, swap {swapped:?}, rollback {rolled_back:?}, config {config_reached:?}; {total} requests");
    for (what, took) in [("subscribe", subscribed), ("swap", swapped), ("rollback", rolled_back), ("config", config_reached)] {
        assert!(took < Duration::from_secs(1), "{what} took {took:?} to reach every host");
    }
}
