//! Retention: classes, a package's state, holds, extensions, sweeps.

use artifactstore_core::retention::DeletionStrategy;
use artifactstore_core::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A configured retention class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionClass {
    /// The id packages name.
    pub id: String,
    /// How long packages are kept after creation, e.g. `90d`; null: forever.
    pub default_duration: Option<String>,
    /// The same in seconds.
    pub default_duration_seconds: Option<i64>,
    /// What happens after expiry.
    #[schema(value_type = String, pattern = "^(delete|manual-review|never)$")]
    pub deletion_strategy: DeletionStrategy,
}

/// The configured retention classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionClassList {
    /// By id.
    pub items: Vec<RetentionClass>,
}

/// A legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Hold {
    /// Hold id.
    #[schema(format = Uuid)]
    pub hold_id: String,
    /// Why it was placed.
    pub reason: String,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub applied_at: Timestamp,
    /// By whom.
    pub applied_by: String,
    /// When lifted.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub released_at: Option<Timestamp>,
    /// By whom.
    pub released_by: Option<String>,
    /// Why lifted.
    pub release_reason: Option<String>,
}

/// A package's retention state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Retention {
    /// The package.
    #[schema(format = Uuid)]
    pub package_id: String,
    /// Its class.
    pub retention_class: String,
    /// Current expiry; null never expires.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Marked eligible for deletion.
    pub eligible_for_deletion: bool,
    /// When it was marked.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub eligible_at: Option<Timestamp>,
    /// Holds not yet released.
    pub active_holds: Vec<Hold>,
}

/// Body of `POST /v1/packages/{id}/retention/extend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRetention {
    /// The new expiry (RFC 3339); strictly later than the current one.
    #[schema(value_type = String, format = DateTime)]
    pub new_expires_at: Timestamp,
    /// Why.
    #[schema(schema_with = crate::rules::reason)]
    pub reason: String,
}

/// Body of the hold endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why.
    #[schema(schema_with = crate::rules::reason)]
    pub reason: String,
}

/// The answer to placing a hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HoldCreated {
    /// The new hold.
    #[schema(format = Uuid)]
    pub hold_id: String,
}

/// The answer to a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SweepResult {
    /// Packages newly marked eligible for deletion.
    pub marked: Vec<String>,
}
