//! End-to-end tests of the HTTP API: a real server on 127.0.0.1:0 started
//! with `serve`, a real HTTP client, a fresh registry per test, on each
//! engine (SQLite, and a fresh PostgreSQL database).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use artifactstore_core::{Clock, Digest32, SystemClock, Timestamp};
use artifactstore_registry::{Config, ManifestFormat, Registry};
use artifactstore_server::{serve, ServerOptions};
use base64::Engine;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Runs the test `$name` once on each engine, as `$name::sqlite` and
/// `$name::postgres` (skipped without PostgreSQL, a failure under CI).
macro_rules! on_both_engines {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                artifactstore_testkit::run_on(
                    artifactstore_testkit::Engine::Sqlite,
                    super::$name(),
                );
            }
            #[test]
            fn postgres() {
                artifactstore_testkit::run_on(
                    artifactstore_testkit::Engine::Postgres,
                    super::$name(),
                );
            }
        }
    };
}

/// Bound on every wait, so a hang fails the test instead of stalling it.
const WAIT: Duration = Duration::from_secs(20);

/// A clock the tests can move forward.
#[derive(Default)]
struct ShiftedClock {
    offset_seconds: AtomicI64,
}

impl ShiftedClock {
    fn advance_days(&self, days: i64) {
        self.offset_seconds
            .fetch_add(days * 86_400, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        let now = SystemClock.now();
        now.plus_seconds(self.offset_seconds.load(Ordering::SeqCst))
            .unwrap_or(now)
    }
}

struct TestServer {
    base: String,
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    registry: Registry,
    clock: Arc<ShiftedClock>,
    data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
    _postgres: Option<artifactstore_testkit::PostgresDatabase>,
}

impl TestServer {
    async fn start() -> Self {
        Self::start_with(ServerOptions::default()).await
    }

    async fn start_with(options: ServerOptions) -> Self {
        Self::start_configured(options, |_| {}).await
    }

    async fn start_configured(options: ServerOptions, edit: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().to_path_buf();
        let clock = Arc::new(ShiftedClock::default());
        let mut config = Config {
            data_dir: data_dir.clone(),
            ..Default::default()
        };
        let postgres = match artifactstore_testkit::current_engine() {
            artifactstore_testkit::Engine::Sqlite => None,
            artifactstore_testkit::Engine::Postgres => {
                Some(artifactstore_testkit::PostgresDatabase::create().await)
            }
        };
        config.database.url = postgres.as_ref().map(|db| db.url.clone());
        edit(&mut config);
        let registry = Registry::builder(config)
            .clock(clock.clone())
            .build()
            .await
            .expect("registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve(listener, registry.clone(), options, async move {
            let _ = rx.await;
        }));
        Self {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::new(),
            registry,
            clock,
            data_dir,
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
            _postgres: postgres,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        tokio::time::timeout(WAIT, request.send())
            .await
            .expect("request timed out")
            .expect("request failed")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.send(self.client.get(self.url(path))).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    async fn create_package(&self, producer: &str, class: &str, metadata: Value) -> Value {
        let response = self
            .post_json(
                "/v1/packages",
                &json!({
                    "name": "nightly",
                    "producer": producer,
                    "subject": "app",
                    "retention_class": class,
                    "metadata": metadata,
                }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        json_of(response).await
    }

    async fn put_file(&self, package_id: &str, path: &str, bytes: &'static [u8]) -> Value {
        let response = self
            .send(
                self.client
                    .put(self.url(&format!("/v1/packages/{package_id}/files/{path}")))
                    .header("content-type", "text/plain")
                    .body(bytes),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "upload of {path}");
        json_of(response).await
    }

    async fn file_count(&self, package_id: &str) -> usize {
        let body = json_of(self.get(&format!("/v1/packages/{package_id}/files")).await).await;
        body["items"].as_array().expect("items").len()
    }

    async fn head(&self) -> i64 {
        self.registry.head_sequence().await.expect("head")
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(WAIT, handle)
                .await
                .expect("graceful shutdown timed out")
                .expect("server task")
                .expect("serve");
        }
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    let bytes = tokio::time::timeout(WAIT, response.bytes())
        .await
        .expect("body timed out")
        .expect("body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

async fn bytes_of(response: reqwest::Response) -> Vec<u8> {
    tokio::time::timeout(WAIT, response.bytes())
        .await
        .expect("body timed out")
        .expect("body")
        .to_vec()
}

/// Asserts an RFC 9457 answer with this status and code; returns its body.
async fn assert_problem(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for expected code {code}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "problem media type for {code}"
    );
    let body = json_of(response).await;
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], format!("urn:artifactstore:problem:{code}"));
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("header text")
}

fn sha256_header(bytes: &[u8]) -> String {
    let digest = Digest32::sha256_of(bytes);
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest.0)
    )
}

/// Every regular file under `root`, recursively.
fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.insert(path);
            }
        }
    }
    out
}

/// Sends one raw HTTP/1.1 request (for paths a URL library would
/// normalise) and returns the status and the whole answer.
async fn raw_request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write body");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("raw answer timed out")
        .expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, text)
}

on_both_engines!(packages_create_show_list_filter_and_page);
async fn packages_create_show_list_filter_and_page() {
    let server = TestServer::start().await;
    let a = server
        .create_package("ci", "standard", json!({"run": 42, "branch": "main"}))
        .await;
    let b = server
        .create_package("ci", "ephemeral", json!({"run": 43}))
        .await;
    let c = server
        .create_package("audit", "standard", Value::Null)
        .await;
    for key in [
        "id",
        "name",
        "producer",
        "subject",
        "retention_class",
        "metadata",
        "metadata_schema_id",
        "status",
        "manifest_digest",
        "created_at",
        "finalized_at",
        "expires_at",
        "last_event_sequence",
    ] {
        assert!(a.get(key).is_some(), "package JSON lacks {key}: {a}");
    }
    assert_eq!(a["status"], "created");
    assert_eq!(c["metadata"], json!({}));

    // Location names the created package, and it reads back identically.
    let response = server
        .post_json(
            "/v1/packages",
            &json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header(&response, "location").to_owned();
    let created = json_of(response).await;
    assert_eq!(
        location,
        format!("/v1/packages/{}", created["id"].as_str().unwrap())
    );
    let shown = json_of(server.get(&location).await).await;
    assert_eq!(shown, created);

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |p: &Value| p["id"].as_str().unwrap().to_owned();
    let page = json_of(server.get("/v1/packages?producer=ci").await).await;
    assert_eq!(ids(&page), vec![id(&a), id(&b)]);
    let page = json_of(server.get("/v1/packages?metadata.run=42").await).await;
    assert_eq!(ids(&page), vec![id(&a)]);
    let page = json_of(
        server
            .get("/v1/packages?producer=ci&retention_class=ephemeral")
            .await,
    )
    .await;
    assert_eq!(ids(&page), vec![id(&b)]);
    let page = json_of(
        server
            .get("/v1/packages?subject=app&status=created&producer=audit")
            .await,
    )
    .await;
    assert_eq!(ids(&page), vec![id(&c)]);
    let page = json_of(server.get("/v1/packages?status=finalized").await).await;
    assert_eq!(ids(&page), Vec::<String>::new());

    // Paging by `next` visits every package once, in creation order.
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    for _ in 0..10 {
        let path = match &after {
            Some(next) => format!("/v1/packages?limit=1&after={next}"),
            None => "/v1/packages?limit=1".to_owned(),
        };
        let page = json_of(server.get(&path).await).await;
        assert!(page["items"].as_array().unwrap().len() <= 1);
        seen.extend(ids(&page));
        if page["next"].is_null() {
            break;
        }
        after = Some(page["next"].clone());
    }
    assert_eq!(seen, vec![id(&a), id(&b), id(&c), id(&created)]);

    for bad in [
        "/v1/packages?limit=abc",
        "/v1/packages?limit=0",
        "/v1/packages?producerz=ci",
        "/v1/packages?after=x",
    ] {
        assert_problem(
            server.get(bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
    server.stop().await;
}

on_both_engines!(package_errors_are_problems);
async fn package_errors_are_problems() {
    let server = TestServer::start().await;
    let head = server.head().await;
    let body =
        json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "no-such-class"});
    let problem = assert_problem(
        server.post_json("/v1/packages", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_retention_class",
    )
    .await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("no-such-class"));

    let unknown_field = json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard", "colour": "red"});
    let problem = assert_problem(
        server.post_json("/v1/packages", &unknown_field).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("colour"));
    let wrong_type =
        json!({"name": 5, "producer": "p", "subject": "s", "retention_class": "standard"});
    assert_problem(
        server.post_json("/v1/packages", &wrong_type).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    let missing = json!({"name": "n"});
    assert_problem(
        server.post_json("/v1/packages", &missing).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    let broken = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_problem(broken, StatusCode::BAD_REQUEST, "invalid_json").await;
    // The same body unlabelled is refused for its media type first.
    let unlabelled = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .body("{not json"),
        )
        .await;
    assert_problem(
        unlabelled,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let not_object = json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard", "metadata": [1]});
    assert_problem(
        server.post_json("/v1/packages", &not_object).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "metadata_invalid",
    )
    .await;
    let empty_name =
        json!({"name": " ", "producer": "p", "subject": "s", "retention_class": "standard"});
    assert_problem(
        server.post_json("/v1/packages", &empty_name).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;

    assert_problem(
        server.get("/v1/packages/not-a-uuid").await,
        StatusCode::BAD_REQUEST,
        "invalid_id",
    )
    .await;
    let missing_id = Uuid::new_v4();
    assert_problem(
        server.get(&format!("/v1/packages/{missing_id}")).await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    assert_problem(
        server
            .send(
                server
                    .client
                    .post(server.url(&format!("/v1/packages/{missing_id}/finalize"))),
            )
            .await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    assert_problem(
        server.get(&format!("/v1/files/{missing_id}")).await,
        StatusCode::NOT_FOUND,
        "file_not_found",
    )
    .await;
    assert_problem(
        server.get("/v1/files/xyz/content").await,
        StatusCode::BAD_REQUEST,
        "invalid_id",
    )
    .await;
    assert_problem(
        server.get("/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    )
    .await;
    assert_problem(
        server
            .send(server.client.delete(server.url("/v1/packages")))
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    // Nothing above changed the log.
    assert_eq!(server.head().await, head);
    server.stop().await;
}

on_both_engines!(json_bodies_over_the_limit_are_refused);
async fn json_bodies_over_the_limit_are_refused() {
    let server = TestServer::start_with(ServerOptions {
        max_json_body_bytes: 1024,
        ..ServerOptions::default()
    })
    .await;
    let body = json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard", "metadata": {"pad": "x".repeat(4096)}});
    assert_problem(
        server.post_json("/v1/packages", &body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    server.stop().await;
}

on_both_engines!(actor_header_is_recorded);
async fn actor_header_is_recorded() {
    let server = TestServer::start().await;
    let response = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("x-artifactstore-actor", "ci-bot")
                .json(&json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let anonymous = server.create_package("p", "standard", Value::Null).await;
    let events = json_of(server.get("/v1/events").await).await;
    let actors: Vec<(&str, &str)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(actors[0], ("v1.package.created", "ci-bot"));
    let last = events["items"].as_array().unwrap().last().unwrap();
    assert_eq!(last["subject_id"], anonymous["id"]);
    assert_eq!(last["actor"], "anonymous");
    let response = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("x-artifactstore-actor", "   ")
                .json(&json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard"})),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_header").await;
    // A bad actor header does not hide what routing answers: a method the
    // route does not allow is still a 405 with `Allow`, and reads, which
    // record no actor, are served.
    let trace = server
        .send(
            server
                .client
                .request(Method::TRACE, server.url("/v1/packages"))
                .header("x-artifactstore-actor", ""),
        )
        .await;
    assert!(header(&trace, "allow").contains("POST"));
    assert_problem(trace, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let read = server
        .send(
            server
                .client
                .get(server.url("/v1/packages"))
                .header("x-artifactstore-actor", ""),
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    server.stop().await;
}

on_both_engines!(upload_and_download_with_digests);
async fn upload_and_download_with_digests() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let content: &[u8] = b"hello, artifact store\n";
    let blake3 = Digest32::blake3_of(content);
    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/reports/summary%20v1.txt")))
                .header("content-type", "text/plain; charset=utf-8")
                .header(
                    "content-digest",
                    format!("md5=:AAAA:, {}", sha256_header(content)),
                )
                .header("x-content-blake3", blake3.to_hex())
                .body(content),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header(&response, "location").to_owned();
    let file = json_of(response).await;
    let file_id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/files/{file_id}"));
    assert_eq!(file["relative_path"], "reports/summary v1.txt");
    assert_eq!(file["media_type"], "text/plain; charset=utf-8");
    assert_eq!(file["size_bytes"], content.len());
    assert_eq!(file["blake3"], blake3.to_hex());
    assert_eq!(file["sha256"], Digest32::sha256_of(content).to_hex());
    assert_eq!(
        file["content_address"],
        format!("blake3:{}", blake3.to_hex())
    );
    assert_eq!(file["package_id"], id);
    for key in [
        "backend_id",
        "object_key",
        "retrieval_tier",
        "storage_status",
        "created_at",
    ] {
        assert!(file.get(key).is_some(), "file JSON lacks {key}");
    }

    // Without a Content-Type the media type is application/octet-stream.
    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/raw.bin")))
                .body(vec![0u8, 1, 2]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        json_of(response).await["media_type"],
        "application/octet-stream"
    );

    let listed = json_of(server.get(&format!("/v1/packages/{id}/files")).await).await;
    let paths: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["relative_path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["raw.bin", "reports/summary v1.txt"]);
    assert_eq!(json_of(server.get(&location).await).await, file);

    for path in [
        format!("/v1/files/{file_id}/content"),
        format!("/v1/packages/{id}/files/reports/summary%20v1.txt"),
    ] {
        let response = server.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            header(&response, "content-length"),
            content.len().to_string()
        );
        assert_eq!(
            header(&response, "etag"),
            format!("\"blake3:{}\"", blake3.to_hex())
        );
        assert_eq!(header(&response, "content-digest"), sha256_header(content));
        assert_eq!(header(&response, "accept-ranges"), "bytes");
        assert_eq!(bytes_of(response).await, content);
    }
    assert_problem(
        server
            .get(&format!("/v1/packages/{id}/files/missing.txt"))
            .await,
        StatusCode::NOT_FOUND,
        "file_not_found",
    )
    .await;
    server.stop().await;
}

on_both_engines!(large_upload_streams_through);
async fn large_upload_streams_through() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    // 8 MiB in 64 KiB chunks, sent as a chunked stream of unknown length.
    let chunk = vec![7u8; 64 * 1024];
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..128).map(|_| Ok(chunk.clone())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/big.bin")))
                .body(body),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let file = json_of(response).await;
    assert_eq!(file["size_bytes"], 8 * 1024 * 1024);
    let expected = Digest32::blake3_of(&vec![7u8; 8 * 1024 * 1024]);
    assert_eq!(file["blake3"], expected.to_hex());
    let response = server
        .get(&format!(
            "/v1/files/{}/content",
            file["id"].as_str().unwrap()
        ))
        .await;
    let mut stream = response.bytes_stream();
    let mut hasher_input = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("download stalled")
    {
        hasher_input.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(Digest32::blake3_of(&hasher_input), expected);
    server.stop().await;
}

on_both_engines!(ranges_head_and_conditional_requests);
async fn ranges_head_and_conditional_requests() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let content: &'static [u8] = b"0123456789abcdefghij";
    let file = server.put_file(id, "digits.txt", content).await;
    let url = server.url(&format!(
        "/v1/files/{}/content",
        file["id"].as_str().unwrap()
    ));
    let etag = format!("\"{}\"", file["content_address"].as_str().unwrap());
    let ranged = |range: &str| server.client.get(&url).header("range", range.to_owned());

    let response = server.send(ranged("bytes=2-5")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, "content-range"), "bytes 2-5/20");
    assert_eq!(header(&response, "content-length"), "4");
    assert_eq!(header(&response, "etag"), etag);
    assert!(
        response.headers().get("content-digest").is_none(),
        "206 must not carry the whole file's Content-Digest"
    );
    assert_eq!(header(&response, "repr-digest"), sha256_header(content));
    assert_eq!(bytes_of(response).await, b"2345");

    let response = server.send(ranged("bytes=15-")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, "content-range"), "bytes 15-19/20");
    assert_eq!(bytes_of(response).await, b"fghij");

    let response = server.send(ranged("bytes=-3")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, "content-range"), "bytes 17-19/20");
    assert_eq!(bytes_of(response).await, b"hij");

    let response = server.send(ranged("bytes=18-100")).await;
    assert_eq!(header(&response, "content-range"), "bytes 18-19/20");
    assert_eq!(bytes_of(response).await, b"ij");

    // Several ranges: the first satisfiable one alone.
    let response = server.send(ranged("bytes=0-1, 5-6")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes_of(response).await, b"01");

    let response = server.send(ranged("bytes=20-")).await;
    assert_eq!(header(&response, "content-range"), "bytes */20");
    assert_problem(
        response,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
    )
    .await;
    let response = server.send(ranged("bytes=-0")).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Malformed ranges are ignored: the whole file.
    for malformed in ["bytes=5-2", "bytes=x-y", "lines=1-2", "bytes"] {
        let response = server.send(ranged(malformed)).await;
        assert_eq!(response.status(), StatusCode::OK, "{malformed}");
        assert_eq!(bytes_of(response).await, content);
    }

    // If-Range with a different validator: the whole file.
    let response = server
        .send(ranged("bytes=0-1").header("if-range", "\"blake3:other\""))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = server
        .send(ranged("bytes=0-1").header("if-range", etag.clone()))
        .await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);

    // HEAD: the headers of a GET, no body.
    let response = server.send(server.client.head(&url)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), "20");
    assert_eq!(header(&response, "etag"), etag);
    assert_eq!(header(&response, "content-type"), "text/plain");
    assert_eq!(header(&response, "content-digest"), sha256_header(content));
    assert!(bytes_of(response).await.is_empty());
    let by_path = server.url(&format!("/v1/packages/{id}/files/digits.txt"));
    let response = server.send(server.client.head(&by_path)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), "20");
    let response = server
        .send(
            server
                .client
                .head(server.url(&format!("/v1/packages/{id}/files/nope"))),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // If-None-Match: 304 for our tag, a weak form of it, or `*`.
    for condition in [
        etag.clone(),
        format!("W/{etag}"),
        "\"x\", ".to_owned() + &etag,
        "*".to_owned(),
    ] {
        let response = server
            .send(
                server
                    .client
                    .get(&url)
                    .header("if-none-match", condition.clone()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{condition}");
        assert_eq!(header(&response, "etag"), etag);
        assert!(bytes_of(response).await.is_empty());
    }
    let response = server
        .send(
            server
                .client
                .get(&by_path)
                .header("if-none-match", etag.clone()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    let response = server
        .send(
            server
                .client
                .get(&url)
                .header("if-none-match", "\"blake3:other\""),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    // An empty file: any range is unsatisfiable, the whole is 0 bytes.
    let empty = server.put_file(id, "empty", b"").await;
    let empty_url = server.url(&format!(
        "/v1/files/{}/content",
        empty["id"].as_str().unwrap()
    ));
    let response = server
        .send(server.client.get(&empty_url).header("range", "bytes=0-"))
        .await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&response, "content-range"), "bytes */0");
    let response = server
        .get(&format!(
            "/v1/files/{}/content",
            empty["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), "0");
    server.stop().await;
}

on_both_engines!(invalid_relative_paths_are_refused);
async fn invalid_relative_paths_are_refused() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let objects = server.data_dir.join("objects");
    let stored_before = files_under(&objects);
    let head = server.head().await;
    // Encoded separators decode to invalid paths; the URL library leaves
    // these segments alone.
    for path in [
        "a%2F..%2Fb",
        "a%2F%2Fb",
        "%2Fetc%2Fpasswd",
        "a%5Cb",
        "a%00b",
        "%FF",
    ] {
        let response = server
            .send(
                server
                    .client
                    .put(server.url(&format!("/v1/packages/{id}/files/{path}")))
                    .body("x"),
            )
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    }
    // Dot segments (also encoded) would be normalised away by a URL
    // library, so send them raw.
    for target in [
        format!("/v1/packages/{id}/files/a/%2E%2E/b"),
        format!("/v1/packages/{id}/files/a/../b"),
        format!("/v1/packages/{id}/files/a//b"),
        format!("/v1/packages/{id}/files/a/./b"),
        format!("/v1/packages/{id}/files/a/%2e/b"),
    ] {
        let (status, answer) = raw_request(server.addr, "PUT", &target, b"x").await;
        assert_eq!(status, 400, "{target}: {answer}");
        assert!(answer.contains("\"code\":\"invalid_path\""), "{answer}");
    }
    assert_eq!(server.file_count(id).await, 0);
    assert_eq!(server.head().await, head);
    assert_eq!(files_under(&objects), stored_before);
    server.stop().await;
}

on_both_engines!(duplicate_paths_and_finalized_packages_conflict);
async fn duplicate_paths_and_finalized_packages_conflict() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    server.put_file(id, "a.txt", b"one").await;
    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/a.txt")))
                .body("two"),
        )
        .await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "duplicate_relative_path").await;
    assert!(problem["detail"].as_str().unwrap().contains("a.txt"));

    let response = server
        .send(
            server
                .client
                .post(server.url(&format!("/v1/packages/{id}/finalize"))),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let finalized = json_of(response).await;
    assert_eq!(finalized["package_id"], id);
    let digest = finalized["manifest_digest"].as_str().unwrap();
    assert!(digest.starts_with("blake3:") && digest.len() == 7 + 64);
    let shown = json_of(server.get(&format!("/v1/packages/{id}")).await).await;
    assert_eq!(shown["status"], "finalized");
    assert_eq!(shown["manifest_digest"], digest);

    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/b.txt")))
                .body("late"),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT, "illegal_package_state").await;
    let response = server
        .send(
            server
                .client
                .post(server.url(&format!("/v1/packages/{id}/finalize"))),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT, "illegal_package_state").await;
    assert_eq!(server.file_count(id).await, 1);

    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{}/files/x", Uuid::new_v4())))
                .body("x"),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "package_not_found").await;
    let response = server
        .send(
            server
                .client
                .put(server.url("/v1/packages/nope/files/x"))
                .body("x"),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_id").await;
    server.stop().await;
}

on_both_engines!(digest_mismatch_stores_nothing);
async fn digest_mismatch_stores_nothing() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let objects = server.data_dir.join("objects");
    let stored_before = files_under(&objects);
    let head = server.head().await;
    let url = server.url(&format!("/v1/packages/{id}/files/data.bin"));

    let response = server
        .send(
            server
                .client
                .put(&url)
                .header("content-digest", sha256_header(b"other bytes"))
                .body("real bytes"),
        )
        .await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "digest_mismatch").await;
    assert!(problem["detail"].as_str().unwrap().contains("sha-256"));
    let response = server
        .send(
            server
                .client
                .put(&url)
                .header(
                    "x-content-blake3",
                    Digest32::blake3_of(b"other bytes").to_hex(),
                )
                .body("real bytes"),
        )
        .await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "digest_mismatch").await;
    assert!(problem["detail"].as_str().unwrap().contains("blake3"));
    // A right sha-256 does not excuse a wrong blake3.
    let response = server
        .send(
            server
                .client
                .put(&url)
                .header("content-digest", sha256_header(b"real bytes"))
                .header("x-content-blake3", Digest32::blake3_of(b"other").to_hex())
                .body("real bytes"),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "digest_mismatch").await;

    for (name, value) in [
        ("content-digest", "sha-256=abc"),
        ("content-digest", "sha-256=:c2hvcnQ=:"),
        ("x-content-blake3", "zz"),
    ] {
        let response = server
            .send(
                server
                    .client
                    .put(&url)
                    .header(name, value)
                    .body("real bytes"),
            )
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_digest").await;
    }

    assert_eq!(server.file_count(id).await, 0);
    assert_eq!(server.head().await, head);
    assert_eq!(
        files_under(&objects),
        stored_before,
        "no object and no staging file left behind"
    );

    // The same path still accepts the right bytes.
    let response = server
        .send(
            server
                .client
                .put(&url)
                .header("content-digest", sha256_header(b"real bytes"))
                .header(
                    "x-content-blake3",
                    Digest32::blake3_of(b"real bytes").to_hex(),
                )
                .body("real bytes"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    server.stop().await;
}

on_both_engines!(manifest_in_cbor_and_json);
async fn manifest_in_cbor_and_json() {
    let server = TestServer::start().await;
    let package = server
        .create_package("ci", "standard", json!({"run": 1}))
        .await;
    let id = package["id"].as_str().unwrap();
    server.put_file(id, "a.txt", b"alpha").await;
    assert_problem(
        server.get(&format!("/v1/packages/{id}/manifest")).await,
        StatusCode::NOT_FOUND,
        "manifest_not_found",
    )
    .await;
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
    let digest = finalized["manifest_digest"].as_str().unwrap().to_owned();
    let uuid = Uuid::parse_str(id).unwrap();

    let response = server.get(&format!("/v1/packages/{id}/manifest")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/cbor");
    let cbor = bytes_of(response).await;
    assert_eq!(
        format!("blake3:{}", Digest32::blake3_of(&cbor).to_hex()),
        digest
    );
    assert_eq!(
        cbor,
        server
            .registry
            .manifest_bytes(uuid, ManifestFormat::Cbor)
            .await
            .unwrap()
    );
    let response = server
        .get(&format!("/v1/packages/{id}/manifest?format=cbor"))
        .await;
    assert_eq!(bytes_of(response).await, cbor);

    let expected_json = server
        .registry
        .manifest_bytes(uuid, ManifestFormat::Json)
        .await
        .unwrap();
    let response = server
        .get(&format!("/v1/packages/{id}/manifest?format=json"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    let json_bytes = bytes_of(response).await;
    assert_eq!(json_bytes, expected_json);
    let manifest: Value = serde_json::from_slice(&json_bytes).unwrap();
    assert_eq!(manifest["package"]["id"], id);

    let response = server
        .send(
            server
                .client
                .get(server.url(&format!("/v1/packages/{id}/manifest")))
                .header("accept", "application/json"),
        )
        .await;
    assert_eq!(header(&response, "content-type"), "application/json");
    assert_eq!(bytes_of(response).await, expected_json);
    // An explicit format wins over Accept.
    let response = server
        .send(
            server
                .client
                .get(server.url(&format!("/v1/packages/{id}/manifest?format=cbor")))
                .header("accept", "application/json"),
        )
        .await;
    assert_eq!(header(&response, "content-type"), "application/cbor");

    assert_problem(
        server
            .get(&format!("/v1/packages/{id}/manifest?format=xml"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    assert_problem(
        server
            .get(&format!("/v1/packages/{}/manifest", Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    server.stop().await;
}

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

on_both_engines!(retention_extend_hold_release_history_and_sweep);
async fn retention_extend_hold_release_history_and_sweep() {
    let server = TestServer::start().await;
    let classes = json_of(server.get("/v1/retention-classes").await).await;
    let by_id: BTreeMap<&str, &Value> = classes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c))
        .collect();
    assert_eq!(
        *by_id["standard"],
        json!({"id": "standard", "default_duration": "90d", "default_duration_seconds": 90 * 86_400, "deletion_strategy": "delete"})
    );
    assert_eq!(by_id["permanent"]["default_duration"], Value::Null);
    assert_eq!(by_id["long-term"]["deletion_strategy"], "manual-review");

    let package = server.create_package("ci", "ephemeral", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let state = json_of(server.get(&format!("/v1/packages/{id}/retention")).await).await;
    assert_eq!(state["package_id"], id);
    assert_eq!(state["retention_class"], "ephemeral");
    assert_eq!(state["eligible_for_deletion"], false);
    assert_eq!(state["active_holds"], json!([]));
    let expires: Timestamp = state["expires_at"].as_str().unwrap().parse().unwrap();

    // Extend: strictly later only.
    let later = expires.plus_seconds(86_400).unwrap().to_string();
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/retention/extend"),
            &json!({"new_expires_at": later, "reason": "audit"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(response).await["expires_at"], later);
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/retention/extend"),
            &json!({"new_expires_at": expires.to_string(), "reason": "shorter"}),
        )
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "retention_refused",
    )
    .await;
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/retention/extend"),
            &json!({"new_expires_at": "next tuesday", "reason": "x"}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_json").await;

    // Hold, then the sweep after expiry skips the held package.
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds"),
            &json!({"reason": "litigation"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let hold_id = json_of(response).await["hold_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = json_of(server.get(&format!("/v1/packages/{id}/retention")).await).await;
    assert_eq!(state["active_holds"][0]["hold_id"], hold_id);
    assert_eq!(state["active_holds"][0]["reason"], "litigation");
    let response = server
        .post_json(&format!("/v1/packages/{id}/holds"), &json!({"reason": ""}))
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "retention_refused",
    )
    .await;

    server.clock.advance_days(30);
    let swept = json_of(
        server
            .send(server.client.post(server.url("/v1/retention/sweep")))
            .await,
    )
    .await;
    assert_eq!(swept, json!({"marked": []}));

    // Releasing the last hold after expiry makes the package eligible.
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds/{hold_id}/release"),
            &json!({"reason": "settled"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let state = json_of(response).await;
    assert_eq!(state["active_holds"], json!([]));
    assert_eq!(state["eligible_for_deletion"], true);
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds/{hold_id}/release"),
            &json!({"reason": "again"}),
        )
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "retention_refused",
    )
    .await;
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds/{}/release", Uuid::new_v4()),
            &json!({"reason": "x"}),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "hold_not_found").await;
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds/not-a-hold/release"),
            &json!({"reason": "x"}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_id").await;
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds"),
            &json!({"reason": "x", "extra": true}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_json").await;

    // The sweep marks an expired, unheld package.
    let other = server.create_package("ci", "ephemeral", Value::Null).await;
    server.clock.advance_days(30);
    let swept = json_of(
        server
            .send(server.client.post(server.url("/v1/retention/sweep")))
            .await,
    )
    .await;
    assert_eq!(swept, json!({"marked": [other["id"]]}));

    let history = json_of(
        server
            .get(&format!("/v1/packages/{id}/retention/history"))
            .await,
    )
    .await;
    let types: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "v1.retention.default_applied",
            "v1.retention.extended",
            "v1.retention.hold_applied",
            "v1.retention.hold_released",
            "v1.retention.deletion_eligible"
        ]
    );
    assert_eq!(history["items"][1]["payload"]["reason"], "audit");
    assert_problem(
        server
            .get(&format!(
                "/v1/packages/{}/retention/history",
                Uuid::new_v4()
            ))
            .await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    assert_problem(
        server
            .get(&format!("/v1/packages/{}/retention", Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    server.stop().await;
}

on_both_engines!(metadata_schemas_register_idempotently_and_validate);
async fn metadata_schemas_register_idempotently_and_validate() {
    let server = TestServer::start().await;
    let schema = json!({
        "type": "object",
        "properties": {"run": {"type": "integer"}},
        "required": ["run"]
    });
    let put = |body: &Value| {
        server.send(
            server
                .client
                .put(server.url("/v1/metadata-schemas/ci-run"))
                .json(body),
        )
    };
    let response = put(&schema).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = json_of(response).await;
    assert_eq!(created["slug"], "ci-run");
    let schema_id = created["id"].as_str().unwrap().to_owned();
    // The same schema (in another key order) again: 200, same id.
    let reordered =
        json!({"required": ["run"], "properties": {"run": {"type": "integer"}}, "type": "object"});
    let response = put(&reordered).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_of(response).await,
        json!({"id": schema_id, "slug": "ci-run"})
    );
    assert_problem(
        put(&json!({"type": "string"})).await,
        StatusCode::CONFLICT,
        "schema_conflict",
    )
    .await;
    let response = server
        .send(
            server
                .client
                .put(server.url("/v1/metadata-schemas/bad"))
                .json(&json!({"type": 12})),
        )
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "schema_invalid").await;
    let response = server
        .send(
            server
                .client
                .put(server.url("/v1/metadata-schemas/Bad%20Slug"))
                .json(&schema),
        )
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;

    let record = json_of(server.get("/v1/metadata-schemas/ci-run").await).await;
    assert_eq!(record["id"], schema_id);
    assert_eq!(record["slug"], "ci-run");
    assert_eq!(record["schema"], schema);
    assert!(record["created_at"].is_string());
    assert_problem(
        server.get("/v1/metadata-schemas/none").await,
        StatusCode::NOT_FOUND,
        "schema_not_found",
    )
    .await;

    let with_schema = |metadata: Value| json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard", "metadata": metadata, "metadata_schema": "ci-run"});
    let problem = assert_problem(
        server
            .post_json("/v1/packages", &with_schema(json!({"run": "x"})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "metadata_invalid",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("run"));
    let response = server
        .post_json("/v1/packages", &with_schema(json!({"run": 7})))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(json_of(response).await["metadata_schema_id"], schema_id);
    server.stop().await;
}

on_both_engines!(storage_verify_finds_corruption);
async fn storage_verify_finds_corruption() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let good = server.put_file(id, "good.txt", b"good bytes").await;
    let bad = server.put_file(id, "bad.txt", b"soon corrupted").await;

    let verify = |query: &str| {
        server.send(
            server
                .client
                .post(server.url(&format!("/v1/storage/verify{query}"))),
        )
    };
    let report = json_of(verify("").await).await;
    assert_eq!(report["checked"], 2);
    assert_eq!(report["failed"], 0);
    assert!(report["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["ok"] == true));

    let object = server
        .data_dir
        .join("objects")
        .join(bad["object_key"].as_str().unwrap());
    std::fs::write(&object, b"tampered bytes").expect("corrupt the object");
    let response = verify("?backend=local").await;
    assert_eq!(response.status(), StatusCode::OK);
    let report = json_of(response).await;
    assert_eq!(report["checked"], 2);
    assert_eq!(report["failed"], 1);
    let failed: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["file_id"], bad["id"]);
    assert!(failed[0]["failure"].is_string());
    let good_file = json_of(
        server
            .get(&format!("/v1/files/{}", good["id"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(good_file["storage_status"], "verified");

    assert_problem(
        verify("?backend=nope").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert_problem(
        verify("?bogus=1").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    server.stop().await;
}

on_both_engines!(health_reports_ok);
async fn health_reports_ok() {
    let server = TestServer::start().await;
    server.create_package("ci", "standard", Value::Null).await;
    let response = server.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    let health = json_of(response).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ok"], true);
    assert_eq!(health["database"]["ok"], true);
    assert_eq!(health["backends"][0]["name"], "local");
    assert_eq!(health["failed_locations"], 0);
    assert_eq!(health["head_sequence"], 2);
    server.stop().await;
}

on_both_engines!(health_is_503_when_the_database_is_gone);
async fn health_is_503_when_the_database_is_gone() {
    let server = TestServer::start().await;
    server.registry.close().await;
    let response = server.get("/health").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health = json_of(response).await;
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["database"]["ok"], false);
    server.stop().await;
}

on_both_engines!(metrics_count_requests_bytes_and_ingests);
async fn metrics_count_requests_bytes_and_ingests() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    server.put_file(id, "a.txt", b"0123456789").await;
    let response = server
        .send(
            server
                .client
                .post(server.url(&format!("/v1/packages/{id}/finalize"))),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let _ = json_of(server.get(&format!("/v1/packages/{id}")).await).await;
    let _ = server
        .get(&format!("/v1/packages/{}", Uuid::new_v4()))
        .await
        .bytes()
        .await;

    let response = server.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("text/plain"));
    let text = String::from_utf8(bytes_of(response).await).unwrap();
    for expected in [
        "# TYPE artifactstore_http_requests_total counter",
        "# TYPE artifactstore_http_request_duration_seconds histogram",
        "artifactstore_http_requests_total{method=\"GET\",route=\"/v1/packages/{id}\",status=\"200\"} 1",
        "artifactstore_http_requests_total{method=\"GET\",route=\"/v1/packages/{id}\",status=\"404\"} 1",
        "artifactstore_http_requests_total{method=\"PUT\",route=\"/v1/packages/{id}/files/{*relative_path}\",status=\"201\"} 1",
        "artifactstore_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/packages\",status=\"201\",le=\"+Inf\"} 1",
        "artifactstore_http_request_bytes_total{route=\"/v1/packages/{id}/files/{*relative_path}\"} 10",
        "artifactstore_packages_created_total 1",
        "artifactstore_files_ingested_total 1",
        "artifactstore_ingested_bytes_total 10",
        "artifactstore_packages_finalized_total 1",
        "artifactstore_event_streams_active 0",
    ] {
        assert!(text.contains(expected), "metrics lack {expected:?}:\n{text}");
    }
    let head = server.head().await;
    assert!(text.contains(&format!("artifactstore_event_log_head_sequence {head}")));
    assert!(text.contains("artifactstore_http_response_bytes_total{route=\"/v1/packages/{id}\"}"));
    server.stop().await;
}

/// The contract's routes, in OpenAPI path syntax, with their methods.
const CONTRACT_ROUTES: &[(&str, &[&str])] = &[
    ("/health", &["get"]),
    ("/metrics", &["get"]),
    ("/openapi.json", &["get"]),
    ("/v1/packages", &["get", "post"]),
    ("/v1/packages/{id}", &["get"]),
    (
        "/v1/packages/{id}/files/{relative_path}",
        &["get", "head", "put"],
    ),
    ("/v1/packages/{id}/files", &["get"]),
    ("/v1/files/{file_id}", &["get"]),
    ("/v1/files/{file_id}/content", &["get", "head"]),
    ("/v1/packages/{id}/finalize", &["post"]),
    ("/v1/packages/{id}/manifest", &["get"]),
    ("/v1/events", &["get"]),
    ("/v1/events/stream", &["get"]),
    ("/v1/retention-classes", &["get"]),
    ("/v1/packages/{id}/retention", &["get"]),
    ("/v1/packages/{id}/retention/extend", &["post"]),
    ("/v1/packages/{id}/holds", &["post"]),
    ("/v1/packages/{id}/holds/{hold_id}/release", &["post"]),
    ("/v1/packages/{id}/retention/history", &["get"]),
    ("/v1/retention/sweep", &["post"]),
    ("/v1/metadata-schemas/{slug}", &["get", "put"]),
    ("/v1/storage/verify", &["post"]),
];

on_both_engines!(openapi_lists_every_route);
async fn openapi_lists_every_route() {
    let server = TestServer::start().await;
    let response = server.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    let doc = json_of(response).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    // A typed OpenAPI 3.1 parser accepts the whole document…
    let spec = oas3::from_json(doc.to_string()).expect("a valid OpenAPI 3.1 document");
    assert_eq!(
        spec.paths.as_ref().map(|p| p.len()),
        Some(CONTRACT_ROUTES.len())
    );
    // …and every `$ref` points at a component that exists.
    fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        ("$ref", serde_json::Value::String(target)) => out.push(target.clone()),
                        _ => refs(item, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
            _ => {}
        }
    }
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
    }

    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| {
                    ["get", "put", "post", "delete", "head", "patch", "options"]
                        .contains(&k.as_str())
                })
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect();
    let contract: BTreeMap<String, BTreeSet<String>> = CONTRACT_ROUTES
        .iter()
        .map(|(path, methods)| {
            (
                path.to_string(),
                methods.iter().map(|m| m.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(documented, contract);

    // And the router answers every documented route: with sample
    // parameters no request lands on the route-not-found or
    // method-not-allowed fallbacks.
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let sample = Uuid::new_v4().to_string();
    for (path, methods) in CONTRACT_ROUTES {
        let concrete = path
            .replace("{id}", id)
            .replace("{file_id}", &sample)
            .replace("{hold_id}", &sample)
            .replace("{relative_path}", "some/file.txt")
            .replace("{slug}", "some-slug");
        for method in *methods {
            if *path == "/v1/events/stream" {
                let response = server.get(&concrete).await;
                assert_eq!(response.status(), StatusCode::OK);
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .send(
                    server
                        .client
                        .request(method.clone(), server.url(&concrete))
                        .body("{}"),
                )
                .await;
            let status = response.status();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {concrete}"
            );
            if status == StatusCode::NOT_FOUND && method != Method::HEAD {
                let body = json_of(response).await;
                assert_ne!(body["code"], "route_not_found", "{method} {concrete}");
            }
        }
    }

    // The other way round: on every documented path, a method the document
    // does not list is refused with 405, and `Allow` names exactly the
    // documented ones (HEAD comes with every GET, as HTTP has it), so the
    // router holds no operation the document lacks.
    for (path, methods) in &documented {
        let concrete = path
            .replace("{id}", id)
            .replace("{file_id}", &sample)
            .replace("{hold_id}", &sample)
            .replace("{relative_path}", "some/file.txt")
            .replace("{slug}", "some-slug");
        let mut allowed: BTreeSet<String> = methods.iter().map(|m| m.to_uppercase()).collect();
        if allowed.contains("GET") {
            allowed.insert("HEAD".to_owned());
        }
        for method in ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"] {
            if allowed.contains(method) {
                continue;
            }
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let response = server
                .send(server.client.request(method.clone(), server.url(&concrete)))
                .await;
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {concrete}"
            );
            let allow: BTreeSet<String> = header(&response, "allow")
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            assert_eq!(allow, allowed, "Allow of {concrete}");
        }
    }

    // The model's schemas have exactly the keys real answers have.
    let schemas = &doc["components"]["schemas"];
    let properties = |name: &str| -> BTreeSet<String> {
        schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {name}"))
            .keys()
            .cloned()
            .collect()
    };
    let keys = |value: &Value| -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    // The route walk above finalized `package`; use a fresh one.
    let open = server.create_package("ci", "standard", Value::Null).await;
    let id = open["id"].as_str().unwrap();
    let shown = json_of(server.get(&format!("/v1/packages/{id}")).await).await;
    assert_eq!(properties("Package"), keys(&shown));
    let file = server.put_file(id, "schema-check.txt", b"x").await;
    assert_eq!(properties("File"), keys(&file));
    let retention = json_of(server.get(&format!("/v1/packages/{id}/retention")).await).await;
    assert_eq!(properties("Retention"), keys(&retention));
    let events = json_of(server.get("/v1/events").await).await;
    assert_eq!(properties("Event"), keys(&events["items"][0]));
    let health = json_of(server.get("/health").await).await;
    assert_eq!(properties("Health"), keys(&health));
    let problem = json_of(server.get("/v1/packages/x").await).await;
    assert_eq!(properties("Problem"), keys(&problem));
    server.stop().await;
}

on_both_engines!(tokens_scopes_and_producer_limits_are_enforced_when_auth_is_required);
/// Auth required: tokens, scopes, producer limits, actors, public routes.
async fn tokens_scopes_and_producer_limits_are_enforced_when_auth_is_required() {
    use artifactstore_core::token::Scope;
    let server = TestServer::start_with(ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    })
    .await;
    let registry = &server.registry;
    let (_, admin) = registry
        .create_token("root", Scope::Admin, vec![], None, "setup")
        .await
        .unwrap();
    let (_, reader) = registry
        .create_token("auditor", Scope::Read, vec![], None, "setup")
        .await
        .unwrap();
    let (ci_record, ci) = registry
        .create_token("ci-bot", Scope::Write, vec!["ci".into()], None, "setup")
        .await
        .unwrap();
    let client = &server.client;
    let with = |method: Method, path: &str, token: Option<&str>| {
        let mut request = client.request(method, server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    };
    let package = |producer: &str| json!({"name": "n", "producer": producer, "subject": "s", "retention_class": "standard"});

    // Public routes need no token.
    for path in ["/health", "/metrics", "/openapi.json"] {
        assert_eq!(
            with(Method::GET, path, None).send().await.unwrap().status(),
            StatusCode::OK,
            "{path}"
        );
    }
    // No token, a malformed header, an unknown token: 401 problem+json.
    let missing = with(Method::GET, "/v1/packages", None)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&missing, "www-authenticate").starts_with("Bearer"));
    assert_eq!(json_of(missing).await["code"], "unauthorized");
    let basic = client
        .get(server.url("/v1/packages"))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let unknown = with(
        Method::GET,
        "/v1/packages",
        Some("ast_00000000000000000000000000000000_00"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    // Read scope reads, but may not write.
    assert_eq!(
        with(Method::GET, "/v1/packages", Some(&reader))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let refused = with(Method::POST, "/v1/packages", Some(&reader))
        .json(&package("ci"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(refused).await["code"], "forbidden");

    // A producer-limited write token writes its producer only; the actor is
    // the token's name, whatever header the client sends.
    let created = with(Method::POST, "/v1/packages", Some(&ci))
        .header("X-Artifactstore-Actor", "mallory")
        .json(&package("ci"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let ci_package = json_of(created).await["id"].as_str().unwrap().to_owned();
    let events = registry.fetch_events(0, 100).await.unwrap();
    let creation = events
        .iter()
        .find(|e| e.event_type == "v1.package.created")
        .unwrap();
    assert_eq!(creation.actor, "ci-bot");
    let other = with(Method::POST, "/v1/packages", Some(&ci))
        .json(&package("finance"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let foreign = with(Method::POST, "/v1/packages", Some(&admin))
        .json(&package("finance"))
        .send()
        .await
        .unwrap();
    let foreign = json_of(foreign).await["id"].as_str().unwrap().to_owned();
    let put = |package: &str, token: &str| {
        with(
            Method::PUT,
            &format!("/v1/packages/{package}/files/a.txt"),
            Some(token),
        )
        .body("x")
    };
    assert_eq!(
        put(&foreign, &ci).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(&ci_package, &ci).send().await.unwrap().status(),
        StatusCode::CREATED
    );
    let hold = with(
        Method::POST,
        &format!("/v1/packages/{foreign}/holds"),
        Some(&ci),
    )
    .json(&json!({"reason": "r"}));
    assert_eq!(hold.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let finalize = with(
        Method::POST,
        &format!("/v1/packages/{foreign}/finalize"),
        Some(&ci),
    );
    assert_eq!(
        finalize.send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // Administration needs admin.
    for (method, path) in [
        (Method::POST, "/v1/retention/sweep"),
        (Method::POST, "/v1/storage/verify"),
    ] {
        assert_eq!(
            with(method.clone(), path, Some(&ci))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            with(method, path, Some(&admin))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let schema = json!({"type": "object"});
    let by_writer = with(Method::PUT, "/v1/metadata-schemas/s1", Some(&ci))
        .json(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(by_writer.status(), StatusCode::FORBIDDEN);
    let by_admin = with(Method::PUT, "/v1/metadata-schemas/s1", Some(&admin))
        .json(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(by_admin.status(), StatusCode::CREATED);

    // A legal hold is placed by writers but released by admins only, even
    // on the writer's own producer's package (docs/security.md).
    let placed = with(
        Method::POST,
        &format!("/v1/packages/{ci_package}/holds"),
        Some(&ci),
    )
    .json(&json!({"reason": "litigation"}))
    .send()
    .await
    .unwrap();
    assert_eq!(placed.status(), StatusCode::CREATED);
    let hold_id = json_of(placed).await["hold_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let release = |token: &str| {
        with(
            Method::POST,
            &format!("/v1/packages/{ci_package}/holds/{hold_id}/release"),
            Some(token),
        )
        .json(&json!({"reason": "done"}))
    };
    let by_writer = release(&ci).send().await.unwrap();
    assert_problem(by_writer, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(
        release(&admin).send().await.unwrap().status(),
        StatusCode::OK
    );

    // Revocation takes effect at once.
    registry.revoke_token(&ci_record.id, "setup").await.unwrap();
    assert_eq!(
        with(Method::GET, "/v1/packages", Some(&ci))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

on_both_engines!(upload_limits_answer_413_429_and_drop_stalled_uploads);
/// Limits: a declared oversize body is refused before it is read, uploads
/// beyond the concurrency limit get 429, and a stalled upload is dropped.
async fn upload_limits_answer_413_429_and_drop_stalled_uploads() {
    let server = TestServer::start_configured(ServerOptions::default(), |config| {
        config.limits.max_file_bytes = 1024;
        config.limits.max_concurrent_uploads = 1;
        config.limits.upload_idle_timeout_seconds = 1;
    })
    .await;
    let created = server
        .post_json(
            "/v1/packages",
            &json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard"}),
        )
        .await;
    let package = json_of(created).await["id"].as_str().unwrap().to_owned();
    let url = server.url(&format!("/v1/packages/{package}/files/big.bin"));
    let head = server.registry.head_sequence().await.unwrap();

    let big = server
        .client
        .put(&url)
        .body(vec![0u8; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(big).await["code"], "payload_too_large");

    // One upload holds the only slot (it sends a little, then stalls)…
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let mut receiver = receiver;
    let stalled_body =
        reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)));
    let stalled = tokio::spawn({
        let client = server.client.clone();
        let url = server.url(&format!("/v1/packages/{package}/files/stalled.bin"));
        async move { client.put(url).body(stalled_body).send().await }
    });
    sender.send(Ok(vec![1u8; 10])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // …so a second one is refused at once with 429…
    let second = server
        .client
        .put(server.url(&format!("/v1/packages/{package}/files/second.bin")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&second, "retry-after"), "1");
    assert_eq!(json_of(second).await["code"], "too_many_uploads");
    // …and the stalled one is dropped after the idle timeout, freeing the slot.
    let stalled = tokio::time::timeout(Duration::from_secs(10), stalled)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stalled.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(stalled).await["code"], "upload_interrupted");
    drop(sender);
    let ok = server
        .client
        .put(server.url(&format!("/v1/packages/{package}/files/ok.bin")))
        .body("fine")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    assert_eq!(
        server.registry.head_sequence().await.unwrap(),
        head + 1,
        "only the good upload was recorded"
    );
}

on_both_engines!(slow_requests_time_out_with_408_and_pages_are_capped);
/// A request that takes longer than `request_timeout_seconds` gets 408,
/// and pages are capped at `limits.max_page`.
async fn slow_requests_time_out_with_408_and_pages_are_capped() {
    let server = TestServer::start_configured(ServerOptions::default(), |config| {
        config.limits.request_timeout_seconds = 1;
        config.limits.upload_idle_timeout_seconds = 30;
        config.limits.max_page = 2;
    })
    .await;
    for _ in 0..3 {
        server.create_package("ci", "standard", Value::Null).await;
    }
    let page = json_of(server.get("/v1/packages?limit=100").await).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(!page["next"].is_null());

    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body =
        reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)));
    let slow = server
        .client
        .put(server.url(&format!("/v1/packages/{id}/files/slow.bin")))
        .body(body)
        .send();
    sender.send(Ok(vec![1u8; 10])).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(json_of(response).await["code"], "request_timeout");
    drop(sender);
    assert_eq!(server.file_count(id).await, 0);
}

on_both_engines!(openapi_documents_the_layers_answers_on_every_route);
/// The answers the layers give (auth, deadline, body limit, an unreachable
/// database) are documented on every route they can come from, and the
/// upload route documents its own limits.
async fn openapi_documents_the_layers_answers_on_every_route() {
    let server = TestServer::start().await;
    let doc = json_of(server.get("/openapi.json").await).await;
    let public = ["/health", "/metrics", "/openapi.json"];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            let at = format!("{method} {path}");
            for status in ["408", "414", "431"] {
                assert!(has(status), "{at} lacks {status}");
            }
            let is_public = public.contains(&path.as_str());
            assert_eq!(has("401"), !is_public, "{at}: 401");
            // 403 everywhere: `host_not_allowed` reaches the public routes too.
            assert!(has("403"), "{at} lacks 403");
            assert!(is_public || has("503"), "{at} lacks 503");
            let takes_json = operation["requestBody"]["content"]
                .get("application/json")
                .is_some();
            if takes_json {
                assert!(has("413"), "{at} reads JSON but lacks 413");
                assert!(has("415"), "{at} reads JSON but lacks 415");
            }
            if responses.contains_key("401") {
                let problem = &responses["401"]["content"]["application/problem+json"];
                assert_eq!(
                    problem["schema"]["$ref"], "#/components/schemas/Problem",
                    "{at}"
                );
            }
            checked += 1;
        }
    }
    let operations: usize = CONTRACT_ROUTES
        .iter()
        .map(|(_, methods)| methods.len())
        .sum();
    assert_eq!(checked, operations);
    let upload = &doc["paths"]["/v1/packages/{id}/files/{relative_path}"]["put"]["responses"];
    for status in ["413", "429", "507"] {
        assert!(upload.get(status).is_some(), "PUT file lacks {status}");
    }
    let create = &doc["paths"]["/v1/packages"]["post"]["responses"];
    assert!(create.get("413").is_some());
    server.stop().await;
}

on_both_engines!(stored_active_content_is_never_served_as_a_page);
/// A stored HTML or SVG file must never act as a page of the API's origin:
/// downloads are attachments, never sniffed, sandboxed; inline display is
/// granted to safe types only, and only when asked for.
async fn stored_active_content_is_never_served_as_a_page() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", json!({})).await;
    let id = package["id"].as_str().unwrap();
    let upload = |path: &'static str, media: &'static str, body: &'static str| {
        server.send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/{path}")))
                .header("content-type", media)
                .body(body),
        )
    };
    let html = upload(
        "report/index.html",
        "text/html",
        "<script>fetch('/v1/retention/sweep',{method:'POST'})</script>",
    )
    .await;
    assert_eq!(html.status(), StatusCode::CREATED);
    let html_id = json_of(html).await["id"].as_str().unwrap().to_owned();
    assert_eq!(
        upload("logo.svg", "image/svg+xml", "<svg onload='alert(1)'/>")
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        upload("notes.txt", "text/plain; charset=utf-8", "plain")
            .await
            .status(),
        StatusCode::CREATED
    );

    for (target, inline_asked) in [
        (format!("/v1/files/{html_id}/content"), false),
        (
            format!("/v1/files/{html_id}/content?disposition=inline"),
            true,
        ),
        (format!("/v1/packages/{id}/files/report/index.html"), false),
        (
            format!("/v1/packages/{id}/files/logo.svg?disposition=inline"),
            true,
        ),
    ] {
        let response = server.get(&target).await;
        assert_eq!(response.status(), StatusCode::OK, "{target}");
        let disposition = header(&response, "content-disposition");
        assert!(
            disposition.starts_with("attachment;"),
            "{target} (inline asked: {inline_asked}): {disposition}"
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let csp = header(&response, "content-security-policy");
        assert!(
            csp.contains("sandbox") && csp.contains("default-src 'none'"),
            "{csp}"
        );
    }
    let named = server
        .get(&format!("/v1/packages/{id}/files/report/index.html"))
        .await;
    assert!(header(&named, "content-disposition").contains("filename=\"index.html\""));

    // A safe type may be shown inline when asked for, still sandboxed.
    let shown = server
        .get(&format!(
            "/v1/packages/{id}/files/notes.txt?disposition=inline"
        ))
        .await;
    assert!(header(&shown, "content-disposition").starts_with("inline;"));
    assert!(header(&shown, "content-security-policy").contains("sandbox"));
    let saved = server
        .get(&format!("/v1/packages/{id}/files/notes.txt"))
        .await;
    assert!(header(&saved, "content-disposition").starts_with("attachment;"));
    // Every answer says nosniff, problems included.
    let missing = server.get("/v1/packages/not-a-uuid").await;
    assert_eq!(header(&missing, "x-content-type-options"), "nosniff");
    let bad = server
        .get(&format!(
            "/v1/packages/{id}/files/notes.txt?disposition=page"
        ))
        .await;
    assert_problem(bad, StatusCode::BAD_REQUEST, "invalid_query").await;
}

on_both_engines!(cross_site_requests_are_refused_when_auth_is_off);
/// Without auth, every caller is an admin: a page of another site (a form,
/// a `fetch`) or a DNS-rebound name must not be able to drive the server.
async fn cross_site_requests_are_refused_when_auth_is_off() {
    let server = TestServer::start_with(ServerOptions {
        allowed_hosts: vec!["artifacts.internal".into()],
        ..ServerOptions::default()
    })
    .await;
    let head = server.head().await;
    let package =
        json!({"name": "n", "producer": "ci", "subject": "s", "retention_class": "standard"});

    // DNS rebinding: the browser sends the attacker's name as Host.
    let rebound = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("host", "attacker.example:8000")
                .json(&package),
        )
        .await;
    assert_problem(rebound, StatusCode::FORBIDDEN, "host_not_allowed").await;
    let rebound_read = server
        .send(
            server
                .client
                .get(server.url("/v1/packages"))
                .header("host", "attacker.example"),
        )
        .await;
    assert_problem(rebound_read, StatusCode::FORBIDDEN, "host_not_allowed").await;

    // A foreign page posting: refused by its Origin, or by Sec-Fetch-Site,
    // also where no body is needed (sweep) and where it is not JSON.
    let from_page = |path: &str| {
        server
            .client
            .post(server.url(path))
            .header("origin", "https://attacker.example")
    };
    let sweep = server.send(from_page("/v1/retention/sweep")).await;
    assert_problem(sweep, StatusCode::FORBIDDEN, "cross_origin_refused").await;
    let created = server.send(from_page("/v1/packages").json(&package)).await;
    assert_problem(created, StatusCode::FORBIDDEN, "cross_origin_refused").await;
    let sandboxed = server
        .send(
            server
                .client
                .post(server.url("/v1/retention/sweep"))
                .header("origin", "null"),
        )
        .await;
    assert_problem(sandboxed, StatusCode::FORBIDDEN, "cross_origin_refused").await;
    let cross_site = server
        .send(
            server
                .client
                .post(server.url("/v1/retention/sweep"))
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_problem(cross_site, StatusCode::FORBIDDEN, "cross_origin_refused").await;
    let plain_text = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("content-type", "text/plain")
                .body(package.to_string()),
        )
        .await;
    assert_problem(
        plain_text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(
        server.head().await,
        head,
        "a refused request changed the log"
    );

    // Our own names and origins still work: loopback, and the listed host.
    let own_origin = format!("http://{}", server.addr);
    for (host, origin) in [
        (None, Some(own_origin.as_str())),
        (Some("localhost:8000"), Some("http://localhost:8000")),
        (
            Some("artifacts.internal"),
            Some("https://artifacts.internal"),
        ),
        (None, None),
    ] {
        let mut request = server
            .client
            .post(server.url("/v1/packages"))
            .json(&package);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        assert_eq!(
            server.send(request).await.status(),
            StatusCode::CREATED,
            "{host:?} {origin:?}"
        );
    }

    // With auth required, tokens are not ambient: the checks do not apply.
    let guarded = TestServer::start_with(ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    })
    .await;
    let (_, token) = guarded
        .registry
        .create_token(
            "admin",
            artifactstore_core::token::Scope::Admin,
            vec![],
            None,
            "setup",
        )
        .await
        .unwrap();
    let proxied = guarded
        .send(
            guarded
                .client
                .post(guarded.url("/v1/packages"))
                .bearer_auth(&token)
                .header("host", "artifacts.example.com")
                .header("origin", "https://ui.example.com")
                .json(&package),
        )
        .await;
    assert_eq!(proxied.status(), StatusCode::CREATED);
}

on_both_engines!(trickling_uploads_hold_no_more_than_their_share_and_are_dropped);
/// Trickling uploads: one caller cannot hold more than its share of the
/// upload slots, and an upload slower than the least rate is dropped.
async fn trickling_uploads_hold_no_more_than_their_share_and_are_dropped() {
    let server = TestServer::start_configured(ServerOptions::default(), |config| {
        config.limits.max_concurrent_uploads = 4;
        config.limits.max_uploads_per_caller = Some(2);
        config.limits.upload_idle_timeout_seconds = 30;
        config.limits.min_upload_bytes_per_second = 100;
        config.limits.upload_rate_window_seconds = 1;
    })
    .await;
    let package = server.create_package("ci", "standard", json!({})).await;
    let id = package["id"].as_str().unwrap().to_owned();
    let head = server.head().await;

    // Alice starts two uploads that send a byte every 300 ms.
    let mut trickles = Vec::new();
    for i in 0..2 {
        let body = reqwest::Body::wrap_stream(futures::stream::unfold(0u32, |n| async move {
            (n < 1000).then_some(())?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            Some((Ok::<_, std::io::Error>(vec![b'x']), n + 1))
        }));
        let request = server
            .client
            .put(server.url(&format!("/v1/packages/{id}/files/slow-{i}.bin")))
            .header("x-artifactstore-actor", "alice")
            .body(body);
        trickles.push(tokio::spawn(request.send()));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Her third is refused: she holds her share. Bob still gets a slot.
    let third = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/third.bin")))
                .header("x-artifactstore-actor", "alice")
                .body("x"),
        )
        .await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let detail = assert_problem(third, StatusCode::TOO_MANY_REQUESTS, "too_many_uploads").await;
    assert!(
        detail["detail"].as_str().unwrap().contains("alice"),
        "{detail}"
    );
    let bob = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/bob.bin")))
                .header("x-artifactstore-actor", "bob")
                .body("fast"),
        )
        .await;
    assert_eq!(bob.status(), StatusCode::CREATED);

    // The trickles are cut within a few windows, storing nothing.
    for trickle in trickles {
        let answer = tokio::time::timeout(Duration::from_secs(10), trickle)
            .await
            .expect("a trickling upload was not cut")
            .unwrap()
            .unwrap();
        let problem = assert_problem(answer, StatusCode::BAD_REQUEST, "upload_interrupted").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("bytes/s"),
            "{problem}"
        );
    }
    assert_eq!(
        server.head().await,
        head + 1,
        "only bob's file was recorded"
    );
    // Alice's slots are free again.
    let again = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/again.bin")))
                .header("x-artifactstore-actor", "alice")
                .body("x"),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
}
