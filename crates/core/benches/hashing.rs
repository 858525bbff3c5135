//! The hashing pipeline's building blocks: each digest alone and both in
//! one pass, over chunk sizes a socket hands the ingest path.

use artifactstore_core::digest::{Blake3Hasher, Sha256Hasher};
use artifactstore_core::DualHasher;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const TOTAL: usize = 16 << 20;

fn input() -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..TOTAL)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn hashing(c: &mut Criterion) {
    let data = input();
    let mut group = c.benchmark_group("hash 16 MiB");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(20);
    for chunk in [16 << 10, 64 << 10, 1 << 20] {
        let label = format!("{} KiB chunks", chunk >> 10);
        group.bench_with_input(BenchmarkId::new("blake3", &label), &chunk, |b, &chunk| {
            b.iter(|| {
                let mut h = Blake3Hasher::default();
                data.chunks(chunk).for_each(|c| h.update(c));
                h.finalize()
            })
        });
        group.bench_with_input(BenchmarkId::new("sha256", &label), &chunk, |b, &chunk| {
            b.iter(|| {
                let mut h = Sha256Hasher::default();
                data.chunks(chunk).for_each(|c| h.update(c));
                h.finalize()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("both, one thread", &label),
            &chunk,
            |b, &chunk| {
                b.iter(|| {
                    let mut h = DualHasher::default();
                    data.chunks(chunk).for_each(|c| h.update(c));
                    h.finalize()
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("both, two threads", &label),
            &chunk,
            |b, &chunk| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        let blake3 = s.spawn(|| {
                            let mut h = Blake3Hasher::default();
                            data.chunks(chunk).for_each(|c| h.update(c));
                            h.finalize()
                        });
                        let mut h = Sha256Hasher::default();
                        data.chunks(chunk).for_each(|c| h.update(c));
                        (h.finalize(), blake3.join().expect("hasher thread"))
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
