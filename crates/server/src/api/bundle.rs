//! Offline evidence bundles: a finalized package as a BagIt tar with the
//! registry's proofs, streamed.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;
use futures::TryStreamExt;

use super::packages::PackagePath;
use crate::auth::Caller;
use crate::extract::{parse_id, ApiPath};
use crate::openapi::BinarySchema;
use crate::problem::{ApiResult, ProblemBody};
use crate::AppState;

/// The package's evidence bundle: a POSIX pax tar that is a BagIt 1.0 bag
/// (`bagit.txt`, `bag-info.txt`, `manifest-sha256.txt`,
/// `tagmanifest-sha256.txt`, `data/…`) with the registry's proof as tag
/// files (`registry/manifest.cbor`, `registry/checkpoint`,
/// `registry/events/…`). Deterministic for a package and checkpoint. If
/// the newest checkpoint does not cover the package's events, one is
/// signed first. `artifactstore verify-bundle` checks it offline.
#[utoipa::path(
    get,
    path = "/v1/packages/{id}/bundle",
    tag = "log",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    responses(
        (status = 200, description = "The tar, with its exact `Content-Length`", content_type = "application/x-tar", body = BinarySchema),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`, or `manifest_not_found` when the package is not finalized", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "`package_purged`: bundles made before the purge still verify offline", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_bundle(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PackagePath>,
) -> ApiResult<Response> {
    let id = parse_id(&path.id, "package id")?;
    let bundle = state.registry.bundle(id, &caller.actor).await?;
    let body = Body::from_stream(bundle.stream.inspect_err(move |e| {
        // The status is sent; the client sees a short body.
        tracing::error!(package_id = %id, error = %e, "bundle failed mid-stream");
    }));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(bundle.size));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.tar\"")) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
