//! An S3-compatible backend (Ceph RGW, Garage, MinIO, AWS S3) over the
//! `object_store` crate.
//!
//! The content address, and so the key, is known only after the last byte.
//! Small objects are buffered (at most [`SINGLE_PUT_LIMIT`]) and written
//! with one PUT under their final key. Larger ones stream as a multipart
//! upload. When the client declared the BLAKE3 (the CLI always does), the
//! upload goes to the final key and is completed only if the bytes match;
//! a multipart upload is invisible until completed, so nothing unverified
//! ever shows. Otherwise it goes to a server-made staging key and is copied
//! to its final key on commit (one CopyObject, which AWS and MinIO cap at
//! 5 GiB), and the staging object is deleted. Conditional PUT is not
//! relied on (Garage ignores it): a HEAD first skips bytes already stored,
//! and overwriting identical bytes under a content address is harmless.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig, WriteMultipart,
};

use crate::{Backend, ByteStream, ObjectInfo, ObjectWriter, StorageError};

/// Objects up to this size go up in one PUT.
pub const SINGLE_PUT_LIMIT: usize = 8 * 1024 * 1024;
/// Multipart part size.
const PART_BYTES: usize = 16 * 1024 * 1024;
/// Parts in flight at once: with [`PART_BYTES`] this bounds an upload's
/// memory at about 64 MiB plus one buffered part.
const PARTS_IN_FLIGHT: usize = 3;
const STAGING_PREFIX: &str = "staging";
/// How long one request may wait on the store by default; see
/// [`S3Settings::stall_timeout`].
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts after the first for one request that is safe to repeat (a
/// part, a completion, a HEAD); a download's retries are shared by all of
/// its resumptions.
const MAX_RETRIES: usize = 3;

/// Where and how to reach the bucket.
#[derive(Clone)]
pub struct S3Settings {
    /// Backend id.
    pub id: String,
    /// Endpoint URL; `None` for AWS.
    pub endpoint: Option<String>,
    /// Region (any value for most self-hosted stores).
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// Path-style URLs (Ceph RGW, Garage, MinIO).
    pub path_style: bool,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    /// How long a request may go without an answer from the store (for a
    /// part upload: sending the part and getting its response), and a
    /// download without receiving bytes, before it is abandoned and
    /// retried. There is no cap on a whole request: a large download to a
    /// slow client may rightly take hours. A client that stops reading for
    /// longer than this costs its download one retry (it resumes with a
    /// ranged GET).
    pub stall_timeout: Duration,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("prefix", &self.prefix)
            .field("stall_timeout", &self.stall_timeout)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// Objects in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Backend {
    id: String,
    prefix: String,
    store: Arc<AmazonS3>,
    /// What UploadPartCopy needs, which `object_store` does not offer.
    part_copy: Arc<PartCopy>,
}

/// Signed requests of our own for UploadPartCopy, over `object_store`'s
/// HTTP client and SigV4 signer.
#[derive(Debug)]
struct PartCopy {
    http: object_store::client::HttpClient,
    /// `scheme://host[/bucket]`: objects are `{bucket_url}/{key}`.
    bucket_url: String,
    bucket: String,
    region: String,
    /// Bytes one UploadPartCopy copies ([`COPY_PART_BYTES`]).
    part_bytes: u64,
}

impl S3Backend {
    /// A backend for `settings`; nothing is contacted until first use.
    pub fn new(settings: S3Settings) -> Result<Self, StorageError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(!settings.path_style)
            // A store that is down fails within seconds (connect timeout,
            // then a few quick retries), so clients get a 503 rather than a
            // hung upload. A store that accepts a request and then stalls
            // (seen: Garage stopped reading one part's body) costs one
            // stall timeout, and the request is sent again on a new
            // connection. Part uploads and reads are idempotent, and an
            // interrupted download resumes with a range request.
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout_disabled()
                    .with_read_timeout(settings.stall_timeout),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: MAX_RETRIES,
                // object_store measures this from the start of the request,
                // a download's included: a tight bound would forbid resuming
                // a long download. MAX_RETRIES and the stall timeout bound
                // how long a failing request takes.
                retry_timeout: Duration::from_secs(24 * 60 * 60),
            });
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder.build().map_err(|e| StorageError::Unavailable {
            backend: settings.id.clone(),
            cause: format!("invalid S3 settings: {e}"),
        })?;
        let bucket_url = match &settings.endpoint {
            Some(endpoint) if settings.path_style => {
                format!("{}/{}", endpoint.trim_end_matches('/'), settings.bucket)
            }
            Some(endpoint) => match endpoint.split_once("://") {
                Some((scheme, host)) => format!(
                    "{scheme}://{}.{}",
                    settings.bucket,
                    host.trim_end_matches('/')
                ),
                None => format!("https://{}.{endpoint}", settings.bucket),
            },
            None => format!(
                "https://{}.s3.{}.amazonaws.com",
                settings.bucket, settings.region
            ),
        };
        let http = object_store::client::HttpConnector::connect(
            &object_store::client::ReqwestConnector::default(),
            &ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout_disabled()
                .with_allow_http(bucket_url.starts_with("http://")),
        )
        .map_err(|e| StorageError::Unavailable {
            backend: settings.id.clone(),
            cause: format!("HTTP client: {e}"),
        })?;
        Ok(Self {
            id: settings.id,
            prefix: settings.prefix.trim_matches('/').to_owned(),
            store: Arc::new(store),
            part_copy: Arc::new(PartCopy {
                http,
                bucket_url,
                bucket: settings.bucket,
                region: settings.region,
                part_bytes: COPY_PART_BYTES,
            }),
        })
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    fn error(&self, e: object_store::Error) -> StorageError {
        map_error(&self.id, e)
    }
}

fn map_error(backend: &str, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { path, .. } => StorageError::NotFound(path),
        // Retrying will not help these: the credentials, the bucket policy
        // or the store's feature set are wrong. Operators must see them as
        // failures, not as "try again later".
        refused @ (object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }
        | object_store::Error::InvalidPath { .. }
        | object_store::Error::UnknownConfigurationKey { .. }) => StorageError::Refused {
            backend: backend.to_owned(),
            cause: refused.to_string(),
        },
        other => StorageError::Unavailable {
            backend: backend.to_owned(),
            cause: other.to_string(),
        },
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn id(&self) -> &str {
        &self.id
    }

    async fn begin_write(&self) -> Result<Box<dyn ObjectWriter>, StorageError> {
        Ok(Box::new(S3Writer {
            backend: self.clone(),
            expected_key: None,
            state: WriteState::Buffering(Vec::new(), 0),
        }))
    }

    async fn begin_write_expecting(
        &self,
        expected_key: &str,
    ) -> Result<Box<dyn ObjectWriter>, StorageError> {
        Ok(Box::new(S3Writer {
            backend: self.clone(),
            expected_key: Some(expected_key.to_owned()),
            state: WriteState::Buffering(Vec::new(), 0),
        }))
    }

    async fn open(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        let path = self.path(key);
        if let Some(r) = &range {
            if r.start == r.end {
                // An empty range: S3 has no way to ask for zero bytes.
                let size = self
                    .size(key)
                    .await?
                    .ok_or_else(|| StorageError::NotFound(key.to_owned()))?;
                if r.end > size {
                    return Err(StorageError::RangeNotSatisfiable {
                        start: r.start,
                        end: r.end,
                        size,
                    });
                }
                return Ok(Box::pin(futures::stream::empty()));
            }
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&path, options)
            .await
            .map_err(|e| self.error(e))?;
        let id = self.id.clone();
        Ok(Box::pin(
            result
                .into_stream()
                .map(move |chunk| chunk.map_err(|e| map_error(&id, e))),
        ))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn replace_small(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        if key.starts_with(crate::CONTENT_KEY_PREFIX) {
            return Err(StorageError::Refused {
                backend: self.id.clone(),
                cause: format!("{key} is a content address; those are never replaced"),
            });
        }
        // One PUT: S3 replaces an object whole, and answers once it is stored.
        self.store
            .put(&self.path(key), bytes.into())
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ObjectInfo>, StorageError> {
        // Only the key spaces this backend writes: a bucket (or prefix)
        // may hold other things, which are not ours to collect.
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut found = Vec::new();
        for space in [
            crate::CONTENT_KEY_PREFIX.trim_end_matches('/'),
            STAGING_PREFIX,
        ] {
            let mut listed = self.store.list(Some(&self.path(space)));
            while let Some(meta) = listed.next().await {
                let meta = meta.map_err(|e| self.error(e))?;
                let Some(key) = meta.location.as_ref().strip_prefix(strip.as_str()) else {
                    continue;
                };
                found.push(ObjectInfo {
                    key: key.to_owned(),
                    size_bytes: meta.size,
                    modified: meta.last_modified.into(),
                });
            }
        }
        Ok(found)
    }

    fn resumable(&self) -> Option<&dyn crate::ResumableStaging> {
        Some(self)
    }

    async fn probe(&self) -> Result<(), StorageError> {
        // A HEAD of a key that need not exist: "not found" proves the bucket
        // answers and our credentials work.
        match self.store.head(&self.path("artifactstore-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

/// Completes a multipart upload. Uploaded under its final key, it is just
/// completed (or abandoned if the object is there already); uploaded under
/// a staging key, it is completed, copied to `target` unless that exists,
/// and the staging object deleted.
async fn finish_multipart(
    backend: S3Backend,
    upload: WriteMultipart,
    uploaded_to: (Path, String),
    target: (Path, String),
    exists: bool,
) -> Result<(), StorageError> {
    let store = backend.store.clone();
    let id = backend.id.clone();
    if uploaded_to.0 == target.0 {
        return if exists {
            upload.abort().await.map_err(|e| map_error(&id, e))
        } else {
            complete(&store, upload, &uploaded_to.0, &id).await
        };
    }
    complete(&store, upload, &uploaded_to.0, &id).await?;
    let copied = if exists {
        Ok(())
    } else {
        let size = backend.size(&uploaded_to.1).await?.unwrap_or(0);
        copy_object(&backend, &uploaded_to.1, &target.1, size).await
    };
    let deleted = store.delete(&uploaded_to.0).await;
    copied?;
    if let Err(e) = deleted {
        tracing::warn!(backend = %id, error = %e, "could not delete a staging object");
    }
    Ok(())
}

/// Completes `upload`. A completion is retried when its answer is slow;
/// if the first attempt did complete, the retry finds no upload, and the
/// object being there is what counts.
async fn complete(
    store: &AmazonS3,
    upload: WriteMultipart,
    uploaded_to: &Path,
    backend: &str,
) -> Result<(), StorageError> {
    match upload.finish().await {
        Ok(_) => Ok(()),
        Err(e @ object_store::Error::NotFound { .. }) => match store.head(uploaded_to).await {
            Ok(_) => Ok(()),
            Err(_) => Err(StorageError::Unavailable {
                backend: backend.to_owned(),
                cause: format!("completing a multipart upload: {e}"),
            }),
        },
        Err(e) => Err(map_error(backend, e)),
    }
}

enum WriteState {
    Buffering(Vec<Bytes>, usize),
    Multipart {
        upload: WriteMultipart,
        /// The final key when one was declared, else a staging key (as
        /// a path and as a key).
        uploaded_to: (Path, String),
    },
    Done,
}

struct S3Writer {
    backend: S3Backend,
    /// The key the client declared: a multipart upload goes straight there
    /// and is completed only if the bytes turn out to have that key.
    expected_key: Option<String>,
    state: WriteState,
}

impl S3Writer {
    async fn start_multipart(&mut self, buffered: Vec<Bytes>) -> Result<(), StorageError> {
        // A multipart upload is invisible until completed, so writing under
        // the declared key shows nothing unless commit confirms it.
        let key = match &self.expected_key {
            Some(key) => key.clone(),
            None => format!("{STAGING_PREFIX}/{}", uuid::Uuid::new_v4()),
        };
        let uploaded_to = (self.backend.path(&key), key);
        let upload = self
            .backend
            .store
            .put_multipart(&uploaded_to.0)
            .await
            .map_err(|e| self.backend.error(e))?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        for chunk in buffered {
            upload.put(chunk);
        }
        self.state = WriteState::Multipart {
            upload,
            uploaded_to,
        };
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for S3Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        match &mut self.state {
            WriteState::Buffering(chunks, size) => {
                *size += chunk.len();
                chunks.push(chunk);
                if *size > SINGLE_PUT_LIMIT {
                    let buffered = std::mem::take(chunks);
                    self.start_multipart(buffered).await?;
                }
                Ok(())
            }
            WriteState::Multipart { upload, .. } => {
                upload
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| map_error(&self.backend.id, e))?;
                upload.put(chunk);
                Ok(())
            }
            WriteState::Done => Err(StorageError::Unavailable {
                backend: self.backend.id.clone(),
                cause: "writer already closed".into(),
            }),
        }
    }

    async fn commit(mut self: Box<Self>, key: &str) -> Result<(), StorageError> {
        if self.expected_key.as_deref().is_some_and(|k| k != key) {
            // Callers check digests before committing; still, never let
            // bytes appear under an address they were not declared for.
            let backend = self.backend.id.clone();
            let _ = self.abort().await;
            return Err(crate::undeclared_key(&backend, key));
        }
        let target = self.backend.path(key);
        let exists = self.backend.size(key).await?.is_some();
        match std::mem::replace(&mut self.state, WriteState::Done) {
            WriteState::Buffering(chunks, _) => {
                if !exists {
                    let payload: PutPayload = chunks.into_iter().collect();
                    self.backend
                        .store
                        .put(&target, payload)
                        .await
                        .map_err(|e| self.backend.error(e))?;
                }
                Ok(())
            }
            WriteState::Multipart {
                upload,
                uploaded_to,
            } => {
                // Completion runs in its own task: if the client goes away
                // mid-commit the upload is still completed (or aborted), so
                // no parts or staging object are left behind.
                let finishing = tokio::spawn(finish_multipart(
                    self.backend.clone(),
                    upload,
                    uploaded_to,
                    (target, key.to_owned()),
                    exists,
                ));
                finishing.await.map_err(|e| StorageError::Unavailable {
                    backend: self.backend.id.clone(),
                    cause: format!("upload completion failed: {e}"),
                })?
            }
            WriteState::Done => Ok(()),
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StorageError> {
        match std::mem::replace(&mut self.state, WriteState::Done) {
            WriteState::Multipart { upload, .. } => {
                upload.abort().await.map_err(|e| self.backend.error(e))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // A writer dropped mid-stream (client gone, task cancelled) must not
        // leave a half-finished multipart upload holding parts.
        if let WriteState::Multipart { upload, .. } =
            std::mem::replace(&mut self.state, WriteState::Done)
        {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = upload.abort().await;
                });
            }
        }
    }
}

/// Most parts in one multipart upload (S3's limit): a resumable upload's
/// part size is chosen so that its whole length fits.
pub const MAX_PARTS: u64 = 10_000;
/// The smallest part of a resumable upload on S3: the power of two above
/// S3's floor of 5 MiB for every part but the last.
pub const S3_SMALLEST_PART_BYTES: u64 = 8 * 1024 * 1024;
/// Where resumable uploads stage: outside both listed key spaces, so the
/// collector never sees them; they go when the upload completes, is
/// terminated or expires.
const UPLOADS_PREFIX: &str = "uploads";

/// A resumable upload on S3: a multipart upload (to the declared key, or to
/// `uploads/<id>`), plus its tail as a small object
/// `uploads/<id>.tails/<offset>` (parts cannot be read back before
/// completion, and all but the last must be 5 MiB or more). Tails are
/// named by where they start, so a tail stored by a request whose progress
/// was never saved (a crash between the two) cannot stand in for the tail
/// the saved progress reads back: that one begins elsewhere.
struct S3Staged {
    upload_id: String,
    key: String,
    multipart: String,
}

impl S3Staged {
    fn parse(backend: &str, handle: &str) -> Result<Self, StorageError> {
        let mut lines = handle.splitn(3, '\n');
        match (lines.next(), lines.next(), lines.next()) {
            (Some(upload_id), Some(key), Some(multipart))
                if uuid::Uuid::try_parse(upload_id).is_ok() && !multipart.is_empty() =>
            {
                Ok(Self {
                    upload_id: upload_id.to_owned(),
                    key: key.to_owned(),
                    multipart: multipart.to_owned(),
                })
            }
            _ => Err(StorageError::Refused {
                backend: backend.to_owned(),
                cause: "not an upload handle of this backend".into(),
            }),
        }
    }

    fn handle(&self) -> String {
        format!("{}\n{}\n{}", self.upload_id, self.key, self.multipart)
    }

    fn tail_key(&self, offset: u64) -> String {
        format!("{}/{offset}", self.tails_folder())
    }

    fn tails_folder(&self) -> String {
        format!("{UPLOADS_PREFIX}/{}.tails", self.upload_id)
    }

    /// Where versions before tails were named by their offset kept the
    /// one tail: read while such an upload is finished, then removed.
    fn unnamed_tail_key(&self) -> String {
        format!("{UPLOADS_PREFIX}/{}.tail", self.upload_id)
    }
}

impl S3Backend {
    /// Removes every tail staged for `staged`: the one from `known`, then
    /// whatever a listing finds.
    async fn delete_tails(
        &self,
        staged: &S3Staged,
        known: Option<u64>,
    ) -> Result<(), StorageError> {
        if let Some(offset) = known {
            self.delete(&staged.tail_key(offset)).await?;
        }
        let mut tails = Vec::new();
        let mut listed = self.store.list(Some(&self.path(&staged.tails_folder())));
        while let Some(meta) = listed.next().await {
            tails.push(meta.map_err(|e| self.error(e))?.location);
        }
        for tail in tails {
            match self.store.delete(&tail).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(e)),
            }
        }
        self.delete(&staged.unnamed_tail_key()).await
    }
}

#[async_trait]
impl crate::ResumableStaging for S3Backend {
    fn smallest_part_bytes(&self) -> u64 {
        S3_SMALLEST_PART_BYTES
    }

    async fn start(
        &self,
        upload_id: &str,
        expected_key: Option<&str>,
    ) -> Result<String, StorageError> {
        use object_store::multipart::MultipartStore;
        let key = match expected_key {
            Some(key) => key.to_owned(),
            None => format!("{UPLOADS_PREFIX}/{upload_id}"),
        };
        let multipart = self
            .store
            .create_multipart(&self.path(&key))
            .await
            .map_err(|e| self.error(e))?;
        Ok(S3Staged {
            upload_id: upload_id.to_owned(),
            key,
            multipart,
        }
        .handle())
    }

    async fn put_part(
        &self,
        handle: &str,
        index: u64,
        _part_bytes: u64,
        part: Vec<Bytes>,
    ) -> Result<String, StorageError> {
        use object_store::multipart::MultipartStore;
        let staged = S3Staged::parse(&self.id, handle)?;
        // The last part number is kept for the tail.
        if index + 1 >= MAX_PARTS {
            return Err(StorageError::Refused {
                backend: self.id.clone(),
                cause: format!("part {index} is beyond S3's {MAX_PARTS} parts"),
            });
        }
        let part_index = usize::try_from(index).map_err(|_| StorageError::Refused {
            backend: self.id.clone(),
            cause: "part index too large".into(),
        })?;
        let payload: PutPayload = part.into_iter().collect();
        let part = self
            .store
            .put_part(
                &self.path(&staged.key),
                &staged.multipart,
                part_index,
                payload,
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(part.content_id)
    }

    async fn put_tail(
        &self,
        handle: &str,
        offset: u64,
        tail: Vec<Bytes>,
    ) -> Result<(), StorageError> {
        let staged = S3Staged::parse(&self.id, handle)?;
        let payload: PutPayload = tail.into_iter().collect();
        self.store
            .put(&self.path(&staged.tail_key(offset)), payload)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn drop_tail(&self, handle: &str, offset: u64) -> Result<(), StorageError> {
        let staged = S3Staged::parse(&self.id, handle)?;
        self.delete(&staged.tail_key(offset)).await?;
        // An unnamed tail, from before the upgrade, is older still: gone,
        // a replica of that version reading it fails rather than reading
        // bytes from the wrong offset (docs/deploy.md).
        self.delete(&staged.unnamed_tail_key()).await
    }

    async fn read_parts(
        &self,
        _handle: &str,
        _offset: u64,
        _len: u64,
    ) -> Result<Bytes, StorageError> {
        Err(StorageError::Refused {
            backend: self.id.clone(),
            cause: "a multipart upload's parts cannot be read before it completes".into(),
        })
    }

    async fn read_tail(
        &self,
        handle: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<Bytes>, StorageError> {
        let staged = S3Staged::parse(&self.id, handle)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let stream = match self.open(&staged.tail_key(offset), Some(0..len)).await {
            Err(StorageError::NotFound(_)) => {
                self.open(&staged.unnamed_tail_key(), Some(0..len)).await?
            }
            opened => opened?,
        };
        let chunks: Vec<Bytes> = stream.try_collect().await?;
        let got: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if got != len {
            return Err(StorageError::Unavailable {
                backend: self.id.clone(),
                cause: format!("the staged tail holds {got} bytes, not {len}"),
            });
        }
        Ok(chunks)
    }

    async fn commit(
        &self,
        handle: &str,
        receipts: &[String],
        offset: u64,
        tail: Vec<Bytes>,
        key: &str,
    ) -> Result<(), StorageError> {
        use object_store::multipart::{MultipartStore, PartId};
        let staged = S3Staged::parse(&self.id, handle)?;
        let uploaded_to = self.path(&staged.key);
        let target = self.path(key);
        if uploaded_to != target && staged.key.starts_with(crate::CONTENT_KEY_PREFIX) {
            // Declared as one content address, hashing to another.
            let _ = crate::ResumableStaging::abort(self, handle).await;
            return Err(crate::undeclared_key(&self.id, key));
        }
        let exists = self.size(key).await?.is_some();
        if receipts.is_empty() {
            // Smaller than a part: one PUT, no multipart upload needed.
            if !exists {
                let payload: PutPayload = tail.into_iter().collect();
                self.store
                    .put(&target, payload)
                    .await
                    .map_err(|e| self.error(e))?;
            }
            return crate::ResumableStaging::abort(self, handle).await;
        }
        if exists {
            return crate::ResumableStaging::abort(self, handle).await;
        }
        let mut parts: Vec<PartId> = receipts
            .iter()
            .map(|content_id| PartId {
                content_id: content_id.clone(),
            })
            .collect();
        let tail_bytes: usize = tail.iter().map(Bytes::len).sum();
        if tail_bytes > 0 {
            let payload: PutPayload = tail.into_iter().collect();
            let part = self
                .store
                .put_part(&uploaded_to, &staged.multipart, parts.len(), payload)
                .await
                .map_err(|e| self.error(e))?;
            parts.push(part);
        }
        match self
            .store
            .complete_multipart(&uploaded_to, &staged.multipart, parts)
            .await
        {
            Ok(_) => {}
            // A completion retried after a slow answer finds no upload:
            // the object being there is what counts.
            Err(object_store::Error::NotFound { .. })
                if self.store.head(&uploaded_to).await.is_ok() => {}
            Err(e) => return Err(self.error(e)),
        }
        if uploaded_to != target {
            let size = self.size(&staged.key).await?.unwrap_or(0);
            copy_object(self, &staged.key, key, size).await?;
            self.delete(&staged.key).await?;
        }
        self.delete_tails(&staged, Some(offset)).await
    }

    async fn abort(&self, handle: &str) -> Result<(), StorageError> {
        use object_store::multipart::MultipartStore;
        let staged = S3Staged::parse(&self.id, handle)?;
        match self
            .store
            .abort_multipart(&self.path(&staged.key), &staged.multipart)
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error(e)),
        }
        self.delete_tails(&staged, None).await
    }
}

/// The largest object one CopyObject may copy (AWS, MinIO); larger ones are
/// copied in parts.
const COPY_OBJECT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// Copies object `from` (of `size` bytes) to `to` inside the bucket.
async fn copy_object(
    backend: &S3Backend,
    from: &str,
    to: &str,
    size: u64,
) -> Result<(), StorageError> {
    if size <= COPY_OBJECT_LIMIT {
        return backend
            .store
            .copy(&backend.path(from), &backend.path(to))
            .await
            .map_err(|e| backend.error(e));
    }
    copy_in_parts(backend, from, to, size).await
}

/// Bytes one UploadPartCopy copies (S3 allows up to 5 GiB); objects over
/// 10,000 of them use larger parts.
const COPY_PART_BYTES: u64 = 1 << 30;

/// Copies a large object with UploadPartCopy, part by part into a
/// multipart upload at `to`: no byte passes through this process.
async fn copy_in_parts(
    backend: &S3Backend,
    from: &str,
    to: &str,
    size: u64,
) -> Result<(), StorageError> {
    use object_store::multipart::{MultipartStore, PartId};
    let target = backend.path(to);
    let upload = backend
        .store
        .create_multipart(&target)
        .await
        .map_err(|e| backend.error(e))?;
    let copied = async {
        let part_bytes = backend.part_copy.part_bytes.max(size.div_ceil(MAX_PARTS));
        let mut parts = Vec::new();
        let mut start = 0;
        while start < size {
            let end = (start + part_bytes).min(size);
            let etag = backend
                .upload_part_copy(from, to, &upload, parts.len() as u64 + 1, start..end)
                .await?;
            parts.push(PartId { content_id: etag });
            start = end;
        }
        backend
            .store
            .complete_multipart(&target, &upload, parts)
            .await
            .map_err(|e| backend.error(e))?;
        Ok(())
    }
    .await;
    if copied.is_err() {
        let _ = backend.store.abort_multipart(&target, &upload).await;
    }
    copied
}

/// Percent-encodes a key for a URL path and `x-amz-copy-source` (RFC 3986
/// unreserved characters and `/` stay).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl S3Backend {
    /// One UploadPartCopy of `range` of `from` as part `number` of `upload`
    /// at `to`; returns the part's ETag. Retried like `object_store`'s own
    /// requests (a part copy is idempotent).
    async fn upload_part_copy(
        &self,
        from: &str,
        to: &str,
        upload: &str,
        number: u64,
        range: Range<u64>,
    ) -> Result<String, StorageError> {
        let copy = &self.part_copy;
        let url = format!(
            "{}/{}?partNumber={number}&uploadId={}",
            copy.bucket_url,
            encode_key(self.path(to).as_ref()),
            encode_key(upload).replace('/', "%2F")
        );
        let source = format!("/{}/{}", copy.bucket, encode_key(self.path(from).as_ref()));
        let unavailable = |cause: String| StorageError::Unavailable {
            backend: self.id.clone(),
            cause,
        };
        let mut attempt = 0;
        loop {
            let credential = self
                .store
                .credentials()
                .get_credential()
                .await
                .map_err(|e| self.error(e))?;
            let mut request = http::Request::builder()
                .method("PUT")
                .uri(&url)
                .header("x-amz-copy-source", &source)
                // Ceph RGW refuses a PUT without one (411).
                .header("content-length", "0")
                .header(
                    "x-amz-copy-source-range",
                    format!("bytes={}-{}", range.start, range.end - 1),
                )
                .body(object_store::client::HttpRequestBody::empty())
                .map_err(|e| unavailable(format!("part copy request: {e}")))?;
            object_store::aws::AwsAuthorizer::new(&credential, "s3", &copy.region)
                .try_authorize(&mut request, None)
                .map_err(|e| self.error(e))?;
            let outcome: Result<std::convert::Infallible, String> =
                match copy.http.execute(request).await {
                    Ok(response) => {
                        let status = response.status();
                        let body = response
                            .into_body()
                            .bytes()
                            .await
                            .map_err(|e| unavailable(format!("part copy answer: {e}")))?;
                        let text = String::from_utf8_lossy(&body).into_owned();
                        if status.is_success() {
                            // S3 can answer 200 with an error document.
                            match etag_of(&text) {
                                Some(etag) => return Ok(etag),
                                None => Err(format!("part copy answered without an ETag: {text}")),
                            }
                        } else if status.is_client_error() && status.as_u16() != 429 {
                            return Err(StorageError::Refused {
                                backend: self.id.clone(),
                                cause: format!("part copy refused ({status}): {text}"),
                            });
                        } else {
                            Err(format!("part copy failed ({status}): {text}"))
                        }
                    }
                    Err(e) => Err(format!("part copy: {e}")),
                };
            let Err(cause) = outcome;
            attempt += 1;
            if attempt > MAX_RETRIES {
                return Err(unavailable(cause));
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
    }
}

/// The ETag in a CopyPartResult document. Hand-read rather than parsed
/// with an XML crate: one element of a fixed, flat answer.
fn etag_of(document: &str) -> Option<String> {
    let start = document.find("<ETag>")? + "<ETag>".len();
    let end = start + document[start..].find("</ETag>")?;
    Some(
        document[start..end]
            .replace("&quot;", "\"")
            .replace("&#34;", "\""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;

    #[test]
    fn etags_are_read_from_copy_results() {
        let answer = "<?xml version=\"1.0\"?><CopyPartResult><LastModified>2026-12-05T00:00:00Z</LastModified><ETag>&quot;abc123&quot;</ETag></CopyPartResult>";
        assert_eq!(etag_of(answer).as_deref(), Some("\"abc123\""));
        assert_eq!(etag_of("<Error><Code>SlowDown</Code></Error>"), None);
        assert_eq!(encode_key("uploads/a b%"), "uploads/a%20b%25");
    }

    /// UploadPartCopy against the real servers, in small parts so a small
    /// object takes several (the 6 GiB run is the registry's large ingest
    /// test).
    async fn copies_in_parts(name: &str) {
        let Some(server) = artifactstore_testkit::s3_server(name) else {
            return;
        };
        let mut backend = S3Backend::new(S3Settings {
            id: name.to_lowercase(),
            endpoint: Some(server.endpoint),
            region: server.region.unwrap_or_else(|| "us-east-1".into()),
            bucket: server.bucket.expect("the server's bucket"),
            path_style: true,
            access_key_id: server.access_key_id,
            secret_access_key: server.secret_access_key,
            prefix: server.prefix,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        })
        .unwrap();
        let copy = &backend.part_copy;
        backend.part_copy = Arc::new(PartCopy {
            http: copy.http.clone(),
            bucket_url: copy.bucket_url.clone(),
            bucket: copy.bucket.clone(),
            region: copy.region.clone(),
            part_bytes: 5 * 1024 * 1024,
        });
        let data: Vec<u8> = (0..12 * 1024 * 1024 + 3)
            .map(|i: u32| (i % 251) as u8)
            .collect();
        let from = format!("{UPLOADS_PREFIX}/copy-test-{}", uuid::Uuid::new_v4());
        let to = format!("{from}.copied");
        backend
            .store
            .put(&backend.path(&from), PutPayload::from(data.clone()))
            .await
            .unwrap();
        copy_in_parts(&backend, &from, &to, data.len() as u64)
            .await
            .unwrap();
        let stream = backend.open(&to, None).await.unwrap();
        let copied: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert!(copied.concat() == data, "the copy differs");
        // A source that is not there: refused, nothing left at the target.
        let missing = copy_in_parts(
            &backend,
            "uploads/none",
            "uploads/none.copied",
            6 * 1024 * 1024,
        )
        .await;
        assert!(missing.is_err());
        assert_eq!(backend.size("uploads/none.copied").await.unwrap(), None);
        for key in [&from, &to] {
            backend.delete(key).await.unwrap();
        }
    }

    #[tokio::test]
    async fn garage_copies_in_parts() {
        copies_in_parts("GARAGE").await;
    }

    #[tokio::test]
    async fn ceph_rgw_copies_in_parts() {
        copies_in_parts("CEPH").await;
    }
}
