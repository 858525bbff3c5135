//! Proof that leaves the server (issue 21): signed checkpoints, RFC 9162
//! proofs checked by an independent verifier, the start check against a
//! restored or rewritten database, replicas signing at once, and evidence
//! bundles with every kind of tampering.

mod common;

use std::io::Read as _;

use artifactstore_registry::bundle::verify::verify_bundle;
use artifactstore_registry::log::proof::{
    decode_hash, verify_consistency, verify_inclusion, SignedCheckpoint,
};
use artifactstore_registry::{Registry, RegistryError};
use common::{s3_backend, TestEnv, S3_SERVERS};
use futures::TryStreamExt;
use uuid::Uuid;

async fn finalized_package(env: &TestEnv, files: &[(&str, &[u8])]) -> Uuid {
    let id = env.package("standard").await;
    for (path, data) in files {
        env.put(id, path, data).await;
    }
    env.registry.finalize_package(id, "tester").await.unwrap();
    id
}

async fn bundle_bytes(registry: &Registry, id: Uuid) -> Vec<u8> {
    let bundle = registry.bundle(id, "auditor").await.unwrap();
    let size = bundle.size;
    let bytes: Vec<u8> = bundle
        .stream
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .unwrap();
    assert_eq!(
        bytes.len() as u64,
        size,
        "the announced size is the bundle's"
    );
    bytes
}

fn hashes(list: &[String]) -> Vec<artifactstore_registry::core::Digest32> {
    list.iter().map(|h| decode_hash(h).unwrap()).collect()
}

engine_tests! {
    async fn proofs_from_the_server_verify_against_its_signed_checkpoints() {
        let env = TestEnv::new().await;
        let key = env.registry.log_verifier_key().to_owned();
        finalized_package(&env, &[("a.txt", b"one"), ("b/c.txt", b"two")]).await;
        let (first, signed) = env.registry.sign_checkpoint("ops", false).await.unwrap();
        let first = first.unwrap();
        assert!(signed);
        // The checkpoint's own event does not make the log "grown".
        let (again, signed) = env.registry.sign_checkpoint("ops", false).await.unwrap();
        assert!(!signed);
        assert_eq!(again.unwrap().tree_size, first.tree_size);
        for i in 0..40 {
            finalized_package(&env, &[(&format!("f{i}.log"), format!("{i}").as_bytes())]).await;
        }
        let (second, signed) = env.registry.sign_checkpoint("ops", false).await.unwrap();
        let second = second.unwrap();
        assert!(signed && second.tree_size > first.tree_size + 100);

        let a = SignedCheckpoint::open(first.note.as_bytes(), &key).unwrap();
        let b = SignedCheckpoint::open(second.note.as_bytes(), &key).unwrap();
        assert_eq!((a.tree_size, b.tree_size), (first.tree_size, second.tree_size));
        assert_eq!(b.root, second.root_hash);
        let served = env.registry.checkpoint_at(first.tree_size).await.unwrap();
        assert_eq!(served.note, first.note);
        assert_eq!(env.registry.latest_checkpoint().await.unwrap().note, second.note);

        for sequence in [1, 2, first.tree_size as i64, 77, second.tree_size as i64] {
            let leaf = env.registry.leaf(sequence).await.unwrap();
            let proof = env.registry.inclusion_proof(sequence, b.tree_size).await.unwrap();
            assert_eq!(proof.leaf_index, sequence as u64 - 1);
            verify_inclusion(&leaf, proof.leaf_index, b.tree_size, &hashes(&proof.hashes), &b.root)
                .unwrap();
            // Another event's leaf does not verify with this proof.
            let other = env.registry.leaf(if sequence == 1 { 2 } else { 1 }).await.unwrap();
            assert!(verify_inclusion(&other, proof.leaf_index, b.tree_size, &hashes(&proof.hashes), &b.root).is_err());
        }
        let proof = env.registry.consistency_proof(a.tree_size, b.tree_size).await.unwrap();
        verify_consistency(a.tree_size, &a.root, b.tree_size, &b.root, &hashes(&proof.hashes)).unwrap();
        assert!(verify_consistency(a.tree_size, &b.root, b.tree_size, &b.root, &hashes(&proof.hashes)).is_err());

        // Out of range is refused, not answered.
        let head = env.event_count().await as u64;
        for err in [
            env.registry.inclusion_proof(5, 4).await.unwrap_err(),
            env.registry.inclusion_proof(0, 4).await.unwrap_err(),
            env.registry.inclusion_proof(1, head + 1).await.unwrap_err(),
            env.registry.consistency_proof(0, 3).await.unwrap_err(),
            env.registry.consistency_proof(4, 3).await.unwrap_err(),
            env.registry.consistency_proof(1, head + 1).await.unwrap_err(),
        ] {
            assert_eq!(err.code(), "invalid_input", "{err}");
        }
        assert_eq!(env.registry.leaf(head as i64 + 1).await.unwrap_err().code(), "log_entry_not_found");
        assert_eq!(env.registry.checkpoint_at(3).await.unwrap_err().code(), "log_entry_not_found");

        // The anchor on the backend holds the newest checkpoint.
        let anchor = std::fs::read_to_string(env.dir.path().join("objects/log/checkpoint")).unwrap();
        assert_eq!(anchor, second.note);
        // Checkpoints are a view: replay rebuilds them exactly.
        assert!(env.registry.replay_check().await.unwrap().identical);
        let audit = env.registry.verify_log_in_full().await.unwrap();
        assert!(audit.is_intact(), "{audit:?}");
        assert!(audit.checkpoints_checked >= 3, "{audit:?}");
    }

    async fn a_rewritten_event_stops_the_start_check_and_verify_log() {
        let env = TestEnv::new().await;
        finalized_package(&env, &[("a.txt", b"one")]).await;
        env.registry.sign_checkpoint("ops", true).await.unwrap();
        env.registry.check_log_at_start().await.unwrap();
        // Someone with the database rewrites who did something.
        sqlx::query("UPDATE events SET actor = 'someone-else' WHERE sequence = 2")
            .execute(env.registry.store().pool())
            .await
            .unwrap();
        let err = env.replica().await.check_log_at_start().await.unwrap_err();
        assert!(matches!(err, RegistryError::LogInconsistent(_)), "{err}");
        assert!(err.to_string().contains("rewritten"), "{err}");
        let audit = env.registry.verify_log_in_full().await.unwrap();
        assert!(!audit.is_intact());
        // Tiles dropped and rebuilt from the rewritten events: the anchor
        // still catches it.
        sqlx::query("DELETE FROM log_tiles").execute(env.registry.store().pool()).await.unwrap();
        sqlx::query("UPDATE log_tree SET size = 0").execute(env.registry.store().pool()).await.unwrap();
        sqlx::query("DELETE FROM log_checkpoints").execute(env.registry.store().pool()).await.unwrap();
        let err = env.replica().await.check_log_at_start().await.unwrap_err();
        assert!(err.to_string().contains("anchor"), "{err}");
    }

    async fn a_key_other_than_the_signer_s_is_refused_at_start() {
        let env = TestEnv::new().await;
        finalized_package(&env, &[("a.txt", b"one")]).await;
        env.registry.sign_checkpoint("ops", true).await.unwrap();
        let mut config = env.config.clone();
        config.log.signing_key = Some(env.dir.path().join("another.key"));
        let other = Registry::builder(config).clock(env.clock.clone()).build().await.unwrap();
        assert_ne!(other.log_verifier_key(), env.registry.log_verifier_key());
        let err = other.check_log_at_start().await.unwrap_err();
        assert!(err.to_string().contains("signing_key"), "{err}");
    }

    async fn replicas_signing_at_once_sign_only_consistent_checkpoints() {
        let env = TestEnv::new().await;
        let replica = env.replica().await;
        let key = env.registry.log_verifier_key().to_owned();
        let mut tasks = Vec::new();
        for (n, registry) in [env.registry.clone(), replica.clone()].into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                for i in 0..15 {
                    let id = registry
                        .create_package(common::new_package(&format!("r{n}-{i}"), "standard"), "ci")
                        .await
                        .unwrap();
                    let _ = id;
                    registry.sign_checkpoint("replica", i % 3 == 0).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let checkpoints = env.registry.store().checkpoints_after(0, 1000).await.unwrap();
        assert!(checkpoints.len() >= 4, "{}", checkpoints.len());
        for pair in checkpoints.windows(2) {
            assert!(pair[0].tree_size < pair[1].tree_size);
        }
        for (i, older) in checkpoints.iter().enumerate() {
            let a = SignedCheckpoint::open(older.note.as_bytes(), &key).unwrap();
            for newer in &checkpoints[i..] {
                let b = SignedCheckpoint::open(newer.note.as_bytes(), &key).unwrap();
                let proof = replica.consistency_proof(a.tree_size, b.tree_size).await.unwrap();
                verify_consistency(a.tree_size, &a.root, b.tree_size, &b.root, &hashes(&proof.hashes))
                    .unwrap();
            }
        }
        assert!(env.registry.verify_log_in_full().await.unwrap().is_intact());
    }

    async fn a_bundle_verifies_offline_and_every_tampering_fails() {
        let env = TestEnv::new().await;
        let key = env.registry.log_verifier_key().to_owned();
        let long = format!("deep/{}/100% é ünïcode.txt", "x".repeat(120));
        let id = finalized_package(
            &env,
            &[("report.json", b"{\"ok\":true}"), ("logs/build.log", b"line 1\nline 2\n"), (&long, b"odd"), ("empty", b"")],
        )
        .await;
        let hold = env.registry.apply_hold(id, "audit 2027", "legal").await.unwrap();
        let tar = bundle_bytes(&env.registry, id).await;
        // Deterministic: the same bundle twice.
        assert_eq!(tar, bundle_bytes(&env.registry, id).await);
        let report = verify_bundle(&tar[..], &key).unwrap();
        assert_eq!(report.package_id, id.to_string());
        assert_eq!((report.files, report.bytes), (4, 11 + 14 + 3));
        assert!(report.events >= 7, "{report:?}");

        // Flip one byte inside each member's content, one at a time.
        let mut archive = tar::Archive::new(&tar[..]);
        let mut members = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            members.push((
                entry.path().unwrap().to_string_lossy().into_owned(),
                entry.raw_file_position(),
                entry.size(),
            ));
        }
        let mut kinds = std::collections::BTreeSet::new();
        for (name, position, size) in &members {
            if *size == 0 {
                continue;
            }
            for at in [0, size / 2, size - 1] {
                let mut bad = tar.clone();
                bad[(position + at) as usize] ^= 0x01;
                let err = verify_bundle(&bad[..], &key).unwrap_err();
                assert!(!err.0.is_empty(), "{name}");
            }
            kinds.insert(name.split('/').next().unwrap().to_owned());
        }
        assert!(kinds.contains("data") && kinds.contains("registry"), "{kinds:?}");

        // Another key, a missing file, an extra file.
        let other = Registry::builder({
            let mut c = env.config.clone();
            c.log.signing_key = Some(env.dir.path().join("other.key"));
            c
        })
        .build()
        .await
        .unwrap();
        let err = verify_bundle(&tar[..], other.log_verifier_key()).unwrap_err();
        assert!(err.0.contains("checkpoint"), "{err}");
        let rebuilt = |skip: Option<&str>, extra: Option<(&str, &[u8])>| {
            let mut out = tar::Builder::new(Vec::new());
            let mut archive = tar::Archive::new(&tar[..]);
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().to_string_lossy().into_owned();
                if Some(name.as_str()) == skip {
                    continue;
                }
                let mut body = Vec::new();
                entry.read_to_end(&mut body).unwrap();
                let mut header = entry.header().clone();
                out.append_data(&mut header, &name, &body[..]).unwrap();
            }
            if let Some((name, body)) = extra {
                let mut header = tar::Header::new_ustar();
                header.set_size(body.len() as u64);
                header.set_mode(0o644);
                out.append_data(&mut header, name, body).unwrap();
            }
            out.into_inner().unwrap()
        };
        assert!(verify_bundle(&rebuilt(None, None)[..], &key).is_ok());
        let err = verify_bundle(&rebuilt(Some("data/report.json"), None)[..], &key).unwrap_err();
        assert!(err.0.contains("missing file data/report.json"), "{err}");
        let err = verify_bundle(&rebuilt(None, Some(("data/extra.bin", b"x")))[..], &key).unwrap_err();
        assert!(err.0.contains("extra file data/extra.bin"), "{err}");
        let leaf = members.iter().find(|m| m.0.ends_with(".leaf")).unwrap().0.clone();
        let err = verify_bundle(&rebuilt(Some(&leaf), None)[..], &key).unwrap_err();
        assert!(err.0.contains("missing file"), "{err}");

        // Purged: no new bundle, and the old one still verifies offline.
        env.clock.advance_seconds(400 * 86_400);
        env.registry.release_hold(id, hold.parse().unwrap(), "done", "legal").await.unwrap();
        // Marked eligible now; purged `purge_after` (7 days) later.
        env.registry.run_lifecycle(false, "ops").await.unwrap();
        env.clock.advance_seconds(8 * 86_400);
        env.registry.run_lifecycle(false, "ops").await.unwrap();
        assert_eq!(env.registry.get_package(id).await.unwrap().status, "purged");
        let err = env.registry.bundle(id, "auditor").await.unwrap_err();
        assert_eq!(err.code(), "package_purged");
        assert!(verify_bundle(&tar[..], &key).is_ok());
        assert!(env.registry.replay_check().await.unwrap().identical);
    }
}

/// A database restored from an older copy (SQLite: the file copied back)
/// is refused at start: the anchor on the backend has a longer log.
#[tokio::test]
async fn a_database_restored_from_an_older_copy_refuses_to_start() {
    let env = TestEnv::new().await;
    if env.engine != common::Engine::Sqlite {
        return;
    }
    finalized_package(&env, &[("a.txt", b"one")]).await;
    env.registry.sign_checkpoint("ops", true).await.unwrap();
    let db = env.dir.path().join("artifactstore.db");
    assert!(
        db.exists(),
        "the embedded database is where the test expects"
    );
    env.registry.store().pool().close().await;
    let backup = env.dir.path().join("backup.db");
    std::fs::copy(&db, &backup).unwrap();
    let registry = env.replica().await;
    for i in 0..5 {
        registry
            .create_package(common::new_package(&format!("later-{i}"), "standard"), "ci")
            .await
            .unwrap();
    }
    registry.sign_checkpoint("ops", true).await.unwrap();
    registry.close().await;
    // Restored under a name of its own: copied back over the live file,
    // a connection or task of the replicas above that had not yet let go
    // of it could hold SQLite's locks on it, and opening the restored
    // copy then timed out in CI now and then.
    let restored_db = env.dir.path().join("restored.db");
    std::fs::copy(&backup, &restored_db).unwrap();
    let mut config = env.config.clone();
    config.database.url = Some(format!("sqlite://{}", restored_db.display()));
    let restored = Registry::builder(config)
        .clock(env.clock.clone())
        .build()
        .await
        .unwrap();
    let err = restored.check_log_at_start().await.unwrap_err();
    assert!(matches!(err, RegistryError::LogInconsistent(_)), "{err}");
    assert!(err.to_string().contains("older"), "{err}");
}

/// On S3 the anchor is an object beside the content; a shorter log is
/// caught the same way.
#[tokio::test]
async fn anchors_on_s3_catch_a_log_cut_short() {
    for server in S3_SERVERS {
        let Some(backend) = s3_backend(server, "s3") else {
            continue;
        };
        let env = TestEnv::with_config(|config| {
            config.backends = vec![backend.clone()];
            config.routing.default_backend = Some("s3".into());
        })
        .await;
        env.registry.sign_checkpoint("ops", true).await.unwrap();
        let id = env.package("standard").await;
        env.put(id, "b.txt", b"two").await;
        env.registry.finalize_package(id, "tester").await.unwrap();
        let tar = bundle_bytes(&env.registry, id).await;
        verify_bundle(&tar[..], env.registry.log_verifier_key()).unwrap();
        let head = env.event_count().await;
        sqlx::query(&format!(
            "DELETE FROM events WHERE sequence >= {}",
            head - 1
        ))
        .execute(env.registry.store().pool())
        .await
        .unwrap();
        sqlx::query(&format!("UPDATE log_head SET sequence = {}", head - 2))
            .execute(env.registry.store().pool())
            .await
            .unwrap();
        let err = env.replica().await.check_log_at_start().await.unwrap_err();
        assert!(
            err.to_string().contains("anchor on backend `s3`"),
            "{server}: {err}"
        );
    }
}
