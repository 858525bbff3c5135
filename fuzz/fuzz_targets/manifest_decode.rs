//! A manifest that decodes re-encodes to exactly its bytes (its content
//! address is stable), and its JSON projection never panics.
#![no_main]

use artifactstore_core::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::decode(data) {
        assert_eq!(manifest.encode().ok().as_deref(), Some(data));
        assert!(Manifest::json_projection(data).is_ok());
    }
});
