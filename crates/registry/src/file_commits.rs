//! Group commit for uploaded files.
//!
//! Every upload ends with a short write transaction that records its
//! `file.ingested` event. One at a time, each would pay for its own
//! transaction, head lock and durable commit (an fsync of SQLite's WAL),
//! which caps small-file uploads far below what the disk and the hashing
//! can do. Instead each upload, once its bytes are durable, queues its event
//! here; one task records whatever is queued in one transaction, checking
//! each file under the head lock as a lone upload would, and answers every
//! upload only after the commit. An upload that arrives alone is recorded
//! at once: nothing waits to fill a group.

use std::collections::{HashMap, HashSet};

use artifactstore_core::event::FileIngested;
use artifactstore_core::path::collision_key;
use artifactstore_core::NewEvent;
use artifactstore_store::records::status;
use artifactstore_store::{FileRecord, FileSlot, Store};

use crate::batch_queue::{fail_all, for_each, BatchQueue, Queued};
use crate::{RegistryError, RegistryResult};

/// Most files recorded in one transaction.
const MAX_GROUP: usize = 256;
/// Uploads waiting to be recorded; more wait for room.
const QUEUE: usize = 1024;

/// A file whose bytes are durable, waiting for its event.
struct StoredFile {
    ingested: FileIngested,
    actor: String,
    /// The log head read before the bytes were stored (the collection
    /// fence: docs/architecture.md, Lifecycle).
    stored_after: i64,
    /// The resumable upload this file completes, and its lock holder: the
    /// upload ends in the transaction that records the file.
    upload: Option<UploadLock>,
}

type Pending = Queued<StoredFile, FileRecord>;

/// A resumable upload and the request that holds its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadLock {
    pub(crate) upload_id: String,
    pub(crate) holder: String,
}

/// The queue of files waiting for their event; cloned into every
/// [`crate::Registry`] handle.
#[derive(Clone)]
pub(crate) struct FileCommits {
    queue: BatchQueue<StoredFile, FileRecord>,
}

impl FileCommits {
    pub(crate) fn start(store: Store, max_files_per_package: u64) -> Self {
        let queue = BatchQueue::start("file commit", MAX_GROUP, QUEUE, move |group| {
            record_group(store.clone(), max_files_per_package, group)
        });
        Self { queue }
    }

    /// Records `ingested` durably and returns the file's view row, or says
    /// why not. `stored_after` is the log head the upload read before it
    /// stored its bytes: if the collector may have deleted that object
    /// since, nothing is recorded.
    pub(crate) async fn record(
        &self,
        ingested: FileIngested,
        actor: &str,
        stored_after: i64,
        upload: Option<UploadLock>,
    ) -> RegistryResult<FileRecord> {
        self.queue
            .submit(StoredFile {
                ingested,
                actor: actor.to_owned(),
                stored_after,
                upload,
            })
            .await
    }
}

async fn record_group(store: Store, max_files: u64, group: Vec<Pending>) {
    let mut tx = match store.begin().await {
        Ok(tx) => tx,
        Err(e) => return fail_all(group, &RegistryError::from(e)),
    };
    // Every check in one query, then every append: the appends reach the
    // database in one call at commit instead of one per file.
    let wanted: Vec<(&str, &str)> = group
        .iter()
        .map(|p| {
            (
                p.request.ingested.package_id.as_str(),
                p.request.ingested.relative_path.as_str(),
            )
        })
        .collect();
    let slots = match tx.file_slots(&wanted).await {
        Ok(slots) => slots,
        Err(e) => return fail_all(group, &RegistryError::from(e)),
    };
    let keys: Vec<String> = group
        .iter()
        .map(|p| collision_key(&p.request.ingested.relative_path))
        .collect();
    let wanted_keys: Vec<(&str, &str)> = group
        .iter()
        .zip(&keys)
        .map(|(p, key)| (p.request.ingested.package_id.as_str(), key.as_str()))
        .collect();
    let conflicts = match tx.path_conflicts(&wanted_keys).await {
        Ok(conflicts) => conflicts,
        Err(e) => return fail_all(group, &RegistryError::from(e)),
    };
    // The collection fence: bytes the collector may have deleted after
    // this upload stored them are not recorded (the upload is refused and
    // can be sent again).
    let objects: Vec<(&str, &str, i64)> = group
        .iter()
        .map(|p| {
            (
                p.request.ingested.backend_id.as_str(),
                p.request.ingested.object_key.as_str(),
                p.request.stored_after,
            )
        })
        .collect();
    let collected = match tx.collected_since(&objects).await {
        Ok(collected) => collected,
        Err(e) => return fail_all(group, &RegistryError::from(e)),
    };
    let mut packages: Vec<&str> = group
        .iter()
        .map(|p| p.request.ingested.package_id.as_str())
        .collect();
    packages.sort_unstable();
    packages.dedup();
    let now = tx.now();
    let reservations = match tx.open_uploads(&packages, now).await {
        Ok(reservations) => reservations,
        Err(e) => return fail_all(group, &RegistryError::from(e)),
    };
    let mut accepted = Vec::with_capacity(group.len());
    let mut added: HashMap<String, u64> = HashMap::new();
    let mut paths: HashSet<(String, String)> = HashSet::new();
    let mut group_keys: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for ((((pending, slot), key), conflict), collected) in group
        .into_iter()
        .zip(slots)
        .zip(keys)
        .zip(conflicts)
        .zip(collected)
    {
        let fenced = if collected {
            Err(RegistryError::ObjectBeingCollected)
        } else {
            Ok(())
        };
        let checked = fenced
            .and_then(|()| {
                check(
                    slot,
                    &pending.request.ingested,
                    max_files,
                    &mut added,
                    &mut paths,
                )
            })
            .and_then(|()| {
                let path = &pending.request.ingested.relative_path;
                if let Some(existing) = conflict {
                    return Err(path_conflict(path, &existing));
                }
                let own_upload = pending
                    .request
                    .upload
                    .as_ref()
                    .map(|u| u.upload_id.as_str());
                if let Some(reserved) = reservations.iter().find(|r| {
                    r.package_id == pending.request.ingested.package_id
                        && Some(r.upload_id.as_str()) != own_upload
                        && keys_conflict(&key, &r.path_key)
                }) {
                    return Err(RegistryError::PathReserved {
                        path: path.clone(),
                        upload_id: reserved.upload_id.clone(),
                    });
                }
                // Files of this group, not yet in the view.
                let earlier = group_keys
                    .entry(pending.request.ingested.package_id.clone())
                    .or_default();
                if let Some((existing, _)) =
                    earlier.iter().find(|(_, other)| keys_conflict(&key, other))
                {
                    return Err(path_conflict(path, existing));
                }
                earlier.push((path.clone(), key));
                Ok(())
            });
        match checked {
            Ok(()) => accepted.push(pending),
            Err(refused) => {
                pending.answer(Err(refused));
            }
        }
    }
    // Each completed upload ends in the transaction that records its file;
    // one whose lock was lost (another request took it over) is refused.
    let mut completing = Vec::with_capacity(accepted.len());
    for pending in accepted {
        let Some(lock) = &pending.request.upload else {
            completing.push(pending);
            continue;
        };
        match tx.complete_upload(&lock.upload_id, &lock.holder).await {
            Ok(true) => completing.push(pending),
            Ok(false) => {
                let refused = RegistryError::UploadLocked(lock.upload_id.clone());
                pending.answer(Err(refused));
            }
            Err(e) => {
                let error = RegistryError::from(e);
                pending.answer(Err(for_each(&error)));
                return fail_all(completing, &error);
            }
        }
    }
    let accepted = completing;
    let events: Result<Vec<NewEvent>, _> = accepted
        .iter()
        .map(|pending| NewEvent::of(&pending.request.ingested, &pending.request.actor))
        .collect();
    let events = match events {
        Ok(events) => events,
        Err(e) => return fail_all(accepted, &RegistryError::from(e)),
    };
    let mut created_at = Vec::with_capacity(accepted.len());
    for event in events {
        match tx.append(event).await {
            Ok(event) => created_at.push(event.created_at),
            Err(e) => return fail_all(accepted, &RegistryError::from(e)),
        }
    }
    match tx.commit().await {
        Ok(_) => {
            for (pending, at) in accepted.into_iter().zip(created_at) {
                let record = FileRecord::recorded(&pending.request.ingested, at);
                pending.answer(Ok(record));
            }
        }
        Err(e) => fail_all(accepted, &RegistryError::from(e)),
    }
}

/// Whether two collision keys cannot both be files of one package: the
/// same key, or one a folder of the other.
pub(crate) fn keys_conflict(a: &str, b: &str) -> bool {
    let under = |inner: &str, outer: &str| {
        inner.len() > outer.len()
            && inner.starts_with(outer)
            && inner.as_bytes()[outer.len()] == b'/'
    };
    a == b || under(a, b) || under(b, a)
}

/// The error for `path`, refused because of `existing` in its package.
pub(crate) fn path_conflict(path: &str, existing: &str) -> RegistryError {
    let (key, existing_key) = (collision_key(path), collision_key(existing));
    let why = if key == existing_key && path == existing {
        return RegistryError::DuplicateRelativePath(path.to_owned());
    } else if key == existing_key {
        "they name the same file on a case-insensitive or normalising filesystem (same letters up to case and Unicode normalisation)"
    } else if key.starts_with(&existing_key) {
        "the existing path is a file, so it cannot also be a folder"
    } else {
        "the existing path needs this one to be a folder"
    };
    RegistryError::PathConflict {
        path: path.to_owned(),
        existing: existing.to_owned(),
        why,
    }
}

/// The checks a lone upload makes under the head lock, counting the files
/// this group has already accepted.
fn check(
    slot: Option<FileSlot>,
    file: &FileIngested,
    max_files: u64,
    added: &mut HashMap<String, u64>,
    paths: &mut HashSet<(String, String)>,
) -> RegistryResult<()> {
    let package_id = &file.package_id;
    let slot = slot.ok_or_else(|| RegistryError::PackageNotFound(package_id.clone()))?;
    if slot.status != status::CREATED {
        return Err(RegistryError::IllegalPackageState {
            package_id: package_id.clone(),
            status: slot.status,
            operation: "add files to it",
        });
    }
    let key = (package_id.clone(), file.relative_path.clone());
    if slot.path_taken || paths.contains(&key) {
        return Err(RegistryError::DuplicateRelativePath(
            file.relative_path.clone(),
        ));
    }
    let in_group = added.get(package_id).copied().unwrap_or(0);
    if slot.file_count + in_group >= max_files {
        return Err(RegistryError::TooManyFiles(max_files));
    }
    *added.entry(package_id.clone()).or_default() += 1;
    paths.insert(key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_keys() {
        assert!(keys_conflict("a", "a"));
        assert!(keys_conflict("a", "a/b"));
        assert!(keys_conflict("a/b/c", "a"));
        assert!(!keys_conflict("a", "ab"));
        assert!(!keys_conflict("a/b", "a/c"));
        assert!(!keys_conflict("ab/c", "a"));
    }

    #[test]
    fn conflicts_say_why() {
        assert_eq!(path_conflict("a", "a").code(), "duplicate_relative_path");
        let message = |path, existing| path_conflict(path, existing).to_string();
        assert!(message("README.md", "readme.md").contains("same file"));
        assert!(message("a/b", "a").contains("cannot also be a folder"));
        assert!(message("a", "a/b").contains("needs this one to be a folder"));
        assert_eq!(path_conflict("A/b", "a").code(), "path_conflict");
    }
}
