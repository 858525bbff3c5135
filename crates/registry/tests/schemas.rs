//! Metadata schemas: registration as events, full validation at creation.

mod common;

use common::{new_package, TestEnv};

fn schema() -> serde_json::Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["run", "branch"],
        "properties": {
            "run": {"type": "integer", "minimum": 1},
            "branch": {"type": "string", "pattern": "^[a-z]+$"},
            "coverage": {"type": "string", "format": "uuid"}
        },
        "additionalProperties": false
    })
}

engine_tests! {
    async fn register_is_idempotent_by_slug_and_conflicts_on_a_different_body() {
        let env = TestEnv::new().await;
        let (first, created) = env.registry.register_schema("ci-run", &schema(), "admin").await.unwrap();
        assert!(created);
        let head = env.event_count().await;
        assert_eq!(head, 1);
        let (again, created_again) = env.registry.register_schema("ci-run", &schema(), "admin").await.unwrap();
        assert!(!created_again);
        assert_eq!(again.id, first.id);
        assert_eq!(env.event_count().await, head);
        let other = serde_json::json!({"type": "object"});
        assert_eq!(
            env.registry.register_schema("ci-run", &other, "admin").await.unwrap_err().code(),
            "schema_conflict"
        );
        assert_eq!(env.registry.get_schema("ci-run").await.unwrap().schema, schema());
        assert_eq!(env.registry.get_schema("nope").await.unwrap_err().code(), "schema_not_found");
        let bad = serde_json::json!({"type": "no-such-type"});
        assert_eq!(env.registry.register_schema("bad", &bad, "admin").await.unwrap_err().code(), "schema_invalid");
        assert_eq!(
            env.registry.register_schema("Bad Slug", &schema(), "admin").await.unwrap_err().code(),
            "invalid_input"
        );
    }
}

engine_tests! {
    async fn metadata_is_validated_with_every_keyword() {
        let env = TestEnv::new().await;
        env.registry.register_schema("ci-run", &schema(), "admin").await.unwrap();
        let create = |metadata: serde_json::Value| {
            let mut new = new_package("p", "standard");
            new.metadata = metadata;
            new.metadata_schema = Some("ci-run".into());
            new
        };
        let ok = env
            .registry
            .create_package(create(serde_json::json!({"run": 3, "branch": "main"})), "t")
            .await
            .unwrap();
        let schema_id = env.registry.get_schema("ci-run").await.unwrap().id;
        assert_eq!(ok.metadata_schema_id, Some(schema_id));
        let head = env.event_count().await;
        for bad in [
            serde_json::json!({"branch": "main"}),                              // required
            serde_json::json!({"run": 0, "branch": "main"}),                    // minimum
            serde_json::json!({"run": 1, "branch": "Main"}),                    // pattern
            serde_json::json!({"run": 1, "branch": "main", "extra": 1}),        // additionalProperties
            serde_json::json!({"run": "1", "branch": "main"}),                  // type
        ] {
            let err = env.registry.create_package(create(bad.clone()), "t").await.unwrap_err();
            assert_eq!(err.code(), "metadata_invalid", "{bad}");
        }
        let mut unknown = create(serde_json::json!({}));
        unknown.metadata_schema = Some("unregistered".into());
        assert_eq!(env.registry.create_package(unknown, "t").await.unwrap_err().code(), "metadata_invalid");
        assert_eq!(env.event_count().await, head);
    }
}
