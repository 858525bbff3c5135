//! BLAKE3 and SHA-256 of a file that arrives in pieces, over hours, through
//! processes that stop and start: a resumable upload's digests.
//!
//! The bytes come in *parts* of one fixed size, a power of two. After each
//! whole part the state is small and plain (eight SHA-256 words, a few
//! BLAKE3 chaining values), so it can be saved beside the upload and the
//! hashing resumed elsewhere without re-reading a byte. Only the bytes after
//! the last whole part (less than one part) are re-read on resume.
//!
//! SHA-256 runs its compression function over the parts in order (a part
//! is a whole number of 64-byte blocks). BLAKE3 is a tree whose leaves are
//! 1 KiB chunks: a part of 2^k chunks starting at a multiple of its size is
//! a complete subtree, so each part is hashed alone (with its input offset)
//! and the subtrees are merged as BLAKE3's own hasher merges them, lazily,
//! since the last merge must be marked as the root.

use serde::{Deserialize, Serialize};
use sha2::digest::block_buffer::EagerBuffer;
use sha2::digest::consts::U64;

use crate::digest::{Digest32, FileDigests};

/// The smallest part: two BLAKE3 chunks, so a part splits into two
/// complete halves (see [`PartDigests::finish`]).
pub const MIN_PART_BYTES: u64 = 2048;

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const SHA256_INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Why a saved state or a part was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartDigestError {
    /// The part size is not a power of two of at least [`MIN_PART_BYTES`].
    #[error("part size {0} is not a power of two of at least {MIN_PART_BYTES} bytes")]
    PartSize(u64),
    /// A part of the wrong length was absorbed.
    #[error("a part holds {actual} bytes, not {expected}")]
    PartLength {
        /// The part size.
        expected: u64,
        /// What was given.
        actual: u64,
    },
    /// The tail given at the end is a part or more.
    #[error("the bytes after the last part ({0}) must be fewer than one part")]
    TailLength(u64),
    /// The saved bytes do not decode to a state.
    #[error("saved digest state is damaged: {0}")]
    Damaged(String),
}

/// Both digests of the whole parts seen so far, resumable from its saved
/// bytes ([`PartDigests::to_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartDigests {
    part_bytes: u64,
    parts: u64,
    sha256: [u32; 8],
    /// Chaining values of complete subtrees, left to right, merged lazily.
    stack: Vec<[u8; 32]>,
    /// The first part's two halves: if the file is exactly one part, its
    /// root is their merge, which the part's own (non-root) value cannot
    /// give.
    first_halves: Option<([u8; 32], [u8; 32])>,
}

impl PartDigests {
    /// The state before any byte, for parts of `part_bytes`.
    pub fn new(part_bytes: u64) -> Result<Self, PartDigestError> {
        if part_bytes < MIN_PART_BYTES || !part_bytes.is_power_of_two() {
            return Err(PartDigestError::PartSize(part_bytes));
        }
        Ok(Self {
            part_bytes,
            parts: 0,
            sha256: SHA256_INITIAL,
            stack: Vec::new(),
            first_halves: None,
        })
    }

    /// The part size.
    pub fn part_bytes(&self) -> u64 {
        self.part_bytes
    }

    /// Whole parts absorbed.
    pub fn parts(&self) -> u64 {
        self.parts
    }

    /// Bytes covered: the whole parts absorbed.
    pub fn covered_bytes(&self) -> u64 {
        self.parts * self.part_bytes
    }

    /// Absorbs the next whole part, given as its pieces in order, on this
    /// thread. See [`PartDigests::next_parts`] to hash parts as they
    /// arrive, on two threads.
    pub fn absorb<B: AsRef<[u8]>>(&mut self, part: &[B]) -> Result<(), PartDigestError> {
        let (mut sha256, mut blake3) = self.next_parts();
        for piece in part {
            sha256.update(piece.as_ref())?;
            blake3.update(piece.as_ref())?;
        }
        let (sha256, halves) = (sha256.end_part()?, blake3.end_part()?);
        self.apply(sha256, halves);
        Ok(())
    }

    /// The two digests of the parts after those absorbed so far, fed as
    /// their bytes arrive. They are independent, so each can run on a
    /// thread of its own; each part's results go to
    /// [`PartDigests::apply`], in order.
    pub fn next_parts(&self) -> (Sha256Parts, Blake3Parts) {
        let half = self.part_bytes / 2;
        let offset = self.covered_bytes();
        (
            Sha256Parts {
                work: Sha256Work::from(self.sha256),
                fed: 0,
                part_bytes: self.part_bytes,
            },
            Blake3Parts {
                left: subtree_at(offset),
                right: subtree_at(offset + half),
                offset,
                half,
                seen: 0,
            },
        )
    }

    /// Takes in the results of one part's work.
    pub fn apply(&mut self, sha256: [u32; 8], halves: ([u8; 32], [u8; 32])) {
        let part = blake3::hazmat::merge_subtrees_non_root(
            &halves.0,
            &halves.1,
            blake3::hazmat::Mode::Hash,
        );
        if self.parts == 0 {
            self.first_halves = Some(halves);
        }
        self.merge_down_to(self.parts);
        self.stack.push(part);
        self.parts += 1;
        self.sha256 = sha256;
    }

    /// Merges subtrees that are complete given that more input follows
    /// `parts` parts: as many entries as `parts` has one bits.
    fn merge_down_to(&mut self, parts: u64) {
        while self.stack.len() > parts.count_ones() as usize {
            let (Some(right), Some(left)) = (self.stack.pop(), self.stack.pop()) else {
                return;
            };
            self.stack.push(blake3::hazmat::merge_subtrees_non_root(
                &left,
                &right,
                blake3::hazmat::Mode::Hash,
            ));
        }
    }

    /// The digests of the whole file: the parts absorbed, then `tail` (the
    /// bytes after the last whole part, fewer than one part).
    pub fn finish<B: AsRef<[u8]>>(&self, tail: &[B]) -> Result<FileDigests, PartDigestError> {
        let tail_bytes: u64 = tail.iter().map(|p| p.as_ref().len() as u64).sum();
        if tail_bytes >= self.part_bytes {
            return Err(PartDigestError::TailLength(tail_bytes));
        }
        let size_bytes = self.covered_bytes() + tail_bytes;

        let mut sha256 = Sha256Work::from(self.sha256);
        for piece in tail {
            sha256.feed(piece.as_ref());
        }
        let state = sha256.finish(size_bytes);
        let mut sha256_bytes = [0u8; 32];
        for (out, word) in sha256_bytes.chunks_exact_mut(4).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }

        let blake3 = if self.parts == 0 {
            let mut hasher = blake3::Hasher::new();
            for piece in tail {
                hasher.update(piece.as_ref());
            }
            *hasher.finalize().as_bytes()
        } else if tail_bytes == 0 && self.parts == 1 {
            let (left, right) = self.first_halves.ok_or_else(|| {
                PartDigestError::Damaged("the first part's halves are missing".into())
            })?;
            root(&left, &right)
        } else {
            let mut stack = self.stack.clone();
            let mut this = self.clone();
            if tail_bytes > 0 {
                use blake3::hazmat::HasherExt;
                this.merge_down_to(self.parts);
                stack = this.stack;
                let mut hasher = blake3::Hasher::new();
                hasher.set_input_offset(self.covered_bytes());
                for piece in tail {
                    hasher.update(piece.as_ref());
                }
                stack.push(hasher.finalize_non_root());
            }
            while stack.len() > 2 {
                let (Some(right), Some(left)) = (stack.pop(), stack.pop()) else {
                    break;
                };
                stack.push(blake3::hazmat::merge_subtrees_non_root(
                    &left,
                    &right,
                    blake3::hazmat::Mode::Hash,
                ));
            }
            match stack.as_slice() {
                [left, right] => root(left, right),
                _ => {
                    return Err(PartDigestError::Damaged(
                        "the subtree stack does not match the part count".into(),
                    ))
                }
            }
        };
        Ok(FileDigests {
            size_bytes,
            blake3: Digest32(blake3),
            sha256: Digest32(sha256_bytes),
        })
    }

    /// The state as bytes to save (canonical CBOR).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing CBOR into a Vec cannot fail.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// A saved state, checked for shape.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PartDigestError> {
        let state: Self =
            ciborium::from_reader(bytes).map_err(|e| PartDigestError::Damaged(e.to_string()))?;
        let fresh = Self::new(state.part_bytes)?;
        let stack_fits = state.stack.len() >= state.parts.count_ones() as usize
            && state.stack.len() <= 64
            && (state.parts == 0) == state.stack.is_empty()
            && (state.parts == 0) == state.first_halves.is_none();
        if !stack_fits || state.parts.checked_mul(fresh.part_bytes).is_none() {
            return Err(PartDigestError::Damaged(
                "the subtree stack does not match the part count".into(),
            ));
        }
        Ok(state)
    }
}

fn root(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    *blake3::hazmat::merge_subtrees_root(left, right, blake3::hazmat::Mode::Hash).as_bytes()
}

/// SHA-256 continued from a saved state, the bytes after the last whole
/// block kept until the next ones arrive.
#[derive(Debug, Clone)]
struct Sha256Work {
    state: [u32; 8],
    /// The bytes after the last whole block. Whole blocks of the input go
    /// to the compression function where they lie: copying each block out
    /// first, as this did before, was 3% of a tus server's samples in a
    /// profile of a 2 GiB upload; without it the server's CPU per upload
    /// is within 1–7% of a PUT's, from 6–10% (docs/benchmarks.md).
    buffer: EagerBuffer<U64>,
}

impl From<[u32; 8]> for Sha256Work {
    /// Continues from `state`, after a whole number of blocks.
    fn from(state: [u32; 8]) -> Self {
        Self {
            state,
            buffer: EagerBuffer::default(),
        }
    }
}

impl Sha256Work {
    fn feed(&mut self, bytes: &[u8]) {
        let Self { state, buffer } = self;
        buffer.digest_blocks(bytes, |blocks| sha2::compress256(state, blocks));
    }

    /// Whether the bytes fed so far are a whole number of blocks.
    fn at_block_boundary(&self) -> bool {
        self.buffer.get_pos() == 0
    }

    /// The state after FIPS 180-4's padding of a message of `size_bytes`
    /// (0x80, zeros to 56 mod 64, the length in bits).
    fn finish(mut self, size_bytes: u64) -> [u32; 8] {
        let Self { state, buffer } = &mut self;
        buffer.len64_padding_be(size_bytes.wrapping_mul(8), |block| {
            sha2::compress256(state, std::slice::from_ref(block))
        });
        self.state
    }
}

/// SHA-256 of parts as their bytes arrive, each continuing from the state
/// the one before left (see [`PartDigests::next_parts`]).
#[derive(Debug, Clone)]
pub struct Sha256Parts {
    work: Sha256Work,
    fed: u64,
    part_bytes: u64,
}

impl Sha256Parts {
    /// Feeds the next bytes of the current part.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), PartDigestError> {
        let fed = self.fed + bytes.len() as u64;
        if fed > self.part_bytes {
            return Err(PartDigestError::PartLength {
                expected: self.part_bytes,
                actual: fed,
            });
        }
        self.fed = fed;
        self.work.feed(bytes);
        Ok(())
    }

    /// Ends the current part, which must be whole: its state, for
    /// [`PartDigests::apply`]. The next part continues from it.
    pub fn end_part(&mut self) -> Result<[u32; 8], PartDigestError> {
        if self.fed != self.part_bytes {
            return Err(PartDigestError::PartLength {
                expected: self.part_bytes,
                actual: self.fed,
            });
        }
        // A part is a whole number of blocks, so nothing is carried over.
        debug_assert!(self.work.at_block_boundary());
        self.fed = 0;
        Ok(self.work.state)
    }
}

fn subtree_at(offset: u64) -> blake3::Hasher {
    use blake3::hazmat::HasherExt;
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    hasher
}

/// BLAKE3 of parts as their bytes arrive: each part's two halves are
/// complete subtrees at their offsets (see [`PartDigests::next_parts`]).
#[derive(Debug, Clone)]
pub struct Blake3Parts {
    left: blake3::Hasher,
    right: blake3::Hasher,
    /// Where the current part starts in the file.
    offset: u64,
    half: u64,
    /// Bytes of the current part fed so far.
    seen: u64,
}

impl Blake3Parts {
    /// Feeds the next bytes of the current part.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), PartDigestError> {
        let seen = self.seen + bytes.len() as u64;
        if seen > 2 * self.half {
            return Err(PartDigestError::PartLength {
                expected: 2 * self.half,
                actual: seen,
            });
        }
        let in_left = (self.half.saturating_sub(self.seen) as usize).min(bytes.len());
        self.left.update(&bytes[..in_left]);
        self.right.update(&bytes[in_left..]);
        self.seen = seen;
        Ok(())
    }

    /// Ends the current part, which must be whole: the chaining values of
    /// its halves, for [`PartDigests::apply`].
    pub fn end_part(&mut self) -> Result<([u8; 32], [u8; 32]), PartDigestError> {
        use blake3::hazmat::HasherExt;
        if self.seen != 2 * self.half {
            return Err(PartDigestError::PartLength {
                expected: 2 * self.half,
                actual: self.seen,
            });
        }
        let halves = (
            self.left.finalize_non_root(),
            self.right.finalize_non_root(),
        );
        self.offset += 2 * self.half;
        self.left = subtree_at(self.offset);
        self.right = subtree_at(self.offset + self.half);
        self.seen = 0;
        Ok(halves)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    /// Absorbs `data` in parts of `part`, each given in pieces of `piece`
    /// bytes, saving and restoring the state after every part.
    fn digests_in_parts(data: &[u8], part: usize, piece: usize) -> FileDigests {
        let mut state = PartDigests::new(part as u64).unwrap();
        let whole = data.len() / part * part;
        // Like an upload: the last whole part waits for at least one more
        // byte only in the caller; here every whole part is absorbed.
        for chunk in data[..whole].chunks(part) {
            let (mut sha, mut b3) = state.next_parts();
            for piece in chunk.chunks(piece) {
                sha.update(piece).unwrap();
                b3.update(piece).unwrap();
            }
            state.apply(sha.end_part().unwrap(), b3.end_part().unwrap());
            state = PartDigests::from_bytes(&state.to_bytes()).unwrap();
        }
        let tail: Vec<&[u8]> = data[whole..].chunks(piece.max(1)).collect();
        state.finish(&tail).unwrap()
    }

    #[test]
    fn equal_to_one_pass_for_every_shape() {
        // Sizes around SHA-256's padding (55 and 56 bytes after the last
        // block take one and two more blocks), part and chunk boundaries,
        // one to many parts (with
        // 1, 2, 3, 4, 5, 7, 8, 9 parts the lazy merges take every path).
        for part in [2048usize, 4096, 65536] {
            let mut sizes = vec![
                0, 1, 55, 56, 63, 64, 65, 119, 120, 1023, 1024, 1025, 2047, 2048, 2049,
            ];
            for parts in [1usize, 2, 3, 4, 5, 7, 8, 9] {
                for delta in [-1i64, 0, 1, 1024] {
                    let size = (parts * part) as i64 + delta;
                    if size >= 0 {
                        sizes.push(size as usize);
                    }
                }
            }
            for size in sizes {
                let data = bytes(size, (size % 251) as u8);
                let expected = FileDigests::of(&data);
                for piece in [1000usize, 64, 4096] {
                    if size > 20_000 && piece < 1000 {
                        continue;
                    }
                    assert_eq!(
                        digests_in_parts(&data, part, piece),
                        expected,
                        "size {size}, part {part}, pieces of {piece}"
                    );
                }
            }
        }
    }

    #[test]
    fn streams_carried_across_parts_give_the_same() {
        let data = bytes(6 * 4096 + 100, 9);
        let mut state = PartDigests::new(4096).unwrap();
        let (mut sha, mut b3) = state.next_parts();
        for chunk in data[..6 * 4096].chunks(4096) {
            for piece in chunk.chunks(1000) {
                sha.update(piece).unwrap();
                b3.update(piece).unwrap();
            }
            state.apply(sha.end_part().unwrap(), b3.end_part().unwrap());
        }
        assert_eq!(
            state.finish(&[&data[6 * 4096..]]).unwrap(),
            FileDigests::of(&data)
        );
        // A part is whole before it ends, and holds no more than a part.
        assert!(matches!(
            sha.update(&[0u8; 100]).and_then(|()| sha.end_part()),
            Err(PartDigestError::PartLength { .. })
        ));
        assert!(matches!(
            b3.update(&[0u8; 5000]),
            Err(PartDigestError::PartLength { .. })
        ));
    }

    #[test]
    fn absorb_on_one_thread_gives_the_same() {
        let data = bytes(5 * 4096 + 17, 3);
        let mut state = PartDigests::new(4096).unwrap();
        for chunk in data[..5 * 4096].chunks(4096) {
            state.absorb(&[chunk]).unwrap();
        }
        assert_eq!(
            state.finish(&[&data[5 * 4096..]]).unwrap(),
            FileDigests::of(&data)
        );
    }

    #[test]
    fn refuses_bad_sizes_and_damaged_states() {
        assert_eq!(PartDigests::new(3000), Err(PartDigestError::PartSize(3000)));
        assert_eq!(PartDigests::new(1024), Err(PartDigestError::PartSize(1024)));
        let mut state = PartDigests::new(2048).unwrap();
        assert!(matches!(
            state.absorb(&[[0u8; 100]]),
            Err(PartDigestError::PartLength { .. })
        ));
        assert_eq!(
            state.finish(&[vec![0u8; 2048]]),
            Err(PartDigestError::TailLength(2048))
        );
        assert!(PartDigests::from_bytes(b"\xff\x00garbage").is_err());
        // A stack that does not fit its part count is refused, not used.
        let mut forged = state.clone();
        forged.parts = 3;
        assert!(PartDigests::from_bytes(&forged.to_bytes()).is_err());
    }
}
