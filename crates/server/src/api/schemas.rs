//! Metadata JSON Schemas, registered idempotently by slug.

use artifactstore_api::schemas::SchemaDocument;
use artifactstore_api::{MetadataSchema, SchemaRegistered};
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::auth::AdminCaller;
use crate::extract::{ApiJson, ApiPath};
use crate::problem::{ApiResult, ProblemBody};
use crate::wire::ToWire;
use crate::AppState;

/// Path of the schema routes.
#[derive(Debug, Deserialize)]
pub(crate) struct SlugPath {
    slug: String,
}

/// Registers a JSON Schema under a slug; the same body again is a no-op.
#[utoipa::path(
    put,
    path = "/v1/metadata-schemas/{slug}",
    tag = "schemas",
    params(("slug" = String, Path, description = "1-64 of a-z, 0-9, `-`, `_`, `.`")),
    request_body(content = SchemaDocument, description = "A JSON Schema (an object, or `true` or `false`)", content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = SchemaRegistered),
        (status = 200, description = "Already registered with this body", body = SchemaRegistered),
        (status = 400, description = "`invalid_json`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`schema_conflict`: the slug has a different body", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`schema_invalid`, `invalid_input` (bad slug)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn put_schema(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiPath(path): ApiPath<SlugPath>,
    ApiJson(schema): ApiJson<serde_json::Value>,
) -> ApiResult<Response> {
    let (record, created) = state
        .registry
        .register_schema(&path.slug, &schema, &caller.actor)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = SchemaRegistered {
        id: record.id,
        slug: record.slug,
    };
    let mut response = (status, Json(&body)).into_response();
    if created {
        if let Ok(location) = HeaderValue::from_str(&format!("/v1/metadata-schemas/{}", body.slug))
        {
            response.headers_mut().insert(LOCATION, location);
        }
    }
    Ok(response)
}

/// A registered schema.
#[utoipa::path(
    get,
    path = "/v1/metadata-schemas/{slug}",
    tag = "schemas",
    params(("slug" = String, Path, description = "The slug")),
    responses(
        (status = 200, description = "The schema record", body = MetadataSchema),
        (status = 404, description = "`schema_not_found`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_schema(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<SlugPath>,
) -> ApiResult<Json<MetadataSchema>> {
    Ok(Json(
        state.registry.get_schema(&path.slug).await?.to_wire()?,
    ))
}
