//! The codecs on the hot paths: event payloads to and from canonical CBOR
//! (every append and every replayed event), and JCS (metadata schemas).

use artifactstore_core::event::{FileIngested, PackageCreated};
use artifactstore_core::{cbor, jcs, Digest32};
use criterion::{criterion_group, criterion_main, Criterion};

fn file_ingested() -> FileIngested {
    let blake3 = Digest32::blake3_of(b"bench").to_hex();
    FileIngested {
        v: 1,
        file_id: "5b0c2a43-7f61-4a52-9d6e-0c8e6a1f2b3c".into(),
        package_id: "0e1d2c3b-4a59-4687-9a6b-5c4d3e2f1a0b".into(),
        relative_path: "reports/2026/summary.json".into(),
        media_type: "application/json".into(),
        size_bytes: 4096,
        sha256: Digest32::sha256_of(b"bench").to_hex(),
        object_key: format!("blake3/{}/{}/{blake3}", &blake3[..2], &blake3[2..4]),
        blake3,
        storage_location_id: "8f7e6d5c-4b3a-4291-8f7e-6d5c4b3a2918".into(),
        backend_id: "local".into(),
        retrieval_tier: "hot".into(),
    }
}

fn metadata() -> serde_json::Value {
    serde_json::json!({
        "branch": "main",
        "build": 12345,
        "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "nightly": true,
        "labels": {"team": "platform", "tier": "gold"},
        "artifacts": ["sbom.json", "report.pdf", "logs.tar.zst"],
    })
}

fn codecs(c: &mut Criterion) {
    let file = file_ingested();
    let file_bytes = cbor::to_canonical(&file).expect("encodes");
    c.bench_function("file.ingested payload: encode canonical CBOR", |b| {
        b.iter(|| cbor::to_canonical(&file).expect("encodes"))
    });
    c.bench_function("file.ingested payload: decode", |b| {
        b.iter(|| cbor::from_cbor::<FileIngested>(&file_bytes).expect("decodes"))
    });
    let created = PackageCreated {
        v: 1,
        package_id: "0e1d2c3b-4a59-4687-9a6b-5c4d3e2f1a0b".into(),
        name: "nightly evidence".into(),
        producer: "ci".into(),
        subject: "payments".into(),
        retention_class: "standard".into(),
        metadata: cbor::from_json(&metadata()).expect("no floats"),
        metadata_schema_id: None,
    };
    let created_bytes = cbor::to_canonical(&created).expect("encodes");
    c.bench_function("package.created payload: encode canonical CBOR", |b| {
        b.iter(|| cbor::to_canonical(&created).expect("encodes"))
    });
    c.bench_function("package.created payload: decode canonical", |b| {
        b.iter(|| cbor::decode_canonical(&created_bytes).expect("canonical"))
    });
    let json = metadata();
    c.bench_function("metadata: JCS canonicalize", |b| {
        b.iter(|| jcs::canonicalize(&json).expect("canonicalizes"))
    });
}

criterion_group!(benches, codecs);
criterion_main!(benches);
