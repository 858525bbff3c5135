//! Replay on SQLite through its own connection, on a blocking thread.
//!
//! Every statement is prepared once and kept (the handlers' SQL is fixed
//! text), rows are read and statements run on this thread, with nothing
//! handed across threads. The transaction is `BEGIN IMMEDIATE`, so other
//! writers wait for it, and readers keep seeing the old views (WAL) until
//! it commits.

use std::path::Path;
use std::time::Duration;

use artifactstore_core::{Digest32, Event};
use rusqlite::{Connection, OpenFlags, Row, TransactionBehavior};

use super::{
    compare, dump_row, secondary_indexes_query, view_query, Kind, ReplayReport, EVENTS_PER_BATCH,
    VIEWS,
};
use crate::batch::Batch;
use crate::log::EVENT_COLUMNS;
use crate::{sqlite_pragmas, views, Engine, StoreError, StoreResult};

/// Statements kept prepared: every handler's, the snapshot's and a margin.
const STATEMENT_CACHE: usize = 64;
/// Page cache of replay's connection.
const REPLAY_CACHE_KIB: u32 = 64 * 1024;

pub(super) fn replay(path: &Path, timeout: Duration, check: bool) -> StoreResult<ReplayReport> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Set up as the pool's connections, with a larger page cache: in logs
    // written before ids were time-ordered, every view's keys arrive at
    // random leaves.
    conn.execute_batch(&sqlite_pragmas(timeout.as_millis(), REPLAY_CACHE_KIB))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !check {
        let events = rebuild(&tx)?;
        tx.commit()?;
        return Ok(ReplayReport::applied(events));
    }
    let live = snapshot(&tx)?;
    let events = rebuild(&tx)?;
    let rebuilt = snapshot(&tx)?;
    tx.rollback()?;
    Ok(compare(events, &live, &rebuilt))
}

fn rebuild(conn: &Connection) -> StoreResult<u64> {
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
    // Writing the views while this query reads the log is fine in SQLite:
    // they are other tables, on the same connection and transaction.
    let mut events = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM events ORDER BY sequence"
    ))?;
    let mut rows = events.query([])?;
    let mut batch = Batch::default();
    let mut planned = 0;
    let mut applied = 0u64;
    while let Some(row) = rows.next()? {
        views::plan(&mut batch, &event_from_row(row)?)?;
        planned += 1;
        applied += 1;
        if planned == EVENTS_PER_BATCH {
            batch.execute_blocking(conn)?;
            planned = 0;
        }
    }
    batch.execute_blocking(conn)?;
    for (_, create) in &indexes {
        conn.execute_batch(create)?;
    }
    Ok(applied)
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
