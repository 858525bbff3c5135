//! Offline checks of what the log hands out: signed checkpoints, inclusion
//! and consistency proofs. No server and no database: `verify-bundle`,
//! `verify-log` and the server's own start check all come through here.
//! The proof arithmetic is `tlog_tiles`' verifier (a port of Go's
//! `sumdb/tlog`), independent of the tree code that made the proofs.

use artifactstore_core::merkle;
use artifactstore_core::Digest32;
use base64::Engine as _;
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

/// What an offline check found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProofError(pub String);

fn fail(why: impl Into<String>) -> ProofError {
    ProofError(why.into())
}

/// Standard base64 of a hash, as the API and bundles write them.
pub fn encode_hash(hash: &Digest32) -> String {
    base64::engine::general_purpose::STANDARD.encode(hash.0)
}

/// A hash from its standard base64.
pub fn decode_hash(text: &str) -> Result<Digest32, ProofError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| fail(format!("hash {text:?} is not base64: {e}")))?;
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| fail(format!("hash {text:?} is not 32 bytes")))?;
    Ok(Digest32(array))
}

/// The text of a signed note if the key `verifier_key` (`name+keyid+base64`)
/// signed it.
pub fn open_note(note: &[u8], verifier_key: &str) -> Result<Vec<u8>, String> {
    let verifier = StandardVerifier::new(verifier_key.trim())
        .map_err(|e| format!("not a signed-note verifier key ({e})"))?;
    let parsed = Note::from_bytes(note).map_err(|e| format!("not a signed note ({e})"))?;
    parsed
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| format!("its signature does not verify with the key: {e}"))?;
    Ok(parsed.text().to_vec())
}

/// A checkpoint whose signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The log's origin line.
    pub origin: String,
    /// Leaves in the tree.
    pub tree_size: u64,
    /// The tree's root.
    pub root: Digest32,
}

impl SignedCheckpoint {
    /// Checks `note`'s signature with `verifier_key` and reads the C2SP
    /// tlog-checkpoint it signs. The origin must be the key's name.
    pub fn open(note: &[u8], verifier_key: &str) -> Result<Self, ProofError> {
        let text = open_note(note, verifier_key).map_err(|e| fail(format!("checkpoint: {e}")))?;
        let checkpoint =
            Checkpoint::from_bytes(&text).map_err(|e| fail(format!("checkpoint: {e}")))?;
        let key_name = verifier_key.trim().split('+').next().unwrap_or_default();
        if checkpoint.origin() != key_name {
            return Err(fail(format!(
                "checkpoint: its origin {:?} is not the key's name {key_name:?}",
                checkpoint.origin()
            )));
        }
        Ok(Self {
            origin: checkpoint.origin().to_owned(),
            tree_size: checkpoint.size(),
            root: Digest32(checkpoint.hash().0),
        })
    }
}

/// The checkpoint body (C2SP tlog-checkpoint: origin, size, base64 root),
/// before signing.
pub fn checkpoint_text(
    origin: &str,
    tree_size: u64,
    root: &Digest32,
) -> Result<Vec<u8>, ProofError> {
    Checkpoint::new(origin, tree_size, Hash(root.0), "")
        .map(|c| c.to_bytes())
        .map_err(|e| fail(format!("checkpoint: {e}")))
}

/// Checks that `leaf` is leaf `leaf_index` of the tree of `tree_size`
/// leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &[u8],
    leaf_index: u64,
    tree_size: u64,
    hashes: &[Digest32],
    root: &Digest32,
) -> Result<(), ProofError> {
    let proof: Vec<Hash> = hashes.iter().map(|h| Hash(h.0)).collect();
    tlog_tiles::check_record(
        &proof,
        tree_size,
        Hash(root.0),
        leaf_index,
        Hash(merkle::leaf_hash(leaf).0),
    )
    .map_err(|e| {
        fail(format!(
            "the inclusion proof of leaf {leaf_index} in the tree of {tree_size} does not verify ({e})"
        ))
    })
}

/// Checks that the tree of `from` leaves with root `from_root` is a prefix
/// of the tree of `to` leaves with root `to_root`.
pub fn verify_consistency(
    from: u64,
    from_root: &Digest32,
    to: u64,
    to_root: &Digest32,
    hashes: &[Digest32],
) -> Result<(), ProofError> {
    let proof: Vec<Hash> = hashes.iter().map(|h| Hash(h.0)).collect();
    tlog_tiles::check_tree(&proof, to, Hash(to_root.0), from, Hash(from_root.0)).map_err(|e| {
        fail(format!(
            "the tree of {to} is not consistent with the tree of {from} ({e})"
        ))
    })
}
