//! Every event payload decoder refuses bad input without panicking, and
//! what it accepts round-trips through the canonical encoding.
#![no_main]

use artifactstore_core::cbor;
use artifactstore_core::event::{
    DeletionEligible, FileIngested, HoldApplied, HoldReleased, LocationVerified,
    MetadataSchemaRegistered, PackageCreated, Payload, RetentionDefaultApplied, RetentionExtended,
    TokenCreated, TokenRevoked,
};
use libfuzzer_sys::fuzz_target;

fn round_trip<P: Payload + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(payload) = P::decode(data) {
        let bytes = cbor::to_canonical(&payload).expect("a decoded payload encodes");
        assert_eq!(P::decode(&bytes).ok(), Some(payload));
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<PackageCreated>(data);
    round_trip::<RetentionDefaultApplied>(data);
    round_trip::<FileIngested>(data);
    round_trip::<RetentionExtended>(data);
    round_trip::<HoldApplied>(data);
    round_trip::<HoldReleased>(data);
    round_trip::<DeletionEligible>(data);
    round_trip::<LocationVerified>(data);
    round_trip::<MetadataSchemaRegistered>(data);
    round_trip::<TokenCreated>(data);
    round_trip::<TokenRevoked>(data);
});
