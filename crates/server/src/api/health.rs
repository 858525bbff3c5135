//! Health: the database and every backend probed.

use artifactstore_registry::Health;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::openapi::HealthSchema;
use crate::AppState;

/// The health answer: `status` plus the registry's probe results.
#[derive(Debug, Serialize)]
pub(crate) struct HealthBody {
    /// `ok` or `unhealthy`.
    status: &'static str,
    #[serde(flatten)]
    health: Health,
}

/// Probes the database and every backend.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Everything answered", body = HealthSchema),
        (status = 503, description = "Something did not answer; `status` is `unhealthy`", body = HealthSchema),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthBody>) {
    let health = state.registry.health().await;
    let (code, status) = if health.ok {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    (code, Json(HealthBody { status, health }))
}
