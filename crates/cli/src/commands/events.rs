//! `artifactstore events`: the log, paged or followed live over SSE.

use std::time::Duration;

use artifactstore_api::{Event, EventPage, Problem};
use futures::StreamExt;
use reqwest::Method;

use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::output::Output;

const PAGE: i64 = 1000;

fn print(out: Output, event: &Event) {
    out.show(event, || {
        format!(
            "{:>8}  {}  {:<32}  {}:{}  {}",
            event.sequence,
            event.created_at,
            event.event_type,
            event.subject_kind,
            event.subject_id,
            event.actor
        )
    });
}

/// Runs `events`.
pub async fn run(client: &Client, out: Output, since: i64, follow: bool) -> CliResult<()> {
    if follow {
        return follow_live(client, out, since).await;
    }
    let mut cursor = since;
    loop {
        let page: EventPage = client
            .get_json(
                &["v1", "events"],
                &[("since", cursor.to_string()), ("limit", PAGE.to_string())],
            )
            .await?;
        if page.items.is_empty() {
            return Ok(());
        }
        for event in &page.items {
            print(out, event);
            cursor = event.sequence;
        }
    }
}

/// Follows `/v1/events/stream`, reconnecting with `Last-Event-ID` when the
/// connection drops, so no event is missed or printed twice.
async fn follow_live(client: &Client, out: Output, since: i64) -> CliResult<()> {
    let mut last = since;
    loop {
        let request = client
            .request(Method::GET, client.url(&["v1", "events", "stream"]))
            .query(&[("since", last.to_string())])
            .header("Accept", "text/event-stream")
            .header("Last-Event-ID", last.to_string());
        let response = match client.send(request).await {
            Ok(response) => response,
            Err(CliError::Unreachable { .. }) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(other) => return Err(other),
        };
        let mut stream = response.bytes_stream();
        // Bytes, not text: a character may be split across two chunks.
        let mut buffer: Vec<u8> = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let message: Vec<u8> = buffer.drain(..end + 2).collect();
                let message = String::from_utf8_lossy(&message);
                let data: String = message
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect::<Vec<_>>()
                    .join("\n");
                if data.is_empty() {
                    continue;
                }
                // The server ends a stream it cannot go on with by an
                // `error` event carrying a problem: say so and reconnect.
                if message
                    .lines()
                    .any(|line| line.trim_end() == "event: error")
                {
                    let problem: Problem = serde_json::from_str(&data)
                        .map_err(|e| CliError::Protocol(e.to_string()))?;
                    eprintln!(
                        "warning: the event stream broke off ({}: {}); reconnecting",
                        problem.code, problem.detail
                    );
                    continue;
                }
                let event: Event =
                    serde_json::from_str(&data).map_err(|e| CliError::Protocol(e.to_string()))?;
                if event.sequence > last {
                    print(out, &event);
                    last = event.sequence;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
