//! Packages: create, list, show, finalize.

use artifactstore_api::{CreatePackage, Finalized, Package, PackagePage};
use artifactstore_registry::{NewPackage, PackageFilter};
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::extract::{parse_id, ApiJson, ApiPath, ApiQuery};
use crate::problem::{ApiResult, Problem, ProblemBody};
use crate::wire::ToWire;
use crate::AppState;

/// Creates a package (status `created`).
#[utoipa::path(
    post,
    path = "/v1/packages",
    tag = "packages",
    request_body = CreatePackage,
    responses(
        (status = 201, description = "Created; `Location` names the package", body = Package),
        (status = 400, description = "Malformed body (`invalid_json`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`unknown_retention_class`, `metadata_invalid`, `invalid_input`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_package(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreatePackage>,
) -> ApiResult<Response> {
    caller.principal.may_write_producer(&body.producer)?;
    let new = NewPackage {
        name: body.name,
        producer: body.producer,
        subject: body.subject,
        retention_class: body.retention_class,
        metadata: body.metadata.unwrap_or(serde_json::Value::Null),
        metadata_schema: body.metadata_schema,
    };
    let package = state
        .registry
        .create_package(new, &caller.actor)
        .await?
        .to_wire()?;
    state.metrics.package_created();
    let mut response = (StatusCode::CREATED, Json(&package)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/packages/{}", package.id)) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// Query parameters of `GET /v1/packages` (documentation only: the handler
/// reads the raw pairs so it can accept `metadata.KEY`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct ListPackagesParams {
    /// Exact name.
    name: Option<String>,
    /// Exact producer.
    producer: Option<String>,
    /// Exact subject.
    subject: Option<String>,
    /// Exact retention class.
    retention_class: Option<String>,
    /// Exact status (`created`, `finalized`).
    status: Option<String>,
    /// Page size (default 100; larger pages are cut to the server's limit).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// `metadata.KEY=VALUE`: the top-level metadata key `KEY` has the scalar
    /// value `VALUE` (`true`, `42`, `nightly`); several keys may be given
    /// and all must match, each key once.
    #[param(rename = "metadata.{key}")]
    metadata: Option<String>,
}

fn parse_integer(name: &str, value: &str) -> ApiResult<i64> {
    value.parse().map_err(|_| {
        Problem::bad_request(
            "invalid_query",
            format!("`{name}` must be an integer, got {value:?}"),
        )
    })
}

/// The `after` cursor of a paged list.
pub(crate) fn parse_after(value: &str) -> ApiResult<i64> {
    let after = parse_integer("after", value)?;
    if after < 0 {
        return Err(Problem::bad_request(
            "invalid_query",
            format!("`after` is a cursor, 0 or more (got {after})"),
        ));
    }
    Ok(after)
}

/// The `limit` of a paged list, cut to the server's `max_page`.
pub(crate) fn parse_limit(value: &str, max_page: i64) -> ApiResult<i64> {
    let limit = parse_integer("limit", value)?;
    if limit < 1 {
        return Err(Problem::bad_request(
            "invalid_query",
            "`limit` must be at least 1",
        ));
    }
    Ok(limit.min(max_page))
}

/// Turns the query pairs of `GET /v1/packages` into a filter.
pub(crate) fn package_filter(
    pairs: Vec<(String, String)>,
    default_page: i64,
    max_page: i64,
) -> ApiResult<PackageFilter> {
    let mut filter = PackageFilter {
        limit: default_page,
        ..PackageFilter::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in pairs {
        // Every parameter, `metadata.KEY` ones included, at most once: a
        // repeated one has no one meaning (any? all? the last?).
        if !seen.insert(name.clone()) {
            return Err(Problem::bad_request(
                "invalid_query",
                format!("`{name}` is given more than once"),
            ));
        }
        if let Some(key) = name.strip_prefix("metadata.") {
            if key.is_empty() {
                return Err(Problem::bad_request(
                    "invalid_query",
                    "`metadata.` needs a key: metadata.KEY=VALUE",
                ));
            }
            filter.metadata.push((key.to_owned(), value));
            continue;
        }
        match name.as_str() {
            "name" => filter.name = Some(value),
            "producer" => filter.producer = Some(value),
            "subject" => filter.subject = Some(value),
            "retention_class" => filter.retention_class = Some(value),
            "status" => filter.status = Some(value),
            "after" => filter.after = Some(parse_after(&value)?),
            "limit" => filter.limit = parse_limit(&value, max_page)?,
            other => {
                return Err(Problem::bad_request(
                    "invalid_query",
                    format!(
                        "unknown query parameter `{other}`; use producer, subject, retention_class, status, metadata.KEY, limit, after"
                    ),
                ))
            }
        }
    }
    Ok(filter)
}

/// Lists packages matching the filters, one page at a time.
#[utoipa::path(
    get,
    path = "/v1/packages",
    tag = "packages",
    params(ListPackagesParams),
    responses(
        (status = 200, description = "One page", body = PackagePage),
        (status = 400, description = "`invalid_query`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a filter value the store cannot hold (a NUL character)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_packages(
    State(state): State<AppState>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> ApiResult<Json<PackagePage>> {
    let filter = package_filter(pairs, state.options.default_page, state.options.max_page)?;
    let page = state.registry.list_packages(filter).await?;
    Ok(Json(PackagePage {
        items: page.items.to_wire()?,
        next: page.next,
    }))
}

/// Path of the package routes.
#[derive(Debug, Deserialize)]
pub(crate) struct PackagePath {
    pub(crate) id: String,
}

/// One package.
#[utoipa::path(
    get,
    path = "/v1/packages/{id}",
    tag = "packages",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    responses(
        (status = 200, description = "The package", body = Package),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_package(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<PackagePath>,
) -> ApiResult<Json<Package>> {
    let id = parse_id(&path.id, "package id")?;
    Ok(Json(state.registry.get_package(id).await?.to_wire()?))
}

/// Builds and records the manifest; the package becomes immutable.
#[utoipa::path(
    post,
    path = "/v1/packages/{id}/finalize",
    tag = "packages",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    responses(
        (status = 200, description = "Finalized", body = Finalized),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`illegal_package_state` (already finalized)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn finalize_package(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PackagePath>,
) -> ApiResult<Json<Finalized>> {
    let id = parse_id(&path.id, "package id")?;
    let finalized = finalize(&state, &caller, id).await?;
    Ok(Json(finalized.to_wire()?))
}

/// Finalizes a package as `caller`: the route's work, shared with the web
/// UI's form so both check the same.
pub(crate) async fn finalize(
    state: &AppState,
    caller: &Caller,
    id: uuid::Uuid,
) -> Result<artifactstore_registry::Finalized, Problem> {
    caller
        .principal
        .require(artifactstore_registry::core::token::Scope::Write)?;
    caller.may_write_package(&state.registry, id).await?;
    let finalized = state.registry.finalize_package(id, &caller.actor).await?;
    state.metrics.package_finalized();
    Ok(finalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_from_query_pairs() {
        let filter = package_filter(
            pairs(&[
                ("producer", "ci"),
                ("metadata.run", "42"),
                ("metadata.branch", "main"),
                ("limit", "5000"),
                ("after", "17"),
            ]),
            100,
            1000,
        )
        .unwrap();
        assert_eq!(filter.producer.as_deref(), Some("ci"));
        assert_eq!(
            filter.metadata,
            vec![
                ("run".to_owned(), "42".to_owned()),
                ("branch".to_owned(), "main".to_owned())
            ]
        );
        assert_eq!(filter.limit, 1000);
        assert_eq!(filter.after, Some(17));
        assert_eq!(package_filter(Vec::new(), 100, 1000).unwrap().limit, 100);
    }

    #[test]
    fn bad_query_pairs_are_refused() {
        for bad in [
            vec![("limit", "x")],
            vec![("limit", "0")],
            vec![("after", "-x")],
            vec![("producers", "ci")],
            vec![("producer", "a"), ("producer", "b")],
            vec![("metadata.", "x")],
            vec![("metadata.k", "a"), ("metadata.k", "b")],
            vec![("metadata.k", "a"), ("metadata.k", "a")],
            vec![("after", "-5")],
        ] {
            let error = package_filter(pairs(&bad), 100, 1000).unwrap_err();
            assert_eq!(error.code(), "invalid_query", "{bad:?}");
        }
    }
}
