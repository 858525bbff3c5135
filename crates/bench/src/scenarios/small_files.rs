//! Many small files from many clients at once: throughput of 201-durable
//! uploads and their latency, on SQLite and on PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::harness::{fill, package_body, Database, Env, Server, ServerSetup};
use crate::report::{row, verdict, Samples, TABLE_HEAD};

pub struct Shape {
    pub files: usize,
    pub packages: usize,
    pub clients: usize,
    pub file_bytes: usize,
}

struct Outcome {
    files_per_second: f64,
    latencies_ms: Samples,
}

async fn one_run(env: &Env, shape: &Shape, setup: &ServerSetup, seed: u64) -> Result<Outcome> {
    let data = env.scratch("small")?;
    let server = Server::start(env, &data, setup)?;
    let client = reqwest::Client::new();
    let mut packages = Vec::with_capacity(shape.packages);
    for i in 0..shape.packages {
        packages.push(
            server
                .create_package(&client, package_body(&format!("small-{i}")))
                .await?,
        );
    }
    let packages = Arc::new(packages);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..shape.clients {
        let (client, packages, next) = (client.clone(), packages.clone(), next.clone());
        let base = server.url.clone();
        let (files, file_bytes) = (shape.files, shape.file_bytes);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Samples::default();
            let mut state = seed ^ ((worker as u64 + 1) * 0x2545_F491_4F6C_DD1D);
            let mut body = vec![0u8; file_bytes];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                // Every file distinct, so no upload is deduplicated away.
                fill(&mut body, &mut state);
                body[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let url = format!(
                    "{base}/v1/packages/{}/files/f/{i}.bin",
                    packages[i % packages.len()]
                );
                let sent = Instant::now();
                let response = client.put(&url).body(body.clone()).send().await?;
                let status = response.status();
                response.bytes().await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                if status.as_u16() != 201 {
                    bail!("upload {i} answered {status}");
                }
            }
        }));
    }
    let mut latencies_ms = Samples::default();
    for task in tasks {
        latencies_ms.extend(&task.await??);
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(server);
    std::fs::remove_dir_all(&data)?;
    Ok(Outcome {
        files_per_second: shape.files as f64 / seconds,
        latencies_ms,
    })
}

pub async fn run(env: &Env, shape: &Shape, runs: usize) -> Result<String> {
    let mut out = format!(
        "## Small files ({} files of {} bytes into {} packages, {} concurrent clients, {runs} runs)\n\n\
         Every upload is a separate `PUT` answered 201 once durable. Latency percentiles are over every upload of every run.\n\n{TABLE_HEAD}\n",
        shape.files, shape.file_bytes, shape.packages, shape.clients
    );
    let mut verdicts = Vec::new();
    for (engine, goal) in [("SQLite", 3000.0), ("PostgreSQL", 1500.0)] {
        let mut rates = Samples::default();
        let mut latencies = Samples::default();
        for run in 0..runs {
            eprintln!("small files, {engine}: run {}/{runs}", run + 1);
            let database = if engine == "PostgreSQL" {
                Some(Database::create(env).await?)
            } else {
                None
            };
            let setup = ServerSetup {
                database_url: database.as_ref().map(|d| d.url.clone()),
                ..ServerSetup::default()
            };
            let outcome = one_run(env, shape, &setup, run as u64 + 7).await;
            if let Some(database) = database {
                database.drop_now().await?;
            }
            let outcome = outcome?;
            rates.push(outcome.files_per_second);
            latencies.extend(&outcome.latencies_ms);
        }
        out.push_str(&row(&format!("{engine}: files/s"), &rates, "files/s", 0));
        out.push('\n');
        out.push_str(&format!(
            "| {engine}: latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | |\n",
            latencies.median(),
            latencies.percentile(99.0),
            latencies.max()
        ));
        verdicts.push(verdict(
            &format!("{engine} files/s"),
            rates.median(),
            &format!("≥ {goal}"),
            rates.median() >= goal,
        ));
    }
    out.push('\n');
    out.push_str(&verdicts.join("\n"));
    out.push('\n');
    Ok(out)
}
