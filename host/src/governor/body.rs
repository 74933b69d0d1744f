//! A module's request body is read whole before an instance is taken: a slow client then
//! holds a connection and some buffer, never an instance (the slow-POST attack held every
//! instance of the host while its bodies trickled in). Reading is bounded three ways: the
//! body's size (`[limits] request_body_bytes`, checked against `Content-Length` before a
//! byte is read), the time to send it (`[limits.connections] body_read_ms`), and the bytes
//! held for all requests together (`body_buffer_bytes`).

use crate::api::problem::Problem;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per permit of the budget.
const UNIT: u64 = 1024;

/// The memory all buffered request bodies may take together.
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total: u64,
}

/// Buffer memory held for one body until the request ends.
pub struct Held(#[allow(dead_code)] Vec<OwnedSemaphorePermit>);

impl BodyBudget {
    pub fn new(total_bytes: u64) -> Self {
        let units = (total_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64) as usize;
        Self { permits: Arc::new(Semaphore::new(units)), total: total_bytes }
    }

    fn reserve(&self, bytes: u64) -> Result<OwnedSemaphorePermit, Problem> {
        let units = bytes.div_ceil(UNIT).max(1) as u32;
        self.permits.clone().try_acquire_many_owned(units).map_err(|_| {
            super::over_capacity(
                "body-buffers",
                format!("request bodies being received already fill the host's {} bytes for them; try again shortly (the limit is [limits.connections] body_buffer_bytes)", self.total),
            )
        })
    }

    /// Reads `body` (which declared `declared` bytes, if it did) up to `max` bytes within
    /// `within`; 413 past `max`, 408 past the time, 503 when the budget is spent.
    pub async fn read(&self, body: Body, declared: Option<u64>, max: usize, within: Duration) -> Result<(Bytes, Held), Problem> {
        if let Some(declared) = declared {
            if declared > max as u64 {
                return Err(too_large(max));
            }
        }
        let mut held = Vec::new();
        if let Some(declared) = declared.filter(|&d| d > 0) {
            held.push(self.reserve(declared)?);
        }
        let mut reserved = declared.unwrap_or(0);
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
                held.push(self.reserve(needed - reserved)?);
                reserved = needed.div_ceil(UNIT) * UNIT;
            }
            bytes.extend_from_slice(&data);
        }
        Ok((bytes.freeze(), Held(held)))
    }
}

pin_project_lite::pin_project! {
    /// A body read whole, holding its share of the buffer budget until it is dropped.
    pub struct HeldBody {
        #[pin]
        inner: http_body_util::Full<Bytes>,
        held: Held,
    }
}

impl HeldBody {
    pub fn new(bytes: Bytes, held: Held) -> Self {
        Self { inner: http_body_util::Full::new(bytes), held }
    }
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
        let budget = BodyBudget::new(64 * 1024);
        let (bytes, _held) = budget.read(Body::from("hello"), Some(5), 100, Duration::from_secs(1)).await.unwrap();
        assert_eq!(&bytes[..], b"hello");
        // Declared too large: refused before reading.
        assert_eq!(budget.read(Body::from("x"), Some(101), 100, Duration::from_secs(1)).await.err().unwrap().status, 413);
        // Undeclared and too large: refused when it gets there.
        assert_eq!(budget.read(trickle(3, 60, Duration::ZERO), None, 100, Duration::from_secs(1)).await.err().unwrap().status, 413);
        // Too slow.
        assert_eq!(budget.read(trickle(5, 1, Duration::from_millis(50)), None, 100, Duration::from_millis(100)).await.err().unwrap().status, 408);
        // The budget: a held body leaves less for the next.
        let (_big, held) = budget.read(Body::from(vec![0u8; 60 * 1024]), Some(60 * 1024), 1 << 20, Duration::from_secs(1)).await.unwrap();
        let refused = budget.read(Body::from(vec![0u8; 8 * 1024]), Some(8 * 1024), 1 << 20, Duration::from_secs(1)).await.err().unwrap();
        assert_eq!(refused.status, 503);
        drop(held);
        assert!(budget.read(Body::from(vec![0u8; 8 * 1024]), Some(8 * 1024), 1 << 20, Duration::from_secs(1)).await.is_ok());
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
