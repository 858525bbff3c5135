//! Packages: the create body, a package, a page of them, the finalize
//! answer.

use artifactstore_core::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST /v1/packages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePackage {
    /// Package name.
    #[schema(schema_with = crate::rules::label)]
    pub name: String,
    /// Who produced it (pipeline, team).
    #[schema(schema_with = crate::rules::label)]
    pub producer: String,
    /// What it is about.
    #[schema(schema_with = crate::rules::label)]
    pub subject: String,
    /// A configured retention class (`GET /v1/retention-classes`).
    pub retention_class: String,
    /// A JSON object; numbers must be integers, strings and keys hold no
    /// NUL. Absent or null means `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Slug of a registered metadata schema the metadata must satisfy.
    #[serde(default)]
    #[schema(schema_with = crate::rules::optional_slug)]
    pub metadata_schema: Option<String>,
}

/// Where a package is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PackageStatus {
    /// Open for files.
    Created,
    /// Immutable, with a manifest.
    Finalized,
    /// Purged: its records and manifest stay, its bytes are gone.
    Purged,
}

impl PackageStatus {
    /// The name on the wire and in the views.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Finalized => "finalized",
            Self::Purged => "purged",
        }
    }

    /// The status a view names, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Created, Self::Finalized, Self::Purged]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// A package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Package {
    /// Id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Name.
    pub name: String,
    /// Producer.
    pub producer: String,
    /// Subject.
    pub subject: String,
    /// Retention class id.
    pub retention_class: String,
    /// User metadata (a JSON object).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Schema the metadata was validated against.
    #[schema(format = Uuid)]
    pub metadata_schema_id: Option<String>,
    /// `created`, `finalized` or `purged`.
    pub status: PackageStatus,
    /// `blake3:<hex>` of the manifest once finalized.
    pub manifest_digest: Option<String>,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Finalize time.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finalized_at: Option<Timestamp>,
    /// Current expiry; null never expires.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// When it was purged; null while it is not.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub purged_at: Option<Timestamp>,
    /// Last event that touched the package.
    pub last_event_sequence: i64,
    /// Its files.
    #[serde(default)]
    pub file_count: u64,
    /// Their bytes, summed.
    #[serde(default)]
    pub total_bytes: u64,
}

/// One page of `GET /v1/packages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PackagePage {
    /// The packages, in creation order.
    pub items: Vec<Package>,
    /// Pass as `after` for the next page; null when there is none.
    pub next: Option<i64>,
}

/// The answer to finalizing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Finalized {
    /// The package.
    #[schema(format = Uuid)]
    pub package_id: String,
    /// `blake3:<hex>` of the canonical CBOR manifest.
    pub manifest_digest: String,
}
