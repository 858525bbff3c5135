//! Scenarios over a large log: replay (rebuild every view from the events)
//! and listing (filtered pages and point lookups among many packages).
//!
//! The log is written through the store's own append path (`LogTx`, the
//! same code the registry's operations use, views updated as each event
//! is appended) in large transactions, so a million events take a minute
//! rather than a million fsyncs.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use artifactstore_core::event::{FileIngested, PackageCreated, Payload, RetentionDefaultApplied};
use artifactstore_core::{cbor, Digest32, NewEvent, SystemClock};
use artifactstore_store::Store;

use crate::harness::{config_file, timed, Env, Server, ServerSetup};
use crate::report::{row, verdict, Samples, TABLE_HEAD};

/// Producers and branch values the list dataset spreads packages over.
const PRODUCERS: usize = 100;
const BRANCHES: usize = 50;
const PACKAGES_PER_TRANSACTION: usize = 2000;

pub(crate) struct Generated {
    pub(crate) events: u64,
    /// Every 997th package id, for point lookups; the first package's
    /// id comes first.
    pub(crate) sample_ids: Vec<String>,
}

fn append(tx_events: &mut Vec<NewEvent>, payload: &impl Payload) -> Result<()> {
    tx_events.push(NewEvent::of(payload, "bench")?);
    Ok(())
}

/// Writes `packages` packages, each with `files` file events, into the
/// store at `url`.
pub(crate) async fn generate(url: &str, packages: usize, files: usize) -> Result<Generated> {
    let store = Store::connect(url, Arc::new(SystemClock), Duration::from_secs(60)).await?;
    store.migrate().await?;
    let mut sample_ids = Vec::new();
    let mut events = 0u64;
    let mut done = 0;
    let started = Instant::now();
    while done < packages {
        let batch = PACKAGES_PER_TRANSACTION.min(packages - done);
        let mut pending = Vec::with_capacity(batch * (2 + files));
        for i in done..done + batch {
            let id = artifactstore_core::id::new_id().to_string();
            if i % 997 == 0 {
                sample_ids.push(id.clone());
            }
            let metadata = serde_json::json!({
                "branch": format!("b-{}", (i / PRODUCERS) % BRANCHES),
                "build": i,
                "nightly": i % 7 == 0,
            });
            let created = PackageCreated {
                v: 1,
                package_id: id.clone(),
                name: format!("build-{i}"),
                producer: format!("p-{}", i % PRODUCERS),
                subject: format!("service-{}", i % 13),
                retention_class: "permanent".into(),
                metadata: cbor::from_json(&metadata)?,
                metadata_schema_id: None,
            };
            append(&mut pending, &created)?;
            let default = RetentionDefaultApplied {
                v: 1,
                package_id: id.clone(),
                retention_class: "permanent".into(),
                default_duration_seconds: None,
                expires_at: None,
            };
            append(&mut pending, &default)?;
            for f in 0..files {
                let blake3 = Digest32::blake3_of(format!("{i}/{f}").as_bytes()).to_hex();
                let ingested = FileIngested {
                    v: 1,
                    file_id: artifactstore_core::id::new_id().to_string(),
                    package_id: id.clone(),
                    // A hundred files a folder, so a large package has a
                    // tree to render.
                    relative_path: format!("reports/{}/{f}.json", f / 100),
                    media_type: "application/json".into(),
                    size_bytes: 4096,
                    sha256: Digest32::blake3_of(blake3.as_bytes()).to_hex(),
                    object_key: format!("blake3/{}/{}/{blake3}", &blake3[..2], &blake3[2..4]),
                    blake3,
                    storage_location_id: artifactstore_core::id::new_id().to_string(),
                    backend_id: "local".into(),
                    retrieval_tier: "hot".into(),
                };
                append(&mut pending, &ingested)?;
            }
        }
        let mut tx = store.begin().await?;
        for event in pending {
            tx.append(event).await?;
            events += 1;
        }
        tx.commit().await?;
        done += batch;
        if done % 100_000 < batch {
            eprintln!(
                "  generated {done} packages, {events} events ({:.0} events/s)",
                events as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    store.close().await;
    Ok(Generated { events, sample_ids })
}

async fn snapshot(url: &str) -> Result<Vec<u8>> {
    let store = Store::connect(url, Arc::new(SystemClock), Duration::from_secs(60)).await?;
    let snapshot = store.snapshot_views().await?;
    store.close().await;
    Ok(snapshot)
}

pub async fn replay(env: &Env, events_wanted: usize, runs: usize) -> Result<String> {
    const FILES: usize = 8;
    let packages = events_wanted.div_ceil(2 + FILES);
    let data = env.scratch("replay")?;
    let url = format!("sqlite://{}", data.join("artifactstore.db").display());
    eprintln!("replay: generating {packages} packages with {FILES} files each");
    let generated = generate(&url, packages, FILES).await?;
    let live = snapshot(&url).await?;
    let config = config_file(&data, &ServerSetup::default())?;
    let mut rates = Samples::default();
    for run in 0..runs {
        eprintln!("replay: run {}/{runs}", run + 1);
        let seconds = timed(
            Command::new(&env.binary)
                .args(["admin", "replay", "--config"])
                .arg(&config),
        )?;
        rates.push(generated.events as f64 / seconds);
    }
    let identical = snapshot(&url).await? == live;
    if std::env::var_os("BENCH_KEEP").is_some() {
        eprintln!("replay: kept {} (BENCH_KEEP)", data.display());
    } else {
        std::fs::remove_dir_all(&data)?;
    }
    if !identical {
        bail!("the replayed views differ from the live ones");
    }
    Ok(format!(
        "## Replay ({} events on SQLite, {runs} runs)\n\n\
         `artifactstore admin replay` (a process: start, rebuild every view in one transaction, commit). \
         The log: {packages} packages, each `package.created`, `retention.default_applied` and {FILES} `file.ingested`. \
         After the runs the views are compared byte for byte with the live ones written as the log was appended: **identical**.\n\n\
         {TABLE_HEAD}\n{}\n\n{}\n",
        generated.events,
        row("events/s", &rates, "events/s", 0),
        verdict("replay events/s", rates.median(), "≥ 100000", rates.median() >= 100_000.0),
    ))
}

pub async fn list(env: &Env, packages: usize, runs: usize, queries: usize) -> Result<String> {
    let data = env.scratch("list")?;
    let url = format!("sqlite://{}", data.join("artifactstore.db").display());
    eprintln!("list: generating {packages} packages");
    let generated = generate(&url, packages, 0).await?;
    let server = Server::start(env, &data, &ServerSetup::default())?;
    let client = reqwest::Client::new();
    let mut filtered_p99 = Samples::default();
    let mut point_p99 = Samples::default();
    let mut filtered_all = Samples::default();
    let mut point_all = Samples::default();
    let mut draw = crate::harness::below(0x1234_5678);
    let mut next_random = move |n: usize| draw(n as u64) as usize;
    for run in 0..runs {
        eprintln!("list: run {}/{runs}", run + 1);
        let mut filtered = Samples::default();
        for q in 0..queries {
            let producer = next_random(PRODUCERS);
            let branch = next_random(BRANCHES);
            let mut url = format!(
                "{}/v1/packages?producer=p-{producer}&metadata.branch=b-{branch}&limit=100",
                server.url
            );
            // Every other query asks for a later page, via the cursor.
            if q % 2 == 1 {
                let first: serde_json::Value = client.get(&url).send().await?.json().await?;
                if let Some(next) = first["next"].as_i64() {
                    url.push_str(&format!("&after={next}"));
                }
            }
            let started = Instant::now();
            let response = client.get(&url).send().await?;
            let status = response.status();
            let body: serde_json::Value = response.json().await?;
            filtered.push(started.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success()
                || body["items"]
                    .as_array()
                    .is_none_or(|items| items.is_empty())
            {
                bail!("{url} answered {status} with no items");
            }
        }
        let mut point = Samples::default();
        for _ in 0..queries {
            let id = &generated.sample_ids[next_random(generated.sample_ids.len())];
            let started = Instant::now();
            let response = client
                .get(format!("{}/v1/packages/{id}", server.url))
                .send()
                .await?;
            let status = response.status();
            response.bytes().await?;
            point.push(started.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                bail!("GET package {id} answered {status}");
            }
        }
        filtered_p99.push(filtered.percentile(99.0));
        point_p99.push(point.percentile(99.0));
        filtered_all.extend(&filtered);
        point_all.extend(&point);
    }
    drop(server);
    std::fs::remove_dir_all(&data)?;
    Ok(format!(
        "## List ({packages} packages on SQLite, {runs} runs of {queries} queries each)\n\n\
         Filtered: `GET /v1/packages?producer=…&metadata.branch=…&limit=100` over {PRODUCERS} producers × {BRANCHES} branches \
         (about {} matches per pair), half of them a later page via `after`. Point: `GET /v1/packages/{{id}}`. \
         One client, sequential, over loopback HTTP. The median row is the median of each run's p99.\n\n\
         {TABLE_HEAD}\n{}\n{}\n| filtered page p50 over all runs | {:.2} ms | |\n| point lookup p50 over all runs | {:.2} ms | |\n\n{}\n{}\n",
        packages / PRODUCERS / BRANCHES,
        row("filtered page of 100, p99", &filtered_p99, "ms", 2),
        row("point lookup, p99", &point_p99, "ms", 2),
        filtered_all.median(),
        point_all.median(),
        verdict("filtered page p99 (ms)", filtered_p99.median(), "< 50", filtered_p99.median() < 50.0),
        verdict("point lookup p99 (ms)", point_p99.median(), "< 5", point_p99.median() < 5.0),
    ))
}
