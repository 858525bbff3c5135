//! RFC 8785 canonicalization against the published vectors.

use std::path::{Path, PathBuf};

use artifactstore_core::jcs::{canonicalize, canonicalize_str};
use proptest::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jcs-rfc8785")
}

#[test]
fn every_input_canonicalizes_to_the_published_output() {
    let dir = fixtures();
    let mut names: Vec<String> = std::fs::read_dir(dir.join("input"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "arrays.json",
            "french.json",
            "structures.json",
            "unicode.json",
            "values.json",
            "weird.json"
        ]
    );
    for name in &names {
        let input = std::fs::read_to_string(dir.join("input").join(name)).unwrap();
        let expected = std::fs::read(dir.join("output").join(name)).unwrap();
        let stem = name.trim_end_matches(".json");
        let outhex =
            std::fs::read_to_string(dir.join("outhex").join(format!("{stem}.txt"))).unwrap();
        let from_hex = hex::decode(outhex.split_whitespace().collect::<String>()).unwrap();
        assert_eq!(from_hex, expected, "{name}: output and outhex disagree");

        let got = canonicalize_str(&input).unwrap();
        assert_eq!(
            got,
            expected,
            "{name}:\n got {}\nwant {}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected)
        );
        let parsed: serde_json::Value = serde_json::from_str(&input).unwrap();
        assert_eq!(canonicalize(&parsed).unwrap(), expected, "{name} via Value");
        // Canonical output is a fixed point.
        let again = canonicalize_str(std::str::from_utf8(&got).unwrap()).unwrap();
        assert_eq!(again, expected, "{name} twice");
    }
}

/// RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
const APPENDIX_B: &[(u64, &str)] = &[
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7fefffffffffffff, "1.7976931348623157e+308"),
    (0xffefffffffffffff, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xc340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44b52d02c7e14af5, "9.999999999999997e+22"),
    (0x44b52d02c7e14af6, "1e+23"),
    (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
    (0x444b1ae4d6e2ef4e, "999999999999999700000"),
    (0x444b1ae4d6e2ef4f, "999999999999999900000"),
    (0x444b1ae4d6e2ef50, "1e+21"),
    (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
    (0x3eb0c6f7a0b5ed8d, "0.000001"),
    (0x41b3de4355555553, "333333333.3333332"),
    (0x41b3de4355555554, "333333333.33333325"),
    (0x41b3de4355555555, "333333333.3333333"),
    (0x41b3de4355555556, "333333333.3333334"),
    (0x41b3de4355555557, "333333333.33333343"),
    (0xbecbf647612f3696, "-0.0000033333333333333333"),
    (0x43143ff3c1cb0959, "1424953923781206.2"),
];

#[test]
fn appendix_b_numbers_format_as_es6() {
    for &(bits, want) in APPENDIX_B {
        let v = serde_json::Value::from(f64::from_bits(bits));
        let got = canonicalize(&v).unwrap();
        assert_eq!(std::str::from_utf8(&got).unwrap(), want, "{bits:016x}");
        // The canonical text parses back to the same double (except -0 → 0).
        let reparsed = canonicalize_str(want).unwrap();
        assert_eq!(std::str::from_utf8(&reparsed).unwrap(), want);
    }
}

#[test]
fn string_escaping_is_minimal() {
    let got = canonicalize_str(r#"["\u0000\u001f\b\t\n\f\r\"\\\/\u007f\u00e9\ud83d\ude00<>&'"]"#)
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&got).unwrap(),
        "[\"\\u0000\\u001f\\b\\t\\n\\f\\r\\\"\\\\/\u{7f}é😀<>&'\"]"
    );
}

#[test]
fn keys_sort_by_utf16_code_units_not_bytes() {
    // U+E000 is ee 80 80 in UTF-8 but e000 in UTF-16; U+1F602 is f0 9f 98 82
    // in UTF-8 but d83d de02 in UTF-16. Bytewise UTF-8 would put U+E000 first.
    let got = canonicalize_str("{\"\u{e000}\":1,\"\u{1f602}\":2}").unwrap();
    assert_eq!(
        std::str::from_utf8(&got).unwrap(),
        "{\"\u{1f602}\":2,\"\u{e000}\":1}"
    );
}

proptest! {
    /// `canonicalize_str` must read every decimal as the correctly rounded
    /// double (what `str::parse::<f64>` gives), or RFC 8785 output drifts.
    #[test]
    fn number_parsing_is_correctly_rounded(
        text in "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,24})?([eE][-+]?[0-9]{1,3})?"
    ) {
        let exact: f64 = text.parse().unwrap();
        prop_assume!(exact.is_finite());
        let want = canonicalize(&serde_json::Value::from(exact)).unwrap();
        prop_assert_eq!(canonicalize_str(&text).unwrap(), want);
    }
}

#[test]
fn hard_decimals_are_correctly_rounded() {
    for text in [
        "333333333.33333329",
        "2.2250738585072011e-308",
        "2.2250738585072012e-308",
        "9007199254740993",
        "1.00000000000000011102230246251565404236316680908203125",
        "7.038531e-26",
        "0.1",
        "0.30000000000000004",
        "123456789012345678901234567890",
        "4.9406564584124654e-324",
    ] {
        let exact: f64 = text.parse().unwrap();
        let want = canonicalize(&serde_json::Value::from(exact)).unwrap();
        assert_eq!(canonicalize_str(text).unwrap(), want, "{text}");
    }
}
