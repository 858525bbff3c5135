//! Extractors whose rejections are problem details with stable codes,
//! instead of axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::problem::{ApiResult, Problem};

/// A JSON request body. The `Content-Type` is not checked, so
/// `curl -d '{…}'` (which sends a form media type) works; the body must
/// parse as the endpoint's JSON, and request structs deny unknown fields.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the JSON body is larger than this server accepts",
                )
            } else {
                Problem::bad_request("upload_interrupted", "the request body could not be read")
            }
        })?;
        serde_json::from_slice(&bytes).map(Self).map_err(|e| {
            Problem::bad_request(
                "invalid_json",
                format!("the request body is not acceptable JSON: {e}"),
            )
        })
    }
}

/// Query parameters; a malformed or unknown one is a 400 `invalid_query`.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|rejection: QueryRejection| {
                Problem::bad_request("invalid_query", rejection.body_text())
            })
    }
}

/// Path parameters, percent-decoded. Ids stay text here and go through
/// [`parse_id`], so a bad id gets `invalid_id`; the only other failure is
/// invalid UTF-8 after decoding.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|rejection| match &rejection {
                PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } if key == "relative_path" => {
                        Problem::bad_request(
                            "invalid_path",
                            "the relative path is not UTF-8 after percent-decoding",
                        )
                    }
                    other => Problem::bad_request("invalid_id", other.to_string()),
                },
                // Only reachable if a handler is mounted on a route without
                // the parameters it reads: a bug, not bad input.
                _ => Problem::internal(rejection.body_text()),
            })
    }
}

/// Parses an id from a path; ids are UUIDs.
pub(crate) fn parse_id(text: &str, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| {
        Problem::bad_request(
            "invalid_id",
            format!("{what} {text:?} is not a valid id (a UUID)"),
        )
    })
}
