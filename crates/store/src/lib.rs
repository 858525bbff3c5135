//! The database of artifact-store: schema and migrations, the append-only
//! event log (append, fetch, tail, replay, verify) and the view handlers.
//!
//! One code path serves SQLite (the embedded default) and PostgreSQL: the
//! SQL is written once in the dialect both accept and runs through sqlx's
//! `Any` driver; only the migrations differ by engine.
//!
//! Writes go through [`LogTx`]: it locks the log head row for the length of
//! one short transaction, appends events, applies each to the views with
//! the same handler replay uses ([`views::plan`]), and commits. Because the
//! head lock is held until commit, sequences become visible in order, and a
//! follower reading "after N" can never skip a sequence that commits late.

mod batch;
mod lifecycle;
mod log;
mod notify;
mod queries;
pub mod records;
mod replay;
mod tree;
mod uploads;
mod views;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use artifactstore_core::Clock;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::{watch, Mutex};

#[doc(hidden)]
pub use batch::postgres_text_literal;
pub use lifecycle::{ClaimRecord, UsageRecord};
pub use log::{LogTx, LogVerification};
pub use queries::{
    DigestKind, FilePage, FileSlot, PackageFilter, PackagePage, TOKENS_PER_STATEMENT,
};
pub use records::*;
pub use replay::ReplayReport;
pub use tree::CheckpointRecord;
pub use uploads::{SaveDurability, UploadProgress, UploadRecord, UploadReservation};

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The embedded default.
    Sqlite,
    /// Shared by several replicas.
    Postgres,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable (details are logged, not shown).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A file with that relative path already exists in the package.
    #[error("a file with this relative path already exists in the package")]
    DuplicateRelativePath,
    /// A stored row cannot be read back (a bug or tampering).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// No connection or lock could be had within the timeout.
    #[error("the database is busy")]
    Busy,
    /// SQLite failed on the dedicated connection that replay uses.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// A value the database cannot hold reached the store (callers
    /// validate input first, so this is a bug).
    #[error("a value cannot be stored: {0}")]
    Unstorable(&'static str),
    /// The URL names no supported engine.
    #[error("unsupported database URL (use sqlite://… or postgres://…): {0}")]
    UnsupportedUrl(String),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::Busy
            }
            _ => Self::Sqlite(e),
        }
    }
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// The event log and its views in one database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where resumable uploads' locks and progress are written
    /// ([`Store::lock_upload`], [`Store::save_upload`]): on SQLite a pool
    /// of its own whose commits skip the fsync, on PostgreSQL `pool`.
    progress_pool: AnyPool,
    /// When a progress save last went through `pool`, with the fsync that
    /// makes every earlier one durable too.
    progress_synced: Arc<std::sync::Mutex<std::time::Instant>>,
    engine: Engine,
    clock: Arc<dyn Clock>,
    /// SQLite has one writer at a time anyway; queueing writers here instead
    /// of in SQLite's busy handler keeps latency low and fair.
    local_writer: Arc<Mutex<()>>,
    /// How long to wait for a connection or lock.
    timeout: Duration,
    /// The newest committed sequence this process knows of; followers wait
    /// on it instead of sleeping.
    head: Arc<watch::Sender<i64>>,
    /// The SQLite database file (None on PostgreSQL), for replay's own
    /// connection.
    sqlite_path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine)
            .finish()
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`). SQLite files
    /// are created when missing. `timeout` bounds how long an operation
    /// waits for a connection or a lock before failing (a 503 to clients,
    /// never a hang).
    pub async fn connect(url: &str, clock: Arc<dyn Clock>, timeout: Duration) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let url = match engine {
            Engine::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let sqlite_path = match engine {
            Engine::Sqlite => Some(
                sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
                    .get_filename()
                    .to_owned(),
            ),
            Engine::Postgres => None,
        };
        // sqlx pings every connection it hands out, on top of the ping it
        // sends when the connection comes back: two round trips per
        // acquire (to SQLite's worker thread, or to the PostgreSQL
        // server), more than the statements of a small upload's check.
        // A SQLite connection lives in this process and cannot die while
        // idle; a PostgreSQL one can (a restarted server), so it is
        // pinged only when it has sat idle a while. docs/benchmarks.md
        // ("Small files across client levels") has what this bought.
        let options = AnyPoolOptions::new()
            .max_connections(if engine == Engine::Sqlite { 8 } else { 16 })
            .acquire_timeout(timeout)
            .test_before_acquire(false);
        let busy_timeout_ms = timeout.as_millis();
        let options = match engine {
            Engine::Sqlite => options.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    let pragmas = sqlite_pragmas(busy_timeout_ms, POOL_CACHE_KIB);
                    conn.execute(pragmas.as_str()).await?;
                    Ok(())
                })
            }),
            Engine::Postgres => options.before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > POSTGRES_PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            }),
        };
        let pool = options.connect(&url).await?;
        let progress_pool = match engine {
            Engine::Sqlite => progress_pool(&url, timeout).await?,
            Engine::Postgres => pool.clone(),
        };
        let (head, _) = watch::channel(0);
        let head = Arc::new(head);
        if engine == Engine::Postgres {
            notify::spawn_listener(url.clone(), Arc::downgrade(&head));
        }
        Ok(Self {
            pool,
            progress_pool,
            progress_synced: Arc::new(std::sync::Mutex::new(std::time::Instant::now())),
            engine,
            clock,
            local_writer: Arc::new(Mutex::new(())),
            timeout,
            head,
            sqlite_path,
        })
    }

    /// Creates or upgrades the schema.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.engine {
            Engine::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Engine::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        self.fill_path_keys().await?;
        let head = self.head_sequence().await?;
        self.head.send_replace(head);
        Ok(())
    }

    /// Gives the files recorded before the `path_key` column (or by a
    /// replica of an older version) their collision key, which SQL cannot
    /// compute: the same value the `file.ingested` handler writes.
    async fn fill_path_keys(&self) -> StoreResult<()> {
        const CHUNK: i64 = 1000;
        loop {
            let rows =
                sqlx::query("SELECT id, relative_path FROM files WHERE path_key IS NULL LIMIT $1")
                    .bind(CHUNK)
                    .fetch_all(&self.pool)
                    .await?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = self.pool.begin().await?;
            for row in &rows {
                let id: String = row.try_get("id")?;
                let path: String = row.try_get("relative_path")?;
                sqlx::query("UPDATE files SET path_key = $1 WHERE id = $2")
                    .bind(artifactstore_core::path::collision_key(&path))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }

    /// The time the store's clock says it is.
    pub fn now(&self) -> artifactstore_core::Timestamp {
        self.clock.now()
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The connection pool, for tests that inject faults with raw SQL.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Checks the database answers.
    pub async fn probe(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.progress_pool.close().await;
        self.pool.close().await;
    }
}

/// The SQLite pool for resumable uploads' locks and progress: its commits
/// reach the WAL without an fsync (`synchronous = NORMAL`), which the next
/// fsynced commit, or checkpoint, makes durable with them. A request's
/// bytes are flushed before its progress is saved, so a power loss can
/// only set an upload's offset back, to the last save made through the
/// main pool: one is, at the latest, the first save
/// [`PROGRESS_SYNC_EVERY`] after the last (and any save that something
/// irreversible follows, [`SaveDurability::Immediate`]). What a power
/// loss can cost is what the saves of one such second covered. A lock
/// lost that way was held by a process that died with the machine; the
/// client asks HEAD where to resume and sends those bytes again. A server
/// killed without the machine loses nothing: the WAL is in the kernel's
/// hands. Everything else, an upload's creation, completion and removal
/// included, commits with the fsync. Saved thus, a 64 MiB PATCH waits for
/// one device flush instead of three (docs/benchmarks.md, "Resumable
/// upload, 2026-12-07 (progress without an fsync)").
async fn progress_pool(url: &str, timeout: Duration) -> StoreResult<AnyPool> {
    let busy_timeout_ms = timeout.as_millis();
    Ok(AnyPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(timeout)
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                let pragmas = format!(
                    "{} PRAGMA synchronous = NORMAL;",
                    sqlite_pragmas(busy_timeout_ms, PROGRESS_CACHE_KIB)
                );
                conn.execute(pragmas.as_str()).await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

/// How far back a power loss may set an upload's saved progress on SQLite
/// (see [`progress_pool`]).
pub(crate) const PROGRESS_SYNC_EVERY: Duration = Duration::from_secs(1);

/// Page cache of a progress connection: it touches one row at a time.
const PROGRESS_CACHE_KIB: u32 = 2 * 1024;

/// Page cache of each pooled SQLite connection (SQLite's default is 2 MiB):
/// keeps the indexes of large views in memory during big transactions.
const POOL_CACHE_KIB: u32 = 16 * 1024;

/// How long a pooled PostgreSQL connection may sit idle before it is
/// pinged when the pool hands it out again. Every connection is pinged
/// when it is returned, so one reused sooner was alive a moment ago.
const POSTGRES_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The settings of every SQLite connection, pooled or replay's own. WAL
/// lets readers run beside the writer; FULL makes every commit survive
/// power loss (the durability promise); the busy timeout covers other
/// connections and processes (admin commands) writing the same file.
pub(crate) fn sqlite_pragmas(busy_timeout_ms: u128, cache_kib: u32) -> String {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA foreign_keys = ON; \
         PRAGMA cache_size = -{cache_kib};"
    )
}

/// Whether a database error means "cannot reach or lock the database right
/// now" (so a 503 to retry) rather than a bug.
pub fn sqlx_error_is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let message = db.message();
            // SQLite busy/locked; PostgreSQL shutting down (57P), connection
            // failure (08), out of resources such as connections (53).
            message.contains("database is locked")
                || message.contains("database is busy")
                || db
                    .code()
                    .is_some_and(|c| ["57P", "08", "53"].iter().any(|class| c.starts_with(class)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use artifactstore_core::timestamp::SystemClock;

    async fn synchronous(pool: &sqlx::AnyPool) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// A store on a new SQLite file in `dir`, migrated.
    async fn migrated_store(dir: &tempfile::TempDir) -> super::Store {
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = super::Store::connect(&url, Arc::new(SystemClock), Duration::from_secs(5))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Only resumable uploads' locks and progress commit without an fsync
    /// (`NORMAL` is 1); every other write keeps it (`FULL` is 2), the
    /// promise behind a 201.
    #[tokio::test]
    async fn only_upload_progress_commits_without_an_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_store(&dir).await;
        assert_eq!(synchronous(&store.pool).await, 2);
        assert_eq!(synchronous(&store.progress_pool).await, 1);
        store.close().await;
    }

    /// A package's retention history is found through the index of
    /// subject and type, not by reading every event of the package (a
    /// package of 100,000 files has 100,000 file events). Asked of SQLite's
    /// planner, which has no statistics to go by.
    #[tokio::test]
    async fn retention_history_reads_only_retention_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_store(&dir).await;
        let sql = format!(
            "EXPLAIN QUERY PLAN {}",
            crate::queries::retention_history_sql()
        );
        let mut query = sqlx::query(&sql).bind("0190f1a4-0000-7000-8000-000000000000");
        for event_type in artifactstore_core::event::types::RETENTION {
            query = query.bind(event_type);
        }
        let plan: Vec<String> = query
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| sqlx::Row::get(row, "detail"))
            .collect();
        assert!(
            plan.iter().any(|step| step
                .contains("USING INDEX events_subject_type (subject_id=? AND event_type=?)")),
            "{plan:?}"
        );
        store.close().await;
    }

    /// The SQLite linked here is built with the options in
    /// `.cargo/config.toml`; a build that lost them would bring back the
    /// process-wide mutexes around page caches and allocations.
    #[test]
    fn sqlite_is_built_without_process_wide_memory_mutexes() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }
}
