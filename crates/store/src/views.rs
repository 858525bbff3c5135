//! The event handlers: the only code that writes the views. The live path
//! ([`crate::LogTx::append`]) and [`crate::Store::replay`] both call
//! [`apply`], and every value written comes from the event (its payload,
//! sequence, actor and `created_at`), so replay rebuilds the views exactly.

use artifactstore_core::event::{
    types, DeletionEligible, FileIngested, LocationVerified, MetadataSchemaRegistered,
    PackageCreated, Payload, RetentionDefaultApplied, RetentionExtended, RetentionHold,
    TokenCreated, TokenRevoked,
};
use artifactstore_core::{cbor, Event, Manifest};
use sqlx::AnyConnection;

use crate::records::status;
use crate::{StoreError, StoreResult};

/// Applies one event to the views. Unknown event types (written by a newer
/// version) are tolerated and change nothing.
pub async fn apply(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    match event.event_type.as_str() {
        types::PACKAGE_CREATED => package_created(conn, event).await,
        types::RETENTION_DEFAULT_APPLIED => retention_default_applied(conn, event).await,
        types::FILE_INGESTED => file_ingested(conn, event).await,
        types::PACKAGE_FINALIZED => package_finalized(conn, event).await,
        types::RETENTION_EXTENDED => retention_extended(conn, event).await,
        types::RETENTION_HOLD_APPLIED => hold_applied(conn, event).await,
        types::RETENTION_HOLD_RELEASED => hold_released(conn, event).await,
        types::RETENTION_DELETION_ELIGIBLE => deletion_eligible(conn, event).await,
        types::STORAGE_LOCATION_VERIFIED => location_verified(conn, event).await,
        types::METADATA_SCHEMA_REGISTERED => schema_registered(conn, event).await,
        types::TOKEN_CREATED => token_created(conn, event).await,
        types::TOKEN_REVOKED => token_revoked(conn, event).await,
        other => {
            tracing::debug!(
                event_type = other,
                sequence = event.sequence,
                "no handler; event tolerated"
            );
            Ok(())
        }
    }
}

fn payload<P: Payload>(event: &Event) -> StoreResult<P> {
    event
        .decode_payload()
        .map_err(|e| StoreError::corrupt(format!("event {}: {e}", event.sequence)))
}

async fn touch_package(
    conn: &mut AnyConnection,
    package_id: &str,
    event: &Event,
) -> StoreResult<()> {
    sqlx::query("UPDATE packages SET last_event_sequence = $1 WHERE id = $2")
        .bind(event.sequence)
        .bind(package_id)
        .execute(conn)
        .await?;
    Ok(())
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

async fn package_created(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: PackageCreated = payload(event)?;
    let metadata = cbor::to_json(&p.metadata).map_err(StoreError::corrupt)?;
    // serde_json, not JCS: JCS writes numbers as doubles, which would round
    // integers beyond 2^53 that the payload keeps exact. Its key order comes
    // from the canonical payload, so the text is still deterministic.
    let metadata_text = serde_json::to_string(&metadata).map_err(StoreError::corrupt)?;
    sqlx::query(
        "INSERT INTO packages (id, name, producer, subject, retention_class, metadata, metadata_schema_id, \
         status, manifest_digest, created_at, created_by, created_sequence, finalized_at, expires_at, \
         last_event_sequence) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11, NULL, NULL, $11)",
    )
    .bind(p.package_id.as_str())
    .bind(p.name.as_str())
    .bind(p.producer.as_str())
    .bind(p.subject.as_str())
    .bind(p.retention_class.as_str())
    .bind(metadata_text)
    .bind(p.metadata_schema_id.as_deref())
    .bind(status::CREATED)
    .bind(event.created_at.to_string())
    .bind(event.actor.as_str())
    .bind(event.sequence)
    .execute(&mut *conn)
    .await?;
    if let Some(object) = metadata.as_object() {
        for (key, value) in object {
            let Some(text) = scalar_text(value) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO package_metadata (package_id, key, value, created_sequence) VALUES ($1, $2, $3, $4)",
            )
            .bind(p.package_id.as_str())
            .bind(key.as_str())
            .bind(text)
            .bind(event.sequence)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn retention_default_applied(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: RetentionDefaultApplied = payload(event)?;
    let expires_at = p.expires_at.map(|t| t.to_string());
    sqlx::query(
        "INSERT INTO retention_state (package_id, retention_class, expires_at, eligible_for_deletion, \
         eligible_at, updated_sequence) VALUES ($1, $2, $3, 0, NULL, $4)",
    )
    .bind(p.package_id.as_str())
    .bind(p.retention_class.as_str())
    .bind(expires_at.as_deref())
    .bind(event.sequence)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE packages SET expires_at = $1, last_event_sequence = $2 WHERE id = $3")
        .bind(expires_at.as_deref())
        .bind(event.sequence)
        .bind(p.package_id.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

async fn file_ingested(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: FileIngested = payload(event)?;
    let size = i64::try_from(p.size_bytes).map_err(StoreError::corrupt)?;
    let inserted = sqlx::query(
        "INSERT INTO files (id, package_id, relative_path, media_type, size_bytes, blake3, sha256, \
         created_at, created_sequence) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(p.file_id.as_str())
    .bind(p.package_id.as_str())
    .bind(p.relative_path.as_str())
    .bind(p.media_type.as_str())
    .bind(size)
    .bind(p.blake3.as_str())
    .bind(p.sha256.as_str())
    .bind(event.created_at.to_string())
    .bind(event.sequence)
    .execute(&mut *conn)
    .await;
    match inserted {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(StoreError::DuplicateRelativePath)
        }
        other => other?,
    };
    sqlx::query(
        "INSERT INTO storage_locations (id, file_id, backend_id, object_key, content_address, retrieval_tier, \
         status, verified_at, failure, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'recorded', NULL, NULL, $7)",
    )
    .bind(p.storage_location_id.as_str())
    .bind(p.file_id.as_str())
    .bind(p.backend_id.as_str())
    .bind(p.object_key.as_str())
    .bind(format!("blake3:{}", p.blake3))
    .bind(p.retrieval_tier.as_str())
    .bind(event.created_at.to_string())
    .execute(&mut *conn)
    .await?;
    touch_package(conn, &p.package_id, event).await
}

async fn package_finalized(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let manifest = Manifest::decode(&event.payload)
        .map_err(|e| StoreError::corrupt(format!("event {}: {e}", event.sequence)))?;
    sqlx::query(
        "UPDATE packages SET status = $1, manifest_digest = $2, finalized_at = $3, last_event_sequence = $4 \
         WHERE id = $5",
    )
    .bind(status::FINALIZED)
    .bind(format!("blake3:{}", event.payload_digest))
    .bind(manifest.package.finalized_at.to_string())
    .bind(event.sequence)
    .bind(event.subject_id.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

async fn retention_extended(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: RetentionExtended = payload(event)?;
    let expires_at = p.new_expires_at.to_string();
    // A later expiry takes back an earlier eligibility.
    sqlx::query(
        "UPDATE retention_state SET expires_at = $1, eligible_for_deletion = 0, eligible_at = NULL, \
         updated_sequence = $2 WHERE package_id = $3",
    )
    .bind(expires_at.as_str())
    .bind(event.sequence)
    .bind(p.package_id.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE packages SET expires_at = $1, last_event_sequence = $2 WHERE id = $3")
        .bind(expires_at.as_str())
        .bind(event.sequence)
        .bind(p.package_id.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

async fn retention_touch(
    conn: &mut AnyConnection,
    package_id: &str,
    event: &Event,
) -> StoreResult<()> {
    sqlx::query("UPDATE retention_state SET updated_sequence = $1 WHERE package_id = $2")
        .bind(event.sequence)
        .bind(package_id)
        .execute(&mut *conn)
        .await?;
    touch_package(conn, package_id, event).await
}

async fn hold_applied(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: RetentionHold = payload(event)?;
    sqlx::query(
        "INSERT INTO retention_holds (hold_id, package_id, reason, applied_at, applied_by, released_at, \
         released_by, release_reason) VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL)",
    )
    .bind(p.hold_id.as_str())
    .bind(p.package_id.as_str())
    .bind(p.reason.as_str())
    .bind(event.created_at.to_string())
    .bind(event.actor.as_str())
    .execute(&mut *conn)
    .await?;
    // A hold takes back any deletion eligibility; releasing the last hold
    // after expiry marks the package eligible again with its own event.
    sqlx::query(
        "UPDATE retention_state SET eligible_for_deletion = 0, eligible_at = NULL WHERE package_id = $1",
    )
    .bind(p.package_id.as_str())
    .execute(&mut *conn)
    .await?;
    retention_touch(conn, &p.package_id, event).await
}

async fn hold_released(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: RetentionHold = payload(event)?;
    sqlx::query(
        "UPDATE retention_holds SET released_at = $1, released_by = $2, release_reason = $3 WHERE hold_id = $4",
    )
    .bind(event.created_at.to_string())
    .bind(event.actor.as_str())
    .bind(p.reason.as_str())
    .bind(p.hold_id.as_str())
    .execute(&mut *conn)
    .await?;
    retention_touch(conn, &p.package_id, event).await
}

async fn deletion_eligible(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: DeletionEligible = payload(event)?;
    sqlx::query(
        "UPDATE retention_state SET eligible_for_deletion = 1, eligible_at = $1, updated_sequence = $2 \
         WHERE package_id = $3",
    )
    .bind(event.created_at.to_string())
    .bind(event.sequence)
    .bind(p.package_id.as_str())
    .execute(&mut *conn)
    .await?;
    touch_package(conn, &p.package_id, event).await
}

async fn location_verified(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: LocationVerified = payload(event)?;
    sqlx::query(
        "UPDATE storage_locations SET status = $1, verified_at = $2, failure = $3 WHERE id = $4",
    )
    .bind(if p.ok { "verified" } else { "failed" })
    .bind(event.created_at.to_string())
    .bind(p.failure.as_deref())
    .bind(p.storage_location_id.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

async fn schema_registered(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: MetadataSchemaRegistered = payload(event)?;
    sqlx::query(
        "INSERT INTO metadata_schemas (id, slug, schema_jcs, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(p.schema_id.as_str())
    .bind(p.slug.as_str())
    .bind(p.schema_jcs.as_str())
    .bind(event.created_at.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

async fn token_created(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: TokenCreated = payload(event)?;
    let producers = serde_json::to_string(&p.producers).map_err(StoreError::corrupt)?;
    sqlx::query(
        "INSERT INTO api_tokens (id, name, scope, producers, expires_at, secret_blake3, created_at, created_by, \
         revoked_at, revoked_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)",
    )
    .bind(p.token_id.as_str())
    .bind(p.name.as_str())
    .bind(p.scope.as_str())
    .bind(producers)
    .bind(p.expires_at.map(|t| t.to_string()))
    .bind(p.secret_blake3.as_str())
    .bind(event.created_at.to_string())
    .bind(event.actor.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

async fn token_revoked(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    let p: TokenRevoked = payload(event)?;
    sqlx::query("UPDATE api_tokens SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL")
        .bind(event.created_at.to_string())
        .bind(event.actor.as_str())
        .bind(p.token_id.as_str())
        .execute(conn)
        .await?;
    Ok(())
}
