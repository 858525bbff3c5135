//! The collector: deletes objects no live file refers to, so that no
//! committed event ever refers to missing bytes (DESIGN.md invariant 10).
//!
//! For each batch of candidates: claim them under the log lock after
//! checking again that nothing live refers to them, delete the bytes, then
//! record one `v1.storage.object_deleted` per object and end the claims in
//! one transaction. An upload refuses to record bytes that were claimed, or
//! whose deletion was recorded after the log head it read before storing
//! them. The argument is in docs/architecture.md ("Lifecycle").

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use artifactstore_core::event::ObjectDeleted;
use artifactstore_core::lifecycle::deletion_reasons;
use artifactstore_core::NewEvent;
use artifactstore_storage::{Backend, ObjectInfo, CONTENT_KEY_PREFIX};
use futures::StreamExt;

use super::Pass;
use crate::{Registry, RegistryError, RegistryResult};

/// Objects claimed, deleted and recorded together.
const BATCH: usize = 256;
/// Deletions in flight at once (object stores delete one key per request).
const DELETES_IN_FLIGHT: usize = 16;

/// What collection did on one backend (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendCollection {
    /// The backend.
    pub backend_id: String,
    /// Objects deleted (would be, in a dry run), by reason.
    pub objects_by_reason: BTreeMap<String, u64>,
    /// Objects deleted.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Claims a stopped collector left, finished now.
    pub claims_finished: u64,
    /// Staging leftovers of dead writers removed (not objects: no event).
    pub staging_removed: u64,
    /// Objects that could not be deleted (each keeps its claim until a
    /// later pass deletes it).
    pub failures: Vec<String>,
}

/// One object to delete, and why.
struct Doomed {
    key: String,
    size_bytes: u64,
    reason: &'static str,
}

fn age(info: &ObjectInfo, now: SystemTime) -> Duration {
    now.duration_since(info.modified).unwrap_or(Duration::ZERO)
}

impl Registry {
    /// Collects what backend `report.backend_id` holds that nothing live
    /// refers to, as `pass` (or, with none, lists it: a dry run, where
    /// `assume_purged` are the packages it would purge first). Returns
    /// false when the pass lost its lease and must stop.
    pub(crate) async fn collect_backend(
        &self,
        pass: Option<&Pass<'_>>,
        assume_purged: &HashSet<String>,
        report: &mut BackendCollection,
    ) -> RegistryResult<bool> {
        let backend_id = report.backend_id.clone();
        let backend_id = backend_id.as_str();
        let backend = self.backend(backend_id)?.clone();
        if let Some(pass) = pass {
            if !self.finish_claims(pass, &backend, report).await? {
                return Ok(false);
            }
        }
        let listed = backend.list().await?;
        let (live, purged) = self
            .store
            .object_references(backend_id, assume_purged)
            .await?;
        let now = SystemTime::now();
        let grace = self.lifecycle.orphan_grace;
        let doomed: Vec<Doomed> = listed
            .into_iter()
            .filter(|info| !live.contains(&info.key))
            .filter_map(|info| {
                let reason = if purged.contains(&info.key) {
                    deletion_reasons::PURGED
                } else if age(&info, now) >= grace {
                    if info.key.starts_with(CONTENT_KEY_PREFIX) {
                        deletion_reasons::ORPHAN
                    } else {
                        deletion_reasons::STAGING
                    }
                } else {
                    return None;
                };
                Some(Doomed {
                    key: info.key,
                    size_bytes: info.size_bytes,
                    reason,
                })
            })
            .collect();
        let Some(pass) = pass else {
            for object in &doomed {
                report.count(object);
            }
            return Ok(true);
        };
        for batch in doomed.chunks(BATCH) {
            if !self.renew_lease(&pass.holder).await? {
                return Ok(false);
            }
            self.collect_batch(pass, &backend, batch, report).await?;
        }
        report.staging_removed = backend.remove_dead_staging().await?;
        Ok(true)
    }

    /// Claims, deletes and records one batch.
    async fn collect_batch(
        &self,
        pass: &Pass<'_>,
        backend: &Arc<dyn Backend>,
        batch: &[Doomed],
        report: &mut BackendCollection,
    ) -> RegistryResult<()> {
        let backend_id = backend.id();
        let keys: Vec<String> = batch.iter().map(|d| d.key.clone()).collect();
        // Under the log lock: uploads recorded since the listing may refer
        // to some of these now; those stay.
        let mut tx = self.store.begin().await?;
        let live = tx.live_references(backend_id, &keys).await?;
        let taken = tx.claimed(backend_id, &keys).await?;
        let claim: Vec<String> = keys
            .iter()
            .filter(|k| !live.contains(*k) && !taken.contains(*k))
            .cloned()
            .collect();
        tx.claim_objects(backend_id, &claim, &pass.holder).await?;
        tx.commit().await?;
        let claimed: HashSet<&String> = claim.iter().collect();
        let chosen: Vec<&Doomed> = batch.iter().filter(|d| claimed.contains(&d.key)).collect();
        let deleted = delete_all(backend, claim.clone(), report).await;
        let gone: Vec<&Doomed> = chosen
            .into_iter()
            .filter(|d| deleted.contains(&d.key))
            .collect();
        self.record_deletions(pass, backend_id, &gone).await?;
        for object in gone {
            report.count(object);
        }
        Ok(())
    }

    /// Records one deletion event per object and ends the pass's claims
    /// on them.
    async fn record_deletions(
        &self,
        pass: &Pass<'_>,
        backend_id: &str,
        gone: &[&Doomed],
    ) -> RegistryResult<()> {
        if gone.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        for object in gone {
            let payload = ObjectDeleted {
                v: 1,
                backend_id: backend_id.to_owned(),
                object_key: object.key.clone(),
                size_bytes: object.size_bytes,
                reason: object.reason.to_owned(),
            };
            tx.append(NewEvent::of(&payload, pass.actor)?).await?;
        }
        let keys: Vec<String> = gone.iter().map(|d| d.key.clone()).collect();
        tx.release_claims(backend_id, &keys, &pass.holder).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finishes the claims an earlier pass left on `backend` (one that
    /// stopped, or lost its lease): nothing could record those bytes since
    /// they were claimed, so they go, and their deletion is recorded. Each
    /// batch is taken over under the log lock first, so a claim its maker
    /// ended meanwhile is left alone. Returns false when the lease is lost.
    async fn finish_claims(
        &self,
        pass: &Pass<'_>,
        backend: &Arc<dyn Backend>,
        report: &mut BackendCollection,
    ) -> RegistryResult<bool> {
        let left: Vec<String> = self
            .store
            .claims()
            .await?
            .into_iter()
            .filter(|c| c.backend_id == backend.id() && c.claimed_by != pass.holder)
            .map(|c| c.object_key)
            .collect();
        for batch in left.chunks(BATCH) {
            if !self.renew_lease(&pass.holder).await? {
                return Ok(false);
            }
            let mut tx = self.store.begin().await?;
            let adopted = tx.adopt_claims(backend.id(), batch, &pass.holder).await?;
            tx.commit().await?;
            let mut doomed = Vec::with_capacity(adopted.len());
            for key in &adopted {
                // The size is only reported; a store that cannot say it
                // must not stop the deletion.
                let size_bytes = match backend.size(key).await {
                    Ok(size) => size.unwrap_or(0),
                    Err(e) => {
                        tracing::warn!(key, error = %e, "size of a claimed object unknown");
                        0
                    }
                };
                doomed.push(Doomed {
                    key: key.clone(),
                    size_bytes,
                    reason: deletion_reasons::UNFINISHED,
                });
            }
            let deleted = delete_all(backend, adopted, report).await;
            let gone: Vec<&Doomed> = doomed.iter().filter(|d| deleted.contains(&d.key)).collect();
            self.record_deletions(pass, backend.id(), &gone).await?;
            report.claims_finished += gone.len() as u64;
            for object in gone {
                report.count(object);
            }
        }
        Ok(true)
    }
}

impl BackendCollection {
    fn count(&mut self, object: &Doomed) {
        *self
            .objects_by_reason
            .entry(object.reason.to_owned())
            .or_default() += 1;
        self.objects_deleted += 1;
        self.bytes_freed += object.size_bytes;
    }
}

/// Deletes `keys` (absent is fine), a few at a time; returns those gone.
/// A failure is noted in `report` and its key left out: its claim stays,
/// so no upload records those bytes until a later pass deletes them.
async fn delete_all(
    backend: &Arc<dyn Backend>,
    keys: Vec<String>,
    report: &mut BackendCollection,
) -> HashSet<String> {
    let results: Vec<(String, Result<(), RegistryError>)> = futures::stream::iter(keys)
        .map(|key| {
            let backend = backend.clone();
            async move {
                let result = backend.delete(&key).await.map_err(RegistryError::from);
                (key, result)
            }
        })
        .buffer_unordered(DELETES_IN_FLIGHT)
        .collect()
        .await;
    let mut gone = HashSet::new();
    for (key, result) in results {
        match result {
            Ok(()) => {
                gone.insert(key);
            }
            Err(e) => {
                tracing::warn!(backend = backend.id(), key, error = %e, "deleting an object failed; its claim stays until a later pass");
                report.failures.push(format!("{key}: {e}"));
            }
        }
    }
    gone
}
