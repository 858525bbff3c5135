//! Proof that leaves the server (issue 21): proofs on a large log, uploads
//! beside frequent checkpoint signing, and bundles against downloading the
//! same files one by one.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::dataset::generate;
use super::small_files::{one_run, Shape};
use crate::harness::{config_file, fill, memory_kib, timed, Env, Server, ServerSetup};
use crate::report::{row, verdict, Samples, TABLE_HEAD};

/// Proof latency on a log of `events` events.
pub async fn proofs(env: &Env, events: usize, runs: usize, queries: usize) -> Result<String> {
    const FILES: usize = 8;
    let packages = events.div_ceil(2 + FILES);
    let data = env.scratch("proofs")?;
    let url = format!("sqlite://{}", data.join("artifactstore.db").display());
    eprintln!("proofs: generating {packages} packages with {FILES} files each");
    let generated = generate(&url, packages, FILES).await?;
    let size = generated.events;
    let setup = ServerSetup {
        extra: "[log]\ncheckpoint_interval = \"0s\"\n".into(),
        ..ServerSetup::default()
    };
    let config = config_file(&data, &setup)?;
    eprintln!("proofs: building the tree and signing ({size} events)");
    let build_seconds = timed(
        Command::new(&env.binary)
            .args(["admin", "checkpoint", "--config"])
            .arg(&config),
    )?;
    let started = Instant::now();
    let server = Server::start(env, &data, &setup)?;
    let start_seconds = started.elapsed().as_secs_f64();
    let client = reqwest::Client::new();
    let mut random = crate::harness::below(0x9E37_79B9_7F4A_7C15);
    let (mut inclusion_p99, mut consistency_p99) = (Samples::default(), Samples::default());
    let (mut inclusion_all, mut consistency_all) = (Samples::default(), Samples::default());
    for run in 0..runs {
        eprintln!("proofs: run {}/{runs}", run + 1);
        let (mut inclusion, mut consistency) = (Samples::default(), Samples::default());
        for _ in 0..queries {
            let tree = size - random(size / 10).min(size - 1);
            let sequence = 1 + random(tree);
            let url = format!(
                "{}/v1/log/proof/inclusion?sequence={sequence}&tree_size={tree}",
                server.url
            );
            let sent = Instant::now();
            let response = client.get(&url).send().await?;
            let status = response.status();
            let body: serde_json::Value = response.json().await?;
            inclusion.push(sent.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() || body["hashes"].as_array().is_none_or(Vec::is_empty) {
                bail!("{url} answered {status}: {body}");
            }
            let to = size - random(size / 10).min(size - 1);
            let from = 1 + random(to - 1);
            let url = format!(
                "{}/v1/log/proof/consistency?from={from}&to={to}",
                server.url
            );
            let sent = Instant::now();
            let response = client.get(&url).send().await?;
            let status = response.status();
            response.bytes().await?;
            consistency.push(sent.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                bail!("{url} answered {status}");
            }
        }
        inclusion_p99.push(inclusion.percentile(99.0));
        consistency_p99.push(consistency.percentile(99.0));
        inclusion_all.extend(&inclusion);
        consistency_all.extend(&consistency);
    }
    drop(server);
    std::fs::remove_dir_all(&data)?;
    let worst = inclusion_p99.median().max(consistency_p99.median());
    Ok(format!(
        "## Proofs ({size} events on SQLite, {runs} runs of {queries} queries of each kind)\n\n\
         A log written through the store's append path ({packages} packages, each `package.created`, \
         `retention.default_applied` and {FILES} `file.ingested`). `admin checkpoint` then builds the \
         tree's tiles from the events and signs: {build_seconds:.1} s ({:.0} events/s). \
         `serve` then starts, recomputing the tree from the events to check it against the checkpoint \
         and its anchor: listening after {start_seconds:.1} s ({:.0} events/s). \
         Each query: a random tree size in the last tenth of the log and a random leaf (inclusion) or \
         older size (consistency), one client, sequential, over loopback HTTP. The median row is the \
         median of each run's p99.\n\n\
         {TABLE_HEAD}\n{}\n{}\n| inclusion p50 over all runs | {:.2} ms | |\n| consistency p50 over all runs | {:.2} ms | |\n\n{}\n",
        size as f64 / build_seconds,
        size as f64 / start_seconds,
        row("inclusion proof, p99", &inclusion_p99, "ms", 2),
        row("consistency proof, p99", &consistency_p99, "ms", 2),
        inclusion_all.median(),
        consistency_all.median(),
        verdict("proof p99 (ms)", worst, "< 10", worst < 10.0),
    ))
}

/// Small-file uploads with a checkpoint signed every second against none,
/// alternating runs, on SQLite.
pub async fn appends_beside_checkpoints(env: &Env, shape: &Shape, runs: usize) -> Result<String> {
    let (mut signing, mut quiet) = (Samples::default(), Samples::default());
    for run in 0..runs {
        for (interval, samples) in [("1s", &mut signing), ("0s", &mut quiet)] {
            eprintln!(
                "appends beside checkpoints every {interval}: run {}/{runs}",
                run + 1
            );
            let setup = ServerSetup {
                extra: format!("[log]\ncheckpoint_interval = {interval:?}\n"),
                ..ServerSetup::default()
            };
            let outcome = one_run(env, shape, &setup, run as u64 + 11).await?;
            samples.push(outcome.files_per_second);
            std::fs::remove_dir_all(&outcome.data)?;
        }
    }
    let ratio = signing.median() / quiet.median();
    Ok(format!(
        "## Uploads beside checkpoint signing ({} files of {} bytes, {} clients, SQLite, {runs} runs each, alternating)\n\n\
         The small-files upload run with `[log] checkpoint_interval = \"1s\"` (the tree built and a checkpoint \
         signed and anchored every second, ten times the default rate) against `\"0s\"` (none). Appends do not \
         touch the tree; this measures what building and signing beside them costs.\n\n\
         {TABLE_HEAD}\n{}\n{}\n| ratio (signing / none) | {ratio:.2} | |\n\n{}\n",
        shape.files,
        shape.file_bytes,
        shape.clients,
        row("checkpoints every 1 s: files/s", &signing, "files/s", 0),
        row("no checkpoints: files/s", &quiet, "files/s", 0),
        verdict("uploads beside signing / alone", ratio, "≥ 0.95 (within noise)", ratio >= 0.95),
    ))
}

/// Peak RSS of `pid` while `work` runs, sampled every 20 ms, in KiB.
async fn peak_rss<T>(
    pid: u32,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<(T, u64)> {
    let peak = Arc::new(AtomicU64::new(memory_kib(pid, "VmRSS")?));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(kib) = memory_kib(pid, "VmRSS") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    let outcome = work.await;
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    Ok((outcome?, peak.load(Ordering::Relaxed)))
}

/// Bundling a package against downloading its files one by one, and the
/// memory of both and of `verify-bundle`.
pub async fn bundle(env: &Env, total_mib: u64, files: usize, runs: usize) -> Result<String> {
    let data = env.scratch("bundle")?;
    let setup = ServerSetup {
        extra: "[log]\ncheckpoint_interval = \"0s\"\n".into(),
        ..ServerSetup::default()
    };
    let server = Server::start(env, &data, &setup)?;
    let client = reqwest::Client::new();
    let id = server
        .create_package(&client, crate::harness::package_body("bundle"))
        .await?;
    let file_bytes = (total_mib << 20) / files as u64;
    let mut state = 42u64;
    let mut body = vec![0u8; file_bytes as usize];
    eprintln!("bundle: uploading {files} files of {file_bytes} bytes");
    for i in 0..files {
        fill(&mut body, &mut state);
        let response = client
            .put(format!("{}/v1/packages/{id}/files/f/{i}.bin", server.url))
            .body(body.clone())
            .send()
            .await?;
        if response.status().as_u16() != 201 {
            bail!("upload {i} answered {}", response.status());
        }
    }
    drop(body);
    let response = client
        .post(format!("{}/v1/packages/{id}/finalize", server.url))
        .json(&serde_json::json!({}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("finalize answered {}", response.status());
    }
    let total = file_bytes * files as u64;
    let tar = data.join("bundle.tar");
    let (mut downloads, mut bundles) = (Samples::default(), Samples::default());
    let (mut download_rss, mut bundle_rss) = (Samples::default(), Samples::default());
    for run in 0..runs {
        eprintln!("bundle: run {}/{runs}", run + 1);
        let ((), rss) = peak_rss(server.pid(), async {
            let started = Instant::now();
            for i in 0..files {
                let mut response = client
                    .get(format!("{}/v1/packages/{id}/files/f/{i}.bin", server.url))
                    .send()
                    .await?
                    .error_for_status()?;
                while response.chunk().await?.is_some() {}
            }
            downloads.push(total as f64 / started.elapsed().as_secs_f64() / 1e9);
            Ok(())
        })
        .await?;
        download_rss.push(rss as f64 / 1024.0);
        let ((), rss) = peak_rss(server.pid(), async {
            let started = Instant::now();
            let mut response = client
                .get(format!("{}/v1/packages/{id}/bundle", server.url))
                .send()
                .await?
                .error_for_status()?;
            let mut file = tokio::fs::File::create(&tar).await?;
            while let Some(chunk) = response.chunk().await? {
                tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
            }
            bundles.push(total as f64 / started.elapsed().as_secs_f64() / 1e9);
            Ok(())
        })
        .await?;
        bundle_rss.push(rss as f64 / 1024.0);
    }
    // verify-bundle's own peak memory and time, by /usr/bin/time.
    let key = Command::new(&env.binary)
        .args(["admin", "log-key", "--config"])
        .arg(data.join("bench.toml"))
        .output()?;
    let key = String::from_utf8(key.stdout)?.trim().to_owned();
    let started = Instant::now();
    let verified = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(&env.binary)
        .args(["verify-bundle"])
        .arg(&tar)
        .args(["--key", &key])
        .output()
        .context("running verify-bundle under /usr/bin/time")?;
    let verify_seconds = started.elapsed().as_secs_f64();
    if !verified.status.success() {
        bail!(
            "verify-bundle failed: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }
    let verify_rss_mib: f64 = String::from_utf8_lossy(&verified.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    drop(server);
    std::fs::remove_dir_all(&data)?;
    let ratio = bundles.median() / downloads.median();
    Ok(format!(
        "## Bundles ({files} files, {} MiB in all, filesystem backend, {runs} runs)\n\n\
         One client over loopback: every file `GET` one after another on one kept-alive connection, \
         against one `GET /v1/packages/{{id}}/bundle` of the same package, written to disk. The server's \
         peak RSS is sampled every 20 ms during each. Then `verify-bundle` checks the tar: \
         {verify_seconds:.1} s ({:.2} GB/s), peak RSS {verify_rss_mib:.0} MiB.\n\n\
         {TABLE_HEAD}\n{}\n{}\n| ratio (bundle / downloads) | {ratio:.2} | |\n{}\n{}\n\n{}\n",
        total >> 20,
        total as f64 / verify_seconds / 1e9,
        row("downloads one by one", &downloads, "GB/s", 2),
        row("bundle", &bundles, "GB/s", 2),
        row("server peak RSS, downloads", &download_rss, "MiB", 0),
        row("server peak RSS, bundle", &bundle_rss, "MiB", 0),
        verdict("bundle / downloads", ratio, "≥ 0.8", ratio >= 0.8),
    ))
}
