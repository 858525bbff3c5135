//! Statements planned in memory and sent to the database together.
//!
//! sqlx runs each SQLite statement on the connection's worker thread and
//! waits for the answer: a thread handoff per statement that costs far more
//! than the statement itself (measured in docs/benchmarks.md: about 55 µs
//! against 2–5 µs when 50 go in one call). On SQLite a [`Batch`] therefore
//! goes as one multi-statement call, its `$N` placeholders renumbered to
//! index one shared argument list. PostgreSQL's extended protocol takes
//! one statement per round trip, and sqlx does not pipeline, so there a
//! batch goes as one simple-protocol query with its values written in as
//! literals (escaped strings, `decode(…, 'hex')` bytes): one round trip per
//! batch instead of one per statement. Replay on SQLite runs a batch on its
//! own blocking connection instead ([`Batch::execute_blocking`]), each
//! statement prepared once.

use std::collections::hash_map::{Entry, HashMap};

use sqlx::{AnyConnection, Executor};

use crate::{StoreError, StoreResult};

/// One bound value.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Blob(Vec<u8>),
}

impl From<&str> for Bind {
    fn from(value: &str) -> Self {
        Bind::Text(value.to_owned())
    }
}

impl From<String> for Bind {
    fn from(value: String) -> Self {
        Bind::Text(value)
    }
}

impl From<Option<String>> for Bind {
    fn from(value: Option<String>) -> Self {
        Bind::OptText(value)
    }
}

impl From<Option<&str>> for Bind {
    fn from(value: Option<&str>) -> Self {
        Bind::OptText(value.map(str::to_owned))
    }
}

impl From<i64> for Bind {
    fn from(value: i64) -> Self {
        Bind::Int(value)
    }
}

impl From<&[u8]> for Bind {
    fn from(value: &[u8]) -> Self {
        Bind::Blob(value.to_vec())
    }
}

/// One statement with `$1..$n` placeholders and its values.
#[derive(Debug, Clone)]
struct Statement {
    sql: &'static str,
    binds: Vec<Bind>,
}

/// Statements to run in order, in the caller's transaction.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    statements: Vec<Statement>,
    /// A unique violation means a duplicate relative path (a
    /// `file.ingested` is in the batch), not a bug.
    unique_is_duplicate_path: bool,
}

/// Most statements one PostgreSQL simple query carries: bounds the SQL
/// text the server parses at once.
const MAX_STATEMENTS_PER_CALL: usize = 256;

/// Most statements of a batch that goes to SQLite in one call: a group
/// commit of up to 16 files (four statements each, and the log head's).
const MAX_SQLITE_STATEMENTS_PER_CALL: usize = 65;

/// A longer batch goes to SQLite in calls of this many statements: a
/// multiple of a file's four, so that every full call of a group commit
/// is the same text whatever the group's size, and its last call the
/// text of a smaller group's.
const SQLITE_STATEMENTS_PER_LONG_CALL: usize = 64;

impl Batch {
    pub(crate) fn push(&mut self, sql: &'static str, binds: Vec<Bind>) {
        debug_assert_eq!(placeholders(sql), binds.len(), "{sql}");
        self.statements.push(Statement { sql, binds });
    }

    pub(crate) fn unique_is_duplicate_path(&mut self) {
        self.unique_is_duplicate_path = true;
    }

    pub(crate) fn len(&self) -> usize {
        self.statements.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Runs every statement; leaves the batch empty.
    pub(crate) async fn execute(&mut self, conn: &mut AnyConnection) -> StoreResult<()> {
        let statements = std::mem::take(&mut self.statements);
        let unique_is_duplicate_path = std::mem::take(&mut self.unique_is_duplicate_path);
        let result = if conn.backend_name() == "SQLite" {
            execute_combined(conn, statements).await
        } else {
            execute_inlined(conn, statements).await?
        };
        match result {
            Err(sqlx::Error::Database(e))
                if unique_is_duplicate_path && e.is_unique_violation() =>
            {
                Err(StoreError::DuplicateRelativePath)
            }
            other => Ok(other?),
        }
    }

    /// Runs every statement on a blocking SQLite connection through
    /// `prepared`; leaves the batch empty.
    pub(crate) fn execute_blocking(&mut self, prepared: &mut Prepared<'_>) -> StoreResult<()> {
        let unique_is_duplicate_path = std::mem::take(&mut self.unique_is_duplicate_path);
        let result = self
            .statements
            .drain(..)
            .try_for_each(|statement| prepared.execute(&statement));
        match result {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if unique_is_duplicate_path
                    && matches!(
                        e.extended_code,
                        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                            | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    ) =>
            {
                Err(StoreError::DuplicateRelativePath)
            }
            other => Ok(other?),
        }
    }
}

/// The handlers' statements prepared on one blocking SQLite connection,
/// each once, with the value each of its parameters takes. Keyed by the
/// address and length of the static SQL text (two texts may share a
/// start): looking a statement up costs no hashing of its text, which for
/// replay's millions of statements is measurable.
pub(crate) struct Prepared<'c> {
    conn: &'c rusqlite::Connection,
    statements: HashMap<(usize, usize), (rusqlite::Statement<'c>, Vec<usize>)>,
}

impl<'c> Prepared<'c> {
    pub(crate) fn new(conn: &'c rusqlite::Connection) -> Self {
        Self {
            conn,
            statements: HashMap::new(),
        }
    }

    fn execute(&mut self, statement: &Statement) -> rusqlite::Result<()> {
        let key = (statement.sql.as_ptr() as usize, statement.sql.len());
        let (prepared, values) = match self.statements.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let prepared = self.conn.prepare(statement.sql)?;
                let values = parameter_values(&prepared, statement)?;
                entry.insert((prepared, values))
            }
        };
        for (index, &value) in values.iter().enumerate() {
            let index = index + 1;
            match &statement.binds[value] {
                Bind::Text(v) => prepared.raw_bind_parameter(index, v.as_str())?,
                Bind::OptText(v) => prepared.raw_bind_parameter(index, v.as_deref())?,
                Bind::Int(v) => prepared.raw_bind_parameter(index, v)?,
                Bind::Blob(v) => prepared.raw_bind_parameter(index, v.as_slice())?,
            }
        }
        prepared.raw_execute()?;
        Ok(())
    }
}

/// For each parameter of `prepared`, in order, the index of its value in
/// `statement.binds`: SQLite numbers named parameters (`$N`) in order of
/// first appearance, so each is looked up by its name.
fn parameter_values(
    prepared: &rusqlite::Statement<'_>,
    statement: &Statement,
) -> rusqlite::Result<Vec<usize>> {
    (1..=prepared.parameter_count())
        .map(|index| {
            let name = prepared.parameter_name(index).unwrap_or("?");
            name.strip_prefix('$')
                .and_then(|digits| digits.parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1))
                .filter(|&value| value < statement.binds.len())
                .ok_or_else(|| {
                    rusqlite::Error::InvalidParameterName(format!("{name} in {}", statement.sql))
                })
        })
        .collect()
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Text(v) => query.bind(v),
            Bind::OptText(v) => query.bind(v),
            Bind::Int(v) => query.bind(v),
            Bind::Blob(v) => query.bind(v),
        };
    }
    query
}

/// PostgreSQL: every statement, values inlined, in one simple-protocol
/// query per [`MAX_STATEMENTS_PER_CALL`]. The outer result refuses a value
/// PostgreSQL cannot hold; the inner one is the database's answer.
async fn execute_inlined(
    conn: &mut AnyConnection,
    statements: Vec<Statement>,
) -> StoreResult<Result<(), sqlx::Error>> {
    for chunk in statements.chunks(MAX_STATEMENTS_PER_CALL) {
        let mut sql = String::new();
        for statement in chunk {
            inline_into(&mut sql, statement.sql, &statement.binds)?;
            sql.push_str(";\n");
        }
        if let Err(e) = conn.execute(sqlx::raw_sql(&sql)).await {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// Appends `sql` to `out` with every `$N` replaced by the literal of
/// `binds[N - 1]`. Only the static SQL is scanned for `$`, never a value.
fn inline_into(out: &mut String, sql: &str, binds: &[Bind]) -> StoreResult<()> {
    for (text, placeholder) in pieces(sql) {
        out.push_str(text);
        if let Some(n) = placeholder {
            let bind = n.checked_sub(1).and_then(|i| binds.get(i)).ok_or_else(|| {
                StoreError::corrupt(format!("a placeholder without a value in {sql}"))
            })?;
            push_literal(out, bind)?;
        }
    }
    Ok(())
}

/// The literal [`push_literal`] writes for a text value: the one place
/// where user text becomes SQL text, public for its fuzz target and its
/// property test against a real PostgreSQL.
pub fn postgres_text_literal(text: &str) -> StoreResult<String> {
    let mut out = String::new();
    push_literal(&mut out, &Bind::from(text))?;
    Ok(out)
}

/// A PostgreSQL literal of `bind`. Text goes in an escape string (`E'…'`),
/// whose meaning does not depend on `standard_conforming_strings`: each
/// quote and backslash is doubled, and NUL, which no PostgreSQL text can
/// hold and which would end the protocol's query string, is refused.
fn push_literal(out: &mut String, bind: &Bind) -> StoreResult<()> {
    use std::fmt::Write as _;
    match bind {
        // In parentheses, so a minus sign can never meet one before it
        // and start a `--` comment.
        Bind::Int(v) => {
            let _ = write!(out, "({v})");
        }
        Bind::Text(text) | Bind::OptText(Some(text)) => {
            if text.contains('\0') {
                return Err(StoreError::Unstorable("text with a NUL character"));
            }
            out.reserve(text.len() + 3);
            out.push_str("E'");
            for c in text.chars() {
                match c {
                    '\'' => out.push_str("''"),
                    '\\' => out.push_str("\\\\"),
                    c => out.push(c),
                }
            }
            out.push('\'');
        }
        Bind::OptText(None) => out.push_str("NULL"),
        Bind::Blob(bytes) => {
            out.push_str("decode('");
            out.push_str(&hex::encode(bytes));
            out.push_str("', 'hex')");
        }
    }
    Ok(())
}

async fn execute_combined(
    conn: &mut AnyConnection,
    statements: Vec<Statement>,
) -> Result<(), sqlx::Error> {
    for (sql, binds) in sqlite_calls(statements) {
        bind_all(sqlx::query(&sql), binds)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The calls a batch goes to SQLite in, each its SQL and its values.
///
/// Every call stays prepared in the connection's statement cache
/// (sqlx's default): a group commit's statements recur in few shapes,
/// and parsing them anew for every group was about 3.5% of the server's
/// samples in the small-files scenario (docs/benchmarks.md, issue 24).
/// The texts stay few and short: one per group size up to 16 files; a
/// larger group goes in calls of 64 statements (one text) and a last call
/// that is the text of a smaller group's (or the log head's alone).
fn sqlite_calls(statements: Vec<Statement>) -> Vec<(String, Vec<Bind>)> {
    let per_call = if statements.len() <= MAX_SQLITE_STATEMENTS_PER_CALL {
        statements.len().max(1)
    } else {
        SQLITE_STATEMENTS_PER_LONG_CALL
    };
    let mut calls = Vec::new();
    let mut statements = statements.into_iter().peekable();
    while statements.peek().is_some() {
        let mut sql = String::new();
        let mut binds = Vec::new();
        for statement in statements.by_ref().take(per_call) {
            renumber_into(&mut sql, statement.sql, binds.len());
            sql.push_str(";\n");
            binds.extend(statement.binds);
        }
        calls.push((sql, binds));
    }
    calls
}

/// Appends `sql` to `out` with every `$N` turned into `$(N + offset)`.
fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    for (text, placeholder) in pieces(sql) {
        out.push_str(text);
        if let Some(n) = placeholder {
            out.push('$');
            out.push_str(&(n + offset).to_string());
        }
    }
}

/// The highest `$N` in `sql`.
fn placeholders(sql: &str) -> usize {
    pieces(sql).filter_map(|(_, n)| n).max().unwrap_or(0)
}

/// `sql` split at its `$N` placeholders: each stretch of text with the
/// number of the placeholder that ends it (0 for a `$` without digits,
/// which no placeholder is), the last stretch with `None`.
fn pieces(sql: &str) -> impl Iterator<Item = (&str, Option<usize>)> {
    let mut rest = Some(sql);
    std::iter::from_fn(move || {
        let text = rest?;
        let Some(at) = text.find('$') else {
            rest = None;
            return Some((text, None));
        };
        let after = &text[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        rest = Some(&after[digits..]);
        Some((&text[..at], Some(after[..digits].parse().unwrap_or(0))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_shifted_by_the_offset() {
        let mut out = String::new();
        renumber_into(&mut out, "UPDATE t SET a = $1, b = $2 WHERE c = $10", 3);
        assert_eq!(out, "UPDATE t SET a = $4, b = $5 WHERE c = $13");
        assert_eq!(placeholders("INSERT INTO t VALUES ($1, $2, $11, $2)"), 11);
        assert_eq!(placeholders("DELETE FROM t"), 0);
    }

    #[test]
    fn inlined_values_are_escaped_literals() {
        let mut out = String::new();
        let binds = [
            Bind::from(r"it's \ $1"),
            Bind::from(-42),
            Bind::from(None::<String>),
            Bind::from(&[0x00u8, 0xff, 0x10][..]),
        ];
        inline_into(
            &mut out,
            "UPDATE t SET a = $1, b = $2, c = $3, d = $4 WHERE e = $1",
            &binds,
        )
        .unwrap();
        assert_eq!(
            out,
            r"UPDATE t SET a = E'it''s \\ $1', b = (-42), c = NULL, d = decode('00ff10', 'hex') WHERE e = E'it''s \\ $1'"
        );
    }

    /// A group commit's statements for `files` files: four per file, then
    /// the log head's.
    fn group_of(files: i64, first_id: i64) -> Batch {
        let mut batch = Batch::default();
        for id in first_id..first_id + files {
            for sql in [
                "INSERT INTO t (id, kind) VALUES ($1, 'event')",
                "INSERT INTO t (id, kind) VALUES ($1 + 1000000, 'file')",
                "INSERT INTO t (id, kind) VALUES ($1 + 2000000, 'location')",
                "UPDATE t SET kind = 'counted' WHERE id = $1",
            ] {
                batch.push(sql, vec![Bind::from(id)]);
            }
        }
        batch.push("UPDATE head SET n = n + $1", vec![Bind::from(files)]);
        batch
    }

    #[test]
    fn groups_of_any_size_go_to_sqlite_in_few_short_texts() {
        // Each text is kept prepared in every connection's cache of 100:
        // groups of every size from 1 to 80 files must share few texts,
        // none longer than a 16-file group's.
        let mut texts = std::collections::HashSet::new();
        for size in 1..=80 {
            let calls = sqlite_calls(group_of(size, 1).statements);
            assert_eq!(
                calls.len(),
                if size <= 16 {
                    1
                } else {
                    (4 * size as usize + 1).div_ceil(64)
                }
            );
            for (sql, binds) in calls {
                assert!(
                    sql.matches(";\n").count() <= MAX_SQLITE_STATEMENTS_PER_CALL,
                    "{size}"
                );
                assert_eq!(placeholders(&sql), binds.len(), "{size}");
                texts.insert(sql);
            }
        }
        // The calls of groups of 1 to 16 files; the full 64-statement
        // call; a larger group's last call is a smaller group's text, or
        // the log head's statement alone.
        assert_eq!(texts.len(), 16 + 1 + 1);
    }

    #[test]
    fn groups_cut_into_calls_run_whole() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::{Connection, Row};
                sqlx::any::install_default_drivers();
                let mut conn = AnyConnection::connect("sqlite::memory:").await.unwrap();
                sqlx::raw_sql(
                    "CREATE TABLE t (id INTEGER PRIMARY KEY, kind TEXT NOT NULL); \
                     CREATE TABLE head (n INTEGER NOT NULL); INSERT INTO head VALUES (0);",
                )
                .execute(&mut conn)
                .await
                .unwrap();
                let mut next = 1;
                for size in [1, 16, 17, 40, 64] {
                    group_of(size, next).execute(&mut conn).await.unwrap();
                    next += size;
                }
                let files = next - 1;
                let rows =
                    sqlx::query("SELECT COUNT(*) AS n, SUM(kind = 'counted') AS counted FROM t")
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                assert_eq!(rows.get::<i64, _>("n"), 3 * files);
                assert_eq!(rows.get::<i64, _>("counted"), files);
                let head = sqlx::query("SELECT n FROM head")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(head.get::<i64, _>("n"), files);
            });
    }

    #[test]
    fn inlining_refuses_nul_and_missing_values() {
        let mut out = String::new();
        let nul = inline_into(&mut out, "SELECT $1", &[Bind::from("a\0b")]);
        assert!(matches!(nul, Err(StoreError::Unstorable(_))), "{nul:?}");
        let missing = inline_into(&mut out, "SELECT $2", &[Bind::from(1)]);
        assert!(
            matches!(missing, Err(StoreError::Corrupt(_))),
            "{missing:?}"
        );
    }
}
