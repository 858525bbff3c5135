//! The event log: pages and the live stream.

use super::*;

on_both_engines!(events_pages);
async fn events_pages() {
    let server = TestServer::start().await;
    let empty = json_of(server.get("/v1/events?since=0").await).await;
    assert_eq!(empty, json!({"items": [], "next": 0}));
    let package = server
        .create_package("ci", "standard", json!({"k": "v"}))
        .await;
    let id = package["id"].as_str().unwrap();
    server.put_file(id, "a.txt", b"alpha").await;
    let finalized = json_of(
        server
            .send(
                server
                    .client
                    .post(server.url(&format!("/v1/packages/{id}/finalize"))),
            )
            .await,
    )
    .await;

    let all = json_of(server.get("/v1/events").await).await;
    let items = all["items"].as_array().unwrap();
    let types: Vec<&str> = items
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "v1.package.created",
            "v1.retention.default_applied",
            "v1.file.ingested",
            "v1.package.finalized"
        ]
    );
    let sequences: Vec<i64> = items
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all["next"], *sequences.last().unwrap());
    let first = &items[0];
    for key in [
        "subject_kind",
        "subject_id",
        "actor",
        "created_at",
        "payload_digest",
        "payload",
    ] {
        assert!(first.get(key).is_some(), "event JSON lacks {key}");
    }
    assert_eq!(first["subject_id"], id);
    assert_eq!(first["payload"]["name"], "nightly");
    assert_eq!(first["payload"]["metadata"], json!({"k": "v"}));
    // The finalized event's payload is the manifest; its digest is the
    // manifest's content address.
    let last = &items[3];
    assert_eq!(last["payload_digest"], finalized["manifest_digest"]);
    let manifest_json = server
        .registry
        .manifest_bytes(Uuid::parse_str(id).unwrap(), ManifestFormat::Json)
        .await
        .unwrap();
    assert_eq!(
        last["payload"],
        serde_json::from_slice::<Value>(&manifest_json).unwrap()
    );

    // Paging: `next` is the last sequence, and `since` resumes after it.
    let page = json_of(server.get("/v1/events?since=0&limit=3").await).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["next"], sequences[2]);
    let rest = json_of(
        server
            .get(&format!("/v1/events?since={}&limit=3", page["next"]))
            .await,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["sequence"], sequences[3]);
    let after_end = json_of(
        server
            .get(&format!("/v1/events?since={}", sequences[3]))
            .await,
    )
    .await;
    assert_eq!(after_end, json!({"items": [], "next": sequences[3]}));

    assert_problem(
        server.get("/v1/events?since=abc").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    assert_problem(
        server.get("/v1/events?limit=0").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    assert_problem(
        server.get("/v1/events?sinse=1").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    server.stop().await;
}

/// One frame of an event stream.
#[derive(Debug, Default)]
struct SseFrame {
    id: Option<String>,
    event: Option<String>,
    data: String,
    comment: bool,
}

/// Reads frames off a raw `text/event-stream` body.
struct SseReader {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    fn new(response: reqwest::Response) -> Self {
        Self {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next frame, or `None` when the stream ends.
    async fn next(&mut self) -> Option<SseFrame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut frame = SseFrame::default();
                for line in block.lines() {
                    if let Some(rest) = line.strip_prefix(':') {
                        let _ = rest;
                        frame.comment = true;
                    } else if let Some(id) = line.strip_prefix("id:") {
                        frame.id = Some(id.trim().to_owned());
                    } else if let Some(event) = line.strip_prefix("event:") {
                        frame.event = Some(event.trim().to_owned());
                    } else if let Some(data) = line.strip_prefix("data:") {
                        frame.data.push_str(data.trim_start());
                    }
                }
                return Some(frame);
            }
            let chunk = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("event stream stalled")?;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        }
    }

    /// The next frame that is an event (skipping keep-alive comments).
    async fn next_event(&mut self) -> SseFrame {
        loop {
            let frame = self.next().await.expect("stream ended");
            if frame.id.is_some() {
                return frame;
            }
        }
    }
}

on_both_engines!(event_stream_is_live_and_resumes_from_last_event_id);
async fn event_stream_is_live_and_resumes_from_last_event_id() {
    let server = TestServer::start_with(ServerOptions {
        keep_alive: Duration::from_millis(200),
        ..ServerOptions::default()
    })
    .await;
    let first = server.create_package("ci", "standard", Value::Null).await;
    let head = server.head().await;
    assert_eq!(head, 2);

    let response = server.get("/v1/events/stream?since=0").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("text/event-stream"));
    let mut reader = SseReader::new(response);
    // The backlog first.
    let frame = reader.next_event().await;
    assert_eq!(frame.id.as_deref(), Some("1"));
    assert_eq!(frame.event.as_deref(), Some("v1.package.created"));
    let data: Value = serde_json::from_str(&frame.data).unwrap();
    assert_eq!(data["sequence"], 1);
    assert_eq!(data["subject_id"], first["id"]);
    assert_eq!(reader.next_event().await.id.as_deref(), Some("2"));
    // An idle stream sends keep-alive comments.
    let idle = reader.next().await.expect("keep-alive");
    assert!(idle.comment && idle.id.is_none());
    // Then live events as they commit.
    let second = server.create_package("ci", "standard", Value::Null).await;
    let frame = reader.next_event().await;
    assert_eq!(frame.id.as_deref(), Some("3"));
    let data: Value = serde_json::from_str(&frame.data).unwrap();
    assert_eq!(data["subject_id"], second["id"]);
    assert_eq!(reader.next_event().await.id.as_deref(), Some("4"));
    drop(reader);

    // While nobody listens, more happens; a reconnect with Last-Event-ID
    // (which beats `since`) picks up exactly after the last one seen.
    server.create_package("ci", "standard", Value::Null).await;
    let response = server
        .send(
            server
                .client
                .get(server.url("/v1/events/stream?since=0"))
                .header("last-event-id", "4"),
        )
        .await;
    let mut reader = SseReader::new(response);
    let ids = [reader.next_event().await.id, reader.next_event().await.id];
    assert_eq!(ids, [Some("5".to_owned()), Some("6".to_owned())]);
    drop(reader);

    let response = server
        .send(
            server
                .client
                .get(server.url("/v1/events/stream"))
                .header("last-event-id", "four"),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_header").await;
    assert_problem(
        server.get("/v1/events/stream?since=x").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    server.stop().await;
}

on_both_engines!(shutdown_ends_open_event_streams);
async fn shutdown_ends_open_event_streams() {
    let server = TestServer::start().await;
    let response = server.get("/v1/events/stream").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut reader = SseReader::new(response);
    // Stop while the stream is open: serve must still return, and the
    // stream must end rather than hang.
    let mut server = server;
    let tx = server.shutdown.take().unwrap();
    let _ = tx.send(());
    let handle = server.handle.take().unwrap();
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("graceful shutdown timed out")
        .expect("server task")
        .expect("serve");
    while let Some(frame) = reader.next().await {
        assert!(frame.id.is_none(), "no events were written");
    }
}
