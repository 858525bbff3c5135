//! What the scenarios run against: the release `artifactstore` binary, a
//! fresh PostgreSQL database, a fresh single-node Garage, nginx; and input
//! files, process memory and timed commands.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Where things are and which services the run may use.
pub struct Env {
    pub binary: PathBuf,
    pub work: PathBuf,
    pub postgres_admin_url: String,
    pub garage_up: PathBuf,
    pub nginx: String,
}

impl Env {
    pub fn from_environment() -> Result<Self> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from);
        let binary = target.join("release/artifactstore");
        if !binary.exists() {
            bail!(
                "{} is missing: run `cargo build --release -p artifactstore-cli` first (scripts/bench does)",
                binary.display()
            );
        }
        let work = PathBuf::from(
            std::env::var_os("BENCH_DIR").unwrap_or_else(|| "/var/tmp/artifactstore-bench".into()),
        );
        std::fs::create_dir_all(&work)?;
        Ok(Self {
            binary,
            work,
            postgres_admin_url: std::env::var("ARTIFACTSTORE_BENCH_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            garage_up: PathBuf::from(
                std::env::var_os("ARTIFACTSTORE_BENCH_GARAGE_UP")
                    .unwrap_or_else(|| "scripts/s3/garage-up".into()),
            ),
            nginx: std::env::var("ARTIFACTSTORE_BENCH_NGINX").unwrap_or_else(|_| "nginx".into()),
        })
    }

    /// A fresh directory under the work directory.
    pub fn scratch(&self, name: &str) -> Result<PathBuf> {
        let dir = self
            .work
            .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_listening(address: &str, what: &str) -> Result<()> {
    // Long enough for the start check to recompute a tree of 10,000,000
    // events.
    let deadline = Instant::now() + Duration::from_secs(600);
    while std::net::TcpStream::connect(address).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not start listening on {address}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Seconds a command takes; its output is discarded.
pub fn timed(command: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(start.elapsed().as_secs_f64())
}

/// A `/proc/PID/status` figure in KiB (`VmRSS:`, `VmHWM:`).
pub fn memory_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .context("no such /proc field")
}

/// CPU seconds (user + system, all threads) a process has used so far;
/// `/proc/PID/stat` counts in USER_HZ ticks, 100 per second on Linux.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let (user, kernel) = user_and_kernel_cpu_seconds(pid)?;
    Ok(user + kernel)
}

/// [`cpu_seconds`] apart: in the process's own code, and in the kernel on
/// its behalf (system calls, the file system's work, waking threads).
pub fn user_and_kernel_cpu_seconds(pid: u32) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    // Fields 14 and 15 of stat(5), counted from the state field (3).
    Ok((ticks(11)? / 100.0, ticks(12)? / 100.0))
}

/// Context switches of every thread of `pid` so far, voluntary (a thread
/// waiting: for I/O, a lock, another thread's answer) and not. A thread
/// that has exited no longer counts, so read this around a stretch in
/// which the process's threads stay.
pub fn context_switches(pid: u32) -> Result<u64> {
    let mut sum = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may exit between the listing and the read.
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(count) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                sum += count.trim().parse::<u64>()?;
            }
        }
    }
    Ok(sum)
}

/// CPU seconds the whole machine has spent busy and in all, summed over
/// its cores, from `/proc/stat` (busy: everything but idle and iowait).
pub fn machine_cpu_seconds() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse::<f64>)
        .collect::<Result<_, _>>()?;
    let total: f64 = ticks.iter().take(8).sum();
    let waiting = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    Ok(((total - waiting) / 100.0, total / 100.0))
}

/// CPU seconds of every live process whose name is `name` (PostgreSQL's
/// backends and helpers are all `postgres`).
pub fn processes_cpu_seconds(name: &str) -> Result<f64> {
    let mut sum = 0.0;
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let named = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == name);
        if named {
            // A process may exit between the two reads.
            sum += cpu_seconds(pid).unwrap_or(0.0);
        }
    }
    Ok(sum)
}

/// Writes `size` pseudo-random bytes (incompressible, so no layer can
/// cheat) seeded by `seed`.
pub fn generate(path: &Path, size: u64, seed: u64) -> Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut written = 0;
    let mut block = vec![0u8; 1 << 20];
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    while written < size {
        fill(&mut block, &mut state);
        let n = (size - written).min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        written += n as u64;
    }
    file.flush()?;
    file.get_ref().sync_all()?;
    Ok(())
}

/// One step of the xorshift generator the scenarios draw from (fast and
/// repeatable; nothing here needs better randomness).
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A repeatable draw below `n`, from `seed`.
pub fn below(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |n| xorshift(&mut state) % n
}

/// Fills `buffer` from the xorshift generator.
pub fn fill(buffer: &mut [u8], state: &mut u64) {
    for word in buffer.chunks_mut(8) {
        word.copy_from_slice(&xorshift(state).to_le_bytes()[..word.len()]);
    }
}

/// S3 coordinates of a running Garage.
#[derive(Clone, Debug)]
pub struct S3Coordinates {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Coordinates {
    /// A plain `object_store` client, as any S3 user would have.
    pub fn client(&self) -> Result<object_store::aws::AmazonS3> {
        Ok(object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region(&self.region)
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_virtual_hosted_style_request(false)
            .build()?)
    }
}

/// A throwaway single-node Garage with an empty store (so nothing it holds
/// from an earlier run can be deduplicated), stopped and deleted on drop.
pub struct Garage {
    dir: PathBuf,
    pub s3: S3Coordinates,
}

impl Garage {
    pub fn start(env: &Env) -> Result<Self> {
        let dir = env.scratch("garage")?;
        // garage-up uses the port and the three above it.
        let base = loop {
            let port = free_port()?;
            if port < 65000
                && (1..4).all(|i| std::net::TcpListener::bind(("127.0.0.1", port + i)).is_ok())
            {
                break port;
            }
        };
        let output = Command::new(&env.garage_up)
            .arg(&dir)
            .arg(base.to_string())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", env.garage_up.display()))?;
        if !output.status.success() {
            bail!("{} failed", env.garage_up.display());
        }
        let line = String::from_utf8(output.stdout)?;
        let var = |name: &str| -> Result<String> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("S3_{name}=")))
                .map(str::to_owned)
                .with_context(|| format!("garage-up printed no S3_{name}"))
        };
        Ok(Self {
            s3: S3Coordinates {
                endpoint: var("ENDPOINT")?,
                region: var("REGION")?,
                bucket: var("BUCKET")?,
                access_key_id: var("ACCESS_KEY_ID")?,
                secret_access_key: var("SECRET_ACCESS_KEY")?,
            },
            dir,
        })
    }
}

impl Garage {
    pub fn pid(&self) -> Result<u32> {
        Ok(std::fs::read_to_string(self.dir.join("pid"))?
            .trim()
            .parse()?)
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            std::thread::sleep(Duration::from_millis(300));
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx serving one directory on loopback (Debian's package, its default
/// `sendfile on`).
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl Nginx {
    pub fn start(env: &Env, root: &Path) -> Result<Self> {
        let dir = env.scratch("nginx")?;
        let port = free_port()?;
        let config = format!(
            "daemon off;\nuser root;\nworker_processes auto;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
             events {{}}\nhttp {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  \
             client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  \
             uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    root {root};\n  }}\n}}\n",
            dir = dir.display(),
            root = root.display(),
        );
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let child = Command::new(&env.nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} (Debian package nginx)", env.nginx))?;
        let address = format!("127.0.0.1:{port}");
        wait_listening(&address, "nginx")?;
        Ok(Self {
            child,
            dir,
            url: format!("http://{address}"),
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers before it exits; SIGKILL
        // would leave them running, orphaned, after the harness ends.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh PostgreSQL database, dropped on [`Database::drop_now`].
pub struct Database {
    admin_url: String,
    name: String,
    pub url: String,
}

impl Database {
    pub async fn create(env: &Env) -> Result<Self> {
        use sqlx::Connection;
        let name = format!("artifactstore_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&env.postgres_admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", env.postgres_admin_url))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let base = env
            .postgres_admin_url
            .rsplit_once('/')
            .map_or(env.postgres_admin_url.as_str(), |(base, _)| base);
        Ok(Self {
            url: format!("{base}/{name}"),
            admin_url: env.postgres_admin_url.clone(),
            name,
        })
    }

    pub async fn drop_now(self) -> Result<()> {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await?;
        Ok(())
    }
}

/// Runs `run` with the setup of an engine: the embedded SQLite default, or a
/// fresh PostgreSQL database that is dropped afterwards, whatever `run`
/// returned.
pub async fn with_engine<T, Fut>(
    env: &Env,
    postgres: bool,
    run: impl FnOnce(ServerSetup) -> Fut,
) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let database = if postgres {
        Some(Database::create(env).await?)
    } else {
        None
    };
    let setup = ServerSetup {
        database_url: database.as_ref().map(|d| d.url.clone()),
        ..ServerSetup::default()
    };
    let outcome = run(setup).await;
    if let Some(database) = database {
        database.drop_now().await?;
    }
    outcome
}

/// How a server stores its state.
#[derive(Clone, Default)]
pub struct ServerSetup {
    /// PostgreSQL URL; `None` for the embedded SQLite default.
    pub database_url: Option<String>,
    /// Garage as the only backend; `None` for the filesystem default.
    pub s3: Option<S3Coordinates>,
    /// More TOML, appended as it is (a `[log]` section, say).
    pub extra: String,
}

/// Writes `bench.toml` for `setup` into `data_dir` and returns its path.
pub fn config_file(data_dir: &Path, setup: &ServerSetup) -> Result<PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let mut config = format!("data_dir = {:?}\n", data_dir.display().to_string());
    if let Some(url) = &setup.database_url {
        config.push_str(&format!("[database]\nurl = {url:?}\n"));
    }
    if let Some(s3) = &setup.s3 {
        config.push_str(&format!(
            "[[backends]]\nid = \"garage\"\ntype = \"s3\"\nendpoint = {:?}\nregion = {:?}\nbucket = {:?}\n\
             path_style = true\naccess_key_id = {:?}\nsecret_access_key = {:?}\n",
            s3.endpoint, s3.region, s3.bucket, s3.access_key_id, s3.secret_access_key
        ));
    }
    config.push_str(&setup.extra);
    let config_path = data_dir.join("bench.toml");
    std::fs::write(&config_path, config)?;
    Ok(config_path)
}

/// `artifactstore serve` on a free loopback port, killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    pub fn start(env: &Env, data_dir: &Path, setup: &ServerSetup) -> Result<Self> {
        let config_path = config_file(data_dir, setup)?;
        let address = format!("127.0.0.1:{}", free_port()?);
        // Warnings and errors only (the access log would cost the server a
        // write per request), kept beside the data for a failed run.
        let log = std::fs::File::create(data_dir.join("server.log"))?;
        let child = Command::new(&env.binary)
            .args(["serve", "--listen", &address, "--config"])
            .arg(&config_path)
            .env("ARTIFACTSTORE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        wait_listening(&address, "artifactstore serve")?;
        Ok(Self {
            child,
            url: format!("http://{address}"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Creates a package and returns its id.
    pub async fn create_package(
        &self,
        client: &reqwest::Client,
        body: serde_json::Value,
    ) -> Result<String> {
        let response = client
            .post(format!("{}/v1/packages", self.url))
            .json(&body)
            .send()
            .await?;
        if response.status().as_u16() != 201 {
            bail!("creating a package answered {}", response.status());
        }
        let package: serde_json::Value = response.json().await?;
        Ok(package["id"].as_str().context("no package id")?.to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A package body for the bench's own packages.
pub fn package_body(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "producer": "bench",
        "subject": "bench",
        "retention_class": "ephemeral",
    })
}
