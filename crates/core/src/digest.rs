//! Digests and content addresses.
//!
//! Every file is hashed with BLAKE3 (its identity) and SHA-256 (what
//! RFC 9530 `Content-Digest` and most auditors speak) in one pass.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// The prefix of every content address.
pub const CONTENT_ADDRESS_PREFIX: &str = "blake3:";

/// A 32-byte digest, shown as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    /// Lowercase hex of the 32 bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase or uppercase hex characters.
    pub fn from_hex(text: &str) -> Result<Self, DigestError> {
        if text.len() != 64 {
            return Err(DigestError::BadLength(text.len()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| DigestError::NotHex)?;
        Ok(Self(out))
    }

    /// The BLAKE3 digest of `bytes`.
    pub fn blake3_of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }
}

impl fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a digest or content address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Hex digests are 64 characters.
    #[error("a digest is 64 hex characters, got {0}")]
    BadLength(usize),
    /// Only 0-9, a-f.
    #[error("a digest must be hexadecimal")]
    NotHex,
    /// Content addresses start with `blake3:`.
    #[error("a content address starts with `blake3:`")]
    MissingPrefix,
}

/// `blake3:<64 lowercase hex>`: the identity of some bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentAddress(pub Digest32);

impl ContentAddress {
    /// The content address of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Digest32::blake3_of(bytes))
    }

    /// The object key under which a backend keeps these bytes. Derived from
    /// the digest alone, never from user input (DESIGN.md invariant 7); the
    /// two-level fan-out keeps directories small on filesystems.
    pub fn object_key(&self) -> String {
        let hex = self.0.to_hex();
        format!("blake3/{}/{}/{}", &hex[0..2], &hex[2..4], hex)
    }
}

impl fmt::Display for ContentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{CONTENT_ADDRESS_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for ContentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ContentAddress {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex = text
            .strip_prefix(CONTENT_ADDRESS_PREFIX)
            .ok_or(DigestError::MissingPrefix)?;
        Ok(Self(Digest32::from_hex(hex)?))
    }
}

/// Size and both digests of one stream of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigests {
    /// Number of bytes hashed.
    pub size_bytes: u64,
    /// BLAKE3 of the bytes.
    pub blake3: Digest32,
    /// SHA-256 of the bytes.
    pub sha256: Digest32,
}

impl FileDigests {
    /// The content address (BLAKE3) of the bytes.
    pub fn content_address(&self) -> ContentAddress {
        ContentAddress(self.blake3)
    }

    /// Digests of a byte slice, for tests and small inputs.
    pub fn of(bytes: &[u8]) -> Self {
        let mut hasher = DualHasher::default();
        hasher.update(bytes);
        hasher.finalize()
    }
}

/// BLAKE3 and SHA-256 over one pass of the bytes.
#[derive(Default, Clone)]
pub struct DualHasher {
    blake3: blake3::Hasher,
    sha256: sha2::Sha256,
    size_bytes: u64,
}

impl DualHasher {
    /// Feeds the next chunk to both hashers.
    pub fn update(&mut self, chunk: &[u8]) {
        self.blake3.update(chunk);
        self.sha256.update(chunk);
        self.size_bytes += chunk.len() as u64;
    }

    /// The digests of everything fed so far.
    pub fn finalize(self) -> FileDigests {
        FileDigests {
            size_bytes: self.size_bytes,
            blake3: Digest32(*self.blake3.finalize().as_bytes()),
            sha256: Digest32(self.sha256.finalize().into()),
        }
    }
}

/// A BLAKE3-only hasher with a byte count; half of a split pipeline.
#[derive(Default, Clone)]
pub struct Blake3Hasher(blake3::Hasher);

impl Blake3Hasher {
    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }
    /// The digest.
    pub fn finalize(&self) -> Digest32 {
        Digest32(*self.0.finalize().as_bytes())
    }
}

/// A SHA-256-only hasher; the other half of a split pipeline.
#[derive(Default, Clone)]
pub struct Sha256Hasher(sha2::Sha256);

impl Sha256Hasher {
    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }
    /// The digest.
    pub fn finalize(self) -> Digest32 {
        Digest32(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let d = FileDigests::of(b"abc");
        assert_eq!(
            d.sha256.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            d.blake3.to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(d.size_bytes, 3);
    }

    #[test]
    fn content_address_round_trip_and_rejects() {
        let ca = ContentAddress::of(b"x");
        let text = ca.to_string();
        assert!(text.starts_with("blake3:"));
        assert_eq!(text.parse::<ContentAddress>().unwrap(), ca);
        assert_eq!(
            "sha256:00".parse::<ContentAddress>(),
            Err(DigestError::MissingPrefix)
        );
        assert!("blake3:zz".parse::<ContentAddress>().is_err());
        assert!(ca.object_key().starts_with("blake3/"));
        assert!(ca.object_key().ends_with(&ca.0.to_hex()));
    }

    #[test]
    fn chunking_does_not_change_digests() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = DualHasher::default();
        for chunk in data.chunks(777) {
            h.update(chunk);
        }
        assert_eq!(h.finalize(), FileDigests::of(&data));
    }
}
