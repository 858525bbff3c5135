//! Retention: classes, extensions, legal holds, deletion eligibility.

use artifactstore_core::event::EventPayload;
use artifactstore_core::event::{DeletionEligible, HoldApplied, HoldReleased, RetentionExtended};
use artifactstore_core::id::new_id;
use artifactstore_core::lifecycle::{
    explain, Explanation, ExtensionFact, HoldFact, PurgeFact, RetentionFacts,
};
use artifactstore_core::text::{check_reason, TextError};
use artifactstore_core::{Event, NewEvent, RetentionClass, Timestamp};
use artifactstore_store::records::status;
use artifactstore_store::{LogTx, RetentionRecord};
use uuid::Uuid;

use crate::{Registry, RegistryError, RegistryResult};

/// A reason as recorded: trimmed, required, bounded.
pub(crate) fn reason(text: &str) -> RegistryResult<String> {
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

/// The state of a package whose retention may still change: not purged.
async fn changeable_state(
    tx: &mut LogTx<'_>,
    package_id: &str,
    operation: &'static str,
) -> RegistryResult<RetentionRecord> {
    let current = state(tx, package_id).await?;
    if current.purge.is_some() {
        return Err(RegistryError::IllegalPackageState {
            package_id: package_id.to_owned(),
            status: status::PURGED.to_owned(),
            operation,
        });
    }
    Ok(current)
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
        let current = changeable_state(&mut tx, &id, "extend its retention").await?;
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
        changeable_state(&mut tx, &id, "place a hold on it").await?;
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

    /// A package's retention state with the explanation of its fate: the
    /// class and its default, each extension, each active hold,
    /// eligibility, the scheduled purge (or why there is none), the purge.
    pub async fn retention_explained(
        &self,
        package_id: Uuid,
    ) -> RegistryResult<(RetentionRecord, Explanation)> {
        let record = self.retention_state(package_id).await?;
        let history = self.store.retention_history(&record.package_id).await?;
        let class = self.class_of(&record.retention_class)?;
        let mut facts = RetentionFacts {
            class: &class,
            default_expires_at: None,
            extensions: Vec::new(),
            holds: record
                .active_holds
                .iter()
                .map(|h| HoldFact {
                    actor: h.applied_by.clone(),
                    since: h.applied_at,
                    reason: h.reason.clone(),
                })
                .collect(),
            expires_at: record.expires_at,
            eligible_at: record
                .eligible_for_deletion
                .then_some(record.eligible_at)
                .flatten(),
            purge: record.purge.as_ref().map(|p| PurgeFact {
                actor: p.purged_by.clone(),
                at: p.purged_at,
                rule: p.rule.clone(),
                reason: p.reason.clone(),
            }),
        };
        for event in &history {
            match EventPayload::decode(event) {
                Ok(EventPayload::RetentionDefaultApplied(p)) => {
                    facts.default_expires_at = p.expires_at;
                }
                Ok(EventPayload::RetentionExtended(p)) => facts.extensions.push(ExtensionFact {
                    actor: event.actor.clone(),
                    at: event.created_at,
                    new_expires_at: p.new_expires_at,
                    reason: p.reason,
                }),
                Ok(_) => {}
                Err(e) => {
                    return Err(RegistryError::Internal(format!(
                        "event {}: {e}",
                        event.sequence
                    )))
                }
            }
        }
        let explanation = explain(&facts, self.store.now());
        Ok((record, explanation))
    }
}
