//! Many files moved at once: `push` and `pull` keep several transfers in
//! flight, since each small file costs the server a few durable flushes
//! that it can share between uploads (group commit) but one client waiting
//! on each in turn cannot.

use std::future::Future;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::error::CliResult;

/// Files transferred at once unless `--jobs` says otherwise.
pub const DEFAULT_JOBS: u16 = 8;

/// Runs `work` on every item, at most `jobs` at once. After the first
/// failure no new item starts; those already running finish (each cleans
/// up after itself) and the first error is returned.
pub async fn each_at_most<T, W, F>(
    jobs: u16,
    items: impl IntoIterator<Item = T>,
    mut work: W,
) -> CliResult<()>
where
    W: FnMut(T) -> F,
    F: Future<Output = CliResult<()>>,
{
    let jobs = usize::from(jobs.max(1));
    let mut items = items.into_iter();
    let mut running = FuturesUnordered::new();
    let mut first_error = None;
    loop {
        while first_error.is_none() && running.len() < jobs {
            match items.next() {
                Some(item) => running.push(work(item)),
                None => break,
            }
        }
        match running.next().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => return first_error.map_or(Ok(()), Err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::error::CliError;

    #[tokio::test]
    async fn at_most_jobs_run_at_once_and_every_item_runs() {
        let (running, most, done) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        each_at_most(3, 0..20u64, |i| {
            let (running, most, done) = (&running, &most, &done);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(i % 4)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 20);
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failure_starts_nothing_new_and_lets_the_running_finish() {
        let (started, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let result = each_at_most(4, 0..100u64, |i| {
            let (started, finished) = (&started, &finished);
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                if i == 1 {
                    return Err(CliError::Usage(format!("item {i} failed")));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await;
        assert!(matches!(result, Err(CliError::Usage(m)) if m == "item 1 failed"));
        // Items 0, 2 and 3 were running when item 1 failed: they finish,
        // and nothing after them starts.
        assert_eq!(started.load(Ordering::SeqCst), 4);
        assert_eq!(finished.load(Ordering::SeqCst), 3);
    }
}
