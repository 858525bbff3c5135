//! The append-only log: append (inside [`LogTx`]), fetch, tail, verify.

use std::time::Duration;

use artifactstore_core::event::GENESIS_CHAIN_HASH;
use artifactstore_core::{Digest32, Event, NewEvent, Timestamp};
use futures::Stream;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};
use tokio::sync::{watch, MutexGuard};

use crate::batch::{Batch, Bind};
use crate::queries::FileSlot;
use crate::records::{
    FileRecord, HoldRecord, PackageRecord, RetentionRecord, SchemaRecord, TokenRecord,
};
use crate::{queries, views, Engine, Store, StoreError, StoreResult};

/// The events table's columns, written once for the insert and the selects.
macro_rules! event_columns {
    () => {
        "sequence, event_type, subject_kind, subject_id, actor, payload, payload_digest, created_at, chain_hash"
    };
}

pub(crate) const EVENT_COLUMNS: &str = event_columns!();

/// How often a follower looks at the log when nothing woke it: other
/// processes (admin commands, other replicas) append without telling us.
const TAIL_SAFETY_POLL: Duration = Duration::from_millis(250);
const TAIL_BATCH: i64 = 512;

fn digest(row: &AnyRow, column: &str) -> StoreResult<Digest32> {
    let bytes: Vec<u8> = row.try_get(column)?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::corrupt(format!("{column} is not 32 bytes")))?;
    Ok(Digest32(array))
}

pub(crate) fn event_from_row(row: &AnyRow) -> StoreResult<Event> {
    Ok(Event {
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        subject_kind: row.try_get("subject_kind")?,
        subject_id: row.try_get("subject_id")?,
        actor: row.try_get("actor")?,
        payload: row.try_get("payload")?,
        payload_digest: digest(row, "payload_digest")?,
        created_at: crate::records::timestamp(row, "created_at")?,
        chain_hash: digest(row, "chain_hash")?,
    })
}

/// A write transaction on the log: holds the head lock from begin to
/// commit. Dropping it without [`LogTx::commit`] rolls everything back.
///
/// Appends are planned, not sent: their statements go to the database
/// together, before the transaction's next read and at commit, so an error
/// an append causes (a duplicate path, say) surfaces there.
pub struct LogTx<'s> {
    store: &'s Store,
    tx: Transaction<'static, Any>,
    _local_writer: Option<MutexGuard<'s, ()>>,
    head_sequence: i64,
    head_chain: Digest32,
    appended: Vec<Event>,
    pending: Batch,
}

/// Planned statements that make an open transaction send them.
const MAX_PENDING_STATEMENTS: usize = 512;

const INSERT_EVENT: &str = concat!(
    "INSERT INTO events (",
    event_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);

impl Store {
    /// Starts a write transaction and takes the log head lock.
    pub async fn begin(&self) -> StoreResult<LogTx<'_>> {
        let local_writer = match self.engine {
            Engine::Sqlite => Some(
                tokio::time::timeout(self.timeout, self.local_writer.lock())
                    .await
                    .map_err(|_| StoreError::Busy)?,
            ),
            Engine::Postgres => None,
        };
        let mut tx = self.pool.begin().await?;
        // A write as the first statement: SQLite takes its write lock now
        // rather than failing to upgrade a read lock later, and PostgreSQL
        // locks the row until commit.
        let row = sqlx::query(
            "UPDATE log_head SET sequence = sequence WHERE id = 1 RETURNING sequence, chain_hash",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(LogTx {
            store: self,
            head_sequence: row.try_get("sequence")?,
            head_chain: digest(&row, "chain_hash")?,
            tx,
            _local_writer: local_writer,
            appended: Vec::new(),
            pending: Batch::default(),
        })
    }

    /// The newest committed sequence (0 for an empty log).
    pub async fn head_sequence(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT sequence FROM log_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("sequence")?)
    }

    /// Events with sequence greater than `since`, ascending, at most `limit`.
    pub async fn fetch_events(&self, since: i64, limit: i64) -> StoreResult<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE sequence > $1 ORDER BY sequence LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(since)
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Events before sequence `before` (all, if `None`), newest first, at
    /// most `limit`; only of `event_type` and of subject `subject_id` where
    /// given (the web UI's event log).
    pub async fn newest_events(
        &self,
        before: Option<i64>,
        event_type: Option<&str>,
        subject_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Event>> {
        // Only the filters given are in the statement, so each can use its
        // index, which ends in the sequence (`events_subject`,
        // `events_by_type` of migration 11, and for both filters
        // `events_subject_type` of migration 12): the newest come first
        // without a sort.
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE sequence < $1");
        let mut next = 2;
        for (column, value) in [("event_type", event_type), ("subject_id", subject_id)] {
            if value.is_some() {
                sql.push_str(&format!(" AND {column} = ${next}"));
                next += 1;
            }
        }
        sql.push_str(&format!(" ORDER BY sequence DESC LIMIT ${next}"));
        let mut query = sqlx::query(&sql).bind(before.unwrap_or(i64::MAX));
        for value in [event_type, subject_id].into_iter().flatten() {
            query = query.bind(value);
        }
        let rows = query.bind(limit.max(0)).fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Follows the log from `since`: every committed event after it, once,
    /// in order, then new ones as they commit. The stream ends only when
    /// dropped or after yielding a database error.
    pub fn tail(&self, since: i64) -> impl Stream<Item = StoreResult<Event>> + Send + 'static {
        struct Follow {
            store: Store,
            wake: watch::Receiver<i64>,
            cursor: i64,
            buffered: std::vec::IntoIter<Event>,
            failed: bool,
        }
        let start = Follow {
            store: self.clone(),
            wake: self.head.subscribe(),
            cursor: since,
            buffered: Vec::new().into_iter(),
            failed: false,
        };
        futures::stream::unfold(start, |mut follow| async move {
            if follow.failed {
                return None;
            }
            loop {
                if let Some(event) = follow.buffered.next() {
                    follow.cursor = event.sequence;
                    return Some((Ok(event), follow));
                }
                // Mark the head seen before reading, so a commit that lands
                // after the read wakes the wait below.
                follow.wake.borrow_and_update();
                match follow.store.fetch_events(follow.cursor, TAIL_BATCH).await {
                    Ok(batch) if !batch.is_empty() => follow.buffered = batch.into_iter(),
                    Ok(_) => {
                        let _ = tokio::time::timeout(TAIL_SAFETY_POLL, follow.wake.changed()).await;
                    }
                    Err(e) => {
                        follow.failed = true;
                        return Some((Err(e), follow));
                    }
                }
            }
        })
    }

    /// Recomputes every payload digest and the hash chain.
    pub async fn verify_log(&self) -> StoreResult<LogVerification> {
        let mut previous = GENESIS_CHAIN_HASH;
        let mut expected_sequence = 1;
        let mut checked = 0u64;
        loop {
            let batch = self.fetch_events(expected_sequence - 1, 4096).await?;
            if batch.is_empty() {
                break;
            }
            for event in batch {
                let intact = event.sequence == expected_sequence
                    && Digest32::blake3_of(&event.payload) == event.payload_digest
                    && event.expected_chain_hash(&previous) == event.chain_hash;
                if !intact {
                    return Ok(LogVerification {
                        checked,
                        first_bad_sequence: Some(expected_sequence.min(event.sequence)),
                    });
                }
                previous = event.chain_hash;
                expected_sequence += 1;
                checked += 1;
            }
        }
        let row = sqlx::query("SELECT sequence, chain_hash FROM log_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let head: i64 = row.try_get("sequence")?;
        let head_intact = head == expected_sequence - 1 && digest(&row, "chain_hash")? == previous;
        Ok(LogVerification {
            checked,
            first_bad_sequence: (!head_intact).then_some(expected_sequence),
        })
    }

    pub(crate) fn announce(&self, sequence: i64) {
        self.head.send_if_modified(|head| {
            let newer = sequence > *head;
            if newer {
                *head = sequence;
            }
            newer
        });
    }
}

/// The outcome of [`Store::verify_log`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogVerification {
    /// Rows found intact.
    pub checked: u64,
    /// The first sequence whose row, digest or chain link is wrong.
    pub first_bad_sequence: Option<i64>,
}

impl LogVerification {
    /// No row was found altered.
    pub fn is_intact(&self) -> bool {
        self.first_bad_sequence.is_none()
    }
}

impl<'s> LogTx<'s> {
    /// Sends the planned statements; returns the transaction's connection,
    /// so a read through it sees every append so far.
    pub(crate) async fn flush(&mut self) -> StoreResult<&mut AnyConnection> {
        if !self.pending.is_empty() {
            self.pending.execute(&mut self.tx).await?;
        }
        Ok(&mut self.tx)
    }

    /// Appends one event and plans its view changes; both reach the
    /// database with the next flush.
    pub async fn append(&mut self, new: NewEvent) -> StoreResult<Event> {
        let created_at: Timestamp = self.store.clock.now();
        let event = Event::seal(new, self.head_sequence + 1, created_at, &self.head_chain);
        self.pending.push(
            INSERT_EVENT,
            vec![
                Bind::from(event.sequence),
                Bind::from(event.event_type.as_str()),
                Bind::from(event.subject_kind.as_str()),
                Bind::from(event.subject_id.as_str()),
                Bind::from(event.actor.as_str()),
                Bind::from(event.payload.as_slice()),
                Bind::from(event.payload_digest.0.as_slice()),
                Bind::from(event.created_at.to_string()),
                Bind::from(event.chain_hash.0.as_slice()),
            ],
        );
        views::plan(&mut self.pending, &event)?;
        self.head_sequence = event.sequence;
        self.head_chain = event.chain_hash;
        self.appended.push(event.clone());
        if self.pending.len() >= MAX_PENDING_STATEMENTS {
            self.flush().await?;
        }
        Ok(event)
    }

    /// Commits and wakes followers; returns the events appended.
    pub async fn commit(mut self) -> StoreResult<Vec<Event>> {
        if !self.appended.is_empty() {
            self.pending.push(
                "UPDATE log_head SET sequence = $1, chain_hash = $2 WHERE id = 1",
                vec![
                    Bind::from(self.head_sequence),
                    Bind::from(self.head_chain.0.as_slice()),
                ],
            );
            if self.store.engine == Engine::Postgres {
                // Delivered to every listener when (and only if) this commits.
                self.pending.push(
                    "SELECT 1 AS sent FROM (SELECT pg_notify($1, $2)) AS notified",
                    vec![
                        Bind::from(crate::notify::CHANNEL),
                        Bind::from(self.head_sequence.to_string()),
                    ],
                );
            }
            self.flush().await?;
        }
        self.tx.commit().await?;
        self.store.announce(self.head_sequence);
        Ok(std::mem::take(&mut self.appended))
    }

    /// One package, as this transaction sees it.
    pub async fn package(&mut self, id: &str) -> StoreResult<Option<PackageRecord>> {
        queries::package(self.flush().await?, id).await
    }

    /// For each (package, path): the package's status, file count and
    /// whether the path is taken, as this transaction sees them; `None`
    /// where the package does not exist. One query for them all.
    pub async fn file_slots(
        &mut self,
        wanted: &[(&str, &str)],
    ) -> StoreResult<Vec<Option<FileSlot>>> {
        queries::file_slots(self.flush().await?, wanted).await
    }

    /// For each (package, collision key), a path of that package that
    /// conflicts with it, as this transaction sees them.
    pub async fn path_conflicts(
        &mut self,
        wanted: &[(&str, &str)],
    ) -> StoreResult<Vec<Option<String>>> {
        queries::path_conflicts(self.flush().await?, wanted).await
    }

    /// The tokens (revoked and expired ones too) named `name`.
    pub async fn tokens_named(&mut self, name: &str) -> StoreResult<Vec<TokenRecord>> {
        queries::tokens_named(self.flush().await?, name).await
    }

    /// A package's files sorted by path bytes.
    pub async fn files_of(&mut self, package_id: &str) -> StoreResult<Vec<FileRecord>> {
        queries::files_of(self.flush().await?, package_id).await
    }

    /// A package's retention state.
    pub async fn retention(&mut self, package_id: &str) -> StoreResult<Option<RetentionRecord>> {
        queries::retention(self.flush().await?, package_id).await
    }

    /// A hold and its package id.
    pub async fn hold(&mut self, hold_id: &str) -> StoreResult<Option<(String, HoldRecord)>> {
        queries::hold(self.flush().await?, hold_id).await
    }

    /// A schema by slug.
    pub async fn schema_by_slug(&mut self, slug: &str) -> StoreResult<Option<SchemaRecord>> {
        queries::schema_where(self.flush().await?, "slug", slug).await
    }

    /// A schema by id.
    pub async fn schema_by_id(&mut self, id: &str) -> StoreResult<Option<SchemaRecord>> {
        queries::schema_where(self.flush().await?, "id", id).await
    }

    /// Packages whose expiry has passed at `now`, not yet eligible, unheld.
    pub async fn due_for_sweep(
        &mut self,
        now: &Timestamp,
    ) -> StoreResult<Vec<(String, Option<Timestamp>)>> {
        queries::due_for_sweep(self.flush().await?, now).await
    }

    /// The sequence of the last event appended, or committed before this
    /// transaction began.
    pub fn head_sequence(&self) -> i64 {
        self.head_sequence
    }

    /// The time the store's clock says it is.
    pub fn now(&self) -> Timestamp {
        self.store.clock.now()
    }
}
