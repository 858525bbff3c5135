//! Byte backends behind one trait: the local filesystem and S3-compatible
//! stores (Ceph RGW, Garage, MinIO, AWS S3).
//!
//! The contract every backend keeps:
//! - an object becomes visible under its key only complete and durable
//!   ([`ObjectWriter::commit`] returns after the bytes survive a crash);
//! - keys come from content addresses, so an object under a key never
//!   changes, and committing bytes whose key already exists is a no-op;
//! - an aborted or dropped writer leaves nothing visible.

mod file_chunks;
mod filesystem;
mod s3;

use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use file_chunks::{file_chunks, FILE_CHUNK_BYTES};
pub use filesystem::{FilesystemBackend, FILESYSTEM_SMALLEST_PART_BYTES};
pub use s3::{S3Backend, S3Settings, DEFAULT_STALL_TIMEOUT, MAX_PARTS, S3_SMALLEST_PART_BYTES};

/// A stream of object bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// What went wrong in a backend. Backend-specific causes are flattened into
/// these shared cases so nothing above this crate sees a backend's types.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No object under that key.
    #[error("object {0} not found")]
    NotFound(String),
    /// The requested range lies outside the object.
    #[error("range {start}..{end} is outside the object of {size} bytes")]
    RangeNotSatisfiable {
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// Object size.
        size: u64,
    },
    /// The backend has no room left.
    #[error("storage backend {backend} is full")]
    Full {
        /// Backend id.
        backend: String,
    },
    /// The backend cannot be reached or refuses to work.
    #[error("storage backend {backend} is unavailable: {cause}")]
    Unavailable {
        /// Backend id.
        backend: String,
        /// Internal cause (logged, never sent to clients).
        cause: String,
    },
    /// The backend refuses the operation for good (credentials, policy,
    /// an unsupported feature): retrying will not help.
    #[error("storage backend {backend} refused the operation: {cause}")]
    Refused {
        /// Backend id.
        backend: String,
        /// Internal cause (logged, never sent to clients).
        cause: String,
    },
    /// Any other IO failure.
    #[error("storage backend {backend} failed: {source}")]
    Io {
        /// Backend id.
        backend: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// Classifies an IO error of backend `backend`.
    pub fn from_io(backend: &str, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Self::Full {
                backend: backend.to_owned(),
            },
            _ => Self::Io {
                backend: backend.to_owned(),
                source,
            },
        }
    }
}

/// A byte backend.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The configured id.
    fn id(&self) -> &str;

    /// Starts a new object; its key is given at commit, once the bytes
    /// (and so their content address) are known.
    async fn begin_write(&self) -> Result<Box<dyn ObjectWriter>, StorageError>;

    /// Starts a new object whose key the client declared up front (from a
    /// BLAKE3 it sent). A backend may write straight to that key, saving a
    /// copy, but must make the object visible only if [`ObjectWriter::commit`]
    /// confirms the same key. By default the bytes are written as by
    /// [`Backend::begin_write`] and a commit under another key is refused.
    async fn begin_write_expecting(
        &self,
        expected_key: &str,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        Ok(Box::new(DeclaredKey {
            inner: self.begin_write().await?,
            backend: self.id().to_owned(),
            expected_key: expected_key.to_owned(),
        }))
    }

    /// Reads an object, or the byte range of it.
    async fn open(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError>;

    /// The size of an object, `None` when absent.
    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError>;

    /// Removes an object (absent is fine).
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Checks that the backend can serve: reachable and writable.
    async fn probe(&self) -> Result<(), StorageError>;

    /// Every object the collector may consider: the content-addressed
    /// objects and any staging leftovers the backend keeps as objects
    /// (their keys do not start with [`CONTENT_KEY_PREFIX`]). Objects
    /// being written are not listed until committed.
    async fn list(&self) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Writes a small object whole under a fixed key, replacing what was
    /// there, durably before it returns: the log's anchor
    /// ([`LOG_ANCHOR_KEY`]), outside the content-addressed space, which
    /// the collector never lists.
    async fn replace_small(&self, key: &str, bytes: Bytes) -> Result<(), StorageError>;

    /// Removes what writers that are gone left behind outside the object
    /// space (a filesystem's staging files of dead processes); returns
    /// how many. Backends without such leftovers have nothing to do.
    async fn remove_dead_staging(&self) -> Result<u64, StorageError> {
        Ok(0)
    }

    /// How this backend keeps a resumable upload's bytes between requests,
    /// or `None` if it cannot.
    fn resumable(&self) -> Option<&dyn ResumableStaging> {
        None
    }
}

/// The bytes of a resumable upload while they arrive: over many requests,
/// through processes that stop and replicas that share the backend.
///
/// Bytes come as whole *parts* of one size (the caller's, a power of two),
/// numbered from 0, and after the last whole part a *tail* shorter than a
/// part, which may be rewritten and read back as it grows. The caller keeps
/// the handle and the part receipts durably, and makes one call at a time
/// per upload (but for [`ResumableStaging::drop_tail`] of a tail that no
/// saved progress names any more, which may overlap the next request's
/// calls). Nothing staged is visible as an object until
/// [`ResumableStaging::commit`]; nothing staged is listed by
/// [`Backend::list`], so the collector never sees it.
#[async_trait]
pub trait ResumableStaging: Send + Sync {
    /// Starts staging upload `upload_id` (a server-made UUID); returns the
    /// handle. With `expected_key` (from a declared BLAKE3) the bytes may
    /// go straight to that key, saving a copy at commit.
    async fn start(
        &self,
        upload_id: &str,
        expected_key: Option<&str>,
    ) -> Result<String, StorageError>;

    /// The smallest part this staging takes, a power of two: an upload's
    /// parts are this size or a larger power of two.
    fn smallest_part_bytes(&self) -> u64;

    /// Stores whole part `index` (of `part_bytes`); returns the receipt to
    /// give back at commit. Storing a part again replaces it. The part is
    /// durable once [`ResumableStaging::settle`] (or `put_tail`) returns,
    /// so many parts can share one flush.
    async fn put_part(
        &self,
        handle: &str,
        index: u64,
        part_bytes: u64,
        part: Vec<Bytes>,
    ) -> Result<String, StorageError>;

    /// Stores the tail (the bytes from `offset`, the end of the whole
    /// parts); it and every part stored before it are durable when this
    /// returns. It replaces a tail stored from the same `offset` (whose
    /// bytes it begins with), never one stored from another: until the
    /// caller's progress names this tail, a crash may leave the progress
    /// saved before it, whose tail must still read back as it was.
    async fn put_tail(
        &self,
        handle: &str,
        offset: u64,
        tail: Vec<Bytes>,
    ) -> Result<(), StorageError>;

    /// Removes the tail stored from `offset`, once the caller's saved
    /// progress no longer names it. Where a tail lives at its offset of
    /// one staged file (the filesystem), a later part or tail has taken
    /// its place with the same bytes, and there is nothing to do.
    async fn drop_tail(&self, _handle: &str, _offset: u64) -> Result<(), StorageError> {
        Ok(())
    }

    /// Makes every part stored so far durable. Where each part is durable
    /// as it is stored (S3: a finished UploadPart), there is nothing to do.
    async fn settle(&self, _handle: &str) -> Result<(), StorageError> {
        Ok(())
    }

    /// Whether [`ResumableStaging::read_parts`] reads whole parts back
    /// before commit (the filesystem, whose parts lie in one staged file).
    /// Where it does, a caller may save progress before it has hashed the
    /// last parts, and hash them again from here if it must.
    fn reads_back_parts(&self) -> bool {
        false
    }

    /// `len` bytes of the whole parts stored, from `offset` (parts that
    /// are durable: settled, or stored before a tail). Only where
    /// [`ResumableStaging::reads_back_parts`]; S3 cannot read a multipart
    /// upload's parts before it completes.
    async fn read_parts(&self, handle: &str, offset: u64, len: u64) -> Result<Bytes, StorageError>;

    /// The first `len` bytes of the tail stored from `offset`.
    async fn read_tail(
        &self,
        handle: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<Bytes>, StorageError>;

    /// Makes the parts (by their receipts, in order) and then `tail` (the
    /// bytes from `offset`) the object `key`, durable and visible, and
    /// removes what was staged (every tail included). If `key` exists
    /// already (same bytes), it is kept.
    async fn commit(
        &self,
        handle: &str,
        receipts: &[String],
        offset: u64,
        tail: Vec<Bytes>,
        key: &str,
    ) -> Result<(), StorageError>;

    /// Removes everything staged (a removed or unknown handle is fine).
    async fn abort(&self, handle: &str) -> Result<(), StorageError>;
}

/// The first segment of every content-addressed object key
/// (`blake3/ab/cd/abcd…`).
pub const CONTENT_KEY_PREFIX: &str = "blake3/";

/// Where every backend keeps the latest signed checkpoint of the log: an
/// anchor outside the database (docs/security.md).
pub const LOG_ANCHOR_KEY: &str = "log/checkpoint";

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size.
    pub size_bytes: u64,
    /// When it was last written.
    pub modified: std::time::SystemTime,
}

/// The refusal when bytes are committed under a key other than declared.
pub(crate) fn undeclared_key(backend: &str, key: &str) -> StorageError {
    StorageError::Refused {
        backend: backend.to_owned(),
        cause: format!("bytes committed as {key} were declared as another object"),
    }
}

/// A writer that only commits under the key declared when it began.
struct DeclaredKey {
    inner: Box<dyn ObjectWriter>,
    backend: String,
    expected_key: String,
}

#[async_trait]
impl ObjectWriter for DeclaredKey {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.inner.write(chunk).await
    }

    async fn commit(self: Box<Self>, key: &str) -> Result<(), StorageError> {
        if key != self.expected_key {
            let _ = self.inner.abort().await;
            return Err(undeclared_key(&self.backend, key));
        }
        self.inner.commit(key).await
    }

    async fn abort(self: Box<Self>) -> Result<(), StorageError> {
        self.inner.abort().await
    }
}

/// An object being written.
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError>;

    /// Makes the bytes durable and visible under `key`.
    async fn commit(self: Box<Self>, key: &str) -> Result<(), StorageError>;

    /// Discards everything written.
    async fn abort(self: Box<Self>) -> Result<(), StorageError>;
}
