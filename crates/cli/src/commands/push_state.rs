//! What `push --resume` needs to continue a push whose process died: the
//! package it created and the resumable uploads it started. Kept in a small
//! JSON file under the user's state directory
//! (`$ARTIFACTSTORE_STATE_DIR`, else `$XDG_STATE_HOME/artifactstore`, else
//! `~/.local/state/artifactstore`), named by a digest of the push's
//! server, package arguments and paths, written again (atomically) at each
//! change, and removed when the push finishes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::args::PackageArgs;
use crate::error::{CliError, CliResult};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    package_id: Option<String>,
    /// Relative path → upload URL of each resumable upload in progress.
    uploads: BTreeMap<String, String>,
}

/// One push's saved state.
pub struct PushState {
    path: PathBuf,
    saved: Mutex<Saved>,
}

fn state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ARTIFACTSTORE_STATE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return Some(PathBuf::from(dir).join("artifactstore"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state/artifactstore"))
}

impl PushState {
    /// The state of the push with these arguments (empty if none was saved).
    pub fn of(server: &str, args: &PackageArgs, paths: &[PathBuf]) -> CliResult<Self> {
        let mut key = sha2::Sha256::new();
        for part in [
            server,
            &args.name,
            &args.producer,
            &args.subject,
            &args.retention_class,
        ] {
            key.update(part.as_bytes());
            key.update([0]);
        }
        for path in paths {
            let absolute = std::fs::canonicalize(path).map_err(|e| CliError::io(path, e))?;
            key.update(absolute.as_os_str().as_encoded_bytes());
            key.update([0]);
        }
        let dir = state_dir().ok_or_else(|| {
            CliError::Usage("no state directory: set ARTIFACTSTORE_STATE_DIR or HOME".into())
        })?;
        let path = dir
            .join("pushes")
            .join(format!("{}.json", hex::encode(key.finalize())));
        let saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => Saved::default(),
        };
        Ok(Self {
            path,
            saved: Mutex::new(saved),
        })
    }

    /// The package an earlier run of this push created.
    pub fn package_id(&self) -> Option<String> {
        self.lock().package_id.clone()
    }

    /// The upload an earlier run started for `relative_path`.
    pub fn upload_url(&self, relative_path: &str) -> Option<String> {
        self.lock().uploads.get(relative_path).cloned()
    }

    /// Records the package this push created.
    pub fn package_created(&self, package_id: &str) -> CliResult<()> {
        self.change(|saved| saved.package_id = Some(package_id.to_owned()))
    }

    /// Records an upload started (`Some(url)`) or finished (`None`).
    pub fn upload(&self, relative_path: &str, url: Option<&str>) -> CliResult<()> {
        self.change(|saved| match url {
            Some(url) => {
                saved
                    .uploads
                    .insert(relative_path.to_owned(), url.to_owned());
            }
            None => {
                saved.uploads.remove(relative_path);
            }
        })
    }

    /// The push finished: nothing is left to resume.
    pub fn finished(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Saved> {
        self.saved.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn change(&self, edit: impl FnOnce(&mut Saved)) -> CliResult<()> {
        let mut saved = self.lock();
        edit(&mut saved);
        let bytes = serde_json::to_vec_pretty(&*saved)
            .map_err(|e| CliError::Usage(format!("saving push state: {e}")))?;
        write_atomically(&self.path, &bytes)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> CliResult<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes).map_err(|e| CliError::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| CliError::io(path, e))
}
