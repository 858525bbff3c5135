//! Configuration: a TOML file plus environment overrides. Every key has a
//! default, so no file at all gives the embedded default (SQLite and local
//! files under `./artifactstore-data`, listening on `127.0.0.1:8000`).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use artifactstore_core::flag;
use artifactstore_core::retention::{
    default_retention_classes, DeletionStrategy, DEFAULT_PURGE_AFTER,
};
use artifactstore_core::{RetentionClass, RetentionDuration};
use serde::Deserialize;

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./artifactstore-data";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// The id of the filesystem backend used when none is configured.
pub const DEFAULT_BACKEND_ID: &str = "local";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown key (the message names it).
    #[error("invalid configuration{}: {message}", .path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Parse {
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// What is wrong, and where.
        message: String,
    },
    /// Parsed, but inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A secret: shown as `***` in debug output and logs.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Root for the SQLite database and the default object directory.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// HTTP server settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// Database settings.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Byte backends; none configured means one filesystem backend `local`
    /// under `<data_dir>/objects`.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
    /// Which backend a package's files go to.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Retention classes; when given, they replace the default table.
    #[serde(default)]
    pub retention_classes: Vec<RetentionClassConfig>,
    /// Access control.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Limits on what one request may ask for.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The lifecycle: sweep, purge, collect.
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// The log's signed checkpoints.
    #[serde(default)]
    pub log: LogConfig,
    /// Resumable (tus) uploads.
    #[serde(default)]
    pub uploads: UploadsConfig,
    /// What the environment changed that weakens the file's settings
    /// (filled by [`Config::apply_env`]); `serve` logs each at start.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Limits on what one request may ask for. Over a limit the request is
/// refused before the work is done.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest file, in bytes (413 `payload_too_large`).
    pub max_file_bytes: u64,
    /// Largest package metadata, as compact JSON, in bytes (413).
    pub max_metadata_bytes: usize,
    /// Most files in one package (400 `too_many_files`).
    pub max_files_per_package: u64,
    /// Uploads streaming at once on one server (429 `too_many_uploads`).
    pub max_concurrent_uploads: usize,
    /// Uploads one caller (one token, or one actor without auth) may
    /// stream at once (429 `too_many_uploads`); default a quarter of
    /// `max_concurrent_uploads`, at least 1.
    pub max_uploads_per_caller: Option<usize>,
    /// An upload that sends nothing for this long is dropped (400
    /// `upload_interrupted`).
    pub upload_idle_timeout_seconds: u64,
    /// An upload must arrive at least this fast, in bytes per second,
    /// averaged over each `upload_rate_window_seconds` the server spends
    /// waiting for it, or it is dropped (400 `upload_interrupted`); 0
    /// turns the check off.
    pub min_upload_bytes_per_second: u64,
    /// The span over which `min_upload_bytes_per_second` is measured.
    pub upload_rate_window_seconds: u64,
    /// Longest a request may take to produce its response head (an upload
    /// counts until it is stored); 408 `request_timeout` after it.
    pub request_timeout_seconds: u64,
    /// Largest page of packages or events a request may ask for (at most
    /// 1000).
    pub max_page: i64,
    /// Largest metadata JSON Schema, as canonical JSON, in bytes (422
    /// `schema_invalid` at registration).
    pub max_schema_bytes: usize,
    /// Most subschemas and patterns a metadata schema may hold once its
    /// `$ref`s are expanded (422 `schema_invalid` at registration).
    pub max_schema_complexity: u64,
    /// Longest a package's metadata may take to check against its schema,
    /// in milliseconds (422 `metadata_invalid` after it).
    pub schema_validation_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 1 << 40,
            max_metadata_bytes: 64 * 1024,
            max_files_per_package: 100_000,
            max_concurrent_uploads: 64,
            max_uploads_per_caller: None,
            upload_idle_timeout_seconds: 60,
            min_upload_bytes_per_second: 1024,
            upload_rate_window_seconds: 30,
            request_timeout_seconds: 6 * 3600,
            max_page: 1000,
            max_schema_bytes: 256 * 1024,
            max_schema_complexity: 10_000,
            schema_validation_timeout_ms: 2_000,
        }
    }
}

impl LimitsConfig {
    /// The uploads one caller may stream at once.
    pub fn uploads_per_caller(&self) -> usize {
        self.max_uploads_per_caller
            .unwrap_or(self.max_concurrent_uploads / 4)
            .clamp(1, self.max_concurrent_uploads.max(1))
    }
}

/// The lifecycle `serve` runs by itself: sweep, then purge, then collect.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// How often (`1h`, `10m`, …); `0s` turns the automatic runs off
    /// (`admin gc` and `POST /v1/lifecycle/run` still work).
    pub interval: String,
    /// How old an object no live file refers to must be before it is
    /// collected: uploads in flight store their bytes before their event.
    pub orphan_grace: String,
    /// How long one process's claim on running the lifecycle lasts
    /// without renewal; another replica (or a restarted process) takes
    /// over after it. A run renews it as it goes.
    pub lease_timeout: String,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            interval: "1h".into(),
            orphan_grace: "24h".into(),
            lease_timeout: "2m".into(),
        }
    }
}

/// [`LifecycleConfig`], parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleSettings {
    /// Between automatic runs; `None`: no automatic runs.
    pub interval: Option<Duration>,
    /// See [`LifecycleConfig::orphan_grace`].
    pub orphan_grace: Duration,
    /// See [`LifecycleConfig::lease_timeout`].
    pub lease_timeout: Duration,
}

impl LifecycleConfig {
    /// Parses the durations.
    pub fn settings(&self) -> Result<LifecycleSettings, ConfigError> {
        let parse = |key: &str, text: &str| {
            RetentionDuration::parse_allowing_zero(text)
                .map(|d| Duration::from_secs(u64::try_from(d.seconds()).unwrap_or(0)))
                .map_err(|e| ConfigError::Invalid(format!("lifecycle.{key}: {e}")))
        };
        let interval = parse("interval", &self.interval)?;
        let lease_timeout = parse("lease_timeout", &self.lease_timeout)?;
        if lease_timeout < Duration::from_secs(2) {
            return Err(ConfigError::Invalid(
                "lifecycle.lease_timeout must be at least 2s".into(),
            ));
        }
        Ok(LifecycleSettings {
            interval: (!interval.is_zero()).then_some(interval),
            orphan_grace: parse("orphan_grace", &self.orphan_grace)?,
            lease_timeout,
        })
    }
}

/// Resumable (tus) uploads (docs/http-api.md, "Resumable uploads").
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// An unfinished upload that receives nothing for this long expires
    /// (`24h`): its path is free again and its staged bytes are removed.
    pub expire_after: String,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            expire_after: "24h".into(),
        }
    }
}

impl UploadsConfig {
    /// How long an idle upload lives, in seconds.
    pub fn expire_after_seconds(&self) -> Result<i64, ConfigError> {
        self.expire_after
            .parse::<RetentionDuration>()
            .map(|d| d.seconds())
            .map_err(|e| ConfigError::Invalid(format!("uploads.expire_after: {e}")))
    }
}

/// The log's signed checkpoints (docs/security.md, "Proof that leaves the
/// server").
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// How often at most `serve` signs a new checkpoint, when the log has
    /// grown (`10s`); `0s` signs only on demand (`admin checkpoint`,
    /// `POST /v1/log/checkpoints`) and for bundles.
    pub checkpoint_interval: String,
    /// The Ed25519 signing key, in signed-note form
    /// (`PRIVATE+KEY+name+keyid+base64`). By default
    /// `<data_dir>/log-signing.key`, generated at first start (mode 0600).
    /// Replicas sharing a database must all name the same key.
    pub signing_key: Option<PathBuf>,
    /// The name a generated key gets, which is also the checkpoints'
    /// origin line (a key read from a file brings its own).
    pub origin: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval: "10s".into(),
            signing_key: None,
            origin: "artifactstore".into(),
        }
    }
}

impl LogConfig {
    /// Between automatic checkpoints; `None`: only on demand.
    pub fn checkpoint_interval(&self) -> Result<Option<Duration>, ConfigError> {
        let interval = RetentionDuration::parse_allowing_zero(&self.checkpoint_interval)
            .map(|d| Duration::from_secs(u64::try_from(d.seconds()).unwrap_or(0)))
            .map_err(|e| ConfigError::Invalid(format!("log.checkpoint_interval: {e}")))?;
        Ok((!interval.is_zero()).then_some(interval))
    }

    /// Where the signing key is (or will be generated).
    pub fn signing_key_path(&self, data_dir: &Path) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| data_dir.join("log-signing.key"))
    }
}

/// Access control.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Every API request needs a bearer token (`artifactstore admin token
    /// create`). Off by default, which `serve` allows on loopback only.
    #[serde(default)]
    pub required: bool,
}

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// With auth not required: host names, besides loopback names and
    /// addresses, that requests may name in `Host` (and `Origin`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Most connections open at once (lowered at start to leave file
    /// descriptors for the rest); more wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a connection may take to send a request's headers, or stay
    /// idle between requests, before it is closed.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            allowed_hosts: Vec::new(),
            max_connections: default_max_connections(),
            header_read_timeout_seconds: default_header_read_timeout(),
        }
    }
}

fn default_max_connections() -> usize {
    4096
}

fn default_header_read_timeout() -> u64 {
    20
}

/// Database settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; default: SQLite in `data_dir`.
    pub url: Option<String>,
    /// How long an operation waits for a database connection or lock
    /// before it fails with 503.
    #[serde(default = "default_database_timeout")]
    pub timeout_seconds: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            timeout_seconds: default_database_timeout(),
        }
    }
}

fn default_database_timeout() -> u64 {
    10
}

/// Kinds of backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendType {
    /// A local directory.
    Filesystem,
    /// An S3-compatible store.
    S3,
}

/// One backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Id packages' files are recorded under; never change it once used.
    pub id: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: BackendType,
    /// Filesystem: the directory.
    pub root: Option<PathBuf>,
    /// S3: endpoint URL (omit for AWS).
    pub endpoint: Option<String>,
    /// S3: region.
    pub region: Option<String>,
    /// S3: bucket.
    pub bucket: Option<String>,
    /// S3: path-style URLs (Ceph RGW, Garage, MinIO).
    #[serde(default)]
    pub path_style: bool,
    /// S3: access key id (or `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// S3: secret (or `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<Secret>,
    /// S3: key prefix inside the bucket, to share a bucket.
    pub prefix: Option<String>,
    /// S3: seconds a request may wait on the store (a part upload: to send
    /// the part and get its answer), or a download go without bytes, before
    /// it is sent again; default 120.
    pub stall_timeout_seconds: Option<u64>,
}

impl BackendConfig {
    /// S3: the stall timeout in effect.
    pub fn stall_timeout(&self) -> Result<Duration, ConfigError> {
        match self.stall_timeout_seconds {
            None => Ok(artifactstore_storage::DEFAULT_STALL_TIMEOUT),
            Some(0) => Err(ConfigError::Invalid(format!(
                "s3 backend `{}`: stall_timeout_seconds must be at least 1",
                self.id
            ))),
            Some(seconds) => Ok(Duration::from_secs(seconds)),
        }
    }
}

/// Routing of packages to backends.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Backend when no rule matches; default: the first backend.
    pub default_backend: Option<String>,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<RoutingRule>,
}

/// One routing rule; an omitted field matches anything.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// Producer to match.
    pub producer: Option<String>,
    /// Retention class to match.
    pub retention_class: Option<String>,
    /// Backend to use.
    pub backend: String,
}

impl RoutingRule {
    /// Whether the rule applies to a package.
    pub fn matches(&self, producer: &str, retention_class: &str) -> bool {
        self.producer.as_deref().is_none_or(|p| p == producer)
            && self
                .retention_class
                .as_deref()
                .is_none_or(|c| c == retention_class)
    }
}

/// One retention class.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionClassConfig {
    /// Class id.
    pub id: String,
    /// `90d`, `12h`, `10y`…; omit for never.
    pub default_duration: Option<String>,
    /// `delete`, `manual-review` or `never`.
    #[serde(default = "default_strategy")]
    pub deletion_strategy: DeletionStrategy,
    /// `delete` classes: how long an eligible package waits before the
    /// lifecycle purges it (`7d` by default; `0s` at the next run).
    pub purge_after: Option<String>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_owned()
}

fn default_strategy() -> DeletionStrategy {
    DeletionStrategy::Delete
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            backends: Vec::new(),
            routing: RoutingConfig::default(),
            retention_classes: Vec::new(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            lifecycle: LifecycleConfig::default(),
            log: LogConfig::default(),
            uploads: UploadsConfig::default(),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Parses TOML text.
    pub fn from_toml(text: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.map(Path::to_path_buf),
            message: e.message().to_owned(),
        })
    }

    /// Loads `path` (or `ARTIFACTSTORE_CONFIG`, or nothing) and applies the
    /// process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let from_env = std::env::var_os("ARTIFACTSTORE_CONFIG").map(PathBuf::from);
        let path = path.map(Path::to_path_buf).or(from_env);
        let mut config = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Self::from_toml(&text, Some(path))?
            }
            None => Self::default(),
        };
        config.apply_env(|key| std::env::var(key).ok())?;
        Ok(config)
    }

    /// Applies environment overrides read through `get`. A value that cannot
    /// be parsed is an error that names the variable; an override that
    /// weakens the file's setting is allowed but recorded in
    /// [`Config::warnings`], for `serve` to log loudly at start.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(dir) = get("ARTIFACTSTORE_DATA_DIR") {
            self.data_dir = PathBuf::from(dir);
        }
        if let Some(url) = get("ARTIFACTSTORE_DATABASE_URL") {
            self.database.url = Some(url);
        }
        if let Some(listen) = get("ARTIFACTSTORE_LISTEN") {
            self.server.listen = listen;
        }
        if let Some(given) = get("ARTIFACTSTORE_AUTH_REQUIRED") {
            let required = flag::parse_bool(&given)
                .map_err(|e| ConfigError::Invalid(format!("ARTIFACTSTORE_AUTH_REQUIRED: {e}")))?;
            if self.auth.required && !required {
                self.warnings.push(format!(
                    "ARTIFACTSTORE_AUTH_REQUIRED={given:?} overrides `[auth] required = true` \
                     from the configuration file: AUTHENTICATION IS OFF and every request acts \
                     as an admin"
                ));
            }
            self.auth.required = required;
        }
        let key_id = get("AWS_ACCESS_KEY_ID");
        let secret = get("AWS_SECRET_ACCESS_KEY");
        for backend in self
            .backends
            .iter_mut()
            .filter(|b| b.kind == BackendType::S3)
        {
            if backend.access_key_id.is_none() {
                backend.access_key_id.clone_from(&key_id);
            }
            if backend.secret_access_key.is_none() {
                backend.secret_access_key = secret.clone().map(Secret);
            }
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("artifactstore.db").display()
            ),
        }
    }

    /// The backends in effect.
    pub fn effective_backends(&self) -> Vec<BackendConfig> {
        if !self.backends.is_empty() {
            return self.backends.clone();
        }
        vec![BackendConfig {
            id: DEFAULT_BACKEND_ID.to_owned(),
            kind: BackendType::Filesystem,
            root: Some(self.data_dir.join("objects")),
            endpoint: None,
            region: None,
            bucket: None,
            path_style: false,
            access_key_id: None,
            secret_access_key: None,
            prefix: None,
            stall_timeout_seconds: None,
        }]
    }

    /// The retention classes in effect.
    pub fn effective_retention_classes(&self) -> Result<Vec<RetentionClass>, ConfigError> {
        if self.retention_classes.is_empty() {
            return Ok(default_retention_classes());
        }
        let mut seen = BTreeSet::new();
        self.retention_classes
            .iter()
            .map(|c| {
                if !seen.insert(c.id.as_str()) {
                    return Err(ConfigError::Invalid(format!(
                        "retention class `{}` is defined twice",
                        c.id
                    )));
                }
                let default_duration = c
                    .default_duration
                    .as_deref()
                    .map(str::parse::<RetentionDuration>)
                    .transpose()
                    .map_err(|e| {
                        ConfigError::Invalid(format!("retention class `{}`: {e}", c.id))
                    })?;
                let purge_after = match c.purge_after.as_deref() {
                    None => DEFAULT_PURGE_AFTER,
                    Some(text) => RetentionDuration::parse_allowing_zero(text).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "retention class `{}`: purge_after: {e}",
                            c.id
                        ))
                    })?,
                };
                Ok(RetentionClass {
                    id: c.id.clone(),
                    default_duration,
                    deletion_strategy: c.deletion_strategy,
                    purge_after,
                })
            })
            .collect()
    }

    /// Checks the backends and routing agree; returns the default backend.
    pub fn validate_routing(&self) -> Result<String, ConfigError> {
        let backends = self.effective_backends();
        let mut ids = BTreeSet::new();
        for backend in &backends {
            if backend.id.is_empty() || !ids.insert(backend.id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "backend id `{}` is empty or defined twice",
                    backend.id
                )));
            }
        }
        let known = |id: &str, what: &str| {
            if ids.contains(id) {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "{what} names backend `{id}`, which is not configured"
                )))
            }
        };
        let default = match &self.routing.default_backend {
            Some(id) => {
                known(id, "routing.default_backend")?;
                id.clone()
            }
            None => backends[0].id.clone(),
        };
        for (i, rule) in self.routing.rules.iter().enumerate() {
            known(&rule.backend, &format!("routing.rules[{i}]"))?;
        }
        Ok(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_embedded_default() {
        let config = Config::from_toml("", None).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:8000");
        assert_eq!(config.data_dir, PathBuf::from("./artifactstore-data"));
        assert_eq!(
            config.database_url(),
            "sqlite://./artifactstore-data/artifactstore.db"
        );
        assert_eq!(config.effective_backends()[0].id, "local");
        assert_eq!(config.validate_routing().unwrap(), "local");
        assert_eq!(config.effective_retention_classes().unwrap().len(), 4);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("data_dri = \"x\"", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("data_dri"), "{err}");
        let err = Config::from_toml("[server]\nlisten = \"a\"\nport = 1", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn contract_example_parses_and_env_overrides() {
        let text = r#"
data_dir = "/srv/as"
[server]
listen = "0.0.0.0:8000"
[database]
url = "postgres://artifacts@db.internal/artifacts"
[[backends]]
id = "local"
type = "filesystem"
root = "/var/lib/artifactstore/objects"
[[backends]]
id = "archive"
type = "s3"
endpoint = "http://rgw.internal:7480"
region = "us-east-1"
bucket = "artifacts"
path_style = true
[routing]
default_backend = "local"
[[routing.rules]]
producer = "compliance"
retention_class = "long-term"
backend = "archive"
[[retention_classes]]
id = "standard"
default_duration = "90d"
deletion_strategy = "delete"
"#;
        let mut config = Config::from_toml(text, None).unwrap();
        config
            .apply_env(|k| match k {
                "ARTIFACTSTORE_LISTEN" => Some("127.0.0.1:9999".into()),
                "AWS_SECRET_ACCESS_KEY" => Some("s3cret".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:9999");
        assert_eq!(config.validate_routing().unwrap(), "local");
        assert!(config.routing.rules[0].matches("compliance", "long-term"));
        assert!(!config.routing.rules[0].matches("compliance", "standard"));
        let archive = &config.backends[1];
        assert_eq!(archive.secret_access_key, Some(Secret("s3cret".into())));
        assert!(!format!("{config:?}").contains("s3cret"));
        let classes = config.effective_retention_classes().unwrap();
        assert_eq!(classes.len(), 1);
        assert_eq!(classes[0].default_duration.unwrap().seconds(), 90 * 86_400);
    }

    #[test]
    fn s3_stall_timeout_defaults_and_refuses_zero() {
        let backend = |extra: &str| {
            let text = format!("[[backends]]\nid = \"s3\"\ntype = \"s3\"\nbucket = \"b\"\n{extra}");
            Config::from_toml(&text, None).unwrap().backends.remove(0)
        };
        assert_eq!(
            backend("").stall_timeout().unwrap(),
            artifactstore_storage::DEFAULT_STALL_TIMEOUT
        );
        assert_eq!(
            backend("stall_timeout_seconds = 300")
                .stall_timeout()
                .unwrap(),
            Duration::from_secs(300)
        );
        let err = backend("stall_timeout_seconds = 0")
            .stall_timeout()
            .unwrap_err()
            .to_string();
        assert!(err.contains("stall_timeout_seconds"), "{err}");
    }

    #[test]
    fn auth_switch_from_the_environment_is_parsed_strictly() {
        let with_env = |file: &str, value: &str| {
            let mut config = Config::from_toml(file, None).unwrap();
            let value = value.to_owned();
            config
                .apply_env(|k| (k == "ARTIFACTSTORE_AUTH_REQUIRED").then(|| value.clone()))
                .map(|()| config)
        };
        let required = "[auth]\nrequired = true";
        // Every spelling of "on" keeps auth on, whatever the file says.
        for on in ["TRUE", "True", "on", "true ", "1", "yes"] {
            let config = with_env("", on).unwrap();
            assert!(config.auth.required, "{on:?}");
            let config = with_env(required, on).unwrap();
            assert!(config.auth.required && config.warnings.is_empty(), "{on:?}");
        }
        // Anything unrecognised refuses to load, naming the variable: it
        // never turns auth off.
        for bad in ["", "  ", "ture", "enabled", "2"] {
            let err = with_env(required, bad).unwrap_err().to_string();
            assert!(
                err.contains("ARTIFACTSTORE_AUTH_REQUIRED"),
                "{bad:?}: {err}"
            );
        }
        // An explicit "off" may weaken the file, but never silently.
        let config = with_env(required, "false").unwrap();
        assert!(!config.auth.required);
        assert_eq!(config.warnings.len(), 1);
        assert!(config.warnings[0].contains("AUTHENTICATION IS OFF"));
        let config = with_env("", "off").unwrap();
        assert!(!config.auth.required && config.warnings.is_empty());
    }

    #[test]
    fn lifecycle_keys_parse_with_defaults() {
        let config = Config::from_toml("", None).unwrap();
        let settings = config.lifecycle.settings().unwrap();
        assert_eq!(settings.interval, Some(Duration::from_secs(3600)));
        assert_eq!(settings.orphan_grace, Duration::from_secs(86_400));
        let text = "[lifecycle]\ninterval = \"0s\"\norphan_grace = \"0s\"\n\
                    [[retention_classes]]\nid = \"logs\"\ndefault_duration = \"1d\"\npurge_after = \"0s\"\n\
                    [[retention_classes]]\nid = \"reports\"\ndefault_duration = \"1d\"\n";
        let config = Config::from_toml(text, None).unwrap();
        let settings = config.lifecycle.settings().unwrap();
        assert_eq!(settings.interval, None);
        assert_eq!(settings.orphan_grace, Duration::ZERO);
        let classes = config.effective_retention_classes().unwrap();
        assert_eq!(classes[0].purge_after.seconds(), 0);
        assert_eq!(classes[1].purge_after, DEFAULT_PURGE_AFTER);
        let bad = "[[retention_classes]]\nid = \"x\"\npurge_after = \"soon\"";
        let err = Config::from_toml(bad, None)
            .unwrap()
            .effective_retention_classes()
            .unwrap_err()
            .to_string();
        assert!(err.contains("purge_after"), "{err}");
        let err = Config::from_toml("[lifecycle]\ninterval = \"-1h\"", None)
            .unwrap()
            .lifecycle
            .settings()
            .unwrap_err()
            .to_string();
        assert!(err.contains("lifecycle.interval"), "{err}");
    }

    #[test]
    fn inconsistent_routing_is_refused() {
        let text = "[routing]\ndefault_backend = \"nope\"";
        let config = Config::from_toml(text, None).unwrap();
        assert!(config
            .validate_routing()
            .unwrap_err()
            .to_string()
            .contains("nope"));
    }
}
