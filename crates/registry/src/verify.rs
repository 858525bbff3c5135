//! Verification of stored bytes, and health.

use std::time::Duration;

use artifactstore_core::event::LocationVerified;
use artifactstore_core::{DualHasher, NewEvent};
use artifactstore_store::records::LocationRecord;
use futures::StreamExt;
use serde::Serialize;

use crate::{Registry, RegistryError, RegistryResult};

/// Locations checked per transaction of verification events.
const VERIFY_BATCH: i64 = 256;
/// How long a health probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome for one storage location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerificationResult {
    /// The location.
    pub storage_location_id: String,
    /// Its file.
    pub file_id: String,
    /// Its backend.
    pub backend_id: String,
    /// Size and both digests matched.
    pub ok: bool,
    /// What was wrong.
    pub failure: Option<String>,
}

/// The outcome of [`Registry::verify_storage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Locations checked.
    pub checked: u64,
    /// Locations that failed.
    pub failed: u64,
    /// Every result, in location-id order.
    pub results: Vec<VerificationResult>,
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// `database` or the backend id.
    pub name: String,
    /// Answered in time.
    pub ok: bool,
    /// Why not (a short, safe description).
    pub detail: Option<String>,
}

/// The registry's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Database and every backend answered.
    pub ok: bool,
    /// The database probe.
    pub database: ComponentHealth,
    /// Each backend's probe.
    pub backends: Vec<ComponentHealth>,
    /// Storage locations marked failed by verification.
    pub failed_locations: i64,
    /// Newest sequence in the log.
    pub head_sequence: Option<i64>,
}

impl Registry {
    async fn check_location(
        &self,
        location: &LocationRecord,
    ) -> (Option<String>, Option<(u64, String, String)>) {
        let backend = match self.backend(&location.backend_id) {
            Ok(backend) => backend,
            Err(e) => return (Some(e.to_string()), None),
        };
        let mut stream = match backend.open(&location.object_key, None).await {
            Ok(stream) => stream,
            Err(e) => return (Some(format!("cannot read object: {e}")), None),
        };
        let mut hasher = DualHasher::default();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => hasher.update(&chunk),
                Err(e) => return (Some(format!("read failed: {e}")), None),
            }
        }
        let actual = hasher.finalize();
        let facts = Some((
            actual.size_bytes,
            actual.blake3.to_hex(),
            actual.sha256.to_hex(),
        ));
        let failure = if actual.size_bytes != location.size_bytes {
            Some(format!(
                "size {} instead of {}",
                actual.size_bytes, location.size_bytes
            ))
        } else if actual.blake3.to_hex() != location.blake3 {
            Some("blake3 digest differs".to_owned())
        } else if actual.sha256.to_hex() != location.sha256 {
            Some("sha-256 digest differs".to_owned())
        } else {
            None
        };
        (failure, facts)
    }

    /// Re-reads every stored object (of one backend, or all), checks size and
    /// both digests, and records a `v1.storage.location_verified` event per
    /// location; failed locations are marked `failed`.
    pub async fn verify_storage(
        &self,
        backend: Option<&str>,
        actor: &str,
    ) -> RegistryResult<VerifyReport> {
        if let Some(id) = backend {
            if !self.backends.contains_key(id) {
                return Err(RegistryError::InvalidInput(format!(
                    "backend `{id}` is not configured"
                )));
            }
        }
        let mut report = VerifyReport {
            checked: 0,
            failed: 0,
            results: Vec::new(),
        };
        let mut after = String::new();
        loop {
            let batch = self.store.locations(backend, &after, VERIFY_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = last.id.clone();
            let mut events = Vec::with_capacity(batch.len());
            for location in &batch {
                let (failure, facts) = self.check_location(location).await;
                let payload = LocationVerified {
                    v: 1,
                    storage_location_id: location.id.clone(),
                    file_id: location.file_id.clone(),
                    backend_id: location.backend_id.clone(),
                    object_key: location.object_key.clone(),
                    ok: failure.is_none(),
                    failure: failure.clone(),
                    actual_size_bytes: facts.as_ref().map(|f| f.0),
                    actual_blake3: facts.as_ref().map(|f| f.1.clone()),
                    actual_sha256: facts.map(|f| f.2),
                };
                events.push(NewEvent::of(&payload, actor)?);
                report.checked += 1;
                report.failed += u64::from(failure.is_some());
                report.results.push(VerificationResult {
                    storage_location_id: location.id.clone(),
                    file_id: location.file_id.clone(),
                    backend_id: location.backend_id.clone(),
                    ok: failure.is_none(),
                    failure,
                });
            }
            let mut tx = self.store.begin().await?;
            for event in events {
                tx.append(event).await?;
            }
            tx.commit().await?;
        }
        Ok(report)
    }

    /// Probes the database and every backend.
    pub async fn health(&self) -> Health {
        let database = match tokio::time::timeout(PROBE_TIMEOUT, self.store.probe()).await {
            Ok(Ok(())) => ComponentHealth {
                name: "database".into(),
                ok: true,
                detail: None,
            },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "database probe failed");
                ComponentHealth {
                    name: "database".into(),
                    ok: false,
                    detail: Some("database did not answer".into()),
                }
            }
            Err(_) => ComponentHealth {
                name: "database".into(),
                ok: false,
                detail: Some("database probe timed out".into()),
            },
        };
        let mut backends = Vec::new();
        for (id, backend) in self.backends.iter() {
            let outcome = tokio::time::timeout(PROBE_TIMEOUT, backend.probe()).await;
            let detail = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    tracing::warn!(backend = %id, error = %e, "backend probe failed");
                    Some("backend did not answer".to_owned())
                }
                Err(_) => Some("backend probe timed out".to_owned()),
            };
            backends.push(ComponentHealth {
                name: id.clone(),
                ok: detail.is_none(),
                detail,
            });
        }
        let failed_locations = if database.ok {
            self.store.failed_location_count().await.unwrap_or(0)
        } else {
            0
        };
        let head_sequence = if database.ok {
            self.store.head_sequence().await.ok()
        } else {
            None
        };
        Health {
            ok: database.ok && backends.iter().all(|b| b.ok),
            database,
            backends,
            failed_locations,
            head_sequence,
        }
    }
}
