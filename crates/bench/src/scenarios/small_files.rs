//! Many small files from many clients at once: throughput of 201-durable
//! uploads and their latency, on SQLite and on PostgreSQL.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::harness::{
    config_file, context_switches, cpu_seconds, fill, machine_cpu_seconds, package_body,
    processes_cpu_seconds, user_and_kernel_cpu_seconds, with_engine, Env, Server, ServerSetup,
};
use crate::report::{row, verdict, Samples, TABLE_HEAD};

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub files: usize,
    pub packages: usize,
    pub clients: usize,
    pub file_bytes: usize,
    /// The server requires an API token and the clients present one.
    pub with_token: bool,
}

pub(crate) struct Outcome {
    pub(crate) files_per_second: f64,
    /// Every file downloaded again by the same clients, each on its
    /// kept-alive connection.
    downloads_per_second: f64,
    latencies_ms: Samples,
    /// CPU milliseconds per upload: the server's, and this client's.
    server_cpu_ms: f64,
    client_cpu_ms: f64,
    /// The server's context switches per upload, every thread: each is a
    /// hand-over between threads or a wait (for the disk, a lock).
    server_switches: f64,
    /// The part of `server_cpu_ms` spent in the kernel.
    server_kernel_cpu_ms: f64,
    /// CPU milliseconds per upload of PostgreSQL's processes; `None` on SQLite.
    database_cpu_ms: Option<f64>,
    /// CPU milliseconds per upload of the whole machine, every process and
    /// the kernel's own threads, and the share of its cores that was busy.
    machine_cpu_ms: f64,
    machine_busy: f64,
    /// Removed at the end of the scenario: ext4 without a journal skips
    /// the inodes freed in the last half minute or so when it allocates
    /// new ones, checking each, which slows whatever creates files next
    /// several-fold (docs/benchmarks.md, issue 24).
    pub(crate) data: std::path::PathBuf,
}

pub(crate) async fn one_run(
    env: &Env,
    shape: &Shape,
    setup: &ServerSetup,
    seed: u64,
) -> Result<Outcome> {
    let data = env.scratch("small")?;
    let mut setup = setup.clone();
    let client = if shape.with_token {
        setup.extra.push_str("[auth]\nrequired = true\n");
        let token = write_token(env, &data, &setup)?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()?
    } else {
        reqwest::Client::new()
    };
    let server = Server::start(env, &data, &setup)?;
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
    let client_cpu = cpu_seconds(std::process::id())?;
    let (server_user_cpu, server_kernel_cpu) = user_and_kernel_cpu_seconds(server.pid())?;
    let server_switches = context_switches(server.pid())?;
    let on_postgres = setup.database_url.is_some();
    let database_cpu = || -> Result<Option<f64>> {
        Ok(if on_postgres {
            Some(processes_cpu_seconds("postgres")?)
        } else {
            None
        })
    };
    let database_cpu_before = database_cpu()?;
    let (machine_busy, machine_total) = machine_cpu_seconds()?;
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
    let per_file_ms = |cpu: f64| cpu * 1000.0 / shape.files as f64;
    let (user, kernel) = user_and_kernel_cpu_seconds(server.pid())?;
    let server_kernel_cpu_ms = per_file_ms(kernel - server_kernel_cpu);
    let server_cpu_ms = per_file_ms(user - server_user_cpu) + server_kernel_cpu_ms;
    let client_cpu_ms = per_file_ms(cpu_seconds(std::process::id())? - client_cpu);
    let server_switches =
        context_switches(server.pid())?.saturating_sub(server_switches) as f64 / shape.files as f64;
    let database_cpu_ms = database_cpu()?
        .zip(database_cpu_before)
        .map(|(after, before)| per_file_ms(after - before));
    let (busy, total) = machine_cpu_seconds()?;
    let downloads_per_second = download_all(&client, &server.url, &packages, shape).await?;
    drop(server);
    Ok(Outcome {
        files_per_second: shape.files as f64 / seconds,
        downloads_per_second,
        latencies_ms,
        server_cpu_ms,
        client_cpu_ms,
        server_switches,
        server_kernel_cpu_ms,
        database_cpu_ms,
        machine_cpu_ms: per_file_ms(busy - machine_busy),
        machine_busy: (busy - machine_busy) / (total - machine_total),
        data,
    })
}

/// GETs every file the run uploaded, from `shape.clients` tasks; returns
/// files per second and checks each file's length.
async fn download_all(
    client: &reqwest::Client,
    base: &str,
    packages: &Arc<Vec<String>>,
    shape: &Shape,
) -> Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..shape.clients {
        let (client, packages, next) = (client.clone(), packages.clone(), next.clone());
        let base = base.to_owned();
        let (files, file_bytes) = (shape.files, shape.file_bytes);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files {
                    return Ok::<_, anyhow::Error>(());
                }
                let url = format!(
                    "{base}/v1/packages/{}/files/f/{i}.bin",
                    packages[i % packages.len()]
                );
                let body = client
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                if body.len() != file_bytes {
                    bail!("GET {url} gave {} bytes, not {file_bytes}", body.len());
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(shape.files as f64 / start.elapsed().as_secs_f64())
}

/// The floor without HTTP or a database: `clients` tasks storing the same
/// number of distinct small files durably through the filesystem backend
/// itself (the server's code for the bytes, without hashing SHA-256, HTTP
/// or the event log).
async fn durable_files_reference(env: &Env, shape: &Shape, seed: u64) -> Result<Reference> {
    use artifactstore_storage::{Backend, FilesystemBackend};
    let root = env.scratch("small-reference")?;
    let backend = Arc::new(FilesystemBackend::open("reference", &root).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let (busy_before, total_before) = machine_cpu_seconds()?;
    let start = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..shape.clients {
        let (backend, next) = (backend.clone(), next.clone());
        let (files, file_bytes) = (shape.files, shape.file_bytes);
        workers.push(tokio::spawn(async move {
            let mut state = seed ^ ((worker as u64 + 1) * 0x9E37_79B9_7F4A_7C15);
            let mut body = vec![0u8; file_bytes];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files {
                    return Ok::<_, anyhow::Error>(());
                }
                fill(&mut body, &mut state);
                let key = artifactstore_core::ContentAddress::of(&body).object_key();
                let mut writer = backend.begin_write().await?;
                writer.write(bytes::Bytes::copy_from_slice(&body)).await?;
                writer.commit(&key).await?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let (busy, total) = machine_cpu_seconds()?;
    Ok(Reference {
        files_per_second: shape.files as f64 / seconds,
        machine_cpu_ms: (busy - busy_before) * 1000.0 / shape.files as f64,
        machine_busy: (busy - busy_before) / (total - total_before),
        root,
    })
}

/// What one run of [`durable_files_reference`] measured.
struct Reference {
    files_per_second: f64,
    /// The whole machine's CPU per file stored (mostly the kernel's).
    machine_cpu_ms: f64,
    /// Busy share of all cores during the run.
    machine_busy: f64,
    root: PathBuf,
}

/// The medians of one level of concurrency, for the table across levels.
struct Level {
    clients: usize,
    reference: f64,
    /// Files/s and server CPU per upload (ms), SQLite then PostgreSQL.
    engines: Vec<(f64, f64)>,
}

/// The small-files scenario at each number of concurrent clients in
/// `levels`: a section per level, then the ratios to the reference side
/// by side, level by level.
pub async fn run(env: &Env, shape: &Shape, levels: &[usize], runs: usize) -> Result<String> {
    let mut sections = Vec::new();
    let mut summary = Vec::new();
    let mut leftovers = Vec::new();
    let measured: Result<()> = async {
        for &clients in levels {
            let shape = Shape {
                clients: clients.max(1),
                ..*shape
            };
            let (section, level) = one_level(env, &shape, runs, &mut leftovers).await?;
            sections.push(section);
            summary.push(level);
        }
        Ok(())
    }
    .await;
    // Removed whether or not every level ran: a failed run would
    // otherwise leave tens of thousands of files in BENCH_DIR each time.
    for dir in leftovers {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("small-files: could not remove {}: {e}", dir.display());
        }
    }
    measured?;
    let mut out = format!(
        "## Small files across client levels ({} files of {} bytes into {} packages, {runs} runs at each level)\n\n\
         The medians of the sections below, side by side. Reference: the filesystem backend alone storing the same files durably from as many tasks, no HTTP or database. \
         Goals (issue 24): SQLite ≥ 0.8 × the reference, PostgreSQL ≥ 0.6 ×, server CPU ≤ 0.3 ms per upload.\n\n\
         | clients | reference files/s | SQLite files/s | SQLite / reference | SQLite server CPU per upload | PostgreSQL files/s | PostgreSQL / reference | PostgreSQL server CPU per upload |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        shape.files, shape.file_bytes, shape.packages
    );
    for level in &summary {
        let [(sqlite, sqlite_cpu), (postgres, postgres_cpu)] = level.engines[..] else {
            bail!("a level measured {} engines, not two", level.engines.len());
        };
        out.push_str(&format!(
            "| {} | {:.0} | {sqlite:.0} | **{:.2}** | {sqlite_cpu:.2} ms | {postgres:.0} | **{:.2}** | {postgres_cpu:.2} ms |\n",
            level.clients,
            level.reference,
            sqlite / level.reference,
            postgres / level.reference,
        ));
    }
    for section in sections {
        out.push('\n');
        out.push_str(&section);
    }
    Ok(out)
}

/// Creates a write token in the state `setup` names (before its server
/// starts) and returns its text.
fn write_token(env: &Env, data: &std::path::Path, setup: &ServerSetup) -> Result<String> {
    let config = config_file(data, setup)?;
    let output = std::process::Command::new(&env.binary)
        .args([
            "--json", "admin", "token", "create", "--scope", "write", "--name", "bench", "--config",
        ])
        .arg(&config)
        .output()?;
    if !output.status.success() {
        bail!(
            "creating the bench's token failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    match shown["token"].as_str() {
        Some(token) => Ok(token.to_owned()),
        None => bail!("`admin token create --json` printed no token: {shown}"),
    }
}

/// The uploads' limits raised to `clients`, so that none is turned away
/// as busy (429) while every client has one upload in flight.
fn limits_for(clients: usize) -> String {
    format!(
        "[limits]\nmax_concurrent_uploads = {}\nmax_uploads_per_caller = {clients}\n",
        clients.max(64)
    )
}

/// What one engine measured over the runs of one level.
#[derive(Default)]
struct EngineSamples {
    rates: Samples,
    download_rates: Samples,
    latencies: Samples,
    server_cpu: Samples,
    client_cpu: Samples,
    server_switches: Samples,
    server_kernel_cpu: Samples,
    database_cpu: Samples,
    machine_cpu: Samples,
    machine_busy: Samples,
}

impl EngineSamples {
    fn push(&mut self, outcome: &Outcome) {
        self.rates.push(outcome.files_per_second);
        self.download_rates.push(outcome.downloads_per_second);
        self.server_cpu.push(outcome.server_cpu_ms);
        self.client_cpu.push(outcome.client_cpu_ms);
        self.server_switches.push(outcome.server_switches);
        self.server_kernel_cpu.push(outcome.server_kernel_cpu_ms);
        if let Some(ms) = outcome.database_cpu_ms {
            self.database_cpu.push(ms);
        }
        self.machine_cpu.push(outcome.machine_cpu_ms);
        self.machine_busy.push(outcome.machine_busy * 100.0);
        self.latencies.extend(&outcome.latencies_ms);
    }

    /// The engine's rows of the level's table; a figure this engine does
    /// not have (the database's CPU, on SQLite) is left out.
    fn rows(&self, engine: &str) -> String {
        let latency = format!(
            "| {engine}: latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | |",
            self.latencies.median(),
            self.latencies.percentile(99.0),
            self.latencies.max()
        );
        let figures = [
            ("files/s", &self.rates, "files/s", 0),
            (
                "downloads of every file afterwards, same clients",
                &self.download_rates,
                "files/s",
                0,
            ),
            ("server CPU per upload", &self.server_cpu, "ms", 2),
            (
                "of which in the kernel (system calls, the file system, wake-ups)",
                &self.server_kernel_cpu,
                "ms",
                2,
            ),
            (
                "server context switches per upload",
                &self.server_switches,
                "switches",
                1,
            ),
            ("client CPU per upload", &self.client_cpu, "ms", 2),
            ("the database's CPU per upload", &self.database_cpu, "ms", 2),
            (
                "whole machine's CPU per upload (every process and kernel thread)",
                &self.machine_cpu,
                "ms",
                2,
            ),
            (
                "machine busy (share of all cores)",
                &self.machine_busy,
                "%",
                0,
            ),
        ];
        let mut lines: Vec<String> = figures
            .iter()
            .filter(|(_, samples, _, _)| samples.median().is_finite())
            .map(|(name, samples, unit, decimals)| {
                row(&format!("{engine}: {name}"), samples, unit, *decimals)
            })
            .collect();
        // After the two throughputs, as before.
        lines.insert(2.min(lines.len()), latency);
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }
}

/// One level of concurrency. Each run measures the reference, SQLite and
/// PostgreSQL back to back, so that the disk's drift over the level
/// (this one's speed moved two-fold within minutes) falls on all three
/// alike. The runs' data is left in `leftovers` for the caller to remove
/// once every level has run.
async fn one_level(
    env: &Env,
    shape: &Shape,
    runs: usize,
    leftovers: &mut Vec<PathBuf>,
) -> Result<(String, Level)> {
    let mut out = format!(
        "## Small files ({} files of {} bytes into {} packages, {} concurrent clients, {runs} runs)\n\n\
         Every upload is a separate `PUT` answered 201 once durable. Latency percentiles are over every upload of every run. After the uploads the same clients `GET` every file back, each on its kept-alive connection (no goal: it shows what a client reading many small files sees).{}\n\n{TABLE_HEAD}\n",
        shape.files,
        shape.file_bytes,
        shape.packages,
        shape.clients,
        if shape.with_token {
            " The server requires an API token, and every request presents one (`--with-token`)."
        } else {
            ""
        }
    );
    let mut reference = Samples::default();
    let (mut reference_cpu, mut reference_busy) = (Samples::default(), Samples::default());
    let engines = [("SQLite", 3000.0), ("PostgreSQL", 1500.0)];
    let mut measured: Vec<EngineSamples> =
        engines.iter().map(|_| EngineSamples::default()).collect();
    for run in 0..runs {
        eprintln!("small files, filesystem reference: run {}/{runs}", run + 1);
        let taken = durable_files_reference(env, shape, run as u64 + 7).await?;
        reference.push(taken.files_per_second);
        reference_cpu.push(taken.machine_cpu_ms);
        reference_busy.push(taken.machine_busy * 100.0);
        leftovers.push(taken.root);
        for ((engine, _), samples) in engines.iter().zip(&mut measured) {
            eprintln!("small files, {engine}: run {}/{runs}", run + 1);
            let outcome = with_engine(env, *engine == "PostgreSQL", |setup| async move {
                let setup = ServerSetup {
                    extra: limits_for(shape.clients),
                    ..setup
                };
                one_run(env, shape, &setup, run as u64 + 7).await
            })
            .await?;
            samples.push(&outcome);
            leftovers.push(outcome.data);
        }
    }
    for (name, samples, unit, decimals) in [
        (
            "reference: the filesystem backend alone storing the files durably, no HTTP or database",
            &reference,
            "files/s",
            0,
        ),
        (
            "reference: whole machine's CPU per file",
            &reference_cpu,
            "ms",
            2,
        ),
        (
            "reference: machine busy (share of all cores)",
            &reference_busy,
            "%",
            0,
        ),
    ] {
        out.push_str(&row(name, samples, unit, decimals));
        out.push('\n');
    }
    let mut level = Level {
        clients: shape.clients,
        reference: reference.median(),
        engines: Vec::new(),
    };
    let mut verdicts = Vec::new();
    for ((engine, goal), samples) in engines.iter().zip(&measured) {
        out.push_str(&samples.rows(engine));
        let rate = samples.rates.median();
        verdicts.push(verdict(
            &format!("{engine} files/s"),
            rate,
            &format!("≥ {goal}"),
            rate >= *goal,
        ));
        verdicts.push(format!(
            "- {engine} / the filesystem reference = {:.2}",
            rate / reference.median()
        ));
        level.engines.push((rate, samples.server_cpu.median()));
    }
    out.push('\n');
    out.push_str(&verdicts.join("\n"));
    out.push('\n');
    Ok((out, level))
}
