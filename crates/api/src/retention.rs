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
    /// `delete` classes: how long an eligible package waits before the
    /// lifecycle purges it, e.g. `7d`.
    #[serde(default)]
    pub purge_after: String,
    /// The same in seconds.
    #[serde(default)]
    pub purge_after_seconds: i64,
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
    /// The purge, once it happened.
    #[serde(default)]
    pub purge: Option<Purge>,
    /// The facts that decide the package's fate, in order, and one
    /// sentence.
    pub explanation: Explanation,
}

/// A package's purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Purge {
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub purged_at: Timestamp,
    /// By whom.
    pub purged_by: String,
    /// The rule that allowed it: `delete_after_eligible` (the lifecycle,
    /// for `delete` classes) or `explicit` (an admin).
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// What one explanation step is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExplanationStepKind {
    /// The class and the default it gave.
    Class,
    /// An extension.
    Extension,
    /// An active hold.
    Hold,
    /// Whether the package is eligible for deletion.
    Eligibility,
    /// When the purge is scheduled, or why there is none.
    Schedule,
    /// The purge itself.
    Purge,
}

/// One fact of an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExplanationStep {
    /// What it is about.
    pub kind: ExplanationStepKind,
    /// The fact in words.
    pub text: String,
    /// When, if it is an act or a date.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<Timestamp>,
    /// Who acted.
    pub actor: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

/// Why a package is kept, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    /// The facts, in the order they decide: class, extensions, holds,
    /// eligibility, schedule, purge.
    pub steps: Vec<ExplanationStep>,
    /// All of it in one sentence.
    pub sentence: String,
}

/// The answer to an explicit purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Purged {
    /// The package.
    #[schema(format = Uuid)]
    pub package_id: String,
    /// Its class.
    pub retention_class: String,
    /// The rule that allowed it.
    pub rule: String,
}

/// A package waiting for an admin's review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewItem {
    /// The package.
    pub package: crate::Package,
    /// When it became eligible for deletion.
    #[schema(value_type = String, format = DateTime)]
    pub eligible_at: Timestamp,
}

/// One page of `GET /v1/retention/review`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewPage {
    /// Eligible packages of `manual-review` classes, in creation order.
    pub items: Vec<ReviewItem>,
    /// Pass as `after` for the next page; null when there is none.
    pub next: Option<i64>,
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
