//! Files: one file with its storage location, and a package's list.

use artifactstore_core::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a file's stored copy stands with verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageStatus {
    /// Written and recorded, not yet verified.
    Recorded,
    /// Read back and matched its digests.
    Verified,
    /// Missing or changed when last verified.
    Failed,
}

impl StorageStatus {
    /// The name on the wire and in the views.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recorded => "recorded",
            Self::Verified => "verified",
            Self::Failed => "failed",
        }
    }

    /// The status a view names, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Recorded, Self::Verified, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// A file with its storage location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct File {
    /// Id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its package.
    #[schema(format = Uuid)]
    pub package_id: String,
    /// Path in the package.
    pub relative_path: String,
    /// Media type.
    pub media_type: String,
    /// Byte count.
    pub size_bytes: u64,
    /// BLAKE3, hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub blake3: String,
    /// SHA-256, hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// `blake3:<hex>`.
    #[schema(pattern = "^blake3:[0-9a-f]{64}$")]
    pub content_address: String,
    /// Backend holding the bytes.
    pub backend_id: String,
    /// Key in that backend.
    pub object_key: String,
    /// Retrieval tier.
    pub retrieval_tier: String,
    /// Where verification left the stored copy.
    pub storage_status: StorageStatus,
    /// Ingest time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// The files of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileList {
    /// Sorted by path.
    pub items: Vec<File>,
}

/// One page of `GET /v1/files?sha256=…` or `?blake3=…`: every file, in
/// any package, holding those bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FilePage {
    /// The files, in the order they were recorded.
    pub items: Vec<File>,
    /// Pass as `after` for the next page; null when there is none.
    pub next: Option<i64>,
}
