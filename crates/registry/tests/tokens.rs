//! API tokens: created and revoked as events, only a hash stored, checked
//! for shape, secret, revocation and expiry.

mod common;

use artifactstore_registry::core::token::Scope;
use artifactstore_store::TOKENS_PER_STATEMENT;
use common::TestEnv;

engine_tests! {
    async fn tokens_authenticate_until_revoked_or_expired() {
        let env = TestEnv::new().await;
        let (record, secret) = env
            .registry
            .create_token("ci-nightly", Scope::Write, vec!["ci".into()], None, "admin")
            .await
            .unwrap();
        assert_eq!(record.scope, "write");
        let principal = env.registry.authenticate(&secret).await.unwrap();
        assert_eq!(principal.name, "ci-nightly");
        assert_eq!(principal.scope, Scope::Write);
        assert!(principal.require(Scope::Read).is_ok());
        assert_eq!(principal.require(Scope::Admin).unwrap_err().code(), "forbidden");
        assert!(principal.may_write_producer("ci").is_ok());
        assert_eq!(principal.may_write_producer("other").unwrap_err().code(), "forbidden");

        // Only the hash is stored: the secret appears in no event and no view.
        let events = env.registry.fetch_events(0, 100).await.unwrap();
        let log: Vec<u8> = events.iter().flat_map(|e| e.payload.clone()).collect();
        let secret_part = secret.rsplit('_').next().unwrap();
        assert!(!String::from_utf8_lossy(&log).contains(secret_part));
        let views = env.registry.store().snapshot_views().await.unwrap();
        assert!(!String::from_utf8_lossy(&views).contains(secret_part));

        // A wrong secret for a real id, garbage, and an unknown id are refused alike.
        let forged = format!("{}{}", &secret[..secret.len() - 1], if secret.ends_with('0') { '1' } else { '0' });
        for bad in [forged.as_str(), "garbage", "ast_00000000000000000000000000000000_00"] {
            assert_eq!(env.registry.authenticate(bad).await.unwrap_err().code(), "unauthorized", "{bad}");
        }

        env.registry.revoke_token(&record.id, "admin").await.unwrap();
        assert_eq!(env.registry.authenticate(&secret).await.unwrap_err().code(), "unauthorized");
        assert_eq!(env.registry.revoke_token(&record.id, "admin").await.unwrap_err().code(), "invalid_input");
        assert_eq!(env.registry.revoke_token("nope", "admin").await.unwrap_err().code(), "token_not_found");

        let soon = env.registry.store().now().plus_seconds(60).unwrap();
        let (_, expiring) = env.registry.create_token("short", Scope::Read, vec![], Some(soon), "admin").await.unwrap();
        assert!(env.registry.authenticate(&expiring).await.is_ok());
        env.clock.advance_seconds(61);
        assert_eq!(env.registry.authenticate(&expiring).await.unwrap_err().code(), "unauthorized");
        let past = env.registry.store().now().plus_seconds(-1).unwrap();
        assert_eq!(
            env.registry.create_token("late", Scope::Read, vec![], Some(past), "admin").await.unwrap_err().code(),
            "invalid_input"
        );
        let listed = env.registry.list_tokens().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed[0].revoked_at.is_some());
        assert!(env.registry.replay_check().await.unwrap().identical);
    }

    async fn active_tokens_have_unique_names() {
        let env = TestEnv::new().await;
        let (first, _) = env.registry.create_token("deployer", Scope::Write, vec![], None, "admin").await.unwrap();
        let err = env.registry.create_token("deployer", Scope::Read, vec![], None, "admin").await.unwrap_err();
        assert_eq!(err.code(), "token_name_taken");
        assert!(err.to_string().contains(&first.id), "{err}");
        // Once the first is revoked (or expired) the name may be reused.
        env.registry.revoke_token(&first.id, "admin").await.unwrap();
        env.registry.create_token("deployer", Scope::Read, vec![], None, "admin").await.unwrap();
        let soon = env.registry.store().now().plus_seconds(60).unwrap();
        env.registry.create_token("short", Scope::Read, vec![], Some(soon), "admin").await.unwrap();
        assert_eq!(
            env.registry.create_token("short", Scope::Read, vec![], None, "admin").await.unwrap_err().code(),
            "token_name_taken"
        );
        env.clock.advance_seconds(61);
        env.registry.create_token("short", Scope::Read, vec![], None, "admin").await.unwrap();
        assert!(env.registry.replay_check().await.unwrap().identical);
    }

    async fn token_secrets_carry_256_random_bits() {
        let env = TestEnv::new().await;
        // A UUIDv4 fixes the version nibble (byte 6) and variant bits
        // (byte 8): secrets made of UUIDs always show them, in both halves.
        let mut fixed_bits_everywhere = true;
        for i in 0..16 {
            let (_, text) = env.registry.create_token(&format!("t{i}"), Scope::Read, vec![], None, "admin").await.unwrap();
            let secret = hex::decode(text.rsplit('_').next().unwrap()).unwrap();
            assert_eq!(secret.len(), 32);
            let uuid_shaped = |half: &[u8]| half[6] >> 4 == 4 && half[8] >> 6 == 0b10;
            fixed_bits_everywhere &= uuid_shaped(&secret[..16]) && uuid_shaped(&secret[16..]);
        }
        assert!(!fixed_bits_everywhere, "16 secrets all had UUIDv4's fixed bits");
    }

    async fn tokens_read_together_each_get_their_own_answer() {
        // Requests arriving together have their tokens read in one batch
        // (token_reads.rs): more distinct tokens than one statement looks
        // up, each presented several times, mixed with revoked, expired,
        // forged and unknown ones. Each must get exactly the answer it
        // gets alone.
        let env = TestEnv::new().await;
        let distinct = 2 * TOKENS_PER_STATEMENT + 3;
        let soon = env.registry.store().now().plus_seconds(60).unwrap();
        let mut presented: Vec<(String, Option<String>)> = Vec::new();
        for i in 0..distinct {
            let expires = (i % 5 == 4).then_some(soon);
            let (record, secret) = env
                .registry
                .create_token(&format!("client-{i}"), Scope::Write, vec![], expires, "admin")
                .await
                .unwrap();
            let forged = format!("{}{}", &secret[..secret.len() - 1], if secret.ends_with('0') { '1' } else { '0' });
            presented.push((forged, None));
            if i % 7 == 3 {
                env.registry.revoke_token(&record.id, "admin").await.unwrap();
                presented.push((secret, None));
            } else if expires.is_some() {
                presented.push((secret, None));
            } else {
                presented.push((secret, Some(format!("client-{i}"))));
            }
        }
        // Well formed, so read like the others, but no such token.
        presented.push((format!("ast_{}_{}", "0".repeat(32), "0".repeat(64)), None));
        env.clock.advance_seconds(61);
        let all: Vec<(String, Option<String>)> = presented.iter().cloned().cycle().take(presented.len() * 3).collect();
        let answers = futures::future::join_all(all.iter().map(|(text, _)| env.registry.authenticate(text))).await;
        for ((text, expected), answer) in all.iter().zip(answers) {
            match (expected, answer) {
                (Some(name), Ok(principal)) => assert_eq!(&principal.name, name, "{text}"),
                (None, Err(e)) => assert_eq!(e.code(), "unauthorized", "{text}"),
                (expected, answer) => panic!("{text}: expected {expected:?}, got {answer:?}"),
            }
        }

        // The store's read of many ids at once: chunked, padded, each
        // existing id found once whatever the repeats and unknown ids.
        let listed = env.registry.list_tokens().await.unwrap();
        let mut ids: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
        ids.push("no-such-token");
        ids.extend(listed.iter().take(3).map(|t| t.id.as_str()));
        let mut found: Vec<String> = env.registry.store().tokens_by_id(&ids).await.unwrap().into_iter().map(|t| t.id).collect();
        found.sort();
        found.dedup();
        let mut expected: Vec<String> = listed.iter().map(|t| t.id.clone()).collect();
        expected.sort();
        assert_eq!(found, expected);
        assert!(env.registry.store().tokens_by_id(&[]).await.unwrap().is_empty());
    }
}
