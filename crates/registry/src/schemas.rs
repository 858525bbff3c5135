//! Metadata JSON Schemas: registered as events, enforced at package creation
//! with a full validator (every keyword of the schema's draft).

use artifactstore_core::event::{subjects, types, MetadataSchemaRegistered};
use artifactstore_core::id::new_id;
use artifactstore_core::{jcs, NewEvent};
use artifactstore_store::SchemaRecord;

use crate::{Registry, RegistryError, RegistryResult};

/// Most validation errors listed in one message.
const MAX_REPORTED_ERRORS: usize = 5;

fn check_slug(slug: &str) -> RegistryResult<()> {
    let ok = (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && slug.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidInput(format!(
            "invalid schema slug {slug:?}: 1-64 characters of a-z, 0-9, `-`, `_`, `.`, starting with a letter or digit"
        )))
    }
}

fn compile(schema: &serde_json::Value) -> RegistryResult<jsonschema::Validator> {
    jsonschema::validator_for(schema).map_err(|e| RegistryError::SchemaInvalid(e.to_string()))
}

impl Registry {
    /// Registers a JSON Schema under `slug`. The same body again is a no-op
    /// that returns the existing record (`false`); a different body under a
    /// taken slug is refused.
    pub async fn register_schema(
        &self,
        slug: &str,
        schema: &serde_json::Value,
        actor: &str,
    ) -> RegistryResult<(SchemaRecord, bool)> {
        check_slug(slug)?;
        compile(schema)?;
        let canonical =
            jcs::canonicalize(schema).map_err(|e| RegistryError::SchemaInvalid(e.to_string()))?;
        let canonical =
            String::from_utf8(canonical).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let mut tx = self.store.begin().await?;
        if let Some(existing) = tx.schema_by_slug(slug).await? {
            let existing_jcs = jcs::canonicalize(&existing.schema)
                .map_err(|e| RegistryError::Internal(e.to_string()))?;
            if existing_jcs == canonical.as_bytes() {
                return Ok((existing, false));
            }
            return Err(RegistryError::SchemaConflict(slug.to_owned()));
        }
        let schema_id = new_id().to_string();
        let payload = MetadataSchemaRegistered {
            v: 1,
            schema_id: schema_id.clone(),
            slug: slug.to_owned(),
            schema_jcs: canonical,
        };
        tx.append(NewEvent::new(
            types::METADATA_SCHEMA_REGISTERED,
            subjects::METADATA_SCHEMA,
            &schema_id,
            actor,
            &payload,
        )?)
        .await?;
        let record = tx.schema_by_id(&schema_id).await?;
        tx.commit().await?;
        let record = record
            .ok_or_else(|| RegistryError::Internal("registered schema has no view row".into()))?;
        Ok((record, true))
    }

    /// A registered schema.
    pub async fn get_schema(&self, slug: &str) -> RegistryResult<SchemaRecord> {
        check_slug(slug).map_err(|_| RegistryError::SchemaNotFound(slug.to_owned()))?;
        self.store
            .schema_by_slug(slug)
            .await?
            .ok_or_else(|| RegistryError::SchemaNotFound(slug.to_owned()))
    }

    /// Validates `metadata` against the schema `slug`; returns the schema id.
    pub(crate) async fn validate_metadata(
        &self,
        slug: &str,
        metadata: &serde_json::Value,
    ) -> RegistryResult<String> {
        let schema = self.get_schema(slug).await.map_err(|e| match e {
            RegistryError::SchemaNotFound(slug) => RegistryError::MetadataInvalid(format!(
                "metadata schema {slug:?} is not registered"
            )),
            other => other,
        })?;
        let validator = compile(&schema.schema)?;
        let errors: Vec<String> = validator
            .iter_errors(metadata)
            .take(MAX_REPORTED_ERRORS)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(schema.id)
        } else {
            Err(RegistryError::MetadataInvalid(format!(
                "does not match schema {slug:?}: {}",
                errors.join("; ")
            )))
        }
    }
}
