//! Packages, files, manifests and the log.

use artifactstore_core::id::new_id;
use std::ops::Range;

use artifactstore_core::event::{PackageCreated, RetentionDefaultApplied};
use artifactstore_core::manifest::{
    ManifestFile, ManifestPackage, Provenance, RetentionSummary, StorageReceipt, MANIFEST_VERSION,
};
use artifactstore_core::path;
use artifactstore_core::text::check_label;
use artifactstore_core::{cbor, ContentAddress, Digest32, Event, Manifest, NewEvent, RelativePath};
use artifactstore_store::records::status;
use artifactstore_store::{
    DigestKind, FileListing, FilePage, FileRecord, PackageFilter, PackagePage, PackageRecord,
    RetentionRecord,
};
use futures::Stream;
use uuid::Uuid;

use crate::{ByteStream, Registry, RegistryError, RegistryResult};

/// Largest page of packages or events.
pub const MAX_PAGE: i64 = 1000;
/// Most `metadata.KEY=VALUE` filters in one listing.
pub const MAX_METADATA_FILTERS: usize = 16;

/// Refuses NUL anywhere in `text`: PostgreSQL cannot store it, and no name,
/// value or reason needs it.
pub(crate) fn no_nul(field: &str, text: &str) -> RegistryResult<()> {
    if text.contains('\0') {
        return Err(RegistryError::InvalidInput(format!(
            "{field} must not contain NUL characters"
        )));
    }
    Ok(())
}

fn metadata_without_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => !s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().all(metadata_without_nul),
        serde_json::Value::Object(map) => map
            .iter()
            .all(|(k, v)| !k.contains('\0') && metadata_without_nul(v)),
        _ => true,
    }
}

/// What `create_package` needs.
#[derive(Debug, Clone)]
pub struct NewPackage {
    /// Name.
    pub name: String,
    /// Producer (pipeline, team).
    pub producer: String,
    /// What the package is about.
    pub subject: String,
    /// A configured retention class.
    pub retention_class: String,
    /// A JSON object (or null for none); numbers must be integers.
    pub metadata: serde_json::Value,
    /// Slug of a registered schema the metadata must satisfy.
    pub metadata_schema: Option<String>,
}

/// The answer to `finalize_package`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finalized {
    /// The package.
    pub package_id: String,
    /// `blake3:<hex>` of the canonical CBOR manifest.
    pub manifest_digest: String,
}

/// Manifest encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// The canonical CBOR bytes (what the content address is of).
    Cbor,
    /// Their RFC 8785 JSON projection.
    Json,
}

pub(crate) fn label(field: &str, value: &str) -> RegistryResult<()> {
    check_label(value).map_err(|e| RegistryError::InvalidInput(format!("{field} {e}")))
}

impl Registry {
    /// Creates a package in status `created` and records its default
    /// retention, in one transaction.
    pub async fn create_package(
        &self,
        new: NewPackage,
        actor: &str,
    ) -> RegistryResult<PackageRecord> {
        label("name", &new.name)?;
        label("producer", &new.producer)?;
        label("subject", &new.subject)?;
        let class = self
            .classes
            .get(&new.retention_class)
            .ok_or_else(|| RegistryError::UnknownRetentionClass(new.retention_class.clone()))?
            .clone();
        let metadata = match new.metadata {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            object @ serde_json::Value::Object(_) => object,
            _ => {
                return Err(RegistryError::MetadataInvalid(
                    "metadata must be a JSON object".into(),
                ))
            }
        };
        let metadata_bytes = serde_json::to_vec(&metadata).map_or(usize::MAX, |v| v.len());
        if metadata_bytes > self.limits.max_metadata_bytes {
            return Err(RegistryError::PayloadTooLarge {
                what: "the metadata",
                limit: self.limits.max_metadata_bytes as u64,
            });
        }
        if !metadata_without_nul(&metadata) {
            return Err(RegistryError::MetadataInvalid(
                "metadata must not contain NUL characters".into(),
            ));
        }
        let metadata_cbor = cbor::from_json(&metadata)
            .map_err(|e| RegistryError::MetadataInvalid(e.to_string()))?;
        let schema_id = match &new.metadata_schema {
            Some(slug) => Some(self.validate_metadata(slug, &metadata).await?),
            None => None,
        };
        let package_id = new_id().to_string();
        let created = PackageCreated {
            v: 1,
            package_id: package_id.clone(),
            name: new.name,
            producer: new.producer,
            subject: new.subject,
            retention_class: class.id.clone(),
            metadata: metadata_cbor,
            metadata_schema_id: schema_id,
        };
        let mut tx = self.store.begin().await?;
        let created_event = tx.append(NewEvent::of(&created, actor)?).await?;
        let default = RetentionDefaultApplied {
            v: 1,
            package_id: package_id.clone(),
            retention_class: class.id.clone(),
            default_duration_seconds: class.default_duration.map(|d| d.seconds()),
            expires_at: class.default_expiry(created_event.created_at),
        };
        tx.append(NewEvent::of(&default, actor)?).await?;
        let package = tx.package(&package_id).await?;
        tx.commit().await?;
        package.ok_or_else(|| RegistryError::Internal("created package has no view row".into()))
    }

    /// One package.
    pub async fn get_package(&self, id: Uuid) -> RegistryResult<PackageRecord> {
        self.store
            .package(&id.to_string())
            .await?
            .ok_or_else(|| RegistryError::PackageNotFound(id.to_string()))
    }

    /// Packages matching `filter`, one page in creation order.
    pub async fn list_packages(&self, mut filter: PackageFilter) -> RegistryResult<PackagePage> {
        if filter.limit <= 0 {
            filter.limit = 100;
        }
        if filter.metadata.len() > MAX_METADATA_FILTERS {
            return Err(RegistryError::InvalidInput(format!(
                "at most {MAX_METADATA_FILTERS} metadata filters are allowed"
            )));
        }
        for value in [
            &filter.producer,
            &filter.subject,
            &filter.retention_class,
            &filter.status,
        ]
        .into_iter()
        .flatten()
        .chain(filter.metadata.iter().flat_map(|(k, v)| [k, v]))
        {
            no_nul("a filter", value)?;
        }
        filter.limit = filter.limit.min(MAX_PAGE);
        Ok(self.store.list_packages(&filter).await?)
    }

    /// Seals a package: builds its manifest from the views, records it as the
    /// `v1.package.finalized` payload, and returns its content address.
    pub async fn finalize_package(&self, id: Uuid, actor: &str) -> RegistryResult<Finalized> {
        let package_id = id.to_string();
        let mut tx = self.store.begin().await?;
        let package = tx
            .package(&package_id)
            .await?
            .ok_or_else(|| RegistryError::PackageNotFound(package_id.clone()))?;
        if package.status != status::CREATED {
            return Err(RegistryError::IllegalPackageState {
                package_id,
                status: package.status,
                operation: "finalize it",
            });
        }
        // Under the log lock: no upload can complete or start meanwhile.
        let now = tx.now();
        let open = tx.open_uploads(&[package_id.as_str()], now).await?;
        if !open.is_empty() {
            return Err(RegistryError::UploadsOpen {
                package_id,
                uploads: open
                    .into_iter()
                    .map(|u| format!("{} ({})", u.upload_id, u.relative_path))
                    .collect(),
            });
        }
        let files = tx.files_of(&package_id).await?;
        let retention = tx.retention(&package_id).await?;
        let manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            package: ManifestPackage {
                id: package.id.clone(),
                name: package.name.clone(),
                producer: package.producer.clone(),
                subject: package.subject.clone(),
                retention_class: package.retention_class.clone(),
                metadata: cbor::from_json(&package.metadata)?,
                metadata_schema_id: package.metadata_schema_id.clone(),
                created_at: package.created_at,
                finalized_at: tx.now(),
            },
            files: files.iter().map(manifest_file).collect(),
            storage_receipts: files.iter().map(storage_receipt).collect(),
            retention: RetentionSummary {
                retention_class: retention
                    .as_ref()
                    .map_or(package.retention_class.clone(), |r| {
                        r.retention_class.clone()
                    }),
                expires_at: package.expires_at,
                active_hold_ids: retention
                    .map(|r| r.active_holds.into_iter().map(|h| h.hold_id).collect())
                    .unwrap_or_default(),
            },
            provenance: Provenance {
                created_by: package.created_by.clone(),
                finalized_by: actor.to_owned(),
                created_sequence: package.created_sequence,
                last_event_sequence: package.last_event_sequence,
            },
        };
        let bytes = manifest.encode()?;
        let address = ContentAddress::of(&bytes);
        tx.append(NewEvent::finalized(&package_id, actor, bytes))
            .await?;
        tx.commit().await?;
        Ok(Finalized {
            package_id,
            manifest_digest: address.to_string(),
        })
    }

    /// The manifest of a finalized package.
    pub async fn manifest_bytes(
        &self,
        id: Uuid,
        format: ManifestFormat,
    ) -> RegistryResult<Vec<u8>> {
        let package = self.get_package(id).await?;
        let bytes = self
            .store
            .manifest_bytes(&package.id)
            .await?
            .ok_or(RegistryError::ManifestNotFound(package.id))?;
        match format {
            ManifestFormat::Cbor => Ok(bytes),
            ManifestFormat::Json => Manifest::json_projection(&bytes)
                .map_err(|e| RegistryError::Internal(format!("manifest: {e}"))),
        }
    }

    /// One file's metadata.
    pub async fn file_metadata(&self, file_id: Uuid) -> RegistryResult<FileRecord> {
        self.store
            .file(&file_id.to_string())
            .await?
            .ok_or_else(|| RegistryError::FileNotFound(file_id.to_string()))
    }

    /// One file by its path in a package.
    pub async fn file_by_path(
        &self,
        package_id: Uuid,
        relative_path: &str,
    ) -> RegistryResult<FileRecord> {
        RelativePath::parse(relative_path)?;
        let package = self.get_package(package_id).await?;
        self.store
            .file_by_path(&package.id, relative_path)
            .await?
            .ok_or_else(|| RegistryError::FileNotFound(relative_path.to_owned()))
    }

    /// The files holding the bytes whose `kind` digest is `digest`, in any
    /// package, in the order they were recorded: up to `limit` (100 if 0 or
    /// less) after cursor `after`.
    pub async fn find_files(
        &self,
        kind: DigestKind,
        digest: Digest32,
        after: Option<i64>,
        limit: i64,
    ) -> RegistryResult<FilePage> {
        let limit = if limit <= 0 { 100 } else { limit };
        Ok(self
            .store
            .files_by_digest(kind, &digest.to_hex(), after.unwrap_or(0), limit)
            .await?)
    }

    /// A package's files, sorted by path.
    pub async fn list_files(&self, package_id: Uuid) -> RegistryResult<Vec<FileRecord>> {
        let package = self.get_package(package_id).await?;
        Ok(self.store.files_of(&package.id).await?)
    }

    /// Up to `limit` of a package's files as a listing shows them (no
    /// storage locations), in the order of their collision keys (paths
    /// in NFC, lowercased; files of one key by path), starting after the
    /// file at path `after` (or after where such a path would be): a page
    /// whose work does not grow with the package.
    pub async fn file_listing(
        &self,
        package_id: Uuid,
        after: Option<&str>,
        limit: u32,
    ) -> RegistryResult<Vec<FileListing>> {
        let package = self.get_package(package_id).await?;
        let after_key = match after {
            None => String::new(),
            // The file's own key as stored, not computed anew: a key
            // stored by another version of the Unicode tables would
            // otherwise put the cursor before its file (listed again, a
            // page of one forever) or after the next.
            Some(after) => match self.store.stored_path_key(&package.id, after).await? {
                Some(key) => key,
                None => path::collision_key(after),
            },
        };
        Ok(self
            .store
            .file_listing(&package.id, (&after_key, after.unwrap_or_default()), limit)
            .await?)
    }

    /// A file's bytes, or the byte range `range` of them.
    pub async fn open_file(
        &self,
        file: &FileRecord,
        range: Option<Range<u64>>,
    ) -> RegistryResult<ByteStream> {
        if let Some(r) = &range {
            if r.start > r.end || r.end > file.size_bytes {
                return Err(RegistryError::RangeNotSatisfiable {
                    size: file.size_bytes,
                });
            }
        }
        self.ensure_bytes_kept(file).await?;
        let backend = self.backend(&file.backend_id)?;
        Ok(backend.open(&file.object_key, range).await?)
    }

    /// Refuses (410 `package_purged`) a file of a purged package: its
    /// bytes may be gone, and are not served even while they are not.
    pub async fn ensure_bytes_kept(&self, file: &FileRecord) -> RegistryResult<()> {
        if file.package_status == status::PURGED {
            return Err(self.purged(&file.package_id).await);
        }
        Ok(())
    }

    /// The error for reading the bytes of purged package `package_id`:
    /// when, by whom and why it was purged.
    pub(crate) async fn purged(&self, package_id: &str) -> RegistryError {
        match self.store.retention(package_id).await {
            Ok(Some(RetentionRecord {
                purge: Some(purge), ..
            })) => RegistryError::PackagePurged {
                package_id: package_id.to_owned(),
                purged_at: purge.purged_at.to_string(),
                purged_by: purge.purged_by,
                reason: purge.reason,
            },
            Ok(_) => RegistryError::Internal(format!(
                "package {package_id} is purged but has no purge record"
            )),
            Err(e) => e.into(),
        }
    }

    /// Events before `before`, newest first, of one type and one subject
    /// where given.
    pub async fn newest_events(
        &self,
        before: Option<i64>,
        event_type: Option<&str>,
        subject_id: Option<&str>,
        limit: i64,
    ) -> RegistryResult<Vec<Event>> {
        Ok(self
            .store
            .newest_events(before, event_type, subject_id, limit.clamp(1, MAX_PAGE))
            .await?)
    }

    /// Events after `since`, ascending, at most `limit` (capped).
    pub async fn fetch_events(&self, since: i64, limit: i64) -> RegistryResult<Vec<Event>> {
        Ok(self
            .store
            .fetch_events(since, limit.clamp(1, MAX_PAGE))
            .await?)
    }

    /// Follows the log live from `since`; ends when dropped.
    pub fn tail_events(
        &self,
        since: i64,
    ) -> impl Stream<Item = RegistryResult<Event>> + Send + 'static {
        use futures::StreamExt;
        self.store
            .tail(since)
            .map(|r| r.map_err(RegistryError::from))
    }

    /// The newest sequence in the log.
    pub async fn head_sequence(&self) -> RegistryResult<i64> {
        Ok(self.store.head_sequence().await?)
    }

    /// Rebuilds every view from the log.
    pub async fn replay(&self) -> RegistryResult<artifactstore_store::ReplayReport> {
        Ok(self.store.replay().await?)
    }

    /// Rebuilds into a scratch transaction and compares with the live views.
    pub async fn replay_check(&self) -> RegistryResult<artifactstore_store::ReplayReport> {
        Ok(self.store.replay_check().await?)
    }

    /// Recomputes the log's digests and hash chain.
    pub async fn verify_log(&self) -> RegistryResult<artifactstore_store::LogVerification> {
        Ok(self.store.verify_log().await?)
    }
}

fn manifest_file(file: &FileRecord) -> ManifestFile {
    ManifestFile {
        file_id: file.id.clone(),
        relative_path: file.relative_path.clone(),
        media_type: file.media_type.clone(),
        size_bytes: file.size_bytes,
        blake3: file.blake3.clone(),
        sha256: file.sha256.clone(),
        content_address: file.content_address.clone(),
    }
}

fn storage_receipt(file: &FileRecord) -> StorageReceipt {
    StorageReceipt {
        file_id: file.id.clone(),
        storage_location_id: file.storage_location_id.clone(),
        backend_id: file.backend_id.clone(),
        object_key: file.object_key.clone(),
        content_address: file.content_address.clone(),
        retrieval_tier: file.retrieval_tier.clone(),
    }
}
