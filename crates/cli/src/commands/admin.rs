//! `artifactstore admin …`: operations on a configuration, no server needed.

use artifactstore_api::{LifecycleReport, Usage};
use artifactstore_registry::Registry;

use super::serve::load_config;
use crate::args::{AdminCommand, TokenCommand};
use crate::error::{CliError, CliResult};
use crate::output::Output;

const ADMIN_ACTOR: &str = "admin-cli";

/// Runs an admin command.
pub async fn run(command: AdminCommand, out: Output) -> CliResult<()> {
    match command {
        AdminCommand::Migrate { config } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            let head = registry.head_sequence().await?;
            out.show(
                &serde_json::json!({"migrated": true, "head_sequence": head}),
                || format!("schema is up to date (log head at sequence {head})"),
            );
        }
        AdminCommand::Replay { config, check } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            if check {
                let report = registry.replay_check().await?;
                out.show(&report, || match &report.first_difference {
                    None => format!(
                        "replay check passed: {} events rebuild the live views exactly",
                        report.events
                    ),
                    Some(table) => {
                        format!("replay check FAILED: view `{table}` differs from its replay")
                    }
                });
                if let Some(table) = report.first_difference {
                    return Err(CliError::CheckFailed(format!(
                        "view `{table}` differs from its replay"
                    )));
                }
            } else {
                let report = registry.replay().await?;
                out.show(&report, || {
                    format!("rebuilt every view from {} events", report.events)
                });
            }
        }
        AdminCommand::Verify { config, backend } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            let report = registry
                .verify_storage(backend.as_deref(), ADMIN_ACTOR)
                .await?;
            out.show(&report, || {
                let mut text = format!(
                    "checked {} stored objects, {} failed\n",
                    report.checked, report.failed
                );
                for failure in report.results.iter().filter(|r| !r.ok) {
                    text.push_str(&format!(
                        "FAILED file {} on {}: {}\n",
                        failure.file_id,
                        failure.backend_id,
                        failure.failure.as_deref().unwrap_or("unknown")
                    ));
                }
                text
            });
            if report.failed > 0 {
                return Err(CliError::CheckFailed(format!(
                    "{} stored objects failed verification",
                    report.failed
                )));
            }
        }
        AdminCommand::VerifyLog { config } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            let audit = registry.verify_log_in_full().await?;
            out.show(&audit, || match &audit.problem {
                None => format!(
                    "event log intact: {} events, hash chain verified; Merkle tree of {} leaves \
                     (root {}) matches {} signed checkpoints, anchors on [{}], and the stored tiles",
                    audit.chain_checked,
                    audit.tree_size,
                    audit.root_hash,
                    audit.checkpoints_checked,
                    audit.anchors_checked.join(", ")
                ),
                Some(problem) => format!("event log ALTERED: {problem}"),
            });
            if let Some(problem) = audit.problem {
                return Err(CliError::CheckFailed(problem));
            }
        }
        AdminCommand::LogKey { config } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            let key = registry.log_verifier_key().to_owned();
            out.show(&serde_json::json!({"key": key}), || key.clone());
        }
        AdminCommand::Checkpoint { config } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            registry.check_log_at_start().await?;
            let (checkpoint, signed) = registry.sign_checkpoint(ADMIN_ACTOR, true).await?;
            let Some(checkpoint) = checkpoint else {
                return Err(CliError::Usage(
                    "the log is empty: there is nothing to sign".into(),
                ));
            };
            let answer = artifactstore_api::CheckpointSigned {
                tree_size: checkpoint.tree_size,
                root_hash: artifactstore_registry::log::proof::encode_hash(&checkpoint.root_hash),
                signed,
                note: checkpoint.note,
            };
            out.show(&answer, || answer.note.trim_end().to_owned());
        }
        AdminCommand::Gc { config, dry_run } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            let report: LifecycleReport =
                registry.run_lifecycle(dry_run, ADMIN_ACTOR).await?.into();
            out.show(&report, || describe_pass(&report));
            if let Some(why) = &report.skipped {
                return Err(CliError::CheckFailed(why.clone()));
            }
        }
        AdminCommand::Usage { config } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            let usage: Usage = registry.usage().await?.into();
            out.show(&usage, || {
                let mut text = String::new();
                for (title, groups) in [
                    ("producer (logical)", &usage.by_producer),
                    ("retention class (logical)", &usage.by_retention_class),
                    ("backend (physical, deduplicated)", &usage.by_backend),
                ] {
                    text.push_str(&format!("by {title}:\n"));
                    for group in groups {
                        text.push_str(&format!(
                            "  {:<24} {:>10} {:>16} bytes\n",
                            group.name, group.count, group.bytes
                        ));
                    }
                }
                text.push_str(&format!(
                    "reclaimable by the next collection: {} objects, {} bytes\n",
                    usage.reclaimable.objects, usage.reclaimable.bytes
                ));
                text
            });
        }
        AdminCommand::Token(command) => token(command, out).await?,
        AdminCommand::Sweep { config } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            let marked = registry.sweep(ADMIN_ACTOR).await?;
            out.show(&serde_json::json!({"marked": marked}), || {
                let mut text = format!("{} packages marked eligible for deletion\n", marked.len());
                for id in &marked {
                    text.push_str(id);
                    text.push('\n');
                }
                text
            });
        }
    }
    Ok(())
}

/// A pass in words.
fn describe_pass(report: &LifecycleReport) -> String {
    if let Some(why) = &report.skipped {
        return format!("nothing ran: {why}\n");
    }
    let verb = if report.dry_run { "would be" } else { "were" };
    let mut text = format!(
        "{}{} packages {verb} marked eligible, {} purged; {} objects ({} bytes) {verb} deleted\n",
        if report.dry_run { "DRY RUN: " } else { "" },
        report.marked_eligible.len(),
        report.purged.len(),
        report.objects_deleted,
        report.bytes_freed
    );
    for purged in &report.purged {
        text.push_str(&format!(
            "  purge {} (class {}, rule {})\n",
            purged.package_id, purged.retention_class, purged.rule
        ));
    }
    for backend in &report.backends {
        let reasons: Vec<String> = backend
            .objects_by_reason
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        text.push_str(&format!(
            "  backend {}: {} objects, {} bytes ({})\n",
            backend.backend_id,
            backend.objects_deleted,
            backend.bytes_freed,
            if reasons.is_empty() {
                "nothing".to_owned()
            } else {
                reasons.join(", ")
            }
        ));
        for failure in &backend.failures {
            text.push_str(&format!("    FAILED {failure}\n"));
        }
    }
    text
}

async fn token(command: TokenCommand, out: Output) -> CliResult<()> {
    use artifactstore_registry::core::{timestamp::TimestampError, token::ScopeError};
    match command {
        TokenCommand::Create {
            config,
            name,
            scope,
            producers,
            expires,
        } => {
            let scope = scope
                .parse()
                .map_err(|e: ScopeError| CliError::Usage(e.to_string()))?;
            let expires = expires
                .map(|text| {
                    text.parse()
                        .map_err(|e: TimestampError| CliError::Usage(e.to_string()))
                })
                .transpose()?;
            let name = name.unwrap_or_else(|| {
                let suffix = uuid::Uuid::new_v4().simple().to_string();
                format!("token-{}", &suffix[..8])
            });
            let registry = Registry::open(&load_config(&config)?).await?;
            let (record, secret) = registry
                .create_token(&name, scope, producers, expires, ADMIN_ACTOR)
                .await?;
            let shown = serde_json::json!({
                "token": secret,
                "id": record.id,
                "name": record.name,
                "scope": record.scope,
                "producers": record.producers,
                "expires_at": record.expires_at,
            });
            out.show(&shown, || {
                format!(
                    "{secret}\n(token {} `{}`, scope {}: store it now, it is not shown again)",
                    record.id, record.name, record.scope
                )
            });
        }
        TokenCommand::List { config } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            let tokens = registry.list_tokens().await?;
            out.show(&tokens, || {
                let mut text = String::new();
                for t in &tokens {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    let expires = t.expires_at.map_or("never".to_owned(), |at| at.to_string());
                    let producers = if t.producers.is_empty() {
                        "any".to_owned()
                    } else {
                        t.producers.join(",")
                    };
                    text.push_str(&format!(
                        "{}  {state:<7}  {:<5}  producers {producers}  expires {expires}  {}\n",
                        t.id, t.scope, t.name
                    ));
                }
                text
            });
        }
        TokenCommand::Revoke { config, id } => {
            let registry = Registry::open(&load_config(&config)?).await?;
            let record = registry.revoke_token(&id, ADMIN_ACTOR).await?;
            out.show(&record, || {
                format!("token {} `{}` revoked", record.id, record.name)
            });
        }
    }
    Ok(())
}
