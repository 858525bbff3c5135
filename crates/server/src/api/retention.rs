//! Retention: classes, a package's state, extensions, legal holds, its
//! history, and the deletion-eligibility sweep.

use artifactstore_api::{
    EventList, ExtendRetention, HoldCreated, Reason, Retention, RetentionClassList, SweepResult,
};
use artifactstore_registry::core::token::Scope;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::packages::PackagePath;
use crate::auth::{AdminCaller, Caller};
use crate::extract::{parse_id, ApiJson, ApiPath};
use crate::problem::{ApiResult, Problem, ProblemBody};
use crate::wire::{self, ToWire};
use crate::AppState;

/// The configured retention classes.
#[utoipa::path(
    get,
    path = "/v1/retention-classes",
    tag = "retention",
    responses((status = 200, description = "The classes", body = RetentionClassList))
)]
pub(crate) async fn list_classes(State(state): State<AppState>) -> Json<RetentionClassList> {
    let items = state
        .registry
        .retention_classes()
        .into_iter()
        .map(wire::retention_class)
        .collect();
    Json(RetentionClassList { items })
}

/// A package's retention state.
#[utoipa::path(
    get,
    path = "/v1/packages/{id}/retention",
    tag = "retention",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    responses(
        (status = 200, description = "The state", body = Retention),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_retention(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<PackagePath>,
) -> ApiResult<Json<Retention>> {
    let id = parse_id(&path.id, "package id")?;
    Ok(Json(
        state.registry.retention_explained(id).await?.to_wire()?,
    ))
}

/// Moves a package's expiry strictly later.
#[utoipa::path(
    post,
    path = "/v1/packages/{id}/retention/extend",
    tag = "retention",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    request_body = ExtendRetention,
    responses(
        (status = 200, description = "The new state", body = Retention),
        (status = 400, description = "`invalid_id`, `invalid_json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`illegal_package_state` (purged)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`retention_refused` (not later, never expires, no reason)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PackagePath>,
    ApiJson(body): ApiJson<ExtendRetention>,
) -> ApiResult<Json<Retention>> {
    let id = parse_id(&path.id, "package id")?;
    extend_expiry(&state, &caller, id, body.new_expires_at, &body.reason).await?;
    Ok(Json(
        state.registry.retention_explained(id).await?.to_wire()?,
    ))
}

/// Places a legal hold; several may be active at once.
#[utoipa::path(
    post,
    path = "/v1/packages/{id}/holds",
    tag = "retention",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    request_body = Reason,
    responses(
        (status = 201, description = "Placed", body = HoldCreated),
        (status = 400, description = "`invalid_id`, `invalid_json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`illegal_package_state` (purged)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`retention_refused` (no reason)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn apply_hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PackagePath>,
    ApiJson(body): ApiJson<Reason>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&path.id, "package id")?;
    let hold_id = place_hold(&state, &caller, id, &body.reason).await?;
    Ok((StatusCode::CREATED, Json(HoldCreated { hold_id })))
}

/// Extends a package's retention as `caller`: the route's work, shared
/// with the web UI's form so both check the same.
pub(crate) async fn extend_expiry(
    state: &AppState,
    caller: &Caller,
    id: uuid::Uuid,
    new_expires_at: artifactstore_registry::core::Timestamp,
    reason: &str,
) -> Result<(), Problem> {
    caller.principal.require(Scope::Write)?;
    caller.may_write_package(&state.registry, id).await?;
    state
        .registry
        .extend_retention(id, new_expires_at, reason, &caller.actor)
        .await?;
    Ok(())
}

/// Places a hold as `caller`; its id. Shared with the web UI's form.
pub(crate) async fn place_hold(
    state: &AppState,
    caller: &Caller,
    id: uuid::Uuid,
    reason: &str,
) -> Result<String, Problem> {
    caller.principal.require(Scope::Write)?;
    caller.may_write_package(&state.registry, id).await?;
    Ok(state.registry.apply_hold(id, reason, &caller.actor).await?)
}

/// Lifts a hold as `caller`, who needs the `admin` scope. Shared with the
/// web UI's form.
pub(crate) async fn lift_hold(
    state: &AppState,
    caller: &Caller,
    id: uuid::Uuid,
    hold_id: uuid::Uuid,
    reason: &str,
) -> Result<(), Problem> {
    caller.principal.require(Scope::Admin)?;
    state
        .registry
        .release_hold(id, hold_id, reason, &caller.actor)
        .await?;
    Ok(())
}

/// Path of the release route.
#[derive(Debug, Deserialize)]
pub(crate) struct HoldPath {
    id: String,
    hold_id: String,
}

/// Lifts a hold; the last hold on an expired package makes it eligible for
/// deletion. A legal hold is a compliance control, so lifting one needs the
/// `admin` scope, whoever placed it (docs/security.md).
#[utoipa::path(
    post,
    path = "/v1/packages/{id}/holds/{hold_id}/release",
    tag = "retention",
    params(
        ("id" = uuid::Uuid, Path, description = "Package id (UUID)"),
        ("hold_id" = uuid::Uuid, Path, description = "Hold id (UUID)"),
    ),
    request_body = Reason,
    responses(
        (status = 200, description = "The new state", body = Retention),
        (status = 400, description = "`invalid_id`, `invalid_json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: releasing a hold needs the `admin` scope", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`, `hold_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`retention_refused` (already released, no reason)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn release_hold(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(path): ApiPath<HoldPath>,
    ApiJson(body): ApiJson<Reason>,
) -> ApiResult<Json<Retention>> {
    let id = parse_id(&path.id, "package id")?;
    let hold_id = parse_id(&path.hold_id, "hold id")?;
    lift_hold(&state, &caller, id, hold_id, &body.reason).await?;
    Ok(Json(
        state.registry.retention_explained(id).await?.to_wire()?,
    ))
}

/// A package's retention events, in log order.
#[utoipa::path(
    get,
    path = "/v1/packages/{id}/retention/history",
    tag = "retention",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    responses(
        (status = 200, description = "The retention events", body = EventList),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<PackagePath>,
) -> ApiResult<Json<EventList>> {
    let id = parse_id(&path.id, "package id")?;
    let events = state.registry.retention_history(id).await?;
    Ok(Json(EventList {
        items: events.iter().map(wire::event).collect(),
    }))
}

/// Marks expired, unheld packages eligible for deletion (admin).
#[utoipa::path(
    post,
    path = "/v1/retention/sweep",
    tag = "retention",
    responses((status = 200, description = "Packages newly marked", body = SweepResult))
)]
pub(crate) async fn sweep(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<Json<SweepResult>> {
    let marked = state.registry.sweep(&caller.actor).await?;
    Ok(Json(SweepResult { marked }))
}
