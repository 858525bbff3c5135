//! The manifest of a finalized package, as canonical CBOR or its RFC 8785
//! JSON projection.

use artifactstore_registry::ManifestFormat;
use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::packages::PackagePath;
use crate::extract::{parse_id, ApiPath, ApiQuery};
use crate::headers::accept_prefers_json;
use crate::openapi::BinarySchema;
use crate::problem::{ApiResult, ProblemBody};
use crate::AppState;

/// Query of `GET /v1/packages/{id}/manifest`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ManifestQuery {
    /// `cbor` (canonical bytes, the default) or `json` (RFC 8785). Without
    /// it, `Accept: application/json` selects JSON.
    #[param(inline)]
    format: Option<FormatParam>,
}

/// The manifest forms (`?format=`).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FormatParam {
    /// Canonical CBOR.
    Cbor,
    /// RFC 8785 JSON.
    Json,
}

/// The manifest bytes.
#[utoipa::path(
    get,
    path = "/v1/packages/{id}/manifest",
    tag = "packages",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)"), ManifestQuery),
    responses(
        (status = 200, description = "The manifest: `application/cbor` (its BLAKE3 is the package's manifest_digest) or `application/json` (RFC 8785)", content(
            (BinarySchema = "application/cbor"),
            (Object = "application/json"),
        )),
        (status = 400, description = "`invalid_id`, `invalid_query`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`, or `manifest_not_found` when the package is not finalized", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_manifest(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<PackagePath>,
    ApiQuery(query): ApiQuery<ManifestQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&path.id, "package id")?;
    let format = match query.format {
        Some(FormatParam::Cbor) => ManifestFormat::Cbor,
        Some(FormatParam::Json) => ManifestFormat::Json,
        None => {
            let json = headers
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(accept_prefers_json);
            if json {
                ManifestFormat::Json
            } else {
                ManifestFormat::Cbor
            }
        }
    };
    let bytes = state.registry.manifest_bytes(id, format).await?;
    let media_type = match format {
        ManifestFormat::Cbor => "application/cbor",
        ManifestFormat::Json => "application/json",
    };
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
        .headers_mut()
        .insert(VARY, HeaderValue::from_static("accept"));
    Ok(response)
}
