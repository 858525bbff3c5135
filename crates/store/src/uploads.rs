//! Resumable uploads in progress (`uploads`): their durable state between
//! requests, the path each reserves, and the lock that lets one request at
//! a time write to an upload across replicas.
//!
//! Not a view: no event writes these rows and replay leaves them alone
//! (docs/architecture.md, "Resumable uploads"). Times are compared as
//! text: [`Timestamp`]'s form is fixed-width and sorts in time order.

use artifactstore_core::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::log::LogTx;
use crate::records::{opt_timestamp, timestamp};
use crate::{Store, StoreError, StoreResult, PROGRESS_SYNC_EVERY};

/// Whether a progress save must be durable when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDurability {
    /// It may become durable with a later commit (on SQLite, within
    /// `PROGRESS_SYNC_EVERY` of saves): losing it only sets the upload
    /// back.
    Deferred,
    /// Something that cannot be undone follows it, such as removing what
    /// the progress saved before it names.
    Immediate,
}

/// One upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Server-made id (a UUID).
    pub id: String,
    /// The package it adds a file to.
    pub package_id: String,
    /// The file's path in the package.
    pub relative_path: String,
    /// The path's collision key (see `core::path::collision_key`).
    pub path_key: String,
    /// The file's media type.
    pub media_type: String,
    /// The file's size, declared at creation.
    pub upload_length: u64,
    /// SHA-256 the client declared (hex), checked at completion.
    pub expected_sha256: Option<String>,
    /// BLAKE3 the client declared (hex), checked at completion.
    pub expected_blake3: Option<String>,
    /// `Upload-Metadata` as sent.
    pub metadata: String,
    /// Who created it: the file's event is recorded as theirs.
    pub actor: String,
    /// Where the bytes go.
    pub backend_id: String,
    /// The backend's handle on the staged bytes.
    pub staging: String,
    /// Part size.
    pub part_bytes: u64,
    /// Where it stands: bytes, digests, part receipts.
    pub progress: UploadProgress,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it expires unless written to.
    pub expires_at: Timestamp,
    /// The request writing to it now, if any.
    pub locked_by: Option<String>,
    /// Until when that request's lock holds unless renewed.
    pub locked_until: Option<Timestamp>,
}

/// What an upload has durably received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadProgress {
    /// Bytes received.
    pub upload_offset: u64,
    /// The digests of the whole parts (`core::resumable::PartDigests`).
    pub digest_state: Vec<u8>,
    /// The backend's receipt for each whole part.
    pub part_receipts: Vec<String>,
}

/// An upload's claim on a path of its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReservation {
    /// The upload.
    pub upload_id: String,
    /// Its package.
    pub package_id: String,
    /// The path it reserves.
    pub relative_path: String,
    /// That path's collision key.
    pub path_key: String,
}

const COLUMNS: &str = "id, package_id, relative_path, path_key, media_type, upload_length, \
     expected_sha256, expected_blake3, metadata, actor, backend_id, staging, part_bytes, \
     upload_offset, digest_state, part_receipts, created_at, expires_at, locked_by, locked_until";

fn to_i64(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::corrupt(format!("{what} {value} is too large")))
}

fn to_u64(row: &AnyRow, column: &str) -> StoreResult<u64> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("{column} is negative")))
}

fn receipts_text(receipts: &[String]) -> String {
    receipts.join("\n")
}

fn upload_from_row(row: &AnyRow) -> StoreResult<UploadRecord> {
    let receipts: String = row.try_get("part_receipts")?;
    Ok(UploadRecord {
        id: row.try_get("id")?,
        package_id: row.try_get("package_id")?,
        relative_path: row.try_get("relative_path")?,
        path_key: row.try_get("path_key")?,
        media_type: row.try_get("media_type")?,
        upload_length: to_u64(row, "upload_length")?,
        expected_sha256: row.try_get("expected_sha256")?,
        expected_blake3: row.try_get("expected_blake3")?,
        metadata: row.try_get("metadata")?,
        actor: row.try_get("actor")?,
        backend_id: row.try_get("backend_id")?,
        staging: row.try_get("staging")?,
        part_bytes: to_u64(row, "part_bytes")?,
        progress: UploadProgress {
            upload_offset: to_u64(row, "upload_offset")?,
            digest_state: row.try_get("digest_state")?,
            part_receipts: if receipts.is_empty() {
                Vec::new()
            } else {
                receipts.split('\n').map(str::to_owned).collect()
            },
        },
        created_at: timestamp(row, "created_at")?,
        expires_at: timestamp(row, "expires_at")?,
        locked_by: row.try_get("locked_by")?,
        locked_until: opt_timestamp(row, "locked_until")?,
    })
}

async fn reservations(
    conn: &mut AnyConnection,
    package_id: &str,
    now: Timestamp,
) -> StoreResult<Vec<UploadReservation>> {
    let rows = sqlx::query(
        "SELECT id, package_id, relative_path, path_key FROM uploads \
         WHERE package_id = $1 AND expires_at > $2 ORDER BY created_at, id",
    )
    .bind(package_id)
    .bind(now.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(reservation_from_row).collect()
}

fn reservation_from_row(row: &AnyRow) -> StoreResult<UploadReservation> {
    Ok(UploadReservation {
        upload_id: row.try_get("id")?,
        package_id: row.try_get("package_id")?,
        relative_path: row.try_get("relative_path")?,
        path_key: row.try_get("path_key")?,
    })
}

impl Store {
    /// One upload, expired or not.
    pub async fn upload(&self, id: &str) -> StoreResult<Option<UploadRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM uploads WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    /// The uploads of a package that have not expired at `now`.
    pub async fn open_uploads(
        &self,
        package_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<UploadReservation>> {
        reservations(&mut *self.pool.acquire().await?, package_id, now).await
    }

    /// Uploads expired at `now` (at most `limit`), oldest first.
    pub async fn expired_uploads(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<UploadRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM uploads WHERE expires_at <= $1 ORDER BY expires_at, id LIMIT $2"
        ))
        .bind(now.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(upload_from_row).collect()
    }

    /// Locks an upload for `holder` until `until`, if no one else holds an
    /// unexpired lock on it. The upload's own expiry is not checked here:
    /// the expiry sweep locks expired uploads to remove them, and a request
    /// checks it when it reads the upload, just before. On SQLite the
    /// commit skips the fsync: a lock lost with the machine's power was
    /// held by a request that died with it.
    pub async fn lock_upload(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let taken = sqlx::query(
            "UPDATE uploads SET locked_by = $1, locked_until = $2 WHERE id = $3 \
             AND (locked_by IS NULL OR locked_by = $1 OR locked_until <= $4)",
        )
        .bind(holder)
        .bind(until.to_string())
        .bind(id)
        .bind(now.to_string())
        .execute(&self.progress_pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Saves progress and the expiry, if `holder` still holds the lock;
    /// returns whether it did. The lock is renewed until `locked_until`,
    /// or given back with `None` (one write where a request ends). On
    /// SQLite a [`SaveDurability::Deferred`] commit may skip the fsync
    /// (see `progress_pool`): the caller has made the bytes it covers
    /// durable first.
    pub async fn save_upload(
        &self,
        id: &str,
        holder: &str,
        progress: &UploadProgress,
        locked_until: Option<Timestamp>,
        expires_at: Timestamp,
        durability: SaveDurability,
    ) -> StoreResult<bool> {
        let sql = if locked_until.is_some() {
            "UPDATE uploads SET upload_offset = $1, digest_state = $2, part_receipts = $3, \
             locked_until = $4, expires_at = $5 WHERE id = $6 AND locked_by = $7"
        } else {
            "UPDATE uploads SET upload_offset = $1, digest_state = $2, part_receipts = $3, \
             locked_by = NULL, locked_until = $4, expires_at = $5 WHERE id = $6 AND locked_by = $7"
        };
        let update = sqlx::query(sql)
            .bind(to_i64(progress.upload_offset, "offset")?)
            .bind(progress.digest_state.clone())
            .bind(receipts_text(&progress.part_receipts))
            .bind(locked_until.map(|until| until.to_string()))
            .bind(expires_at.to_string())
            .bind(id)
            .bind(holder);
        // Through the main pool, the commit's fsync makes every earlier
        // save durable too: at least every PROGRESS_SYNC_EVERY.
        let durable_now = {
            let last = self
                .progress_synced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            durability == SaveDurability::Immediate || last.elapsed() >= PROGRESS_SYNC_EVERY
        };
        let pool = if durable_now {
            &self.pool
        } else {
            &self.progress_pool
        };
        // A save that changed nothing wrote nothing, and synced nothing.
        let saved = update.execute(pool).await?.rows_affected() == 1;
        if durable_now && saved {
            *self
                .progress_synced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
        }
        Ok(saved)
    }

    /// Gives `holder`'s lock back.
    pub async fn unlock_upload(&self, id: &str, holder: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE uploads SET locked_by = NULL, locked_until = NULL WHERE id = $1 AND locked_by = $2",
        )
        .bind(id)
        .bind(holder)
        .execute(&self.progress_pool)
        .await?;
        Ok(())
    }

    /// Removes an upload whose bytes are gone, if `holder` holds its lock.
    pub async fn delete_upload(&self, id: &str, holder: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM uploads WHERE id = $1 AND locked_by = $2")
            .bind(id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }
}

impl LogTx<'_> {
    /// The paths reserved by uploads of `package_ids` that have not
    /// expired, as this transaction sees them.
    pub async fn open_uploads(
        &mut self,
        package_ids: &[&str],
        now: Timestamp,
    ) -> StoreResult<Vec<UploadReservation>> {
        let now = now.to_string();
        let conn = self.flush().await?;
        let mut found = Vec::new();
        for chunk in package_ids.chunks(500) {
            // Padded with the last id again, which changes no answer, so
            // that the texts stay few (see `queries::padded_rows`).
            let padded = crate::queries::padded_rows(chunk.len());
            let list: Vec<String> = (0..padded).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT id, package_id, relative_path, path_key FROM uploads \
                 WHERE expires_at > $1 AND package_id IN ({}) ORDER BY created_at, id",
                list.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now.as_str());
            for n in 0..padded {
                query = query.bind(chunk.get(n).or(chunk.last()).copied().unwrap_or_default());
            }
            for row in query.fetch_all(&mut *conn).await? {
                found.push(reservation_from_row(&row)?);
            }
        }
        Ok(found)
    }

    /// Records a new upload (its path was checked under this transaction's
    /// lock on the log head, so no file or upload took it meanwhile).
    pub async fn insert_upload(&mut self, upload: &UploadRecord) -> StoreResult<()> {
        let conn = self.flush().await?;
        sqlx::query(&format!(
            "INSERT INTO uploads ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        ))
        .bind(upload.id.as_str())
        .bind(upload.package_id.as_str())
        .bind(upload.relative_path.as_str())
        .bind(upload.path_key.as_str())
        .bind(upload.media_type.as_str())
        .bind(to_i64(upload.upload_length, "length")?)
        .bind(upload.expected_sha256.clone())
        .bind(upload.expected_blake3.clone())
        .bind(upload.metadata.as_str())
        .bind(upload.actor.as_str())
        .bind(upload.backend_id.as_str())
        .bind(upload.staging.as_str())
        .bind(to_i64(upload.part_bytes, "part size")?)
        .bind(to_i64(upload.progress.upload_offset, "offset")?)
        .bind(upload.progress.digest_state.clone())
        .bind(receipts_text(&upload.progress.part_receipts))
        .bind(upload.created_at.to_string())
        .bind(upload.expires_at.to_string())
        .bind(upload.locked_by.clone())
        .bind(upload.locked_until.map(|t| t.to_string()))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Ends an upload whose file this transaction records, if `holder`
    /// still holds its lock; returns whether it did.
    pub async fn complete_upload(&mut self, id: &str, holder: &str) -> StoreResult<bool> {
        let conn = self.flush().await?;
        let deleted = sqlx::query("DELETE FROM uploads WHERE id = $1 AND locked_by = $2")
            .bind(id)
            .bind(holder)
            .execute(&mut *conn)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }
}
