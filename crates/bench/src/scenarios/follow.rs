//! Follow latency: from the moment a client sends a write until an event
//! stream subscriber receives its event. This bounds commit-to-delivery
//! from above (it includes the write's own handling). On PostgreSQL the
//! subscriber is on a second replica, so delivery crosses LISTEN/NOTIFY.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;

use crate::harness::{package_body, with_engine, Env, Server, ServerSetup};
use crate::report::{row, verdict, Samples, TABLE_HEAD};

/// Reads the stream and notes when each `package.created` event arrived,
/// by package id; stops after `expected` of them.
async fn subscribe(
    url: String,
    expected: usize,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<HashMap<String, Instant>> {
    let response = reqwest::Client::new()
        .get(format!("{url}/v1/events/stream"))
        .send()
        .await?
        .error_for_status()?;
    let _ = ready.send(());
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut arrivals = HashMap::new();
    while let Some(chunk) = stream.next().await {
        let arrived = Instant::now();
        buffer.extend_from_slice(&chunk?);
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            let frame = String::from_utf8_lossy(&frame);
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(data.trim())?;
            if event["event_type"] != "v1.package.created" {
                continue;
            }
            let subject = event["subject_id"].as_str().unwrap_or_default();
            arrivals.insert(subject.to_owned(), arrived);
            if arrivals.len() == expected {
                return Ok(arrivals);
            }
        }
    }
    anyhow::bail!("the event stream ended early")
}

async fn one_run(
    env: &Env,
    setup: &ServerSetup,
    two_replicas: bool,
    events: usize,
) -> Result<Samples> {
    let writer_dir = env.scratch("follow-writer")?;
    let reader_dir = env.scratch("follow-reader")?;
    let writer = Server::start(env, &writer_dir, setup)?;
    let reader = if two_replicas {
        Some(Server::start(env, &reader_dir, setup)?)
    } else {
        None
    };
    let follow_url = reader.as_ref().unwrap_or(&writer).url.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let subscriber = tokio::spawn(subscribe(follow_url, events, ready_tx));
    ready_rx.await.context("the subscriber did not connect")?;
    let client = reqwest::Client::new();
    // The id is known only from the answer, which may come after the event
    // is delivered: send times and arrivals are joined by id at the end.
    let mut sent = Vec::with_capacity(events);
    for i in 0..events {
        let started = Instant::now();
        let id = writer
            .create_package(&client, package_body(&format!("follow-{i}")))
            .await?;
        sent.push((id, started));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let arrivals = tokio::time::timeout(Duration::from_secs(30), subscriber)
        .await
        .context("not every event was delivered within 30 s")???;
    let mut delays = Samples::default();
    for (id, started) in sent {
        let arrived = arrivals
            .get(&id)
            .with_context(|| format!("package {id} was never delivered"))?;
        delays.push((*arrived - started).as_secs_f64() * 1000.0);
    }
    drop((writer, reader));
    std::fs::remove_dir_all(&writer_dir)?;
    std::fs::remove_dir_all(&reader_dir)?;
    Ok(delays)
}

pub async fn run(env: &Env, events: usize, runs: usize) -> Result<String> {
    let mut out = format!(
        "## Follow latency ({events} events per run, {runs} runs)\n\n\
         From sending `POST /v1/packages` to receiving its `v1.package.created` on `GET /v1/events/stream`. \
         SQLite: one server. PostgreSQL: written through one replica, followed on another. \
         The median row is the median of each run's p50.\n\n{TABLE_HEAD}\n"
    );
    let mut verdicts = Vec::new();
    for (engine, goal) in [("SQLite", 50.0), ("PostgreSQL", 20.0)] {
        let mut p50s = Samples::default();
        let mut all = Samples::default();
        for run in 0..runs {
            eprintln!("follow, {engine}: run {}/{runs}", run + 1);
            let postgres = engine == "PostgreSQL";
            let delays = with_engine(env, postgres, |setup| async move {
                one_run(env, &setup, postgres, events).await
            })
            .await?;
            p50s.push(delays.median());
            all.extend(&delays);
        }
        out.push_str(&row(&format!("{engine}: p50"), &p50s, "ms", 2));
        out.push('\n');
        out.push_str(&format!(
            "| {engine}: p99 / max over all runs | {:.2} / {:.2} ms | |\n",
            all.percentile(99.0),
            all.max()
        ));
        verdicts.push(verdict(
            &format!("{engine} p50 (ms)"),
            p50s.median(),
            &format!("< {goal}"),
            p50s.median() < goal,
        ));
    }
    out.push('\n');
    out.push_str(&verdicts.join("\n"));
    out.push('\n');
    Ok(out)
}
