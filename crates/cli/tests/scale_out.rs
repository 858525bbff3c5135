//! Scale-out with the real binary: two `serve` replicas on one PostgreSQL
//! and one Garage, and a Garage that dies mid-upload.
//!
//! These need PostgreSQL and Garage (`eval "$(scripts/s3/test-services
//! up)"`); without them they are skipped with a printed reason, except under
//! `CI=true`, where a missing service is a failure.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;

mod common;

use artifactstore_testkit::{skip_or_fail, PostgresDatabase};
use common::Served;

fn garage_env(field: &str) -> Option<String> {
    std::env::var(format!("ARTIFACTSTORE_TEST_GARAGE_{field}")).ok()
}

fn s3_backend_toml(endpoint: &str, prefix: &str) -> String {
    format!(
        "[[backends]]\nid = \"garage\"\ntype = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"garage\"\n\
         bucket = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nprefix = \"{prefix}\"\n",
        garage_env("BUCKET").unwrap_or_default(),
        garage_env("ACCESS_KEY_ID").unwrap_or_default(),
        garage_env("SECRET_ACCESS_KEY").unwrap_or_default(),
    )
}

/// A replica serving `config`.
fn replica(config: &Path) -> Served {
    Served::start([OsStr::new("--config"), config.as_os_str()], &[])
}

async fn create_package(client: &reqwest::Client, server: &str, name: &str) -> String {
    let body = serde_json::json!({"name": name, "producer": "ci", "subject": "app", "retention_class": "standard"});
    let response = client
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

async fn put(
    client: &reqwest::Client,
    server: &str,
    package: &str,
    path: &str,
    body: Vec<u8>,
) -> StatusCode {
    client
        .put(format!("{server}/v1/packages/{package}/files/{path}"))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// Follows `/v1/events/stream` from 0 and records every `id:`.
fn follow(server: String, seen: Arc<Mutex<Vec<i64>>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let response = reqwest::get(format!("{server}/v1/events/stream?since=0"))
            .await
            .unwrap();
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                if let Some(id) = line.trim_end().strip_prefix("id:") {
                    seen.lock().unwrap().push(id.trim().parse().unwrap());
                }
            }
        }
    })
}

/// A database of this test's own, dropped after it; `None` where
/// PostgreSQL does not answer (skipped, or failed under CI).
async fn create_database() -> Option<PostgresDatabase> {
    if !artifactstore_testkit::require_postgres() {
        return None;
    }
    Some(PostgresDatabase::create().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_and_garage_behave_as_one_service() {
    let Some(endpoint) = garage_env("ENDPOINT") else {
        return skip_or_fail("garage", "ARTIFACTSTORE_TEST_GARAGE_ENDPOINT is not set");
    };
    let Some(database) = create_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("artifactstore.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[database]\nurl = \"{}\"\n{}",
            dir.path().display(),
            database.url,
            s3_backend_toml(&endpoint, &format!("replicas/{}", uuid::Uuid::new_v4()))
        ),
    )
    .unwrap();
    let a = replica(&config);
    let b = replica(&config);
    let servers = [a.url.clone(), b.url.clone()];
    let client = reqwest::Client::new();

    let seen: Vec<Arc<Mutex<Vec<i64>>>> = (0..2).map(|_| Arc::default()).collect();
    let followers: Vec<_> = servers
        .iter()
        .zip(&seen)
        .map(|(s, seen)| follow(s.clone(), seen.clone()))
        .collect();

    // 16 concurrent writers split across the replicas.
    let mut writers = Vec::new();
    for writer in 0..16 {
        let client = client.clone();
        let server = servers[writer % 2].clone();
        let other = servers[(writer + 1) % 2].clone();
        writers.push(tokio::spawn(async move {
            let package = create_package(&client, &server, &format!("w{writer}")).await;
            for file in 0..2 {
                let body = format!("writer {writer} file {file}").into_bytes();
                assert_eq!(
                    put(&client, &server, &package, &format!("f{file}.txt"), body).await,
                    StatusCode::CREATED
                );
            }
            let finalized = client
                .post(format!("{server}/v1/packages/{package}/finalize"))
                .send()
                .await
                .unwrap();
            assert_eq!(finalized.status(), StatusCode::OK);
            // Written through one replica, readable through the other at once.
            let read = client
                .get(format!("{other}/v1/packages/{package}/files/f1.txt"))
                .send()
                .await
                .unwrap();
            assert_eq!(read.status(), StatusCode::OK);
            assert_eq!(
                read.bytes().await.unwrap(),
                format!("writer {writer} file 1").as_bytes()
            );
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    // The same relative path raced through both replicas: one 201, one 409.
    for round in 0..4 {
        let package = create_package(&client, &servers[0], &format!("race{round}")).await;
        let (first, second) = tokio::join!(
            put(
                &client,
                &servers[0],
                &package,
                "same.txt",
                b"from a".to_vec()
            ),
            put(
                &client,
                &servers[1],
                &package,
                "same.txt",
                b"from b".to_vec()
            ),
        );
        let mut statuses = [first.as_u16(), second.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}");
    }

    let health: serde_json::Value = client
        .get(format!("{}/health", servers[1]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let head = health["head_sequence"].as_i64().unwrap();
    assert_eq!(head, 16 * 5 + 4 * 3);
    let want: Vec<i64> = (1..=head).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for seen in &seen {
        while seen.lock().unwrap().len() < want.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            *seen.lock().unwrap(),
            want,
            "a follower missed, repeated or reordered events"
        );
    }
    for follower in followers {
        follower.abort();
    }
}

fn garage_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3/garage-up")
}

fn try_garage_up(dir: &Path, arg: &str) -> Result<String, String> {
    let out = Command::new(garage_script())
        .arg(dir)
        .arg(arg)
        .env("GARAGE_BIN", garage_env("BIN").unwrap())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn garage_up(dir: &Path, arg: &str) -> String {
    try_garage_up(dir, arg).unwrap_or_else(|e| panic!("garage-up failed: {e}"))
}

/// A Garage on free ports (its S3, RPC and admin ports are a base and the
/// two after it, so a base is tried until all three are free).
fn garage_on_free_ports(dir: &Path) -> String {
    let mut last_error = String::new();
    for _ in 0..5 {
        let base = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > 65_000 {
            continue;
        }
        let _ = std::fs::remove_dir_all(dir);
        match try_garage_up(dir, &base.to_string()) {
            Ok(line) => return line,
            Err(e) => last_error = e,
        }
    }
    panic!("garage-up failed: {last_error}");
}

fn export(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_dying_mid_upload_gives_503_no_event_and_the_server_recovers() {
    if garage_env("BIN").is_none() {
        return skip_or_fail("garage", "ARTIFACTSTORE_TEST_GARAGE_BIN is not set");
    }
    // A Garage of this test's own, so killing it disturbs nothing else.
    let garage_dir = tempfile::tempdir().unwrap();
    let line = garage_on_free_ports(garage_dir.path());
    let kill_garage = || {
        let pid = std::fs::read_to_string(garage_dir.path().join("pid")).unwrap();
        Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("artifactstore.toml");
    let backend = format!(
        "[[backends]]\nid = \"garage\"\ntype = \"s3\"\nendpoint = \"{}\"\nregion = \"garage\"\nbucket = \"{}\"\n\
         path_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        export(&line, "S3_ENDPOINT"),
        export(&line, "S3_BUCKET"),
        export(&line, "S3_ACCESS_KEY_ID"),
        export(&line, "S3_SECRET_ACCESS_KEY"),
    );
    std::fs::write(
        &config,
        format!("data_dir = \"{}\"\n{backend}", dir.path().display()),
    )
    .unwrap();
    let server = replica(&config);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let package = create_package(&client, &server.url, "faults").await;
    assert_eq!(
        put(
            &client,
            &server.url,
            &package,
            "before.txt",
            b"fine".to_vec()
        )
        .await,
        StatusCode::CREATED
    );
    let head_before = client
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    let head_before = head_before.json::<serde_json::Value>().await.unwrap()["head_sequence"]
        .as_i64()
        .unwrap();

    // 10 MiB, then Garage dies, then 4 MiB more.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(receiver));
    let upload = tokio::spawn({
        let client = client.clone();
        let url = format!("{}/v1/packages/{package}/files/big.bin", server.url);
        async move { client.put(url).body(body).send().await }
    });
    for i in 0..10u8 {
        sender.send(Ok(vec![i; 1024 * 1024])).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill_garage();
    for i in 0..4u8 {
        if sender.send(Ok(vec![i; 1024 * 1024])).await.is_err() {
            break;
        }
    }
    drop(sender);
    let response = upload
        .await
        .unwrap()
        .expect("the client gets an answer, not a broken connection");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "service_unavailable");

    let health = client
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let events: serde_json::Value = client
        .get(format!("{}/v1/events?since={head_before}", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        events["items"].as_array().unwrap().len(),
        0,
        "no event for the failed upload"
    );
    let files: serde_json::Value = client
        .get(format!("{}/v1/packages/{package}/files", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(files["items"].as_array().unwrap().len(), 1);

    // Garage returns; so does the service.
    garage_up(garage_dir.path(), "restart");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client
            .get(format!("{}/health", server.url))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "health did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let big: Vec<u8> = (0..14 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    assert_eq!(
        put(&client, &server.url, &package, "big.bin", big.clone()).await,
        StatusCode::CREATED
    );
    let back = client
        .get(format!(
            "{}/v1/packages/{package}/files/big.bin",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(back.bytes().await.unwrap().as_ref(), big.as_slice());
    kill_garage();
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
