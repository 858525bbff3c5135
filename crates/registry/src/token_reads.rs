//! The API token behind each authenticated request, read for many
//! requests at once.
//!
//! Every request that presents a token reads its row before anything
//! else. One at a time, each read paid a statement and the ping sqlx sends
//! with every connection handed back to its pool: two round trips to
//! SQLite's worker thread (four context switches) or to the PostgreSQL
//! server per request, as much as an upload's share of its group commit.
//! Instead each request queues the token's id here, and the tokens of
//! every request queued while one batch is read are read together next,
//! on one connection, each distinct id once (a pipeline's clients usually
//! share one token). A request that arrives alone is read at once:
//! nothing waits to fill a batch. The rows are read afresh for every
//! batch, never kept: a token revoked or expired is refused by the next
//! batch that reads it.

use std::collections::HashMap;

use artifactstore_store::{Store, TokenRecord};
use tokio::sync::{mpsc, oneshot};

use crate::file_commits::{for_each, run_batches};
use crate::{RegistryError, RegistryResult};

/// Most requests whose tokens are read in one batch.
const MAX_BATCH: usize = 256;
/// Requests waiting for their token; more wait for room.
const QUEUE: usize = 1024;

struct Pending {
    id: String,
    answer: oneshot::Sender<RegistryResult<Option<TokenRecord>>>,
}

/// The queue of requests waiting for their token's row; cloned into every
/// [`crate::Registry`] handle. The reading task ends when the last handle
/// is dropped.
#[derive(Clone)]
pub(crate) struct TokenReads {
    queue: mpsc::Sender<Pending>,
}

impl TokenReads {
    pub(crate) fn start(store: Store) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(read_queued(store, waiting));
        Self { queue }
    }

    /// The token with this id, revoked and expired ones too; `None` when
    /// there is none.
    pub(crate) async fn read(&self, id: &str) -> RegistryResult<Option<TokenRecord>> {
        let (answer, answered) = oneshot::channel();
        let stopped = || RegistryError::Internal("the token read gave no answer".into());
        self.queue
            .send(Pending {
                id: id.to_owned(),
                answer,
            })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// One batch at a time, like the file checks: measured with 16 and 64
/// clients, four readers at once formed smaller batches and saved about
/// half the context switches one reader saves (docs/benchmarks.md). A
/// read that hangs is bounded by the store's timeout
/// ([`Store::tokens_by_id`]), after which its batch answers 503 and the
/// next goes on.
async fn read_queued(store: Store, waiting: mpsc::Receiver<Pending>) {
    let store = &store;
    run_batches("token read", waiting, MAX_BATCH, move |batch| {
        read_batch(store, batch)
    })
    .await;
}

async fn read_batch(store: &Store, mut batch: Vec<Pending>) {
    // A request whose client went away no longer waits for its answer.
    batch.retain(|pending| !pending.answer.is_closed());
    if batch.is_empty() {
        return;
    }
    let mut ids: Vec<&str> = batch.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    match store.tokens_by_id(&ids).await {
        Ok(found) => {
            let by_id: HashMap<String, TokenRecord> = found
                .into_iter()
                .map(|token| (token.id.clone(), token))
                .collect();
            for pending in batch {
                let token = by_id.get(&pending.id).cloned();
                let _ = pending.answer.send(Ok(token));
            }
        }
        Err(e) => {
            let error = RegistryError::from(e);
            for pending in batch {
                let _ = pending.answer.send(Err(for_each(&error)));
            }
        }
    }
}
