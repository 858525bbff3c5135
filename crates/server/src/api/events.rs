//! The event log: pages, and a live Server-Sent Events stream.

use std::convert::Infallible;

use artifactstore_api::events::StreamMessage;
use artifactstore_api::EventPage;
use artifactstore_registry::core::Event;
use artifactstore_registry::RegistryError;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::extract::ApiQuery;
use crate::problem::{ApiResult, Problem, ProblemBody};
use crate::wire;
use crate::AppState;

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
        items: events.iter().map(wire::event).collect(),
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
    let data = serde_json::to_string(&wire::event(event)).unwrap_or_default();
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

/// A `Last-Event-ID`: digits; a number past the largest sequence is as
/// good as the largest (nothing comes after it).
fn last_event_id(value: &[u8]) -> Option<i64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    Some(text.parse::<i64>().unwrap_or(i64::MAX))
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
        (status = 200, description = "`text/event-stream`: `id:` is the sequence, `event:` the event type, `data:` the event JSON; comments keep the connection alive. A failure ends the stream with an `error` event carrying a problem.", content_type = "text/event-stream", body = StreamMessage),
        (status = 400, description = "`invalid_query`, `invalid_header`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn stream_events(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // `since` is checked even when the header overrides it: a malformed
    // parameter is an error whatever else the request says.
    let since = sequence_cursor(query.since)?;
    let since = match headers.get(LAST_EVENT_ID) {
        Some(value) => last_event_id(value.as_bytes()).ok_or_else(|| {
            Problem::bad_request(
                "invalid_header",
                "Last-Event-ID must be an event sequence (digits)",
            )
        })?,
        None => since,
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
