//! Replay through a pooled sqlx connection (PostgreSQL).

use sqlx::{AnyConnection, Row};

use super::{compare, secondary_indexes_query, snapshot, ReplayReport, EVENTS_PER_BATCH, VIEWS};
use crate::batch::Batch;
use crate::log::{event_from_row, EVENT_COLUMNS};
use crate::{views, Store, StoreResult};

pub(super) async fn replay(store: &Store, check: bool) -> StoreResult<ReplayReport> {
    let mut tx = store.begin().await?;
    if !check {
        let events = rebuild(store, tx.flush().await?).await?;
        tx.commit().await?;
        return Ok(ReplayReport::applied(events));
    }
    let live = snapshot(tx.flush().await?).await?;
    let events = rebuild(store, tx.flush().await?).await?;
    let rebuilt = snapshot(tx.flush().await?).await?;
    // Dropped without commit: rolled back.
    drop(tx);
    Ok(compare(events, &live, &rebuilt))
}

async fn rebuild(store: &Store, conn: &mut AnyConnection) -> StoreResult<u64> {
    let rows = sqlx::query(&secondary_indexes_query(store.engine))
        .fetch_all(&mut *conn)
        .await?;
    let indexes = rows
        .iter()
        .map(|row| Ok((row.try_get("name")?, row.try_get("sql")?)))
        .collect::<StoreResult<Vec<(String, String)>>>()?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut *conn)
            .await?;
    }
    for view in VIEWS.iter().rev() {
        sqlx::query(&format!("DELETE FROM {}", view.table))
            .execute(&mut *conn)
            .await?;
    }
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE sequence > $1 ORDER BY sequence LIMIT {EVENTS_PER_BATCH}"
    );
    let mut cursor = 0i64;
    let mut applied = 0u64;
    loop {
        let rows = sqlx::query(&sql).bind(cursor).fetch_all(&mut *conn).await?;
        if rows.is_empty() {
            break;
        }
        let mut batch = Batch::default();
        for row in &rows {
            let event = event_from_row(row)?;
            views::plan(&mut batch, &event)?;
            cursor = event.sequence;
            applied += 1;
        }
        batch.execute(conn).await?;
    }
    for (_, create) in &indexes {
        sqlx::query(create).execute(&mut *conn).await?;
    }
    Ok(applied)
}
