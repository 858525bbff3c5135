//! The command line: every command, its options, and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::DEFAULT_JOBS;

/// artifact-store: a registry for the evidence, reports, logs and release
/// artifacts your pipelines produce.
///
/// `serve` runs the HTTP API; `admin` acts on a configuration directly; every
/// other command is a client of a running server.
#[derive(Debug, Parser)]
#[command(name = "artifactstore", version, propagate_version = true)]
#[command(
    after_help = "Examples:\n  artifactstore serve\n  artifactstore push --name nightly --producer ci --subject app --retention-class standard ./out\n  artifactstore pull 6f1c…-… --output ./restored"
)]
pub struct Cli {
    /// Server URL for client commands.
    #[arg(
        long,
        global = true,
        env = "ARTIFACTSTORE_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub server: String,
    /// API token for client commands.
    #[arg(
        long,
        global = true,
        env = "ARTIFACTSTORE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Who to record as the actor of the events a command causes.
    #[arg(long, global = true, env = "ARTIFACTSTORE_ACTOR")]
    pub actor: Option<String>,
    /// Machine-readable JSON on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// `push` and `file put` send files of at least this many bytes as
    /// resumable (tus) uploads, which survive dropped connections and
    /// server restarts (retried with backoff from the server's offset).
    #[arg(
        long,
        global = true,
        env = "ARTIFACTSTORE_RESUMABLE_OVER",
        default_value_t = 64 * 1024 * 1024
    )]
    pub resumable_over: u64,
    #[command(subcommand)]
    pub command: Command,
}

/// Where a server or admin command finds its configuration.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// TOML configuration file (env ARTIFACTSTORE_CONFIG); none means the
    /// embedded default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the file and ARTIFACTSTORE_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    ///
    /// With no configuration it runs the embedded default: SQLite and local
    /// files under ./artifactstore-data, listening on 127.0.0.1:8000. The
    /// schema is migrated at start. Stops gracefully on SIGINT or SIGTERM.
    #[command(
        after_help = "Example:\n  artifactstore serve --data-dir /var/lib/artifactstore --listen 127.0.0.1:8000"
    )]
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to listen on (overrides the file and ARTIFACTSTORE_LISTEN).
        #[arg(long)]
        listen: Option<String>,
        /// Serve a non-loopback address WITHOUT authentication: anyone who
        /// can reach it may read, write and administer. Never in production.
        #[arg(long)]
        insecure_no_auth: bool,
    },
    /// Administer a configuration directly (no server needed).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Create a package, upload files and directories, and finalize it.
    ///
    /// Directories are uploaded recursively with paths relative to the
    /// argument; a file argument is uploaded under its file name. Each file
    /// is hashed first and its digests are sent, so the server refuses bytes
    /// that change on the way. Prints the package id and the manifest's
    /// content address.
    #[command(
        after_help = "Example:\n  artifactstore push --name nightly --producer ci --subject webapp \\\n      --retention-class standard --metadata branch=main ./reports ./build.log"
    )]
    Push {
        #[command(flatten)]
        package: PackageArgs,
        /// Files uploaded at once (1-64).
        #[arg(long, short = 'j', default_value_t = DEFAULT_JOBS, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Continue this push (same server, package arguments and paths)
        /// where an earlier run stopped, even one whose process was killed:
        /// its package, its finished files, and its resumable uploads from
        /// the server's offset.
        #[arg(long)]
        resume: bool,
        /// Files and directories to upload.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Download every file of a package and check it against the manifest.
    ///
    /// Each file's size, BLAKE3 and SHA-256 are checked; any mismatch fails
    /// the command and the mismatching file is not left behind.
    #[command(after_help = "Example:\n  artifactstore pull 0b7e…-… --output ./restored")]
    Pull {
        /// Package id.
        package_id: String,
        /// Directory to write the files into (created if missing).
        #[arg(long, short)]
        output: PathBuf,
        /// Files downloaded at once (1-64).
        #[arg(long, short = 'j', default_value_t = DEFAULT_JOBS, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
    },
    /// Single package steps: create, list, show, finalize.
    #[command(subcommand)]
    Package(PackageCommand),
    /// Single file steps: put, get, list.
    #[command(subcommand)]
    File(FileCommand),
    /// Print a finalized package's manifest.
    #[command(after_help = "Example:\n  artifactstore manifest 0b7e…-… --format json")]
    Manifest {
        /// Package id.
        package_id: String,
        /// `cbor` (the canonical bytes) or `json` (their RFC 8785 form).
        #[arg(long, value_enum, default_value = "cbor")]
        format: ManifestFormatArg,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Print the event log, optionally following it live.
    #[command(after_help = "Example:\n  artifactstore events --since 100 --follow --json")]
    Events {
        /// Start after this sequence.
        #[arg(long, default_value_t = 0)]
        since: i64,
        /// Keep following new events until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Download a finalized package's evidence bundle: a tar that is a
    /// BagIt 1.0 bag with the registry's proofs (the manifest, the
    /// package's events, a signed checkpoint and inclusion proofs), which
    /// `verify-bundle` checks with no server.
    #[command(after_help = "Example:\n  artifactstore bundle 0b7e…-… -o evidence.tar")]
    Bundle {
        /// Package id.
        package_id: String,
        /// The tar file to write (replaced only once complete).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Verify an evidence bundle offline: every payload file against
    /// manifest-sha256.txt and the CBOR manifest, the manifest against the
    /// content address its finalize event records, each event's payload
    /// digest and inclusion proof, and the checkpoint's signature. Prints
    /// what it checked; exits 3 naming the first thing that failed.
    #[command(
        after_help = "Example:\n  artifactstore verify-bundle evidence.tar --key \"$(cat log.pub)\"\n\nThe key is the server's `GET /v1/log/key` (or `admin log-key`), kept apart from\nthe bundle: the text `name+keyid+base64`, or a file holding it."
    )]
    VerifyBundle {
        /// The bundle (tar).
        file: PathBuf,
        /// The log's verifier key, or a file holding it.
        #[arg(long)]
        key: String,
    },
    /// Check that the server's log today still contains a checkpoint you
    /// saved earlier: the signatures of both, and an RFC 9162 consistency
    /// proof between them. Exits 3 if the log was rewritten or cut.
    #[command(
        after_help = "Example:\n  curl -s $SERVER/v1/log/checkpoint > saved.checkpoint   # some time ago\n  artifactstore verify-log --checkpoint saved.checkpoint --key log.pub"
    )]
    VerifyLog {
        /// A checkpoint (signed note) saved earlier.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The log's verifier key, or a file holding it.
        #[arg(long)]
        key: String,
    },
    /// Retention: state, extensions, legal holds, classes.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Metadata JSON Schemas.
    #[command(subcommand)]
    Schema(SchemaCommand),
}

/// Fields of a new package.
#[derive(Debug, Args, Clone)]
pub struct PackageArgs {
    /// Package name.
    #[arg(long)]
    pub name: String,
    /// Who produced it (pipeline, team).
    #[arg(long)]
    pub producer: String,
    /// What it is about.
    #[arg(long)]
    pub subject: String,
    /// Retention class (see `artifactstore retention classes`).
    #[arg(long)]
    pub retention_class: String,
    /// Metadata entry KEY=VALUE (a string value); repeatable.
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// Metadata as a JSON object in a file (typed values); KEY=VALUE
    /// entries override its keys.
    #[arg(long, value_name = "FILE")]
    pub metadata_json: Option<PathBuf>,
    /// Validate the metadata against this registered schema.
    #[arg(long, value_name = "SLUG")]
    pub schema: Option<String>,
}

/// Manifest formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ManifestFormatArg {
    /// Canonical CBOR.
    Cbor,
    /// RFC 8785 JSON.
    Json,
}

/// Administration commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create or upgrade the database schema.
    #[command(
        after_help = "Example:\n  artifactstore admin migrate --config /etc/artifactstore.toml"
    )]
    Migrate {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Rebuild every materialised view from the event log.
    ///
    /// With --check, rebuild into a scratch transaction and compare with the
    /// live views instead; exits non-zero if they differ.
    #[command(after_help = "Example:\n  artifactstore admin replay --check")]
    Replay {
        #[command(flatten)]
        config: ConfigArgs,
        /// Compare only; change nothing.
        #[arg(long)]
        check: bool,
    },
    /// Re-read stored objects and check size and both digests.
    ///
    /// Records a verification event per location; exits non-zero if any
    /// object is missing or differs.
    #[command(after_help = "Example:\n  artifactstore admin verify --backend local")]
    Verify {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only this backend.
        #[arg(long)]
        backend: Option<String>,
    },
    /// Recompute the event log's digests and hash chain, then its Merkle
    /// tree from the events, and compare it with every signed checkpoint
    /// (recorded, and anchored on each backend) and the stored tiles.
    /// Exits 3 naming the first thing that differs.
    #[command(after_help = "Example:\n  artifactstore admin verify-log")]
    VerifyLog {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print the log's verifier key (`name+keyid+base64`): give it to
    /// auditors, apart from the bundles it verifies.
    #[command(after_help = "Example:\n  artifactstore admin log-key > log.pub")]
    LogKey {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Sign a checkpoint of the log now, if it has an event the newest
    /// checkpoint lacks; prints the newest checkpoint.
    #[command(after_help = "Example:\n  artifactstore admin checkpoint")]
    Checkpoint {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Mark expired, unheld packages eligible for deletion.
    #[command(after_help = "Example:\n  artifactstore admin sweep")]
    Sweep {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run one lifecycle pass now: sweep, purge, collect.
    ///
    /// Purges the eligible packages of `delete` classes whose
    /// `purge_after` has passed, then deletes the stored objects no live
    /// file refers to (objects of purged packages at once; orphans older
    /// than `[lifecycle] orphan_grace`), recording an event for each. With
    /// --dry-run, lists what a pass would do and changes nothing. If
    /// another process (a running server) is in a pass, nothing runs.
    #[command(
        after_help = "Examples:\n  artifactstore admin gc --dry-run\n  artifactstore admin gc"
    )]
    Gc {
        #[command(flatten)]
        config: ConfigArgs,
        /// List what a pass would do; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Logical bytes per producer and class, physical bytes per backend,
    /// and what the next collection would reclaim.
    #[command(after_help = "Example:\n  artifactstore admin usage --json")]
    Usage {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// API tokens: create, list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once; only its hash is stored).
    #[command(
        after_help = "Example:\n  artifactstore admin token create --name ci-nightly --scope write --producer ci --expires 2027-01-01T00:00:00Z"
    )]
    Create {
        #[command(flatten)]
        config: ConfigArgs,
        /// Name, recorded as the actor of the token's events (default:
        /// `token-` and 8 random hex digits).
        #[arg(long)]
        name: Option<String>,
        /// `read`, `write` or `admin`.
        #[arg(long)]
        scope: String,
        /// Limit writes to packages of this producer; repeatable.
        #[arg(long = "producer")]
        producers: Vec<String>,
        /// Expiry (RFC 3339); default: never.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    #[command(after_help = "Example:\n  artifactstore admin token list")]
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Revoke a token at once.
    #[command(after_help = "Example:\n  artifactstore admin token revoke 3f2a…")]
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        /// Token id (from `token list`).
        id: String,
    },
}

/// Package commands.
#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Create an empty package.
    #[command(
        after_help = "Example:\n  artifactstore package create --name n --producer ci --subject app --retention-class standard"
    )]
    Create {
        #[command(flatten)]
        package: PackageArgs,
    },
    /// List packages, filtered.
    #[command(
        after_help = "Example:\n  artifactstore package list --producer ci --metadata branch=main --limit 20"
    )]
    List {
        /// Only packages of this exact name.
        #[arg(long)]
        name: Option<String>,
        /// Only this producer.
        #[arg(long)]
        producer: Option<String>,
        /// Only this subject.
        #[arg(long)]
        subject: Option<String>,
        /// Only this retention class.
        #[arg(long)]
        retention_class: Option<String>,
        /// Only this status (`created`, `finalized`, `purged`).
        #[arg(long)]
        status: Option<String>,
        /// Only packages whose metadata KEY has this VALUE; repeatable.
        #[arg(long = "metadata", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Cursor from a previous page.
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one package.
    #[command(after_help = "Example:\n  artifactstore package show 0b7e…-…")]
    Show {
        /// Package id.
        package_id: String,
    },
    /// Finalize a package: seal it and record its manifest.
    #[command(after_help = "Example:\n  artifactstore package finalize 0b7e…-…")]
    Finalize {
        /// Package id.
        package_id: String,
    },
    /// Purge an eligible package (needs an admin token when auth is
    /// required): its bytes may then be collected; its records, metadata,
    /// manifest and events stay.
    ///
    /// Refused when the package is not eligible for deletion, is under a
    /// legal hold, or its class never deletes.
    #[command(
        after_help = "Example:\n  artifactstore package purge 0b7e…-… --reason \"reviewed: no longer needed\""
    )]
    Purge {
        /// Package id.
        package_id: String,
        /// Why (recorded in the log).
        #[arg(long)]
        reason: String,
    },
}

/// File commands.
#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// Upload one file into a package.
    #[command(
        after_help = "Example:\n  artifactstore file put 0b7e…-… ./summary.pdf --as reports/summary.pdf --media-type application/pdf"
    )]
    Put {
        /// Package id.
        package_id: String,
        /// Local file.
        path: PathBuf,
        /// Relative path in the package (default: the file name).
        #[arg(long = "as", value_name = "RELATIVE_PATH")]
        relative_path: Option<String>,
        /// Media type (default: application/octet-stream).
        #[arg(long)]
        media_type: Option<String>,
    },
    /// Download one file (checked against its recorded digests).
    #[command(after_help = "Example:\n  artifactstore file get 9a1f…-… -o summary.pdf")]
    Get {
        /// File id.
        file_id: String,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List a package's files.
    #[command(after_help = "Example:\n  artifactstore file list 0b7e…-…")]
    List {
        /// Package id.
        package_id: String,
    },
    /// Find every file, in any package, holding the bytes with a digest.
    #[command(
        after_help = "Examples:\n  artifactstore file find --sha256 \"$(sha256sum report.pdf | cut -d' ' -f1)\"\n  artifactstore file find --blake3 af13…"
    )]
    Find {
        /// SHA-256 of the bytes (64 hex digits).
        #[arg(long, conflicts_with = "blake3", required_unless_present = "blake3")]
        sha256: Option<String>,
        /// BLAKE3 of the bytes (64 hex digits).
        #[arg(long)]
        blake3: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Cursor from a previous page.
        #[arg(long)]
        after: Option<String>,
    },
}

/// Retention commands.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Show a package's retention state, active holds, and the
    /// explanation of its fate.
    #[command(after_help = "Example:\n  artifactstore retention show 0b7e…-…")]
    Show {
        /// Package id.
        package_id: String,
    },
    /// Move a package's expiry later.
    #[command(
        after_help = "Example:\n  artifactstore retention extend 0b7e…-… --until 2030-01-01T00:00:00Z --reason \"audit 2029\""
    )]
    Extend {
        /// Package id.
        package_id: String,
        /// New expiry, RFC 3339; must be later than the current one.
        #[arg(long)]
        until: String,
        /// Why (recorded in the log).
        #[arg(long)]
        reason: String,
    },
    /// Place a legal hold; prints its id.
    #[command(
        after_help = "Example:\n  artifactstore retention hold 0b7e…-… --reason \"litigation 2026-17\""
    )]
    Hold {
        /// Package id.
        package_id: String,
        /// Why (recorded in the log).
        #[arg(long)]
        reason: String,
    },
    /// Release a legal hold (needs an admin token when auth is required).
    #[command(
        after_help = "Example:\n  artifactstore retention release 0b7e…-… 5c2d…-… --reason \"case closed\""
    )]
    Release {
        /// Package id.
        package_id: String,
        /// Hold id.
        hold_id: String,
        /// Why (recorded in the log).
        #[arg(long)]
        reason: String,
    },
    /// List the configured retention classes.
    #[command(after_help = "Example:\n  artifactstore retention classes")]
    Classes,
    /// List the eligible packages of `manual-review` classes, which are
    /// purged only when an admin purges them.
    #[command(after_help = "Example:\n  artifactstore retention review --limit 50")]
    Review {
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Cursor from a previous page.
        #[arg(long)]
        after: Option<String>,
    },
}

/// Schema commands.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Register a JSON Schema for package metadata (idempotent by slug).
    #[command(
        after_help = "Example:\n  artifactstore schema register ci-run ./ci-run.schema.json"
    )]
    Register {
        /// Slug packages refer to it by.
        slug: String,
        /// The JSON Schema file.
        file: PathBuf,
    },
    /// Show a registered schema.
    #[command(after_help = "Example:\n  artifactstore schema show ci-run")]
    Show {
        /// Slug.
        slug: String,
    },
}
