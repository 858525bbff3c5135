//! Replay: rebuild every view from the log, and compare views byte for byte.

use sqlx::{AnyConnection, Row};

use crate::batch::Batch;
use crate::log::{event_from_row, EVENT_COLUMNS};
use crate::{views, Store, StoreResult};

/// Column kinds, so a snapshot can read any view through the `Any` driver.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
}
use Kind::{Integer as I, Text as T};

/// Every view, its columns and a total order of its rows.
/// One view: its table, a total order of its rows, and its columns.
struct View {
    table: &'static str,
    order_by: &'static str,
    columns: &'static [(&'static str, Kind)],
}

const VIEWS: &[View] = &[
    View {
        table: "packages",
        order_by: "id",
        columns: &[
            ("id", T),
            ("name", T),
            ("producer", T),
            ("subject", T),
            ("retention_class", T),
            ("metadata", T),
            ("metadata_schema_id", T),
            ("status", T),
            ("manifest_digest", T),
            ("created_at", T),
            ("created_by", T),
            ("created_sequence", I),
            ("finalized_at", T),
            ("expires_at", T),
            ("last_event_sequence", I),
        ],
    },
    View {
        table: "package_metadata",
        order_by: "package_id, key",
        columns: &[
            ("package_id", T),
            ("key", T),
            ("value", T),
            ("created_sequence", I),
        ],
    },
    View {
        table: "files",
        order_by: "id",
        columns: &[
            ("id", T),
            ("package_id", T),
            ("relative_path", T),
            ("media_type", T),
            ("size_bytes", I),
            ("blake3", T),
            ("sha256", T),
            ("created_at", T),
            ("created_sequence", I),
        ],
    },
    View {
        table: "storage_locations",
        order_by: "id",
        columns: &[
            ("id", T),
            ("file_id", T),
            ("backend_id", T),
            ("object_key", T),
            ("content_address", T),
            ("retrieval_tier", T),
            ("status", T),
            ("verified_at", T),
            ("failure", T),
            ("created_at", T),
        ],
    },
    View {
        table: "retention_state",
        order_by: "package_id",
        columns: &[
            ("package_id", T),
            ("retention_class", T),
            ("expires_at", T),
            ("eligible_for_deletion", I),
            ("eligible_at", T),
            ("updated_sequence", I),
        ],
    },
    View {
        table: "retention_holds",
        order_by: "hold_id",
        columns: &[
            ("hold_id", T),
            ("package_id", T),
            ("reason", T),
            ("applied_at", T),
            ("applied_by", T),
            ("released_at", T),
            ("released_by", T),
            ("release_reason", T),
        ],
    },
    View {
        table: "api_tokens",
        order_by: "id",
        columns: &[
            ("id", T),
            ("name", T),
            ("scope", T),
            ("producers", T),
            ("expires_at", T),
            ("secret_blake3", T),
            ("created_at", T),
            ("created_by", T),
            ("revoked_at", T),
            ("revoked_by", T),
        ],
    },
    View {
        table: "metadata_schemas",
        order_by: "id",
        columns: &[("id", T), ("slug", T), ("schema_jcs", T), ("created_at", T)],
    },
];

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Events applied.
    pub events: u64,
    /// For a check: whether the rebuilt views equal the live ones.
    pub identical: bool,
    /// For a check that differs: the first view that does.
    pub first_difference: Option<String>,
}

/// A byte-exact dump of every view (one JSON line per row, tables in a
/// fixed order, rows in primary-key order).
async fn snapshot(conn: &mut AnyConnection) -> StoreResult<Vec<(String, Vec<u8>)>> {
    let mut tables = Vec::with_capacity(VIEWS.len());
    for View {
        table,
        order_by: order,
        columns,
    } in VIEWS
    {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let sql = format!("SELECT {} FROM {table} ORDER BY {order}", names.join(", "));
        let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
        let mut dump = Vec::new();
        for row in &rows {
            let mut values = Vec::with_capacity(columns.len());
            for (i, (_, kind)) in columns.iter().enumerate() {
                values.push(match kind {
                    Kind::Text => serde_json::json!(row.try_get::<Option<String>, _>(i)?),
                    Kind::Integer => serde_json::json!(row.try_get::<Option<i64>, _>(i)?),
                });
            }
            dump.extend_from_slice(serde_json::Value::Array(values).to_string().as_bytes());
            dump.push(b'\n');
        }
        tables.push(((*table).to_owned(), dump));
    }
    Ok(tables)
}

/// The secondary indexes of the views (not those behind a primary key or
/// a unique constraint), as statements that recreate them.
async fn secondary_indexes(conn: &mut AnyConnection) -> StoreResult<Vec<(String, String)>> {
    let tables: Vec<String> = VIEWS.iter().map(|v| format!("'{}'", v.table)).collect();
    let sql = if conn.backend_name() == "SQLite" {
        // Constraint indexes have no SQL of their own.
        format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ({})",
            tables.join(", ")
        )
    } else {
        format!(
            "SELECT i.relname::text AS name, pg_get_indexdef(i.oid) AS sql FROM pg_index x \
             JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
             WHERE t.relname IN ({}) AND NOT x.indisprimary AND NOT x.indisunique \
             AND t.relnamespace = to_regnamespace(current_schema())::oid",
            tables.join(", ")
        )
    };
    let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("name")?, row.try_get("sql")?)))
        .collect()
}

async fn rebuild(conn: &mut AnyConnection) -> StoreResult<u64> {
    // Building an index once over all rows beats updating it row by row,
    // and both engines take DDL inside the transaction, so a check that
    // rolls back restores them.
    let indexes = secondary_indexes(conn).await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut *conn)
            .await?;
    }
    for View { table, .. } in VIEWS.iter().rev() {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *conn)
            .await?;
    }
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE sequence > $1 ORDER BY sequence LIMIT 4096"
    );
    let mut cursor = 0i64;
    let mut applied = 0u64;
    loop {
        let rows = sqlx::query(&sql).bind(cursor).fetch_all(&mut *conn).await?;
        if rows.is_empty() {
            break;
        }
        // Planned together and sent in a few calls (see batch.rs): the
        // same handlers as the live path, far fewer round trips.
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

impl Store {
    /// Rebuilds every view from the log, in one transaction.
    pub async fn replay(&self) -> StoreResult<ReplayReport> {
        let mut tx = self.begin().await?;
        let events = rebuild(tx.conn()).await?;
        tx.commit().await?;
        Ok(ReplayReport {
            events,
            identical: true,
            first_difference: None,
        })
    }

    /// Rebuilds every view inside a transaction that is rolled back, and
    /// compares the result with the live views byte for byte. The live
    /// views are never changed.
    pub async fn replay_check(&self) -> StoreResult<ReplayReport> {
        let mut tx = self.begin().await?;
        let live = snapshot(tx.conn()).await?;
        let events = rebuild(tx.conn()).await?;
        let rebuilt = snapshot(tx.conn()).await?;
        drop(tx);
        let first_difference = live
            .iter()
            .zip(&rebuilt)
            .find(|((_, a), (_, b))| a != b)
            .map(|((table, _), _)| table.clone());
        Ok(ReplayReport {
            events,
            identical: first_difference.is_none(),
            first_difference,
        })
    }

    /// A byte-exact dump of every view, for comparisons in tests and tools.
    pub async fn snapshot_views(&self) -> StoreResult<Vec<u8>> {
        let mut conn = self.pool.acquire().await?;
        let tables = snapshot(&mut conn).await?;
        let mut out = Vec::new();
        for (table, dump) in tables {
            out.extend_from_slice(format!("# {table}\n").as_bytes());
            out.extend_from_slice(&dump);
        }
        Ok(out)
    }
}
