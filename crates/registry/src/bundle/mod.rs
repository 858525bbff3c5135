//! Offline evidence bundles: a finalized package as a tar that is a BagIt
//! 1.0 bag (RFC 8493) holding the registry's own proof: the canonical
//! manifest, the package's events as leaf bytes with their payloads, a
//! signed checkpoint and each event's inclusion proof in it. Anyone with
//! the log's verifier key checks it with no server ([`verify`]).
//!
//! The tar streams: tag files first (small, built in memory), then each
//! file's bytes straight from its backend, so memory does not grow with
//! the package's size.

pub mod layout;
pub mod verify;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use artifactstore_api::InclusionProof;
use artifactstore_core::merkle;
use artifactstore_core::Manifest;
use artifactstore_store::records::status;
use artifactstore_store::FileRecord;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::log::proof::encode_hash;
use crate::{Registry, RegistryError, RegistryResult};

/// A bundle about to stream.
pub struct Bundle {
    /// Its exact length in bytes.
    pub size: u64,
    /// The tar's bytes.
    pub stream: BoxStream<'static, io::Result<Bytes>>,
    /// The checkpoint its proofs are for.
    pub tree_size: u64,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("size", &self.size)
            .field("tree_size", &self.tree_size)
            .finish_non_exhaustive()
    }
}

/// One member's place in the stream.
enum Part {
    Bytes(Bytes),
    File(Box<FileRecord>),
}

fn member(
    parts: &mut Vec<Part>,
    size: &mut u64,
    name: &str,
    body: Vec<u8>,
    mtime: u64,
    owner: &str,
) {
    let header = layout::file_header(name, body.len() as u64, mtime, owner);
    let pad = layout::padding(body.len() as u64);
    *size += (header.len() + body.len() + pad) as u64;
    let mut bytes = header;
    bytes.extend_from_slice(&body);
    bytes.resize(bytes.len() + pad, 0);
    parts.push(Part::Bytes(Bytes::from(bytes)));
}

impl Registry {
    /// The evidence bundle of finalized package `id`. A checkpoint that
    /// covers every event of the package is signed first if the newest one
    /// does not. A purged package is 410 `package_purged`.
    pub async fn bundle(&self, id: Uuid, actor: &str) -> RegistryResult<Bundle> {
        let package = self.get_package(id).await?;
        if package.status == status::PURGED {
            return Err(self.purged(&package.id).await);
        }
        let manifest_cbor = self
            .store
            .manifest_bytes(&package.id)
            .await?
            .ok_or_else(|| RegistryError::ManifestNotFound(package.id.clone()))?;
        let manifest = Manifest::decode(&manifest_cbor)
            .map_err(|e| RegistryError::Internal(format!("manifest: {e}")))?;
        let head = self.store.head_sequence().await?;
        let events = self.store.package_events(&package.id, head).await?;
        let newest = events.last().map_or(0, |e| e.sequence);
        let mut checkpoint = self.store.latest_checkpoint().await?;
        if checkpoint
            .as_ref()
            .is_none_or(|c| c.tree_size < u64::try_from(newest).unwrap_or(0))
        {
            checkpoint = self.sign_checkpoint(actor, true).await?.0;
        }
        let checkpoint = checkpoint
            .ok_or_else(|| RegistryError::Internal("no checkpoint after signing one".into()))?;
        let tree_size = checkpoint.tree_size;
        let events: Vec<_> = events
            .into_iter()
            .filter(|e| u64::try_from(e.sequence).is_ok_and(|s| s <= tree_size))
            .collect();

        // Every proof's hashes in one read of the tiles.
        let mut spans = Vec::new();
        let mut ranges = Vec::with_capacity(events.len());
        for event in &events {
            let index = u64::try_from(event.sequence - 1).unwrap_or(0);
            let these = merkle::inclusion_spans(index, tree_size)
                .map_err(|e| RegistryError::Internal(e.to_string()))?;
            ranges.push(spans.len()..spans.len() + these.len());
            spans.extend(these);
        }
        let hashes = self.store.span_hashes(&spans).await?;

        let files = self.store.files_of(&package.id).await?;
        let mtime = u64::try_from(manifest.package.finalized_at.as_datetime().unix_timestamp())
            .unwrap_or(0);
        let owner = manifest.package.producer.clone();
        let content_address = Manifest::content_address(&manifest_cbor);

        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut tag_lines = String::new();
        let mut tag = |parts: &mut Vec<Part>, size: &mut u64, name: &str, body: Vec<u8>| {
            tag_lines.push_str(&layout::manifest_line(
                &hex::encode(Sha256::digest(&body)),
                name,
            ));
            member(parts, size, name, body, mtime, &owner);
        };
        tag(
            &mut parts,
            &mut size,
            layout::BAGIT_TXT,
            layout::BAGIT_TEXT.as_bytes().to_vec(),
        );
        let payload_bytes: u64 = manifest.files.iter().map(|f| f.size_bytes).sum();
        let bag_info = format!(
            "Bagging-Date: {}\nExternal-Identifier: {}\nExternal-Identifier: {}\nPayload-Oxum: {}.{}\n",
            manifest.package.finalized_at.as_datetime().date(),
            package.id,
            content_address,
            payload_bytes,
            manifest.files.len()
        );
        tag(
            &mut parts,
            &mut size,
            layout::BAG_INFO,
            bag_info.into_bytes(),
        );
        let mut payload_manifest = String::new();
        for file in &manifest.files {
            payload_manifest.push_str(&layout::manifest_line(
                &file.sha256,
                &format!("{}{}", layout::DATA_DIR, file.relative_path),
            ));
        }
        tag(
            &mut parts,
            &mut size,
            layout::MANIFEST_SHA256,
            payload_manifest.into_bytes(),
        );
        tag(&mut parts, &mut size, layout::MANIFEST_CBOR, manifest_cbor);
        tag(
            &mut parts,
            &mut size,
            layout::CHECKPOINT,
            checkpoint.note.clone().into_bytes(),
        );
        for (event, range) in events.iter().zip(ranges) {
            let [leaf, payload, proof] = layout::event_members(event.sequence);
            tag(&mut parts, &mut size, &leaf, event.leaf_bytes());
            tag(&mut parts, &mut size, &payload, event.payload.clone());
            let inclusion = InclusionProof {
                leaf_index: u64::try_from(event.sequence - 1).unwrap_or(0),
                tree_size,
                hashes: hashes[range].iter().map(encode_hash).collect::<Vec<_>>(),
            };
            let json = serde_json::to_vec_pretty(&inclusion)
                .map_err(|e| RegistryError::Internal(e.to_string()))?;
            tag(&mut parts, &mut size, &proof, json);
        }
        member(
            &mut parts,
            &mut size,
            layout::TAGMANIFEST_SHA256,
            tag_lines.into_bytes(),
            mtime,
            &owner,
        );
        for file in files {
            let name = format!("{}{}", layout::DATA_DIR, file.relative_path);
            let header = layout::file_header(&name, file.size_bytes, mtime, &owner);
            size += header.len() as u64 + file.size_bytes + layout::padding(file.size_bytes) as u64;
            parts.push(Part::Bytes(Bytes::from(header)));
            parts.push(Part::File(Box::new(file)));
        }
        size += layout::END_OF_ARCHIVE.len() as u64;
        parts.push(Part::Bytes(Bytes::from_static(&layout::END_OF_ARCHIVE)));

        let registry = self.clone();
        let stream = stream::iter(parts)
            .then(move |part| {
                let registry = registry.clone();
                async move { registry.part_stream(part).await }
            })
            .try_flatten()
            .boxed();
        Ok(Bundle {
            size,
            stream,
            tree_size,
        })
    }

    /// A member's bytes; a file's are followed by its padding, and cut
    /// with an error if the backend gives other than its recorded size
    /// (the tar would be corrupt otherwise).
    async fn part_stream(&self, part: Part) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        match part {
            Part::Bytes(bytes) => Ok(stream::once(async move { Ok(bytes) }).boxed()),
            Part::File(file) => {
                let expected = file.size_bytes;
                let counted = Arc::new(AtomicU64::new(0));
                let body = self
                    .open_file(&file, None)
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))?
                    .map_err(|e| io::Error::other(e.to_string()))
                    .inspect_ok({
                        let counted = counted.clone();
                        move |chunk| {
                            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                    });
                let path = file.relative_path.clone();
                let tail = stream::once(async move {
                    let got = counted.load(Ordering::Relaxed);
                    if got == expected {
                        Ok(Bytes::from(vec![0u8; layout::padding(expected)]))
                    } else {
                        Err(io::Error::other(format!(
                            "{path}: the backend gave {got} bytes of {expected}"
                        )))
                    }
                });
                Ok(body.chain(tail).boxed())
            }
        }
    }
}
