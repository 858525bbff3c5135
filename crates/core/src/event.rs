//! Events: the append-only log's rows, their payloads, and the hash chain
//! that makes the log tamper-evident.
//!
//! Every payload is canonical CBOR of a map with a `v` field (its version),
//! so a later version can still decode the old rows it finds in the log.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cbor::{self, CborError, Value};
use crate::digest::Digest32;
use crate::timestamp::Timestamp;

/// The event type names (`v1.` is the naming generation, not the payload
/// version).
pub mod types {
    /// A package was created.
    pub const PACKAGE_CREATED: &str = "v1.package.created";
    /// A file's bytes were stored and recorded.
    pub const FILE_INGESTED: &str = "v1.file.ingested";
    /// A package was finalized; the payload is its canonical CBOR manifest.
    pub const PACKAGE_FINALIZED: &str = "v1.package.finalized";
    /// A package's class default expiry was recorded.
    pub const RETENTION_DEFAULT_APPLIED: &str = "v1.retention.default_applied";
    /// A package's expiry moved later.
    pub const RETENTION_EXTENDED: &str = "v1.retention.extended";
    /// A legal hold was placed.
    pub const RETENTION_HOLD_APPLIED: &str = "v1.retention.hold_applied";
    /// A legal hold was lifted.
    pub const RETENTION_HOLD_RELEASED: &str = "v1.retention.hold_released";
    /// A package became eligible for deletion.
    pub const RETENTION_DELETION_ELIGIBLE: &str = "v1.retention.deletion_eligible";
    /// A stored object was re-read and checked.
    pub const STORAGE_LOCATION_VERIFIED: &str = "v1.storage.location_verified";
    /// A metadata JSON Schema was registered.
    pub const METADATA_SCHEMA_REGISTERED: &str = "v1.metadata_schema.registered";
    /// An API token was created (only its hash is recorded).
    pub const TOKEN_CREATED: &str = "v1.token.created";
    /// An API token was revoked.
    pub const TOKEN_REVOKED: &str = "v1.token.revoked";

    /// The retention events, as `retention_history` lists them.
    pub const RETENTION: [&str; 5] = [
        RETENTION_DEFAULT_APPLIED,
        RETENTION_EXTENDED,
        RETENTION_HOLD_APPLIED,
        RETENTION_HOLD_RELEASED,
        RETENTION_DELETION_ELIGIBLE,
    ];
}

/// What a subject id names.
pub mod subjects {
    /// A package id.
    pub const PACKAGE: &str = "package";
    /// A storage location id.
    pub const STORAGE_LOCATION: &str = "storage_location";
    /// A metadata schema id.
    pub const METADATA_SCHEMA: &str = "metadata_schema";
    /// An API token id.
    pub const TOKEN: &str = "token";
}

/// An event before the log gives it a sequence, a time and a chain hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// One of [`types`].
    pub event_type: String,
    /// One of [`subjects`].
    pub subject_kind: String,
    /// The id of the subject.
    pub subject_id: String,
    /// Who caused it.
    pub actor: String,
    /// Canonical CBOR.
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// An event whose payload is `payload` encoded as canonical CBOR.
    pub fn new<P: Serialize>(
        event_type: &str,
        subject_kind: &str,
        subject_id: impl Into<String>,
        actor: &str,
        payload: &P,
    ) -> Result<Self, CborError> {
        Ok(Self {
            event_type: event_type.to_owned(),
            subject_kind: subject_kind.to_owned(),
            subject_id: subject_id.into(),
            actor: actor.to_owned(),
            payload: cbor::to_canonical(payload)?,
        })
    }
}

/// One row of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the log, 1, 2, …, without gaps.
    pub sequence: i64,
    /// One of [`types`] (or a type from a newer version).
    pub event_type: String,
    /// What `subject_id` names.
    pub subject_kind: String,
    /// The subject.
    pub subject_id: String,
    /// Who caused it.
    pub actor: String,
    /// Canonical CBOR.
    pub payload: Vec<u8>,
    /// BLAKE3 of `payload`.
    pub payload_digest: Digest32,
    /// When it was appended.
    pub created_at: Timestamp,
    /// [`chain_hash`] over the previous row's chain hash and this row.
    pub chain_hash: Digest32,
}

/// The chain hash of the row before the first.
pub const GENESIS_CHAIN_HASH: Digest32 = Digest32([0; 32]);

/// The chain hash of a row: BLAKE3 over the canonical CBOR array of the
/// previous chain hash and every field of `event` but its own chain hash, so
/// editing, removing or reordering any row breaks every hash after it.
pub fn chain_hash(previous: &Digest32, event: &Event) -> Digest32 {
    let fields = Value::Array(vec![
        Value::Bytes(previous.0.to_vec()),
        Value::Integer(event.sequence.into()),
        Value::Text(event.event_type.clone()),
        Value::Text(event.subject_kind.clone()),
        Value::Text(event.subject_id.clone()),
        Value::Text(event.actor.clone()),
        Value::Text(event.created_at.to_string()),
        Value::Bytes(event.payload_digest.0.to_vec()),
    ]);
    // An array of text, bytes and integers always encodes.
    let encoded = cbor::encode_canonical_no_floats(&fields).unwrap_or_default();
    Digest32::blake3_of(&encoded)
}

impl Event {
    /// Builds the row the log will store for `new` at `sequence`.
    pub fn seal(new: NewEvent, sequence: i64, created_at: Timestamp, previous: &Digest32) -> Self {
        let mut event = Self {
            sequence,
            payload_digest: Digest32::blake3_of(&new.payload),
            event_type: new.event_type,
            subject_kind: new.subject_kind,
            subject_id: new.subject_id,
            actor: new.actor,
            payload: new.payload,
            created_at,
            chain_hash: GENESIS_CHAIN_HASH,
        };
        event.chain_hash = chain_hash(previous, &event);
        event
    }

    /// Recomputes this row's chain hash from `previous`.
    pub fn expected_chain_hash(&self, previous: &Digest32) -> Digest32 {
        chain_hash(previous, self)
    }

    /// Decodes the payload as `P`, checking its version.
    pub fn decode_payload<P: Payload>(&self) -> Result<P, PayloadError> {
        P::decode(&self.payload)
    }

    /// The payload as JSON (for the API and the CLI).
    pub fn payload_json(&self) -> Result<serde_json::Value, CborError> {
        cbor::to_json(&cbor::decode(&self.payload)?)
    }
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not CBOR of the expected shape.
    #[error("malformed payload: {0}")]
    Malformed(#[from] CborError),
    /// Written by a version this build does not know.
    #[error("payload version {found} is not supported (this build reads up to {supported})")]
    UnsupportedVersion {
        /// Version in the payload.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
}

/// A versioned payload.
pub trait Payload: Serialize + DeserializeOwned {
    /// The version this build writes.
    const VERSION: u32;
    /// The version recorded in this value.
    fn version(&self) -> u32;

    /// Decodes and checks the version. Older versions would be migrated
    /// here, one step at a time, when a version 2 exists.
    fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let value: Self = cbor::from_cbor(bytes)?;
        if value.version() > Self::VERSION {
            return Err(PayloadError::UnsupportedVersion {
                found: value.version(),
                supported: Self::VERSION,
            });
        }
        Ok(value)
    }
}

macro_rules! payload_v1 {
    ($name:ident) => {
        impl Payload for $name {
            const VERSION: u32 = 1;
            fn version(&self) -> u32 {
                self.v
            }
        }
    };
}

/// `v1.package.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageCreated {
    /// Payload version.
    pub v: u32,
    /// New package id.
    pub package_id: String,
    /// Package name.
    pub name: String,
    /// Who produced it (pipeline, team).
    pub producer: String,
    /// What it is about.
    pub subject: String,
    /// Retention class id.
    pub retention_class: String,
    /// User metadata (a CBOR map, no floats).
    pub metadata: Value,
    /// Schema the metadata was validated against.
    pub metadata_schema_id: Option<String>,
}
payload_v1!(PackageCreated);

/// `v1.retention.default_applied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionDefaultApplied {
    /// Payload version.
    pub v: u32,
    /// The package.
    pub package_id: String,
    /// Its class.
    pub retention_class: String,
    /// The class duration used, in seconds; `None` never expires.
    pub default_duration_seconds: Option<i64>,
    /// The resulting expiry.
    pub expires_at: Option<Timestamp>,
}
payload_v1!(RetentionDefaultApplied);

/// `v1.file.ingested`: everything replay needs to rebuild the file and its
/// storage location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIngested {
    /// Payload version.
    pub v: u32,
    /// New file id.
    pub file_id: String,
    /// Its package.
    pub package_id: String,
    /// Validated relative path.
    pub relative_path: String,
    /// Media type as given.
    pub media_type: String,
    /// Byte count.
    pub size_bytes: u64,
    /// BLAKE3, hex.
    pub blake3: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// New storage location id.
    pub storage_location_id: String,
    /// Backend holding the bytes.
    pub backend_id: String,
    /// Key in that backend.
    pub object_key: String,
    /// `hot` for now; colder tiers later.
    pub retrieval_tier: String,
}
payload_v1!(FileIngested);

/// `v1.retention.extended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionExtended {
    /// Payload version.
    pub v: u32,
    /// The package.
    pub package_id: String,
    /// Expiry before.
    pub previous_expires_at: Option<Timestamp>,
    /// Expiry after (strictly later).
    pub new_expires_at: Timestamp,
    /// Why.
    pub reason: String,
}
payload_v1!(RetentionExtended);

/// `v1.retention.hold_applied` and `v1.retention.hold_released`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionHold {
    /// Payload version.
    pub v: u32,
    /// The package.
    pub package_id: String,
    /// The hold.
    pub hold_id: String,
    /// Why.
    pub reason: String,
}
payload_v1!(RetentionHold);

/// `v1.retention.deletion_eligible`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionEligible {
    /// Payload version.
    pub v: u32,
    /// The package.
    pub package_id: String,
    /// The expiry that passed.
    pub expires_at: Option<Timestamp>,
    /// Why now.
    pub reason: String,
}
payload_v1!(DeletionEligible);

/// `v1.storage.location_verified`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationVerified {
    /// Payload version.
    pub v: u32,
    /// The location checked.
    pub storage_location_id: String,
    /// Its file.
    pub file_id: String,
    /// Its backend.
    pub backend_id: String,
    /// Its key.
    pub object_key: String,
    /// Size and both digests matched.
    pub ok: bool,
    /// What was wrong, when not ok.
    pub failure: Option<String>,
    /// Bytes read.
    pub actual_size_bytes: Option<u64>,
    /// BLAKE3 of the bytes read, hex.
    pub actual_blake3: Option<String>,
    /// SHA-256 of the bytes read, hex.
    pub actual_sha256: Option<String>,
}
payload_v1!(LocationVerified);

/// `v1.metadata_schema.registered`. The schema is kept as its RFC 8785
/// text because JSON Schemas may hold decimals, which payloads may not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataSchemaRegistered {
    /// Payload version.
    pub v: u32,
    /// New schema id.
    pub schema_id: String,
    /// The slug packages name it by.
    pub slug: String,
    /// The schema, as JCS text.
    pub schema_jcs: String,
}
payload_v1!(MetadataSchemaRegistered);

/// `v1.token.created`. The secret itself is never recorded: only its
/// BLAKE3, which is what a presented token is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreated {
    /// Payload version.
    pub v: u32,
    /// Token id.
    pub token_id: String,
    /// Name, recorded as the actor of the token's events.
    pub name: String,
    /// `read`, `write` or `admin`.
    pub scope: String,
    /// Producers the token may create and write packages of; empty = any.
    pub producers: Vec<String>,
    /// When it stops working; `None` never.
    pub expires_at: Option<Timestamp>,
    /// BLAKE3 of the secret, hex.
    pub secret_blake3: String,
}
payload_v1!(TokenCreated);

/// `v1.token.revoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRevoked {
    /// Payload version.
    pub v: u32,
    /// Token id.
    pub token_id: String,
}
payload_v1!(TokenRevoked);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sequence: i64, previous: &Digest32) -> Event {
        let payload = RetentionHold {
            v: 1,
            package_id: "p".into(),
            hold_id: "h".into(),
            reason: "audit".into(),
        };
        let new = NewEvent::new(
            types::RETENTION_HOLD_APPLIED,
            subjects::PACKAGE,
            "p",
            "ops",
            &payload,
        )
        .unwrap();
        Event::seal(
            new,
            sequence,
            "2026-01-01T00:00:00Z".parse().unwrap(),
            previous,
        )
    }

    #[test]
    fn payload_digest_is_blake3_of_payload_and_chain_links() {
        let first = sample(1, &GENESIS_CHAIN_HASH);
        assert_eq!(first.payload_digest, Digest32::blake3_of(&first.payload));
        let second = sample(2, &first.chain_hash);
        assert_eq!(
            second.expected_chain_hash(&first.chain_hash),
            second.chain_hash
        );
        assert_ne!(
            second.expected_chain_hash(&GENESIS_CHAIN_HASH),
            second.chain_hash
        );
        let mut edited = second.clone();
        edited.actor = "mallory".into();
        assert_ne!(
            edited.expected_chain_hash(&first.chain_hash),
            second.chain_hash
        );
    }

    #[test]
    fn payloads_round_trip_and_refuse_newer_versions() {
        let event = sample(1, &GENESIS_CHAIN_HASH);
        let hold: RetentionHold = event.decode_payload().unwrap();
        assert_eq!(hold.reason, "audit");
        let newer = RetentionHold { v: 2, ..hold };
        let bytes = cbor::to_canonical(&newer).unwrap();
        assert!(matches!(
            RetentionHold::decode(&bytes),
            Err(PayloadError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        ));
    }
}
