//! RFC 8785 JSON Canonicalization Scheme (JCS), used for the JSON projection
//! of manifests.
//!
//! `serde_jcs` is used as is: it passes every RFC 8785 vector in
//! `tests/fixtures/jcs-rfc8785` and the RFC's Appendix B number table
//! (`tests/jcs_vectors.rs`). It sorts names by UTF-16 code units, formats
//! numbers with `ryu-js` (ECMAScript `Number.prototype.toString`) and escapes
//! strings minimally as §3.2.2.2 requires.
//!
//! As RFC 8785 prescribes, every number is treated as an IEEE 754 double, so
//! integers beyond ±2^53 are rounded in the output (e.g. `2^60` becomes
//! `1152921504606847000`). The canonical CBOR form stays exact; only this
//! view is affected.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Errors of JCS canonicalization.
#[derive(Debug, thiserror::Error)]
pub enum JcsError {
    /// The text is not I-JSON (bad syntax, duplicate names, lone surrogates, huge numbers).
    #[error("invalid JSON: {0}")]
    Parse(String),
    /// The value could not be written canonically.
    #[error("JCS serialization failed: {0}")]
    Serialize(String),
}

/// Returns the RFC 8785 canonical bytes of `value`.
pub fn canonicalize(value: &serde_json::Value) -> Result<Vec<u8>, JcsError> {
    serde_jcs::to_vec(value).map_err(|e| JcsError::Serialize(e.to_string()))
}

/// Parses JSON text (rejecting duplicate object names) and returns its RFC 8785 bytes.
///
/// Numbers are parsed to the nearest double: `serde_jcs` turns on
/// serde_json's `float_roundtrip` feature, which makes the parse correctly
/// rounded (checked in the tests against `str::parse::<f64>`).
pub fn canonicalize_str(json_text: &str) -> Result<Vec<u8>, JcsError> {
    let mut de = serde_json::Deserializer::from_str(json_text);
    let Strict(value) = Strict::deserialize(&mut de).map_err(|e| JcsError::Parse(e.to_string()))?;
    de.end().map_err(|e| JcsError::Parse(e.to_string()))?;
    canonicalize(&value)
}

/// A `serde_json::Value` built by a visitor that refuses duplicate object
/// names, which serde_json's own `Value` silently collapses (last wins) but
/// RFC 8785 §3.1 (via I-JSON) forbids.
struct Strict(serde_json::Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(serde_json::Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(serde_json::Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate object name {key:?}"
                )));
            }
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_are_rejected_even_when_escaped_differently() {
        let err = canonicalize_str(r#"{"a":1,"\u0061":2}"#).unwrap_err();
        assert!(
            matches!(err, JcsError::Parse(ref m) if m.contains("duplicate")),
            "{err}"
        );
        // Same name at different depths is fine.
        assert_eq!(
            canonicalize_str(r#"{"a":{"a":1}}"#).unwrap(),
            br#"{"a":{"a":1}}"#
        );
    }

    #[test]
    fn invalid_text_is_rejected() {
        for text in [r#"{"a":1} x"#, r#"["\ud800"]"#, "[1e400]", "[NaN]", "", "{"] {
            assert!(
                matches!(canonicalize_str(text), Err(JcsError::Parse(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn negative_zero_and_large_integers_follow_es6() {
        assert_eq!(canonicalize_str("[-0, -0.0, 0]").unwrap(), b"[0,0,0]");
        let big = serde_json::json!([1u64 << 60, u64::MAX, 9007199254740993u64]);
        assert_eq!(
            canonicalize(&big).unwrap(),
            b"[1152921504606847000,18446744073709552000,9007199254740992]"
        );
    }
}
