//! Canonical CBOR (RFC 8949 §4.2.1 core deterministic encoding) and the JSON
//! projection of CBOR values.
//!
//! Manifests and event payloads are content-addressed by the bytes produced
//! here, so the encoder is written by hand instead of relying on ciborium's
//! serializer: ciborium writes map entries in insertion order and its
//! `CanonicalValue` orders keys length-first (the RFC 7049 rule), whereas
//! RFC 8949 §4.2.1 orders them bytewise by their encoding. Decoding is left
//! to ciborium (with a recursion limit), and `decode_canonical` re-encodes to
//! prove the input was already in canonical form.

use std::io::ErrorKind;

/// Re-exported so callers build values without depending on ciborium.
pub use ciborium::value::Value;

/// Deepest nesting of arrays, maps and tags accepted anywhere, so hostile
/// input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// Errors of the canonical CBOR codec and its JSON projection.
#[derive(Debug, thiserror::Error)]
pub enum CborError {
    /// The bytes are not well-formed CBOR (or end early).
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// One complete item was read but more bytes follow it.
    #[error("trailing bytes after the CBOR item ({0} bytes)")]
    TrailingBytes(usize),
    /// A float appeared where only integers are allowed.
    #[error("floats are not allowed: {0}")]
    FloatsNotAllowed(String),
    /// A Rust value could not be turned into a CBOR value.
    #[error("serialization failed: {0}")]
    Serialize(String),
    /// Well-formed CBOR whose shape does not match the requested Rust type.
    #[error("CBOR does not match the expected type: {0}")]
    Deserialize(String),
    /// The bytes decode but differ from their canonical encoding.
    #[error("CBOR is not in canonical form")]
    NotCanonical,
    /// A map holds two keys with the same encoding.
    #[error("duplicate map key")]
    DuplicateKey,
    /// A value that has no representation in the requested form.
    #[error("unsupported value: {0}")]
    Unsupported(String),
    /// An integer outside the i64/u64 range that the JSON view can carry.
    #[error("integer {0} is out of range for JSON")]
    IntegerOutOfRange(i128),
    /// Arrays, maps or tags nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Encodes `value` in RFC 8949 §4.2.1 core deterministic form (floats allowed).
pub fn encode_canonical(value: &Value) -> Result<Vec<u8>, CborError> {
    let mut out = Vec::new();
    Encoder { floats: true }.value(&mut out, value, 0)?;
    Ok(out)
}

/// Encodes `value` canonically, rejecting any float (the form of manifests and payloads).
pub fn encode_canonical_no_floats(value: &Value) -> Result<Vec<u8>, CborError> {
    let mut out = Vec::new();
    Encoder { floats: false }.value(&mut out, value, 0)?;
    Ok(out)
}

/// Serializes `value` with serde and encodes it canonically without floats.
pub fn to_canonical<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CborError> {
    let value = Value::serialized(value).map_err(|e| CborError::Serialize(e.to_string()))?;
    encode_canonical_no_floats(&value)
}

/// Decodes exactly one CBOR item; any byte after it is an error.
///
/// Non-canonical but well-formed input is accepted (use [`decode_canonical`]
/// to refuse it). Note that ciborium reads `undefined` as null and folds
/// bignum tags 2/3 that fit in 64 bits into plain integers; both change the
/// encoding, so `decode_canonical` rejects such input.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|e| decode_error(e, false))?;
    if !rest.is_empty() {
        return Err(CborError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Decodes one CBOR item and requires the bytes to be exactly its canonical encoding.
pub fn decode_canonical(bytes: &[u8]) -> Result<Value, CborError> {
    let value = decode(bytes)?;
    if encode_canonical(&value)? != bytes {
        return Err(CborError::NotCanonical);
    }
    Ok(value)
}

/// Decodes exactly one CBOR item into `T`; any byte after it is an error.
pub fn from_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CborError> {
    let mut rest = bytes;
    let value: T = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|e| decode_error(e, true))?;
    if !rest.is_empty() {
        return Err(CborError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Projects a CBOR value to JSON for the human-readable view of manifests and payloads.
///
/// Byte strings become lowercase hex text. Floats and tags are errors rather
/// than projected: payloads never contain them, and silently dropping a tag
/// would make two different CBOR values share one JSON view. Map keys must be
/// text because JSON object names are strings.
pub fn to_json(value: &Value) -> Result<serde_json::Value, CborError> {
    to_json_at(value, 0)
}

/// Converts user-supplied JSON (metadata) to a CBOR value; numbers must be integers.
pub fn from_json(value: &serde_json::Value) -> Result<Value, CborError> {
    from_json_at(value, 0)
}

fn decode_error(error: ciborium::de::Error<std::io::Error>, typed: bool) -> CborError {
    use ciborium::de::Error;
    match error {
        Error::Io(e) if e.kind() == ErrorKind::UnexpectedEof => {
            CborError::Malformed("unexpected end of input".to_owned())
        }
        Error::Io(e) => CborError::Malformed(e.to_string()),
        Error::Syntax(offset) => CborError::Malformed(format!("invalid syntax at byte {offset}")),
        // For a typed decode a semantic error is almost always a shape
        // mismatch (missing field, wrong type), not broken bytes.
        Error::Semantic(_, msg) if typed => CborError::Deserialize(msg),
        Error::Semantic(Some(offset), msg) => {
            CborError::Malformed(format!("{msg} at byte {offset}"))
        }
        Error::Semantic(None, msg) => CborError::Malformed(msg),
        Error::RecursionLimitExceeded => CborError::TooDeep,
    }
}

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;

const TAG_BIGNUM_POSITIVE: u64 = 2;
const TAG_BIGNUM_NEGATIVE: u64 = 3;

struct Encoder {
    floats: bool,
}

impl Encoder {
    fn value(&self, out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), CborError> {
        match value {
            Value::Integer(int) => {
                let n = i128::from(*int);
                // ciborium's Integer is confined to [-2^64, 2^64 - 1], so one
                // of the two heads always fits; the error arm is defensive.
                let (major, arg) = if n >= 0 {
                    (MAJOR_UNSIGNED, u64::try_from(n))
                } else {
                    (MAJOR_NEGATIVE, u64::try_from(-1 - n))
                };
                let arg = arg.map_err(|_| CborError::Unsupported(format!("integer {n}")))?;
                write_head(out, major, arg);
            }
            Value::Bytes(bytes) => {
                write_head(out, MAJOR_BYTES, len_u64(bytes.len()));
                out.extend_from_slice(bytes);
            }
            Value::Text(text) => {
                write_head(out, MAJOR_TEXT, len_u64(text.len()));
                out.extend_from_slice(text.as_bytes());
            }
            Value::Float(f) => {
                if !self.floats {
                    return Err(CborError::FloatsNotAllowed(format!(
                        "found {f}; manifests and event payloads carry no floats"
                    )));
                }
                // ciborium writes the shortest of half/single/double that
                // round-trips the exact bits (preferred serialization, as
                // §4.2.1 requires); checked against RFC 8949 Appendix A.
                ciborium::ser::into_writer(f, &mut *out)
                    .map_err(|e| CborError::Serialize(e.to_string()))?;
            }
            Value::Bool(false) => out.push(0xf4),
            Value::Bool(true) => out.push(0xf5),
            Value::Null => out.push(0xf6),
            Value::Tag(tag, inner) => {
                let depth = enter(depth)?;
                if let (TAG_BIGNUM_POSITIVE | TAG_BIGNUM_NEGATIVE, Value::Bytes(raw)) =
                    (*tag, inner.as_ref())
                {
                    write_bignum(out, *tag, raw)?;
                } else {
                    write_head(out, MAJOR_TAG, *tag);
                    self.value(out, inner, depth)?;
                }
            }
            Value::Array(items) => {
                let depth = enter(depth)?;
                write_head(out, MAJOR_ARRAY, len_u64(items.len()));
                for item in items {
                    self.value(out, item, depth)?;
                }
            }
            Value::Map(entries) => {
                let depth = enter(depth)?;
                let mut encoded = Vec::with_capacity(entries.len());
                for (key, val) in entries {
                    let mut k = Vec::new();
                    self.value(&mut k, key, depth)?;
                    let mut v = Vec::new();
                    self.value(&mut v, val, depth)?;
                    encoded.push((k, v));
                }
                // §4.2.1: keys sorted by the bytewise order of their encodings.
                encoded.sort_by(|a, b| a.0.cmp(&b.0));
                if encoded.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(CborError::DuplicateKey);
                }
                write_head(out, MAJOR_MAP, len_u64(encoded.len()));
                for (k, v) in encoded {
                    out.extend_from_slice(&k);
                    out.extend_from_slice(&v);
                }
            }
            other => {
                return Err(CborError::Unsupported(format!("{other:?}")));
            }
        }
        Ok(())
    }
}

fn enter(depth: usize) -> Result<usize, CborError> {
    if depth >= MAX_DEPTH {
        return Err(CborError::TooDeep);
    }
    Ok(depth + 1)
}

fn len_u64(len: usize) -> u64 {
    // usize is at most 64 bits on every supported target.
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Writes a head with the shortest argument encoding (§4.2.1, first rule).
fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let mt = major << 5;
    if arg < 24 {
        out.push(mt | arg as u8);
    } else if let Ok(a) = u8::try_from(arg) {
        out.push(mt | 24);
        out.push(a);
    } else if let Ok(a) = u16::try_from(arg) {
        out.push(mt | 25);
        out.extend_from_slice(&a.to_be_bytes());
    } else if let Ok(a) = u32::try_from(arg) {
        out.push(mt | 26);
        out.extend_from_slice(&a.to_be_bytes());
    } else {
        out.push(mt | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// Writes a bignum in preferred serialization (§3.4.3): no leading zero
/// bytes, and as a plain major type 0/1 integer whenever it fits in 64 bits.
///
/// A negative bignum whose magnitude takes exactly 16 bytes with the top bit
/// set is refused: the decoder (ciborium) reads a bignum of up to 16 bytes
/// as an `i128`, which cannot hold it, so its preferred form would not
/// decode. It decodes only when padded with leading zeros past 16 bytes,
/// which is not canonical. (Found by fuzzing: `cbor-nested-bignum-tags`.)
fn write_bignum(out: &mut Vec<u8>, tag: u64, raw: &[u8]) -> Result<(), CborError> {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let magnitude = &raw[start..];
    if tag == TAG_BIGNUM_NEGATIVE && magnitude.len() == 16 && magnitude[0] & 0x80 != 0 {
        return Err(CborError::Unsupported(
            "a negative bignum below -2^127 of 16 bytes has no decodable canonical form".into(),
        ));
    }
    if magnitude.len() <= 8 {
        let mut buf = [0u8; 8];
        buf[8 - magnitude.len()..].copy_from_slice(magnitude);
        let major = if tag == TAG_BIGNUM_POSITIVE {
            MAJOR_UNSIGNED
        } else {
            MAJOR_NEGATIVE
        };
        write_head(out, major, u64::from_be_bytes(buf));
    } else {
        write_head(out, MAJOR_TAG, tag);
        write_head(out, MAJOR_BYTES, len_u64(magnitude.len()));
        out.extend_from_slice(magnitude);
    }
    Ok(())
}

fn to_json_at(value: &Value, depth: usize) -> Result<serde_json::Value, CborError> {
    use serde_json::Value as J;
    Ok(match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Integer(int) => {
            let n = i128::from(*int);
            if let Ok(i) = i64::try_from(n) {
                J::from(i)
            } else if let Ok(u) = u64::try_from(n) {
                J::from(u)
            } else {
                return Err(CborError::IntegerOutOfRange(n));
            }
        }
        Value::Text(s) => J::String(s.clone()),
        Value::Bytes(b) => J::String(hex::encode(b)),
        Value::Float(f) => {
            return Err(CborError::FloatsNotAllowed(format!(
                "found {f}; floats have no JSON projection"
            )))
        }
        Value::Tag(tag, _) => {
            return Err(CborError::Unsupported(format!(
                "tag {tag} has no JSON projection"
            )))
        }
        Value::Array(items) => {
            let depth = enter(depth)?;
            J::Array(
                items
                    .iter()
                    .map(|item| to_json_at(item, depth))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            let depth = enter(depth)?;
            let mut object = serde_json::Map::new();
            for (key, val) in entries {
                let Value::Text(key) = key else {
                    return Err(CborError::Unsupported(
                        "map key is not text; JSON object names are strings".to_owned(),
                    ));
                };
                if object
                    .insert(key.clone(), to_json_at(val, depth)?)
                    .is_some()
                {
                    return Err(CborError::DuplicateKey);
                }
            }
            J::Object(object)
        }
        other => return Err(CborError::Unsupported(format!("{other:?}"))),
    })
}

fn from_json_at(value: &serde_json::Value, depth: usize) -> Result<Value, CborError> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::Integer(u.into())
            } else if let Some(i) = n.as_i64() {
                Value::Integer(i.into())
            } else {
                return Err(CborError::FloatsNotAllowed(format!(
                    "{n} is not an integer; write decimal values as strings"
                )));
            }
        }
        J::String(s) => Value::Text(s.clone()),
        J::Array(items) => {
            let depth = enter(depth)?;
            Value::Array(
                items
                    .iter()
                    .map(|item| from_json_at(item, depth))
                    .collect::<Result<_, _>>()?,
            )
        }
        J::Object(object) => {
            let depth = enter(depth)?;
            Value::Map(
                object
                    .iter()
                    .map(|(k, v)| Ok((Value::Text(k.clone()), from_json_at(v, depth)?)))
                    .collect::<Result<_, CborError>>()?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bytes_project_to_lowercase_hex() {
        let v = Value::Map(vec![(
            Value::Text("digest".into()),
            Value::Bytes(vec![0x00, 0xab, 0xFF]),
        )]);
        assert_eq!(to_json(&v).unwrap(), json!({"digest": "00abff"}));
    }

    #[test]
    fn integers_project_across_full_range() {
        let v = Value::Array(vec![
            Value::Integer(u64::MAX.into()),
            Value::Integer(i64::MIN.into()),
            Value::Integer((-1i64).into()),
        ]);
        assert_eq!(
            to_json(&v).unwrap(),
            json!([18446744073709551615u64, i64::MIN, -1])
        );
        // -2^64 is a valid CBOR integer but no JSON number serde_json can hold.
        let min = decode(&hex::decode("3bffffffffffffffff").unwrap()).unwrap();
        assert!(matches!(
            to_json(&min),
            Err(CborError::IntegerOutOfRange(n)) if n == -(1i128 << 64)
        ));
    }

    #[test]
    fn to_json_rejects_floats_tags_and_non_text_keys() {
        assert!(matches!(
            to_json(&Value::Array(vec![Value::Float(1.5)])),
            Err(CborError::FloatsNotAllowed(_))
        ));
        assert!(matches!(
            to_json(&Value::Tag(1, Box::new(Value::Integer(0.into())))),
            Err(CborError::Unsupported(_))
        ));
        let int_key = Value::Map(vec![(Value::Integer(1.into()), Value::Null)]);
        assert!(matches!(to_json(&int_key), Err(CborError::Unsupported(_))));
        let dup = Value::Map(vec![
            (Value::Text("a".into()), Value::Null),
            (Value::Text("a".into()), Value::Bool(true)),
        ]);
        assert!(matches!(to_json(&dup), Err(CborError::DuplicateKey)));
    }

    #[test]
    fn from_json_rejects_decimals_with_a_hint() {
        for text in ["1.5", "1.0", "1e3", "-0.25"] {
            let j: serde_json::Value = serde_json::from_str(text).unwrap();
            let err = from_json(&json!({"price": j})).unwrap_err();
            assert!(matches!(err, CborError::FloatsNotAllowed(_)), "{text}");
            assert!(err.to_string().contains("string"), "{err}");
        }
    }

    #[test]
    fn from_json_keeps_integer_extremes() {
        let v = from_json(&json!([u64::MAX, i64::MIN, 0])).unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Integer(u64::MAX.into()),
                Value::Integer(i64::MIN.into()),
                Value::Integer(0.into()),
            ])
        );
    }

    #[test]
    fn nested_metadata_round_trips_through_canonical_cbor() {
        let meta = json!({
            "name": "release",
            "build": {"number": 42, "tags": ["a", "b", ""], "ok": true, "note": null},
            "offset": -7,
            "size": 18446744073709551615u64,
            "unicode": "päck ✓",
            "empty": {"list": [], "map": {}}
        });
        let cbor = from_json(&meta).unwrap();
        let bytes = encode_canonical_no_floats(&cbor).unwrap();
        let back = decode_canonical(&bytes).unwrap();
        assert_eq!(to_json(&back).unwrap(), meta);
    }

    #[test]
    fn to_canonical_matches_value_encoding_and_from_cbor_reads_it_back() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Entry {
            zeta: u32,
            alpha: String,
            data: Option<Vec<u8>>,
        }
        let e = Entry {
            zeta: 500,
            alpha: "x".into(),
            data: None,
        };
        let bytes = to_canonical(&e).unwrap();
        // Sorted by encoded key: the head byte carries the text length, so
        // "data" (64..) and "zeta" (64 7a..) precede "alpha" (65..).
        assert_eq!(
            hex::encode(&bytes),
            "a3\
             6464617461f6\
             647a6574611901f4\
             65616c7068616178"
        );
        assert_eq!(from_cbor::<Entry>(&bytes).unwrap(), e);
        assert!(matches!(
            from_cbor::<Entry>(&[bytes.as_slice(), &[0x00]].concat()),
            Err(CborError::TrailingBytes(1))
        ));
        assert!(matches!(
            from_cbor::<Entry>(&[0xa0]),
            Err(CborError::Deserialize(_))
        ));
    }

    #[test]
    fn to_canonical_rejects_floats() {
        assert!(matches!(
            to_canonical(&vec![1.0f64]),
            Err(CborError::FloatsNotAllowed(_))
        ));
    }
}
