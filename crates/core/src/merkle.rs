//! The log's RFC 9162 Merkle tree: its hashes, the subtrees a proof is made
//! of, and the tiles that store the tree's nodes.
//!
//! Every event is a leaf ([`crate::Event::leaf_bytes`]); leaf index =
//! sequence − 1. Leaf hash = SHA-256(0x00 ‖ leaf), node hash =
//! SHA-256(0x01 ‖ left ‖ right).
//!
//! A proof is planned here, not computed: [`inclusion_spans`] and
//! [`consistency_spans`] name the runs of leaves whose hashes the proof
//! lists (RFC 9162 §2.1.3 PATH and §2.1.4 SUBPROOF), [`Span::nodes`] the
//! complete subtrees each run is made of, and [`Node::tile`] the tile that
//! holds each node. The store fetches those tiles in one query and
//! [`span_hash`] folds them. Why not `tlog_tiles`' `prove_record`: its
//! `HashReader` is synchronous and addresses a flat array of every stored
//! hash (2n of them), while our nodes live in 8 KiB tiles in an async
//! database. Its verifier (`check_record`, `check_tree`) checks ours, in the
//! tests here and in every offline verification (`artifactstore
//! verify-bundle`, `verify-log`).

use std::collections::BTreeSet;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest32;

/// Tree levels one tile spans: a tile stores up to 2^8 = 256 nodes of one
/// level, like C2SP tlog-tiles' hash tiles.
pub const TILE_HEIGHT: u32 = 8;
/// Nodes in a full tile.
pub const TILE_WIDTH: usize = 1 << TILE_HEIGHT;

/// SHA-256(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> Digest32 {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(leaf);
    Digest32(hasher.finalize().into())
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Digest32, right: &Digest32) -> Digest32 {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left.0);
    hasher.update(right.0);
    Digest32(hasher.finalize().into())
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Digest32 {
    Digest32(Sha256::digest([]).into())
}

/// A complete subtree: the 2^`level` leaves from `index` × 2^`level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    /// Height above the leaves (0 is a leaf).
    pub level: u32,
    /// Position among the nodes of its level.
    pub index: u64,
}

/// A stored tile: nodes `index` × 256 … of tree level `level` × 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    /// Tile level: its nodes are at tree level `level` × [`TILE_HEIGHT`].
    pub level: u32,
    /// Position among the tiles of its level.
    pub index: u64,
}

impl Node {
    /// The tile holding the nodes this one is hashed from, and where they
    /// are in it: the first's offset and how many.
    pub fn tile(&self) -> (TileId, usize, usize) {
        let tile_level = self.level / TILE_HEIGHT;
        let above = self.level % TILE_HEIGHT;
        let first = self.index << above;
        let tile = TileId {
            level: tile_level,
            index: first >> TILE_HEIGHT,
        };
        // Both are below 256.
        let offset = (first & (TILE_WIDTH as u64 - 1)) as usize;
        (tile, offset, 1 << above)
    }

    /// This node's hash from its tile's hashes; `None` if the tile does not
    /// hold all the nodes it needs (the tree is not that big yet).
    pub fn hash_in(&self, tile: &[Digest32]) -> Option<Digest32> {
        let (_, offset, count) = self.tile();
        let mut level: Vec<Digest32> = tile.get(offset..offset + count)?.to_vec();
        while level.len() > 1 {
            level = level
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
        }
        level.first().copied()
    }
}

/// The leaves `start..end` of a tree, as RFC 9162's recursion splits it:
/// `start` is a multiple of the smallest power of two not below the span's
/// length, so the span is a sequence of complete subtrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: u64,
    end: u64,
}

impl Span {
    /// The whole tree of `size` leaves.
    pub fn tree(size: u64) -> Self {
        Self {
            start: 0,
            end: size,
        }
    }

    /// First leaf.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last leaf.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The complete subtrees that make the span, largest (leftmost) first.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes = Vec::new();
        let mut at = self.start;
        let length = self.end - self.start;
        for level in (0..64u32).rev() {
            if length & (1 << level) != 0 {
                nodes.push(Node {
                    level,
                    index: at >> level,
                });
                at += 1 << level;
            }
        }
        nodes
    }
}

/// The span's hash (MTH of its leaves) from its nodes' hashes, in the order
/// [`Span::nodes`] gives them. An empty span hashes to [`empty_root`].
pub fn span_hash(node_hashes: &[Digest32]) -> Digest32 {
    let mut hashes = node_hashes.iter().rev();
    let Some(last) = hashes.next() else {
        return empty_root();
    };
    hashes.fold(*last, |right, left| node_hash(left, &right))
}

/// The largest power of two below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Why a proof cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf is not in a tree of that size.
    #[error("leaf index {index} is not in a tree of {size} leaves")]
    LeafOutsideTree {
        /// The leaf.
        index: u64,
        /// The tree.
        size: u64,
    },
    /// A consistency proof needs 0 < from ≤ to.
    #[error("no consistency proof from tree size {from} to {to}: it needs 0 < from <= to")]
    BadRange {
        /// The older size.
        from: u64,
        /// The newer size.
        to: u64,
    },
}

/// The spans whose hashes make the inclusion proof of leaf `index` in the
/// tree of `size` leaves (RFC 9162 §2.1.3.1), in proof order.
pub fn inclusion_spans(index: u64, size: u64) -> Result<Vec<Span>, ProofError> {
    if index >= size {
        return Err(ProofError::LeafOutsideTree { index, size });
    }
    fn path(m: u64, start: u64, end: u64, out: &mut Vec<Span>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            path(m, start, start + k, out);
            out.push(Span {
                start: start + k,
                end,
            });
        } else {
            path(m - k, start + k, end, out);
            out.push(Span {
                start,
                end: start + k,
            });
        }
    }
    let mut spans = Vec::new();
    path(index, 0, size, &mut spans);
    Ok(spans)
}

/// The spans whose hashes make the consistency proof from the tree of
/// `from` leaves to the tree of `to` (RFC 9162 §2.1.4.1), in proof order.
pub fn consistency_spans(from: u64, to: u64) -> Result<Vec<Span>, ProofError> {
    if from == 0 || from > to {
        return Err(ProofError::BadRange { from, to });
    }
    fn subproof(m: u64, start: u64, end: u64, complete: bool, out: &mut Vec<Span>) {
        let n = end - start;
        if m == n {
            if !complete {
                out.push(Span { start, end });
            }
            return;
        }
        let k = split(n);
        if m <= k {
            subproof(m, start, start + k, complete, out);
            out.push(Span {
                start: start + k,
                end,
            });
        } else {
            subproof(m - k, start + k, end, false, out);
            out.push(Span {
                start,
                end: start + k,
            });
        }
    }
    let mut spans = Vec::new();
    subproof(from, 0, to, true, &mut spans);
    Ok(spans)
}

/// The tiles that hold every node of `spans`.
pub fn tiles_for(spans: &[Span]) -> BTreeSet<TileId> {
    spans
        .iter()
        .flat_map(Span::nodes)
        .map(|node| node.tile().0)
        .collect()
}

/// Tiles as stored: their hashes concatenated.
pub fn encode_tile(hashes: &[Digest32]) -> Vec<u8> {
    hashes.iter().flat_map(|hash| hash.0).collect()
}

/// A stored tile's hashes; `None` if its length is not a whole number of
/// hashes, or more than a tile holds.
pub fn decode_tile(bytes: &[u8]) -> Option<Vec<Digest32>> {
    if !bytes.len().is_multiple_of(32) || bytes.len() > 32 * TILE_WIDTH {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|chunk| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(chunk);
                Digest32(hash)
            })
            .collect(),
    )
}

/// The tiles a tree of `size` leaves has not filled: for each tile level,
/// the last tile and how many nodes it holds (the ones with none are left
/// out). These are what [`TileEdge`] must start from.
pub fn partial_tiles(size: u64) -> Vec<(TileId, usize)> {
    let mut tiles = Vec::new();
    let mut level = 0;
    loop {
        let nodes = size >> (level * TILE_HEIGHT);
        if nodes == 0 {
            break;
        }
        let width = (nodes & (TILE_WIDTH as u64 - 1)) as usize;
        if width > 0 {
            tiles.push((
                TileId {
                    level,
                    index: nodes >> TILE_HEIGHT,
                },
                width,
            ));
        }
        level += 1;
    }
    tiles
}

/// Grows the tree's tiles by whole leaves: starts from the unfilled tiles
/// of a tree ([`partial_tiles`]) and returns every tile the new leaves
/// changed. Full tiles never change again; the unfilled ones are rewritten
/// as they grow.
#[derive(Debug, Clone)]
pub struct TileEdge {
    size: u64,
    /// For each tile level, the nodes of its unfilled tile.
    levels: Vec<Vec<Digest32>>,
    filled: Vec<(TileId, Vec<Digest32>)>,
}

/// The tiles given to [`TileEdge::new`] are not those of a tree that size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored tiles do not match a tree of {size} leaves")]
pub struct TileMismatch {
    /// The tree size the tiles were read for.
    pub size: u64,
}

impl TileEdge {
    /// The edge of the tree of `size` leaves, from its unfilled tiles
    /// (each as read; a stored tile may hold more nodes than `size` needs,
    /// when another writer has grown the tree since).
    pub fn new(size: u64, unfilled: &[(TileId, Vec<Digest32>)]) -> Result<Self, TileMismatch> {
        let mut levels = Vec::new();
        for (tile, width) in partial_tiles(size) {
            let stored = unfilled
                .iter()
                .find(|(id, _)| *id == tile)
                .and_then(|(_, hashes)| hashes.get(..width))
                .ok_or(TileMismatch { size })?;
            let level = tile.level as usize;
            if levels.len() <= level {
                levels.resize(level + 1, Vec::new());
            }
            levels[level] = stored.to_vec();
        }
        Ok(Self {
            size,
            levels,
            filled: Vec::new(),
        })
    }

    /// Leaves in the tree so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf, by its hash.
    pub fn push(&mut self, leaf_hash: Digest32) {
        self.size += 1;
        let mut carry = leaf_hash;
        let mut level = 0usize;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(carry);
            if self.levels[level].len() < TILE_WIDTH {
                return;
            }
            let nodes = std::mem::take(&mut self.levels[level]);
            let tile = TileId {
                level: level as u32,
                index: (self.size >> (level as u32 * TILE_HEIGHT) >> TILE_HEIGHT) - 1,
            };
            carry = subtree_root(&nodes);
            self.filled.push((tile, nodes));
            level += 1;
        }
    }

    /// The root of the tree so far, from the unfilled tiles alone: each
    /// subtree of the root's decomposition lies in the unfilled tile of its
    /// tile level (its level's bit is set in the size, so it starts inside
    /// that tile), which lets a verifier stream the log keeping only these.
    pub fn root(&self) -> Digest32 {
        let nodes: Vec<Digest32> = Span::tree(self.size)
            .nodes()
            .iter()
            .map(|node| {
                let level = (node.level / TILE_HEIGHT) as usize;
                // Present by the argument above; an empty tile would mean a
                // bug, and hashes as the empty root rather than panic.
                self.levels
                    .get(level)
                    .and_then(|tile| node.hash_in(tile))
                    .unwrap_or_else(empty_root)
            })
            .collect();
        span_hash(&nodes)
    }

    /// Every tile the pushed leaves changed: the ones they filled and the
    /// unfilled ones as they stand now.
    pub fn into_changed(self) -> Vec<(TileId, Vec<Digest32>)> {
        let size = self.size;
        let mut changed = self.filled;
        for (level, nodes) in self.levels.into_iter().enumerate() {
            if nodes.is_empty() {
                continue;
            }
            let tile = TileId {
                level: level as u32,
                index: size >> (level as u32 * TILE_HEIGHT) >> TILE_HEIGHT,
            };
            changed.push((tile, nodes));
        }
        changed
    }
}

/// The root of a full tile's nodes (a power of two of them).
fn subtree_root(nodes: &[Digest32]) -> Digest32 {
    let mut level = nodes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The Certificate Transparency reference tree (RFC 6962's test data,
    /// as published with the CT reference implementations): its leaves, the
    /// root at every size, and proofs computed by that implementation.
    const CT_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const CT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    const CT_INCLUSION: [(u64, u64, &[&str]); 3] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
    ];
    const CT_CONSISTENCY: [(u64, u64, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    fn hex(digest: &Digest32) -> String {
        digest.to_hex()
    }

    /// A tree kept whole in memory, its tiles built by [`TileEdge`] in
    /// pushes of uneven sizes.
    struct Tiled {
        tiles: BTreeMap<TileId, Vec<Digest32>>,
        size: u64,
    }

    impl Tiled {
        fn grow(&mut self, leaf_hashes: &[Digest32]) {
            let unfilled: Vec<_> = partial_tiles(self.size)
                .into_iter()
                .map(|(id, _)| (id, self.tiles[&id].clone()))
                .collect();
            let mut edge = TileEdge::new(self.size, &unfilled).unwrap();
            for hash in leaf_hashes {
                edge.push(*hash);
            }
            self.size = edge.size();
            for (id, hashes) in edge.into_changed() {
                self.tiles.insert(id, hashes);
            }
        }

        fn spans(&self, spans: &[Span]) -> Vec<Digest32> {
            spans
                .iter()
                .map(|span| {
                    let nodes: Vec<Digest32> = span
                        .nodes()
                        .iter()
                        .map(|node| node.hash_in(&self.tiles[&node.tile().0]).unwrap())
                        .collect();
                    span_hash(&nodes)
                })
                .collect()
        }

        fn root(&self, size: u64) -> Digest32 {
            self.spans(&[Span::tree(size)])[0]
        }
    }

    fn ct_tree() -> Tiled {
        let mut tree = Tiled {
            tiles: BTreeMap::new(),
            size: 0,
        };
        let hashes: Vec<_> = CT_LEAVES
            .iter()
            .map(|leaf| leaf_hash(&::hex::decode(leaf).unwrap()))
            .collect();
        tree.grow(&hashes[..3]);
        tree.grow(&hashes[3..]);
        tree
    }

    #[test]
    fn roots_match_the_certificate_transparency_reference() {
        let tree = ct_tree();
        assert_eq!(hex(&empty_root()), CT_ROOTS[0]);
        for size in 0..=8u64 {
            assert_eq!(
                hex(&tree.root(size)),
                CT_ROOTS[size as usize],
                "size {size}"
            );
        }
    }

    #[test]
    fn proofs_match_the_certificate_transparency_reference() {
        let tree = ct_tree();
        for (index, size, expected) in CT_INCLUSION {
            let proof = tree.spans(&inclusion_spans(index, size).unwrap());
            let proof: Vec<String> = proof.iter().map(hex).collect();
            assert_eq!(proof, expected, "inclusion of {index} in {size}");
        }
        for (from, to, expected) in CT_CONSISTENCY {
            let proof = tree.spans(&consistency_spans(from, to).unwrap());
            let proof: Vec<String> = proof.iter().map(hex).collect();
            assert_eq!(proof, expected, "consistency {from} -> {to}");
        }
    }

    fn synthetic(size: u64, pushes: &[usize]) -> (Tiled, Vec<Digest32>) {
        let hashes: Vec<Digest32> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut tree = Tiled {
            tiles: BTreeMap::new(),
            size: 0,
        };
        let mut at = 0usize;
        let mut turn = 0usize;
        while at < hashes.len() {
            let take = pushes[turn % pushes.len()].min(hashes.len() - at);
            tree.grow(&hashes[at..at + take]);
            at += take;
            turn += 1;
        }
        (tree, hashes)
    }

    /// A second, naive computation of the root (RFC 9162 §2.1.1 as
    /// written), to check trees that span several tile levels.
    fn naive_root(leaves: &[Digest32]) -> Digest32 {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn tiles_grown_unevenly_give_the_roots_of_the_whole_tree() {
        // Over two tile levels filled (65,536 leaves) and into a third.
        let (tree, hashes) = synthetic(70_001, &[1, 255, 256, 257, 4096, 7]);
        for size in [1u64, 2, 255, 256, 257, 511, 65_535, 65_536, 65_537, 70_001] {
            assert_eq!(
                tree.root(size),
                naive_root(&hashes[..size as usize]),
                "size {size}"
            );
        }
        // A streaming edge alone knows the root at every size.
        let mut edge = TileEdge::new(0, &[]).unwrap();
        for (i, hash) in hashes.iter().enumerate() {
            edge.push(*hash);
            let size = i as u64 + 1;
            if size.is_multiple_of(4_099) || [1, 256, 65_536, 65_537].contains(&size) {
                assert_eq!(edge.root(), tree.root(size), "edge root at {size}");
            }
        }
        assert!(tree.tiles.keys().any(|tile| tile.level == 2));
    }

    #[test]
    fn the_tlog_tiles_verifier_accepts_our_proofs_and_refuses_altered_ones() {
        use tlog_tiles::{check_record, check_tree, Hash};
        let (tree, hashes) = synthetic(1_100, &[3, 300, 97]);
        let h = |d: &Digest32| Hash(d.0);
        for size in [1u64, 2, 3, 7, 8, 255, 256, 257, 513, 1_024, 1_100] {
            let root = tree.root(size);
            for index in [0, size / 3, size / 2, size - 1] {
                let proof: Vec<Hash> = tree
                    .spans(&inclusion_spans(index, size).unwrap())
                    .iter()
                    .map(h)
                    .collect();
                let leaf = h(&hashes[index as usize]);
                check_record(&proof, size, h(&root), index, leaf).unwrap();
                if let Some(first) = proof.first() {
                    let mut altered = proof.clone();
                    altered[0] = Hash(node_hash(&Digest32(first.0), &Digest32(first.0)).0);
                    assert!(check_record(&altered, size, h(&root), index, leaf).is_err());
                }
            }
            for from in [1u64, size / 2, size - 1, size] {
                if from == 0 {
                    continue;
                }
                let proof: Vec<Hash> = tree
                    .spans(&consistency_spans(from, size).unwrap())
                    .iter()
                    .map(h)
                    .collect();
                check_tree(&proof, size, h(&root), from, h(&tree.root(from))).unwrap();
                if from < size {
                    let wrong = h(&leaf_hash(b"not a root"));
                    assert!(check_tree(&proof, size, h(&root), from, wrong).is_err());
                }
            }
        }
    }

    #[test]
    fn proofs_outside_the_tree_are_refused() {
        assert_eq!(
            inclusion_spans(5, 5),
            Err(ProofError::LeafOutsideTree { index: 5, size: 5 })
        );
        assert!(consistency_spans(0, 5).is_err());
        assert!(consistency_spans(6, 5).is_err());
        assert!(decode_tile(&[0; 31]).is_none());
        assert!(decode_tile(&vec![0; 32 * 257]).is_none());
    }

    #[test]
    fn edge_refuses_tiles_of_a_smaller_tree() {
        let (tree, _) = synthetic(300, &[300]);
        let short: Vec<_> = partial_tiles(300)
            .into_iter()
            .map(|(id, _)| (id, tree.tiles[&id].iter().take(10).copied().collect()))
            .collect();
        assert_eq!(
            TileEdge::new(300, &short).unwrap_err(),
            TileMismatch { size: 300 }
        );
        // Tiles grown past the size asked for are fine: the prefix is used.
        let long: Vec<_> = partial_tiles(290)
            .into_iter()
            .map(|(id, _)| (id, tree.tiles[&id].clone()))
            .collect();
        assert_eq!(TileEdge::new(290, &long).unwrap().size(), 290);
    }
}
