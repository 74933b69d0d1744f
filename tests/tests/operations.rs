//! Operations that cannot race or surprise (issue 18): the CLI and API refuse what they
//! would otherwise do quietly wrong, decisions are compare-and-set, releases never move a
//! municipality down, a pin or a missing setting holds against a release, racing operators
//! leave the live routes equal to the database, and a host with a version it cannot load
//! (or a damaged compiled artifact) still starts and serves everything else.

use nukisashi_e2e::{Backend, Host, HostSpec, binary, cli, manifest, mint, module, ok, problem, publish, vendor};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";

/// The version that answered `/{code}/guestbook/`, or the status when no module did.
async fn served_by(host: &Host, code: &str) -> Result<String, u16> {
    let r = host.get(&format!("/{code}/guestbook/")).await;
    match r.headers().get("x-nukisashi-version") {
        Some(version) => Ok(version.to_str().unwrap().to_string()),
        None => Err(r.status().as_u16()),
    }
}

async fn put_subscription(host: &Host, code: &str, body: Value) -> reqwest::Response {
    let admin = host.token("admin", Some(code));
    host.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{code}/subscriptions/guestbook"), Some(&body)).await
}

/// The municipality's subscription to guestbook as the database has it.
async fn subscription(host: &Host, code: &str) -> Value {
    let admin = host.token("admin", Some(code));
    let list: Vec<Value> = host.send_as(&admin, Method::GET, &format!("/api/v1/municipalities/{code}/subscriptions"), None).await.json().await.unwrap();
    list.into_iter().find(|s| s["module_id"] == "guestbook").unwrap_or(Value::Null)
}

fn stderr(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "the command should have failed: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn publish_version(host: &Host, dir: &Path, key: &Path, version: &str, extra: &str) {
    let out = ok(publish(host, "acme", key, &manifest(dir, "acme", "guestbook", version, extra), &module("guestbook")));
    assert!(out.contains(": pending"), "{out}");
}

#[tokio::test]
async fn the_cli_and_api_say_what_they_will_do() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().start().unwrap();
    let key = vendor(&host, dir.path(), "acme", false).await;
    let operator = host.token("operator", None);
    let admin = host.token("admin", Some(CHIYODA));

    // The review queue is on the CLI.
    publish_version(&host, dir.path(), &key, "1.0.0", "");
    let queue = ok(cli(&host, &operator, &["module", "reviews"]));
    assert!(queue.contains("guestbook\t1.0.0\tby ") && queue.contains("requests: kv"), "{queue}");
    ok(cli(&host, &operator, &["module", "approve", "guestbook", "1.0.0", "--reason", "審査済み"]));
    assert!(ok(cli(&host, &operator, &["module", "reviews"])).contains("nothing is waiting"));

    // A new subscription must say what it grants; only what the module requests; only the
    // settings its manifest declares. Each refusal lists what is valid and writes nothing.
    let p = problem(put_subscription(&host, CHIYODA, json!({})).await).await;
    assert_eq!((p["status"].as_u64(), p["type"].as_str()), (Some(422), Some("urn:nukisashi:problem:grants-required")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("requests kv"), "{p}");
    let p = problem(put_subscription(&host, CHIYODA, json!({"grants": ["kv", "tax"]})).await).await;
    assert_eq!(p["type"], "urn:nukisashi:problem:grant-not-requested", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("`tax`") && p["detail"].as_str().unwrap().contains("requests kv"), "{p}");
    let p = problem(put_subscription(&host, CHIYODA, json!({"grants": ["kv"], "config": {"titel": "区民の声"}})).await).await;
    assert_eq!(p["type"], "urn:nukisashi:problem:unknown-config", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("`titel`") && p["detail"].as_str().unwrap().contains("title"), "{p}");
    assert_eq!(subscription(&host, CHIYODA).await, Value::Null, "nothing was subscribed");
    let out = cli(&host, &admin, &["subscribe", "--lg-code", CHIYODA, "--module", "guestbook", "--config", "titel=区民の声", "--grant", "kv"]);
    assert!(stderr(&out).contains("its settings are: title"), "the CLI says it too");

    // Subscribed; changing only the config keeps the grants (it used to revoke them).
    let out = ok(cli(&host, &admin, &["subscribe", "--lg-code", CHIYODA, "--module", "guestbook", "--grant", "kv", "--config", "title=区民の声"]));
    assert!(out.contains("grants: kv"), "{out}");
    let out = ok(cli(&host, &admin, &["subscribe", "--lg-code", CHIYODA, "--module", "guestbook", "--config", "title=千代田区 区民の声"]));
    assert!(out.contains("grants: kv"), "{out}");
    assert_eq!(subscription(&host, CHIYODA).await["grants"], json!(["kv"]));
    let listed = ok(cli(&host, &admin, &["subscriptions", "--lg-code", CHIYODA]));
    assert!(listed.contains("guestbook\t1.0.0\tlatest\tactive\tgrants: kv\thttp://guestbook--131016."), "{listed}");

    // Config is read and replaced on its own, checked against the manifest.
    assert_eq!(ok(cli(&host, &admin, &["config", "get", "--lg-code", CHIYODA, "--module", "guestbook"])), "title=千代田区 区民の声\n");
    let refused = stderr(&cli(&host, &admin, &["config", "set", "--lg-code", CHIYODA, "--module", "guestbook", "titel=x"]));
    assert!(refused.contains("no setting `titel`; its settings are: title"), "{refused}");
    ok(cli(&host, &admin, &["config", "set", "--lg-code", CHIYODA, "--module", "guestbook", "title=区民の広場"]));
    let page = host.get(&format!("/{CHIYODA}/guestbook/")).await.text().await.unwrap();
    assert!(page.contains("区民の広場"), "the new setting is served: {page}");
    assert_eq!(subscription(&host, CHIYODA).await["grants"], json!(["kv"]), "config set leaves the grants");

    // Rolling back with nothing to go back to is an error, not "rolled back for []".
    let refused = stderr(&cli(&host, &operator, &["module", "rollback", "guestbook"]));
    assert!(refused.contains("approved previous version of `guestbook` to go back to") && refused.contains("(409"), "{refused}");

    // Approving an older version never moves a follower down.
    publish_version(&host, dir.path(), &key, "1.2.0", "");
    publish_version(&host, dir.path(), &key, "1.1.0", "");
    let out = ok(cli(&host, &operator, &["module", "approve", "guestbook", "1.2.0"]));
    assert!(out.contains(&format!("moved: [\"{CHIYODA}\"]")), "{out}");
    let out = ok(cli(&host, &operator, &["module", "approve", "guestbook", "1.1.0"]));
    assert!(out.contains("moved: []"), "{out}");
    assert_eq!(served_by(&host, CHIYODA).await, Ok("guestbook@1.2.0".into()));

    // A release that needs a setting the municipality lacks leaves it where it is.
    publish_version(&host, dir.path(), &key, "2.0.0", "[config.contact]\nrequired = true\n");
    let out = ok(cli(&host, &operator, &["module", "approve", "guestbook", "2.0.0"]));
    assert!(out.contains("moved: []"), "{out}");
    assert_eq!(served_by(&host, CHIYODA).await, Ok("guestbook@1.2.0".into()));
    let out = ok(cli(&host, &admin, &["subscribe", "--lg-code", CHIYODA, "--module", "guestbook", "--version", "2.0.0", "--config", "title=区民の声", "--config", "contact=03-3264-2111"]));
    assert!(out.contains("2.0.0 (pinned; grants: kv)"), "{out}");
    // Changing only the config keeps the pin (a newer version is out meanwhile); --follow
    // lifts it.
    publish_version(&host, dir.path(), &key, "2.1.0", "[config.contact]\nrequired = true\n");
    ok(cli(&host, &operator, &["module", "approve", "guestbook", "2.1.0"]));
    let out = ok(cli(&host, &admin, &["subscribe", "--lg-code", CHIYODA, "--module", "guestbook", "--config", "title=区民の声", "--config", "contact=03-5211-4111"]));
    assert!(out.contains("2.0.0 (pinned; grants: kv)"), "{out}");
    let out = ok(cli(&host, &admin, &["subscribe", "--lg-code", CHIYODA, "--module", "guestbook", "--follow"]));
    assert!(out.contains("2.1.0 (following the latest; grants: kv)"), "{out}");

    // Unplugging is on the CLI; the data stays.
    ok(cli(&host, &admin, &["unsubscribe", "--lg-code", CHIYODA, "--module", "guestbook"]));
    assert_eq!(served_by(&host, CHIYODA).await, Err(404));
    assert_eq!(subscription(&host, CHIYODA).await["active"], false);
}

#[tokio::test]
async fn cli_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap().start().unwrap();
    let run = |token: Option<&str>, server: &str| {
        let mut command = Command::new(binary());
        command.args(["module", "reviews", "--server", server]).env_remove("NUKISASHI_TOKEN");
        if let Some(token) = token {
            command.env("NUKISASHI_TOKEN", token);
        }
        command.output().unwrap()
    };
    let no_token = stderr(&run(None, &host.base));
    assert!(no_token.contains("set NUKISASHI_TOKEN") && no_token.contains("token mint"), "{no_token}");
    let expired = mint(&host.data_dir, "operator", None, -2);
    let message = stderr(&run(Some(&expired), &host.base));
    assert!(message.contains("the token has expired") && message.contains("mint a fresh one"), "{message}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let message = stderr(&run(Some(&expired), &nobody));
    assert!(message.contains(&format!("no host is answering at {nobody}")) && message.contains("--server"), "{message}");
    assert!(!message.contains("error sending request"), "no raw library text: {message}");

    // `token mint` refuses roles without their binding, and a data directory that is not there.
    let mint_cli = |args: &[&str]| Command::new(binary()).args(["token", "mint"]).args(args).output().unwrap();
    let data_dir = host.data_dir.display().to_string();
    assert!(stderr(&mint_cli(&["--role", "admin", "--data-dir", &data_dir])).contains("add --lg-code"));
    assert!(stderr(&mint_cli(&["--role", "vendor", "--data-dir", &data_dir])).contains("add --vendor"));
    let missing = dir.path().join("no-such-host");
    let message = stderr(&mint_cli(&["--role", "operator", "--data-dir", &missing.display().to_string()]));
    assert!(message.contains("is not a data directory"), "{message}");
    assert!(!missing.exists(), "no stray secret is created");

    // Output piped into a reader that goes away ends the command quietly (no panic).
    let mut child = Command::new(binary())
        .args(["municipality", "list", "--server", &host.base])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.is_empty(), "nothing is reported: {text}");
    assert!(matches!(output.status.code(), Some(0 | 141)), "ends as a shell tool does, not with a panic: {:?}", output.status);
}

/// Hosts on one database: one on SQLite, two replicas on PostgreSQL.
async fn hosts(backend: Backend, dir: &Path) -> Vec<Host> {
    let first = HostSpec::new(backend, &dir.join("h1"), &[]).await.unwrap().settings("[replicas]\nreconcile_ms = 500\n");
    let mut hosts = vec![first.start().unwrap()];
    if backend == Backend::Postgres {
        let second = first.replica(&dir.join("h2"));
        hosts.push(second.start().unwrap());
    }
    hosts
}

/// Waits until every host serves each municipality what the database says (or nothing,
/// when its subscription is inactive or the module suspended); panics after 5 s.
async fn live_equals_database(hosts: &[Host], codes: &[&str]) {
    let started = Instant::now();
    loop {
        let mut mismatch = None;
        let suspended = {
            let operator = hosts[0].token("operator", None);
            let view: Value = hosts[0].send_as(&operator, Method::GET, "/api/v1/modules/guestbook/versions", None).await.json().await.unwrap();
            !view["suspended"].is_null()
        };
        for code in codes {
            let s = subscription(&hosts[0], code).await;
            let expected = match (suspended, s["active"] == true) {
                (true, _) => Err(503),
                (false, false) => Err(404),
                (false, true) => Ok(format!("guestbook@{}", s["version"].as_str().unwrap())),
            };
            for host in hosts {
                let live = served_by(host, code).await;
                if live != expected {
                    mismatch = Some(format!("{code} on {}: live {live:?}, database {expected:?}", host.base));
                }
            }
        }
        let Some(mismatch) = mismatch else { return };
        assert!(started.elapsed() < Duration::from_secs(5), "{mismatch}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Approve vs reject, pin vs release, swap vs suspend, subscribe vs release, each raced
/// through different hosts when there are two: exactly one decision wins, the loser gets
/// 409, a pin made during a release holds, and the live routes end equal to the database.
async fn racing_operators_leave_live_equal_to_database(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts(backend, dir.path()).await;
    let (a, b) = (&hosts[0], hosts.last().unwrap());
    let key = vendor(a, dir.path(), "acme", false).await;
    let operator = a.token("operator", None);
    publish_version(a, dir.path(), &key, "1.0.0", "");
    ok(cli(a, &operator, &["module", "approve", "guestbook", "1.0.0"]));
    for code in [CHIYODA, SAPPORO] {
        assert_eq!(put_subscription(a, code, json!({"grants": ["kv"]})).await.status(), 200);
    }
    live_equals_database(&hosts, &[CHIYODA, SAPPORO]).await;

    // Approve vs reject, several rounds; residents load the page all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = hosts
        .iter()
        .map(|host| {
            let (base, client, stop) = (host.base.clone(), host.client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = client.get(format!("{base}/{CHIYODA}/guestbook/")).send().await.unwrap();
                    if let Some(v) = r.headers().get("x-nukisashi-version") {
                        seen.insert(v.to_str().unwrap().to_string());
                    }
                }
                seen
            })
        })
        .collect();
    let mut rejected = Vec::new();
    for round in 1..=4 {
        let version = format!("1.{round}.0");
        publish_version(a, dir.path(), &key, &version, "");
        let (approve_path, reject_path) = (format!("/api/v1/modules/guestbook/versions/{version}/approve"), format!("/api/v1/modules/guestbook/versions/{version}/reject"));
        let (approve, reject) = tokio::join!(
            a.call(Some(&operator), Method::POST, &approve_path, Some(json!({}))),
            b.call(Some(&operator), Method::POST, &reject_path, Some(json!({"reason": "脆弱性"}))),
        );
        let mut statuses = [approve.0, reject.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "exactly one decision wins: approve {approve:?}, reject {reject:?}");
        let loser = if approve.0 == 409 { &approve.1 } else { &reject.1 };
        assert_eq!(loser["type"], "urn:nukisashi:problem:already-decided", "{loser}");
        if reject.0 == 200 {
            rejected.push(format!("guestbook@{version}"));
        }
        let view: Value = a.send_as(&operator, Method::GET, "/api/v1/modules/guestbook/versions", None).await.json().await.unwrap();
        let status = view["versions"].as_array().unwrap().iter().find(|v| v["version"] == version.as_str()).unwrap()["status"].clone();
        assert_eq!(status, if approve.0 == 200 { "approved" } else { "rejected" });
        live_equals_database(&hosts, &[CHIYODA, SAPPORO]).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for loader in loaders {
        let seen = loader.await.unwrap();
        assert!(rejected.iter().all(|r| !seen.contains(r)), "a rejected version served a request: seen {seen:?}, rejected {rejected:?}");
    }

    // Pin vs release: 札幌市 pins the version it runs while the operator approves a newer
    // one through the other host. Whichever lands first, the pin holds.
    let current = subscription(a, SAPPORO).await["version"].as_str().unwrap().to_string();
    publish_version(a, dir.path(), &key, "1.9.0", "");
    let (pin, approve) = tokio::join!(
        put_subscription(a, SAPPORO, json!({"version": current})),
        b.call(Some(&operator), Method::POST, "/api/v1/modules/guestbook/versions/1.9.0/approve", Some(json!({}))),
    );
    assert_eq!((pin.status().as_u16(), approve.0), (200, 200), "{approve:?}");
    let s = subscription(a, SAPPORO).await;
    assert_eq!((s["version"].as_str(), s["pinned"].as_bool()), (Some(current.as_str()), Some(true)), "{s}");
    assert_eq!(subscription(a, CHIYODA).await["version"], "1.9.0", "the follower moved");
    live_equals_database(&hosts, &[CHIYODA, SAPPORO]).await;

    // Swap vs suspend through different hosts: suspended wins everywhere, whatever the order
    // (a swap that lands after the suspension moves the subscription but routes nothing);
    // resumed, the live table is the database again.
    let (swap, suspend) = tokio::join!(
        a.call(Some(&operator), Method::POST, "/api/v1/modules/guestbook/swap", Some(json!({"version": "1.0.0", "lg_codes": [CHIYODA]}))),
        b.call(Some(&operator), Method::POST, "/api/v1/modules/guestbook/suspend", Some(json!({"reason": "調査中"}))),
    );
    assert_eq!(suspend.0, 200, "{suspend:?}");
    assert!(swap.0 == 200 || swap.0 == 409, "{swap:?}");
    live_equals_database(&hosts, &[CHIYODA, SAPPORO]).await;
    assert_eq!(served_by(a, CHIYODA).await, Err(503));
    assert_eq!(b.call(Some(&operator), Method::POST, "/api/v1/modules/guestbook/resume", None).await.0, 200);
    live_equals_database(&hosts, &[CHIYODA, SAPPORO]).await;

    // Subscribe vs release: 函館市 subscribes as a follower while 2.0.0 is approved.
    let hakodate = json!({"lg_code": "012025", "name": "函館市", "population": 240000});
    assert_eq!(a.send_as(&operator, Method::POST, "/api/v1/municipalities", Some(&hakodate)).await.status(), 201);
    // The other replica knows it at once: a code it has not heard of is looked up.
    assert_eq!(b.get("/api/v1/municipalities/012025").await.status(), 200, "the other host does not know 函館市 yet");
    publish_version(a, dir.path(), &key, "2.0.0", "");
    let (subscribed, approve) = tokio::join!(
        put_subscription(b, "012025", json!({"grants": ["kv"]})),
        a.call(Some(&operator), Method::POST, "/api/v1/modules/guestbook/versions/2.0.0/approve", Some(json!({}))),
    );
    assert_eq!((subscribed.status().as_u16(), approve.0), (200, 200), "{approve:?}");
    live_equals_database(&hosts, &[CHIYODA, SAPPORO, "012025"]).await;
}

/// Concurrent replacements of one module's config, through both hosts: each is whole, the
/// last one wins, none merges with another or fails.
async fn config_replacements_do_not_merge(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts(backend, dir.path()).await;
    let admin = hosts[0].token("admin", Some(CHIYODA));
    let bodies: Vec<Value> = (0..8).map(|i| json!({"shared": format!("{i}"), format!("only-{i}"): "x"})).collect();
    let path = format!("/api/v1/municipalities/{CHIYODA}/modules/anything/config");
    let answers = futures::future::join_all(bodies.iter().enumerate().map(|(i, body)| hosts[i % hosts.len()].call(Some(&admin), Method::PUT, &path, Some(body.clone())))).await;
    assert!(answers.iter().all(|(status, _)| *status == 204), "{answers:?}");
    let (_, stored) = hosts[0].call(Some(&admin), Method::GET, &path, None).await;
    assert!(bodies.contains(&stored), "the stored config is one whole replacement, not a merge: {stored}");
}

#[tokio::test]
async fn config_replacements_do_not_merge_on_sqlite() {
    config_replacements_do_not_merge(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_replacements_do_not_merge_on_two_postgres_replicas() {
    if std::env::var("NUKISASHI_TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: needs PostgreSQL (cargo xtask test starts one)");
        return;
    }
    config_replacements_do_not_merge(Backend::Postgres).await;
}

#[tokio::test]
async fn racing_operators_leave_live_equal_to_database_on_sqlite() {
    racing_operators_leave_live_equal_to_database(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_operators_leave_live_equal_to_database_on_two_postgres_replicas() {
    if std::env::var("NUKISASHI_TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: needs PostgreSQL (cargo xtask test starts one)");
        return;
    }
    racing_operators_leave_live_equal_to_database(Backend::Postgres).await;
}

/// Every compiled artifact in a host's cache.
fn artifacts(data_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data_dir.join("artifacts")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "cwasm")).collect()
}

#[tokio::test]
async fn a_version_that_cannot_load_is_quarantined_and_a_damaged_artifact_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap();
    let host = spec.start().unwrap();
    let key = vendor(&host, dir.path(), "acme", false).await;
    let operator = host.token("operator", None);
    // guestbook, and a second module built from another component.
    publish_version(&host, dir.path(), &key, "1.0.0", "");
    let other = manifest(dir.path(), "acme", "notices", "1.0.0", "");
    ok(publish(&host, "acme", &key, &other, &module("linkage-fixture")));
    for module in ["guestbook", "notices"] {
        ok(cli(&host, &operator, &["module", "approve", module, "1.0.0"]));
    }
    for (code, module) in [(CHIYODA, "guestbook"), (SAPPORO, "notices")] {
        let admin = host.token("admin", Some(code));
        let r = host.send_as(&admin, Method::PUT, &format!("/api/v1/municipalities/{code}/subscriptions/{module}"), Some(&json!({"grants": ["kv"]}))).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    assert_eq!(served_by(&host, CHIYODA).await, Ok("guestbook@1.0.0".into()));

    // Torn artifacts (a crash mid-write, a bad disk) are noticed and recompiled.
    host.kill();
    let cached = artifacts(&spec.data_dir);
    assert!(cached.len() >= 2, "{cached:?}");
    for artifact in &cached {
        let bytes = std::fs::read(artifact).unwrap();
        std::fs::write(artifact, &bytes[..bytes.len() / 2]).unwrap();
    }
    let host = spec.start().unwrap();
    assert_eq!(served_by(&host, CHIYODA).await, Ok("guestbook@1.0.0".into()));
    assert!(host.log().contains("does not match its digest; recompiling"), "{}", host.log());

    // A stored component that no longer compiles (here: damaged in the database) does not
    // stop the host: that version is quarantined with its reason, the rest is served.
    host.kill();
    for artifact in artifacts(&spec.data_dir) {
        std::fs::remove_file(artifact).unwrap();
    }
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", spec.data_dir.join("nukisashi.db").display())).await.unwrap();
    let damaged = sqlx::query("UPDATE components SET bytes = X'0061736D0D000100' WHERE digest = (SELECT digest FROM module_versions WHERE module_id = 'guestbook')")
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(damaged.rows_affected(), 1);
    db.close().await;
    let host = spec.start().unwrap();
    assert_eq!(host.get("/readyz").await.status(), 200, "{}", host.log());
    let p = problem(host.get(&format!("/{CHIYODA}/guestbook/")).await).await;
    assert_eq!(p["status"], 503, "{p}");
    let view: Value = host.send_as(&operator, Method::GET, "/api/v1/modules/guestbook/versions", None).await.json().await.unwrap();
    assert!(view["quarantined"]["1.0.0"].as_str().is_some_and(|why| !why.is_empty()), "the reason is visible: {view}");
    let r = host.get(&format!("/{SAPPORO}/notices/")).await;
    assert!(r.headers().get("x-nukisashi-version").is_some_and(|v| v == "notices@1.0.0"), "the other module is served: {}", r.status());

    // The operator moves 千代田区 to a version that loads: it is served, and the quarantine
    // of the version nobody uses any more is over (not listed, no 503 for the module).
    let fixed = manifest(dir.path(), "acme", "guestbook", "1.0.1", "");
    ok(publish(&host, "acme", &key, &fixed, &module("linkage-fixture")));
    ok(cli(&host, &operator, &["module", "approve", "guestbook", "1.0.1", "--no-release"]));
    ok(cli(&host, &operator, &["module", "swap", "guestbook", "1.0.1", "--lg-code", CHIYODA]));
    assert_eq!(served_by(&host, CHIYODA).await, Ok("guestbook@1.0.1".into()));
    let view: Value = host.send_as(&operator, Method::GET, "/api/v1/modules/guestbook/versions", None).await.json().await.unwrap();
    assert!(view["quarantined"].as_object().is_none_or(|q| q.is_empty()), "{view}");
    assert_eq!(host.get(&format!("/{SAPPORO}/guestbook/")).await.status(), 404, "an unsubscribed municipality is told the module is not theirs");
}
