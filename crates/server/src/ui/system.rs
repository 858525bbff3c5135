//! The system page: the database's and each backend's probe, failed
//! storage locations and the latest verifications, usage (for the
//! `admin` scope, as `GET /v1/usage`), and the log's newest signed
//! checkpoint with its verifier key.

use artifactstore_api::{Event, UsageGroup};
use artifactstore_registry::core::event::types;
use artifactstore_registry::core::token::Scope;
use artifactstore_registry::{ComponentHealth, RegistryError};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::format::{size, time};
use super::layout::page;
use super::session::Viewer;
use super::PageResult;
use crate::wire::{self, ToWire};
use crate::AppState;

/// Verification events shown.
const VERIFICATIONS_SHOWN: i64 = 10;

/// `GET /ui/system`.
pub(crate) async fn show(State(state): State<AppState>, viewer: Viewer) -> PageResult<Response> {
    let health = state.registry.health().await;
    let verifications: Vec<Event> = state
        .registry
        .newest_events(
            None,
            Some(types::STORAGE_LOCATION_VERIFIED),
            None,
            VERIFICATIONS_SHOWN,
        )
        .await?
        .iter()
        .map(wire::event)
        .collect();
    // Usage lists every backend: the API keeps it to admins, and so does
    // this page.
    let usage = if viewer.may(Scope::Admin) {
        Some(state.registry.usage().await?.to_wire()?)
    } else {
        None
    };
    let checkpoint = match state.registry.latest_checkpoint().await {
        Ok(checkpoint) => Some(checkpoint),
        Err(RegistryError::LogEntryNotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let key = state.registry.log_verifier_key();
    let now = state.registry.store().now();
    let body = html! {
        h1 { "System" }
        h2 { "Probes" }
        p {
            @if health.ok { "Everything answered." } @else { strong.problem { "Something did not answer." } }
        }
        div.scroll {
            table {
                thead { tr { th scope="col" { "Component" } th scope="col" { "State" } th scope="col" { "Detail" } } }
                tbody {
                    (probe_row(&health.database))
                    @for backend in &health.backends { (probe_row(backend)) }
                }
            }
        }
        h2 { "Storage verification" }
        p {
            @if health.failed_locations == 0 {
                "No storage location is marked failed."
            } @else {
                strong.problem { (health.failed_locations) " storage locations are marked failed." }
                " Run " code { "artifactstore admin verify" } " to check them again."
            }
        }
        @if verifications.is_empty() {
            p.empty { "No verification has run yet. Run " code { "artifactstore admin verify" } "." }
        } @else {
            h3 { "Latest verifications" }
            div.scroll {
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Backend" } th scope="col" { "Result" } } }
                    tbody {
                        @for event in &verifications {
                            tr {
                                td.number { (event.sequence) }
                                td { (time(&event.created_at, &now)) }
                                td { (event.payload["backend_id"].as_str().unwrap_or("")) }
                                td {
                                    @if event.payload["ok"].as_bool() == Some(true) {
                                        "ok"
                                    } @else {
                                        span.problem { "failed: " (event.payload["failure"].as_str().unwrap_or("")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Usage" }
        @match &usage {
            Some(usage) => {
                h3 { "By producer" } (groups(&usage.by_producer, "files"))
                h3 { "By retention class" } (groups(&usage.by_retention_class, "files"))
                h3 { "By backend, after deduplication" } (groups(&usage.by_backend, "objects"))
                p { "The next collection would delete " (usage.reclaimable.objects) " objects, " (size(usage.reclaimable.bytes)) "." }
            }
            None => p.empty { "Usage lists every backend: it needs a token with the admin scope." },
        }
        h2 { "The log" }
        dl.fields {
            dt { "Verifier key" } dd { code.digest { (key) } }
        }
        @match &checkpoint {
            Some(checkpoint) => {
                p { "The newest signed checkpoint, " (checkpoint.tree_size) " entries, signed " (time(&checkpoint.signed_at, &now)) ":" }
                pre.note { (checkpoint.note) }
                p.actions {
                    a href="/v1/log/checkpoint" download="checkpoint.txt" { "Download the checkpoint" }
                    a href="/v1/log/key" download="log-key.txt" { "Download the key" }
                }
            }
            None => p.empty { "No checkpoint yet: the log is empty." },
        }
    };
    Ok(page(&viewer, "System", body).into_response())
}

fn probe_row(component: &ComponentHealth) -> Markup {
    html! {
        tr {
            td { (component.name) }
            td { @if component.ok { "answered" } @else { span.problem { "did not answer" } } }
            td { (component.detail.as_deref().unwrap_or("")) }
        }
    }
}

fn groups(groups: &[UsageGroup], counted: &str) -> Markup {
    html! {
        @if groups.is_empty() {
            p.empty { "Nothing stored yet." }
        } @else {
            div.scroll {
                table {
                    thead { tr { th scope="col" { "Name" } th.number scope="col" { (counted) } th.number scope="col" { "Size" } } }
                    tbody {
                        @for group in groups {
                            tr { td { (group.name) } td.number { (group.count) } td.number { (size(group.bytes)) } }
                        }
                    }
                }
            }
        }
    }
}
