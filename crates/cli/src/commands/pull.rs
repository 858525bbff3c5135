//! Downloads: `pull`, `manifest`, `file get`. Every byte written is hashed
//! on the way and checked against the recorded size and digests.

use std::io::Write;
use std::path::{Path, PathBuf};

use artifactstore_registry::core::{DualHasher, RelativePath};
use futures::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::push::progress;
use super::transfers::each_at_most;
use crate::args::ManifestFormatArg;
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::{field, Output};

/// What a file must be.
struct Expected {
    size_bytes: u64,
    blake3: String,
    sha256: String,
}

impl Expected {
    fn from_json(value: &Value) -> CliResult<Self> {
        let text = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| CliError::Protocol(format!("file entry without `{name}`")))
        };
        Ok(Self {
            size_bytes: value
                .get("size_bytes")
                .and_then(Value::as_u64)
                .ok_or_else(|| CliError::Protocol("file entry without `size_bytes`".into()))?,
            blake3: text("blake3")?,
            sha256: text("sha256")?,
        })
    }

    fn check(&self, hasher: DualHasher, label: &str) -> CliResult<()> {
        let actual = hasher.finalize();
        let what = if actual.size_bytes != self.size_bytes {
            Some(format!(
                "size {} bytes, expected {}",
                actual.size_bytes, self.size_bytes
            ))
        } else if actual.blake3.to_hex() != self.blake3 {
            Some(format!(
                "BLAKE3 {}, expected {}",
                actual.blake3, self.blake3
            ))
        } else if actual.sha256.to_hex() != self.sha256 {
            Some(format!(
                "SHA-256 {}, expected {}",
                actual.sha256, self.sha256
            ))
        } else {
            None
        };
        match what {
            Some(what) => Err(CliError::DigestMismatch {
                path: label.to_owned(),
                what,
            }),
            None => Ok(()),
        }
    }
}

/// Streams file `file_id` into `dest` through a temporary file; renames it
/// into place only when size and both digests match.
async fn download(
    client: &Client,
    file_id: &str,
    expected: &Expected,
    dest: &Path,
    label: &str,
    bar: &indicatif::ProgressBar,
) -> CliResult<()> {
    // A random name cannot collide with a file of the package.
    let partial = dest.with_file_name(format!(
        ".artifactstore-{}.partial",
        uuid::Uuid::new_v4().simple()
    ));
    let result = async {
        let mut stream = client
            .get_stream(&["v1", "files", file_id, "content"], &[])
            .await?;
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| CliError::io(&partial, e))?;
        let mut hasher = DualHasher::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| CliError::Protocol(format!("download of {label} broke off: {e}")))?;
            hasher.update(&chunk);
            bar.inc(chunk.len() as u64);
            file.write_all(&chunk)
                .await
                .map_err(|e| CliError::io(&partial, e))?;
        }
        file.sync_all()
            .await
            .map_err(|e| CliError::io(&partial, e))?;
        expected.check(hasher, label)?;
        tokio::fs::rename(&partial, dest)
            .await
            .map_err(|e| CliError::io(dest, e))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

/// Where the file at `relative` in the package goes under `output`; the
/// server is trusted with bytes, not with paths on this machine.
fn destination(output: &Path, relative: &str) -> CliResult<PathBuf> {
    let path = RelativePath::parse(relative).map_err(|e| {
        CliError::Protocol(format!("manifest names an unsafe path {relative:?}: {e}"))
    })?;
    let dest: PathBuf = path
        .as_str()
        .split('/')
        .fold(output.to_path_buf(), |p, s| p.join(s));
    // Each segment must be a plain name on this platform, so the file
    // lands inside the output directory whatever the server sent.
    let plain = std::path::Path::new(path.as_str())
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain || !dest.starts_with(output) {
        return Err(CliError::Protocol(format!(
            "manifest names an unsafe path {relative:?}"
        )));
    }
    Ok(dest)
}

/// `artifactstore pull`.
pub async fn pull(
    client: &Client,
    out: Output,
    package_id: &str,
    output: &Path,
    jobs: u16,
) -> CliResult<()> {
    let manifest: Value = client
        .get_json(
            &["v1", "packages", package_id, "manifest"],
            &[("format", "json".into())],
        )
        .await?;
    let files = manifest
        .get("files")
        .and_then(Value::as_array)
        .ok_or_else(|| CliError::Protocol("manifest without `files`".into()))?;
    let total = files
        .iter()
        .filter_map(|f| f.get("size_bytes").and_then(Value::as_u64))
        .sum();
    // Every path is checked before anything is written.
    let wanted = files
        .iter()
        .map(|entry| {
            let relative = field(entry, "relative_path");
            let dest = destination(output, &relative)?;
            Ok((
                field(entry, "file_id"),
                Expected::from_json(entry)?,
                dest,
                relative,
            ))
        })
        .collect::<CliResult<Vec<_>>>()?;
    // Each directory once, before the downloads, rather than once per file.
    let directories: std::collections::BTreeSet<&Path> = std::iter::once(output)
        .chain(wanted.iter().filter_map(|(_, _, dest, _)| dest.parent()))
        .collect();
    for directory in directories {
        tokio::fs::create_dir_all(directory)
            .await
            .map_err(|e| CliError::io(directory, e))?;
    }
    let bar = progress(out, total, "downloading");
    let bar_ref = &bar;
    let pulled = each_at_most(
        jobs,
        &wanted,
        |(file_id, expected, dest, relative)| async move {
            bar_ref.set_message(relative.clone());
            download(client, file_id, expected, dest, relative, bar_ref).await
        },
    )
    .await;
    if let Err(e) = pulled {
        bar.abandon();
        return Err(e);
    }
    bar.finish_and_clear();
    let summary = serde_json::json!({
        "package_id": package_id,
        "files": files.len(),
        "bytes": total,
        "output": output.display().to_string(),
        "verified": true,
    });
    out.show(&summary, || {
        format!(
            "pulled {} files ({total} bytes) into {}; sizes, BLAKE3 and SHA-256 verified",
            files.len(),
            output.display()
        )
    });
    Ok(())
}

/// `artifactstore file get`.
pub async fn get_file(
    client: &Client,
    out: Output,
    file_id: &str,
    output: Option<&Path>,
) -> CliResult<()> {
    let record: Value = client.get_json(&["v1", "files", file_id], &[]).await?;
    let expected = Expected::from_json(&record)?;
    let label = field(&record, "relative_path");
    match output {
        Some(dest) => {
            let bar = progress(out, expected.size_bytes, &label);
            download(client, file_id, &expected, dest, &label, &bar).await?;
            bar.finish_and_clear();
            out.show(&record, || {
                format!(
                    "wrote {} ({} bytes, verified)",
                    dest.display(),
                    expected.size_bytes
                )
            });
        }
        None => {
            // To stdout the bytes cannot be taken back: check at the end and
            // fail loudly (non-zero exit) if they were wrong.
            let mut stream = client
                .get_stream(&["v1", "files", file_id, "content"], &[])
                .await?;
            let mut hasher = DualHasher::default();
            let mut stdout = std::io::stdout().lock();
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| CliError::Protocol(format!("download broke off: {e}")))?;
                hasher.update(&chunk);
                stdout
                    .write_all(&chunk)
                    .map_err(|e| CliError::io("stdout", e))?;
            }
            stdout.flush().map_err(|e| CliError::io("stdout", e))?;
            expected.check(hasher, &label)?;
        }
    }
    Ok(())
}

/// `artifactstore manifest`.
pub async fn manifest(
    client: &Client,
    package_id: &str,
    format: ManifestFormatArg,
    output: Option<&Path>,
) -> CliResult<()> {
    let format = match format {
        ManifestFormatArg::Cbor => "cbor",
        ManifestFormatArg::Json => "json",
    };
    let mut stream = client
        .get_stream(
            &["v1", "packages", package_id, "manifest"],
            &[("format", format.into())],
        )
        .await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| CliError::Protocol(e.to_string()))?);
    }
    match output {
        Some(path) => std::fs::write(path, &bytes).map_err(|e| CliError::io(path, e))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&bytes)
                .map_err(|e| CliError::io("stdout", e))?;
            stdout.flush().map_err(|e| CliError::io("stdout", e))?;
        }
    }
    Ok(())
}
