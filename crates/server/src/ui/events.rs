//! The event log, newest first, paged, filtered by type and subject; on
//! its first page new events appear live (`app.js` follows
//! `GET /v1/events/stream` from the newest sequence shown).

use artifactstore_api::Event;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::format::time;
use super::layout::page;
use super::session::Viewer;
use super::PageResult;
use crate::problem::Problem;
use crate::wire;
use crate::AppState;

/// Rows per page.
const PAGE_ROWS: i64 = 50;
/// Longest filter value taken (event types and subject ids are short).
const MAX_FILTER_BYTES: usize = 200;

#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default, rename = "type")]
    event_type: String,
    #[serde(default)]
    subject: String,
    before: Option<i64>,
}

fn filter(value: &str, name: &str) -> Result<Option<String>, Problem> {
    let value = value.trim();
    if value.len() > MAX_FILTER_BYTES || value.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            "invalid_query",
            format!("`{name}` must be at most {MAX_FILTER_BYTES} bytes of text"),
        ));
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

/// `GET /ui/events`.
pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> PageResult<Response> {
    let Query(query) = query.map_err(|e| Problem::bad_request("invalid_query", e.body_text()))?;
    let event_type = filter(&query.event_type, "type")?;
    let subject = filter(&query.subject, "subject")?;
    if query.before.is_some_and(|before| before < 1) {
        return Err(Problem::bad_request(
            "invalid_query",
            "`before` must be a sequence of 1 or more",
        )
        .into());
    }
    let events: Vec<Event> = state
        .registry
        .newest_events(
            query.before,
            event_type.as_deref(),
            subject.as_deref(),
            PAGE_ROWS,
        )
        .await?
        .iter()
        .map(wire::event)
        .collect();
    let now = state.registry.store().now();
    // Live only on the first page: older pages stay as they are.
    let live_since = match query.before {
        None => Some(match events.first() {
            Some(newest) => newest.sequence,
            None => state.registry.head_sequence().await?,
        }),
        Some(_) => None,
    };
    let older = (events.len() as i64 == PAGE_ROWS)
        .then(|| events.last().map(|oldest| oldest.sequence))
        .flatten()
        .map(|before| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if let Some(value) = &event_type {
                query.append_pair("type", value);
            }
            if let Some(value) = &subject {
                query.append_pair("subject", value);
            }
            query.append_pair("before", &before.to_string());
            format!("/ui/events?{}", query.finish())
        });
    let body = html! {
        h1 { "Events" }
        form.filters method="get" action="/ui/events" aria-label="Filter the events" {
            label { "Type" input type="text" name="type" value=[event_type.as_deref()] placeholder="v1.package.finalized"; }
            label { "Subject" input type="text" name="subject" value=[subject.as_deref()] placeholder="a package id"; }
            button type="submit" { "Filter" }
            " "
            a href="/ui/events" { "Clear" }
        }
        @if let Some(since) = live_since {
            p.hint #live-status aria-live="polite" { "New events appear here as they are recorded." }
            (table(&events, &now, Some((since, event_type.as_deref(), subject.as_deref()))))
        } @else {
            (table(&events, &now, None))
        }
        @if events.is_empty() {
            p.empty {
                @if event_type.is_some() || subject.is_some() || query.before.is_some() {
                    "No event matches."
                } @else {
                    "The log is empty. Create a package with "
                    code { "artifactstore push ./dir --name NAME --producer ci --subject SUBJECT --retention-class standard" }
                    "."
                }
            }
        }
        @if let Some(older) = older {
            p { a rel="next" href=(older) { "Older events" } }
        }
    };
    Ok(page(&viewer, "Events", body).into_response())
}

/// The events; with `live` (the newest sequence shown and the filters),
/// the table tells the script where to follow the log from.
fn table(
    events: &[Event],
    now: &artifactstore_core::Timestamp,
    live: Option<(i64, Option<&str>, Option<&str>)>,
) -> Markup {
    html! {
        div.scroll {
            table #events
                data-live-since=[live.map(|(since, _, _)| since)]
                data-filter-type=[live.and_then(|(_, event_type, _)| event_type)]
                data-filter-subject=[live.and_then(|(_, _, subject)| subject)]
                data-event-types=[live.map(|_| artifactstore_core::event::types::ALL.join(" "))] {
                thead {
                    tr {
                        th scope="col" { "#" }
                        th scope="col" { "Recorded" }
                        th scope="col" { "Type" }
                        th scope="col" { "Subject" }
                        th scope="col" { "Actor" }
                    }
                }
                tbody {
                    @for event in events {
                        tr {
                            td.number { (event.sequence) }
                            td { (time(&event.created_at, now)) }
                            td { code { (event.event_type) } }
                            td { (subject_link(event)) }
                            td { (event.actor) }
                        }
                    }
                }
            }
        }
    }
}

fn subject_link(event: &Event) -> Markup {
    html! {
        @if event.subject_kind == artifactstore_core::event::subjects::PACKAGE && uuid::Uuid::try_parse(&event.subject_id).is_ok() {
            a href=(format!("/ui/packages/{}", event.subject_id)) { (event.subject_id) }
        } @else {
            (event.subject_kind) " " (event.subject_id)
        }
    }
}
