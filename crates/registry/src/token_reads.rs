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

use crate::batch_queue::{fail_all, BatchQueue, Queued};
use crate::{RegistryError, RegistryResult};

/// Most requests whose tokens are read in one batch.
const MAX_BATCH: usize = 256;
/// Requests waiting for their token; more wait for room.
const QUEUE: usize = 1024;

/// The queue of requests waiting for their token's row (by the token's
/// id); cloned into every [`crate::Registry`] handle.
///
/// One batch at a time, like the file checks: measured with 16 and 64
/// clients, four readers at once formed smaller batches and saved about
/// half the context switches one reader saves (docs/benchmarks.md). A
/// read that hangs is bounded by the store's timeout
/// ([`Store::tokens_by_id`]), after which its batch answers 503 and the
/// next goes on.
#[derive(Clone)]
pub(crate) struct TokenReads {
    queue: BatchQueue<String, Option<TokenRecord>>,
}

impl TokenReads {
    pub(crate) fn start(store: Store) -> Self {
        let queue = BatchQueue::start("token read", MAX_BATCH, QUEUE, move |batch| {
            read_batch(store.clone(), batch)
        });
        Self { queue }
    }

    /// The token with this id, revoked and expired ones too; `None` when
    /// there is none.
    pub(crate) async fn read(&self, id: &str) -> RegistryResult<Option<TokenRecord>> {
        self.queue.submit(id.to_owned()).await
    }
}

async fn read_batch(store: Store, mut batch: Vec<Queued<String, Option<TokenRecord>>>) {
    batch.retain(|queued| !queued.is_abandoned());
    if batch.is_empty() {
        return;
    }
    let mut ids: Vec<&str> = batch.iter().map(|q| q.request.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    match store.tokens_by_id(&ids).await {
        Ok(found) => {
            let by_id: HashMap<String, TokenRecord> = found
                .into_iter()
                .map(|token| (token.id.clone(), token))
                .collect();
            for queued in batch {
                let token = by_id.get(&queued.request).cloned();
                queued.answer(Ok(token));
            }
        }
        Err(e) => fail_all(batch, &RegistryError::from(e)),
    }
}
