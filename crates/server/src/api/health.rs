//! Health: the database and every backend probed.

use artifactstore_api::Health;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::wire;
use crate::AppState;

/// Probes the database and every backend.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Everything answered", body = Health),
        (status = 503, description = "Something did not answer; `status` is `unhealthy`", body = Health),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let health = wire::health(state.registry.health().await);
    let code = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health))
}
