//! Pure parsers for the HTTP headers the API reads: `Range` (RFC 9110
//! §14), `If-None-Match` / `If-Range` (§13), `Content-Digest` (RFC 9530)
//! and `X-Content-Blake3`. No IO, so every edge case has a unit test.
//!
//! Written by hand because the few lines each needs are less than adopting
//! `headers` (whose `Range` type does not expose suffix resolution against a
//! size) or a structured-field crate for one dictionary key.

use std::ops::Range;

use artifactstore_core::Digest32;
use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// What a `Range` header asks of a representation of a known size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable `Range`: serve the whole representation (200). Malformed
    /// headers and unknown units land here, as RFC 9110 says to ignore them.
    Full,
    /// Serve these bytes (206); never empty.
    Partial(Range<u64>),
    /// Well-formed, but no range overlaps the representation (416).
    Unsatisfiable,
}

enum Spec {
    /// `first-last` or `first-` (last = None).
    From { first: u64, last: Option<u64> },
    /// `-length`.
    Suffix(u64),
}

/// A run of digits as a number; one too large for `u64` saturates, since
/// a position past any file is still a well-formed range (clamped to the
/// end, or unsatisfiable), not a malformed header to ignore.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

fn parse_spec(text: &str) -> Option<Spec> {
    let (first, last) = text.split_once('-')?;
    if first.is_empty() {
        return digits(last).map(Spec::Suffix);
    }
    let first = digits(first)?;
    if last.is_empty() {
        return Some(Spec::From { first, last: None });
    }
    let last = digits(last)?;
    // `last < first` makes the whole header invalid (RFC 9110 §14.1.1).
    (last >= first).then_some(Spec::From {
        first,
        last: Some(last),
    })
}

/// Resolves a `Range` header against a representation of `size` bytes.
/// Several ranges are answered with the first satisfiable one alone (a
/// single-part 206 is allowed for any range request, and multipart
/// responses help no client of this API).
pub fn parse_range(header: &str, size: u64) -> RangeRequest {
    let Some((unit, set)) = header.trim().split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Full;
    }
    let mut specs = Vec::new();
    for element in set.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match parse_spec(element) {
            Some(spec) => specs.push(spec),
            None => return RangeRequest::Full,
        }
    }
    if specs.is_empty() {
        return RangeRequest::Full;
    }
    for spec in specs {
        let range = match spec {
            Spec::From { first, last } if first < size => {
                let end = last.map_or(size, |last| last.saturating_add(1).min(size));
                first..end
            }
            Spec::Suffix(length) if length > 0 && size > 0 => size.saturating_sub(length)..size,
            _ => continue,
        };
        return RangeRequest::Partial(range);
    }
    RangeRequest::Unsatisfiable
}

/// Whether an `If-None-Match` value matches the entity tag `etag` (quoted),
/// by weak comparison as RFC 9110 §13.1.2 requires.
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let header = header.trim();
    if header == "*" {
        return true;
    }
    let wanted = etag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag.trim_start_matches("W/") == wanted)
}

/// Whether an `If-Range` value lets the `Range` apply: only a strong match
/// of our entity tag does (we send no `Last-Modified`, so a date never
/// matches and the whole representation is served).
pub fn if_range_matches(header: &str, etag: &str) -> bool {
    header.trim() == etag
}

/// Why a digest header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestHeaderError {
    /// Not a structured-field dictionary, or the `sha-256` member is not
    /// a byte sequence.
    #[error("Content-Digest is malformed: {0}")]
    Malformed(&'static str),
    /// The `sha-256` member is not 32 bytes of valid base64.
    #[error("Content-Digest sha-256 must be 32 bytes of base64 between colons")]
    BadSha256,
    /// The `sha-512` member is not 64 bytes of valid base64.
    #[error("Content-Digest sha-512 must be 64 bytes of base64 between colons")]
    BadSha512,
    /// Only algorithms this server does not check.
    #[error("Content-Digest names no algorithm this server checks ({0}): send sha-256 or sha-512")]
    NoKnownAlgorithm(String),
    /// `X-Content-Blake3` is not 64 hex characters.
    #[error("X-Content-Blake3 must be 64 hexadecimal characters")]
    BadBlake3,
}

/// RFC 8941 byte sequences are padded base64; accept missing padding too,
/// as the RFC asks parsers to.
const SF_BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn is_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*');
    first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b"_-.*".contains(&b))
}

/// The digests of a `Content-Digest` value this server checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentDigests {
    /// `sha-256`.
    pub sha256: Option<Digest32>,
    /// `sha-512`.
    pub sha512: Option<[u8; 64]>,
}

fn byte_sequence<const N: usize>(
    item: Option<&str>,
    bad_length: DigestHeaderError,
) -> Result<[u8; N], DigestHeaderError> {
    // Parameters (`;key=value`) after the item carry nothing for us.
    let item = item
        .and_then(|v| v.split(';').next())
        .ok_or(DigestHeaderError::Malformed("a digest has no value"))?;
    let encoded = item
        .strip_prefix(':')
        .and_then(|rest| rest.strip_suffix(':'))
        .ok_or(DigestHeaderError::Malformed(
            "a digest is not a :base64: byte sequence",
        ))?;
    let bytes = SF_BASE64.decode(encoded).map_err(|_| bad_length.clone())?;
    bytes.try_into().map_err(|_| bad_length)
}

/// The `sha-256` and `sha-512` of a `Content-Digest` value (RFC 9530).
/// Keys are compared case-insensitively; when a key repeats, the last
/// member wins (RFC 8941 dictionaries). Other algorithms are ignored beside
/// a known one, but a value with none this server knows is refused: the
/// client asked for a check that would not happen.
pub fn parse_content_digest(header: &str) -> Result<ContentDigests, DigestHeaderError> {
    let mut digests = ContentDigests::default();
    let mut unknown = Vec::new();
    for member in header.split(',').map(str::trim) {
        if member.is_empty() {
            return Err(DigestHeaderError::Malformed("empty list member"));
        }
        let (key, value) = match member.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (member.split(';').next().unwrap_or(member), None),
        };
        if !is_key(key) {
            return Err(DigestHeaderError::Malformed("invalid dictionary key"));
        }
        if key.eq_ignore_ascii_case("sha-256") {
            let digest = byte_sequence::<32>(value, DigestHeaderError::BadSha256)?;
            digests.sha256 = Some(Digest32(digest));
        } else if key.eq_ignore_ascii_case("sha-512") {
            digests.sha512 = Some(byte_sequence::<64>(value, DigestHeaderError::BadSha512)?);
        } else {
            unknown.push(key.to_ascii_lowercase());
        }
    }
    if digests == ContentDigests::default() {
        return Err(DigestHeaderError::NoKnownAlgorithm(unknown.join(", ")));
    }
    Ok(digests)
}

/// The BLAKE3 of an `X-Content-Blake3` value: 64 hex characters.
pub fn parse_blake3(header: &str) -> Result<Digest32, DigestHeaderError> {
    Digest32::from_hex(header.trim()).map_err(|_| DigestHeaderError::BadBlake3)
}

/// A `Content-Digest` value for a SHA-256 given as hex (as records keep it).
pub fn content_digest_value(sha256_hex: &str) -> Option<String> {
    let bytes = hex::decode(sha256_hex).ok()?;
    Some(format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Whether an `Accept` value prefers `application/json` to
/// `application/cbor` (ties, wildcards and no mention go to CBOR, the
/// canonical form).
pub fn accept_prefers_json(header: &str) -> bool {
    let mut json = 0.0_f32;
    let mut cbor = 0.0_f32;
    for range in header.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/json" => json = json.max(q),
            "application/cbor" => cbor = cbor.max(q),
            _ => {}
        }
    }
    json > cbor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(range: Range<u64>) -> RangeRequest {
        RangeRequest::Partial(range)
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(parse_range("bytes=0-4", 10), partial(0..5));
        assert_eq!(parse_range("bytes=2-", 10), partial(2..10));
        assert_eq!(parse_range("bytes=-3", 10), partial(7..10));
        assert_eq!(parse_range("bytes=9-9", 10), partial(9..10));
        // Past the end is clamped; a suffix longer than the file is all of it.
        assert_eq!(parse_range("bytes=5-100", 10), partial(5..10));
        assert_eq!(parse_range("bytes=-100", 10), partial(0..10));
        assert_eq!(
            parse_range("bytes=0-18446744073709551615", 10),
            partial(0..10)
        );
        // Beyond u64: still clamped, not ignored.
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999", 10),
            partial(0..10)
        );
        assert_eq!(
            parse_range("bytes=-99999999999999999999999", 10),
            partial(0..10)
        );
        assert_eq!(
            parse_range("bytes=99999999999999999999-", 10),
            RangeRequest::Unsatisfiable
        );
        // Unit is case-insensitive; whitespace around list members is allowed.
        assert_eq!(parse_range("BYTES=1-2", 10), partial(1..3));
        assert_eq!(parse_range("bytes= 1-2 , 4-5", 10), partial(1..3));
    }

    #[test]
    fn several_ranges_serve_the_first_satisfiable() {
        assert_eq!(parse_range("bytes=0-1,4-5", 10), partial(0..2));
        assert_eq!(parse_range("bytes=50-60,4-5", 10), partial(4..6));
        assert_eq!(parse_range("bytes=1-2,,", 10), partial(1..3));
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(parse_range("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=10-20", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), RangeRequest::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=20-30,40-", 10),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn malformed_ranges_are_ignored() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=1-2,x",
            "bytes=--1",
            "bytes=-",
            "bytes=+1-2",
            "bytes=1 -2",
            "items=0-1",
            "0-1",
        ] {
            assert_eq!(parse_range(header, 10), RangeRequest::Full, "{header:?}");
        }
    }

    #[test]
    fn entity_tag_matching() {
        let etag = "\"blake3:ab\"";
        assert!(if_none_match("\"blake3:ab\"", etag));
        assert!(if_none_match("W/\"blake3:ab\"", etag));
        assert!(if_none_match("\"x\", \"blake3:ab\"", etag));
        assert!(if_none_match(" * ", etag));
        assert!(!if_none_match("\"blake3:cd\"", etag));
        assert!(!if_none_match("blake3:ab", etag));
        assert!(if_range_matches("\"blake3:ab\"", etag));
        assert!(!if_range_matches("W/\"blake3:ab\"", etag));
        assert!(!if_range_matches("Sat, 01 Jan 2000 00:00:00 GMT", etag));
    }

    #[test]
    fn content_digest_sha256_and_sha512() {
        use sha2::Digest as _;
        let digest = Digest32::sha256_of(b"hello");
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest.0);
        let sha256 = |d| ContentDigests {
            sha256: Some(d),
            sha512: None,
        };
        assert_eq!(
            parse_content_digest(&format!("sha-256=:{b64}:")),
            Ok(sha256(digest))
        );
        let unpadded = b64.trim_end_matches('=');
        assert_eq!(
            parse_content_digest(&format!("sha-256=:{unpadded}:")),
            Ok(sha256(digest))
        );
        // Unknown algorithms beside a known one, parameters and key case
        // are ignored.
        let listed = format!("md5=:AAAA:, SHA-256=:{b64}:;note=1, unixsum=30637");
        assert_eq!(parse_content_digest(&listed), Ok(sha256(digest)));
        let sha512: [u8; 64] = sha2::Sha512::digest(b"hello").into();
        let b64_512 = base64::engine::general_purpose::STANDARD.encode(sha512);
        assert_eq!(
            parse_content_digest(&format!("sha-512=:{b64_512}:")),
            Ok(ContentDigests {
                sha256: None,
                sha512: Some(sha512)
            })
        );
        assert_eq!(
            parse_content_digest(&format!("sha-512=:{b64_512}:, sha-256=:{b64}:")),
            Ok(ContentDigests {
                sha256: Some(digest),
                sha512: Some(sha512)
            })
        );
        assert_eq!(
            content_digest_value(&digest.to_hex()),
            Some(format!("sha-256=:{b64}:"))
        );
    }

    #[test]
    fn content_digest_with_no_known_algorithm_is_refused() {
        assert_eq!(
            parse_content_digest("md5=:AAAA:, unixsum=30637"),
            Err(DigestHeaderError::NoKnownAlgorithm("md5, unixsum".into()))
        );
        assert_eq!(
            parse_content_digest("sha-512=:AAAA:"),
            Err(DigestHeaderError::BadSha512)
        );
    }

    #[test]
    fn malformed_content_digest() {
        let short = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
        for header in [
            "sha-256=abc".to_owned(),
            "sha-256".to_owned(),
            "sha-256=:not base64!:".to_owned(),
            format!("sha-256=:{short}:"),
            "sha-512=:AAAA:,".to_owned(),
            "=:AAAA:".to_owned(),
            "9x=1".to_owned(),
            String::new(),
        ] {
            assert!(parse_content_digest(&header).is_err(), "{header:?}");
        }
    }

    #[test]
    fn blake3_header() {
        let digest = Digest32::blake3_of(b"hello");
        assert_eq!(parse_blake3(&digest.to_hex()), Ok(digest));
        assert_eq!(parse_blake3(&digest.to_hex().to_uppercase()), Ok(digest));
        assert!(parse_blake3("abc").is_err());
        assert!(parse_blake3(&format!("blake3:{}", digest.to_hex())).is_err());
    }

    #[test]
    fn accept_negotiation() {
        assert!(accept_prefers_json("application/json"));
        assert!(accept_prefers_json("text/html, application/json;q=0.9"));
        assert!(accept_prefers_json(
            "application/cbor;q=0.1, application/json"
        ));
        assert!(!accept_prefers_json("application/cbor, application/json"));
        assert!(!accept_prefers_json("*/*"));
        assert!(!accept_prefers_json(""));
        assert!(!accept_prefers_json("application/json;q=0"));
    }
}
