//! The check before a file's bytes flow, read for many uploads at once.
//!
//! Before it reads a body, an upload reads its package's slot and the
//! paths its own could conflict with (see `ingest.rs`). One at a time,
//! each upload paid two statements and the ping sqlx sends with every
//! connection handed back to its pool: three round trips to SQLite's
//! worker thread (six context switches) or to the PostgreSQL server, more
//! than its share of the group commit. Instead each upload queues its
//! question here, and one task asks the database for every queued upload
//! in the same two statements (more for very deep paths: the conflict
//! probes are split to stay under the engines' limits on parameters). An
//! upload that arrives alone is read at once: nothing waits to fill a
//! batch. The same checks run again under the head lock in the group
//! commit (`file_commits.rs`); these only keep refused uploads from being
//! read and stored.

use artifactstore_store::{FileSlot, Store};

use crate::batch_queue::{fail_all, BatchQueue, Queued};
use crate::{RegistryError, RegistryResult};

/// Most uploads checked in one batch.
const MAX_BATCH: usize = 256;
/// Uploads waiting for their check; more wait for room.
const QUEUE: usize = 1024;

/// A package's slot and the path already there that conflicts with the
/// new file's, if any; `None` when there is no such package.
pub(crate) type NewFileSlot = Option<(FileSlot, Option<String>)>;

/// The new file an upload asks about.
struct NewFile {
    package_id: String,
    relative_path: String,
    collision_key: String,
}

/// The queue of uploads waiting for their check; cloned into every
/// [`crate::Registry`] handle.
#[derive(Clone)]
pub(crate) struct FileChecks {
    queue: BatchQueue<NewFile, NewFileSlot>,
}

impl FileChecks {
    pub(crate) fn start(store: Store) -> Self {
        let queue = BatchQueue::start("file check", MAX_BATCH, QUEUE, move |batch| {
            check_batch(store.clone(), batch)
        });
        Self { queue }
    }

    /// What a new file at `relative_path` (collision key `collision_key`)
    /// of `package_id` must know before its bytes flow.
    pub(crate) async fn check(
        &self,
        package_id: &str,
        relative_path: &str,
        collision_key: &str,
    ) -> RegistryResult<NewFileSlot> {
        self.queue
            .submit(NewFile {
                package_id: package_id.to_owned(),
                relative_path: relative_path.to_owned(),
                collision_key: collision_key.to_owned(),
            })
            .await
    }
}

async fn check_batch(store: Store, mut batch: Vec<Queued<NewFile, NewFileSlot>>) {
    // An upload whose client went away no longer waits for its answer.
    batch.retain(|queued| !queued.is_abandoned());
    if batch.is_empty() {
        return;
    }
    let wanted: Vec<(&str, &str, &str)> = batch
        .iter()
        .map(|q| {
            let file = &q.request;
            (
                file.package_id.as_str(),
                file.relative_path.as_str(),
                file.collision_key.as_str(),
            )
        })
        .collect();
    match store.new_file_slots(&wanted).await {
        Ok(found) => {
            for (queued, slot) in batch.into_iter().zip(found) {
                queued.answer(Ok(slot));
            }
        }
        Err(e) => fail_all(batch, &RegistryError::from(e)),
    }
}
