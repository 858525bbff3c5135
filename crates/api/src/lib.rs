//! The wire model of artifact-store's HTTP API.
//!
//! Every JSON body the API reads or writes is defined here, once: the
//! server serializes these types, the CLI deserializes them, and the
//! OpenAPI document's schemas are derived from them (`ToSchema`), with the
//! constraints the registry enforces (patterns, lengths, enums) declared
//! on the fields. The registry's records never reach the wire directly: the
//! server converts them into these types, so a change to a view's row
//! cannot change what clients see by accident.
//!
//! Adding an endpoint (docs/architecture.md, "The API model"): its bodies
//! go in the module of its area here; its handler, with its
//! `#[utoipa::path]`, in the server's `api/` folder; and its route in the
//! one `routes!` table, which registers it in the router and the document
//! together.

pub mod events;
pub mod files;
pub mod health;
pub mod lifecycle;
pub mod log;
pub mod packages;
pub mod problem;
pub mod retention;
pub mod rules;
pub mod schemas;
pub mod storage;

pub use events::{Event, EventList, EventPage};
pub use files::{File, FileList, FilePage, StorageStatus};
pub use health::{ComponentHealth, Health, HealthStatus};
pub use lifecycle::{BackendCollection, LifecycleReport, Reclaimable, Usage, UsageGroup};
pub use log::{CheckpointSigned, ConsistencyProof, InclusionProof};
pub use packages::{CreatePackage, Finalized, Package, PackagePage, PackageStatus};
pub use problem::Problem;
pub use retention::{
    Explanation, ExplanationStep, ExplanationStepKind, ExtendRetention, Hold, HoldCreated, Purge,
    Purged, Reason, Retention, RetentionClass, RetentionClassList, ReviewItem, ReviewPage,
    SweepResult,
};
pub use schemas::{MetadataSchema, SchemaRegistered};
pub use storage::{VerificationResult, VerifyReport};

/// The manifest's JSON form (`GET /v1/packages/{id}/manifest?format=json`):
/// the core's manifest type, whose canonical CBOR is the content address.
pub use artifactstore_core::manifest::Manifest;
