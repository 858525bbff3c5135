//! Metadata schemas cannot freeze the server: costly ones are refused at
//! registration, and validation runs off the async workers within a time
//! budget while everything else keeps being answered.
//!
//! Its own test binary: a validation that ran over its budget keeps its
//! blocking thread busy until it ends, which is until this process exits.

use std::time::{Duration, Instant};

use artifactstore_registry::{Config, Registry};
use artifactstore_server::{serve, ServerOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The schema of the report: `levels` `$defs`, each an `anyOf` of two
/// `$ref`s to the next: small as text, exponential to check.
fn ref_chain(levels: usize) -> Value {
    let mut defs = serde_json::Map::new();
    for level in 0..levels {
        let next = format!("#/$defs/d{}", level + 1);
        defs.insert(
            format!("d{level}"),
            json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
        );
    }
    defs.insert(format!("d{levels}"), json!({"type": "string"}));
    json!({"$defs": defs, "$ref": "#/$defs/d0"})
}

async fn start(edit: impl FnOnce(&mut Config)) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    edit(&mut config);
    let registry = Registry::open(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        registry,
        ServerOptions::default(),
        std::future::pending(),
    ));
    (base, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_schemas_are_refused_and_validation_never_blocks_the_server() {
    let client = reqwest::Client::new();

    // With the default limits, the 1.3 KB chain is refused at registration.
    let (base, _dir) = start(|_| {}).await;
    let refused = client
        .put(format!("{base}/v1/metadata-schemas/chain"))
        .json(&ref_chain(20))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "schema_invalid");
    assert!(
        problem["detail"].as_str().unwrap().contains("expands"),
        "{problem}"
    );
    let oversized = json!({"type": "object", "description": "x".repeat(300 * 1024)});
    let refused = client
        .put(format!("{base}/v1/metadata-schemas/big"))
        .json(&oversized)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A server whose operator lifted the complexity limit still answers
    // while two creates check metadata against the chain: each is cut at
    // the validation budget with 422.
    let (base, _dir) = start(|config| {
        config.limits.max_schema_complexity = u64::MAX;
        config.limits.schema_validation_timeout_ms = 100;
    })
    .await;
    let registered = client
        .put(format!("{base}/v1/metadata-schemas/chain"))
        .json(&ref_chain(24))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let create = |name: &str| {
        client
            .post(format!("{base}/v1/packages"))
            .json(&json!({
                "name": name, "producer": "ci", "subject": "s", "retention_class": "standard",
                "metadata": {"run": 1}, "metadata_schema": "chain"
            }))
            .send()
    };
    let started = Instant::now();
    let (first, second) = (tokio::spawn(create("a")), tokio::spawn(create("b")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..5 {
        let asked = Instant::now();
        let health = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "/health took {:?} while schemas were checked",
            asked.elapsed()
        );
    }
    for create in [first, second] {
        let answer = tokio::time::timeout(Duration::from_secs(10), create)
            .await
            .expect("a create was not cut at the validation budget")
            .unwrap()
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["code"], "metadata_invalid");
        assert!(
            problem["detail"].as_str().unwrap().contains("100 ms"),
            "{problem}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // Nothing was recorded for them.
    let packages: Value = client
        .get(format!("{base}/v1/packages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(packages["items"], json!([]));
}
