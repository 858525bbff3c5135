//! The HTTP API of artifact-store, built on axum.
//!
//! Every route maps onto one [`Registry`] operation; this crate holds no
//! registry logic of its own. What it adds is the HTTP surface of
//! `CONTRACT.md`: streaming uploads and downloads with digests, ranges and
//! conditional requests, RFC 9457 problem details (mapped from
//! [`artifactstore_registry::RegistryError`] in exactly one place), Server-Sent
//! Events for the log, Prometheus metrics, a per-request log line and the
//! OpenAPI document served at `GET /openapi.json`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use artifactstore_registry::{Config, Registry};
//! use artifactstore_server::{serve, ServerOptions};
//!
//! let registry = Registry::open(&Config::default()).await.expect("registry");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! serve(listener, registry, ServerOptions::default(), shutdown).await
//! # }
//! ```

mod api;
mod auth;
mod connections;
mod extract;
pub mod headers;
mod metrics;
mod openapi;
mod problem;
mod telemetry;
mod ui;
mod upload_slots;
mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use artifactstore_registry::Registry;
use axum::extract::DefaultBodyLimit;
use axum::http::header::X_CONTENT_TYPE_OPTIONS;
use axum::http::HeaderValue;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::connections::raise_open_file_limit;
use crate::metrics::Metrics;

/// Default of [`ServerOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of [`ServerOptions::header_read_timeout`]: far longer than any
/// client needs to send its headers, and shorter than the idle time after
/// which clients drop pooled connections themselves.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Tunables of the HTTP layer. Everything else comes from the registry's
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Largest page `GET /v1/packages` and `GET /v1/events` return; larger
    /// `limit`s are clamped to it.
    pub max_page: i64,
    /// Page size when a request gives no `limit`.
    pub default_page: i64,
    /// How often an idle event stream sends a keep-alive comment, so proxies
    /// do not time the connection out.
    pub keep_alive: Duration,
    /// Largest JSON request body accepted, in bytes (file uploads are
    /// streamed and not bound by this).
    pub max_json_body_bytes: usize,
    /// Every API request needs a bearer token; without it, requests with no
    /// token act unrestricted (for the loopback default only).
    pub auth_required: bool,
    /// Most connections open at once; more wait in the kernel's backlog.
    /// Lowered at start to leave file descriptors for the rest.
    pub max_connections: usize,
    /// A connection that takes longer than this to send a request's
    /// headers (or stays idle between requests this long) is closed.
    pub header_read_timeout: Duration,
    /// With auth not required, host names (besides loopback names and
    /// addresses) this server answers to; a request for any other `Host`,
    /// or an unsafe one from another origin, is refused (DNS rebinding and
    /// cross-site requests; docs/security.md).
    pub allowed_hosts: Vec<String>,
    /// Files on one page of a package in the web UI; the next page starts
    /// after the last. Bounds a page's reading and HTML (about 640 bytes a
    /// file) whatever the package holds (up to `max_files_per_package`).
    pub ui_files_per_page: u32,
}

/// Files on a package's page in the web UI: a tenth of the 10,000-file
/// page that took 81 ms (p50) for 6.4 MB of HTML before pages
/// (docs/benchmarks.md, "A package's page, paged").
pub const DEFAULT_UI_FILES_PER_PAGE: u32 = 1000;

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_page: 1000,
            default_page: 100,
            keep_alive: Duration::from_secs(15),
            max_json_body_bytes: 2 * 1024 * 1024,
            auth_required: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            allowed_hosts: Vec::new(),
            ui_files_per_page: DEFAULT_UI_FILES_PER_PAGE,
        }
    }
}

/// What every handler shares: one reference-counted handle, as axum clones
/// the state for every extractor and middleware of every request. Cloned
/// field by field (the registry's own handles, the options, the metrics,
/// the queues' senders), each request's clones and drops were 2% of the
/// server's CPU samples in the small-files scenario (docs/benchmarks.md).
#[derive(Clone)]
pub(crate) struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The contents of [`AppState`].
pub(crate) struct SharedState {
    pub(crate) registry: Registry,
    pub(crate) options: ServerOptions,
    pub(crate) metrics: Arc<Metrics>,
    /// Cancelled when the server starts shutting down, so endless responses
    /// (event streams) end and graceful shutdown can complete.
    pub(crate) shutdown: CancellationToken,
    /// The OpenAPI document, rendered once.
    pub(crate) openapi: String,
    /// Upload slots ([`artifactstore_registry::config::LimitsConfig::max_concurrent_uploads`]
    /// and `max_uploads_per_caller`).
    pub(crate) uploads: Arc<upload_slots::UploadSlots>,
}

/// The whole API as an axum router (for embedding or tests). Event streams
/// of this router end only when their clients leave; [`serve`] also ends
/// them at shutdown.
pub fn router(registry: Registry, options: ServerOptions) -> Router {
    build_router(registry, options, CancellationToken::new())
}

/// Serves the API on `listener` until `shutdown` resolves, then stops
/// accepting connections, ends the event streams and lets in-flight requests
/// finish. Connections are capped and must send their headers in time
/// ([`ServerOptions::max_connections`], [`ServerOptions::header_read_timeout`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = CancellationToken::new();
    let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let limits = connections::ConnectionLimits {
        max_connections: connections::effective_max_connections(
            options.max_connections,
            open_files,
        ),
        header_read_timeout: options.header_read_timeout,
    };
    if limits.max_connections < options.max_connections {
        tracing::warn!(
            configured = options.max_connections,
            in_force = limits.max_connections,
            open_file_limit = ?open_files,
            "fewer connections allowed than configured: the open-file limit is too low"
        );
    }
    let app = build_router(registry, options, token.clone());
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        token.cancel();
    };
    connections::serve_connections(listener, app, limits, signal).await
}

/// Ends any request whose response head is not ready within the configured
/// limit with 408 problem+json (streamed response bodies, such as event
/// streams and downloads, are not cut once they started).
async fn request_deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let limit = Duration::from_secs(state.registry.limits().request_timeout_seconds.max(1));
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => problem::Problem::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

fn build_router(registry: Registry, options: ServerOptions, shutdown: CancellationToken) -> Router {
    let json_limit = options.max_json_body_bytes;
    let options = ServerOptions {
        max_page: options.max_page.min(registry.limits().max_page).max(1),
        ..options
    };
    let uploads = upload_slots::UploadSlots::new(
        registry.limits().max_concurrent_uploads,
        registry.limits().uploads_per_caller(),
    );
    let (routes, document) = api_routes().split_for_parts();
    let state = AppState(Arc::new(SharedState {
        openapi: openapi::finish(document, &registry),
        registry,
        options,
        metrics: Arc::new(Metrics::default()),
        shutdown,
        uploads,
    }));
    routes
        .merge(ui::routes())
        .fallback(problem::route_not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(DefaultBodyLimit::max(json_limit))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::observe,
        ))
        // No answer of this server is to be sniffed into another type (a
        // stored file read as HTML, a JSON body as script).
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}

/// Every route of the API, each registered once: `routes!` adds a
/// handler to the router under the path and methods of its
/// `#[utoipa::path]` and the same operation to the OpenAPI document, so
/// the two cannot disagree (docs/architecture.md, "The API model").
fn api_routes() -> OpenApiRouter<AppState> {
    use api::{
        bundle, events, files, health, lifecycle, log, manifest, packages, retention, schemas,
        storage, uploads,
    };
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(packages::create_package, packages::list_packages))
        .routes(routes!(packages::get_package))
        .routes(routes!(packages::finalize_package))
        .routes(routes!(manifest::get_manifest))
        .routes(routes!(files::list_files))
        .routes(routes!(
            files::put_file,
            files::get_file_by_path,
            files::head_file_by_path
        ))
        .routes(routes!(files::find_files))
        .routes(routes!(files::get_file))
        .routes(routes!(files::get_file_content, files::head_file_content))
        .routes(routes!(events::list_events))
        .routes(routes!(events::stream_events))
        .routes(routes!(retention::list_classes))
        .routes(routes!(retention::get_retention))
        .routes(routes!(retention::extend))
        .routes(routes!(retention::history))
        .routes(routes!(retention::apply_hold))
        .routes(routes!(retention::release_hold))
        .routes(routes!(retention::sweep))
        .routes(routes!(lifecycle::purge))
        .routes(routes!(lifecycle::review))
        .routes(routes!(lifecycle::run))
        .routes(routes!(lifecycle::usage))
        .routes(routes!(schemas::put_schema, schemas::get_schema))
        .routes(routes!(storage::verify))
        .routes(routes!(bundle::get_bundle))
        .routes(routes!(log::key))
        .routes(routes!(log::latest_checkpoint))
        .routes(routes!(log::sign_checkpoint))
        .routes(routes!(log::checkpoint))
        .routes(routes!(log::leaf))
        .routes(routes!(log::inclusion))
        .routes(routes!(log::consistency))
        .routes(routes!(uploads::create_upload, uploads::upload_options))
        .routes(routes!(
            uploads::head_upload,
            uploads::patch_upload,
            uploads::terminate_upload
        ))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn accepted_connections_send_without_nagle() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(address);
        let (accepted, client) = tokio::join!(listener.accept(), client);
        client.unwrap();
        let (accepted, _) = accepted.unwrap();
        assert!(!accepted.nodelay().unwrap());
        super::connections::without_nagle(&accepted);
        assert!(accepted.nodelay().unwrap());
    }
}
