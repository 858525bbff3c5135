//! `artifactstore-bench`: measures the release binary on loopback, side by
//! side with reference tools in the same run, and prints a Markdown report.
//! Absolute figures on shared machines are noisy; the ratios are the result.
//! `scripts/bench` builds everything and runs `all`; see docs/benchmarks.md.

mod harness;
mod report;
mod scenarios;

use anyhow::Result;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Every scenario below.
    All,
    /// One large file: ingest (filesystem and Garage), download, memory,
    /// against openssl, dd, nginx and a direct Garage PUT/GET.
    Large,
    /// Many small files from concurrent clients, SQLite and PostgreSQL.
    SmallFiles,
    /// Rebuild every view from a large log.
    Replay,
    /// Filtered pages and point lookups among many packages.
    List,
    /// Commit-to-delivery latency on the event stream.
    Follow,
    /// Garbage collection: objects deleted per second (filesystem and
    /// Garage), and small-file uploads beside a collection.
    Collect,
    /// The log's proofs on a large log, uploads beside checkpoint signing,
    /// and evidence bundles against downloading the files one by one.
    Proofs,
    /// A resumable (tus) upload in 64 MiB PATCHes against one PUT.
    Resumable,
    /// The web UI's pages: the package list over many packages, and a
    /// package with 10,000 files.
    WebUi,
}

/// Benchmark harness of artifact-store (issue 5's scenarios).
///
/// Needs the release binary (`cargo build --release -p artifactstore-cli`),
/// PostgreSQL (ARTIFACTSTORE_BENCH_POSTGRES_URL, default
/// postgres://postgres@127.0.0.1:5432/postgres), `scripts/s3/garage-up` with
/// a Garage binary (GARAGE_BIN), Debian's nginx, openssl and dd. Scratch
/// data goes to BENCH_DIR (default /var/tmp/artifactstore-bench): use a real
/// disk, not tmpfs, or the fsyncs mean nothing.
#[derive(Debug, Parser)]
#[command(
    after_help = "Example:\n  scripts/bench                     # builds, starts services, runs all\n  artifactstore-bench small-files --runs 3"
)]
struct Args {
    /// Scenarios to run.
    #[arg(value_enum, default_values_t = [Scenario::All])]
    scenarios: Vec<Scenario>,
    /// Runs per figure (the report gives the median with min–max).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Size of the large file, MiB.
    #[arg(long, default_value_t = 2048)]
    size_mib: u64,
    /// Small files per run.
    #[arg(long, default_value_t = 20_000)]
    small_files: usize,
    /// Packages the small files go into.
    #[arg(long, default_value_t = 200)]
    small_packages: usize,
    /// Concurrent upload clients: the small-files scenario runs at each
    /// level given (comma-separated); the others use the first.
    #[arg(long, value_delimiter = ',', default_values_t = [16, 64, 256])]
    clients: Vec<usize>,
    /// Events in the replay log.
    #[arg(long, default_value_t = 1_000_000)]
    replay_events: usize,
    /// Packages in the list dataset.
    #[arg(long, default_value_t = 1_000_000)]
    list_packages: usize,
    /// Queries of each kind per list run.
    #[arg(long, default_value_t = 400)]
    list_queries: usize,
    /// Fetches of each web UI list page per run (the 10,000-file package
    /// page is fetched a tenth as often).
    #[arg(long, default_value_t = 200)]
    ui_queries: usize,
    /// Events per follow run.
    #[arg(long, default_value_t = 200)]
    follow_events: usize,
    /// Unreferenced objects per collection run.
    #[arg(long, default_value_t = 100_000)]
    gc_objects: usize,
    /// Events in the proofs log.
    #[arg(long, default_value_t = 10_000_000)]
    proof_events: usize,
    /// Proofs of each kind per run.
    #[arg(long, default_value_t = 1000)]
    proof_queries: usize,
    /// Size of the bundled package, MiB.
    #[arg(long, default_value_t = 2048)]
    bundle_mib: u64,
    /// Files in the bundled package.
    #[arg(long, default_value_t = 64)]
    bundle_files: usize,
    /// Size of each PATCH of the resumable scenario, MiB (the goal is for
    /// 64; small ones show what each request costs beyond its bytes).
    #[arg(long, default_value_t = 64)]
    patch_mib: u64,
    /// The small-files server requires an API token and every client
    /// presents one, as a production server's clients do (the figures
    /// then include each request's token lookup).
    #[arg(long)]
    with_token: bool,
}

async fn run(args: Args) -> Result<()> {
    let env = harness::Env::from_environment()?;
    let wants =
        |s: Scenario| args.scenarios.contains(&Scenario::All) || args.scenarios.contains(&s);
    println!("# artifact-store benchmark report\n");
    println!("Machine:\n\n{}\n", report::machine());
    println!(
        "Command: `{}`\n",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let runs = args.runs.max(1);
    let clients = args.clients.first().copied().unwrap_or(16).max(1);
    if wants(Scenario::Large) {
        println!(
            "{}",
            scenarios::large_file::run(&env, args.size_mib, runs).await?
        );
    }
    if wants(Scenario::SmallFiles) {
        let shape = scenarios::small_files::Shape {
            files: args.small_files,
            packages: args.small_packages.max(1),
            clients,
            file_bytes: 4096,
            with_token: args.with_token,
        };
        println!(
            "{}",
            scenarios::small_files::run(&env, &shape, &args.clients, runs).await?
        );
    }
    if wants(Scenario::Replay) {
        println!(
            "{}",
            scenarios::dataset::replay(&env, args.replay_events, runs).await?
        );
    }
    if wants(Scenario::List) {
        println!(
            "{}",
            scenarios::dataset::list(&env, args.list_packages, runs, args.list_queries.max(1))
                .await?
        );
    }
    if wants(Scenario::WebUi) {
        println!(
            "{}",
            scenarios::web_ui::run(&env, args.list_packages, runs, args.ui_queries.max(1)).await?
        );
    }
    if wants(Scenario::Collect) {
        println!(
            "{}",
            scenarios::collect::run(&env, args.gc_objects.max(4), clients, runs).await?
        );
    }
    if wants(Scenario::Resumable) {
        println!(
            "{}",
            scenarios::resumable::run(&env, args.size_mib, args.patch_mib.max(1), runs).await?
        );
    }
    if wants(Scenario::Proofs) {
        println!(
            "{}",
            scenarios::proofs::proofs(
                &env,
                args.proof_events.max(2),
                runs,
                args.proof_queries.max(1)
            )
            .await?
        );
        let shape = scenarios::small_files::Shape {
            files: args.small_files,
            packages: args.small_packages.max(1),
            clients,
            file_bytes: 4096,
            with_token: false,
        };
        println!(
            "{}",
            scenarios::proofs::appends_beside_checkpoints(&env, &shape, runs).await?
        );
        println!(
            "{}",
            scenarios::proofs::bundle(&env, args.bundle_mib.max(1), args.bundle_files.max(1), runs)
                .await?
        );
    }
    if wants(Scenario::Follow) {
        println!(
            "{}",
            scenarios::follow::run(&env, args.follow_events.max(1), runs).await?
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Runtime::new()?.block_on(run(args))
}
