//! The access log: exactly one line per request, with the matched route
//! template, status, and the body bytes that really went in and out.
//! (Its own test binary, so no other test's requests reach the log.)

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use artifactstore_registry::{Config, Registry};
use artifactstore_server::{serve, ServerOptions};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The access-log lines so far, as their JSON `fields`.
    fn access_lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|line| line["target"] == "artifactstore_server::access")
            .map(|line| line["fields"].clone())
            .collect()
    }
}

#[tokio::test]
async fn one_line_per_request_with_route_status_and_bytes() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so the server's tasks log
    // through this thread's default subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::builder(Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .build()
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        registry,
        ServerOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();

    let package: Value = client
        .post(format!("{base}/v1/packages"))
        .json(&json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = package["id"].as_str().unwrap();
    let file: Value = client
        .put(format!("{base}/v1/packages/{id}/files/a.txt"))
        .body("0123456789")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let content = client
        .get(format!(
            "{base}/v1/files/{}/content",
            file["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&content[..], b"0123456789");
    let missing = client.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let _ = missing.bytes().await.unwrap();

    // Lines are written when a response body is dropped, just after the
    // client has it; wait (bounded) for all four.
    let mut lines = Vec::new();
    for _ in 0..200 {
        lines = captured.access_lines();
        if lines.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let summary: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["method"].as_str().unwrap().to_owned(),
                l["route"].as_str().unwrap().to_owned(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("POST".to_owned(), "/v1/packages".to_owned(), 201),
            (
                "PUT".to_owned(),
                "/v1/packages/{id}/files/{*relative_path}".to_owned(),
                201
            ),
            (
                "GET".to_owned(),
                "/v1/files/{file_id}/content".to_owned(),
                200
            ),
            ("GET".to_owned(), "unmatched".to_owned(), 404),
        ]
    );
    assert_eq!(lines[1]["bytes_in"], 10);
    assert!(lines[1]["bytes_out"].as_u64().unwrap() > 0);
    assert_eq!(lines[2]["bytes_in"], 0);
    assert_eq!(lines[2]["bytes_out"], 10);
    for line in &lines {
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(line["latency_ms"].as_f64().unwrap() >= 0.0);
    }

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
