//! What the test suites of artifact-store share, written once:
//!
//! - the services the suites run against for real (PostgreSQL, the S3
//!   servers), their settings from the environment, and the one rule for a
//!   missing one: skipped with a printed reason, except under `CI=true`,
//!   where it is a failure ([`skip_or_fail`]);
//! - the engine matrix: [`Engine`], [`run_on`], and a fresh PostgreSQL
//!   database per test ([`PostgresDatabase`]);
//! - a clock the test moves ([`ManualClock`]) and request bodies
//!   ([`body`], [`body_in`]).
//!
//! Dev-only (`publish = false`), and it depends on the pure core alone, so
//! every crate's tests can use it without a dependency cycle.

use std::sync::{Arc, Mutex};

use artifactstore_core::{Clock, Timestamp};
use bytes::Bytes;
use futures::Stream;

/// The one rule for a test that cannot have what it needs (`what`: a
/// service or facility): under `CI=true` it fails; elsewhere it is skipped,
/// with `reason` printed where it is seen (the harness hides the output of
/// passing tests, but not what is written to the stream itself).
pub fn skip_or_fail(what: &str, reason: &str) {
    if artifactstore_core::flag::in_ci() {
        panic!("{reason} (CI=true: a missing {what} is a failure)");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED ({what}): {reason}");
}

/// The PostgreSQL server tests create their databases on
/// (`ARTIFACTSTORE_TEST_POSTGRES_URL`, default the local one).
pub fn postgres_admin_url() -> String {
    std::env::var("ARTIFACTSTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether the PostgreSQL server answers; when it does not, the test is
/// skipped or failed by [`skip_or_fail`].
pub fn require_postgres() -> bool {
    use std::net::ToSocketAddrs;
    let url = postgres_admin_url();
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    let reachable = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
        });
    if !reachable {
        skip_or_fail("postgres", &format!("PostgreSQL is not reachable at {url}"));
    }
    reachable
}

/// The S3-compatible servers the suites run against, by environment name.
pub const S3_SERVERS: [&str; 2] = ["GARAGE", "CEPH"];

/// One S3-compatible server's settings, from `ARTIFACTSTORE_TEST_<NAME>_*`
/// (`scripts/s3/test-services up` prints them).
#[derive(Debug, Clone)]
pub struct S3Server {
    /// `ENDPOINT`.
    pub endpoint: String,
    /// `REGION`, if set.
    pub region: Option<String>,
    /// `BUCKET`.
    pub bucket: Option<String>,
    /// `ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// A key prefix of its own, so runs and tests sharing a bucket stay
    /// apart.
    pub prefix: String,
}

/// S3 server `name` (`GARAGE`, `CEPH`), or `None` when its environment is
/// not set (skipped or failed by [`skip_or_fail`]).
pub fn s3_server(name: &str) -> Option<S3Server> {
    let var = |field: &str| std::env::var(format!("ARTIFACTSTORE_TEST_{name}_{field}")).ok();
    let Some(endpoint) = var("ENDPOINT") else {
        skip_or_fail(
            &name.to_lowercase(),
            &format!(
                "ARTIFACTSTORE_TEST_{name}_ENDPOINT is not set (start the servers: eval \"$(scripts/s3/test-services up)\")"
            ),
        );
        return None;
    };
    Some(S3Server {
        endpoint,
        region: var("REGION"),
        bucket: var("BUCKET"),
        access_key_id: var("ACCESS_KEY_ID"),
        secret_access_key: var("SECRET_ACCESS_KEY"),
        prefix: format!("tests/{}", uuid::Uuid::new_v4()),
    })
}

/// The database engines the suites run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The embedded default.
    Sqlite,
    /// Shared by replicas.
    Postgres,
}

thread_local! {
    static ENGINE: std::cell::Cell<Engine> = const { std::cell::Cell::new(Engine::Sqlite) };
}

/// The engine of the test running on this thread (set by [`run_on`]).
pub fn current_engine() -> Engine {
    ENGINE.with(|e| e.get())
}

/// Runs one test body on `engine`, on a runtime of its own. Without
/// PostgreSQL the PostgreSQL run is skipped or failed by [`skip_or_fail`].
pub fn run_on<F: std::future::Future<Output = ()>>(engine: Engine, test: F) {
    if engine == Engine::Postgres && !require_postgres() {
        return;
    }
    ENGINE.with(|e| e.set(engine));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(test);
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct PostgresDatabase {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl PostgresDatabase {
    /// Creates a fresh, empty database on [`postgres_admin_url`].
    pub async fn create() -> Self {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let admin = postgres_admin_url();
        let name = format!("artifactstore_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base)
            .to_owned();
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a short-lived runtime of its own does it.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A clock that only moves when told to.
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    /// A clock showing `text` (RFC 3339).
    pub fn starting_at(text: &str) -> Arc<Self> {
        Arc::new(Self(Mutex::new(text.parse().expect("an RFC 3339 time"))))
    }

    /// Moves the clock on.
    pub fn advance_seconds(&self, seconds: i64) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.plus_seconds(seconds).expect("a time in range");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Each reading is a microsecond later, like a real clock between
        // two appends.
        let current = *now;
        *now = Timestamp::from_datetime(current.as_datetime() + time::Duration::microseconds(1));
        current
    }
}

/// A body stream of `data` in 7-byte chunks, so chunking is exercised.
pub fn body(data: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    body_in(data, 7)
}

/// A body stream of `data` in `chunk`-byte pieces.
pub fn body_in(
    data: &[u8],
    chunk: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}
