//! Verification of stored bytes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The outcome for one storage location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerificationResult {
    /// The location.
    #[schema(format = Uuid)]
    pub storage_location_id: String,
    /// Its file.
    #[schema(format = Uuid)]
    pub file_id: String,
    /// Its backend.
    pub backend_id: String,
    /// Size and both digests matched.
    pub ok: bool,
    /// What was wrong.
    pub failure: Option<String>,
}

/// The outcome of a verification run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    /// Locations checked.
    pub checked: u64,
    /// Locations that failed.
    pub failed: u64,
    /// Every result, in location-id order.
    pub results: Vec<VerificationResult>,
}
