//! The log's proofs (`GET /v1/log/proof/*`) and checkpoints
//! (`POST /v1/log/checkpoints`). Keys, checkpoints and leaves themselves
//! are not JSON: they are served as the exact bytes their formats define
//! (signed-note text, C2SP tlog-checkpoint, canonical CBOR).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// That leaf `leaf_index` is in the tree of `tree_size` leaves (RFC 9162
/// §2.1.3): the hashes from the leaf's sibling up to the root's child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    /// The event's sequence − 1.
    pub leaf_index: u64,
    /// The tree the proof is for.
    pub tree_size: u64,
    /// SHA-256 node hashes, standard base64, in RFC 9162 order.
    #[schema(pattern = r"^[A-Za-z0-9+/]{43}=$")]
    pub hashes: Vec<String>,
}

/// That the tree of `from` leaves is a prefix of the tree of `to` (RFC 9162
/// §2.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    /// SHA-256 node hashes, standard base64, in RFC 9162 order.
    #[schema(pattern = r"^[A-Za-z0-9+/]{43}=$")]
    pub hashes: Vec<String>,
}

/// A checkpoint just signed on demand, or the newest one when the log had
/// not grown since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckpointSigned {
    /// Leaves in the tree it signs.
    pub tree_size: u64,
    /// The tree's root, standard base64.
    pub root_hash: String,
    /// Whether this request signed it (false: nothing new to sign).
    pub signed: bool,
    /// The signed note, exactly as `GET /v1/log/checkpoints/{tree_size}`
    /// serves it.
    pub note: String,
}
