//! Retention: default expiry, extension, holds, sweep, history.

mod common;

use artifactstore_registry::core::Timestamp;
use common::{new_package, TestEnv};

const DAY: i64 = 86_400;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

engine_tests! {
    async fn default_expiry_is_creation_plus_class_duration() {
        let env = TestEnv::new().await;
        for (class, expected) in [
            ("ephemeral", Some("2026-01-08T00:00:00.000000Z")),
            ("standard", Some("2026-04-01T00:00:00.000000Z")),
            ("permanent", None),
        ] {
            let package = env.registry.create_package(new_package("p", class), "t").await.unwrap();
            let created = package.created_at;
            let state = env.registry.retention_state(package.id.parse().unwrap()).await.unwrap();
            let expected = expected.map(|_| created.plus_seconds(if class == "ephemeral" { 7 * DAY } else { 90 * DAY }).unwrap());
            assert_eq!(state.expires_at, expected, "{class}");
            assert_eq!(package.expires_at, expected);
            assert!(!state.eligible_for_deletion);
        }
        let classes: Vec<String> = env.registry.retention_classes().into_iter().map(|c| c.id).collect();
        assert_eq!(classes, ["ephemeral", "long-term", "permanent", "standard"]);
    }
}

engine_tests! {
    async fn extend_requires_a_strictly_later_time_and_a_reason() {
        let env = TestEnv::new().await;
        let package = env.package("ephemeral").await;
        let current = env.registry.retention_state(package).await.unwrap().expires_at.unwrap();
        let head = env.event_count().await;
        for (at, reason) in [(current, "same"), (current.plus_seconds(-1).unwrap(), "earlier"), (current.plus_seconds(DAY).unwrap(), "  ")] {
            let err = env.registry.extend_retention(package, at, reason, "t").await.unwrap_err();
            assert_eq!(err.code(), "retention_refused", "{reason}");
        }
        assert_eq!(env.event_count().await, head);
        let later = current.plus_seconds(30 * DAY).unwrap();
        let state = env.registry.extend_retention(package, later, "audit asked", "t").await.unwrap();
        assert_eq!(state.expires_at, Some(later));
        assert_eq!(env.registry.get_package(package).await.unwrap().expires_at, Some(later));
        let never = env.package("permanent").await;
        let err = env.registry.extend_retention(never, later, "why", "t").await.unwrap_err();
        assert_eq!(err.code(), "retention_refused");
    }
}

engine_tests! {
    async fn holds_protect_sweep_marks_only_expired_unheld_and_last_release_marks_eligible() {
        let env = TestEnv::new().await;
        let held = env.package("ephemeral").await;
        let free = env.package("ephemeral").await;
        let young = env.package("standard").await;
        let hold_a: uuid::Uuid = env.registry.apply_hold(held, "litigation", "legal").await.unwrap().parse().unwrap();
        let hold_b: uuid::Uuid = env.registry.apply_hold(held, "audit", "legal").await.unwrap().parse().unwrap();
        assert_eq!(env.registry.retention_state(held).await.unwrap().active_holds.len(), 2);

        assert!(env.registry.sweep("sweeper").await.unwrap().is_empty(), "nothing expired yet");
        env.clock.advance_seconds(8 * DAY);
        let marked = env.registry.sweep("sweeper").await.unwrap();
        assert_eq!(marked, [free.to_string()]);
        assert!(env.registry.retention_state(free).await.unwrap().eligible_for_deletion);
        assert!(!env.registry.retention_state(held).await.unwrap().eligible_for_deletion);
        assert!(!env.registry.retention_state(young).await.unwrap().eligible_for_deletion);
        assert!(env.registry.sweep("sweeper").await.unwrap().is_empty(), "already marked");

        let after_first = env.registry.release_hold(held, hold_a, "settled", "legal").await.unwrap();
        assert!(!after_first.eligible_for_deletion, "another hold remains");
        assert_eq!(after_first.active_holds.len(), 1);
        let err = env.registry.release_hold(held, hold_a, "again", "legal").await.unwrap_err();
        assert_eq!(err.code(), "retention_refused");
        let err = env.registry.release_hold(held, uuid::Uuid::new_v4(), "who", "legal").await.unwrap_err();
        assert_eq!(err.code(), "hold_not_found");
        let after_last = env.registry.release_hold(held, hold_b, "closed", "legal").await.unwrap();
        assert!(after_last.eligible_for_deletion);
        assert!(after_last.active_holds.is_empty());

        let history: Vec<String> = env
            .registry
            .retention_history(held)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(
            history,
            [
                "v1.retention.default_applied",
                "v1.retention.hold_applied",
                "v1.retention.hold_applied",
                "v1.retention.hold_released",
                "v1.retention.hold_released",
                "v1.retention.deletion_eligible",
            ]
        );
        let sequences: Vec<i64> = env.registry.retention_history(held).await.unwrap().iter().map(|e| e.sequence).collect();
        assert!(sequences.windows(2).all(|w| w[0] < w[1]));
        assert!(env.registry.replay_check().await.unwrap().identical);
    }
}

engine_tests! {
    async fn extending_an_eligible_package_takes_eligibility_back() {
        let env = TestEnv::new().await;
        let package = env.package("ephemeral").await;
        env.clock.advance_seconds(8 * DAY);
        env.registry.sweep("s").await.unwrap();
        assert!(env.registry.retention_state(package).await.unwrap().eligible_for_deletion);
        let later = ts("2027-01-01T00:00:00Z");
        let state = env.registry.extend_retention(package, later, "needed after all", "t").await.unwrap();
        assert!(!state.eligible_for_deletion);
    }
}

engine_tests! {
    async fn a_hold_takes_back_deletion_eligibility() {
        let env = TestEnv::new().await;
        let package = env.package("ephemeral").await;
        env.clock.advance_seconds(8 * DAY);
        assert_eq!(env.registry.sweep("s").await.unwrap(), [package.to_string()]);
        let hold: uuid::Uuid = env.registry.apply_hold(package, "late litigation", "legal").await.unwrap().parse().unwrap();
        let state = env.registry.retention_state(package).await.unwrap();
        assert!(!state.eligible_for_deletion, "a held package is never eligible");
        assert!(env.registry.sweep("s").await.unwrap().is_empty());
        let released = env.registry.release_hold(package, hold, "settled", "legal").await.unwrap();
        assert!(released.eligible_for_deletion);
        assert!(env.registry.replay_check().await.unwrap().identical);
    }
}
