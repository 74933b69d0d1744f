//! The client half of moving a municipality between sites: a download that resumes with
//! `Range` after a break, and a chunked upload that resumes from the offset the host
//! reports; both check the SHA-256 of the whole file. Only `https://` URLs (or loopback).

use crate::client::Client;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// Bytes sent per `PATCH`.
const CHUNK_BYTES: u64 = 4 << 20;
/// Attempts in a row that may fail without moving the transfer on.
const MAX_STALLED_ATTEMPTS: u32 = 8;

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 * u64::from(attempt.min(10)))
}

/// Whether `e` is the connection failing (worth retrying), not the host refusing.
fn is_transport(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<reqwest::Error>() || c.is::<crate::client::Unreachable>())
}

/// The host answered and said no (a 4xx other than a timeout, an offset conflict or too
/// many requests): asking again would get the same answer, so the transfer stops at once.
#[derive(Debug, thiserror::Error)]
#[error("{detail} ({status})")]
struct Refused {
    status: reqwest::StatusCode,
    detail: String,
}

/// The error for a response that is not a success: [`Refused`] when retrying cannot help.
async fn not_accepted(response: reqwest::Response, fallback: &str) -> anyhow::Error {
    let status = response.status();
    let problem: Value = response.json().await.unwrap_or_default();
    let detail = problem["detail"].as_str().unwrap_or(fallback).to_string();
    let retryable = !status.is_client_error() || matches!(status.as_u16(), 408 | 409 | 429);
    if retryable { anyhow::anyhow!("{detail} ({status})") } else { Refused { status, detail }.into() }
}

/// `client.post`, retried while the connection fails.
async fn post_retrying(client: &Client, path: &str, body: &Value) -> Result<Value> {
    let mut attempt = 0;
    loop {
        match client.post(path, body).await {
            Err(e) if is_transport(&e) && attempt < MAX_STALLED_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
            result => return result,
        }
    }
}

/// What an export download produced.
pub struct Downloaded {
    pub lg_code: String,
    pub bytes: u64,
    pub sha256: String,
    /// Times the transfer broke off and resumed.
    pub resumed: u32,
}

/// Prepares the municipality's export on the host and downloads it to `out`, resuming
/// after breaks; the file's SHA-256 must match the host's.
pub async fn export(client: &Client, lg_code: &str, out: &Path) -> Result<Downloaded> {
    crate::tls::require_https(client.base())?;
    // A retried request prepares another export; the unused one expires.
    let export: Value = post_retrying(client, &format!("/municipalities/{lg_code}/exports"), &json!({})).await?;
    let id = export["id"].as_str().context("the host's answer has no export id")?;
    let length = export["length"].as_u64().context("the host's answer has no length")?;
    let sha256 = export["sha256"].as_str().context("the host's answer has no sha256")?.to_string();
    let mut file = tokio::fs::OpenOptions::new().create(true).write(true).truncate(true).open(out).await.with_context(|| format!("cannot write {}", out.display()))?;
    let bar = crate::client::upload_bar(length);
    let (mut at, mut stalled, mut resumed) = (0u64, 0u32, 0u32);
    while at < length {
        let before = at;
        let attempt = async {
            let response = client
                .request(reqwest::Method::GET, &format!("/exports/{id}"))
                .header(reqwest::header::RANGE, format!("bytes={at}-"))
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(not_accepted(response, "the host refused the download").await);
            }
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await?;
                at += chunk.len() as u64;
                bar.set_position(at);
            }
            anyhow::Ok(())
        }
        .await;
        file.flush().await?;
        if let Err(e) = attempt {
            if e.is::<Refused>() {
                return Err(e.context(format!("the download stopped at byte {at} of {length}")));
            }
            stalled = if at > before { 0 } else { stalled + 1 };
            if stalled >= MAX_STALLED_ATTEMPTS {
                return Err(e.context(format!("the download made no progress after {MAX_STALLED_ATTEMPTS} attempts, at byte {at} of {length}")));
            }
            resumed += 1;
            tracing::debug!(error = %format!("{e:#}"), at, "download broke off; resuming");
            tokio::time::sleep(backoff(stalled)).await;
            // Resume exactly where the file ends.
            at = file.seek(std::io::SeekFrom::End(0)).await?;
        }
    }
    bar.finish_and_clear();
    file.sync_all().await?;
    let actual = crate::transfers::file_sha256(out)?;
    if actual != sha256 {
        bail!("the downloaded file's SHA-256 is {actual}, the host's is {sha256}: it was damaged in transit; download it again");
    }
    Ok(Downloaded { lg_code: lg_code.to_string(), bytes: length, sha256, resumed })
}

/// What an upload and import produced.
pub struct Uploaded {
    pub imported: Value,
    pub bytes: u64,
    pub sha256: String,
    pub resumed: u32,
}

/// Uploads an export file to the host in chunks, resuming after breaks, then has the host
/// verify and import it.
pub async fn import(client: &Client, file: &Path) -> Result<Uploaded> {
    crate::tls::require_https(client.base())?;
    let length = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
    let sha256 = crate::transfers::file_sha256(file)?;
    let lg_code = header_lg_code(file)?;
    let upload: Value = post_retrying(client, "/transfers", &json!({ "length": length, "sha256": sha256 })).await?;
    let id = upload["id"].as_str().context("the host's answer has no upload id")?.to_string();
    let bar = crate::client::upload_bar(length);
    let (mut at, mut stalled, mut resumed) = (0u64, 0u32, 0u32);
    while at < length {
        let before = at;
        let attempt = send_chunk(client, &id, file, at, length).await;
        match attempt {
            Ok(next) => at = next,
            Err(e) if e.is::<Refused>() => return Err(e.context(format!("the upload stopped at byte {at} of {length}"))),
            Err(e) => {
                // Ask the host where it stands: what arrived before the break counts.
                if let Ok(status) = client.get::<Value>(&format!("/transfers/{id}")).await
                    && let Some(offset) = status["offset"].as_u64()
                {
                    at = offset;
                }
                stalled = if at > before { 0 } else { stalled + 1 };
                if stalled >= MAX_STALLED_ATTEMPTS {
                    return Err(e.context(format!("the upload made no progress after {MAX_STALLED_ATTEMPTS} attempts, at byte {at} of {length}")));
                }
                resumed += 1;
                tracing::debug!(error = %format!("{e:#}"), at, "upload broke off; resuming");
                tokio::time::sleep(backoff(stalled)).await;
            }
        }
        bar.set_position(at);
    }
    bar.finish_and_clear();
    let imported = finish_import(client, &id, &lg_code).await?;
    Ok(Uploaded { imported, bytes: length, sha256, resumed })
}

/// The municipality an export file is for, from its header line.
fn header_lg_code(file: &Path) -> Result<String> {
    use std::io::BufRead;
    let mut first = String::new();
    std::io::BufReader::new(std::fs::File::open(file)?).read_line(&mut first)?;
    let header: Value = serde_json::from_str(&first).with_context(|| format!("{} is not a municipality export", file.display()))?;
    if header["format"] != crate::store::municipality_archive::FORMAT {
        bail!("{} is not a municipality export (it is `{}`)", file.display(), header["format"].as_str().unwrap_or("unknown"));
    }
    header["lg_code"].as_str().map(str::to_string).context("the export names no municipality")
}

/// Has the host import the upload. If the answer is lost on the way back, the upload
/// being gone and the municipality registered means it was imported.
async fn finish_import(client: &Client, id: &str, lg_code: &str) -> Result<Value> {
    let mut attempt = 0;
    loop {
        match client.post(&format!("/transfers/{id}/import"), &json!({})).await {
            Err(e) if is_transport(&e) && attempt < MAX_STALLED_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
                let upload_gone = matches!(client.get::<Value>(&format!("/transfers/{id}")).await, Err(e) if !is_transport(&e));
                if upload_gone && client.get::<Value>(&format!("/municipalities/{lg_code}")).await.is_ok() {
                    return Ok(json!({ "lg_code": lg_code, "rows": "(answer lost)", "kept": "(answer lost)" }));
                }
            }
            result => return result,
        }
    }
}

/// Sends one chunk from `at`; returns the host's new offset.
async fn send_chunk(client: &Client, id: &str, file: &Path, at: u64, length: u64) -> Result<u64> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(file).await?;
    f.seek(std::io::SeekFrom::Start(at)).await?;
    let size = CHUNK_BYTES.min(length - at);
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f.take(size), 256 * 1024));
    let response = client
        .request(reqwest::Method::PATCH, &format!("/transfers/{id}"))
        .header("upload-offset", at.to_string())
        .header(reqwest::header::CONTENT_LENGTH, size)
        .header(reqwest::header::CONTENT_TYPE, "application/offset+octet-stream")
        .body(body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(not_accepted(response, "the host refused the chunk").await);
    }
    response
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .context("the host's answer has no Upload-Offset")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::routing::{patch, post};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A host on loopback that accepts the upload and then refuses every chunk with 403.
    async fn refusing_host(patches: Arc<AtomicU32>) -> String {
        let refuse = move || {
            let patches = patches.clone();
            async move {
                patches.fetch_add(1, Ordering::SeqCst);
                let problem = json!({ "type": "about:blank", "title": "Forbidden", "status": 403, "detail": "this upload belongs to another operator" });
                (StatusCode::FORBIDDEN, [(axum::http::header::CONTENT_TYPE, "application/problem+json")], problem.to_string())
            }
        };
        let app = axum::Router::new()
            .route("/api/v1/transfers", post(|| async { (StatusCode::CREATED, axum::Json(json!({ "id": "u1", "offset": 0 }))) }))
            .route("/api/v1/transfers/u1", patch(refuse).get(|| async { axum::Json(json!({ "id": "u1", "offset": 0 })) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    #[tokio::test]
    async fn a_refused_chunk_stops_the_upload_at_once() {
        let patches = Arc::new(AtomicU32::new(0));
        let base = refusing_host(patches.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("export.ndjson");
        std::fs::write(&file, format!("{}\n[\"row\"]\n", json!({ "format": crate::store::municipality_archive::FORMAT, "version": 1, "lg_code": "131016" }))).unwrap();

        let started = std::time::Instant::now();
        let error = import(&Client::new(&base, Some("token".into())), &file).await.err().expect("the upload is refused");
        let message = format!("{error:#}");
        assert!(message.contains("this upload belongs to another operator (403 Forbidden)"), "{message}");
        assert!(message.contains("stopped at byte 0"), "{message}");
        assert_eq!(patches.load(Ordering::SeqCst), 1, "the refused chunk was sent again");
        // No backoff sleeps either.
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
}
