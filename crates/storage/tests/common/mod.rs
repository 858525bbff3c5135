//! What the storage test files share: the real S3 servers' settings from
//! the environment, and writing and reading test data.

use artifactstore_core::ContentAddress;
use artifactstore_storage::{Backend, ByteStream, S3Settings, DEFAULT_STALL_TIMEOUT};
use bytes::Bytes;
use futures::StreamExt;

/// The settings of S3 server `name` (GARAGE, CEPH) from the environment,
/// under a fresh key prefix so runs and tests stay apart in one bucket;
/// `None` when it is not configured (skipped, or failed under CI:
/// [`artifactstore_testkit::skip_or_fail`]).
pub fn s3_settings(name: &str) -> Option<S3Settings> {
    let server = artifactstore_testkit::s3_server(name)?;
    Some(S3Settings {
        id: name.to_lowercase(),
        endpoint: Some(server.endpoint),
        region: server.region.unwrap_or_else(|| "us-east-1".into()),
        bucket: server.bucket.expect("the server's bucket"),
        path_style: true,
        access_key_id: server.access_key_id,
        secret_access_key: server.secret_access_key,
        prefix: server.prefix,
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
