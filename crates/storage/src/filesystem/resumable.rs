//! Resumable uploads on the filesystem: one staging file per upload,
//! `<root>/.uploads/<upload id>`, each part written at its offset (with
//! direct I/O where the filesystem takes it, like a large PUT), synced
//! when the caller settles or writes the tail; renamed under its key at
//! commit. The directory is outside the content-addressed tree,
//! so nothing lists or collects it: an upload's file goes when the upload
//! completes, is terminated or expires.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{create_dirs, sync_dir, sync_new_entry, FilesystemBackend};
use crate::{ResumableStaging, StorageError};

pub(super) const UPLOADS_DIR: &str = ".uploads";
/// The smallest part of a resumable upload on the filesystem. Small, as
/// each request waits for its last part's write before it answers: 2 MiB
/// rather than 8 took the resumable benchmark from 0.85 to 0.9 of a PUT
/// and the server's peak memory from 72 to 44 MiB (docs/benchmarks.md).
/// Larger files get larger parts, to keep the part list short.
pub const FILESYSTEM_SMALLEST_PART_BYTES: u64 = 2 * 1024 * 1024;

impl FilesystemBackend {
    /// The staging file of upload `handle`. Handles are server-made UUIDs;
    /// anything else is refused, so no value can name another path.
    fn upload_file(&self, handle: &str) -> Result<PathBuf, StorageError> {
        match uuid::Uuid::try_parse(handle) {
            Ok(id) if id.hyphenated().to_string() == handle => {
                Ok(self.root().join(UPLOADS_DIR).join(handle))
            }
            _ => Err(StorageError::Refused {
                backend: self.id.clone(),
                cause: format!("{handle:?} is not an upload handle"),
            }),
        }
    }

    /// `len` bytes from `offset` of upload `handle`'s staged file: parts
    /// and tail lie at their offsets in it.
    async fn read_staged(
        &self,
        handle: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, StorageError> {
        let path = self.upload_file(handle)?;
        let len =
            usize::try_from(len).map_err(|_| self.io(std::io::Error::other("read too large")))?;
        let bytes = self
            .blocking(move || {
                let file = std::fs::File::open(&path)?;
                let mut buffer = vec![0u8; len];
                file.read_exact_at(&mut buffer, offset)?;
                Ok(buffer)
            })
            .await?;
        Ok(Bytes::from(bytes))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|e| self.io(e))
    }
}

/// Writes `pieces` at `offset` of the file at `path` through the page
/// cache, then syncs it.
fn write_at(path: &Path, offset: u64, pieces: &[Bytes], truncate: bool) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut at = offset;
    for piece in pieces {
        file.write_all_at(piece, at)?;
        at += piece.len() as u64;
    }
    if truncate {
        file.set_len(at)?;
    }
    file.sync_data()
}

#[async_trait]
impl ResumableStaging for FilesystemBackend {
    fn smallest_part_bytes(&self) -> u64 {
        FILESYSTEM_SMALLEST_PART_BYTES
    }

    async fn start(
        &self,
        upload_id: &str,
        _expected_key: Option<&str>,
    ) -> Result<String, StorageError> {
        let path = self.upload_file(upload_id)?;
        let root = self.root().to_path_buf();
        self.blocking(move || {
            let dir = root.join(UPLOADS_DIR);
            let created = create_dirs(&root, &dir)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?
                .sync_all()?;
            sync_new_entry(&dir, &created)
        })
        .await?;
        Ok(upload_id.to_owned())
    }

    async fn put_part(
        &self,
        handle: &str,
        index: u64,
        part_bytes: u64,
        part: Vec<Bytes>,
    ) -> Result<String, StorageError> {
        let path = self.upload_file(handle)?;
        let offset = index
            .checked_mul(part_bytes)
            .ok_or_else(|| self.io(std::io::Error::other("part offset overflows")))?;
        let length = part.iter().map(|p| p.len() as u64).sum();
        match self.staging.direct {
            Some(direct) if direct.fits(offset, length) => {
                let staging = self.staging.clone();
                self.blocking(move || direct.write_at(&path, offset, &part, &staging.part_buffers))
                    .await?
            }
            // Synced now: without direct I/O a flush of many parts' pages
            // at once would take as long, and hold their memory meanwhile.
            _ => {
                self.blocking(move || write_at(&path, offset, &part, false))
                    .await?
            }
        }
        Ok(index.to_string())
    }

    async fn settle(&self, handle: &str) -> Result<(), StorageError> {
        let path = self.upload_file(handle)?;
        self.blocking(move || std::fs::File::open(&path)?.sync_data())
            .await
    }

    async fn put_tail(
        &self,
        handle: &str,
        offset: u64,
        tail: Vec<Bytes>,
    ) -> Result<(), StorageError> {
        let path = self.upload_file(handle)?;
        self.blocking(move || write_at(&path, offset, &tail, true))
            .await
    }

    fn reads_back_parts(&self) -> bool {
        true
    }

    async fn read_parts(&self, handle: &str, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        self.read_staged(handle, offset, len).await
    }

    async fn read_tail(
        &self,
        handle: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<Bytes>, StorageError> {
        Ok(vec![self.read_staged(handle, offset, len).await?])
    }

    async fn commit(
        &self,
        handle: &str,
        receipts: &[String],
        offset: u64,
        tail: Vec<Bytes>,
        key: &str,
    ) -> Result<(), StorageError> {
        let path = self.upload_file(handle)?;
        let target = self.path_of(key)?;
        let in_order = receipts
            .iter()
            .enumerate()
            .all(|(i, receipt)| receipt == &i.to_string());
        if !in_order {
            return Err(StorageError::Refused {
                backend: self.id.clone(),
                cause: "part receipts are not this backend's, or out of order".into(),
            });
        }
        let root = self.root().to_path_buf();
        self.blocking(move || {
            write_at(&path, offset, &tail, true)?;
            let file = std::fs::File::open(&path)?;
            file.sync_all()?;
            drop(file);
            let parent = target.parent().unwrap_or(&root).to_path_buf();
            let created = create_dirs(&root, &parent)?;
            if target.try_exists()? {
                // Same key, same bytes: keep the object there, make sure
                // its entry is durable, drop the staged copy.
                sync_dir(&parent)?;
                return std::fs::remove_file(&path);
            }
            std::fs::rename(&path, &target)?;
            sync_new_entry(&parent, &created)?;
            sync_dir(&root.join(UPLOADS_DIR))
        })
        .await
    }

    async fn abort(&self, handle: &str) -> Result<(), StorageError> {
        let path = self.upload_file(handle)?;
        self.blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }
}
