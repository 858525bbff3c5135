//! The real binary end to end: `serve` on a free port, then the client
//! commands against it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use artifactstore_registry::core::Manifest;

mod common;

use common::{Served, BIN};

struct Server {
    /// Kept for its lifetime: dropping it stops the server.
    _served: Served,
    url: String,
    data_dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let served = Served::start([OsStr::new("--data-dir"), data_dir.path().as_os_str()], &[]);
        let url = served.url.clone();
        Self {
            _served: served,
            url,
            data_dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--server")
            .arg(&self.url)
            .args(args)
            .env_remove("ARTIFACTSTORE_TOKEN")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn write(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn sample_tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    write(&root, "reports/2026/summary.txt", b"all green\n");
    write(
        &root,
        "Prüfbericht/übersicht.txt",
        "Ärger? Nein.\n".as_bytes(),
    );
    write(&root, "logs/build.log", &b"line\n".repeat(10_000));
    write(&root, "empty.bin", b"");
    (dir, root)
}

fn push(server: &Server, root: &Path) -> serde_json::Value {
    let out = server.ok(&[
        "--json",
        "push",
        "--name",
        "nightly",
        "--producer",
        "ci",
        "--subject",
        "webapp",
        "--retention-class",
        "standard",
        "--metadata",
        "branch=main",
        root.to_str().unwrap(),
    ]);
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn push_pull_round_trip_and_manifest_json_is_the_library_projection() {
    let server = Server::start();
    let (_dir, root) = sample_tree();
    let pushed = push(&server, &root);
    let package_id = pushed["package_id"].as_str().unwrap().to_owned();
    assert_eq!(pushed["files"], 4);
    let digest = pushed["manifest_digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("blake3:"));

    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("restored");
    server.ok(&["pull", &package_id, "--output", target.to_str().unwrap()]);
    assert_eq!(tree(&target), tree(&root));

    let cbor = server
        .run(&["manifest", &package_id, "--format", "cbor"])
        .stdout;
    assert_eq!(Manifest::content_address(&cbor).to_string(), digest);
    let json = server
        .run(&["manifest", &package_id, "--format", "json"])
        .stdout;
    assert_eq!(json, Manifest::json_projection(&cbor).unwrap());

    let listed = server.ok(&[
        "--json",
        "package",
        "list",
        "--producer",
        "ci",
        "--metadata",
        "branch=main",
    ]);
    let listed: serde_json::Value = serde_json::from_str(listed.trim()).unwrap();
    assert_eq!(listed["items"][0]["id"], package_id.as_str());
    let shown = server.ok(&["package", "show", &package_id]);
    assert!(shown.contains("finalized"), "{shown}");
}

#[test]
fn a_corrupted_stored_object_makes_pull_fail_with_a_digest_error() {
    let server = Server::start();
    let (_dir, root) = sample_tree();
    let package_id = push(&server, &root)["package_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let files = server.ok(&["--json", "file", "list", &package_id]);
    let files: serde_json::Value = serde_json::from_str(files.trim()).unwrap();
    let summary = files["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["relative_path"] == "reports/2026/summary.txt")
        .unwrap();
    // Found again by its digest, in any package.
    for digest in ["sha256", "blake3"] {
        let flag = format!("--{digest}");
        let found = server.ok(&[
            "--json",
            "file",
            "find",
            &flag,
            summary[digest].as_str().unwrap(),
        ]);
        let found: serde_json::Value = serde_json::from_str(found.trim()).unwrap();
        assert_eq!(found["items"][0]["id"], summary["id"], "{digest}");
    }
    let out = server.run(&["file", "find", "--sha256", "abc"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex digits"));
    let object = server
        .data_dir
        .path()
        .join("objects")
        .join(summary["object_key"].as_str().unwrap());
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&object, bytes).unwrap();

    let target = tempfile::tempdir().unwrap();
    let out = server.run(&[
        "pull",
        &package_id,
        "--output",
        target.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("digest mismatch for reports/2026/summary.txt"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(!target.path().join("reports/2026/summary.txt").exists());
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let server = Server::start();
    let out = server.run(&["package", "show", "not-a-uuid"]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = server.run(&[
        "package",
        "create",
        "--name",
        "n",
        "--producer",
        "p",
        "--subject",
        "s",
        "--retention-class",
        "nope",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("unknown_retention_class"), "{stderr}");

    let unreachable = Command::new(BIN)
        .args(["--server", "http://127.0.0.1:9", "package", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
}

#[test]
fn retention_and_events_commands_work_against_the_server() {
    let server = Server::start();
    let (_dir, root) = sample_tree();
    let package_id = push(&server, &root)["package_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hold = server.ok(&[
        "--json",
        "retention",
        "hold",
        &package_id,
        "--reason",
        "audit",
    ]);
    let hold: serde_json::Value = serde_json::from_str(hold.trim()).unwrap();
    let hold_id = hold["hold_id"].as_str().unwrap().to_owned();
    let state = server.ok(&["--json", "retention", "show", &package_id]);
    let state: serde_json::Value = serde_json::from_str(state.trim()).unwrap();
    assert_eq!(state["active_holds"].as_array().unwrap().len(), 1);
    server.ok(&[
        "retention",
        "extend",
        &package_id,
        "--until",
        "2099-01-01T00:00:00Z",
        "--reason",
        "keep",
    ]);
    let refused = server.run(&[
        "retention",
        "extend",
        &package_id,
        "--until",
        "2000-01-01T00:00:00Z",
        "--reason",
        "x",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    server.ok(&[
        "retention",
        "release",
        &package_id,
        &hold_id,
        "--reason",
        "done",
    ]);
    let classes = server.ok(&["retention", "classes"]);
    assert!(
        classes.contains("standard") && classes.contains("permanent"),
        "{classes}"
    );

    let events = server.ok(&["--json", "events", "--since", "0"]);
    let types: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event_type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types.first().map(String::as_str),
        Some("v1.package.created")
    );
    assert!(types.contains(&"v1.package.finalized".to_owned()));
    assert_eq!(
        types.last().map(String::as_str),
        Some("v1.retention.hold_released")
    );
    assert_eq!(types.iter().filter(|t| *t == "v1.file.ingested").count(), 4);
}

#[test]
fn admin_commands_act_on_the_configuration_directly() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let admin = |args: &[&str]| {
        Command::new(BIN)
            .arg("admin")
            .args(args)
            .args(["--data-dir", dir])
            .output()
            .unwrap()
    };
    assert!(admin(&["migrate"]).status.success());
    let check = admin(&["replay", "--check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(admin(&["verify-log"]).status.success());
    assert!(admin(&["verify"]).status.success());
    let sweep = admin(&["sweep"]);
    assert!(String::from_utf8_lossy(&sweep.stdout).contains("0 packages"));
    let bad = Command::new(BIN)
        .args([
            "admin",
            "migrate",
            "--config",
            "/nonexistent/artifactstore.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/artifactstore.toml"));
}

#[test]
fn tokens_from_the_admin_cli_gate_a_server_that_requires_auth() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let created = Command::new(BIN)
        .args([
            "--json",
            "admin",
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "write",
            "--data-dir",
            dir,
        ])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ast_"));
    let listed = Command::new(BIN)
        .args(["admin", "token", "list", "--data-dir", dir])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("active") && listed.contains("ci"),
        "{listed}"
    );
    assert!(
        !listed.contains(&token[token.len() - 20..]),
        "the secret is never shown again"
    );

    let served = Served::start(
        ["--data-dir", dir],
        &[("ARTIFACTSTORE_AUTH_REQUIRED", "true")],
    );
    let url = served.url.clone();
    let client = |token: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(["--server", &url])
            .env_remove("ARTIFACTSTORE_TOKEN");
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        command
    };
    let anonymous = client(None).args(["package", "list"]).output().unwrap();
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("unauthorized"));
    let allowed = client(Some(&token))
        .args(["package", "list"])
        .output()
        .unwrap();
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );

    let id = created["id"].as_str().unwrap();
    let revoked = Command::new(BIN)
        .args(["admin", "token", "revoke", id, "--data-dir", dir])
        .output()
        .unwrap();
    assert!(revoked.status.success());
    let after = client(Some(&token))
        .args(["package", "list"])
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(1));
    drop(served);
}

#[test]
fn serve_refuses_a_public_address_without_auth() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .env_remove("ARTIFACTSTORE_AUTH_REQUIRED")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without authentication") && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );
}

/// `GET path` on the server, the whole answer as text.
fn http_get(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn push_waits_for_a_server_busy_with_other_uploads() {
    use std::io::{Read, Write};
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("artifactstore.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[limits]\nmax_concurrent_uploads = 1\n",
            data.path().join("data")
        ),
    )
    .unwrap();
    let served = Served::start([OsStr::new("--config"), config.as_os_str()], &[]);
    let server = Server {
        url: served.url.clone(),
        _served: served,
        data_dir: data,
    };
    let held: serde_json::Value = serde_json::from_str(&server.ok(&[
        "--json",
        "package",
        "create",
        "--name",
        "held",
        "--producer",
        "ci",
        "--subject",
        "s",
        "--retention-class",
        "standard",
    ]))
    .unwrap();
    // An upload whose body stops halfway holds the server's only slot.
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    write!(
        slow,
        "PUT /v1/packages/{}/files/held.bin HTTP/1.1\r\nHost: {address}\r\nContent-Length: 10\r\n\r\nhello",
        held["id"].as_str().unwrap()
    )
    .unwrap();

    let (_dir, root) = sample_tree();
    let push = Command::new(BIN)
        .args([
            "--server",
            &server.url,
            "--json",
            "push",
            "--name",
            "n",
            "--producer",
            "ci",
        ])
        .args([
            "--subject",
            "s",
            "--retention-class",
            "standard",
            "--jobs",
            "3",
        ])
        .arg(&root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Free the slot only once the server has turned the push away.
    let turned_away = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        http_get(&server.url, "/metrics").lines().any(|line| {
            line.contains("method=\"PUT\"")
                && line.contains("status=\"429\"")
                && line.starts_with("artifactstore_http_requests_total")
        })
    });
    assert!(turned_away, "the push was never answered 429");
    slow.write_all(b"world").unwrap();
    let mut answer = [0u8; 12];
    slow.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 201");

    let out = push.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pushed["files"], 4);
    let restored = tempfile::tempdir().unwrap();
    server.ok(&[
        "pull",
        pushed["package_id"].as_str().unwrap(),
        "--output",
        restored.path().to_str().unwrap(),
    ]);
    assert_eq!(tree(restored.path()), tree(&root));
}
