//! What the lifecycle reads and coordinates through the database: eligible
//! packages, the object keys live files refer to, the collector's claims
//! (`gc_claims`), the lease that lets one process run the lifecycle at a
//! time (`lifecycle_lease`), and usage figures.
//!
//! Claims and the lease are not views: no event writes them and replay
//! leaves them alone, like `log_head`. The protocol they serve is in
//! docs/architecture.md ("Lifecycle").

use std::collections::HashSet;

use artifactstore_core::Timestamp;
use sqlx::{AnyConnection, Row};

use crate::log::LogTx;
use crate::queries::PACKAGE_COLUMNS;
use crate::records::{package_from_row, status, timestamp, PackageRecord};
use crate::{Store, StoreResult};

/// Keys bound in one `IN (…)` list.
const KEYS_PER_QUERY: usize = 500;

/// A claim the collector holds on an object it is deleting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The backend.
    pub backend_id: String,
    /// The key.
    pub object_key: String,
    /// The lease holder that made it.
    pub claimed_by: String,
}

/// Logical and physical bytes, as the views count them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRecord {
    /// (producer, files, bytes) of packages not purged.
    pub by_producer: Vec<(String, u64, u64)>,
    /// (retention class, files, bytes) of packages not purged.
    pub by_class: Vec<(String, u64, u64)>,
    /// (backend, distinct objects, bytes) live files refer to: what is
    /// stored once deduplicated.
    pub by_backend: Vec<(String, u64, u64)>,
}

fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Of `keys` on `backend`, those a file of a package that is not purged
/// refers to.
async fn referenced(
    conn: &mut AnyConnection,
    backend: &str,
    keys: &[String],
) -> StoreResult<HashSet<String>> {
    let mut found = HashSet::new();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let sql = format!(
            "SELECT DISTINCT l.object_key FROM storage_locations l \
             JOIN files f ON f.id = l.file_id JOIN packages p ON p.id = f.package_id \
             WHERE l.backend_id = $1 AND p.status <> $2 AND l.object_key IN ({})",
            placeholders(3, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(backend).bind(status::PURGED);
        for key in chunk {
            query = query.bind(key.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.insert(row.try_get("object_key")?);
        }
    }
    Ok(found)
}

impl Store {
    /// Packages eligible for deletion, not purged, of one of `classes`, in
    /// creation order after the cursor `after`; each with when it became
    /// eligible.
    pub async fn eligible_packages(
        &self,
        classes: &[String],
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<(PackageRecord, Timestamp)>> {
        if classes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {PACKAGE_COLUMNS}, r.eligible_at FROM retention_state r \
             JOIN packages p ON p.id = r.package_id \
             WHERE r.eligible_for_deletion = 1 AND r.purged_at IS NULL AND r.eligible_at IS NOT NULL \
             AND p.created_sequence > $1 AND p.retention_class IN ({}) \
             ORDER BY p.created_sequence LIMIT $2",
            placeholders(3, classes.len())
        );
        let mut query = sqlx::query(&sql).bind(after).bind(limit.max(1));
        for class in classes {
            query = query.bind(class.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((package_from_row(row)?, timestamp(row, "eligible_at")?)))
            .collect()
    }

    /// The keys on `backend` that files refer to: those a file of a
    /// package that is not purged refers to (`live`), and those only files
    /// of purged packages refer to. Packages in `assume_purged` count as
    /// purged (a dry run's purges).
    pub async fn object_references(
        &self,
        backend: &str,
        assume_purged: &HashSet<String>,
    ) -> StoreResult<(HashSet<String>, HashSet<String>)> {
        let mut live = HashSet::new();
        let mut purged = HashSet::new();
        if assume_purged.is_empty() {
            let rows = sqlx::query(
                "SELECT DISTINCT l.object_key, CASE WHEN p.status = $2 THEN 0 ELSE 1 END AS live \
                 FROM storage_locations l JOIN files f ON f.id = l.file_id \
                 JOIN packages p ON p.id = f.package_id WHERE l.backend_id = $1",
            )
            .bind(backend)
            .bind(status::PURGED)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                let key: String = row.try_get("object_key")?;
                let is_live: i64 = row.try_get("live")?;
                if is_live == 1 {
                    live.insert(key);
                } else {
                    purged.insert(key);
                }
            }
        } else {
            let rows = sqlx::query(
                "SELECT l.object_key, p.id AS package_id, p.status FROM storage_locations l \
                 JOIN files f ON f.id = l.file_id JOIN packages p ON p.id = f.package_id \
                 WHERE l.backend_id = $1",
            )
            .bind(backend)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                let key: String = row.try_get("object_key")?;
                let package: String = row.try_get("package_id")?;
                let package_status: String = row.try_get("status")?;
                if package_status == status::PURGED || assume_purged.contains(&package) {
                    purged.insert(key);
                } else {
                    live.insert(key);
                }
            }
        }
        purged.retain(|key| !live.contains(key));
        Ok((live, purged))
    }

    /// Every claim left by a collector (one that stopped before finishing).
    pub async fn claims(&self) -> StoreResult<Vec<ClaimRecord>> {
        let rows = sqlx::query(
            "SELECT backend_id, object_key, claimed_by FROM gc_claims ORDER BY backend_id, object_key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimRecord {
                    backend_id: row.try_get("backend_id")?,
                    object_key: row.try_get("object_key")?,
                    claimed_by: row.try_get("claimed_by")?,
                })
            })
            .collect()
    }

    /// Takes (or renews) the lifecycle lease for `holder` until `until`,
    /// if it is free, expired at `now`, or `holder`'s already.
    pub async fn take_lifecycle_lease(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let taken = sqlx::query(
            "UPDATE lifecycle_lease SET holder = $1, expires_at = $2 WHERE id = 1 \
             AND (holder IS NULL OR holder = $1 OR expires_at IS NULL OR expires_at <= $3)",
        )
        .bind(holder)
        .bind(until.to_string())
        .bind(now.to_string())
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Gives the lease back, if `holder` has it.
    pub async fn release_lifecycle_lease(&self, holder: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE lifecycle_lease SET holder = NULL, expires_at = NULL WHERE id = 1 AND holder = $1",
        )
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Logical bytes per producer and class, physical per backend.
    pub async fn usage(&self) -> StoreResult<UsageRecord> {
        let grouped = |column: &str| {
            format!(
                "SELECT p.{column} AS name, COUNT(f.id) AS files, \
                 CAST(COALESCE(SUM(f.size_bytes), 0) AS BIGINT) AS bytes \
                 FROM files f JOIN packages p ON p.id = f.package_id WHERE p.status <> $1 \
                 GROUP BY p.{column} ORDER BY p.{column}"
            )
        };
        let physical = "SELECT d.backend_id AS name, COUNT(*) AS files, \
             CAST(COALESCE(SUM(d.size_bytes), 0) AS BIGINT) AS bytes FROM \
             (SELECT DISTINCT l.backend_id, l.object_key, f.size_bytes FROM storage_locations l \
              JOIN files f ON f.id = l.file_id JOIN packages p ON p.id = f.package_id \
              WHERE p.status <> $1) d GROUP BY d.backend_id ORDER BY d.backend_id";
        let mut usage = UsageRecord::default();
        for (sql, into) in [
            (grouped("producer"), &mut usage.by_producer),
            (grouped("retention_class"), &mut usage.by_class),
            (physical.to_owned(), &mut usage.by_backend),
        ] {
            let rows = sqlx::query(&sql)
                .bind(status::PURGED)
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                let files: i64 = row.try_get("files")?;
                let bytes: i64 = row.try_get("bytes")?;
                into.push((
                    row.try_get("name")?,
                    u64::try_from(files).unwrap_or(0),
                    u64::try_from(bytes).unwrap_or(0),
                ));
            }
        }
        Ok(usage)
    }
}

impl LogTx<'_> {
    /// Of `keys` on `backend`, those a file of a package that is not
    /// purged refers to, as this transaction sees them.
    pub async fn live_references(
        &mut self,
        backend: &str,
        keys: &[String],
    ) -> StoreResult<HashSet<String>> {
        referenced(self.flush().await?, backend, keys).await
    }

    /// Of `keys` on `backend`, those already claimed.
    pub async fn claimed(
        &mut self,
        backend: &str,
        keys: &[String],
    ) -> StoreResult<HashSet<String>> {
        let conn = self.flush().await?;
        let mut found = HashSet::new();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let sql = format!(
                "SELECT object_key FROM gc_claims WHERE backend_id = $1 AND object_key IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(backend);
            for key in chunk {
                query = query.bind(key.as_str());
            }
            for row in query.fetch_all(&mut *conn).await? {
                found.insert(row.try_get("object_key")?);
            }
        }
        Ok(found)
    }

    /// Claims `keys` on `backend` for `holder`: from now until the claim is
    /// released, no upload of those bytes records its event.
    pub async fn claim_objects(
        &mut self,
        backend: &str,
        keys: &[String],
        holder: &str,
    ) -> StoreResult<()> {
        let now = self.now().to_string();
        let conn = self.flush().await?;
        for key in keys {
            sqlx::query(
                "INSERT INTO gc_claims (backend_id, object_key, claimed_by, claimed_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (backend_id, object_key) DO NOTHING",
            )
            .bind(backend)
            .bind(key.as_str())
            .bind(holder)
            .bind(now.as_str())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Ends `holder`'s claims on `keys` of `backend` (a claim another
    /// holder took over stays: that holder deletes and records it).
    pub async fn release_claims(
        &mut self,
        backend: &str,
        keys: &[String],
        holder: &str,
    ) -> StoreResult<()> {
        let conn = self.flush().await?;
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let sql = format!(
                "DELETE FROM gc_claims WHERE backend_id = $1 AND claimed_by = $2 AND object_key IN ({})",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(backend).bind(holder);
            for key in chunk {
                query = query.bind(key.as_str());
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Takes over, for `holder`, the claims on `keys` of `backend` that
    /// still exist; returns the keys taken over. A claim its maker ended
    /// meanwhile is not resurrected.
    pub async fn adopt_claims(
        &mut self,
        backend: &str,
        keys: &[String],
        holder: &str,
    ) -> StoreResult<Vec<String>> {
        let existing = self.claimed(backend, keys).await?;
        let conn = self.flush().await?;
        let mut adopted = Vec::new();
        for key in keys.iter().filter(|k| existing.contains(*k)) {
            sqlx::query(
                "UPDATE gc_claims SET claimed_by = $1 WHERE backend_id = $2 AND object_key = $3",
            )
            .bind(holder)
            .bind(backend)
            .bind(key.as_str())
            .execute(&mut *conn)
            .await?;
            adopted.push(key.clone());
        }
        Ok(adopted)
    }

    /// For each (backend, key, sequence): whether the collector may have
    /// deleted that object after the log head was at `sequence`: a claim on
    /// it now, or a deletion recorded after `sequence`. An upload that read
    /// `sequence` before storing its bytes must not record them then.
    pub async fn collected_since(
        &mut self,
        objects: &[(&str, &str, i64)],
    ) -> StoreResult<Vec<bool>> {
        let conn = self.flush().await?;
        let mut found = vec![false; objects.len()];
        for (chunk_index, chunk) in objects.chunks(KEYS_PER_QUERY).enumerate() {
            let offset = chunk_index * KEYS_PER_QUERY;
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "({}, ${}, ${}, ${})",
                        offset + i,
                        3 * i + 1,
                        3 * i + 2,
                        3 * i + 3
                    )
                })
                .collect();
            let sql = format!(
                "SELECT q.column1 AS position FROM (VALUES {}) AS q \
                 WHERE EXISTS (SELECT 1 FROM gc_claims c WHERE c.backend_id = q.column2 AND c.object_key = q.column3) \
                 OR EXISTS (SELECT 1 FROM object_deletions d WHERE d.backend_id = q.column2 \
                            AND d.object_key = q.column3 AND d.sequence > q.column4)",
                values.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (backend, key, since) in chunk {
                query = query.bind(*backend).bind(*key).bind(*since);
            }
            for row in query.fetch_all(&mut *conn).await? {
                let position: i64 = row.try_get("position")?;
                if let Some(slot) = usize::try_from(position)
                    .ok()
                    .and_then(|p| found.get_mut(p))
                {
                    *slot = true;
                }
            }
        }
        Ok(found)
    }
}
