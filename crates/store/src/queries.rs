//! Read queries over the views. Each takes a connection so the same query
//! serves a plain read and a check inside an append transaction.

use artifactstore_core::event::types;
use artifactstore_core::path::folders_of;
use artifactstore_core::{Event, Timestamp};
use sqlx::{AnyConnection, Row};

use crate::log::{event_from_row, EVENT_COLUMNS};
use crate::records::{
    file_from_row, hold_from_row, package_from_row, timestamp, token_from_row, FileListing,
    FileRecord, HoldRecord, LocationRecord, PackageRecord, RetentionRecord, SchemaRecord,
    TokenRecord,
};
use crate::{Engine, Store, StoreError, StoreResult};

pub(crate) const PACKAGE_COLUMNS: &str = "p.id, p.name, p.producer, p.subject, p.retention_class, p.metadata, \
    p.metadata_schema_id, p.status, p.manifest_digest, p.created_at, p.created_by, p.created_sequence, \
    p.finalized_at, p.expires_at, p.purged_at, p.last_event_sequence, p.file_count, p.total_bytes";

const TOKEN_COLUMNS: &str =
    "id, name, scope, producers, expires_at, secret_blake3, created_at, created_by, revoked_at, revoked_by";

/// Token ids one statement of [`Store::tokens_by_id`] looks up; the
/// authentication of a burst of requests rarely names more distinct
/// tokens than this.
pub const TOKENS_PER_STATEMENT: usize = 8;

const FILE_SELECT: &str = "SELECT f.id, f.package_id, f.relative_path, f.media_type, f.size_bytes, \
    f.blake3, f.sha256, f.created_at, f.created_sequence, l.id AS storage_location_id, l.content_address, l.backend_id, \
    l.object_key, l.retrieval_tier, l.status AS storage_status, pk.status AS package_status \
    FROM files f JOIN storage_locations l ON l.file_id = f.id JOIN packages pk ON pk.id = f.package_id";

/// Filters and paging for [`Store::list_packages`].
#[derive(Debug, Clone, Default)]
pub struct PackageFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Exact producer.
    pub producer: Option<String>,
    /// Exact subject.
    pub subject: Option<String>,
    /// Exact retention class.
    pub retention_class: Option<String>,
    /// Exact status.
    pub status: Option<String>,
    /// Top-level metadata keys and the text of their scalar value
    /// (`true`, `42`, `nightly`), all of which must match.
    pub metadata: Vec<(String, String)>,
    /// Resume after this cursor (a previous page's `next`).
    pub after: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// One page of packages.
#[derive(Debug, Clone)]
pub struct PackagePage {
    /// The packages, in creation order.
    pub items: Vec<PackageRecord>,
    /// Cursor of the next page, if there may be one.
    pub next: Option<i64>,
}

/// Which digest a file lookup matches ([`Store::files_by_digest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    /// SHA-256.
    Sha256,
    /// BLAKE3.
    Blake3,
}

impl DigestKind {
    fn column(self) -> &'static str {
        match self {
            DigestKind::Sha256 => "f.sha256",
            DigestKind::Blake3 => "f.blake3",
        }
    }
}

/// One page of files ([`Store::files_by_digest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePage {
    /// The files, in creation order.
    pub items: Vec<FileRecord>,
    /// Cursor of the next page, if there may be one.
    pub next: Option<i64>,
}

pub(crate) async fn package(
    conn: &mut AnyConnection,
    id: &str,
) -> StoreResult<Option<PackageRecord>> {
    let sql = format!("SELECT {PACKAGE_COLUMNS} FROM packages p WHERE p.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(package_from_row).transpose()
}

pub(crate) async fn file(conn: &mut AnyConnection, id: &str) -> StoreResult<Option<FileRecord>> {
    let sql = format!("{FILE_SELECT} WHERE f.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(file_from_row).transpose()
}

pub(crate) async fn file_by_path(
    conn: &mut AnyConnection,
    package_id: &str,
    relative_path: &str,
) -> StoreResult<Option<FileRecord>> {
    let sql = format!("{FILE_SELECT} WHERE f.package_id = $1 AND f.relative_path = $2");
    let row = sqlx::query(&sql)
        .bind(package_id)
        .bind(relative_path)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(file_from_row).transpose()
}

/// What an upload into a package must know, read in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSlot {
    /// The package's status.
    pub status: String,
    /// Its producer (routing picks the backend by it).
    pub producer: String,
    /// Its retention class (routing, too).
    pub retention_class: String,
    /// Files it holds.
    pub file_count: u64,
    /// Whether the path is taken.
    pub path_taken: bool,
    /// The log's head when this was read: an upload that stored its bytes
    /// after reading it knows that a deletion recorded at or before it
    /// happened before its bytes were stored (docs/architecture.md,
    /// Lifecycle).
    pub head_sequence: i64,
}

// The queries with a varying number of rows below (`file_slots`,
// `path_conflicts`) write their `$N` placeholders by hand rather than with
// `sqlx::QueryBuilder`: through the `Any` driver, which serves both
// engines, QueryBuilder writes `?` placeholders (sqlx-core 0.8's default
// `Arguments::format_placeholder`, which `AnyArguments` keeps), and
// PostgreSQL refuses `?`. Only placeholders and positions are written into
// the SQL text; every value is bound.

/// [`FileSlot`]s of several (package, path) pairs in one query, in order;
/// `None` where the package does not exist.
pub(crate) async fn file_slots(
    conn: &mut AnyConnection,
    wanted: &[(&str, &str)],
) -> StoreResult<Vec<Option<FileSlot>>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // A VALUES table of the pairs (columns column1..3 on both engines),
    // its third column the position, padded to a size that keeps the SQL
    // texts few (see [`padded_rows`]): rows past the last pair look up
    // the empty id, which no package has, and are not read back.
    let rows = padded_rows(wanted.len());
    let values: Vec<String> = (0..rows)
        .map(|i| format!("(${}, ${}, {i})", 2 * i + 1, 2 * i + 2))
        .collect();
    let sql = format!(
        "SELECT q.column3 AS position, p.status, p.producer, p.retention_class, p.file_count, \
         (SELECT COUNT(*) FROM files f WHERE f.package_id = q.column1 AND f.relative_path = q.column2) AS taken, \
         (SELECT h.sequence FROM log_head h WHERE h.id = 1) AS head \
         FROM (VALUES {}) AS q LEFT JOIN packages p ON p.id = q.column1 ORDER BY q.column3",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (package_id, path) in wanted {
        query = query.bind(*package_id).bind(*path);
    }
    for _ in wanted.len()..rows {
        query = query.bind("").bind("");
    }
    let rows = query.fetch_all(conn).await?;
    let mut slots = vec![None; wanted.len()];
    for row in &rows {
        let position: i64 = row.try_get("position")?;
        if usize::try_from(position).is_ok_and(|position| position >= wanted.len()) {
            continue;
        }
        let Some(status) = row.try_get::<Option<String>, _>("status")? else {
            continue;
        };
        let file_count: i64 = row.try_get("file_count")?;
        let taken: i64 = row.try_get("taken")?;
        let slot = slots
            .get_mut(usize::try_from(position).unwrap_or(usize::MAX))
            .ok_or_else(|| StoreError::corrupt("file slot out of range"))?;
        *slot = Some(FileSlot {
            status,
            producer: row.try_get("producer")?,
            retention_class: row.try_get("retention_class")?,
            file_count: u64::try_from(file_count).unwrap_or(0),
            path_taken: taken > 0,
            head_sequence: row.try_get("head")?,
        });
    }
    Ok(slots)
}

/// Files sorted by the bytes of their path, the same on every engine
/// (database collations differ; manifests must not).
pub(crate) async fn files_of(
    conn: &mut AnyConnection,
    package_id: &str,
) -> StoreResult<Vec<FileRecord>> {
    let sql = format!("{FILE_SELECT} WHERE f.package_id = $1");
    let rows = sqlx::query(&sql).bind(package_id).fetch_all(conn).await?;
    let mut files = rows
        .iter()
        .map(file_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    files.sort_by(|a, b| a.relative_path.as_bytes().cmp(b.relative_path.as_bytes()));
    Ok(files)
}

pub(crate) async fn retention(
    conn: &mut AnyConnection,
    package_id: &str,
) -> StoreResult<Option<RetentionRecord>> {
    let row = sqlx::query(
        "SELECT package_id, retention_class, expires_at, eligible_for_deletion, eligible_at, \
         purged_at, purged_by, purge_rule, purge_reason FROM retention_state WHERE package_id = $1",
    )
    .bind(package_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let holds = sqlx::query(
        "SELECT hold_id, reason, applied_at, applied_by, released_at, released_by, release_reason \
         FROM retention_holds WHERE package_id = $1 AND released_at IS NULL ORDER BY applied_at, hold_id",
    )
    .bind(package_id)
    .fetch_all(&mut *conn)
    .await?;
    let eligible: i64 = row.try_get("eligible_for_deletion")?;
    Ok(Some(RetentionRecord {
        package_id: row.try_get("package_id")?,
        retention_class: row.try_get("retention_class")?,
        expires_at: crate::records::opt_timestamp(&row, "expires_at")?,
        eligible_for_deletion: eligible != 0,
        eligible_at: crate::records::opt_timestamp(&row, "eligible_at")?,
        active_holds: holds
            .iter()
            .map(hold_from_row)
            .collect::<StoreResult<_>>()?,
        purge: match crate::records::opt_timestamp(&row, "purged_at")? {
            None => None,
            Some(purged_at) => Some(crate::records::PurgeRecord {
                purged_at,
                purged_by: row
                    .try_get::<Option<String>, _>("purged_by")?
                    .unwrap_or_default(),
                rule: row
                    .try_get::<Option<String>, _>("purge_rule")?
                    .unwrap_or_default(),
                reason: row
                    .try_get::<Option<String>, _>("purge_reason")?
                    .unwrap_or_default(),
            }),
        },
    }))
}

pub(crate) async fn hold(
    conn: &mut AnyConnection,
    hold_id: &str,
) -> StoreResult<Option<(String, HoldRecord)>> {
    let row = sqlx::query(
        "SELECT package_id, hold_id, reason, applied_at, applied_by, released_at, released_by, \
         release_reason FROM retention_holds WHERE hold_id = $1",
    )
    .bind(hold_id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| Ok((row.try_get("package_id")?, hold_from_row(&row)?)))
        .transpose()
}

pub(crate) async fn schema_where(
    conn: &mut AnyConnection,
    column: &str,
    value: &str,
) -> StoreResult<Option<SchemaRecord>> {
    let sql = format!(
        "SELECT id, slug, schema_jcs, created_at FROM metadata_schemas WHERE {column} = $1"
    );
    let row = sqlx::query(&sql).bind(value).fetch_optional(conn).await?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.try_get("schema_jcs")?;
    Ok(Some(SchemaRecord {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        schema: serde_json::from_str(&text).map_err(StoreError::corrupt)?,
        created_at: timestamp(&row, "created_at")?,
    }))
}

/// Most bind parameters in one conflict query before padding (SQLite
/// allows 32,766; [`padded_rows`] at most doubles it).
const MAX_CONFLICT_BINDS: usize = 8_000;

/// How many rows a `VALUES` list of `rows` rows is padded to: the next
/// power of two. Each length is a different SQL text, prepared and held
/// once per connection in sqlx's statement cache of 100 texts; with
/// batches of every size from 1 to 64 and more (64 clients), the file
/// checks' and the group commit's texts outgrew it and were parsed again
/// and again (on PostgreSQL a round trip each). Powers of two keep them at
/// nine per query for batches of up to 256, for at most twice the rows.
pub(crate) fn padded_rows(rows: usize) -> usize {
    rows.max(1).next_power_of_two()
}

/// For each (package, collision key): a path already in the package that
/// conflicts with a file under that key (see
/// [`artifactstore_core::path::collision_key`]): one with the same key,
/// one whose key is a folder above it, or one below it as if it were a
/// folder. Index lookups only, in as few queries as the binds allow.
pub(crate) async fn path_conflicts(
    conn: &mut AnyConnection,
    wanted: &[(&str, &str)],
) -> StoreResult<Vec<Option<String>>> {
    let mut found = vec![None; wanted.len()];
    let mut start = 0;
    while start < wanted.len() {
        // Each item binds a package and a key per probe (its key and
        // each folder above it) and a package and two ends for its range:
        // 2 × (1 + folders) + 3.
        let mut end = start;
        let mut binds = 0;
        while end < wanted.len() {
            let cost = 5 + folders_of(wanted[end].1).count() * 2;
            if end > start && binds + cost > MAX_CONFLICT_BINDS {
                break;
            }
            binds += cost;
            end += 1;
        }
        conflicts_of_chunk(conn, &wanted[start..end], start, &mut found).await?;
        start = end;
    }
    Ok(found)
}

async fn conflicts_of_chunk(
    conn: &mut AnyConnection,
    wanted: &[(&str, &str)],
    offset: usize,
    found: &mut [Option<String>],
) -> StoreResult<()> {
    // Each item's probes (its key and each folder above it) and its range
    // (keys below `key/` sort after `key/` and before `key0`, as '0'
    // follows '/', byte by byte). Each row's position is its index in its
    // own list, so the SQL text depends only on the two lists' padded
    // lengths, never on which item holds how many folders.
    let mut probes: Vec<(usize, &str, &str)> = Vec::new();
    let mut ranges: Vec<(&str, String, String)> = Vec::new();
    for (item, (package_id, key)) in wanted.iter().enumerate() {
        for probe in std::iter::once(*key).chain(folders_of(key)) {
            probes.push((item, package_id, probe));
        }
        ranges.push((package_id, format!("{key}/"), format!("{key}0")));
    }
    // Padding rows look in the empty package id, which no package has.
    let probe_rows = padded_rows(probes.len());
    let range_rows = padded_rows(ranges.len());
    let mut binds: Vec<String> = Vec::new();
    let mut bind = |value: &str| {
        binds.push(value.to_owned());
        format!("${}", binds.len())
    };
    let mut probe_values = Vec::with_capacity(probe_rows);
    for position in 0..probe_rows {
        let (package_id, probe) = probes
            .get(position)
            .map_or(("", ""), |(_, package_id, probe)| (*package_id, *probe));
        probe_values.push(format!(
            "({position}, {}, {})",
            bind(package_id),
            bind(probe)
        ));
    }
    let mut range_values = Vec::with_capacity(range_rows);
    for index in 0..range_rows {
        let (package_id, low, high) = ranges
            .get(index)
            .map_or(("", "", ""), |(package_id, low, high)| {
                (*package_id, low.as_str(), high.as_str())
            });
        range_values.push(format!(
            "({}, {}, {}, {})",
            probe_rows + index,
            bind(package_id),
            bind(low),
            bind(high)
        ));
    }
    // Each probe is a subquery of its own, not a join of the VALUES with
    // `files`: PostgreSQL planned that join as a hash join over a scan of
    // the whole `files` table (its statistics still those of a young,
    // small table), once per group commit, so each upload's cost grew
    // with the files already stored; sampled during the small-files
    // scenario, that statement was 113 of 144 active-query samples
    // (docs/benchmarks.md, issue 24).
    let sql = format!(
        "SELECT p.column1 AS position, \
         (SELECT f.relative_path FROM files f WHERE f.package_id = p.column2 AND f.path_key = p.column3 \
          LIMIT 1) AS existing \
         FROM (VALUES {}) AS p \
         UNION ALL \
         SELECT r.column1 AS position, \
         (SELECT f.relative_path FROM files f WHERE f.package_id = r.column2 \
          AND f.path_key > r.column3 AND f.path_key < r.column4 ORDER BY f.path_key LIMIT 1) AS existing \
         FROM (VALUES {}) AS r",
        probe_values.join(", "),
        range_values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for value in binds {
        query = query.bind(value);
    }
    for row in query.fetch_all(conn).await? {
        let position: i64 = row.try_get("position")?;
        let Some(existing) = row.try_get::<Option<String>, _>("existing")? else {
            continue;
        };
        let position = usize::try_from(position)
            .map_err(|_| StoreError::corrupt("negative conflict position"))?;
        let item = if let Some((item, _, _)) = probes.get(position) {
            *item
        } else if (probe_rows..probe_rows + ranges.len()).contains(&position) {
            position - probe_rows
        } else {
            // A padding row; it cannot find anything, but a row found
            // there must not be taken for an item's.
            continue;
        };
        let slot = found
            .get_mut(offset + item)
            .ok_or_else(|| StoreError::corrupt("conflict position out of range"))?;
        slot.get_or_insert(existing);
    }
    Ok(())
}

pub(crate) async fn tokens_named(
    conn: &mut AnyConnection,
    name: &str,
) -> StoreResult<Vec<TokenRecord>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE name = $1 ORDER BY id");
    let rows = sqlx::query(&sql).bind(name).fetch_all(conn).await?;
    rows.iter().map(token_from_row).collect()
}

pub(crate) async fn due_for_sweep(
    conn: &mut AnyConnection,
    now: &Timestamp,
) -> StoreResult<Vec<(String, Option<Timestamp>)>> {
    let rows = sqlx::query(
        "SELECT r.package_id, r.expires_at FROM retention_state r \
         WHERE r.eligible_for_deletion = 0 AND r.expires_at IS NOT NULL AND r.expires_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM retention_holds h \
                         WHERE h.package_id = r.package_id AND h.released_at IS NULL) \
         ORDER BY r.expires_at, r.package_id",
    )
    .bind(now.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("package_id")?,
                crate::records::opt_timestamp(row, "expires_at")?,
            ))
        })
        .collect()
}

impl Store {
    /// One package.
    pub async fn package(&self, id: &str) -> StoreResult<Option<PackageRecord>> {
        package(&mut *self.pool.acquire().await?, id).await
    }

    /// One file with its storage location.
    pub async fn file(&self, id: &str) -> StoreResult<Option<FileRecord>> {
        file(&mut *self.pool.acquire().await?, id).await
    }

    /// One file by its path in a package.
    pub async fn file_by_path(
        &self,
        package_id: &str,
        relative_path: &str,
    ) -> StoreResult<Option<FileRecord>> {
        file_by_path(&mut *self.pool.acquire().await?, package_id, relative_path).await
    }

    /// A package's status, file count and whether `relative_path` is taken.
    pub async fn file_slot(
        &self,
        package_id: &str,
        relative_path: &str,
    ) -> StoreResult<Option<FileSlot>> {
        let mut slots = file_slots(
            &mut *self.pool.acquire().await?,
            &[(package_id, relative_path)],
        )
        .await?;
        Ok(slots.pop().flatten())
    }

    /// What new files must know before their bytes flow, read on one
    /// connection, for each `(package, path, collision key)`: the package's
    /// slot (`None`: no such package) and a path of the package that
    /// conflicts with the key, if any. One acquire for every file: each
    /// connection handed back to the pool is pinged, a round trip to
    /// SQLite's worker thread or to the PostgreSQL server
    /// (docs/benchmarks.md, issue 24).
    pub async fn new_file_slots(
        &self,
        wanted: &[(&str, &str, &str)],
    ) -> StoreResult<Vec<Option<(FileSlot, Option<String>)>>> {
        let mut conn = self.pool.acquire().await?;
        let paths: Vec<(&str, &str)> = wanted.iter().map(|(p, path, _)| (*p, *path)).collect();
        let slots = file_slots(&mut conn, &paths).await?;
        let keys: Vec<(&str, &str)> = wanted.iter().map(|(p, _, key)| (*p, *key)).collect();
        let conflicts = path_conflicts(&mut conn, &keys).await?;
        Ok(slots
            .into_iter()
            .zip(conflicts)
            .map(|(slot, conflict)| slot.map(|slot| (slot, conflict)))
            .collect())
    }

    /// For each (package, collision key), a path of that package that
    /// conflicts with it (see [`crate::LogTx::path_conflicts`]).
    pub async fn path_conflicts(
        &self,
        wanted: &[(&str, &str)],
    ) -> StoreResult<Vec<Option<String>>> {
        path_conflicts(&mut *self.pool.acquire().await?, wanted).await
    }

    /// A package's files, sorted by path bytes.
    pub async fn files_of(&self, package_id: &str) -> StoreResult<Vec<FileRecord>> {
        files_of(&mut *self.pool.acquire().await?, package_id).await
    }

    /// Up to `limit` of a package's files as a listing shows them, in the
    /// order of their collision keys (a path in NFC, lowercased), files of
    /// one key by the bytes of their path, starting after the position
    /// (`after_key`, `after_path`); `("", "")` starts at the first. Keys
    /// are unique in a package only since the collision rules: packages
    /// recorded before them may hold `README.md` and `readme.md`, which
    /// the path breaks the tie between. Six columns of one table instead of
    /// [`Store::files_of`]'s sixteen of three: the web UI's page of a
    /// package with 10,000 files spent two thirds of its time reading and
    /// converting rows (docs/benchmarks.md). Keyset pages over the
    /// `files_path_key` index, bytewise on both engines (`COLLATE "C"` on
    /// PostgreSQL), so a page costs the same whatever the package's size.
    /// A file whose key is not filled in yet (recorded by an older
    /// replica during a rolling upgrade, until the next start migrates)
    /// is not listed.
    pub async fn file_listing(
        &self,
        package_id: &str,
        (after_key, after_path): (&str, &str),
        limit: u32,
    ) -> StoreResult<Vec<FileListing>> {
        let bytewise = match self.engine {
            Engine::Postgres => r#" COLLATE "C""#,
            Engine::Sqlite => "",
        };
        let sql = format!(
            "SELECT id, relative_path, media_type, size_bytes, sha256, blake3 FROM files \
             WHERE package_id = $1 AND path_key >= $2 \
             AND (path_key > $2 OR relative_path{bytewise} > $3) \
             ORDER BY path_key, relative_path{bytewise} LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(package_id)
            .bind(after_key)
            .bind(after_path)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let size: i64 = row.try_get("size_bytes")?;
                Ok(FileListing {
                    id: row.try_get("id")?,
                    relative_path: row.try_get("relative_path")?,
                    media_type: row.try_get("media_type")?,
                    size_bytes: u64::try_from(size).map_err(StoreError::corrupt)?,
                    sha256: row.try_get("sha256")?,
                    blake3: row.try_get("blake3")?,
                })
            })
            .collect()
    }

    /// The collision key stored with a package's file at `relative_path`,
    /// if there is such a file and its key is filled in.
    pub async fn stored_path_key(
        &self,
        package_id: &str,
        relative_path: &str,
    ) -> StoreResult<Option<String>> {
        let row =
            sqlx::query("SELECT path_key FROM files WHERE package_id = $1 AND relative_path = $2")
                .bind(package_id)
                .bind(relative_path)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row
            .map(|row| row.try_get::<Option<String>, _>("path_key"))
            .transpose()?
            .flatten())
    }

    /// A package's retention state.
    pub async fn retention(&self, package_id: &str) -> StoreResult<Option<RetentionRecord>> {
        retention(&mut *self.pool.acquire().await?, package_id).await
    }

    /// A metadata schema by slug.
    pub async fn schema_by_slug(&self, slug: &str) -> StoreResult<Option<SchemaRecord>> {
        schema_where(&mut *self.pool.acquire().await?, "slug", slug).await
    }

    /// Packages matching `filter`, in creation order, one page.
    pub async fn list_packages(&self, filter: &PackageFilter) -> StoreResult<PackagePage> {
        let mut sql = format!("SELECT {PACKAGE_COLUMNS} FROM packages p");
        let mut binds: Vec<String> = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        // Metadata rows carry their package's creation sequence, so testing
        // a candidate is one seek in `package_metadata_by_sequence`, whether
        // the value is rare or common, without visiting either table.
        for (key, value) in &filter.metadata {
            binds.push(key.clone());
            let k = binds.len();
            binds.push(value.clone());
            let v = binds.len();
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM package_metadata m WHERE m.created_sequence = p.created_sequence \
                 AND m.key = ${k} AND m.value = ${v})"
            ));
        }
        for (column, value) in [
            ("name", &filter.name),
            ("producer", &filter.producer),
            ("subject", &filter.subject),
            ("retention_class", &filter.retention_class),
            ("status", &filter.status),
        ] {
            if let Some(value) = value {
                binds.push(value.clone());
                conditions.push(format!("p.{column} = ${}", binds.len()));
            }
        }
        let after_index = binds.len() + 1;
        conditions.push(format!("p.created_sequence > ${after_index}"));
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
        sql.push_str(&format!(
            " ORDER BY p.created_sequence LIMIT ${}",
            after_index + 1
        ));
        let mut query = sqlx::query(&sql);
        for bind in &binds {
            query = query.bind(bind.as_str());
        }
        let limit = filter.limit.max(1);
        let rows = query
            .bind(filter.after.unwrap_or(0))
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows
            .iter()
            .map(package_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|p| p.created_sequence)
        } else {
            None
        };
        Ok(PackagePage { items, next })
    }

    /// Files whose `kind` digest is `hex` (lowercase), in creation order,
    /// created after cursor `after`, at most `limit` (at least 1).
    pub async fn files_by_digest(
        &self,
        kind: DigestKind,
        hex: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<FilePage> {
        let limit = limit.max(1);
        let sql = format!(
            "{FILE_SELECT} WHERE {} = $1 AND f.created_sequence > $2 \
             ORDER BY f.created_sequence LIMIT $3",
            kind.column()
        );
        let rows = sqlx::query(&sql)
            .bind(hex)
            .bind(after)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut sequences = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(file_from_row(row)?);
            sequences.push(row.try_get::<i64, _>("created_sequence")?);
        }
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            sequences.get(limit as usize - 1).copied()
        } else {
            None
        };
        Ok(FilePage { items, next })
    }

    /// Storage locations (optionally of one backend) after `after`, by id,
    /// of packages not purged (whose bytes must be there).
    pub async fn locations(
        &self,
        backend: Option<&str>,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<LocationRecord>> {
        let rows = sqlx::query(
            "SELECT l.id, l.file_id, l.backend_id, l.object_key, f.size_bytes, f.blake3, f.sha256 \
             FROM storage_locations l JOIN files f ON f.id = l.file_id JOIN packages p ON p.id = f.package_id \
             WHERE l.id > $1 AND ($2 = '' OR l.backend_id = $2) AND p.status <> $4 ORDER BY l.id LIMIT $3",
        )
        .bind(after)
        .bind(backend.unwrap_or(""))
        .bind(limit)
        .bind(crate::records::status::PURGED)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let size: i64 = row.try_get("size_bytes")?;
                Ok(LocationRecord {
                    id: row.try_get("id")?,
                    file_id: row.try_get("file_id")?,
                    backend_id: row.try_get("backend_id")?,
                    object_key: row.try_get("object_key")?,
                    size_bytes: u64::try_from(size).map_err(StoreError::corrupt)?,
                    blake3: row.try_get("blake3")?,
                    sha256: row.try_get("sha256")?,
                })
            })
            .collect()
    }

    /// One API token.
    pub async fn token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// The API tokens of `ids` that exist, in no particular order, read on
    /// one connection. The ids go in [`TOKENS_PER_STATEMENT`] at a time,
    /// the last statement's list padded with its last id, so every read
    /// is the same SQL text (one prepared statement per connection,
    /// whatever the batch's size). [`StoreError::Busy`] if it takes longer
    /// than the store's timeout.
    pub async fn tokens_by_id(&self, ids: &[&str]) -> StoreResult<Vec<TokenRecord>> {
        let Some(&last) = ids.last() else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id IN ({})",
            (1..=TOKENS_PER_STATEMENT)
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let read = async {
            let mut conn = self.pool.acquire().await?;
            let mut found = Vec::new();
            for chunk in ids.chunks(TOKENS_PER_STATEMENT) {
                let mut query = sqlx::query(&sql);
                for n in 0..TOKENS_PER_STATEMENT {
                    query = query.bind(*chunk.get(n).unwrap_or(&last));
                }
                for row in query.fetch_all(&mut *conn).await? {
                    found.push(token_from_row(&row)?);
                }
            }
            Ok(found)
        };
        // Bounded as a whole: every request waiting for its token waits
        // for this read, so a connection that hangs (a half-open socket)
        // must not hold them longer than a busy pool would.
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| StoreError::Busy)?
    }

    /// Every API token, oldest first.
    pub async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// How many storage locations are marked failed.
    pub async fn failed_location_count(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM storage_locations WHERE status = $1")
            .bind(crate::records::storage_status::FAILED)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// A package's retention events, in log order.
    pub async fn retention_history(&self, package_id: &str) -> StoreResult<Vec<Event>> {
        let sql = retention_history_sql();
        let mut query = sqlx::query(&sql).bind(package_id);
        for event_type in types::RETENTION {
            query = query.bind(event_type);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        events.sort_unstable_by_key(|event| event.sequence);
        Ok(events)
    }

    /// The events whose subject is this package, up to `up_to`, in log order.
    pub async fn package_events(&self, package_id: &str, up_to: i64) -> StoreResult<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE subject_id = $1 AND subject_kind = $2 \
             AND sequence <= $3 ORDER BY sequence"
        );
        let rows = sqlx::query(&sql)
            .bind(package_id)
            .bind(artifactstore_core::event::subjects::PACKAGE)
            .bind(up_to)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The canonical CBOR manifest of a finalized package.
    pub async fn manifest_bytes(&self, package_id: &str) -> StoreResult<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT payload FROM events WHERE subject_id = $1 AND event_type = $2 \
             ORDER BY sequence DESC LIMIT 1",
        )
        .bind(package_id)
        .bind(types::PACKAGE_FINALIZED)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("payload"))
            .transpose()
            .map_err(Into::into)
    }
}

/// The statement of [`Store::retention_history`]: a package (`$1`) and the
/// retention event types (`$2`…). Sorted by the caller, not here: SQLite's
/// planner, asked for the log's order, walks `events_subject` (which gives
/// it without a sort) through every event of the package, where
/// `events_subject_type` finds the few retention events directly.
pub(crate) fn retention_history_sql() -> String {
    let placeholders = (2..2 + types::RETENTION.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT {EVENT_COLUMNS} FROM events WHERE subject_id = $1 AND event_type IN ({placeholders})")
}
