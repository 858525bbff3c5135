//! Retention: classes, a package's state, extensions, legal holds, its
//! history, and the deletion-eligibility sweep.

use artifactstore_registry::core::Timestamp;
use artifactstore_registry::RetentionRecord;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::events::{event_body, EventBody};
use super::packages::PackagePath;
use super::Items;
use crate::auth::{AdminCaller, Caller};
use crate::extract::{parse_id, ApiJson, ApiPath};
use crate::openapi::{EventListSchema, RetentionSchema};
use crate::problem::{ApiResult, ProblemBody};
use crate::AppState;

/// A configured retention class.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RetentionClass)]
pub(crate) struct ClassBody {
    /// The id packages name.
    id: String,
    /// How long packages are kept after creation, e.g. `90d`; null: forever.
    default_duration: Option<String>,
    /// The same in seconds.
    default_duration_seconds: Option<i64>,
    /// `delete`, `manual-review` or `never`.
    deletion_strategy: String,
}

/// The configured retention classes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClassList {
    /// By id.
    items: Vec<ClassBody>,
}

/// The configured retention classes.
#[utoipa::path(
    get,
    path = "/v1/retention-classes",
    tag = "retention",
    responses((status = 200, description = "The classes", body = ClassList))
)]
pub(crate) async fn list_classes(State(state): State<AppState>) -> Json<ClassList> {
    let items = state
        .registry
        .retention_classes()
        .into_iter()
        .map(|class| ClassBody {
            default_duration: class.default_duration.map(|d| d.to_string()),
            default_duration_seconds: class.default_duration.map(|d| d.seconds()),
            deletion_strategy: class.deletion_strategy.as_str().to_owned(),
            id: class.id,
        })
        .collect();
    Json(ClassList { items })
}

/// A package's retention state.
#[utoipa::path(
    get,
    path = "/v1/packages/{id}/retention",
    tag = "retention",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    responses(
        (status = 200, description = "The state", body = RetentionSchema),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_retention(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<PackagePath>,
) -> ApiResult<Json<RetentionRecord>> {
    let id = parse_id(&path.id, "package id")?;
    Ok(Json(state.registry.retention_state(id).await?))
}

/// Body of `POST /v1/packages/{id}/retention/extend`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExtendRequest {
    /// The new expiry (RFC 3339); strictly later than the current one.
    #[schema(value_type = String, format = DateTime)]
    new_expires_at: Timestamp,
    /// Why.
    reason: String,
}

/// Moves a package's expiry strictly later.
#[utoipa::path(
    post,
    path = "/v1/packages/{id}/retention/extend",
    tag = "retention",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    request_body = ExtendRequest,
    responses(
        (status = 200, description = "The new state", body = RetentionSchema),
        (status = 400, description = "`invalid_id`, `invalid_json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`retention_refused` (not later, never expires, no reason)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PackagePath>,
    ApiJson(body): ApiJson<ExtendRequest>,
) -> ApiResult<Json<RetentionRecord>> {
    let id = parse_id(&path.id, "package id")?;
    caller.may_write_package(&state.registry, id).await?;
    let record = state
        .registry
        .extend_retention(id, body.new_expires_at, &body.reason, &caller.actor)
        .await?;
    Ok(Json(record))
}

/// Body of the hold endpoints.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonRequest {
    /// Why.
    reason: String,
}

/// The answer to placing a hold.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HoldCreated {
    /// The new hold (UUID).
    hold_id: String,
}

/// Places a legal hold; several may be active at once.
#[utoipa::path(
    post,
    path = "/v1/packages/{id}/holds",
    tag = "retention",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    request_body = ReasonRequest,
    responses(
        (status = 201, description = "Placed", body = HoldCreated),
        (status = 400, description = "`invalid_id`, `invalid_json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`retention_refused` (no reason)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn apply_hold(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PackagePath>,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&path.id, "package id")?;
    caller.may_write_package(&state.registry, id).await?;
    let hold_id = state
        .registry
        .apply_hold(id, &body.reason, &caller.actor)
        .await?;
    Ok((StatusCode::CREATED, Json(HoldCreated { hold_id })))
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
    request_body = ReasonRequest,
    responses(
        (status = 200, description = "The new state", body = RetentionSchema),
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
    ApiJson(body): ApiJson<ReasonRequest>,
) -> ApiResult<Json<RetentionRecord>> {
    let id = parse_id(&path.id, "package id")?;
    let hold_id = parse_id(&path.hold_id, "hold id")?;
    let record = state
        .registry
        .release_hold(id, hold_id, &body.reason, &caller.actor)
        .await?;
    Ok(Json(record))
}

/// A package's retention events, in log order.
#[utoipa::path(
    get,
    path = "/v1/packages/{id}/retention/history",
    tag = "retention",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    responses(
        (status = 200, description = "The retention events", body = EventListSchema),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<PackagePath>,
) -> ApiResult<Json<Items<EventBody>>> {
    let id = parse_id(&path.id, "package id")?;
    let events = state.registry.retention_history(id).await?;
    Ok(Json(Items {
        items: events.iter().map(event_body).collect(),
    }))
}

/// The answer to a sweep.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SweepResult {
    /// Packages newly marked eligible for deletion.
    marked: Vec<String>,
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
