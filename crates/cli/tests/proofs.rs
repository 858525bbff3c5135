//! Proof that leaves the server, through the binary: `bundle` then
//! `verify-bundle` with the key from `admin log-key` (and a tampered copy
//! refused), the extracted bag validated by the Library of Congress's
//! `bagit.py`, `verify-log` against a checkpoint saved earlier, and
//! `serve` refusing a database restored from an older copy.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod common;

use common::{Served, BIN};

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("artifactstore.toml");
    let text = format!(
        "data_dir = {:?}\n[lifecycle]\ninterval = \"0s\"\n[log]\ncheckpoint_interval = \"0s\"\n",
        dir.join("data").display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ARTIFACTSTORE_TOKEN")
        .env_remove("ARTIFACTSTORE_CONFIG")
        .output()
        .unwrap()
}

fn ok<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn push(url: &str, tree: &Path, name: &str) -> String {
    let out = ok(&[
        "--server",
        url,
        "--json",
        "push",
        "--name",
        name,
        "--producer",
        "ci",
        "--subject",
        "app",
        "--retention-class",
        "standard",
        tree.to_str().unwrap(),
    ]);
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    value["package_id"].as_str().unwrap().to_owned()
}

/// `bagit.py` from PyPI: `ARTIFACTSTORE_BAGIT`, or on the PATH.
fn bagit() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ARTIFACTSTORE_BAGIT") {
        return Some(PathBuf::from(path));
    }
    let found = Command::new("bagit.py").arg("--version").output();
    if found.is_ok_and(|o| o.status.success()) {
        return Some(PathBuf::from("bagit.py"));
    }
    artifactstore_testkit::skip_or_fail(
        "bagit",
        "bagit.py is not installed (pip install bagit, or set ARTIFACTSTORE_BAGIT)",
    );
    None
}

#[test]
fn bundles_verify_offline_and_pass_the_library_of_congress_validator() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let config = config.to_str().unwrap();
    let served = Served::start([OsStr::new("--config"), OsStr::new(config)], &[]);
    let url = served.url.as_str();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("logs/nested")).unwrap();
    std::fs::write(tree.join("report.json"), b"{\"passed\": 42}").unwrap();
    // No `%` in these paths: RFC 8493 has it percent-encoded in manifests
    // (bundles do), and bagit.py 1.9.0 does not decode it
    // (LibraryOfCongress/bagit-python#157); the registry's tests cover it.
    std::fs::write(
        tree.join("logs/nested/build (1) é.log"),
        b"line\n".repeat(1000),
    )
    .unwrap();
    std::fs::write(tree.join("empty"), b"").unwrap();
    let id = push(url, &tree, "evidence");

    let key = ok(&["admin", "log-key", "--config", config]);
    let key = key.trim();
    assert!(key.starts_with("artifactstore+"), "{key}");
    let key_file = dir.path().join("log.pub");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let tar = dir.path().join("evidence.tar");
    ok(&["--server", url, "bundle", &id, "-o", tar.to_str().unwrap()]);
    let verified = ok(&["verify-bundle", tar.to_str().unwrap(), "--key", key]);
    assert!(verified.contains("bundle verified"), "{verified}");
    assert!(verified.contains("3 payload files"), "{verified}");
    assert!(verified.contains("inclusion proof"), "{verified}");
    // The key from a file works the same.
    ok(&[
        "verify-bundle",
        tar.to_str().unwrap(),
        "--key",
        key_file.to_str().unwrap(),
    ]);

    // One payload byte changed: exit 3, naming the file.
    let mut bytes = std::fs::read(&tar).unwrap();
    let at = bytes
        .windows(14)
        .position(|w| w == b"{\"passed\": 42}")
        .unwrap();
    bytes[at + 11] = b'3';
    let tampered = dir.path().join("tampered.tar");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = run(&["verify-bundle", tampered.to_str().unwrap(), "--key", key]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("data/report.json"),
        "{out:?}"
    );

    // The Library of Congress validator accepts the extracted bag.
    if let Some(bagit) = bagit() {
        let extracted = dir.path().join("extracted");
        std::fs::create_dir_all(&extracted).unwrap();
        let untar = Command::new("tar")
            .args([
                "-xf",
                tar.to_str().unwrap(),
                "-C",
                extracted.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(untar.status.success(), "{untar:?}");
        let validated = Command::new(&bagit)
            .args(["--validate", extracted.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            validated.status.success(),
            "bagit.py refused the bag: {}{}",
            String::from_utf8_lossy(&validated.stdout),
            String::from_utf8_lossy(&validated.stderr)
        );
        // …and refuses it once a payload byte changes.
        let file = extracted.join("data/report.json");
        std::fs::write(&file, b"{\"passed\": 43}").unwrap();
        let refused = Command::new(&bagit)
            .args(["--validate", extracted.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "bagit.py accepted a changed payload"
        );
    }
}

#[test]
fn verify_log_follows_the_server_and_serve_refuses_an_older_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let config = config.to_str().unwrap();
    let data = dir.path().join("data");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("a.txt"), b"first").unwrap();
    let mut served = Served::start([OsStr::new("--config"), OsStr::new(config)], &[]);
    push(&served.url, &tree, "first");
    ok(&["admin", "checkpoint", "--config", config]);
    let key = ok(&["admin", "log-key", "--config", config]);
    let key = key.trim().to_owned();
    let saved = dir.path().join("saved.checkpoint");
    let note = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(format!("{}/v1/log/checkpoint", served.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    std::fs::write(&saved, &note).unwrap();
    served.kill();

    // The database as a backup would keep it now.
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    let db_files = [
        "artifactstore.db",
        "artifactstore.db-wal",
        "artifactstore.db-shm",
    ];
    for name in db_files {
        if data.join(name).exists() {
            std::fs::copy(data.join(name), backup.join(name)).unwrap();
        }
    }

    let served = Served::start([OsStr::new("--config"), OsStr::new(config)], &[]);
    std::fs::write(tree.join("b.txt"), b"second").unwrap();
    push(&served.url, &tree, "second");
    ok(&["admin", "checkpoint", "--config", config]);
    let checked = ok(&[
        "--server",
        &served.url,
        "verify-log",
        "--checkpoint",
        saved.to_str().unwrap(),
        "--key",
        &key,
    ]);
    assert!(checked.contains("log consistent"), "{checked}");
    // A checkpoint whose root was changed is refused.
    let forged = dir.path().join("forged.checkpoint");
    let mut lines: Vec<String> = note.lines().map(str::to_owned).collect();
    lines[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    std::fs::write(&forged, lines.join("\n") + "\n").unwrap();
    let out = run(&[
        "--server",
        &served.url,
        "verify-log",
        "--checkpoint",
        forged.to_str().unwrap(),
        "--key",
        &key,
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    drop(served);

    // Restored from the backup: the anchor on the backend knows better.
    for name in db_files {
        let _ = std::fs::remove_file(data.join(name));
        if backup.join(name).exists() {
            std::fs::copy(backup.join(name), data.join(name)).unwrap();
        }
    }
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config", config])
        .env_remove("ARTIFACTSTORE_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("serve started on a database older than its anchor");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("older than that checkpoint"), "{stderr}");
    // `admin verify-log` says the same, with exit 3.
    let out = run(&["admin", "verify-log", "--config", config]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}
