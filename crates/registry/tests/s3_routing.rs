//! One deployment routing some producers to the filesystem and others to an
//! S3-compatible store; ingest, reads, verification and health on S3.

mod common;

use artifactstore_registry::config::{BackendConfig, BackendType, RoutingRule};
use artifactstore_registry::core::FileDigests;
use artifactstore_storage::{Backend, S3Backend, S3Settings};
use common::{new_package, read_all, s3_backend, TestEnv, S3_SERVERS};

async fn routed_env(s3: BackendConfig) -> TestEnv {
    TestEnv::with_config(|config| {
        config.backends = vec![
            BackendConfig {
                id: "local".into(),
                kind: BackendType::Filesystem,
                root: Some(config.data_dir.join("objects")),
                endpoint: None,
                region: None,
                bucket: None,
                path_style: false,
                access_key_id: None,
                secret_access_key: None,
                prefix: None,
                stall_timeout_seconds: None,
            },
            s3,
        ];
        config.routing.default_backend = Some("local".into());
        config.routing.rules = vec![RoutingRule {
            producer: Some("compliance".into()),
            retention_class: None,
            backend: "archive".into(),
        }];
    })
    .await
}

fn direct(config: &BackendConfig) -> S3Backend {
    S3Backend::new(S3Settings {
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
    async fn producers_are_routed_and_s3_files_ingest_read_and_verify() {
        for server in S3_SERVERS {
            let Some(s3) = s3_backend(server, "archive") else { continue };
            let env = routed_env(s3.clone()).await;
            let mut evidence = new_package("evidence", "long-term");
            evidence.producer = "compliance".into();
            let evidence: uuid::Uuid = env.registry.create_package(evidence, "t").await.unwrap().id.parse().unwrap();
            let ci = env.package("standard").await;

            let small = b"audit trail".repeat(100);
            let large: Vec<u8> = (0..9 * 1024 * 1024 + 7).map(|i| (i % 241) as u8).collect();
            let a = env.put(evidence, "trail.txt", &small).await;
            let b = env
                .registry
                .ingest_file(evidence, "dump.bin", "application/octet-stream", body_chunks(&large), Default::default(), "t")
                .await
                .unwrap();
            let c = env.put(ci, "build.log", b"ok").await;
            assert_eq!((a.backend_id.as_str(), b.backend_id.as_str(), c.backend_id.as_str()), ("archive", "archive", "local"));
            assert_eq!(b.sha256, FileDigests::of(&large).sha256.to_hex());
            assert_eq!(read_all(env.registry.open_file(&b, None).await.unwrap()).await, large);
            assert_eq!(read_all(env.registry.open_file(&b, Some(100..200)).await.unwrap()).await, large[100..200]);
            env.registry.finalize_package(evidence, "t").await.unwrap();

            let report = env.registry.verify_storage(Some("archive"), "v").await.unwrap();
            assert_eq!((report.checked, report.failed), (2, 0), "{server}");
            let health = env.registry.health().await;
            assert!(health.ok, "{server}: {health:?}");
            assert_eq!(health.backends.len(), 2);

            // An object lost from the bucket is found, recorded and counted.
            direct(&s3).delete(&a.object_key).await.unwrap();
            let report = env.registry.verify_storage(None, "v").await.unwrap();
            assert_eq!((report.checked, report.failed), (3, 1), "{server}");
            assert_eq!(env.registry.health().await.failed_locations, 1);
            assert!(env.registry.replay_check().await.unwrap().identical);
        }
    }
}

fn body_chunks(
    data: &[u8],
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = data
        .chunks(256 * 1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}
