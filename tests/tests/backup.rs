//! Backup and restore: an online backup taken while requests keep writing holds every
//! write acknowledged before it began; restored into a fresh host (SQLite, or PostgreSQL:
//! the format is the same), the platform serves the same modules and data; a damaged
//! backup restores nothing.

use nukisashi_e2e::{Backend, Host, HostSpec, binary, fresh_postgres_database};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";

fn restore(file: &std::path::Path, dir: &std::path::Path, database_url: Option<&str>) -> std::process::Output {
    let mut c = Command::new(binary());
    c.arg("restore").arg(file).arg("--data-dir").arg(dir);
    if let Some(url) = database_url {
        c.args(["--database-url", url]);
    }
    c.output().unwrap()
}

async fn entries(host: &Host) -> Vec<u64> {
    let list: Vec<Value> = host.get(&format!("/{CHIYODA}/guestbook/entries")).await.json().await.unwrap();
    let mut ids: Vec<u64> = list.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn online_backup_restores_everything_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = HostSpec::new(Backend::Sqlite, &dir.path().join("a"), &["guestbook"]).await.unwrap();
    let host = Arc::new(spec.start().unwrap());
    let operator = host.token("operator", None);

    // Writers keep adding entries while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (host, stop) = (host.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = host.post_json(&format!("/{CHIYODA}/guestbook/entries"), &json!({"name": format!("書き手{w}"), "message": format!("{n}")})).await;
                    assert_eq!(r.status(), 201);
                    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
                    acked.push((id, Instant::now()));
                    n += 1;
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let backup_file = dir.path().join("backup.ndjson");
    let began = Instant::now();
    let out = tokio::task::spawn_blocking({
        let (base, file, token) = (host.base.clone(), backup_file.clone(), operator.clone());
        move || Command::new(binary()).args(["backup", "--server", &base, "--out"]).arg(&file).env("NUKISASHI_TOKEN", &token).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut before = Vec::new();
    for w in writers {
        before.extend(w.await.unwrap().into_iter().filter(|(_, at)| *at < began).map(|(id, _)| id));
    }
    assert!(before.len() > 5, "the writers were busy before the backup ({})", before.len());
    let residents_a = host.send_as(&host.token("admin", Some(CHIYODA)), reqwest::Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/linkage/residents/export"), None).await.text().await.unwrap();

    // Restored into a fresh SQLite host: every acknowledged entry, the same residents, and
    // the same secret (a token of the old host works).
    let out = restore(&backup_file, &dir.path().join("b"), None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut spec_b = HostSpec::new(Backend::Sqlite, &dir.path().join("b"), &["guestbook"]).await.unwrap();
    spec_b.demo = false;
    let b = spec_b.start().unwrap();
    let restored = entries(&b).await;
    for id in &before {
        assert!(restored.contains(id), "entry {id}, acknowledged before the backup began, is missing");
    }
    let admin_token_from_a = host.token("admin", Some(CHIYODA));
    let residents_b = b.send_as(&admin_token_from_a, reqwest::Method::GET, &format!("/api/v1/municipalities/{CHIYODA}/linkage/residents/export"), None).await;
    assert_eq!(residents_b.status(), 200, "a token of the old host is valid on the restored one");
    assert_eq!(residents_b.text().await.unwrap(), residents_a);

    // A damaged backup restores nothing, and says so.
    let text = std::fs::read_to_string(&backup_file).unwrap();
    let damaged = dir.path().join("damaged.ndjson");
    std::fs::write(&damaged, text.replacen("千代田区", "千代田村", 1)).unwrap();
    let out = restore(&damaged, &dir.path().join("c"), None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("digest"), "{}", String::from_utf8_lossy(&out.stderr));
    let truncated = dir.path().join("truncated.ndjson");
    // Cut at a byte, not a character: a transfer that stops can leave half a UTF-8 sequence.
    std::fs::write(&truncated, &text.as_bytes()[..text.len() / 2]).unwrap();
    let out = restore(&truncated, &dir.path().join("c"), None);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("the file") && !said.contains("panicked"), "a cut-off backup is refused with a sentence: {said}");
    // Nothing was half-written: the good backup still restores into the same directory.
    let out = restore(&backup_file, &dir.path().join("c"), None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A database with data is never overwritten.
    let out = restore(&backup_file, &dir.path().join("c"), None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds data"));

    // The same backup restores into PostgreSQL.
    let url = fresh_postgres_database().await.unwrap();
    let out = restore(&backup_file, &dir.path().join("d"), Some(&url));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut spec_d = HostSpec::new(Backend::Sqlite, &dir.path().join("d"), &["guestbook"]).await.unwrap();
    spec_d.database_url = Some(url);
    spec_d.demo = false;
    let d = spec_d.start().unwrap();
    assert_eq!(entries(&d).await, restored);
    let r = d.post_json(&format!("/{CHIYODA}/guestbook/entries"), &json!({"name": "復元後", "message": "続き"})).await;
    assert_eq!(r.status(), 201);
}
