//! What the storage test files share: the real S3 servers' settings from
//! the environment, and writing and reading test data.

use artifactstore_core::ContentAddress;
use artifactstore_storage::{Backend, ByteStream, S3Settings, DEFAULT_STALL_TIMEOUT};
use bytes::Bytes;
use futures::StreamExt;

/// The settings of S3 server `name` (GARAGE, CEPH) from the environment,
/// under a fresh key prefix so runs and tests stay apart in one bucket.
/// Without the server's environment: `None` and a printed reason, or a
/// panic under `CI=true`, where a missing service is a failure.
pub fn s3_settings(name: &str) -> Option<S3Settings> {
    let var = |field: &str| std::env::var(format!("ARTIFACTSTORE_TEST_{name}_{field}")).ok();
    let Some(endpoint) = var("ENDPOINT") else {
        let reason = format!("ARTIFACTSTORE_TEST_{name}_ENDPOINT is not set (start it: eval \"$(scripts/s3/test-services up)\")");
        if artifactstore_core::flag::in_ci() {
            panic!("{reason}; CI=true: a missing service is a failure");
        }
        // Written to the stream itself: the test harness hides eprintln! of
        // passing tests, and a skip must be seen.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED ({name}): {reason}");
        return None;
    };
    Some(S3Settings {
        id: name.to_lowercase(),
        endpoint: Some(endpoint),
        region: var("REGION").unwrap_or_else(|| "us-east-1".into()),
        bucket: var("BUCKET").expect("bucket"),
        path_style: true,
        access_key_id: var("ACCESS_KEY_ID"),
        secret_access_key: var("SECRET_ACCESS_KEY"),
        prefix: format!("tests/{}", uuid::Uuid::new_v4()),
        stall_timeout: DEFAULT_STALL_TIMEOUT,
    })
}

/// Writes `data` in `chunk`-sized pieces and commits it under its address.
pub async fn store(backend: &dyn Backend, data: &[u8], chunk: usize) -> String {
    let key = ContentAddress::of(data).object_key();
    let mut writer = backend.begin_write().await.unwrap();
    for piece in data.chunks(chunk.max(1)) {
        writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    writer.commit(&key).await.unwrap();
    key
}

/// Every byte of `stream`.
pub async fn read(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// `len` bytes that are not all alike, so a misplaced range shows.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}
