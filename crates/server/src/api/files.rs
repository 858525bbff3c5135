//! Files: streamed upload into a package, metadata, and streamed download
//! with ranges and conditional requests.

use artifactstore_api::{File, FileList, FilePage};
use artifactstore_registry::core::Digest32;
use artifactstore_registry::{DigestKind, ExpectedDigests, FileRecord, RegistryError};
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, ETAG, IF_NONE_MATCH, IF_RANGE, LOCATION, RANGE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use serde::Deserialize;

use crate::auth::Caller;
use crate::extract::{parse_id, ApiPath, ApiQuery};
use crate::headers::{
    content_digest_value, if_none_match, if_range_matches, parse_blake3, parse_content_digest,
    parse_range, ContentDigests, RangeRequest,
};
use crate::openapi::BinarySchema;
use crate::problem::{ApiResult, Problem, ProblemBody};
use crate::upload_slots::SlotRefused;
use crate::wire::ToWire;
use crate::AppState;

/// Media type recorded when an upload names none.
const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";
/// RFC 9530 digest of the content.
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");
/// RFC 9530 digest of the whole representation (sent with ranges too).
const REPR_DIGEST: HeaderName = HeaderName::from_static("repr-digest");
/// BLAKE3 of the content, hex.
const X_CONTENT_BLAKE3: HeaderName = HeaderName::from_static("x-content-blake3");

/// Path of the by-path file routes.
#[derive(Debug, Deserialize)]
pub(crate) struct FileByPath {
    id: String,
    relative_path: String,
}

/// How a download is to be shown (`?disposition=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Disposition {
    /// Saved as a file (the default).
    #[default]
    Attachment,
    /// Shown by the browser, for the media types in [`INLINE_SAFE`] only;
    /// any other type is still sent as an attachment.
    Inline,
}

/// Query of the download routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DownloadQuery {
    /// `attachment` (default) or `inline`; inline applies to plain text,
    /// JSON and raster images only.
    #[param(inline)]
    disposition: Option<Disposition>,
}

/// Media types a browser may show inline from the API's origin: none can
/// run script or load anything. HTML, SVG, XML, PDF and everything else
/// are always attachments.
const INLINE_SAFE: [&str; 8] = [
    "text/plain",
    "text/csv",
    "application/json",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
];

/// A stored file must never act as a page of the API's origin (it would
/// run with the user's cookies and reach the API): it is saved, not shown,
/// unless the client asks to show a type that cannot run script; and even
/// shown, it runs sandboxed with nothing allowed.
const DOWNLOAD_CSP: &str = "default-src 'none'; sandbox";

fn media_essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The `Content-Disposition` of a download: `inline` only when asked for
/// and the type is in [`INLINE_SAFE`]; the file name is the path's last
/// segment (RFC 6266, with an ASCII fallback and RFC 8187 UTF-8 form).
fn content_disposition(relative_path: &str, media_type: &str, asked: Disposition) -> String {
    let inline =
        asked == Disposition::Inline && INLINE_SAFE.contains(&media_essence(media_type).as_str());
    let name = relative_path.rsplit('/').next().unwrap_or(relative_path);
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!(
        "{}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}",
        if inline { "inline" } else { "attachment" }
    )
}

/// Path of the by-id file routes.
#[derive(Debug, Deserialize)]
pub(crate) struct FileById {
    file_id: String,
}

/// Every value of a header joined as one list (RFC 9110 §5.3), or `None`
/// when absent; values that are not text are an error.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, ()> {
    let mut values = Vec::new();
    for value in headers.get_all(name) {
        values.push(value.to_str().map_err(|_| ())?);
    }
    Ok((!values.is_empty()).then(|| values.join(", ")))
}

fn expected_digests(headers: &HeaderMap) -> ApiResult<ExpectedDigests> {
    let invalid = |detail: String| Problem::bad_request("invalid_digest", detail);
    let content = match joined(headers, &CONTENT_DIGEST)
        .map_err(|()| invalid("Content-Digest is not ASCII".into()))?
    {
        Some(value) => parse_content_digest(&value).map_err(|e| invalid(e.to_string()))?,
        None => ContentDigests::default(),
    };
    let blake3 = match joined(headers, &X_CONTENT_BLAKE3)
        .map_err(|()| invalid("X-Content-Blake3 is not ASCII".into()))?
    {
        Some(value) => Some(parse_blake3(&value).map_err(|e| invalid(e.to_string()))?),
        None => None,
    };
    Ok(ExpectedDigests {
        sha256: content.sha256,
        sha512: content.sha512,
        blake3,
    })
}

fn media_type(headers: &HeaderMap) -> ApiResult<String> {
    match headers.get(CONTENT_TYPE) {
        None => Ok(DEFAULT_MEDIA_TYPE.to_owned()),
        Some(value) => std::str::from_utf8(value.as_bytes())
            .map(|text| text.trim().to_owned())
            .map_err(|_| Problem::bad_request("invalid_header", "Content-Type is not UTF-8")),
    }
}

/// Streams the request body into the package at `relative_path`.
#[utoipa::path(
    put,
    path = "/v1/packages/{id}/files/{*relative_path}",
    tag = "files",
    params(
        ("id" = uuid::Uuid, Path, description = "Package id (UUID)"),
        ("relative_path" = String, Path, description = "Path in the package, `/`-separated, percent-encoded"),
        ("Content-Type" = Option<String>, Header, description = "Media type recorded for the file (default application/octet-stream)"),
        ("Content-Digest" = Option<String>, Header, description = "RFC 9530, e.g. `sha-256=:BASE64:`; `sha-256` and `sha-512` are checked, other algorithms ignored beside them, and a value with neither is refused (400 `invalid_digest`)"),
        ("X-Content-Blake3" = Option<String>, Header, description = "BLAKE3 of the body, 64 hex characters"),
    ),
    request_body(content = BinarySchema, description = "The raw bytes, streamed", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored; `Location` names the file", body = File),
        (status = 400, description = "`invalid_id`, `invalid_path`, `invalid_digest`, `digest_mismatch` (nothing stored), `upload_interrupted`, `too_many_files`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`duplicate_relative_path`, `illegal_package_state` (finalized)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the file (its `Content-Length`, or the bytes streamed) is over the server's limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_uploads`: the server's concurrent upload limit is reached; retry after `Retry-After` seconds", body = ProblemBody, content_type = "application/problem+json"),
        (status = 507, description = "`storage_full`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn put_file(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<FileByPath>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let package_id = parse_id(&path.id, "package id")?;
    caller
        .may_write_package(&state.registry, package_id)
        .await?;
    let media_type = media_type(&headers)?;
    let expected = expected_digests(&headers)?;
    let limits = state.registry.limits();
    // Refuse before reading a byte when the client says it is too large.
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_file_bytes) {
        return Err(RegistryError::PayloadTooLarge {
            what: "the file",
            limit: limits.max_file_bytes,
        }
        .into());
    }
    let _upload_slot = upload_slot(&state, &caller)?;
    let pace = UploadPace::of(limits);
    let file = state
        .registry
        .ingest_file(
            package_id,
            &path.relative_path,
            &media_type,
            paced(body.into_data_stream(), pace),
            expected,
            &caller.actor,
        )
        .await
        .map_err(|e| match e {
            // The store's unique-constraint race does not know the path.
            RegistryError::DuplicateRelativePath(p) if p.is_empty() => {
                RegistryError::DuplicateRelativePath(path.relative_path.clone())
            }
            other => other,
        })?;
    state.metrics.file_ingested(file.size_bytes);
    let file = file.to_wire()?;
    let mut response = (StatusCode::CREATED, Json(&file)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/files/{}", file.id)) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// The files of a package, sorted by path.
#[utoipa::path(
    get,
    path = "/v1/packages/{id}/files",
    tag = "files",
    params(("id" = uuid::Uuid, Path, description = "Package id (UUID)")),
    responses(
        (status = 200, description = "The files", body = FileList),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_files(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<super::packages::PackagePath>,
) -> ApiResult<Json<FileList>> {
    let id = parse_id(&path.id, "package id")?;
    Ok(Json(FileList {
        items: state.registry.list_files(id).await?.to_wire()?,
    }))
}

/// Query of `GET /v1/files`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct FindFilesParams {
    /// SHA-256 of the bytes, 64 hex digits (this or `blake3`, not both).
    #[param(pattern = "^[0-9a-fA-F]{64}$")]
    sha256: Option<String>,
    /// BLAKE3 of the bytes, 64 hex digits (this or `sha256`, not both).
    #[param(pattern = "^[0-9a-fA-F]{64}$")]
    blake3: Option<String>,
    /// Page size (default 100; larger pages are cut to the server's limit).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    #[param(minimum = 0)]
    after: Option<i64>,
}

/// Every file, in any package, holding the bytes with a digest: the
/// question "where else is this?" (an auditor holding a file, a UI search
/// box).
#[utoipa::path(
    get,
    path = "/v1/files",
    tag = "files",
    params(FindFilesParams),
    responses(
        (status = 200, description = "One page, in the order the files were recorded", body = FilePage),
        (status = 400, description = "`invalid_query`: no digest, both, one that is not 64 hex digits, or another parameter", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn find_files(
    State(state): State<AppState>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> ApiResult<Json<FilePage>> {
    let invalid = |detail: String| Problem::bad_request("invalid_query", detail);
    let mut digest: Option<(DigestKind, Digest32)> = None;
    let (mut after, mut limit) = (None, state.options.default_page);
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in pairs {
        if !seen.insert(name.clone()) {
            return Err(invalid(format!("`{name}` is given more than once")));
        }
        let kind = match name.as_str() {
            "sha256" => DigestKind::Sha256,
            "blake3" => DigestKind::Blake3,
            "after" => {
                after = Some(super::packages::parse_after(&value)?);
                continue;
            }
            "limit" => {
                limit = super::packages::parse_limit(&value, state.options.max_page)?;
                continue;
            }
            other => {
                return Err(invalid(format!(
                    "unknown query parameter `{other}`; use sha256 or blake3, limit, after"
                )))
            }
        };
        if digest.is_some() {
            return Err(invalid("give `sha256` or `blake3`, not both".into()));
        }
        let value = Digest32::from_hex(&value)
            .map_err(|_| invalid(format!("`{name}` must be 64 hex digits")))?;
        digest = Some((kind, value));
    }
    let Some((kind, value)) = digest else {
        return Err(invalid(
            "give `sha256=HEX` or `blake3=HEX`: the digest of the bytes to find".into(),
        ));
    };
    let page = state.registry.find_files(kind, value, after, limit).await?;
    Ok(Json(FilePage {
        items: page.items.to_wire()?,
        next: page.next,
    }))
}

/// One file's metadata.
#[utoipa::path(
    get,
    path = "/v1/files/{file_id}",
    tag = "files",
    params(("file_id" = uuid::Uuid, Path, description = "File id (UUID)")),
    responses(
        (status = 200, description = "The file", body = File),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`file_not_found`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_file(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<FileById>,
) -> ApiResult<Json<File>> {
    let id = parse_id(&path.file_id, "file id")?;
    Ok(Json(state.registry.file_metadata(id).await?.to_wire()?))
}

/// A file's bytes by id.
#[utoipa::path(
    get,
    path = "/v1/files/{file_id}/content",
    tag = "files",
    params(
        ("file_id" = uuid::Uuid, Path, description = "File id (UUID)"),
        ("Range" = Option<String>, Header, description = "`bytes=a-b`, `bytes=a-` or `bytes=-n`; of several, the first satisfiable is served"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag (or `*`) answers 304"),
        ("If-Range" = Option<String>, Header, description = "Apply `Range` only if this is the current ETag"),
        DownloadQuery,
    ),
    responses(
        (status = 200, description = "The bytes, with `ETag: \"blake3:HEX\"`, `Content-Digest` and `Repr-Digest` (SHA-256 of the file) and `X-Content-Blake3`", content_type = "application/octet-stream", body = BinarySchema),
        (status = 206, description = "The requested range, with `Content-Range` and `Repr-Digest` of the whole file", content_type = "application/octet-stream", body = BinarySchema),
        (status = 304, description = "Not modified"),
        (status = 400, description = "`invalid_id`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`file_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "`package_purged`: the file's package was purged (when, by whom and why in the detail); its records and manifest remain", body = ProblemBody, content_type = "application/problem+json"),
        (status = 416, description = "`range_not_satisfiable`, with `Content-Range: bytes */SIZE`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_file_content(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<FileById>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&path.file_id, "file id")?;
    let file = state.registry.file_metadata(id).await?;
    download(
        &state,
        &file,
        &headers,
        false,
        query.disposition.unwrap_or_default(),
    )
    .await
}

/// A file's headers by id, without the bytes.
#[utoipa::path(
    head,
    path = "/v1/files/{file_id}/content",
    tag = "files",
    params(("file_id" = uuid::Uuid, Path, description = "File id (UUID)")),
    responses(
        (status = 200, description = "Headers of the whole file (a `Range` is ignored, as RFC 9110 defines ranges for GET only)"),
        (status = 304, description = "Not modified"),
        (status = 400, description = "`invalid_id` (headers only)"),
        (status = 404, description = "`file_not_found`"),
        (status = 410, description = "`package_purged` (headers only)"),
    )
)]
pub(crate) async fn head_file_content(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<FileById>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&path.file_id, "file id")?;
    let file = state.registry.file_metadata(id).await?;
    download(&state, &file, &headers, true, Disposition::Attachment).await
}

/// A file's bytes by its path in a package.
#[utoipa::path(
    get,
    path = "/v1/packages/{id}/files/{*relative_path}",
    tag = "files",
    params(
        ("id" = uuid::Uuid, Path, description = "Package id (UUID)"),
        ("relative_path" = String, Path, description = "Path in the package, percent-encoded"),
        ("Range" = Option<String>, Header, description = "As for /v1/files/{file_id}/content"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag (or `*`) answers 304"),
        DownloadQuery,
    ),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream", body = BinarySchema),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = BinarySchema),
        (status = 304, description = "Not modified"),
        (status = 400, description = "`invalid_id`, `invalid_path`, `invalid_query`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`package_not_found`, `file_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "`package_purged`: the package was purged", body = ProblemBody, content_type = "application/problem+json"),
        (status = 416, description = "`range_not_satisfiable`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_file_by_path(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<FileByPath>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&path.id, "package id")?;
    let file = state.registry.file_by_path(id, &path.relative_path).await?;
    download(
        &state,
        &file,
        &headers,
        false,
        query.disposition.unwrap_or_default(),
    )
    .await
}

/// A file's headers by its path in a package, without the bytes.
#[utoipa::path(
    head,
    path = "/v1/packages/{id}/files/{*relative_path}",
    tag = "files",
    params(
        ("id" = uuid::Uuid, Path, description = "Package id (UUID)"),
        ("relative_path" = String, Path, description = "Path in the package, percent-encoded"),
    ),
    responses(
        (status = 200, description = "Headers of the whole file"),
        (status = 304, description = "Not modified"),
        (status = 400, description = "`invalid_id`, `invalid_path` (headers only)"),
        (status = 404, description = "`package_not_found`, `file_not_found`"),
        (status = 410, description = "`package_purged` (headers only)"),
    )
)]
pub(crate) async fn head_file_by_path(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<FileByPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&path.id, "package id")?;
    let file = state.registry.file_by_path(id, &path.relative_path).await?;
    download(&state, &file, &headers, true, Disposition::Attachment).await
}

fn header_value(text: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(text)
        .map_err(|_| Problem::internal(format!("cannot form a header from {text:?}")))
}

/// Answers a download of `file`: 304, 416, 206 or 200, headers only for
/// HEAD. The bytes are streamed from the backend, never buffered.
async fn download(
    state: &AppState,
    file: &FileRecord,
    headers: &HeaderMap,
    head: bool,
    disposition: Disposition,
) -> ApiResult<Response> {
    state.registry.ensure_bytes_kept(file).await?;
    let etag = header_value(&format!("\"{}\"", file.content_address))?;
    let etag_text = etag.to_str().unwrap_or_default().to_owned();
    if let Ok(Some(condition)) = joined(headers, &IF_NONE_MATCH) {
        if if_none_match(&condition, &etag_text) {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response.headers_mut().insert(ETAG, etag);
            return Ok(response);
        }
    }
    let size = file.size_bytes;
    // Ranges are defined for GET only (RFC 9110 §14.2); a Range that is not
    // text is as good as malformed, and malformed ones are ignored.
    let range = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(range) if !head => {
            let current = headers
                .get(IF_RANGE)
                .is_none_or(|v| v.to_str().is_ok_and(|v| if_range_matches(v, &etag_text)));
            if current {
                parse_range(range, size)
            } else {
                RangeRequest::Full
            }
        }
        _ => RangeRequest::Full,
    };
    let (status, range) = match range {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        RangeRequest::Unsatisfiable => {
            return Err(RegistryError::RangeNotSatisfiable { size }.into())
        }
    };
    let length = range.as_ref().map_or(size, |r| r.end - r.start);
    let body = if head {
        Body::empty()
    } else {
        let stream = state.registry.open_file(file, range.clone()).await?;
        let file_id = file.id.clone();
        Body::from_stream(stream.inspect_err(move |e| {
            // The status is already sent; all we can do is log and cut the
            // connection short, which the client sees as a short body.
            tracing::error!(file_id = %file_id, error = %e, "download failed mid-stream");
        }))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(
        CONTENT_TYPE,
        HeaderValue::from_bytes(file.media_type.as_bytes())
            .unwrap_or(HeaderValue::from_static(DEFAULT_MEDIA_TYPE)),
    );
    out.insert(CONTENT_LENGTH, HeaderValue::from(length));
    out.insert(
        CONTENT_DISPOSITION,
        header_value(&content_disposition(
            &file.relative_path,
            &file.media_type,
            disposition,
        ))?,
    );
    out.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOWNLOAD_CSP),
    );
    out.insert(ETAG, etag);
    out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(value) = content_digest_value(&file.sha256) {
        // RFC 9530: `Content-Digest` covers the bytes of this message, so a
        // 206 must not carry the whole file's; `Repr-Digest` always does.
        let value = header_value(&value)?;
        if status == StatusCode::OK {
            out.insert(CONTENT_DIGEST, value.clone());
        }
        out.insert(REPR_DIGEST, value);
    }
    if status == StatusCode::OK {
        out.insert(X_CONTENT_BLAKE3, header_value(&file.blake3)?);
    }
    if let Some(range) = range {
        let value = format!("bytes {}-{}/{size}", range.start, range.end - 1);
        out.insert(CONTENT_RANGE, header_value(&value)?);
    }
    Ok(response)
}

/// One of the server's upload slots for `caller`, or 429.
pub(crate) fn upload_slot(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<crate::upload_slots::UploadSlot> {
    state.uploads.try_acquire(&caller.actor).map_err(|refused| {
        let detail = match refused {
            SlotRefused::ServerFull(n) => {
                format!("{n} uploads are already streaming on this server; retry shortly")
            }
            SlotRefused::CallerShareTaken(n) => format!(
                "{:?} already streams {n} uploads, the most one caller may; retry when one ends",
                caller.actor
            ),
        };
        Problem::new(StatusCode::TOO_MANY_REQUESTS, "too_many_uploads", detail).with_header(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        )
    })
}

/// How fast an upload must arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UploadPace {
    /// Longest wait for any bytes at all.
    idle: std::time::Duration,
    /// Least average rate over each `window` of waiting; 0 = no minimum.
    min_bytes_per_second: u64,
    window: std::time::Duration,
}

impl UploadPace {
    /// The pace the limits ask for.
    pub(crate) fn of(limits: &artifactstore_registry::config::LimitsConfig) -> Self {
        Self {
            idle: std::time::Duration::from_secs(limits.upload_idle_timeout_seconds),
            min_bytes_per_second: limits.min_upload_bytes_per_second,
            window: std::time::Duration::from_secs(limits.upload_rate_window_seconds.max(1)),
        }
    }
}

/// Ends an upload stream with an error when the client sends nothing for
/// `pace.idle`, or less than `pace.min_bytes_per_second` on average over a
/// window of waiting for it: a client trickling a byte every few seconds
/// would otherwise hold its upload slot (and a connection) for as long as
/// it likes. Only the time spent waiting for the client counts, so a slow
/// backend never makes a fast client look slow.
///
/// Hand-written rather than `tokio_stream::StreamExt::timeout` or
/// tower-http's `TimeoutBody`: those cut at a gap between two chunks (the
/// idle rule alone), and they count the time the consumer takes too (the
/// backend's writes), so neither can state a least rate over the time spent
/// waiting for the client.
pub(crate) fn paced<S>(
    body: S,
    pace: UploadPace,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send
where
    S: futures::Stream<Item = Result<bytes::Bytes, axum::Error>> + Send + Unpin,
{
    struct Window {
        waited: std::time::Duration,
        bytes: u64,
    }
    let start = Window {
        waited: std::time::Duration::ZERO,
        bytes: 0,
    };
    futures::stream::unfold(Some((body, start)), move |state| async move {
        let (mut body, mut window) = state?;
        let asked = tokio::time::Instant::now();
        let next = tokio::time::timeout(pace.idle, futures::StreamExt::next(&mut body)).await;
        window.waited += asked.elapsed();
        match next {
            Ok(Some(Ok(chunk))) => {
                window.bytes += chunk.len() as u64;
                if window.waited >= pace.window {
                    let least = pace
                        .min_bytes_per_second
                        .saturating_mul(window.waited.as_secs());
                    if window.bytes < least {
                        let error = std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "the upload sent {} bytes in {} s, slower than the least {} bytes/s this server accepts",
                                window.bytes,
                                window.waited.as_secs(),
                                pace.min_bytes_per_second
                            ),
                        );
                        return Some((Err(error), None));
                    }
                    window = Window {
                        waited: std::time::Duration::ZERO,
                        bytes: 0,
                    };
                }
                Some((Ok(chunk), Some((body, window))))
            }
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no data for {} s", pace.idle.as_secs()),
                )),
                None,
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_attachments_unless_a_safe_type_is_asked_inline() {
        let d = |path: &str, media: &str, asked| content_disposition(path, media, asked);
        assert_eq!(
            d("reports/index.html", "text/html", Disposition::Inline),
            "attachment; filename=\"index.html\"; filename*=UTF-8''index.html"
        );
        assert!(d("a.svg", "image/svg+xml", Disposition::Inline).starts_with("attachment;"));
        assert!(d(
            "a.txt",
            "text/plain; charset=utf-8",
            Disposition::Attachment
        )
        .starts_with("attachment;"));
        assert!(d("a.txt", "Text/Plain; charset=utf-8", Disposition::Inline).starts_with("inline;"));
        assert!(d("a.png", "image/png", Disposition::Inline).starts_with("inline;"));
        // Quotes, non-ASCII and separators never break out of the header.
        assert_eq!(
            d(
                "dir/caf\u{e9} \"x\";.txt",
                "text/plain",
                Disposition::Attachment
            ),
            "attachment; filename=\"caf_ _x_;.txt\"; filename*=UTF-8''caf%C3%A9%20%22x%22%3B.txt"
        );
    }
}
