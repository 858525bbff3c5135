//! Replay: rebuild every view from the log, and compare views byte for byte.
//!
//! The steps are the same on both engines (drop the views' secondary
//! indexes, empty the views, apply every event with [`crate::views::plan`],
//! the live path's handlers, build the indexes again) and so is the dump
//! a check compares. Only the connection differs:
//!
//! - SQLite ([`sqlite`]): a dedicated connection on a blocking thread
//!   with prepared statements, because sqlx hands every statement and every
//!   row to its worker thread and back, which cost most of replay's time.
//! - PostgreSQL ([`pooled`]): a pooled sqlx connection, statements one by one.

mod pooled;
mod sqlite;

use sqlx::{AnyConnection, Row};

use crate::{Engine, Store, StoreError, StoreResult};

/// Column kinds, so a snapshot reads every view the same way through
/// either driver (sqlx `Any` or rusqlite).
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
}
use Kind::{Integer as I, Text as T};

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
            ("file_count", I),
            ("total_bytes", I),
            ("purged_at", T),
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
            ("path_key", T),
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
            ("purged_at", T),
            ("purged_by", T),
            ("purge_rule", T),
            ("purge_reason", T),
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
        table: "object_deletions",
        order_by: "sequence",
        columns: &[
            ("sequence", I),
            ("backend_id", T),
            ("object_key", T),
            ("size_bytes", I),
            ("reason", T),
            ("deleted_at", T),
        ],
    },
    View {
        table: "log_checkpoints",
        order_by: "tree_size",
        columns: &[
            ("tree_size", I),
            ("root_hash", T),
            ("origin", T),
            ("note", T),
            ("sequence", I),
            ("signed_at", T),
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

impl ReplayReport {
    /// The report of a replay that was not compared.
    fn applied(events: u64) -> Self {
        Self {
            events,
            identical: true,
            first_difference: None,
        }
    }
}

/// Appends one row of a dump: its values as one JSON array on one line.
fn dump_row(dump: &mut Vec<u8>, values: Vec<serde_json::Value>) {
    dump.extend_from_slice(serde_json::Value::Array(values).to_string().as_bytes());
    dump.push(b'\n');
}

/// The query that reads each view in its total order.
fn view_query(view: &View) -> String {
    let names: Vec<&str> = view.columns.iter().map(|(name, _)| *name).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        names.join(", "),
        view.table,
        view.order_by
    )
}

/// The query listing the views' secondary indexes (not those behind a
/// primary key or a unique constraint) as `name, sql`, where `sql`
/// recreates the index. Building an index once over all rows beats
/// updating it row by row, and both engines take DDL inside the
/// transaction, so a check that rolls back restores them.
fn secondary_indexes_query(engine: Engine) -> String {
    let tables: Vec<String> = VIEWS.iter().map(|v| format!("'{}'", v.table)).collect();
    match engine {
        // Constraint indexes have no SQL of their own.
        Engine::Sqlite => format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ({})",
            tables.join(", ")
        ),
        Engine::Postgres => format!(
            "SELECT i.relname::text AS name, pg_get_indexdef(i.oid) AS sql FROM pg_index x \
             JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
             WHERE t.relname IN ({}) AND NOT x.indisprimary AND NOT x.indisunique \
             AND t.relnamespace = to_regnamespace(current_schema())::oid",
            tables.join(", ")
        ),
    }
}

/// Events read and planned per batch of view statements.
const EVENTS_PER_BATCH: usize = 4096;

/// The report of a check: the first view whose dumps differ, if any.
fn compare(events: u64, live: &[(String, Vec<u8>)], rebuilt: &[(String, Vec<u8>)]) -> ReplayReport {
    let first_difference = live
        .iter()
        .zip(rebuilt)
        .find(|((_, a), (_, b))| a != b)
        .map(|((table, _), _)| table.clone());
    ReplayReport {
        events,
        identical: first_difference.is_none(),
        first_difference,
    }
}

/// A byte-exact dump of every view through sqlx (one JSON line per row,
/// tables in a fixed order, rows in primary-key order).
async fn snapshot(conn: &mut AnyConnection) -> StoreResult<Vec<(String, Vec<u8>)>> {
    let mut tables = Vec::with_capacity(VIEWS.len());
    for view in VIEWS {
        let rows = sqlx::query(&view_query(view)).fetch_all(&mut *conn).await?;
        let mut dump = Vec::new();
        for row in &rows {
            let mut values = Vec::with_capacity(view.columns.len());
            for (i, (_, kind)) in view.columns.iter().enumerate() {
                values.push(match kind {
                    Kind::Text => serde_json::json!(row.try_get::<Option<String>, _>(i)?),
                    Kind::Integer => serde_json::json!(row.try_get::<Option<i64>, _>(i)?),
                });
            }
            dump_row(&mut dump, values);
        }
        tables.push((view.table.to_owned(), dump));
    }
    Ok(tables)
}

impl Store {
    /// Rebuilds every view from the log, in one transaction.
    pub async fn replay(&self) -> StoreResult<ReplayReport> {
        self.rebuild_views(false).await
    }

    /// Rebuilds every view inside a transaction that is rolled back, and
    /// compares the result with the live views byte for byte. The live
    /// views are never changed. Every column the database's catalog lists
    /// for a view must be one the comparison reads: a column added by a
    /// migration but not compared would let replay differ unseen, so it is
    /// an error, not a pass.
    pub async fn replay_check(&self) -> StoreResult<ReplayReport> {
        let uncompared = self.uncompared_view_columns().await?;
        if !uncompared.is_empty() {
            return Err(StoreError::corrupt(format!(
                "view columns that replay --check does not compare: {}",
                uncompared.join(", ")
            )));
        }
        self.rebuild_views(true).await
    }

    /// `table.column` for each column of a view, as the database's own
    /// catalog lists them, that [`VIEWS`] does not read.
    async fn uncompared_view_columns(&self) -> StoreResult<Vec<String>> {
        let sql = match self.engine {
            Engine::Sqlite => "SELECT name FROM pragma_table_info($1)",
            Engine::Postgres => {
                "SELECT column_name::text AS name FROM information_schema.columns \
                 WHERE table_name = $1 AND table_schema = current_schema()"
            }
        };
        let mut uncompared = Vec::new();
        for view in VIEWS {
            let rows = sqlx::query(sql)
                .bind(view.table)
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                let column: String = row.try_get("name")?;
                if !view.columns.iter().any(|(name, _)| *name == column) {
                    uncompared.push(format!("{}.{column}", view.table));
                }
            }
        }
        Ok(uncompared)
    }

    async fn rebuild_views(&self, check: bool) -> StoreResult<ReplayReport> {
        let Some(path) = self.sqlite_path.clone() else {
            return pooled::replay(self, check).await;
        };
        // Writers of this process queue here as for any write; other
        // processes wait on SQLite's lock within the timeout.
        let _local_writer = tokio::time::timeout(self.timeout, self.local_writer.lock())
            .await
            .map_err(|_| StoreError::Busy)?;
        let timeout = self.timeout;
        match tokio::task::spawn_blocking(move || sqlite::replay(&path, timeout, check)).await {
            Ok(report) => report,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => Err(StoreError::corrupt(format!("replay thread: {e}"))),
            },
        }
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
