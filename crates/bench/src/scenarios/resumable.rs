//! A resumable (tus) upload against a single PUT of the same file, side by
//! side: each run uploads the file both ways, in alternating order, each
//! into a fresh server (so neither finds the object stored already), and
//! records time and the server's peak RSS growth.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use base64::Engine as _;

use crate::harness::{cpu_seconds, generate, memory_kib, package_body, Env, Server, ServerSetup};
use crate::report::{gb_per_s, row, verdict, Samples, TABLE_HEAD};

fn blake3_of_file(path: &Path) -> Result<String> {
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

/// One PUT with the BLAKE3 declared (as `artifactstore push` sends).
async fn put(client: &reqwest::Client, server: &Server, path: &Path, blake3: &str) -> Result<f64> {
    let package = server.create_package(client, package_body("put")).await?;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let body = reqwest::Body::wrap_stream(artifactstore_storage::file_chunks(file, size));
    let url = format!("{}/v1/packages/{package}/files/big.bin", server.url);
    let start = Instant::now();
    let response = client
        .put(&url)
        .header("Content-Length", size)
        .header("X-Content-Blake3", blake3)
        .body(body)
        .send()
        .await?;
    let seconds = start.elapsed().as_secs_f64();
    if response.status().as_u16() != 201 {
        bail!("PUT answered {}", response.status());
    }
    Ok(seconds)
}

/// One tus upload: creation, then PATCHes of `patch_bytes` (BLAKE3
/// declared in the metadata, as `artifactstore push` sends it). Returns
/// the whole upload's seconds and each whole-size PATCH's, from its send
/// to its 204.
async fn tus(
    client: &reqwest::Client,
    server: &Server,
    path: &Path,
    blake3: &str,
    patch_bytes: u64,
) -> Result<(f64, Samples)> {
    use std::io::{Seek, SeekFrom};
    let package = server.create_package(client, package_body("tus")).await?;
    let size = std::fs::metadata(path)?.len();
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let start = Instant::now();
    let created = client
        .post(format!("{}/v1/packages/{package}/uploads", server.url))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", size)
        .header(
            "Upload-Metadata",
            format!("relative_path {},blake3 {}", b64("big.bin"), b64(blake3)),
        )
        .send()
        .await?;
    let Some(location) = created.headers().get("location") else {
        bail!("creation answered {} without Location", created.status());
    };
    let url = format!("{}{}", server.url, location.to_str()?);
    let mut offset = 0;
    let mut patches = Samples::default();
    while offset < size {
        let length = patch_bytes.min(size - offset);
        let sent = Instant::now();
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let body = reqwest::Body::wrap_stream(artifactstore_storage::file_chunks(file, length));
        let response = client
            .patch(&url)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Content-Length", length)
            .header("Upload-Offset", offset)
            .body(body)
            .send()
            .await?;
        if response.status().as_u16() != 204 {
            bail!("PATCH at {offset} answered {}", response.status());
        }
        if length == patch_bytes {
            patches.push(sent.elapsed().as_secs_f64());
        }
        offset += length;
    }
    Ok((start.elapsed().as_secs_f64(), patches))
}

pub async fn run(env: &Env, size_mib: u64, patch_mib: u64, runs: usize) -> Result<String> {
    let dir = env.scratch("resumable")?;
    let input = dir.join("input.bin");
    let size = size_mib << 20;
    eprintln!("resumable: generating {size_mib} MiB");
    generate(&input, size, 2)?;
    let blake3 = blake3_of_file(&input)?;
    let client = reqwest::Client::new();
    let (mut put_s, mut tus_s, mut put_rss, mut tus_rss) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let (mut put_cpu, mut tus_cpu) = (Samples::default(), Samples::default());
    // Each run's two uploads minutes apart at most: their ratio is spared
    // the drift of this kind of machine's speed between runs, which the
    // ratio of the medians is not.
    let mut pair_ratios = Samples::default();
    // Each run's median PATCH, and how much longer it took than its bytes
    // at the same run's PUT rate: the cost of a request (its round trip,
    // the lock, the last part's write, the flush, the row) that the
    // ratio only shows through the drift between runs.
    let (mut patch_ms, mut patch_beyond_ms) = (Samples::default(), Samples::default());
    for run in 0..runs {
        eprintln!("resumable: run {}/{runs}", run + 1);
        let order = if run % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut pair_seconds = [0.0; 2];
        let mut patches = Samples::default();
        for resumable in order {
            let data = dir.join(format!("data-{run}-{resumable}"));
            let server = Server::start(env, &data, &ServerSetup::default())?;
            let idle = memory_kib(server.pid(), "VmRSS:")?;
            let cpu_before = cpu_seconds(server.pid())?;
            let seconds = if resumable {
                let (seconds, each) =
                    tus(&client, &server, &input, &blake3, patch_mib << 20).await?;
                patches = each;
                seconds
            } else {
                put(&client, &server, &input, &blake3).await?
            };
            pair_seconds[usize::from(resumable)] = seconds;
            let cpu = cpu_seconds(server.pid())? - cpu_before;
            let growth = memory_kib(server.pid(), "VmHWM:")?.saturating_sub(idle) as f64 / 1024.0;
            if resumable {
                tus_s.push(seconds);
                tus_rss.push(growth);
                tus_cpu.push(cpu);
            } else {
                put_s.push(seconds);
                put_rss.push(growth);
                put_cpu.push(cpu);
            }
            drop(server);
            std::fs::remove_dir_all(&data)?;
        }
        pair_ratios.push(pair_seconds[0] / pair_seconds[1]);
        if !patches.is_empty() {
            let at_put_rate = pair_seconds[0] * (patch_mib << 20) as f64 / size as f64;
            patch_ms.push(patches.median() * 1e3);
            patch_beyond_ms.push((patches.median() - at_put_rate) * 1e3);
        }
    }
    std::fs::remove_dir_all(&dir)?;
    let rate = gb_per_s(size);
    let (put_rate, tus_rate) = (put_s.map(&rate), tus_s.map(&rate));
    let ratio = tus_rate.median() / put_rate.median();
    let mut out = format!(
        "## Resumable upload ({size_mib} MiB, {runs} runs)\n\nRates in GB/s. The same file through a fresh server (filesystem backend) each time, alternating which goes first: one PUT, and a tus upload (creation, then PATCHes of {patch_mib} MiB), both with the BLAKE3 declared as `artifactstore push` sends it. RSS growth is the server's peak RSS (VmHWM) minus its idle RSS. Server CPU is its user and system time over the upload, all threads: on two cores shared with the client it bounds the rate, and it varies less from run to run than the rate does.\n\n{TABLE_HEAD}\n"
    );
    out.push_str(&row("PUT (201 durable)", &put_rate, "GB/s", 3));
    out.push('\n');
    out.push_str(&row(
        &format!("tus, {patch_mib} MiB PATCHes (last 204: durable, recorded)"),
        &tus_rate,
        "GB/s",
        3,
    ));
    out.push('\n');
    out.push_str(&row("server RSS growth, PUT", &put_rss, "MiB", 1));
    out.push('\n');
    out.push_str(&row("server RSS growth, tus", &tus_rss, "MiB", 1));
    out.push('\n');
    out.push_str(&row("server CPU, PUT", &put_cpu, "s", 2));
    out.push('\n');
    out.push_str(&row("server CPU, tus", &tus_cpu, "s", 2));
    out.push('\n');
    out.push_str(&row(
        &format!("tus, one {patch_mib} MiB PATCH (each run's median)"),
        &patch_ms,
        "ms",
        1,
    ));
    out.push('\n');
    out.push_str(&row(
        "tus, each PATCH beyond its bytes at the run's PUT rate",
        &patch_beyond_ms,
        "ms",
        1,
    ));
    out.push('\n');
    out.push_str(&row(
        "resumable / PUT throughput, each run's pair",
        &pair_ratios,
        "",
        2,
    ));
    out.push_str("\n\n");
    out.push_str(&format!(
        "- tus / PUT server CPU (medians) = {:.2}\n",
        tus_cpu.median() / put_cpu.median()
    ));
    out.push_str(&verdict(
        "resumable / PUT throughput (medians)",
        ratio,
        "≥ 0.9",
        ratio >= 0.9,
    ));
    out.push('\n');
    Ok(out)
}
