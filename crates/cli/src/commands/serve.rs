//! `artifactstore serve`.

use std::io::IsTerminal;

use artifactstore_registry::{Config, Registry};
use artifactstore_server::ServerOptions;
use tracing_subscriber::EnvFilter;

use crate::args::ConfigArgs;
use crate::error::{CliError, CliResult};

/// Loads the configuration a server or admin command names.
pub fn load_config(args: &ConfigArgs) -> CliResult<Config> {
    let mut config = Config::load(args.config.as_deref())
        .map_err(artifactstore_registry::RegistryError::from)?;
    if let Some(dir) = &args.data_dir {
        config.data_dir.clone_from(dir);
    }
    Ok(config)
}

fn init_logging() {
    let filter =
        EnvFilter::try_from_env("ARTIFACTSTORE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(
    args: ConfigArgs,
    listen: Option<String>,
    insecure_no_auth: bool,
) -> CliResult<()> {
    init_logging();
    let mut config = load_config(&args)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    for warning in &config.warnings {
        tracing::warn!("INSECURE: {warning}");
    }
    let registry = Registry::open(&config).await?;
    // Never sign a checkpoint that contradicts one signed before: a
    // database restored from an older copy, or rewritten, stops here.
    let audit = registry.check_log_at_start().await?;
    tracing::info!(
        tree_size = audit.tree_size,
        checkpoints = audit.checkpoints_checked,
        anchors = audit.anchors_checked.len(),
        "the log matches every checkpoint found"
    );
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", config.server.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if !config.auth.required && !address.ip().is_loopback() {
        if !insecure_no_auth {
            return Err(CliError::Usage(format!(
                "refusing to serve {address} without authentication: set `[auth] required = true` \
                 (or ARTIFACTSTORE_AUTH_REQUIRED=true) and create tokens with `artifactstore admin token \
                 create`, listen on a loopback address, or pass --insecure-no-auth"
            )));
        }
        tracing::warn!(%address, "INSECURE: serving a non-loopback address without authentication");
        if address.ip().is_unspecified() && config.server.allowed_hosts.is_empty() {
            tracing::warn!(
                "without authentication only loopback names are served: requests naming this \
                 machine by another name or address get 403 host_not_allowed until it is listed \
                 in `[server] allowed_hosts`"
            );
        }
    }
    tracing::info!(%address, data_dir = %config.data_dir.display(), auth_required = config.auth.required, "artifactstore listening");
    let mut allowed_hosts = config.server.allowed_hosts.clone();
    if !address.ip().is_unspecified() {
        // The address it listens on is always its own (--insecure-no-auth
        // on a non-loopback address).
        allowed_hosts.push(match address.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        });
    }
    if config.server.max_connections == 0 || config.server.header_read_timeout_seconds == 0 {
        return Err(CliError::Usage(
            "[server] max_connections and header_read_timeout_seconds must be at least 1".into(),
        ));
    }
    let open_files = artifactstore_server::raise_open_file_limit();
    tracing::debug!(?open_files, "open-file limit");
    let options = ServerOptions {
        auth_required: config.auth.required,
        allowed_hosts,
        max_connections: config.server.max_connections,
        header_read_timeout: std::time::Duration::from_secs(
            config.server.header_read_timeout_seconds,
        ),
        ..ServerOptions::default()
    };
    // Sweep, purge and collect every `[lifecycle] interval`; at most one
    // replica at a time runs a pass (a lease in the database).
    let lifecycle_stop = tokio_util::sync::CancellationToken::new();
    let lifecycle = tokio::spawn({
        let registry = registry.clone();
        let stop = lifecycle_stop.clone();
        async move { registry.run_lifecycle_every_interval(stop).await }
    });
    let checkpoints = tokio::spawn({
        let registry = registry.clone();
        let stop = lifecycle_stop.clone();
        async move { registry.sign_checkpoints_every_interval(stop).await }
    });
    // Unfinished resumable uploads idle past `[uploads] expire_after` go,
    // with their staged bytes.
    let expiry = tokio::spawn({
        let registry = registry.clone();
        let stop = lifecycle_stop.clone();
        async move { registry.expire_uploads_every_minute(stop).await }
    });
    let served =
        artifactstore_server::serve(listener, registry.clone(), options, shutdown_signal()).await;
    // A pass cut short is safe to stop (its claims are finished by the
    // next pass; its lease expires): shutdown does not wait for it.
    lifecycle_stop.cancel();
    lifecycle.abort();
    checkpoints.abort();
    expiry.abort();
    served.map_err(|e| CliError::Usage(format!("server failed: {e}")))?;
    registry.close().await;
    Ok(())
}
