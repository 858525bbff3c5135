//! The bad-input corpus: hostile and malformed requests across every
//! endpoint. Each gets the expected 4xx and stable `code`; none changes the
//! event log or the stored objects; the server keeps serving throughout.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use artifactstore_core::token::Scope;
use artifactstore_core::{Clock, SystemClock, Timestamp};
use artifactstore_registry::{Config, Registry};
use artifactstore_server::{serve, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct ShiftedClock(AtomicI64);

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        let now = SystemClock.now();
        now.plus_seconds(self.0.load(Ordering::SeqCst))
            .unwrap_or(now)
    }
}

/// One raw HTTP/1.1 exchange; `declared` overrides Content-Length (to send
/// a truncated body). Returns the status and the problem's `code`.
async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    declared: Option<usize>,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        declared.unwrap_or(body.len())
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (a 415, a 413) and close before it reads the
    // body: the answer is what is checked, not that the body went out.
    let _ = stream.write_all(body).await;
    if declared.is_some() {
        // Half-close: a truncated body ends here, as a client that died
        // would (only then: a server may close on a half-closed socket).
        stream.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("answer timed out")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let code = serde_json::from_str::<serde_json::Value>(body.trim())
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

fn objects(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out.sort();
    out
}

struct Case {
    name: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    declared: Option<usize>,
    status: u16,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: &'static str,
    target: impl Into<String>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        target: target.into(),
        headers: Vec::new(),
        body: Vec::new(),
        declared: None,
        status,
        code,
    }
}

impl Case {
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn declared(mut self, length: usize) -> Self {
        self.declared = Some(length);
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_input_corpus_gets_clear_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftedClock::default());
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let registry = Registry::builder(config)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let (_, admin) = registry
        .create_token("root", Scope::Admin, vec![], None, "setup")
        .await
        .unwrap();
    let (_, reader) = registry
        .create_token("reader", Scope::Read, vec![], None, "setup")
        .await
        .unwrap();
    let (revoked_record, revoked) = registry
        .create_token("gone", Scope::Admin, vec![], None, "setup")
        .await
        .unwrap();
    registry
        .revoke_token(&revoked_record.id, "setup")
        .await
        .unwrap();
    let soon = clock.now().plus_seconds(60).unwrap();
    let (_, expired) = registry
        .create_token("old", Scope::Admin, vec![], Some(soon), "setup")
        .await
        .unwrap();
    clock.0.store(120, Ordering::SeqCst);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    };
    tokio::spawn(serve(
        listener,
        registry.clone(),
        options,
        std::future::pending(),
    ));

    // Fixtures: an open package with a file, a finalized one, a schema.
    let auth = format!("Bearer {admin}");
    let package = |name: &str| {
        format!(r#"{{"name":"{name}","producer":"ci","subject":"s","retention_class":"standard"}}"#)
    };
    let open_id = {
        let new = artifactstore_registry::NewPackage {
            name: "open".into(),
            producer: "ci".into(),
            subject: "s".into(),
            retention_class: "standard".into(),
            metadata: serde_json::Value::Null,
            metadata_schema: None,
        };
        let open = registry.create_package(new.clone(), "setup").await.unwrap();
        let done = registry.create_package(new, "setup").await.unwrap();
        let stream =
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"hello"))]);
        registry
            .ingest_file(
                open.id.parse().unwrap(),
                "a.txt",
                "text/plain",
                stream,
                Default::default(),
                "setup",
            )
            .await
            .unwrap();
        registry
            .finalize_package(done.id.parse().unwrap(), "setup")
            .await
            .unwrap();
        (open.id, done.id)
    };
    let (open, done) = open_id;
    registry
        .register_schema(
            "strict",
            &serde_json::json!({"type": "object", "required": ["run"]}),
            "setup",
        )
        .await
        .unwrap();
    let file_id = registry.list_files(open.parse().unwrap()).await.unwrap()[0]
        .id
        .clone();
    let unknown = uuid::Uuid::new_v4();
    let files = format!("/v1/packages/{open}/files");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let long_path = "a/".repeat(1000) + "b";
    let wrong_sha = format!("sha-256=:{}:", "A".repeat(43) + "=");

    let cases = vec![
        // Path traversal and hostile paths, in every encoding.
        case("dotdot", "PUT", format!("{files}/a/../b"), 400, "invalid_path"),
        case("encoded dotdot", "PUT", format!("{files}/%2e%2e/b"), 400, "invalid_path"),
        case("encoded inner dotdot", "PUT", format!("{files}/a/%2E%2E/b"), 400, "invalid_path"),
        case("encoded slash dotdot", "PUT", format!("{files}/..%2Fb"), 400, "invalid_path"),
        case("all encoded", "PUT", format!("{files}/a%2F..%2Fb"), 400, "invalid_path"),
        case("absolute", "PUT", format!("{files}/%2Fetc%2Fpasswd"), 400, "invalid_path"),
        case("backslash", "PUT", format!("{files}/a%5Cb"), 400, "invalid_path"),
        case("backslash dotdot", "PUT", format!("{files}/..%5C..%5Cb"), 400, "invalid_path"),
        case("nul", "PUT", format!("{files}/a%00b"), 400, "invalid_path"),
        case("newline", "PUT", format!("{files}/a%0Ab"), 400, "invalid_path"),
        case("delete char", "PUT", format!("{files}/a%7Fb"), 400, "invalid_path"),
        case("overlong utf-8 dots", "PUT", format!("{files}/%C0%AE%C0%AE/b"), 400, "invalid_path"),
        case("invalid utf-8", "PUT", format!("{files}/%FF%FE"), 400, "invalid_path"),
        case("empty segment", "PUT", format!("{files}/a//b"), 400, "invalid_path"),
        case("dot segment", "PUT", format!("{files}/./a"), 400, "invalid_path"),
        case("trailing slash", "PUT", format!("{files}/a/"), 400, "invalid_path"),
        case("over-long path", "PUT", format!("{files}/{long_path}"), 400, "invalid_path"),
        case("traversal on read", "GET", format!("{files}/..%2F..%2Fetc%2Fpasswd"), 400, "invalid_path"),
        // Ids.
        case("bad package id", "GET", "/v1/packages/not-a-uuid", 400, "invalid_id"),
        case("bad file id", "GET", "/v1/files/123/content", 400, "invalid_id"),
        case("unknown file", "GET", format!("/v1/files/{unknown}"), 404, "file_not_found"),
        case("unknown package", "GET", format!("/v1/packages/{unknown}"), 404, "package_not_found"),
        case("bad id on finalize", "POST", "/v1/packages/zzz/finalize", 400, "invalid_id"),
        case("bad hold id", "POST", format!("/v1/packages/{open}/holds/nope/release"), 400, "invalid_id")
            .body(r#"{"reason":"r"}"#),
        case("sql in id", "GET", "/v1/packages/1'%20OR%20'1'='1", 400, "invalid_id"),
        // JSON bodies.
        case("truncated json", "POST", "/v1/packages", 400, "invalid_json").body(r#"{"name":"#),
        case("huge json", "POST", "/v1/packages", 413, "payload_too_large").body(huge),
        case("wrong type", "POST", "/v1/packages", 400, "invalid_json")
            .body(r#"{"name":5,"producer":"ci","subject":"s","retention_class":"standard"}"#),
        case("unknown field", "POST", "/v1/packages", 400, "invalid_json")
            .body(r#"{"name":"n","producer":"ci","subject":"s","retention_class":"standard","owner":"me"}"#),
        case("missing field", "POST", "/v1/packages", 400, "invalid_json").body(r#"{"name":"n"}"#),
        case("invalid utf-8 json", "POST", "/v1/packages", 400, "invalid_json").body(b"{\"name\":\"\xff\"}".to_vec()),
        case("array body", "POST", "/v1/packages", 400, "invalid_json").body("[]"),
        case("deep nesting", "POST", "/v1/packages", 400, "invalid_json").body(deep),
        case("empty body", "POST", "/v1/packages", 400, "invalid_json"),
        case("decimal metadata", "POST", "/v1/packages", 422, "metadata_invalid").body(
            r#"{"name":"n","producer":"ci","subject":"s","retention_class":"standard","metadata":{"x":1.5}}"#,
        ),
        case("metadata not an object", "POST", "/v1/packages", 422, "metadata_invalid").body(
            r#"{"name":"n","producer":"ci","subject":"s","retention_class":"standard","metadata":[1]}"#,
        ),
        case("nul in metadata", "POST", "/v1/packages", 422, "metadata_invalid").body(
            r#"{"name":"n","producer":"ci","subject":"s","retention_class":"standard","metadata":{"k":"a\u0000"}}"#,
        ),
        case("unknown class", "POST", "/v1/packages", 422, "unknown_retention_class").body(
            r#"{"name":"n","producer":"ci","subject":"s","retention_class":"forever"}"#,
        ),
        case("empty name", "POST", "/v1/packages", 422, "invalid_input").body(
            r#"{"name":" ","producer":"ci","subject":"s","retention_class":"standard"}"#,
        ),
        case("control char in name", "POST", "/v1/packages", 422, "invalid_input").body(
            r#"{"name":"a\u0007b","producer":"ci","subject":"s","retention_class":"standard"}"#,
        ),
        case("schema-invalid metadata", "POST", "/v1/packages", 422, "metadata_invalid").body(
            r#"{"name":"n","producer":"ci","subject":"s","retention_class":"standard","metadata_schema":"strict"}"#,
        ),
        case("unknown schema", "POST", "/v1/packages", 422, "metadata_invalid").body(
            r#"{"name":"n","producer":"ci","subject":"s","retention_class":"standard","metadata_schema":"nope"}"#,
        ),
        // Retention.
        case("extend earlier", "POST", format!("/v1/packages/{open}/retention/extend"), 422, "retention_refused")
            .body(r#"{"new_expires_at":"2000-01-01T00:00:00Z","reason":"r"}"#),
        case("extend bad time", "POST", format!("/v1/packages/{open}/retention/extend"), 400, "invalid_json")
            .body(r#"{"new_expires_at":"yesterday","reason":"r"}"#),
        case("extend empty reason", "POST", format!("/v1/packages/{open}/retention/extend"), 422, "retention_refused")
            .body(r#"{"new_expires_at":"2999-01-01T00:00:00Z","reason":"  "}"#),
        case("hold without reason", "POST", format!("/v1/packages/{open}/holds"), 400, "invalid_json").body("{}"),
        case("release unknown hold", "POST", format!("/v1/packages/{open}/holds/{unknown}/release"), 404, "hold_not_found")
            .body(r#"{"reason":"r"}"#),
        case("extend unknown package", "POST", format!("/v1/packages/{unknown}/retention/extend"), 404, "package_not_found")
            .body(r#"{"new_expires_at":"2999-01-01T00:00:00Z","reason":"r"}"#),
        // Schemas.
        case("bad slug", "PUT", "/v1/metadata-schemas/Bad%20Slug", 422, "invalid_input").body("{}"),
        case("invalid schema", "PUT", "/v1/metadata-schemas/broken", 422, "schema_invalid").body(r#"{"type":"nothing"}"#),
        case("schema not json", "PUT", "/v1/metadata-schemas/broken", 400, "invalid_json").body("not json"),
        case("schema conflict", "PUT", "/v1/metadata-schemas/strict", 409, "schema_conflict").body(r#"{"type":"object"}"#),
        // Ranges.
        case("range past the end", "GET", format!("/v1/files/{file_id}/content"), 416, "range_not_satisfiable")
            .header("Range", "bytes=100-200"),
        case("suffix of nothing", "GET", format!("/v1/files/{file_id}/content"), 416, "range_not_satisfiable")
            .header("Range", "bytes=-0"),
        case("malformed range is ignored", "GET", format!("/v1/files/{file_id}/content"), 200, "")
            .header("Range", "bytes=abc"),
        // Digests and bodies.
        case("wrong sha-256", "PUT", format!("{files}/d1.txt"), 400, "digest_mismatch")
            .header("Content-Digest", wrong_sha)
            .body("payload"),
        case("malformed content-digest", "PUT", format!("{files}/d2.txt"), 400, "invalid_digest")
            .header("Content-Digest", "sha-256=:not base64!:")
            .body("payload"),
        case("malformed blake3", "PUT", format!("{files}/d3.txt"), 400, "invalid_digest")
            .header("X-Content-Blake3", "xyz")
            .body("payload"),
        case("wrong blake3", "PUT", format!("{files}/d4.txt"), 400, "digest_mismatch")
            .header("X-Content-Blake3", "0".repeat(64))
            .body("payload"),
        case("truncated body", "PUT", format!("{files}/t.txt"), 400, "upload_interrupted")
            .declared(100)
            .body("only ten b"),
        // States and duplicates.
        case("duplicate path", "PUT", format!("{files}/a.txt"), 409, "duplicate_relative_path").body("again"),
        case("file under a file", "PUT", format!("{files}/a.txt/b"), 409, "path_conflict").body("x"),
        case("same name in another case", "PUT", format!("{files}/A.TXT"), 409, "path_conflict").body("x"),
        case("zero-width space in a path", "PUT", format!("{files}/a%E2%80%8B.txt"), 400, "invalid_path").body("x"),
        case("right-to-left override in a path", "PUT", format!("{files}/x%E2%80%AEtxt.exe"), 400, "invalid_path").body("x"),
        case("write after finalize", "PUT", format!("/v1/packages/{done}/files/x"), 409, "illegal_package_state").body("x"),
        case("finalize twice", "POST", format!("/v1/packages/{done}/finalize"), 409, "illegal_package_state"),
        case("manifest of an open package", "GET", format!("/v1/packages/{open}/manifest"), 404, "manifest_not_found"),
        case("write to unknown package", "PUT", format!("/v1/packages/{unknown}/files/x"), 404, "package_not_found").body("x"),
        // Queries and headers.
        case("non-numeric limit", "GET", "/v1/packages?limit=abc", 400, "invalid_query"),
        case("zero limit", "GET", "/v1/packages?limit=0", 400, "invalid_query"),
        case("unknown filter", "GET", "/v1/packages?colour=red", 400, "invalid_query"),
        case("bad since", "GET", "/v1/events?since=abc", 400, "invalid_query"),
        case("nul filter", "GET", "/v1/packages?producer=%00", 422, "invalid_input"),
        case(
            "too many metadata filters",
            "GET",
            format!("/v1/packages?{}", (0..17).map(|i| format!("metadata.k{i}=v")).collect::<Vec<_>>().join("&")),
            422,
            "invalid_input",
        ),
        case("bad last-event-id", "GET", "/v1/events/stream", 400, "invalid_header").header("Last-Event-ID", "abc"),
        case("unknown verify backend", "POST", "/v1/storage/verify?backend=nope", 422, "invalid_input"),
        // Leniency that would hide client bugs (issue 18, item 12).
        case("negative since", "GET", "/v1/events?since=-5", 400, "invalid_query"),
        case("negative since on the stream", "GET", "/v1/events/stream?since=-1", 400, "invalid_query"),
        case("negative last-event-id", "GET", "/v1/events/stream", 400, "invalid_header").header("Last-Event-ID", "-3"),
        case("repeated metadata filter", "GET", "/v1/packages?metadata.k=a&metadata.k=b", 400, "invalid_query"),
        case("malformed percent escape", "PUT", format!("{files}/a%zz"), 400, "invalid_path").body("x"),
        case("truncated percent escape", "GET", format!("{files}/a%2"), 400, "invalid_path"),
        case("repeated json key", "POST", "/v1/packages", 400, "invalid_json").body(
            r#"{"name":"n","name":"m","producer":"ci","subject":"s","retention_class":"standard"}"#,
        ),
        case("repeated metadata key", "POST", "/v1/packages", 400, "invalid_json").body(
            r#"{"name":"n","producer":"ci","subject":"s","retention_class":"standard","metadata":{"k":1,"k":2}}"#,
        ),
        case("repeated key in a schema", "PUT", "/v1/metadata-schemas/dup", 400, "invalid_json")
            .body(r#"{"type":"object","type":"string"}"#),
        case("huge range end is clamped", "GET", format!("/v1/files/{file_id}/content"), 206, "")
            .header("Range", "bytes=0-99999999999999999999999"),
        // JSON bodies must say they are JSON (cross-site forms cannot).
        case("json sent as text/plain", "POST", "/v1/packages", 415, "unsupported_media_type")
            .header("Content-Type", "text/plain")
            .body(package("plain")),
        case("json sent as a form", "POST", format!("/v1/packages/{open}/holds"), 415, "unsupported_media_type")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("reason=x"),
        case("json with no media type", "POST", format!("/v1/packages/{open}/retention/extend"), 415, "unsupported_media_type")
            .header("Content-Type", "")
            .body(r#"{"new_expires_at":"2999-01-01T00:00:00Z","reason":"r"}"#),
        // Content-Digest: sha-512 is checked; unknown algorithms alone are refused.
        case("wrong sha-512", "PUT", format!("{files}/d5.txt"), 400, "digest_mismatch")
            .header("Content-Digest", format!("sha-512=:{}:", "A".repeat(86) + "=="))
            .body("payload"),
        case("only unknown digest algorithms", "PUT", format!("{files}/d6.txt"), 400, "invalid_digest")
            .header("Content-Digest", "md5=:AAAA:, unixsum=30637")
            .body("payload"),
        // Methods and routes.
        case("delete a package", "DELETE", format!("/v1/packages/{open}"), 405, "method_not_allowed"),
        case("no such route", "GET", "/v1/nothing", 404, "route_not_found"),
    ];
    let token_cases = vec![
        ("no token", None, 401, "unauthorized"),
        (
            "empty bearer",
            Some("Bearer ".to_owned()),
            401,
            "unauthorized",
        ),
        (
            "basic auth",
            Some("Basic dXNlcjpwYXNz".to_owned()),
            401,
            "unauthorized",
        ),
        (
            "garbage token",
            Some("Bearer ast_garbage".to_owned()),
            401,
            "unauthorized",
        ),
        (
            "expired token",
            Some(format!("Bearer {expired}")),
            401,
            "unauthorized",
        ),
        (
            "revoked token",
            Some(format!("Bearer {revoked}")),
            401,
            "unauthorized",
        ),
        (
            "read token writes",
            Some(format!("Bearer {reader}")),
            403,
            "forbidden",
        ),
    ];
    assert!(
        cases.len() + token_cases.len() >= 60,
        "the corpus has {} cases",
        cases.len() + token_cases.len()
    );

    let head = registry.head_sequence().await.unwrap();
    let stored = objects(&dir.path().join("objects"));
    let mut failures = Vec::new();
    for case in &cases {
        let mut headers: Vec<(&str, &str)> = vec![("Authorization", auth.as_str())];
        headers.extend(case.headers.iter().map(|(n, v)| (*n, v.as_str())));
        // JSON endpoints take JSON only: label every body that is not a
        // file upload, unless the case is about its media type.
        let upload = case.target.contains("/files/");
        let typed = case
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        if !upload && !typed && case.method != "GET" {
            headers.push(("Content-Type", "application/json"));
        }
        let (status, code) = send(
            addr,
            case.method,
            &case.target,
            &headers,
            &case.body,
            case.declared,
        )
        .await;
        if status != case.status || code != case.code {
            failures.push(format!(
                "{}: got {status} {code:?}, want {} {:?}",
                case.name, case.status, case.code
            ));
        }
    }
    for (name, authorization, want_status, want_code) in &token_cases {
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|a| ("Authorization", a.as_str()))
            .collect();
        let mut headers = headers;
        headers.push(("Content-Type", "application/json"));
        let (status, code) = send(
            addr,
            "POST",
            "/v1/packages",
            &headers,
            package("t").as_bytes(),
            None,
        )
        .await;
        if status != *want_status || code != *want_code {
            failures.push(format!(
                "{name}: got {status} {code:?}, want {want_status} {want_code:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        registry.head_sequence().await.unwrap(),
        head,
        "no bad input may append an event"
    );
    assert_eq!(
        objects(&dir.path().join("objects")),
        stored,
        "no bad input may store or remove an object"
    );
    let (status, _) = send(addr, "GET", "/health", &[], b"", None).await;
    assert_eq!(status, 200, "the server keeps serving");
}
