//! Requests that many callers make of the database at once, answered in
//! batches.
//!
//! The group commit (`file_commits.rs`), the check before a file's bytes
//! flow (`file_checks.rs`) and the token read (`token_reads.rs`) each
//! queue their callers' requests in a [`BatchQueue`]; one task per queue
//! takes whatever is queued while it works on one batch and serves it as
//! the next, answering each caller on its own channel. A request that
//! arrives alone is served at once: nothing waits to fill a batch. The
//! queue and each batch are bounded; a caller finding the queue full waits
//! for room.

use tokio::sync::{mpsc, oneshot};

use crate::{RegistryError, RegistryResult};

/// One caller's request and the channel its answer goes back on.
pub(crate) struct Queued<Request, Answer> {
    pub(crate) request: Request,
    reply: oneshot::Sender<RegistryResult<Answer>>,
}

impl<Request, Answer> Queued<Request, Answer> {
    /// Answers the caller; one who went away is not told.
    pub(crate) fn answer(self, answer: RegistryResult<Answer>) {
        let _ = self.reply.send(answer);
    }

    /// The caller went away (its request was dropped): nobody waits for
    /// the answer.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// The sending side of one queue; cloned into every [`crate::Registry`]
/// handle. The serving task ends when the last clone is dropped.
pub(crate) struct BatchQueue<Request, Answer> {
    queue: mpsc::Sender<Queued<Request, Answer>>,
    task: &'static str,
}

impl<Request, Answer> Clone for BatchQueue<Request, Answer> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            task: self.task,
        }
    }
}

impl<Request, Answer> BatchQueue<Request, Answer>
where
    Request: Send + 'static,
    Answer: Send + 'static,
{
    /// Starts the task named `task` that hands each batch of at most
    /// `max_batch` queued requests to `serve`, one batch at a time;
    /// `queue_len` requests wait at most.
    pub(crate) fn start<Serving>(
        task: &'static str,
        max_batch: usize,
        queue_len: usize,
        serve: impl FnMut(Vec<Queued<Request, Answer>>) -> Serving + Send + 'static,
    ) -> Self
    where
        Serving: std::future::Future<Output = ()> + Send + 'static,
    {
        let (queue, waiting) = mpsc::channel(queue_len);
        tokio::spawn(run_batches(task, waiting, max_batch, serve));
        Self { queue, task }
    }

    /// Queues `request` and waits for its answer.
    pub(crate) async fn submit(&self, request: Request) -> RegistryResult<Answer> {
        let (reply, answered) = oneshot::channel();
        let task = self.task;
        let stopped = || RegistryError::Internal(format!("the {task} gave no answer"));
        self.queue
            .send(Queued { request, reply })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// Each batch of what is queued ([`next_batch`]) goes to `serve`, until
/// every sender is gone. A panic in a batch (a bug) fails that batch's
/// callers alone: their answers are dropped with the batch, so each gets
/// 500. Without this the task would end, and every later request would
/// get 500 until the server restarted.
async fn run_batches<T, Serving>(
    task: &'static str,
    mut waiting: mpsc::Receiver<T>,
    max: usize,
    mut serve: impl FnMut(Vec<T>) -> Serving,
) where
    Serving: std::future::Future<Output = ()>,
{
    while let Some(batch) = next_batch(&mut waiting, max).await {
        contained(task, serve(batch)).await;
    }
}

async fn contained(task: &'static str, batch: impl std::future::Future<Output = ()>) {
    use futures::FutureExt;
    if let Err(panic) = std::panic::AssertUnwindSafe(batch).catch_unwind().await {
        let message = panic
            .downcast_ref::<&str>()
            .map(|m| (*m).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(task, panic = %message, "a batch panicked; its requests were answered 500 and the task goes on");
    }
}

/// Waits for the first item, then takes whatever else is queued, up to
/// `max` in all: nothing waits to fill a batch. `None` once every sender
/// is gone.
async fn next_batch<T>(waiting: &mut mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = waiting.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match waiting.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Answers every request of a failed batch with `error`.
pub(crate) fn fail_all<Request, Answer>(
    batch: impl IntoIterator<Item = Queued<Request, Answer>>,
    error: &RegistryError,
) {
    for queued in batch {
        queued.answer(Err(for_each(error)));
    }
}

/// The same error for every request of a failed batch.
pub(crate) fn for_each(error: &RegistryError) -> RegistryError {
    match error {
        RegistryError::Unavailable(cause) => RegistryError::Unavailable(cause.clone()),
        RegistryError::UploadLocked(id) => RegistryError::UploadLocked(id.clone()),
        // Its cause, not its message ("internal error"), for the log.
        RegistryError::Internal(cause) => RegistryError::Internal(cause.clone()),
        other => RegistryError::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch that panics drops its own answers (500 for those callers),
    /// and the next batch is answered.
    #[tokio::test]
    async fn a_batch_that_panics_fails_its_own_requests_and_the_task_goes_on() {
        let queue = BatchQueue::<bool, u32>::start("test", 8, 8, |batch| async move {
            for queued in batch {
                assert!(!queued.request, "a bug in a batch");
                queued.answer(Ok(7));
            }
        });
        let panicked = queue.submit(true).await;
        assert!(
            matches!(&panicked, Err(RegistryError::Internal(cause)) if cause == "the test gave no answer"),
            "{panicked:?}"
        );
        assert_eq!(queue.submit(false).await.unwrap(), 7);
    }

    /// Requests queued while a batch is served are served together next,
    /// each answered with its own answer.
    #[tokio::test]
    async fn requests_queued_meanwhile_form_the_next_batch() {
        let (release, released) = tokio::sync::watch::channel(false);
        let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let queue = BatchQueue::<u32, u32>::start("test", 4, 16, move |batch| {
            seen.lock().unwrap().push(batch.len());
            let mut released = released.clone();
            async move {
                // The first batch waits until the rest are queued.
                let _ = released.wait_for(|go| *go).await;
                for queued in batch {
                    let doubled = queued.request * 2;
                    queued.answer(Ok(doubled));
                }
            }
        });
        let first = tokio::spawn({
            let queue = queue.clone();
            async move { queue.submit(1).await }
        });
        while sizes.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..=7)
            .map(|n| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.submit(n).await })
            })
            .collect();
        // Let every request reach the queue before the first batch ends.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 2);
        for (n, answer) in (2..=7).zip(rest) {
            assert_eq!(answer.await.unwrap().unwrap(), n * 2);
        }
        // One alone, then at most four at a time.
        assert_eq!(*sizes.lock().unwrap(), vec![1, 4, 2]);
    }
}
