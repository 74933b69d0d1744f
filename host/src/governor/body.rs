//! A module's request body is read whole before an instance is taken: a slow client then
//! holds a connection and some buffer, never an instance (the slow-POST attack held every
//! instance of the host while its bodies trickled in). Reading is bounded three ways: the
//! body's size (`[limits] request_body_bytes`, checked against `Content-Length` before a
//! byte is read), the time to send it (`[limits.connections] body_read_ms`), and the bytes
//! held for all requests together and per municipality (`body_buffer_bytes`). The same
//! kind of budget bounds module responses held until slow clients read them
//! (`response_buffer_bytes`).

use crate::api::problem::Problem;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use crate::lgcode::LgCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per permit of a budget.
const UNIT: u64 = 1024;

/// Memory that bodies held by the host may take together, with a share per municipality:
/// request bodies being received (`[limits.connections] body_buffer_bytes`), and module
/// responses waiting for their clients to read them (`response_buffer_bytes`).
pub struct Budget {
    /// For problem types and metrics, e.g. `body-buffers`.
    slug: &'static str,
    /// In words, e.g. `request bodies being received`.
    what: &'static str,
    setting: &'static str,
    share_setting: &'static str,
    permits: Arc<Semaphore>,
    total: u64,
    share: u64,
    held: Arc<Mutex<HashMap<LgCode, u64>>>,
}

/// Budget held for one body until it is dropped.
pub struct Held {
    _permits: Vec<OwnedSemaphorePermit>,
    held: Arc<Mutex<HashMap<LgCode, u64>>>,
    lg_code: LgCode,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.held.lock().expect("budget lock");
        if let Some(n) = held.get_mut(&self.lg_code) {
            *n = n.saturating_sub(self.bytes);
            if *n == 0 {
                held.remove(&self.lg_code);
            }
        }
    }
}

impl Budget {
    pub fn new(slug: &'static str, what: &'static str, (setting, share_setting): (&'static str, &'static str), total_bytes: u64, per_municipality: u64) -> Self {
        let units = (total_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64) as usize;
        Self { slug, what, setting, share_setting, permits: Arc::new(Semaphore::new(units)), total: total_bytes, share: per_municipality.min(total_bytes), held: Default::default() }
    }

    /// Reserves `bytes` more for a body of `lg_code`, or the 503 naming the limit.
    pub fn reserve(&self, lg_code: &LgCode, bytes: u64, into: &mut Option<Held>) -> Result<(), Problem> {
        let bytes = bytes.div_ceil(UNIT).max(1) * UNIT;
        {
            let mut held = self.held.lock().expect("budget lock");
            let mine = held.entry(lg_code.clone()).or_default();
            if *mine + bytes > self.share {
                return Err(super::over_capacity(
                    &format!("{}-municipality", self.slug),
                    format!("{} of municipality {lg_code} already take its {} bytes of the host's buffers; try again shortly (the limit is {})", self.what, self.share, self.share_setting),
                ));
            }
            *mine += bytes;
        }
        let units = (bytes / UNIT) as u32;
        let Ok(permit) = self.permits.clone().try_acquire_many_owned(units) else {
            let mut held = self.held.lock().expect("budget lock");
            if let Some(n) = held.get_mut(lg_code) {
                *n -= bytes;
            }
            return Err(super::over_capacity(
                self.slug,
                format!("{} already fill the host's {} bytes for them; try again shortly (the limit is {})", self.what, self.total, self.setting),
            ));
        };
        match into {
            Some(held) => {
                held._permits.push(permit);
                held.bytes += bytes;
            }
            None => *into = Some(Held { _permits: vec![permit], held: self.held.clone(), lg_code: lg_code.clone(), bytes }),
        }
        Ok(())
    }

    /// Reads `body` (which declared `declared` bytes, if it did) up to `max` bytes within
    /// `within`; 413 past `max`, 408 past the time, 503 when the budget (the host's, or
    /// the municipality's share of it) is spent.
    pub async fn read(&self, lg_code: &LgCode, body: Body, declared: Option<u64>, max: usize, within: Duration) -> Result<(Bytes, Option<Held>), Problem> {
        if let Some(declared) = declared {
            if declared > max as u64 {
                return Err(too_large(max));
            }
        }
        let mut held = None;
        if let Some(declared) = declared.filter(|&d| d > 0) {
            self.reserve(lg_code, declared, &mut held)?;
        }
        let mut reserved = held.as_ref().map_or(0, |h| h.bytes);
        let deadline = tokio::time::Instant::now() + within;
        let mut body = body;
        let mut bytes = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(too_slow(within)),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(Problem::bad_request("body-unreadable", format!("the request body could not be read: {e}"))),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            if bytes.len() + data.len() > max {
                return Err(too_large(max));
            }
            let needed = (bytes.len() + data.len()) as u64;
            if needed > reserved {
                self.reserve(lg_code, needed - reserved, &mut held)?;
                reserved = held.as_ref().map_or(0, |h| h.bytes);
            }
            bytes.extend_from_slice(&data);
        }
        Ok((bytes.freeze(), held))
    }
}

/// The most of a held body handed to the connection at a time: the connection takes the
/// next piece only when the client has taken the last, so what a slow client has not read
/// stays here, counted in the budget, not in the connection's buffers.
const PIECE: usize = 64 << 10;

/// A body read whole (or a module's whole answer), holding its share of a budget until the
/// last byte has been taken by the connection.
pub struct HeldBody {
    rest: Bytes,
    held: Option<Held>,
}

impl HeldBody {
    pub fn new(bytes: Bytes, held: Option<Held>) -> Self {
        Self { rest: bytes, held }
    }
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.rest.is_empty() {
            self.held = None;
            return std::task::Poll::Ready(None);
        }
        let n = self.rest.len().min(PIECE);
        let piece = self.rest.split_to(n);
        if self.rest.is_empty() {
            self.held = None;
        }
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// The connection is closed after these: the client may still be sending.
fn closing(problem: Problem) -> Problem {
    let mut problem = problem;
    problem.headers.push((header::CONNECTION, HeaderValue::from_static("close")));
    problem
}

fn too_large(max: usize) -> Problem {
    closing(Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        format!("request bodies to modules are limited to {max} bytes (the limit is [limits] request_body_bytes)"),
    ))
}

fn too_slow(within: Duration) -> Problem {
    closing(Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "body-timeout",
        "Request body too slow",
        format!("the request body did not arrive within {} ms (the limit is [limits.connections] body_read_ms)", within.as_millis()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn trickle(chunks: usize, size: usize, every: Duration) -> Body {
        let stream = futures::stream::iter(0..chunks).then(move |_| async move {
            tokio::time::sleep(every).await;
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size]))
        });
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn bodies_are_bounded_in_size_time_and_memory() {
        let budget = Budget::new("body-buffers", "request bodies being received", ("[limits.connections] body_buffer_bytes", "[limits.connections] body_buffer_per_municipality"), 64 * 1024, 48 * 1024);
        let (a, b) = (LgCode::parse("131016").unwrap(), LgCode::parse("011002").unwrap());
        let (bytes, _held) = budget.read(&a, Body::from("hello"), Some(5), 100, Duration::from_secs(1)).await.unwrap();
        assert_eq!(&bytes[..], b"hello");
        // Declared too large: refused before reading.
        assert_eq!(budget.read(&a, Body::from("x"), Some(101), 100, Duration::from_secs(1)).await.err().unwrap().status, 413);
        // Undeclared and too large: refused when it gets there.
        assert_eq!(budget.read(&a, trickle(3, 60, Duration::ZERO), None, 100, Duration::from_secs(1)).await.err().unwrap().status, 413);
        // Too slow.
        assert_eq!(budget.read(&a, trickle(5, 1, Duration::from_millis(50)), None, 100, Duration::from_millis(100)).await.err().unwrap().status, 408);
        // A municipality's share: 48 KiB held leave it no room, and another municipality some.
        let (_big, held) = budget.read(&a, Body::from(vec![0u8; 40 * 1024]), Some(40 * 1024), 1 << 20, Duration::from_secs(1)).await.unwrap();
        let refused = budget.read(&a, Body::from(vec![0u8; 16 * 1024]), Some(16 * 1024), 1 << 20, Duration::from_secs(1)).await.err().unwrap();
        assert_eq!((refused.status, refused.kind.as_str()), (503, "urn:nukisashi:problem:over-capacity-body-buffers-municipality"));
        let (_other, other_held) = budget.read(&b, Body::from(vec![0u8; 16 * 1024]), Some(16 * 1024), 1 << 20, Duration::from_secs(1)).await.unwrap();
        // The host's whole budget: 56 KiB held of 64.
        let refused = budget.read(&b, Body::from(vec![0u8; 16 * 1024]), Some(16 * 1024), 1 << 20, Duration::from_secs(1)).await.err().unwrap();
        assert_eq!(refused.status, 503);
        drop((held, other_held));
        assert!(budget.read(&a, Body::from(vec![0u8; 40 * 1024]), Some(40 * 1024), 1 << 20, Duration::from_secs(1)).await.is_ok(), "held bodies give their budget back");
    }
}

/// An upload written to disk, removed when dropped.
pub struct Spooled {
    path: std::path::PathBuf,
    pub bytes: u64,
}

impl Spooled {
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes an upload (an import file) to `dir` before anything reads it, so that the one
/// short transaction that imports it starts only once the whole file is here: a stalled
/// upload then holds a file, not the database's write lock. Up to `max` bytes (413 past it,
/// or at once if `declared` says so); 408 if no byte arrives for `idle`.
pub async fn spool(body: Body, declared: Option<u64>, dir: &std::path::Path, max: u64, idle: Duration) -> Result<Spooled, Problem> {
    use tokio::io::AsyncWriteExt;
    let too_big = || {
        closing(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload-too-large",
            "Upload too large",
            format!("uploads are limited to {max} bytes (the limit is [limits.storage] import_bytes)"),
        ))
    };
    if declared.is_some_and(|d| d > max) {
        return Err(too_big());
    }
    let internal = |e: std::io::Error| Problem::internal(anyhow::Error::from(e).context("cannot spool the upload"));
    tokio::fs::create_dir_all(dir).await.map_err(internal)?;
    let spooled = Spooled { path: dir.join(format!("{}.upload", uuid::Uuid::new_v4())), bytes: 0 };
    let mut file = tokio::fs::File::create(&spooled.path).await.map_err(internal)?;
    let mut spooled = spooled;
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(too_slow(idle)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(Problem::bad_request("upload-broken", format!("the upload broke off after {} bytes: {e}; nothing was imported", spooled.bytes))),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        spooled.bytes += data.len() as u64;
        if spooled.bytes > max {
            return Err(too_big());
        }
        file.write_all(&data).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    Ok(spooled)
}

/// A reader that fails once a line grows past its limit, so a file with no line breaks
/// cannot make the parser hold it whole.
pub struct BoundedLines<R> {
    inner: R,
    max: usize,
    line: usize,
    line_no: u64,
}

impl<R> BoundedLines<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self { inner, max, line: 0, line_no: 1 }
    }
}

impl<R: std::io::Read> std::io::Read for BoundedLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line = 0;
                self.line_no += 1;
            } else {
                self.line += 1;
                if self.line > self.max {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("line {} is longer than {} bytes (the limit is [limits.storage] csv_line_bytes)", self.line_no, self.max),
                    ));
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod spool_tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_line_without_end_is_refused_at_its_limit() {
        let mut ok = String::new();
        BoundedLines::new("a,b\nc,d\n".as_bytes(), 3).read_to_string(&mut ok).unwrap();
        assert_eq!(ok, "a,b\nc,d\n");
        let mut sink = Vec::new();
        let e = BoundedLines::new(&b"ok\nxxxxxxxxxx"[..], 4).read_to_end(&mut sink).unwrap_err();
        assert!(e.to_string().contains("line 2 is longer than 4 bytes"), "{e}");
    }

    #[tokio::test]
    async fn uploads_are_spooled_within_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        let spooled = spool(Body::from("a,b\n"), Some(4), dir.path(), 10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(std::fs::read(spooled.path()).unwrap(), b"a,b\n");
        let path = spooled.path().to_path_buf();
        drop(spooled);
        assert!(!path.exists(), "the spool file goes with the import");
        assert_eq!(spool(Body::from("x"), Some(11), dir.path(), 10, Duration::from_secs(1)).await.err().unwrap().status, 413);
        assert_eq!(spool(Body::from(vec![0u8; 11]), None, dir.path(), 10, Duration::from_secs(1)).await.err().unwrap().status, 413);
    }
}
