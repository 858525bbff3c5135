//! `artifactstore retention …` and `artifactstore schema …`.

use serde_json::Value;

use crate::args::{RetentionCommand, SchemaCommand};
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::{field, Output};

fn describe(state: &Value) -> String {
    let mut text = String::new();
    for name in [
        "package_id",
        "retention_class",
        "expires_at",
        "eligible_for_deletion",
        "eligible_at",
    ] {
        text.push_str(&format!("{name:<22} {}\n", field(state, name)));
    }
    let holds = state
        .get("active_holds")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    text.push_str(&format!("{:<22} {}\n", "active_holds", holds.len()));
    for hold in &holds {
        text.push_str(&format!(
            "  {}  since {} by {}: {}\n",
            field(hold, "hold_id"),
            field(hold, "applied_at"),
            field(hold, "applied_by"),
            field(hold, "reason")
        ));
    }
    text
}

/// Runs a retention command.
pub async fn run(client: &Client, out: Output, command: RetentionCommand) -> CliResult<()> {
    match command {
        RetentionCommand::Show { package_id } => {
            let state: Value = client
                .get_json(&["v1", "packages", &package_id, "retention"], &[])
                .await?;
            out.show(&state, || describe(&state));
        }
        RetentionCommand::Extend {
            package_id,
            until,
            reason,
        } => {
            let body = serde_json::json!({"new_expires_at": until, "reason": reason});
            let state: Value = client
                .post_json(
                    &["v1", "packages", &package_id, "retention", "extend"],
                    &body,
                )
                .await?;
            out.show(&state, || describe(&state));
        }
        RetentionCommand::Hold { package_id, reason } => {
            let body = serde_json::json!({"reason": reason});
            let hold: Value = client
                .post_json(&["v1", "packages", &package_id, "holds"], &body)
                .await?;
            out.show(&hold, || format!("hold {}", field(&hold, "hold_id")));
        }
        RetentionCommand::Release {
            package_id,
            hold_id,
            reason,
        } => {
            let body = serde_json::json!({"reason": reason});
            let state: Value = client
                .post_json(
                    &["v1", "packages", &package_id, "holds", &hold_id, "release"],
                    &body,
                )
                .await?;
            out.show(&state, || describe(&state));
        }
        RetentionCommand::Classes => {
            let classes: Value = client.get_json(&["v1", "retention-classes"], &[]).await?;
            out.show(&classes, || {
                let mut text = String::new();
                for class in classes
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    text.push_str(&format!(
                        "{:<16} {:<10} {}\n",
                        field(class, "id"),
                        field(class, "default_duration").replace('-', "never"),
                        field(class, "deletion_strategy")
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
            let schema: Value = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{}: invalid JSON: {e}", file.display())))?;
            let request = client
                .request(
                    reqwest::Method::PUT,
                    client.url(&["v1", "metadata-schemas", &slug]),
                )
                .json(&schema);
            let registered: Value = client.json(request).await?;
            out.show(&registered, || {
                format!("schema {slug} registered as {}", field(&registered, "id"))
            });
        }
        SchemaCommand::Show { slug } => {
            let schema: Value = client
                .get_json(&["v1", "metadata-schemas", &slug], &[])
                .await?;
            out.show(&schema, || {
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            });
        }
    }
    Ok(())
}
