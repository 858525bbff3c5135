//! Retention: classes, extensions, legal holds, deletion eligibility.

use artifactstore_core::event::{DeletionEligible, HoldApplied, HoldReleased, RetentionExtended};
use artifactstore_core::id::new_id;
use artifactstore_core::text::{check_reason, TextError};
use artifactstore_core::{Event, NewEvent, RetentionClass, Timestamp};
use artifactstore_store::{LogTx, RetentionRecord};
use uuid::Uuid;

use crate::{Registry, RegistryError, RegistryResult};

fn reason(text: &str) -> RegistryResult<String> {
    match check_reason(text) {
        Ok(clean) => Ok(clean.to_owned()),
        Err(TextError::Nul) => Err(RegistryError::InvalidInput(
            "the reason must not contain NUL characters".into(),
        )),
        Err(TextError::Blank) => Err(RegistryError::RetentionRefused(
            "a reason is required".into(),
        )),
        Err(other) => Err(RegistryError::RetentionRefused(format!(
            "the reason {other}"
        ))),
    }
}

async fn state(tx: &mut LogTx<'_>, package_id: &str) -> RegistryResult<RetentionRecord> {
    tx.retention(package_id)
        .await?
        .ok_or_else(|| RegistryError::PackageNotFound(package_id.to_owned()))
}

impl Registry {
    /// The configured backends' ids.
    pub fn backend_ids(&self) -> Vec<String> {
        self.backends.keys().cloned().collect()
    }

    /// The configured classes, by id.
    pub fn retention_classes(&self) -> Vec<RetentionClass> {
        self.classes.values().cloned().collect()
    }

    /// A package's retention state.
    pub async fn retention_state(&self, package_id: Uuid) -> RegistryResult<RetentionRecord> {
        self.store
            .retention(&package_id.to_string())
            .await?
            .ok_or_else(|| RegistryError::PackageNotFound(package_id.to_string()))
    }

    /// Moves a package's expiry strictly later.
    pub async fn extend_retention(
        &self,
        package_id: Uuid,
        new_expires_at: Timestamp,
        why: &str,
        actor: &str,
    ) -> RegistryResult<RetentionRecord> {
        let why = reason(why)?;
        let id = package_id.to_string();
        let mut tx = self.store.begin().await?;
        let current = state(&mut tx, &id).await?;
        let Some(previous) = current.expires_at else {
            return Err(RegistryError::RetentionRefused(
                "the package never expires; there is nothing to extend".into(),
            ));
        };
        if new_expires_at <= previous {
            return Err(RegistryError::RetentionRefused(format!(
                "new expiry {new_expires_at} must be strictly later than the current {previous}"
            )));
        }
        let payload = RetentionExtended {
            v: 1,
            package_id: id.clone(),
            previous_expires_at: Some(previous),
            new_expires_at,
            reason: why,
        };
        tx.append(NewEvent::of(&payload, actor)?).await?;
        let after = state(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Places a legal hold; several may be active at once. Returns its id.
    pub async fn apply_hold(
        &self,
        package_id: Uuid,
        why: &str,
        actor: &str,
    ) -> RegistryResult<String> {
        let why = reason(why)?;
        let id = package_id.to_string();
        let hold_id = new_id().to_string();
        let mut tx = self.store.begin().await?;
        state(&mut tx, &id).await?;
        let payload = HoldApplied {
            v: 1,
            package_id: id.clone(),
            hold_id: hold_id.clone(),
            reason: why,
        };
        tx.append(NewEvent::of(&payload, actor)?).await?;
        tx.commit().await?;
        Ok(hold_id)
    }

    /// Lifts a hold. If the package is past its expiry and no hold remains,
    /// it becomes eligible for deletion in the same transaction.
    pub async fn release_hold(
        &self,
        package_id: Uuid,
        hold_id: Uuid,
        why: &str,
        actor: &str,
    ) -> RegistryResult<RetentionRecord> {
        let why = reason(why)?;
        let id = package_id.to_string();
        let hold = hold_id.to_string();
        let mut tx = self.store.begin().await?;
        let current = state(&mut tx, &id).await?;
        if !current.active_holds.iter().any(|h| h.hold_id == hold) {
            return Err(match tx.hold(&hold).await? {
                Some((owner, record)) if owner == id && record.released_at.is_some() => {
                    RegistryError::RetentionRefused(format!("hold {hold} was already released"))
                }
                _ => RegistryError::HoldNotFound(hold),
            });
        }
        let payload = HoldReleased {
            v: 1,
            package_id: id.clone(),
            hold_id: hold.clone(),
            reason: why,
        };
        tx.append(NewEvent::of(&payload, actor)?).await?;
        let now = tx.now();
        let last_hold = current.active_holds.len() == 1;
        let expired = current.expires_at.is_some_and(|at| at <= now);
        if last_hold && expired && !current.eligible_for_deletion {
            let eligible = DeletionEligible {
                v: 1,
                package_id: id.clone(),
                expires_at: current.expires_at,
                reason: "last hold released after expiry".into(),
            };
            tx.append(NewEvent::of(&eligible, actor)?).await?;
        }
        let after = state(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Marks every expired, unheld, not yet eligible package eligible for
    /// deletion; returns their ids.
    pub async fn sweep(&self, actor: &str) -> RegistryResult<Vec<String>> {
        let mut tx = self.store.begin().await?;
        let now = tx.now();
        let due = tx.due_for_sweep(&now).await?;
        for (package_id, expires_at) in &due {
            let eligible = DeletionEligible {
                v: 1,
                package_id: package_id.clone(),
                expires_at: *expires_at,
                reason: "retention expired".into(),
            };
            tx.append(NewEvent::of(&eligible, actor)?).await?;
        }
        tx.commit().await?;
        Ok(due.into_iter().map(|(id, _)| id).collect())
    }

    /// A package's retention events, in log order.
    pub async fn retention_history(&self, package_id: Uuid) -> RegistryResult<Vec<Event>> {
        let package = self.get_package(package_id).await?;
        Ok(self.store.retention_history(&package.id).await?)
    }
}
