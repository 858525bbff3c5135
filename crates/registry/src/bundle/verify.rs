//! `artifactstore verify-bundle`: checks an evidence bundle with no server,
//! reading the tar once, in order. Tag files are small and held; each
//! payload file is hashed as it streams past, so memory stays bounded
//! whatever the package's size.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use artifactstore_api::InclusionProof;
use artifactstore_core::event::{subjects, types, Leaf};
use artifactstore_core::{Digest32, DualHasher, Manifest};
use sha2::{Digest as _, Sha256};

use super::layout;
use crate::log::proof::{decode_hash, verify_inclusion, SignedCheckpoint};

/// The largest tag file read (a manifest of many files is the big one).
const MAX_TAG_FILE: u64 = 256 * 1024 * 1024;

/// The first thing a bundle failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BundleInvalid(pub String);

fn fail<T>(why: impl Into<String>) -> Result<T, BundleInvalid> {
    Err(BundleInvalid(why.into()))
}

/// What a bundle proved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BundleReport {
    /// The package.
    pub package_id: String,
    /// Its content address (`blake3:…`), as the finalize event records it.
    pub content_address: String,
    /// Payload files checked against `manifest-sha256.txt` and the manifest.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Tag files checked against `tagmanifest-sha256.txt`.
    pub tag_files: u64,
    /// Events whose payload digest and inclusion proof were checked.
    pub events: u64,
    /// The checkpoint they are proven in.
    pub tree_size: u64,
    /// Its root, standard base64.
    pub root_hash: String,
    /// The key that signed it.
    pub key_name: String,
    /// Each check, in the order made.
    pub checks: Vec<String>,
}

/// What the payload files must be, from the tag files.
struct Expected {
    /// Path → (size, sha256 hex, blake3 hex).
    files: BTreeMap<String, (u64, String, String)>,
    seen: BTreeSet<String>,
}

/// Verifies the bundle read from `tar` with the log's verifier key
/// (`name+keyid+base64`).
pub fn verify_bundle(tar: impl Read, verifier_key: &str) -> Result<BundleReport, BundleInvalid> {
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| BundleInvalid(format!("not a tar: {e}")))?;
    let mut tags: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut report: Option<BundleReport> = None;
    let mut expected: Option<Expected> = None;
    let mut files = 0u64;
    let mut bytes = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| BundleInvalid(format!("not a valid tar: {e}")))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return fail(format!(
                "the tar holds a member that is not a regular file ({:?})",
                entry.header().entry_type()
            ));
        }
        let name = entry
            .path()
            .map_err(|e| BundleInvalid(format!("a member's name is unreadable: {e}")))?
            .to_string_lossy()
            .into_owned();
        if let Some(path) = name.strip_prefix(layout::DATA_DIR) {
            if expected.is_none() {
                let (checked, wanted) = check_tags(&tags, verifier_key)?;
                report = Some(checked);
                expected = Some(wanted);
            }
            let wanted = expected.as_mut().unwrap_or_else(|| unreachable!());
            let Some((size, sha256, blake3)) = wanted.files.get(path).cloned() else {
                return fail(format!("extra file {name}: not in the manifest"));
            };
            if !wanted.seen.insert(path.to_owned()) {
                return fail(format!("{name} appears twice"));
            }
            let mut hasher = DualHasher::default();
            let mut buffer = vec![0u8; 256 * 1024];
            let mut read = 0u64;
            loop {
                let n = entry
                    .read(&mut buffer)
                    .map_err(|e| BundleInvalid(format!("{name}: cannot be read: {e}")))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                read += n as u64;
            }
            let digests = hasher.finalize();
            if read != size {
                return fail(format!("{name}: {read} bytes, the manifest says {size}"));
            }
            if digests.sha256.to_hex() != sha256 {
                return fail(format!(
                    "{name}: its SHA-256 {} is not the {sha256} of manifest-sha256.txt and the manifest",
                    digests.sha256.to_hex()
                ));
            }
            if digests.blake3.to_hex() != blake3 {
                return fail(format!(
                    "{name}: its BLAKE3 {} is not the manifest's {blake3}",
                    digests.blake3.to_hex()
                ));
            }
            files += 1;
            bytes += read;
        } else {
            if expected.is_some() {
                return fail(format!(
                    "tag file {name} after the payload: not a bundle's order"
                ));
            }
            if entry.size() > MAX_TAG_FILE {
                return fail(format!(
                    "tag file {name} is larger than {MAX_TAG_FILE} bytes"
                ));
            }
            let mut body = Vec::new();
            entry
                .read_to_end(&mut body)
                .map_err(|e| BundleInvalid(format!("{name}: cannot be read: {e}")))?;
            if tags.insert(name.clone(), body).is_some() {
                return fail(format!("{name} appears twice"));
            }
        }
    }
    let (mut report, wanted) = match (report, expected) {
        (Some(report), Some(wanted)) => (report, wanted),
        // A package without files: the tags are all there is.
        _ => check_tags(&tags, verifier_key)?,
    };
    if let Some(missing) = wanted
        .files
        .keys()
        .find(|path| !wanted.seen.contains(*path))
    {
        return fail(format!("missing file {}{missing}", layout::DATA_DIR));
    }
    report.files = files;
    report.bytes = bytes;
    report.checks.push(format!(
        "{files} payload files ({bytes} bytes): size, SHA-256 (manifest-sha256.txt and the manifest) and BLAKE3 (the manifest)"
    ));
    Ok(report)
}

fn text<'a>(tags: &'a BTreeMap<String, Vec<u8>>, name: &str) -> Result<&'a str, BundleInvalid> {
    let Some(body) = tags.get(name) else {
        return fail(format!("missing file {name}"));
    };
    std::str::from_utf8(body).map_err(|_| BundleInvalid(format!("{name} is not UTF-8")))
}

/// Path → SHA-256 of a BagIt checksum manifest, in exactly the form
/// bundles write (`<lowercase hex>  <encoded path>\n`): any other byte is
/// a change, and a change fails.
fn checksum_lines(name: &str, text: &str) -> Result<BTreeMap<String, String>, BundleInvalid> {
    let mut lines = BTreeMap::new();
    let Some(body) = text.strip_suffix('\n').or(text.is_empty().then_some("")) else {
        return fail(format!("{name} does not end with a newline"));
    };
    for line in body.split('\n').filter(|_| !body.is_empty()) {
        let Some((sum, path)) = line.split_once("  ") else {
            return fail(format!("{name}: malformed line {line:?}"));
        };
        let path = decode_path_or_fail(name, path)?;
        if sum.len() != 64
            || !sum
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return fail(format!("{name}: {sum:?} is not a lowercase SHA-256"));
        }
        if lines.insert(path.clone(), sum.to_owned()).is_some() {
            return fail(format!("{name}: {path} is listed twice"));
        }
    }
    Ok(lines)
}

fn decode_path_or_fail(name: &str, path: &str) -> Result<String, BundleInvalid> {
    layout::decode_path(path)
        .ok_or_else(|| BundleInvalid(format!("{name}: bad escape in {path:?}")))
}

fn check_tags(
    tags: &BTreeMap<String, Vec<u8>>,
    verifier_key: &str,
) -> Result<(BundleReport, Expected), BundleInvalid> {
    let mut checks = Vec::new();
    // Every tag file is covered by the tag manifest, and matches it.
    let listed = checksum_lines(
        layout::TAGMANIFEST_SHA256,
        text(tags, layout::TAGMANIFEST_SHA256)?,
    )?;
    for (name, body) in tags {
        if name == layout::TAGMANIFEST_SHA256 {
            continue;
        }
        let Some(sum) = listed.get(name) else {
            return fail(format!("extra file {name}: not in tagmanifest-sha256.txt"));
        };
        if hex::encode(Sha256::digest(body)) != *sum {
            return fail(format!(
                "{name} does not match its SHA-256 in tagmanifest-sha256.txt"
            ));
        }
    }
    if let Some(missing) = listed.keys().find(|name| !tags.contains_key(*name)) {
        return fail(format!(
            "missing file {missing} (listed in tagmanifest-sha256.txt)"
        ));
    }
    checks.push(format!(
        "{} tag files against tagmanifest-sha256.txt",
        listed.len()
    ));
    if text(tags, layout::BAGIT_TXT)? != layout::BAGIT_TEXT {
        return fail("bagit.txt is not a BagIt 1.0 declaration");
    }

    // The signed checkpoint.
    let checkpoint =
        SignedCheckpoint::open(text(tags, layout::CHECKPOINT)?.as_bytes(), verifier_key)
            .map_err(|e| BundleInvalid(format!("registry/checkpoint: {e}")))?;
    checks.push(format!(
        "the checkpoint of tree size {} is signed by {}",
        checkpoint.tree_size, checkpoint.origin
    ));

    // The manifest, and the payload it describes.
    let manifest_cbor = tags
        .get(layout::MANIFEST_CBOR)
        .ok_or_else(|| BundleInvalid(format!("missing file {}", layout::MANIFEST_CBOR)))?;
    let manifest = Manifest::decode(manifest_cbor)
        .map_err(|e| BundleInvalid(format!("{}: {e}", layout::MANIFEST_CBOR)))?;
    let manifest_digest = Digest32::blake3_of(manifest_cbor);
    let payload = checksum_lines(
        layout::MANIFEST_SHA256,
        text(tags, layout::MANIFEST_SHA256)?,
    )?;
    let mut files = BTreeMap::new();
    for file in &manifest.files {
        let path = format!("{}{}", layout::DATA_DIR, file.relative_path);
        match payload.get(&path) {
            Some(sum) if *sum == file.sha256 => {}
            Some(_) => {
                return fail(format!(
                    "{path}: manifest-sha256.txt and the manifest disagree on its SHA-256"
                ))
            }
            None => {
                return fail(format!(
                    "{path} is in the manifest, not in manifest-sha256.txt"
                ))
            }
        }
        files.insert(
            file.relative_path.clone(),
            (file.size_bytes, file.sha256.clone(), file.blake3.clone()),
        );
    }
    if payload.len() != files.len() {
        return fail("manifest-sha256.txt lists a file the manifest does not");
    }

    // bag-info.txt names the package and its content address, and counts
    // the payload.
    let info = text(tags, layout::BAG_INFO)?;
    let content_address = format!("blake3:{}", manifest_digest.to_hex());
    let identifiers: Vec<&str> = info
        .lines()
        .filter_map(|l| l.strip_prefix("External-Identifier:").map(str::trim))
        .collect();
    if !identifiers.contains(&manifest.package.id.as_str())
        || !identifiers.contains(&content_address.as_str())
    {
        return fail("bag-info.txt does not name the manifest's package id and content address");
    }
    let oxum = format!(
        "Payload-Oxum: {}.{}",
        manifest.files.iter().map(|f| f.size_bytes).sum::<u64>(),
        manifest.files.len()
    );
    if !info.lines().any(|l| l.trim_end() == oxum) {
        return fail("bag-info.txt's Payload-Oxum does not count the manifest's files");
    }

    // The events: leaf bytes, payload digests, inclusion proofs.
    let mut events = 0u64;
    let mut finalize: Option<Leaf> = None;
    let leaf_names: Vec<&String> = tags
        .keys()
        .filter(|n| n.starts_with(layout::EVENTS_DIR) && n.ends_with(".leaf"))
        .collect();
    for leaf_name in leaf_names {
        let leaf_bytes = &tags[leaf_name];
        let leaf =
            Leaf::decode(leaf_bytes).map_err(|e| BundleInvalid(format!("{leaf_name}: {e}")))?;
        let [expected_leaf, payload_name, proof_name] = layout::event_members(leaf.sequence);
        if expected_leaf != *leaf_name {
            return fail(format!("{leaf_name} holds event {}", leaf.sequence));
        }
        if leaf.subject_kind != subjects::PACKAGE || leaf.subject_id != manifest.package.id {
            return fail(format!(
                "{leaf_name} is not an event of package {}",
                manifest.package.id
            ));
        }
        let payload = tags
            .get(&payload_name)
            .ok_or_else(|| BundleInvalid(format!("missing file {payload_name}")))?;
        if Digest32::blake3_of(payload) != leaf.payload_digest {
            return fail(format!(
                "{payload_name} does not match the payload digest in its leaf"
            ));
        }
        let proof: InclusionProof = serde_json::from_slice(
            tags.get(&proof_name)
                .ok_or_else(|| BundleInvalid(format!("missing file {proof_name}")))?,
        )
        .map_err(|e| BundleInvalid(format!("{proof_name}: {e}")))?;
        if proof.tree_size != checkpoint.tree_size
            || i64::try_from(proof.leaf_index + 1).ok() != Some(leaf.sequence)
        {
            return fail(format!(
                "{proof_name} is not a proof of event {} in the checkpoint's tree",
                leaf.sequence
            ));
        }
        let hashes = proof
            .hashes
            .iter()
            .map(|h| decode_hash(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BundleInvalid(format!("{proof_name}: {e}")))?;
        verify_inclusion(
            leaf_bytes,
            proof.leaf_index,
            proof.tree_size,
            &hashes,
            &checkpoint.root,
        )
        .map_err(|e| BundleInvalid(format!("{proof_name}: {e}")))?;
        if leaf.event_type == types::PACKAGE_FINALIZED {
            finalize = Some(leaf);
        }
        events += 1;
    }
    let Some(finalize) = finalize else {
        return fail("the bundle holds no finalize event of the package");
    };
    if finalize.payload_digest != manifest_digest {
        return fail(format!(
            "registry/manifest.cbor's BLAKE3 is not the content address the finalize event (sequence {}) records",
            finalize.sequence
        ));
    }
    checks.push(format!(
        "{events} events: each leaf's payload digest, and its inclusion proof in the checkpoint"
    ));
    checks.push(format!(
        "the manifest's BLAKE3 is {content_address}, recorded by the finalize event at sequence {}",
        finalize.sequence
    ));
    let report = BundleReport {
        package_id: manifest.package.id.clone(),
        content_address,
        files: 0,
        bytes: 0,
        tag_files: listed.len() as u64,
        events,
        tree_size: checkpoint.tree_size,
        root_hash: crate::log::proof::encode_hash(&checkpoint.root),
        key_name: checkpoint.origin,
        checks,
    };
    Ok((
        report,
        Expected {
            files,
            seen: BTreeSet::new(),
        },
    ))
}
