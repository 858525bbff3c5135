//! Accepting connections and bounding what each may cost before a handler
//! (and auth) ever runs (DESIGN.md invariant 12).
//!
//! axum's `serve` sets no time limit on reading a request's headers and
//! accepts as many connections as clients open: one client sending a byte a
//! second held its connection for minutes, and about a thousand such
//! connections used up the process's file descriptors, after which nothing
//! (not `/health`) was answered. This loop instead
//! - holds at most [`ConnectionLimits::max_connections`] connections; beyond
//!   that new ones wait in the kernel's backlog, and descriptors are left
//!   for the database, the stored files and the logs;
//! - closes a connection that takes longer than
//!   [`ConnectionLimits::header_read_timeout`] to send a request's headers
//!   (an idle kept-alive connection counts as one that has not sent them);
//! - answers hyper's own refusals of a malformed request (400, 414, 431),
//!   which hyper writes with an empty body, as problem+json with a `code`
//!   like every other error ([`ParseErrorProblems`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Bounds on connections, set from [`crate::ServerOptions`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
}

/// File descriptors kept back from connections: the database pool, files
/// being stored and read, the log, the listener.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises this process's soft limit on open files to its hard limit (the
/// default soft limit, often 1024, is far below what a server needs) and
/// returns the soft limit now in force, or `None` where it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(hard)) = (limit.current, limit.maximum) {
        if current < hard {
            limit.current = Some(hard);
            if let Err(e) = setrlimit(Resource::Nofile, limit) {
                tracing::warn!(error = %e, "could not raise the open-file limit");
            }
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The connection cap in force: the configured one, lowered so that the
/// connections cannot use up the file descriptors the rest needs.
pub(crate) fn effective_max_connections(configured: usize, open_files: Option<u64>) -> usize {
    let room = open_files.map_or(u64::MAX, |n| n.saturating_sub(RESERVED_DESCRIPTORS));
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting and waits for the open connections to finish their requests.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors or memory: wait rather than spin, as
                // axum's loop does.
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        without_nagle(&stream);
        let responses = Arc::new(AtomicUsize::new(0));
        let io = TokioIo::new(ParseErrorProblems::new(stream, responses.clone()));
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            responses.fetch_add(1, Ordering::SeqCst);
            let guard = ResponseGuard(responses.clone());
            let app = app.clone();
            async move {
                let (request, body_read) = tracking_the_body(request);
                let response = app.oneshot(request).await;
                response.map(|mut response| {
                    if body_read.is_some_and(|read| !read.load(Ordering::Acquire)) {
                        close_after(&mut response);
                    }
                    response.map(|body| {
                        Body::new(GuardedBody {
                            body,
                            _guard: guard,
                        })
                    })
                })
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true);
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors of one connection that `accept` reports; the next accept is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Nagle's algorithm off: a streamed response (a download, an event
/// stream) leaves in more than one write; with Nagle's algorithm each small
/// write after the first waits for the client's ACK, which a client on a
/// kept-alive connection delays by up to 40 ms: `artifactstore pull` took
/// 35 ms per small file.
pub(crate) fn without_nagle(connection: &TcpStream) {
    if let Err(e) = connection.set_nodelay(true) {
        tracing::debug!(error = %e, "could not turn Nagle's algorithm off on a connection");
    }
}

/// The request with its body counted, and whether that body has been read
/// to its end (`None` for a request without one: nothing to track).
fn tracking_the_body(
    request: hyper::Request<Incoming>,
) -> (hyper::Request<Body>, Option<Arc<AtomicBool>>) {
    use http_body::Body as _;
    if request.body().is_end_stream() {
        return (request.map(Body::new), None);
    }
    let read = Arc::new(AtomicBool::new(false));
    let tracked = read.clone();
    let request = request.map(|body| {
        Body::new(TrackedRequestBody {
            body,
            read: tracked,
        })
    });
    (request, Some(read))
}

/// Marks an answer given before its request's body was read to its end
/// (a refused upload: 429, 404, 409, 413 …) as the connection's last.
///
/// hyper sends such an answer as kept alive, and then stops reading the
/// rest of the body and closes the connection. A client that pooled the
/// connection meanwhile sent its next request into the closing socket and
/// got "connection closed before message completed": `push` failed that
/// way in CI after a 429 it would have retried. `Connection: close` tells
/// the client not to reuse it. (This server speaks HTTP/1 only, where
/// the header is allowed.) A small body a handler ignores (`null` sent to
/// an action) costs its client a new connection, nothing more.
fn close_after(response: &mut axum::response::Response) {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
}

/// A request body that records when it has been read to its end.
struct TrackedRequestBody {
    body: Incoming,
    read: Arc<AtomicBool>,
}

impl http_body::Body for TrackedRequestBody {
    type Data = axum::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        // A handler that takes exactly the declared length need not poll
        // once more for the end.
        if matches!(frame, Poll::Ready(None)) || self.body.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Counts a response as open until its body is dropped.
struct ResponseGuard(Arc<AtomicUsize>);

impl Drop for ResponseGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its [`ResponseGuard`] until hyper drops it.
struct GuardedBody {
    body: Body,
    _guard: ResponseGuard,
}

impl http_body::Body for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket of one connection, rewriting hyper's automatic answer to a
/// request it could not parse into a problem+json answer.
///
/// hyper writes that answer (400, 414 or 431, `content-length: 0`, no
/// `content-type`) itself and offers no hook to change it, so this is done
/// where its bytes leave. It is recognised only when no response of the
/// application is open or unflushed on the connection (hyper writes it only
/// then), so the bytes of a download can never be mistaken for it; and
/// every response of the application carries a `content-type`.
pub(crate) struct ParseErrorProblems {
    stream: TcpStream,
    /// Responses of the application whose bodies are not finished.
    open_responses: Arc<AtomicUsize>,
    /// Whether everything written so far was flushed while no response was
    /// open: only then can the next write be hyper's own answer.
    quiet: bool,
    /// A rewritten answer being sent, how much of it is sent, and the
    /// length of what hyper asked to write (reported once all is sent).
    rewriting: Option<(Vec<u8>, usize, usize)>,
}

impl ParseErrorProblems {
    fn new(stream: TcpStream, open_responses: Arc<AtomicUsize>) -> Self {
        Self {
            stream,
            open_responses,
            quiet: true,
            rewriting: None,
        }
    }
}

/// The problem+json answer replacing hyper's empty one, if `written` is
/// one.
fn problem_for_parse_error(written: &[u8]) -> Option<Vec<u8>> {
    let head_end = written.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&written[..head_end])
        .ok()?
        .to_ascii_lowercase();
    let status_line = head.lines().next()?;
    let (status, code, detail) = match status_line.split(' ').nth(1)? {
        "400" => (
            axum::http::StatusCode::BAD_REQUEST,
            "malformed_request",
            "the request is not valid HTTP/1.1: its request line or a header could not be parsed",
        ),
        "414" => (
            axum::http::StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "the request target is longer than this server reads",
        ),
        "431" => (
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "the request's headers are larger, or more, than this server reads",
        ),
        _ => return None,
    };
    let empty = head.lines().any(|l| l.trim() == "content-length: 0");
    let typed = head.lines().any(|l| l.starts_with("content-type:"));
    if !empty || typed || written.len() != head_end + 4 {
        return None;
    }
    let body = crate::problem::Problem::new(status, code, detail).body();
    let json = serde_json::to_vec(&body).ok()?;
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        crate::problem::PROBLEM_JSON,
        json.len()
    )
    .into_bytes();
    answer.extend_from_slice(&json);
    Some(answer)
}

impl AsyncRead for ParseErrorProblems {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ParseErrorProblems {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.rewriting.is_none() && this.quiet && this.open_responses.load(Ordering::SeqCst) == 0
        {
            if let Some(answer) = problem_for_parse_error(buf) {
                this.rewriting = Some((answer, 0, buf.len()));
            }
        }
        if let Some((answer, sent, asked)) = &mut this.rewriting {
            while *sent < answer.len() {
                match Pin::new(&mut this.stream).poll_write(cx, &answer[*sent..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *sent += n,
                    other => return other,
                }
            }
            let asked = *asked;
            this.rewriting = None;
            this.quiet = false;
            return Poll::Ready(Ok(asked));
        }
        this.quiet = false;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) && this.open_responses.load(Ordering::SeqCst) == 0
        {
            this.quiet = true;
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_refusals_become_problems() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Fri, 04 Dec 2026 17:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(problem_for_parse_error(hyper_400).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        assert!(answer.contains("content-type: application/problem+json\r\n"));
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "malformed_request");
        assert_eq!(body["status"], 400);
        for (status, code) in [
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
        ] {
            let head = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            let answer =
                String::from_utf8(problem_for_parse_error(head.as_bytes()).unwrap()).unwrap();
            assert!(answer.contains(code), "{answer}");
        }
    }

    #[test]
    fn application_answers_are_left_alone() {
        for written in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nmore",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"some body bytes",
        ] {
            assert!(problem_for_parse_error(written).is_none(), "{}", String::from_utf8_lossy(written));
        }
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(effective_max_connections(4096, Some(1024)), 768);
        assert_eq!(effective_max_connections(100, Some(1_048_576)), 100);
        assert_eq!(effective_max_connections(4096, None), 4096);
        assert_eq!(effective_max_connections(4096, Some(10)), 1);
    }

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let before = getrlimit(Resource::Nofile);
        let (Some(current), Some(hard)) = (before.current, before.maximum) else {
            return;
        };
        // Lower the soft limit (always allowed), then raise it again.
        let lowered = current.min(hard).min(512);
        let mut low = before;
        low.current = Some(lowered);
        setrlimit(Resource::Nofile, low).unwrap();
        assert_eq!(raise_open_file_limit(), Some(hard));
        assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
        let _ = setrlimit(Resource::Nofile, before);
    }
}
