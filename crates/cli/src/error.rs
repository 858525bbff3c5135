//! The CLI's errors, and the one place they become a line on stderr and an
//! exit status.

use artifactstore_registry::RegistryError;

/// What a command failed at.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with a problem.
    #[error("{detail} ({code}, HTTP {status})")]
    Server {
        /// HTTP status.
        status: u16,
        /// Stable machine code.
        code: String,
        /// Human detail.
        detail: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the server at {url}: {cause} (is `artifactstore serve` running? set --server or ARTIFACTSTORE_URL)")]
    Unreachable {
        /// Server URL.
        url: String,
        /// Why.
        cause: String,
    },
    /// Downloaded bytes do not match the manifest.
    #[error("digest mismatch for {path}: {what}")]
    DigestMismatch {
        /// File.
        path: String,
        /// What differs.
        what: String,
    },
    /// Two paths of a package would be one file on this machine.
    #[error("{first:?} and {second:?} cannot both be pulled: {why}; nothing was overwritten")]
    PathCollision {
        /// The path written, or listed, first.
        first: String,
        /// The path refused.
        second: String,
        /// How they collide.
        why: String,
    },
    /// A local file problem.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad arguments or local input.
    #[error("{0}")]
    Usage(String),
    /// A registry operation (admin and serve) failed.
    #[error("{}", registry_message(.0))]
    Registry(#[from] RegistryError),
    /// The server sent something unexpected.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// A check found problems (verification, replay check, log check).
    #[error("{0}")]
    CheckFailed(String),
}

fn registry_message(e: &RegistryError) -> String {
    match e {
        RegistryError::Internal(cause) | RegistryError::Unavailable(cause) => {
            format!("{e}: {cause}")
        }
        other => other.to_string(),
    }
}

impl CliError {
    /// An IO error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// The process exit status: 1 for failures, 3 for integrity failures,
    /// so scripts can tell "the bytes are wrong" from "something failed".
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::DigestMismatch { .. } | Self::CheckFailed(_) => 3,
            Self::Server { code, .. } if code == "digest_mismatch" => 3,
            Self::Registry(RegistryError::LogInconsistent(_)) => 3,
            _ => 1,
        }
    }
}

/// Result of CLI operations.
pub type CliResult<T> = Result<T, CliError>;
