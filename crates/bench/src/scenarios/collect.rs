//! Garbage collection (issue 20): how fast `admin gc` deletes objects no
//! event refers to, on the filesystem and on Garage, at two sizes (the
//! cost per object should not grow with the count); and what a collection
//! running beside them costs concurrent small-file uploads.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::harness::{config_file, fill, package_body, Env, Garage, Server, ServerSetup};
use crate::report::{row, verdict, Samples, TABLE_HEAD};

/// Lifecycle settings of every run: no automatic passes (the bench runs
/// them), orphans collectable at once.
const LIFECYCLE: &str = "[lifecycle]\ninterval = \"0s\"\norphan_grace = \"0s\"\n";

/// Writes the run's configuration: the harness's, plus [`LIFECYCLE`].
fn config(data: &Path, setup: &ServerSetup) -> Result<std::path::PathBuf> {
    let path = config_file(data, setup)?;
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str(LIFECYCLE);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The key of `bytes`, as the registry stores it.
fn key_of(bytes: &[u8]) -> String {
    artifactstore_core::FileDigests::of(bytes)
        .content_address()
        .object_key()
}

fn orphan(seed: u64, i: usize) -> Vec<u8> {
    format!("orphan {seed} {i}").into_bytes()
}

/// Writes `count` orphans into a filesystem backend's root.
fn plant_on_filesystem(root: &Path, count: usize, seed: u64) -> Result<()> {
    for i in 0..count {
        let bytes = orphan(seed, i);
        let path = root.join(key_of(&bytes));
        std::fs::create_dir_all(path.parent().context("key has a folder")?)?;
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// PUTs `count` orphans into Garage, 64 at a time.
async fn plant_on_garage(garage: &Garage, count: usize, seed: u64) -> Result<()> {
    let client = Arc::new(garage.s3.client()?);
    let results: Vec<Result<()>> = futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                let bytes = orphan(seed, i);
                let path = object_store::path::Path::from(key_of(&bytes));
                client.put(&path, bytes.into()).await?;
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Runs `admin gc` on `config`; returns (seconds, objects deleted).
fn gc(env: &Env, config: &Path) -> Result<(f64, u64)> {
    let start = Instant::now();
    let output = Command::new(&env.binary)
        .args(["admin", "gc", "--json", "--config"])
        .arg(config)
        .env("ARTIFACTSTORE_LOG", "warn")
        .output()?;
    let seconds = start.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "admin gc failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok((seconds, report["objects_deleted"].as_u64().unwrap_or(0)))
}

/// Objects deleted per second by one `admin gc` over `count` orphans.
async fn collection_rate(
    env: &Env,
    garage: Option<&Garage>,
    count: usize,
    seed: u64,
) -> Result<f64> {
    let data = env.scratch("collect")?;
    let setup = ServerSetup {
        s3: garage.map(|g| g.s3.clone()),
        ..ServerSetup::default()
    };
    let config = config(&data, &setup)?;
    match garage {
        Some(garage) => plant_on_garage(garage, count, seed).await?,
        None => plant_on_filesystem(&data.join("objects"), count, seed)?,
    }
    // The planted files reach the disk first, so the collection does not
    // pay for writing back what the planting left dirty (more of it, the
    // more objects: which would read as a cost that grows with the count).
    Command::new("sync").status()?;
    let (seconds, deleted) = gc(env, &config)?;
    if deleted != count as u64 {
        bail!("admin gc deleted {deleted} of {count} orphans");
    }
    std::fs::remove_dir_all(&data)?;
    Ok(count as f64 / seconds)
}

/// Small-file upload throughput: alone for `window`, then while an `admin
/// gc` collects `orphans` objects beside it (measured over the collection's
/// lifetime). Returns (alone, during collection) in files per second.
async fn uploads_beside_collection(
    env: &Env,
    orphans: usize,
    clients: usize,
    window: Duration,
    seed: u64,
) -> Result<(f64, f64)> {
    let data = env.scratch("collect-uploads")?;
    let setup = ServerSetup::default();
    let config = config(&data, &setup)?;
    let server = Server::start(env, &data, &setup)?;
    let client = reqwest::Client::new();
    let mut packages = Vec::new();
    for i in 0..clients {
        packages.push(
            server
                .create_package(&client, package_body(&format!("gc-{i}")))
                .await?,
        );
    }
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (worker, package) in packages.into_iter().enumerate() {
        let (client, done, stop) = (client.clone(), done.clone(), stop.clone());
        let base = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut state = seed ^ ((worker as u64 + 1) * 0x2545_F491_4F6C_DD1D);
            let mut body = vec![0u8; 4096];
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                fill(&mut body, &mut state);
                let url = format!("{base}/v1/packages/{package}/files/f/{i}.bin");
                let response = client.put(&url).body(body.clone()).send().await?;
                if response.status().as_u16() != 201 {
                    bail!("upload answered {}", response.status());
                }
                response.bytes().await?;
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    // Alone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let alone = (done.load(Ordering::Relaxed) - before) as f64 / start.elapsed().as_secs_f64();
    // Beside a collection.
    plant_on_filesystem(&data.join("objects"), orphans, seed)?;
    let before = done.load(Ordering::Relaxed);
    let start = Instant::now();
    let collected = tokio::task::spawn_blocking({
        let (binary, config) = (env.binary.clone(), config.clone());
        move || {
            Command::new(binary)
                .args(["admin", "gc", "--json", "--config"])
                .arg(config)
                .env("ARTIFACTSTORE_LOG", "warn")
                .output()
        }
    })
    .await??;
    let beside = (done.load(Ordering::Relaxed) - before) as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    if !collected.status.success() {
        bail!(
            "admin gc failed: {}",
            String::from_utf8_lossy(&collected.stderr)
        );
    }
    drop(server);
    std::fs::remove_dir_all(&data)?;
    Ok((alone, beside))
}

/// The scenario's Markdown section.
pub async fn run(env: &Env, objects: usize, clients: usize, runs: usize) -> Result<String> {
    let small = (objects / 4).max(1);
    let mut out = String::from("## Garbage collection\n\n");
    out.push_str(&format!(
        "`admin gc` over objects no event refers to (orphans, planted directly \
         in the backend), {small} and {objects} objects; objects deleted per \
         second, each deletion recorded as an event.\n\n{TABLE_HEAD}\n"
    ));
    let mut verdicts = Vec::new();
    let garage = Garage::start(env)?;
    for (name, store) in [("filesystem", None), ("Garage", Some(&garage))] {
        // Garage runs are slow to plant: at most two of each.
        let tries = if store.is_some() { runs.min(2) } else { runs };
        let mut rates = [Samples::default(), Samples::default()];
        for run in 0..tries {
            for (slot, count) in [small, objects].into_iter().enumerate() {
                let seed = (run * 2 + slot) as u64 + 1;
                rates[slot].push(collection_rate(env, store, count, seed).await?);
            }
        }
        out.push_str(&row(
            &format!("{name}, {small} objects, objects/s"),
            &rates[0],
            "",
            0,
        ));
        out.push('\n');
        out.push_str(&row(
            &format!("{name}, {objects} objects, objects/s"),
            &rates[1],
            "",
            0,
        ));
        out.push('\n');
        let linear = rates[1].median() / rates[0].median();
        verdicts.push(verdict(
            &format!("{name}: rate at {objects} / rate at {small} (1 = cost linear in objects)"),
            linear,
            "≥ 0.8",
            linear >= 0.8,
        ));
    }
    drop(garage);
    let mut alone = Samples::default();
    let mut beside = Samples::default();
    let mut ratios = Samples::default();
    for run in 0..runs {
        let (a, b) = uploads_beside_collection(
            env,
            objects,
            clients,
            Duration::from_secs(5),
            run as u64 + 100,
        )
        .await?;
        alone.push(a);
        beside.push(b);
        ratios.push(b / a);
    }
    out.push_str(&row(
        &format!("4 KiB uploads, {clients} clients, alone, files/s"),
        &alone,
        "",
        0,
    ));
    out.push('\n');
    out.push_str(&row(
        &format!("4 KiB uploads, {clients} clients, beside a collection of {objects}, files/s"),
        &beside,
        "",
        0,
    ));
    out.push_str("\n\n");
    for line in verdicts {
        out.push_str(&line);
        out.push('\n');
    }
    let ratio = ratios.median();
    out.push_str(&verdict(
        "uploads beside a collection / alone (SQLite, filesystem)",
        ratio,
        "≥ 0.9",
        ratio >= 0.9,
    ));
    out.push('\n');
    Ok(out)
}
