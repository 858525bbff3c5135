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
    /// A package was purged: its bytes may go, its records stay.
    pub const PACKAGE_PURGED: &str = "v1.package.purged";
    /// The collector deleted a stored object.
    pub const STORAGE_OBJECT_DELETED: &str = "v1.storage.object_deleted";
    /// The server signed a checkpoint of the log's Merkle tree.
    pub const LOG_CHECKPOINT_SIGNED: &str = "v1.log.checkpoint_signed";

    /// Every event type (the web UI's live event log listens for each).
    pub const ALL: [&str; 15] = [
        PACKAGE_CREATED,
        FILE_INGESTED,
        PACKAGE_FINALIZED,
        RETENTION_DEFAULT_APPLIED,
        RETENTION_EXTENDED,
        RETENTION_HOLD_APPLIED,
        RETENTION_HOLD_RELEASED,
        RETENTION_DELETION_ELIGIBLE,
        STORAGE_LOCATION_VERIFIED,
        METADATA_SCHEMA_REGISTERED,
        TOKEN_CREATED,
        TOKEN_REVOKED,
        PACKAGE_PURGED,
        STORAGE_OBJECT_DELETED,
        LOG_CHECKPOINT_SIGNED,
    ];

    /// The retention events, as `retention_history` lists them.
    pub const RETENTION: [&str; 6] = [
        RETENTION_DEFAULT_APPLIED,
        RETENTION_EXTENDED,
        RETENTION_HOLD_APPLIED,
        RETENTION_HOLD_RELEASED,
        RETENTION_DELETION_ELIGIBLE,
        PACKAGE_PURGED,
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
    /// A stored object, by its key (keys are content addresses, the same
    /// on every backend; the payload names the backend).
    pub const STORAGE_OBJECT: &str = "storage_object";
    /// The log itself, by its origin (the checkpoints' first line).
    pub const LOG: &str = "log";
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
    /// The event `payload` describes: its type, subject kind and subject id
    /// come from the payload's type ([`Payload`]), so they cannot disagree.
    pub fn of<P: Payload>(payload: &P, actor: &str) -> Result<Self, CborError> {
        Self::new(
            P::EVENT_TYPE,
            P::SUBJECT_KIND,
            payload.subject_id(),
            actor,
            payload,
        )
    }

    /// `v1.package.finalized` of `package_id`, whose payload is the
    /// manifest's canonical CBOR itself (so the event's payload digest is
    /// the package's content address).
    pub fn finalized(package_id: &str, actor: &str, manifest_cbor: Vec<u8>) -> Self {
        Self {
            event_type: types::PACKAGE_FINALIZED.to_owned(),
            subject_kind: subjects::PACKAGE.to_owned(),
            subject_id: package_id.to_owned(),
            actor: actor.to_owned(),
            payload: manifest_cbor,
        }
    }

    /// An event whose payload is `payload` encoded as canonical CBOR, with
    /// its type and subject given by the caller (a test writing odd rows,
    /// or a tool generating a log); [`NewEvent::of`] is the usual way.
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
    let mut fields = vec![Value::Bytes(previous.0.to_vec())];
    fields.extend(event.leaf_fields());
    // An array of text, bytes and integers always encodes.
    let encoded = cbor::encode_canonical_no_floats(&Value::Array(fields)).unwrap_or_default();
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

    /// The row's leaf in the log's Merkle tree (docs/architecture.md, "The
    /// Merkle tree"): the canonical CBOR array `[sequence, event_type,
    /// subject_kind, subject_id, actor, created_at, payload_digest]`, the
    /// chain hash's fields without the link to the row before. The payload
    /// is in it by its BLAKE3, so a leaf stays small whatever the payload.
    ///
    /// These bytes are a published format: proofs handed to auditors
    /// depend on them. Never change them.
    pub fn leaf_bytes(&self) -> Vec<u8> {
        // An array of text, bytes and integers always encodes.
        cbor::encode_canonical_no_floats(&Value::Array(self.leaf_fields())).unwrap_or_default()
    }

    fn leaf_fields(&self) -> Vec<Value> {
        vec![
            Value::Integer(self.sequence.into()),
            Value::Text(self.event_type.clone()),
            Value::Text(self.subject_kind.clone()),
            Value::Text(self.subject_id.clone()),
            Value::Text(self.actor.clone()),
            Value::Text(self.created_at.to_string()),
            Value::Bytes(self.payload_digest.0.to_vec()),
        ]
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

/// An event as its leaf in the Merkle tree describes it: every field but
/// the payload (by its digest) and the chain hash. What an offline
/// verifier reads back from leaf bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// Position in the log.
    pub sequence: i64,
    /// Event type.
    pub event_type: String,
    /// What the subject id names.
    pub subject_kind: String,
    /// The subject.
    pub subject_id: String,
    /// Who caused it.
    pub actor: String,
    /// When it was appended.
    pub created_at: Timestamp,
    /// BLAKE3 of the payload.
    pub payload_digest: Digest32,
}

impl Leaf {
    /// Reads leaf bytes ([`Event::leaf_bytes`]); refuses anything that is
    /// not exactly the bytes its fields encode to.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let malformed = |why: &str| PayloadError::Manifest(format!("malformed leaf: {why}"));
        let Value::Array(fields) = cbor::decode(bytes)? else {
            return Err(malformed("not an array"));
        };
        let [sequence, event_type, subject_kind, subject_id, actor, created_at, digest] =
            <[Value; 7]>::try_from(fields).map_err(|_| malformed("not 7 fields"))?;
        let text = |value: Value| match value {
            Value::Text(text) => Ok(text),
            _ => Err(malformed("a text field is not text")),
        };
        let sequence = match sequence {
            Value::Integer(n) => i64::try_from(n).map_err(|_| malformed("bad sequence"))?,
            _ => return Err(malformed("sequence is not an integer")),
        };
        let digest = match digest {
            Value::Bytes(bytes) => bytes
                .try_into()
                .map(Digest32)
                .map_err(|_| malformed("payload digest is not 32 bytes"))?,
            _ => return Err(malformed("payload digest is not bytes")),
        };
        let leaf = Self {
            sequence,
            event_type: text(event_type)?,
            subject_kind: text(subject_kind)?,
            subject_id: text(subject_id)?,
            actor: text(actor)?,
            created_at: text(created_at)?
                .parse()
                .map_err(|_| malformed("created_at is not a timestamp"))?,
            payload_digest: digest,
        };
        let event = Event {
            sequence: leaf.sequence,
            event_type: leaf.event_type.clone(),
            subject_kind: leaf.subject_kind.clone(),
            subject_id: leaf.subject_id.clone(),
            actor: leaf.actor.clone(),
            payload: Vec::new(),
            payload_digest: leaf.payload_digest,
            created_at: leaf.created_at,
            chain_hash: GENESIS_CHAIN_HASH,
        };
        if event.leaf_bytes() != bytes {
            return Err(malformed("not in canonical form"));
        }
        Ok(leaf)
    }
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not CBOR of the expected shape.
    #[error("malformed payload: {0}")]
    Malformed(#[from] CborError),
    /// Not a manifest (`v1.package.finalized`).
    #[error("malformed manifest payload: {0}")]
    Manifest(String),
    /// Written by a version this build does not know.
    #[error("payload version {found} is not supported (this build reads up to {supported})")]
    UnsupportedVersion {
        /// Version in the payload.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
}

/// Only the version of a payload: read first, so that a payload of a newer
/// version (whose fields this build does not know) is reported as such,
/// not as malformed.
#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// A versioned payload of one event type.
///
/// How to change a payload: add a version. Keep the structure of the old
/// version (renamed, e.g. `PackageCreatedV1`), give the current one the
/// next `VERSION`, and in [`Payload::decode`] decode older versions as
/// their own type and convert them one step at a time (v1 → v2 → …), so
/// the log's old rows keep replaying to the same views. Never change what
/// an existing version means: its bytes are in logs and in checksums.
pub trait Payload: Serialize + DeserializeOwned {
    /// The event type it is the payload of (one of [`types`]).
    const EVENT_TYPE: &'static str;
    /// What its subject id names (one of [`subjects`]).
    const SUBJECT_KIND: &'static str;
    /// The version this build writes.
    const VERSION: u32;
    /// The version recorded in this value.
    fn version(&self) -> u32;
    /// The id of the event's subject.
    fn subject_id(&self) -> &str;

    /// Decodes, reading the version first: a newer version is
    /// [`PayloadError::UnsupportedVersion`] whatever its fields.
    fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let VersionOnly { v } = cbor::from_cbor(bytes)?;
        if v > Self::VERSION || v == 0 {
            return Err(PayloadError::UnsupportedVersion {
                found: v,
                supported: Self::VERSION,
            });
        }
        Ok(cbor::from_cbor(bytes)?)
    }
}

macro_rules! payload_v1 {
    ($name:ident, $event_type:expr, $subject_kind:expr, $subject:ident) => {
        impl Payload for $name {
            const EVENT_TYPE: &'static str = $event_type;
            const SUBJECT_KIND: &'static str = $subject_kind;
            const VERSION: u32 = 1;
            fn version(&self) -> u32 {
                self.v
            }
            fn subject_id(&self) -> &str {
                &self.$subject
            }
        }
    };
}

/// Every event's payload, by event type: what the view handlers match on,
/// exhaustively.
#[derive(Debug, Clone, PartialEq)]
pub enum EventPayload {
    /// `v1.package.created`.
    PackageCreated(PackageCreated),
    /// `v1.retention.default_applied`.
    RetentionDefaultApplied(RetentionDefaultApplied),
    /// `v1.file.ingested`.
    FileIngested(FileIngested),
    /// `v1.package.finalized`: the manifest.
    PackageFinalized(Box<crate::Manifest>),
    /// `v1.retention.extended`.
    RetentionExtended(RetentionExtended),
    /// `v1.retention.hold_applied`.
    HoldApplied(HoldApplied),
    /// `v1.retention.hold_released`.
    HoldReleased(HoldReleased),
    /// `v1.retention.deletion_eligible`.
    DeletionEligible(DeletionEligible),
    /// `v1.storage.location_verified`.
    LocationVerified(LocationVerified),
    /// `v1.metadata_schema.registered`.
    MetadataSchemaRegistered(MetadataSchemaRegistered),
    /// `v1.token.created`.
    TokenCreated(TokenCreated),
    /// `v1.token.revoked`.
    TokenRevoked(TokenRevoked),
    /// `v1.package.purged`.
    PackagePurged(PackagePurged),
    /// `v1.storage.object_deleted`.
    ObjectDeleted(ObjectDeleted),
    /// `v1.log.checkpoint_signed`.
    CheckpointSigned(CheckpointSigned),
    /// A type this build does not know (written by a newer version).
    Unknown,
}

impl EventPayload {
    /// Decodes `event`'s payload by its type.
    pub fn decode(event: &Event) -> Result<Self, PayloadError> {
        fn of<P: Payload>(event: &Event) -> Result<P, PayloadError> {
            P::decode(&event.payload)
        }
        Ok(match event.event_type.as_str() {
            types::PACKAGE_CREATED => Self::PackageCreated(of(event)?),
            types::RETENTION_DEFAULT_APPLIED => Self::RetentionDefaultApplied(of(event)?),
            types::FILE_INGESTED => Self::FileIngested(of(event)?),
            types::PACKAGE_FINALIZED => Self::PackageFinalized(Box::new(
                crate::Manifest::decode(&event.payload)
                    .map_err(|e| PayloadError::Manifest(e.to_string()))?,
            )),
            types::RETENTION_EXTENDED => Self::RetentionExtended(of(event)?),
            types::RETENTION_HOLD_APPLIED => Self::HoldApplied(of(event)?),
            types::RETENTION_HOLD_RELEASED => Self::HoldReleased(of(event)?),
            types::RETENTION_DELETION_ELIGIBLE => Self::DeletionEligible(of(event)?),
            types::STORAGE_LOCATION_VERIFIED => Self::LocationVerified(of(event)?),
            types::METADATA_SCHEMA_REGISTERED => Self::MetadataSchemaRegistered(of(event)?),
            types::TOKEN_CREATED => Self::TokenCreated(of(event)?),
            types::TOKEN_REVOKED => Self::TokenRevoked(of(event)?),
            types::PACKAGE_PURGED => Self::PackagePurged(of(event)?),
            types::STORAGE_OBJECT_DELETED => Self::ObjectDeleted(of(event)?),
            types::LOG_CHECKPOINT_SIGNED => Self::CheckpointSigned(of(event)?),
            _ => Self::Unknown,
        })
    }
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
payload_v1!(
    PackageCreated,
    types::PACKAGE_CREATED,
    subjects::PACKAGE,
    package_id
);

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
payload_v1!(
    RetentionDefaultApplied,
    types::RETENTION_DEFAULT_APPLIED,
    subjects::PACKAGE,
    package_id
);

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
payload_v1!(
    FileIngested,
    types::FILE_INGESTED,
    subjects::PACKAGE,
    package_id
);

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
payload_v1!(
    RetentionExtended,
    types::RETENTION_EXTENDED,
    subjects::PACKAGE,
    package_id
);

/// `v1.retention.hold_applied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldApplied {
    /// Payload version.
    pub v: u32,
    /// The package.
    pub package_id: String,
    /// The hold.
    pub hold_id: String,
    /// Why.
    pub reason: String,
}
payload_v1!(
    HoldApplied,
    types::RETENTION_HOLD_APPLIED,
    subjects::PACKAGE,
    package_id
);

/// `v1.retention.hold_released` (the same fields as [`HoldApplied`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldReleased {
    /// Payload version.
    pub v: u32,
    /// The package.
    pub package_id: String,
    /// The hold.
    pub hold_id: String,
    /// Why.
    pub reason: String,
}
payload_v1!(
    HoldReleased,
    types::RETENTION_HOLD_RELEASED,
    subjects::PACKAGE,
    package_id
);

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
payload_v1!(
    DeletionEligible,
    types::RETENTION_DELETION_ELIGIBLE,
    subjects::PACKAGE,
    package_id
);

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
payload_v1!(
    LocationVerified,
    types::STORAGE_LOCATION_VERIFIED,
    subjects::STORAGE_LOCATION,
    storage_location_id
);

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
payload_v1!(
    MetadataSchemaRegistered,
    types::METADATA_SCHEMA_REGISTERED,
    subjects::METADATA_SCHEMA,
    schema_id
);

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
payload_v1!(
    TokenCreated,
    types::TOKEN_CREATED,
    subjects::TOKEN,
    token_id
);

/// `v1.token.revoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRevoked {
    /// Payload version.
    pub v: u32,
    /// Token id.
    pub token_id: String,
}
payload_v1!(
    TokenRevoked,
    types::TOKEN_REVOKED,
    subjects::TOKEN,
    token_id
);

/// `v1.package.purged`. The package keeps its row, metadata, manifest and
/// events; only its bytes may go (once no other package refers to them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagePurged {
    /// Payload version.
    pub v: u32,
    /// The package.
    pub package_id: String,
    /// Its class when purged.
    pub retention_class: String,
    /// The rule that allowed it: one of [`crate::lifecycle::rules`].
    pub rule: String,
    /// When it became eligible for deletion.
    pub eligible_at: Option<Timestamp>,
    /// Why (the admin's reason, or the automatic rule's).
    pub reason: String,
}
payload_v1!(
    PackagePurged,
    types::PACKAGE_PURGED,
    subjects::PACKAGE,
    package_id
);

/// `v1.storage.object_deleted`: bytes that left a backend, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectDeleted {
    /// Payload version.
    pub v: u32,
    /// The backend.
    pub backend_id: String,
    /// The key in it.
    pub object_key: String,
    /// Its size when listed.
    pub size_bytes: u64,
    /// One of [`crate::lifecycle::deletion_reasons`].
    pub reason: String,
}
payload_v1!(
    ObjectDeleted,
    types::STORAGE_OBJECT_DELETED,
    subjects::STORAGE_OBJECT,
    object_key
);

/// `v1.log.checkpoint_signed`: a signed checkpoint of the tree of the
/// first `tree_size` events (this event is not among them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSigned {
    /// Payload version.
    pub v: u32,
    /// The log's origin line.
    pub origin: String,
    /// Leaves in the tree signed.
    pub tree_size: u64,
    /// Its RFC 9162 root hash, lowercase hex.
    pub root_hash: String,
    /// The signed note, exactly as served.
    pub note: String,
}
payload_v1!(
    CheckpointSigned,
    types::LOG_CHECKPOINT_SIGNED,
    subjects::LOG,
    origin
);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sequence: i64, previous: &Digest32) -> Event {
        let payload = HoldApplied {
            v: 1,
            package_id: "p".into(),
            hold_id: "h".into(),
            reason: "audit".into(),
        };
        let new = NewEvent::of(&payload, "ops").unwrap();
        assert_eq!(new.event_type, types::RETENTION_HOLD_APPLIED);
        assert_eq!(
            (new.subject_kind.as_str(), new.subject_id.as_str()),
            (subjects::PACKAGE, "p")
        );
        Event::seal(
            new,
            sequence,
            "2026-01-01T00:00:00Z".parse().unwrap(),
            previous,
        )
    }

    #[test]
    fn leaf_bytes_read_back_exactly_and_nothing_else_does() {
        let event = sample(7, &GENESIS_CHAIN_HASH);
        let bytes = event.leaf_bytes();
        let leaf = Leaf::decode(&bytes).unwrap();
        assert_eq!(leaf.sequence, 7);
        assert_eq!(leaf.payload_digest, event.payload_digest);
        assert_eq!(leaf.event_type, types::RETENTION_HOLD_APPLIED);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Leaf::decode(&trailing).is_err());
        let mut altered = bytes.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_ne!(Leaf::decode(&altered).ok(), Some(leaf));
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
        let hold: HoldApplied = event.decode_payload().unwrap();
        assert_eq!(hold.reason, "audit");
        let newer = HoldApplied { v: 2, ..hold };
        let bytes = cbor::to_canonical(&newer).unwrap();
        assert!(matches!(
            HoldApplied::decode(&bytes),
            Err(PayloadError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        ));
    }

    #[test]
    fn a_newer_version_with_other_fields_is_unsupported_not_malformed() {
        // A v2 that renamed a field: its version is read before its shape.
        #[derive(Serialize)]
        struct HoldV2 {
            v: u32,
            package_id: String,
            hold: String,
            reasons: Vec<String>,
        }
        let bytes = cbor::to_canonical(&HoldV2 {
            v: 2,
            package_id: "p".into(),
            hold: "h".into(),
            reasons: vec![],
        })
        .unwrap();
        assert!(matches!(
            HoldApplied::decode(&bytes),
            Err(PayloadError::UnsupportedVersion { found: 2, .. })
        ));
        // A v1 with a field missing is malformed.
        #[derive(Serialize)]
        struct Broken {
            v: u32,
            package_id: String,
        }
        let bytes = cbor::to_canonical(&Broken {
            v: 1,
            package_id: "p".into(),
        })
        .unwrap();
        assert!(matches!(
            HoldApplied::decode(&bytes),
            Err(PayloadError::Malformed(_))
        ));
    }

    #[test]
    fn event_payloads_decode_by_type() {
        let event = sample(1, &GENESIS_CHAIN_HASH);
        assert!(matches!(
            EventPayload::decode(&event).unwrap(),
            EventPayload::HoldApplied(HoldApplied { ref hold_id, .. }) if hold_id == "h"
        ));
        let mut released = event.clone();
        released.event_type = types::RETENTION_HOLD_RELEASED.into();
        assert!(matches!(
            EventPayload::decode(&released).unwrap(),
            EventPayload::HoldReleased(_)
        ));
        let mut unknown = event.clone();
        unknown.event_type = "v9.something.new".into();
        assert_eq!(
            EventPayload::decode(&unknown).unwrap(),
            EventPayload::Unknown
        );
        let mut wrong = event;
        wrong.event_type = types::TOKEN_REVOKED.into();
        assert!(EventPayload::decode(&wrong).is_err());
    }
}
