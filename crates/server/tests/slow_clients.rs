//! Slow and malformed clients, below the handlers: a connection that never
//! finishes its headers is closed in bounded time, connections are capped,
//! `/health` keeps answering, and hyper's own refusals are problem+json.

use std::time::{Duration, Instant};

use artifactstore_registry::{Config, Registry};
use artifactstore_server::{serve, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server on a fresh SQLite registry; its address, data directory and
/// registry.
struct Started {
    addr: std::net::SocketAddr,
    registry: Registry,
    _dir: tempfile::TempDir,
}

async fn start(options: ServerOptions) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let registry = Registry::open(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        registry.clone(),
        options,
        std::future::pending(),
    ));
    Started {
        addr,
        registry,
        _dir: dir,
    }
}

/// Sends `request` and reads the whole answer (the server closes).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("no answer in 20 s")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn health(addr: std::net::SocketAddr) -> String {
    exchange(
        addr,
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_half_sent_connections_are_closed_and_health_still_answers() {
    let Started { addr, _dir, .. } = start(ServerOptions {
        max_connections: 32,
        header_read_timeout: Duration::from_secs(1),
        ..ServerOptions::default()
    })
    .await;
    // Six times the cap of connections that start a request and stop.
    let mut idle = Vec::new();
    for _ in 0..192 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes())
            .await
            .unwrap();
        idle.push(stream);
    }
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(30), health(addr))
        .await
        .expect("/health did not answer while slow clients held connections");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    println!(
        "/health answered after {:?} behind 192 idle connections",
        started.elapsed()
    );

    // Every idle connection was closed by the server, none answered.
    for mut stream in idle {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest))
            .await
            .expect("a connection that never sent its headers stayed open");
        assert!(read.is_err() || rest.is_empty() || !rest.starts_with(b"HTTP/1.1 2"));
    }
}

#[tokio::test]
async fn a_connection_trickling_its_headers_is_cut_at_the_header_timeout() {
    let Started { addr, _dir, .. } = start(ServerOptions {
        header_read_timeout: Duration::from_secs(1),
        ..ServerOptions::default()
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut closed_after = None;
    for byte in request.bytes() {
        if stream.write_all(&[byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after =
        closed_after.expect("a client sending a byte every 200 ms kept its connection");
    assert!(
        closed_after < Duration::from_secs(5),
        "closed after {closed_after:?}"
    );
}

#[tokio::test]
async fn hypers_own_refusals_are_problems_with_codes() {
    let Started { addr, _dir, .. } = start(ServerOptions::default()).await;
    let problem = |answer: &str| -> serde_json::Value {
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{answer}"
        );
        serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap()
    };
    let garbage = exchange(addr, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    assert_eq!(problem(&garbage)["code"], "malformed_request");

    let bad_header = exchange(
        addr,
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    )
    .await;
    assert!(bad_header.starts_with("HTTP/1.1 400"), "{bad_header}");
    assert_eq!(problem(&bad_header)["code"], "malformed_request");

    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: {addr}\r\n\r\n",
        "a".repeat(70_000)
    );
    let answer = exchange(addr, long_uri.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 414"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(problem(&answer)["code"], "uri_too_long");

    let mut many = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = exchange(addr, many.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(problem(&answer)["code"], "headers_too_large");

    // The server is unharmed, and its own answers are left as they are.
    assert!(health(addr).await.starts_with("HTTP/1.1 200"));
    let unknown = exchange(
        addr,
        format!("GET /v1/nothing HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(problem(&unknown)["code"], "route_not_found");
}

/// The header timeout bounds reading a request's headers, not a response:
/// an event stream outlives it.
#[tokio::test]
async fn an_event_stream_outlives_the_header_timeout() {
    let Started {
        addr,
        registry,
        _dir,
    } = start(ServerOptions {
        header_read_timeout: Duration::from_secs(1),
        keep_alive: Duration::from_millis(300),
        ..ServerOptions::default()
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /v1/events/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let new = artifactstore_registry::NewPackage {
        name: "late".into(),
        producer: "ci".into(),
        subject: "s".into(),
        retention_class: "standard".into(),
        metadata: serde_json::Value::Null,
        metadata_schema: None,
    };
    registry.create_package(new, "tester").await.unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains("v1.package.created") {
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut chunk))
            .await
            .expect("the event never arrived")
            .unwrap();
        assert!(
            n > 0,
            "the stream was closed: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&chunk[..n]);
    }
}

/// Reads one answer (headers and a `content-length` body) from `stream`,
/// leaving the connection open.
async fn one_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse().unwrap());
                if body.len() >= length {
                    return text;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("no answer in 20 s")
}

/// Sends `request` on `stream` and reads its answer, which must have
/// `status` and keep the connection open.
async fn kept(stream: &mut TcpStream, request: String, status: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = one_answer(stream).await;
    assert!(answer.starts_with(status), "{request}: {answer}");
    assert!(!answer.contains("\r\nconnection: close\r\n"), "{answer}");
    answer
}

/// An upload refused before its body is read ends its connection, saying
/// so (`Connection: close`), so that no client sends its next request
/// into a socket the server is closing; an upload read to its end keeps
/// the connection for the next request.
#[tokio::test]
async fn an_answer_given_before_the_body_is_read_closes_the_connection() {
    let Started {
        addr,
        registry,
        _dir,
    } = start(ServerOptions::default()).await;
    let new = artifactstore_registry::NewPackage {
        name: "kept".into(),
        producer: "ci".into(),
        subject: "s".into(),
        retention_class: "standard".into(),
        metadata: serde_json::Value::Null,
        metadata_schema: None,
    };
    let package = registry.create_package(new, "tester").await.unwrap();

    // Refused at once (no such package), a megabyte announced, 5 bytes sent.
    let refused = exchange(
        addr,
        format!(
            "PUT /v1/packages/00000000-0000-4000-8000-000000000000/files/a.bin HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000000\r\n\r\nhello"
        )
        .as_bytes(),
    )
    .await
    .to_ascii_lowercase();
    assert!(refused.starts_with("http/1.1 404"), "{refused}");
    assert!(refused.contains("\r\nconnection: close\r\n"), "{refused}");

    // Read to its end: answered, and the connection serves the next
    // request. Each answer must keep the connection.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let id = &package.id;
    for path in ["one.txt", "two.txt"] {
        kept(
            &mut stream,
            format!("PUT /v1/packages/{id}/files/{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 5\r\n\r\nhello"),
            "http/1.1 201",
        )
        .await;
    }
    // A chunked body.
    kept(
        &mut stream,
        format!("PUT /v1/packages/{id}/files/chunked.txt HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
        "http/1.1 201",
    )
    .await;
    // A tus PATCH, whose body is read in a task of its own.
    let created = kept(
        &mut stream,
        format!("POST /v1/packages/{id}/uploads HTTP/1.1\r\nHost: {addr}\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 5\r\nUpload-Metadata: relative_path dC5iaW4=\r\nContent-Length: 0\r\n\r\n"),
        "http/1.1 201",
    )
    .await;
    let location = created
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .expect("no Location")
        .trim()
        .to_owned();
    kept(
        &mut stream,
        format!("PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 5\r\n\r\nhello"),
        "http/1.1 204",
    )
    .await;
    kept(
        &mut stream,
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
        "http/1.1 200",
    )
    .await;
}
