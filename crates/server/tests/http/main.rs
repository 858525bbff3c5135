//! End-to-end tests of the HTTP API: a real server on 127.0.0.1:0 started
//! with `serve`, a real HTTP client, a fresh registry per test, on each
//! engine (SQLite, and a fresh PostgreSQL database). One module an area of
//! the API; what they share is here.

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

    /// A new package with one file: the log grows by a few events.
    async fn put_file_in_new_package(&self) {
        let package = self.create_package("ci", "standard", Value::Null).await;
        self.put_file(package["id"].as_str().unwrap(), "more.txt", b"more")
            .await;
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

mod browser;
mod events;
mod files;
mod lifecycle;
mod log;
mod openapi;
mod operations;
mod packages;
mod retention;
mod schemas;
mod security;
mod ui;
mod uploads;
