//! Downloads: `pull`, `manifest`, `file get`. Every byte written is hashed
//! on the way and checked against the recorded size and digests.

use std::io::Write;
use std::path::{Path, PathBuf};

use artifactstore_api::{File, Manifest};
use artifactstore_registry::core::{DualHasher, RelativePath};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::push::progress;
use super::transfers::each_at_most;
use crate::args::ManifestFormatArg;
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// What a file must be.
struct Expected {
    size_bytes: u64,
    blake3: String,
    sha256: String,
}

impl Expected {
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

/// The files one `pull` has written, by identity on disk, so that it never
/// replaces one with another: on a case-insensitive or normalising
/// filesystem, or through a symbolic link already in the output directory,
/// two paths of a package can be one file here.
#[derive(Default)]
pub(crate) struct WrittenFiles {
    written: std::sync::Mutex<std::collections::HashMap<(u64, u64), String>>,
}

impl WrittenFiles {
    /// Renames `partial` to `dest` (the file at `relative`) unless `dest`
    /// is a file this run wrote for another path. Under one lock, so two
    /// downloads landing on one file cannot both pass.
    fn put_in_place(&self, partial: &Path, dest: &Path, relative: &str) -> CliResult<()> {
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(earlier) = identity(dest).and_then(|id| written.get(&id)) {
            return Err(CliError::PathCollision {
                first: earlier.clone(),
                second: relative.to_owned(),
                why: format!("both land on {} on this machine", dest.display()),
            });
        }
        std::fs::rename(partial, dest).map_err(|e| CliError::io(dest, e))?;
        if let Some(id) = identity(dest) {
            written.insert(id, relative.to_owned());
        }
        Ok(())
    }
}

/// A file's identity on disk (device and inode), if it exists.
#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// Refuses a set of package paths that cannot all be files of one tree
/// on every filesystem: two with one collision key (`README.md` and
/// `readme.md`, `café` in NFC and NFD), or a file whose key is a folder of
/// another's. The server refuses such packages now; older ones may hold
/// them.
fn check_paths_fit_one_tree<'a>(paths: impl IntoIterator<Item = &'a str>) -> CliResult<()> {
    use artifactstore_registry::core::path::{collision_key, folders_of};
    let mut by_key: std::collections::BTreeMap<String, &str> = std::collections::BTreeMap::new();
    for path in paths {
        if let Some(earlier) = by_key.insert(collision_key(path), path) {
            return Err(CliError::PathCollision {
                first: earlier.to_owned(),
                second: path.to_owned(),
                why: "they are one file on a case-insensitive or normalising filesystem".into(),
            });
        }
    }
    for (key, path) in &by_key {
        if let Some(file) = folders_of(key).find_map(|folder| by_key.get(folder)) {
            return Err(CliError::PathCollision {
                first: (*file).to_owned(),
                second: (*path).to_owned(),
                why: "the first is a file, and the second needs it to be a folder".into(),
            });
        }
    }
    Ok(())
}

/// Streams file `file_id` into `dest` through a temporary file; renames it
/// into place only when size and both digests match (and, in a `pull`,
/// only over no file the same run wrote).
async fn download(
    client: &Client,
    file_id: &str,
    expected: &Expected,
    dest: &Path,
    label: &str,
    bar: &indicatif::ProgressBar,
    written: Option<&WrittenFiles>,
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
        match written {
            Some(written) => written.put_in_place(&partial, dest, label),
            None => tokio::fs::rename(&partial, dest)
                .await
                .map_err(|e| CliError::io(dest, e)),
        }
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
    let manifest: Manifest = client
        .get_json(
            &["v1", "packages", package_id, "manifest"],
            &[("format", "json".into())],
        )
        .await?;
    let files = manifest.files;
    let total = files.iter().map(|file| file.size_bytes).sum();
    // Every path is checked before anything is written.
    let wanted = files
        .iter()
        .map(|entry| {
            let dest = destination(output, &entry.relative_path)?;
            Ok((
                entry.file_id.clone(),
                Expected {
                    size_bytes: entry.size_bytes,
                    blake3: entry.blake3.clone(),
                    sha256: entry.sha256.clone(),
                },
                dest,
                entry.relative_path.clone(),
            ))
        })
        .collect::<CliResult<Vec<_>>>()?;
    check_paths_fit_one_tree(wanted.iter().map(|(_, _, _, relative)| relative.as_str()))?;
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
    let written = WrittenFiles::default();
    let written = &written;
    let pulled = each_at_most(
        jobs,
        &wanted,
        |(file_id, expected, dest, relative)| async move {
            bar_ref.set_message(relative.clone());
            download(
                client,
                file_id,
                expected,
                dest,
                relative,
                bar_ref,
                Some(written),
            )
            .await
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
    let record: File = client.get_json(&["v1", "files", file_id], &[]).await?;
    let expected = Expected {
        size_bytes: record.size_bytes,
        blake3: record.blake3.clone(),
        sha256: record.sha256.clone(),
    };
    let label = record.relative_path.clone();
    match output {
        Some(dest) => {
            let bar = progress(out, expected.size_bytes, &label);
            download(client, file_id, &expected, dest, &label, &bar, None).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_one_filesystem_merges_are_refused_before_writing() {
        assert!(check_paths_fit_one_tree(["a/b.txt", "a/c.txt", "ab", "a.txt"]).is_ok());
        for (paths, first, second) in [
            (
                vec!["README.md", "x", "readme.md"],
                "README.md",
                "readme.md",
            ),
            (vec!["caf\u{e9}", "cafe\u{301}"], "caf\u{e9}", "cafe\u{301}"),
            (vec!["a", "a/b"], "a", "a/b"),
            (vec!["Dir/x", "dir"], "dir", "Dir/x"),
        ] {
            let err = check_paths_fit_one_tree(paths.clone())
                .unwrap_err()
                .to_string();
            // Quoted as Rust debug strings, so look-alikes show their difference.
            let (first, second) = (format!("{first:?}"), format!("{second:?}"));
            assert!(
                err.contains(&first) && err.contains(&second),
                "{paths:?}: {err}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_file_written_in_this_run_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::create_dir(out.join("a")).unwrap();
        std::os::unix::fs::symlink(out.join("a"), out.join("b")).unwrap();
        let written = WrittenFiles::default();
        let partial = |name: &str, text: &str| {
            let path = out.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        written
            .put_in_place(&partial("p1", "first"), &out.join("a/x"), "a/x")
            .unwrap();
        // A file that was there before the run may be replaced.
        std::fs::write(out.join("a/old"), "old").unwrap();
        written
            .put_in_place(&partial("p2", "new"), &out.join("a/old"), "a/old")
            .unwrap();
        let err = written
            .put_in_place(&partial("p3", "second"), &out.join("b/x"), "b/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a/x") && err.contains("b/x"), "{err}");
        assert_eq!(std::fs::read_to_string(out.join("a/x")).unwrap(), "first");
    }
}
