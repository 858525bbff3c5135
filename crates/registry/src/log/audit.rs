//! Checking the log against what this server signed: at every start
//! (refusing to serve a log that contradicts a checkpoint), and in full by
//! `admin verify-log`.
//!
//! The tree is recomputed from the events themselves, streaming (only the
//! tiles' unfilled edge is kept), so stored tiles rewritten along with the
//! events do not hide a rewrite.

use std::collections::BTreeMap;

use artifactstore_core::merkle::{self, TileEdge};
use artifactstore_core::Digest32;

use super::proof::SignedCheckpoint;
use crate::{Registry, RegistryError, RegistryResult};

/// Events read per batch while recomputing.
const BATCH: i64 = 8192;
/// Recorded checkpoints read per page.
const CHECKPOINT_PAGE: i64 = 1024;

/// What a check of the log found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogAudit {
    /// Events whose chain links and payload digests were checked (0 when
    /// only the tree was).
    pub chain_checked: u64,
    /// Leaves the recomputed tree holds.
    pub tree_size: u64,
    /// Its root, lowercase hex.
    pub root_hash: String,
    /// Signed checkpoints compared with the recomputed tree, and where
    /// each came from.
    pub checkpoints_checked: u64,
    /// Anchors (`log/checkpoint` on each backend) among them.
    pub anchors_checked: Vec<String>,
    /// The first thing wrong, if any.
    pub problem: Option<String>,
}

impl LogAudit {
    /// Nothing was wrong.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// What the recomputed tree must match at one size.
struct Expected {
    root: Digest32,
    source: String,
}

/// Adds a signed checkpoint to what the tree must match; false (and the
/// audit's problem set) if it is not ours or is beyond the log.
fn expect(
    expected: &mut BTreeMap<u64, Vec<Expected>>,
    audit: &mut LogAudit,
    key: &str,
    head: u64,
    note: &[u8],
    source: String,
) -> bool {
    match SignedCheckpoint::open(note, key) {
        Ok(checkpoint) if checkpoint.tree_size > head => {
            audit.problem = Some(format!(
                "{source} holds a checkpoint of {} events signed by this server's key, \
                 but the log has {head}: the database is older than that checkpoint \
                 (restored from a backup?) or was cut short",
                checkpoint.tree_size
            ));
            false
        }
        Ok(checkpoint) => {
            expected
                .entry(checkpoint.tree_size)
                .or_default()
                .push(Expected {
                    root: checkpoint.root,
                    source,
                });
            true
        }
        Err(e) => {
            audit.problem = Some(format!(
                "{source}: {e}. It was not signed by this server's log key {key}: \
                 replicas sharing a database must share one key ([log] signing_key)"
            ));
            false
        }
    }
}

impl Registry {
    /// The check `serve` runs before it serves: the newest recorded
    /// checkpoint, each backend's anchor and the stored tiles against the
    /// tree recomputed from the events. A problem is
    /// [`RegistryError::LogInconsistent`], naming what disagrees.
    pub async fn check_log_at_start(&self) -> RegistryResult<LogAudit> {
        let audit = self.audit(false).await?;
        match &audit.problem {
            Some(problem) => Err(RegistryError::LogInconsistent(problem.clone())),
            None => Ok(audit),
        }
    }

    /// `admin verify-log`: the hash chain and payload digests, then the
    /// tree against every recorded checkpoint, every anchor and the stored
    /// tiles.
    pub async fn verify_log_in_full(&self) -> RegistryResult<LogAudit> {
        let chain = self.store.verify_log().await?;
        let mut audit = self.audit(true).await?;
        audit.chain_checked = chain.checked;
        if let Some(bad) = chain.first_bad_sequence {
            audit.problem = Some(format!(
                "event {bad} does not match its payload digest or its chain link: the log was altered there"
            ));
        }
        Ok(audit)
    }

    async fn audit(&self, every_checkpoint: bool) -> RegistryResult<LogAudit> {
        let key = self.log.key.verifier_key().to_owned();
        let head = u64::try_from(self.store.head_sequence().await?).unwrap_or(0);
        let mut expected: BTreeMap<u64, Vec<Expected>> = BTreeMap::new();
        let mut audit = LogAudit {
            chain_checked: 0,
            tree_size: 0,
            root_hash: String::new(),
            checkpoints_checked: 0,
            anchors_checked: Vec::new(),
            problem: None,
        };
        for (id, backend) in self.backends.iter() {
            let anchor = self
                .read_anchor(backend.as_ref())
                .await
                .map_err(RegistryError::from)?;
            if let Some(note) = anchor {
                let source = format!("the anchor on backend `{id}`");
                if !expect(&mut expected, &mut audit, &key, head, &note, source) {
                    return Ok(audit);
                }
                audit.anchors_checked.push(id.clone());
            }
        }
        let mut recorded_after = 0u64;
        let mut recorded_done = false;
        if !every_checkpoint {
            recorded_done = true;
            if let Some(latest) = self.store.latest_checkpoint().await? {
                let source = format!("the checkpoint recorded at event {}", latest.sequence);
                if !expect(
                    &mut expected,
                    &mut audit,
                    &key,
                    head,
                    latest.note.as_bytes(),
                    source,
                ) {
                    return Ok(audit);
                }
            }
        }
        let stored_size = self.store.tree_size().await?.min(head);
        if stored_size > 0 {
            let root = self.store.tree_root(stored_size).await?;
            expected.entry(stored_size).or_default().push(Expected {
                root,
                source: "the stored tree tiles".into(),
            });
        }

        let mut edge = TileEdge::new(0, &[]).map_err(|e| RegistryError::Internal(e.to_string()))?;
        loop {
            if !recorded_done && edge.size() >= recorded_after {
                let page = self
                    .store
                    .checkpoints_after(recorded_after, CHECKPOINT_PAGE)
                    .await?;
                recorded_done = (page.len() as i64) < CHECKPOINT_PAGE;
                for recorded in page {
                    recorded_after = recorded.tree_size;
                    let source = format!("the checkpoint recorded at event {}", recorded.sequence);
                    if !expect(
                        &mut expected,
                        &mut audit,
                        &key,
                        head,
                        recorded.note.as_bytes(),
                        source.clone(),
                    ) {
                        return Ok(audit);
                    }
                    if let Some(last) = expected.get(&recorded.tree_size).and_then(|e| e.last()) {
                        if last.root != recorded.root_hash {
                            audit.problem = Some(format!(
                                "{source}: its recorded root differs from the root its note signs"
                            ));
                            return Ok(audit);
                        }
                    }
                }
            }
            let leaves = self
                .store
                .leaves_after(i64::try_from(edge.size()).unwrap_or(i64::MAX), BATCH)
                .await?;
            if leaves.is_empty() {
                break;
            }
            for (_, leaf) in leaves {
                edge.push(merkle::leaf_hash(&leaf));
                let Some(wanted) = expected.remove(&edge.size()) else {
                    continue;
                };
                let root = edge.root();
                audit.checkpoints_checked += wanted
                    .iter()
                    .filter(|w| w.source != "the stored tree tiles")
                    .count() as u64;
                if let Some(differs) = wanted.iter().find(|w| w.root != root) {
                    audit.problem = Some(format!(
                        "the log's first {} events do not hash to the root in {}: \
                         the log was rewritten",
                        edge.size(),
                        differs.source
                    ));
                    return Ok(audit);
                }
            }
        }
        audit.tree_size = edge.size();
        audit.root_hash = edge.root().to_hex();
        if let Some((size, wanted)) = expected.into_iter().next() {
            let source = wanted.first().map_or("a checkpoint", |w| w.source.as_str());
            audit.problem = Some(format!(
                "{source} covers {size} events, but only {} could be read back",
                audit.tree_size
            ));
        }
        Ok(audit)
    }
}
