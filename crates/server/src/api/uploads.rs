//! Resumable uploads over tus 1.0.0 (<https://tus.io/protocols/resumable-upload>)
//! with the extensions `creation`, `creation-with-upload`, `termination`,
//! `expiration` and `checksum` (`sha1`, `sha256`), so tus clients
//! (tus-js-client, Uppy, tuspy, tus-java-client…) work unchanged. The
//! upload logic is the registry's ([`artifactstore_registry::uploads`]);
//! this module speaks the protocol: headers in, headers out, every answer
//! with `Tus-Resumable`, every error a problem+json body.

use artifactstore_core::Digest32;
use artifactstore_registry::{
    ChecksumAlgorithm, ExpectedDigests, NewUpload, PatchChecksum, RegistryError, UploadState,
};
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_LOCATION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;

use super::files::{paced, upload_slot, UploadPace};
use crate::auth::Caller;
use crate::extract::{parse_id, ApiPath};
use crate::problem::{Problem, ProblemBody};
use crate::AppState;

const TUS_VERSION: &str = TusVersion::V1_0_0.header();
const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
const TUS_CHECKSUMS: &str = "sha1,sha256";
/// The media type of a PATCH body (tus 1.0.0).
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Media type recorded when the metadata names none.
const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";
/// Longest `Upload-Metadata` accepted.
const MAX_METADATA_BYTES: usize = 8 * 1024;

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION_HEADER: HeaderName = HeaderName::from_static("tus-version");
const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
const TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");

/// The tus versions this server speaks (`Tus-Resumable`).
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
pub(crate) enum TusVersion {
    /// tus 1.0.0.
    #[schema(rename = "1.0.0")]
    V1_0_0,
}

impl TusVersion {
    /// As `Tus-Resumable` and `Tus-Version` write it.
    const fn header(self) -> &'static str {
        match self {
            Self::V1_0_0 => "1.0.0",
        }
    }
}

/// Path of the creation endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct PackageUploads {
    id: String,
}

/// Path of one upload.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadPath {
    id: String,
    upload_id: String,
}

/// Adds `Tus-Resumable` to any answer, an error's too.
fn tus(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    response
}

fn answer(result: Result<Response, Problem>) -> Response {
    tus(result.unwrap_or_else(IntoResponse::into_response))
}

fn bad(code: &'static str, detail: impl Into<String>) -> Problem {
    Problem::bad_request(code, detail)
}

/// Refuses a request that does not speak tus 1.0.0 (412, naming the
/// version this server speaks).
fn require_tus(headers: &HeaderMap) -> Result<(), Problem> {
    match headers.get(TUS_RESUMABLE).map(HeaderValue::as_bytes) {
        Some(b"1.0.0") => Ok(()),
        other => Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "tus_version_unsupported",
            match other {
                None => "the request has no Tus-Resumable header; this endpoint speaks tus 1.0.0"
                    .to_owned(),
                Some(v) => format!(
                    "Tus-Resumable {:?} is not supported; this endpoint speaks tus 1.0.0",
                    String::from_utf8_lossy(v)
                ),
            },
        )
        .with_header(TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION))),
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, Problem> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| bad("invalid_header", format!("{name} is not visible ASCII")))
        })
        .transpose()
}

/// A non-negative decimal integer header (no sign, no spaces inside).
fn number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, Problem> {
    header_text(headers, name)?
        .map(|text| {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    "invalid_header",
                    format!("{name} must be a non-negative integer, not {text:?}"),
                ));
            }
            text.parse::<u64>()
                .map_err(|_| bad("invalid_header", format!("{name} {text} is too large")))
        })
        .transpose()
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (the value
/// may be absent); keys are unique, non-empty, with no space or comma.
fn parse_metadata(text: &str) -> Result<Vec<(String, Vec<u8>)>, Problem> {
    if text.len() > MAX_METADATA_BYTES {
        return Err(bad(
            "invalid_header",
            format!("Upload-Metadata is longer than {MAX_METADATA_BYTES} bytes"),
        ));
    }
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let mut parts = item.split(' ');
        let key = parts.next().unwrap_or_default();
        let value = parts.next();
        if parts.next().is_some() || key.is_empty() {
            return Err(bad(
                "invalid_header",
                format!("Upload-Metadata item {item:?} is not `key base64value`"),
            ));
        }
        let value = match value {
            None => Vec::new(),
            Some(v) => base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|_| {
                    bad(
                        "invalid_header",
                        format!("Upload-Metadata value of {key:?} is not base64"),
                    )
                })?,
        };
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(bad(
                "invalid_header",
                format!("Upload-Metadata names {key:?} twice"),
            ));
        }
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

fn metadata_text<'a>(
    pairs: &'a [(String, Vec<u8>)],
    key: &str,
) -> Result<Option<&'a str>, Problem> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| {
            std::str::from_utf8(v).map_err(|_| {
                bad(
                    "invalid_header",
                    format!("Upload-Metadata {key:?} is not UTF-8"),
                )
            })
        })
        .transpose()
}

fn metadata_digest(pairs: &[(String, Vec<u8>)], key: &str) -> Result<Option<Digest32>, Problem> {
    metadata_text(pairs, key)?
        .map(|hex| {
            Digest32::from_hex(hex.trim()).map_err(|_| {
                bad(
                    "invalid_digest",
                    format!("Upload-Metadata {key:?} must be 64 hex characters"),
                )
            })
        })
        .transpose()
}

/// `Upload-Checksum: <algorithm> <base64>`.
fn parse_checksum(headers: &HeaderMap) -> Result<Option<PatchChecksum>, Problem> {
    let Some(text) = header_text(headers, &UPLOAD_CHECKSUM)? else {
        return Ok(None);
    };
    let (name, value) = text.split_once(' ').unwrap_or((text, ""));
    let algorithm = ChecksumAlgorithm::parse(name).ok_or_else(|| {
        bad(
            "checksum_algorithm_unsupported",
            format!("checksum algorithm {name:?} is not supported; use one of {TUS_CHECKSUMS}"),
        )
    })?;
    let expected = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| bad("invalid_header", "Upload-Checksum's value is not base64"))?;
    Ok(Some(PatchChecksum {
        algorithm,
        expected,
    }))
}

/// An RFC 9110 date (`Upload-Expires`).
fn http_date(at: artifactstore_core::Timestamp) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.as_datetime().format(&format).unwrap_or_default()
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn upload_url(state: &UploadState) -> String {
    format!("/v1/packages/{}/uploads/{}", state.package_id, state.id)
}

/// What the server supports.
#[utoipa::path(
    options,
    path = "/v1/packages/{id}/uploads",
    tag = "uploads",
    params(("id" = String, Path, description = "Package id (UUID); not checked: the answer is the same for every package")),
    responses(
        (status = 204, description = "tus discovery: `Tus-Version`, `Tus-Extension`, `Tus-Max-Size`, `Tus-Checksum-Algorithm`"),
    )
)]
pub(crate) async fn upload_options(State(state): State<AppState>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION));
    headers.insert(TUS_EXTENSION, HeaderValue::from_static(TUS_EXTENSIONS));
    headers.insert(
        TUS_CHECKSUM_ALGORITHM,
        HeaderValue::from_static(TUS_CHECKSUMS),
    );
    insert(
        headers,
        TUS_MAX_SIZE,
        &state.registry.limits().max_file_bytes.to_string(),
    );
    tus(response)
}

/// Creates an upload (tus `creation`); with a body, its first bytes too
/// (`creation-with-upload`).
#[utoipa::path(
    post,
    path = "/v1/packages/{id}/uploads",
    tag = "uploads",
    params(
        ("id" = uuid::Uuid, Path, description = "Package id (UUID)"),
        ("Tus-Resumable" = inline(TusVersion), Header, description = "The tus version: `1.0.0` (another, or none, is refused with 412)"),
        ("Upload-Length" = u64, Header, description = "The file's size in bytes (`Upload-Defer-Length` is not supported)"),
        ("Upload-Metadata" = String, Header, description = "tus metadata: `relative_path` (required), `media_type` (or `filetype`), `sha256` and `blake3` (64 hex characters each, checked at completion), each value base64"),
        ("Content-Type" = Option<String>, Header, description = "`application/offset+octet-stream` when the body carries the first bytes"),
    ),
    request_body(content = crate::openapi::BinarySchema, description = "Optional: the first bytes", content_type = "application/offset+octet-stream"),
    responses(
        (status = 201, description = "Created: `Location` is the upload's URL; `Upload-Offset` when bytes came with it; `Upload-Expires`; an empty file is recorded at once (`Content-Location` names it)"),
        (status = 400, description = "`invalid_id`, `invalid_header`, `invalid_digest`, `invalid_path`, `too_many_files`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`duplicate_relative_path`, `path_conflict`, `path_reserved` (another upload holds the path), `illegal_package_state`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "`tus_version_unsupported`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: `Upload-Length` is over the server's limit (`Tus-Max-Size`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: the backend takes no resumable uploads", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_uploads`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<PackageUploads>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(create(state, caller, path, headers, body).await)
}

async fn create(
    state: AppState,
    caller: Caller,
    path: PackageUploads,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    require_tus(&headers)?;
    let package_id = parse_id(&path.id, "package id")?;
    if headers.contains_key(UPLOAD_DEFER_LENGTH) {
        return Err(bad(
            "invalid_header",
            "Upload-Defer-Length is not supported: send Upload-Length",
        ));
    }
    let length = number(&headers, &UPLOAD_LENGTH)?
        .ok_or_else(|| bad("invalid_header", "Upload-Length is required"))?;
    let metadata = header_text(&headers, &UPLOAD_METADATA)?
        .unwrap_or_default()
        .to_owned();
    let pairs = parse_metadata(&metadata)?;
    let relative_path = metadata_text(&pairs, "relative_path")?
        .ok_or_else(|| {
            bad(
                "invalid_header",
                "Upload-Metadata must name the file's relative_path",
            )
        })?
        .to_owned();
    let media_type = metadata_text(&pairs, "media_type")?
        .or(metadata_text(&pairs, "filetype")?)
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(DEFAULT_MEDIA_TYPE)
        .to_owned();
    let expected = ExpectedDigests {
        sha256: metadata_digest(&pairs, "sha256")?,
        blake3: metadata_digest(&pairs, "blake3")?,
        sha512: None,
    };
    let with_bytes = headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == OFFSET_OCTET_STREAM.as_bytes());
    caller
        .may_write_package(&state.registry, package_id)
        .await?;
    let created = state
        .registry
        .create_upload(
            NewUpload {
                package_id,
                relative_path,
                media_type,
                length,
                expected,
                metadata,
            },
            &caller.actor,
        )
        .await?;
    let mut response = StatusCode::CREATED.into_response();
    insert(response.headers_mut(), LOCATION, &upload_url(&created));
    if length == 0 {
        return Ok(response);
    }
    insert(
        response.headers_mut(),
        UPLOAD_EXPIRES,
        &http_date(created.expires_at),
    );
    if with_bytes {
        // The upload exists whatever happens to its first bytes: the
        // client learns its URL and resumes from the offset it reports.
        let patched = async {
            let upload_id = parse_id(&created.id, "upload id")?;
            receive(&state, &caller, (package_id, upload_id), 0, None, body).await
        }
        .await;
        let (offset, expires_at, file) = match patched {
            Ok(patched) => patched,
            Err(_) => (0, created.expires_at, None),
        };
        insert(response.headers_mut(), UPLOAD_OFFSET, &offset.to_string());
        insert(
            response.headers_mut(),
            UPLOAD_EXPIRES,
            &http_date(expires_at),
        );
        if let Some(file_id) = file {
            insert(
                response.headers_mut(),
                CONTENT_LOCATION,
                &format!("/v1/files/{file_id}"),
            );
        }
    }
    Ok(response)
}

/// Streams a request's body into an upload; returns the new offset, the
/// expiry and the file's id once complete.
async fn receive(
    state: &AppState,
    caller: &Caller,
    (package_id, upload_id): (uuid::Uuid, uuid::Uuid),
    offset: u64,
    checksum: Option<PatchChecksum>,
    body: Body,
) -> Result<(u64, artifactstore_core::Timestamp, Option<String>), Problem> {
    let _slot = upload_slot(state, caller)?;
    let pace = UploadPace::of(state.registry.limits());
    let patched = state
        .registry
        .patch_upload(
            package_id,
            upload_id,
            offset,
            paced(body.into_data_stream(), pace),
            checksum,
            &caller.actor,
        )
        .await?;
    if let Some(cut) = patched.interrupted {
        return Err(cut.into());
    }
    if let Some(file) = &patched.file {
        state.metrics.file_ingested(file.size_bytes);
    }
    Ok((
        patched.state.offset,
        patched.state.expires_at,
        patched.file.map(|f| f.id),
    ))
}

async fn owned_upload(
    state: &AppState,
    caller: &Caller,
    path: &UploadPath,
) -> Result<UploadState, Problem> {
    let package_id = parse_id(&path.id, "package id")?;
    let upload_id = parse_id(&path.upload_id, "upload id")?;
    let upload = state
        .registry
        .upload_state(upload_id, &caller.actor)
        .await?;
    if upload.package_id != package_id.to_string() {
        return Err(RegistryError::UploadNotFound(upload_id.to_string()).into());
    }
    Ok(upload)
}

/// Where an upload stands (tus HEAD).
#[utoipa::path(
    head,
    path = "/v1/packages/{id}/uploads/{upload_id}",
    tag = "uploads",
    params(
        ("id" = uuid::Uuid, Path, description = "Package id (UUID)"),
        ("upload_id" = uuid::Uuid, Path, description = "Upload id (UUID)"),
        ("Tus-Resumable" = inline(TusVersion), Header, description = "The tus version: `1.0.0` (another, or none, is refused with 412)"),
    ),
    responses(
        (status = 200, description = "`Upload-Offset` (bytes received durably), `Upload-Length`, `Upload-Metadata`, `Upload-Expires`; `Cache-Control: no-store`"),
        (status = 400, description = "`invalid_id` (no body: HEAD)"),
        (status = 404, description = "`upload_not_found`: completed, terminated, expired, or another caller's (no body: HEAD)"),
        (status = 412, description = "`tus_version_unsupported` (no body: HEAD)"),
    )
)]
pub(crate) async fn head_upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<UploadPath>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        require_tus(&headers)?;
        let upload = owned_upload(&state, &caller, &path).await?;
        let mut response = StatusCode::OK.into_response();
        let out = response.headers_mut();
        insert(out, UPLOAD_OFFSET, &upload.offset.to_string());
        insert(out, UPLOAD_LENGTH, &upload.length.to_string());
        if !upload.metadata.is_empty() {
            insert(out, UPLOAD_METADATA, &upload.metadata);
        }
        insert(out, UPLOAD_EXPIRES, &http_date(upload.expires_at));
        out.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
    .await;
    let mut response = answer(result);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Appends bytes at `Upload-Offset` (tus PATCH); the last byte records the
/// file exactly as a PUT does.
#[utoipa::path(
    patch,
    path = "/v1/packages/{id}/uploads/{upload_id}",
    tag = "uploads",
    params(
        ("id" = uuid::Uuid, Path, description = "Package id (UUID)"),
        ("upload_id" = uuid::Uuid, Path, description = "Upload id (UUID)"),
        ("Tus-Resumable" = inline(TusVersion), Header, description = "The tus version: `1.0.0` (another, or none, is refused with 412)"),
        ("Upload-Offset" = u64, Header, description = "Where these bytes start: the upload's offset"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1 BASE64` or `sha256 BASE64` of this request's body; on mismatch nothing of it is kept (460)"),
    ),
    request_body(content = crate::openapi::BinarySchema, description = "The next bytes", content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Stored: `Upload-Offset` is the new offset, `Upload-Expires`; with the last byte the file is recorded (`Content-Location` names it)"),
        (status = 400, description = "`invalid_id`, `invalid_header`, `checksum_algorithm_unsupported`, `upload_interrupted` (what arrived is kept), `digest_mismatch` (the whole file's declared digest; nothing recorded, the upload ends)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`upload_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`upload_offset_mismatch` (ask HEAD), `path_conflict`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "`tus_version_unsupported`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the body goes beyond `Upload-Length`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: the body must be `application/offset+octet-stream`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 423, description = "`upload_locked`: another request is writing to it; retry after `Retry-After`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_uploads`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 460, description = "`checksum_mismatch`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn patch_upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<UploadPath>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        require_tus(&headers)?;
        let is_offset_stream = headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == OFFSET_OCTET_STREAM.as_bytes());
        if !is_offset_stream {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("a PATCH body must be {OFFSET_OCTET_STREAM}"),
            ));
        }
        let offset = number(&headers, &UPLOAD_OFFSET)?
            .ok_or_else(|| bad("invalid_header", "Upload-Offset is required"))?;
        let checksum = parse_checksum(&headers)?;
        let ids = (
            parse_id(&path.id, "package id")?,
            parse_id(&path.upload_id, "upload id")?,
        );
        // The work goes on in its own task: if the client goes away, what
        // arrived is still saved and the upload unlocked.
        let task_state = state.clone();
        let (offset, expires_at, file) = tokio::spawn(async move {
            receive(&task_state, &caller, ids, offset, checksum, body).await
        })
        .await
        .map_err(|e| Problem::from(RegistryError::Internal(format!("upload task: {e}"))))??;
        let mut response = StatusCode::NO_CONTENT.into_response();
        let out = response.headers_mut();
        insert(out, UPLOAD_OFFSET, &offset.to_string());
        insert(out, UPLOAD_EXPIRES, &http_date(expires_at));
        if let Some(file_id) = file {
            insert(out, CONTENT_LOCATION, &format!("/v1/files/{file_id}"));
        }
        Ok(response)
    }
    .await;
    answer(result)
}

/// Ends an upload before its last byte (tus `termination`): its path is
/// free again and its bytes are removed.
#[utoipa::path(
    delete,
    path = "/v1/packages/{id}/uploads/{upload_id}",
    tag = "uploads",
    params(
        ("id" = uuid::Uuid, Path, description = "Package id (UUID)"),
        ("upload_id" = uuid::Uuid, Path, description = "Upload id (UUID)"),
        ("Tus-Resumable" = inline(TusVersion), Header, description = "The tus version: `1.0.0` (another, or none, is refused with 412)"),
    ),
    responses(
        (status = 204, description = "Terminated"),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`upload_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "`tus_version_unsupported`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 423, description = "`upload_locked`: a request is writing to it", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn terminate_upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<UploadPath>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        require_tus(&headers)?;
        let upload = owned_upload(&state, &caller, &path).await?;
        let upload_id = parse_id(&upload.id, "upload id")?;
        state
            .registry
            .terminate_upload(upload_id, &caller.actor)
            .await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    answer(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_parse_strictly() {
        let pairs = parse_metadata("relative_path cmVwb3J0cy9hLnR4dA==,empty, flag").unwrap();
        assert_eq!(
            pairs[0],
            ("relative_path".into(), b"reports/a.txt".to_vec())
        );
        assert_eq!(pairs[1], ("empty".into(), Vec::new()));
        assert_eq!(pairs[2], ("flag".into(), Vec::new()));
        for hostile in [
            "a b c",
            "a !!!",
            "a YQ==,a YQ==",
            &"x".repeat(MAX_METADATA_BYTES + 1),
        ] {
            assert!(parse_metadata(hostile).is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn checksums_name_a_supported_algorithm() {
        let mut headers = HeaderMap::new();
        headers.insert(
            UPLOAD_CHECKSUM,
            HeaderValue::from_static("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
        );
        let parsed = parse_checksum(&headers).unwrap().unwrap();
        assert_eq!(parsed.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(parsed.expected.len(), 20);
        headers.insert(UPLOAD_CHECKSUM, HeaderValue::from_static("md5 AAAA"));
        assert_eq!(
            parse_checksum(&headers).unwrap_err().code(),
            "checksum_algorithm_unsupported"
        );
        headers.insert(UPLOAD_CHECKSUM, HeaderValue::from_static("sha256 ***"));
        assert!(parse_checksum(&headers).is_err());
    }

    #[test]
    fn expiry_is_an_http_date() {
        let at: artifactstore_core::Timestamp = "2026-12-05T18:30:05Z".parse().unwrap();
        assert_eq!(http_date(at), "Sat, 05 Dec 2026 18:30:05 GMT");
    }
}
