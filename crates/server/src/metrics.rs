//! Prometheus metrics, rendered in the text exposition format.
//!
//! Hand-rolled: the set is small and fixed, and a per-router registry (not
//! a process-global one) keeps several servers in one process, as in the
//! tests, from mixing their counts. `prometheus-client` 0.24 was tried in
//! its place (2026-12-04) and kept out: its text encoder writes label
//! values unescaped, so a `"`, `\` or newline in one breaks the whole
//! exposition (this file's `label_values_are_escaped` failed with it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The media type of the text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Default, Clone)]
struct Latency {
    count: u64,
    sum_seconds: f64,
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
}

/// Route label, method and status of one series.
type RequestKey = (String, &'static str, u16);

/// The server's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, Latency>>,
    /// Per route label: (bytes received, bytes sent).
    bytes: Mutex<BTreeMap<String, (u64, u64)>>,
    packages_created: AtomicU64,
    files_ingested: AtomicU64,
    ingested_bytes: AtomicU64,
    packages_finalized: AtomicU64,
    event_streams: AtomicI64,
}

/// Bounded set of method labels, so odd methods cannot grow the series.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A poisoned lock only means another request panicked mid-update; the
/// counts are still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// Records one answered request (at the time its headers were ready).
    pub(crate) fn observe_request(
        &self,
        method: &Method,
        route: &str,
        status: StatusCode,
        latency: Duration,
    ) {
        let seconds = latency.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(BUCKETS.len());
        let mut requests = lock(&self.requests);
        let entry = requests
            .entry((route.to_owned(), method_label(method), status.as_u16()))
            .or_default();
        entry.count += 1;
        entry.sum_seconds += seconds;
        entry.buckets[slot] += 1;
    }

    /// Records the body bytes a request received and sent.
    pub(crate) fn observe_bytes(&self, route: &str, received: u64, sent: u64) {
        let mut bytes = lock(&self.bytes);
        let entry = bytes.entry(route.to_owned()).or_default();
        entry.0 += received;
        entry.1 += sent;
    }

    /// A package was created.
    pub(crate) fn package_created(&self) {
        self.packages_created.fetch_add(1, Ordering::Relaxed);
    }

    /// A file of `size` bytes was ingested.
    pub(crate) fn file_ingested(&self, size: u64) {
        self.files_ingested.fetch_add(1, Ordering::Relaxed);
        self.ingested_bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// A package was finalized.
    pub(crate) fn package_finalized(&self) {
        self.packages_finalized.fetch_add(1, Ordering::Relaxed);
    }

    /// An event stream opened; the guard counts it closed when dropped.
    pub(crate) fn event_stream_opened(self: &std::sync::Arc<Self>) -> StreamGuard {
        self.event_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// The text exposition of every metric; `head` is the log's newest
    /// sequence, or `None` when the database did not answer.
    pub(crate) fn render(&self, head: Option<i64>) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "artifactstore_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route template and status.",
        );
        let requests = lock(&self.requests).clone();
        for ((route, method, status), latency) in &requests {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            let _ = writeln!(
                out,
                "artifactstore_http_requests_total{{{labels}}} {}",
                latency.count
            );
        }
        header(
            &mut out,
            "artifactstore_http_request_duration_seconds",
            "histogram",
            "Time from request to response headers, by method, route template and status.",
        );
        for ((route, method, status), latency) in &requests {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += latency.buckets[i];
                let _ = writeln!(
                    out,
                    "artifactstore_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "artifactstore_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(
                out,
                "artifactstore_http_request_duration_seconds_sum{{{labels}}} {}",
                latency.sum_seconds
            );
            let _ = writeln!(
                out,
                "artifactstore_http_request_duration_seconds_count{{{labels}}} {}",
                latency.count
            );
        }
        let bytes = lock(&self.bytes).clone();
        header(
            &mut out,
            "artifactstore_http_request_bytes_total",
            "counter",
            "Request body bytes received, by route template.",
        );
        for (route, (received, _)) in &bytes {
            let _ = writeln!(
                out,
                "artifactstore_http_request_bytes_total{{route=\"{}\"}} {received}",
                escape(route)
            );
        }
        header(
            &mut out,
            "artifactstore_http_response_bytes_total",
            "counter",
            "Response body bytes sent, by route template.",
        );
        for (route, (_, sent)) in &bytes {
            let _ = writeln!(
                out,
                "artifactstore_http_response_bytes_total{{route=\"{}\"}} {sent}",
                escape(route)
            );
        }
        for (name, kind, help, value) in [
            (
                "artifactstore_packages_created_total",
                "counter",
                "Packages created through this server.",
                self.packages_created.load(Ordering::Relaxed) as i64,
            ),
            (
                "artifactstore_files_ingested_total",
                "counter",
                "Files ingested through this server.",
                self.files_ingested.load(Ordering::Relaxed) as i64,
            ),
            (
                "artifactstore_ingested_bytes_total",
                "counter",
                "Bytes of files ingested through this server.",
                self.ingested_bytes.load(Ordering::Relaxed) as i64,
            ),
            (
                "artifactstore_packages_finalized_total",
                "counter",
                "Packages finalized through this server.",
                self.packages_finalized.load(Ordering::Relaxed) as i64,
            ),
            (
                "artifactstore_event_streams_active",
                "gauge",
                "Server-Sent Event streams currently open.",
                self.event_streams.load(Ordering::Relaxed),
            ),
        ] {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(head) = head {
            header(
                &mut out,
                "artifactstore_event_log_head_sequence",
                "gauge",
                "Newest sequence in the event log (shared by every replica).",
            );
            let _ = writeln!(out, "artifactstore_event_log_head_sequence {head}");
        }
        out
    }
}

/// Counts an event stream closed when dropped.
pub(crate) struct StreamGuard(std::sync::Arc<Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.event_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The lifecycle's counters (this process's passes).
fn lifecycle(out: &mut String, stats: &artifactstore_registry::lifecycle::LifecycleStats) {
    for (name, help, value) in [
        (
            "artifactstore_lifecycle_packages_purged_total",
            "Packages purged by lifecycle passes of this process.",
            stats.packages_purged,
        ),
        (
            "artifactstore_lifecycle_objects_deleted_total",
            "Stored objects deleted by the collector of this process.",
            stats.objects_deleted,
        ),
        (
            "artifactstore_lifecycle_bytes_deleted_total",
            "Bytes of the stored objects deleted by the collector of this process.",
            stats.bytes_deleted,
        ),
    ] {
        header(out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    for (name, help, value) in [
        (
            "artifactstore_lifecycle_last_run_timestamp_seconds",
            "When this process's last lifecycle pass ended (Unix time).",
            stats.last_run_unix_seconds,
        ),
        (
            "artifactstore_lifecycle_last_run_duration_seconds",
            "How long this process's last lifecycle pass took.",
            stats.last_run_seconds,
        ),
    ] {
        if let Some(value) = value {
            header(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    // The head comes from the database so every replica reports the same
    // shared log; a failed read only drops the gauge from this scrape.
    let head = match state.registry.head_sequence().await {
        Ok(head) => Some(head),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the event log head");
            None
        }
    };
    let mut text = state.metrics.render(head);
    lifecycle(&mut text, &state.registry.lifecycle_stats());
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        let route = "/v1/packages/{id}";
        metrics.observe_request(
            &Method::GET,
            route,
            StatusCode::OK,
            Duration::from_millis(3),
        );
        metrics.observe_request(
            &Method::GET,
            route,
            StatusCode::OK,
            Duration::from_millis(300),
        );
        metrics.observe_request(
            &Method::GET,
            route,
            StatusCode::OK,
            Duration::from_secs(100),
        );
        let text = metrics.render(Some(7));
        let labels = "method=\"GET\",route=\"/v1/packages/{id}\",status=\"200\"";
        assert!(text.contains(&format!("artifactstore_http_requests_total{{{labels}}} 3")));
        assert!(text.contains(&format!(
            "artifactstore_http_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1"
        )));
        assert!(text.contains(&format!(
            "artifactstore_http_request_duration_seconds_bucket{{{labels},le=\"0.5\"}} 2"
        )));
        assert!(text.contains(&format!(
            "artifactstore_http_request_duration_seconds_bucket{{{labels},le=\"30\"}} 2"
        )));
        assert!(text.contains(&format!(
            "artifactstore_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3"
        )));
        assert!(text.contains("artifactstore_event_log_head_sequence 7"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
