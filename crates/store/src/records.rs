//! The rows of the views, as the registry hands them out.

use artifactstore_core::digest::CONTENT_ADDRESS_PREFIX;
use artifactstore_core::event::FileIngested;
use artifactstore_core::Timestamp;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{StoreError, StoreResult};

/// A package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackageRecord {
    /// Id (UUID).
    pub id: String,
    /// Name.
    pub name: String,
    /// Producer.
    pub producer: String,
    /// Subject.
    pub subject: String,
    /// Retention class id.
    pub retention_class: String,
    /// User metadata.
    pub metadata: serde_json::Value,
    /// Schema the metadata was validated against.
    pub metadata_schema_id: Option<String>,
    /// `created`, `finalized` or `purged`.
    pub status: String,
    /// `blake3:<hex>` of the manifest once finalized.
    pub manifest_digest: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Finalize time.
    pub finalized_at: Option<Timestamp>,
    /// Current expiry; `None` never expires.
    pub expires_at: Option<Timestamp>,
    /// When it was purged.
    pub purged_at: Option<Timestamp>,
    /// Last event that touched the package.
    pub last_event_sequence: i64,
    /// Its files.
    pub file_count: u64,
    /// Their bytes, summed.
    pub total_bytes: u64,
    /// Actor of the creation event.
    #[serde(skip)]
    pub created_by: String,
    /// Sequence of the creation event (the paging key).
    #[serde(skip)]
    pub created_sequence: i64,
}

/// Package status names.
pub mod status {
    /// Open for files.
    pub const CREATED: &str = "created";
    /// Immutable, has a manifest.
    pub const FINALIZED: &str = "finalized";
    /// Purged: its records stay, its bytes may be gone.
    pub const PURGED: &str = "purged";
}

/// Storage location status names.
pub mod storage_status {
    /// Written and recorded, not yet verified.
    pub const RECORDED: &str = "recorded";
    /// Read back and matched its digests.
    pub const VERIFIED: &str = "verified";
    /// Missing or changed when last verified.
    pub const FAILED: &str = "failed";
}

/// What a listing of a package's files shows of each: no storage
/// location, so a package of ten thousand files reads a fraction of the
/// columns (see [`crate::Store::file_listing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileListing {
    /// Id (UUID).
    pub id: String,
    /// Path in the package.
    pub relative_path: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// BLAKE3, lowercase hex.
    pub blake3: String,
}

/// A file with its storage location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRecord {
    /// Id (UUID).
    pub id: String,
    /// Its package.
    pub package_id: String,
    /// Path in the package.
    pub relative_path: String,
    /// Media type.
    pub media_type: String,
    /// Byte count.
    pub size_bytes: u64,
    /// BLAKE3, hex.
    pub blake3: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// `blake3:<hex>`.
    pub content_address: String,
    /// Backend holding the bytes.
    pub backend_id: String,
    /// Key in that backend.
    pub object_key: String,
    /// Retrieval tier.
    pub retrieval_tier: String,
    /// `recorded`, `verified` or `failed`.
    pub storage_status: String,
    /// Ingest time.
    pub created_at: Timestamp,
    /// Storage location id.
    #[serde(skip)]
    pub storage_location_id: String,
    /// Its package's status (a purged package's bytes are gone).
    #[serde(skip)]
    pub package_status: String,
}

/// A storage location, as verification walks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRecord {
    /// Location id.
    pub id: String,
    /// Its file.
    pub file_id: String,
    /// Backend.
    pub backend_id: String,
    /// Key.
    pub object_key: String,
    /// Expected size.
    pub size_bytes: u64,
    /// Expected BLAKE3, hex.
    pub blake3: String,
    /// Expected SHA-256, hex.
    pub sha256: String,
}

/// A legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldRecord {
    /// Hold id.
    pub hold_id: String,
    /// Why it was placed.
    pub reason: String,
    /// When.
    pub applied_at: Timestamp,
    /// By whom.
    pub applied_by: String,
    /// When lifted.
    pub released_at: Option<Timestamp>,
    /// By whom.
    pub released_by: Option<String>,
    /// Why lifted.
    pub release_reason: Option<String>,
}

/// A package's retention state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionRecord {
    /// The package.
    pub package_id: String,
    /// Its class.
    pub retention_class: String,
    /// Current expiry; `None` never expires.
    pub expires_at: Option<Timestamp>,
    /// Marked eligible for deletion.
    pub eligible_for_deletion: bool,
    /// When it was marked.
    pub eligible_at: Option<Timestamp>,
    /// Holds not yet released.
    pub active_holds: Vec<HoldRecord>,
    /// The purge, once it happened.
    pub purge: Option<PurgeRecord>,
}

/// A package's purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeRecord {
    /// When.
    pub purged_at: Timestamp,
    /// By whom.
    pub purged_by: String,
    /// The rule that allowed it.
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// A registered metadata schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaRecord {
    /// Id (UUID).
    pub id: String,
    /// Slug.
    pub slug: String,
    /// The JSON Schema.
    pub schema: serde_json::Value,
    /// Registration time.
    pub created_at: Timestamp,
}

pub(crate) fn timestamp(row: &AnyRow, column: &str) -> StoreResult<Timestamp> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(StoreError::corrupt)
}

pub(crate) fn opt_timestamp(row: &AnyRow, column: &str) -> StoreResult<Option<Timestamp>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| t.parse().map_err(StoreError::corrupt))
        .transpose()
}

/// A column that holds a count, never negative.
fn count(row: &AnyRow, column: &str) -> StoreResult<u64> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("{column} is {value}")))
}

pub(crate) fn package_from_row(row: &AnyRow) -> StoreResult<PackageRecord> {
    let metadata: String = row.try_get("metadata")?;
    Ok(PackageRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        producer: row.try_get("producer")?,
        subject: row.try_get("subject")?,
        retention_class: row.try_get("retention_class")?,
        metadata: serde_json::from_str(&metadata).map_err(StoreError::corrupt)?,
        metadata_schema_id: row.try_get("metadata_schema_id")?,
        status: row.try_get("status")?,
        manifest_digest: row.try_get("manifest_digest")?,
        created_at: timestamp(row, "created_at")?,
        finalized_at: opt_timestamp(row, "finalized_at")?,
        expires_at: opt_timestamp(row, "expires_at")?,
        purged_at: opt_timestamp(row, "purged_at")?,
        last_event_sequence: row.try_get("last_event_sequence")?,
        file_count: count(row, "file_count")?,
        total_bytes: count(row, "total_bytes")?,
        created_by: row.try_get("created_by")?,
        created_sequence: row.try_get("created_sequence")?,
    })
}

impl FileRecord {
    /// The view row `file.ingested` makes (see `views.rs`), built from the
    /// event itself: an upload answers with it without reading it back.
    pub fn recorded(file: &FileIngested, created_at: Timestamp) -> Self {
        Self {
            id: file.file_id.clone(),
            package_id: file.package_id.clone(),
            relative_path: file.relative_path.clone(),
            media_type: file.media_type.clone(),
            size_bytes: file.size_bytes,
            blake3: file.blake3.clone(),
            sha256: file.sha256.clone(),
            content_address: format!("{CONTENT_ADDRESS_PREFIX}{}", file.blake3),
            backend_id: file.backend_id.clone(),
            object_key: file.object_key.clone(),
            retrieval_tier: file.retrieval_tier.clone(),
            storage_status: storage_status::RECORDED.to_owned(),
            created_at,
            storage_location_id: file.storage_location_id.clone(),
            package_status: status::CREATED.to_owned(),
        }
    }
}

pub(crate) fn file_from_row(row: &AnyRow) -> StoreResult<FileRecord> {
    let size: i64 = row.try_get("size_bytes")?;
    Ok(FileRecord {
        id: row.try_get("id")?,
        package_id: row.try_get("package_id")?,
        relative_path: row.try_get("relative_path")?,
        media_type: row.try_get("media_type")?,
        size_bytes: u64::try_from(size).map_err(StoreError::corrupt)?,
        blake3: row.try_get("blake3")?,
        sha256: row.try_get("sha256")?,
        content_address: row.try_get("content_address")?,
        backend_id: row.try_get("backend_id")?,
        object_key: row.try_get("object_key")?,
        retrieval_tier: row.try_get("retrieval_tier")?,
        storage_status: row.try_get("storage_status")?,
        created_at: timestamp(row, "created_at")?,
        storage_location_id: row.try_get("storage_location_id")?,
        package_status: row.try_get("package_status")?,
    })
}

pub(crate) fn hold_from_row(row: &AnyRow) -> StoreResult<HoldRecord> {
    Ok(HoldRecord {
        hold_id: row.try_get("hold_id")?,
        reason: row.try_get("reason")?,
        applied_at: timestamp(row, "applied_at")?,
        applied_by: row.try_get("applied_by")?,
        released_at: opt_timestamp(row, "released_at")?,
        released_by: row.try_get("released_by")?,
        release_reason: row.try_get("release_reason")?,
    })
}

/// An API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Token id.
    pub id: String,
    /// Name (the actor of its events).
    pub name: String,
    /// `read`, `write` or `admin`.
    pub scope: String,
    /// Producers it may write; empty = any.
    pub producers: Vec<String>,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// BLAKE3 of the secret, hex.
    #[serde(skip)]
    pub secret_blake3: String,
}

pub(crate) fn token_from_row(row: &AnyRow) -> StoreResult<TokenRecord> {
    let producers: String = row.try_get("producers")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scope: row.try_get("scope")?,
        producers: serde_json::from_str(&producers).map_err(StoreError::corrupt)?,
        expires_at: opt_timestamp(row, "expires_at")?,
        created_at: timestamp(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        revoked_at: opt_timestamp(row, "revoked_at")?,
        secret_blake3: row.try_get("secret_blake3")?,
    })
}
