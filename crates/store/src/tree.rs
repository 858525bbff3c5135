//! The log's Merkle tree as stored: tiles of node hashes, grown from the
//! events by [`Store::extend_tree`], read for roots and proofs; and the
//! signed checkpoints (a view of `v1.log.checkpoint_signed`).
//!
//! The tree is not written by appends: an append stays as it was, and the
//! builder catches up behind it (before each checkpoint, and before a proof
//! for a size it has not reached). Builders on several replicas race
//! safely: each batch moves `log_tree.size` from the size it read to the
//! new one in the transaction that writes the tiles, and a batch that finds
//! the size moved is dropped (its tiles would be the same bytes anyway).

use std::collections::BTreeMap;

use artifactstore_core::merkle::{self, Span, TileEdge, TileId};
use artifactstore_core::{Digest32, Event, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::records::timestamp;
use crate::{Engine, Store, StoreError, StoreResult};

/// Events read per tree-building batch.
const BUILD_BATCH: i64 = 8192;

/// A signed checkpoint, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// Leaves in the tree signed.
    pub tree_size: u64,
    /// Its root.
    pub root_hash: Digest32,
    /// The log's origin line.
    pub origin: String,
    /// The signed note, exactly as served.
    pub note: String,
    /// The sequence of the event that recorded it.
    pub sequence: i64,
    /// When.
    pub signed_at: Timestamp,
}

const CHECKPOINT_COLUMNS: &str = "tree_size, root_hash, origin, note, sequence, signed_at";

fn checkpoint_from_row(row: &AnyRow) -> StoreResult<CheckpointRecord> {
    let size: i64 = row.try_get("tree_size")?;
    let root: String = row.try_get("root_hash")?;
    Ok(CheckpointRecord {
        tree_size: u64::try_from(size).map_err(StoreError::corrupt)?,
        root_hash: Digest32::from_hex(&root).map_err(StoreError::corrupt)?,
        origin: row.try_get("origin")?,
        note: row.try_get("note")?,
        sequence: row.try_get("sequence")?,
        signed_at: timestamp(row, "signed_at")?,
    })
}

fn to_i64(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Unstorable("a tree size beyond i64"))
}

impl Store {
    /// Leaves the stored tiles hold.
    pub async fn tree_size(&self) -> StoreResult<u64> {
        let size: i64 = sqlx::query("SELECT size FROM log_tree WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get("size")?;
        u64::try_from(size).map_err(StoreError::corrupt)
    }

    /// Grows the tiles until they hold every event committed when called
    /// (at least); returns the tree size reached.
    pub async fn extend_tree(&self) -> StoreResult<u64> {
        let target = u64::try_from(self.head_sequence().await?).map_err(StoreError::corrupt)?;
        loop {
            let size = self.tree_size().await?;
            if size >= target {
                return Ok(size);
            }
            self.extend_tree_once(size).await?;
        }
    }

    /// One batch from `size`; does nothing if another builder moved first.
    async fn extend_tree_once(&self, size: u64) -> StoreResult<()> {
        let leaves = self.leaves_after(to_i64(size)?, BUILD_BATCH).await?;
        if leaves.is_empty() {
            return Ok(());
        }
        let unfilled: Vec<TileId> = merkle::partial_tiles(size)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let loaded = self.tiles(&unfilled).await?;
        let loaded: Vec<(TileId, Vec<Digest32>)> = loaded.into_iter().collect();
        let mut edge = TileEdge::new(size, &loaded).map_err(StoreError::corrupt)?;
        for (sequence, leaf) in leaves {
            if u64::try_from(sequence).ok() != Some(edge.size() + 1) {
                return Err(StoreError::corrupt(format!(
                    "the log has no event {} (found {sequence})",
                    edge.size() + 1
                )));
            }
            edge.push(merkle::leaf_hash(&leaf));
        }
        let new_size = edge.size();
        let _local_writer = match self.engine {
            Engine::Sqlite => Some(self.local_writer.lock().await),
            Engine::Postgres => None,
        };
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query("UPDATE log_tree SET size = $1 WHERE id = 1 AND size = $2")
            .bind(to_i64(new_size)?)
            .bind(to_i64(size)?)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() != 1 {
            return Ok(());
        }
        for (tile, hashes) in edge.into_changed() {
            sqlx::query(
                "INSERT INTO log_tiles (level, tile_index, hashes) VALUES ($1, $2, $3) \
                 ON CONFLICT (level, tile_index) DO UPDATE SET hashes = excluded.hashes",
            )
            .bind(i64::from(tile.level))
            .bind(to_i64(tile.index)?)
            .bind(merkle::encode_tile(&hashes))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The leaf bytes of the events after `since`, with their sequences.
    /// The payload is not read: a leaf holds only its digest.
    pub async fn leaves_after(&self, since: i64, limit: i64) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT sequence, event_type, subject_kind, subject_id, actor, payload_digest, \
             created_at FROM events WHERE sequence > $1 ORDER BY sequence LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let digest: Vec<u8> = row.try_get("payload_digest")?;
                let event = Event {
                    sequence: row.try_get("sequence")?,
                    event_type: row.try_get("event_type")?,
                    subject_kind: row.try_get("subject_kind")?,
                    subject_id: row.try_get("subject_id")?,
                    actor: row.try_get("actor")?,
                    payload: Vec::new(),
                    payload_digest: Digest32(
                        digest
                            .try_into()
                            .map_err(|_| StoreError::corrupt("payload_digest is not 32 bytes"))?,
                    ),
                    created_at: timestamp(row, "created_at")?,
                    chain_hash: artifactstore_core::event::GENESIS_CHAIN_HASH,
                };
                Ok((event.sequence, event.leaf_bytes()))
            })
            .collect()
    }

    /// The stored tiles among `ids` (absent ones are left out).
    async fn tiles(&self, ids: &[TileId]) -> StoreResult<BTreeMap<TileId, Vec<Digest32>>> {
        let mut found = BTreeMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        // Bound the statement's parameters (SQLite allows 32,766).
        for chunk in ids.chunks(512) {
            let wanted: Vec<String> = (0..chunk.len())
                .map(|i| format!("(level = ${} AND tile_index = ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "SELECT level, tile_index, hashes FROM log_tiles WHERE {}",
                wanted.join(" OR ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(i64::from(id.level)).bind(to_i64(id.index)?);
            }
            for row in query.fetch_all(&self.pool).await? {
                let level: i64 = row.try_get("level")?;
                let index: i64 = row.try_get("tile_index")?;
                let bytes: Vec<u8> = row.try_get("hashes")?;
                let id = TileId {
                    level: u32::try_from(level).map_err(StoreError::corrupt)?,
                    index: u64::try_from(index).map_err(StoreError::corrupt)?,
                };
                let hashes = merkle::decode_tile(&bytes)
                    .ok_or_else(|| StoreError::corrupt(format!("tile {id:?} is malformed")))?;
                found.insert(id, hashes);
            }
        }
        Ok(found)
    }

    /// The hashes of `spans` of a tree the tiles hold (callers check the
    /// size against [`Store::tree_size`] first), read in one query.
    pub async fn span_hashes(&self, spans: &[Span]) -> StoreResult<Vec<Digest32>> {
        let ids: Vec<TileId> = merkle::tiles_for(spans).into_iter().collect();
        let tiles = self.tiles(&ids).await?;
        spans
            .iter()
            .map(|span| {
                let nodes = span
                    .nodes()
                    .iter()
                    .map(|node| {
                        tiles
                            .get(&node.tile().0)
                            .and_then(|tile| node.hash_in(tile))
                            .ok_or_else(|| {
                                StoreError::corrupt(format!(
                                    "the stored tree lacks node {node:?} (leaves {}..{})",
                                    span.start(),
                                    span.end()
                                ))
                            })
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(merkle::span_hash(&nodes))
            })
            .collect()
    }

    /// The root of the tree of the first `size` events, from the tiles.
    pub async fn tree_root(&self, size: u64) -> StoreResult<Digest32> {
        Ok(self.span_hashes(&[Span::tree(size)]).await?[0])
    }

    /// One event by sequence.
    pub async fn event(&self, sequence: i64) -> StoreResult<Option<Event>> {
        Ok(self
            .fetch_events(sequence - 1, 1)
            .await?
            .into_iter()
            .next()
            .filter(|e| e.sequence == sequence))
    }

    /// The newest signed checkpoint.
    pub async fn latest_checkpoint(&self) -> StoreResult<Option<CheckpointRecord>> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1"
        );
        sqlx::query(&sql)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(checkpoint_from_row)
            .transpose()
    }

    /// The checkpoint of exactly `tree_size` leaves.
    pub async fn checkpoint(&self, tree_size: u64) -> StoreResult<Option<CheckpointRecord>> {
        let sql = format!("SELECT {CHECKPOINT_COLUMNS} FROM log_checkpoints WHERE tree_size = $1");
        sqlx::query(&sql)
            .bind(to_i64(tree_size)?)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(checkpoint_from_row)
            .transpose()
    }

    /// Checkpoints larger than `after`, smallest first, at most `limit`.
    pub async fn checkpoints_after(
        &self,
        after: u64,
        limit: i64,
    ) -> StoreResult<Vec<CheckpointRecord>> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM log_checkpoints WHERE tree_size > $1 \
             ORDER BY tree_size LIMIT $2"
        );
        sqlx::query(&sql)
            .bind(to_i64(after)?)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(checkpoint_from_row)
            .collect()
    }
}

impl crate::LogTx<'_> {
    /// The newest signed checkpoint, as this transaction sees it (under the
    /// head lock: no other checkpoint can be recorded until commit).
    pub async fn latest_checkpoint(&mut self) -> StoreResult<Option<CheckpointRecord>> {
        let sql = format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1"
        );
        sqlx::query(&sql)
            .fetch_optional(self.flush().await?)
            .await?
            .as_ref()
            .map(checkpoint_from_row)
            .transpose()
    }
}
