//! Proof that leaves the server: the log's Merkle tree, its signed
//! checkpoints, inclusion and consistency proofs, and the anchors kept
//! outside the database (docs/architecture.md, "The Merkle tree";
//! docs/security.md, "A rewritten database").

mod audit;
mod keys;
pub mod proof;

use std::sync::Arc;
use std::time::Duration;

use artifactstore_api::{ConsistencyProof, InclusionProof};
use artifactstore_core::event::CheckpointSigned;
use artifactstore_core::merkle::{self, Span};
use artifactstore_core::NewEvent;
use artifactstore_storage::{StorageError, LOG_ANCHOR_KEY};
use artifactstore_store::CheckpointRecord;
use bytes::Bytes;
use futures::TryStreamExt;

pub use audit::LogAudit;
pub(crate) use keys::LogKey;

use crate::{Registry, RegistryError, RegistryResult};

/// The actor of checkpoints `serve` signs by itself.
pub const CHECKPOINT_ACTOR: &str = "log";

/// An anchor larger than this is not one of ours.
const MAX_ANCHOR_BYTES: usize = 64 * 1024;

/// The log's key and when to sign.
#[derive(Debug, Clone)]
pub(crate) struct LogSettings {
    pub(crate) key: Arc<LogKey>,
    pub(crate) checkpoint_interval: Option<Duration>,
}

fn invalid(why: impl Into<String>) -> RegistryError {
    RegistryError::InvalidInput(why.into())
}

impl Registry {
    /// The verifier key of the log's checkpoints, `name+keyid+base64`.
    pub fn log_verifier_key(&self) -> &str {
        self.log.key.verifier_key()
    }

    /// How often `serve` signs a checkpoint when the log has grown.
    pub fn checkpoint_interval(&self) -> Option<Duration> {
        self.log.checkpoint_interval
    }

    /// The newest signed checkpoint; one is signed first if the log has
    /// events and none was signed yet.
    pub async fn latest_checkpoint(&self) -> RegistryResult<CheckpointRecord> {
        if let Some(latest) = self.store.latest_checkpoint().await? {
            return Ok(latest);
        }
        self.sign_checkpoint(CHECKPOINT_ACTOR, true)
            .await?
            .0
            .ok_or_else(|| {
                RegistryError::LogEntryNotFound(
                    "the log is empty: no checkpoint is signed yet".into(),
                )
            })
    }

    /// The checkpoint of exactly `tree_size` leaves.
    pub async fn checkpoint_at(&self, tree_size: u64) -> RegistryResult<CheckpointRecord> {
        let found = if i64::try_from(tree_size).is_ok() {
            self.store.checkpoint(tree_size).await?
        } else {
            // No log is that long; the database could not even hold it.
            None
        };
        found.ok_or_else(|| {
            RegistryError::LogEntryNotFound(format!(
                "no checkpoint of tree size {tree_size} was signed"
            ))
        })
    }

    /// The leaf bytes of event `sequence` (docs/architecture.md, "The
    /// Merkle tree").
    pub async fn leaf(&self, sequence: i64) -> RegistryResult<Vec<u8>> {
        if sequence < 1 {
            return Err(invalid("sequence starts at 1"));
        }
        let event = self.store.event(sequence).await?.ok_or_else(|| {
            RegistryError::LogEntryNotFound(format!("the log has no event {sequence}"))
        })?;
        Ok(event.leaf_bytes())
    }

    /// Makes sure the stored tree holds `size` leaves; refuses a size the
    /// log has not reached.
    async fn tree_of(&self, size: u64) -> RegistryResult<()> {
        if self.store.tree_size().await? >= size {
            return Ok(());
        }
        let head = u64::try_from(self.store.head_sequence().await?).unwrap_or(0);
        if size > head {
            return Err(invalid(format!(
                "tree size {size} is larger than the log ({head} events)"
            )));
        }
        self.store.extend_tree().await?;
        Ok(())
    }

    async fn proof_hashes(&self, spans: &[Span]) -> RegistryResult<Vec<String>> {
        Ok(self
            .store
            .span_hashes(spans)
            .await?
            .iter()
            .map(proof::encode_hash)
            .collect())
    }

    /// RFC 9162 inclusion proof of event `sequence` in the tree of the
    /// first `tree_size` events.
    pub async fn inclusion_proof(
        &self,
        sequence: i64,
        tree_size: u64,
    ) -> RegistryResult<InclusionProof> {
        let leaf_index =
            u64::try_from(sequence - 1).map_err(|_| invalid("sequence starts at 1"))?;
        let spans =
            merkle::inclusion_spans(leaf_index, tree_size).map_err(|e| invalid(e.to_string()))?;
        self.tree_of(tree_size).await?;
        Ok(InclusionProof {
            leaf_index,
            tree_size,
            hashes: self.proof_hashes(&spans).await?,
        })
    }

    /// RFC 9162 consistency proof from the tree of `from` events to the
    /// tree of `to`.
    pub async fn consistency_proof(&self, from: u64, to: u64) -> RegistryResult<ConsistencyProof> {
        let spans = merkle::consistency_spans(from, to).map_err(|e| invalid(e.to_string()))?;
        self.tree_of(to).await?;
        Ok(ConsistencyProof {
            hashes: self.proof_hashes(&spans).await?,
        })
    }

    /// Signs a checkpoint of the whole log if it has grown since the last
    /// one (by more than that checkpoint's own event), or, `on_demand`, if
    /// the tree has any leaf the last one lacks. Returns the newest
    /// checkpoint and whether this call signed it. Replicas race safely:
    /// the decision and the record are made under the log's head lock, and
    /// trees of one log never conflict.
    pub async fn sign_checkpoint(
        &self,
        actor: &str,
        on_demand: bool,
    ) -> RegistryResult<(Option<CheckpointRecord>, bool)> {
        let size = self.store.extend_tree().await?;
        if size == 0 {
            return Ok((None, false));
        }
        let root = self.store.tree_root(size).await?;
        let mut tx = self.store.begin().await?;
        let latest = tx.latest_checkpoint().await?;
        if let Some(latest) = &latest {
            let grown = tx.head_sequence() > latest.sequence;
            if size <= latest.tree_size || !(on_demand || grown) {
                drop(tx);
                return Ok((Some(latest.clone()), false));
            }
        }
        let origin = self.log.key.name().to_owned();
        let text = proof::checkpoint_text(&origin, size, &root)
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let note = self.log.key.sign(&text).map_err(RegistryError::Internal)?;
        let payload = CheckpointSigned {
            v: 1,
            origin: origin.clone(),
            tree_size: size,
            root_hash: root.to_hex(),
            note: note.clone(),
        };
        let appended = tx.append(NewEvent::of(&payload, actor)?).await?;
        tx.commit().await?;
        let record = CheckpointRecord {
            tree_size: size,
            root_hash: root,
            origin,
            note,
            sequence: appended.sequence,
            signed_at: appended.created_at,
        };
        self.write_anchors(&record).await;
        Ok((Some(record), true))
    }

    /// Signs a checkpoint whenever the log has grown, at most every
    /// `[log] checkpoint_interval`, until `stop`; `serve` runs it.
    pub async fn sign_checkpoints_every_interval(&self, stop: tokio_util::sync::CancellationToken) {
        let Some(interval) = self.log.checkpoint_interval else {
            tracing::info!("log checkpoint_interval is 0s: checkpoints are signed on demand only");
            return;
        };
        loop {
            match self.sign_checkpoint(CHECKPOINT_ACTOR, false).await {
                Ok((Some(record), true)) => {
                    tracing::debug!(tree_size = record.tree_size, "signed a checkpoint");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "signing a checkpoint failed; trying again"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Writes `record` to every backend's anchor unless the anchor there is
    /// newer. A failure is logged, not returned: the checkpoint is signed
    /// and recorded, and the next one writes the anchor again.
    async fn write_anchors(&self, record: &CheckpointRecord) {
        for (id, backend) in self.backends.iter() {
            if let Ok(Some(current)) = self.read_anchor(backend.as_ref()).await {
                if let Ok(anchor) =
                    proof::SignedCheckpoint::open(&current, self.log.key.verifier_key())
                {
                    if anchor.tree_size >= record.tree_size {
                        continue;
                    }
                }
            }
            let bytes = Bytes::from(record.note.clone().into_bytes());
            if let Err(e) = backend.replace_small(LOG_ANCHOR_KEY, bytes).await {
                tracing::warn!(backend = %id, error = %e, "could not write the log anchor");
            }
        }
    }

    /// A backend's anchor, if it has one.
    async fn read_anchor(
        &self,
        backend: &dyn artifactstore_storage::Backend,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let stream = match backend.open(LOG_ANCHOR_KEY, None).await {
            Ok(stream) => stream,
            Err(StorageError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.try_next().await? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_ANCHOR_BYTES {
                break;
            }
        }
        Ok(Some(bytes))
    }
}
