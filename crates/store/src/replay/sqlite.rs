//! Replay on SQLite through its own connections, on blocking threads.
//!
//! Two threads split the loop, so it runs on two cores: a planner reads
//! the events through a read connection of its own, decodes them and plans
//! their view statements ([`views::plan`]) in batches; the writer runs each
//! batch on the write connection, every statement prepared once. The
//! write transaction is `BEGIN IMMEDIATE`, taken before the planner opens
//! its snapshot: the planner sees every committed event, and none can be
//! appended until replay ends. Readers elsewhere keep seeing the old views
//! (WAL) until it commits.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use artifactstore_core::{Digest32, Event};
use rusqlite::{Connection, OpenFlags, Row, TransactionBehavior};

use super::{
    compare, dump_row, secondary_indexes_query, view_query, Kind, ReplayReport, EVENTS_PER_BATCH,
    VIEWS,
};
use crate::batch::{Batch, Prepared};
use crate::log::EVENT_COLUMNS;
use crate::{sqlite_pragmas, views, Engine, StoreError, StoreResult};

/// Page cache of the write connection.
const REPLAY_CACHE_KIB: u32 = 64 * 1024;
/// Page cache of the planner's read connection: it reads the log once,
/// in order.
const PLANNER_CACHE_KIB: u32 = 2 * 1024;
/// Planned batches waiting for the writer: enough to keep it busy while
/// the planner is descheduled, few enough to bound memory (each holds
/// the statements of [`EVENTS_PER_BATCH`] events, a few MB).
const BATCHES_IN_FLIGHT: usize = 4;
/// How often replay asks the kernel to write out what the transaction has
/// put in the WAL so far (see [`write_back_until`]).
const WRITEBACK_INTERVAL: Duration = Duration::from_millis(100);

/// Whether a replay connection may write: only the writer's does.
#[derive(Clone, Copy)]
enum Access {
    ReadWrite,
    ReadOnly,
}

fn open(path: &Path, timeout: Duration, cache_kib: u32, access: Access) -> StoreResult<Connection> {
    let access = match access {
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    };
    let conn = Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.execute_batch(&sqlite_pragmas(timeout.as_millis(), cache_kib))?;
    Ok(conn)
}

pub(super) fn replay(path: &Path, timeout: Duration, check: bool) -> StoreResult<ReplayReport> {
    // Set up as the pool's connections, with a larger page cache: the
    // transaction writes every view's pages.
    let mut conn = open(path, timeout, REPLAY_CACHE_KIB, Access::ReadWrite)?;
    // SQLite's own name for the file (symbolic links resolved): its WAL
    // sits beside it.
    let database = conn.path().map(std::path::PathBuf::from);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !check {
        return std::thread::scope(|scope| {
            let (stop, stopped) = mpsc::channel::<()>();
            if let Some(database) = &database {
                scope.spawn(move || write_back_until(database, &stopped));
            }
            let events = rebuild(&tx, path, timeout)?;
            tx.commit()?;
            drop(stop);
            Ok(ReplayReport::applied(events))
        });
    }
    let live = snapshot(&tx)?;
    let events = rebuild(&tx, path, timeout)?;
    let rebuilt = snapshot(&tx)?;
    tx.rollback()?;
    Ok(compare(events, &live, &rebuilt))
}

/// Flushes the WAL every [`WRITEBACK_INTERVAL`] until `stop` is dropped.
/// The pages the transaction spills reach the WAL through the kernel's page
/// cache, which starts writing dirty pages to disk only once a tenth of
/// memory is dirty: without this the disk idles through the loop and the
/// commit's fsync then writes it all. Durability does not depend on it
/// (SQLite syncs the WAL itself at commit), so a failure is only logged.
///
/// Only the WAL: closing any descriptor of the database file itself would
/// drop every POSIX lock this process holds on it, SQLite's included.
fn write_back_until(database: &Path, stop: &mpsc::Receiver<()>) {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    let Ok(wal) = std::fs::File::open(&wal) else {
        return;
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(WRITEBACK_INTERVAL) {
        if let Err(e) = wal.sync_data() {
            // SQLite's own sync at commit reports it; once is enough here.
            tracing::warn!(error = %e, "early writeback of the WAL during replay failed; stopped");
            return;
        }
    }
}

fn rebuild(conn: &Connection, path: &Path, timeout: Duration) -> StoreResult<u64> {
    let indexes = conn
        .prepare(&secondary_indexes_query(Engine::Sqlite))?
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (name, _) in &indexes {
        conn.execute_batch(&format!("DROP INDEX {name}"))?;
    }
    for view in VIEWS.iter().rev() {
        conn.execute_batch(&format!("DELETE FROM {}", view.table))?;
    }
    let applied = std::thread::scope(|scope| {
        let (planned, to_write) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
        let planner = scope.spawn(move || plan_all(path, timeout, planned));
        let mut prepared = Prepared::new(conn);
        let mut applied = 0u64;
        // Ends when the planner has sent its last batch or an error; a
        // write error drops `to_write`, which stops the planner.
        for next in to_write {
            let (mut batch, events): (Batch, u64) = next?;
            batch.execute_blocking(&mut prepared)?;
            applied += events;
        }
        match planner.join() {
            Ok(()) => Ok::<_, StoreError>(applied),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })?;
    for (_, create) in &indexes {
        conn.execute_batch(create)?;
    }
    Ok(applied)
}

/// The planner thread: every batch, then the end of the channel, or the
/// first error.
fn plan_all(path: &Path, timeout: Duration, planned: mpsc::SyncSender<StoreResult<(Batch, u64)>>) {
    if let Err(e) = plan_into(path, timeout, &planned) {
        let _ = planned.send(Err(e));
    }
}

/// Reads every event in order, plans its view statements, and sends them
/// in batches of [`EVENTS_PER_BATCH`] events, each with its event count.
fn plan_into(
    path: &Path,
    timeout: Duration,
    planned: &mpsc::SyncSender<StoreResult<(Batch, u64)>>,
) -> StoreResult<()> {
    let conn = open(path, timeout, PLANNER_CACHE_KIB, Access::ReadOnly)?;
    let mut events = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM events ORDER BY sequence"
    ))?;
    let mut rows = events.query([])?;
    let mut batch = Batch::default();
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        views::plan(&mut batch, &event_from_row(row)?)?;
        count += 1;
        if count == EVENTS_PER_BATCH as u64 {
            if planned
                .send(Ok((std::mem::take(&mut batch), count)))
                .is_err()
            {
                // The writer stopped; its error is the one reported.
                return Ok(());
            }
            count = 0;
        }
    }
    let _ = planned.send(Ok((batch, count)));
    Ok(())
}

fn digest(row: &Row<'_>, column: usize) -> StoreResult<Digest32> {
    let bytes = row
        .get_ref(column)?
        .as_blob()
        .map_err(StoreError::corrupt)?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::corrupt(format!("column {column} is not 32 bytes")))?;
    Ok(Digest32(array))
}

/// An event from a row of `SELECT {EVENT_COLUMNS}`, in that column order.
fn event_from_row(row: &Row<'_>) -> StoreResult<Event> {
    Ok(Event {
        sequence: row.get(0)?,
        event_type: row.get(1)?,
        subject_kind: row.get(2)?,
        subject_id: row.get(3)?,
        actor: row.get(4)?,
        payload: row.get(5)?,
        payload_digest: digest(row, 6)?,
        created_at: row
            .get_ref(7)?
            .as_str()
            .map_err(StoreError::corrupt)?
            .parse()
            .map_err(StoreError::corrupt)?,
        chain_hash: digest(row, 8)?,
    })
}

fn snapshot(conn: &Connection) -> StoreResult<Vec<(String, Vec<u8>)>> {
    let mut tables = Vec::with_capacity(VIEWS.len());
    for view in VIEWS {
        let mut statement = conn.prepare(&view_query(view))?;
        let mut rows = statement.query([])?;
        let mut dump = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(view.columns.len());
            for (i, (_, kind)) in view.columns.iter().enumerate() {
                values.push(match kind {
                    Kind::Text => serde_json::json!(row.get::<_, Option<String>>(i)?),
                    Kind::Integer => serde_json::json!(row.get::<_, Option<i64>>(i)?),
                });
            }
            dump_row(&mut dump, values);
        }
        tables.push((view.table.to_owned(), dump));
    }
    Ok(tables)
}
