//! `artifactstore-bench`: measures the release binary on loopback, side by
//! side with reference tools in the same run, and prints a Markdown report.
//! Absolute figures on shared machines are noisy; the ratios are the result.
//!
//! ```text
//! cargo build --release -p artifactstore-cli
//! cargo run --release -p artifactstore-bench -- ingest [SIZE_MIB] [RUNS]
//! ```
//!
//! Scenarios so far: `ingest` (one large file PUT over loopback HTTP to the
//! embedded default, durable at 201, against `openssl dgst -sha256` and
//! `dd conv=fsync` of the same file, with the server's peak RSS growth).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Median, minimum and maximum of some seconds.
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    Stats {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

/// GB/s of `bytes` moved in `seconds`.
fn rate(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e9
}

fn timed(mut command: Command) -> Result<f64> {
    let start = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("{command:?} failed");
    }
    Ok(start.elapsed().as_secs_f64())
}

fn release_binary() -> Result<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let binary = target.join("release/artifactstore");
    if !binary.exists() {
        bail!(
            "{} is missing: run `cargo build --release -p artifactstore-cli` first",
            binary.display()
        );
    }
    Ok(binary)
}

fn rss_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .context("no such /proc field")
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(binary: &Path, data_dir: &Path) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(binary)
            .args(["serve", "--listen", &listen, "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&listen).is_err() {
            if Instant::now() > deadline {
                bail!("the server did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            url: format!("http://{listen}"),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `size` pseudo-random bytes (incompressible, so no layer can
/// cheat) to `path`.
fn generate(path: &Path, size: u64) -> Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut written = 0;
    let mut block = vec![0u8; 1 << 20];
    while written < size {
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let n = (size - written).min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        written += n as u64;
    }
    file.flush()?;
    Ok(())
}

async fn put_file(
    client: &reqwest::Client,
    server: &Server,
    package: &str,
    name: &str,
    path: &Path,
) -> Result<f64> {
    let file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    let body =
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
    let start = Instant::now();
    let response = client
        .put(format!("{}/v1/packages/{package}/files/{name}", server.url))
        .header("Content-Length", size)
        .body(body)
        .send()
        .await?;
    let seconds = start.elapsed().as_secs_f64();
    if response.status().as_u16() != 201 {
        bail!("upload answered {}", response.status());
    }
    Ok(seconds)
}

async fn ingest(size_mib: u64, runs: usize) -> Result<()> {
    let binary = release_binary()?;
    let work = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))?;
    let input = work.path().join("input.bin");
    let size = size_mib << 20;
    generate(&input, size)?;
    let client = reqwest::Client::new();
    let (mut sha, mut dd, mut ours, mut growth) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        // Interleaved, so drift in the machine's load hits every column alike.
        let mut openssl = Command::new("openssl");
        openssl.args(["dgst", "-sha256"]).arg(&input);
        sha.push(timed(openssl)?);
        let copy = work.path().join("dd.bin");
        let mut dd_command = Command::new("dd");
        dd_command
            .arg(format!("if={}", input.display()))
            .arg(format!("of={}", copy.display()))
            .args(["bs=1M", "conv=fsync"]);
        dd.push(timed(dd_command)?);
        std::fs::remove_file(&copy)?;

        let data = work.path().join(format!("data-{run}"));
        let server = Server::start(&binary, &data)?;
        let body = serde_json::json!({"name": "bench", "producer": "bench", "subject": "ingest", "retention_class": "ephemeral"});
        let package: serde_json::Value = client
            .post(format!("{}/v1/packages", server.url))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let package = package["id"].as_str().context("no package id")?.to_owned();
        let idle = rss_kib(server.child.id(), "VmRSS:")?;
        ours.push(put_file(&client, &server, &package, "big.bin", &input).await?);
        let peak = rss_kib(server.child.id(), "VmHWM:")?;
        growth.push(peak.saturating_sub(idle) as f64 / 1024.0);
        drop(server);
        std::fs::remove_dir_all(&data)?;
    }
    let (sha, dd, ours, growth) = (stats(sha), stats(dd), stats(ours), stats(growth));
    let floor = rate(size, sha.median).min(rate(size, dd.median));
    println!("## Large ingest ({size_mib} MiB, {runs} runs, medians with min–max)\n");
    println!("| measure | median | min – max |");
    println!("| --- | --- | --- |");
    for (name, s) in [
        ("openssl dgst -sha256", &sha),
        ("dd conv=fsync", &dd),
        ("artifactstore PUT (201 durable)", &ours),
    ] {
        println!(
            "| {name} | {:.3} GB/s | {:.3} – {:.3} GB/s |",
            rate(size, s.median),
            rate(size, s.max),
            rate(size, s.min)
        );
    }
    println!(
        "| server peak RSS growth | {:.1} MiB | {:.1} – {:.1} MiB |",
        growth.median, growth.min, growth.max
    );
    println!(
        "\nratio: artifactstore / min(openssl, dd) = **{:.2}** (goal ≥ 0.8)",
        rate(size, ours.median) / floor
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new()?;
    match args.first().map(String::as_str) {
        Some("ingest") => {
            let size_mib = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(2048);
            let runs = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5);
            runtime.block_on(ingest(size_mib, runs))
        }
        _ => bail!("usage: artifactstore-bench ingest [SIZE_MIB] [RUNS]"),
    }
}
