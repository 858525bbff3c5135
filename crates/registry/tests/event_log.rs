//! The event log: sequences, fetch, tail, replay equality (property test),
//! tolerance of unknown types, digests and tamper evidence.

mod common;

use std::time::Duration;

use artifactstore_registry::core::event::subjects;
use artifactstore_registry::core::{Digest32, NewEvent};
use common::{body, new_package, TestEnv};
use futures::StreamExt;
use proptest::prelude::*;

engine_tests! {
    async fn sequences_are_gapless_and_fetch_since_is_the_ordered_tail() {
        let env = TestEnv::new().await;
        let package = env.package("standard").await;
        env.put(package, "a", b"a").await;
        env.put(package, "b", b"b").await;
        let all = env.registry.fetch_events(0, 100).await.unwrap();
        let sequences: Vec<i64> = all.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, [1, 2, 3, 4]);
        let tail = env.registry.fetch_events(2, 100).await.unwrap();
        assert_eq!(tail, all[2..].to_vec());
        for event in &all {
            assert_eq!(event.payload_digest, Digest32::blake3_of(&event.payload));
        }
        assert!(all.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    }
}

engine_tests! {
    async fn tail_follows_live_appends_and_ends_cleanly_when_dropped() {
        let env = TestEnv::new().await;
        let mut follower = Box::pin(env.registry.tail_events(0));
        let registry = env.registry.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            registry.create_package(new_package("live", "standard"), "t").await.unwrap();
        });
        let first = tokio::time::timeout(Duration::from_secs(5), follower.next())
            .await
            .expect("the follower is woken by the commit")
            .unwrap()
            .unwrap();
        assert_eq!(first.sequence, 1);
        let second = tokio::time::timeout(Duration::from_secs(5), follower.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(second.sequence, 2);
        writer.await.unwrap();
        drop(follower);
        // The registry keeps working after a follower goes away.
        env.registry.create_package(new_package("after", "standard"), "t").await.unwrap();
        assert_eq!(env.event_count().await, 4);
    }
}

engine_tests! {
    async fn unknown_event_types_are_tolerated_by_live_apply_and_replay() {
        let env = TestEnv::new().await;
        env.package("standard").await;
        let mut tx = env.registry.store().begin().await.unwrap();
        tx.append(NewEvent {
            event_type: "v9.from.the.future".into(),
            subject_kind: subjects::PACKAGE.into(),
            subject_id: "x".into(),
            actor: "newer-version".into(),
            payload: vec![0xa0],
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        env.package("standard").await;
        let report = env.registry.replay_check().await.unwrap();
        assert!(report.identical, "{report:?}");
        assert_eq!(report.events, 5);
        assert!(env.registry.verify_log().await.unwrap().is_intact());
    }
}

async fn five_event_log() -> TestEnv {
    let env = TestEnv::new().await;
    let package = env.package("standard").await;
    env.put(package, "a", b"a").await;
    env.put(package, "b", b"b").await;
    env.registry.finalize_package(package, "t").await.unwrap();
    env
}

engine_tests! {
    async fn editing_any_stored_event_makes_verify_log_fail_at_that_sequence() {
        let intact = five_event_log().await.registry.verify_log().await.unwrap();
        assert_eq!(intact.checked, 5);
        assert!(intact.is_intact());

        let forged_digest = Digest32::blake3_of(&[0xa0]).0.to_vec();
        let edits: [(&str, Option<Vec<u8>>); 7] = [
            ("UPDATE events SET actor = 'mallory' WHERE sequence = 3", None),
            ("UPDATE events SET payload = $1 WHERE sequence = 3", Some(vec![0xa0])),
            ("UPDATE events SET created_at = '2020-01-01T00:00:00.000000Z' WHERE sequence = 3", None),
            ("UPDATE events SET event_type = 'v1.package.created' WHERE sequence = 3", None),
            ("UPDATE events SET subject_id = 'other' WHERE sequence = 3", None),
            ("DELETE FROM events WHERE sequence = 3", None),
            // A forged payload with a recomputed digest still breaks the chain.
            ("UPDATE events SET payload_digest = $1, payload = substr(payload, 1, 1) WHERE sequence = 3", Some(forged_digest)),
        ];
        for (edit, bind) in edits {
            let env = five_event_log().await;
            let mut query = sqlx::query(edit);
            if let Some(bytes) = bind {
                query = query.bind(bytes);
            }
            query.execute(env.registry.store().pool()).await.unwrap();
            let verification = env.registry.verify_log().await.unwrap();
            assert_eq!(verification.first_bad_sequence, Some(3), "{edit}");
            assert_eq!(verification.checked, 2, "{edit}");
        }
    }
}

engine_tests! {
    async fn followers_miss_nothing_with_concurrent_writers_on_two_replicas() {
        let env = TestEnv::new().await;
        let replica = env.replica().await;
        let writers_per_replica = 8;
        let packages_per_writer = 5;
        let expected = (2 * writers_per_replica * packages_per_writer * 2) as usize;
        let follow = |registry: artifactstore_registry::Registry| {
            tokio::spawn(async move {
                let mut stream = Box::pin(registry.tail_events(0));
                let mut seen = Vec::new();
                while seen.len() < expected {
                    let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
                    seen.push(next.expect("follower stalled").unwrap().unwrap().sequence);
                }
                seen
            })
        };
        let first = follow(env.registry.clone());
        let second = follow(replica.clone());
        let mut writers = Vec::new();
        for (r, registry) in [env.registry.clone(), replica.clone()].into_iter().enumerate() {
            for w in 0..writers_per_replica {
                let registry = registry.clone();
                writers.push(tokio::spawn(async move {
                    for p in 0..packages_per_writer {
                        registry.create_package(new_package(&format!("r{r}w{w}p{p}"), "standard"), "w").await.unwrap();
                    }
                }));
            }
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let want: Vec<i64> = (1..=expected as i64).collect();
        assert_eq!(first.await.unwrap(), want);
        assert_eq!(second.await.unwrap(), want);
        assert!(env.registry.verify_log().await.unwrap().is_intact());
        assert!(replica.replay_check().await.unwrap().identical);
    }
}

/// One random operation of the property test.
#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Ingest(u8, u8, Vec<u8>),
    Finalize(u8),
    Hold(u8),
    Release(u8),
    Extend(u8, u16),
    Sweep,
    Advance(u32),
    Verify,
    Schema(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Create),
        6 => (any::<u8>(), 0u8..4, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(p, n, d)| Op::Ingest(p, n, d)),
        2 => any::<u8>().prop_map(Op::Finalize),
        2 => any::<u8>().prop_map(Op::Hold),
        2 => any::<u8>().prop_map(Op::Release),
        1 => (any::<u8>(), 1u16..2000).prop_map(|(p, d)| Op::Extend(p, d)),
        1 => Just(Op::Sweep),
        2 => (0u32..20_000_000).prop_map(Op::Advance),
        1 => Just(Op::Verify),
        1 => (0u8..3).prop_map(Op::Schema),
    ]
}

async fn run_ops(ops: Vec<Op>) {
    let env = TestEnv::new().await;
    let registry = &env.registry;
    let mut packages: Vec<uuid::Uuid> = Vec::new();
    let mut holds: Vec<(uuid::Uuid, uuid::Uuid)> = Vec::new();
    let pick =
        |list: &Vec<uuid::Uuid>, i: u8| (!list.is_empty()).then(|| list[i as usize % list.len()]);
    for op in ops {
        // Refusals are fine; what matters is that every outcome is replayable.
        match op {
            Op::Create(i) => {
                let class = ["ephemeral", "standard", "long-term", "permanent"][i as usize % 4];
                let mut new = new_package(&format!("p{i}"), class);
                new.metadata = serde_json::json!({"i": i, "odd": i % 2 == 1, "tags": ["a", i]});
                if let Ok(p) = registry.create_package(new, "prop").await {
                    packages.push(p.id.parse().unwrap());
                }
            }
            Op::Ingest(p, n, data) => {
                if let Some(package) = pick(&packages, p) {
                    let _ = registry
                        .ingest_file(
                            package,
                            &format!("dir/{n}.bin"),
                            "application/octet-stream",
                            body(&data),
                            Default::default(),
                            "prop",
                        )
                        .await;
                }
            }
            Op::Finalize(p) => {
                if let Some(package) = pick(&packages, p) {
                    let _ = registry.finalize_package(package, "prop").await;
                }
            }
            Op::Hold(p) => {
                if let Some(package) = pick(&packages, p) {
                    let hold = registry.apply_hold(package, "audit", "prop").await.unwrap();
                    holds.push((package, hold.parse().unwrap()));
                }
            }
            Op::Release(h) => {
                if !holds.is_empty() {
                    let (package, hold) = holds.remove(h as usize % holds.len());
                    registry
                        .release_hold(package, hold, "done", "prop")
                        .await
                        .unwrap();
                }
            }
            Op::Extend(p, days) => {
                if let Some(package) = pick(&packages, p) {
                    let state = registry.retention_state(package).await.unwrap();
                    if let Some(at) = state.expires_at {
                        let later = at.plus_seconds(i64::from(days) * 86_400).unwrap();
                        registry
                            .extend_retention(package, later, "keep", "prop")
                            .await
                            .unwrap();
                    }
                }
            }
            Op::Sweep => {
                registry.sweep("prop").await.unwrap();
            }
            Op::Advance(seconds) => env.clock.advance_seconds(i64::from(seconds)),
            Op::Verify => {
                registry.verify_storage(None, "prop").await.unwrap();
            }
            Op::Schema(i) => {
                let schema = serde_json::json!({"type": "object", "properties": {"i": {"type": "integer", "maximum": 100 + i}}});
                let _ = registry
                    .register_schema(&format!("s{i}"), &schema, "prop")
                    .await;
            }
        }
    }
    let live = registry.store().snapshot_views().await.unwrap();
    let check = registry.replay_check().await.unwrap();
    assert!(
        check.identical,
        "replay differs at {:?}",
        check.first_difference
    );
    registry.replay().await.unwrap();
    assert_eq!(registry.store().snapshot_views().await.unwrap(), live);
    assert!(registry.verify_log().await.unwrap().is_intact());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn live_path_and_replay_build_identical_views_sqlite(ops in proptest::collection::vec(op(), 1..60)) {
        common::run_on(common::Engine::Sqlite, run_ops(ops));
    }

    #[test]
    fn live_path_and_replay_build_identical_views_postgres(ops in proptest::collection::vec(op(), 1..60)) {
        common::run_on(common::Engine::Postgres, run_ops(ops));
    }
}

/// The names of every index a migration made (constraint indexes aside).
async fn index_names(env: &TestEnv) -> Vec<String> {
    use sqlx::Row;
    let sql = match env.registry.store().engine() {
        artifactstore_store::Engine::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
        }
        _ => {
            "SELECT indexname::text AS name FROM pg_indexes WHERE schemaname = current_schema() \
             ORDER BY indexname"
        }
    };
    sqlx::query(sql)
        .fetch_all(env.registry.store().pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("name").unwrap())
        .collect()
}

engine_tests! {
    async fn replay_rebuilds_the_indexes_it_drops() {
        let env = TestEnv::new().await;
        let id = env.package("standard").await;
        let before = index_names(&env).await;
        assert!(before.contains(&"package_metadata_by_sequence".to_owned()), "{before:?}");
        assert!(env.registry.replay_check().await.unwrap().identical);
        assert_eq!(index_names(&env).await, before, "a rolled-back check keeps them");
        assert_eq!(env.registry.replay().await.unwrap().events, 2);
        assert_eq!(index_names(&env).await, before, "a replay recreates them");
        let filter = artifactstore_registry::PackageFilter {
            producer: Some("ci".into()),
            metadata: vec![("branch".into(), "main".into())],
            limit: 10,
            ..Default::default()
        };
        let page = env.registry.list_packages(filter).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].id, id.to_string());
    }
}

engine_tests! {
    async fn a_replay_check_finds_a_tampered_view_and_a_replay_repairs_it() {
        let env = TestEnv::new().await;
        let id = env.package("standard").await;
        env.put(id, "a.txt", b"alpha").await;
        let live = env.registry.store().snapshot_views().await.unwrap();
        sqlx::query("UPDATE files SET size_bytes = size_bytes + 1")
            .execute(env.registry.store().pool())
            .await
            .unwrap();
        let tampered = env.registry.store().snapshot_views().await.unwrap();
        assert_ne!(tampered, live);

        let check = env.registry.replay_check().await.unwrap();
        assert_eq!(check.events, 3);
        assert!(!check.identical);
        assert_eq!(check.first_difference.as_deref(), Some("files"));
        assert_eq!(
            env.registry.store().snapshot_views().await.unwrap(),
            tampered,
            "a check changes nothing"
        );

        assert_eq!(env.registry.replay().await.unwrap().events, 3);
        assert_eq!(env.registry.store().snapshot_views().await.unwrap(), live);
        assert!(env.registry.replay_check().await.unwrap().identical);
    }
}
