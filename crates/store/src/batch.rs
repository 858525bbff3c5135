//! Statements planned in memory and sent to the database together.
//!
//! sqlx runs each SQLite statement on the connection's worker thread and
//! waits for the answer: a thread handoff per statement that costs far more
//! than the statement itself (measured in docs/benchmarks.md: about 55 µs
//! against 2–5 µs when 50 go in one call). On SQLite a [`Batch`] therefore
//! goes as one multi-statement call, its `$N` placeholders renumbered to
//! index one shared argument list. PostgreSQL's extended protocol takes
//! one statement per call, so there the statements go one by one. Replay
//! on SQLite runs a batch on its own blocking connection instead
//! ([`Batch::execute_blocking`]), each statement prepared once.

use sqlx::AnyConnection;

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

/// Most statements one SQLite call carries: bounds the SQL text sqlite
/// parses at once and stays far below its 32,766 placeholder limit.
const MAX_STATEMENTS_PER_CALL: usize = 256;

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
            execute_each(conn, statements).await
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

    /// Runs every statement on a blocking SQLite connection, each prepared
    /// once per connection; leaves the batch empty.
    pub(crate) fn execute_blocking(&mut self, conn: &rusqlite::Connection) -> StoreResult<()> {
        let unique_is_duplicate_path = std::mem::take(&mut self.unique_is_duplicate_path);
        let result = self
            .statements
            .drain(..)
            .try_for_each(|statement| execute_prepared(conn, statement));
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

/// Binds each `$N` of the statement (SQLite numbers named parameters in
/// order of first appearance, so look each one up by name) and runs it.
fn execute_prepared(conn: &rusqlite::Connection, statement: Statement) -> rusqlite::Result<()> {
    let mut prepared = conn.prepare_cached(statement.sql)?;
    for index in 1..=prepared.parameter_count() {
        let n: usize = prepared
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(0);
        let Some(bind) = n.checked_sub(1).and_then(|i| statement.binds.get(i)) else {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "{} in {}",
                prepared.parameter_name(index).unwrap_or("?"),
                statement.sql
            )));
        };
        match bind {
            Bind::Text(v) => prepared.raw_bind_parameter(index, v.as_str())?,
            Bind::OptText(v) => prepared.raw_bind_parameter(index, v.as_deref())?,
            Bind::Int(v) => prepared.raw_bind_parameter(index, v)?,
            Bind::Blob(v) => prepared.raw_bind_parameter(index, v.as_slice())?,
        }
    }
    prepared.raw_execute()?;
    Ok(())
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

async fn execute_each(
    conn: &mut AnyConnection,
    statements: Vec<Statement>,
) -> Result<(), sqlx::Error> {
    for statement in statements {
        bind_all(sqlx::query(statement.sql), statement.binds)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn execute_combined(
    conn: &mut AnyConnection,
    statements: Vec<Statement>,
) -> Result<(), sqlx::Error> {
    let mut statements = statements.into_iter().peekable();
    while statements.peek().is_some() {
        let mut sql = String::new();
        let mut binds = Vec::new();
        let mut count = 0;
        for statement in statements.by_ref().take(MAX_STATEMENTS_PER_CALL) {
            renumber_into(&mut sql, statement.sql, binds.len());
            sql.push_str(";\n");
            binds.extend(statement.binds);
            count += 1;
        }
        // A few statements are one append's, whose shape recurs, so keep
        // them prepared; replay's long mixed runs are all different and
        // would only churn the statement cache.
        bind_all(sqlx::query(&sql).persistent(count <= 16), binds)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Appends `sql` to `out` with every `$N` turned into `$(N + offset)`.
fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: usize = rest[..digits].parse().unwrap_or(0);
        out.push_str(&(n + offset).to_string());
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

/// The highest `$N` in `sql`.
fn placeholders(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|s| {
            let digits = s.bytes().take_while(u8::is_ascii_digit).count();
            s[..digits].parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
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
}
