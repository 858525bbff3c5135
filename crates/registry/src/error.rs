//! The registry's errors. Each has a stable machine [`RegistryError::code`];
//! the HTTP layer and the CLI each map them in one place.

use artifactstore_core::lifecycle::PurgeRefusal;
use artifactstore_core::path::PathError;
use artifactstore_storage::StorageError;
use artifactstore_store::StoreError;

use crate::config::ConfigError;

/// What an operation refused or failed at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No such package.
    #[error("package {0} not found")]
    PackageNotFound(String),
    /// No such file.
    #[error("file {0} not found")]
    FileNotFound(String),
    /// No such hold on the package.
    #[error("hold {0} not found on this package")]
    HoldNotFound(String),
    /// No such API token.
    #[error("token {0} not found")]
    TokenNotFound(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the right.
    #[error("{0}")]
    Forbidden(String),
    /// No such metadata schema.
    #[error("metadata schema {0:?} not found")]
    SchemaNotFound(String),
    /// The package has no manifest yet.
    #[error("package {0} is not finalized, so it has no manifest")]
    ManifestNotFound(String),
    /// Not a configured retention class.
    #[error("unknown retention class {0:?}")]
    UnknownRetentionClass(String),
    /// A relative path failed validation.
    #[error("invalid relative path: {0}")]
    InvalidPath(#[from] PathError),
    /// The path is taken in this package.
    #[error("a file with relative path {0:?} already exists in this package")]
    DuplicateRelativePath(String),
    /// The path would be a file and a folder at once, or would name the
    /// same file as another path once normalised (see
    /// [`artifactstore_core::path::collision_key`]).
    #[error("relative path {path:?} conflicts with {existing:?}, already in this package: {why}")]
    PathConflict {
        /// The refused path.
        path: String,
        /// The path already in the package.
        existing: String,
        /// Which rule they break.
        why: &'static str,
    },
    /// An active token already has this name.
    #[error(
        "an active token named {name:?} exists already ({token_id}): names must say who acted"
    )]
    TokenNameTaken {
        /// The name.
        name: String,
        /// The token that has it.
        token_id: String,
    },
    /// The operation does not apply in the package's status.
    #[error("package {package_id} is {status}; cannot {operation}")]
    IllegalPackageState {
        /// The package.
        package_id: String,
        /// Its status.
        status: String,
        /// What was attempted.
        operation: &'static str,
    },
    /// The bytes do not match a digest the client gave.
    #[error("{algorithm} digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// `sha-256` or `blake3`.
        algorithm: &'static str,
        /// What the client said.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// Metadata is not acceptable (shape or schema).
    #[error("metadata is invalid: {0}")]
    MetadataInvalid(String),
    /// A submitted JSON Schema is not a valid schema.
    #[error("invalid JSON Schema: {0}")]
    SchemaInvalid(String),
    /// The slug is registered with a different schema.
    #[error("metadata schema {0:?} is already registered with a different body")]
    SchemaConflict(String),
    /// Some other field is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// A retention change is not allowed.
    #[error("{0}")]
    RetentionRefused(String),
    /// The requested byte range is outside the file.
    #[error("range not satisfiable for a file of {size} bytes")]
    RangeNotSatisfiable {
        /// File size.
        size: u64,
    },
    /// The upload ended early or failed while being read.
    #[error("the upload could not be read: {0}")]
    UploadInterrupted(String),
    /// Over a size limit.
    #[error("{what} is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The package holds as many files as allowed.
    #[error("the package already holds the most files allowed ({0})")]
    TooManyFiles(u64),
    /// The backend is full.
    #[error("storage is full")]
    StorageFull,
    /// The backend or database cannot be reached.
    #[error("a service the registry depends on is unavailable")]
    Unavailable(String),
    /// The package cannot be purged (not eligible, held, class `never`,
    /// purged already).
    #[error("cannot purge package {package_id}: {refusal}")]
    PurgeRefused {
        /// The package.
        package_id: String,
        /// Which rule refuses.
        refusal: PurgeRefusal,
    },
    /// The package was purged: its bytes are gone (its records stay).
    #[error("package {package_id} was purged at {purged_at} by {purged_by} ({reason}): its bytes are gone; its manifest and records remain")]
    PackagePurged {
        /// The package.
        package_id: String,
        /// When.
        purged_at: String,
        /// By whom.
        purged_by: String,
        /// Why.
        reason: String,
    },
    /// The collector was deleting identical bytes while this upload
    /// stored them; nothing was recorded and sending again succeeds.
    #[error("identical bytes were being collected while this upload stored them; nothing was recorded: send the file again")]
    ObjectBeingCollected,
    /// No such leaf or checkpoint in the log.
    #[error("{0}")]
    LogEntryNotFound(String),
    /// The log contradicts a checkpoint this server signed: it was
    /// rewritten, or restored from an older copy.
    #[error("the log contradicts a checkpoint this server signed: {0}")]
    LogInconsistent(String),
    /// No such resumable upload (never created, completed, terminated or
    /// expired).
    #[error("upload {0} not found: it completed, was terminated, expired, or never existed")]
    UploadNotFound(String),
    /// A PATCH did not start where the upload stands.
    #[error("the upload is at offset {expected}, not {got}: ask for its offset (HEAD) and continue from there")]
    UploadOffsetMismatch {
        /// Where the upload stands.
        expected: u64,
        /// What the request said.
        got: u64,
    },
    /// Another request is writing to this upload.
    #[error("another request is writing to upload {0}; retry when it ends")]
    UploadLocked(String),
    /// An upload in progress holds the path.
    #[error(
        "relative path {path:?} is reserved by upload {upload_id}, in progress in this package"
    )]
    PathReserved {
        /// The refused path.
        path: String,
        /// The upload holding it.
        upload_id: String,
    },
    /// The package has uploads in progress.
    #[error("package {package_id} has uploads in progress ({}): finish or terminate them first", uploads.join(", "))]
    UploadsOpen {
        /// The package.
        package_id: String,
        /// The uploads, as `id (path)`.
        uploads: Vec<String>,
    },
    /// A PATCH's bytes do not match its `Upload-Checksum`.
    #[error("the request's bytes do not match its Upload-Checksum ({algorithm}); nothing of it was kept")]
    ChecksumMismatch {
        /// `sha1` or `sha256`.
        algorithm: &'static str,
    },
    /// Configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Something that should not happen (logged in full; shown generically).
    #[error("internal error")]
    Internal(String),
}

impl RegistryError {
    /// The stable machine code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PackageNotFound(_) => "package_not_found",
            Self::FileNotFound(_) => "file_not_found",
            Self::HoldNotFound(_) => "hold_not_found",
            Self::SchemaNotFound(_) => "schema_not_found",
            Self::TokenNotFound(_) => "token_not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::ManifestNotFound(_) => "manifest_not_found",
            Self::UnknownRetentionClass(_) => "unknown_retention_class",
            Self::InvalidPath(_) => "invalid_path",
            Self::DuplicateRelativePath(_) => "duplicate_relative_path",
            Self::PathConflict { .. } => "path_conflict",
            Self::TokenNameTaken { .. } => "token_name_taken",
            Self::IllegalPackageState { .. } => "illegal_package_state",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::MetadataInvalid(_) => "metadata_invalid",
            Self::SchemaInvalid(_) => "schema_invalid",
            Self::SchemaConflict(_) => "schema_conflict",
            Self::InvalidInput(_) => "invalid_input",
            Self::RetentionRefused(_) => "retention_refused",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::UploadInterrupted(_) => "upload_interrupted",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::TooManyFiles(_) => "too_many_files",
            Self::StorageFull => "storage_full",
            Self::Unavailable(_) => "service_unavailable",
            Self::PurgeRefused { refusal, .. } => refusal.code(),
            Self::PackagePurged { .. } => "package_purged",
            Self::ObjectBeingCollected => "object_being_collected",
            Self::LogEntryNotFound(_) => "log_entry_not_found",
            Self::LogInconsistent(_) => "log_inconsistent",
            Self::UploadNotFound(_) => "upload_not_found",
            Self::UploadOffsetMismatch { .. } => "upload_offset_mismatch",
            Self::UploadLocked(_) => "upload_locked",
            Self::PathReserved { .. } => "path_reserved",
            Self::UploadsOpen { .. } => "uploads_open",
            Self::ChecksumMismatch { .. } => "checksum_mismatch",
            Self::Config(_) => "configuration_invalid",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(sqlx_error) => {
                use artifactstore_store::sqlx_error_is_unavailable as unavailable;
                if unavailable(&sqlx_error) {
                    Self::Unavailable(sqlx_error.to_string())
                } else {
                    Self::Internal(format!("database: {sqlx_error}"))
                }
            }
            StoreError::DuplicateRelativePath => Self::DuplicateRelativePath(String::new()),
            StoreError::Busy => Self::Unavailable("the database is busy".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<StorageError> for RegistryError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(key) => {
                Self::Internal(format!("stored object {key} is missing"))
            }
            StorageError::RangeNotSatisfiable { size, .. } => Self::RangeNotSatisfiable { size },
            StorageError::Full { .. } => Self::StorageFull,
            StorageError::Unavailable { .. } => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<artifactstore_core::cbor::CborError> for RegistryError {
    fn from(e: artifactstore_core::cbor::CborError) -> Self {
        Self::Internal(format!("encoding: {e}"))
    }
}

/// Result of registry operations.
pub type RegistryResult<T> = Result<T, RegistryError>;
