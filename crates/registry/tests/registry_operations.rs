//! The registry's operations and their refusals (issue: done-means 1, 2, 10).

mod common;

use std::collections::BTreeSet;

use artifactstore_registry::core::{FileDigests, Manifest};
use artifactstore_registry::{ManifestFormat, RegistryError};
use common::{body, new_package, read_all, TestEnv};
use futures::StreamExt;

engine_tests! {
    async fn unknown_retention_class_is_refused_and_writes_nothing() {
        let env = TestEnv::new().await;
        let err = env
            .registry
            .create_package(new_package("p", "does-not-exist"), "tester")
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::UnknownRetentionClass(ref c) if c == "does-not-exist"));
        assert_eq!(err.code(), "unknown_retention_class");
        assert_eq!(env.event_count().await, 0);
    }
}

engine_tests! {
    async fn create_writes_events_and_the_package_row() {
        let env = TestEnv::new().await;
        let record = env
            .registry
            .create_package(new_package("nightly", "standard"), "tester")
            .await
            .unwrap();
        assert_eq!(record.status, "created");
        assert_eq!(record.name, "nightly");
        assert_eq!(record.metadata, serde_json::json!({"branch": "main", "run": 1}));
        let events = env.registry.fetch_events(0, 10).await.unwrap();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["v1.package.created", "v1.retention.default_applied"]);
        assert!(events.iter().all(|e| e.subject_id == record.id && e.actor == "tester"));
        let fetched = env.registry.get_package(record.id.parse().unwrap()).await.unwrap();
        assert_eq!(fetched, record);
        assert_eq!(record.last_event_sequence, 2);
    }
}

engine_tests! {
    async fn ingest_records_file_and_location_with_content_address() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let data = b"hello world".repeat(100);
        let file = env.put(package, "x/y.txt", &data).await;
        let digests = FileDigests::of(&data);
        assert_eq!(file.size_bytes, data.len() as u64);
        assert_eq!(file.relative_path, "x/y.txt");
        assert_eq!(file.backend_id, "local");
        assert_eq!(file.content_address, format!("blake3:{}", digests.blake3));
        assert_eq!(file.sha256, digests.sha256.to_hex());
        assert_eq!(file.storage_status, "recorded");
        let object = env.dir.path().join("objects").join(&file.object_key);
        assert_eq!(std::fs::read(object).unwrap(), data);
        let again = env.registry.file_metadata(file.id.parse().unwrap()).await.unwrap();
        assert_eq!(again, file);
    }
}

engine_tests! {
    async fn identical_bytes_are_stored_once_per_backend() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let a = env.put(package, "a.txt", b"same bytes").await;
        let b = env.put(package, "b.txt", b"same bytes").await;
        assert_ne!(a.id, b.id);
        assert_eq!(a.object_key, b.object_key);
        let objects = walk(&env.dir.path().join("objects/blake3"));
        assert_eq!(objects.len(), 1);
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

engine_tests! {
    async fn refusals_have_their_codes_and_change_nothing() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        env.put(package, "a.txt", b"one").await;
        let head = env.event_count().await;

        let dup = env
            .registry
            .ingest_file(package, "a.txt", "text/plain", body(b"two"), Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(dup.code(), "duplicate_relative_path");

        let missing = env
            .registry
            .ingest_file(uuid::Uuid::new_v4(), "a.txt", "text/plain", body(b"x"), Default::default(), "t")
            .await
            .unwrap_err();
        assert!(matches!(missing, RegistryError::PackageNotFound(_)));

        let bad_path = env
            .registry
            .ingest_file(package, "a/../b", "text/plain", body(b"x"), Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(bad_path.code(), "invalid_path");
        assert_eq!(env.event_count().await, head);

        env.registry.finalize_package(package, "t").await.unwrap();
        let twice = env.registry.finalize_package(package, "t").await.unwrap_err();
        assert_eq!(twice.code(), "illegal_package_state");
        let late = env
            .registry
            .ingest_file(package, "late.txt", "text/plain", body(b"x"), Default::default(), "t")
            .await
            .unwrap_err();
        assert!(matches!(late, RegistryError::IllegalPackageState { .. }));
        let unknown = env.registry.finalize_package(uuid::Uuid::new_v4(), "t").await.unwrap_err();
        assert_eq!(unknown.code(), "package_not_found");
    }
}

engine_tests! {
    async fn expected_digest_mismatch_stores_and_records_nothing() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let head = env.event_count().await;
        let wrong = FileDigests::of(b"other bytes");
        for expected in [
            artifactstore_registry::ExpectedDigests { sha256: Some(wrong.sha256), ..Default::default() },
            artifactstore_registry::ExpectedDigests { blake3: Some(wrong.blake3), ..Default::default() },
        ] {
            let err = env
                .registry
                .ingest_file(package, "a.txt", "text/plain", body(b"payload"), expected, "t")
                .await
                .unwrap_err();
            assert_eq!(err.code(), "digest_mismatch");
        }
        assert_eq!(env.event_count().await, head);
        assert!(!env.dir.path().join("objects/blake3").exists() || walk(&env.dir.path().join("objects/blake3")).is_empty());
        let right = FileDigests::of(b"payload");
        let ok = env
            .registry
            .ingest_file(
                package,
                "a.txt",
                "text/plain",
                body(b"payload"),
                artifactstore_registry::ExpectedDigests { sha256: Some(right.sha256), blake3: Some(right.blake3), ..Default::default() },
                "t",
            )
            .await
            .unwrap();
        assert_eq!(ok.size_bytes, 7);
    }
}

engine_tests! {
    async fn end_to_end_create_ingest_finalize_read_tail_replay() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let payloads: Vec<Vec<u8>> = (0..3).map(|i| format!("file content {i}").repeat(50).into_bytes()).collect();
        let mut ids = Vec::new();
        for (i, data) in payloads.iter().enumerate() {
            ids.push(env.put(package, &format!("reports/{i}.txt"), data).await.id);
        }
        let finalized = env.registry.finalize_package(package, "tester").await.unwrap();
        assert!(finalized.manifest_digest.starts_with("blake3:"));

        let cbor = env.registry.manifest_bytes(package, ManifestFormat::Cbor).await.unwrap();
        assert_eq!(format!("{}", Manifest::content_address(&cbor)), finalized.manifest_digest);
        let manifest = Manifest::decode(&cbor).unwrap();
        assert_eq!(manifest.manifest_version, 1);
        assert_eq!(manifest.package.id, package.to_string());
        let paths: Vec<&str> = manifest.files.iter().map(|f| f.relative_path.as_str()).collect();
        assert_eq!(paths, ["reports/0.txt", "reports/1.txt", "reports/2.txt"]);
        assert_eq!(manifest.storage_receipts.len(), 3);
        let json = env.registry.manifest_bytes(package, ManifestFormat::Json).await.unwrap();
        assert!(json.starts_with(b"{\"files\":["));
        assert!(std::str::from_utf8(&json).unwrap().contains("\"manifest_version\":1"));

        let record = env.registry.get_package(package).await.unwrap();
        assert_eq!(record.status, "finalized");
        assert_eq!(record.manifest_digest.as_deref(), Some(finalized.manifest_digest.as_str()));
        assert_eq!(record.finalized_at, Some(manifest.package.finalized_at));

        for (id, expected) in ids.iter().zip(&payloads) {
            let file = env.registry.file_metadata(id.parse().unwrap()).await.unwrap();
            let bytes = read_all(env.registry.open_file(&file, None).await.unwrap()).await;
            assert_eq!(&bytes, expected);
            let part = read_all(env.registry.open_file(&file, Some(5..10)).await.unwrap()).await;
            assert_eq!(part, expected[5..10]);
        }

        let tailed: Vec<_> = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            env.registry.tail_events(0).take(6).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
        let types: Vec<String> = tailed.into_iter().map(|e| e.unwrap().event_type).collect();
        assert_eq!(
            types,
            [
                "v1.package.created",
                "v1.retention.default_applied",
                "v1.file.ingested",
                "v1.file.ingested",
                "v1.file.ingested",
                "v1.package.finalized"
            ]
        );
        let finalize_event = env.registry.fetch_events(5, 1).await.unwrap().remove(0);
        assert_eq!(finalize_event.payload, cbor);
        assert_eq!(format!("blake3:{}", finalize_event.payload_digest), finalized.manifest_digest);

        let before = env.registry.store().snapshot_views().await.unwrap();
        let report = env.registry.replay().await.unwrap();
        assert_eq!(report.events, 6);
        let after = env.registry.store().snapshot_views().await.unwrap();
        assert_eq!(before, after);
        assert!(env.registry.replay_check().await.unwrap().identical);
    }
}

engine_tests! {
    async fn concurrent_ingests_of_one_path_exactly_one_wins() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let registry = env.registry.clone();
            tasks.push(tokio::spawn(async move {
                let data = vec![i; 10_000];
                registry
                    .ingest_file(package, "race.bin", "application/octet-stream", body(&data), Default::default(), "t")
                    .await
            }));
        }
        let mut wins = 0;
        let mut codes = BTreeSet::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => wins += 1,
                Err(e) => {
                    codes.insert(e.code());
                }
            }
        }
        assert_eq!(wins, 1);
        assert_eq!(codes, BTreeSet::from(["duplicate_relative_path"]));
        assert_eq!(env.registry.list_files(package).await.unwrap().len(), 1);
    }
}

engine_tests! {
    async fn list_packages_filters_and_pages() {
        let env = TestEnv::new().await;
        for i in 0..5 {
            let mut new = new_package(&format!("p{i}"), "standard");
            new.producer = if i % 2 == 0 { "even".into() } else { "odd".into() };
            new.metadata = serde_json::json!({"index": i, "flag": i == 3});
            env.registry.create_package(new, "t").await.unwrap();
        }
        let filter = |producer: Option<&str>, metadata: Vec<(&str, &str)>, after, limit| artifactstore_registry::PackageFilter {
            producer: producer.map(Into::into),
            metadata: metadata.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            after,
            limit,
            ..Default::default()
        };
        let evens = env.registry.list_packages(filter(Some("even"), vec![], None, 100)).await.unwrap();
        let names: Vec<_> = evens.items.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["p0", "p2", "p4"]);
        assert_eq!(evens.next, None);
        let named = env
            .registry
            .list_packages(artifactstore_registry::PackageFilter { name: Some("p2".into()), limit: 100, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(named.items.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["p2"]);
        let flagged = env.registry.list_packages(filter(None, vec![("flag", "true")], None, 100)).await.unwrap();
        assert_eq!(flagged.items.len(), 1);
        assert_eq!(flagged.items[0].name, "p3");
        let page1 = env.registry.list_packages(filter(None, vec![], None, 2)).await.unwrap();
        assert_eq!(page1.items.len(), 2);
        let page2 = env.registry.list_packages(filter(None, vec![], page1.next, 2)).await.unwrap();
        let page3 = env.registry.list_packages(filter(None, vec![], page2.next, 2)).await.unwrap();
        let all: Vec<_> = [page1.items, page2.items, page3.items].concat().into_iter().map(|p| p.name).collect();
        assert_eq!(all, ["p0", "p1", "p2", "p3", "p4"]);
        assert_eq!(page3.next, None);
    }
}

engine_tests! {
    async fn metadata_must_be_an_object_without_decimals() {
        let env = TestEnv::new().await;
        let mut new = new_package("p", "standard");
        new.metadata = serde_json::json!({"coverage": 87.5});
        let err = env.registry.create_package(new.clone(), "t").await.unwrap_err();
        assert_eq!(err.code(), "metadata_invalid");
        new.metadata = serde_json::json!(["not", "an", "object"]);
        assert_eq!(env.registry.create_package(new, "t").await.unwrap_err().code(), "metadata_invalid");
        assert_eq!(env.event_count().await, 0);
    }
}

engine_tests! {
    async fn large_metadata_integers_stay_exact_through_views_and_manifest() {
        let env = TestEnv::new().await;
        let mut new = new_package("big", "standard");
        new.metadata = serde_json::json!({"build": 9007199254740993u64, "max": u64::MAX, "min": i64::MIN});
        let created = env.registry.create_package(new.clone(), "t").await.unwrap();
        assert_eq!(created.metadata, new.metadata);
        let id: uuid::Uuid = created.id.parse().unwrap();
        env.put(id, "a.txt", b"a").await;
        env.registry.finalize_package(id, "t").await.unwrap();
        let cbor = env.registry.manifest_bytes(id, ManifestFormat::Cbor).await.unwrap();
        let manifest = Manifest::decode(&cbor).unwrap();
        let metadata = artifactstore_registry::core::cbor::to_json(&manifest.package.metadata).unwrap();
        assert_eq!(metadata, new.metadata);
        let filtered = env
            .registry
            .list_packages(artifactstore_registry::PackageFilter {
                metadata: vec![("build".into(), "9007199254740993".into())],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(filtered.items.len(), 1);
        assert!(env.registry.replay_check().await.unwrap().identical);
    }
}

engine_tests! {
    async fn nul_characters_are_refused_before_the_database_sees_them() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let head = env.event_count().await;
        let mut new = new_package("p", "standard");
        new.metadata = serde_json::json!({"k": "a\u{0}b"});
        assert_eq!(env.registry.create_package(new.clone(), "t").await.unwrap_err().code(), "metadata_invalid");
        new.metadata = serde_json::json!({"k\u{0}": "v"});
        assert_eq!(env.registry.create_package(new, "t").await.unwrap_err().code(), "metadata_invalid");
        let err = env.registry.apply_hold(package, "a\u{0}b", "t").await.unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        let filter = artifactstore_registry::PackageFilter {
            producer: Some("a\u{0}".into()),
            ..Default::default()
        };
        assert_eq!(env.registry.list_packages(filter).await.unwrap_err().code(), "invalid_input");
        let too_many = artifactstore_registry::PackageFilter {
            metadata: (0..17).map(|i| (format!("k{i}"), "v".into())).collect(),
            ..Default::default()
        };
        assert_eq!(env.registry.list_packages(too_many).await.unwrap_err().code(), "invalid_input");
        assert_eq!(env.registry.file_by_path(package, "a\u{0}b").await.unwrap_err().code(), "invalid_path");
        assert_eq!(env.registry.get_schema("a\u{0}").await.unwrap_err().code(), "schema_not_found");
        assert_eq!(env.event_count().await, head);
    }
}

engine_tests! {
    async fn limits_refuse_oversized_files_metadata_and_packages_before_recording_anything() {
        let env = TestEnv::with_config(|config| {
            config.limits.max_file_bytes = 10;
            config.limits.max_metadata_bytes = 40;
            config.limits.max_files_per_package = 2;
        })
        .await;
        let package = env.package("standard").await;
        let head = env.event_count().await;
        let err = env
            .registry
            .ingest_file(package, "big.bin", "application/octet-stream", body(&[0u8; 11]), Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
        assert_eq!(env.event_count().await, head);
        assert!(!env.dir.path().join("objects/blake3").exists());

        let mut new = new_package("p", "standard");
        new.metadata = serde_json::json!({"note": "x".repeat(40)});
        assert_eq!(env.registry.create_package(new, "t").await.unwrap_err().code(), "payload_too_large");

        env.put(package, "a", b"a").await;
        env.put(package, "b", b"b").await;
        let head = env.event_count().await;
        let err = env
            .registry
            .ingest_file(package, "c", "text/plain", body(b"c"), Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "too_many_files");
        assert_eq!(env.event_count().await, head);
    }
}

engine_tests! {
    async fn an_upgraded_database_counts_the_files_its_packages_already_hold() {
        // The file limit reads each package's count from the view; a
        // database from before that column must get its counts on upgrade.
        let env = TestEnv::with_config(|config| config.limits.max_files_per_package = 3).await;
        let full = env.package("standard").await;
        let empty = env.package("standard").await;
        env.put(full, "a", b"a").await;
        env.put(full, "b", b"b").await;
        let pool = env.registry.store().pool();
        sqlx::query("ALTER TABLE packages DROP COLUMN file_count").execute(pool).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE description = 'package file count'")
            .execute(pool)
            .await
            .unwrap();

        let upgraded = env.replica().await;
        let counts: Vec<(String, i64)> = sqlx::query_as("SELECT id, file_count FROM packages ORDER BY file_count")
            .fetch_all(upgraded.store().pool())
            .await
            .unwrap();
        assert_eq!(counts, vec![(empty.to_string(), 0), (full.to_string(), 2)]);
        upgraded.ingest_file(full, "c", "text/plain", body(b"c"), Default::default(), "t").await.unwrap();
        let err = upgraded
            .ingest_file(full, "d", "text/plain", body(b"d"), Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "too_many_files");
        assert!(upgraded.replay_check().await.unwrap().identical);
    }
}

engine_tests! {
    async fn an_upload_answers_with_the_row_the_views_hold() {
        // Uploads answer from the recorded event instead of reading their
        // row back: the two must agree field for field.
        let env = TestEnv::new().await;
        let id = env.package("standard").await;
        env.clock.advance_seconds(7);
        let answered = env.put(id, "dir/a.txt", b"alpha").await;
        let stored = env.registry.file_by_path(id, "dir/a.txt").await.unwrap();
        assert_eq!(answered, stored);
        assert_eq!(answered.storage_status, "recorded");
        assert_eq!(answered.size_bytes, 5);
        let listed = env.registry.list_files(id).await.unwrap();
        assert_eq!(listed, vec![answered]);
    }
}

engine_tests! {
    async fn concurrent_uploads_into_several_packages_are_each_recorded_once() {
        // Enough uploads at once that the group commit records them in
        // groups, with duplicates of one path among them.
        let env = TestEnv::new().await;
        let packages = [env.package("standard").await, env.package("standard").await, env.package("standard").await];
        let mut tasks = Vec::new();
        for (p, package) in packages.iter().copied().enumerate() {
            for i in 0..8u8 {
                let registry = env.registry.clone();
                tasks.push(tokio::spawn(async move {
                    let data = vec![i; 100 + p];
                    registry
                        .ingest_file(package, &format!("f{i}.bin"), "application/octet-stream", body(&data), Default::default(), "t")
                        .await
                }));
            }
        }
        for i in 0..8u8 {
            let registry = env.registry.clone();
            let package = packages[0];
            tasks.push(tokio::spawn(async move {
                registry
                    .ingest_file(package, "same.bin", "application/octet-stream", body(&[i; 10]), Default::default(), "t")
                    .await
            }));
        }
        let mut answered = Vec::new();
        let mut refused = BTreeSet::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(record) => answered.push(record),
                Err(e) => {
                    refused.insert(e.code());
                }
            }
        }
        assert_eq!(answered.len(), 3 * 8 + 1);
        assert_eq!(refused, BTreeSet::from(["duplicate_relative_path"]));
        let mut stored = Vec::new();
        for package in packages {
            stored.extend(env.registry.list_files(package).await.unwrap());
        }
        answered.sort_by(|a, b| a.id.cmp(&b.id));
        stored.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(answered, stored, "each answer is its stored row");
        assert_eq!(env.event_count().await, 3 * 2 + 3 * 8 + 1);
        assert!(env.registry.verify_log().await.unwrap().is_intact());
        assert!(env.registry.replay_check().await.unwrap().identical);
    }
}

engine_tests! {
    async fn uploads_checked_together_get_their_own_answers_and_refused_ones_store_nothing() {
        // Enough uploads at once that the checks before their bytes flow
        // are read in batches (file_checks.rs): each refusal among accepted
        // files, every file's bytes distinct so that a refused one stored
        // would show as an object.
        let env = TestEnv::new().await;
        let open = env.package("standard").await;
        let done = env.package("standard").await;
        for package in [open, done] {
            env.registry
                .ingest_file(package, "a.txt", "text/plain", body(b"first"), Default::default(), "t")
                .await
                .unwrap();
        }
        env.registry.finalize_package(done, "t").await.unwrap();
        let objects_before = walk(&env.dir.path().join("objects/blake3")).len();
        let unknown = uuid::Uuid::new_v4();
        let mut cases = Vec::new();
        for round in 0..6 {
            cases.push((open, format!("ok-{round}.bin"), None));
            cases.push((done, format!("late-{round}.bin"), Some("illegal_package_state")));
            cases.push((unknown, format!("x-{round}.bin"), Some("package_not_found")));
            cases.push((open, "a.txt".to_owned(), Some("duplicate_relative_path")));
            cases.push((open, "A.TXT".to_owned(), Some("path_conflict")));
            cases.push((open, format!("a.txt/{round}"), Some("path_conflict")));
        }
        let mut tasks = Vec::new();
        for (i, (package, path, _)) in cases.iter().cloned().enumerate() {
            let registry = env.registry.clone();
            tasks.push(tokio::spawn(async move {
                let data = format!("case {i} at {path}").into_bytes();
                registry
                    .ingest_file(package, &path, "application/octet-stream", body(&data), Default::default(), "t")
                    .await
            }));
        }
        for ((_, path, refusal), task) in cases.iter().zip(tasks) {
            let answer = task.await.unwrap();
            match refusal {
                None => assert_eq!(answer.unwrap().relative_path, *path),
                Some(code) => assert_eq!(answer.unwrap_err().code(), *code, "{path}"),
            }
        }
        let objects_after = walk(&env.dir.path().join("objects/blake3")).len();
        assert_eq!(objects_after, objects_before + 6, "only the accepted files stored bytes");
        assert_eq!(env.registry.list_files(open).await.unwrap().len(), 1 + 6);
    }

    async fn checks_of_many_deep_paths_at_once_answer_each_as_alone() {
        // Deep paths make the conflict probes of one batch of checks take
        // several queries (the store splits them at 8,000 binds: 5 plus 2
        // per folder each). Each path's answer must not depend on which
        // query it fell in.
        use artifactstore_registry::core::path::collision_key;
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        let deep_file = format!("{}f.txt", "d/".repeat(400));
        env.registry
            .ingest_file(package, &deep_file, "text/plain", body(b"deep"), Default::default(), "t")
            .await
            .unwrap();
        let id = package.to_string();
        let mut paths = Vec::new();
        for i in 0..24 {
            paths.push(match i % 3 {
                0 => (deep_file.clone(), Some(deep_file.clone())),
                1 => (format!("{deep_file}/under-{i}"), Some(deep_file.clone())),
                _ => (format!("{}free-{i}.bin", "d/".repeat(450)), None),
            });
        }
        let binds: usize = paths
            .iter()
            .map(|(path, _)| 5 + 2 * path.matches('/').count())
            .sum();
        assert!(binds > 2 * 8_000, "only {binds} binds: one query would do");
        let keys: Vec<String> = paths.iter().map(|(path, _)| collision_key(path)).collect();
        let wanted: Vec<(&str, &str, &str)> = paths
            .iter()
            .zip(&keys)
            .map(|((path, _), key)| (id.as_str(), path.as_str(), key.as_str()))
            .collect();
        let store = env.registry.store();
        let together = store.new_file_slots(&wanted).await.unwrap();
        assert_eq!(together.len(), wanted.len());
        for ((one, (path, conflict)), answer) in wanted.iter().zip(&paths).zip(&together) {
            let (slot, found) = answer.clone().expect("the package exists");
            assert_eq!(&found, conflict, "{path}");
            assert_eq!(slot.path_taken, *path == deep_file, "{path}");
            let alone = store.new_file_slots(std::slice::from_ref(one)).await.unwrap();
            assert_eq!(alone[0].as_ref(), Some(&(slot, found)), "{path}");
        }
    }

    async fn checks_of_every_batch_size_find_each_answer_and_nothing_from_padding() {
        // The store pads each batch's VALUES lists to a power of two so its
        // SQL texts stay few; sizes 1 to 20 cross several paddings. Each
        // item's answer must be its own, whatever its position and depth,
        // and no padding row may answer for an item.
        use artifactstore_registry::core::path::collision_key;
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        for path in ["dir/a.txt", "top.txt"] {
            env.registry
                .ingest_file(package, path, "text/plain", body(path.as_bytes()), Default::default(), "t")
                .await
                .unwrap();
        }
        let id = package.to_string();
        let unknown = uuid::Uuid::new_v4().to_string();
        // (package, path, the package exists, path taken, conflict)
        let cases: Vec<(&str, String, bool, bool, Option<&str>)> = vec![
            (&id, "dir/a.txt".into(), true, true, Some("dir/a.txt")),
            (&id, "DIR/A.TXT".into(), true, false, Some("dir/a.txt")),
            (&id, "dir/a.txt/under".into(), true, false, Some("dir/a.txt")),
            (&id, "dir".into(), true, false, Some("dir/a.txt")),
            (&id, "new/deep/er/f.bin".into(), true, false, None),
            (&unknown, "dir/a.txt".into(), false, false, None),
            (&id, "top.txt/sub/z".into(), true, false, Some("top.txt")),
            (&id, "free.bin".into(), true, false, None),
        ];
        let store = env.registry.store();
        for size in 1..=20 {
            let chosen: Vec<_> = (0..size).map(|i| &cases[(i * 3 + size) % cases.len()]).collect();
            let keys: Vec<String> = chosen.iter().map(|case| collision_key(&case.1)).collect();
            let wanted: Vec<(&str, &str, &str)> = chosen
                .iter()
                .zip(&keys)
                .map(|(case, key)| (case.0, case.1.as_str(), key.as_str()))
                .collect();
            let answers = store.new_file_slots(&wanted).await.unwrap();
            assert_eq!(answers.len(), size);
            for ((package_id, path, exists, taken, conflict), answer) in chosen.iter().zip(&answers) {
                let context = format!("batch of {size}: {path} in {package_id}");
                match answer {
                    None => assert!(!exists, "{context}: no slot"),
                    Some((slot, found)) => {
                        assert!(exists, "{context}: a slot for an unknown package");
                        assert_eq!(slot.path_taken, *taken, "{context}");
                        assert_eq!(found.as_deref(), *conflict, "{context}");
                    }
                }
            }
        }
    }
}

engine_tests! {
    async fn quotes_backslashes_and_dollars_in_values_are_stored_verbatim() {
        // PostgreSQL receives a batch's values written into its SQL as
        // literals; text that looks like quoting or placeholders must come
        // back exactly as sent.
        let env = TestEnv::new().await;
        let tricky = r#"it's \'a' \\x00ff "$1" E'--' ; DROP TABLE packages; ü"#;
        let mut wanted = new_package(tricky, "standard");
        wanted.producer = "o'brien\\ci".into();
        wanted.metadata = serde_json::json!({ "note": tricky, "it's": "$2 \\", "n": -7 });
        let created = env.registry.create_package(wanted, "actor'\\").await.unwrap();
        assert_eq!(created.name, tricky);
        assert_eq!(created.producer, "o'brien\\ci");
        assert_eq!(created.created_by, "actor'\\");
        let package = created.id.parse().unwrap();
        let file = env.put(package, "o'brien/$1 -- E'x'.txt", b"bytes").await;
        assert_eq!(file.relative_path, "o'brien/$1 -- E'x'.txt");

        // The upload moved only the package's last event.
        let stored = env.registry.get_package(package).await.unwrap();
        let mut expected = created.clone();
        expected.last_event_sequence = stored.last_event_sequence;
        expected.file_count = 1;
        expected.total_bytes = 5;
        assert_eq!(stored, expected);
        assert_eq!(env.registry.file_metadata(file.id.parse().unwrap()).await.unwrap(), file);
        let page = env
            .registry
            .list_packages(artifactstore_registry::PackageFilter {
                producer: Some("o'brien\\ci".into()),
                metadata: vec![("note".into(), tricky.into()), ("it's".into(), "$2 \\".into())],
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items, vec![stored]);
        assert!(env.registry.replay_check().await.unwrap().identical);
    }
}

engine_tests! {
    async fn a_package_cannot_hold_a_file_and_a_folder_of_one_name() {
        let env = TestEnv::new().await;
        let id = env.package("standard").await;
        env.put(id, "a", b"file").await;
        env.put(id, "dir/x.txt", b"x").await;
        let refused = |path: &'static str| {
            let registry = env.registry.clone();
            async move {
                registry
                    .ingest_file(id, path, "text/plain", body(b"y"), Default::default(), "t")
                    .await
                    .unwrap_err()
            }
        };
        // `a` is a file: nothing may go under it, at any depth.
        for path in ["a/b", "a/b/c", "A/b"] {
            let err = refused(path).await;
            assert_eq!(err.code(), "path_conflict", "{path}: {err}");
            assert!(err.to_string().contains("\"a\""), "{err}");
        }
        // `dir` is a folder: it may not become a file.
        for path in ["dir", "DIR"] {
            let err = refused(path).await;
            assert_eq!(err.code(), "path_conflict", "{path}: {err}");
            assert!(err.to_string().contains("dir/x.txt"), "{err}");
        }
        // Neighbours whose names only start alike are fine.
        env.put(id, "ab", b"ab").await;
        env.put(id, "a.txt", b"a.txt").await;
        env.put(id, "dir0", b"d").await;
        env.put(id, "dir.d/y", b"y").await;
        env.put(id, "dir/z.txt", b"z").await;
        let files = env.registry.list_files(id).await.unwrap();
        assert_eq!(files.len(), 7);
        // The listing (the web UI's) shows the same files in the same
        // order: by the bytes of their collision key (here the path), so
        // `dir.d/y` < `dir/x.txt` < `dir0` on every engine, whatever its
        // collation.
        let listed = env.registry.file_listing(id, None, 100).await.unwrap();
        let expected: Vec<_> = files
            .iter()
            .map(|f| (f.id.clone(), f.relative_path.clone(), f.media_type.clone(), f.size_bytes, f.sha256.clone(), f.blake3.clone()))
            .collect();
        let got: Vec<_> = listed
            .into_iter()
            .map(|f| (f.id, f.relative_path, f.media_type, f.size_bytes, f.sha256, f.blake3))
            .collect();
        assert_eq!(got, expected);
        let paths: Vec<&str> = got.iter().map(|f| f.1.as_str()).collect();
        let dot = paths.iter().position(|p| *p == "dir.d/y").unwrap();
        let slash = paths.iter().position(|p| *p == "dir/x.txt").unwrap();
        let zero = paths.iter().position(|p| *p == "dir0").unwrap();
        assert!(dot < slash && slash < zero, "{paths:?}");
        let unknown = uuid::Uuid::now_v7();
        assert_eq!(
            env.registry.file_listing(unknown, None, 100).await.unwrap_err().code(),
            "package_not_found"
        );
        assert!(env.registry.replay_check().await.unwrap().identical);
    }

    async fn a_listing_pages_by_collision_key_and_each_page_starts_after_the_last() {
        let env = TestEnv::new().await;
        let id = env.package("standard").await;
        let other = env.package("standard").await;
        env.put(other, "b.txt", b"not this package's").await;
        // In key order (NFC, lowercased, bytewise): `a.txt` < `B.txt` <
        // `c/D.txt` < `c/e.txt` < `f.txt` < `É.txt` (é is two bytes, the
        // first after every ASCII letter).
        let paths = ["f.txt", "c/e.txt", "B.txt", "\u{c9}.txt", "a.txt", "c/D.txt"];
        for path in paths {
            env.put(id, path, path.as_bytes()).await;
        }
        let expected = ["a.txt", "B.txt", "c/D.txt", "c/e.txt", "f.txt", "\u{c9}.txt"];
        let names = |files: &[artifactstore_registry::FileListing]| -> Vec<String> {
            files.iter().map(|f| f.relative_path.clone()).collect()
        };
        // Pages of 1, 2, 4 and 6 walked from the last path of each: every
        // file once, in order, nothing of the other package.
        for limit in [1u32, 2, 4, 6] {
            let mut walked = Vec::new();
            let mut after: Option<String> = None;
            loop {
                assert!(walked.len() <= expected.len(), "limit {limit}: {walked:?}");
                let page = env.registry.file_listing(id, after.as_deref(), limit).await.unwrap();
                assert!(page.len() <= limit as usize, "limit {limit}: {page:?}");
                if page.is_empty() {
                    break;
                }
                after = page.last().map(|f| f.relative_path.clone());
                walked.extend(names(&page));
            }
            assert_eq!(walked, expected, "limit {limit}");
        }
        // A cursor is compared by its key: another case or composition of
        // a path, or a path no file has, starts where that path would be.
        for (after, first) in [
            ("b.TXT", "c/D.txt"),
            ("E\u{301}", "\u{c9}.txt"),
            ("c", "c/D.txt"),
            ("c/d.txt", "c/e.txt"),
            ("\u{ff}", ""),
            ("", "a.txt"),
        ] {
            let after = (!after.is_empty()).then_some(after);
            let page = env.registry.file_listing(id, after, 1).await.unwrap();
            assert_eq!(names(&page).concat(), first, "after {after:?}");
        }
        let unknown = uuid::Uuid::now_v7();
        assert_eq!(
            env.registry.file_listing(unknown, Some("a"), 1).await.unwrap_err().code(),
            "package_not_found"
        );

        // Packages recorded before the collision rules may hold two files
        // of one key, and a key stored by another version of the Unicode
        // tables may differ from the one computed now. `a.txt` is given
        // `B.txt`'s key (the tie goes by path bytes: `B.txt` first), and
        // `f.txt` a key between `c/D.txt`'s and `c/e.txt`'s. Pages of one,
        // each after the last path, still list every file once.
        let pool = env.registry.store().pool();
        for (key, path) in [("b.txt", "a.txt"), ("c/da", "f.txt")] {
            sqlx::query("UPDATE files SET path_key = $1 WHERE package_id = $2 AND relative_path = $3")
                .bind(key)
                .bind(id.to_string())
                .bind(path)
                .execute(pool)
                .await
                .unwrap();
        }
        let mut walked = Vec::new();
        let mut after: Option<String> = None;
        while walked.len() <= expected.len() {
            let page = env.registry.file_listing(id, after.as_deref(), 1).await.unwrap();
            let Some(file) = page.first() else { break };
            after = Some(file.relative_path.clone());
            walked.push(file.relative_path.clone());
        }
        assert_eq!(walked, ["B.txt", "a.txt", "c/D.txt", "f.txt", "c/e.txt", "\u{c9}.txt"]);
    }

    async fn names_that_one_filesystem_would_merge_are_refused() {
        let env = TestEnv::new().await;
        let id = env.package("standard").await;
        env.put(id, "caf\u{e9}.txt", b"nfc").await;
        env.put(id, "README.md", b"readme").await;
        for (path, existing) in [
            ("cafe\u{301}.txt", "caf\u{e9}.txt"),
            ("CAF\u{c9}.TXT", "caf\u{e9}.txt"),
            ("readme.md", "README.md"),
        ] {
            let err = env
                .registry
                .ingest_file(id, path, "text/plain", body(b"y"), Default::default(), "t")
                .await
                .unwrap_err();
            assert_eq!(err.code(), "path_conflict", "{path:?}");
            assert!(err.to_string().contains(existing), "{err}");
        }
        // Invisible and bidi characters are refused as paths.
        for path in ["read\u{200b}me.md", "report\u{202e}fdp.exe"] {
            let err = env
                .registry
                .ingest_file(id, path, "text/plain", body(b"y"), Default::default(), "t")
                .await
                .unwrap_err();
            assert_eq!(err.code(), "invalid_path", "{path:?}");
        }
        // The same name in another package is fine.
        let other = env.package("standard").await;
        env.put(other, "readme.md", b"other").await;
    }

    async fn conflicting_uploads_at_once_are_refused_under_the_lock() {
        // Enough uploads at once that the group commit sees several in one
        // group: of each conflicting family exactly one is recorded.
        let env = TestEnv::new().await;
        let id = env.package("standard").await;
        let families: Vec<Vec<String>> = (0..8)
            .map(|i| vec![format!("f{i}"), format!("f{i}/inner"), format!("F{i}")])
            .collect();
        let mut tasks = Vec::new();
        for family in &families {
            for path in family {
                let registry = env.registry.clone();
                let path = path.clone();
                tasks.push(tokio::spawn(async move {
                    let result = registry
                        .ingest_file(id, &path, "text/plain", body(path.as_bytes()), Default::default(), "t")
                        .await;
                    (path, result.map(|_| ()).map_err(|e| e.code()))
                }));
            }
        }
        let mut recorded = Vec::new();
        for task in tasks {
            let (path, result) = task.await.unwrap();
            match result {
                Ok(()) => recorded.push(path),
                Err(code) => assert!(
                    code == "path_conflict" || code == "duplicate_relative_path",
                    "{path}: {code}"
                ),
            }
        }
        assert_eq!(recorded.len(), families.len(), "{recorded:?}");
        let files = env.registry.list_files(id).await.unwrap();
        assert_eq!(files.len(), families.len());
        assert!(env.registry.replay_check().await.unwrap().identical);
    }

    async fn an_upgraded_database_gets_the_collision_keys_of_its_files() {
        let env = TestEnv::new().await;
        let id = env.package("standard").await;
        env.put(id, "Docs/Guide.md", b"g").await;
        let pool = env.registry.store().pool();
        sqlx::query("DROP INDEX files_path_key").execute(pool).await.unwrap();
        sqlx::query("ALTER TABLE files DROP COLUMN path_key").execute(pool).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE description = 'file path key'")
            .execute(pool)
            .await
            .unwrap();

        let upgraded = env.replica().await;
        let keys: Vec<(String, Option<String>)> = sqlx::query_as("SELECT relative_path, path_key FROM files")
            .fetch_all(upgraded.store().pool())
            .await
            .unwrap();
        assert_eq!(keys, vec![("Docs/Guide.md".to_owned(), Some("docs/guide.md".to_owned()))]);
        let err = upgraded
            .ingest_file(id, "docs/guide.md/x", "text/plain", body(b"x"), Default::default(), "t")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "path_conflict");
        assert!(upgraded.replay_check().await.unwrap().identical);
    }
}

engine_tests! {
    async fn replay_check_refuses_a_view_column_it_does_not_compare() {
        let env = TestEnv::new().await;
        let id = env.package("standard").await;
        env.put(id, "a.txt", b"a").await;
        assert!(env.registry.replay_check().await.unwrap().identical);
        // A migration that adds a column the comparison does not read.
        let pool = env.registry.store().pool();
        sqlx::query("ALTER TABLE files ADD COLUMN extra TEXT").execute(pool).await.unwrap();
        let err = env.registry.replay_check().await.unwrap_err();
        assert!(format!("{err:?}").contains("files.extra"), "{err:?}");
    }
}
