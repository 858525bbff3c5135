//! One large file: ingest (to the filesystem and through the server into
//! Garage), download, and server memory, each beside its references
//! (`openssl dgst -sha256`, `dd conv=fsync`, nginx, direct Garage PUT/GET)
//! interleaved run by run so drift in the machine's load hits all alike.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};
use artifactstore_core::digest::{ContentAddress, Digest32};
use futures::StreamExt;
use object_store::{ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::harness::{
    cpu_seconds, generate, memory_kib, package_body, processes_cpu_seconds, timed, Env, Garage,
    Nginx, Server, ServerSetup,
};
use crate::report::{gb_per_s, row, verdict, Samples, TABLE_HEAD};

/// The server's multipart settings, so a direct PUT is the same work.
const PART_BYTES: usize = 16 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 3;

#[derive(Default)]
struct Figures {
    openssl: Samples,
    dd: Samples,
    put_fs: Samples,
    rss_fs: Samples,
    get_ours: Samples,
    get_nginx: Samples,
    put_garage: Samples,
    get_garage: Samples,
    put_via_s3: Samples,
    put_via_s3_undeclared: Samples,
    rss_s3: Samples,
    cpu_server_fs: Samples,
    cpu_client_fs: Samples,
    cpu_garage_direct: Samples,
    cpu_client_direct: Samples,
    cpu_server_s3: Samples,
    cpu_garage_s3: Samples,
    cpu_server_get: Samples,
    cpu_nginx_get: Samples,
    cpu_client_get_ours: Samples,
    cpu_client_get_nginx: Samples,
}

/// The BLAKE3 of a file, as `artifactstore push` computes before it uploads.
pub(crate) fn blake3_of_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = artifactstore_core::digest::Blake3Hasher::default();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize().to_hex());
        }
        hasher.update(&buffer[..n]);
    }
}

async fn put(
    client: &reqwest::Client,
    server: &Server,
    path: &Path,
    declared_blake3: Option<&str>,
) -> Result<(String, f64)> {
    let package = server.create_package(client, package_body("large")).await?;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    // Read straight into what is sent: the load generator copies each byte once.
    let body = reqwest::Body::wrap_stream(artifactstore_storage::file_chunks(file, size));
    let url = format!("{}/v1/packages/{package}/files/big.bin", server.url);
    let mut request = client.put(&url).header("Content-Length", size);
    if let Some(blake3) = declared_blake3 {
        request = request.header("X-Content-Blake3", blake3);
    }
    let start = Instant::now();
    let response = request.body(body).send().await?;
    let seconds = start.elapsed().as_secs_f64();
    if response.status().as_u16() != 201 {
        let status = response.status();
        // The problem document says why (the server's log goes nowhere).
        let problem = response.text().await.unwrap_or_default();
        bail!("upload to {url} answered {status}: {problem}");
    }
    Ok((url, seconds))
}

/// Reads `path` once so that its pages are in the page cache.
fn warm_page_cache(path: &Path) -> Result<()> {
    std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
    Ok(())
}

/// Seconds to GET `url` and drop every byte; checks the length.
async fn get(client: &reqwest::Client, url: &str, size: u64) -> Result<f64> {
    let start = Instant::now();
    let response = client.get(url).send().await?.error_for_status()?;
    let mut body = response.bytes_stream();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        received += chunk?.len() as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    if received != size {
        bail!("GET {url} gave {received} bytes, not {size}");
    }
    Ok(seconds)
}

async fn garage_put(garage: &Garage, path: &Path) -> Result<f64> {
    let store = garage.s3.client()?;
    let mut file = tokio::fs::File::open(path).await?;
    let start = Instant::now();
    let upload = store
        .put_multipart(&object_store::path::Path::from("direct/big.bin"))
        .await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        writer.write(&buffer[..n]);
    }
    writer.finish().await?;
    Ok(start.elapsed().as_secs_f64())
}

async fn garage_get(garage: &Garage, size: u64) -> Result<f64> {
    let store = garage.s3.client()?;
    let start = Instant::now();
    let mut stream = store
        .get(&object_store::path::Path::from("direct/big.bin"))
        .await?
        .into_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        received += chunk?.len() as u64;
    }
    if received != size {
        bail!("Garage GET gave {received} bytes, not {size}");
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Runs the ingest with the server's peak RSS growth over its idle RSS.
async fn measured_put(
    client: &reqwest::Client,
    server: &Server,
    input: &Path,
    declared_blake3: Option<&str>,
) -> Result<(String, f64, f64)> {
    let idle = memory_kib(server.pid(), "VmRSS:")?;
    let (url, seconds) = put(client, server, input, declared_blake3).await?;
    let peak = memory_kib(server.pid(), "VmHWM:")?;
    Ok((url, seconds, peak.saturating_sub(idle) as f64 / 1024.0))
}

pub async fn run(env: &Env, size_mib: u64, runs: usize) -> Result<String> {
    let dir = env.scratch("large")?;
    let input = dir.join("input.bin");
    let size = size_mib << 20;
    eprintln!("large file: generating {size_mib} MiB");
    generate(&input, size, 1)?;
    let blake3 = blake3_of_file(&input)?;
    let declared = Some(blake3.as_str());
    let object_key = ContentAddress(Digest32::from_hex(&blake3)?).object_key();
    let nginx = Nginx::start(env, &dir)?;
    let client = reqwest::Client::new();
    let mut f = Figures::default();
    for run in 0..runs {
        eprintln!("large file: run {}/{runs}", run + 1);
        f.openssl.push(timed(
            Command::new("openssl")
                .args(["dgst", "-sha256"])
                .arg(&input),
        )?);
        let copy = dir.join("dd.bin");
        f.dd.push(timed(
            Command::new("dd")
                .arg(format!("if={}", input.display()))
                .arg(format!("of={}", copy.display()))
                .args(["bs=1M", "conv=fsync"]),
        )?);
        std::fs::remove_file(&copy)?;

        let data_name = format!("data-fs-{run}");
        let data = dir.join(&data_name);
        {
            let server = Server::start(env, &data, &ServerSetup::default())?;
            let (cpu, own_cpu) = (cpu_seconds(server.pid())?, cpu_seconds(std::process::id())?);
            let (url, seconds, growth) = measured_put(&client, &server, &input, declared).await?;
            f.cpu_server_fs.push(cpu_seconds(server.pid())? - cpu);
            f.cpu_client_fs
                .push(cpu_seconds(std::process::id())? - own_cpu);
            f.put_fs.push(seconds);
            f.rss_fs.push(growth);
            // Both servers send the one stored object, each from the page
            // cache: the upload bypassed it (direct I/O), so it is read
            // once before each GET.
            // The embedded default's backend `local` is `<data_dir>/objects`.
            let object = data.join("objects").join(&object_key);
            warm_page_cache(&object)?;
            let (server_cpu, own_cpu) =
                (cpu_seconds(server.pid())?, cpu_seconds(std::process::id())?);
            f.get_ours.push(get(&client, &url, size).await?);
            f.cpu_server_get
                .push(cpu_seconds(server.pid())? - server_cpu);
            f.cpu_client_get_ours
                .push(cpu_seconds(std::process::id())? - own_cpu);
            warm_page_cache(&object)?;
            let (nginx_cpu, own_cpu) = (
                processes_cpu_seconds("nginx")?,
                cpu_seconds(std::process::id())?,
            );
            let nginx_url = format!("{}/{data_name}/objects/{object_key}", nginx.url);
            f.get_nginx.push(get(&client, &nginx_url, size).await?);
            f.cpu_nginx_get
                .push(processes_cpu_seconds("nginx")? - nginx_cpu);
            f.cpu_client_get_nginx
                .push(cpu_seconds(std::process::id())? - own_cpu);
        }
        std::fs::remove_dir_all(&data)?;

        {
            let garage = Garage::start(env)?;
            let (garage_cpu, own_cpu) = (
                cpu_seconds(garage.pid()?)?,
                cpu_seconds(std::process::id())?,
            );
            f.put_garage.push(garage_put(&garage, &input).await?);
            f.cpu_garage_direct
                .push(cpu_seconds(garage.pid()?)? - garage_cpu);
            f.cpu_client_direct
                .push(cpu_seconds(std::process::id())? - own_cpu);
            f.get_garage.push(garage_get(&garage, size).await?);
        }
        for declare in [true, false] {
            let garage = Garage::start(env)?;
            let data = dir.join(format!("data-s3-{run}-{declare}"));
            let setup = ServerSetup {
                s3: Some(garage.s3.clone()),
                ..ServerSetup::default()
            };
            let server = Server::start(env, &data, &setup)?;
            if declare {
                let (server_cpu, garage_cpu) =
                    (cpu_seconds(server.pid())?, cpu_seconds(garage.pid()?)?);
                let (_, seconds, growth) = measured_put(&client, &server, &input, declared).await?;
                f.put_via_s3.push(seconds);
                f.rss_s3.push(growth);
                f.cpu_server_s3
                    .push(cpu_seconds(server.pid())? - server_cpu);
                f.cpu_garage_s3
                    .push(cpu_seconds(garage.pid()?)? - garage_cpu);
            } else {
                let (_, seconds, _) = measured_put(&client, &server, &input, None).await?;
                f.put_via_s3_undeclared.push(seconds);
            }
            drop(server);
            std::fs::remove_dir_all(&data)?;
        }
    }
    drop(nginx);
    std::fs::remove_dir_all(&dir)?;

    let rate = gb_per_s(size);
    let r = |s: &Samples| s.map(&rate);
    let median = |s: &Samples| r(s).median();
    let floor = median(&f.openssl).min(median(&f.dd));
    let mut out = format!(
        "## Large file ({size_mib} MiB, {runs} runs)\n\nRates in GB/s (10^9 bytes per second). artifactstore PUTs send `X-Content-Blake3` as `artifactstore push` does (it hashes before uploading), except the row marked undeclared. A fresh Garage serves each Garage figure, so no block is deduplicated from an earlier upload. RSS growth is the server's peak RSS (VmHWM) minus its idle RSS before the upload (Garage backend: declared upload). The two GETs on the filesystem send the same file, the object the server stored (nginx's root holds the server's data directory), each after the harness read it once: the upload wrote it with direct I/O, past the page cache, and both serve it from there.\n\n{TABLE_HEAD}\n"
    );
    for (name, samples) in [
        ("openssl dgst -sha256", &f.openssl),
        ("dd bs=1M conv=fsync", &f.dd),
        ("artifactstore PUT, filesystem (201 durable)", &f.put_fs),
        ("Garage PUT, direct (object_store multipart)", &f.put_garage),
        (
            "artifactstore PUT into Garage, BLAKE3 declared (201 durable)",
            &f.put_via_s3,
        ),
        (
            "artifactstore PUT into Garage, undeclared (201 durable)",
            &f.put_via_s3_undeclared,
        ),
        ("artifactstore GET", &f.get_ours),
        ("nginx GET (sendfile)", &f.get_nginx),
        ("Garage GET, direct", &f.get_garage),
    ] {
        out.push_str(&row(name, &r(samples), "GB/s", 3));
        out.push('\n');
    }
    out.push_str(&row("server RSS growth, filesystem", &f.rss_fs, "MiB", 1));
    out.push('\n');
    out.push_str(&row(
        "server RSS growth, Garage backend",
        &f.rss_s3,
        "MiB",
        1,
    ));
    out.push('\n');
    for (name, samples) in [
        (
            "CPU: artifactstore server, PUT to filesystem",
            &f.cpu_server_fs,
        ),
        (
            "CPU: the PUT client (bench process), PUT to filesystem",
            &f.cpu_client_fs,
        ),
        ("CPU: Garage, direct PUT", &f.cpu_garage_direct),
        (
            "CPU: the S3 client (bench process), direct PUT",
            &f.cpu_client_direct,
        ),
        (
            "CPU: artifactstore server, PUT into Garage",
            &f.cpu_server_s3,
        ),
        ("CPU: Garage, PUT through artifactstore", &f.cpu_garage_s3),
        ("CPU: artifactstore server, GET", &f.cpu_server_get),
        ("CPU: nginx (master and workers), GET", &f.cpu_nginx_get),
        (
            "CPU: the GET client (bench process), artifactstore GET",
            &f.cpu_client_get_ours,
        ),
        (
            "CPU: the GET client (bench process), nginx GET",
            &f.cpu_client_get_nginx,
        ),
    ] {
        out.push_str(&row(name, samples, "s", 2));
        out.push('\n');
    }
    out.push_str("\nRatios of medians measured in this run:\n\n");
    let ingest_ratio = median(&f.put_fs) / floor;
    let lines = [
        verdict(
            "ingest / min(openssl, dd)",
            ingest_ratio,
            "≥ 0.8",
            ingest_ratio >= 0.8,
        ),
        {
            let v = median(&f.put_fs) / median(&f.put_garage);
            verdict("ingest / Garage PUT", v, "≥ 3", v >= 3.0)
        },
        verdict(
            "ingest RSS growth, filesystem (MiB, max of runs)",
            f.rss_fs.max(),
            "≤ 64",
            f.rss_fs.max() <= 64.0,
        ),
        verdict(
            "ingest RSS growth, Garage backend (MiB, max of runs)",
            f.rss_s3.max(),
            "≤ 128",
            f.rss_s3.max() <= 128.0,
        ),
        {
            let v = median(&f.get_ours) / median(&f.get_nginx);
            verdict("GET / nginx GET", v, "≥ 0.8", v >= 0.8)
        },
        {
            let v = median(&f.get_ours) / median(&f.get_garage);
            verdict("GET / Garage GET", v, "≥ 1.5", v >= 1.5)
        },
        {
            let v = median(&f.put_via_s3) / median(&f.put_garage);
            verdict("PUT into Garage / direct Garage PUT", v, "≥ 1", v >= 1.0)
        },
        format!(
            "- for comparison, undeclared PUT into Garage / direct Garage PUT = {:.2} (staging upload, then a server-side copy)",
            median(&f.put_via_s3_undeclared) / median(&f.put_garage)
        ),
    ];
    out.push_str(&lines.join("\n"));
    out.push('\n');
    Ok(out)
}
