//! Uploads: `push`, `package create`, `file put|get|list`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use artifactstore_api::{CreatePackage, File, FileList, FilePage, Finalized, Package};
use artifactstore_registry::core::{DualHasher, FileDigests, RelativePath};
use base64::Engine as _;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use super::push_state::PushState;
use super::transfers::each_at_most;
use crate::args::{FileCommand, PackageArgs};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::Output;

const READ_CHUNK: usize = 1024 * 1024;

/// A progress bar on a terminal, nothing on a pipe or with `--json`.
pub fn progress(out: Output, total: u64, message: &str) -> ProgressBar {
    if out.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message.to_owned());
    bar
}

/// The metadata object of `--metadata-json` and `--metadata`.
fn metadata(args: &PackageArgs) -> CliResult<Value> {
    let mut object = match &args.metadata_json {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path, e))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(object)) => object,
                Ok(_) => {
                    return Err(CliError::Usage(format!(
                        "{}: metadata must be a JSON object",
                        path.display()
                    )))
                }
                Err(e) => {
                    return Err(CliError::Usage(format!(
                        "{}: invalid JSON: {e}",
                        path.display()
                    )))
                }
            }
        }
        None => serde_json::Map::new(),
    };
    for entry in &args.metadata {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("--metadata {entry:?} is not KEY=VALUE")))?;
        if key.is_empty() {
            return Err(CliError::Usage(format!(
                "--metadata {entry:?} has an empty key"
            )));
        }
        object.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(Value::Object(object))
}

/// Creates a package.
pub async fn create_package(client: &Client, args: &PackageArgs) -> CliResult<Package> {
    let body = CreatePackage {
        name: args.name.clone(),
        producer: args.producer.clone(),
        subject: args.subject.clone(),
        retention_class: args.retention_class.clone(),
        metadata: Some(metadata(args)?),
        metadata_schema: args.schema.clone(),
    };
    client.post_json(&["v1", "packages"], &body).await
}

/// What `push --json` prints.
#[derive(Serialize)]
struct PushSummary<'a> {
    package_id: &'a str,
    manifest_digest: &'a str,
    files: usize,
    bytes: u64,
}

/// Hashes a local file (both digests, one pass).
async fn hash_file(path: &Path) -> CliResult<FileDigests> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(&owned).map_err(|e| CliError::io(&owned, e))?;
        let mut hasher = DualHasher::default();
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            let n = file
                .read(&mut buffer)
                .map_err(|e| CliError::io(&owned, e))?;
            if n == 0 {
                return Ok(hasher.finalize());
            }
            hasher.update(&buffer[..n]);
        }
    })
    .await
    .map_err(|e| CliError::Usage(format!("hashing failed: {e}")))?
}

fn media_type_of(path: &Path) -> String {
    mime_guess::from_path(path)
        .first_or_octet_stream()
        .essence_str()
        .to_owned()
}

/// How long an upload the server turned away as busy (429
/// `too_many_uploads`, sent with `Retry-After: 1`) waits before trying
/// again, and how many times it tries again.
const BUSY_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
const BUSY_RETRIES: u32 = 60;

/// Uploads one local file; the server refuses it if the bytes it receives
/// differ from the digests computed here. A server busy with other uploads
/// is asked again each second for a minute. A large file (`--resumable-over`)
/// goes up as a resumable upload, which survives dropped connections.
pub async fn upload(
    client: &Client,
    package_id: &str,
    local: &Path,
    relative_path: &str,
    media_type: Option<&str>,
    bar: &ProgressBar,
    state: Option<&PushState>,
) -> CliResult<File> {
    let digests = hash_file(local).await?;
    if client.resumable(digests.size_bytes) {
        let media_type = media_type.map_or_else(|| media_type_of(local), str::to_owned);
        let file = super::resumable::LocalFile {
            package_id,
            local,
            relative_path,
            media_type: &media_type,
            digests: &digests,
        };
        return super::resumable::upload(client, file, bar, state).await;
    }
    let mut segments = vec!["v1", "packages", package_id, "files"];
    segments.extend(relative_path.split('/'));
    let url = client.url(&segments);
    let media_type = media_type.map_or_else(|| media_type_of(local), str::to_owned);
    let sha256 = base64::engine::general_purpose::STANDARD.encode(digests.sha256.0);
    let mut retries = 0;
    loop {
        let file = std::fs::File::open(local).map_err(|e| CliError::io(local, e))?;
        let sent = Arc::new(AtomicU64::new(0));
        let (progress, counted) = (bar.clone(), sent.clone());
        // Exactly the bytes hashed: a file that shrank since fails the
        // upload, one that grew is cut at the hashed size (and refused by
        // the server if those bytes changed).
        let stream =
            artifactstore_storage::file_chunks(file, digests.size_bytes).inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    progress.inc(chunk.len() as u64);
                    counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            });
        let request = client
            .request(Method::PUT, url.clone())
            .header("Content-Type", &media_type)
            .header("Content-Length", digests.size_bytes)
            .header("Content-Digest", format!("sha-256=:{sha256}:"))
            .header("X-Content-Blake3", digests.blake3.to_hex())
            .body(reqwest::Body::wrap_stream(stream));
        match client.json(request).await {
            Err(CliError::Server { status: 429, .. }) if retries < BUSY_RETRIES => {
                bar.dec(sent.load(Ordering::Relaxed));
                retries += 1;
                tokio::time::sleep(BUSY_RETRY_DELAY).await;
            }
            answer => return answer,
        }
    }
}

/// Every file under `paths` with its relative path in the package.
fn collect(paths: &[PathBuf]) -> CliResult<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|e| CliError::io(root, e))?;
        if meta.is_dir() {
            walk(root, root, &mut files)?;
        } else {
            let name = root.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                CliError::Usage(format!("{}: file name is not UTF-8", root.display()))
            })?;
            files.push((root.clone(), name.to_owned()));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (local, relative) in &files {
        RelativePath::parse(relative).map_err(|e| {
            CliError::Usage(format!(
                "{}: cannot be uploaded as {relative:?}: {e}",
                local.display()
            ))
        })?;
        if !seen.insert(relative.as_str()) {
            return Err(CliError::Usage(format!(
                "two files would be uploaded as {relative:?}"
            )));
        }
    }
    Ok(files)
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(PathBuf, String)>) -> CliResult<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| CliError::io(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| CliError::io(&path, e))?;
        if meta.is_dir() {
            walk(root, &path, files)?;
        } else if meta.is_file() {
            let relative = path
                .strip_prefix(root)
                .map_err(|e| CliError::Usage(e.to_string()))?
                .components()
                .map(|c| c.as_os_str().to_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| CliError::Usage(format!("{}: path is not UTF-8", path.display())))?
                .join("/");
            files.push((path, relative));
        }
    }
    Ok(())
}

/// `artifactstore push`.
pub async fn push(
    client: &Client,
    out: Output,
    args: PackageArgs,
    jobs: u16,
    resume: bool,
    paths: Vec<PathBuf>,
) -> CliResult<()> {
    let files = collect(&paths)?;
    let total: u64 = files
        .iter()
        .map(|(p, _)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let state = PushState::of(client.base().as_str(), &args, &paths)?;
    // On resume: the files the server has already, by path and SHA-256.
    let mut recorded: BTreeMap<String, String> = BTreeMap::new();
    let package_id = if resume {
        let package_id = state.package_id().ok_or_else(|| {
            CliError::Usage(
                "no interrupted push with these arguments and paths to resume; run it without --resume".into(),
            )
        })?;
        let listed: FileList = client
            .get_json(&["v1", "packages", &package_id, "files"], &[])
            .await?;
        recorded = listed
            .items
            .into_iter()
            .map(|f| (f.relative_path, f.sha256))
            .collect();
        package_id
    } else {
        let package = create_package(client, &args).await?;
        state.package_created(&package.id)?;
        package.id
    };
    let bar = progress(out, total, "uploading");
    let uploaded = each_at_most(jobs, &files, |(local, relative)| {
        let (package_id, bar, state, recorded) = (&package_id, &bar, &state, &recorded);
        async move {
            bar.set_message(relative.clone());
            if let Some(sha256) = recorded.get(relative) {
                let digests = hash_file(local).await?;
                if *sha256 != digests.sha256.to_hex() {
                    return Err(CliError::Usage(format!(
                        "{relative:?} in package {package_id} differs from {}: the files changed since the push began",
                        local.display()
                    )));
                }
                bar.inc(digests.size_bytes);
                return Ok(());
            }
            upload(client, package_id, local, relative, None, bar, Some(state))
                .await
                .map(drop)
                .map_err(|e| {
                    CliError::Usage(format!(
                        "{e}\nupload of {relative:?} failed; package {package_id} stays open (not finalized)"
                    ))
                })
        }
    })
    .await;
    if let Err(e) = uploaded {
        bar.abandon();
        return Err(e);
    }
    bar.finish_and_clear();
    let finalized: Finalized = client
        .post_action(&["v1", "packages", &package_id, "finalize"])
        .await?;
    state.finished();
    let summary = PushSummary {
        package_id: &package_id,
        manifest_digest: &finalized.manifest_digest,
        files: files.len(),
        bytes: total,
    };
    out.show(&summary, || {
        format!(
            "package {package_id}\nmanifest {}\n{} files, {total} bytes",
            finalized.manifest_digest,
            files.len()
        )
    });
    Ok(())
}

/// `artifactstore file …`.
pub async fn file(client: &Client, out: Output, command: FileCommand) -> CliResult<()> {
    match command {
        FileCommand::Put {
            package_id,
            path,
            relative_path,
            media_type,
        } => {
            let relative = match relative_path {
                Some(relative) => relative,
                None => path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        CliError::Usage(format!("{}: give --as RELATIVE_PATH", path.display()))
                    })?,
            };
            let size = std::fs::metadata(&path)
                .map_err(|e| CliError::io(&path, e))?
                .len();
            let bar = progress(out, size, &relative);
            let record = upload(
                client,
                &package_id,
                &path,
                &relative,
                media_type.as_deref(),
                &bar,
                None,
            )
            .await?;
            bar.finish_and_clear();
            out.show(&record, || {
                format!(
                    "file {}\n{} ({} bytes)",
                    record.id, record.content_address, record.size_bytes
                )
            });
        }
        FileCommand::Get { file_id, output } => {
            super::pull::get_file(client, out, &file_id, output.as_deref()).await?
        }
        FileCommand::List { package_id } => {
            let list: FileList = client
                .get_json(&["v1", "packages", &package_id, "files"], &[])
                .await?;
            out.show(&list, || {
                let mut text = String::new();
                for item in &list.items {
                    text.push_str(&format!(
                        "{}  {:>12}  {}  {}\n",
                        item.id, item.size_bytes, item.content_address, item.relative_path
                    ));
                }
                text
            });
        }
        FileCommand::Find {
            sha256,
            blake3,
            limit,
            after,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            for (name, value) in [("sha256", sha256), ("blake3", blake3), ("after", after)] {
                if let Some(value) = value {
                    query.push((name, value));
                }
            }
            let page: FilePage = client.get_json(&["v1", "files"], &query).await?;
            out.show(&page, || {
                let mut text = String::new();
                for item in &page.items {
                    text.push_str(&format!(
                        "{}  {}  {:>12}  {}\n",
                        item.id, item.package_id, item.size_bytes, item.relative_path
                    ));
                }
                if let Some(next) = page.next {
                    text.push_str(&format!("more: --after {next}\n"));
                }
                text
            });
        }
    }
    Ok(())
}
