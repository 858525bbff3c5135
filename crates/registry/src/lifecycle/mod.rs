//! The lifecycle: sweep (expired, unheld packages become eligible), then
//! purge (eligible packages of `delete` classes after `purge_after`), then
//! collect (bytes nothing live refers to). One process at a time runs it,
//! holding a lease in the database; `serve` runs it every
//! `[lifecycle] interval`, and `admin gc` / `POST /v1/lifecycle/run` run
//! one pass now, or list what a pass would do.

mod collect;
mod purge;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use artifactstore_core::retention::DeletionStrategy;
use artifactstore_core::Timestamp;
use tokio_util::sync::CancellationToken;

pub use collect::BackendCollection;
pub use purge::PurgedPackage;

use crate::{Registry, RegistryResult};

/// The actor of the lifecycle's own events (automatic runs).
pub const LIFECYCLE_ACTOR: &str = "lifecycle";

/// What one pass did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleReport {
    /// Nothing was changed: the report lists what a pass would do.
    pub dry_run: bool,
    /// Another process held the lifecycle lease, so nothing ran.
    pub skipped: Option<String>,
    /// Packages newly marked eligible for deletion.
    pub marked_eligible: Vec<String>,
    /// Packages purged, each with its rule.
    pub purged: Vec<PurgedPackage>,
    /// Collection, per backend.
    pub backends: Vec<BackendCollection>,
    /// Objects deleted on every backend.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// How long the pass took.
    pub duration: Duration,
}

/// Counters since this process started, for the metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LifecycleStats {
    /// Packages purged.
    pub packages_purged: u64,
    /// Objects deleted.
    pub objects_deleted: u64,
    /// Bytes deleted.
    pub bytes_deleted: u64,
    /// When the last collection ended (Unix seconds).
    pub last_run_unix_seconds: Option<f64>,
    /// How long it took.
    pub last_run_seconds: Option<f64>,
}

/// Logical and physical bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// (producer, files, bytes) of packages not purged.
    pub by_producer: Vec<(String, u64, u64)>,
    /// (class, files, bytes) of packages not purged.
    pub by_class: Vec<(String, u64, u64)>,
    /// (backend, objects, bytes) stored once deduplicated.
    pub by_backend: Vec<(String, u64, u64)>,
    /// What the next collection would delete: (objects, bytes).
    pub reclaimable: (u64, u64),
}

fn plus(now: Timestamp, span: Duration) -> Timestamp {
    now.plus_seconds(i64::try_from(span.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(now)
}

/// One pass that changes things: who holds the lease for it, and whose
/// name its events bear.
pub(crate) struct Pass<'a> {
    /// This pass's lease holder id (process and pass: two passes of one
    /// process are two holders, so they never overlap).
    pub(crate) holder: String,
    /// The actor of its events.
    pub(crate) actor: &'a str,
}

/// Why a pass stopped early.
const LEASE_LOST: &str = "the lifecycle lease lapsed during the pass (another process took it over); the rest is left to the next pass";

impl Registry {
    /// Takes or renews the lease for `holder` for a full `lease_timeout`;
    /// false when another holder has it.
    pub(crate) async fn renew_lease(&self, holder: &str) -> RegistryResult<bool> {
        let now = self.store.now();
        Ok(self
            .store
            .take_lifecycle_lease(holder, now, plus(now, self.lifecycle.lease_timeout))
            .await?)
    }

    /// One lifecycle pass now: sweep, purge, collect. With `dry_run`,
    /// nothing changes (no event, no byte) and the report lists what a
    /// pass would do.
    pub async fn run_lifecycle(
        &self,
        dry_run: bool,
        actor: &str,
    ) -> RegistryResult<LifecycleReport> {
        let started = Instant::now();
        let mut report = LifecycleReport {
            dry_run,
            ..LifecycleReport::default()
        };
        let pass = Pass {
            holder: format!("{}/{}", self.instance, uuid::Uuid::new_v4()),
            actor,
        };
        if dry_run {
            self.pass(None, &mut report).await?;
        } else {
            if !self.renew_lease(&pass.holder).await? {
                report.skipped =
                    Some("another process is running the lifecycle; try again later".into());
                return Ok(report);
            }
            let outcome = self.pass(Some(&pass), &mut report).await;
            if let Err(e) = self.store.release_lifecycle_lease(&pass.holder).await {
                tracing::warn!(error = %e, "releasing the lifecycle lease failed; it expires by itself");
            }
            if !outcome? {
                tracing::warn!("{LEASE_LOST}");
                report.skipped = Some(LEASE_LOST.into());
            }
        }
        report.duration = started.elapsed();
        if !dry_run {
            let mut stats = self
                .lifecycle_stats
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            stats.packages_purged += report.purged.len() as u64;
            stats.objects_deleted += report.objects_deleted;
            stats.bytes_deleted += report.bytes_freed;
            stats.last_run_seconds = Some(report.duration.as_secs_f64());
            stats.last_run_unix_seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs_f64());
        }
        Ok(report)
    }

    /// The steps of a pass (`None`: a dry run); false when the lease was
    /// lost, so the pass stopped.
    async fn pass(
        &self,
        pass: Option<&Pass<'_>>,
        report: &mut LifecycleReport,
    ) -> RegistryResult<bool> {
        let renewed = |holder: &str| {
            let holder = holder.to_owned();
            async move { self.renew_lease(&holder).await }
        };
        let now = self.store.now();
        // Sweep.
        report.marked_eligible = match pass {
            None => {
                let mut tx = self.store.begin().await?;
                let due = tx.due_for_sweep(&now).await?;
                drop(tx);
                due.into_iter().map(|(id, _)| id).collect()
            }
            Some(pass) => self.sweep(pass.actor).await?,
        };
        // Purge, as of after the sweep (whose eligibility it may act on).
        let mut due = self.purges_due(self.store.now()).await?;
        match pass {
            None => {
                // What the sweep would have marked, purged at once where
                // the class says `purge_after = 0s`.
                for id in &report.marked_eligible {
                    let Some(package) = self.store.package(id).await? else {
                        continue;
                    };
                    let class = self.class_of(&package.retention_class)?;
                    if class.deletion_strategy == DeletionStrategy::Delete
                        && class.purge_after.seconds() == 0
                    {
                        due.push(package);
                    }
                }
                report.purged = due
                    .iter()
                    .map(|p| PurgedPackage {
                        package_id: p.id.clone(),
                        retention_class: p.retention_class.clone(),
                        rule: artifactstore_core::lifecycle::rules::DELETE_AFTER_ELIGIBLE
                            .to_owned(),
                    })
                    .collect();
            }
            Some(pass) => {
                if !renewed(&pass.holder).await? {
                    return Ok(false);
                }
                report.purged = self.purge_automatically(&due, pass.actor).await?;
            }
        }
        // Collect.
        let assume_purged: HashSet<String> = match pass {
            None => report.purged.iter().map(|p| p.package_id.clone()).collect(),
            Some(_) => HashSet::new(),
        };
        for backend_id in self.backend_ids() {
            let mut collected = BackendCollection {
                backend_id,
                ..BackendCollection::default()
            };
            let kept = self
                .collect_backend(pass, &assume_purged, &mut collected)
                .await?;
            report.objects_deleted += collected.objects_deleted;
            report.bytes_freed += collected.bytes_freed;
            report.backends.push(collected);
            if !kept {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Counters of this process's lifecycle runs.
    pub fn lifecycle_stats(&self) -> LifecycleStats {
        self.lifecycle_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs a pass every `[lifecycle] interval` until `stop` (nothing when
    /// the interval is `0s`). A failed pass is logged and tried again at
    /// the next interval.
    pub async fn run_lifecycle_every_interval(&self, stop: CancellationToken) {
        let Some(interval) = self.lifecycle.interval else {
            tracing::info!("lifecycle interval is 0s: no automatic sweep, purge or collection");
            return;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            match self.run_lifecycle(false, LIFECYCLE_ACTOR).await {
                Ok(report) if report.skipped.is_some() => {
                    tracing::debug!("lifecycle pass skipped: another process runs it");
                }
                Ok(report) => tracing::info!(
                    marked_eligible = report.marked_eligible.len(),
                    purged = report.purged.len(),
                    objects_deleted = report.objects_deleted,
                    bytes_freed = report.bytes_freed,
                    seconds = report.duration.as_secs_f64(),
                    "lifecycle pass"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "lifecycle pass failed; trying again at the next interval")
                }
            }
        }
    }

    /// Logical bytes per producer and class, physical bytes per backend,
    /// and what the next collection would reclaim.
    pub async fn usage(&self) -> RegistryResult<Usage> {
        let record = self.store.usage().await?;
        let mut reclaimable = (0, 0);
        for backend_id in self.backend_ids() {
            let mut collected = BackendCollection {
                backend_id,
                ..BackendCollection::default()
            };
            self.collect_backend(None, &HashSet::new(), &mut collected)
                .await?;
            reclaimable.0 += collected.objects_deleted;
            reclaimable.1 += collected.bytes_freed;
        }
        Ok(Usage {
            by_producer: record.by_producer,
            by_class: record.by_class,
            by_backend: record.by_backend,
            reclaimable,
        })
    }
}

/// Shared, poisoning-tolerant counters.
pub(crate) type SharedStats = Arc<Mutex<LifecycleStats>>;

// The API model's forms of the lifecycle's reports, here so that the
// server and `admin gc` / `admin usage` answer with the same types.

impl From<PurgedPackage> for artifactstore_api::Purged {
    fn from(purged: PurgedPackage) -> Self {
        Self {
            package_id: purged.package_id,
            retention_class: purged.retention_class,
            rule: purged.rule,
        }
    }
}

impl From<LifecycleReport> for artifactstore_api::LifecycleReport {
    fn from(report: LifecycleReport) -> Self {
        Self {
            dry_run: report.dry_run,
            skipped: report.skipped,
            marked_eligible: report.marked_eligible,
            purged: report.purged.into_iter().map(Into::into).collect(),
            backends: report
                .backends
                .into_iter()
                .map(|b| artifactstore_api::BackendCollection {
                    backend_id: b.backend_id,
                    objects_by_reason: b.objects_by_reason,
                    objects_deleted: b.objects_deleted,
                    bytes_freed: b.bytes_freed,
                    claims_finished: b.claims_finished,
                    staging_removed: b.staging_removed,
                    failures: b.failures,
                })
                .collect(),
            objects_deleted: report.objects_deleted,
            bytes_freed: report.bytes_freed,
            duration_seconds: report.duration.as_secs_f64(),
        }
    }
}

impl From<Usage> for artifactstore_api::Usage {
    fn from(usage: Usage) -> Self {
        let groups = |rows: Vec<(String, u64, u64)>| {
            rows.into_iter()
                .map(|(name, count, bytes)| artifactstore_api::UsageGroup { name, count, bytes })
                .collect()
        };
        Self {
            by_producer: groups(usage.by_producer),
            by_retention_class: groups(usage.by_class),
            by_backend: groups(usage.by_backend),
            reclaimable: artifactstore_api::Reclaimable {
                objects: usage.reclaimable.0,
                bytes: usage.reclaimable.1,
            },
        }
    }
}
