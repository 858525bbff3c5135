//! The manifest encoding is pinned: a fixed manifest must keep its bytes and
//! its content address across versions of this code, or every stored
//! package address would silently change.

use artifactstore_core::cbor::{self, Value};
use artifactstore_core::manifest::{
    ManifestFile, ManifestPackage, Provenance, RetentionSummary, StorageReceipt, MANIFEST_VERSION,
};
use artifactstore_core::{FileDigests, Manifest};

/// The content address of [`fixture`]'s canonical CBOR. Changing it breaks
/// every stored manifest address: only with a new manifest version.
const PINNED_ADDRESS: &str =
    "blake3:cc2b088a66f210fb4477b2bdba961f6cc6776f0477e84c9f08b31a3d7db2beaf";

fn fixture() -> Manifest {
    let files: Vec<(&str, &[u8])> = vec![
        ("reports/2026/summary.pdf", b"%PDF-1.7 summary"),
        ("logs/build.log", b"ok\n"),
    ];
    let mut entries: Vec<ManifestFile> = files
        .iter()
        .enumerate()
        .map(|(i, (path, bytes))| {
            let d = FileDigests::of(bytes);
            ManifestFile {
                file_id: format!("00000000-0000-4000-8000-00000000000{i}"),
                relative_path: (*path).to_owned(),
                media_type: "application/octet-stream".into(),
                size_bytes: d.size_bytes,
                blake3: d.blake3.to_hex(),
                sha256: d.sha256.to_hex(),
                content_address: d.content_address().to_string(),
            }
        })
        .collect();
    entries.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    let receipts = entries
        .iter()
        .enumerate()
        .map(|(i, f)| StorageReceipt {
            file_id: f.file_id.clone(),
            storage_location_id: format!("10000000-0000-4000-8000-00000000000{i}"),
            backend_id: "local".into(),
            object_key: f
                .content_address
                .parse::<artifactstore_core::ContentAddress>()
                .unwrap()
                .object_key(),
            content_address: f.content_address.clone(),
            retrieval_tier: "hot".into(),
        })
        .collect();
    Manifest {
        manifest_version: MANIFEST_VERSION,
        package: ManifestPackage {
            id: "20000000-0000-4000-8000-000000000000".into(),
            name: "nightly evidence".into(),
            producer: "ci".into(),
            subject: "Prüfbericht".into(),
            retention_class: "long-term".into(),
            metadata: Value::Map(vec![
                (Value::Text("run".into()), Value::Integer(42.into())),
                (Value::Text("branch".into()), Value::Text("main".into())),
            ]),
            metadata_schema_id: None,
            created_at: "2026-05-16T01:56:04.000001Z".parse().unwrap(),
            finalized_at: "2026-05-16T02:00:00Z".parse().unwrap(),
        },
        files: entries,
        storage_receipts: receipts,
        retention: RetentionSummary {
            retention_class: "long-term".into(),
            expires_at: Some("2036-05-13T01:56:04.000001Z".parse().unwrap()),
            active_hold_ids: vec![],
        },
        provenance: Provenance {
            created_by: "ci-bot".into(),
            finalized_by: "ci-bot".into(),
            created_sequence: 1,
            last_event_sequence: 4,
        },
    }
}

#[test]
fn pinned_manifest_has_its_pinned_address() {
    let bytes = fixture().encode().unwrap();
    let address = Manifest::content_address(&bytes).to_string();
    assert_eq!(address, PINNED_ADDRESS, "manifest encoding changed");
}

#[test]
fn encode_decode_encode_is_the_identity() {
    let manifest = fixture();
    let bytes = manifest.encode().unwrap();
    let decoded = Manifest::decode(&bytes).unwrap();
    assert_eq!(decoded, manifest);
    assert_eq!(decoded.encode().unwrap(), bytes);
    assert_eq!(cbor::decode_canonical(&bytes).map(|_| ()).ok(), Some(()));
}

#[test]
fn json_projection_is_jcs_and_non_canonical_bytes_are_refused() {
    let bytes = fixture().encode().unwrap();
    let json = Manifest::json_projection(&bytes).unwrap();
    let text = std::str::from_utf8(&json).unwrap();
    assert!(text.starts_with("{\"files\":[{\"blake3\":"), "{text}");
    assert!(text.contains("\"metadata\":{\"branch\":\"main\",\"run\":42}"));
    assert!(text.contains("\"subject\":\"Prüfbericht\""));
    assert_eq!(
        artifactstore_core::jcs::canonicalize_str(text).unwrap(),
        json
    );
    // The same manifest with a non-shortest integer head is not canonical.
    let mut tampered = bytes.clone();
    tampered.push(0x00);
    assert!(Manifest::decode(&tampered).is_err());
    let newer = cbor::to_canonical(&Manifest {
        manifest_version: 2,
        ..fixture()
    })
    .unwrap();
    assert!(matches!(
        Manifest::decode(&newer),
        Err(artifactstore_core::manifest::ManifestError::UnsupportedVersion(2))
    ));
}

/// Fuzzing found a manifest whose timestamp spelled `t` for `T`: canonical
/// CBOR, but re-encoded to other bytes. Such a manifest must be refused.
#[test]
fn regression_a_manifest_that_does_not_re_encode_exactly_is_refused() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fuzz/manifest-lowercase-t.cbor"
    ))
    .unwrap();
    assert!(
        cbor::decode_canonical(&bytes).is_ok(),
        "the input is canonical CBOR"
    );
    assert!(Manifest::decode(&bytes).is_err());
}

/// Fuzzing found a manifest that decoded but had no JSON projection (its
/// metadata held a value JSON cannot carry). Such a manifest must be
/// refused, since every real one came from JSON metadata.
#[test]
fn regression_a_manifest_without_a_json_form_is_refused() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fuzz/manifest-without-json-form.cbor"
    ))
    .unwrap();
    assert!(Manifest::json_projection(&bytes).is_err());
    assert!(Manifest::decode(&bytes).is_err());
}
