//! Verification of stored bytes (admin).

use artifactstore_api::VerifyReport;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AdminCaller;
use crate::extract::ApiQuery;
use crate::problem::{ApiResult, ProblemBody};
use crate::wire::ToWire;
use crate::AppState;

/// Query of `POST /v1/storage/verify`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct VerifyQuery {
    /// Only this backend; default: all.
    backend: Option<String>,
}

/// Re-reads stored objects, checks size and both digests, and records a
/// verification event per location.
#[utoipa::path(
    post,
    path = "/v1/storage/verify",
    tag = "storage",
    params(VerifyQuery),
    responses(
        (status = 200, description = "What was checked; `failed` counts mismatches", body = VerifyReport),
        (status = 400, description = "`invalid_query`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: the backend is not configured", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn verify(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(query): ApiQuery<VerifyQuery>,
) -> ApiResult<Json<VerifyReport>> {
    let report = state
        .registry
        .verify_storage(query.backend.as_deref(), &caller.actor)
        .await?;
    Ok(Json(report.to_wire()?))
}
