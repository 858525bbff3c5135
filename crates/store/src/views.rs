//! The event handlers: the only code that writes the views. The live path
//! ([`crate::LogTx::append`]) and [`crate::Store::replay`] both go through
//! [`plan`], and every value written comes from the event (its payload,
//! sequence, actor and `created_at`), so replay rebuilds the views exactly.
//!
//! A handler does not touch the database: it plans its statements into a
//! [`Batch`], which the caller sends with others (see `batch.rs` for why).

use artifactstore_core::digest::CONTENT_ADDRESS_PREFIX;
use artifactstore_core::event::{
    CheckpointSigned, DeletionEligible, EventPayload, FileIngested, HoldApplied, HoldReleased,
    LocationVerified, MetadataSchemaRegistered, ObjectDeleted, PackageCreated, PackagePurged,
    RetentionDefaultApplied, RetentionExtended, TokenCreated, TokenRevoked,
};
use artifactstore_core::path::collision_key;
use artifactstore_core::{cbor, Event, Manifest};

use crate::batch::{Batch, Bind};
use crate::records::{status, storage_status};
use crate::{StoreError, StoreResult};

/// Adds the view statements of one event to `batch`. Unknown event types
/// (written by a newer version) are tolerated and change nothing; a known
/// type must decode, and a newer version of its payload is reported as
/// unsupported.
pub(crate) fn plan(batch: &mut Batch, event: &Event) -> StoreResult<()> {
    let decoded = EventPayload::decode(event)
        .map_err(|e| StoreError::corrupt(format!("event {}: {e}", event.sequence)))?;
    match decoded {
        EventPayload::PackageCreated(p) => package_created(batch, event, p),
        EventPayload::RetentionDefaultApplied(p) => retention_default_applied(batch, event, p),
        EventPayload::FileIngested(p) => file_ingested(batch, event, p),
        EventPayload::PackageFinalized(manifest) => package_finalized(batch, event, &manifest),
        EventPayload::RetentionExtended(p) => retention_extended(batch, event, p),
        EventPayload::HoldApplied(p) => hold_applied(batch, event, p),
        EventPayload::HoldReleased(p) => hold_released(batch, event, p),
        EventPayload::DeletionEligible(p) => deletion_eligible(batch, event, p),
        EventPayload::LocationVerified(p) => location_verified(batch, event, p),
        EventPayload::MetadataSchemaRegistered(p) => schema_registered(batch, event, p),
        EventPayload::TokenCreated(p) => token_created(batch, event, p),
        EventPayload::TokenRevoked(p) => token_revoked(batch, event, p),
        EventPayload::PackagePurged(p) => package_purged(batch, event, p),
        EventPayload::ObjectDeleted(p) => object_deleted(batch, event, p),
        EventPayload::CheckpointSigned(p) => checkpoint_signed(batch, event, p),
        EventPayload::Unknown => {
            tracing::debug!(
                event_type = %event.event_type,
                sequence = event.sequence,
                "no handler; event tolerated"
            );
            Ok(())
        }
    }
}

fn touch_package(batch: &mut Batch, package_id: &str, event: &Event) {
    batch.push(
        "UPDATE packages SET last_event_sequence = $1 WHERE id = $2",
        vec![Bind::from(event.sequence), Bind::from(package_id)],
    );
}

/// The text a metadata filter matches: scalars only, so `key=value` has one
/// obvious meaning.
fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn package_created(batch: &mut Batch, event: &Event, p: PackageCreated) -> StoreResult<()> {
    let metadata = cbor::to_json(&p.metadata).map_err(StoreError::corrupt)?;
    // serde_json, not JCS: JCS writes numbers as doubles, which would round
    // integers beyond 2^53 that the payload keeps exact. Its key order comes
    // from the canonical payload, so the text is still deterministic.
    let metadata_text = serde_json::to_string(&metadata).map_err(StoreError::corrupt)?;
    batch.push(
        "INSERT INTO packages (id, name, producer, subject, retention_class, metadata, metadata_schema_id, \
         status, manifest_digest, created_at, created_by, created_sequence, finalized_at, expires_at, \
         last_event_sequence, file_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11, NULL, NULL, $11, 0)",
        vec![Bind::from(p.package_id.as_str()), Bind::from(p.name.as_str()), Bind::from(p.producer.as_str()), Bind::from(p.subject.as_str()), Bind::from(p.retention_class.as_str()), Bind::from(metadata_text), Bind::from(p.metadata_schema_id.as_deref()), Bind::from(status::CREATED), Bind::from(event.created_at.to_string()), Bind::from(event.actor.as_str()), Bind::from(event.sequence)],
    );
    if let Some(object) = metadata.as_object() {
        for (key, value) in object {
            let Some(text) = scalar_text(value) else {
                continue;
            };
            batch.push(
        "INSERT INTO package_metadata (package_id, key, value, created_sequence) VALUES ($1, $2, $3, $4)",
        vec![Bind::from(p.package_id.as_str()), Bind::from(key.as_str()), Bind::from(text), Bind::from(event.sequence)],
    );
        }
    }
    Ok(())
}

fn retention_default_applied(
    batch: &mut Batch,
    event: &Event,
    p: RetentionDefaultApplied,
) -> StoreResult<()> {
    let expires_at = p.expires_at.map(|t| t.to_string());
    batch.push(
        "INSERT INTO retention_state (package_id, retention_class, expires_at, eligible_for_deletion, \
         eligible_at, updated_sequence) VALUES ($1, $2, $3, 0, NULL, $4)",
        vec![Bind::from(p.package_id.as_str()), Bind::from(p.retention_class.as_str()), Bind::from(expires_at.as_deref()), Bind::from(event.sequence)],
    );
    batch.push(
        "UPDATE packages SET expires_at = $1, last_event_sequence = $2 WHERE id = $3",
        vec![
            Bind::from(expires_at.as_deref()),
            Bind::from(event.sequence),
            Bind::from(p.package_id.as_str()),
        ],
    );
    Ok(())
}

fn file_ingested(batch: &mut Batch, event: &Event, p: FileIngested) -> StoreResult<()> {
    let size = i64::try_from(p.size_bytes).map_err(StoreError::corrupt)?;
    batch.unique_is_duplicate_path();
    batch.push(
        "INSERT INTO files (id, package_id, relative_path, media_type, size_bytes, blake3, sha256, \
         created_at, created_sequence, path_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        vec![Bind::from(p.file_id.as_str()), Bind::from(p.package_id.as_str()), Bind::from(p.relative_path.as_str()), Bind::from(p.media_type.as_str()), Bind::from(size), Bind::from(p.blake3.as_str()), Bind::from(p.sha256.as_str()), Bind::from(event.created_at.to_string()), Bind::from(event.sequence), Bind::from(collision_key(&p.relative_path))],
    );
    batch.push(
        "INSERT INTO storage_locations (id, file_id, backend_id, object_key, content_address, retrieval_tier, \
         status, verified_at, failure, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8)",
        vec![Bind::from(p.storage_location_id.as_str()), Bind::from(p.file_id.as_str()), Bind::from(p.backend_id.as_str()), Bind::from(p.object_key.as_str()), Bind::from(format!("{CONTENT_ADDRESS_PREFIX}{}", p.blake3)), Bind::from(p.retrieval_tier.as_str()), Bind::from(storage_status::RECORDED), Bind::from(event.created_at.to_string())],
    );
    batch.push(
        "UPDATE packages SET last_event_sequence = $1, file_count = file_count + 1, \
         total_bytes = total_bytes + $2 WHERE id = $3",
        vec![
            Bind::from(event.sequence),
            Bind::from(size),
            Bind::from(p.package_id.as_str()),
        ],
    );
    Ok(())
}

fn package_finalized(batch: &mut Batch, event: &Event, manifest: &Manifest) -> StoreResult<()> {
    batch.push(
        "UPDATE packages SET status = $1, manifest_digest = $2, finalized_at = $3, last_event_sequence = $4 \
         WHERE id = $5",
        vec![Bind::from(status::FINALIZED), Bind::from(format!("{CONTENT_ADDRESS_PREFIX}{}", event.payload_digest)), Bind::from(manifest.package.finalized_at.to_string()), Bind::from(event.sequence), Bind::from(event.subject_id.as_str())],
    );
    Ok(())
}

fn retention_extended(batch: &mut Batch, event: &Event, p: RetentionExtended) -> StoreResult<()> {
    let expires_at = p.new_expires_at.to_string();
    // A later expiry takes back an earlier eligibility.
    batch.push(
        "UPDATE retention_state SET expires_at = $1, eligible_for_deletion = 0, eligible_at = NULL, \
         updated_sequence = $2 WHERE package_id = $3",
        vec![Bind::from(expires_at.as_str()), Bind::from(event.sequence), Bind::from(p.package_id.as_str())],
    );
    batch.push(
        "UPDATE packages SET expires_at = $1, last_event_sequence = $2 WHERE id = $3",
        vec![
            Bind::from(expires_at.as_str()),
            Bind::from(event.sequence),
            Bind::from(p.package_id.as_str()),
        ],
    );
    Ok(())
}

fn retention_touch(batch: &mut Batch, package_id: &str, event: &Event) {
    batch.push(
        "UPDATE retention_state SET updated_sequence = $1 WHERE package_id = $2",
        vec![Bind::from(event.sequence), Bind::from(package_id)],
    );
    touch_package(batch, package_id, event);
}

fn hold_applied(batch: &mut Batch, event: &Event, p: HoldApplied) -> StoreResult<()> {
    batch.push(
        "INSERT INTO retention_holds (hold_id, package_id, reason, applied_at, applied_by, released_at, \
         released_by, release_reason) VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL)",
        vec![Bind::from(p.hold_id.as_str()), Bind::from(p.package_id.as_str()), Bind::from(p.reason.as_str()), Bind::from(event.created_at.to_string()), Bind::from(event.actor.as_str())],
    );
    // A hold takes back any deletion eligibility; releasing the last hold
    // after expiry marks the package eligible again with its own event.
    batch.push(
        "UPDATE retention_state SET eligible_for_deletion = 0, eligible_at = NULL WHERE package_id = $1",
        vec![Bind::from(p.package_id.as_str())],
    );
    retention_touch(batch, &p.package_id, event);
    Ok(())
}

fn hold_released(batch: &mut Batch, event: &Event, p: HoldReleased) -> StoreResult<()> {
    batch.push(
        "UPDATE retention_holds SET released_at = $1, released_by = $2, release_reason = $3 WHERE hold_id = $4",
        vec![Bind::from(event.created_at.to_string()), Bind::from(event.actor.as_str()), Bind::from(p.reason.as_str()), Bind::from(p.hold_id.as_str())],
    );
    retention_touch(batch, &p.package_id, event);
    Ok(())
}

fn deletion_eligible(batch: &mut Batch, event: &Event, p: DeletionEligible) -> StoreResult<()> {
    batch.push(
        "UPDATE retention_state SET eligible_for_deletion = 1, eligible_at = $1, updated_sequence = $2 \
         WHERE package_id = $3",
        vec![Bind::from(event.created_at.to_string()), Bind::from(event.sequence), Bind::from(p.package_id.as_str())],
    );
    touch_package(batch, &p.package_id, event);
    Ok(())
}

fn location_verified(batch: &mut Batch, event: &Event, p: LocationVerified) -> StoreResult<()> {
    batch.push(
        "UPDATE storage_locations SET status = $1, verified_at = $2, failure = $3 WHERE id = $4",
        vec![
            Bind::from(if p.ok {
                storage_status::VERIFIED
            } else {
                storage_status::FAILED
            }),
            Bind::from(event.created_at.to_string()),
            Bind::from(p.failure.as_deref()),
            Bind::from(p.storage_location_id.as_str()),
        ],
    );
    Ok(())
}

fn schema_registered(
    batch: &mut Batch,
    event: &Event,
    p: MetadataSchemaRegistered,
) -> StoreResult<()> {
    batch.push(
        "INSERT INTO metadata_schemas (id, slug, schema_jcs, created_at) VALUES ($1, $2, $3, $4)",
        vec![
            Bind::from(p.schema_id.as_str()),
            Bind::from(p.slug.as_str()),
            Bind::from(p.schema_jcs.as_str()),
            Bind::from(event.created_at.to_string()),
        ],
    );
    Ok(())
}

fn token_created(batch: &mut Batch, event: &Event, p: TokenCreated) -> StoreResult<()> {
    let producers = serde_json::to_string(&p.producers).map_err(StoreError::corrupt)?;
    batch.push(
        "INSERT INTO api_tokens (id, name, scope, producers, expires_at, secret_blake3, created_at, created_by, \
         revoked_at, revoked_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)",
        vec![Bind::from(p.token_id.as_str()), Bind::from(p.name.as_str()), Bind::from(p.scope.as_str()), Bind::from(producers), Bind::from(p.expires_at.map(|t| t.to_string())), Bind::from(p.secret_blake3.as_str()), Bind::from(event.created_at.to_string()), Bind::from(event.actor.as_str())],
    );
    Ok(())
}

fn token_revoked(batch: &mut Batch, event: &Event, p: TokenRevoked) -> StoreResult<()> {
    batch.push(
        "UPDATE api_tokens SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL",
        vec![Bind::from(event.created_at.to_string()), Bind::from(event.actor.as_str()), Bind::from(p.token_id.as_str())],
    );
    Ok(())
}

fn package_purged(batch: &mut Batch, event: &Event, p: PackagePurged) -> StoreResult<()> {
    let at = event.created_at.to_string();
    batch.push(
        "UPDATE packages SET status = $1, purged_at = $2, last_event_sequence = $3 WHERE id = $4",
        vec![
            Bind::from(status::PURGED),
            Bind::from(at.as_str()),
            Bind::from(event.sequence),
            Bind::from(p.package_id.as_str()),
        ],
    );
    batch.push(
        "UPDATE retention_state SET purged_at = $1, purged_by = $2, purge_rule = $3, purge_reason = $4, \
         updated_sequence = $5 WHERE package_id = $6",
        vec![Bind::from(at.as_str()), Bind::from(event.actor.as_str()), Bind::from(p.rule.as_str()), Bind::from(p.reason.as_str()), Bind::from(event.sequence), Bind::from(p.package_id.as_str())],
    );
    Ok(())
}

fn object_deleted(batch: &mut Batch, event: &Event, p: ObjectDeleted) -> StoreResult<()> {
    let size = i64::try_from(p.size_bytes).map_err(StoreError::corrupt)?;
    batch.push(
        "INSERT INTO object_deletions (sequence, backend_id, object_key, size_bytes, reason, deleted_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        vec![Bind::from(event.sequence), Bind::from(p.backend_id.as_str()), Bind::from(p.object_key.as_str()), Bind::from(size), Bind::from(p.reason.as_str()), Bind::from(event.created_at.to_string())],
    );
    Ok(())
}

fn checkpoint_signed(batch: &mut Batch, event: &Event, p: CheckpointSigned) -> StoreResult<()> {
    let size = i64::try_from(p.tree_size).map_err(StoreError::corrupt)?;
    batch.push(
        "INSERT INTO log_checkpoints (tree_size, root_hash, origin, note, sequence, signed_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            Bind::from(size),
            Bind::from(p.root_hash.as_str()),
            Bind::from(p.origin.as_str()),
            Bind::from(p.note.as_str()),
            Bind::from(event.sequence),
            Bind::from(event.created_at.to_string()),
        ],
    );
    Ok(())
}
