//! The lifecycle (issue 20): purges (explicit, automatic, refused), the
//! review list, holds against purges, garbage collection of bytes with its
//! grace and its fence against uploads in flight, dry runs, the lease,
//! explanations, and replay after all of it.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use artifactstore_registry::config::RetentionClassConfig;
use artifactstore_registry::core::event::types;
use artifactstore_registry::core::retention::DeletionStrategy;
use artifactstore_registry::core::{Digest32, Manifest};
use artifactstore_registry::lifecycle::LIFECYCLE_ACTOR;
use artifactstore_registry::{Config, ManifestFormat, PackageFilter, RegistryError};
use artifactstore_storage::Backend as _;
use common::{body, new_package, read_all, s3_backend, TestEnv, S3_SERVERS};
use uuid::Uuid;

const DAY: i64 = 86_400;

fn class(
    id: &str,
    duration: Option<&str>,
    strategy: DeletionStrategy,
    purge_after: Option<&str>,
) -> RetentionClassConfig {
    RetentionClassConfig {
        id: id.into(),
        default_duration: duration.map(str::to_owned),
        deletion_strategy: strategy,
        purge_after: purge_after.map(str::to_owned),
    }
}

/// Classes for these tests: `logs` purged as soon as eligible, `reports`
/// a day after, `audit` by review, `forever` never; orphans collected at
/// once unless a test says otherwise.
fn lifecycle_config(config: &mut Config) {
    config.retention_classes = vec![
        class("logs", Some("1d"), DeletionStrategy::Delete, Some("0s")),
        class("reports", Some("1d"), DeletionStrategy::Delete, Some("1d")),
        class("audit", Some("1d"), DeletionStrategy::ManualReview, None),
        class("forever", None, DeletionStrategy::Never, None),
        class("brief", Some("1d"), DeletionStrategy::Never, None),
    ];
    config.lifecycle.orphan_grace = "0s".into();
}

async fn env() -> TestEnv {
    TestEnv::with_config(lifecycle_config).await
}

async fn purged_status(env: &TestEnv, id: Uuid) -> String {
    env.registry.get_package(id).await.unwrap().status
}

fn object_path(env: &TestEnv, key: &str) -> std::path::PathBuf {
    env.dir.path().join("objects").join(key)
}

engine_tests! {
    async fn explicit_purge_is_refused_unless_eligible_unheld_and_deletable() {
        let env = env().await;
        let young = env.package("reports").await;
        let err = env.registry.purge_package(young, "cleanup", "admin").await.unwrap_err();
        assert_eq!(err.code(), "package_not_eligible", "{err}");
        let forever = env.package("forever").await;
        let brief = env.package("brief").await;
        let held = env.package("reports").await;
        env.registry.apply_hold(held, "litigation", "legal").await.unwrap();
        env.clock.advance_seconds(2 * DAY);
        let report = env.registry.run_lifecycle(false, "ops").await.unwrap();
        assert!(report.marked_eligible.contains(&young.to_string()));
        assert!(report.marked_eligible.contains(&brief.to_string()));
        assert!(!report.marked_eligible.contains(&held.to_string()));
        let head = env.event_count().await;
        let err = env.registry.purge_package(held, "cleanup", "admin").await.unwrap_err();
        assert_eq!(err.code(), "package_held", "{err}");
        let err = env.registry.purge_package(forever, "cleanup", "admin").await.unwrap_err();
        assert_eq!(err.code(), "retention_class_never_deletes", "{err}");
        let err = env.registry.purge_package(brief, "cleanup", "admin").await.unwrap_err();
        assert_eq!(err.code(), "retention_class_never_deletes", "{err}");
        let err = env.registry.purge_package(young, "  ", "admin").await.unwrap_err();
        assert_eq!(err.code(), "retention_refused", "{err}");
        let err = env.registry.purge_package(Uuid::now_v7(), "x", "admin").await.unwrap_err();
        assert_eq!(err.code(), "package_not_found");
        assert_eq!(env.event_count().await, head, "refusals record nothing");

        let purged = env.registry.purge_package(young, "no longer needed", "admin").await.unwrap();
        assert_eq!(purged.rule, "explicit");
        assert_eq!(purged_status(&env, young).await, "purged");
        let err = env.registry.purge_package(young, "again", "admin").await.unwrap_err();
        assert_eq!(err.code(), "package_purged");
        // A purged package's retention no longer changes.
        let err = env.registry.apply_hold(young, "late", "legal").await.unwrap_err();
        assert_eq!(err.code(), "illegal_package_state");
        let events = env.registry.retention_history(young).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!(last.event_type, types::PACKAGE_PURGED);
        assert_eq!(last.actor, "admin");
        let payload = last.payload_json().unwrap();
        assert_eq!(payload["reason"], "no longer needed");
        assert_eq!(payload["rule"], "explicit");
    }
}

engine_tests! {
    async fn a_purged_package_keeps_its_records_and_manifest_and_its_bytes_answer_gone() {
        let env = env().await;
        let package = env.package("logs").await;
        let file = env.put(package, "a/report.txt", b"evidence bytes").await;
        env.registry.finalize_package(package, "ci").await.unwrap();
        env.clock.advance_seconds(2 * DAY);
        let report = env.registry.run_lifecycle(false, LIFECYCLE_ACTOR).await.unwrap();
        assert_eq!(report.purged.len(), 1);
        assert_eq!(report.purged[0].rule, "delete_after_eligible");
        assert_eq!(report.objects_deleted, 1);
        assert_eq!(report.bytes_freed, 14);
        assert!(!object_path(&env, &file.object_key).exists());

        let record = env.registry.get_package(package).await.unwrap();
        assert_eq!(record.status, "purged");
        assert!(record.purged_at.is_some());
        assert_eq!(record.metadata["run"], 1);
        // Its file's record stays; its bytes answer "purged".
        let metadata = env.registry.file_metadata(file.id.parse().unwrap()).await.unwrap();
        let err = match env.registry.open_file(&metadata, None).await {
            Err(e) => e,
            Ok(_) => panic!("a purged package's bytes were served"),
        };
        assert_eq!(err.code(), "package_purged");
        assert!(matches!(err, RegistryError::PackagePurged { ref purged_by, .. } if purged_by == LIFECYCLE_ACTOR));
        // The manifest is still served and still is the content address.
        let manifest = env.registry.manifest_bytes(package, ManifestFormat::Cbor).await.unwrap();
        assert_eq!(
            record.manifest_digest.unwrap(),
            format!("blake3:{}", Digest32::blake3_of(&manifest))
        );
        let decoded = Manifest::decode(&manifest).unwrap();
        assert_eq!(decoded.files[0].relative_path, "a/report.txt");
        // Listing filters by the new status.
        let page = env
            .registry
            .list_packages(PackageFilter { status: Some("purged".into()), limit: 10, ..PackageFilter::default() })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        // The log says which bytes left, and why.
        let events = env.registry.fetch_events(0, 100).await.unwrap();
        let deleted: Vec<_> = events.iter().filter(|e| e.event_type == types::STORAGE_OBJECT_DELETED).collect();
        assert_eq!(deleted.len(), 1);
        let payload = deleted[0].payload_json().unwrap();
        assert_eq!(payload["object_key"], file.object_key.as_str());
        assert_eq!(payload["reason"], "purged");
        assert_eq!(payload["size_bytes"], 14);
        // Admin verify skips bytes that are gone by purge.
        let verified = env.registry.verify_storage(None, "ops").await.unwrap();
        assert_eq!(verified.failed, 0);
        let check = env.registry.replay_check().await.unwrap();
        assert!(check.identical, "{check:?}");
    }
}

engine_tests! {
    async fn strategies_decide_what_is_purged_automatically() {
        let env = env().await;
        let reports = env.package("reports").await;
        let audit = env.package("audit").await;
        let forever = env.package("forever").await;
        let brief = env.package("brief").await;
        let extended = env.package("reports").await;
        env.clock.advance_seconds(DAY + 1);
        let report = env.registry.run_lifecycle(false, LIFECYCLE_ACTOR).await.unwrap();
        assert_eq!(report.marked_eligible.len(), 4, "{report:?}");
        assert!(report.purged.is_empty(), "reports wait a day: {report:?}");
        // An extension past now takes eligibility back, and with it the
        // pending purge.
        let later = env.registry.store().now().plus_seconds(30 * DAY).unwrap();
        env.registry.extend_retention(extended, later, "audit asked", "alice").await.unwrap();
        let review = env.registry.review_list(None, 100).await.unwrap().0;
        let ids: Vec<&str> = review.iter().map(|(p, _)| p.id.as_str()).collect();
        assert_eq!(ids, [audit.to_string()]);
        env.clock.advance_seconds(DAY);
        let report = env.registry.run_lifecycle(false, LIFECYCLE_ACTOR).await.unwrap();
        let purged: Vec<&str> = report.purged.iter().map(|p| p.package_id.as_str()).collect();
        assert_eq!(purged, [reports.to_string()]);
        env.clock.advance_seconds(3650 * DAY);
        let report = env.registry.run_lifecycle(false, LIFECYCLE_ACTOR).await.unwrap();
        assert_eq!(report.marked_eligible, [extended.to_string()]);
        assert!(report.purged.is_empty(), "purge_after counts from the new eligibility");
        env.clock.advance_seconds(DAY + 1);
        let report = env.registry.run_lifecycle(false, LIFECYCLE_ACTOR).await.unwrap();
        let purged: Vec<&str> = report.purged.iter().map(|p| p.package_id.as_str()).collect();
        assert_eq!(purged, [extended.to_string()], "only the extended one, once eligible again and past purge_after");
        for kept in [audit, forever, brief] {
            assert_ne!(purged_status(&env, kept).await, "purged");
        }
        // An admin purges the reviewed one.
        env.registry.purge_package(audit, "reviewed by compliance", "carol").await.unwrap();
        assert!(env.registry.review_list(None, 100).await.unwrap().0.is_empty());
        let check = env.registry.replay_check().await.unwrap();
        assert!(check.identical, "{check:?}");
    }
}

engine_tests! {
    async fn a_hold_raced_against_the_automatic_purge_never_loses() {
        let env = env().await;
        for round in 0..12 {
            let package = env.package("logs").await;
            env.clock.advance_seconds(DAY + 1);
            env.registry.sweep("ops").await.unwrap();
            let registry = env.registry.clone();
            let hold = tokio::spawn(async move { registry.apply_hold(package, "litigation", "legal").await });
            let registry = env.registry.clone();
            let pass = tokio::spawn(async move { registry.run_lifecycle(false, LIFECYCLE_ACTOR).await });
            let (hold, pass) = (hold.await.unwrap(), pass.await.unwrap().unwrap());
            let purged = purged_status(&env, package).await == "purged";
            let state = env.registry.retention_state(package).await.unwrap();
            match hold {
                Ok(_) => {
                    assert!(!purged, "round {round}: held and purged");
                    assert_eq!(state.active_holds.len(), 1);
                    assert!(!pass.purged.iter().any(|p| p.package_id == package.to_string()));
                }
                Err(e) => {
                    assert_eq!(e.code(), "illegal_package_state", "round {round}: {e}");
                    assert!(purged, "round {round}: hold refused but not purged");
                    assert!(state.active_holds.is_empty());
                }
            }
        }
        let check = env.registry.replay_check().await.unwrap();
        assert!(check.identical, "{check:?}");
    }
}

engine_tests! {
    async fn an_object_shared_with_a_live_package_survives_the_purge() {
        let env = env().await;
        let doomed = env.package("logs").await;
        let kept = env.package("forever").await;
        let shared = env.put(doomed, "same.bin", b"shared bytes").await;
        env.put(kept, "copy.bin", b"shared bytes").await;
        let alone = env.put(doomed, "alone.bin", b"only in the purged one").await;
        env.clock.advance_seconds(2 * DAY);
        let report = env.registry.run_lifecycle(false, LIFECYCLE_ACTOR).await.unwrap();
        assert_eq!(report.purged.len(), 1);
        assert_eq!(report.objects_deleted, 1, "{report:?}");
        assert!(object_path(&env, &shared.object_key).exists());
        assert!(!object_path(&env, &alone.object_key).exists());
        let file = env.registry.file_by_path(kept, "copy.bin").await.unwrap();
        let bytes = read_all(env.registry.open_file(&file, None).await.unwrap()).await;
        assert_eq!(bytes, b"shared bytes");
    }
}

/// Writes an object no event refers to, last modified `age` ago.
fn orphan(env: &TestEnv, content: &[u8], age: Duration) -> String {
    let key = artifactstore_registry::core::FileDigests::of(content)
        .content_address()
        .object_key();
    let path = object_path(env, &key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
    key
}

engine_tests! {
    async fn orphans_older_than_the_grace_go_and_younger_ones_stay() {
        let env = TestEnv::with_config(|config| {
            lifecycle_config(config);
            config.lifecycle.orphan_grace = "1h".into();
        })
        .await;
        let old = orphan(&env, b"crashed upload", Duration::from_secs(2 * 3600));
        let young = orphan(&env, b"upload in flight", Duration::from_secs(60));
        let package = env.package("forever").await;
        let live = env.put(package, "kept.txt", b"live").await;
        let report = env.registry.run_lifecycle(false, "ops").await.unwrap();
        assert_eq!(report.objects_deleted, 1, "{report:?}");
        assert_eq!(report.backends[0].objects_by_reason.get("orphan"), Some(&1));
        assert!(!object_path(&env, &old).exists());
        assert!(object_path(&env, &young).exists());
        assert!(object_path(&env, &live.object_key).exists());
        let check = env.registry.replay_check().await.unwrap();
        assert!(check.identical, "{check:?}");
    }
}

/// Every file under the objects directory, with its bytes.
fn snapshot(env: &TestEnv) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![env.dir.path().join("objects").join("blake3")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

engine_tests! {
    async fn a_dry_run_lists_what_a_pass_would_do_and_changes_nothing() {
        let env = env().await;
        let package = env.package("logs").await;
        env.put(package, "x.txt", b"to be purged").await;
        orphan(&env, b"an orphan", Duration::from_secs(10));
        env.clock.advance_seconds(2 * DAY);
        let head = env.event_count().await;
        let before = snapshot(&env);
        let dry = env.registry.run_lifecycle(true, "ops").await.unwrap();
        assert!(dry.dry_run);
        assert_eq!(dry.marked_eligible, [package.to_string()]);
        assert_eq!(dry.purged.len(), 1);
        assert_eq!(dry.objects_deleted, 2, "{dry:?}");
        assert_eq!(env.event_count().await, head, "a dry run appends nothing");
        assert_eq!(snapshot(&env), before, "a dry run deletes nothing");
        assert_eq!(purged_status(&env, package).await, "created");
        let real = env.registry.run_lifecycle(false, "ops").await.unwrap();
        assert_eq!(real.marked_eligible, dry.marked_eligible);
        assert_eq!(real.purged, dry.purged);
        assert_eq!((real.objects_deleted, real.bytes_freed), (dry.objects_deleted, dry.bytes_freed));
        assert!(snapshot(&env).is_empty());
    }
}

engine_tests! {
    async fn one_process_at_a_time_runs_the_lifecycle() {
        let env = env().await;
        let now = env.registry.store().now();
        let until = now.plus_seconds(60).unwrap();
        assert!(env.registry.store().take_lifecycle_lease("other replica", now, until).await.unwrap());
        let report = env.registry.run_lifecycle(false, "ops").await.unwrap();
        assert!(report.skipped.is_some(), "{report:?}");
        // A dry run changes nothing, so it needs no lease.
        assert!(env.registry.run_lifecycle(true, "ops").await.unwrap().skipped.is_none());
        // The other holder stopped without giving it back: it expires.
        env.clock.advance_seconds(61);
        let report = env.registry.run_lifecycle(false, "ops").await.unwrap();
        assert!(report.skipped.is_none(), "{report:?}");
    }
}

engine_tests! {
    async fn a_claim_left_by_a_stopped_collector_fences_uploads_until_a_pass_finishes_it() {
        let env = env().await;
        let content = b"claimed then abandoned";
        let key = orphan(&env, content, Duration::from_secs(10));
        // A collector claimed it, then stopped (killed) before deleting.
        {
            let mut tx = env.registry.store().begin().await.unwrap();
            tx.claim_objects("local", std::slice::from_ref(&key), "dead collector").await.unwrap();
            tx.commit().await.unwrap();
        }
        let package = env.package("forever").await;
        let head = env.event_count().await;
        let err = env
            .registry
            .ingest_file(package, "a.bin", "application/octet-stream", body(content), Default::default(), "ci")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "object_being_collected", "{err}");
        assert_eq!(env.event_count().await, head, "a fenced upload records nothing");
        let report = env.registry.run_lifecycle(false, "ops").await.unwrap();
        assert_eq!(report.backends[0].claims_finished, 1, "{report:?}");
        assert!(env.registry.store().claims().await.unwrap().is_empty());
        // Sent again, the upload stores its bytes anew and is recorded.
        let file = env.put(package, "a.bin", content).await;
        let bytes = read_all(env.registry.open_file(&file, None).await.unwrap()).await;
        assert_eq!(bytes, content);
    }
}

/// Uploads of a few identical contents into packages that are purged and
/// collected in a loop, through two registries on one database (two
/// replicas), each also running passes (the lease lets one at a time
/// collect). Afterwards every byte a live file refers to is there and
/// intact, and replay is exact. Returns (uploads fenced, objects
/// collected).
async fn race_uploads_against_collection(env: Arc<TestEnv>, seconds: u64) -> (u32, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let replicas = [env.registry.clone(), env.replica().await];
    // Each epoch has four contents. Packages the loop purges take this
    // epoch's; kept packages take the previous epoch's, whose only other
    // references are being purged and collected right then: an upload
    // identical to an object the collector is deleting.
    let content = |epoch: u64, i: usize| {
        format!("epoch {epoch} content {i} ")
            .repeat(40)
            .into_bytes()
    };
    let epoch = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let registry = replicas[writer % 2].clone();
        let (epoch, stop) = (epoch.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let (mut recorded, mut fenced) = (0u32, 0u32);
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let kept = round % 2 == 1;
                let class = if kept { "forever" } else { "logs" };
                let now = epoch.load(Ordering::Relaxed);
                let of = if kept { now - 1 } else { now };
                let package = registry
                    .create_package(new_package("race", class), "ci")
                    .await
                    .unwrap();
                let id: Uuid = package.id.parse().unwrap();
                for i in 0..5 {
                    let path = format!("w{writer}/f{i}.bin");
                    // Four shared contents, and one of this package only
                    // (collected whenever the package is purged).
                    let bytes = if i < 4 {
                        content(of, i)
                    } else {
                        format!("only in {id}").into_bytes()
                    };
                    match registry
                        .ingest_file(
                            id,
                            &path,
                            "application/octet-stream",
                            body(&bytes),
                            Default::default(),
                            "ci",
                        )
                        .await
                    {
                        Ok(_) => recorded += 1,
                        Err(e) if e.code() == "object_being_collected" => fenced += 1,
                        // The loop purged this package while it was filled.
                        Err(e) if e.code() == "illegal_package_state" => break,
                        Err(e) => panic!("upload failed: {e}"),
                    }
                }
                round += 1;
            }
            (recorded, fenced)
        }));
    }
    let (mut passes, mut skipped, mut deleted) = (0u64, 0u64, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        env.clock.advance_seconds(DAY + 1);
        // Both replicas try a pass at once: one runs it, the other finds
        // the lease taken.
        let (a, b) = tokio::join!(
            replicas[0].run_lifecycle(false, LIFECYCLE_ACTOR),
            replicas[1].run_lifecycle(false, LIFECYCLE_ACTOR)
        );
        for report in [a.unwrap(), b.unwrap()] {
            if let Some(why) = &report.skipped {
                assert!(why.contains("another process"), "{why}");
                skipped += 1;
            } else {
                assert!(
                    report.backends.iter().all(|b| b.failures.is_empty()),
                    "{report:?}"
                );
                deleted += report.objects_deleted;
            }
        }
        passes += 1;
        if passes % 2 == 0 {
            epoch.fetch_add(1, Ordering::Relaxed);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut recorded, mut fenced) = (0, 0);
    for writer in writers {
        let (done, refused) = writer.await.unwrap();
        recorded += done;
        fenced += refused;
    }
    eprintln!("{passes} rounds of passes ({skipped} skipped for the lease), {recorded} uploads recorded, {fenced} fenced, {deleted} objects collected");
    assert!(
        passes > 3 && recorded > 20,
        "passes {passes}, uploads {recorded}"
    );
    assert!(deleted > 0, "the loop never collected anything");
    let claims = env.registry.store().claims().await.unwrap();
    assert!(claims.is_empty(), "claims left: {claims:?}");
    // Every byte a live file refers to is there and intact.
    let verified = env.registry.verify_storage(None, "ops").await.unwrap();
    assert!(verified.checked > 0);
    assert_eq!(
        verified.failed,
        0,
        "{:?}",
        verified
            .results
            .iter()
            .filter(|r| !r.ok)
            .collect::<Vec<_>>()
    );
    let check = env.registry.replay_check().await.unwrap();
    assert!(check.identical, "{check:?}");
    (fenced, deleted)
}

engine_tests! {
    async fn uploads_racing_purges_and_collections_never_record_missing_bytes() {
        race_uploads_against_collection(Arc::new(env().await), 6).await;
    }
}

engine_tests! {
    async fn uploads_racing_purges_and_collections_on_s3_never_record_missing_bytes() {
        for server in S3_SERVERS {
            let Some(s3) = s3_backend(server, "archive") else { continue };
            let env = TestEnv::with_config(|config| {
                lifecycle_config(config);
                config.backends = vec![s3.clone()];
            })
            .await;
            // Something else in the bucket, beside the backend's own key
            // spaces: not the collector's to delete.
            let direct = s3_direct(&s3);
            let mut writer = direct.begin_write().await.unwrap();
            writer.write(bytes::Bytes::from_static(b"not ours")).await.unwrap();
            writer.commit("exports/someone-elses.txt").await.unwrap();
            race_uploads_against_collection(Arc::new(env), 8).await;
            assert_eq!(direct.size("exports/someone-elses.txt").await.unwrap(), Some(8));
        }
    }
}

engine_tests! {
    async fn the_explanation_lists_the_facts_in_order_and_in_one_sentence() {
        let env = env().await;
        let package = env.package("reports").await;
        let later = env.registry.store().now().plus_seconds(10 * DAY).unwrap();
        env.registry.extend_retention(package, later, "audit", "alice").await.unwrap();
        env.registry.apply_hold(package, "litigation", "bob").await.unwrap();
        let (_, explanation) = env.registry.retention_explained(package).await.unwrap();
        assert_eq!(
            explanation.sentence,
            "kept until 2026-01-11: class reports (1 day), extended by alice on 2026-01-01 ('audit'); \
             held since 2026-01-01 ('litigation'), so it will not be purged while the hold is active"
        );
        let kinds: Vec<String> = explanation.steps.iter().map(|s| format!("{:?}", s.kind)).collect();
        assert_eq!(kinds, ["Class", "Extension", "Hold", "Eligibility", "Schedule"]);
        assert_eq!(explanation.steps[1].actor.as_deref(), Some("alice"));
    }
}

#[test]
fn usage_counts_logical_and_physical_bytes_and_what_collection_would_reclaim() {
    common::run_on(common::current_engine(), async {
        let env = env().await;
        let a = env.package("forever").await;
        let b = env.package("logs").await;
        env.put(a, "one", b"0123456789").await;
        env.put(b, "two", b"0123456789").await;
        env.put(b, "three", b"abc").await;
        let usage = env.registry.usage().await.unwrap();
        assert_eq!(usage.by_producer, [("ci".to_owned(), 3, 23)]);
        assert_eq!(
            usage.by_backend,
            [("local".to_owned(), 2, 13)],
            "deduplicated"
        );
        assert_eq!(usage.reclaimable, (0, 0));
        env.clock.advance_seconds(2 * DAY);
        env.registry.sweep("ops").await.unwrap();
        env.registry
            .purge_package(b, "done", "admin")
            .await
            .unwrap();
        let usage = env.registry.usage().await.unwrap();
        assert_eq!(usage.by_producer, [("ci".to_owned(), 1, 10)]);
        assert_eq!(usage.reclaimable, (1, 3), "the shared object stays");
    });
}

/// The backend `config` describes, opened directly.
fn s3_direct(
    config: &artifactstore_registry::config::BackendConfig,
) -> artifactstore_storage::S3Backend {
    artifactstore_storage::S3Backend::new(artifactstore_storage::S3Settings {
        id: config.id.clone(),
        endpoint: config.endpoint.clone(),
        region: config.region.clone().unwrap_or_default(),
        bucket: config.bucket.clone().unwrap_or_default(),
        path_style: true,
        access_key_id: config.access_key_id.clone(),
        secret_access_key: config.secret_access_key.as_ref().map(|s| s.0.clone()),
        prefix: config.prefix.clone().unwrap_or_default(),
        stall_timeout: config.stall_timeout().unwrap(),
    })
    .unwrap()
}

engine_tests! {
    async fn two_passes_of_one_process_never_overlap() {
        let env = env().await;
        // Enough work that the first pass is still collecting when the
        // second starts.
        for i in 0..3000 {
            orphan(&env, format!("orphan {i}").as_bytes(), Duration::from_secs(10));
        }
        let first = {
            let registry = env.registry.clone();
            tokio::spawn(async move { registry.run_lifecycle(false, "serve").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = env.registry.run_lifecycle(false, "admin").await.unwrap();
        let first = first.await.unwrap().unwrap();
        // Whichever started first ran; the other found the lease taken.
        let (ran, skipped): (Vec<_>, Vec<_>) = [&first, &second].into_iter().partition(|r| r.skipped.is_none());
        assert_eq!((ran.len(), skipped.len()), (1, 1), "{first:?} {second:?}");
        assert_eq!(ran[0].objects_deleted, 3000);
        let now = env.registry.store().now();
        let until = now.plus_seconds(60).unwrap();
        assert!(env.registry.store().take_lifecycle_lease("probe", now, until).await.unwrap(), "a pass kept the lease");
    }
}

engine_tests! {
    async fn of_two_admins_purging_at_once_one_purges_and_the_other_is_told() {
        let env = env().await;
        let package = env.package("audit").await;
        env.clock.advance_seconds(2 * DAY);
        env.registry.sweep("ops").await.unwrap();
        let (a, b) = tokio::join!(
            env.registry.purge_package(package, "reviewed", "alice"),
            env.registry.purge_package(package, "reviewed too", "bob")
        );
        let codes: Vec<&str> = [&a, &b].iter().map(|r| r.as_ref().map_or_else(|e| e.code(), |_| "ok")).collect();
        assert!(codes.contains(&"ok") && codes.contains(&"package_purged"), "{codes:?}");
        let purges = env
            .registry
            .retention_history(package)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == types::PACKAGE_PURGED)
            .count();
        assert_eq!(purges, 1);
    }
}
