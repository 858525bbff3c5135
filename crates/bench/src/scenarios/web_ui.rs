//! The web UI's pages at scale (issue 23): the package list over a million
//! packages, and pages of one package holding ten thousand files.
//!
//! The dataset is written the way the list scenario writes its own (the
//! store's append path, many events a transaction); the pages are then
//! fetched over loopback HTTP whole, body included, as a browser would.

use std::time::Instant;

use anyhow::{bail, Result};
use artifactstore_core::Digest32;

use super::dataset::generate;
use crate::harness::{Env, Server, ServerSetup};
use crate::report::{row, verdict, Samples, TABLE_HEAD};

/// Files in the large package, a hundred a folder.
const LARGE_PACKAGE_FILES: usize = 10_000;
/// Files on a package's page (the server's default `ui_files_per_page`).
const FILES_PER_PAGE: usize = 1_000;
/// The goal for every page, p99 in milliseconds.
const GOAL_MS: f64 = 200.0;
/// Producers the dataset spreads packages over (as `dataset` does).
const PRODUCERS: usize = 100;

/// One kind of page the scenario fetches, and the p99 of each run.
struct PageKind {
    name: &'static str,
    p99: Samples,
    all: Samples,
}

impl PageKind {
    fn new(name: &'static str) -> Self {
        PageKind {
            name,
            p99: Samples::default(),
            all: Samples::default(),
        }
    }
}

/// Fetches `url` whole and returns the milliseconds it took and the body.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<(f64, String)> {
    let started = Instant::now();
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    Ok((ms, body))
}

pub async fn run(env: &Env, packages: usize, runs: usize, queries: usize) -> Result<String> {
    // Each producer's list must reach a second page of 50.
    if packages < PRODUCERS * 100 {
        bail!(
            "the web UI scenario needs at least {} packages",
            PRODUCERS * 100
        );
    }
    let data = env.scratch("web-ui")?;
    let url = format!("sqlite://{}", data.join("artifactstore.db").display());
    eprintln!("web ui: generating {packages} packages and one of {LARGE_PACKAGE_FILES} files");
    generate(&url, packages, 0).await?;
    let large = generate(&url, 1, LARGE_PACKAGE_FILES).await?;
    let Some(large_id) = large.sample_ids.first() else {
        bail!("the large package was not generated");
    };
    let server = Server::start(env, &data, &ServerSetup::default())?;
    // Redirects are part of what is measured only where a page answers
    // with one; none of these does.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    // A page of the large package shows a page of files and links the
    // next; checked once, outside the timing.
    let (_, large_page) = fetch(&client, &format!("{}/ui/packages/{large_id}", server.url)).await?;
    let shown = large_page.matches("/files/").count();
    if shown != FILES_PER_PAGE || next_page_link(&large_page).is_none() {
        bail!("the large package's first page links {shown} files, not {FILES_PER_PAGE} and a next page");
    }
    let large_page_bytes = large_page.len();

    let mut kinds = [
        PageKind::new("package list, newest 50"),
        PageKind::new("package list by producer, a later page"),
        PageKind::new("package list by name"),
        PageKind::new("search by a file's BLAKE3"),
        PageKind::new("package with 10,000 files, a page from the middle"),
    ];
    let mut folders: Vec<usize> = (0..LARGE_PACKAGE_FILES / 100).collect();
    folders.sort_by_key(|folder| folder.to_string());
    let page_starts = &folders[..folders.len() - FILES_PER_PAGE / 100];
    let mut draw = crate::harness::below(0x9e37_79b9);
    let mut next_random = move |n: usize| draw(n as u64) as usize;
    for run in 0..runs {
        eprintln!("web ui: run {}/{runs}", run + 1);
        let mut samples: Vec<Samples> = kinds.iter().map(|_| Samples::default()).collect();
        for _ in 0..queries {
            let (ms, _) = fetch(&client, &format!("{}/ui/", server.url)).await?;
            samples[0].push(ms);

            let producer = next_random(PRODUCERS);
            let first = format!("{}/ui/?producer=p-{producer}", server.url);
            let (_, page) = fetch(&client, &first).await?;
            let Some(next) = next_page_link(&page) else {
                bail!("{first} has no next page");
            };
            let (ms, _) = fetch(&client, &format!("{}{next}", server.url)).await?;
            samples[1].push(ms);

            let name = format!("build-{}", next_random(packages));
            let (ms, page) = fetch(&client, &format!("{}/ui/?name={name}", server.url)).await?;
            if !page.contains(&format!(">{name}<")) {
                bail!("the list by name did not show {name}");
            }
            samples[2].push(ms);

            let digest =
                Digest32::blake3_of(format!("0/{}", next_random(LARGE_PACKAGE_FILES)).as_bytes());
            let (ms, page) = fetch(
                &client,
                &format!("{}/ui/?q={}", server.url, digest.to_hex()),
            )
            .await?;
            if !page.contains(large_id.as_str()) {
                bail!(
                    "the search for {} did not find its package",
                    digest.to_hex()
                );
            }
            samples[3].push(ms);
        }
        // A package page is most of a megabyte; a tenth as many fetches
        // keep the run short and still give a p99 over tens of samples.
        // Each starts after a random folder's first file (the dataset's
        // paths are `reports/{folder}/{file}.json`, a hundred a folder),
        // of the folders that leave a whole page after it in key order
        // (folder names compare as text: 10 before 2).
        for _ in 0..(queries / 10).max(20) {
            let folder = page_starts[next_random(page_starts.len())];
            let url = format!(
                "{}/ui/packages/{large_id}?after=reports/{folder}/{}.json",
                server.url,
                folder * 100
            );
            let (ms, _) = fetch(&client, &url).await?;
            samples[4].push(ms);
        }
        for (kind, samples) in kinds.iter_mut().zip(&samples) {
            kind.p99.push(samples.percentile(99.0));
            kind.all.extend(samples);
        }
    }
    drop(server);
    if std::env::var_os("BENCH_KEEP").is_some() {
        eprintln!("web ui: kept {} (BENCH_KEEP)", data.display());
    } else {
        std::fs::remove_dir_all(&data)?;
    }

    let rows: Vec<String> = kinds
        .iter()
        .map(|kind| row(&format!("{}, p99", kind.name), &kind.p99, "ms", 1))
        .collect();
    let medians: Vec<String> = kinds
        .iter()
        .map(|kind| {
            format!(
                "| {}, p50 over all runs | {:.1} ms | |",
                kind.name,
                kind.all.median()
            )
        })
        .collect();
    let verdicts: Vec<String> = kinds
        .iter()
        .map(|kind| {
            let p99 = kind.p99.median();
            verdict(
                &format!("{} p99 (ms)", kind.name),
                p99,
                "< 200",
                p99 < GOAL_MS,
            )
        })
        .collect();
    Ok(format!(
        "## Web UI ({} packages on SQLite, one of them with {LARGE_PACKAGE_FILES} files; {runs} runs of {queries} queries each)\n\n\
         Each figure is a whole page fetched over loopback HTTP, body included, by one sequential client without auth. \
         The list pages: `/ui/` (the newest 50), `/ui/?producer=…` followed to its second page, `/ui/?name=…`, and the search box with a file's BLAKE3 (`/ui/?q=…`). \
         The package page lists {FILES_PER_PAGE} of its {LARGE_PACKAGE_FILES} files (100 folders) after a random folder's first file (the first page is {large_page_bytes} bytes of HTML), fetched {} times a run. \
         The median row is the median of each run's p99.\n\n\
         {TABLE_HEAD}\n{}\n{}\n\n{}\n",
        packages + 1,
        (queries / 10).max(20),
        rows.join("\n"),
        medians.join("\n"),
        verdicts.join("\n"),
    ))
}

/// The `href` of the page's `rel="next"` link, unescaped.
fn next_page_link(page: &str) -> Option<String> {
    let start = page.find("rel=\"next\" href=\"")? + "rel=\"next\" href=\"".len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].replace("&amp;", "&"))
}
