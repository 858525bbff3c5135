//! Any accepted relative path is one a filesystem join cannot escape with.
#![no_main]

use std::path::{Component, Path};

use artifactstore_core::RelativePath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(path) = RelativePath::parse(text) else { return };
    let text = path.as_str();
    assert!(!text.is_empty() && text.len() <= artifactstore_core::path::MAX_PATH_BYTES);
    assert!(!text.starts_with('/') && !text.contains('\\'));
    assert!(!text.chars().any(char::is_control));
    for segment in text.split('/') {
        assert!(!segment.is_empty() && segment != "." && segment != "..");
    }
    assert!(Path::new(text).components().all(|c| matches!(c, Component::Normal(_))));
});
