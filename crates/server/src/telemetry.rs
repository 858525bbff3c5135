//! The per-request middleware: one log line and the HTTP metrics for every
//! request, labelled by route template (never the raw path, which would
//! make a series per file).
//!
//! The log line is written when the response body is dropped, i.e. after
//! the last byte went out or the client went away, so it carries the true
//! byte counts of streamed uploads and downloads.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::AppState;

/// The route label of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// Records metrics and logs one line per request.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |m| m.as_str().to_owned());
    let received = Arc::new(AtomicU64::new(0));
    let request = request.map(|body| {
        Body::new(Counted {
            inner: body,
            count: received.clone(),
            finish: None,
        })
    });
    let span = tracing::info_span!("request", method = %method, route = %route);
    let response = next.run(request).instrument(span).await;
    let latency = started.elapsed();
    let status = response.status();
    state
        .metrics
        .observe_request(&method, &route, status, latency);
    let finish = Finish {
        metrics: state.metrics.clone(),
        method,
        route,
        path,
        status,
        started,
        latency,
        received,
    };
    response.map(|body| {
        Body::new(Counted {
            inner: body,
            count: Arc::new(AtomicU64::new(0)),
            finish: Some(finish),
        })
    })
}

/// What to record once a response body is done.
struct Finish {
    metrics: Arc<Metrics>,
    method: Method,
    route: String,
    path: String,
    status: StatusCode,
    started: Instant,
    latency: Duration,
    received: Arc<AtomicU64>,
}

impl Finish {
    fn record(self, sent: u64) {
        let received = self.received.load(Ordering::Relaxed);
        self.metrics.observe_bytes(&self.route, received, sent);
        tracing::info!(
            target: "artifactstore_server::access",
            method = %self.method,
            route = %self.route,
            path = %self.path,
            status = self.status.as_u16(),
            latency_ms = self.latency.as_secs_f64() * 1000.0,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            bytes_in = received,
            bytes_out = sent,
            "request"
        );
    }
}

/// A body that counts the data bytes passing through it, keeping the inner
/// body's size hint (so `Content-Length` is still set automatically).
struct Counted {
    inner: Body,
    count: Arc<AtomicU64>,
    finish: Option<Finish>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(finish) = self.finish.take() {
            finish.record(self.count.load(Ordering::Relaxed));
        }
    }
}
