//! The lifecycle through the binary: `admin gc` (and its dry run),
//! `package purge`, `retention review`, `pull` of a purged package, and
//! `admin gc` killed (SIGKILL) at varying moments while it collects, with
//! uploads of the same bytes going on through a server: after every kill
//! the views equal their replay, the chain holds, every live object
//! verifies and every acknowledged file reads back; a later pass finishes
//! what the killed one claimed. `ARTIFACTSTORE_GC_KILL_ROUNDS` sets the
//! rounds (default 8).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use reqwest::StatusCode;

mod common;

use common::{Served, BIN};

/// `logs` expire after a second and are purged at once, `audit` wait for
/// review, `forever` never go; orphans are collected at once; the lease
/// of a killed collector lapses after 2 s; no automatic passes.
fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("artifactstore.toml");
    let text = format!(
        "data_dir = {:?}\n\
         [lifecycle]\ninterval = \"0s\"\norphan_grace = \"0s\"\nlease_timeout = \"2s\"\n\
         [[retention_classes]]\nid = \"logs\"\ndefault_duration = \"1s\"\ndeletion_strategy = \"delete\"\npurge_after = \"0s\"\n\
         [[retention_classes]]\nid = \"audit\"\ndefault_duration = \"1s\"\ndeletion_strategy = \"manual-review\"\n\
         [[retention_classes]]\nid = \"forever\"\ndeletion_strategy = \"never\"\n",
        dir.join("data").display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ARTIFACTSTORE_TOKEN")
        .env_remove("ARTIFACTSTORE_CONFIG")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap()
}

#[test]
fn gc_purge_review_and_pull_of_a_purged_package_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let config = config.to_str().unwrap();
    let served = Served::start([OsStr::new("--config"), OsStr::new(config)], &[]);
    let url = served.url.as_str();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("report.txt"), b"evidence").unwrap();
    let push = |class: &str| {
        let out = ok(&[
            "--server",
            url,
            "--json",
            "push",
            "--name",
            "n",
            "--producer",
            "ci",
            "--subject",
            "s",
            "--retention-class",
            class,
            tree.to_str().unwrap(),
        ]);
        json(&out)["package_id"].as_str().unwrap().to_owned()
    };
    let logs = push("logs");
    let audit = push("audit");
    std::thread::sleep(Duration::from_millis(1100));

    let dry = json(&ok(&[
        "admin",
        "gc",
        "--dry-run",
        "--json",
        "--config",
        config,
    ]));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["purged"][0]["package_id"], logs.as_str());
    // The object is shared with the `audit` package: it stays.
    assert_eq!(dry["objects_deleted"], 0, "{dry}");
    let human = ok(&["admin", "gc", "--dry-run", "--config", config]);
    assert!(
        human.starts_with("DRY RUN: 2 packages would be marked eligible, 1 purged"),
        "{human}"
    );
    let pass = json(&ok(&["admin", "gc", "--json", "--config", config]));
    assert_eq!(pass["purged"][0]["rule"], "delete_after_eligible");

    let pulled = dir.path().join("pulled");
    let out = run(&[
        "--server",
        url,
        "pull",
        &logs,
        "--output",
        pulled.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("purged") && stderr.contains("admin-cli"),
        "{stderr}"
    );

    let review = ok(&["--server", url, "retention", "review"]);
    assert!(review.contains(&audit), "{review}");
    let out = run(&[
        "--server", url, "package", "purge", &logs, "--reason", "again",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("purged already"));
    let purged = ok(&[
        "--server", url, "package", "purge", &audit, "--reason", "reviewed",
    ]);
    assert!(purged.contains("rule explicit"), "{purged}");
    let shown = ok(&["--server", url, "retention", "show", &audit]);
    assert!(shown.contains("\npurged on "), "{shown}");
    // Both packages purged: the shared object goes now.
    let pass = json(&ok(&["admin", "gc", "--json", "--config", config]));
    assert_eq!(pass["objects_deleted"], 1, "{pass}");
    let usage = json(&ok(&["admin", "usage", "--json", "--config", config]));
    assert_eq!(usage["by_producer"], serde_json::json!([]));
    ok(&["admin", "replay", "--check", "--config", config]);
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

/// One of the few contents every upload picks from, so uploads keep
/// storing bytes identical to objects being collected.
fn content(index: u64) -> Vec<u8> {
    format!("shared content {index}\n").repeat(300).into_bytes()
}

/// A package id and the (path, content) pairs acknowledged in it.
type Filled = (String, Vec<(String, Vec<u8>)>);

/// Creates a package of `class` and uploads `count` pooled contents;
/// returns the acknowledged (path, content) pairs.
async fn fill(
    client: &reqwest::Client,
    url: &str,
    class: &str,
    rng: &mut Lcg,
    count: usize,
) -> Filled {
    let body = serde_json::json!({"name": "gc", "producer": "ci", "subject": "s", "retention_class": class});
    let response = client
        .post(format!("{url}/v1/packages"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut acked = Vec::new();
    for file in 0..count {
        let bytes = content(rng.next() % 12);
        let path = format!("f{file}.txt");
        // An upload that loses the race with the collector is refused
        // (503 object_being_collected) and succeeds when sent again.
        for _ in 0..20 {
            let response = client
                .put(format!("{url}/v1/packages/{id}/files/{path}"))
                .body(bytes.clone())
                .send()
                .await
                .unwrap();
            match response.status() {
                StatusCode::CREATED => {
                    acked.push((path.clone(), bytes.clone()));
                    break;
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("upload of {path}: {other}"),
            }
        }
    }
    (id, acked)
}

/// Orphans: objects no event refers to, as crashed uploads leave them.
fn plant_orphans(data: &Path, rng: &mut Lcg, count: usize) {
    for _ in 0..count {
        let bytes = format!("orphan {}", rng.next()).into_bytes();
        let key = artifactstore_registry::core::FileDigests::of(&bytes)
            .content_address()
            .object_key();
        let path = data.join("objects").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

#[test]
fn gc_killed_mid_collection_keeps_every_live_byte_and_a_later_pass_finishes() {
    let rounds: u64 = std::env::var("ARTIFACTSTORE_GC_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path());
    let config = config_path.to_str().unwrap().to_owned();
    let data = dir.path().join("data");
    let served = Served::start([OsStr::new("--config"), OsStr::new(&config)], &[]);
    let url = served.url.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let mut rng = Lcg(20);
    let mut kept: Vec<Filled> = Vec::new();
    let mut interrupted = 0;
    for round in 0..rounds {
        plant_orphans(&data, &mut rng, 400);
        runtime.block_on(async {
            for _ in 0..4 {
                fill(&client, &url, "logs", &mut rng, 6).await;
            }
        });
        // Expire the `logs` packages, and let a killed collector's lease
        // lapse.
        std::thread::sleep(Duration::from_millis(2100));
        let mut gc = Command::new(BIN)
            .args(["admin", "gc", "--config", &config])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Uploads of the same contents into packages that stay, while
        // the collector runs; then the kill.
        let mut uploads_rng = Lcg(round + 1000);
        let kill_after = Duration::from_millis(30 + rng.next() % 400);
        let acked = runtime.block_on(async {
            let upload = fill(&client, &url, "forever", &mut uploads_rng, 5);
            let (acked, ()) = tokio::join!(upload, tokio::time::sleep(kill_after));
            acked
        });
        if gc.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        let _ = gc.kill();
        let _ = gc.wait();
        kept.push(acked);
        // The invariant after every kill.
        ok(&["admin", "verify-log", "--config", &config]);
        ok(&["admin", "replay", "--check", "--config", &config]);
        ok(&["admin", "verify", "--config", &config]);
        runtime.block_on(async {
            for (id, files) in &kept {
                for (path, bytes) in files {
                    let response = client
                        .get(format!("{url}/v1/packages/{id}/files/{path}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        response.status(),
                        StatusCode::OK,
                        "round {round}: {id}/{path}"
                    );
                    assert_eq!(
                        &response.bytes().await.unwrap()[..],
                        &bytes[..],
                        "round {round}"
                    );
                }
            }
        });
    }
    assert!(interrupted > 0, "no kill landed during a collection");
    // A later pass finishes the job: what killed passes claimed, and the
    // rest; the pass after it finds nothing left.
    std::thread::sleep(Duration::from_millis(2100));
    ok(&["admin", "gc", "--config", &config]);
    let last = json(&ok(&["admin", "gc", "--json", "--config", &config]));
    assert_eq!(last["objects_deleted"], 0, "{last}");
    assert_eq!(last["backends"][0]["claims_finished"], 0, "{last}");
    ok(&["admin", "verify", "--config", &config]);
    ok(&["admin", "replay", "--check", "--config", &config]);
    drop(served);
}
