//! Real tus clients against the real binary: tuspy (PyPI) and
//! tus-js-client (npm, under Node) upload an empty file, a 1-byte file and
//! 100 MiB; interrupted uploads (a cut connection, a server killed and
//! started again) resume with the same client and complete with identical
//! bytes; on PostgreSQL with Garage, an upload started through one replica
//! is finished through the other. The client drivers are tests/tus/.
//!
//! Without the clients (or PostgreSQL and Garage) these are skipped with a
//! printed reason, except under `CI=true`, where that is a failure.
//! `.ci/run` installs pinned versions and sets `ARTIFACTSTORE_TUSPY_PYTHON`
//! (a Python with tuspy) and `ARTIFACTSTORE_TUS_JS_NODE_PATH` (the
//! node_modules holding tus-js-client).

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use artifactstore_testkit::{skip_or_fail, PostgresDatabase};
use reqwest::StatusCode;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

mod common;

use common::Served;

const MIB: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug)]
enum Client {
    Tuspy,
    TusJs,
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tus")
}

fn tuspy_python() -> Option<PathBuf> {
    let python = std::env::var_os("ARTIFACTSTORE_TUSPY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let found = std::process::Command::new(&python)
        .args(["-c", "import tusclient"])
        .output();
    if found.is_ok_and(|o| o.status.success()) {
        return Some(python);
    }
    skip_or_fail(
        "tuspy",
        "no Python with tuspy (pip install tuspy, or set ARTIFACTSTORE_TUSPY_PYTHON)",
    );
    None
}

fn tus_js_node_path() -> Option<PathBuf> {
    let node_path = std::env::var_os("ARTIFACTSTORE_TUS_JS_NODE_PATH").map(PathBuf::from);
    let works = node_path.as_ref().is_some_and(|path| {
        std::process::Command::new("node")
            .args(["-e", "require('tus-js-client')"])
            .env("NODE_PATH", path)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if works {
        return node_path;
    }
    skip_or_fail(
        "tus-js-client",
        "no tus-js-client for Node (npm install tus-js-client, and set ARTIFACTSTORE_TUS_JS_NODE_PATH to its node_modules)",
    );
    None
}

/// Runs `client` to upload `file` as `relative_path`; returns the upload
/// URL it printed.
async fn upload(
    client: Client,
    endpoint: &str,
    file: &Path,
    relative_path: &str,
    chunk: usize,
    extra: &[&str],
) -> String {
    let mut command = match client {
        Client::Tuspy => {
            let Some(python) = tuspy_python() else {
                return String::new();
            };
            let mut command = tokio::process::Command::new(python);
            command.arg(scripts().join("tuspy_upload.py"));
            command
        }
        Client::TusJs => {
            let Some(node_path) = tus_js_node_path() else {
                return String::new();
            };
            let mut command = tokio::process::Command::new("node");
            command
                .arg(scripts().join("tus_js_upload.js"))
                .env("NODE_PATH", node_path);
            command
        }
    };
    command
        .arg(endpoint)
        .arg(file)
        .arg(relative_path)
        .arg(chunk.to_string())
        .args(extra)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("the client hung")
        .expect("the client runs");
    assert!(
        output.status.success(),
        "{client:?} failed on {relative_path}:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn clients_available(client: Client) -> bool {
    match client {
        Client::Tuspy => tuspy_python().is_some(),
        Client::TusJs => tus_js_node_path().is_some(),
    }
}

fn write_file(dir: &Path, name: &str, len: usize, seed: u8) -> PathBuf {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

async fn create_package(http: &reqwest::Client, server: &str) -> String {
    let body = serde_json::json!({"name": "tus", "producer": "ci", "subject": "app", "retention_class": "standard"});
    let response = http
        .post(format!("{server}/v1/packages"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Checks the recorded file at `relative_path` against `file`: size,
/// SHA-256, BLAKE3, and the bytes downloaded.
async fn assert_recorded(
    http: &reqwest::Client,
    server: &str,
    package: &str,
    relative_path: &str,
    file: &Path,
) {
    let data = std::fs::read(file).unwrap();
    let files: serde_json::Value = http
        .get(format!("{server}/v1/packages/{package}/files"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recorded = files["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["relative_path"] == relative_path)
        .unwrap_or_else(|| panic!("{relative_path} was not recorded: {files}"));
    assert_eq!(recorded["size_bytes"], data.len(), "{relative_path}");
    assert_eq!(
        recorded["sha256"],
        hex::encode(sha2::Sha256::digest(&data)),
        "{relative_path}"
    );
    assert_eq!(
        recorded["blake3"],
        blake3::hash(&data).to_hex().as_str(),
        "{relative_path}"
    );
    let id = recorded["id"].as_str().unwrap();
    let content = http
        .get(format!("{server}/v1/files/{id}/content"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        content[..] == data[..],
        "{relative_path}: downloaded bytes differ"
    );
}

/// A TCP proxy in front of the server: it forwards both ways, counting the
/// bytes clients send, and once they pass `trip_at` it fires once: it cuts
/// that connection (`cut`), or tells the test (which kills the server).
struct Proxy {
    address: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    sent: Arc<AtomicU64>,
    tripped: Arc<Notify>,
}

impl Proxy {
    async fn start(target: SocketAddr, trip_at: u64, cut: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let sent = Arc::new(AtomicU64::new(0));
        let fired = Arc::new(AtomicBool::new(false));
        let tripped = Arc::new(Notify::new());
        let proxy = Self {
            address,
            target: target.clone(),
            sent: sent.clone(),
            tripped: tripped.clone(),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = *target.lock().unwrap();
                let (sent, fired, tripped) = (sent.clone(), fired.clone(), tripped.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return; // the server is down: the client sees a reset.
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let downstream = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    });
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        if total >= trip_at && !fired.swap(true, Ordering::SeqCst) {
                            tripped.notify_one();
                            if cut {
                                break;
                            }
                        }
                        if server_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    // Both directions end with the connection.
                    downstream.abort();
                });
            }
        });
        proxy
    }

    fn endpoint(&self, package: &str) -> String {
        format!("http://{}/v1/packages/{package}/uploads", self.address)
    }
}

fn address_of(served: &Served) -> SocketAddr {
    served.url.trim_start_matches("http://").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_clients_upload_resume_after_cuts_and_restarts() {
    let clients: Vec<Client> = [Client::Tuspy, Client::TusJs]
        .into_iter()
        .filter(|c| clients_available(*c))
        .collect();
    if clients.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_arg = [OsStr::new("--data-dir"), data_dir.as_os_str()];
    let mut server = Served::start(data_arg, &[]);
    let http = reqwest::Client::new();
    let empty = write_file(dir.path(), "empty", 0, 0);
    let one = write_file(dir.path(), "one", 1, 1);
    let big = write_file(dir.path(), "big", 100 * MIB, 2);
    for client in clients {
        let tag = format!("{client:?}").to_lowercase();
        // Empty, 1 byte, 100 MiB, straight to the server.
        let package = create_package(&http, &server.url).await;
        let endpoint = format!("{}/v1/packages/{package}/uploads", server.url);
        let js_creation = match client {
            Client::TusJs => vec!["with-creation-upload"],
            Client::Tuspy => vec![],
        };
        for (file, name) in [(&empty, "empty"), (&one, "one"), (&big, "big")] {
            let path = format!("{tag}/{name}");
            upload(client, &endpoint, file, &path, 32 * MIB, &js_creation).await;
            assert_recorded(&http, &server.url, &package, &path, file).await;
        }

        // A connection cut mid-upload: the client resumes at the server's
        // offset.
        let proxy = Proxy::start(address_of(&server), 40 * MIB as u64, true).await;
        let path = format!("{tag}/cut");
        upload(
            client,
            &proxy.endpoint(&package),
            &big,
            &path,
            64 * MIB,
            &[],
        )
        .await;
        assert!(proxy.sent.load(Ordering::SeqCst) > 100 * MIB as u64);
        assert_recorded(&http, &server.url, &package, &path, &big).await;

        // The server killed (SIGKILL) mid-upload and started again on the
        // same data: the client resumes from what was saved.
        let proxy = Proxy::start(address_of(&server), 60 * MIB as u64, false).await;
        let path = format!("{tag}/restart");
        let proxied = proxy.endpoint(&package);
        let client_run = upload(client, &proxied, &big, &path, 64 * MIB, &[]);
        let restart = async {
            proxy.tripped.notified().await;
            server.kill();
            server = Served::start(data_arg, &[]);
            *proxy.target.lock().unwrap() = address_of(&server);
        };
        tokio::join!(client_run, restart);
        assert_recorded(&http, &server.url, &package, &path, &big).await;
        // Nothing staged is left behind.
        let staged = std::fs::read_dir(data_dir.join("objects/.uploads"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(staged, 0, "staging files left after {client:?}");
    }
}

fn garage_env(field: &str) -> Option<String> {
    std::env::var(format!("ARTIFACTSTORE_TEST_GARAGE_{field}")).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_started_on_one_replica_finishes_on_the_other() {
    let Some(endpoint) = garage_env("ENDPOINT") else {
        return skip_or_fail("garage", "ARTIFACTSTORE_TEST_GARAGE_ENDPOINT is not set");
    };
    if !clients_available(Client::Tuspy) || !artifactstore_testkit::require_postgres() {
        return;
    }
    let database = PostgresDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("artifactstore.toml");
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[database]\nurl = \"{}\"\n\
             [[backends]]\nid = \"garage\"\ntype = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"garage\"\n\
             bucket = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nprefix = \"{prefix}\"\n",
            dir.path().join("data").display(),
            database.url,
            garage_env("BUCKET").unwrap_or_default(),
            garage_env("ACCESS_KEY_ID").unwrap_or_default(),
            garage_env("SECRET_ACCESS_KEY").unwrap_or_default(),
        ),
    )
    .unwrap();
    let config_arg = [OsStr::new("--config"), config.as_os_str()];
    let first = Served::start(config_arg, &[]);
    let second = Served::start(config_arg, &[]);
    let http = reqwest::Client::new();
    let package = create_package(&http, &first.url).await;
    // 40 MiB in 6 MiB requests: the first replica stores two whole parts
    // and leaves a tail, which the second reads back from Garage.
    let file = write_file(dir.path(), "split", 40 * MIB, 3);
    let stop_at = (21 * MIB).to_string();
    upload(
        Client::Tuspy,
        &format!("{}/v1/packages/{package}/uploads", first.url),
        &file,
        "replicas/split",
        6 * MIB,
        &[
            stop_at.as_str(),
            &format!("{}/v1/packages/{package}/uploads", second.url),
        ],
    )
    .await;
    assert_recorded(&http, &second.url, &package, "replicas/split", &file).await;
    assert_recorded(&http, &first.url, &package, "replicas/split", &file).await;
}

/// The CLI's own resumable uploads: `push` and `file put` send large files
/// through the tus endpoint and ride out a cut connection and a killed
/// server, resuming from the server's offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_resumes_large_files_after_cuts_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_arg = [OsStr::new("--data-dir"), data_dir.as_os_str()];
    let mut server = Served::start(data_arg, &[]);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("logs")).unwrap();
    let big = write_file(&tree, "snapshot.bin", 90 * MIB, 4);
    let small = write_file(&tree.join("logs"), "run.txt", 1000, 5);
    let cli = |url: &str, args: &[&str]| {
        let mut command = tokio::process::Command::new(common::BIN);
        command
            .args(["--server", url, "--json", "--resumable-over", "1048576"])
            .args(args)
            .kill_on_drop(true);
        command
    };

    // push: the connection is cut once, 30 MiB in.
    let proxy = Proxy::start(address_of(&server), 30 * MIB as u64, true).await;
    let proxied = format!("http://{}", proxy.address);
    let tree_arg = tree.to_str().unwrap().to_owned();
    let output = cli(&proxied, &[])
        .args([
            "push",
            "--name",
            "n",
            "--producer",
            "ci",
            "--subject",
            "app",
            "--retention-class",
            "standard",
            &tree_arg,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pushed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let package = pushed["package_id"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    assert_recorded(&http, &server.url, &package, "snapshot.bin", &big).await;
    assert_recorded(&http, &server.url, &package, "logs/run.txt", &small).await;

    // file put: the server is killed 50 MiB in and started again.
    let open = create_package(&http, &server.url).await;
    let proxy = Proxy::start(address_of(&server), 50 * MIB as u64, false).await;
    let proxied = format!("http://{}", proxy.address);
    let big_arg = big.to_str().unwrap().to_owned();
    let put = cli(
        &proxied,
        &["file", "put", &open, &big_arg, "--as", "again.bin"],
    )
    .output();
    let restart = async {
        proxy.tripped.notified().await;
        server.kill();
        server = Served::start(data_arg, &[]);
        *proxy.target.lock().unwrap() = address_of(&server);
    };
    let (output, ()) = tokio::join!(put, restart);
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "file put failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_recorded(&http, &server.url, &open, "again.bin", &big).await;
}

/// `push --resume` continues a push whose process was killed mid-upload:
/// same package, finished files kept, the large file resumed from the
/// server's offset; then it finalizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_resume_continues_after_the_cli_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(
        [
            OsStr::new("--data-dir"),
            dir.path().join("data").as_os_str(),
        ],
        &[],
    );
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let small = write_file(&tree, "a-small.txt", 2000, 6);
    let big = write_file(&tree, "b-big.bin", 80 * MIB, 7);
    let state_dir = dir.path().join("state");
    let proxy = Proxy::start(address_of(&server), 40 * MIB as u64, false).await;
    let proxied = format!("http://{}", proxy.address);
    let tree_arg = tree.to_str().unwrap().to_owned();
    let push = |resume: bool| {
        let mut command = tokio::process::Command::new(common::BIN);
        command
            .args([
                "--server",
                &proxied,
                "--json",
                "--resumable-over",
                "1048576",
            ])
            .args([
                "push",
                "--name",
                "n",
                "--producer",
                "ci",
                "--subject",
                "app",
            ])
            .args(["--retention-class", "standard", "--jobs", "1"])
            .args(resume.then_some("--resume"))
            .arg(&tree_arg)
            .env("ARTIFACTSTORE_STATE_DIR", &state_dir)
            .kill_on_drop(true);
        command
    };
    // Without an interrupted push there is nothing to resume.
    let nothing = push(true).output().await.unwrap();
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no interrupted push"));

    let mut first = push(false).spawn().unwrap();
    proxy.tripped.notified().await;
    first.kill().await.unwrap();
    let output = push(true).output().await.unwrap();
    assert!(
        output.status.success(),
        "push --resume failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pushed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let package = pushed["package_id"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    assert_recorded(&http, &server.url, &package, "a-small.txt", &small).await;
    assert_recorded(&http, &server.url, &package, "b-big.bin", &big).await;
    // It resumed rather than starting over: well under two copies sent.
    assert!(proxy.sent.load(Ordering::SeqCst) < 125 * MIB as u64);
    // One package, finalized; the saved state is gone.
    let shown: serde_json::Value = http
        .get(format!("{}/v1/packages/{package}", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "finalized");
    let left = std::fs::read_dir(state_dir.join("pushes")).unwrap().count();
    assert_eq!(left, 0);
}
