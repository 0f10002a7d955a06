//! The HTTP listener and its defences against slow and idle clients: a cap on open connections
//! (beyond it a new connection gets an immediate `503` and is closed), a deadline for a request's
//! headers, an idle timeout for connections that send nothing, and (in [`crate::server::serve_with`])
//! a deadline for a request's body. Accept errors (such as running out of file descriptors) back
//! off instead of spinning, and are logged at most once a minute.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// How long and how many connections the listener keeps open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most; beyond this a new one is answered `503` and closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive completely within this time of the connection being ready
    /// for them (opened, or its previous response sent).
    pub header_read_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed (after its request in
    /// progress, if any): a new connection that sends nothing, or a kept-alive one between
    /// requests. A connection waiting for a request is closed after the shorter of this and
    /// `header_read_timeout`.
    pub idle_timeout: Duration,
    /// A request's body must arrive completely within this time of its headers.
    pub request_body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            request_body_timeout: Duration::from_secs(60),
        }
    }
}

/// Connections kept below the process's file-descriptor limit: the store, the log and outbound
/// deliveries need descriptors too, so at most half of the limit goes to clients.
pub fn cap_to_file_limit(max_connections: usize) -> usize {
    match open_file_limit() {
        Some(limit) => max_connections.min((limit / 2).max(1)),
        None => max_connections,
    }
}

/// Raises the soft open-file limit to the hard limit (as many servers do at start) and returns the
/// soft limit in force afterwards.
pub fn raise_open_file_limit() -> Option<usize> {
    // SAFETY: getrlimit/setrlimit only read and write the `rlimit` passed by reference.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        usize::try_from(limit.rlim_cur).ok()
    }
}

fn open_file_limit() -> Option<usize> {
    // SAFETY: getrlimit only writes the `rlimit` passed by reference.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        usize::try_from(limit.rlim_cur).ok()
    }
}

/// The answer to a connection over the cap; written without waiting (the socket's send buffer is
/// empty), then the connection is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 80\r\n\r\n\
{\"error\":\"too many open connections; retry later\",\"code\":\"too_many_connections\"}";

/// Serves `app` on `listener` with `limits` until `shutdown` completes, then lets open requests
/// finish (idle connections are closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_connections));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut accept_errors = AcceptErrors::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                let pause = accept_errors.failed(&error);
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        accept_errors.succeeded();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            address,
            app.clone(),
            limits,
            permit,
            stopping.clone(),
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it is closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Answers a connection over the cap without reading from it, and closes it.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(OVER_CAPACITY);
    metrics::counter!("hookd_http_connections_refused_total").increment(1);
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.shutdown()).await;
    });
}

/// One client connection (HTTP/1.1), closed when idle for `idle_timeout` or when the server stops
/// (in both cases after the request in progress, if any).
async fn serve_connection(
    stream: TcpStream,
    address: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    permit: OwnedSemaphorePermit,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
        _permit: permit,
    });
    // Client addresses reach the handlers (failed authentication is limited per address).
    let service = app.map_request(move |mut request: axum::extract::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(address));
        request
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Above the API's own limit, which answers in JSON (`api::limit_headers`).
        .max_headers(2 * crate::api::MAX_HEADER_FIELDS);
    let conn = builder.serve_connection(io, TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    let watchdog = IdleWatchdog {
        activity,
        idle_timeout: limits.idle_timeout,
    };
    tokio::select! {
        _ = conn.as_mut() => return,
        () = watchdog.idle() => {}
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    // hyper closes an idle connection at once, and one in the middle of a request after its
    // response.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// When a connection last read or wrote a byte.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

struct IdleWatchdog {
    activity: Arc<Activity>,
    idle_timeout: Duration,
}

impl IdleWatchdog {
    /// Resolves once the connection has moved no byte for `idle_timeout`.
    async fn idle(&self) {
        loop {
            let deadline = self.activity.last() + self.idle_timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A client connection that records its activity and holds its slot under the cap until dropped.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accept failures in a row: each pauses the loop longer (10 ms doubling to 1 s), and the log
/// hears of them at most once a minute, with the count since.
#[derive(Default)]
struct AcceptErrors {
    in_a_row: u32,
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl AcceptErrors {
    fn failed(&mut self, error: &io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unlogged += 1;
        metrics::counter!("hookd_http_accept_errors_total").increment(1);
        let due = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
        if due {
            tracing::warn!(
                %error,
                failures = self.unlogged,
                "cannot accept connections (logged at most once a minute)"
            );
            self.unlogged = 0;
            self.logged_at = Some(Instant::now());
        }
        accept_backoff(self.in_a_row)
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }
}

/// The pause after the `n`th accept failure in a row: 10 ms doubling, at most 1 s.
fn accept_backoff(n: u32) -> Duration {
    let ms = 10u64.saturating_mul(1 << n.saturating_sub(1).min(7));
    Duration::from_millis(ms.min(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_to_a_second() {
        let pauses: Vec<u64> = (1..=10)
            .map(|n| accept_backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }

    #[test]
    fn the_over_capacity_answer_declares_its_length() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], "too_many_connections");
    }
}
