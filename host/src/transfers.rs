//! Files that move between sites: municipality exports waiting to be downloaded (served
//! with HTTP ranges, so a broken download resumes), and uploads arriving in chunks (each
//! appended at the offset the client states, so a broken upload resumes where the host
//! says it stopped). Both carry a SHA-256 of the whole file; an upload is only used once
//! its digest matches the one declared when it began.
//!
//! On disk, under the data directory: `exports/<id>.ndjson` and `transfers/<id>.part`,
//! each with a `<id>.json` describing it. Files older than [`KEEP_FOR`] are removed when a
//! new one is made.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long exports and unfinished uploads are kept.
pub const KEEP_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest upload accepted.
pub const MAX_UPLOAD_BYTES: u64 = 64 << 30;

/// A prepared municipality export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Export {
    pub id: String,
    pub lg_code: String,
    pub length: u64,
    pub sha256: String,
    pub rows: u64,
    pub created_at: String,
}

/// An upload, complete or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    pub length: u64,
    pub sha256: String,
    pub created_by: String,
    /// Bytes received so far (not stored: the file's size).
    #[serde(default)]
    pub offset: u64,
}

/// Writes through to `inner`, hashing and counting.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    length: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.length += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn valid_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

/// Removes files in `dir` older than [`KEEP_FOR`].
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > KEEP_FOR);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub struct Transfers {
    exports: PathBuf,
    uploads: PathBuf,
    /// One writer per upload at a time.
    busy: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Transfers {
    pub fn new(data_dir: &Path) -> Self {
        Self { exports: data_dir.join("exports"), uploads: data_dir.join("transfers"), busy: Default::default() }
    }

    /// Writes a municipality's export to a file and describes it (on a blocking thread: it
    /// serialises, hashes and writes every row).
    pub async fn create_export(&self, db: &crate::store::Db, lg_code: &str) -> Result<Export> {
        let (exports, db, lg_code) = (self.exports.clone(), db.clone(), lg_code.to_string());
        crate::governor::on_blocking_thread(async move {
            std::fs::create_dir_all(&exports)?;
            sweep(&exports);
            let id = uuid::Uuid::new_v4().to_string();
            let path = exports.join(format!("{id}.ndjson"));
            let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = Hashing { inner: std::io::BufWriter::new(file), hasher: Sha256::new(), length: 0 };
            let rows = match crate::store::municipality_archive::export(&db, &lg_code, &mut out).await {
                Ok(rows) => rows,
                Err(e) => {
                    drop(out);
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            };
            out.flush()?;
            out.inner.get_ref().sync_all()?;
            let export = Export { id: id.clone(), lg_code, length: out.length, sha256: hex::encode(out.hasher.finalize()), rows, created_at: crate::store::now_iso() };
            std::fs::write(exports.join(format!("{id}.json")), serde_json::to_vec(&export)?)?;
            Ok(export)
        })
        .await
    }

    /// An export and the path of its file.
    pub fn export(&self, id: &str) -> Result<Option<(Export, PathBuf)>> {
        if !valid_id(id) {
            return Ok(None);
        }
        match std::fs::read(self.exports.join(format!("{id}.json"))) {
            Ok(meta) => Ok(Some((serde_json::from_slice(&meta)?, self.exports.join(format!("{id}.ndjson"))))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts an upload of `length` bytes whose SHA-256 is `sha256`.
    pub fn create_upload(&self, length: u64, sha256: &str, created_by: &str) -> Result<Upload> {
        if length == 0 {
            bail!("an upload has at least one byte (an archive starts with its header line)");
        }
        if length > MAX_UPLOAD_BYTES {
            bail!("an upload is limited to {MAX_UPLOAD_BYTES} bytes");
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("sha256 must be 64 hexadecimal digits");
        }
        std::fs::create_dir_all(&self.uploads)?;
        sweep(&self.uploads);
        let upload = Upload { id: uuid::Uuid::new_v4().to_string(), length, sha256: sha256.to_ascii_lowercase(), created_by: created_by.to_string(), offset: 0 };
        std::fs::File::create(self.part(&upload.id))?;
        std::fs::write(self.uploads.join(format!("{}.json", upload.id)), serde_json::to_vec(&upload)?)?;
        Ok(upload)
    }

    fn part(&self, id: &str) -> PathBuf {
        self.uploads.join(format!("{id}.part"))
    }

    /// An upload with the bytes received so far.
    pub fn upload(&self, id: &str) -> Result<Option<Upload>> {
        if !valid_id(id) {
            return Ok(None);
        }
        let meta = match std::fs::read(self.uploads.join(format!("{id}.json"))) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut upload: Upload = serde_json::from_slice(&meta)?;
        upload.offset = std::fs::metadata(self.part(id))?.len();
        Ok(Some(upload))
    }

    /// Appends `body` at `offset`, which must be where the upload stands. Every chunk
    /// that arrives is written, so a body cut off half-way still moves the upload on.
    /// Returns the new offset.
    pub async fn append(
        &self,
        id: &str,
        offset: u64,
        body: impl futures::Stream<Item = Result<bytes::Bytes, axum::Error>>,
    ) -> Result<u64, AppendError> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let lock = self.busy.lock().expect("transfer locks").entry(id.to_string()).or_default().clone();
        let _writing = lock.lock().await;
        let upload = self.upload(id)?.ok_or(AppendError::Unknown)?;
        if offset != upload.offset {
            return Err(AppendError::Offset(upload.offset));
        }
        let mut file = tokio::fs::OpenOptions::new().append(true).open(self.part(id)).await.map_err(anyhow::Error::from)?;
        let mut at = offset;
        let mut body = std::pin::pin!(body);
        let mut broken = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            };
            if at + chunk.len() as u64 > upload.length {
                file.flush().await.map_err(anyhow::Error::from)?;
                return Err(AppendError::TooLong(upload.length));
            }
            file.write_all(&chunk).await.map_err(anyhow::Error::from)?;
            at += chunk.len() as u64;
        }
        file.flush().await.map_err(anyhow::Error::from)?;
        file.sync_data().await.map_err(anyhow::Error::from)?;
        match broken {
            Some(e) => Err(AppendError::Broken(at, e.to_string())),
            None => Ok(at),
        }
    }

    /// The file of a complete upload whose digest matches; the upload is then consumed by
    /// [`Self::remove_upload`].
    pub fn verified(&self, id: &str) -> Result<PathBuf, AppendError> {
        let upload = self.upload(id)?.ok_or(AppendError::Unknown)?;
        if upload.offset < upload.length {
            return Err(AppendError::Incomplete(upload.offset, upload.length));
        }
        let actual = file_sha256(&self.part(id))?;
        if actual != upload.sha256 {
            return Err(AppendError::Digest { declared: upload.sha256, actual });
        }
        Ok(self.part(id))
    }

    pub fn remove_upload(&self, id: &str) {
        let _ = std::fs::remove_file(self.part(id));
        let _ = std::fs::remove_file(self.uploads.join(format!("{id}.json")));
        self.busy.lock().expect("transfer locks").remove(id);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("no such upload")]
    Unknown,
    #[error("the upload stands at byte {0}; send from there")]
    Offset(u64),
    #[error("the data runs past the declared length of {0} bytes")]
    TooLong(u64),
    #[error("the connection broke at byte {0}: {1}")]
    Broken(u64, String),
    #[error("the upload has {0} of {1} bytes")]
    Incomplete(u64, u64),
    #[error("the upload's SHA-256 is {actual}, not the declared {declared}")]
    Digest { declared: String, actual: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}
