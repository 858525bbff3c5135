//! Metadata JSON Schemas: registered as events, enforced at package creation
//! with a full validator (every keyword of the schema's draft).
//!
//! A schema is bounded when it is registered (size, and cost once its
//! `$ref`s expand: [`complexity`]), compiled once per process and kept, and
//! run on a few blocking threads within a time budget, never on the async
//! workers that answer every other request.

mod complexity;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use artifactstore_core::event::MetadataSchemaRegistered;
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

/// Most compiled validators kept; past it the cache starts again (schemas
/// are few, so this only bounds a pathological registry).
const MAX_CACHED_VALIDATORS: usize = 1024;

/// Compiled validators by schema id, and the threads validation may use.
pub(crate) struct Validators {
    compiled: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
    /// One permit per validation running; a validation over its budget
    /// keeps its permit until its thread is done, so runaway validations
    /// cannot pile up threads.
    workers: Arc<tokio::sync::Semaphore>,
}

impl Validators {
    pub(crate) fn new() -> Arc<Self> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        Arc::new(Self {
            compiled: Mutex::new(HashMap::new()),
            workers: Arc::new(tokio::sync::Semaphore::new(threads)),
        })
    }

    fn get(&self, schema_id: &str) -> Option<Arc<jsonschema::Validator>> {
        let compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        compiled.get(schema_id).cloned()
    }

    fn keep(&self, schema_id: &str, validator: Arc<jsonschema::Validator>) {
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if compiled.len() >= MAX_CACHED_VALIDATORS {
            compiled.clear();
        }
        compiled.insert(schema_id.to_owned(), validator);
    }
}

/// Runs `work` on a blocking thread once a validation permit is free,
/// within `budget` in all; `None` when the budget ran out. A thread cannot
/// be stopped, so `work` is told through its flag that nobody waits for it
/// any more, and should skip what it can.
async fn within_budget<T: Send + 'static>(
    workers: &Arc<tokio::sync::Semaphore>,
    budget: Duration,
    work: impl FnOnce(&AtomicBool) -> T + Send + 'static,
) -> RegistryResult<Option<T>> {
    let deadline = tokio::time::Instant::now() + budget;
    let Ok(permit) = tokio::time::timeout_at(deadline, workers.clone().acquire_owned()).await
    else {
        return Ok(None);
    };
    let permit = permit.map_err(|e| RegistryError::Internal(e.to_string()))?;
    let abandoned = Arc::new(AtomicBool::new(false));
    let flag = abandoned.clone();
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work(&flag)
    });
    match tokio::time::timeout_at(deadline, task).await {
        Ok(done) => done
            .map(Some)
            .map_err(|e| RegistryError::Internal(format!("schema validation thread: {e}"))),
        Err(_) => {
            abandoned.store(true, Ordering::SeqCst);
            Ok(None)
        }
    }
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
        let canonical =
            jcs::canonicalize(schema).map_err(|e| RegistryError::SchemaInvalid(e.to_string()))?;
        let canonical =
            String::from_utf8(canonical).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let limits = &self.limits;
        if canonical.len() > limits.max_schema_bytes {
            return Err(RegistryError::SchemaInvalid(format!(
                "the schema is {} bytes as canonical JSON; at most {} are accepted (limits.max_schema_bytes)",
                canonical.len(),
                limits.max_schema_bytes
            )));
        }
        complexity::check(schema, limits.max_schema_complexity)
            .map_err(|e| RegistryError::SchemaInvalid(e.to_string()))?;
        // Compiling runs regular expressions' construction: off the async
        // workers, within the validation budget.
        let owned = schema.clone();
        let budget = Duration::from_millis(limits.schema_validation_timeout_ms.max(1));
        let validator = within_budget(&self.validators.workers, budget, move |_| compile(&owned))
            .await?
            .ok_or_else(|| {
                RegistryError::SchemaInvalid(format!(
                    "the schema did not compile within {} ms",
                    budget.as_millis()
                ))
            })??;
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
        tx.append(NewEvent::of(&payload, actor)?).await?;
        let record = tx.schema_by_id(&schema_id).await?;
        tx.commit().await?;
        let record = record
            .ok_or_else(|| RegistryError::Internal("registered schema has no view row".into()))?;
        self.validators.keep(&record.id, Arc::new(validator));
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
        let budget = Duration::from_millis(self.limits.schema_validation_timeout_ms.max(1));
        let over_budget = || {
            RegistryError::MetadataInvalid(format!(
                "checking it against schema {slug:?} took longer than {} ms (limits.schema_validation_timeout_ms); \
                 the schema is too costly for this metadata",
                budget.as_millis()
            ))
        };
        let validator = match self.validators.get(&schema.id) {
            Some(validator) => validator,
            None => {
                let owned = schema.schema.clone();
                let validator =
                    within_budget(&self.validators.workers, budget, move |_| compile(&owned))
                        .await?
                        .ok_or_else(over_budget)??;
                let validator = Arc::new(validator);
                self.validators.keep(&schema.id, validator.clone());
                validator
            }
        };
        let metadata = metadata.clone();
        let errors = within_budget(&self.validators.workers, budget, move |abandoned| {
            // The yes/no answer first: it allocates nothing, and is all a
            // valid document (the usual case) needs. Listing the errors
            // costs more (an `anyOf` keeps every branch's errors), so it is
            // skipped once nobody waits for it.
            if validator.is_valid(&metadata) {
                return Vec::new();
            }
            if abandoned.load(Ordering::SeqCst) {
                return vec!["(not listed: over the time budget)".to_owned()];
            }
            validator
                .iter_errors(&metadata)
                .take(MAX_REPORTED_ERRORS)
                .map(|e| {
                    let at = e.instance_path().to_string();
                    if at.is_empty() {
                        e.to_string()
                    } else {
                        format!("{at}: {e}")
                    }
                })
                .collect::<Vec<String>>()
        })
        .await?
        .ok_or_else(over_budget)?;
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
