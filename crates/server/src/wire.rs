//! The registry's records turned into the API model
//! (`artifactstore_api`), in one place: handlers answer with the model's
//! types only, so what clients see is decided there, not by a view's row.

use artifactstore_api as api;
use artifactstore_registry::core::lifecycle::{Explanation, StepKind};
use artifactstore_registry::core::{Event, RetentionClass};
use artifactstore_registry::lifecycle::{LifecycleReport, PurgedPackage, Usage};
use artifactstore_registry::{
    ComponentHealth, FileRecord, Finalized, Health, HoldRecord, PackageRecord, RetentionRecord,
    SchemaRecord, VerifyReport,
};

use crate::problem::Problem;

/// A record's form on the wire.
pub(crate) trait ToWire {
    /// The API model's type.
    type Wire;
    /// Converts; fails only on a view holding a value the model does not
    /// know (a corrupt or newer database), answered as a server error.
    fn to_wire(self) -> Result<Self::Wire, Problem>;
}

fn unknown(what: &str, value: &str) -> Problem {
    Problem::internal(format!(
        "a view holds a {what} the API model does not know: {value:?}"
    ))
}

impl ToWire for PackageRecord {
    type Wire = api::Package;
    fn to_wire(self) -> Result<api::Package, Problem> {
        let status = api::PackageStatus::from_name(&self.status)
            .ok_or_else(|| unknown("package status", &self.status))?;
        Ok(api::Package {
            id: self.id,
            name: self.name,
            producer: self.producer,
            subject: self.subject,
            retention_class: self.retention_class,
            metadata: self.metadata,
            metadata_schema_id: self.metadata_schema_id,
            status,
            manifest_digest: self.manifest_digest,
            created_at: self.created_at,
            finalized_at: self.finalized_at,
            expires_at: self.expires_at,
            purged_at: self.purged_at,
            last_event_sequence: self.last_event_sequence,
            file_count: self.file_count,
            total_bytes: self.total_bytes,
        })
    }
}

impl ToWire for FileRecord {
    type Wire = api::File;
    fn to_wire(self) -> Result<api::File, Problem> {
        let storage_status = api::StorageStatus::from_name(&self.storage_status)
            .ok_or_else(|| unknown("storage status", &self.storage_status))?;
        Ok(api::File {
            id: self.id,
            package_id: self.package_id,
            relative_path: self.relative_path,
            media_type: self.media_type,
            size_bytes: self.size_bytes,
            blake3: self.blake3,
            sha256: self.sha256,
            content_address: self.content_address,
            backend_id: self.backend_id,
            object_key: self.object_key,
            retrieval_tier: self.retrieval_tier,
            storage_status,
            created_at: self.created_at,
        })
    }
}

impl<T: ToWire> ToWire for Vec<T> {
    type Wire = Vec<T::Wire>;
    fn to_wire(self) -> Result<Vec<T::Wire>, Problem> {
        self.into_iter().map(ToWire::to_wire).collect()
    }
}

impl ToWire for HoldRecord {
    type Wire = api::Hold;
    fn to_wire(self) -> Result<api::Hold, Problem> {
        Ok(api::Hold {
            hold_id: self.hold_id,
            reason: self.reason,
            applied_at: self.applied_at,
            applied_by: self.applied_by,
            released_at: self.released_at,
            released_by: self.released_by,
            release_reason: self.release_reason,
        })
    }
}

impl ToWire for (RetentionRecord, Explanation) {
    type Wire = api::Retention;
    fn to_wire(self) -> Result<api::Retention, Problem> {
        let (record, explanation) = self;
        Ok(api::Retention {
            package_id: record.package_id,
            retention_class: record.retention_class,
            expires_at: record.expires_at,
            eligible_for_deletion: record.eligible_for_deletion,
            eligible_at: record.eligible_at,
            active_holds: record.active_holds.to_wire()?,
            purge: record.purge.map(|purge| api::Purge {
                purged_at: purge.purged_at,
                purged_by: purge.purged_by,
                rule: purge.rule,
                reason: purge.reason,
            }),
            explanation: api::Explanation {
                sentence: explanation.sentence,
                steps: explanation
                    .steps
                    .into_iter()
                    .map(|step| api::ExplanationStep {
                        kind: match step.kind {
                            StepKind::Class => api::ExplanationStepKind::Class,
                            StepKind::Extension => api::ExplanationStepKind::Extension,
                            StepKind::Hold => api::ExplanationStepKind::Hold,
                            StepKind::Eligibility => api::ExplanationStepKind::Eligibility,
                            StepKind::Schedule => api::ExplanationStepKind::Schedule,
                            StepKind::Purge => api::ExplanationStepKind::Purge,
                        },
                        text: step.text,
                        at: step.at,
                        actor: step.actor,
                        reason: step.reason,
                    })
                    .collect(),
            },
        })
    }
}

impl ToWire for PurgedPackage {
    type Wire = api::Purged;
    fn to_wire(self) -> Result<api::Purged, Problem> {
        Ok(self.into())
    }
}

impl ToWire for LifecycleReport {
    type Wire = api::LifecycleReport;
    fn to_wire(self) -> Result<api::LifecycleReport, Problem> {
        Ok(self.into())
    }
}

impl ToWire for Usage {
    type Wire = api::Usage;
    fn to_wire(self) -> Result<api::Usage, Problem> {
        Ok(self.into())
    }
}

impl ToWire for SchemaRecord {
    type Wire = api::MetadataSchema;
    fn to_wire(self) -> Result<api::MetadataSchema, Problem> {
        Ok(api::MetadataSchema {
            id: self.id,
            slug: self.slug,
            schema: self.schema,
            created_at: self.created_at,
        })
    }
}

impl ToWire for Finalized {
    type Wire = api::Finalized;
    fn to_wire(self) -> Result<api::Finalized, Problem> {
        Ok(api::Finalized {
            package_id: self.package_id,
            manifest_digest: self.manifest_digest,
        })
    }
}

impl ToWire for VerifyReport {
    type Wire = api::VerifyReport;
    fn to_wire(self) -> Result<api::VerifyReport, Problem> {
        Ok(api::VerifyReport {
            checked: self.checked,
            failed: self.failed,
            results: self
                .results
                .into_iter()
                .map(|result| api::VerificationResult {
                    storage_location_id: result.storage_location_id,
                    file_id: result.file_id,
                    backend_id: result.backend_id,
                    ok: result.ok,
                    failure: result.failure,
                })
                .collect(),
        })
    }
}

fn component(health: ComponentHealth) -> api::ComponentHealth {
    api::ComponentHealth {
        name: health.name,
        ok: health.ok,
        detail: health.detail,
    }
}

/// The health answer (never fails: it is what reports failures).
pub(crate) fn health(health: Health) -> api::Health {
    api::Health {
        status: if health.ok {
            api::HealthStatus::Ok
        } else {
            api::HealthStatus::Unhealthy
        },
        ok: health.ok,
        database: component(health.database),
        backends: health.backends.into_iter().map(component).collect(),
        failed_locations: health.failed_locations,
        head_sequence: health.head_sequence,
    }
}

/// A configured class.
pub(crate) fn retention_class(class: RetentionClass) -> api::RetentionClass {
    api::RetentionClass {
        default_duration: class.default_duration.map(|d| d.to_string()),
        default_duration_seconds: class.default_duration.map(|d| d.seconds()),
        deletion_strategy: class.deletion_strategy,
        purge_after: class.purge_after.to_string(),
        purge_after_seconds: class.purge_after.seconds(),
        id: class.id,
    }
}

/// An event. Its payload is shown as JSON; one that cannot be is shown as
/// null (the digest still names the stored bytes), so one odd payload does
/// not break a whole feed.
pub(crate) fn event(event: &Event) -> api::Event {
    let payload = event.payload_json().unwrap_or_else(|e| {
        tracing::warn!(sequence = event.sequence, error = %e, "event payload is not convertible to JSON");
        serde_json::Value::Null
    });
    api::Event {
        sequence: event.sequence,
        event_type: event.event_type.clone(),
        subject_kind: event.subject_kind.clone(),
        subject_id: event.subject_id.clone(),
        actor: event.actor.clone(),
        created_at: event.created_at,
        payload_digest: format!("blake3:{}", event.payload_digest.to_hex()),
        payload,
    }
}
