//! Purges: explicit ones by an admin, automatic ones of `delete` classes,
//! and the review list of `manual-review` classes. Every purge re-checks
//! the package under the log lock in the transaction that records it, so
//! a hold placed at the same moment either comes first (and the purge is
//! refused) or after it.

use artifactstore_core::event::PackagePurged;
use artifactstore_core::lifecycle::{
    automatic_purge_due, check_purge, rules, PurgeFacts, PurgeRefusal,
};
use artifactstore_core::retention::DeletionStrategy;
use artifactstore_core::{NewEvent, RetentionClass, Timestamp};
use artifactstore_store::records::status;
use artifactstore_store::{LogTx, PackageRecord};
use uuid::Uuid;

use crate::{Registry, RegistryError, RegistryResult};

/// Eligible packages read per page when looking for purges.
const PAGE: i64 = 500;

/// A package the lifecycle purged (or, in a dry run, would purge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedPackage {
    /// The package.
    pub package_id: String,
    /// Its class.
    pub retention_class: String,
    /// The rule that allowed it.
    pub rule: String,
}

/// Whether a purge is an admin's or the lifecycle's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Explicit,
    Automatic,
}

impl Registry {
    /// A package's class as configured; a class no longer configured is
    /// treated as one that never deletes (the safe reading).
    pub(crate) fn class_of(&self, id: &str) -> RegistryResult<RetentionClass> {
        Ok(self.classes.get(id).cloned().unwrap_or_else(|| {
            tracing::warn!(
                class = id,
                "retention class of a stored package is not configured; treated as never deleting"
            );
            RetentionClass {
                id: id.to_owned(),
                default_duration: None,
                deletion_strategy: DeletionStrategy::Never,
                purge_after: artifactstore_core::retention::DEFAULT_PURGE_AFTER,
            }
        }))
    }

    fn classes_with(&self, strategy: DeletionStrategy) -> Vec<String> {
        self.classes
            .values()
            .filter(|c| c.deletion_strategy == strategy)
            .map(|c| c.id.clone())
            .collect()
    }

    /// Purges an eligible package at an admin's request: its bytes may
    /// then be collected, its records stay. Refused (409) when it is not
    /// eligible, held, of a class that never deletes, or purged already.
    pub async fn purge_package(
        &self,
        package_id: Uuid,
        why: &str,
        actor: &str,
    ) -> RegistryResult<PurgedPackage> {
        let why = crate::retention::reason(why)?;
        let id = package_id.to_string();
        let mut tx = self.store.begin().await?;
        let purged = self
            .purge_in(&mut tx, &id, Mode::Explicit, &why, actor)
            .await?;
        tx.commit().await?;
        Ok(purged)
    }

    /// Checks and records one purge inside `tx` (under the log lock).
    async fn purge_in(
        &self,
        tx: &mut LogTx<'_>,
        package_id: &str,
        mode: Mode,
        why: &str,
        actor: &str,
    ) -> RegistryResult<PurgedPackage> {
        let package = tx
            .package(package_id)
            .await?
            .ok_or_else(|| RegistryError::PackageNotFound(package_id.to_owned()))?;
        let state = tx
            .retention(package_id)
            .await?
            .ok_or_else(|| RegistryError::PackageNotFound(package_id.to_owned()))?;
        let class = self.class_of(&package.retention_class)?;
        let facts = PurgeFacts {
            class: &class,
            purged: package.status == status::PURGED,
            active_holds: state.active_holds.len(),
            eligible_at: state
                .eligible_for_deletion
                .then_some(state.eligible_at)
                .flatten(),
            expires_at: state.expires_at,
        };
        let refuse = |refusal| RegistryError::PurgeRefused {
            package_id: package_id.to_owned(),
            refusal,
        };
        check_purge(&facts).map_err(refuse)?;
        let rule = match mode {
            Mode::Explicit => rules::EXPLICIT,
            Mode::Automatic => {
                if !automatic_purge_due(&facts, tx.now()) {
                    return Err(refuse(PurgeRefusal::NotEligible(
                        "its automatic purge is not due".into(),
                    )));
                }
                rules::DELETE_AFTER_ELIGIBLE
            }
        };
        let payload = PackagePurged {
            v: 1,
            package_id: package_id.to_owned(),
            retention_class: class.id.clone(),
            rule: rule.to_owned(),
            eligible_at: facts.eligible_at,
            reason: why.to_owned(),
        };
        tx.append(NewEvent::of(&payload, actor)?).await?;
        Ok(PurgedPackage {
            package_id: package_id.to_owned(),
            retention_class: class.id.clone(),
            rule: rule.to_owned(),
        })
    }

    /// The packages of `delete` classes whose automatic purge is due at
    /// `now`, as the views say (each is checked again when purged).
    pub(crate) async fn purges_due(&self, now: Timestamp) -> RegistryResult<Vec<PackageRecord>> {
        let classes = self.classes_with(DeletionStrategy::Delete);
        let mut due = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.eligible_packages(&classes, after, PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = last.created_sequence;
            for (package, eligible_at) in page {
                let class = self.class_of(&package.retention_class)?;
                let facts = PurgeFacts {
                    class: &class,
                    purged: false,
                    active_holds: 0,
                    eligible_at: Some(eligible_at),
                    expires_at: package.expires_at,
                };
                if automatic_purge_due(&facts, now) {
                    due.push(package);
                }
            }
        }
        Ok(due)
    }

    /// Purges each of `due` whose purge is still due under the log lock;
    /// a package held or extended meanwhile is left alone.
    pub(crate) async fn purge_automatically(
        &self,
        due: &[PackageRecord],
        actor: &str,
    ) -> RegistryResult<Vec<PurgedPackage>> {
        let mut purged = Vec::new();
        for batch in due.chunks(64) {
            let mut tx = self.store.begin().await?;
            let mut in_batch = Vec::new();
            for package in batch {
                let why = format!(
                    "retention class {} deletes eligible packages after purge_after",
                    package.retention_class
                );
                match self
                    .purge_in(&mut tx, &package.id, Mode::Automatic, &why, actor)
                    .await
                {
                    Ok(done) => in_batch.push(done),
                    Err(RegistryError::PurgeRefused { refusal, .. }) => {
                        tracing::info!(package = %package.id, %refusal, "automatic purge no longer applies");
                    }
                    Err(other) => return Err(other),
                }
            }
            tx.commit().await?;
            purged.extend(in_batch);
        }
        Ok(purged)
    }

    /// Eligible packages of `manual-review` classes, waiting for an admin
    /// to purge them (or to hold or extend them), in creation order.
    pub async fn review_list(
        &self,
        after: Option<i64>,
        limit: i64,
    ) -> RegistryResult<(Vec<(PackageRecord, Timestamp)>, Option<i64>)> {
        let classes = self.classes_with(DeletionStrategy::ManualReview);
        let limit = limit.clamp(1, self.limits.max_page.max(1));
        let mut page = self
            .store
            .eligible_packages(&classes, after.unwrap_or(0), limit + 1)
            .await?;
        let next = if page.len() as i64 > limit {
            page.truncate(limit as usize);
            page.last().map(|(p, _)| p.created_sequence)
        } else {
            None
        };
        Ok((page, next))
    }
}
