//! The lifecycle: explicit purges, the review list, one pass on demand,
//! and usage.

use artifactstore_api::{LifecycleReport, Purged, Reason, ReviewItem, ReviewPage, Usage};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::packages::PackagePath;
use crate::auth::AdminCaller;
use crate::extract::{parse_id, ApiJson, ApiPath, ApiQuery};
use crate::problem::{ApiResult, Problem, ProblemBody};
use crate::wire::ToWire;
use crate::AppState;

/// Purges an eligible package: its bytes may then be collected; its row,
/// metadata, manifest and events stay. Needs the `admin` scope.
#[utoipa::path(
    post,
    path = "/v1/packages/{id}/purge",
    tag = "lifecycle",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    request_body = Reason,
    responses(
        (status = 200, description = "Purged", body = Purged),
        (status = 400, description = "`invalid_id`, `invalid_json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: purging needs the `admin` scope", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`package_not_eligible` (not expired or not yet swept), `package_held` (a legal hold is active), `retention_class_never_deletes`, `package_purged` (purged already)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`retention_refused` (no reason)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn purge(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(path): ApiPath<PackagePath>,
    ApiJson(body): ApiJson<Reason>,
) -> ApiResult<Json<Purged>> {
    let id = parse_id(&path.id, "package id")?;
    let purged = state
        .registry
        .purge_package(id, &body.reason, &caller.actor)
        .await?;
    Ok(Json(purged.to_wire()?))
}

/// Query of `GET /v1/retention/review`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReviewQuery {
    /// Page size (default 100; larger pages are cut to the server's limit).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// Resume after this cursor (a previous page's `next`).
    #[param(minimum = 0)]
    after: Option<i64>,
}

/// Eligible packages of `manual-review` classes: they are purged only when
/// an admin purges them.
#[utoipa::path(
    get,
    path = "/v1/retention/review",
    tag = "lifecycle",
    params(ReviewQuery),
    responses(
        (status = 200, description = "A page of packages waiting for review", body = ReviewPage),
        (status = 400, description = "`invalid_query`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn review(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReviewQuery>,
) -> ApiResult<Json<ReviewPage>> {
    if query.limit.is_some_and(|l| l < 1) {
        return Err(Problem::bad_request(
            "invalid_query",
            "`limit` must be at least 1",
        ));
    }
    if query.after.is_some_and(|a| a < 0) {
        return Err(Problem::bad_request(
            "invalid_query",
            "`after` is a cursor, 0 or more",
        ));
    }
    let limit = query
        .limit
        .unwrap_or(state.options.default_page)
        .min(state.options.max_page);
    let (page, next) = state.registry.review_list(query.after, limit).await?;
    let items = page
        .into_iter()
        .map(|(package, eligible_at)| {
            Ok(ReviewItem {
                package: package.to_wire()?,
                eligible_at,
            })
        })
        .collect::<Result<_, Problem>>()?;
    Ok(Json(ReviewPage { items, next }))
}

/// Query of `POST /v1/lifecycle/run`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunQuery {
    /// List what a pass would do, changing nothing.
    dry_run: Option<bool>,
}

/// Runs one lifecycle pass now (sweep, purge, collect), or with
/// `dry_run=true` lists what it would do. Needs the `admin` scope.
#[utoipa::path(
    post,
    path = "/v1/lifecycle/run",
    tag = "lifecycle",
    params(RunQuery),
    responses(
        (status = 200, description = "What the pass did (or would do); `skipped` when another process was running one", body = LifecycleReport),
        (status = 400, description = "`invalid_query`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: needs the `admin` scope", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn run(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> ApiResult<Json<LifecycleReport>> {
    let report = state
        .registry
        .run_lifecycle(query.dry_run.unwrap_or(false), &caller.actor)
        .await?;
    Ok(Json(report.to_wire()?))
}

/// Logical bytes per producer and class, physical bytes per backend after
/// deduplication, and what the next collection would reclaim (which lists
/// every backend: an admin's question, not a dashboard's poll). Needs the
/// `admin` scope.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "lifecycle",
    responses(
        (status = 200, description = "Usage", body = Usage),
        (status = 403, description = "`forbidden`: needs the `admin` scope", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    AdminCaller(_caller): AdminCaller,
) -> ApiResult<Json<Usage>> {
    Ok(Json(state.registry.usage().await?.to_wire()?))
}
