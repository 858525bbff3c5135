//! The package manifest: what a finalized package is, encoded as canonical
//! CBOR. Its BLAKE3 is the package's content address, and the
//! `v1.package.finalized` event's payload is exactly these bytes.

use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError, Value};
use crate::digest::ContentAddress;
use crate::jcs;
use crate::timestamp::Timestamp;

/// The manifest version this build writes.
pub const MANIFEST_VERSION: u32 = 1;

/// A finalized package's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version.
    pub manifest_version: u32,
    /// The package's fields.
    pub package: ManifestPackage,
    /// Every file, sorted by `relative_path`.
    pub files: Vec<ManifestFile>,
    /// Where each file's bytes are, in the order of `files`.
    pub storage_receipts: Vec<StorageReceipt>,
    /// Retention at finalize time.
    pub retention: RetentionSummary,
    /// Who did what, and where in the log.
    pub provenance: Provenance,
}

/// The package part of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPackage {
    /// Package id.
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
    pub metadata: Value,
    /// Schema the metadata was validated against.
    pub metadata_schema_id: Option<String>,
    /// Creation time (the `v1.package.created` event's).
    pub created_at: Timestamp,
    /// Finalize time.
    pub finalized_at: Timestamp,
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// File id.
    pub file_id: String,
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
}

/// Where one file's bytes were stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageReceipt {
    /// File id.
    pub file_id: String,
    /// Storage location id.
    pub storage_location_id: String,
    /// Backend id.
    pub backend_id: String,
    /// Key in the backend.
    pub object_key: String,
    /// `blake3:<hex>`.
    pub content_address: String,
    /// Retrieval tier.
    pub retrieval_tier: String,
}

/// Retention at finalize time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSummary {
    /// Class id.
    pub retention_class: String,
    /// Expiry then; `None` never expires.
    pub expires_at: Option<Timestamp>,
    /// Holds active then.
    pub active_hold_ids: Vec<String>,
}

/// Who and where in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Actor of `v1.package.created`.
    pub created_by: String,
    /// Actor of `v1.package.finalized`.
    pub finalized_by: String,
    /// Sequence of the creation event.
    pub created_sequence: i64,
    /// Last sequence that touched the package before finalize.
    pub last_event_sequence: i64,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not canonical CBOR of a manifest.
    #[error("malformed manifest: {0}")]
    Malformed(#[from] CborError),
    /// A newer format.
    #[error("manifest version {0} is not supported")]
    UnsupportedVersion(u32),
    /// The JSON projection failed.
    #[error("manifest JSON projection failed: {0}")]
    Json(#[from] jcs::JcsError),
}

impl Manifest {
    /// The canonical CBOR bytes.
    pub fn encode(&self) -> Result<Vec<u8>, CborError> {
        cbor::to_canonical(self)
    }

    /// Decodes canonical CBOR bytes (non-canonical bytes are refused: they
    /// would have another content address).
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let value = cbor::decode_canonical(bytes)?;
        // Every manifest has a JSON form: metadata came from JSON, so tags,
        // byte strings, non-text keys or bignums in it mean a forgery.
        cbor::to_json(&value)?;
        let manifest: Self = cbor::from_cbor(bytes)?;
        if manifest.manifest_version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(manifest.manifest_version));
        }
        // Canonical CBOR is not enough: a field's text may have another
        // spelling of the same value (`t` for `T` in a timestamp) that the
        // typed model normalises. Only bytes the model writes back exactly
        // keep their content address.
        if manifest.encode()? != bytes {
            return Err(ManifestError::Malformed(CborError::NotCanonical));
        }
        Ok(manifest)
    }

    /// The RFC 8785 JSON projection of canonical manifest bytes.
    pub fn json_projection(bytes: &[u8]) -> Result<Vec<u8>, ManifestError> {
        let json = cbor::to_json(&cbor::decode_canonical(bytes)?)?;
        Ok(jcs::canonicalize(&json)?)
    }

    /// The content address of canonical manifest bytes.
    pub fn content_address(bytes: &[u8]) -> ContentAddress {
        ContentAddress::of(bytes)
    }
}
