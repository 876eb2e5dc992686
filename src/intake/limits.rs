//! What keeps slow, idle or numerous clients from holding the public
//! listener: a cap on open connections (a semaphore permit per accepted
//! stream; past the cap new connections wait in the kernel's backlog), a
//! header timeout (from a new connection's start, or a later request's first
//! byte, to the end of the request's headers; past it the connection is
//! closed), a cap on webhook requests handled at once
//! ([`InFlight`]: over it, 503 + `Retry-After`), and the process's open-files
//! limit raised to what the system allows. The body timeout is applied where
//! the body is read (`routes.rs`); the idle timeout is poem's own.
//!
//! The header timeout reads the bytes as they pass: a new connection's first
//! request is timed from the connection's start (a client that connects and
//! says nothing is closed after `header_timeout_secs`, not `idle_timeout_secs`),
//! a later one from its first byte after the previous response; headers end
//! at the first blank line (`\r\n\r\n`, or `\n\n`). It is meant for HTTP/1.1, which is what
//! Cativa sends.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError};
use tokio::time::{Instant, Sleep};
use tracing::{info, warn};

/// An acceptor that holds one permit per open connection and closes
/// connections whose request headers take longer than `header_timeout`.
pub struct Limited<A> {
    inner: A,
    permits: Arc<Semaphore>,
    header_timeout: Duration,
    /// Whether the cap was reached (logged once per episode).
    full: Arc<AtomicBool>,
}

impl<A> Limited<A> {
    pub fn new(inner: A, max_connections: usize, header_timeout: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            header_timeout,
            full: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// A connection's permit, waiting (and saying so once) when all are taken.
async fn permit(
    permits: Arc<Semaphore>,
    full: Arc<AtomicBool>,
) -> io::Result<OwnedSemaphorePermit> {
    match permits.clone().try_acquire_owned() {
        Ok(p) => return Ok(p),
        Err(TryAcquireError::Closed) => return Err(io::Error::other("listener closed")),
        Err(TryAcquireError::NoPermits) => {}
    }
    if !full.swap(true, Ordering::Relaxed) {
        warn!(
            "intake.max_connections reached: new connections wait until one closes (raise it if these are genuine)"
        );
    }
    let permit = permits
        .acquire_owned()
        .await
        .map_err(|_| io::Error::other("listener closed"))?;
    if full.swap(false, Ordering::Relaxed) {
        info!("below intake.max_connections again: accepting connections");
    }
    Ok(permit)
}

impl<A: Acceptor> Acceptor for Limited<A> {
    type Io = Guarded<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let permit = permit(self.permits.clone(), self.full.clone()).await?;
        match self.inner.accept().await {
            Ok((io, local, remote, scheme)) => Ok((
                Guarded::new(io, permit, self.header_timeout),
                local,
                remote,
                scheme,
            )),
            Err(e) => {
                // Out of file descriptors and the like: poem retries at once,
                // so pause rather than spin.
                warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(e)
            }
        }
    }
}

/// Where a connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests on a kept-alive connection (poem's idle timeout
    /// applies).
    Idle,
    /// Before the first request, or reading headers: the header deadline runs.
    Headers,
    /// Headers done: the body timeout and the request deadline apply.
    Body,
}

/// A connection's stream: holds its permit and enforces the header timeout.
pub struct Guarded<IO> {
    inner: IO,
    _permit: OwnedSemaphorePermit,
    header_timeout: Duration,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    /// The last two bytes of the headers so far.
    last: [u8; 2],
}

impl<IO> Guarded<IO> {
    fn new(inner: IO, permit: OwnedSemaphorePermit, header_timeout: Duration) -> Self {
        Self {
            inner,
            _permit: permit,
            header_timeout,
            // A new connection owes its first request's headers at once.
            phase: Phase::Headers,
            deadline: Box::pin(tokio::time::sleep(header_timeout)),
            last: [0; 2],
        }
    }

    /// Follows the request through the bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match self.phase {
                Phase::Body => return,
                Phase::Idle => {
                    self.phase = Phase::Headers;
                    self.last = [0; 2];
                    let at = Instant::now() + self.header_timeout;
                    self.deadline.as_mut().reset(at);
                }
                Phase::Headers => {}
            }
            if b == b'\n' && (self.last[1] == b'\n' || self.last == *b"\n\r") {
                self.phase = Phase::Body;
            }
            self.last = [self.last[1], b];
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.phase == Phase::Headers && this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers took longer than intake.header_timeout_secs",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let filled = buf.filled();
            let new = filled.get(before..).unwrap_or_default();
            if !new.is_empty() {
                this.saw(new);
                if this.phase == Phase::Headers {
                    // Arm the deadline's waker for the next poll.
                    let _ = this.deadline.as_mut().poll(cx);
                }
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // A response (not an interim `100 Continue`) ends the request.
        if !buf.starts_with(b"HTTP/1.1 100 ") {
            this.phase = Phase::Idle;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !bufs
            .first()
            .is_some_and(|b| b.starts_with(b"HTTP/1.1 100 "))
        {
            this.phase = Phase::Idle;
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// `intake.max_in_flight`: webhook requests handled at once.
#[derive(Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))))
    }

    /// A slot for one request, or `None` when all are taken. Borrowed, not
    /// owned: no count of the shared `Arc` moves per request.
    pub fn try_enter(&self) -> Option<SemaphorePermit<'_>> {
        self.0.try_acquire().ok()
    }
}

/// Raises the soft open-files limit to the hard one (each connection holds
/// a descriptor; the usual soft limit of 1,024 is below what the connection
/// cap allows). Returns the limit now in force.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim = raised;
    }
    // `rlim_t` is `u64` on Linux, not everywhere.
    #[allow(clippy::unnecessary_cast)]
    Ok(lim.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded() -> Guarded<tokio::io::Empty> {
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        Guarded::new(tokio::io::empty(), permit, Duration::from_secs(1))
    }

    #[test]
    fn the_open_files_soft_limit_is_raised_to_the_hard_one() {
        let now = raise_open_files_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!((lim.rlim_cur, now), (lim.rlim_max, lim.rlim_max));
    }

    #[tokio::test]
    async fn headers_end_at_the_first_blank_line_however_the_bytes_are_cut() {
        let mut g = guarded();
        assert_eq!(g.phase, Phase::Headers, "timed from the start");
        g.saw(b"POST / HTTP/1.1\r\nHost: x\r");
        assert_eq!(g.phase, Phase::Headers);
        g.saw(b"\n\r");
        assert_eq!(g.phase, Phase::Headers);
        g.saw(b"\n{\"body\r\n\r\n");
        assert_eq!(g.phase, Phase::Body);
        let mut g = guarded();
        g.saw(b"GET / HTTP/1.1\nHost: x\n\n");
        assert_eq!(g.phase, Phase::Body);
    }
}
