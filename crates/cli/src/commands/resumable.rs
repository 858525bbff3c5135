//! Resumable uploads from the CLI: the server's tus 1.0.0 endpoint
//! (docs/http-api.md), PATCHes of [`PATCH_BYTES`], and after a dropped
//! connection, a 5xx, a busy or locked upload, a retry with backoff from
//! the offset the server reports.

use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use artifactstore_api::File;
use artifactstore_core::FileDigests;
use base64::Engine as _;
use futures::StreamExt;
use indicatif::ProgressBar;
use reqwest::{Method, Url};

use super::push_state::PushState;
use crate::client::Client;
use crate::error::{CliError, CliResult};

/// Bytes one PATCH carries.
const PATCH_BYTES: u64 = 64 * 1024 * 1024;
/// Attempts in a row without progress before the upload fails.
const ATTEMPTS: u32 = 10;
/// The first wait before trying again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Whether trying again may help: the server or the network failed, or
/// the upload was busy, not the request.
fn retryable(error: &CliError) -> bool {
    match error {
        CliError::Unreachable { .. } => true,
        CliError::Server { status, code, .. } => {
            *status >= 500
                || *status == 429
                || *status == 423
                || code == "upload_offset_mismatch"
                || code == "upload_interrupted"
        }
        _ => false,
    }
}

/// One local file to upload.
pub struct LocalFile<'a> {
    /// The package it goes into.
    pub package_id: &'a str,
    /// Where it is.
    pub local: &'a Path,
    /// Its path in the package.
    pub relative_path: &'a str,
    /// Its media type.
    pub media_type: &'a str,
    /// Its digests, computed before the upload.
    pub digests: &'a FileDigests,
}

/// Uploads a local file in PATCHes; returns the file recorded.
pub async fn upload(
    client: &Client,
    file: LocalFile<'_>,
    bar: &ProgressBar,
    state: Option<&PushState>,
) -> CliResult<File> {
    let LocalFile {
        package_id,
        local,
        relative_path,
        media_type,
        digests,
    } = file;
    let started = bar.position();
    // An upload an earlier run of this push started, if it still exists.
    if let Some(url) = state.and_then(|s| s.upload_url(relative_path)) {
        let url = client.url_of(&url)?;
        match offset_of(client, &url).await {
            Ok(offset) => {
                let file = send_from(client, &url, local, offset, digests, bar, started).await?;
                if let Some(state) = state {
                    state.upload(relative_path, None)?;
                }
                return Ok(file);
            }
            Err(CliError::Server { status: 404, .. }) => {} // expired: start again
            Err(e) => return Err(e),
        }
    }
    let metadata = [
        format!("relative_path {}", b64(relative_path)),
        format!("media_type {}", b64(media_type)),
        format!("sha256 {}", b64(&digests.sha256.to_hex())),
        format!("blake3 {}", b64(&digests.blake3.to_hex())),
    ]
    .join(",");
    let create = || {
        client
            .request(
                Method::POST,
                client.url(&["v1", "packages", package_id, "uploads"]),
            )
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", digests.size_bytes)
            .header("Upload-Metadata", metadata.as_str())
    };
    let created = with_retries(|| client.send(create())).await?;
    let location = header(&created, "location")?;
    let upload_url = client.url_of(&location)?;
    if let Some(state) = state {
        state.upload(relative_path, Some(upload_url.as_str()))?;
    }
    let file = send_from(client, &upload_url, local, 0, digests, bar, started).await?;
    if let Some(state) = state {
        state.upload(relative_path, None)?;
    }
    Ok(file)
}

/// Sends the file from `offset` to its end, resuming after failures.
async fn send_from(
    client: &Client,
    upload_url: &Url,
    local: &Path,
    mut offset: u64,
    digests: &FileDigests,
    bar: &ProgressBar,
    started: u64,
) -> CliResult<File> {
    let mut failures = 0;
    let mut backoff = FIRST_BACKOFF;
    loop {
        bar.set_position(started + offset);
        match patch(client, upload_url, local, offset, digests.size_bytes, bar).await {
            Ok(Patched::Done(file_path)) => {
                let file_url = client.url_of(&file_path)?;
                return client.json(client.request(Method::GET, file_url)).await;
            }
            Ok(Patched::At(next)) => {
                if next > offset {
                    failures = 0;
                    backoff = FIRST_BACKOFF;
                }
                offset = next;
            }
            Err(e) if retryable(&e) && failures + 1 < ATTEMPTS => {
                failures += 1;
                tracing::debug!(error = %e, "resumable upload interrupted; resuming");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                // Where the server stands is where to go on.
                match offset_of(client, upload_url).await {
                    Ok(at) => offset = at,
                    Err(e) if retryable(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

enum Patched {
    /// The upload's new offset.
    At(u64),
    /// Complete: the file's path on the server.
    Done(String),
}

/// One PATCH of up to [`PATCH_BYTES`] from `offset`.
async fn patch(
    client: &Client,
    url: &Url,
    local: &Path,
    offset: u64,
    size: u64,
    bar: &ProgressBar,
) -> CliResult<Patched> {
    let length = PATCH_BYTES.min(size - offset);
    let mut file = std::fs::File::open(local).map_err(|e| CliError::io(local, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| CliError::io(local, e))?;
    let progress = bar.clone();
    let body = artifactstore_storage::file_chunks(file, length).inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            progress.inc(chunk.len() as u64);
        }
    });
    let request = client
        .request(Method::PATCH, url.clone())
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Content-Length", length)
        .header("Upload-Offset", offset)
        .body(reqwest::Body::wrap_stream(body));
    let answer = client.send(request).await?;
    if let Some(file) = answer.headers().get("content-location") {
        let path = file
            .to_str()
            .map_err(|_| CliError::Protocol("Content-Location is not text".into()))?;
        return Ok(Patched::Done(path.to_owned()));
    }
    let at = header(&answer, "upload-offset")?;
    at.parse()
        .map(Patched::At)
        .map_err(|_| CliError::Protocol(format!("Upload-Offset {at:?} is not a number")))
}

/// The upload's offset, as the server has it.
async fn offset_of(client: &Client, url: &Url) -> CliResult<u64> {
    let answer = client
        .send(
            client
                .request(Method::HEAD, url.clone())
                .header("Tus-Resumable", "1.0.0"),
        )
        .await?;
    let at = header(&answer, "upload-offset")?;
    at.parse()
        .map_err(|_| CliError::Protocol(format!("Upload-Offset {at:?} is not a number")))
}

fn header(answer: &reqwest::Response, name: &str) -> CliResult<String> {
    answer
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| CliError::Protocol(format!("the server's answer has no {name}")))
}

/// Sends until the answer is not a retryable failure, with backoff.
async fn with_retries<F, Fut>(mut send: F) -> CliResult<reqwest::Response>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = CliResult<reqwest::Response>>,
{
    let mut backoff = FIRST_BACKOFF;
    for _ in 1..ATTEMPTS {
        match send().await {
            Err(e) if retryable(&e) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            answer => return answer,
        }
    }
    send().await
}
