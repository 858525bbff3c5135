//! One conformance suite for every backend: the local filesystem always,
//! and the real S3-compatible servers `.ci/run` starts (Garage and Ceph
//! RGW, see `scripts/s3/test-services`). Without a server's environment the
//! S3 runs are skipped with a printed reason, except under `CI=true`, where
//! a missing service is a failure.

mod common;

use std::sync::Arc;

use artifactstore_core::{ContentAddress, FileDigests};
use artifactstore_storage::{Backend, FilesystemBackend, S3Backend, S3Settings, StorageError};
use bytes::Bytes;
use common::{pattern, read, store};

struct Target {
    backend: Arc<dyn Backend>,
    _dir: Option<tempfile::TempDir>,
}

async fn filesystem() -> Option<Target> {
    let dir = tempfile::tempdir().unwrap();
    let backend = FilesystemBackend::open("local", dir.path()).await.unwrap();
    Some(Target {
        backend: Arc::new(backend),
        _dir: Some(dir),
    })
}

fn s3(name: &str) -> Option<Target> {
    let backend = S3Backend::new(common::s3_settings(name)?).unwrap();
    Some(Target {
        backend: Arc::new(backend),
        _dir: None,
    })
}

async fn round_trip_with_ranges(backend: &dyn Backend) {
    let data = pattern(100_000);
    let key = store(backend, &data, 7_777).await;
    assert_eq!(backend.size(&key).await.unwrap(), Some(100_000));
    assert_eq!(read(backend.open(&key, None).await.unwrap()).await, data);
    for range in [0..1, 5..10, 99_999..100_000, 0..100_000, 4096..70_000] {
        let got = read(backend.open(&key, Some(range.clone())).await.unwrap()).await;
        assert_eq!(
            got,
            data[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
    let empty = read(backend.open(&key, Some(100_000..100_000)).await.unwrap()).await;
    assert!(empty.is_empty());
}

async fn large_objects_go_up_in_parts(backend: &dyn Backend) {
    // Past the single-PUT limit: the multipart path, with a copy to the key.
    let data = pattern(20 * 1024 * 1024 + 12_345);
    let key = store(backend, &data, 1024 * 1024).await;
    let back = read(backend.open(&key, None).await.unwrap()).await;
    assert_eq!(FileDigests::of(&back), FileDigests::of(&data));
    let tail = read(
        backend
            .open(&key, Some(20 * 1024 * 1024..20 * 1024 * 1024 + 12_345))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tail, data[20 * 1024 * 1024..]);
}

async fn identical_bytes_commit_twice_to_one_object(backend: &dyn Backend) {
    let data = b"the same evidence".to_vec();
    let first = store(backend, &data, 4).await;
    let second = store(backend, &data, 5).await;
    assert_eq!(first, second);
    assert_eq!(read(backend.open(&first, None).await.unwrap()).await, data);
}

async fn empty_objects_work(backend: &dyn Backend) {
    let key = store(backend, b"", 1).await;
    assert_eq!(backend.size(&key).await.unwrap(), Some(0));
    assert!(read(backend.open(&key, None).await.unwrap())
        .await
        .is_empty());
}

async fn aborted_writes_leave_nothing(backend: &dyn Backend) {
    for size in [10, 12 * 1024 * 1024] {
        let data = pattern(size);
        let key = ContentAddress::of(&data).object_key();
        let mut writer = backend.begin_write().await.unwrap();
        for piece in data.chunks(1024 * 1024) {
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        writer.abort().await.unwrap();
        assert_eq!(backend.size(&key).await.unwrap(), None, "{size}");
    }
}

async fn write_declared(
    backend: &dyn Backend,
    data: &[u8],
    declared: &str,
) -> Box<dyn artifactstore_storage::ObjectWriter> {
    let mut writer = backend.begin_write_expecting(declared).await.unwrap();
    for piece in data.chunks(1024 * 1024) {
        writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    writer
}

async fn declared_keys_show_only_matching_bytes(backend: &dyn Backend) {
    // Past the single-PUT limit, so S3 uploads in parts straight to the
    // declared key.
    let data = pattern(12 * 1024 * 1024 + 99);
    let key = ContentAddress::of(&data).object_key();
    // Declared as something else: the commit under the real key is refused
    // and nothing appears under either key.
    let wrong = ContentAddress::of(b"other bytes").object_key();
    let writer = write_declared(backend, &data, &wrong).await;
    assert!(writer.commit(&key).await.is_err());
    assert_eq!(backend.size(&wrong).await.unwrap(), None);
    assert_eq!(backend.size(&key).await.unwrap(), None);
    // Declared, then aborted: nothing.
    let writer = write_declared(backend, &data, &key).await;
    writer.abort().await.unwrap();
    assert_eq!(backend.size(&key).await.unwrap(), None);
    // Declared right: stored, and twice over is one object.
    for _ in 0..2 {
        let writer = write_declared(backend, &data, &key).await;
        writer.commit(&key).await.unwrap();
    }
    let back = read(backend.open(&key, None).await.unwrap()).await;
    assert_eq!(FileDigests::of(&back), FileDigests::of(&data));
}

async fn missing_and_deleted_objects_are_not_found(backend: &dyn Backend) {
    let key = store(backend, b"to be deleted", 3).await;
    backend.delete(&key).await.unwrap();
    assert_eq!(backend.size(&key).await.unwrap(), None);
    assert!(matches!(
        backend.open(&key, None).await,
        Err(StorageError::NotFound(_))
    ));
    backend.delete(&key).await.unwrap();
    backend.probe().await.unwrap();
}

async fn listing_shows_committed_objects_with_their_sizes(backend: &dyn Backend) {
    let key = store(backend, b"listed bytes", 5).await;
    let aborted = backend.begin_write().await.unwrap();
    aborted.abort().await.unwrap();
    let listed = backend.list().await.unwrap();
    let found = listed
        .iter()
        .find(|o| o.key == key)
        .unwrap_or_else(|| panic!("{key} not listed: {listed:?}"));
    assert_eq!(found.size_bytes, 12);
    assert!(found.modified.elapsed().unwrap_or_default() < std::time::Duration::from_secs(600));
    backend.delete(&key).await.unwrap();
    assert!(!backend.list().await.unwrap().iter().any(|o| o.key == key));
}

async fn small_named_objects_are_replaced_whole_and_never_listed(backend: &dyn Backend) {
    let key = format!("log/conformance-{}", uuid::Uuid::new_v4().simple());
    backend
        .replace_small(&key, bytes::Bytes::from_static(b"first checkpoint"))
        .await
        .unwrap();
    backend
        .replace_small(&key, bytes::Bytes::from_static(b"second"))
        .await
        .unwrap();
    assert_eq!(backend.size(&key).await.unwrap(), Some(6));
    let mut back = Vec::new();
    let mut stream = backend.open(&key, None).await.unwrap();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        back.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(back, b"second");
    // The collector must never see it: it is not content.
    assert!(!backend.list().await.unwrap().iter().any(|o| o.key == key));
    // Content addresses are never replaced through it.
    let content = store(backend, b"content stays", 9).await;
    assert!(backend
        .replace_small(&content, bytes::Bytes::from_static(b"x"))
        .await
        .is_err());
    backend.delete(&key).await.unwrap();
    backend.delete(&content).await.unwrap();
}

const STAGED_PART: u64 = 8 * 1024 * 1024; // S3 parts are 5 MiB or more

fn pieces(data: &[u8]) -> Vec<Bytes> {
    data.chunks(1_000_003).map(Bytes::copy_from_slice).collect()
}

async fn resumable_uploads_stage_parts_and_a_tail(backend: &dyn Backend) {
    let staging = backend.resumable().expect("resumable staging");
    let data = pattern(2 * STAGED_PART as usize + 777_777);
    let key = ContentAddress(FileDigests::of(&data).blake3).object_key();
    let upload_id = uuid::Uuid::new_v4().to_string();
    let handle = staging.start(&upload_id, None).await.unwrap();
    let part = STAGED_PART as usize;
    // Part 1 first, stored twice (a retry replaces it), then part 0.
    let mut receipts = vec![String::new(), String::new()];
    for index in [1usize, 1, 0] {
        let bytes = pieces(&data[index * part..(index + 1) * part]);
        receipts[index] = staging
            .put_part(&handle, index as u64, STAGED_PART, bytes)
            .await
            .unwrap();
    }
    // The tail grows across requests and reads back as written.
    let tail_at = 2 * STAGED_PART;
    staging
        .put_tail(&handle, tail_at, pieces(&data[2 * part..2 * part + 1000]))
        .await
        .unwrap();
    staging
        .put_tail(&handle, tail_at, pieces(&data[2 * part..]))
        .await
        .unwrap();
    let back: Vec<u8> = staging
        .read_tail(&handle, tail_at, 500_000)
        .await
        .unwrap()
        .concat();
    assert_eq!(back, data[2 * part..2 * part + 500_000]);
    // Nothing is visible or listed before the commit.
    assert_eq!(backend.size(&key).await.unwrap(), None);
    let listed = backend.list().await.unwrap();
    assert!(!listed.iter().any(|o| o.key.contains(&upload_id)));
    staging
        .commit(&handle, &receipts, tail_at, pieces(&data[2 * part..]), &key)
        .await
        .unwrap();
    let stored = read(backend.open(&key, None).await.unwrap()).await;
    assert_eq!(FileDigests::of(&stored), FileDigests::of(&data));
    // Committed: nothing staged is left (aborting again is harmless).
    staging.abort(&handle).await.unwrap();
    assert!(!backend
        .list()
        .await
        .unwrap()
        .iter()
        .any(|o| o.key.contains(&upload_id)));
    backend.delete(&key).await.unwrap();
}

/// A request may store parts and a tail past the progress saved last and
/// never save its own (a crash between the two, or a save lost with the
/// machine's power): the saved offset's tail still reads back as it was,
/// and the upload, resumed from there, completes with its own bytes.
async fn a_tail_stored_past_the_saved_progress_leaves_the_saved_one(backend: &dyn Backend) {
    let staging = backend.resumable().expect("resumable staging");
    let part = STAGED_PART as usize;
    // Each part's bytes unlike the others' (the pattern repeats every
    // 64 KiB, so every part would read the same).
    let data: Vec<u8> = pattern(3 * part + 5000)
        .into_iter()
        .enumerate()
        .map(|(i, byte)| byte ^ (i / part) as u8)
        .collect();
    let key = ContentAddress(FileDigests::of(&data).blake3).object_key();
    let handle = staging
        .start(&uuid::Uuid::new_v4().to_string(), None)
        .await
        .unwrap();
    // Saved: part 0 and a tail of 1000 bytes.
    let mut receipts = vec![staging
        .put_part(&handle, 0, STAGED_PART, pieces(&data[..part]))
        .await
        .unwrap()];
    staging
        .put_tail(&handle, STAGED_PART, pieces(&data[part..part + 1000]))
        .await
        .unwrap();
    let store_part = |index: usize| {
        staging.put_part(
            &handle,
            index as u64,
            STAGED_PART,
            pieces(&data[index * part..(index + 1) * part]),
        )
    };
    // The request after it: parts 1 and 2 (the first begins with the
    // saved tail's bytes), then a tail from part 3, never saved.
    for index in [1, 2] {
        store_part(index).await.unwrap();
    }
    staging
        .put_tail(
            &handle,
            3 * STAGED_PART,
            pieces(&data[3 * part..3 * part + 4000]),
        )
        .await
        .unwrap();
    let back: Vec<u8> = staging
        .read_tail(&handle, STAGED_PART, 1000)
        .await
        .unwrap()
        .concat();
    assert_eq!(back, data[part..part + 1000]);
    // Resumed from the saved offset: parts 1 and 2 again, the rest as the tail.
    for index in [1, 2] {
        receipts.push(store_part(index).await.unwrap());
    }
    staging
        .put_tail(&handle, 3 * STAGED_PART, pieces(&data[3 * part..]))
        .await
        .unwrap();
    // Once saved progress names the new tail, the old one may go.
    staging.drop_tail(&handle, STAGED_PART).await.unwrap();
    let back: Vec<u8> = staging
        .read_tail(&handle, 3 * STAGED_PART, 5000)
        .await
        .unwrap()
        .concat();
    assert_eq!(back, data[3 * part..]);
    staging
        .commit(
            &handle,
            &receipts,
            3 * STAGED_PART,
            pieces(&data[3 * part..]),
            &key,
        )
        .await
        .unwrap();
    let stored = read(backend.open(&key, None).await.unwrap()).await;
    assert_eq!(FileDigests::of(&stored), FileDigests::of(&data));
    // Committed: no tail is left to read.
    for at in [STAGED_PART, 3 * STAGED_PART] {
        assert!(staging.read_tail(&handle, at, 1).await.is_err());
    }
    backend.delete(&key).await.unwrap();
}

async fn resumable_uploads_smaller_than_a_part_and_aborted_ones(backend: &dyn Backend) {
    let staging = backend.resumable().expect("resumable staging");
    for data in [Vec::new(), b"one small file".to_vec()] {
        let key = ContentAddress(FileDigests::of(&data).blake3).object_key();
        let handle = staging
            .start(&uuid::Uuid::new_v4().to_string(), None)
            .await
            .unwrap();
        staging.put_tail(&handle, 0, pieces(&data)).await.unwrap();
        staging
            .commit(&handle, &[], 0, pieces(&data), &key)
            .await
            .unwrap();
        assert_eq!(read(backend.open(&key, None).await.unwrap()).await, data);
        backend.delete(&key).await.unwrap();
    }
    // Aborted: its tail cannot be read back, nothing became an object.
    let handle = staging
        .start(&uuid::Uuid::new_v4().to_string(), None)
        .await
        .unwrap();
    let data = pattern(STAGED_PART as usize);
    staging
        .put_part(&handle, 0, STAGED_PART, pieces(&data))
        .await
        .unwrap();
    staging
        .put_tail(&handle, STAGED_PART, pieces(b"tail"))
        .await
        .unwrap();
    staging.abort(&handle).await.unwrap();
    assert!(staging.read_tail(&handle, STAGED_PART, 4).await.is_err());
    // Handles that are not this backend's are refused, not followed.
    assert!(staging.abort("../../etc").await.is_err());
    assert!(staging.read_tail("not a handle", 0, 1).await.is_err());
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod filesystem {
            $(#[tokio::test]
            async fn $case() {
                if let Some(target) = super::filesystem().await {
                    super::$case(target.backend.as_ref()).await;
                }
            })*
        }
        mod garage {
            $(#[tokio::test]
            async fn $case() {
                if let Some(target) = super::s3("GARAGE") {
                    super::$case(target.backend.as_ref()).await;
                }
            })*
        }
        mod ceph_rgw {
            $(#[tokio::test]
            async fn $case() {
                if let Some(target) = super::s3("CEPH") {
                    super::$case(target.backend.as_ref()).await;
                }
            })*
        }
    };
}

conformance!(
    round_trip_with_ranges,
    large_objects_go_up_in_parts,
    identical_bytes_commit_twice_to_one_object,
    empty_objects_work,
    aborted_writes_leave_nothing,
    declared_keys_show_only_matching_bytes,
    missing_and_deleted_objects_are_not_found,
    listing_shows_committed_objects_with_their_sizes,
    small_named_objects_are_replaced_whole_and_never_listed,
    resumable_uploads_stage_parts_and_a_tail,
    resumable_uploads_smaller_than_a_part_and_aborted_ones,
    a_tail_stored_past_the_saved_progress_leaves_the_saved_one,
);

/// Wrong credentials are a refusal to fix, not an outage to retry.
async fn wrong_credentials_are_refused(name: &str) {
    let Some(settings) = common::s3_settings(name) else {
        return;
    };
    let backend = S3Backend::new(S3Settings {
        secret_access_key: Some("not-the-secret".into()),
        ..settings
    })
    .unwrap();
    let err = backend.probe().await.unwrap_err();
    assert!(
        matches!(err, StorageError::Refused { .. }),
        "{name}: {err:?}"
    );
}

#[tokio::test]
async fn garage_wrong_credentials_are_refused() {
    wrong_credentials_are_refused("GARAGE").await;
}

#[tokio::test]
async fn ceph_rgw_wrong_credentials_are_refused() {
    wrong_credentials_are_refused("CEPH").await;
}

/// An upload staged on S3 by a version that kept one tail per upload,
/// unnamed (`uploads/<id>.tail`), still reads its tail back after an
/// upgrade, and its removal takes that tail too.
async fn a_tail_staged_before_tails_were_named_reads_back(name: &str) {
    let Some(target) = s3(name) else {
        return;
    };
    let backend = target.backend.as_ref();
    let staging = backend.resumable().expect("resumable staging");
    let upload_id = uuid::Uuid::new_v4().to_string();
    let handle = staging.start(&upload_id, None).await.unwrap();
    let unnamed = format!("uploads/{upload_id}.tail");
    backend
        .replace_small(
            &unnamed,
            Bytes::from_static(b"the tail of an older version"),
        )
        .await
        .unwrap();
    let back: Vec<u8> = staging
        .read_tail(&handle, STAGED_PART, 11)
        .await
        .unwrap()
        .concat();
    assert_eq!(back, b"the tail of");
    staging.abort(&handle).await.unwrap();
    assert_eq!(backend.size(&unnamed).await.unwrap(), None);
}

#[tokio::test]
async fn garage_a_tail_staged_before_tails_were_named_reads_back() {
    a_tail_staged_before_tails_were_named_reads_back("GARAGE").await;
}

#[tokio::test]
async fn ceph_rgw_a_tail_staged_before_tails_were_named_reads_back() {
    a_tail_staged_before_tails_were_named_reads_back("CEPH").await;
}
