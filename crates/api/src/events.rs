//! The event log: one event, a page, a package's list.

use artifactstore_core::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One event of the log, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Position in the log, strictly increasing.
    #[schema(minimum = 1)]
    pub sequence: i64,
    /// E.g. `v1.package.created`.
    pub event_type: String,
    /// What `subject_id` names (`package`, `storage_location`,
    /// `metadata_schema`).
    pub subject_kind: String,
    /// The subject.
    pub subject_id: String,
    /// Who caused it.
    pub actor: String,
    /// When it was appended (RFC 3339 UTC).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// `blake3:<hex>` of the canonical CBOR payload.
    #[schema(pattern = "^blake3:[0-9a-f]{64}$")]
    pub payload_digest: String,
    /// The CBOR payload as JSON (for `v1.package.finalized`, the
    /// manifest); null if it cannot be shown as JSON.
    #[schema(value_type = Option<Object>)]
    pub payload: serde_json::Value,
}

/// A page of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// Ascending by sequence.
    pub items: Vec<Event>,
    /// The last sequence returned (or `since` when none): the next `since`.
    #[schema(minimum = 0)]
    pub next: i64,
}

/// Events of one package, in log order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    /// In log order.
    pub items: Vec<Event>,
}

/// One message of `GET /v1/events/stream` (Server-Sent Events), as its
/// fields. Keep-alive comments carry no fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamMessage {
    /// The event's sequence (absent on the `error` message).
    #[schema(pattern = "^[0-9]+$")]
    pub id: Option<String>,
    /// The event type, or `error` for the message that ends a stream which
    /// cannot go on.
    pub event: String,
    /// An [`Event`] as JSON; for `error`, a problem (RFC 9457) as JSON.
    pub data: String,
}
