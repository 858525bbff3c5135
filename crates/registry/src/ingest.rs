//! Streaming ingest: bytes flow once from the client stream to the backend
//! while they are hashed (a small file on the request's task, a large one
//! on two threads, BLAKE3 and SHA-256 side by side), in bounded memory.
//! The bytes are durable before the event commits (DESIGN.md invariant 3):
//! a failure in between leaves at most an unreferenced object.

use std::sync::Arc;

use artifactstore_core::digest::{Blake3Hasher, Sha256Hasher};
use artifactstore_core::event::FileIngested;
use artifactstore_core::id::new_id;
use artifactstore_core::path::collision_key;
use artifactstore_core::{ContentAddress, Digest32, FileDigests, RelativePath};
use artifactstore_storage::{Backend, ObjectWriter};
use artifactstore_store::records::status;
use artifactstore_store::FileRecord;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest as _, Sha512};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::file_commits::path_conflict;
use crate::operations::label;
use crate::{Registry, RegistryError, RegistryResult};

/// Batches in flight to each hasher; with [`HASH_BATCH_BYTES`] this bounds
/// the memory an ingest holds.
pub(crate) const HASH_QUEUE: usize = 8;
/// Bytes handed to the hashing threads at once: one wake-up per batch, not
/// per socket read.
pub(crate) const HASH_BATCH_BYTES: usize = 512 * 1024;

/// Digests a client declared for an upload; a mismatch rejects the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpectedDigests {
    /// From `Content-Digest: sha-256=:…:`.
    pub sha256: Option<Digest32>,
    /// From `X-Content-Blake3`.
    pub blake3: Option<Digest32>,
    /// From `Content-Digest: sha-512=:…:`. Not recorded: the bytes are
    /// hashed with SHA-512 only when a client sends one, to check it.
    pub sha512: Option<[u8; 64]>,
}

impl ExpectedDigests {
    fn check_sha512(&self, actual: Option<[u8; 64]>) -> RegistryResult<()> {
        match (self.sha512, actual) {
            (Some(expected), Some(got)) if expected != got => Err(RegistryError::DigestMismatch {
                algorithm: "sha-512",
                expected: hex::encode(expected),
                actual: hex::encode(got),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn check(&self, actual: &FileDigests) -> RegistryResult<()> {
        for (algorithm, expected, got) in [
            ("sha-256", self.sha256, actual.sha256),
            ("blake3", self.blake3, actual.blake3),
        ] {
            if let Some(expected) = expected {
                if expected != got {
                    return Err(RegistryError::DigestMismatch {
                        algorithm,
                        expected: expected.to_hex(),
                        actual: got.to_hex(),
                    });
                }
            }
        }
        Ok(())
    }
}

fn illegal(package_id: &str, status: &str) -> RegistryError {
    RegistryError::IllegalPackageState {
        package_id: package_id.to_owned(),
        status: status.to_owned(),
        operation: "add files to it",
    }
}

impl Registry {
    /// Streams a file into a package. The package must be `created` and the
    /// path free; both are checked before the bytes flow and again under the
    /// log lock, with a unique constraint behind them.
    pub async fn ingest_file<S, E>(
        &self,
        package_id: Uuid,
        relative_path: &str,
        media_type: &str,
        body: S,
        expected: ExpectedDigests,
        actor: &str,
    ) -> RegistryResult<FileRecord>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let path = RelativePath::parse(relative_path)?;
        label("media type", media_type)?;
        let package_id = package_id.to_string();
        let key = collision_key(path.as_str());
        let (slot, conflict) = self
            .file_checks
            .check(&package_id, path.as_str(), &key)
            .await?
            .ok_or_else(|| RegistryError::PackageNotFound(package_id.clone()))?;
        if slot.status != status::CREATED {
            return Err(illegal(&package_id, &slot.status));
        }
        if slot.path_taken {
            return Err(RegistryError::DuplicateRelativePath(path.to_string()));
        }
        if slot.file_count >= self.limits.max_files_per_package {
            return Err(RegistryError::TooManyFiles(
                self.limits.max_files_per_package,
            ));
        }
        if let Some(existing) = conflict {
            return Err(path_conflict(path.as_str(), &existing));
        }
        let backend_id = self.route(&slot.producer, &slot.retention_class).to_owned();
        let backend = self.backend(&backend_id)?.clone();
        let digests = store_stream(
            backend.as_ref(),
            body,
            &expected,
            self.limits.max_file_bytes,
        )
        .await?;
        let object_key = digests.content_address().object_key();

        let file_id = new_id().to_string();
        let ingested = FileIngested {
            v: 1,
            file_id: file_id.clone(),
            package_id: package_id.clone(),
            relative_path: path.to_string(),
            media_type: media_type.to_owned(),
            size_bytes: digests.size_bytes,
            blake3: digests.blake3.to_hex(),
            sha256: digests.sha256.to_hex(),
            storage_location_id: new_id().to_string(),
            backend_id,
            object_key,
            retrieval_tier: "hot".to_owned(),
        };
        // Checked again under the head lock, with the other files of its
        // group (see file_commits.rs).
        self.file_commits
            .record(ingested, actor, slot.head_sequence, None)
            .await
    }
}

/// Writes `body` to `backend` under its content address, hashing as it
/// goes; returns once the object is durable. Nothing is left visible on
/// any failure.
async fn store_stream<S, E>(
    backend: &dyn Backend,
    body: S,
    expected: &ExpectedDigests,
    max_bytes: u64,
) -> RegistryResult<FileDigests>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut writer = match expected.blake3 {
        Some(blake3) => {
            backend
                .begin_write_expecting(&ContentAddress(blake3).object_key())
                .await?
        }
        None => backend.begin_write().await?,
    };
    let mut sha512 = expected.sha512.map(|_| Sha512::new());
    match pump(writer.as_mut(), body, max_bytes, sha512.as_mut()).await {
        Ok(digests) => {
            let sha512 = sha512.map(|hasher| <[u8; 64]>::from(hasher.finalize()));
            if let Err(e) = expected
                .check(&digests)
                .and_then(|()| expected.check_sha512(sha512))
            {
                let _ = writer.abort().await;
                return Err(e);
            }
            writer
                .commit(&digests.content_address().object_key())
                .await?;
            Ok(digests)
        }
        Err(e) => {
            if let Err(abort_error) = writer.abort().await {
                tracing::warn!(error = %abort_error, "aborting a failed upload failed");
            }
            Err(e)
        }
    }
}

/// Bytes hashed on the request's own task before hashing moves to two
/// threads: for a small file two thread handoffs cost more than the
/// hashing itself.
const INLINE_HASH_BYTES: u64 = 64 * 1024;

/// The two digests of the bytes so far: computed inline at first, on two
/// threads (BLAKE3 and SHA-256 side by side) once the file is large.
enum Hashing {
    Inline(Box<Blake3Hasher>, Sha256Hasher),
    Threads {
        batch: Vec<Bytes>,
        batch_bytes: usize,
        blake3: mpsc::Sender<Arc<Vec<Bytes>>>,
        sha256: mpsc::Sender<Arc<Vec<Bytes>>>,
        blake3_task: tokio::task::JoinHandle<Digest32>,
        sha256_task: tokio::task::JoinHandle<Digest32>,
    },
}

fn hasher_gone() -> RegistryError {
    RegistryError::Internal("hashing thread stopped".into())
}

impl Hashing {
    /// Moves each hasher, with the state it has, onto its own thread.
    fn to_threads(blake3: Blake3Hasher, sha256: Sha256Hasher) -> Self {
        fn spawn<H: Send + 'static>(
            mut hasher: H,
            update: fn(&mut H, &[u8]),
            finalize: fn(H) -> Digest32,
        ) -> (
            mpsc::Sender<Arc<Vec<Bytes>>>,
            tokio::task::JoinHandle<Digest32>,
        ) {
            let (tx, mut rx) = mpsc::channel::<Arc<Vec<Bytes>>>(HASH_QUEUE);
            let task = tokio::task::spawn_blocking(move || {
                while let Some(batch) = rx.blocking_recv() {
                    for chunk in batch.iter() {
                        update(&mut hasher, chunk);
                    }
                }
                finalize(hasher)
            });
            (tx, task)
        }
        let (blake3, blake3_task) = spawn(blake3, Blake3Hasher::update, |h| h.finalize());
        let (sha256, sha256_task) = spawn(sha256, Sha256Hasher::update, Sha256Hasher::finalize);
        Hashing::Threads {
            batch: Vec::new(),
            batch_bytes: 0,
            blake3,
            sha256,
            blake3_task,
            sha256_task,
        }
    }

    /// Hands the gathered chunks to both threads.
    async fn send_batch(&mut self) -> RegistryResult<()> {
        if let Hashing::Threads {
            batch,
            batch_bytes,
            blake3,
            sha256,
            ..
        } = self
        {
            if batch.is_empty() {
                return Ok(());
            }
            let shared = Arc::new(std::mem::take(batch));
            *batch_bytes = 0;
            blake3
                .send(shared.clone())
                .await
                .map_err(|_| hasher_gone())?;
            sha256.send(shared).await.map_err(|_| hasher_gone())?;
        }
        Ok(())
    }

    async fn update(&mut self, chunk: &Bytes, size_so_far: u64) -> RegistryResult<()> {
        if let Hashing::Inline(blake3, sha256) = self {
            if size_so_far <= INLINE_HASH_BYTES {
                blake3.update(chunk);
                sha256.update(chunk);
                return Ok(());
            }
            let (blake3, sha256) = (std::mem::take(blake3), std::mem::take(sha256));
            *self = Hashing::to_threads(*blake3, sha256);
        }
        if let Hashing::Threads {
            batch, batch_bytes, ..
        } = self
        {
            batch.push(chunk.clone());
            *batch_bytes += chunk.len();
            if *batch_bytes >= HASH_BATCH_BYTES {
                self.send_batch().await?;
            }
        }
        Ok(())
    }

    async fn finalize(mut self) -> RegistryResult<(Digest32, Digest32)> {
        self.send_batch().await?;
        match self {
            Hashing::Inline(blake3, sha256) => Ok((blake3.finalize(), sha256.finalize())),
            Hashing::Threads {
                blake3,
                sha256,
                blake3_task,
                sha256_task,
                ..
            } => {
                drop((blake3, sha256));
                let blake3 = blake3_task.await.map_err(|_| hasher_gone())?;
                let sha256 = sha256_task.await.map_err(|_| hasher_gone())?;
                Ok((blake3, sha256))
            }
        }
    }
}

/// Streams `body` into `writer`, hashing it with BLAKE3 and SHA-256 (and
/// with SHA-512 into `sha512` when the client sent one to check: inline,
/// since it is rare and the two main digests keep their threads).
async fn pump<S, E>(
    writer: &mut dyn ObjectWriter,
    body: S,
    max_bytes: u64,
    mut sha512: Option<&mut Sha512>,
) -> RegistryResult<FileDigests>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut hashing = Hashing::Inline(Box::default(), Sha256Hasher::default());
    let mut size_bytes = 0u64;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| RegistryError::UploadInterrupted(e.to_string()))?;
        if chunk.is_empty() {
            continue;
        }
        size_bytes += chunk.len() as u64;
        if size_bytes > max_bytes {
            return Err(RegistryError::PayloadTooLarge {
                what: "the file",
                limit: max_bytes,
            });
        }
        hashing.update(&chunk, size_bytes).await?;
        if let Some(sha512) = sha512.as_deref_mut() {
            sha512.update(&chunk);
        }
        writer.write(chunk).await?;
    }
    let (blake3, sha256) = hashing.finalize().await?;
    Ok(FileDigests {
        size_bytes,
        blake3,
        sha256,
    })
}
