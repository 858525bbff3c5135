//! Streaming ingest: bytes flow once from the client stream to the backend
//! while two threads hash them (BLAKE3 and SHA-256 side by side), in bounded
//! memory. The bytes are durable before the event commits (DESIGN.md
//! invariant 3): a failure in between leaves at most an unreferenced object.

use artifactstore_core::digest::{Blake3Hasher, Sha256Hasher};
use artifactstore_core::event::{subjects, types, FileIngested};
use artifactstore_core::{Digest32, FileDigests, NewEvent, RelativePath};
use artifactstore_storage::{Backend, ObjectWriter};
use artifactstore_store::records::status;
use artifactstore_store::{FileRecord, StoreError};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::operations::label;
use crate::{Registry, RegistryError, RegistryResult};

/// Chunks in flight to each hasher; with the client's chunk size this bounds
/// the memory an ingest holds.
const HASH_QUEUE: usize = 16;

/// Digests a client declared for an upload; a mismatch rejects the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpectedDigests {
    /// From `Content-Digest: sha-256=:…:`.
    pub sha256: Option<Digest32>,
    /// From `X-Content-Blake3`.
    pub blake3: Option<Digest32>,
}

impl ExpectedDigests {
    fn check(&self, actual: &FileDigests) -> RegistryResult<()> {
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
        let package = self
            .store
            .package(&package_id)
            .await?
            .ok_or_else(|| RegistryError::PackageNotFound(package_id.clone()))?;
        if package.status != status::CREATED {
            return Err(illegal(&package_id, &package.status));
        }
        if self
            .store
            .file_by_path(&package_id, path.as_str())
            .await?
            .is_some()
        {
            return Err(RegistryError::DuplicateRelativePath(path.to_string()));
        }
        let backend_id = self
            .route(&package.producer, &package.retention_class)
            .to_owned();
        let backend = self.backend(&backend_id)?.clone();
        let digests = store_stream(
            backend.as_ref(),
            body,
            &expected,
            self.limits.max_file_bytes,
        )
        .await?;
        let object_key = digests.content_address().object_key();

        let file_id = Uuid::new_v4().to_string();
        let ingested = FileIngested {
            v: 1,
            file_id: file_id.clone(),
            package_id: package_id.clone(),
            relative_path: path.to_string(),
            media_type: media_type.to_owned(),
            size_bytes: digests.size_bytes,
            blake3: digests.blake3.to_hex(),
            sha256: digests.sha256.to_hex(),
            storage_location_id: Uuid::new_v4().to_string(),
            backend_id,
            object_key,
            retrieval_tier: "hot".to_owned(),
        };
        let mut tx = self.store.begin().await?;
        match tx.package(&package_id).await? {
            Some(p) if p.status == status::CREATED => {}
            Some(p) => return Err(illegal(&package_id, &p.status)),
            None => return Err(RegistryError::PackageNotFound(package_id)),
        }
        if tx.file_count(&package_id).await? >= self.limits.max_files_per_package {
            return Err(RegistryError::TooManyFiles(
                self.limits.max_files_per_package,
            ));
        }
        let event = NewEvent::new(
            types::FILE_INGESTED,
            subjects::PACKAGE,
            &package_id,
            actor,
            &ingested,
        )?;
        tx.append(event).await?;
        // The append reaches the database with this read, and so does a
        // concurrent upload's path taken first.
        let file = match tx.file_by_path(&package_id, path.as_str()).await {
            Err(StoreError::DuplicateRelativePath) => {
                return Err(RegistryError::DuplicateRelativePath(path.to_string()))
            }
            other => other?,
        };
        tx.commit().await?;
        file.ok_or_else(|| RegistryError::Internal("ingested file has no view row".into()))
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
    let mut writer = backend.begin_write().await?;
    match pump(writer.as_mut(), body, max_bytes).await {
        Ok(digests) => {
            if let Err(e) = expected.check(&digests) {
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

async fn pump<S, E>(
    writer: &mut dyn ObjectWriter,
    body: S,
    max_bytes: u64,
) -> RegistryResult<FileDigests>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let (blake3_tx, mut blake3_rx) = mpsc::channel::<Bytes>(HASH_QUEUE);
    let (sha256_tx, mut sha256_rx) = mpsc::channel::<Bytes>(HASH_QUEUE);
    let blake3_task = tokio::task::spawn_blocking(move || {
        let mut hasher = Blake3Hasher::default();
        while let Some(chunk) = blake3_rx.blocking_recv() {
            hasher.update(&chunk);
        }
        hasher.finalize()
    });
    let sha256_task = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256Hasher::default();
        while let Some(chunk) = sha256_rx.blocking_recv() {
            hasher.update(&chunk);
        }
        hasher.finalize()
    });
    let hasher_gone = || RegistryError::Internal("hashing thread stopped".into());
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
        blake3_tx
            .send(chunk.clone())
            .await
            .map_err(|_| hasher_gone())?;
        sha256_tx
            .send(chunk.clone())
            .await
            .map_err(|_| hasher_gone())?;
        writer.write(chunk).await?;
    }
    drop((blake3_tx, sha256_tx));
    let blake3 = blake3_task.await.map_err(|_| hasher_gone())?;
    let sha256 = sha256_task.await.map_err(|_| hasher_gone())?;
    Ok(FileDigests {
        size_bytes,
        blake3,
        sha256,
    })
}
