//! The artifact-store library: one [`Registry`] that combines the event
//! store and the byte backends into the operations the HTTP server and the
//! CLI both call. Neither holds registry logic of its own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), artifactstore_registry::RegistryError> {
//! use artifactstore_registry::{Config, NewPackage, Registry};
//! let registry = Registry::open(&Config::default()).await?;
//! let package = registry
//!     .create_package(
//!         NewPackage {
//!             name: "nightly".into(),
//!             producer: "ci".into(),
//!             subject: "app".into(),
//!             retention_class: "standard".into(),
//!             metadata: serde_json::json!({"run": 42}),
//!             metadata_schema: None,
//!         },
//!         "ci-bot",
//!     )
//!     .await?;
//! # let _ = package; Ok(()) }
//! ```

mod auth;
mod batch_queue;
pub mod bundle;
pub mod config;
mod error;
mod file_checks;
mod file_commits;
mod ingest;
pub mod lifecycle;
pub mod log;
mod operations;
mod retention;
mod schemas;
mod token_reads;
pub mod uploads;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;

use artifactstore_core::{Clock, RetentionClass, SystemClock};
use artifactstore_storage::{Backend, FilesystemBackend, S3Backend, S3Settings};

pub use artifactstore_core as core;
pub use artifactstore_storage::{ByteStream, StorageError, FILESYSTEM_SMALLEST_PART_BYTES};
pub use artifactstore_store::{
    CheckpointRecord, DigestKind, FileListing, FilePage, FileRecord, HoldRecord, LogVerification,
    PackageFilter, PackagePage, PackageRecord, ReplayReport, RetentionRecord, SchemaRecord, Store,
    TokenRecord,
};
pub use auth::Principal;
pub use config::Config;
pub use error::{RegistryError, RegistryResult};
pub use ingest::ExpectedDigests;
pub use operations::{Finalized, ManifestFormat, NewPackage};
pub use uploads::{ChecksumAlgorithm, NewUpload, PatchChecksum, Patched, UploadState};
pub use verify::{ComponentHealth, Health, VerificationResult, VerifyReport};

use crate::config::{BackendType, RoutingRule};

/// The registry: every operation on packages, files, retention, schemas,
/// the log and the stored bytes.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    backends: Arc<BTreeMap<String, Arc<dyn Backend>>>,
    default_backend: String,
    rules: Arc<Vec<RoutingRule>>,
    classes: Arc<BTreeMap<String, RetentionClass>>,
    limits: Arc<config::LimitsConfig>,
    file_checks: file_checks::FileChecks,
    file_commits: file_commits::FileCommits,
    token_reads: token_reads::TokenReads,
    validators: Arc<schemas::Validators>,
    lifecycle: config::LifecycleSettings,
    /// This process's name as a lifecycle lease holder and claimant.
    instance: Arc<str>,
    lifecycle_stats: lifecycle::SharedStats,
    log: log::LogSettings,
    uploads: UploadSettings,
    parked: uploads::ParkedHashers,
}

/// Resumable uploads' settings, from `[uploads]`.
#[derive(Debug, Clone, Copy)]
struct UploadSettings {
    expire_after_seconds: i64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store)
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Builds a [`Registry`] with a custom clock or backends (tests, embedding).
pub struct RegistryBuilder {
    config: Config,
    clock: Arc<dyn Clock>,
    overrides: BTreeMap<String, Arc<dyn Backend>>,
}

impl RegistryBuilder {
    /// Uses `clock` for every timestamp.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `backend` instead of the configured backend with the same id.
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.overrides.insert(backend.id().to_owned(), backend);
        self
    }

    /// Connects, migrates, and opens the backends.
    pub async fn build(mut self) -> RegistryResult<Registry> {
        let default_backend = self.config.validate_routing()?;
        let lifecycle = self.config.lifecycle.settings()?;
        let uploads = UploadSettings {
            expire_after_seconds: self.config.uploads.expire_after_seconds()?,
        };
        let log = log::LogSettings {
            key: Arc::new(log::LogKey::load_or_generate(
                &self.config.log.signing_key_path(&self.config.data_dir),
                &self.config.log.origin,
            )?),
            checkpoint_interval: self.config.log.checkpoint_interval()?,
        };
        let classes = self
            .config
            .effective_retention_classes()?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let mut backends: BTreeMap<String, Arc<dyn Backend>> = BTreeMap::new();
        for backend in self.config.effective_backends() {
            if let Some(custom) = self.overrides.remove(&backend.id) {
                backends.insert(backend.id.clone(), custom);
                continue;
            }
            let opened: Arc<dyn Backend> = match backend.kind {
                BackendType::Filesystem => {
                    let root = backend.root.clone().ok_or_else(|| {
                        config::ConfigError::Invalid(format!(
                            "filesystem backend `{}` needs `root`",
                            backend.id
                        ))
                    })?;
                    Arc::new(FilesystemBackend::open(backend.id.clone(), root).await?)
                }
                BackendType::S3 => {
                    let bucket = backend.bucket.clone().ok_or_else(|| {
                        config::ConfigError::Invalid(format!(
                            "s3 backend `{}` needs `bucket`",
                            backend.id
                        ))
                    })?;
                    Arc::new(S3Backend::new(S3Settings {
                        id: backend.id.clone(),
                        endpoint: backend.endpoint.clone(),
                        region: backend.region.clone().unwrap_or_else(|| "us-east-1".into()),
                        bucket,
                        path_style: backend.path_style,
                        access_key_id: backend.access_key_id.clone(),
                        secret_access_key: backend.secret_access_key.as_ref().map(|s| s.0.clone()),
                        prefix: backend.prefix.clone().unwrap_or_default(),
                        stall_timeout: backend.stall_timeout()?,
                    })?)
                }
            };
            backends.insert(backend.id.clone(), opened);
        }
        if let Some(parent) = self
            .config
            .database
            .url
            .is_none()
            .then(|| self.config.data_dir.clone())
        {
            std::fs::create_dir_all(&parent).map_err(|e| {
                config::ConfigError::Invalid(format!(
                    "cannot create data_dir {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let timeout = std::time::Duration::from_secs(self.config.database.timeout_seconds.max(1));
        let store =
            Store::connect(&self.config.database_url(), self.clock.clone(), timeout).await?;
        store.migrate().await?;
        let file_checks = file_checks::FileChecks::start(store.clone());
        let file_commits = file_commits::FileCommits::start(
            store.clone(),
            self.config.limits.max_files_per_package,
        );
        Ok(Registry {
            file_checks,
            file_commits,
            token_reads: token_reads::TokenReads::start(store.clone()),
            store,
            backends: Arc::new(backends),
            default_backend,
            rules: Arc::new(self.config.routing.rules.clone()),
            classes: Arc::new(classes),
            limits: Arc::new(self.config.limits.clone()),
            validators: schemas::Validators::new(),
            lifecycle,
            instance: Arc::from(uuid::Uuid::new_v4().to_string()),
            lifecycle_stats: lifecycle::SharedStats::default(),
            log,
            uploads,
            parked: uploads::ParkedHashers::default(),
        })
    }
}

impl Registry {
    /// Opens the registry a configuration describes.
    pub async fn open(config: &Config) -> RegistryResult<Self> {
        Self::builder(config.clone()).build().await
    }

    /// A builder for `config`.
    pub fn builder(config: Config) -> RegistryBuilder {
        RegistryBuilder {
            config,
            clock: Arc::new(SystemClock),
            overrides: BTreeMap::new(),
        }
    }

    /// The event store (for tools and tests that inspect the log).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The backend files of a package with this producer and class go to.
    pub fn route(&self, producer: &str, retention_class: &str) -> &str {
        self.rules
            .iter()
            .find(|rule| rule.matches(producer, retention_class))
            .map_or(self.default_backend.as_str(), |rule| rule.backend.as_str())
    }

    fn backend(&self, id: &str) -> RegistryResult<&Arc<dyn Backend>> {
        self.backends
            .get(id)
            .ok_or_else(|| RegistryError::Unavailable(format!("backend `{id}` is not configured")))
    }

    /// The limits in force.
    pub fn limits(&self) -> &config::LimitsConfig {
        &self.limits
    }

    /// Closes the database connections.
    pub async fn close(&self) {
        self.store.close().await;
    }
}
