//! Moving a municipality between sites: its export is downloaded over HTTPS and uploaded to
//! another host in resumable chunks, through a proxy that cuts the connection at random
//! points several times; the file arrives with an identical digest, and the other host
//! then holds and serves exactly the municipality's data.

use nukisashi_e2e::{Backend, HostSpec, binary, publish_plugin, subscribe, tls_files};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHIYODA: &str = "131016";

/// A TCP proxy to `upstream` that cuts each of its first `cuts` connections after a random
/// number of bytes (between `min` and `max`, both directions counted); later connections
/// pass untouched. Returns the proxy's `https://` base URL and the number of cuts made.
async fn cutting_proxy(upstream: String, cuts: u32, min: usize, max: usize) -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let made = Arc::new(AtomicU32::new(0));
    let left = Arc::new(AtomicU32::new(cuts));
    let counter = made.clone();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("cutting proxy seed {seed}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let server = TcpStream::connect(&upstream).await.unwrap();
            let budget = (left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()).then(|| rng.random_range(min..max));
            let counter = counter.clone();
            tokio::spawn(async move {
                let Some(budget) = budget else {
                    let (mut client, mut server) = (client, server);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    return;
                };
                let spent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let pump = |mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, spent: Arc<std::sync::atomic::AtomicUsize>| async move {
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let before = spent.fetch_add(n, Ordering::SeqCst);
                        if before + n > budget {
                            // Send what fits, then drop the connection mid-stream.
                            let _ = to.write_all(&buf[..budget.saturating_sub(before)]).await;
                            return;
                        }
                        if to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    _ = pump(client_read, server_write, spent.clone()) => {},
                    _ = pump(server_read, client_write, spent.clone()) => {},
                }
                if spent.load(Ordering::SeqCst) > budget {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (base, made)
}

fn sha256_of(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The export's table and row lines, with audit ids (which the target assigns) blanked.
fn content(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut table = String::new();
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines().skip(1) {
        let mut v: Value = serde_json::from_str(line).unwrap();
        if v.get("end").is_some() {
            continue;
        }
        if let Some(t) = v.get("table").and_then(Value::as_str) {
            table = t.to_string();
        } else if table == "audit_log" {
            v[0] = Value::Null;
        } else if table == "vendors" {
            // The vendor is registered on the target by its operator, at another time.
            v[4] = Value::Null;
        }
        lines.push(v.to_string());
    }
    lines
}

fn cli(args: &[&str], token: &str, ca: &std::path::Path) -> (bool, String) {
    let out = Command::new(binary()).args(args).env("NUKISASHI_TOKEN", token).env("NUKISASHI_CA_CERT", ca).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

// Multi-threaded: the proxy keeps running while the test waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_moves_between_hosts_through_a_connection_that_keeps_breaking() {
    let dir = tempfile::tempdir().unwrap();
    let tls = tls_files(&dir.path().join("tls"));
    let source = HostSpec::new(Backend::Sqlite, &dir.path().join("source"), &["guestbook"]).await.unwrap().tls(&tls).start().unwrap();
    assert!(source.base.starts_with("https://"), "{}", source.base);

    // What the municipality owns: demo residents and tax, a catalog module with config,
    // module storage, audit rows from a module's reads.
    publish_plugin(&source, dir.path(), "furusato-tax").await;
    let config = json!({"mayor": "千代田区長", "address": "東京都千代田区九段南1-2-1", "phone": "03-3264-2111"});
    let r = subscribe(&source, CHIYODA, "furusato-tax", &["kv", "tax"], config).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    for i in 0..20 {
        let r = source.post_json(&format!("/{CHIYODA}/guestbook/entries"), &json!({ "name": format!("住民{i}"), "message": "移行前の書き込み" })).await;
        assert!(r.status().is_success());
    }
    let entries_before: Value = source.get(&format!("/{CHIYODA}/guestbook/entries")).await.json().await.unwrap();

    let target_spec = HostSpec::new(Backend::Postgres, &dir.path().join("target"), &["guestbook"]).await.unwrap();
    let mut target_spec = target_spec.tls(&tls);
    target_spec.demo = false;
    let target = target_spec.start().unwrap();

    // Download through a breaking connection.
    let upstream = source.base.trim_start_matches("https://").to_string();
    // Each cut connection carries at most 120 kB, and the export is over 300 kB: at least
    // two cuts happen before the download can finish.
    let (via_source, source_cuts) = cutting_proxy(upstream, 4, 20_000, 120_000).await;
    let file = dir.path().join("chiyoda.ndjson");
    let source_admin = source.token("admin", Some(CHIYODA));
    let (ok, out) = cli(&["municipality", "export", CHIYODA, "--out", file.to_str().unwrap(), "--server", &via_source], &source_admin, &tls.ca);
    assert!(ok, "{out}\n{}", source.log());
    let declared = out.split("sha256 ").nth(1).and_then(|s| s.split_whitespace().next()).expect("the digest is reported").to_string();
    assert_eq!(sha256_of(&file), declared, "{out}");
    assert!(source_cuts.load(Ordering::SeqCst) >= 2, "the download was cut only {} times; {out}", source_cuts.load(Ordering::SeqCst));
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 300_000, "the export is only {size} bytes");

    // Upload through a breaking connection, and import.
    let upstream = target.base.trim_start_matches("https://").to_string();
    let (via_target, target_cuts) = cutting_proxy(upstream, 5, 20_000, size as usize / 3).await;
    let target_operator = target.token("operator", None);
    // The archive's versions are re-verified against this host's vendor keys: before the
    // vendor is registered here, the import is refused and nothing is written.
    let (ok, out) = cli(&["municipality", "import", file.to_str().unwrap(), "--server", &target.base], &target_operator, &tls.ca);
    assert!(!ok && out.contains("has not registered"), "{out}");
    let public = std::fs::read_to_string(dir.path().join("nukisashi-vendor.pub")).unwrap();
    let body = json!({"id": "nukisashi", "name": "抜き差し", "public_key": public});
    let r = target.send_as(&target_operator, reqwest::Method::POST, "/api/v1/vendors", Some(&body)).await;
    assert_eq!(r.status(), 201);
    let (ok, out) = cli(&["municipality", "import", file.to_str().unwrap(), "--server", &via_target], &target_operator, &tls.ca);
    assert!(ok, "{out}\n{}", target.log());
    assert!(out.contains(&format!("sha256 {declared}")), "{out}");
    assert!(target_cuts.load(Ordering::SeqCst) >= 2, "the upload was cut only {} times; {out}", target_cuts.load(Ordering::SeqCst));

    // The target holds exactly what the source exported: a fresh export there has the
    // same tables and rows.
    let again = dir.path().join("again.ndjson");
    let target_admin = target.token("admin", Some(CHIYODA));
    let (ok, out) = cli(&["municipality", "export", CHIYODA, "--out", again.to_str().unwrap(), "--server", &target.base], &target_admin, &tls.ca);
    assert!(ok, "{out}");
    let (before, after) = (content(&file), content(&again));
    assert_eq!(before.len(), after.len());
    let differing = before.iter().zip(&after).find(|(b, a)| b != a);
    assert!(differing.is_none(), "the imported data differs from the export: {differing:?}");

    // And serves it: module storage, and the catalog module with its config.
    let entries_after: Value = target.get(&format!("/{CHIYODA}/guestbook/entries")).await.json().await.unwrap();
    assert_eq!(entries_after, entries_before);
    let r = target.get(&format!("/{CHIYODA}/furusato-tax/")).await;
    assert!(r.status().is_success(), "{}", target.log());

    // A second import of the same municipality is refused, and nothing changes.
    let (ok, out) = cli(&["municipality", "import", file.to_str().unwrap(), "--server", &target.base], &target_operator, &tls.ca);
    assert!(!ok && out.contains("already registered"), "{out}");

    // Clear text is refused before anything is sent.
    let (ok, out) = cli(&["municipality", "export", CHIYODA, "--out", again.to_str().unwrap(), "--server", "http://files.example.jp"], &source_admin, &tls.ca);
    assert!(!ok && out.contains("HTTPS only"), "{out}");
}

#[tokio::test]
async fn a_damaged_upload_is_refused_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tls = tls_files(&dir.path().join("tls"));
    let source = HostSpec::new(Backend::Sqlite, &dir.path().join("source"), &["guestbook"]).await.unwrap().tls(&tls).start().unwrap();
    let file = dir.path().join("export.ndjson");
    let (ok, out) = cli(&["municipality", "export", CHIYODA, "--out", file.to_str().unwrap(), "--server", &source.base], &source.token("operator", None), &tls.ca);
    assert!(ok, "{out}");

    let mut spec = HostSpec::new(Backend::Sqlite, &dir.path().join("target"), &[]).await.unwrap().tls(&tls);
    spec.demo = false;
    let target = spec.start().unwrap();
    let operator = target.token("operator", None);
    let bytes = std::fs::read(&file).unwrap();
    // Declared with the true digest, but one byte changes in transit.
    let created = target.send_as(&operator, reqwest::Method::POST, "/api/v1/transfers", Some(&json!({ "length": bytes.len(), "sha256": sha256_of(&file) }))).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 2] ^= 0x20;
    let r = target.client.patch(target.url(&format!("/api/v1/transfers/{id}"))).bearer_auth(&operator).header("upload-offset", "0").body(damaged).send().await.unwrap();
    assert_eq!(r.status(), 204);
    // A chunk at the wrong offset is refused with where the upload stands.
    let r = target.client.patch(target.url(&format!("/api/v1/transfers/{id}"))).bearer_auth(&operator).header("upload-offset", "5").body("x").send().await.unwrap();
    assert_eq!(r.status(), 409);
    let r = target.send_as(&operator, reqwest::Method::POST, &format!("/api/v1/transfers/{id}/import"), None).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("SHA-256"), "{problem}");
    let municipalities: Vec<Value> = target.get("/api/v1/municipalities").await.json().await.unwrap();
    assert!(municipalities.is_empty(), "{municipalities:?}");
}
