//! Pure domain of artifact-store: identities, digests, content addresses,
//! the canonical CBOR and RFC 8785 JCS codecs, the manifest model, event
//! types and payloads, retention arithmetic and path validation.
//!
//! Nothing here performs IO or needs an async runtime; every other crate of
//! the workspace depends on this one and it depends on none of them.

pub mod cbor;
pub mod digest;
pub mod event;
pub mod flag;
pub mod id;
pub mod jcs;
pub mod lifecycle;
pub mod manifest;
pub mod merkle;
pub mod path;
pub mod resumable;
pub mod retention;
pub mod text;
pub mod timestamp;
pub mod token;

pub use digest::{ContentAddress, Digest32, DualHasher, FileDigests};
pub use event::{Event, NewEvent};
pub use manifest::Manifest;
pub use path::RelativePath;
pub use retention::{RetentionClass, RetentionDuration};
pub use timestamp::{Clock, SystemClock, Timestamp};
