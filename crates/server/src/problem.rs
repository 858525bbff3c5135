//! RFC 9457 problem details: the one place a [`RegistryError`] becomes an
//! HTTP status and body.
//!
//! Status choices where the contract leaves room:
//! - 400 for requests that are malformed in themselves: bad JSON, bad ids,
//!   bad query parameters or headers, an invalid relative path, bytes that
//!   do not match their declared digest, an upload that broke off;
//! - 422 for well-formed requests the registry's rules refuse: an unknown
//!   retention class, metadata or a JSON Schema that is not acceptable,
//!   other invalid field values, a refused retention change;
//! - 404 for every `*_not_found`, including `manifest_not_found` (a package
//!   that is not finalized has no manifest resource yet);
//! - 409 for conflicts with current state: duplicate paths, schema
//!   conflicts, operations the package's status forbids.
//!
//! 5xx answers log the internal cause and show the client only a generic
//! detail: database and storage error text never reaches a client.

use artifactstore_registry::RegistryError;
use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Media type of problem details.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// The body of an error answer (RFC 9457), from the API model.
pub(crate) use artifactstore_api::Problem as ProblemBody;

/// An error answer. Handlers return `Result<_, Problem>`.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    /// Extra response headers (rare, so a list rather than a map).
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// What handlers return.
pub(crate) type ApiResult<T> = Result<T, Problem>;

impl Problem {
    /// A problem with this status, code and client-facing detail.
    pub(crate) fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// A 400 answer.
    pub(crate) fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// A 500 answer whose cause is logged, never sent.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            GENERIC_500,
        )
    }

    /// Adds a response header (e.g. `Content-Range` on a 416).
    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }
}

const GENERIC_500: &str = "the server failed to handle the request; the cause is in its log";

fn title(code: &str, status: StatusCode) -> String {
    let known = match code {
        "package_not_found" => "Package not found",
        "file_not_found" => "File not found",
        "hold_not_found" => "Hold not found",
        "schema_not_found" => "Metadata schema not found",
        "manifest_not_found" => "Manifest not found",
        "log_entry_not_found" => "Not in the log",
        "route_not_found" => "No such route",
        "method_not_allowed" => "Method not allowed",
        "unknown_retention_class" => "Unknown retention class",
        "invalid_path" => "Invalid relative path",
        "duplicate_relative_path" => "Duplicate relative path",
        "path_conflict" => "Conflicting relative path",
        "token_name_taken" => "Token name taken",
        "illegal_package_state" => "Illegal package state",
        "digest_mismatch" => "Digest mismatch",
        "metadata_invalid" => "Invalid metadata",
        "schema_invalid" => "Invalid JSON Schema",
        "schema_conflict" => "Metadata schema conflict",
        "invalid_input" => "Invalid input",
        "retention_refused" => "Retention change refused",
        "range_not_satisfiable" => "Range not satisfiable",
        "upload_interrupted" => "Upload interrupted",
        "storage_full" => "Storage full",
        "service_unavailable" => "Service unavailable",
        "invalid_json" => "Invalid JSON body",
        "invalid_id" => "Invalid id",
        "invalid_query" => "Invalid query parameter",
        "invalid_header" => "Invalid header",
        "invalid_digest" => "Invalid digest header",
        "payload_too_large" => "Payload too large",
        "too_many_files" => "Too many files in the package",
        "too_many_uploads" => "Too many concurrent uploads",
        "request_timeout" => "Request timeout",
        "unauthorized" => "Unauthorized",
        "forbidden" => "Forbidden",
        "package_purged" => "Package purged",
        "package_held" => "Package under legal hold",
        "package_not_eligible" => "Package not eligible for deletion",
        "retention_class_never_deletes" => "Retention class never deletes",
        "object_being_collected" => "Identical bytes being collected",
        "upload_not_found" => "Upload not found",
        "upload_offset_mismatch" => "Upload offset mismatch",
        "upload_locked" => "Upload locked",
        "path_reserved" => "Path reserved by an upload",
        "uploads_open" => "Uploads in progress",
        "checksum_mismatch" => "Checksum mismatch",
        "tus_version_unsupported" => "Unsupported tus version",
        "checksum_algorithm_unsupported" => "Unsupported checksum algorithm",
        _ => return status.canonical_reason().unwrap_or("Error").to_owned(),
    };
    known.to_owned()
}

impl Problem {
    /// The body this problem is answered with.
    pub(crate) fn body(&self) -> ProblemBody {
        ProblemBody {
            kind: format!("urn:artifactstore:problem:{}", self.code),
            title: title(self.code, self.status),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body();
        // Serializing a struct of strings and an integer cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<RegistryError> for Problem {
    fn from(error: RegistryError) -> Self {
        use RegistryError as E;
        let code = error.code();
        let status = match &error {
            E::PackageNotFound(_)
            | E::FileNotFound(_)
            | E::HoldNotFound(_)
            | E::SchemaNotFound(_)
            | E::TokenNotFound(_)
            | E::ManifestNotFound(_)
            | E::LogEntryNotFound(_)
            | E::UploadNotFound(_) => StatusCode::NOT_FOUND,
            E::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            E::Forbidden(_) => StatusCode::FORBIDDEN,
            E::DuplicateRelativePath(_)
            | E::PathConflict { .. }
            | E::TokenNameTaken { .. }
            | E::SchemaConflict(_)
            | E::IllegalPackageState { .. }
            | E::PurgeRefused { .. }
            | E::UploadOffsetMismatch { .. }
            | E::PathReserved { .. }
            | E::UploadsOpen { .. } => StatusCode::CONFLICT,
            E::UploadLocked(_) => StatusCode::LOCKED,
            // tus 1.0.0, checksum extension.
            E::ChecksumMismatch { .. } => {
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
            }
            E::PackagePurged { .. } => StatusCode::GONE,
            E::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::InvalidPath(_)
            | E::DigestMismatch { .. }
            | E::UploadInterrupted(_)
            | E::TooManyFiles(_) => StatusCode::BAD_REQUEST,
            E::UnknownRetentionClass(_)
            | E::MetadataInvalid(_)
            | E::SchemaInvalid(_)
            | E::InvalidInput(_)
            | E::RetentionRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            E::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            E::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            E::Unavailable(_) | E::ObjectBeingCollected => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let E::ObjectBeingCollected | E::UploadLocked(_) = error {
            // Not faults: the upload lost a race with the collector, or
            // another request is still writing to it; sent again, it works.
            return Self::new(status, code, error.to_string()).with_header(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
        }
        if status.is_server_error() {
            // The Debug form carries the internal cause that Display hides.
            tracing::error!(code, cause = ?error, "request failed");
            let detail = match status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "a service the registry depends on is unavailable; retry later"
                }
                StatusCode::INSUFFICIENT_STORAGE => "the storage backend is full",
                _ => GENERIC_500,
            };
            let code = if status == StatusCode::INTERNAL_SERVER_ERROR {
                "internal_error"
            } else {
                code
            };
            return Self::new(status, code, detail);
        }
        let problem = Self::new(status, code, error.to_string());
        match error {
            E::Unauthorized(_) => problem.with_header(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"artifactstore\""),
            ),
            E::RangeNotSatisfiable { size } => problem.with_header(
                axum::http::header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}"))
                    .unwrap_or(HeaderValue::from_static("bytes */0")),
            ),
            _ => problem,
        }
    }
}

/// The answer for a path no route matches.
pub(crate) async fn route_not_found(method: Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

/// The answer for a route that exists but not with this method.
pub(crate) async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_map_to_documented_statuses() {
        let cases: Vec<(RegistryError, StatusCode, &str)> = vec![
            (
                RegistryError::PackageNotFound("p".into()),
                StatusCode::NOT_FOUND,
                "package_not_found",
            ),
            (
                RegistryError::ManifestNotFound("p".into()),
                StatusCode::NOT_FOUND,
                "manifest_not_found",
            ),
            (
                RegistryError::DuplicateRelativePath("a".into()),
                StatusCode::CONFLICT,
                "duplicate_relative_path",
            ),
            (
                RegistryError::UnknownRetentionClass("x".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_retention_class",
            ),
            (
                RegistryError::RangeNotSatisfiable { size: 7 },
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
            ),
            (
                RegistryError::StorageFull,
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
            ),
            (
                RegistryError::Unavailable("db down at 10.0.0.1".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
            ),
            (
                RegistryError::Internal("secret sql text".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
            ),
            (
                RegistryError::UploadInterrupted("reset".into()),
                StatusCode::BAD_REQUEST,
                "upload_interrupted",
            ),
        ];
        for (error, status, code) in cases {
            let problem = Problem::from(error);
            assert_eq!(problem.status(), status, "{code}");
            assert_eq!(problem.code(), code);
            if status.is_server_error() {
                assert!(!problem.detail.contains("secret") && !problem.detail.contains("10.0.0.1"));
            }
        }
    }

    #[test]
    fn unsatisfiable_range_carries_content_range() {
        let response =
            Problem::from(RegistryError::RangeNotSatisfiable { size: 42 }).into_response();
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_RANGE],
            "bytes */42"
        );
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
    }
}
