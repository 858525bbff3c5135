//! Test harness: a registry on a fresh SQLite database and object directory
//! in a temporary directory, with a clock the test moves.

#![allow(dead_code)]

use std::sync::Arc;

// Each test file uses some of these.
use artifactstore_registry::{Config, NewPackage, Registry, RegistryBuilder};
#[allow(unused_imports)]
pub use artifactstore_testkit::{
    body, body_in, current_engine, postgres_admin_url, run_on, skip_or_fail, Engine, ManualClock,
    PostgresDatabase, S3_SERVERS,
};

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

/// A backend configuration for S3 server `name` (`GARAGE`, `CEPH`), under
/// a fresh key prefix; `None` when the server is not configured (skipped,
/// or failed under CI: [`artifactstore_testkit::skip_or_fail`]).
pub fn s3_backend(name: &str, id: &str) -> Option<artifactstore_registry::config::BackendConfig> {
    use artifactstore_registry::config::{BackendConfig, BackendType, Secret};
    let server = artifactstore_testkit::s3_server(name)?;
    Some(BackendConfig {
        id: id.into(),
        kind: BackendType::S3,
        root: None,
        endpoint: Some(server.endpoint),
        region: server.region,
        bucket: server.bucket,
        path_style: true,
        access_key_id: server.access_key_id,
        secret_access_key: server.secret_access_key.map(Secret),
        prefix: Some(format!("registry-{}", server.prefix)),
        stall_timeout_seconds: None,
    })
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

    /// A registry with both a configuration change and a custom builder.
    pub async fn build_with(
        edit: impl FnOnce(&mut Config),
        customise: impl FnOnce(RegistryBuilder) -> RegistryBuilder,
    ) -> Self {
        Self::build(edit, customise).await
    }

    async fn build(
        edit: impl FnOnce(&mut Config),
        customise: impl FnOnce(RegistryBuilder) -> RegistryBuilder,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::starting_at("2026-01-01T00:00:00Z");
        let engine = current_engine();
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

pub async fn read_all(stream: artifactstore_registry::ByteStream) -> Vec<u8> {
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut stream = stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}
