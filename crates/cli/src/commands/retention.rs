//! `artifactstore retention …` and `artifactstore schema …`.

use artifactstore_api::{
    ExtendRetention, HoldCreated, MetadataSchema, Reason, Retention, RetentionClassList,
    ReviewPage, SchemaRegistered,
};
use artifactstore_registry::core::Timestamp;

use crate::args::{RetentionCommand, SchemaCommand};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::{or_dash, Output};

fn describe(state: &Retention) -> String {
    let rows = [
        ("package_id", state.package_id.clone()),
        ("retention_class", state.retention_class.clone()),
        ("expires_at", or_dash(state.expires_at)),
        (
            "eligible_for_deletion",
            state.eligible_for_deletion.to_string(),
        ),
        ("eligible_at", or_dash(state.eligible_at)),
        ("active_holds", state.active_holds.len().to_string()),
    ];
    let mut text: String = rows
        .iter()
        .map(|(name, value)| format!("{name:<22} {value}\n"))
        .collect();
    for hold in &state.active_holds {
        text.push_str(&format!(
            "  {}  since {} by {}: {}\n",
            hold.hold_id, hold.applied_at, hold.applied_by, hold.reason
        ));
    }
    if let Some(purge) = &state.purge {
        text.push_str(&format!(
            "{:<22} {} by {} (rule {}): {}\n",
            "purged", purge.purged_at, purge.purged_by, purge.rule, purge.reason
        ));
    }
    text.push_str("\nwhy:\n");
    for step in &state.explanation.steps {
        text.push_str(&format!("  - {}", step.text));
        if let Some(reason) = &step.reason {
            text.push_str(&format!(" ('{reason}')"));
        }
        text.push('\n');
    }
    text.push_str(&format!("\n{}\n", state.explanation.sentence));
    text
}

/// Runs a retention command.
pub async fn run(client: &Client, out: Output, command: RetentionCommand) -> CliResult<()> {
    match command {
        RetentionCommand::Show { package_id } => {
            let state: Retention = client
                .get_json(&["v1", "packages", &package_id, "retention"], &[])
                .await?;
            out.show(&state, || describe(&state));
        }
        RetentionCommand::Extend {
            package_id,
            until,
            reason,
        } => {
            let new_expires_at: Timestamp = until.parse().map_err(|_| {
                CliError::Usage(format!(
                    "--until {until:?} is not an RFC 3339 UTC time such as 2030-01-31T00:00:00Z"
                ))
            })?;
            let body = ExtendRetention {
                new_expires_at,
                reason,
            };
            let state: Retention = client
                .post_json(
                    &["v1", "packages", &package_id, "retention", "extend"],
                    &body,
                )
                .await?;
            out.show(&state, || describe(&state));
        }
        RetentionCommand::Hold { package_id, reason } => {
            let hold: HoldCreated = client
                .post_json(
                    &["v1", "packages", &package_id, "holds"],
                    &Reason { reason },
                )
                .await?;
            out.show(&hold, || format!("hold {}", hold.hold_id));
        }
        RetentionCommand::Release {
            package_id,
            hold_id,
            reason,
        } => {
            let state: Retention = client
                .post_json(
                    &["v1", "packages", &package_id, "holds", &hold_id, "release"],
                    &Reason { reason },
                )
                .await?;
            out.show(&state, || describe(&state));
        }
        RetentionCommand::Review { limit, after } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(after) = after {
                query.push(("after", after));
            }
            let page: ReviewPage = client
                .get_json(&["v1", "retention", "review"], &query)
                .await?;
            out.show(&page, || {
                let mut text = String::new();
                for item in &page.items {
                    text.push_str(&format!(
                        "{}  {:<16} {:<20} eligible since {}\n",
                        item.package.id,
                        item.package.retention_class,
                        item.package.name,
                        item.eligible_at
                    ));
                }
                if page.items.is_empty() {
                    text.push_str("no package waits for review\n");
                }
                if let Some(next) = page.next {
                    text.push_str(&format!("next page: --after {next}\n"));
                }
                text
            });
        }
        RetentionCommand::Classes => {
            let classes: RetentionClassList =
                client.get_json(&["v1", "retention-classes"], &[]).await?;
            out.show(&classes, || {
                let mut text = String::new();
                for class in &classes.items {
                    text.push_str(&format!(
                        "{:<16} {:<10} {:<14} purge_after {}\n",
                        class.id,
                        class.default_duration.as_deref().unwrap_or("never"),
                        class.deletion_strategy.as_str(),
                        class.purge_after
                    ));
                }
                text
            });
        }
    }
    Ok(())
}

/// Runs a schema command.
pub async fn schema(client: &Client, out: Output, command: SchemaCommand) -> CliResult<()> {
    match command {
        SchemaCommand::Register { slug, file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| CliError::io(&file, e))?;
            let schema: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{}: invalid JSON: {e}", file.display())))?;
            let request = client
                .request(
                    reqwest::Method::PUT,
                    client.url(&["v1", "metadata-schemas", &slug]),
                )
                .json(&schema);
            let registered: SchemaRegistered = client.json(request).await?;
            out.show(&registered, || {
                format!("schema {slug} registered as {}", registered.id)
            });
        }
        SchemaCommand::Show { slug } => {
            let schema: MetadataSchema = client
                .get_json(&["v1", "metadata-schemas", &slug], &[])
                .await?;
            out.show(&schema, || {
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            });
        }
    }
    Ok(())
}
