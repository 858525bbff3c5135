//! Health: the database and every backend probed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The summary of a health answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Everything answered.
    Ok,
    /// Something did not.
    Unhealthy,
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ComponentHealth {
    /// `database` or the backend id.
    pub name: String,
    /// Answered in time.
    pub ok: bool,
    /// Why not.
    pub detail: Option<String>,
}

/// The health answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unhealthy`.
    pub status: HealthStatus,
    /// Database and every backend answered.
    pub ok: bool,
    /// The database probe.
    pub database: ComponentHealth,
    /// Each backend's probe.
    pub backends: Vec<ComponentHealth>,
    /// Storage locations marked failed by verification.
    pub failed_locations: i64,
    /// Newest sequence in the log.
    pub head_sequence: Option<i64>,
}
