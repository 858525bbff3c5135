//! Decoding never panics; canonical input is a fixed point of
//! decode-then-encode, and anything decoded re-encodes canonically.
#![no_main]

use artifactstore_core::cbor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = cbor::decode(data) else { return };
    if let Ok(canonical) = cbor::encode_canonical(&value) {
        let again = cbor::decode_canonical(&canonical).expect("canonical output must decode canonically");
        assert_eq!(cbor::encode_canonical(&again).ok().as_deref(), Some(canonical.as_slice()));
    }
    if cbor::decode_canonical(data).is_ok() {
        assert_eq!(cbor::encode_canonical(&value).ok().as_deref(), Some(data));
    }
    let _ = cbor::to_json(&value);
});
