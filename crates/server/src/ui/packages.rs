//! The packages: a filtered, paged list with a search box, and one
//! package with its files as a tree of folders.

use std::collections::BTreeMap;

use artifactstore_api::{Event, File, Package, Retention};
use artifactstore_registry::core::path::MAX_PATH_BYTES;
use artifactstore_registry::core::Digest32;
use artifactstore_registry::{DigestKind, FileListing};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, Render};
use serde::Deserialize;

use super::format::{size, time};
use super::layout::{csrf_field, page, Page};
use super::session::Viewer;
use super::PageResult;
use crate::api::packages::package_filter;
use crate::extract::{parse_id, ApiQuery};
use crate::problem::Problem;
use crate::wire::{self, ToWire};
use crate::AppState;
use artifactstore_registry::core::token::Scope;

/// The list's filters, as the API names them.
const FILTERS: [(&str, &str); 5] = [
    ("name", "Name"),
    ("producer", "Producer"),
    ("subject", "Subject"),
    ("retention_class", "Retention class"),
    ("status", "Status"),
];
/// Rows per page.
const PAGE_ROWS: i64 = 50;
/// The package's newest events on its page; the events page has them all.
const TIMELINE_EVENTS: i64 = 20;

/// `GET /ui/`: the packages, filtered like `GET /v1/packages`, or what
/// the search box (`q`) finds.
pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> PageResult<Response> {
    // A form sends its empty fields too: they filter nothing.
    let mut search = None;
    let mut filters = Vec::new();
    for (name, value) in pairs {
        match (name.as_str(), value.trim()) {
            (_, "") => {}
            ("q", text) => search = Some(text.to_owned()),
            _ => filters.push((name, value)),
        }
    }
    if let Some(text) = search {
        return search_page(&state, &viewer, &text).await;
    }
    let filter = package_filter(filters.clone(), PAGE_ROWS, state.options.max_page)?;
    let page_of = state.registry.list_packages(filter).await?;
    let packages = page_of.items.to_wire()?;
    let now = state.registry.store().now();
    let value_of = |name: &str| {
        filters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or("")
    };
    let next = page_of.next.map(|after| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in filters.iter().filter(|(name, _)| name != "after") {
            query.append_pair(name, value);
        }
        query.append_pair("after", &after.to_string());
        format!("/ui/?{}", query.finish())
    });
    let body = html! {
        h1 { "Packages" }
        form.search role="search" method="get" action="/ui/" {
            label for="q" { "Find a package by id or name, or a file by its SHA-256 or BLAKE3" }
            div.row {
                input #q type="search" name="q" autocomplete="off" spellcheck="false";
                button type="submit" { "Find" }
            }
        }
        form.filters method="get" action="/ui/" aria-label="Filter the packages" {
            @for (name, label) in FILTERS {
                label {
                    (label)
                    input type="text" name=(name) value=(value_of(name));
                }
            }
            button type="submit" { "Filter" }
            " "
            a href="/ui/" { "Clear" }
        }
        @if packages.is_empty() {
            p.empty {
                @if filters.is_empty() {
                    "No packages yet. Push one with "
                    code { "artifactstore push ./dir --name NAME --producer ci --subject SUBJECT --retention-class standard" }
                    "."
                } @else {
                    "No package matches these filters."
                }
            }
        } @else {
            (package_table(&packages, &now))
        }
        @if let Some(next) = next {
            p { a rel="next" href=(next) { "Next page" } }
        }
    };
    Ok(page(&viewer, "Packages", body).into_response())
}

fn package_table(packages: &[Package], now: &artifactstore_core::Timestamp) -> Markup {
    html! {
        div.scroll {
            table {
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Producer" }
                        th scope="col" { "Subject" }
                        th scope="col" { "Status" }
                        th scope="col" { "Retention class" }
                        th scope="col" { "Created" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Files" }
                        th scope="col" { "Size" }
                    }
                }
                tbody {
                    @for package in packages {
                        tr {
                            td { a href=(format!("/ui/packages/{}", package.id)) { (package.name) } }
                            td { (package.producer) }
                            td { (package.subject) }
                            td { span class=(format!("status {}", package.status.as_str())) { (package.status.as_str()) } }
                            td { (package.retention_class) }
                            td { (time(&package.created_at, now)) }
                            td {
                                @match &package.expires_at {
                                    Some(at) => (time(at, now)),
                                    None => "never",
                                }
                            }
                            td.number { (package.file_count) }
                            td.number { (size(package.total_bytes)) }
                        }
                    }
                }
            }
        }
    }
}

/// What the search box finds: a package by id (its page), the files
/// holding bytes with a digest, or else the packages of that name (the
/// list filtered by `name`).
async fn search_page(state: &AppState, viewer: &Viewer, text: &str) -> PageResult<Response> {
    if let Ok(id) = uuid::Uuid::try_parse(text) {
        return Ok(Redirect::to(&format!("/ui/packages/{id}")).into_response());
    }
    let Ok(digest) = Digest32::from_hex(text) else {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("name", text)
            .finish();
        return Ok(Redirect::to(&format!("/ui/?{query}")).into_response());
    };
    let mut found: Vec<File> = Vec::new();
    for kind in [DigestKind::Sha256, DigestKind::Blake3] {
        let files = state
            .registry
            .find_files(kind, digest, None, PAGE_ROWS)
            .await?;
        found.extend(files.items.to_wire()?);
    }
    let body = html! {
        h1 { "Search" }
        p { "For " code { (text) } }
        @if found.is_empty() {
            p.empty {
                "No file has these bytes. The search takes a package id (a UUID) or name, or the SHA-256 or BLAKE3 of a file (64 hex digits). "
                a href="/ui/" { "Back to the packages" }
            }
        } @else {
            div.scroll {
                table {
                    thead { tr { th scope="col" { "File" } th scope="col" { "Package" } th scope="col" { "Size" } } }
                    tbody {
                        @for file in &found {
                            tr {
                                td { (file.relative_path) }
                                td { a href=(format!("/ui/packages/{}", file.package_id)) { (file.package_id) } }
                                td { (size(file.size_bytes)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(viewer, "Search", body).into_response())
}

/// Which form of a package page was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActionForm {
    Hold,
    /// Releasing the hold with this id.
    Release(String),
    Extend,
    Finalize,
}

impl ActionForm {
    /// The id of the element that shows the form's refusal.
    fn error_id(&self) -> String {
        match self {
            Self::Hold => "hold-error".into(),
            Self::Release(hold_id) => format!("release-{hold_id}-error"),
            Self::Extend => "extend-error".into(),
            Self::Finalize => "finalize-error".into(),
        }
    }
}

/// A form the server refused: shown beside its field.
pub(crate) struct Refusal {
    pub(crate) form: ActionForm,
    pub(crate) detail: String,
}

/// The refusal's detail where `form` is the one refused.
fn refused_here(refusal: Option<&Refusal>, form: &ActionForm) -> Option<String> {
    refusal
        .filter(|refusal| &refusal.form == form)
        .map(|refusal| refusal.detail.clone())
}

/// A form's error beside its field, tied to it for screen readers.
fn field_error(id: &str, detail: Option<&str>) -> Markup {
    html! {
        @if let Some(detail) = detail {
            p.problem id=(id) role="alert" { (detail) }
        }
    }
}

/// Query of `GET /ui/packages/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PackagePageQuery {
    /// The files listed start after this path (the last one of the page
    /// before), in the order of their collision keys.
    #[serde(default)]
    after: String,
}

/// `GET /ui/packages/{id}`: one package, its metadata and a page of its
/// files.
pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PackagePageQuery>,
) -> PageResult<Response> {
    let id = parse_id(&id, "package id")?;
    if query.after.len() > MAX_PATH_BYTES || query.after.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            "invalid_query",
            format!("`after` must be a file's path: at most {MAX_PATH_BYTES} bytes of text"),
        )
        .into());
    }
    let after = (!query.after.is_empty()).then_some(query.after.as_str());
    Ok(package_page(&state, &viewer, id, after, None)
        .await?
        .into_response())
}

/// A package's page, its files listed from after the path `after` (from
/// the first without); with `refusal`, the refused form shows why.
pub(crate) async fn package_page(
    state: &AppState,
    viewer: &Viewer,
    id: uuid::Uuid,
    after: Option<&str>,
    refusal: Option<&Refusal>,
) -> PageResult<Page> {
    let package = state.registry.get_package(id).await?.to_wire()?;
    // One more than a page says whether another page follows.
    let per_page = state.options.ui_files_per_page.max(1);
    let mut files = state
        .registry
        .file_listing(id, after, per_page.saturating_add(1))
        .await?;
    let next = (files.len() > per_page as usize).then(|| {
        files.truncate(per_page as usize);
        let last = files.last().map(|file| file.relative_path.as_str());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("after", last.unwrap_or_default())
            .finish();
        format!("/ui/packages/{id}?{query}#files")
    });
    let retention = state.registry.retention_explained(id).await?.to_wire()?;
    let timeline: Vec<Event> = state
        .registry
        .newest_events(None, None, Some(&id.to_string()), TIMELINE_EVENTS)
        .await?
        .iter()
        .map(wire::event)
        .collect();
    let history: Vec<Event> = state
        .registry
        .retention_history(id)
        .await?
        .iter()
        .map(wire::event)
        .collect();
    let now = state.registry.store().now();
    let tree = Folder::of(&files);
    let body = html! {
        h1 { (package.name) }
        dl.fields {
            dt { "Id" } dd { code { (package.id) } }
            dt { "Producer" } dd { (package.producer) }
            dt { "Subject" } dd { (package.subject) }
            dt { "Status" } dd { (package.status.as_str()) }
            dt { "Retention class" } dd { (package.retention_class) }
            dt { "Created" } dd { (time(&package.created_at, &now)) }
            @if let Some(at) = &package.finalized_at {
                dt { "Finalized" } dd { (time(at, &now)) }
            }
            dt { "Expires" }
            dd {
                @match &package.expires_at {
                    Some(at) => (time(at, &now)),
                    None => "never",
                }
            }
            @if let Some(at) = &package.purged_at {
                dt { "Purged" } dd { (time(at, &now)) }
            }
            dt { "Content address" }
            dd {
                @match &package.manifest_digest {
                    Some(address) => { code.digest { (address) } " " (copy_button("Copy the content address")) },
                    None => "none until it is finalized",
                }
            }
        }
        @if package.manifest_digest.is_some() {
            p.actions {
                a href=(format!("/v1/packages/{}/manifest?format=json", package.id)) { "Manifest (JSON)" }
                a href=(format!("/v1/packages/{}/manifest?format=cbor", package.id)) download { "Manifest (CBOR)" }
                a href=(format!("/v1/packages/{}/bundle", package.id)) download { "Evidence bundle" }
            }
        }
        h2 { "Metadata" }
        (metadata(&package.metadata))
        @if package.status.as_str() == "created" && viewer.may(Scope::Write) {
            (finalize_form(viewer, &package.id.to_string(), refused_here(refusal, &ActionForm::Finalize).as_deref()))
        } @else if let Some(detail) = refused_here(refusal, &ActionForm::Finalize) {
            (field_error(&ActionForm::Finalize.error_id(), Some(&detail)))
        }
        h2 #retention { "Retention" }
        (retention_panel(&retention, &history, &now))
        @if viewer.may(Scope::Write) && package.purged_at.is_none() {
            (retention_forms(viewer, &package.id.to_string(), &retention, refusal))
        } @else if let Some(refusal) = refusal {
            // Posted although its form is not offered (the scope, a purge):
            // the refusal stands where the forms would be.
            (field_error(&refusal.form.error_id(), Some(&refusal.detail)))
        }
        h2 #files { "Files" }
        p { (package.file_count) " files, " (size(package.total_bytes)) }
        @if package.status.as_str() == "created" && viewer.may(Scope::Write) {
            (upload_form(&package.id.to_string()))
        }
        @if let Some(after) = after {
            p.hint {
                "The files after " code { (after) } " (pages follow the paths in NFC, lowercased, in byte order). "
                a href=(format!("/ui/packages/{id}#files")) { "From the first" }
            }
        }
        @if files.is_empty() && after.is_none() {
            p.empty {
                "No files yet. Add one with "
                code { "artifactstore file put " (package.id) " ./FILE" }
                "."
            }
        } @else if files.is_empty() {
            p.empty { "No more files." }
        } @else {
            div.tree { (tree) }
        }
        @if let Some(next) = &next {
            p.actions {
                a rel="next" href=(next) { "Next files" }
                " · the whole list: "
                code { "artifactstore file list " (package.id) }
            }
        }
    };
    let body = html! {
        (body)
        h2 #events { "Events" }
        p.hint { "Newest first. "
            a href=(format!("/ui/events?subject={}", package.id)) { "All of this package's events" } }
        ol.timeline reversed {
            @for event in &timeline {
                li {
                    (time(&event.created_at, &now)) " "
                    code { (event.event_type) } " by " (event.actor)
                    @if let Some(path) = event.payload.get("relative_path").and_then(|p| p.as_str()) {
                        " · " (path)
                    }
                    " " span.hint { "#" (event.sequence) }
                }
            }
        }
    };
    Ok(page(viewer, &package.name, body))
}

/// A button that copies the text of the element before it (a `code`);
/// hidden until the script, which does the copying, shows it (the value
/// is selectable text anyway). The value is not repeated in an attribute:
/// a page of 10,000 files carries 20,000 of these.
fn copy_button(label: &'static str) -> Markup {
    html! {
        button.copy type="button" hidden aria-label=(label) { "Copy" }
    }
}

/// Files from the browser into an open package, through the resumable
/// upload endpoint (tus-js-client, vendored). Needs script: without it the
/// form stays hidden and the note says what to run instead.
fn upload_form(id: &str) -> Markup {
    html! {
        script src=(super::assets::TUS_CLIENT) defer {}
        form.action #upload hidden data-endpoint=(format!("/v1/packages/{id}/uploads")) {
            h3 { "Upload files" }
            label for="upload-files" { "Files" }
            input #upload-files type="file" name="files" multiple required;
            label for="upload-folder" { "Into the folder (optional)" }
            input #upload-folder type="text" name="folder" placeholder="reports/unit" spellcheck="false";
            button type="submit" { "Upload" }
            p.hint #upload-status role="status" aria-live="polite" {}
        }
        noscript {
            p.hint { "Uploading from the browser needs JavaScript. Or run "
                code { "artifactstore file put " (id) " ./FILE" } "." }
        }
    }
}

fn finalize_form(viewer: &Viewer, id: &str, refused: Option<&str>) -> Markup {
    html! {
        form.action method="post" action=(format!("/ui/packages/{id}/finalize")) {
            (csrf_field(viewer))
            p { "This package is open: files can still be added. Finalizing writes its manifest and fixes its content address." }
            button type="submit" aria-describedby=[refused.map(|_| "finalize-error")] { "Finalize" }
            (field_error("finalize-error", refused))
        }
    }
}

/// Place a hold, extend the retention, and (admin) release each active
/// hold, each with the reason the log records.
fn retention_forms(
    viewer: &Viewer,
    id: &str,
    retention: &Retention,
    refusal: Option<&Refusal>,
) -> Markup {
    let hold_refused = refused_here(refusal, &ActionForm::Hold);
    let extend_refused = refused_here(refusal, &ActionForm::Extend);
    html! {
        div.forms {
            form.action method="post" action=(format!("/ui/packages/{id}/holds")) {
                h3 { "Place a legal hold" }
                (csrf_field(viewer))
                label for="hold-reason" { "Reason" }
                input #hold-reason type="text" name="reason" required maxlength="1024"
                    aria-invalid=[hold_refused.as_ref().map(|_| "true")]
                    aria-describedby=[hold_refused.as_ref().map(|_| "hold-error")];
                (field_error("hold-error", hold_refused.as_deref()))
                button type="submit" { "Place hold" }
            }
            @if retention.expires_at.is_some() {
                form.action method="post" action=(format!("/ui/packages/{id}/extend")) {
                    h3 { "Extend the retention" }
                    (csrf_field(viewer))
                    label for="extend-until" { "New expiry (UTC)" }
                    input #extend-until type="datetime-local" name="new_expires_at" required
                        aria-invalid=[extend_refused.as_ref().map(|_| "true")]
                        aria-describedby=[extend_refused.as_ref().map(|_| "extend-error")];
                    label for="extend-reason" { "Reason" }
                    input #extend-reason type="text" name="reason" required maxlength="1024";
                    (field_error("extend-error", extend_refused.as_deref()))
                    button type="submit" { "Extend" }
                }
            }
            // A release refused for want of the admin scope: its form is
            // not shown, so the refusal stands where the forms are.
            @if let Some(refusal) = refusal.filter(|r| matches!(r.form, ActionForm::Release(_)) && !viewer.may(Scope::Admin)) {
                (field_error(&refusal.form.error_id(), Some(&refusal.detail)))
            }
            @if viewer.may(Scope::Admin) {
                @for hold in &retention.active_holds {
                    @let form = ActionForm::Release(hold.hold_id.to_string());
                    @let refused = refused_here(refusal, &form);
                    @let field = format!("release-{}", hold.hold_id);
                    form.action method="post" action=(format!("/ui/packages/{id}/holds/{}/release", hold.hold_id)) {
                        h3 { "Release the hold “" (hold.reason) "”" }
                        (csrf_field(viewer))
                        label for=(field) { "Reason" }
                        input id=(field) type="text" name="reason" required maxlength="1024"
                            aria-invalid=[refused.as_ref().map(|_| "true")]
                            aria-describedby=[refused.as_ref().map(|_| format!("{field}-error"))];
                        (field_error(&format!("{field}-error"), refused.as_deref()))
                        button type="submit" { "Release hold" }
                    }
                }
            }
        }
    }
}

/// Class, expiry, active holds, eligibility, the purge, the explanation
/// of the package's fate in the server's words, and the retention events
/// (extensions, holds placed and released, eligibility, purge) in order.
fn retention_panel(
    retention: &Retention,
    history: &[Event],
    now: &artifactstore_core::Timestamp,
) -> Markup {
    html! {
        section.retention aria-label="Retention" {
            p.sentence { (retention.explanation.sentence) }
            dl.fields {
                dt { "Class" } dd { (retention.retention_class) }
                dt { "Expires" }
                dd {
                    @match &retention.expires_at {
                        Some(at) => (time(at, now)),
                        None => "never",
                    }
                }
                dt { "Eligible for deletion" }
                dd {
                    @if retention.eligible_for_deletion {
                        "yes"
                        @if let Some(at) = &retention.eligible_at { ", since " (time(at, now)) }
                    } @else {
                        "no"
                    }
                }
                @if let Some(purge) = &retention.purge {
                    dt { "Purged" }
                    dd { (time(&purge.purged_at, now)) " by " (purge.purged_by) " (" (purge.rule) "): " (purge.reason) }
                }
            }
            h3 { "Active holds" }
            @if retention.active_holds.is_empty() {
                p.empty { "None." }
            } @else {
                ul.holds {
                    @for hold in &retention.active_holds {
                        li {
                            strong { (hold.reason) }
                            " · placed by " (hold.applied_by) " " (time(&hold.applied_at, now))
                        }
                    }
                }
            }
            h3 { "Why it is kept" }
            ol.explanation {
                @for step in &retention.explanation.steps {
                    li {
                        (step.text)
                        @if let Some(actor) = &step.actor { " · " (actor) }
                        @if let Some(reason) = &step.reason { " · “" (reason) "”" }
                    }
                }
            }
            h3 { "Retention events" }
            @if history.is_empty() {
                p.empty { "None yet." }
            } @else {
                ol.timeline {
                    @for event in history {
                        li {
                            (time(&event.created_at, now)) " "
                            code { (event.event_type) } " by " (event.actor)
                            " " span.hint { "#" (event.sequence) }
                        }
                    }
                }
            }
        }
    }
}

fn metadata(value: &serde_json::Value) -> Markup {
    let Some(entries) = value.as_object().filter(|entries| !entries.is_empty()) else {
        return html! { p.empty { "None." } };
    };
    html! {
        dl.fields {
            @for (key, value) in entries {
                dt { (key) }
                dd {
                    @match value {
                        serde_json::Value::String(text) => (text),
                        other => code { (other.to_string()) },
                    }
                }
            }
        }
    }
}

/// A folder of the file tree: its subfolders by name, and its files.
#[derive(Default)]
struct Folder<'a> {
    folders: BTreeMap<&'a str, Folder<'a>>,
    files: Vec<(&'a str, &'a FileListing)>,
}

impl<'a> Folder<'a> {
    fn of(files: &'a [FileListing]) -> Self {
        let mut root = Folder::default();
        for file in files {
            let mut folder = &mut root;
            let mut segments = file.relative_path.split('/').peekable();
            while let Some(segment) = segments.next() {
                if segments.peek().is_none() {
                    folder.files.push((segment, file));
                } else {
                    folder = folder.folders.entry(segment).or_default();
                }
            }
        }
        root
    }
}

/// Folders as `<details>`, which open and close without script. Written
/// into the page's buffer as it goes, not as a string per folder: with
/// 10,000 files, growing and copying those strings was a third of the
/// page's rendering (docs/benchmarks.md, web UI).
impl Render for Folder<'_> {
    fn render_to(&self, buffer: &mut String) {
        buffer.push_str("<ul>");
        for (name, folder) in &self.folders {
            buffer.push_str(r#"<li class="folder"><details open><summary>"#);
            name.render_to(buffer);
            buffer.push_str("/</summary>");
            folder.render_to(buffer);
            buffer.push_str("</details></li>");
        }
        for (name, file) in &self.files {
            html! {
                li.file {
                    a href=(format!("/v1/files/{}/content", file.id)) download=(name) { (name) }
                    " "
                    span.meta { (size(file.size_bytes)) " · " (file.media_type) }
                    dl.digests {
                        dt { "SHA-256" } dd { code.digest { (file.sha256) } " " (copy_button("Copy the SHA-256")) }
                        dt { "BLAKE3" } dd { code.digest { (file.blake3) } " " (copy_button("Copy the BLAKE3")) }
                    }
                }
            }
            .render_to(buffer);
        }
        buffer.push_str("</ul>");
    }
}
