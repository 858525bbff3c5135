//! The local filesystem backend: objects under `<root>/<key>`, staged in
//! `<root>/.staging/` and put into place after an fsync.
//!
//! Where the kernel and filesystem allow (Linux, `O_TMPFILE`: ext4, XFS,
//! Btrfs, tmpfs), a staging file is unnamed and linked under its key at
//! commit. Many uploads at once then never take the staging directory's
//! lock to create or rename an entry, and a crash leaves no staging file
//! behind. Elsewhere staging files are named and renamed into place.
//!
//! An object larger than one write batch is written with direct I/O where
//! the filesystem takes it (see [`direct`]): not through the page cache.

mod direct;
mod resumable;
pub use self::resumable::FILESYSTEM_SMALLEST_PART_BYTES;

use std::io::{Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use tokio::fs;

use self::direct::{DirectIo, DirectWrites, SpareBuffers};
use crate::file_chunks::file_chunks;
use crate::{Backend, ByteStream, ObjectInfo, ObjectWriter, StorageError, CONTENT_KEY_PREFIX};

const STAGING_DIR: &str = ".staging";
const LOCK_FILE: &str = ".lock";
/// A staging file not written for this long belongs to a dead upload.
pub const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Objects on a local filesystem.
#[derive(Debug, Clone)]
pub struct FilesystemBackend {
    id: String,
    root: PathBuf,
    staging: Arc<Staging>,
}

/// This process's staging directory, `<root>/.staging/<uuid>/`, marked as
/// alive by an exclusive lock on its `.lock` file. The kernel drops the
/// lock when the process dies, however it dies, so the next process to
/// open the root can tell a dead writer's leftovers from a live one's.
#[derive(Debug)]
struct Staging {
    dir: PathBuf,
    _lock: std::fs::File,
    /// Whether unnamed staging files work here (probed at open).
    unnamed: bool,
    /// Whether unnamed staging files take direct writes (probed at open).
    direct: Option<DirectIo>,
    /// Buffers kept for resumable uploads' direct part writes.
    part_buffers: SpareBuffers,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes staging directories whose owner is gone (its lock can be
/// taken), and loose files from older layouts that nobody touched for
/// [`STALE_STAGING`].
fn clean_staging(staging: &Path) -> std::io::Result<u64> {
    let mut removed = 0;
    for entry in std::fs::read_dir(staging)? {
        let path = entry?.path();
        if path.is_dir() {
            let dead = match std::fs::File::open(path.join(LOCK_FILE)) {
                Ok(lock) => lock.try_lock().is_ok(),
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            };
            if dead && std::fs::remove_dir_all(&path).is_ok() {
                removed += 1;
            }
        } else {
            let stale = std::fs::metadata(&path)
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age >= STALE_STAGING);
            if stale && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

impl FilesystemBackend {
    /// A backend rooted at `root`; creates the directory, removes what
    /// crashed writers left in staging, and takes a staging directory of
    /// its own. Other live processes on the same root keep theirs.
    pub async fn open(
        id: impl Into<String>,
        root: impl Into<PathBuf>,
    ) -> Result<Self, StorageError> {
        let id = id.into();
        let root = root.into();
        let staging_root = root.join(STAGING_DIR);
        let io = |e| StorageError::from_io(&id, e);
        let staging = tokio::task::spawn_blocking(move || -> std::io::Result<Staging> {
            std::fs::create_dir_all(&staging_root)?;
            clean_staging(&staging_root)?;
            let dir = staging_root.join(uuid::Uuid::new_v4().simple().to_string());
            std::fs::create_dir(&dir)?;
            let lock = std::fs::File::create(dir.join(LOCK_FILE))?;
            lock.try_lock().map_err(std::io::Error::other)?;
            let unnamed = match unnamed::probe(&dir) {
                Ok(()) => true,
                Err(e) => {
                    tracing::info!(error = %e, "unnamed staging files unsupported here; staging files are named");
                    false
                }
            };
            let direct = match unnamed.then(|| DirectIo::probe(&dir)) {
                Some(Ok(direct)) => Some(direct),
                Some(Err(e)) => {
                    tracing::info!(error = %e, "direct I/O unsupported here; large objects are written through the page cache");
                    None
                }
                None => None,
            };
            Ok(Staging {
                dir,
                _lock: lock,
                unnamed,
                direct,
                part_buffers: SpareBuffers::default(),
            })
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
        Ok(Self {
            id,
            root,
            staging: Arc::new(staging),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with `key` lives. Keys are made by the registry
    /// from content addresses; this check keeps a bad key from escaping the
    /// root all the same.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        let safe = !key.is_empty()
            && key.split('/').all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            })
            && !key.starts_with(STAGING_DIR)
            && !key.starts_with(resumable::UPLOADS_DIR);
        if !safe {
            return Err(StorageError::NotFound(key.to_owned()));
        }
        Ok(self.root.join(key))
    }

    fn io(&self, e: std::io::Error) -> StorageError {
        StorageError::from_io(&self.id, e)
    }

    /// A writer into a new staging file.
    fn writer(&self) -> FilesystemWriter {
        let staging = if self.staging.unnamed {
            StagingFile::Unnamed {
                dir: self.staging.dir.clone(),
            }
        } else {
            StagingFile::Named(
                self.staging
                    .dir
                    .join(format!("{}.part", uuid::Uuid::new_v4())),
            )
        };
        FilesystemWriter {
            direct: None,
            backend: self.clone(),
            staging,
            file: None,
            buffered: Vec::new(),
            buffered_bytes: 0,
            unflushed_bytes: 0,
            flushing: None,
            closed: false,
        }
    }
}

#[async_trait]
impl Backend for FilesystemBackend {
    fn id(&self) -> &str {
        &self.id
    }

    async fn begin_write(&self) -> Result<Box<dyn ObjectWriter>, StorageError> {
        Ok(Box::new(self.writer()))
    }

    async fn open(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        let path = self.path_of(key)?;
        // Open, size and seek in one blocking call.
        let opened = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut file = std::fs::File::open(&path)?;
            let size = file.metadata()?.len();
            let range = range.unwrap_or(0..size);
            if range.start <= range.end && range.end <= size {
                file.seek(SeekFrom::Start(range.start))?;
            }
            Ok((file, size, range))
        })
        .await
        .map_err(|e| self.io(std::io::Error::other(e)))?;
        let (file, size, range) = match opened {
            Ok(opened) => opened,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(key.to_owned()))
            }
            Err(e) => return Err(self.io(e)),
        };
        if range.start > range.end || range.end > size {
            return Err(StorageError::RangeNotSatisfiable {
                start: range.start,
                end: range.end,
                size,
            });
        }
        let id = self.id.clone();
        Ok(Box::pin(
            file_chunks(file, range.end - range.start)
                .map_err(move |e| StorageError::from_io(&id, e)),
        ))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match fs::metadata(self.path_of(key)?).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match fs::remove_file(self.path_of(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn list(&self) -> Result<Vec<ObjectInfo>, StorageError> {
        let top = self.root.join(CONTENT_KEY_PREFIX.trim_end_matches('/'));
        tokio::task::spawn_blocking(move || list_under(&top, CONTENT_KEY_PREFIX))
            .await
            .map_err(|e| self.io(std::io::Error::other(e)))?
            .map_err(|e| self.io(e))
    }

    async fn replace_small(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let target = self.path_of(key)?;
        if key.starts_with(CONTENT_KEY_PREFIX) {
            return Err(StorageError::Refused {
                backend: self.id.clone(),
                cause: format!("{key} is a content address; those are never replaced"),
            });
        }
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let parent = target.parent().unwrap_or(&root).to_path_buf();
            let created = create_dirs(&root, &parent)?;
            // A sibling, so the rename stays in one directory and is atomic.
            let mut name = target.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
            let temporary = parent.join(name);
            let written = (|| {
                let mut file = std::fs::File::create(&temporary)?;
                std::io::Write::write_all(&mut file, &bytes)?;
                file.sync_all()?;
                std::fs::rename(&temporary, &target)
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            written?;
            sync_new_entry(&parent, &created)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(|e| self.io(e))
    }

    fn resumable(&self) -> Option<&dyn crate::ResumableStaging> {
        Some(self)
    }

    async fn remove_dead_staging(&self) -> Result<u64, StorageError> {
        let staging = self.root.join(STAGING_DIR);
        tokio::task::spawn_blocking(move || clean_staging(&staging))
            .await
            .map_err(|e| self.io(std::io::Error::other(e)))?
            .map_err(|e| self.io(e))
    }

    async fn probe(&self) -> Result<(), StorageError> {
        let staging = self.root.join(STAGING_DIR);
        let meta = fs::metadata(&staging)
            .await
            .map_err(|e| StorageError::Unavailable {
                backend: self.id.clone(),
                cause: e.to_string(),
            })?;
        if meta.permissions().readonly() {
            return Err(StorageError::Unavailable {
                backend: self.id.clone(),
                cause: "staging directory is read-only".into(),
            });
        }
        Ok(())
    }
}

/// Every file below `dir`, keyed `prefix` + its path below `dir`. A
/// folder that vanishes while listed (emptied by a delete) is skipped.
fn list_under(dir: &Path, prefix: &str) -> std::io::Result<Vec<ObjectInfo>> {
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), prefix.to_owned())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                pending.push((entry.path(), format!("{prefix}{name}/")));
            } else if meta.is_file() {
                found.push(ObjectInfo {
                    key: format!("{prefix}{name}"),
                    size_bytes: meta.len(),
                    modified: meta.modified()?,
                });
            }
        }
    }
    Ok(found)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Makes a new name in `parent` durable: the directory entry, and each
/// directory in `created` (outermost first) by its own entry in its parent.
fn sync_new_entry(parent: &Path, created: &[PathBuf]) -> std::io::Result<()> {
    sync_dir(parent)?;
    for dir in created.iter().rev() {
        if let Some(up) = dir.parent() {
            sync_dir(up)?;
        }
    }
    Ok(())
}

/// Creates `dir` and any missing parents below `root`; returns the
/// directories it created, outermost first.
fn create_dirs(root: &Path, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut current = dir.to_path_buf();
    while current != root && !current.try_exists()? {
        missing.push(current.clone());
        match current.parent() {
            Some(up) => current = up.to_path_buf(),
            None => break,
        }
    }
    missing.reverse();
    for created in &missing {
        match std::fs::create_dir(created) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(missing)
}

/// Bytes gathered before they go to the staging file in one blocking call:
/// a small object never touches the disk until commit, and a large one
/// costs one thread handoff per MiB rather than one per socket read.
const WRITE_BATCH_BYTES: usize = 1024 * 1024;
/// A large object's staging file is flushed to disk in the background
/// each time this much more has been written, so the disk works while the
/// rest arrives and the fsync at commit has little left to do. The kernel
/// would wait far longer (until `dirty_background_ratio` of memory is
/// dirty), leaving the whole file to that final fsync.
const BACKGROUND_FLUSH_BYTES: usize = 32 * 1024 * 1024;

/// Where a writer's bytes wait for their key.
#[derive(Clone)]
enum StagingFile {
    /// An `O_TMPFILE` in this directory: no name, so nothing to remove on
    /// failure; linked under its key at commit.
    Unnamed { dir: PathBuf },
    /// A file at this path, renamed to its key at commit.
    Named(PathBuf),
}

impl StagingFile {
    fn create(&self) -> std::io::Result<std::fs::File> {
        match self {
            StagingFile::Unnamed { dir } => unnamed::create(dir, false),
            StagingFile::Named(path) => std::fs::File::create(path),
        }
    }

    /// Removes what is left of it, if it has a name.
    fn remove(&self) -> std::io::Result<()> {
        match self {
            StagingFile::Unnamed { .. } => Ok(()),
            StagingFile::Named(path) => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// Gives the synced `file` the name `target`, unless an object is there
    /// already (same key, same bytes), which is kept: returns whether the
    /// name is new.
    fn place(&self, file: std::fs::File, target: &Path) -> std::io::Result<bool> {
        match self {
            StagingFile::Unnamed { .. } => match unnamed::link(&file, target) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            },
            StagingFile::Named(path) => {
                drop(file);
                if target.try_exists()? {
                    std::fs::remove_file(path)?;
                    return Ok(false);
                }
                std::fs::rename(path, target)?;
                Ok(true)
            }
        }
    }
}

struct FilesystemWriter {
    backend: FilesystemBackend,
    staging: StagingFile,
    /// The direct writes of a large object, from its first batch on; the
    /// fields below are unused then.
    direct: Option<DirectWrites>,
    /// Created once the first batch is written.
    file: Option<std::fs::File>,
    buffered: Vec<Bytes>,
    buffered_bytes: usize,
    /// Written to the staging file since the last background flush began.
    unflushed_bytes: usize,
    /// The background flush in progress (see [`BACKGROUND_FLUSH_BYTES`]).
    flushing: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    closed: bool,
}

/// Appends `chunks` to the staging file, creating it first if needed.
fn write_chunks(
    file: Option<std::fs::File>,
    staging: &StagingFile,
    chunks: &[Bytes],
) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    let mut file = match file {
        Some(file) => file,
        None => staging.create()?,
    };
    for chunk in chunks {
        file.write_all(chunk)?;
    }
    Ok(file)
}

impl FilesystemWriter {
    fn closed_error(&self) -> StorageError {
        StorageError::Io {
            backend: self.backend.id.clone(),
            source: std::io::Error::other("writer already closed"),
        }
    }

    /// Writes what is buffered to the staging file (one blocking call),
    /// or, the first time where direct I/O works, creates the staging
    /// file for direct writes and hands them what is buffered.
    async fn spill(&mut self) -> Result<(), StorageError> {
        let chunks = std::mem::take(&mut self.buffered);
        let spilled = std::mem::take(&mut self.buffered_bytes);
        if let (None, Some(io), StagingFile::Unnamed { dir }) =
            (&self.file, self.backend.staging.direct, &self.staging)
        {
            let dir = dir.clone();
            let started = async {
                let file = tokio::task::spawn_blocking(move || io.create(&dir))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))?;
                let mut direct = DirectWrites::new(file, io);
                for chunk in &chunks {
                    direct.write(chunk).await?;
                }
                Ok(direct)
            };
            return match started.await {
                Ok(direct) => {
                    self.direct = Some(direct);
                    Ok(())
                }
                Err(e) => {
                    self.closed = true;
                    Err(self.backend.io(e))
                }
            };
        }
        let file = self.file.take();
        let staging = self.staging.clone();
        let written = tokio::task::spawn_blocking(move || write_chunks(file, &staging, &chunks))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let flushed = match written {
            Ok(file) => {
                self.file = Some(file);
                self.unflushed_bytes += spilled;
                self.flush_in_background().await
            }
            Err(e) => Err(e),
        };
        flushed.map_err(|e| {
            self.closed = true;
            let _ = self.staging.remove();
            self.backend.io(e)
        })
    }

    /// Starts flushing the staging file when enough is unflushed and the
    /// last flush is done; a failed flush fails the write, since a later
    /// fsync may not report the lost pages again.
    async fn flush_in_background(&mut self) -> std::io::Result<()> {
        if self.unflushed_bytes < BACKGROUND_FLUSH_BYTES {
            return Ok(());
        }
        if self.flushing.as_ref().is_some_and(|f| !f.is_finished()) {
            return Ok(());
        }
        self.finish_flushing().await?;
        let Some(file) = &self.file else {
            return Ok(());
        };
        // Only a head start for the fsync at commit: without a descriptor
        // to spare, skip it.
        let Ok(file) = file.try_clone() else {
            return Ok(());
        };
        self.unflushed_bytes = 0;
        self.flushing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
        Ok(())
    }

    /// Waits for the background flush, if any, and returns its result.
    async fn finish_flushing(&mut self) -> std::io::Result<()> {
        match self.flushing.take() {
            Some(flushing) => flushing
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ObjectWriter for FilesystemWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if self.closed {
            return Err(self.closed_error());
        }
        if let Some(direct) = &mut self.direct {
            return direct.write(&chunk).await.map_err(|e| {
                self.closed = true;
                self.backend.io(e)
            });
        }
        self.buffered_bytes += chunk.len();
        self.buffered.push(chunk);
        if self.buffered_bytes >= WRITE_BATCH_BYTES {
            self.spill().await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, key: &str) -> Result<(), StorageError> {
        if self.closed {
            return Err(self.closed_error());
        }
        let target = self.backend.path_of(key)?;
        let root = self.backend.root().to_path_buf();
        let staging = self.staging.clone();
        self.closed = true;
        if let Err(e) = self.finish_flushing().await {
            let _ = self.staging.remove();
            return Err(self.backend.io(e));
        }
        let direct_tail = match self.direct.take() {
            Some(direct) => Some(direct.finish().await.map_err(|e| self.backend.io(e))?),
            None => None,
        };
        let file = self.file.take();
        let chunks = std::mem::take(&mut self.buffered);
        // Everything from the last bytes to the durable directory entry in
        // one blocking call.
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let file = match direct_tail {
                Some(tail) => tail.write()?,
                None => write_chunks(file, &staging, &chunks)?,
            };
            file.sync_all()?;
            let parent = target.parent().unwrap_or(&root).to_path_buf();
            let created = create_dirs(&root, &parent)?;
            if !staging.place(file, &target)? {
                // Same key, same bytes: the object already there is kept,
                // but its directory entry must be durable too (its writer
                // may not have synced the directory yet).
                return sync_dir(&parent);
            }
            sync_new_entry(&parent, &created)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if result.is_err() {
            let _ = self.staging.remove();
        }
        result.map_err(|e| self.backend.io(e))
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StorageError> {
        self.closed = true;
        // Unnamed: the file is gone once its last write lets go of it.
        self.direct = None;
        self.buffered.clear();
        if self.file.take().is_none() {
            return Ok(());
        }
        let staging = self.staging.clone();
        tokio::task::spawn_blocking(move || staging.remove())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|e| self.backend.io(e))
    }
}

impl Drop for FilesystemWriter {
    fn drop(&mut self) {
        // A writer dropped mid-stream (client gone, task cancelled) must not
        // leave its staging file behind.
        if self.file.take().is_some() {
            let _ = self.staging.remove();
        }
    }
}

/// Unnamed staging files: `open(2)` with `O_TMPFILE`, then `linkat(2)`
/// through `/proc/self/fd`, the way open(2) documents.
#[cfg(target_os = "linux")]
mod unnamed {
    use std::os::fd::AsRawFd;
    use std::path::Path;

    use rustix::fs::{AtFlags, Mode, OFlags, CWD};

    /// A new file with no name in `dir`'s filesystem, for direct I/O
    /// (`O_DIRECT`) if `direct`.
    pub(super) fn create(dir: &Path, direct: bool) -> std::io::Result<std::fs::File> {
        let mut flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
        if direct {
            flags |= OFlags::DIRECT;
        }
        let fd = rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(0o666))?;
        Ok(std::fs::File::from(fd))
    }

    /// Names `file` `target`; fails with `AlreadyExists` if the name is taken.
    pub(super) fn link(file: &std::fs::File, target: &Path) -> std::io::Result<()> {
        let source = format!("/proc/self/fd/{}", file.as_raw_fd());
        rustix::fs::linkat(CWD, source.as_str(), CWD, target, AtFlags::SYMLINK_FOLLOW)?;
        Ok(())
    }

    /// Succeeds if unnamed files can be made and named in `dir`.
    pub(super) fn probe(dir: &Path) -> std::io::Result<()> {
        let file = create(dir, false)?;
        let name = dir.join("unnamed-probe");
        link(&file, &name)?;
        std::fs::remove_file(name)
    }
}

/// Elsewhere staging files are always named.
#[cfg(not(target_os = "linux"))]
mod unnamed {
    use std::path::Path;

    fn unsupported() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "unnamed files need Linux's O_TMPFILE",
        )
    }

    pub(super) fn create(_dir: &Path, _direct: bool) -> std::io::Result<std::fs::File> {
        Err(unsupported())
    }

    pub(super) fn link(_file: &std::fs::File, _target: &Path) -> std::io::Result<()> {
        Err(unsupported())
    }

    pub(super) fn probe(_dir: &Path) -> std::io::Result<()> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::FILE_CHUNK_BYTES;

    async fn collect(stream: ByteStream) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn write_commit_read_range_delete() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FilesystemBackend::open("local", dir.path()).await.unwrap();
        let mut writer = backend.begin_write().await.unwrap();
        writer.write(Bytes::from_static(b"hello ")).await.unwrap();
        writer.write(Bytes::from_static(b"world")).await.unwrap();
        writer.commit("blake3/aa/bb/object").await.unwrap();
        assert_eq!(backend.size("blake3/aa/bb/object").await.unwrap(), Some(11));
        let all = collect(backend.open("blake3/aa/bb/object", None).await.unwrap()).await;
        assert_eq!(all, b"hello world");
        let part = collect(
            backend
                .open("blake3/aa/bb/object", Some(6..11))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(part, b"world");
        assert!(matches!(
            backend.open("blake3/aa/bb/object", Some(5..12)).await,
            Err(StorageError::RangeNotSatisfiable { size: 11, .. })
        ));
        backend.delete("blake3/aa/bb/object").await.unwrap();
        assert_eq!(backend.size("blake3/aa/bb/object").await.unwrap(), None);
        assert!(matches!(
            backend.open("blake3/aa/bb/object", None).await,
            Err(StorageError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn large_objects_flush_in_the_background_and_keep_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let backend = through_the_page_cache(dir.path()).await;
        let bytes: Vec<u8> = (0..BACKGROUND_FLUSH_BYTES * 3 + 12_345)
            .map(|i| (i % 253) as u8)
            .collect();
        let mut writer = Box::new(backend.writer());
        let mut flushes = 0;
        for piece in bytes.chunks(256 * 1024) {
            let before = writer.unflushed_bytes;
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
            if writer.unflushed_bytes < before {
                flushes += 1;
                assert!(writer.flushing.is_some());
            }
        }
        // A flush starts at each 32 MiB unless the last one is still busy.
        assert!((1..=3).contains(&flushes), "{flushes} background flushes");
        writer.commit("blake3/ee/ff/object").await.unwrap();
        let back = collect(backend.open("blake3/ee/ff/object", None).await.unwrap()).await;
        assert!(back == bytes, "the object differs from what was written");
    }

    #[tokio::test]
    async fn reads_span_chunks_in_bounded_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FilesystemBackend::open("local", dir.path()).await.unwrap();
        let bytes: Vec<u8> = (0..FILE_CHUNK_BYTES * 5 / 2)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut writer = backend.begin_write().await.unwrap();
        writer.write(Bytes::from(bytes.clone())).await.unwrap();
        writer.commit("blake3/cc/dd/object").await.unwrap();

        let mut sizes = Vec::new();
        let mut all = Vec::new();
        let mut stream = backend.open("blake3/cc/dd/object", None).await.unwrap();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            sizes.push(chunk.len());
            all.extend_from_slice(&chunk);
        }
        assert_eq!(all, bytes);
        assert_eq!(
            sizes,
            [FILE_CHUNK_BYTES, FILE_CHUNK_BYTES, FILE_CHUNK_BYTES / 2]
        );

        let across = FILE_CHUNK_BYTES as u64 - 3..2 * FILE_CHUNK_BYTES as u64 + 5;
        let part = collect(
            backend
                .open("blake3/cc/dd/object", Some(across.clone()))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(part, bytes[across.start as usize..across.end as usize]);
        let empty = collect(
            backend
                .open("blake3/cc/dd/object", Some(7..7))
                .await
                .unwrap(),
        )
        .await;
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn abort_and_drop_leave_nothing_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FilesystemBackend::open("local", dir.path()).await.unwrap();
        let mut writer = backend.begin_write().await.unwrap();
        writer.write(Bytes::from_static(b"x")).await.unwrap();
        writer.abort().await.unwrap();
        let mut dropped = backend.begin_write().await.unwrap();
        dropped.write(Bytes::from_static(b"y")).await.unwrap();
        drop(dropped);
        assert_eq!(staging_leftovers(&backend), 0);
        for bad in ["../x", "a/../../b", "/etc/passwd", ".staging/x", "a//b", ""] {
            assert!(backend.path_of(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_dead_writers_staging_is_removed_and_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let live = FilesystemBackend::open("local", dir.path()).await.unwrap();
        let mut in_flight = live.begin_write().await.unwrap();
        in_flight
            .write(Bytes::from_static(b"still coming"))
            .await
            .unwrap();
        // A crashed process's directory: its lock file is not held.
        let dead = dir.path().join(STAGING_DIR).join("deadbeef");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join(LOCK_FILE), b"").unwrap();
        std::fs::write(dead.join("x.part"), b"half").unwrap();
        let next = FilesystemBackend::open("local", dir.path()).await.unwrap();
        assert!(!dead.exists(), "the dead writer's leftovers are removed");
        assert!(
            live.staging.dir.exists(),
            "the live writer's staging is kept"
        );
        in_flight.commit("blake3/aa/bb/live").await.unwrap();
        assert_eq!(next.size("blake3/aa/bb/live").await.unwrap(), Some(12));
        let live_dir = live.staging.dir.clone();
        drop(live);
        assert!(
            !live_dir.exists(),
            "a backend dropped cleanly removes its staging"
        );
    }

    /// A backend that writes every object through the page cache, as
    /// where the filesystem refuses direct I/O.
    async fn through_the_page_cache(root: &Path) -> FilesystemBackend {
        let mut backend = FilesystemBackend::open("local", root).await.unwrap();
        Arc::get_mut(&mut backend.staging).unwrap().direct = None;
        backend
    }

    /// A backend whose staging files are named, as where `O_TMPFILE` is
    /// missing.
    async fn named_staging(root: &Path) -> FilesystemBackend {
        let mut backend = FilesystemBackend::open("local", root).await.unwrap();
        Arc::get_mut(&mut backend.staging).unwrap().unnamed = false;
        backend
    }

    fn staging_leftovers(backend: &FilesystemBackend) -> usize {
        std::fs::read_dir(&backend.staging.dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != LOCK_FILE)
            .count()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn linux_stages_in_unnamed_files() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FilesystemBackend::open("local", dir.path()).await.unwrap();
        assert!(
            backend.staging.unnamed,
            "O_TMPFILE works on this filesystem"
        );
    }

    #[tokio::test]
    async fn large_objects_go_direct_where_the_filesystem_allows_and_small_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FilesystemBackend::open("local", dir.path()).await.unwrap();
        if backend.staging.direct.is_none() {
            assert!(
                !artifactstore_core::flag::in_ci(),
                "direct I/O works on CI's disk (ext4)"
            );
            eprintln!("skipped: no direct I/O in {}", dir.path().display());
            return;
        }
        let bytes: Vec<u8> = (0..3 * WRITE_BATCH_BYTES + 4_321)
            .map(|i| (i % 247) as u8)
            .collect();
        let mut writer = Box::new(backend.writer());
        writer.write(Bytes::from_static(b"small")).await.unwrap();
        assert!(writer.direct.is_none(), "a small object stays buffered");
        for piece in bytes[5..].chunks(300_007) {
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        let mut expected = b"small".to_vec();
        expected.extend_from_slice(&bytes[5..]);
        assert!(writer.direct.is_some(), "a large one is written directly");
        assert!(writer.file.is_none() && writer.buffered.is_empty());
        writer.commit("blake3/dd/ee/direct").await.unwrap();
        let back = collect(backend.open("blake3/dd/ee/direct", None).await.unwrap()).await;
        assert!(back == expected, "the object differs from what was written");
    }

    #[tokio::test]
    async fn both_staging_kinds_commit_keep_existing_objects_and_clean_up() {
        let more_than_a_batch = Bytes::from(vec![7u8; WRITE_BATCH_BYTES + 10]);
        for named in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let backend = if named {
                named_staging(dir.path()).await
            } else {
                FilesystemBackend::open("local", dir.path()).await.unwrap()
            };
            // Large enough to reach the staging file before commit.
            let mut writer = backend.begin_write().await.unwrap();
            writer.write(more_than_a_batch.clone()).await.unwrap();
            writer.commit("blake3/cc/dd/big").await.unwrap();
            let stored = collect(backend.open("blake3/cc/dd/big", None).await.unwrap()).await;
            assert_eq!(stored, more_than_a_batch, "named staging: {named}");
            // The same key again keeps the object already there.
            let mut again = backend.begin_write().await.unwrap();
            again.write(Bytes::from_static(b"other")).await.unwrap();
            again.commit("blake3/cc/dd/big").await.unwrap();
            assert_eq!(
                backend.size("blake3/cc/dd/big").await.unwrap(),
                Some(more_than_a_batch.len() as u64)
            );
            // Aborted and dropped after their bytes reached the disk.
            let mut aborted = backend.begin_write().await.unwrap();
            aborted.write(more_than_a_batch.clone()).await.unwrap();
            aborted.abort().await.unwrap();
            let mut dropped = backend.begin_write().await.unwrap();
            dropped.write(more_than_a_batch.clone()).await.unwrap();
            drop(dropped);
            assert_eq!(staging_leftovers(&backend), 0, "named staging: {named}");
            let objects: Vec<_> = std::fs::read_dir(dir.path().join("blake3/cc/dd"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(objects, ["big"], "named staging: {named}");
        }
    }
}
