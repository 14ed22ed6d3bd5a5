//! The gemm kernel at the seed model's three hot shapes: the dispatched kernel (AVX-512 VNNI
//! or AVX2 on x86-64 hosts, with the `std` feature) against the portable reference.
//!
//! `cargo bench -p qcnn-core --features std --bench kernels`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qcnn_core::ops::gemm::{MAX_COLUMNS, MAX_ROWS, gemm, gemm_portable};

/// (name, weight rows, k, columns): one call as the seed model makes it.
const SHAPES: [(&str, usize, usize, usize); 3] = [
    // conv1: 8 channels, 1×3×3 patches, four patches per call.
    ("conv1 8x9 x4", 8, 9, MAX_COLUMNS),
    // conv2: 16 channels, 8×3×3 patches.
    ("conv2 16x72 x4", MAX_ROWS, 72, MAX_COLUMNS),
    // fc1: 16 of the 256 features over the 3,136 flattened inputs.
    ("fc1 16x3136 x1", MAX_ROWS, 3136, 1),
];

/// Deterministic bytes in -127..=127, so that no two benchmarks see the same data pattern.
fn bytes(n: usize, seed: u64) -> Vec<i8> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 255) as i8 - 127
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    for (name, rows, k, n) in SHAPES {
        let (weights, columns) = (bytes(rows * k, 1), bytes(n * k, 2));
        let mut acc = vec![0_i32; rows * n];
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements((rows * k * n) as u64));
        group.bench_function("dispatched", |b| {
            b.iter(|| gemm(black_box(&weights), black_box(&columns), k, &mut acc))
        });
        group.bench_function("portable", |b| {
            b.iter(|| gemm_portable(black_box(&weights), black_box(&columns), k, &mut acc))
        });
        group.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
