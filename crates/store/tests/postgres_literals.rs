//! The PostgreSQL batch inliner writes user text into SQL as escape-string
//! literals (crates/store/src/batch.rs): the one place user text becomes
//! SQL text. Any string must come back from a real PostgreSQL byte for
//! byte, whatever `standard_conforming_strings` says, and nothing in it may
//! end the literal or the statement.

use artifactstore_store::postgres_text_literal;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use sqlx::{Connection, Executor, Row};

/// A connection, or `None` where no server answers (skipped, or failed
/// under CI).
async fn connect() -> Option<sqlx::PgConnection> {
    if !artifactstore_testkit::require_postgres() {
        return None;
    }
    let url = artifactstore_testkit::postgres_admin_url();
    Some(
        sqlx::PgConnection::connect(&url)
            .await
            .expect("connect to PostgreSQL"),
    )
}

/// Sends `SELECT <literal>, 'end'` as one simple-protocol query, as the
/// inliner's batches go, and returns what PostgreSQL read.
async fn echo(conn: &mut sqlx::PgConnection, text: &str) -> String {
    let literal = postgres_text_literal(text).unwrap();
    let sql = format!("SELECT {literal} AS v, 'end' AS marker");
    let rows = conn.fetch_all(sqlx::raw_sql(&sql)).await.unwrap();
    assert_eq!(rows.len(), 1, "{sql}");
    assert_eq!(rows[0].get::<String, _>("marker"), "end", "{sql}");
    rows[0].get("v")
}

const HOSTILE: [&str; 12] = [
    "",
    "'",
    "''",
    "\\",
    "\\'",
    "'; DROP TABLE events; --",
    "E'x'",
    "$1 $2 $$ $tag$",
    "a -- b /* c */ d",
    "\u{1F600} caf\u{e9} \u{202e}",
    "line\nbreak\rand\ttab",
    "\\x00 \\u0000 \\' '\\",
];

#[test]
fn any_text_round_trips_through_a_real_postgresql() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(mut conn) = connect().await else {
            return;
        };
        for setting in ["on", "off"] {
            let set = format!("SET standard_conforming_strings = {setting}");
            conn.execute(sqlx::raw_sql(&set)).await.unwrap();
            for text in HOSTILE {
                let read = echo(&mut conn, text).await;
                assert_eq!(read, text, "standard_conforming_strings = {setting}");
            }
        }
        // Arbitrary Unicode, from a fixed seed.
        let strings = proptest::collection::vec(any::<String>(), 400);
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let cases = strings.new_tree(&mut runner).unwrap().current();
        for text in cases.iter().map(|t| t.replace('\0', "")) {
            assert_eq!(echo(&mut conn, &text).await, text);
        }
        // NUL cannot be held by PostgreSQL text: refused, never cut short.
        assert!(postgres_text_literal("a\0b").is_err());
    });
}

proptest! {
    /// Without a server: the literal is one `E'…'` whose inside has only
    /// doubled quotes and backslashes, and reads back as the text.
    #[test]
    fn literals_are_closed_and_read_back(text in any::<String>()) {
        let text = text.replace('\0', "");
        let literal = postgres_text_literal(&text).unwrap();
        let inside = literal.strip_prefix("E'").and_then(|l| l.strip_suffix('\'')).unwrap();
        let mut read = String::new();
        let mut chars = inside.chars();
        while let Some(c) = chars.next() {
            if c == '\'' || c == '\\' {
                prop_assert_eq!(chars.next(), Some(c), "a lone {} in {}", c, literal);
            }
            read.push(c);
        }
        prop_assert_eq!(read, text);
    }
}
