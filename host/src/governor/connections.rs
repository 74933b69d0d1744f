//! The listener: connections are counted in all and per client address, and each must
//! keep moving. A client that opens more than its share, or arrives when the host has no
//! room, is closed at once (before any request is read); one that does not send its
//! request headers within `header_read_ms` (slowloris), or lets a connection sit idle
//! past `idle_ms`, is disconnected. HTTP/1.1 and HTTP/2, plain or TLS, through one accept
//! loop.

use super::limits::ConnectionLimits;
use crate::app::App;
use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// File descriptors kept for everything but client connections (database, artifacts,
/// logs, the module files).
const RESERVED_FILES: u64 = 256;

/// Open connections, in all and per client address.
struct Open {
    max: u32,
    per_client: u32,
    counts: Mutex<(u32, HashMap<IpAddr, u32>)>,
}

/// A counted connection; uncounted when dropped.
struct Counted {
    open: Arc<Open>,
    client: IpAddr,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock().expect("connection counts");
        counts.0 -= 1;
        if let Some(n) = counts.1.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.1.remove(&self.client);
            }
        }
    }
}

impl Open {
    fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Counted, &'static str> {
        let mut counts = self.counts.lock().expect("connection counts");
        if counts.0 >= self.max {
            return Err("connections");
        }
        let mine = counts.1.entry(client).or_default();
        if *mine >= self.per_client {
            return Err("client-connections");
        }
        *mine += 1;
        counts.0 += 1;
        Ok(Counted { open: self.clone(), client })
    }
}

/// Raises the process's open-file limit to its hard limit and returns how many
/// connections fit under it.
fn connection_room(wanted: u32) -> u32 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return wanted;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    let room = (limit.rlim_cur as u64).saturating_sub(RESERVED_FILES).max(16);
    if (wanted as u64) > room {
        tracing::warn!(wanted, room, "[limits.connections] max is above what the open-file limit allows; using the lower number");
    }
    wanted.min(room.min(u32::MAX as u64) as u32)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests
/// finish (for at most `drain`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ConnectionLimits,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) -> Result<()> {
    let open = Arc::new(Open { max: connection_room(limits.max), per_client: limits.per_client, counts: Mutex::default() });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_ms))
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_read = Duration::from_millis(limits.header_read_ms);
    let idle = Duration::from_millis(limits.idle_ms);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let counted = match open.admit(peer.ip()) {
            Ok(counted) => counted,
            Err(limit) => {
                app.governor.refused(limit);
                tracing::debug!(client = %peer.ip(), limit, "connection refused");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let (builder, tls, app) = (builder.clone(), tls.clone(), app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _counted = counted;
            let _open = app.metrics.connection_open();
            let result = match tls {
                None => watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(Idle::new(stream, idle)), service).into_owned()).await,
                Some(acceptor) => match tokio::time::timeout(header_read, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(Idle::new(stream, idle)), service).into_owned()).await,
                    Ok(Err(e)) => {
                        tracing::debug!(client = %peer.ip(), error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
            };
            if let Err(e) = result {
                // hyper says which limit ended it in words only.
                let text = format!("{e:?}");
                if text.contains("HeaderTimeout") || text.contains("read header from client timeout") {
                    app.governor.refused("header-timeout");
                } else if text.contains("connection idle") {
                    app.governor.refused("idle-timeout");
                }
                tracing::debug!(client = %peer.ip(), error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still open when the drain time ran out");
    }
    Ok(())
}

/// A connection that ends when no byte moved either way for its idle time.
struct Idle<S> {
    inner: S,
    timer: Pin<Box<tokio::time::Sleep>>,
    idle: Duration,
}

impl<S> Idle<S> {
    fn new(inner: S, idle: Duration) -> Self {
        Self { inner, timer: Box::pin(tokio::time::sleep(idle)), idle }
    }

    fn moved(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.timer.as_mut().reset(next);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle"))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(&result, Poll::Ready(Ok(n)) if *n > 0) {
            self.moved();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_in_all_and_per_client() {
        let open = Arc::new(Open { max: 3, per_client: 2, counts: Mutex::default() });
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let first = open.admit(a).unwrap();
        let _second = open.admit(a).unwrap();
        assert_eq!(open.admit(a).err(), Some("client-connections"));
        let _third = open.admit(b).unwrap();
        assert_eq!(open.admit(b).err(), Some("connections"));
        drop(first);
        assert!(open.admit(b).is_ok(), "a closed connection makes room");
    }
}
