//! A resolved range always lies inside the representation and is never empty.
#![no_main]

use artifactstore_server::headers::{parse_range, RangeRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size, header) = data.split_at(8);
    let size = u64::from_le_bytes(size.try_into().unwrap_or([0; 8]));
    let Ok(header) = std::str::from_utf8(header) else { return };
    if let RangeRequest::Partial(range) = parse_range(header, size) {
        assert!(range.start < range.end, "{header:?} {size}: empty {range:?}");
        assert!(range.end <= size, "{header:?} {size}: {range:?} past the end");
    }
});
