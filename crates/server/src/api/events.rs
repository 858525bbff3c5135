//! The event log: pages, and a live Server-Sent Events stream.

use std::convert::Infallible;

use artifactstore_registry::core::Event;
use artifactstore_registry::RegistryError;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::ApiQuery;
use crate::problem::{ApiResult, Problem, ProblemBody};
use crate::AppState;

/// One event of the log, as JSON.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event)]
pub(crate) struct EventBody {
    /// Position in the log, strictly increasing.
    sequence: i64,
    /// E.g. `v1.package.created`.
    event_type: String,
    /// What `subject_id` names (`package`, `storage_location`, `metadata_schema`).
    subject_kind: String,
    /// The subject.
    subject_id: String,
    /// Who caused it.
    actor: String,
    /// When it was appended (RFC 3339 UTC).
    #[schema(format = DateTime)]
    created_at: String,
    /// `blake3:<hex>` of the canonical CBOR payload.
    payload_digest: String,
    /// The CBOR payload as JSON (for `v1.package.finalized`, the manifest).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// The JSON form of an event.
pub(crate) fn event_body(event: &Event) -> EventBody {
    let payload = event.payload_json().unwrap_or_else(|e| {
        // One undecodable payload must not break the whole feed; the
        // digest still identifies the stored bytes.
        tracing::warn!(sequence = event.sequence, error = %e, "event payload is not convertible to JSON");
        serde_json::Value::Null
    });
    EventBody {
        sequence: event.sequence,
        event_type: event.event_type.clone(),
        subject_kind: event.subject_kind.clone(),
        subject_id: event.subject_id.clone(),
        actor: event.actor.clone(),
        created_at: event.created_at.to_string(),
        payload_digest: format!("blake3:{}", event.payload_digest.to_hex()),
        payload,
    }
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Return events with a sequence greater than this (default 0).
    #[param(minimum = 0)]
    since: Option<i64>,
    /// Page size (default 100; larger pages are cut to the server's limit).
    #[param(minimum = 1)]
    limit: Option<i64>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    /// Ascending by sequence.
    items: Vec<EventBody>,
    /// The last sequence returned (or `since` when none): the next `since`.
    next: i64,
}

/// A `since` cursor: a sequence, so never negative (default 0).
fn sequence_cursor(since: Option<i64>) -> ApiResult<i64> {
    match since {
        Some(since) if since < 0 => Err(Problem::bad_request(
            "invalid_query",
            format!("`since` must be a sequence, 0 or more (got {since})"),
        )),
        since => Ok(since.unwrap_or(0)),
    }
}

/// Events after `since`, ascending.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "`invalid_query`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    let since = sequence_cursor(query.since)?;
    let limit = match query.limit {
        Some(limit) if limit < 1 => {
            return Err(Problem::bad_request(
                "invalid_query",
                "`limit` must be at least 1",
            ));
        }
        Some(limit) => limit.min(state.options.max_page),
        None => state.options.default_page,
    };
    let events = state.registry.fetch_events(since, limit).await?;
    let next = events.last().map_or(since, |e| e.sequence);
    Ok(Json(EventPage {
        items: events.iter().map(event_body).collect(),
        next,
    }))
}

/// Query of `GET /v1/events/stream`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    /// Start after this sequence (default 0); `Last-Event-ID` overrides it.
    #[param(minimum = 0)]
    since: Option<i64>,
}

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

fn sse_event(event: &Event) -> sse::Event {
    // A struct of strings, integers and JSON values always serializes.
    let data = serde_json::to_string(&event_body(event)).unwrap_or_default();
    sse::Event::default()
        .id(event.sequence.to_string())
        .event(&event.event_type)
        .data(data)
}

fn sse_error(error: RegistryError) -> sse::Event {
    let body = Problem::from(error).body();
    let data = serde_json::to_string(&body).unwrap_or_default();
    sse::Event::default().event("error").data(data)
}

/// Follows the log live.
#[utoipa::path(
    get,
    path = "/v1/events/stream",
    tag = "events",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this sequence; takes precedence over `since`"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `id:` is the sequence, `event:` the event type, `data:` the event JSON; comments keep the connection alive. A failure ends the stream with an `error` event carrying a problem.", content_type = "text/event-stream", body = String),
        (status = 400, description = "`invalid_query`, `invalid_header`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn stream_events(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let since = match headers.get(LAST_EVENT_ID) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .filter(|sequence| *sequence >= 0)
            .ok_or_else(|| {
                Problem::bad_request(
                    "invalid_header",
                    "Last-Event-ID must be an event sequence (an integer)",
                )
            })?,
        None => sequence_cursor(query.since)?,
    };
    let guard = state.metrics.event_stream_opened();
    let events = state
        .registry
        .tail_events(since)
        .map(move |item| {
            let _open = &guard;
            Ok::<_, Infallible>(match item {
                Ok(event) => sse_event(&event),
                Err(error) => sse_error(error),
            })
        })
        .take_until(state.shutdown.clone().cancelled_owned());
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.options.keep_alive))
        .into_response();
    // Tells buffering proxies (nginx) to pass events through at once.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}
