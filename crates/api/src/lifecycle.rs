//! The lifecycle's reports (`POST /v1/lifecycle/run`) and usage
//! (`GET /v1/usage`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Purged;

/// What collection did on one backend (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackendCollection {
    /// The backend.
    pub backend_id: String,
    /// Objects deleted, by reason (`purged`, `orphan`, `staging`,
    /// `unfinished_collection`).
    pub objects_by_reason: BTreeMap<String, u64>,
    /// Objects deleted.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Claims a stopped collector left, finished by this pass.
    pub claims_finished: u64,
    /// Staging leftovers of dead writers removed.
    pub staging_removed: u64,
    /// Objects that could not be deleted (retried by the next pass).
    pub failures: Vec<String>,
}

/// One lifecycle pass: sweep, purge, collect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LifecycleReport {
    /// Nothing was changed: this lists what a pass would do.
    pub dry_run: bool,
    /// Set when another process was running the lifecycle, so nothing ran.
    pub skipped: Option<String>,
    /// Packages newly marked eligible for deletion.
    pub marked_eligible: Vec<String>,
    /// Packages purged, each with its rule.
    pub purged: Vec<Purged>,
    /// Collection per backend.
    pub backends: Vec<BackendCollection>,
    /// Objects deleted on every backend.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// How long the pass took.
    pub duration_seconds: f64,
}

/// Files and bytes of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageGroup {
    /// The producer, class or backend.
    pub name: String,
    /// Files (logical) or distinct objects (physical).
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
}

/// What the next collection would delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reclaimable {
    /// Objects.
    pub objects: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Logical and physical bytes (`GET /v1/usage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Files and bytes of packages not purged, per producer.
    pub by_producer: Vec<UsageGroup>,
    /// The same per retention class.
    pub by_retention_class: Vec<UsageGroup>,
    /// Distinct stored objects and their bytes per backend, after
    /// deduplication.
    pub by_backend: Vec<UsageGroup>,
    /// What the next collection would delete.
    pub reclaimable: Reclaimable,
}
