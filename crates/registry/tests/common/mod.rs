//! Test harness: a registry on a fresh SQLite database and object directory
//! in a temporary directory, with a clock the test moves.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use artifactstore_registry::core::{Clock, Timestamp};
use artifactstore_registry::{Config, NewPackage, Registry, RegistryBuilder};
use bytes::Bytes;
use futures::Stream;

/// A clock that only moves when told to.
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn starting_at(text: &str) -> Arc<Self> {
        Arc::new(Self(Mutex::new(text.parse().unwrap())))
    }

    pub fn advance_seconds(&self, seconds: i64) {
        let mut now = self.0.lock().unwrap();
        *now = now.plus_seconds(seconds).unwrap();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let mut now = self.0.lock().unwrap();
        // Each reading is a microsecond later, like a real clock between
        // two appends.
        let current = *now;
        *now = Timestamp::from_datetime(current.as_datetime() + time::Duration::microseconds(1));
        current
    }
}

/// The database engines the suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

thread_local! {
    static ENGINE: std::cell::Cell<Engine> = const { std::cell::Cell::new(Engine::Sqlite) };
}

/// The server the PostgreSQL runs create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("ARTIFACTSTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn postgres_available() -> bool {
    use std::net::ToSocketAddrs;
    let url = postgres_admin_url();
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
        })
}

/// Runs one test body on `engine`. Without PostgreSQL the PostgreSQL run
/// is skipped with a printed reason, except under `CI=true`, where a
/// missing service is a failure.
pub fn run_on<F: std::future::Future<Output = ()>>(engine: Engine, test: F) {
    if engine == Engine::Postgres && !postgres_available() {
        let reason = format!("PostgreSQL is not reachable at {}", postgres_admin_url());
        if artifactstore_registry::core::flag::in_ci() {
            panic!("{reason} (CI=true: a missing service is a failure)");
        }
        // Written to the stream itself: the test harness hides eprintln! of
        // passing tests, and a skip must be seen.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED (postgres): {reason}");
        return;
    }
    ENGINE.with(|e| e.set(engine));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

/// Declares each `async fn name() { … }` as one test per engine:
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! engine_tests {
    ($($(#[$meta:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn test_body() $body
            $(#[$meta])*
            #[test]
            fn sqlite() {
                $crate::common::run_on($crate::common::Engine::Sqlite, test_body());
            }
            $(#[$meta])*
            #[test]
            fn postgres() {
                $crate::common::run_on($crate::common::Engine::Postgres, test_body());
            }
        }
    )*};
}

/// The S3-compatible servers the suite knows, by environment prefix.
pub const S3_SERVERS: [&str; 2] = ["GARAGE", "CEPH"];

/// A backend configuration for S3 server `name` (`GARAGE`, `CEPH`) from
/// `ARTIFACTSTORE_TEST_<NAME>_*`, under a fresh key prefix. `None` (with a
/// printed reason) when the server is not configured; under `CI=true` a
/// missing server is a failure.
pub fn s3_backend(name: &str, id: &str) -> Option<artifactstore_registry::config::BackendConfig> {
    use artifactstore_registry::config::{BackendConfig, BackendType, Secret};
    let var = |field: &str| std::env::var(format!("ARTIFACTSTORE_TEST_{name}_{field}")).ok();
    let Some(endpoint) = var("ENDPOINT") else {
        let reason = format!("ARTIFACTSTORE_TEST_{name}_ENDPOINT is not set (eval \"$(scripts/s3/test-services up)\")");
        if artifactstore_registry::core::flag::in_ci() {
            panic!("{reason}; CI=true: a missing service is a failure");
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED ({name}): {reason}");
        return None;
    };
    Some(BackendConfig {
        id: id.into(),
        kind: BackendType::S3,
        root: None,
        endpoint: Some(endpoint),
        region: var("REGION"),
        bucket: var("BUCKET"),
        path_style: true,
        access_key_id: var("ACCESS_KEY_ID"),
        secret_access_key: var("SECRET_ACCESS_KEY").map(Secret),
        prefix: Some(format!("registry-tests/{}", uuid::Uuid::new_v4())),
        stall_timeout_seconds: None,
    })
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct PostgresDatabase {
    pub name: String,
    pub url: String,
}

impl PostgresDatabase {
    async fn create() -> Self {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let admin = postgres_admin_url();
        let name = format!("artifactstore_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
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
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
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

pub struct TestEnv {
    pub config: Config,
    pub registry: Registry,
    pub clock: Arc<ManualClock>,
    pub engine: Engine,
    pub dir: tempfile::TempDir,
    _postgres: Option<PostgresDatabase>,
}

pub fn config_in(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    }
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with(|builder| builder).await
    }

    pub async fn with_config(edit: impl FnOnce(&mut Config)) -> Self {
        Self::build(edit, |builder| builder).await
    }

    pub async fn with(customise: impl FnOnce(RegistryBuilder) -> RegistryBuilder) -> Self {
        Self::build(|_| {}, customise).await
    }

    async fn build(
        edit: impl FnOnce(&mut Config),
        customise: impl FnOnce(RegistryBuilder) -> RegistryBuilder,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::starting_at("2026-01-01T00:00:00Z");
        let engine = ENGINE.with(|e| e.get());
        let mut config = config_in(dir.path());
        let postgres = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(PostgresDatabase::create().await),
        };
        config.database.url = postgres.as_ref().map(|db| db.url.clone());
        edit(&mut config);
        let builder = Registry::builder(config.clone()).clock(clock.clone());
        let registry = customise(builder).build().await.unwrap();
        Self {
            config,
            registry,
            clock,
            engine,
            dir,
            _postgres: postgres,
        }
    }

    pub async fn package(&self, class: &str) -> uuid::Uuid {
        let record = self
            .registry
            .create_package(new_package("pkg", class), "tester")
            .await
            .unwrap();
        record.id.parse().unwrap()
    }

    pub async fn put(
        &self,
        package: uuid::Uuid,
        path: &str,
        data: &[u8],
    ) -> artifactstore_registry::FileRecord {
        self.registry
            .ingest_file(
                package,
                path,
                "text/plain",
                body(data),
                Default::default(),
                "tester",
            )
            .await
            .unwrap()
    }

    /// Another registry on the same database and objects, as a second
    /// process or replica would open it.
    pub async fn replica(&self) -> Registry {
        Registry::builder(self.config.clone())
            .clock(self.clock.clone())
            .build()
            .await
            .unwrap()
    }

    pub async fn event_count(&self) -> i64 {
        self.registry.head_sequence().await.unwrap()
    }
}

pub fn new_package(name: &str, class: &str) -> NewPackage {
    NewPackage {
        name: name.into(),
        producer: "ci".into(),
        subject: "app".into(),
        retention_class: class.into(),
        metadata: serde_json::json!({"run": 1, "branch": "main"}),
        metadata_schema: None,
    }
}

/// A body stream of `data` in 7-byte chunks, so chunking is exercised.
pub fn body(data: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

pub async fn read_all(stream: artifactstore_registry::ByteStream) -> Vec<u8> {
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut stream = stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// A body stream of `data` in `chunk`-byte pieces.
pub fn body_in(
    data: &[u8],
    chunk: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}
