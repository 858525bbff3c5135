//! Verification of stored bytes, and failures between the durable object
//! write and the event commit.

mod common;

use std::ops::Range;
use std::sync::Arc;

use artifactstore_registry::core::FileDigests;
use artifactstore_registry::StorageError;
use artifactstore_storage::{Backend, ByteStream, FilesystemBackend, ObjectWriter};
use async_trait::async_trait;
use bytes::Bytes;
use common::{body, TestEnv};

engine_tests! {
    async fn verification_reports_records_and_counts_flipped_and_missing_objects() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let good = env.put(package, "good.txt", b"good bytes").await;
        let flipped = env.put(package, "flipped.txt", b"flipped bytes").await;
        let deleted = env.put(package, "deleted.txt", b"deleted bytes").await;
        let objects = env.dir.path().join("objects");
        let flipped_path = objects.join(&flipped.object_key);
        let mut bytes = std::fs::read(&flipped_path).unwrap();
        bytes[0] ^= 0x01;
        std::fs::write(&flipped_path, bytes).unwrap();
        std::fs::remove_file(objects.join(&deleted.object_key)).unwrap();

        let head = env.event_count().await;
        let report = env.registry.verify_storage(None, "verifier").await.unwrap();
        assert_eq!(report.checked, 3);
        assert_eq!(report.failed, 2);
        let failed: Vec<&str> = report.results.iter().filter(|r| !r.ok).map(|r| r.file_id.as_str()).collect();
        assert!(failed.contains(&flipped.id.as_str()) && failed.contains(&deleted.id.as_str()));
        assert!(report.results.iter().any(|r| r.ok && r.file_id == good.id));

        let events = env.registry.fetch_events(head, 100).await.unwrap();
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.event_type == "v1.storage.location_verified"));
        let health = env.registry.health().await;
        assert_eq!(health.failed_locations, 2);
        assert!(health.ok);
        let flipped_now = env.registry.file_metadata(flipped.id.parse().unwrap()).await.unwrap();
        assert_eq!(flipped_now.storage_status, "failed");
        let good_now = env.registry.file_metadata(good.id.parse().unwrap()).await.unwrap();
        assert_eq!(good_now.storage_status, "verified");
        assert!(env.registry.replay_check().await.unwrap().identical);
        let unknown = env.registry.verify_storage(Some("nope"), "verifier").await.unwrap_err();
        assert_eq!(unknown.code(), "invalid_input");
    }
}

engine_tests! {
    async fn a_failing_event_commit_after_the_durable_write_leaves_no_event_and_no_row() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let head = env.event_count().await;
        // The fault: the database refuses the event insert (as a crash or a lost
        // connection would), after the object was made durable.
        let pool = env.registry.store().pool();
        let (install, remove): (&[&str], &[&str]) = match env.engine {
            common::Engine::Sqlite => (
                &["CREATE TRIGGER refuse_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'injected fault'); END"],
                &["DROP TRIGGER refuse_events"],
            ),
            common::Engine::Postgres => (
                &[
                    "CREATE FUNCTION refuse_events() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$ LANGUAGE plpgsql",
                    "CREATE TRIGGER refuse_events BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_events()",
                ],
                &["DROP TRIGGER refuse_events ON events"],
            ),
        };
        for sql in install {
            sqlx::query(sql).execute(pool).await.unwrap();
        }
        let data = b"bytes written, event lost";
        let err = env
            .registry
            .ingest_file(package, "a.txt", "text/plain", body(data), Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "internal_error");
        for sql in remove {
            sqlx::query(sql).execute(pool).await.unwrap();
        }

        assert_eq!(env.event_count().await, head);
        assert!(env.registry.list_files(package).await.unwrap().is_empty());
        // At most an unreferenced object remains, which a collector may remove.
        let key = FileDigests::of(data).content_address().object_key();
        assert!(env.dir.path().join("objects").join(key).exists());
        assert!(env.registry.replay_check().await.unwrap().identical);
        // And the same file can be ingested once the fault is gone.
        env.put(package, "a.txt", data).await;
    }
}

/// A backend whose commits fail: the bytes never become durable.
struct FailingCommit(FilesystemBackend);

struct FailingWriter(Box<dyn ObjectWriter>);

#[async_trait]
impl ObjectWriter for FailingWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.0.write(chunk).await
    }
    async fn commit(self: Box<Self>, _key: &str) -> Result<(), StorageError> {
        self.0.abort().await?;
        Err(StorageError::Unavailable {
            backend: "local".into(),
            cause: "injected".into(),
        })
    }
    async fn abort(self: Box<Self>) -> Result<(), StorageError> {
        self.0.abort().await
    }
}

#[async_trait]
impl Backend for FailingCommit {
    fn id(&self) -> &str {
        self.0.id()
    }
    async fn begin_write(&self) -> Result<Box<dyn ObjectWriter>, StorageError> {
        Ok(Box::new(FailingWriter(self.0.begin_write().await?)))
    }
    async fn open(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        self.0.open(key, range).await
    }
    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.0.size(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.delete(key).await
    }
    async fn replace_small(&self, key: &str, bytes: bytes::Bytes) -> Result<(), StorageError> {
        self.0.replace_small(key, bytes).await
    }
    async fn probe(&self) -> Result<(), StorageError> {
        self.0.probe().await
    }
    async fn list(&self) -> Result<Vec<artifactstore_storage::ObjectInfo>, StorageError> {
        self.0.list().await
    }
}

engine_tests! {
    async fn a_failing_object_commit_is_a_503_class_error_and_records_nothing() {
        let objects = tempfile::tempdir().unwrap();
        let failing = Arc::new(FailingCommit(FilesystemBackend::open("local", objects.path()).await.unwrap()));
        let env = TestEnv::with(|b| b.backend(failing)).await;
        let package = env.package("standard").await;
        let head = env.event_count().await;
        let err = env
            .registry
            .ingest_file(package, "a.txt", "text/plain", body(b"x"), Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "service_unavailable");
        assert_eq!(env.event_count().await, head);
        assert!(env.registry.list_files(package).await.unwrap().is_empty());
    }
}

engine_tests! {
    async fn an_interrupted_upload_stores_nothing() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let head = env.event_count().await;
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
        ]);
        let err = env
            .registry
            .ingest_file(package, "a.txt", "text/plain", broken, Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "upload_interrupted");
        assert_eq!(env.event_count().await, head);
        let parts: Vec<_> = std::fs::read_dir(env.dir.path().join("objects/.staging"))
            .unwrap()
            .flat_map(|dir| std::fs::read_dir(dir.unwrap().path()).unwrap())
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name.to_string_lossy().ends_with(".part"))
            .collect();
        assert!(parts.is_empty(), "staging files left behind: {parts:?}");
        assert!(!env.dir.path().join("objects/blake3").exists());
    }
}

/// A filesystem backend whose deletes fail while `failing` is set.
struct FailingDelete {
    inner: FilesystemBackend,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Backend for FailingDelete {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn begin_write(&self) -> Result<Box<dyn ObjectWriter>, StorageError> {
        self.inner.begin_write().await
    }
    async fn open(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        self.inner.open(key, range).await
    }
    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.inner.size(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StorageError::Unavailable {
                backend: "local".into(),
                cause: "injected".into(),
            });
        }
        self.inner.delete(key).await
    }
    async fn replace_small(&self, key: &str, bytes: bytes::Bytes) -> Result<(), StorageError> {
        self.inner.replace_small(key, bytes).await
    }
    async fn probe(&self) -> Result<(), StorageError> {
        self.inner.probe().await
    }
    async fn list(&self) -> Result<Vec<artifactstore_storage::ObjectInfo>, StorageError> {
        self.inner.list().await
    }
}

engine_tests! {
    async fn a_deletion_that_fails_keeps_its_claim_and_fences_uploads_until_a_pass_deletes_it() {
        use artifactstore_registry::config::RetentionClassConfig;
        use artifactstore_registry::core::retention::DeletionStrategy;
        let objects = tempfile::tempdir().unwrap();
        let backend = Arc::new(FailingDelete {
            inner: FilesystemBackend::open("local", objects.path()).await.unwrap(),
            failing: std::sync::atomic::AtomicBool::new(true),
        });
        let env = TestEnv::build_with(
            |config| {
                config.retention_classes = vec![RetentionClassConfig {
                    id: "logs".into(),
                    default_duration: Some("1d".into()),
                    deletion_strategy: DeletionStrategy::Delete,
                    purge_after: Some("0s".into()),
                }];
            },
            |builder| builder.backend(backend.clone()),
        )
        .await;
        let package = env.package("logs").await;
        let file = env.put(package, "a.txt", b"doomed bytes").await;
        env.clock.advance_seconds(2 * 86_400);
        let report = env.registry.run_lifecycle(false, "ops").await.unwrap();
        assert_eq!(report.purged.len(), 1);
        assert_eq!(report.objects_deleted, 0);
        assert_eq!(report.backends[0].failures.len(), 1, "{report:?}");
        assert!(objects.path().join(&file.object_key).exists());
        // The claim stays: identical bytes are not recorded meanwhile.
        let other = env.package("logs").await;
        let err = env
            .registry
            .ingest_file(other, "b.txt", "text/plain", body(b"doomed bytes"), Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "object_being_collected");
        // Once deletes work again, the next pass finishes the claim.
        backend.failing.store(false, std::sync::atomic::Ordering::SeqCst);
        let report = env.registry.run_lifecycle(false, "ops").await.unwrap();
        assert_eq!(report.backends[0].claims_finished, 1, "{report:?}");
        assert!(!objects.path().join(&file.object_key).exists());
        env.put(other, "b.txt", b"doomed bytes").await;
        assert!(objects.path().join(&file.object_key).exists());
    }
}
