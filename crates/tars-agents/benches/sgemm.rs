//! `gemm` against `matrixmultiply` at the shapes the agents' MLPs multiply, single-threaded,
//! interleaved in one run so that the machine's load affects both alike.
//!
//! Shapes are DQN's CartPole Q-network (4→256→256→2, batch 64) and the batch of one that
//! acting uses. For each layer product: the forward `x·wᵀ`, the input gradient `dy·w` and the
//! weight gradient `dyᵀ·x` (accumulated), with the strides `nn/gemm.rs` passes.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

/// `(name, m, k, n, lhs strides, rhs strides, accumulate)`, strides as (row, column).
type Shape = (
    &'static str,
    usize,
    usize,
    usize,
    (isize, isize),
    (isize, isize),
    bool,
);

const SHAPES: &[Shape] = &[
    ("fwd_64x4x256", 64, 4, 256, (4, 1), (1, 4), false),
    ("fwd_64x256x256", 64, 256, 256, (256, 1), (1, 256), false),
    ("fwd_64x256x2", 64, 256, 2, (256, 1), (1, 256), false),
    ("fwd_1x256x256", 1, 256, 256, (256, 1), (1, 256), false),
    ("fwd_1x256x2", 1, 256, 2, (256, 1), (1, 256), false),
    ("dx_64x256x256", 64, 256, 256, (256, 1), (256, 1), false),
    ("dx_64x2x256", 64, 2, 256, (2, 1), (256, 1), false),
    ("dw_256x64x256", 256, 64, 256, (1, 256), (256, 1), true),
    ("dw_256x64x4", 256, 64, 4, (1, 256), (4, 1), true),
    ("dw_2x64x256", 2, 64, 256, (1, 2), (256, 1), true),
];

fn bench(c: &mut Criterion) {
    let lhs: Vec<f32> = (0..256 * 256).map(|i| (i as f32 * 0.37).sin()).collect();
    let rhs: Vec<f32> = (0..256 * 256).map(|i| (i as f32 * 0.71).cos()).collect();
    let mut dst = vec![0.0f32; 256 * 256];
    for &(name, m, k, n, (lhs_rs, lhs_cs), (rhs_rs, rhs_cs), accumulate) in SHAPES {
        let mut group = c.benchmark_group(name);
        group.bench_function("matrixmultiply", |b| {
            b.iter(|| {
                // SAFETY: every shape fits in the 256×256 operands and destination.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        lhs.as_ptr(),
                        lhs_rs,
                        lhs_cs,
                        rhs.as_ptr(),
                        rhs_rs,
                        rhs_cs,
                        if accumulate { 1.0 } else { 0.0 },
                        dst.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                };
                black_box(&dst);
            })
        });
        group.bench_function("gemm", |b| {
            b.iter(|| {
                // SAFETY: as above.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        dst.as_mut_ptr(),
                        1,
                        n as isize,
                        accumulate,
                        lhs.as_ptr(),
                        lhs_cs,
                        lhs_rs,
                        rhs.as_ptr(),
                        rhs_cs,
                        rhs_rs,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                };
                black_box(&dst);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
