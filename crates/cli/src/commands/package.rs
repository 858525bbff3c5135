//! `artifactstore package …`.

use serde_json::Value;

use super::push::create_package;
use crate::args::PackageCommand;
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::{field, Output};

fn describe(package: &Value) -> String {
    let mut text = String::new();
    for name in [
        "id",
        "name",
        "producer",
        "subject",
        "retention_class",
        "status",
        "manifest_digest",
        "created_at",
        "finalized_at",
        "expires_at",
    ] {
        text.push_str(&format!("{name:<16} {}\n", field(package, name)));
    }
    text.push_str(&format!(
        "{:<16} {}\n",
        "metadata",
        package.get("metadata").unwrap_or(&Value::Null)
    ));
    text
}

/// Runs a package command.
pub async fn run(client: &Client, out: Output, command: PackageCommand) -> CliResult<()> {
    match command {
        PackageCommand::Create { package } => {
            let created = create_package(client, &package).await?;
            out.show(&created, || describe(&created));
        }
        PackageCommand::List {
            producer,
            subject,
            retention_class,
            status,
            metadata,
            limit,
            after,
        } => {
            let mut query: Vec<(String, String)> = vec![("limit".into(), limit.to_string())];
            for (name, value) in [
                ("producer", producer),
                ("subject", subject),
                ("retention_class", retention_class),
                ("status", status),
                ("after", after),
            ] {
                if let Some(value) = value {
                    query.push((name.into(), value));
                }
            }
            for entry in metadata {
                let (key, value) = entry.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!("--metadata {entry:?} is not KEY=VALUE"))
                })?;
                query.push((format!("metadata.{key}"), value.to_owned()));
            }
            let pairs: Vec<(&str, String)> =
                query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let page: Value = client.get_json(&["v1", "packages"], &pairs).await?;
            out.show(&page, || {
                let mut text = String::new();
                for item in page
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    text.push_str(&format!(
                        "{}  {:<9}  {:<12}  {:<16}  {}\n",
                        field(item, "id"),
                        field(item, "status"),
                        field(item, "retention_class"),
                        field(item, "producer"),
                        field(item, "name")
                    ));
                }
                if let Some(next) = page.get("next").filter(|n| !n.is_null()) {
                    text.push_str(&format!(
                        "more: --after {}\n",
                        next.as_str().map_or(next.to_string(), str::to_owned)
                    ));
                }
                text
            });
        }
        PackageCommand::Show { package_id } => {
            let package: Value = client
                .get_json(&["v1", "packages", &package_id], &[])
                .await?;
            out.show(&package, || describe(&package));
        }
        PackageCommand::Finalize { package_id } => {
            let finalized: Value = client
                .post_json(&["v1", "packages", &package_id, "finalize"], &Value::Null)
                .await?;
            out.show(&finalized, || {
                format!(
                    "finalized {package_id}\nmanifest {}",
                    field(&finalized, "manifest_digest")
                )
            });
        }
    }
    Ok(())
}
