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

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub registry: Registry,
    pub clock: Arc<ManualClock>,
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

    pub async fn with(customise: impl FnOnce(RegistryBuilder) -> RegistryBuilder) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::starting_at("2026-01-01T00:00:00Z");
        let builder = Registry::builder(config_in(dir.path())).clock(clock.clone());
        let registry = customise(builder).build().await.unwrap();
        Self { dir, registry, clock }
    }

    pub async fn package(&self, class: &str) -> uuid::Uuid {
        let record = self
            .registry
            .create_package(new_package("pkg", class), "tester")
            .await
            .unwrap();
        record.id.parse().unwrap()
    }

    pub async fn put(&self, package: uuid::Uuid, path: &str, data: &[u8]) -> artifactstore_registry::FileRecord {
        self.registry
            .ingest_file(package, path, "text/plain", body(data), Default::default(), "tester")
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
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        data.chunks(7).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
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
