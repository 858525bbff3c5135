//! Canonical CBOR against RFC 8949 Appendix A and the §4.2.1 rules.

use artifactstore_core::cbor;
use artifactstore_core::cbor::{
    decode, decode_canonical, encode_canonical, encode_canonical_no_floats, CborError, Value,
    MAX_DEPTH,
};
use base64::Engine as _;
use proptest::prelude::*;

const APPENDIX_A: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cbor-rfc8949-appendix-a/appendix_a.json"
));

/// Records with `roundtrip: true` and a `decoded` value that JSON can carry
/// exactly (counted by hand from the fixture: 15 integers, 13 floats,
/// 3 simple values, 7 strings, 4 arrays, 4 maps). A broken loader or filter
/// drops below this.
const MIN_CHECKED_FROM_JSON: usize = 46;

struct Record {
    bytes: Vec<u8>,
    roundtrip: bool,
    decoded: Option<serde_json::Value>,
    diagnostic: Option<String>,
}

fn records() -> Vec<Record> {
    let all: Vec<serde_json::Value> = serde_json::from_str(APPENDIX_A).unwrap();
    assert!(all.len() >= 80, "fixture has {} records", all.len());
    all.iter()
        .map(|r| {
            let bytes = hex::decode(r["hex"].as_str().unwrap()).unwrap();
            // Both encodings of the expected bytes must agree, or the fixture is corrupt.
            let b64 = base64::engine::general_purpose::STANDARD
                .decode(r["cbor"].as_str().unwrap())
                .unwrap();
            assert_eq!(b64, bytes);
            Record {
                bytes,
                roundtrip: r["roundtrip"].as_bool().unwrap(),
                decoded: r.get("decoded").cloned(),
                diagnostic: r
                    .get("diagnostic")
                    .and_then(|d| d.as_str())
                    .map(str::to_owned),
            }
        })
        .collect()
}

/// Builds the CBOR value a JSON `decoded` stands for, or `None` when JSON
/// cannot carry it exactly. `float_expected` says whether the vector's bytes
/// are a float: a JSON number that is neither i64 nor u64 is then a real
/// float, otherwise it is an integer beyond 64 bits (a bignum) that
/// serde_json could only read as a rounded double.
fn build(j: &serde_json::Value, float_expected: bool) -> Option<Value> {
    use serde_json::Value as J;
    Some(match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::Integer(u.into())
            } else if let Some(i) = n.as_i64() {
                Value::Integer(i.into())
            } else if float_expected {
                Value::Float(n.as_f64()?)
            } else {
                return None;
            }
        }
        J::String(s) => Value::Text(s.clone()),
        J::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| build(i, false))
                .collect::<Option<_>>()?,
        ),
        J::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| Some((Value::Text(k.clone()), build(v, false)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

fn is_float_head(first: u8) -> bool {
    matches!(first, 0xf9..=0xfb)
}

#[test]
fn appendix_a_decoded_values_encode_to_the_exact_bytes() {
    let mut checked = 0;
    let mut skipped = 0;
    for r in records().iter().filter(|r| r.roundtrip) {
        let Some(decoded) = &r.decoded else {
            skipped += 1;
            continue;
        };
        let Some(value) = build(decoded, is_float_head(r.bytes[0])) else {
            skipped += 1;
            continue;
        };
        let hex = hex::encode(&r.bytes);
        assert_eq!(
            hex::encode(encode_canonical(&value).unwrap()),
            hex,
            "encode {decoded}"
        );
        let back = decode(&r.bytes).unwrap();
        assert_eq!(
            hex::encode(encode_canonical(&back).unwrap()),
            hex,
            "re-encode {hex}"
        );
        assert!(decode_canonical(&r.bytes).is_ok(), "{hex}");
        checked += 1;
    }
    assert!(
        checked >= MIN_CHECKED_FROM_JSON,
        "only {checked} vectors checked"
    );
    // The three bignum records (2^64, -2^64, -2^64-1) are skipped from JSON,
    // plus the 16 round-trip records given only in diagnostic notation.
    assert_eq!(skipped, 19, "checked {checked}, skipped {skipped}");
}

#[test]
fn appendix_a_roundtrip_records_are_accepted_as_canonical() {
    // Everything RFC 8949 marks round-trippable is deterministic form, so
    // decode_canonical must accept it, except what ciborium's Value cannot
    // hold: `undefined` (read as null) and unassigned simple values.
    let mut accepted = 0;
    for r in records().iter().filter(|r| r.roundtrip) {
        let hex = hex::encode(&r.bytes);
        match hex.as_str() {
            "f7" => assert!(matches!(
                decode_canonical(&r.bytes),
                Err(CborError::NotCanonical)
            )),
            "f0" | "f818" | "f8ff" => assert!(
                matches!(decode_canonical(&r.bytes), Err(CborError::Malformed(_))),
                "{hex}"
            ),
            _ => {
                let v = decode_canonical(&r.bytes)
                    .unwrap_or_else(|e| panic!("{hex} ({:?}): {e}", r.diagnostic));
                assert_eq!(hex::encode(encode_canonical(&v).unwrap()), hex);
                accepted += 1;
            }
        }
    }
    // 49 JSON-carried (46 + 3 bignums) + 12 diagnostic-only.
    assert_eq!(accepted, 61);
}

#[test]
fn appendix_a_non_roundtrip_records_decode_but_are_not_canonical() {
    let mut rejected = 0;
    for r in records().iter().filter(|r| !r.roundtrip) {
        let hex = hex::encode(&r.bytes);
        assert!(decode(&r.bytes).is_ok(), "{hex}");
        assert!(
            matches!(decode_canonical(&r.bytes), Err(CborError::NotCanonical)),
            "{hex}"
        );
        rejected += 1;
    }
    // 6 non-preferred floats + 11 indefinite-length items.
    assert_eq!(rejected, 17);
}

fn int(n: i64) -> Value {
    Value::Integer(n.into())
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn map_keys_sort_bytewise_by_encoding_rfc8949_example() {
    // RFC 8949 §4.2.1 order: 10, 100, -1, "z", "aa", [100], [-1], false.
    // Length-first (RFC 7049) ordering would put -1 before 100.
    let keys = [
        Value::Bool(false),
        text("aa"),
        Value::Array(vec![int(-1)]),
        int(-1),
        text("z"),
        int(100),
        Value::Array(vec![int(100)]),
        int(10),
    ];
    let map = Value::Map(
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), int(i as i64)))
            .collect(),
    );
    let bytes = encode_canonical_no_floats(&map).unwrap();
    assert_eq!(
        hex::encode(&bytes),
        "a8\
         0a07\
         186405\
         2003\
         617a04\
         62616101\
         81186406\
         812002\
         f400"
    );
    assert!(decode_canonical(&bytes).is_ok());
}

#[test]
fn nested_maps_are_sorted_at_every_depth() {
    let inner = Value::Map(vec![(text("b"), int(1)), (text("a"), int(2))]);
    let outer = Value::Array(vec![Value::Map(vec![
        (text("y"), inner.clone()),
        (text("x"), Value::Array(vec![inner])),
    ])]);
    assert_eq!(
        hex::encode(encode_canonical(&outer).unwrap()),
        "81a2\
         6178 81 a2 6161 02 6162 01\
         6179 a2 6161 02 6162 01"
            .replace(' ', "")
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    let dup_text = Value::Map(vec![(text("a"), int(1)), (text("a"), int(2))]);
    assert!(matches!(
        encode_canonical(&dup_text),
        Err(CborError::DuplicateKey)
    ));
    let dup_nested = Value::Array(vec![Value::Map(vec![
        (Value::Array(vec![int(1)]), Value::Null),
        (Value::Array(vec![int(1)]), Value::Null),
    ])]);
    assert!(matches!(
        encode_canonical_no_floats(&dup_nested),
        Err(CborError::DuplicateKey)
    ));
    // 1 and 1.0 are different data items, so not duplicates.
    let int_and_float = Value::Map(vec![
        (int(1), Value::Null),
        (Value::Float(1.0), Value::Null),
    ]);
    assert!(encode_canonical(&int_and_float).is_ok());
    // On the wire {1: 0, 1: 1} is well-formed, but not canonical.
    assert!(decode(&[0xa2, 0x01, 0x00, 0x01, 0x01]).is_ok());
    assert!(matches!(
        decode_canonical(&[0xa2, 0x01, 0x00, 0x01, 0x01]),
        Err(CborError::DuplicateKey)
    ));
}

#[test]
fn floats_are_rejected_by_the_no_floats_encoder() {
    let v = Value::Map(vec![(
        text("a"),
        Value::Array(vec![int(1), Value::Float(0.0)]),
    )]);
    assert!(matches!(
        encode_canonical_no_floats(&v),
        Err(CborError::FloatsNotAllowed(_))
    ));
    assert_eq!(
        hex::encode(encode_canonical(&v).unwrap()),
        "a161618201f90000"
    );
    assert!(matches!(
        encode_canonical_no_floats(&Value::Map(vec![(Value::Float(1.5), Value::Null)])),
        Err(CborError::FloatsNotAllowed(_))
    ));
}

#[test]
fn trailing_bytes_are_rejected() {
    assert!(matches!(
        decode(&[0x00, 0x00]),
        Err(CborError::TrailingBytes(1))
    ));
    assert!(matches!(
        decode_canonical(&[0x80, 0xff, 0xff]),
        Err(CborError::TrailingBytes(2))
    ));
}

#[test]
fn non_canonical_encodings_are_rejected() {
    for hex in [
        "1800",                     // 0 with a one-byte argument
        "190017",                   // 23 with a two-byte argument
        "3800",                     // -1 with a one-byte argument
        "780161",                   // "a" with a long length head
        "a2616201616102",           // {"b": 1, "a": 2}: keys out of order
        "a2201864180a01",           // {-1: 100, 10: 1}: keys out of order
        "a22000186400",             // {-1: 0, 100: 0}: RFC 7049 length-first order
        "fa3fc00000",               // 1.5 as single precision
        "fb3ff8000000000000",       // 1.5 as double precision
        "9f01ff",                   // indefinite array
        "c24101",                   // bignum 1 instead of integer 1
        "c24a00010000000000000000", // bignum with a leading zero
    ] {
        let bytes = hex::decode(hex).unwrap();
        assert!(decode(&bytes).is_ok(), "{hex} should decode");
        assert!(
            matches!(decode_canonical(&bytes), Err(CborError::NotCanonical)),
            "{hex} should not be canonical"
        );
    }
}

#[test]
fn bignum_tags_are_written_in_preferred_form() {
    let small = Value::Tag(2, Box::new(Value::Bytes(vec![0, 0, 1, 0])));
    assert_eq!(hex::encode(encode_canonical(&small).unwrap()), "190100");
    let negative = Value::Tag(3, Box::new(Value::Bytes(vec![0, 9])));
    assert_eq!(hex::encode(encode_canonical(&negative).unwrap()), "29");
    let big = Value::Tag(
        2,
        Box::new(Value::Bytes(vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
    );
    assert_eq!(
        hex::encode(encode_canonical(&big).unwrap()),
        "c249010000000000000000"
    );
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    for hex in [
        "",
        "1a00",               // truncated argument
        "62c328",             // invalid UTF-8 in text
        "ff",                 // lone break
        "1c",                 // reserved additional information
        "5bffffffffffffffff", // byte string claiming 2^64-1 bytes
        "9bffffffffffffffff", // array claiming 2^64-1 items
        "bbffffffffffffffff", // map claiming 2^64-1 pairs
        "7bffffffffffffffff00",
        "a1",
        "c0",
    ] {
        let bytes = hex::decode(hex).unwrap();
        assert!(
            matches!(decode(&bytes), Err(CborError::Malformed(_))),
            "{hex}: {:?}",
            decode(&bytes)
        );
    }
}

fn nested(depth: usize, open: &[u8], leaf: &[u8]) -> Vec<u8> {
    let mut bytes = open.repeat(depth);
    bytes.extend_from_slice(leaf);
    bytes
}

#[test]
fn nesting_is_bounded_consistently_in_decoder_and_encoder() {
    // One-element arrays, one-entry maps (nesting in the value) and tags.
    for (open, name) in [
        (&[0x81u8][..], "array"),
        (&[0xa1, 0x00], "map"),
        (&[0xc1], "tag"),
    ] {
        let ok = nested(MAX_DEPTH, open, &[0x00]);
        assert!(decode_canonical(&ok).is_ok(), "{name} at {MAX_DEPTH}");
        let deep = nested(MAX_DEPTH + 1, open, &[0x00]);
        assert!(
            matches!(decode(&deep), Err(CborError::TooDeep)),
            "{name} at {}",
            MAX_DEPTH + 1
        );
    }
    let mut v = int(0);
    for _ in 0..=MAX_DEPTH {
        v = Value::Array(vec![v]);
    }
    assert!(matches!(encode_canonical(&v), Err(CborError::TooDeep)));
    // Far deeper input must fail cleanly too, not overflow the stack.
    assert!(matches!(
        decode(&nested(100_000, &[0x81], &[0x00])),
        Err(CborError::TooDeep)
    ));
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<u64>().prop_map(|n| Value::Integer(n.into())),
        any::<i64>().prop_map(|n| Value::Integer(n.into())),
        // The negative range below i64::MIN that CBOR major type 1 allows.
        any::<u64>().prop_map(|n| Value::Integer((-1 - i128::from(n)).try_into().unwrap())),
        (0u64..30).prop_map(|n| Value::Integer(n.into())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        any::<String>().prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..6)
                .prop_map(dedupe_keys)
                .prop_map(Value::Map),
            // Tags 2 and 3 are bignums, which the decoder folds into integers.
            (any::<u64>(), inner).prop_map(|(t, v)| {
                let t = if t == 2 || t == 3 { t + 2 } else { t };
                Value::Tag(t, Box::new(v))
            }),
        ]
    })
}

fn dedupe_keys(entries: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .filter(|(k, _)| seen.insert(encode_canonical(k).unwrap()))
        .collect()
}

proptest! {
    #[test]
    fn encode_decode_encode_is_identity(v in value_strategy()) {
        let bytes = encode_canonical_no_floats(&v).unwrap();
        let back = decode(&bytes).unwrap();
        prop_assert_eq!(&encode_canonical_no_floats(&back).unwrap(), &bytes);
        prop_assert!(decode_canonical(&bytes).is_ok());
    }

    #[test]
    fn shuffled_map_entries_encode_identically(
        entries in proptest::collection::vec((any::<String>(), any::<i64>()), 0..12),
        seed in any::<u64>(),
    ) {
        let mut entries: Vec<(Value, Value)> = dedupe_keys(
            entries.into_iter().map(|(k, v)| (Value::Text(k), int(v))).collect(),
        );
        let a = encode_canonical(&Value::Map(entries.clone())).unwrap();
        // Deterministic shuffle driven by the seed.
        let mut s = seed;
        for i in (1..entries.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            entries.swap(i, (s >> 33) as usize % (i + 1));
        }
        let b = encode_canonical(&Value::Map(entries)).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&bytes);
        let _ = decode_canonical(&bytes);
    }

    #[test]
    fn decode_never_panics_on_corrupted_canonical_bytes(
        v in value_strategy(),
        pos in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = encode_canonical_no_floats(&v).unwrap();
        let i = pos % bytes.len();
        bytes[i] = byte;
        let _ = decode(&bytes);
        let _ = decode_canonical(&bytes);
        bytes.truncate(i);
        prop_assert!(decode(&bytes).is_err());
    }
}

/// Fuzzing found input holding a negative bignum padded with leading zeros
/// past 16 bytes (inside nested tags) whose preferred form, 16 bytes with
/// the top bit set, the decoder cannot read back. The codec's promise: what
/// it encodes canonically decodes canonically to the same bytes, so such a
/// value is refused at encoding instead.
#[test]
fn regression_a_bignum_whose_canonical_form_would_not_decode_is_refused() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fuzz/cbor-nested-bignum-tags.cbor"
    ))
    .unwrap();
    let value = cbor::decode(&bytes).expect("well-formed");
    match cbor::encode_canonical(&value) {
        Ok(canonical) => {
            let again = cbor::decode_canonical(&canonical).expect("canonical output decodes");
            assert_eq!(cbor::encode_canonical(&again).unwrap(), canonical);
        }
        Err(e) => assert!(matches!(e, cbor::CborError::Unsupported(_)), "{e}"),
    }
    // The smallest such value: -1 - 2^127, padded to 17 bytes.
    let mut padded = vec![0xc3, 0x51, 0x00, 0x80];
    padded.extend([0u8; 15]);
    let value = cbor::decode(&padded).expect("padded past 16 bytes, it decodes");
    assert!(matches!(
        cbor::encode_canonical(&value),
        Err(cbor::CborError::Unsupported(_))
    ));
    assert!(cbor::decode_canonical(&padded).is_err());
    // One below the top bit still has its preferred form.
    let mut fits = vec![0xc3, 0x50, 0x7f];
    fits.extend([0xffu8; 15]);
    let value = cbor::decode(&fits).unwrap();
    assert_eq!(cbor::encode_canonical(&value).unwrap(), fits);
}
