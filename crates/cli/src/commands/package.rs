//! `artifactstore package …`.

use artifactstore_api::{Finalized, Package, PackagePage, Purged, Reason};

use super::push::create_package;
use crate::args::PackageCommand;
use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::{or_dash, Output};

fn describe(package: &Package) -> String {
    let rows = [
        ("id", package.id.clone()),
        ("name", package.name.clone()),
        ("producer", package.producer.clone()),
        ("subject", package.subject.clone()),
        ("retention_class", package.retention_class.clone()),
        ("status", package.status.as_str().to_owned()),
        ("manifest_digest", or_dash(package.manifest_digest.as_ref())),
        ("created_at", package.created_at.to_string()),
        ("finalized_at", or_dash(package.finalized_at)),
        ("expires_at", or_dash(package.expires_at)),
        ("purged_at", or_dash(package.purged_at)),
        ("metadata", package.metadata.to_string()),
    ];
    rows.iter()
        .map(|(name, value)| format!("{name:<16} {value}\n"))
        .collect()
}

/// Runs a package command.
pub async fn run(client: &Client, out: Output, command: PackageCommand) -> CliResult<()> {
    match command {
        PackageCommand::Create { package } => {
            let created = create_package(client, &package).await?;
            out.show(&created, || describe(&created));
        }
        PackageCommand::List {
            name,
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
                ("name", name),
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
            let page: PackagePage = client.get_json(&["v1", "packages"], &pairs).await?;
            out.show(&page, || {
                let mut text = String::new();
                for item in &page.items {
                    text.push_str(&format!(
                        "{}  {:<9}  {:<12}  {:<16}  {}\n",
                        item.id,
                        item.status.as_str(),
                        item.retention_class,
                        item.producer,
                        item.name
                    ));
                }
                if let Some(next) = page.next {
                    text.push_str(&format!("more: --after {next}\n"));
                }
                text
            });
        }
        PackageCommand::Show { package_id } => {
            let package: Package = client
                .get_json(&["v1", "packages", &package_id], &[])
                .await?;
            out.show(&package, || describe(&package));
        }
        PackageCommand::Finalize { package_id } => {
            let finalized: Finalized = client
                .post_action(&["v1", "packages", &package_id, "finalize"])
                .await?;
            out.show(&finalized, || {
                format!(
                    "finalized {package_id}\nmanifest {}",
                    finalized.manifest_digest
                )
            });
        }
        PackageCommand::Purge { package_id, reason } => {
            let purged: Purged = client
                .post_json(
                    &["v1", "packages", &package_id, "purge"],
                    &Reason { reason },
                )
                .await?;
            out.show(&purged, || {
                format!(
                    "purged {} (class {}, rule {})",
                    purged.package_id, purged.retention_class, purged.rule
                )
            });
        }
    }
    Ok(())
}
