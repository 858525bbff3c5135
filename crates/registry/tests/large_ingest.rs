//! A 2 GiB generated stream ingests in bounded memory with both digests
//! equal to independently computed ones. Ignored by default (it writes
//! 2 GiB); `.ci/run` runs it in release mode.

mod common;

use artifactstore_registry::core::DualHasher;
use bytes::Bytes;
use common::TestEnv;

const TOTAL: u64 = 2 * 1024 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes 2 GiB; run with --ignored (CI does, in release mode)"]
async fn two_gib_stream_ingests_with_correct_digests_in_bounded_memory() {
    let env = TestEnv::new().await;
    let package = env.package("standard").await;
    let baseline = rss_kib("VmRSS:");
    let reference = std::sync::Arc::new(std::sync::Mutex::new(DualHasher::default()));
    let reference_in_stream = reference.clone();
    // Deterministic, incompressible-enough bytes: xorshift over the offset.
    let stream = futures::stream::unfold(0u64, move |offset| {
        let reference = reference_in_stream.clone();
        async move {
            if offset >= TOTAL {
                return None;
            }
            let mut state = offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut chunk = vec![0u8; CHUNK];
            for word in chunk.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
            }
            reference.lock().unwrap().update(&chunk);
            Some((
                Ok::<_, std::io::Error>(Bytes::from(chunk)),
                offset + CHUNK as u64,
            ))
        }
    });
    let file = env
        .registry
        .ingest_file(
            package,
            "big.bin",
            "application/octet-stream",
            stream,
            Default::default(),
            "t",
        )
        .await
        .unwrap();
    let peak = rss_kib("VmHWM:");
    let expected = std::mem::take(&mut *reference.lock().unwrap()).finalize();
    assert_eq!(file.size_bytes, TOTAL);
    assert_eq!(file.blake3, expected.blake3.to_hex());
    assert_eq!(file.sha256, expected.sha256.to_hex());
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    println!("peak RSS growth during a 2 GiB ingest: {growth_mib} MiB");
    assert!(growth_mib < 64, "peak RSS grew by {growth_mib} MiB");
}
