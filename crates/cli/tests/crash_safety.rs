//! Crash safety: rounds of concurrent uploads and finalizes with the server
//! killed (SIGKILL) at varying moments and restarted. After every round the
//! views equal their replay, the hash chain holds, every stored object
//! verifies, every acknowledged file reads back byte-identical, every
//! acknowledged finalize kept its manifest, and a dead process's staging
//! files are gone. `ARTIFACTSTORE_KILL_ROUNDS` sets the rounds (default 20).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;

mod common;

use common::{Served, BIN};

fn start(data_dir: &Path) -> Served {
    Served::start([OsStr::new("--data-dir"), data_dir.as_os_str()], &[])
}

fn admin(data_dir: &Path, args: &[&str]) {
    let out = Command::new(BIN)
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "admin {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small deterministic generator, so a failing round can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[derive(Default)]
struct Acknowledged {
    files: Vec<(String, Vec<u8>)>,
    finalized: Vec<(String, String)>,
}

async fn worker(client: reqwest::Client, url: String, seed: u64) -> Acknowledged {
    let mut rng = Lcg(seed);
    let mut acks = Acknowledged::default();
    'packages: loop {
        let body = serde_json::json!({"name": "crash", "producer": "ci", "subject": "s", "retention_class": "standard"});
        let Ok(response) = client
            .post(format!("{url}/v1/packages"))
            .json(&body)
            .send()
            .await
        else {
            break;
        };
        if response.status() != StatusCode::CREATED {
            break;
        }
        let Ok(package) = response.json::<serde_json::Value>().await else {
            break;
        };
        let id = package["id"].as_str().unwrap_or_default().to_owned();
        for file in 0..3 {
            let size = (rng.next() % (512 * 1024)) as usize;
            let bytes: Vec<u8> = (0..size).map(|i| (i as u64 ^ seed ^ rng.0) as u8).collect();
            let put = client
                .put(format!("{url}/v1/packages/{id}/files/f{file}.bin"))
                .body(bytes.clone())
                .send()
                .await;
            match put {
                Ok(r) if r.status() == StatusCode::CREATED => {
                    match r.json::<serde_json::Value>().await {
                        Ok(record) => acks
                            .files
                            .push((record["id"].as_str().unwrap_or_default().to_owned(), bytes)),
                        Err(_) => break 'packages,
                    }
                }
                _ => break 'packages,
            }
        }
        match client
            .post(format!("{url}/v1/packages/{id}/finalize"))
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => match r.json::<serde_json::Value>().await {
                Ok(done) => acks.finalized.push((
                    id,
                    done["manifest_digest"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )),
                Err(_) => break,
            },
            _ => break,
        }
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_servers_lose_nothing_they_acknowledged() {
    let rounds: u64 = std::env::var("ARTIFACTSTORE_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut acked = Acknowledged::default();
    let mut delays = Lcg(42);
    let mut server = start(data);
    for round in 0..rounds {
        let workers: Vec<_> = (0..4)
            .map(|w| tokio::spawn(worker(client.clone(), server.url.clone(), round * 10 + w)))
            .collect();
        tokio::time::sleep(Duration::from_millis(50 + delays.next() % 500)).await;
        server.kill();
        for w in workers {
            let acks = w.await.unwrap();
            acked.files.extend(acks.files);
            acked.finalized.extend(acks.finalized);
        }
        server = start(data);
        let url = server.url.clone();

        admin(data, &["replay", "--check"]);
        admin(data, &["verify-log"]);
        admin(data, &["verify"]);
        for (file_id, bytes) in &acked.files {
            let back = client
                .get(format!("{url}/v1/files/{file_id}/content"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                back.status(),
                StatusCode::OK,
                "round {round}: acknowledged file {file_id} is gone"
            );
            assert!(
                back.bytes().await.unwrap() == bytes.as_slice(),
                "round {round}: file {file_id} changed"
            );
        }
        for (package_id, digest) in &acked.finalized {
            let package: serde_json::Value = client
                .get(format!("{url}/v1/packages/{package_id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(package["status"], "finalized", "round {round}");
            assert_eq!(
                package["manifest_digest"].as_str(),
                Some(digest.as_str()),
                "round {round}"
            );
        }
        // Only the running server's staging directory remains.
        let staging: Vec<_> = std::fs::read_dir(data.join("objects/.staging"))
            .unwrap()
            .collect();
        assert_eq!(
            staging.len(),
            1,
            "round {round}: leftover staging {staging:?}"
        );
    }
    assert!(
        acked.files.len() as u64 >= rounds,
        "the workload acknowledged too little to mean anything"
    );
    assert!(!acked.finalized.is_empty());
    server.kill();
}
